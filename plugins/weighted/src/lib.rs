//! The built-in `weighted` strategy: Flagger's weighted canary.
//!
//! While progressing, traffic moves to the canary by `step-weight` (default
//! 10) up to `max-weight`, or through the explicit `step-weights` list; at the
//! maximum the canary is promoted. While promoting, `step-weight-promotion`
//! (if set) moves traffic back to the primary step by step before the rollout
//! is finalised. The route is a single rule splitting traffic between the
//! primary and the canary.
//!
//! With `mirror`, the first step is Flagger's mirror step: the weight stays
//! at 0 and the iteration count becomes 1, while the route copies requests
//! to the canary (at `mirror-weight` percent, else all); the next step
//! shifts weight as usual and stops mirroring.

use sluice_plugin_sdk::progression;
use sluice_plugin_sdk::strategy::{
    Action, Advance, AnalysisSpec, Backend, Mirror, Observation, Phase, RolloutState, RoutePlan,
    Strategy, canary_active, weighted_route,
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

    fn route(spec: &AnalysisSpec, state: &RolloutState) -> Result<RoutePlan, String> {
        // Session affinity is the `session-affinity` strategy's job.
        Ok(route(spec, state))
    }
}

sluice_plugin_sdk::export_strategy!(Weighted);

/// The strategy's decision, without the observation (it does not need the
/// clock: the host calls it once per passing tick).
pub fn decide(spec: &AnalysisSpec, state: &RolloutState) -> Result<Action, String> {
    if mirror_step_due(spec, state) {
        return Ok(Action::Advance(Advance {
            canary_weight: 0,
            iterations: 1,
        }));
    }
    progression::weighted("weighted", spec, state)
}

/// Flagger's "Running mirror step": with `mirror`, the first step mirrors
/// at weight 0 before any weight moves.
fn mirror_step_due(spec: &AnalysisSpec, state: &RolloutState) -> bool {
    spec.mirror
        && state.phase == Phase::Progressing
        && state.canary_weight == 0
        && state.iterations == 0
}

/// One weighted rule; during the mirror step, with a mirror to the canary.
/// With `match` (and no iterations, Flagger's weighted canary for a subset
/// of users), the weights apply to the matching requests only and every
/// other request goes to the primary.
pub fn route(spec: &AnalysisSpec, state: &RolloutState) -> RoutePlan {
    let active = canary_active(state);
    let mut plan = weighted_route(if active { state.canary_weight } else { 0 });
    if spec.mirror && active && state.canary_weight == 0 {
        plan.rules[0].mirror = Some(Mirror {
            backend: Backend::Canary,
            percent: spec.mirror_weight.filter(|&p| p > 0 && p < 100),
        });
    }
    if !spec.matches.is_empty() {
        plan.rules[0].matches = spec.matches.clone();
        plan.rules.push(weighted_route(0).rules.remove(0));
    }
    plan
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
    fn mirror_runs_one_step_at_weight_zero_before_shifting() {
        let s = AnalysisSpec {
            mirror: true,
            mirror_weight: Some(50),
            ..spec()
        };
        let start = RolloutState {
            iterations: 0,
            ..state(Phase::Progressing, 0)
        };
        match decide(&s, &start) {
            Ok(Action::Advance(a)) => {
                assert_eq!((a.canary_weight, a.iterations), (0, 1))
            }
            other => panic!("{other:?}"),
        }
        let mirrored = RolloutState {
            iterations: 1,
            ..start
        };
        let plan = route(&s, &mirrored);
        assert_eq!(plan.rules[0].backends[1].weight, 0);
        let m = plan.rules[0].mirror.as_ref().unwrap();
        assert_eq!((m.backend, m.percent), (Backend::Canary, Some(50)));
        match decide(&s, &mirrored) {
            Ok(Action::Advance(a)) => assert_eq!((a.canary_weight, a.iterations), (10, 1)),
            other => panic!("{other:?}"),
        }
        let shifted = route(&s, &state(Phase::Progressing, 10));
        assert!(shifted.rules[0].mirror.is_none());
        assert_eq!(shifted.rules[0].backends[1].weight, 10);
        // At rest: no mirror, nothing on the canary.
        assert!(route(&s, &state(Phase::Succeeded, 0)).rules[0].mirror.is_none());
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
