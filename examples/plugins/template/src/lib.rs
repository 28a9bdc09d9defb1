//! A starting point for a Sluice strategy plugin: Flagger's weighted canary
//! with one setting of its own. Replace the logic of [`decide`] and
//! [`TemplateStrategy::route`] with yours, keep the tests honest, and see
//! `docs/plugins.md` for the whole contract.
//!
//! Settings, from the Canary's `analysis.strategyConfig` (passed as JSON):
//!
//! ```json
//! {"firstStep": 1}
//! ```
//!
//! `firstStep` is the canary weight of the first step (default: the
//! Canary's `stepWeight`); the following steps add `stepWeight` up to
//! `maxWeight`, then the canary is promoted. Routing is the built-in
//! weighted strategy's: with the Canary's `analysis.match`, only the
//! matching requests are split between primary and canary.

use sluice_plugin_sdk::config::Config;
use sluice_plugin_sdk::progression;
use sluice_plugin_sdk::strategy::{
    Action, Advance, AnalysisSpec, Level, Observation, Phase, RolloutState, RoutePlan, Strategy,
    canary_active, log, phase_name, weighted_route,
};

/// The name used in messages.
const NAME: &str = "template";

pub struct TemplateStrategy;

impl Strategy for TemplateStrategy {
    /// Called while progressing (when every check of the tick passed) and
    /// while promoting. `observation` carries the host's clock: plugins
    /// have none of their own.
    fn decide(
        spec: &AnalysisSpec,
        state: &RolloutState,
        _observation: &Observation,
    ) -> Result<Action, String> {
        let action = decide(spec, state)?;
        log(Level::Debug, &format!("{NAME}: {action:?}"));
        Ok(action)
    }

    /// The routes of a state; the host checks every plan it gets (see
    /// [`route`]).
    fn route(spec: &AnalysisSpec, state: &RolloutState) -> Result<RoutePlan, String> {
        Ok(route(spec, state))
    }
}

sluice_plugin_sdk::export_strategy!(TemplateStrategy);

/// The routes of `state`. The host refuses a plan unless:
/// - the last rule matches every request and sends the state's weight to
///   the canary: none at rest or before the first step ([`canary_active`]),
///   and none when the Canary has `analysis.match`;
/// - every other rule has conditions, and reaches the canary only for the
///   Canary's own `analysis.match` (or its session-affinity cookie).
///
/// So with `match` (Flagger's canary for a subset of users) the weighted
/// split applies to the matching requests only, and a last rule sends
/// every other request to the primary, as in the built-in weighted
/// strategy. `sluice plugin check --fuzz` tries these rules on generated
/// Canaries.
pub fn route(spec: &AnalysisSpec, state: &RolloutState) -> RoutePlan {
    let weight = if canary_active(state) {
        state.canary_weight
    } else {
        0
    };
    let mut plan = weighted_route(weight);
    if !spec.matches.is_empty() {
        plan.rules[0].matches = spec.matches.clone();
        plan.rules.extend(weighted_route(0).rules);
    }
    plan
}

/// `firstStep` from the settings, if set. An `Err` from a plugin counts as
/// a failed check, with this message in the Canary's events.
pub fn first_step(config: &str) -> Result<Option<u32>, String> {
    let config = Config::parse(config).map_err(|e| format!("{NAME} strategy: {e}"))?;
    match config
        .get_u32("firstStep")
        .map_err(|e| format!("{NAME} strategy: {e}"))?
    {
        Some(0) => Err(format!("{NAME} strategy: firstStep must be at least 1")),
        step => Ok(step),
    }
}

/// The next step of the rollout: the logic, plain Rust, testable natively.
pub fn decide(spec: &AnalysisSpec, state: &RolloutState) -> Result<Action, String> {
    match state.phase {
        Phase::Progressing if state.canary_weight == 0 => match first_step(&spec.config)? {
            Some(step) => Ok(Action::Advance(Advance {
                canary_weight: step.min(progression::max_weight(spec)),
                iterations: state.iterations,
            })),
            None => progression::weighted(NAME, spec, state),
        },
        // The SDK's building blocks: Flagger's weighted steps, and
        // `stepWeightPromotion` while promoting.
        Phase::Progressing | Phase::Promoting => progression::weighted(NAME, spec, state),
        other => Err(format!(
            "{NAME} strategy: decide called in phase {}",
            phase_name(other)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_plugin_sdk::strategy::{HeaderMatch, HttpMatch, StringMatch};

    fn spec(config: &str) -> AnalysisSpec {
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
            config: config.to_string(),
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

    /// The weights a rollout goes through until the strategy promotes.
    fn weights(spec: &AnalysisSpec) -> Vec<u32> {
        let mut weights = Vec::new();
        let mut weight = 0;
        for _ in 0..100 {
            match decide(spec, &state(Phase::Progressing, weight)).unwrap() {
                Action::Advance(a) => {
                    weight = a.canary_weight;
                    weights.push(weight);
                }
                Action::Promote => return weights,
                other => panic!("unexpected {other:?}"),
            }
        }
        panic!("never promoted: {weights:?}");
    }

    #[test]
    fn steps_up_then_promotes() {
        assert_eq!(weights(&spec("")), [10, 20, 30, 40, 50]);
        assert_eq!(
            weights(&spec(r#"{"firstStep": 1}"#)),
            [1, 11, 21, 31, 41, 50]
        );
        assert_eq!(weights(&spec(r#"{"firstStep": 80}"#)), [50]);
    }

    #[test]
    fn bad_settings_are_errors() {
        let e = decide(&spec(r#"{"firstStep": 0}"#), &state(Phase::Progressing, 0)).unwrap_err();
        assert_eq!(e, "template strategy: firstStep must be at least 1");
        assert!(decide(&spec("{oops"), &state(Phase::Progressing, 0)).is_err());
    }

    #[test]
    fn finishes_a_promotion_and_refuses_other_phases() {
        assert_eq!(
            decide(&spec(""), &state(Phase::Promoting, 50)),
            Ok(Action::Finalise)
        );
        assert!(decide(&spec(""), &state(Phase::Succeeded, 0)).is_err());
    }

    #[test]
    fn routes_by_weight() {
        let plan = TemplateStrategy::route(&spec(""), &state(Phase::Progressing, 30)).unwrap();
        let weights: Vec<u32> = plan.rules[0].backends.iter().map(|b| b.weight).collect();
        assert_eq!(weights, [70, 30]);
        // At rest: everything on the primary.
        let plan = TemplateStrategy::route(&spec(""), &state(Phase::Initialized, 0)).unwrap();
        assert_eq!(plan.rules[0].backends[1].weight, 0);
    }

    #[test]
    fn with_match_only_matching_requests_reach_the_canary() {
        let insider = HttpMatch {
            path_prefix: None,
            headers: vec![HeaderMatch {
                name: "x-canary".to_string(),
                value: StringMatch::Exact("insider".to_string()),
            }],
            query_params: Vec::new(),
            method: None,
        };
        let s = AnalysisSpec {
            matches: vec![insider.clone()],
            ..spec("")
        };
        let plan = route(&s, &state(Phase::Progressing, 30));
        assert_eq!(plan.rules.len(), 2);
        // The matching requests: split by weight.
        assert_eq!(plan.rules[0].matches, [insider]);
        assert_eq!(plan.rules[0].backends[1].weight, 30);
        // Every other request: the primary.
        assert!(plan.rules[1].matches.is_empty());
        assert_eq!(plan.rules[1].backends[1].weight, 0);
    }
}
