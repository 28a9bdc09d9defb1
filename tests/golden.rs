//! Golden tests of the generated HTTPRoute: for every seed example, the
//! route Sluice renders at every distinct step of a healthy rollout and
//! after a failed one is compared with a checked-in YAML file under
//! `tests/golden/<example>/` that a reviewer can read.
//!
//! To accept new output after an intended change:
//! `SLUICE_BLESS=1 cargo test --test integration golden::`, then review the diff.

use crate::common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use gateway_api::apis::standard::httproutes::HttpRoute as StandardHttpRoute;
use sluice_api::{Canary, load};
use sluice_rollout::router::HttpRoute;

/// Merges a `spec.service` fragment of the guide into the weighted canary.
fn with_service_fragment(fragment: &str) -> Canary {
    let base = load::documents(&common::read("examples/podinfo-canary.yaml"))
        .unwrap()
        .remove(0);
    let frag = load::documents(fragment).unwrap().remove(0);
    let mut merged = base;
    let service = merged
        .pointer_mut("/spec/service")
        .unwrap()
        .as_object_mut()
        .unwrap();
    for (k, v) in frag["spec"]["service"].as_object().unwrap() {
        service.insert(k.clone(), v.clone());
    }
    load::canary_from_yaml(&yaml_serde::to_string(&merged).unwrap()).unwrap()
}

/// Each example: a Canary and the metric names its scenarios feed.
fn examples() -> Vec<(String, Canary)> {
    let mut out = vec![
        (
            "weighted".to_string(),
            common::canary("examples/podinfo-canary.yaml"),
        ),
        (
            "ab-testing".to_string(),
            common::canary("examples/podinfo-ab-canary.yaml"),
        ),
        (
            "session-affinity".to_string(),
            common::canary("examples/podinfo-canary-session-affinity.yaml"),
        ),
        (
            "mirroring".to_string(),
            common::canary("examples/podinfo-canary-mirror.yaml"),
        ),
        (
            "blue-green".to_string(),
            common::canary("examples/podinfo-blue-green.yaml"),
        ),
        (
            "service-headers".to_string(),
            with_service_fragment(&common::read("examples/service-headers.yaml")),
        ),
        (
            "service-cors".to_string(),
            with_service_fragment(&common::read("examples/service-cors.yaml")),
        ),
    ];
    let rewrites = load::documents(&common::read("examples/service-rewrite.yaml")).unwrap();
    for (i, doc) in rewrites.iter().enumerate() {
        out.push((
            format!("service-rewrite-{}", i + 1),
            with_service_fragment(&yaml_serde::to_string(doc).unwrap()),
        ));
    }
    out
}

const HEALTHY: &str = "ticks: 40\nprimaryReadyAfter: 1\nmetrics:\n  error-rate: [0.1]\n  latency: [0.1]\n  request-success-rate: [100]\n  request-duration: [100]\nchanges:\n  - tick: 3\n    image: podinfod=podinfo:2\n";
const FAILING: &str = "ticks: 40\nmetrics:\n  error-rate: [0.1, 0.1, 0.1, 0.1, 50]\n  latency: [0.1]\n  request-success-rate: [100, 100, 100, 100, 10]\n  request-duration: [100]\nchanges:\n  - tick: 2\n    image: podinfod=podinfo:2\n";

/// The distinct routes of a run, named by the state that produced them.
async fn routes_of(canary: &Canary, scenario: &str, tag: &str) -> Vec<(String, HttpRoute)> {
    let sim = common::simulate(canary.clone(), common::scenario(scenario)).await;
    let mut out: Vec<(String, HttpRoute)> = Vec::new();
    for t in &sim.ticks {
        let mut route = t.http_route.clone().expect("a route at every tick");
        // What Sluice writes: the generation, the resourceVersion and the
        // status are the API server's and the Gateway's.
        route.metadata.generation = None;
        route.metadata.resource_version = None;
        route.status = None;
        if out.last().is_some_and(|(_, r)| *r == route) {
            continue;
        }
        let phase = t
            .phase
            .map(|p| p.to_string().to_lowercase())
            .unwrap_or_default();
        let name = format!(
            "{tag}-{:02}-{phase}-w{}-i{}",
            t.tick, t.canary_weight, t.iterations
        );
        out.push((name, route));
    }
    out
}

fn golden_dir(example: &str) -> PathBuf {
    common::repo_root().join("tests/golden").join(example)
}

#[tokio::test(flavor = "multi_thread")]
async fn generated_routes_match_the_golden_files() {
    let bless = std::env::var_os("SLUICE_BLESS").is_some();
    let mut mismatches = Vec::new();
    for (example, canary) in examples() {
        let mut routes = routes_of(&canary, HEALTHY, "healthy").await;
        routes.extend(routes_of(&canary, FAILING, "failing").await);
        let dir = golden_dir(&example);
        let mut expected: BTreeMap<String, String> = BTreeMap::new();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries {
                let p = e.unwrap().path();
                let name = p.file_stem().unwrap().to_string_lossy().to_string();
                expected.insert(name, std::fs::read_to_string(&p).unwrap());
            }
        }
        if bless {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
        }
        let mut seen = Vec::new();
        for (name, route) in routes {
            let yaml = yaml_serde::to_string(&route).unwrap();
            seen.push(name.clone());
            if bless {
                std::fs::write(dir.join(format!("{name}.yaml")), &yaml).unwrap();
            } else if expected.get(&name) != Some(&yaml) {
                mismatches.push(format!(
                    "{example}/{name}.yaml differs or is missing:\n{yaml}"
                ));
            }
        }
        if !bless {
            for name in expected.keys().filter(|n| !seen.contains(n)) {
                mismatches.push(format!("{example}/{name}.yaml is no longer generated"));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{}\n(run SLUICE_BLESS=1 cargo test --test integration golden:: to accept)",
        mismatches.join("\n")
    );
}

/// Every golden file is an HTTPRoute of the Gateway API v1 schema: it
/// deserializes into the typed v1 object and serializes back unchanged
/// (no field outside the schema), and obeys the rules the API server
/// enforces on weights, filters and matches.
#[test]
fn golden_files_are_valid_gateway_api_v1_httproutes() {
    let root = common::repo_root().join("tests/golden");
    let mut count = 0;
    for example in std::fs::read_dir(&root).expect("golden files exist") {
        for file in std::fs::read_dir(example.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let value: serde_json::Value = yaml_serde::from_str(&text).unwrap();
            let route: StandardHttpRoute = serde_path_to_error::deserialize(value.clone())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(
                serde_json::to_value(&route).unwrap(),
                value,
                "{}: fields outside the v1 schema",
                path.display()
            );
            assert_eq!(route.metadata.name.as_deref(), Some("podinfo"));
            assert_eq!(value["apiVersion"], "gateway.networking.k8s.io/v1");
            let rules = route.spec.rules.as_ref().unwrap();
            assert!(!rules.is_empty() && rules.len() <= 16, "{}", path.display());
            for rule in rules {
                let backends = rule.backend_refs.as_ref().unwrap();
                let total: i32 = backends.iter().map(|b| b.weight.unwrap()).sum();
                assert_eq!(total, 100, "{}", path.display());
                for b in backends {
                    assert_eq!(b.kind.as_deref(), Some("Service"));
                    assert_eq!(b.port, Some(9898));
                    assert!(b.name == "podinfo-primary" || b.name == "podinfo-canary");
                }
                let mut kinds: Vec<String> = rule
                    .filters
                    .iter()
                    .flatten()
                    .map(|f| format!("{:?}", f.r#type))
                    .filter(|k| k != "RequestMirror")
                    .collect();
                let n = kinds.len();
                kinds.dedup();
                assert_eq!(
                    n,
                    kinds.len(),
                    "{}: a filter type appears twice in a rule",
                    path.display()
                );
                for m in rule.matches.iter().flatten() {
                    for h in m.headers.iter().flatten() {
                        if format!("{:?}", h.r#type) == "Some(RegularExpression)" {
                            regex::Regex::new(&h.value).unwrap();
                        }
                    }
                }
            }
            count += 1;
        }
    }
    assert!(
        count >= 20,
        "expected golden files for every example, found {count}"
    );
}

// Flagger's own Gateway API router tests (fluxcd/flagger
// pkg/router/gateway_api_test.go), ported: the Canary of their
// `newTestGatewayAPICanary`, the state of each `SetRoutes` call, and their
// expectations about rules, matches, weights and filters, checked on the
// route Sluice renders through its built-in strategy plugins. Where Sluice
// differs by design the test says so.

mod flagger_router {
    use super::common;
    use sluice_api::{Canary, CanaryPhase, CanaryStatus, load};
    use sluice_host::bindings::strategy::{Phase, RolloutState};
    use sluice_host::validate;
    use sluice_rollout::analysis::analysis_spec;
    use sluice_rollout::router::{HttpRoute, HttpRouteRules, render};

    /// `newTestGatewayAPICanary`, as a manifest Flagger accepts.
    const CANARY: &str = r#"
apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: default}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service:
    name: podinfo
    port: 80
    portName: http
    targetPort: 9898
    gatewayRefs: [{name: podinfo}]
    timeout: 10s
    backendTimeout: 5s
  analysis:
    threshold: 10
    stepWeight: 10
    maxWeight: 50
    metrics:
      - {name: request-success-rate, threshold: 99, interval: 1m}
      - {name: request-duration, threshold: 500, interval: 1m}
"#;

    fn canary(analysis_extra: &str) -> Canary {
        let yaml = CANARY.replace(
            "    maxWeight: 50\n",
            &format!("    maxWeight: 50\n{analysis_extra}"),
        );
        load::canary_from_yaml(&yaml).unwrap()
    }

    /// The route for `canary` at `phase` with the given weight and
    /// iterations, through the plugin its settings choose, checked.
    async fn route(
        canary: &Canary,
        status: &CanaryStatus,
        phase: Phase,
        weight: u32,
        iterations: u32,
    ) -> HttpRoute {
        let settings = canary.settings().unwrap();
        let spec = analysis_spec(&settings, status);
        let state = RolloutState {
            phase,
            canary_weight: weight,
            iterations,
            failed_checks: 0,
        };
        let registry = common::registry();
        let plugin = registry.strategy(&settings.strategy.name).unwrap();
        let plan = plugin.route(&spec, state).await.unwrap();
        validate::route_plan(plugin.name(), &spec, &state, &plan).unwrap();
        render(canary, &plan)
    }

    fn rules(r: &HttpRoute) -> &[HttpRouteRules] {
        r.spec.rules.as_deref().unwrap()
    }

    fn weights(rule: &HttpRouteRules) -> Vec<(String, i32)> {
        rule.backend_refs
            .iter()
            .flatten()
            .map(|b| (b.name.clone(), b.weight.unwrap()))
            .collect()
    }

    fn cookie_match(rule: &HttpRouteRules) -> (String, String, String) {
        let h = &rule.matches.as_ref().unwrap()[0].headers.as_ref().unwrap()[0];
        (
            format!("{:?}", h.r#type.as_ref().unwrap()),
            h.name.clone(),
            h.value.clone(),
        )
    }

    /// The Set-Cookie a backend of a rule adds to its responses.
    fn backend_cookie(rule: &HttpRouteRules, backend: &str) -> Option<String> {
        let b = rule
            .backend_refs
            .iter()
            .flatten()
            .find(|b| b.name == backend)?;
        let f = b.filters.as_ref()?.first()?;
        let add = &f.response_header_modifier.as_ref()?.add.as_ref()?[0];
        assert_eq!(add.name, "Set-Cookie");
        Some(add.value.clone())
    }

    fn progressing_status(cookie: Option<&str>) -> CanaryStatus {
        CanaryStatus {
            phase: Some(CanaryPhase::Progressing),
            session_affinity_cookie: cookie.map(String::from),
            ..Default::default()
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn reconcile_and_normal() {
        // TestGatewayAPIRouter_Reconcile: one rule, primary 100 / canary 0,
        // the service's timeouts.
        let c = canary("");
        let at_rest = route(&c, &CanaryStatus::default(), Phase::Initialized, 0, 0).await;
        let r = rules(&at_rest);
        assert_eq!(r.len(), 1);
        assert_eq!(
            weights(&r[0]),
            [
                ("podinfo-primary".into(), 100),
                ("podinfo-canary".into(), 0)
            ]
        );
        let timeouts = r[0].timeouts.as_ref().unwrap();
        assert_eq!(timeouts.request.as_deref(), Some("10s"));
        assert_eq!(timeouts.backend_request.as_deref(), Some("5s"));
        // TestGatewayAPIRouter_Routes "normal": SetRoutes(50, 50).
        let half = route(&c, &progressing_status(None), Phase::Progressing, 50, 0).await;
        assert_eq!(weights(&rules(&half)[0])[0], ("podinfo-primary".into(), 50));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn session_affinity_with_every_cookie_attribute() {
        // TestGatewayAPIRouter_Routes "session affinity".
        let c = canary(
            "    sessionAffinity: {cookieName: flagger-cookie, domain: flagger.app, httpOnly: true, maxAge: 300, partitioned: true, path: /app, sameSite: Strict, secure: true}\n",
        );
        let status = progressing_status(Some("flagger-cookie=abc123"));
        for (primary, canary_weight) in [(90, 10), (50, 50)] {
            let hr = route(&c, &status, Phase::Progressing, canary_weight as u32, 0).await;
            let r = rules(&hr);
            assert_eq!(r.len(), 2);
            let (kind, name, value) = cookie_match(&r[0]);
            assert_eq!(
                (kind.as_str(), name.as_str()),
                ("RegularExpression", "Cookie")
            );
            assert!(value.contains("flagger-cookie"), "{value}");
            assert_eq!(
                weights(&r[0]),
                [
                    ("podinfo-primary".into(), 0),
                    ("podinfo-canary".into(), 100)
                ]
            );
            assert_eq!(
                weights(&r[1]),
                [
                    ("podinfo-primary".into(), primary),
                    ("podinfo-canary".into(), canary_weight)
                ]
            );
            let set = backend_cookie(&r[1], "podinfo-canary").unwrap();
            assert!(set.starts_with("flagger-cookie"), "{set}");
            for attribute in [
                "Domain=flagger.app",
                "HttpOnly",
                "Max-Age=300",
                "Partitioned",
                "Path=/app",
                "SameSite=Strict",
                "Secure",
            ] {
                assert!(set.contains(attribute), "{attribute} in {set}");
            }
        }
        // Promotion: the previous cookie is deleted and nobody reaches the
        // canary. Flagger deletes it with a rule matching the old cookie;
        // Sluice's single rule deletes it on every response (the same
        // traffic), with the cookie's attributes so browsers drop the
        // right one (Flagger sends "…; Max-Age=-1" alone).
        let done = CanaryStatus {
            phase: Some(CanaryPhase::Succeeded),
            previous_session_affinity_cookie: Some("flagger-cookie=abc123".into()),
            ..Default::default()
        };
        let after = route(&c, &done, Phase::Succeeded, 0, 0).await;
        let r = rules(&after);
        assert!(r.iter().all(|rule| {
            weights(rule)
                .iter()
                .all(|(name, w)| name == "podinfo-primary" || *w == 0)
        }));
        let deletion = r
            .iter()
            .flat_map(|rule| rule.filters.iter().flatten())
            .filter_map(|f| f.response_header_modifier.as_ref())
            .flat_map(|m| m.add.iter().flatten())
            .find(|h| h.name == "Set-Cookie")
            .unwrap();
        assert!(
            deletion
                .value
                .starts_with("flagger-cookie=abc123; Max-Age=-1"),
            "{}",
            deletion.value
        );
        assert!(
            r.iter()
                .flat_map(|rule| rule.backend_refs.iter().flatten())
                .all(|b| b.filters.as_ref().is_none_or(|f| f.is_empty())),
            "the weighted rule sends no Set-Cookie any more"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn session_affinity_with_a_primary_cookie() {
        // TestGatewayAPIRouter_getSessionAffinityRouteRules "with primary
        // cookie", interval 15s.
        let c = canary(
            "    interval: 15s\n    sessionAffinity: {cookieName: canary-flagger-cookie, primaryCookieName: primary-flagger-cookie, maxAge: 300}\n",
        );
        let status = progressing_status(Some("canary-flagger-cookie=abc123"));
        let hr = route(&c, &status, Phase::Progressing, 10, 0).await;
        let r = rules(&hr);
        assert_eq!(r.len(), 3);
        // Sluice orders the primary's sticky rule first; each rule matches
        // a different cookie, so the order does not change where a request
        // goes.
        let (canary_rule, primary_rule) =
            if cookie_match(&r[0]).2.contains("primary-flagger-cookie") {
                (&r[1], &r[0])
            } else {
                (&r[0], &r[1])
            };
        assert!(
            cookie_match(canary_rule)
                .2
                .contains("canary-flagger-cookie")
        );
        assert_eq!(
            weights(canary_rule),
            [
                ("podinfo-primary".into(), 0),
                ("podinfo-canary".into(), 100)
            ]
        );
        assert!(
            cookie_match(primary_rule)
                .2
                .contains("primary-flagger-cookie")
        );
        assert_eq!(
            weights(primary_rule),
            [
                ("podinfo-primary".into(), 100),
                ("podinfo-canary".into(), 0)
            ]
        );
        let weighted = &r[2];
        let canary_cookie = backend_cookie(weighted, "podinfo-canary").unwrap();
        assert!(
            canary_cookie.starts_with("canary-flagger-cookie=abc123; Max-Age=300"),
            "{canary_cookie}"
        );
        let primary_cookie = backend_cookie(weighted, "podinfo-primary").unwrap();
        assert!(
            primary_cookie.contains("primary-flagger-cookie"),
            "{primary_cookie}"
        );
        assert!(primary_cookie.contains("Max-Age=15"), "{primary_cookie}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn blue_green_mirror() {
        // TestGatewayAPIRouter_Routes "b/g mirror": while mirrored, one rule
        // with a RequestMirror to the canary; afterwards no filters.
        let c = canary("    mirror: true\n    iterations: 5\n");
        let status = progressing_status(None);
        let mirrored = route(&c, &status, Phase::Progressing, 0, 2).await;
        let r = rules(&mirrored);
        assert_eq!(r.len(), 1);
        assert!(
            r[0].filters
                .iter()
                .flatten()
                .filter_map(|f| f.request_mirror.as_ref())
                .any(|m| m.backend_ref.name == "podinfo-canary")
        );
        let done = route(&c, &CanaryStatus::default(), Phase::Succeeded, 0, 0).await;
        assert_eq!(rules(&done).len(), 1);
        assert!(
            rules(&done)[0]
                .filters
                .as_ref()
                .is_none_or(|f| f.is_empty())
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn filters_are_deterministic_and_cors_is_mapped() {
        // TestGatewayAPIRouter_makeFilters and _makeFilters_CORS.
        let yaml = CANARY.replace(
            "    backendTimeout: 5s\n",
            "    backendTimeout: 5s\n    headers:\n      response: {set: {h1: v1, h2: v2, h3: v3}, add: {h1: v1, h2: v2, h3: v3}}\n      request: {set: {h1: v1, h2: v2, h3: v3}, add: {h1: v1, h2: v2, h3: v3}}\n    corsPolicy:\n      allowOrigin: [\"https://example.com\", \"https://app.example.com\"]\n      allowMethods: [GET, POST, PUT]\n      allowHeaders: [Content-Type, Authorization]\n      exposeHeaders: [X-Custom-Header]\n      allowCredentials: true\n      maxAge: 24h\n",
        );
        let c = load::canary_from_yaml(&yaml).unwrap();
        let first = route(&c, &CanaryStatus::default(), Phase::Initialized, 0, 0).await;
        for _ in 0..10 {
            let again = route(&c, &CanaryStatus::default(), Phase::Initialized, 0, 0).await;
            assert_eq!(again.spec, first.spec);
        }
        let filters = rules(&first)[0].filters.as_ref().unwrap();
        let cors = filters.iter().find_map(|f| f.cors.as_ref()).unwrap();
        assert_eq!(
            cors.allow_origins.as_deref().unwrap(),
            ["https://example.com", "https://app.example.com"]
        );
        assert_eq!(
            cors.allow_methods.as_deref().unwrap(),
            ["GET", "POST", "PUT"]
        );
        assert_eq!(
            cors.allow_headers.as_deref().unwrap(),
            ["Content-Type", "Authorization"]
        );
        assert_eq!(cors.expose_headers.as_deref().unwrap(), ["X-Custom-Header"]);
        assert_eq!(cors.allow_credentials, Some(true));
        assert_eq!(cors.max_age, Some(86400));
        let request = filters
            .iter()
            .find_map(|f| f.request_header_modifier.as_ref())
            .unwrap();
        let names: Vec<&str> = request
            .add
            .iter()
            .flatten()
            .map(|h| h.name.as_str())
            .collect();
        assert_eq!(names, ["h1", "h2", "h3"], "sorted, as Flagger sorts them");
    }
}
