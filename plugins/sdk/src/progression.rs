//! Flagger's progressions as building blocks: how the weight or the
//! iteration count moves on a passing tick. The built-in strategies are made
//! of these, and a custom strategy can reuse them.

use crate::strategy::{
    Action, Advance, AnalysisSpec, Phase, RolloutState, phase_name, promotion_step,
};

/// Flagger's default `stepWeight`.
pub const DEFAULT_STEP_WEIGHT: u32 = 10;

/// The weight at which a weighted canary is promoted: the last of
/// `step-weights` if any, else `max-weight`.
pub fn max_weight(spec: &AnalysisSpec) -> u32 {
    spec.step_weights.last().copied().unwrap_or(spec.max_weight)
}

/// The canary weight after `current`, capped at [`max_weight`].
pub fn next_weight(spec: &AnalysisSpec, current: u32) -> u32 {
    let max = max_weight(spec);
    if spec.step_weights.is_empty() {
        // A step of 0 is Go's zero value, i.e. unset, in Flagger.
        let step = match spec.step_weight {
            Some(step) if step > 0 => step,
            _ => DEFAULT_STEP_WEIGHT,
        };
        current.saturating_add(step).min(max)
    } else {
        spec.step_weights
            .iter()
            .copied()
            .find(|&w| w > current)
            .unwrap_or(max)
    }
}

/// Flagger's weighted canary: step the weight up to the maximum, then
/// promote; while promoting, [`promotion_step`].
pub fn weighted(
    strategy: &str,
    spec: &AnalysisSpec,
    state: &RolloutState,
) -> Result<Action, String> {
    match state.phase {
        Phase::Progressing => {
            if state.canary_weight < max_weight(spec) {
                Ok(Action::Advance(Advance {
                    canary_weight: next_weight(spec, state.canary_weight),
                    iterations: state.iterations,
                }))
            } else {
                Ok(Action::Promote)
            }
        }
        Phase::Promoting => Ok(promotion_step(spec, state)),
        other => Err(wrong_phase(strategy, other)),
    }
}

/// The iteration count a strategy needs (`analysis.iterations`).
pub fn total_iterations(strategy: &str, spec: &AnalysisSpec) -> Result<u32, String> {
    match spec.iterations {
        Some(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "{strategy} strategy needs analysis.iterations (a number of intervals, e.g. 10)"
        )),
    }
}

/// Flagger's A/B testing: one iteration per passing tick, the canary weight
/// untouched (the route decides who reaches the canary), promotion after
/// the last iteration.
pub fn iterations(
    strategy: &str,
    spec: &AnalysisSpec,
    state: &RolloutState,
) -> Result<Action, String> {
    let total = total_iterations(strategy, spec)?;
    match state.phase {
        Phase::Progressing if state.iterations < total => Ok(Action::Advance(Advance {
            canary_weight: state.canary_weight,
            iterations: state.iterations + 1,
        })),
        Phase::Progressing => Ok(Action::Promote),
        Phase::Promoting => Ok(promotion_step(spec, state)),
        other => Err(wrong_phase(strategy, other)),
    }
}

/// Flagger's blue/green: the iterations run with all traffic on the
/// primary; the tick after the last one switches all traffic to the canary
/// ("Routing all traffic to canary"), and the next one promotes.
pub fn blue_green(
    strategy: &str,
    spec: &AnalysisSpec,
    state: &RolloutState,
) -> Result<Action, String> {
    let total = total_iterations(strategy, spec)?;
    match state.phase {
        Phase::Progressing if state.iterations < total => Ok(Action::Advance(Advance {
            canary_weight: 0,
            iterations: state.iterations + 1,
        })),
        Phase::Progressing if state.iterations == total => Ok(Action::Advance(Advance {
            canary_weight: 100,
            iterations: state.iterations + 1,
        })),
        Phase::Progressing => Ok(Action::Promote),
        Phase::Promoting => Ok(promotion_step(spec, state)),
        other => Err(wrong_phase(strategy, other)),
    }
}

fn wrong_phase(strategy: &str, phase: Phase) -> String {
    format!(
        "{strategy} strategy: decide called in phase {}",
        phase_name(phase)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn spec() -> AnalysisSpec {
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

    fn state(phase: Phase, canary_weight: u32, iterations: u32) -> RolloutState {
        RolloutState {
            phase,
            canary_weight,
            iterations,
            failed_checks: 0,
        }
    }

    /// The (weight, iterations) pairs visited from the start of a rollout
    /// until the strategy promotes.
    fn run(decide: impl Fn(&RolloutState) -> Result<Action, String>) -> Vec<(u32, u32)> {
        let mut s = state(Phase::Progressing, 0, 0);
        let mut visited = Vec::new();
        for _ in 0..100 {
            match decide(&s).unwrap() {
                Action::Advance(a) => {
                    s.canary_weight = a.canary_weight;
                    s.iterations = a.iterations;
                    visited.push((a.canary_weight, a.iterations));
                }
                Action::Promote => return visited,
                other => panic!("unexpected {other:?}"),
            }
        }
        panic!("never promoted: {visited:?}");
    }

    #[test]
    fn weighted_steps_to_the_maximum() {
        let weights: Vec<u32> = run(|s| weighted("w", &spec(), s))
            .iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(weights, [10, 20, 30, 40, 50]);
        let s = AnalysisSpec {
            step_weight: Some(20),
            ..spec()
        };
        let weights: Vec<u32> = run(|st| weighted("w", &s, st))
            .iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(weights, [20, 40, 50]);
        let s = AnalysisSpec {
            step_weights: vec![1, 5, 80],
            ..spec()
        };
        let weights: Vec<u32> = run(|st| weighted("w", &s, st))
            .iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(weights, [1, 5, 80]);
    }

    #[test]
    fn ab_testing_counts_iterations_without_weight() {
        let s = AnalysisSpec {
            iterations: Some(3),
            ..spec()
        };
        assert_eq!(run(|st| iterations("ab", &s, st)), [(0, 1), (0, 2), (0, 3)]);
        assert_eq!(
            iterations("ab", &spec(), &state(Phase::Progressing, 0, 0)).unwrap_err(),
            "ab strategy needs analysis.iterations (a number of intervals, e.g. 10)"
        );
    }

    #[test]
    fn blue_green_switches_after_the_last_iteration() {
        let s = AnalysisSpec {
            iterations: Some(3),
            ..spec()
        };
        assert_eq!(
            run(|st| blue_green("bg", &s, st)),
            [(0, 1), (0, 2), (0, 3), (100, 4)]
        );
        // Promoting from 100% on the canary finalises at once …
        assert_eq!(
            blue_green("bg", &s, &state(Phase::Promoting, 100, 4)),
            Ok(Action::Finalise)
        );
        // … or steps back with stepWeightPromotion.
        let s = AnalysisSpec {
            step_weight_promotion: Some(50),
            ..s
        };
        assert_eq!(
            blue_green("bg", &s, &state(Phase::Promoting, 100, 4)),
            Ok(Action::Advance(Advance {
                canary_weight: 50,
                iterations: 4
            }))
        );
    }

    #[test]
    fn other_phases_are_errors() {
        let s = AnalysisSpec {
            iterations: Some(3),
            ..spec()
        };
        assert_eq!(
            blue_green("bg", &s, &state(Phase::Succeeded, 0, 0)).unwrap_err(),
            "bg strategy: decide called in phase succeeded"
        );
        assert!(weighted("w", &s, &state(Phase::Failed, 0, 0)).is_err());
        assert!(iterations("ab", &s, &state(Phase::Initialized, 0, 0)).is_err());
    }
}
