//! Every traffic strategy of the guide, end to end: the built-in plugin the
//! Canary selects, the events it produces and the HTTPRoute at each step.

use crate::common;

use sluice::simulate::Simulation;
use sluice_api::CanaryPhase;
use sluice_rollout::router::{HttpRoute, HttpRouteRules};

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
    let canary = sluice_api::load::canary_from_yaml(&yaml).unwrap();
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
        set_cookie.value.ends_with("; Max-Age=21600; Path=/"),
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
        format!("flagger-cookie={cookie_value}; Max-Age=-1; Path=/")
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
    let canary = sluice_api::load::canary_from_yaml(&yaml).unwrap();
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
    let canary = sluice_api::load::canary_from_yaml(&yaml).unwrap();
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
    let canary = sluice_api::load::canary_from_yaml(&yaml).unwrap();
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

/// The A/B example with `match` replaced by `matches` (YAML, indented
/// under `match:`).
fn ab_canary_with_matches(matches: &str) -> sluice_api::Canary {
    let yaml = common::read("examples/podinfo-ab-canary.yaml").replace(
        "    match:\n      - headers:\n          user-agent:\n            regex: \".*Firefox.*\"\n      - headers:\n          cookie:\n            regex: \"^(.*?;)?(type=insider)(;.*)?$\"\n",
        &format!("    match:\n{matches}"),
    );
    sluice_api::load::canary_from_yaml(&yaml).unwrap()
}

/// (path type, path value, headers, query params, method) of a rendered
/// match, in a form easy to compare.
fn describe(m: &gateway_api::apis::experimental::httproutes::HttpRouteRulesMatches) -> String {
    let path = m.path.as_ref().unwrap();
    let mut out = format!(
        "path {:?} {}",
        path.r#type.as_ref().unwrap(),
        path.value.as_deref().unwrap()
    );
    for h in m.headers.iter().flatten() {
        out += &format!(
            "; header {} {:?} {}",
            h.name,
            h.r#type.as_ref().unwrap(),
            h.value
        );
    }
    for q in m.query_params.iter().flatten() {
        out += &format!(
            "; query {} {:?} {}",
            q.name,
            q.r#type.as_ref().unwrap(),
            q.value
        );
    }
    if let Some(method) = &m.method {
        out += &format!("; method {method:?}");
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn every_flagger_match_kind_becomes_the_equivalent_gateway_api_match() {
    // No condition is dropped: each becomes the same condition on the
    // route, and requests that match none of them stay on the primary.
    let canary = ab_canary_with_matches(concat!(
        "      - uri: {regex: \"^/beta/.*\"}\n",
        "      - uri: {exact: /login}\n",
        "      - uri: {suffix: .json}\n",
        "      - uri: {prefix: /api}\n",
        "        method: {exact: POST}\n",
        "      - headers:\n",
        "          x-canary: {exact: insider}\n",
        "          user-agent: {prefix: Mozilla}\n",
        "          x-tier: {suffix: -beta}\n",
        "          cookie: {regex: \"^(.*?;)?(type=insider)(;.*)?$\"}\n",
        "      - queryParams:\n",
        "          beta: {exact: \"1\"}\n",
        "          v: {regex: \"^2\\\\.\"}\n",
        "          p: {prefix: x}\n",
        "          s: {suffix: y}\n",
    ));
    let sim = common::simulate(
        canary,
        common::scenario(&common::read("examples/scenarios/ab-testing-healthy.yaml")),
    )
    .await;
    let route = route_at(&sim, CanaryPhase::Progressing, 2);
    let r = rules(route);
    assert_eq!(r.len(), 2);
    let matches: Vec<String> = r[0].matches.iter().flatten().map(describe).collect();
    assert_eq!(
        matches,
        [
            "path RegularExpression ^/beta/.*",
            "path Exact /login",
            "path RegularExpression .*\\.json$",
            "path PathPrefix /api; method Post",
            "path PathPrefix /; header cookie RegularExpression ^(.*?;)?(type=insider)(;.*)?$; header user-agent RegularExpression ^Mozilla.*; header x-canary Exact insider; header x-tier RegularExpression .*\\-beta$",
            "path PathPrefix /; query beta Exact 1; query p RegularExpression ^x.*; query s RegularExpression .*y$; query v RegularExpression ^2\\.",
        ]
    );
    assert_eq!(
        backends(&r[0]),
        [
            ("podinfo-primary".into(), 0),
            ("podinfo-canary".into(), 100)
        ]
    );
    assert_eq!(
        describe(&r[1].matches.as_ref().unwrap()[0]),
        "path PathPrefix /"
    );
    assert_eq!(backends(&r[1]), [("podinfo-primary".into(), 100)]);
    assert_eq!(
        sim.final_tick().unwrap().phase,
        Some(CanaryPhase::Succeeded)
    );
}

#[test]
fn matches_the_gateway_api_cannot_express_are_refused_naming_the_field() {
    for (matches, field, why) in [
        (
            "      - uri: {prefix: /api}\n        sourceLabels: {app: web}\n",
            "spec.analysis.match[0].sourceLabels",
            "not supported by the Gateway API router",
        ),
        (
            "      - headers: {x-a: {exact: b}}\n        withoutHeaders: {x-b: {exact: c}}\n",
            "spec.analysis.match[0].withoutHeaders",
            "no negative header condition",
        ),
        (
            "      - uri: {prefix: /a}\n        ignoreUriCase: true\n",
            "spec.analysis.match[0].ignoreUriCase",
            "case-sensitive",
        ),
        (
            "      - method: {regex: \"GET|POST\"}\n",
            "spec.analysis.match[0].method",
            "use method.exact",
        ),
        (
            "      - method: {exact: FETCH}\n",
            "spec.analysis.match[0].method.exact",
            "not a method the Gateway API matches",
        ),
        (
            "      - uri: {exact: login}\n",
            "spec.analysis.match[0].uri.exact",
            "must start with '/'",
        ),
        (
            "      - headers: {x-a: {regex: \"(\"}}\n",
            "spec.analysis.match[0].headers.x-a.regex",
            "invalid regex",
        ),
        (
            "      - uri: {regex: \"\"}\n",
            "spec.analysis.match[0].uri.regex",
            "must not be empty",
        ),
        (
            "      - headers: {x-a: {prefix: \"\"}}\n",
            "spec.analysis.match[0].headers.x-a.prefix",
            "must not be empty",
        ),
    ] {
        let canary = ab_canary_with_matches(matches);
        let errors = canary.settings().unwrap_err().to_string();
        assert!(errors.contains(field), "{field}: {errors}");
        assert!(errors.contains(why), "{field}: {errors}");
    }
    // Fields that name or label a match without matching anything are
    // accepted, as Flagger accepts them.
    let named = ab_canary_with_matches(
        "      - headers: {x-canary: {exact: insider}}\n        name: insiders\n        statPrefix: beta\n",
    );
    assert!(named.settings().is_ok());
    // A field Istio does not have at all is a parse error that names it.
    let yaml = common::read("examples/podinfo-ab-canary.yaml").replace(
        "          user-agent:\n            regex: \".*Firefox.*\"\n",
        "          user-agent:\n            regex: \".*Firefox.*\"\n        sourceIp: 10.0.0.1\n",
    );
    let e = sluice_api::load::canary_from_yaml(&yaml).unwrap_err();
    assert!(format!("{e:#}").contains("sourceIp"), "{e:#}");
}

#[test]
fn an_ab_path_cannot_silently_replace_the_routes_own_path() {
    let yaml = common::read("examples/podinfo-ab-canary.yaml")
        .replace(
            "    # Gateway API HTTPRoute host names\n",
            "    match:\n      - uri: {prefix: /app}\n    # Gateway API HTTPRoute host names\n",
        )
        .replace(
            "    match:\n      - headers:\n          user-agent:\n",
            "    match:\n      - uri: {prefix: /beta}\n      - headers:\n          user-agent:\n",
        );
    let canary = sluice_api::load::canary_from_yaml(&yaml).unwrap();
    let errors = canary.settings().unwrap_err().to_string();
    assert!(
        errors.contains("spec.analysis.match[0].uri: conflicts with spec.service.match[0].uri"),
        "{errors}"
    );
}

#[test]
fn the_strategy_is_chosen_as_flagger_chooses_it() {
    let seed = common::read("examples/podinfo-canary.yaml");
    let with = |extra: &str| {
        let yaml = seed.replace(
            "    stepWeight: 10\n",
            &format!("    stepWeight: 10\n{extra}"),
        );
        let canary = sluice_api::load::canary_from_yaml(&yaml).unwrap();
        canary.settings().unwrap().strategy.name
    };
    let matched = "    match:\n      - headers: {x-canary: {exact: insider}}\n";
    assert_eq!(with(""), "weighted");
    assert_eq!(
        with("    mirror: true\n"),
        "weighted",
        "a mirror step, then weights"
    );
    assert_eq!(
        with("    iterations: 5\n"),
        "blue-green",
        "iterations without match, even with stepWeight"
    );
    assert_eq!(with("    iterations: 5\n    mirror: true\n"), "mirroring");
    assert_eq!(with(&format!("    iterations: 5\n{matched}")), "ab-testing");
    assert_eq!(
        with(matched),
        "weighted",
        "match without iterations: a subset of users"
    );
    assert_eq!(
        with("    sessionAffinity: {cookieName: flagger-cookie}\n"),
        "session-affinity"
    );
    assert_eq!(
        with("    iterations: 5\n    strategy: weighted\n"),
        "weighted",
        "explicit wins"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mirrored_weighted_canary_mirrors_for_one_step_then_shifts_weight() {
    let yaml = common::read("examples/podinfo-canary.yaml").replace(
        "    stepWeight: 10\n",
        "    stepWeight: 10\n    mirror: true\n    mirrorWeight: 50\n",
    );
    let canary = sluice_api::load::canary_from_yaml(&yaml).unwrap();
    let sim = common::simulate(
        canary,
        common::scenario(&common::read("examples/scenarios/healthy.yaml")),
    )
    .await;
    assert_contains_in_order(
        &sim.messages(),
        &[
            "Starting canary analysis for podinfo.test".into(),
            "Advance podinfo.test canary weight 0".into(),
            "Advance podinfo.test canary weight 10".into(),
            "Advance podinfo.test canary weight 50".into(),
            "Promotion completed! Scaling down podinfo.test".into(),
        ],
    );
    // The mirror step: all users on the primary, half the requests copied.
    let mirrored = route_at(&sim, CanaryPhase::Progressing, 1);
    let rule = &rules(mirrored)[0];
    assert_eq!(
        backends(rule),
        [
            ("podinfo-primary".into(), 100),
            ("podinfo-canary".into(), 0)
        ]
    );
    let mirror = rule
        .filters
        .iter()
        .flatten()
        .find_map(|f| f.request_mirror.as_ref())
        .expect("a mirror filter");
    assert_eq!(mirror.backend_ref.name, "podinfo-canary");
    // Then weights move and the mirror stops.
    let shifted = sim
        .ticks
        .iter()
        .find(|t| t.canary_weight == 10)
        .and_then(|t| t.http_route.as_ref())
        .unwrap();
    assert!(
        rules(shifted)[0]
            .filters
            .iter()
            .flatten()
            .all(|f| f.request_mirror.is_none())
    );
    assert_eq!(
        sim.final_tick().unwrap().phase,
        Some(CanaryPhase::Succeeded)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_weighted_canary_with_match_shifts_only_the_matching_requests() {
    // Flagger's canary release for a subset of users: `match` without
    // `iterations` splits the matching requests by weight; everyone else
    // stays on the primary.
    let yaml = common::read("examples/podinfo-canary.yaml").replace(
        "    stepWeight: 10\n",
        "    stepWeight: 10\n    match:\n      - headers: {x-canary: {exact: insider}}\n",
    );
    let canary = sluice_api::load::canary_from_yaml(&yaml).unwrap();
    assert_eq!(canary.settings().unwrap().strategy.name, "weighted");
    let sim = common::simulate(
        canary,
        common::scenario(&common::read("examples/scenarios/healthy.yaml")),
    )
    .await;
    let at_20 = sim
        .ticks
        .iter()
        .find(|t| t.canary_weight == 20)
        .and_then(|t| t.http_route.as_ref())
        .unwrap();
    let r = rules(at_20);
    assert_eq!(r.len(), 2);
    assert_eq!(
        describe(&r[0].matches.as_ref().unwrap()[0]),
        "path PathPrefix /; header x-canary Exact insider"
    );
    assert_eq!(
        backends(&r[0]),
        [
            ("podinfo-primary".into(), 80),
            ("podinfo-canary".into(), 20)
        ]
    );
    assert_eq!(
        backends(&r[1]),
        [
            ("podinfo-primary".into(), 100),
            ("podinfo-canary".into(), 0)
        ]
    );
    assert_eq!(
        sim.final_tick().unwrap().phase,
        Some(CanaryPhase::Succeeded)
    );
}

/// Every Set-Cookie value a route adds, in rule and backend filters.
fn set_cookies(route: &HttpRoute) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(o) => {
                if o.get("name").and_then(|n| n.as_str()) == Some("Set-Cookie")
                    && let Some(value) = o.get("value").and_then(|x| x.as_str())
                {
                    out.push(value.to_string());
                }
                o.values().for_each(|x| walk(x, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&serde_json::to_value(&route.spec).unwrap(), &mut out);
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn session_cookies_carry_the_canarys_attributes_and_the_primary_one_lives_an_interval() {
    let yaml = common::read("examples/podinfo-canary-session-affinity.yaml").replace(
        "      maxAge: 21600\n",
        "      maxAge: 21600\n      primaryCookieName: primary-cookie\n      domain: example.com\n      httpOnly: true\n      secure: true\n      partitioned: true\n      sameSite: Lax\n      path: /app\n",
    );
    let canary = sluice_api::load::canary_from_yaml(&yaml).unwrap();
    let sim = common::simulate(
        canary,
        common::scenario(&common::read(
            "examples/scenarios/session-affinity-healthy.yaml",
        )),
    )
    .await;
    let during = sim.ticks.iter().find(|t| t.canary_weight == 20).unwrap();
    let cookies = set_cookies(during.http_route.as_ref().unwrap());
    let attributes = "; Domain=example.com; HttpOnly; Partitioned; Path=/app; SameSite=Lax; Secure";
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    assert!(
        cookies.iter().any(|c| c.starts_with("primary-cookie=")
            && c.ends_with(&format!("; Max-Age=60{attributes}"))),
        "the primary cookie lives one analysis interval: {cookies:?}"
    );
    assert!(
        cookies.iter().any(|c| c.starts_with("flagger-cookie=")
            && c.ends_with(&format!("; Max-Age=21600{attributes}"))),
        "{cookies:?}"
    );
    // After promotion both cookies are deleted, with the same attributes.
    let after = set_cookies(sim.final_tick().unwrap().http_route.as_ref().unwrap());
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(
        after
            .iter()
            .all(|c| c.ends_with(&format!("; Max-Age=-1{attributes}"))),
        "{after:?}"
    );
}

#[test]
fn cookie_attributes_that_could_inject_into_set_cookie_are_refused() {
    for (extra, field) in [
        (
            "      domain: \"a.com; Secure\"\n",
            "spec.analysis.sessionAffinity.domain",
        ),
        ("      path: app\n", "spec.analysis.sessionAffinity.path"),
        (
            "      sameSite: Sometimes\n",
            "spec.analysis.sessionAffinity.sameSite",
        ),
        (
            "      primaryCookieName: \"a b\"\n",
            "spec.analysis.sessionAffinity.primaryCookieName",
        ),
    ] {
        let yaml = common::read("examples/podinfo-canary-session-affinity.yaml").replace(
            "      maxAge: 21600\n",
            &format!("      maxAge: 21600\n{extra}"),
        );
        let canary = sluice_api::load::canary_from_yaml(&yaml).unwrap();
        let errors = canary.settings().unwrap_err().to_string();
        assert!(errors.contains(field), "{field}: {errors}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn backend_timeout_and_static_mirrors_are_rendered_as_flagger_renders_them() {
    let yaml = common::read("examples/podinfo-canary.yaml").replace(
        "    targetPort: 9898\n",
        "    targetPort: 9898\n    timeout: 30s\n    backendTimeout: 5s\n    mirror:\n      - backendRef: {name: shadow, port: 8080}\n      - backendRef: {name: audit, namespace: audit, port: 9090}\n",
    );
    let canary = sluice_api::load::canary_from_yaml(&yaml).unwrap();
    let sim = common::simulate(
        canary,
        common::scenario(&common::read("examples/scenarios/healthy.yaml")),
    )
    .await;
    let route = sim
        .ticks
        .iter()
        .find(|t| t.canary_weight == 20)
        .and_then(|t| t.http_route.as_ref())
        .unwrap();
    for rule in rules(route) {
        let timeouts = rule.timeouts.as_ref().unwrap();
        assert_eq!(timeouts.request.as_deref(), Some("30s"));
        assert_eq!(timeouts.backend_request.as_deref(), Some("5s"));
        let mirrors: Vec<(String, Option<String>, Option<i32>)> = rule
            .filters
            .iter()
            .flatten()
            .filter_map(|f| f.request_mirror.as_ref())
            .map(|m| {
                (
                    m.backend_ref.name.clone(),
                    m.backend_ref.namespace.clone(),
                    m.backend_ref.port,
                )
            })
            .collect();
        assert_eq!(
            mirrors,
            [
                ("shadow".to_string(), None, Some(8080)),
                ("audit".to_string(), Some("audit".to_string()), Some(9090)),
            ]
        );
    }
    // A mirror without a port, and two backend timeouts, are refused.
    let bad = common::read("examples/podinfo-canary.yaml").replace(
        "    targetPort: 9898\n",
        "    targetPort: 9898\n    backendTimeout: 5s\n    retries: {attempts: 2, perTryTimeout: 2s}\n    mirror:\n      - backendRef: {name: shadow}\n",
    );
    let errors = sluice_api::load::canary_from_yaml(&bad)
        .unwrap()
        .settings()
        .unwrap_err()
        .to_string();
    assert!(
        errors.contains("spec.service.mirror[0].backendRef.port: required for a Service"),
        "{errors}"
    );
    assert!(
        errors.contains(
            "spec.service.backendTimeout: conflicts with spec.service.retries.perTryTimeout"
        ),
        "{errors}"
    );
}

/// The seed Canary with a progress deadline of ten intervals.
fn canary_with_deadline() -> sluice_api::Canary {
    let yaml = common::read("examples/podinfo-canary.yaml").replace(
        "progressDeadlineSeconds: 60",
        "progressDeadlineSeconds: 600",
    );
    sluice_api::load::canary_from_yaml(&yaml).unwrap()
}

const GATEWAY_SCENARIO: &str = "ticks: 40\nmetrics:\n  error-rate: [0.1]\n  latency: [0.1]\nchanges:\n  - tick: 2\n    image: podinfod=podinfo:2\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_route_the_gateway_refuses_halts_the_analysis_until_it_is_accepted() {
    let scenario = format!(
        "{GATEWAY_SCENARIO}  - tick: 6\n    routeAccepted: false\n  - tick: 9\n    routeAccepted: true\n"
    );
    let sim = common::simulate(canary_with_deadline(), common::scenario(&scenario)).await;
    let refused = "Halt podinfo.test advancement HTTPRoute podinfo.test not accepted: Gateway istio-ingress/gateway reports Accepted=False NotAllowedByListeners: no listener of the Gateway allows routes from namespace test";
    let halted: Vec<u64> = sim
        .ticks
        .iter()
        .filter(|t| t.events.iter().any(|e| e.message == refused))
        .map(|t| t.tick)
        .collect();
    assert_eq!(halted, [6, 7, 8], "{:?}", sim.messages());
    // No step while refused.
    let weight_at = |tick: u64| {
        sim.ticks
            .iter()
            .find(|t| t.tick == tick)
            .unwrap()
            .canary_weight
    };
    assert_eq!(weight_at(6), weight_at(5));
    assert_eq!(weight_at(8), weight_at(5));
    assert!(weight_at(9) > weight_at(8));
    assert_eq!(
        sim.final_tick().unwrap().phase,
        Some(CanaryPhase::Succeeded)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_route_never_accepted_within_the_progress_deadline_rolls_back() {
    let scenario = format!("{GATEWAY_SCENARIO}  - tick: 5\n    routeAccepted: false\n");
    let sim = common::simulate(canary_with_deadline(), common::scenario(&scenario)).await;
    assert!(
        sim.messages().iter().any(|m| m.starts_with(
            "Rolling back podinfo.test progress deadline exceeded HTTPRoute podinfo.test not accepted: Gateway istio-ingress/gateway reports Accepted=False"
        )),
        "{:?}",
        sim.messages()
    );
    let last = sim.final_tick().unwrap();
    assert_eq!(last.phase, Some(CanaryPhase::Failed));
    assert_eq!(
        common::canary_exposure(last.http_route.as_ref().unwrap()),
        (0, false)
    );
}

#[test]
fn gateway_refs_are_required() {
    let yaml = common::read("examples/podinfo-canary.yaml").replace(
        "    gatewayRefs:\n      - name: gateway\n        namespace: istio-ingress\n",
        "",
    );
    let errors = sluice_api::load::canary_from_yaml(&yaml)
        .unwrap()
        .settings()
        .unwrap_err()
        .to_string();
    assert!(
        errors.contains("spec.service.gatewayRefs: required for the Gateway API router"),
        "{errors}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn service_match_keeps_every_condition_on_every_rule() {
    let yaml = common::read("examples/podinfo-canary.yaml").replace(
        "    # Gateway API HTTPRoute host names\n",
        "    match:\n      - uri: {regex: \"^/api/v[0-9]+/.*\"}\n        headers: {x-tenant: {suffix: -eu}}\n    # Gateway API HTTPRoute host names\n",
    );
    let canary = sluice_api::load::canary_from_yaml(&yaml).unwrap();
    let sim = common::simulate(
        canary,
        common::scenario(&common::read("examples/scenarios/healthy.yaml")),
    )
    .await;
    for t in &sim.ticks {
        for rule in rules(t.http_route.as_ref().unwrap()) {
            let described: Vec<String> = rule.matches.iter().flatten().map(describe).collect();
            assert_eq!(
                described,
                [
                    "path RegularExpression ^/api/v[0-9]+/.*; header x-tenant RegularExpression .*\\-eu$"
                ],
                "tick {}",
                t.tick
            );
        }
    }
}
