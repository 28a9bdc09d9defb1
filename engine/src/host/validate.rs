//! Checks of plugin answers. A plugin is untrusted: whatever it returns is
//! checked here before the host acts on it.

use super::bindings::strategy::{
    Action, Backend, HttpMatch, Phase, ResponseCookie, RolloutState, RoutePlan, StringMatch,
};
use super::{FaultKind, PluginFault};
use crate::api::validate::is_header_name;

const MAX_RULES: usize = 16;
const MAX_REASON: usize = 1024;

fn invalid(plugin: &str, why: String) -> PluginFault {
    PluginFault {
        plugin: plugin.to_string(),
        kind: FaultKind::InvalidAnswer(why),
    }
}

/// Checks that `action` is legal in the current state.
pub fn action(plugin: &str, state: &RolloutState, action: &Action) -> Result<(), PluginFault> {
    let fail = |why: String| Err(invalid(plugin, why));
    let phase = state.phase;
    match (phase, action) {
        (Phase::Progressing, Action::Advance(a)) => {
            if a.canary_weight > 100 {
                return fail(format!(
                    "canary weight {} is outside 0-100",
                    a.canary_weight
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
                return fail(format!("reason longer than {MAX_REASON} bytes"));
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

/// Checks a route plan. `canary_allowed` is false when no traffic may reach
/// the canary (at rest, or before the first step of a rollout).
pub fn route_plan(plugin: &str, plan: &RoutePlan, canary_allowed: bool) -> Result<(), PluginFault> {
    let fail = |why: String| Err(invalid(plugin, why));
    if plan.rules.is_empty() || plan.rules.len() > MAX_RULES {
        return fail(format!(
            "a route plan needs 1 to {MAX_RULES} rules (got {})",
            plan.rules.len()
        ));
    }
    for (i, rule) in plan.rules.iter().enumerate() {
        let at = format!("rule {i}");
        if rule.backends.is_empty() || rule.backends.len() > 2 {
            return fail(format!(
                "{at}: needs one or two backends (got {})",
                rule.backends.len()
            ));
        }
        if rule.backends.len() == 2 && rule.backends[0].backend == rule.backends[1].backend {
            return fail(format!(
                "{at}: backend {:?} appears twice",
                rule.backends[0].backend
            ));
        }
        let mut total = 0u32;
        for b in &rule.backends {
            if b.weight > 100 {
                return fail(format!(
                    "{at}: weight {} of {:?} is outside 0-100",
                    b.weight, b.backend
                ));
            }
            total += b.weight;
            if b.backend == Backend::Canary && b.weight > 0 && !canary_allowed {
                return fail(format!(
                    "{at}: sends {}% to the canary while no traffic may reach it",
                    b.weight
                ));
            }
            if let Some(cookie) = &b.set_cookie {
                response_cookie(cookie).map_err(|why| invalid(plugin, format!("{at}: {why}")))?;
            }
        }
        if total != 100 {
            return fail(format!("{at}: weights sum to {total}, not 100"));
        }
        if let Some(cookie) = &rule.set_cookie {
            response_cookie(cookie).map_err(|why| invalid(plugin, format!("{at}: {why}")))?;
        }
        if let Some(m) = &rule.mirror {
            if m.percent.is_some_and(|p| p == 0 || p > 100) {
                return fail(format!(
                    "{at}: mirror percentage {:?} is outside 1-100",
                    m.percent
                ));
            }
            if m.backend == Backend::Canary && !canary_allowed {
                return fail(format!(
                    "{at}: mirrors to the canary while no traffic may reach it"
                ));
            }
        }
        for (j, m) in rule.matches.iter().enumerate() {
            http_match(m).map_err(|why| invalid(plugin, format!("{at}, match {j}: {why}")))?;
        }
    }
    if plan.rules.last().is_some_and(|r| !r.matches.is_empty()) {
        return fail(
            "the last rule must match every request, so that none is left unrouted".to_string(),
        );
    }
    Ok(())
}

fn http_match(m: &HttpMatch) -> Result<(), String> {
    if let Some(p) = &m.path_prefix
        && (!p.starts_with('/') || p.len() > 1024)
    {
        return Err(format!("path prefix {p:?} must start with '/'"));
    }
    if let Some(method) = &m.method {
        const METHODS: [&str; 9] = [
            "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
        ];
        if !METHODS.contains(&method.as_str()) {
            return Err(format!("method {method:?} is not one Gateway API accepts"));
        }
    }
    for h in &m.headers {
        if !is_header_name(&h.name) {
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
        StringMatch::Regex(re) => regex::Regex::new(re)
            .map(|_| ())
            .map_err(|e| format!("invalid regex {re:?}: {e}")),
        _ => Ok(()),
    }
}

fn response_cookie(cookie: &ResponseCookie) -> Result<(), String> {
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
    use crate::host::bindings::strategy::{
        HeaderMatch, Mirror, QueryParamMatch, RouteRule, WeightedBackend,
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

    /// The reason a plan is refused, or "" if it is accepted.
    fn verdict(rules: Vec<RouteRule>, canary_allowed: bool) -> String {
        match route_plan("p", &RoutePlan { rules }, canary_allowed) {
            Ok(()) => String::new(),
            Err(f) => match f.kind {
                FaultKind::InvalidAnswer(why) => why,
                other => panic!("{other:?}"),
            },
        }
    }

    #[test]
    fn weights_and_backends() {
        assert_eq!(verdict(vec![rule(vec![], 30)], true), "");
        let mut r = rule(vec![], 0);
        r.backends[1].weight = 10;
        assert_eq!(
            verdict(vec![r], true),
            "rule 0: weights sum to 110, not 100"
        );
        let mut r = rule(vec![], 0);
        r.backends[1].backend = Backend::Primary;
        assert!(verdict(vec![r], true).contains("appears twice"));
        assert!(verdict(vec![], true).contains("1 to 16 rules"));
        assert!(verdict(vec![rule(vec![], 0); 17], true).contains("1 to 16 rules"));
    }

    #[test]
    fn no_canary_traffic_when_none_is_allowed() {
        assert_eq!(
            verdict(vec![rule(vec![], 20)], false),
            "rule 0: sends 20% to the canary while no traffic may reach it"
        );
        let mut r = rule(vec![], 0);
        r.mirror = Some(Mirror {
            backend: Backend::Canary,
            percent: None,
        });
        assert!(verdict(vec![r.clone()], false).contains("mirrors to the canary"));
        assert_eq!(verdict(vec![r.clone()], true), "");
        r.mirror = Some(Mirror {
            backend: Backend::Canary,
            percent: Some(0),
        });
        assert!(verdict(vec![r], true).contains("mirror percentage"));
    }

    #[test]
    fn matches_must_be_what_gateway_api_accepts() {
        let catch_all = rule(vec![], 0);
        let bad_regex = rule(vec![header("x-user", StringMatch::Regex("(".into()))], 100);
        assert!(
            verdict(vec![bad_regex, catch_all.clone()], true)
                .starts_with("rule 0, match 0: invalid regex \"(\"")
        );
        let bad_name = rule(vec![header("x user", StringMatch::Exact("a".into()))], 100);
        assert_eq!(
            verdict(vec![bad_name, catch_all.clone()], true),
            "rule 0, match 0: header name \"x user\" is not valid"
        );
        let mut bad_method = rule(vec![], 100);
        bad_method.matches = vec![HttpMatch {
            path_prefix: Some("no-slash".into()),
            headers: vec![],
            query_params: vec![QueryParamMatch {
                name: "q".into(),
                value: StringMatch::Exact("1".into()),
            }],
            method: None,
        }];
        assert!(verdict(vec![bad_method, catch_all.clone()], true).contains("must start with '/'"));
        // The last rule must catch every request.
        let only_matched = rule(vec![header("x-user", StringMatch::Exact("a".into()))], 0);
        assert!(
            verdict(vec![only_matched], true).starts_with("the last rule must match every request")
        );
    }

    #[test]
    fn cookies_must_be_valid() {
        let mut r = rule(vec![], 50);
        r.backends[1].set_cookie = Some(ResponseCookie {
            name: "sticky".into(),
            value: "abc".into(),
            max_age_seconds: 60,
        });
        assert_eq!(verdict(vec![r.clone()], true), "");
        r.backends[1].set_cookie = Some(ResponseCookie {
            name: "sticky".into(),
            value: "a; Domain=evil.example".into(),
            max_age_seconds: 60,
        });
        assert!(verdict(vec![r.clone()], true).contains("is not a valid cookie value"));
        r.backends[1].set_cookie = None;
        r.set_cookie = Some(ResponseCookie {
            name: "bad name".into(),
            value: "v".into(),
            max_age_seconds: -1,
        });
        assert!(verdict(vec![r], true).contains("cookie name \"bad name\" is not a valid token"));
    }

    #[test]
    fn actions_must_be_legal_in_the_phase() {
        let state = |phase| RolloutState {
            phase,
            canary_weight: 40,
            iterations: 2,
            failed_checks: 0,
        };
        let advance = |w, i| {
            Action::Advance(crate::host::bindings::strategy::Advance {
                canary_weight: w,
                iterations: i,
            })
        };
        assert!(action("p", &state(Phase::Progressing), &advance(50, 2)).is_ok());
        assert!(action("p", &state(Phase::Progressing), &advance(150, 2)).is_err());
        assert!(action("p", &state(Phase::Progressing), &advance(50, 4)).is_err());
        assert!(action("p", &state(Phase::Promoting), &advance(60, 2)).is_err());
        assert!(action("p", &state(Phase::Promoting), &advance(20, 2)).is_ok());
        assert!(action("p", &state(Phase::Progressing), &Action::Finalise).is_err());
        assert!(action("p", &state(Phase::Succeeded), &Action::Promote).is_err());
    }
}
