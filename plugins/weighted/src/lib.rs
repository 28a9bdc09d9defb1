//! The built-in `weighted` strategy: Flagger's weighted canary.
//!
//! While progressing, traffic moves to the canary by `step-weight` (default
//! 10) up to `max-weight`, or through the explicit `step-weights` list; at the
//! maximum the canary is promoted. While promoting, `step-weight-promotion`
//! (if set) moves traffic back to the primary step by step before the rollout
//! is finalised. The route is a single rule splitting traffic between the
//! primary and the canary.

use sluice_plugin_sdk::progression;
use sluice_plugin_sdk::strategy::{
    Action, AnalysisSpec, Observation, RolloutState, RoutePlan, Strategy, weighted_route,
};

pub use progression::{DEFAULT_STEP_WEIGHT, max_weight, next_weight};

pub struct Weighted;

impl Strategy for Weighted {
    fn decide(
        spec: &AnalysisSpec,
        state: &RolloutState,
        _observation: &Observation,
    ) -> Result<Action, String> {
        decide(spec, state)
    }

    fn route(_spec: &AnalysisSpec, state: &RolloutState) -> Result<RoutePlan, String> {
        // Session affinity is the `session-affinity` strategy's job.
        Ok(weighted_route(state.canary_weight))
    }
}

sluice_plugin_sdk::export_strategy!(Weighted);

/// The strategy's decision, without the observation (it does not need the
/// clock: the host calls it once per passing tick).
pub fn decide(spec: &AnalysisSpec, state: &RolloutState) -> Result<Action, String> {
    progression::weighted("weighted", spec, state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_plugin_sdk::strategy::{Backend, Phase, SessionAffinity};

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
            iterations: 3,
            failed_checks: 0,
        }
    }

    fn advance(action: Result<Action, String>) -> u32 {
        match action {
            Ok(Action::Advance(a)) => {
                assert_eq!(a.iterations, 3);
                a.canary_weight
            }
            other => panic!("expected advance, got {other:?}"),
        }
    }

    /// Runs `decide` from weight 0 while progressing; the weights visited.
    fn progression(spec: &AnalysisSpec) -> Vec<u32> {
        let mut weights = Vec::new();
        let mut w = 0;
        loop {
            match decide(spec, &state(Phase::Progressing, w)).unwrap() {
                Action::Advance(a) => {
                    assert!(a.canary_weight > w, "must make progress");
                    w = a.canary_weight;
                    weights.push(w);
                }
                Action::Promote => return weights,
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn steps_by_step_weight_to_max() {
        assert_eq!(progression(&spec()), vec![10, 20, 30, 40, 50]);
        assert_eq!(advance(decide(&spec(), &state(Phase::Progressing, 0))), 10);
        assert!(matches!(
            decide(&spec(), &state(Phase::Progressing, 50)),
            Ok(Action::Promote)
        ));
        assert!(matches!(
            decide(&spec(), &state(Phase::Progressing, 70)),
            Ok(Action::Promote)
        ));
    }

    #[test]
    fn last_step_is_capped_at_max() {
        let s = AnalysisSpec {
            step_weight: Some(20),
            ..spec()
        };
        assert_eq!(progression(&s), vec![20, 40, 50]);
    }

    #[test]
    fn default_step_weight_is_ten() {
        let s = AnalysisSpec {
            step_weight: None,
            max_weight: 30,
            ..spec()
        };
        assert_eq!(progression(&s), vec![10, 20, 30]);
        let s = AnalysisSpec {
            step_weight: Some(0),
            ..s
        };
        assert_eq!(progression(&s), vec![10, 20, 30]);
    }

    #[test]
    fn step_weights_list() {
        let s = AnalysisSpec {
            step_weights: vec![1, 2, 10, 80],
            // Ignored when step-weights is set.
            max_weight: 50,
            ..spec()
        };
        assert_eq!(progression(&s), vec![1, 2, 10, 80]);
        // From a weight between steps, the next larger step.
        assert_eq!(advance(decide(&s, &state(Phase::Progressing, 5))), 10);
        assert!(matches!(
            decide(&s, &state(Phase::Progressing, 80)),
            Ok(Action::Promote)
        ));
    }

    #[test]
    fn promoting_without_step_weight_promotion_finalises() {
        assert!(matches!(
            decide(&spec(), &state(Phase::Promoting, 50)),
            Ok(Action::Finalise)
        ));
        let s = AnalysisSpec {
            step_weight_promotion: Some(0),
            ..spec()
        };
        assert!(matches!(
            decide(&s, &state(Phase::Promoting, 50)),
            Ok(Action::Finalise)
        ));
    }

    #[test]
    fn promoting_with_step_weight_promotion() {
        let s = AnalysisSpec {
            step_weight_promotion: Some(20),
            ..spec()
        };
        assert_eq!(advance(decide(&s, &state(Phase::Promoting, 50))), 30);
        assert_eq!(advance(decide(&s, &state(Phase::Promoting, 30))), 10);
        assert!(matches!(
            decide(&s, &state(Phase::Promoting, 10)),
            Ok(Action::Finalise)
        ));
        assert!(matches!(
            decide(&s, &state(Phase::Promoting, 20)),
            Ok(Action::Finalise)
        ));
        assert!(matches!(
            decide(&s, &state(Phase::Promoting, 0)),
            Ok(Action::Finalise)
        ));
    }

    #[test]
    fn other_phases_are_errors() {
        let e = decide(&spec(), &state(Phase::WaitingPromotion, 0)).unwrap_err();
        assert_eq!(
            e,
            "weighted strategy: decide called in phase waiting-promotion"
        );
        assert!(decide(&spec(), &state(Phase::Succeeded, 0)).is_err());
    }

    #[test]
    fn route_splits_traffic() {
        let plan = Weighted::route(&spec(), &state(Phase::Progressing, 0)).unwrap();
        assert_eq!(plan.rules.len(), 1);
        let rule = &plan.rules[0];
        assert!(rule.matches.is_empty() && rule.mirror.is_none());
        let weights: Vec<_> = rule
            .backends
            .iter()
            .map(|b| {
                (
                    matches!(b.backend, Backend::Primary),
                    b.weight,
                    b.set_cookie.is_none(),
                )
            })
            .collect();
        assert_eq!(weights, vec![(true, 100, true), (false, 0, true)]);

        let plan = Weighted::route(&spec(), &state(Phase::Progressing, 40)).unwrap();
        assert_eq!(plan.rules[0].backends[0].weight, 60);
        assert_eq!(plan.rules[0].backends[1].weight, 40);

        let plan = Weighted::route(&spec(), &state(Phase::Progressing, 250)).unwrap();
        assert_eq!(plan.rules[0].backends[0].weight, 0);
        assert_eq!(plan.rules[0].backends[1].weight, 100);
    }

    #[test]
    fn route_ignores_session_affinity() {
        let s = AnalysisSpec {
            session_affinity: Some(SessionAffinity {
                cookie_name: "canary".into(),
                max_age_seconds: 60,
                cookie_value: "abc".into(),
                previous_cookie_value: None,
                primary_cookie_name: None,
            }),
            ..spec()
        };
        let plan = Weighted::route(&s, &state(Phase::Progressing, 20)).unwrap();
        assert_eq!(plan.rules.len(), 1);
        assert!(
            plan.rules[0]
                .backends
                .iter()
                .all(|b| b.set_cookie.is_none())
        );
    }
}
