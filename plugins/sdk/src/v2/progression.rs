//! Flagger's progressions for 0.2 strategies: how the weight or the
//! iteration count moves on a passing tick, read from the Canary's
//! `analysis` (see [`crate::progression`] for 0.1).

use crate::v2::analysis::Analysis;
use crate::v2::strategy::{
    Action, Advance, Phase, RolloutSpec, RolloutState, phase_name, promotion_step,
};

/// The canary weight after `current`: the next of `stepWeights` above it,
/// else `current + stepWeight`, capped at `max_weight` (the spec's
/// `max_weight`, the highest weight the host accepts).
pub fn next_weight(analysis: &Analysis, max_weight: u32, current: u32) -> u32 {
    if analysis.step_weights.is_empty() {
        current.saturating_add(analysis.step()).min(max_weight)
    } else {
        analysis
            .step_weights
            .iter()
            .copied()
            .find(|&w| w > current)
            .unwrap_or(max_weight)
            .min(max_weight)
    }
}

/// Flagger's weighted canary: step the weight up to `spec.max_weight`,
/// then promote; while promoting, [`promotion_step`].
pub fn weighted(
    strategy: &str,
    spec: &RolloutSpec,
    state: &RolloutState,
) -> Result<Action, String> {
    let analysis = Analysis::parse(&spec.analysis)?;
    match state.phase {
        Phase::Progressing if state.canary_weight < spec.max_weight => {
            Ok(Action::Advance(Advance {
                canary_weight: next_weight(&analysis, spec.max_weight, state.canary_weight),
                iterations: state.iterations,
            }))
        }
        Phase::Progressing => Ok(Action::Promote),
        Phase::Promoting => Ok(promotion_step(&analysis, state)),
        other => Err(wrong_phase(strategy, other)),
    }
}

/// The iteration count a strategy needs (`analysis.iterations`).
pub fn total_iterations(strategy: &str, analysis: &Analysis) -> Result<u32, String> {
    match analysis.iterations {
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
    spec: &RolloutSpec,
    state: &RolloutState,
) -> Result<Action, String> {
    let analysis = Analysis::parse(&spec.analysis)?;
    let total = total_iterations(strategy, &analysis)?;
    match state.phase {
        Phase::Progressing if state.iterations < total => Ok(Action::Advance(Advance {
            canary_weight: state.canary_weight,
            iterations: state.iterations + 1,
        })),
        Phase::Progressing => Ok(Action::Promote),
        Phase::Promoting => Ok(promotion_step(&analysis, state)),
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
    use crate::v2::strategy::tests::{spec, state};

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

    fn weights(analysis: &str, max_weight: u32) -> Vec<u32> {
        let s = RolloutSpec {
            max_weight,
            ..spec(analysis, "")
        };
        run(|st| weighted("w", &s, st))
            .iter()
            .map(|p| p.0)
            .collect()
    }

    #[test]
    fn weighted_steps_to_the_maximum() {
        assert_eq!(weights(r#"{"stepWeight": 10}"#, 50), [10, 20, 30, 40, 50]);
        assert_eq!(weights(r#"{"stepWeight": 20}"#, 50), [20, 40, 50]);
        assert_eq!(weights("{}", 30), [10, 20, 30]);
        // With stepWeights the host's max-weight is the last of them.
        assert_eq!(weights(r#"{"stepWeights": [1, 5, 80]}"#, 80), [1, 5, 80]);
    }

    #[test]
    fn weighted_promotes_with_step_weight_promotion() {
        let s = spec(r#"{"stepWeight": 10, "stepWeightPromotion": 30}"#, "");
        assert_eq!(
            weighted("w", &s, &state(Phase::Promoting, 50, 0)),
            Ok(Action::Advance(Advance {
                canary_weight: 20,
                iterations: 0
            }))
        );
        assert_eq!(
            weighted("w", &s, &state(Phase::Waiting, 0, 0)).unwrap_err(),
            "w strategy: decide called in phase waiting"
        );
        assert!(weighted("w", &spec("nope", ""), &state(Phase::Progressing, 0, 0)).is_err());
    }

    #[test]
    fn ab_testing_counts_iterations_without_weight() {
        let s = spec(r#"{"iterations": 3}"#, "");
        assert_eq!(run(|st| iterations("ab", &s, st)), [(0, 1), (0, 2), (0, 3)]);
        assert_eq!(
            iterations("ab", &spec("{}", ""), &state(Phase::Progressing, 0, 0)).unwrap_err(),
            "ab strategy needs analysis.iterations (a number of intervals, e.g. 10)"
        );
    }
}
