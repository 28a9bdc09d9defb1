//! An example custom strategy for Sluice: the canary's weight doubles at
//! every step, 0 → 5 → 10 → 20 → 40 → 80, capped at `maxWeight`, and the
//! canary is promoted once it is at the maximum.
//!
//! Settings, from the Canary's `analysis.strategyConfig` (passed as JSON):
//!
//! ```json
//! {"firstStep": 5}
//! ```
//!
//! `firstStep` is the weight of the first step (default 5). The maximum is
//! the Canary's `maxWeight` (or the last of `stepWeights`). Promotion
//! (`stepWeightPromotion`) and routing work as in the built-in weighted
//! strategy: with `analysis.match`, only the matching requests are split
//! between primary and canary, and every other request stays on the
//! primary.

use sluice_plugin_sdk::config::Config;
use sluice_plugin_sdk::progression;
use sluice_plugin_sdk::strategy::{
    Action, Advance, AnalysisSpec, Level, Observation, Phase, RolloutState, RoutePlan, Strategy,
    canary_active, log, phase_name, promotion_step, weighted_route,
};

/// The weight of the first step unless `firstStep` says otherwise.
pub const DEFAULT_FIRST_STEP: u32 = 5;

pub struct Doubling;

impl Strategy for Doubling {
    fn decide(
        spec: &AnalysisSpec,
        state: &RolloutState,
        _observation: &Observation,
    ) -> Result<Action, String> {
        let action = decide(spec, state)?;
        if let Action::Advance(a) = &action {
            log(
                Level::Debug,
                &format!(
                    "doubling: canary weight {} -> {}",
                    state.canary_weight, a.canary_weight
                ),
            );
        }
        Ok(action)
    }

    fn route(spec: &AnalysisSpec, state: &RolloutState) -> Result<RoutePlan, String> {
        Ok(route(spec, state))
    }
}

sluice_plugin_sdk::export_strategy!(Doubling);

/// The routes of `state`, as the built-in weighted strategy makes them: one
/// rule splitting traffic between primary and canary at the state's weight
/// (none on the canary before the first step or at rest). With the
/// Canary's `analysis.match` (Flagger's canary for a subset of users), that
/// split applies to the matching requests only, and a last rule sends every
/// other request to the primary.
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

/// `firstStep` from the config string.
pub fn first_step(config: &str) -> Result<u32, String> {
    let config = Config::parse(config).map_err(|e| format!("doubling strategy: {e}"))?;
    match config
        .get_u32("firstStep")
        .map_err(|e| format!("doubling strategy: {e}"))?
    {
        None => Ok(DEFAULT_FIRST_STEP),
        Some(0) => Err("doubling strategy: firstStep must be at least 1".to_string()),
        Some(step) => Ok(step),
    }
}

/// The next step of the rollout.
pub fn decide(spec: &AnalysisSpec, state: &RolloutState) -> Result<Action, String> {
    match state.phase {
        Phase::Progressing => {
            let max = progression::max_weight(spec);
            if state.canary_weight >= max {
                return Ok(Action::Promote);
            }
            let next = if state.canary_weight == 0 {
                first_step(&spec.config)?
            } else {
                state.canary_weight.saturating_mul(2)
            };
            Ok(Action::Advance(Advance {
                canary_weight: next.min(max),
                iterations: state.iterations,
            }))
        }
        Phase::Promoting => Ok(promotion_step(spec, state)),
        other => Err(format!(
            "doubling strategy: decide called in phase {}",
            phase_name(other)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_plugin_sdk::strategy::{HeaderMatch, HttpMatch, StringMatch};

    fn spec(max_weight: u32, config: &str) -> AnalysisSpec {
        AnalysisSpec {
            interval_seconds: 60,
            threshold: 5,
            max_weight,
            step_weight: None,
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

    fn progression(spec: &AnalysisSpec) -> Vec<u32> {
        let mut weights = Vec::new();
        let mut w = 0;
        loop {
            match decide(spec, &state(Phase::Progressing, w)).unwrap() {
                Action::Advance(a) => {
                    w = a.canary_weight;
                    weights.push(w);
                }
                Action::Promote => return weights,
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn doubles_up_to_max() {
        assert_eq!(progression(&spec(80, "")), vec![5, 10, 20, 40, 80]);
        assert_eq!(progression(&spec(100, "")), vec![5, 10, 20, 40, 80, 100]);
        assert_eq!(progression(&spec(30, "")), vec![5, 10, 20, 30]);
    }

    #[test]
    fn first_step_from_config() {
        assert_eq!(
            progression(&spec(100, r#"{"firstStep": 1}"#)),
            vec![1, 2, 4, 8, 16, 32, 64, 100]
        );
        assert_eq!(progression(&spec(50, r#"{"firstStep": 60}"#)), vec![50]);
        assert!(
            decide(
                &spec(100, r#"{"firstStep": 0}"#),
                &state(Phase::Progressing, 0)
            )
            .is_err()
        );
        assert!(decide(&spec(100, "{oops"), &state(Phase::Progressing, 0)).is_err());
    }

    #[test]
    fn promotes_and_finalises() {
        assert_eq!(
            decide(&spec(80, ""), &state(Phase::Promoting, 80)),
            Ok(Action::Finalise)
        );
        let s = AnalysisSpec {
            step_weight_promotion: Some(50),
            ..spec(80, "")
        };
        assert_eq!(
            decide(&s, &state(Phase::Promoting, 80)),
            Ok(Action::Advance(Advance {
                canary_weight: 30,
                iterations: 0
            }))
        );
        assert!(decide(&s, &state(Phase::Waiting, 0)).is_err());
    }

    #[test]
    fn stops_at_the_last_of_step_weights() {
        let s = AnalysisSpec {
            step_weights: vec![10, 30],
            ..spec(100, "")
        };
        assert_eq!(progression(&s), vec![5, 10, 20, 30]);
    }

    /// (matches, primary weight, canary weight) of each rule.
    fn rules(plan: &RoutePlan) -> Vec<(usize, u32, u32)> {
        plan.rules
            .iter()
            .map(|r| (r.matches.len(), r.backends[0].weight, r.backends[1].weight))
            .collect()
    }

    #[test]
    fn routes_like_weighted() {
        let plan = Doubling::route(&spec(80, ""), &state(Phase::Progressing, 20)).unwrap();
        assert_eq!(rules(&plan), vec![(0, 80, 20)]);
        // At rest, everything on the primary.
        assert_eq!(
            rules(&route(&spec(80, ""), &state(Phase::Succeeded, 0))),
            vec![(0, 100, 0)]
        );
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
            ..spec(80, "")
        };
        let plan = route(&s, &state(Phase::Progressing, 20));
        assert_eq!(rules(&plan), vec![(1, 80, 20), (0, 100, 0)]);
        assert_eq!(plan.rules[0].matches, vec![insider]);
    }
}
