//! The built-in `session-affinity` strategy: Flagger's weighted canary with
//! sticky sessions.
//!
//! Traffic moves by weight as in the `weighted` strategy. While a rollout
//! runs, responses from the canary set the cookie `cookieName=<value of this
//! rollout>` (`Max-Age` = `maxAge`), and a rule ahead of the weighted one
//! sends every request carrying it to the canary: a user once routed to the
//! canary stays there. With `primaryCookieName`, responses from the primary
//! set that cookie for one analysis interval (so that its users are
//! re-balanced at each step, as Flagger does) and a rule keeps those users
//! on the primary (Flagger's primary stickiness). At rest, after promotion or rollback, the route
//! deletes the sticky cookies (`Max-Age=-1`) and every request goes to the
//! primary.

use sluice_plugin_sdk::progression;
use sluice_plugin_sdk::strategy::{
    Action, AnalysisSpec, Backend, Observation, Phase, ResponseCookie, RolloutState, RoutePlan,
    SessionAffinity, Strategy, backend, canary_active, cookie_match, rule,
};

const NAME: &str = "session-affinity";

pub struct StickyCanary;

impl Strategy for StickyCanary {
    fn decide(
        spec: &AnalysisSpec,
        state: &RolloutState,
        _observation: &Observation,
    ) -> Result<Action, String> {
        progression::weighted(NAME, spec, state)
    }

    fn route(spec: &AnalysisSpec, state: &RolloutState) -> Result<RoutePlan, String> {
        let affinity = spec.session_affinity.as_ref().ok_or_else(|| {
            format!("{NAME} strategy needs analysis.sessionAffinity (at least cookieName)")
        })?;
        // Its catch-all sends the state's weight to the canary, which a
        // Canary with `match` may not (only matching requests may).
        if !spec.matches.is_empty() {
            return Err(format!(
                "{NAME} strategy does not take analysis.match with sessionAffinity"
            ));
        }
        Ok(route(affinity, spec.interval_seconds, state))
    }
}

sluice_plugin_sdk::export_strategy!(StickyCanary);

fn cookie(name: &str, value: &str, max_age_seconds: i32) -> ResponseCookie {
    ResponseCookie {
        name: name.to_string(),
        value: value.to_string(),
        max_age_seconds,
    }
}

/// The rules for a state; see the crate documentation.
pub fn route(affinity: &SessionAffinity, interval_seconds: u64, state: &RolloutState) -> RoutePlan {
    let value = affinity.cookie_value.as_str();
    let max_age = i32::try_from(affinity.max_age_seconds).unwrap_or(i32::MAX);
    let interval = i32::try_from(interval_seconds).unwrap_or(i32::MAX);
    let weight = state.canary_weight.min(100);
    if canary_active(state) && weight > 0 && !value.is_empty() {
        let mut rules = Vec::new();
        if let Some(primary_cookie) = &affinity.primary_cookie_name {
            rules.push(rule(
                vec![cookie_match(primary_cookie, value)],
                vec![backend(Backend::Primary, 100), backend(Backend::Canary, 0)],
            ));
        }
        rules.push(rule(
            vec![cookie_match(&affinity.cookie_name, value)],
            vec![backend(Backend::Primary, 0), backend(Backend::Canary, 100)],
        ));
        let mut primary = backend(Backend::Primary, 100 - weight);
        primary.set_cookie = affinity
            .primary_cookie_name
            .as_ref()
            .map(|name| cookie(name, value, interval));
        let mut canary = backend(Backend::Canary, weight);
        canary.set_cookie = Some(cookie(&affinity.cookie_name, value, max_age));
        rules.push(rule(Vec::new(), vec![primary, canary]));
        return RoutePlan { rules };
    }

    // No sticky rule: the canary's share (0 at rest), and the cookies of
    // the last rollout deleted.
    let weight = if canary_active(state) { weight } else { 0 };
    let mut primary = backend(Backend::Primary, 100 - weight);
    let mut all = rule(Vec::new(), vec![]);
    // The cookie of this rollout while none runs any more (a host that did
    // not retire it yet), else the one of the last rollout.
    let rollout_running = matches!(
        state.phase,
        Phase::Progressing | Phase::Waiting | Phase::WaitingPromotion | Phase::Promoting
    );
    let retired = (!rollout_running && !value.is_empty())
        .then_some(value)
        .or(affinity.previous_cookie_value.as_deref())
        .filter(|v| !v.is_empty());
    if let Some(old) = retired {
        all.set_cookie = Some(cookie(&affinity.cookie_name, old, -1));
        primary.set_cookie = affinity
            .primary_cookie_name
            .as_ref()
            .map(|name| cookie(name, old, -1));
    }
    all.backends = vec![primary, backend(Backend::Canary, weight)];
    RoutePlan { rules: vec![all] }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_plugin_sdk::strategy::StringMatch;

    fn affinity(primary: Option<&str>) -> SessionAffinity {
        SessionAffinity {
            cookie_name: "flagger-cookie".into(),
            max_age_seconds: 21600,
            cookie_value: "abc123".into(),
            previous_cookie_value: None,
            primary_cookie_name: primary.map(String::from),
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

    fn cookie_regex(rule: &sluice_plugin_sdk::strategy::RouteRule) -> String {
        match &rule.matches[0].headers[0].value {
            StringMatch::Regex(r) => r.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn canary_users_stick_to_the_canary() {
        let plan = route(&affinity(None), 60, &state(Phase::Progressing, 20));
        assert_eq!(plan.rules.len(), 2);
        let sticky = &plan.rules[0];
        assert_eq!(sticky.matches[0].headers[0].name, "Cookie");
        assert_eq!(
            cookie_regex(sticky),
            "^(.*?;\\s*)?(flagger-cookie=abc123)(;.*)?$"
        );
        assert_eq!(sticky.backends[1].backend, Backend::Canary);
        assert_eq!(sticky.backends[1].weight, 100);
        let weighted = &plan.rules[1];
        assert!(weighted.matches.is_empty());
        assert_eq!(
            (weighted.backends[0].weight, weighted.backends[1].weight),
            (80, 20)
        );
        assert_eq!(
            weighted.backends[1].set_cookie,
            Some(cookie("flagger-cookie", "abc123", 21600))
        );
        assert_eq!(weighted.backends[0].set_cookie, None);
    }

    #[test]
    fn primary_stickiness() {
        let plan = route(
            &affinity(Some("primary-cookie")),
            60,
            &state(Phase::Progressing, 30),
        );
        assert_eq!(plan.rules.len(), 3);
        assert!(cookie_regex(&plan.rules[0]).contains("primary-cookie=abc123"));
        assert_eq!(plan.rules[0].backends[0].weight, 100);
        assert_eq!(
            plan.rules[2].backends[0].set_cookie,
            Some(cookie("primary-cookie", "abc123", 60))
        );
    }

    #[test]
    fn at_rest_the_cookies_are_deleted() {
        let mut a = affinity(Some("primary-cookie"));
        a.cookie_value = String::new();
        a.previous_cookie_value = Some("abc123".into());
        let plan = route(&a, 60, &state(Phase::Succeeded, 0));
        assert_eq!(plan.rules.len(), 1);
        let r = &plan.rules[0];
        assert_eq!(r.set_cookie, Some(cookie("flagger-cookie", "abc123", -1)));
        assert_eq!(
            r.backends[0].set_cookie,
            Some(cookie("primary-cookie", "abc123", -1))
        );
        assert_eq!((r.backends[0].weight, r.backends[1].weight), (100, 0));
        // A first rollout has no cookie to delete.
        let mut a = affinity(None);
        a.cookie_value = String::new();
        let plan = route(&a, 60, &state(Phase::Initialized, 0));
        assert_eq!(plan.rules[0].set_cookie, None);
        // The first step of a rollout keeps the new cookie.
        let plan = route(&affinity(None), 60, &state(Phase::Progressing, 0));
        assert_eq!(plan.rules[0].set_cookie, None);
    }

    #[test]
    fn a_rollback_sends_sticky_users_back() {
        let plan = route(&affinity(None), 60, &state(Phase::Failed, 0));
        assert_eq!(plan.rules.len(), 1);
        assert_eq!(plan.rules[0].backends[1].weight, 0);
        assert_eq!(
            plan.rules[0].set_cookie,
            Some(cookie("flagger-cookie", "abc123", -1))
        );
    }
}
