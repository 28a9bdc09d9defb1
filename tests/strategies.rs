//! Every traffic strategy of the guide, end to end: the built-in plugin the
//! Canary selects, the events it produces and the HTTPRoute at each step.

mod common;

use sluice::api::CanaryPhase;
use sluice::router::{HttpRoute, HttpRouteRules};
use sluice::simulate::Simulation;

async fn run(canary: &str, scenario: &str) -> Simulation {
    common::simulate(
        common::canary(&format!("examples/{canary}")),
        common::scenario(&common::read(&format!("examples/scenarios/{scenario}"))),
    )
    .await
}

fn rules(route: &HttpRoute) -> &Vec<HttpRouteRules> {
    route.spec.rules.as_ref().unwrap()
}

/// (backend name, weight) pairs of a rule.
fn backends(rule: &HttpRouteRules) -> Vec<(String, i32)> {
    rule.backend_refs
        .iter()
        .flatten()
        .map(|b| (b.name.clone(), b.weight.unwrap_or(1)))
        .collect()
}

fn header_values(rule: &HttpRouteRules) -> Vec<(String, String)> {
    rule.matches
        .iter()
        .flatten()
        .flat_map(|m| {
            m.headers
                .iter()
                .flatten()
                .map(|h| (h.name.clone(), h.value.clone()))
        })
        .collect()
}

fn route_at(sim: &Simulation, phase: CanaryPhase, iterations: u32) -> &HttpRoute {
    sim.ticks
        .iter()
        .find(|t| t.phase == Some(phase) && t.iterations == iterations)
        .and_then(|t| t.http_route.as_ref())
        .unwrap_or_else(|| panic!("no tick in {phase} with {iterations} iterations"))
}

fn assert_contains_in_order(messages: &[String], expected: &[String]) {
    let mut rest = messages.iter();
    for want in expected {
        assert!(
            rest.any(|m| m == want),
            "missing {want:?} in:\n{}",
            messages.join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ab_testing_sends_matching_users_to_the_canary_for_ten_iterations() {
    let sim = run("podinfo-ab-canary.yaml", "ab-testing-healthy.yaml").await;
    let mut expected: Vec<String> = (1..=10)
        .map(|i| format!("Advance podinfo.test canary iteration {i}/10"))
        .collect();
    expected.push("Copying podinfo.test template spec to podinfo-primary.test".into());
    expected.push("Promotion completed! Scaling down podinfo.test".into());
    assert_contains_in_order(&sim.messages(), &expected);
    assert_eq!(
        sim.final_tick().unwrap().phase,
        Some(CanaryPhase::Succeeded)
    );

    let during = route_at(&sim, CanaryPhase::Progressing, 3);
    let r = rules(during);
    assert_eq!(r.len(), 2);
    assert_eq!(
        backends(&r[0]),
        [
            ("podinfo-primary".into(), 0),
            ("podinfo-canary".into(), 100)
        ]
    );
    let headers = header_values(&r[0]);
    assert!(
        headers.contains(&("user-agent".into(), ".*Firefox.*".into())),
        "{headers:?}"
    );
    assert!(
        headers.contains(&("cookie".into(), "^(.*?;)?(type=insider)(;.*)?$".into())),
        "{headers:?}"
    );
    assert_eq!(
        r[0].matches.as_ref().unwrap().len(),
        2,
        "one match per analysis.match entry"
    );
    assert_eq!(backends(&r[1]), [("podinfo-primary".into(), 100)]);
    assert!(r[1].matches.as_ref().unwrap()[0].headers.is_none());

    let after = sim.final_tick().unwrap().http_route.as_ref().unwrap();
    assert_eq!(
        backends(&rules(after)[0]),
        [
            ("podinfo-primary".into(), 100),
            ("podinfo-canary".into(), 0)
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ab_testing_rolls_back_at_its_threshold() {
    let sim = run("podinfo-ab-canary.yaml", "ab-testing-failing.yaml").await;
    let messages = sim.messages();
    assert!(
        messages.contains(&"Halt podinfo.test advancement error rate 12.50% > 1%".to_string()),
        "{messages:?}"
    );
    assert!(
        messages
            .contains(&"Rolling back podinfo.test failed checks threshold reached 2".to_string())
    );
    let last = sim.final_tick().unwrap();
    assert_eq!(last.phase, Some(CanaryPhase::Failed));
    assert_eq!(
        common::canary_exposure(last.http_route.as_ref().unwrap()),
        (0, false)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mirroring_copies_requests_while_users_get_the_primary() {
    let sim = run("podinfo-canary-mirror.yaml", "mirroring-healthy.yaml").await;
    let messages = sim.messages();
    assert!(
        messages.contains(&"Advance podinfo.test canary iteration 10/10".to_string()),
        "{messages:?}"
    );
    assert!(
        messages.contains(&"Routing all traffic to canary".to_string()),
        "{messages:?}"
    );
    assert_eq!(
        sim.final_tick().unwrap().phase,
        Some(CanaryPhase::Succeeded)
    );

    for i in 1..=10 {
        let route = route_at(&sim, CanaryPhase::Progressing, i);
        let r = rules(route);
        assert_eq!(r.len(), 1);
        assert_eq!(
            backends(&r[0]),
            [
                ("podinfo-primary".into(), 100),
                ("podinfo-canary".into(), 0)
            ]
        );
        let mirror = r[0]
            .filters
            .iter()
            .flatten()
            .find_map(|f| f.request_mirror.as_ref())
            .expect("a RequestMirror filter");
        assert_eq!(mirror.backend_ref.name, "podinfo-canary");
        assert_eq!(mirror.backend_ref.port, Some(9898));
    }
    let switched = route_at(&sim, CanaryPhase::Progressing, 11);
    assert_eq!(common::canary_exposure(switched), (100, false));
    // Before the first iteration and after the rollout: no mirror.
    assert_eq!(
        common::canary_exposure(sim.final_tick().unwrap().http_route.as_ref().unwrap()),
        (0, false)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mirror_weight_sets_the_mirrored_percentage() {
    let yaml = common::read("examples/podinfo-canary-mirror.yaml").replace(
        "    mirror: true\n",
        "    mirror: true\n    mirrorWeight: 25\n",
    );
    let canary = sluice::api::load::canary_from_yaml(&yaml).unwrap();
    let sim = common::simulate(
        canary,
        common::scenario(&common::read("examples/scenarios/mirroring-healthy.yaml")),
    )
    .await;
    let route = route_at(&sim, CanaryPhase::Progressing, 2);
    let mirror = rules(route)[0]
        .filters
        .iter()
        .flatten()
        .find_map(|f| f.request_mirror.as_ref())
        .unwrap();
    assert_eq!(mirror.percent, Some(25));
}

#[tokio::test(flavor = "multi_thread")]
async fn mirroring_failure_never_exposes_users_to_the_canary() {
    let sim = run("podinfo-canary-mirror.yaml", "mirroring-failing.yaml").await;
    let messages = sim.messages();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("Halt podinfo.test advancement request duration 1.5s > 500ms")),
        "{messages:?}"
    );
    assert_eq!(sim.final_tick().unwrap().phase, Some(CanaryPhase::Failed));
    for t in &sim.ticks {
        assert_eq!(
            common::canary_exposure(t.http_route.as_ref().unwrap()).0,
            0,
            "tick {}",
            t.tick
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn session_affinity_keeps_canary_users_on_the_canary() {
    let sim = run(
        "podinfo-canary-session-affinity.yaml",
        "session-affinity-healthy.yaml",
    )
    .await;
    assert_eq!(
        sim.final_tick().unwrap().phase,
        Some(CanaryPhase::Succeeded)
    );
    let during = sim.ticks.iter().find(|t| t.canary_weight == 20).unwrap();
    let r = rules(during.http_route.as_ref().unwrap());
    assert_eq!(r.len(), 2, "sticky rule then weighted rule");
    // Rule 0: requests carrying the sticky cookie go to the canary.
    let (name, value) = &header_values(&r[0])[0];
    assert_eq!(name, "Cookie");
    assert!(value.contains("flagger-cookie"), "{value}");
    assert_eq!(
        backends(&r[0]),
        [
            ("podinfo-primary".into(), 0),
            ("podinfo-canary".into(), 100)
        ]
    );
    // Rule 1: weighted; the canary backend sets the cookie.
    assert_eq!(
        backends(&r[1]),
        [
            ("podinfo-primary".into(), 80),
            ("podinfo-canary".into(), 20)
        ]
    );
    let canary_ref = &r[1].backend_refs.as_ref().unwrap()[1];
    let set_cookie = &canary_ref.filters.as_ref().unwrap()[0]
        .response_header_modifier
        .as_ref()
        .unwrap()
        .add
        .as_ref()
        .unwrap()[0];
    assert_eq!(set_cookie.name, "Set-Cookie");
    assert!(
        set_cookie.value.starts_with("flagger-cookie="),
        "{}",
        set_cookie.value
    );
    assert!(
        set_cookie.value.ends_with("; Max-Age=21600"),
        "{}",
        set_cookie.value
    );
    let cookie_value = set_cookie
        .value
        .trim_start_matches("flagger-cookie=")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert!(
        value.contains(&cookie_value),
        "the sticky rule matches the cookie the canary sets"
    );

    // After promotion no request is sent to the canary, and the old cookie is deleted.
    let after = sim.final_tick().unwrap().http_route.as_ref().unwrap();
    assert_eq!(common::canary_exposure(after), (0, false));
    let expiry = rules(after)
        .iter()
        .flat_map(|r| r.filters.iter().flatten())
        .filter_map(|f| f.response_header_modifier.as_ref())
        .flat_map(|m| m.add.iter().flatten())
        .find(|h| h.name == "Set-Cookie")
        .expect("a rule deleting the sticky cookie");
    assert_eq!(
        expiry.value,
        format!("flagger-cookie={cookie_value}; Max-Age=-1")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn session_affinity_rollback_sends_sticky_users_back() {
    let sim = run(
        "podinfo-canary-session-affinity.yaml",
        "session-affinity-failing.yaml",
    )
    .await;
    let last = sim.final_tick().unwrap();
    assert_eq!(last.phase, Some(CanaryPhase::Failed));
    assert_eq!(
        common::canary_exposure(last.http_route.as_ref().unwrap()),
        (0, false)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn blue_green_switches_after_its_iterations() {
    let sim = run("podinfo-blue-green.yaml", "blue-green-healthy.yaml").await;
    let mut expected: Vec<String> = (1..=10)
        .map(|i| format!("Advance podinfo.test canary iteration {i}/10"))
        .collect();
    expected.push("Routing all traffic to canary".into());
    expected.push("Copying podinfo.test template spec to podinfo-primary.test".into());
    expected.push("Promotion completed! Scaling down podinfo.test".into());
    assert_contains_in_order(&sim.messages(), &expected);
    for i in 1..=10 {
        assert_eq!(
            common::canary_exposure(route_at(&sim, CanaryPhase::Progressing, i)),
            (0, false)
        );
    }
    assert_eq!(
        common::canary_exposure(route_at(&sim, CanaryPhase::Progressing, 11)),
        (100, false)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn blue_green_failure_never_switches() {
    let sim = run("podinfo-blue-green.yaml", "blue-green-failing.yaml").await;
    assert_eq!(sim.final_tick().unwrap().phase, Some(CanaryPhase::Failed));
    assert!(
        !sim.messages()
            .contains(&"Routing all traffic to canary".to_string())
    );
    assert!(
        sim.ticks
            .iter()
            .all(|t| common::canary_exposure(t.http_route.as_ref().unwrap()).0 == 0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_strategy_can_be_named_explicitly() {
    // The mirror example run as plain blue/green by name.
    let yaml = common::read("examples/podinfo-canary-mirror.yaml").replace(
        "    mirror: true\n",
        "    mirror: true\n    strategy: blue-green\n",
    );
    let canary = sluice::api::load::canary_from_yaml(&yaml).unwrap();
    assert_eq!(canary.settings().unwrap().strategy.name, "blue-green");
    let sim = common::simulate(
        canary,
        common::scenario(&common::read("examples/scenarios/mirroring-healthy.yaml")),
    )
    .await;
    let route = route_at(&sim, CanaryPhase::Progressing, 2);
    assert!(
        rules(route)[0]
            .filters
            .iter()
            .flatten()
            .all(|f| f.request_mirror.is_none())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ab_testing_matches_exact_and_prefix_headers_and_query_params() {
    let yaml = common::read("examples/podinfo-ab-canary.yaml").replace(
        "    match:\n      - headers:\n          user-agent:\n            regex: \".*Firefox.*\"\n",
        "    match:\n      - headers:\n          x-canary:\n            exact: insider\n          x-region:\n            prefix: eu-\n        queryParams:\n          beta:\n            exact: \"true\"\n",
    );
    let canary = sluice::api::load::canary_from_yaml(&yaml).unwrap();
    let sim = common::simulate(
        canary,
        common::scenario(&common::read("examples/scenarios/ab-testing-healthy.yaml")),
    )
    .await;
    let route = route_at(&sim, CanaryPhase::Progressing, 2);
    let first = &rules(route)[0].matches.as_ref().unwrap()[0];
    let headers: Vec<(String, String, String)> = first
        .headers
        .iter()
        .flatten()
        .map(|h| {
            (
                h.name.clone(),
                format!("{:?}", h.r#type.as_ref().unwrap()),
                h.value.clone(),
            )
        })
        .collect();
    assert!(
        headers.contains(&("x-canary".into(), "Exact".into(), "insider".into())),
        "{headers:?}"
    );
    assert!(
        headers.contains(&(
            "x-region".into(),
            "RegularExpression".into(),
            "^eu\\-.*".into()
        )),
        "{headers:?}"
    );
    let query = &first.query_params.as_ref().unwrap()[0];
    assert_eq!(
        (query.name.as_str(), query.value.as_str()),
        ("beta", "true")
    );
    assert_eq!(
        backends(&rules(route)[0]),
        [
            ("podinfo-primary".into(), 0),
            ("podinfo-canary".into(), 100)
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_and_timeouts_apply_to_every_rule() {
    let yaml = common::read("examples/podinfo-ab-canary.yaml").replace(
        "    port: 9898\n",
        "    port: 9898\n    timeout: 15s\n    retries:\n      attempts: 3\n      perTryTimeout: 5s\n      retryOn: \"gateway-error,connect-failure,409\"\n",
    );
    let canary = sluice::api::load::canary_from_yaml(&yaml).unwrap();
    let sim = common::simulate(
        canary,
        common::scenario(&common::read("examples/scenarios/ab-testing-healthy.yaml")),
    )
    .await;
    let route = route_at(&sim, CanaryPhase::Progressing, 2);
    let r = rules(route);
    assert_eq!(r.len(), 2);
    for rule in r {
        let retry = rule.retry.as_ref().expect("a retry policy on every rule");
        assert_eq!(retry.attempts, Some(3));
        assert_eq!(retry.codes.as_deref(), Some(&[409, 502, 503, 504][..]));
        let timeouts = rule.timeouts.as_ref().unwrap();
        assert_eq!(timeouts.request.as_deref(), Some("15s"));
        assert_eq!(timeouts.backend_request.as_deref(), Some("5s"));
    }
    let json = serde_json::to_value(route).unwrap();
    assert_eq!(
        json["spec"]["rules"][0]["retry"],
        serde_json::json!({"attempts": 3, "codes": [409, 502, 503, 504]})
    );
}
