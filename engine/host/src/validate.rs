//! Checks of plugin answers. A plugin is untrusted: whatever it returns is
//! checked here before the host acts on it.

mod filters;

pub use filters::redirects;

use super::bindings::strategy::{
    Action, AnalysisSpec, Backend, HttpMatch, Mirror, Phase, ResponseCookie, RolloutState,
    RoutePlan, RouteRule, SpecMatch, StringMatch,
};
use super::{FaultKind, PluginFault};
use crate::convert::plan_match;
use sluice_core::gateway::{HTTP_METHODS, PATH_PSEUDO_HEADER, bounded_regex, is_header_name};

const MAX_RULES: usize = 16;
/// Gateway API's own limits: matches per rule, headers and query
/// parameters per match.
const MAX_MATCHES: usize = 64;
const MAX_CONDITIONS: usize = 16;
const MAX_REASON: usize = 1024;

fn invalid(plugin: &str, why: String) -> PluginFault {
    PluginFault {
        plugin: plugin.to_string(),
        kind: FaultKind::InvalidAnswer(why),
    }
}

/// Whether any request may reach the canary in this state: only while a
/// rollout runs and after its first step.
pub fn canary_traffic_allowed(state: &RolloutState) -> bool {
    matches!(
        state.phase,
        Phase::Progressing | Phase::Promoting | Phase::WaitingPromotion | Phase::Waiting
    ) && (state.canary_weight > 0 || state.iterations > 0)
}

/// The highest canary weight an `advance` to `iterations` may ask for: the
/// Canary's `maxWeight` (the last of `stepWeights` when given). The one
/// exception is blue/green's switch: past the last iteration of a Canary
/// with `iterations` and no `match`, all traffic may move to the canary.
fn max_canary_weight(spec: &AnalysisSpec, iterations: u32) -> u32 {
    let switch = spec.matches.is_empty() && spec.iterations.is_some_and(|n| iterations > n);
    if switch {
        100
    } else {
        spec.step_weights
            .last()
            .copied()
            .unwrap_or(spec.max_weight)
            .min(100)
    }
}

/// Checks that `action` is legal in the current state and within the
/// Canary's settings.
pub fn action(
    plugin: &str,
    spec: &AnalysisSpec,
    state: &RolloutState,
    action: &Action,
) -> Result<(), PluginFault> {
    let fail = |why: String| Err(invalid(plugin, why));
    let phase = state.phase;
    match (phase, action) {
        (Phase::Progressing, Action::Advance(a)) => {
            let max = max_canary_weight(spec, a.iterations);
            if a.canary_weight > max {
                return fail(format!(
                    "advance to canary weight {} exceeds the Canary's maximum of {max} (from {})",
                    a.canary_weight, state.canary_weight
                ));
            }
            if a.iterations < state.iterations || a.iterations > state.iterations + 1 {
                return fail(format!(
                    "iterations may only stay at {} or grow by one (got {})",
                    state.iterations, a.iterations
                ));
            }
            Ok(())
        }
        (Phase::Promoting, Action::Advance(a)) => {
            if a.canary_weight > state.canary_weight {
                return fail(format!(
                    "while promoting, traffic may only move back to the primary (canary weight {} -> {})",
                    state.canary_weight, a.canary_weight
                ));
            }
            if a.iterations != state.iterations {
                return fail("iterations may not change while promoting".to_string());
            }
            Ok(())
        }
        (
            Phase::Progressing | Phase::Promoting,
            Action::Hold(reason) | Action::Rollback(reason),
        ) => {
            if reason.len() > MAX_REASON {
                return fail(format!(
                    "reason of {} bytes, longer than {MAX_REASON}",
                    reason.len()
                ));
            }
            Ok(())
        }
        (Phase::Progressing, Action::Promote) | (Phase::Promoting, Action::Finalise) => Ok(()),
        (Phase::Progressing, Action::Finalise) => {
            fail("finalise is only legal while promoting".to_string())
        }
        (Phase::Promoting, Action::Promote) => {
            fail("promote is only legal while progressing".to_string())
        }
        (other, _) => fail(format!("no action is legal in phase {other:?}")),
    }
}

/// Checks a route plan against the state it is for and the Canary's
/// settings. The plan may send traffic to the canary only as the state
/// says:
/// - the last rule matches every request, and its canary weight is the
///   state's (0 when no traffic may reach the canary);
/// - every other rule carries at least one condition, and sends requests
///   to the canary only while traffic may reach it and only for the
///   Canary's own `match` conditions (A/B) or for clients holding this
///   rollout's session-affinity cookie;
/// - a mirror to the canary only when the Canary mirrors, at most at its
///   `mirrorWeight`.
pub fn route_plan(
    plugin: &str,
    spec: &AnalysisSpec,
    state: &RolloutState,
    plan: &RoutePlan,
) -> Result<(), PluginFault> {
    if plan.rules.is_empty() || plan.rules.len() > MAX_RULES {
        return Err(invalid(
            plugin,
            format!(
                "a route plan needs 1 to {MAX_RULES} rules (got {})",
                plan.rules.len()
            ),
        ));
    }
    let allowed = canary_traffic_allowed(state);
    let last = plan.rules.len() - 1;
    for (i, rule) in plan.rules.iter().enumerate() {
        plan_rule(i, rule, i == last, spec, state, allowed).map_err(|why| invalid(plugin, why))?;
    }
    Ok(())
}

/// Rule `i` of a route plan, the catch-all when `last`; `allowed`: whether
/// traffic may reach the canary. The message names the rule.
fn plan_rule(
    i: usize,
    rule: &RouteRule,
    last: bool,
    spec: &AnalysisSpec,
    state: &RolloutState,
    allowed: bool,
) -> Result<(), String> {
    let at = format!("rule {i}");
    route_rule(rule, spec, allowed).map_err(|why| format!("{at}: {why}"))?;
    filters::rule_filters(rule, last).map_err(|why| format!("{at}: {why}"))?;
    for (j, m) in rule.matches.iter().enumerate() {
        http_match(m).map_err(|why| format!("{at}, match {j}: {why}"))?;
    }
    if last {
        catch_all_rule(&at, rule, spec, state, allowed)
    } else {
        conditional_rule(&at, rule, spec, state, allowed)
    }
}

/// The last rule, named `at`: it matches every request, and sends the
/// state's canary weight to the canary (0 when no traffic may reach it, or
/// with the Canary's `match`, where only matching requests may).
fn catch_all_rule(
    at: &str,
    rule: &RouteRule,
    spec: &AnalysisSpec,
    state: &RolloutState,
    allowed: bool,
) -> Result<(), String> {
    if !rule.matches.is_empty() {
        return Err(
            "the last rule must match every request, so that none is left unrouted".to_string(),
        );
    }
    let canary = canary_weight(rule);
    // With `match`, only matching requests may reach the canary.
    let expected = if allowed && spec.matches.is_empty() {
        state.canary_weight
    } else {
        0
    };
    if canary != expected {
        let why = if allowed && !spec.matches.is_empty() {
            "with the Canary's analysis.match only matching requests may reach the canary, so it must send 0%".to_string()
        } else {
            format!("the state's canary weight is {expected}%")
        };
        return Err(format!(
            "{at}: the catch-all rule sends {canary}% to the canary, but {why}"
        ));
    }
    Ok(())
}

/// A rule before the last, named `at`: it carries a condition, and sends
/// requests to the canary only as [`matched_canary_rule`] allows.
fn conditional_rule(
    at: &str,
    rule: &RouteRule,
    spec: &AnalysisSpec,
    state: &RolloutState,
    allowed: bool,
) -> Result<(), String> {
    if rule.matches.is_empty() || rule.matches.iter().any(is_unconditional) {
        return Err(format!(
            "{at}: only the last rule may match every request; this one needs a condition"
        ));
    }
    if canary_weight(rule) > 0 {
        matched_canary_rule(rule, spec, state, allowed).map_err(|why| format!("{at}: {why}"))?;
    }
    Ok(())
}

/// Backends, weights, cookies and mirror of one rule.
fn route_rule(rule: &RouteRule, spec: &AnalysisSpec, allowed: bool) -> Result<(), String> {
    if rule.matches.len() > MAX_MATCHES {
        return Err(format!(
            "at most {MAX_MATCHES} matches per rule (got {})",
            rule.matches.len()
        ));
    }
    if rule.backends.is_empty() || rule.backends.len() > 2 {
        return Err(format!(
            "needs one or two backends (got {})",
            rule.backends.len()
        ));
    }
    if rule.backends.len() == 2 && rule.backends[0].backend == rule.backends[1].backend {
        return Err(format!(
            "backend {:?} appears twice",
            rule.backends[0].backend
        ));
    }
    let mut total = 0u32;
    for b in &rule.backends {
        if b.weight > 100 {
            return Err(format!(
                "weight {} of {:?} is outside 0-100",
                b.weight, b.backend
            ));
        }
        total += b.weight;
        if b.backend == Backend::Canary && b.weight > 0 && !allowed {
            return Err(format!(
                "sends {}% to the canary while no traffic may reach it",
                b.weight
            ));
        }
        if let Some(cookie) = &b.set_cookie {
            response_cookie(cookie, spec)?;
        }
    }
    if total != 100 {
        return Err(format!("weights sum to {total}, not 100"));
    }
    if let Some(cookie) = &rule.set_cookie {
        response_cookie(cookie, spec)?;
    }
    if let Some(m) = &rule.mirror {
        mirror(m, spec, allowed)?;
    }
    Ok(())
}

fn mirror(m: &Mirror, spec: &AnalysisSpec, allowed: bool) -> Result<(), String> {
    if m.percent.is_some_and(|p| p == 0 || p > 100) {
        return Err(format!(
            "mirror percentage {:?} is outside 1-100",
            m.percent
        ));
    }
    if m.backend != Backend::Canary {
        return Ok(());
    }
    if !allowed {
        return Err("mirrors to the canary while no traffic may reach it".to_string());
    }
    if !spec.mirror {
        return Err("mirrors to the canary, but the Canary does not ask for mirroring".to_string());
    }
    let percent = m.percent.unwrap_or(100);
    if let Some(max) = spec.mirror_weight.filter(|&w| w > 0 && w < 100)
        && percent > max
    {
        return Err(format!(
            "mirrors {percent}% to the canary, more than the Canary's mirrorWeight of {max}%"
        ));
    }
    Ok(())
}

/// A rule with conditions may send requests to the canary only for the
/// Canary's `match` (A/B), or for this rollout's affinity cookie.
/// A/B testing (`iterations`) may send all matching requests; a weighted
/// canary with `match` exactly the state's weight of them.
fn matched_canary_rule(
    rule: &RouteRule,
    spec: &AnalysisSpec,
    state: &RolloutState,
    allowed: bool,
) -> Result<(), String> {
    if !allowed {
        return Err("sends matched requests to the canary while no traffic may reach it".into());
    }
    if !spec.matches.is_empty() && same_matches(&rule.matches, &spec.matches) {
        let ab = spec.iterations.is_some_and(|n| n > 0);
        let canary = canary_weight(rule);
        if !ab && canary != state.canary_weight {
            return Err(format!(
                "sends {canary}% of the matching requests to the canary, but the state's canary weight is {}%",
                state.canary_weight
            ));
        }
        return Ok(());
    }
    if let Some(affinity) = &spec.session_affinity
        && rule.matches.len() == 1
        && selects_only_cookie(
            &rule.matches[0],
            &affinity.cookie_name,
            &affinity.cookie_value,
        )
    {
        return Ok(());
    }
    Err(
        "sends matched requests to the canary, but its conditions are neither the Canary's analysis.match nor this rollout's session-affinity cookie"
            .into(),
    )
}

/// Whether a plan's matches are exactly the Canary's.
fn same_matches(plan: &[HttpMatch], spec: &[SpecMatch]) -> bool {
    plan.len() == spec.len() && plan.iter().zip(spec).all(|(p, s)| *p == plan_match(s))
}

/// Whether `m` selects exactly the requests whose Cookie header carries
/// `name=value`: one Cookie header condition, nothing else, that accepts
/// the cookie and refuses requests without it.
fn selects_only_cookie(m: &HttpMatch, name: &str, value: &str) -> bool {
    let [header] = m.headers.as_slice() else {
        return false;
    };
    if value.is_empty()
        || m.path_prefix.is_some()
        || m.method.is_some()
        || !m.query_params.is_empty()
        || !header.name.eq_ignore_ascii_case("cookie")
    {
        return false;
    }
    let cookie = format!("{name}={value}");
    match &header.value {
        StringMatch::Exact(v) => *v == cookie,
        StringMatch::Prefix(_) => false,
        StringMatch::Regex(re) => bounded_regex(re).is_ok_and(|re| {
            re.is_match(&cookie)
                && re.is_match(&format!("a=b; {cookie}"))
                && ![
                    "",
                    "a=b",
                    &format!("{name}=x{value}"),
                    &format!("{name}={value}x"),
                ]
                .iter()
                .any(|other| re.is_match(other))
        }),
    }
}

/// A match with no condition at all matches every request.
fn is_unconditional(m: &HttpMatch) -> bool {
    m.path_prefix.is_none()
        && m.method.is_none()
        && m.headers.is_empty()
        && m.query_params.is_empty()
}

fn canary_weight(rule: &RouteRule) -> u32 {
    rule.backends
        .iter()
        .filter(|b| b.backend == Backend::Canary)
        .map(|b| b.weight)
        .sum()
}

fn http_match(m: &HttpMatch) -> Result<(), String> {
    if m.headers.len() > MAX_CONDITIONS || m.query_params.len() > MAX_CONDITIONS {
        return Err(format!(
            "a match may carry at most {MAX_CONDITIONS} headers and {MAX_CONDITIONS} query parameters (got {} and {})",
            m.headers.len(),
            m.query_params.len()
        ));
    }
    if let Some(p) = &m.path_prefix
        && (!p.starts_with('/') || p.len() > 1024)
    {
        return Err(format!("path prefix {p:?} must start with '/'"));
    }
    if let Some(method) = &m.method
        && !HTTP_METHODS.contains(&method.as_str())
    {
        return Err(format!("method {method:?} is not one Gateway API accepts"));
    }
    let paths = m
        .headers
        .iter()
        .filter(|h| h.name == PATH_PSEUDO_HEADER)
        .count()
        + usize::from(m.path_prefix.is_some());
    if paths > 1 {
        return Err("a match may carry one path condition (path-prefix or :path)".into());
    }
    for h in &m.headers {
        if h.name == PATH_PSEUDO_HEADER {
            if let StringMatch::Exact(p) | StringMatch::Prefix(p) = &h.value
                && !p.starts_with('/')
            {
                return Err(format!(":path {p:?} must start with '/'"));
            }
        } else if !is_header_name(&h.name) {
            return Err(format!("header name {:?} is not valid", h.name));
        }
        string_match(&h.value)?;
    }
    for q in &m.query_params {
        if q.name.is_empty() || q.name.len() > 256 {
            return Err(format!("query parameter name {:?} is not valid", q.name));
        }
        string_match(&q.value)?;
    }
    Ok(())
}

fn string_match(m: &StringMatch) -> Result<(), String> {
    match m {
        StringMatch::Exact(v) | StringMatch::Prefix(v) if v.len() > 4096 => {
            Err("match value too long".into())
        }
        StringMatch::Regex(re) => bounded_regex(re).map(|_| ()).map_err(|e| e.to_string()),
        _ => Ok(()),
    }
}

/// A cookie the route sets: valid, and only one of the Canary's own
/// session-affinity cookies, so that a plugin cannot overwrite or delete a
/// user's other cookies (a session, say).
fn response_cookie(cookie: &ResponseCookie, spec: &AnalysisSpec) -> Result<(), String> {
    let own = spec.session_affinity.as_ref().is_some_and(|a| {
        cookie.name == a.cookie_name || a.primary_cookie_name.as_deref() == Some(&cookie.name)
    });
    if !own {
        return Err(format!(
            "sets cookie {:?}, which is not one of the Canary's sessionAffinity cookies",
            cookie.name
        ));
    }
    if !is_header_name(&cookie.name) {
        return Err(format!(
            "cookie name {:?} is not a valid token",
            cookie.name
        ));
    }
    let value_ok = !cookie.value.is_empty()
        && cookie.value.len() <= 256
        && cookie
            .value
            .bytes()
            .all(|c| c.is_ascii_graphic() && c != b';' && c != b',' && c != b'"' && c != b'\\');
    if !value_ok {
        return Err(format!(
            "cookie value {:?} is not a valid cookie value",
            cookie.value
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::strategy::{
        Advance, HeaderMatch, QueryParamMatch, SessionAffinity, WeightedBackend,
    };

    fn backend(backend: Backend, weight: u32) -> WeightedBackend {
        WeightedBackend {
            backend,
            weight,
            set_cookie: None,
        }
    }

    fn rule(matches: Vec<HttpMatch>, canary: u32) -> RouteRule {
        RouteRule {
            matches,
            backends: vec![
                backend(Backend::Primary, 100 - canary),
                backend(Backend::Canary, canary),
            ],
            mirror: None,
            set_cookie: None,
            filters: vec![],
        }
    }

    fn header(name: &str, value: StringMatch) -> HttpMatch {
        HttpMatch {
            path_prefix: None,
            headers: vec![HeaderMatch {
                name: name.into(),
                value,
            }],
            query_params: vec![],
            method: None,
        }
    }

    fn spec() -> AnalysisSpec {
        AnalysisSpec {
            interval_seconds: 60,
            threshold: 5,
            max_weight: 50,
            step_weight: Some(10),
            step_weights: Vec::new(),
            step_weight_promotion: None,
            iterations: None,
            matches: Vec::new(),
            mirror: false,
            mirror_weight: None,
            session_affinity: None,
            config: String::new(),
        }
    }

    fn state(phase: Phase, canary_weight: u32) -> RolloutState {
        RolloutState {
            phase,
            canary_weight,
            iterations: 0,
            failed_checks: 0,
        }
    }

    /// The reason a plan is refused, or "" if it is accepted.
    fn verdict_for(spec: &AnalysisSpec, state: RolloutState, rules: Vec<RouteRule>) -> String {
        match route_plan("p", spec, &state, &RoutePlan { rules }) {
            Ok(()) => String::new(),
            Err(f) => match f.kind {
                FaultKind::InvalidAnswer(why) => why,
                other => panic!("{other:?}"),
            },
        }
    }

    /// The same, for a weighted Canary progressing at 30%.
    fn verdict(rules: Vec<RouteRule>) -> String {
        verdict_for(&spec(), state(Phase::Progressing, 30), rules)
    }

    #[test]
    fn weights_and_backends() {
        assert_eq!(verdict(vec![rule(vec![], 30)]), "");
        let mut r = rule(vec![], 30);
        r.backends[1].weight = 40;
        assert_eq!(verdict(vec![r]), "rule 0: weights sum to 110, not 100");
        let mut r = rule(vec![], 0);
        r.backends[1].backend = Backend::Primary;
        assert!(verdict(vec![r]).contains("appears twice"));
        assert!(verdict(vec![]).contains("1 to 16 rules"));
        assert!(verdict(vec![rule(vec![], 30); 17]).contains("1 to 16 rules"));
        let mut r = rule(vec![], 30);
        r.backends = (0..1000).map(|_| backend(Backend::Canary, 0)).collect();
        assert_eq!(
            verdict(vec![r]),
            "rule 0: needs one or two backends (got 1000)"
        );
    }

    #[test]
    fn the_catch_all_carries_exactly_the_state_weight() {
        // A plan that says 100% while the state says 30% is refused, with
        // both numbers.
        assert_eq!(
            verdict(vec![rule(vec![], 100)]),
            "rule 0: the catch-all rule sends 100% to the canary, but the state's canary weight is 30%"
        );
        assert!(verdict(vec![rule(vec![], 20)]).contains("sends 20%"));
        // At rest nothing may reach the canary.
        let at_rest = state(Phase::Initialized, 0);
        assert_eq!(
            verdict_for(&spec(), at_rest, vec![rule(vec![], 20)]),
            "rule 0: sends 20% to the canary while no traffic may reach it"
        );
        assert_eq!(verdict_for(&spec(), at_rest, vec![rule(vec![], 0)]), "");
    }

    #[test]
    fn matched_rules_reach_the_canary_only_for_the_canarys_conditions() {
        let insider = header("x-canary", StringMatch::Exact("insider".into()));
        let mut ab = spec();
        ab.iterations = Some(10);
        ab.matches = vec![crate::convert::spec_match(&insider)];
        let progressing = RolloutState {
            iterations: 1,
            ..state(Phase::Progressing, 0)
        };
        let catch_all = rule(vec![], 0);
        assert_eq!(
            verdict_for(
                &ab,
                progressing,
                vec![rule(vec![insider.clone()], 100), catch_all.clone()]
            ),
            ""
        );
        // Wider than the Canary's match: refused.
        let everyone = HttpMatch {
            path_prefix: Some("/".into()),
            headers: vec![],
            query_params: vec![],
            method: None,
        };
        assert!(
            verdict_for(
                &ab,
                progressing,
                vec![rule(vec![everyone], 100), catch_all.clone()]
            )
            .contains("neither the Canary's analysis.match")
        );
        // A rule without conditions before the catch-all matches everyone.
        let unconditional = HttpMatch {
            path_prefix: None,
            headers: vec![],
            query_params: vec![],
            method: None,
        };
        assert!(
            verdict_for(
                &ab,
                progressing,
                vec![rule(vec![unconditional], 0), catch_all.clone()]
            )
            .contains("needs a condition")
        );
        assert!(
            verdict_for(&ab, progressing, vec![rule(vec![], 0), catch_all.clone()])
                .contains("needs a condition")
        );
        // A weighted Canary has no match: no matched rule may reach the canary.
        assert!(
            verdict(vec![rule(vec![insider], 100), rule(vec![], 30)])
                .contains("neither the Canary's analysis.match")
        );
    }

    #[test]
    fn sticky_rules_must_select_only_this_rollouts_cookie() {
        let mut sticky = spec();
        sticky.session_affinity = Some(SessionAffinity {
            cookie_name: "flagger-cookie".into(),
            max_age_seconds: 60,
            cookie_value: "abc".into(),
            previous_cookie_value: None,
            primary_cookie_name: None,
        });
        let at = state(Phase::Progressing, 30);
        let cookie = |re: &str| header("Cookie", StringMatch::Regex(re.into()));
        let good = cookie(r"^(.*?;\s*)?(flagger\-cookie=abc)(;.*)?$");
        assert_eq!(
            verdict_for(&sticky, at, vec![rule(vec![good], 100), rule(vec![], 30)]),
            ""
        );
        for wide in [".*", "flagger-cookie", "abc", r"flagger\-cookie=abc.*"] {
            assert!(
                verdict_for(
                    &sticky,
                    at,
                    vec![rule(vec![cookie(wide)], 100), rule(vec![], 30)]
                )
                .contains("neither"),
                "{wide}"
            );
        }
    }

    #[test]
    fn mirrors_only_as_the_canary_asks() {
        let mut r = rule(vec![], 0);
        r.mirror = Some(Mirror {
            backend: Backend::Canary,
            percent: None,
        });
        let mut mirrored = spec();
        mirrored.iterations = Some(10);
        let at = RolloutState {
            iterations: 1,
            ..state(Phase::Progressing, 0)
        };
        assert!(verdict_for(&mirrored, at, vec![r.clone()]).contains("does not ask for mirroring"));
        mirrored.mirror = true;
        assert_eq!(verdict_for(&mirrored, at, vec![r.clone()]), "");
        mirrored.mirror_weight = Some(20);
        assert!(
            verdict_for(&mirrored, at, vec![r.clone()])
                .contains("more than the Canary's mirrorWeight of 20%")
        );
        r.mirror = Some(Mirror {
            backend: Backend::Canary,
            percent: Some(20),
        });
        assert_eq!(verdict_for(&mirrored, at, vec![r.clone()]), "");
        assert!(
            verdict_for(&mirrored, state(Phase::Initialized, 0), vec![r.clone()])
                .contains("mirrors to the canary while no traffic may reach it")
        );
        r.mirror = Some(Mirror {
            backend: Backend::Canary,
            percent: Some(0),
        });
        assert!(verdict_for(&mirrored, at, vec![r]).contains("mirror percentage"));
    }

    #[test]
    fn matches_must_be_what_gateway_api_accepts() {
        let catch_all = rule(vec![], 30);
        let bad_regex = rule(vec![header("x-user", StringMatch::Regex("(".into()))], 0);
        assert!(
            verdict(vec![bad_regex, catch_all.clone()])
                .starts_with("rule 0, match 0: invalid regex \"(\"")
        );
        // A regex that compiles to too much is refused at once.
        let huge = rule(
            vec![header("x-user", StringMatch::Regex(r"\w{100}{100}".into()))],
            0,
        );
        let started = std::time::Instant::now();
        assert!(verdict(vec![huge, catch_all.clone()]).contains("is too complex"));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        let long = rule(
            vec![header("x-user", StringMatch::Regex("a".repeat(2000)))],
            0,
        );
        assert!(verdict(vec![long, catch_all.clone()]).contains("longer than 1024"));
        let deep = rule(
            vec![header(
                "x-user",
                StringMatch::Regex(format!("{}a{}", "(".repeat(100), ")".repeat(100))),
            )],
            0,
        );
        assert!(verdict(vec![deep, catch_all.clone()]).contains("invalid regex"));
        let bad_name = rule(vec![header("x user", StringMatch::Exact("a".into()))], 0);
        assert_eq!(
            verdict(vec![bad_name, catch_all.clone()]),
            "rule 0, match 0: header name \"x user\" is not valid"
        );
        let mut bad_path = rule(vec![], 0);
        bad_path.matches = vec![HttpMatch {
            path_prefix: Some("no-slash".into()),
            headers: vec![],
            query_params: vec![QueryParamMatch {
                name: "q".into(),
                value: StringMatch::Exact("1".into()),
            }],
            method: None,
        }];
        assert!(verdict(vec![bad_path, catch_all.clone()]).contains("must start with '/'"));
        // The last rule must catch every request.
        let only_matched = rule(vec![header("x-user", StringMatch::Exact("a".into()))], 0);
        assert!(verdict(vec![only_matched]).starts_with("the last rule must match every request"));
    }

    #[test]
    fn cookies_must_be_valid_and_the_canarys_own() {
        let mut sticky = spec();
        sticky.session_affinity = Some(SessionAffinity {
            cookie_name: "sticky".into(),
            max_age_seconds: 60,
            cookie_value: "abc".into(),
            previous_cookie_value: None,
            primary_cookie_name: Some("primary".into()),
        });
        let at = state(Phase::Progressing, 30);
        let check = |r: RouteRule| verdict_for(&sticky, at, vec![r]);
        let mut r = rule(vec![], 30);
        r.backends[1].set_cookie = Some(ResponseCookie {
            name: "sticky".into(),
            value: "abc".into(),
            max_age_seconds: 60,
        });
        assert_eq!(check(r.clone()), "");
        r.backends[1].set_cookie = Some(ResponseCookie {
            name: "sticky".into(),
            value: "a; Domain=evil.example".into(),
            max_age_seconds: 60,
        });
        assert!(check(r.clone()).contains("is not a valid cookie value"));
        r.backends[1].set_cookie = None;
        r.set_cookie = Some(ResponseCookie {
            name: "bad name".into(),
            value: "v".into(),
            max_age_seconds: -1,
        });
        assert!(check(r.clone()).contains("is not one of the Canary's sessionAffinity cookies"));
        // A plugin may not touch a user's other cookies, here deleting a session.
        r.set_cookie = Some(ResponseCookie {
            name: "sessionid".into(),
            value: "x".into(),
            max_age_seconds: -1,
        });
        assert_eq!(
            check(r.clone()),
            "rule 0: sets cookie \"sessionid\", which is not one of the Canary's sessionAffinity cookies"
        );
        r.set_cookie = Some(ResponseCookie {
            name: "primary".into(),
            value: "abc".into(),
            max_age_seconds: 60,
        });
        assert_eq!(check(r.clone()), "");
        // Without session affinity no cookie at all.
        assert!(verdict(vec![r]).contains("not one of the Canary's sessionAffinity cookies"));
    }

    #[test]
    fn actions_must_be_legal_in_the_phase_and_within_max_weight() {
        let state = |phase| RolloutState {
            phase,
            canary_weight: 40,
            iterations: 2,
            failed_checks: 0,
        };
        let advance = |w, i| {
            Action::Advance(Advance {
                canary_weight: w,
                iterations: i,
            })
        };
        let s = spec();
        let check = |st: RolloutState, a: &Action| action("p", &s, &st, a);
        assert!(check(state(Phase::Progressing), &advance(50, 2)).is_ok());
        let e = check(state(Phase::Progressing), &advance(100, 2)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "plugin p returned an invalid answer: advance to canary weight 100 exceeds the Canary's maximum of 50 (from 40)"
        );
        assert!(check(state(Phase::Progressing), &advance(150, 2)).is_err());
        assert!(check(state(Phase::Progressing), &advance(50, 4)).is_err());
        assert!(check(state(Phase::Promoting), &advance(60, 2)).is_err());
        assert!(check(state(Phase::Promoting), &advance(20, 2)).is_ok());
        assert!(check(state(Phase::Progressing), &Action::Finalise).is_err());
        assert!(check(state(Phase::Succeeded), &Action::Promote).is_err());
        assert!(
            check(
                state(Phase::Progressing),
                &Action::Hold("x".repeat(10_000_000))
            )
            .is_err()
        );
        // stepWeights: the last step is the maximum.
        let mut steps = spec();
        steps.step_weights = vec![5, 10, 80];
        assert!(action("p", &steps, &state(Phase::Progressing), &advance(80, 2)).is_ok());
        assert!(action("p", &steps, &state(Phase::Progressing), &advance(81, 2)).is_err());
        // Blue/green's switch: past the last iteration, all traffic may move.
        let mut blue_green = spec();
        blue_green.iterations = Some(2);
        let at = RolloutState {
            canary_weight: 0,
            ..state(Phase::Progressing)
        };
        assert!(action("p", &blue_green, &at, &advance(100, 3)).is_ok());
        assert!(action("p", &blue_green, &at, &advance(100, 2)).is_err());
        // Not for A/B, which has a match.
        blue_green.matches = vec![crate::convert::spec_match(&header(
            "x",
            StringMatch::Exact("y".into()),
        ))];
        assert!(action("p", &blue_green, &at, &advance(100, 3)).is_err());
    }
}
