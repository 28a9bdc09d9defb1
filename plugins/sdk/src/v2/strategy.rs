//! 0.2 strategy plugins: how traffic moves during a rollout.
//!
//! Implement [`Strategy`] and call
//! [`v2::export_strategy!`](crate::v2::export_strategy).

use std::marker::PhantomData;

use crate::bindings::v2::settings::exports::sluice::plugin::settings;
use crate::bindings::v2::strategy::exports::sluice::plugin::rollout;
pub use crate::bindings::v2::strategy::sluice::plugin::strategy_types::{
    Action, Advance, Observation, Phase, RolloutSpec, RolloutState, SessionAffinity,
};
pub use crate::bindings::v2::strategy::sluice::plugin::types::{
    Backend, ExtensionRef, HeaderMatch, HeaderModifier, HttpHeader, HttpMatch, Mirror,
    QueryParamMatch, RequestRedirect, ResponseCookie, RouteFilter, RoutePlan, RouteRule,
    StringMatch, WeightedBackend,
};
pub use crate::strategy::regex_escape;
pub use crate::v2::{Analysis, Config, Level, Value, log};

/// A rollout strategy: the `rollout` (and `settings`) interfaces of the
/// `validated-strategy` world.
pub trait Strategy {
    /// The next step of a rollout that is progressing or promoting.
    fn decide(
        spec: &RolloutSpec,
        state: &RolloutState,
        observation: &Observation,
    ) -> Result<Action, String>;

    /// The routes for a state. Must send every request to the primary when
    /// the canary weight is 0 and no iteration has run.
    fn route(spec: &RolloutSpec, state: &RolloutState) -> Result<RoutePlan, String>;

    /// Checks the strategy's settings (the Canary's `strategyConfig`, else
    /// the RolloutPlugin's `config`) when the Canary changes, before they
    /// are used; an error refuses the Canary with its message. Defaults to
    /// accepting everything.
    fn validate_config(_config: &str) -> Result<(), String> {
        Ok(())
    }
}

/// Adapts a [`Strategy`] to the generated `Guest` traits. Used by
/// [`v2::export_strategy!`](crate::v2::export_strategy); not meant to be
/// named.
#[doc(hidden)]
pub struct __Adapter<T>(PhantomData<T>);

impl<T: Strategy> rollout::Guest for __Adapter<T> {
    fn decide(
        spec: RolloutSpec,
        state: RolloutState,
        observation: Observation,
    ) -> Result<Action, String> {
        T::decide(&spec, &state, &observation)
    }

    fn route(spec: RolloutSpec, state: RolloutState) -> Result<RoutePlan, String> {
        T::route(&spec, &state)
    }
}

impl<T: Strategy> settings::Guest for __Adapter<T> {
    fn validate_config(config: String) -> Result<(), String> {
        T::validate_config(&config)
    }
}

/// Exports a type implementing [`v2::strategy::Strategy`](Strategy) as the
/// component's `rollout` and `settings` interfaces (the
/// `validated-strategy` world of `sluice:plugin@0.2.0`). Call it once, at
/// the top level of a `cdylib` crate; also reachable as
/// `sluice_plugin_sdk::v2::export_strategy!`.
#[macro_export]
macro_rules! export_strategy_v2 {
    ($ty:ty) => {
        #[doc(hidden)]
        type __SluiceStrategyExportV2 = $crate::v2::strategy::__Adapter<$ty>;
        $crate::bindings::v2::strategy::__export_strategy_v2_world!(
            __SluiceStrategyExportV2 with_types_in $crate::bindings::v2::strategy
        );
        $crate::bindings::v2::settings::__export_settings_v2_world!(
            __SluiceStrategyExportV2 with_types_in $crate::bindings::v2::settings
        );
    };
}

/// The WIT name of a phase, e.g. `waiting-promotion`.
pub fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Waiting => "waiting",
        Phase::Progressing => "progressing",
        Phase::WaitingPromotion => "waiting-promotion",
        Phase::Promoting => "promoting",
    }
}

/// Parses the Canary's Flagger settings, `spec.analysis`.
pub fn analysis(spec: &RolloutSpec) -> Result<Analysis, String> {
    Analysis::parse(&spec.analysis)
}

/// Parses the strategy's own settings, `spec.config` (empty means none,
/// else a JSON object).
pub fn config(spec: &RolloutSpec) -> Result<Config, String> {
    Config::parse(&spec.config)
}

/// Whether the canary may receive traffic in `state`: the rollout has taken
/// its first step. The host refuses any route plan that sends or mirrors
/// traffic to the canary otherwise.
pub fn canary_active(state: &RolloutState) -> bool {
    state.canary_weight > 0 || state.iterations > 0
}

/// A backend with no cookie.
pub fn backend(backend: Backend, weight: u32) -> WeightedBackend {
    WeightedBackend {
        backend,
        weight,
        set_cookie: None,
    }
}

/// A rule with no mirror, no cookie and no filters.
pub fn rule(matches: Vec<HttpMatch>, backends: Vec<WeightedBackend>) -> RouteRule {
    RouteRule {
        matches,
        backends,
        mirror: None,
        set_cookie: None,
        filters: Vec::new(),
    }
}

/// The plain canary route: one catch-all rule splitting traffic between the
/// primary (`100 - canary_weight`) and the canary (`canary_weight`, clamped
/// to 0–100). Both backends are always listed, primary first; no matches,
/// no mirror, no cookies, no filters.
pub fn weighted_route(canary_weight: u32) -> RoutePlan {
    let canary = canary_weight.min(100);
    RoutePlan {
        rules: vec![rule(
            Vec::new(),
            vec![
                backend(Backend::Primary, 100 - canary),
                backend(Backend::Canary, canary),
            ],
        )],
    }
}

/// A match on a path prefix alone.
pub fn path_prefix_match(prefix: &str) -> HttpMatch {
    HttpMatch {
        path_prefix: Some(prefix.to_string()),
        headers: Vec::new(),
        query_params: Vec::new(),
        method: None,
    }
}

/// A header match on `Cookie` that holds when the request carries the
/// cookie `name=value` (anywhere in the header).
pub fn cookie_match(name: &str, value: &str) -> HttpMatch {
    HttpMatch {
        path_prefix: None,
        headers: vec![HeaderMatch {
            name: "Cookie".to_string(),
            value: StringMatch::Regex(format!(
                "^(.*?;\\s*)?({}={})(;.*)?$",
                regex_escape(name),
                regex_escape(value)
            )),
        }],
        query_params: Vec::new(),
        method: None,
    }
}

/// A header modifier that sets the given headers and nothing else.
pub fn set_headers(headers: &[(&str, &str)]) -> HeaderModifier {
    HeaderModifier {
        set: headers
            .iter()
            .map(|(name, value)| HttpHeader {
                name: (*name).to_string(),
                value: (*value).to_string(),
            })
            .collect(),
        add: Vec::new(),
        remove: Vec::new(),
    }
}

/// A filter that sets headers on the responses of a rule.
pub fn set_response_headers(headers: &[(&str, &str)]) -> RouteFilter {
    RouteFilter::ResponseHeaderModifier(set_headers(headers))
}

/// A filter that sets headers on the requests of a rule, before they reach
/// a backend.
pub fn set_request_headers(headers: &[(&str, &str)]) -> RouteFilter {
    RouteFilter::RequestHeaderModifier(set_headers(headers))
}

/// A filter that redirects to `path` on the same scheme, host and port,
/// with `status_code` (301 or 302). A redirect answers the request itself:
/// the rule needs a match and should send no traffic to the canary.
pub fn redirect_to_path(path: &str, status_code: u16) -> RouteFilter {
    RouteFilter::RequestRedirect(RequestRedirect {
        scheme: None,
        hostname: None,
        path: Some(path.to_string()),
        port: None,
        status_code: Some(status_code),
    })
}

/// Flagger's promotion step, shared by weighted-style strategies: while
/// promoting, with `stepWeightPromotion` set, take traffic off the canary
/// in steps of that size and finalise once it reaches 0; without it,
/// finalise at once.
pub fn promotion_step(analysis: &Analysis, state: &RolloutState) -> Action {
    match analysis.step_weight_promotion {
        Some(step) if step > 0 && state.canary_weight > 0 => {
            let weight = state.canary_weight.saturating_sub(step);
            if weight == 0 {
                Action::Finalise
            } else {
                Action::Advance(Advance {
                    canary_weight: weight,
                    iterations: state.iterations,
                })
            }
        }
        _ => Action::Finalise,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A spec as the host sends it for the guide's weighted Canary.
    pub(crate) fn spec(analysis: &str, config: &str) -> RolloutSpec {
        RolloutSpec {
            interval_seconds: 60,
            threshold: 5,
            max_weight: 50,
            matches: Vec::new(),
            session_affinity: None,
            analysis: analysis.to_string(),
            config: config.to_string(),
        }
    }

    pub(crate) fn state(phase: Phase, canary_weight: u32, iterations: u32) -> RolloutState {
        RolloutState {
            phase,
            canary_weight,
            iterations,
            failed_checks: 0,
        }
    }

    /// Routes by weight, checks its settings.
    struct Checked;

    impl Strategy for Checked {
        fn decide(_: &RolloutSpec, _: &RolloutState, _: &Observation) -> Result<Action, String> {
            Ok(Action::Hold("waiting".into()))
        }

        fn route(_: &RolloutSpec, state: &RolloutState) -> Result<RoutePlan, String> {
            Ok(weighted_route(state.canary_weight))
        }

        fn validate_config(config: &str) -> Result<(), String> {
            Config::parse(config).map(|_| ())
        }
    }

    /// Leaves `validate_config` to its default.
    struct Unchecked;

    impl Strategy for Unchecked {
        fn decide(_: &RolloutSpec, _: &RolloutState, _: &Observation) -> Result<Action, String> {
            Ok(Action::Promote)
        }

        fn route(_: &RolloutSpec, _: &RolloutState) -> Result<RoutePlan, String> {
            Ok(weighted_route(0))
        }
    }

    #[test]
    fn the_adapter_forwards_calls_and_settings_checks() {
        type A = __Adapter<Checked>;
        let observation = Observation {
            now_unix_seconds: 10,
            phase_started_unix_seconds: 0,
        };
        assert_eq!(
            <A as rollout::Guest>::decide(
                spec("", ""),
                state(Phase::Progressing, 0, 0),
                observation
            ),
            Ok(Action::Hold("waiting".into()))
        );
        assert_eq!(
            <A as rollout::Guest>::route(spec("", ""), state(Phase::Progressing, 20, 0)),
            Ok(weighted_route(20))
        );
        assert_eq!(
            <A as settings::Guest>::validate_config(r#"{"a": 1}"#.into()),
            Ok(())
        );
        assert_eq!(
            <A as settings::Guest>::validate_config("[1]".into()),
            Err("invalid plugin config: expected a JSON object, got an array".into())
        );
        // The default accepts anything.
        type U = __Adapter<Unchecked>;
        assert_eq!(
            <U as settings::Guest>::validate_config("[1]".into()),
            Ok(())
        );
    }

    #[test]
    fn weighted_route_splits_and_clamps() {
        let plan = weighted_route(30);
        assert_eq!(plan.rules.len(), 1);
        let r = &plan.rules[0];
        assert!(r.matches.is_empty() && r.filters.is_empty() && r.mirror.is_none());
        assert_eq!(
            r.backends,
            vec![backend(Backend::Primary, 70), backend(Backend::Canary, 30)]
        );
        let plan = weighted_route(150);
        assert_eq!(plan.rules[0].backends[0].weight, 0);
        assert_eq!(plan.rules[0].backends[1].weight, 100);
    }

    #[test]
    fn filter_helpers() {
        assert_eq!(
            set_response_headers(&[("x-sluice-weight", "30")]),
            RouteFilter::ResponseHeaderModifier(HeaderModifier {
                set: vec![HttpHeader {
                    name: "x-sluice-weight".into(),
                    value: "30".into()
                }],
                add: Vec::new(),
                remove: Vec::new(),
            })
        );
        assert!(matches!(
            set_request_headers(&[("a", "b")]),
            RouteFilter::RequestHeaderModifier(_)
        ));
        assert_eq!(
            redirect_to_path("/", 301),
            RouteFilter::RequestRedirect(RequestRedirect {
                scheme: None,
                hostname: None,
                path: Some("/".into()),
                port: None,
                status_code: Some(301),
            })
        );
        assert_eq!(
            path_prefix_match("/legacy").path_prefix.as_deref(),
            Some("/legacy")
        );
    }

    #[test]
    fn settings_from_the_spec() {
        let s = spec(r#"{"stepWeight": 20, "maxWeight": 60}"#, r#"{"factor": 2}"#);
        let a = analysis(&s).unwrap();
        assert_eq!((a.step_weight, a.max_weight), (Some(20), Some(60)));
        assert_eq!(config(&s).unwrap().get_f64("factor"), Ok(Some(2.0)));
        assert!(analysis(&spec("{", "")).is_err());
        assert!(config(&spec("", "[]")).is_err());
    }

    #[test]
    fn phases_and_activity() {
        assert_eq!(phase_name(Phase::WaitingPromotion), "waiting-promotion");
        assert_eq!(phase_name(Phase::Waiting), "waiting");
        assert!(!canary_active(&state(Phase::Waiting, 0, 0)));
        assert!(canary_active(&state(Phase::Progressing, 0, 1)));
        assert!(canary_active(&state(Phase::Promoting, 10, 0)));
    }

    #[test]
    fn promotion_steps_back_or_finalises() {
        let a = Analysis {
            step_weight_promotion: Some(30),
            ..Analysis::default()
        };
        assert_eq!(
            promotion_step(&a, &state(Phase::Promoting, 50, 0)),
            Action::Advance(Advance {
                canary_weight: 20,
                iterations: 0
            })
        );
        assert_eq!(
            promotion_step(&a, &state(Phase::Promoting, 20, 0)),
            Action::Finalise
        );
        assert_eq!(
            promotion_step(&Analysis::default(), &state(Phase::Promoting, 50, 0)),
            Action::Finalise
        );
    }
}
