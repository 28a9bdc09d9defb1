//! Strategy plugins: how traffic moves during a rollout.
//!
//! Implement [`Strategy`] and call [`export_strategy!`](crate::export_strategy).

use std::marker::PhantomData;

use crate::bindings::strategy::exports::sluice::plugin::rollout;
pub use crate::bindings::strategy::sluice::plugin::strategy_types::{
    Action, Advance, AnalysisSpec, Observation, Phase, RolloutState, SessionAffinity,
};
pub use crate::bindings::strategy::sluice::plugin::types::{
    Backend, HeaderMatch, HttpMatch, Mirror, QueryParamMatch, ResponseCookie, RoutePlan, RouteRule,
    StringMatch, WeightedBackend,
};
pub use crate::{Level, log};

/// A rollout strategy: the `rollout` interface of the `strategy` world.
pub trait Strategy {
    /// The next step of a rollout that is progressing or promoting.
    fn decide(
        spec: &AnalysisSpec,
        state: &RolloutState,
        observation: &Observation,
    ) -> Result<Action, String>;

    /// The routes for a state. Must send every request to the primary when
    /// the canary weight is 0 and no iteration has run.
    fn route(spec: &AnalysisSpec, state: &RolloutState) -> Result<RoutePlan, String>;
}

/// Adapts a [`Strategy`] to the generated `Guest` trait. Used by
/// [`export_strategy!`](crate::export_strategy); not meant to be named.
#[doc(hidden)]
pub struct __Adapter<T>(PhantomData<T>);

impl<T: Strategy> rollout::Guest for __Adapter<T> {
    fn decide(
        spec: AnalysisSpec,
        state: RolloutState,
        observation: Observation,
    ) -> Result<Action, String> {
        T::decide(&spec, &state, &observation)
    }

    fn route(spec: AnalysisSpec, state: RolloutState) -> Result<RoutePlan, String> {
        T::route(&spec, &state)
    }
}

/// Exports a type implementing [`Strategy`] as the component's `rollout`
/// interface. Call it once, at the top level of a `cdylib` crate.
#[macro_export]
macro_rules! export_strategy {
    ($ty:ty) => {
        #[doc(hidden)]
        type __SluiceStrategyExport = $crate::strategy::__Adapter<$ty>;
        $crate::bindings::strategy::__export_strategy_world!(
            __SluiceStrategyExport with_types_in $crate::bindings::strategy
        );
    };
}

/// The WIT name of a phase, e.g. `waiting-promotion`.
pub fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Initializing => "initializing",
        Phase::Initialized => "initialized",
        Phase::Waiting => "waiting",
        Phase::Progressing => "progressing",
        Phase::WaitingPromotion => "waiting-promotion",
        Phase::Promoting => "promoting",
        Phase::Finalising => "finalising",
        Phase::Succeeded => "succeeded",
        Phase::Failed => "failed",
        Phase::Terminating => "terminating",
        Phase::Terminated => "terminated",
    }
}

/// The plain canary route: one catch-all rule splitting traffic between the
/// primary (`100 - canary_weight`) and the canary (`canary_weight`, clamped to
/// 0–100). Both backends are always listed, primary first; no matches, no
/// mirror, no cookies.
pub fn weighted_route(canary_weight: u32) -> RoutePlan {
    let canary = canary_weight.min(100);
    RoutePlan {
        rules: vec![RouteRule {
            matches: Vec::new(),
            backends: vec![
                WeightedBackend {
                    backend: Backend::Primary,
                    weight: 100 - canary,
                    set_cookie: None,
                },
                WeightedBackend {
                    backend: Backend::Canary,
                    weight: canary,
                    set_cookie: None,
                },
            ],
            mirror: None,
            set_cookie: None,
        }],
    }
}

/// Whether the canary may receive traffic in `state`: a rollout is running
/// and has taken its first step. The host refuses any route plan that sends
/// or mirrors traffic to the canary otherwise.
pub fn canary_active(state: &RolloutState) -> bool {
    matches!(
        state.phase,
        Phase::Progressing | Phase::Promoting | Phase::WaitingPromotion | Phase::Waiting
    ) && (state.canary_weight > 0 || state.iterations > 0)
}

/// A backend with no cookie.
pub fn backend(backend: Backend, weight: u32) -> WeightedBackend {
    WeightedBackend {
        backend,
        weight,
        set_cookie: None,
    }
}

/// A rule with no mirror and no cookie.
pub fn rule(matches: Vec<HttpMatch>, backends: Vec<WeightedBackend>) -> RouteRule {
    RouteRule {
        matches,
        backends,
        mirror: None,
        set_cookie: None,
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

/// Escapes the regex metacharacters of RE2 and Rust's `regex` (the same set).
pub fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Flagger's promotion step, shared by weighted-style strategies: while
/// promoting, with `step-weight-promotion` set, take traffic off the canary in
/// steps of that size and finalise once it reaches 0; without it, finalise at
/// once.
pub fn promotion_step(spec: &AnalysisSpec, state: &RolloutState) -> Action {
    match spec.step_weight_promotion {
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
mod tests {
    use super::*;

    #[test]
    fn weighted_route_splits_and_clamps() {
        let plan = weighted_route(30);
        assert_eq!(plan.rules.len(), 1);
        let rule = &plan.rules[0];
        assert!(rule.matches.is_empty());
        assert!(rule.mirror.is_none());
        assert_eq!(rule.backends.len(), 2);
        assert!(matches!(rule.backends[0].backend, Backend::Primary));
        assert_eq!(rule.backends[0].weight, 70);
        assert!(matches!(rule.backends[1].backend, Backend::Canary));
        assert_eq!(rule.backends[1].weight, 30);

        let plan = weighted_route(150);
        assert_eq!(plan.rules[0].backends[0].weight, 0);
        assert_eq!(plan.rules[0].backends[1].weight, 100);
    }

    #[test]
    fn phase_names() {
        assert_eq!(phase_name(Phase::WaitingPromotion), "waiting-promotion");
        assert_eq!(phase_name(Phase::Progressing), "progressing");
    }
}
