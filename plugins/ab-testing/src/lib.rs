//! The built-in `ab-testing` strategy: Flagger's A/B testing.
//!
//! Requests that match `analysis.match` (headers, cookies, query
//! parameters) go to the canary from the first iteration on; every other
//! request stays on the primary. One iteration per passing interval;
//! promotion after the last. The weight is never used.

use sluice_plugin_sdk::progression;
use sluice_plugin_sdk::strategy::{
    Action, AnalysisSpec, Backend, Observation, RolloutState, RoutePlan, Strategy, backend,
    canary_active, rule,
};

const NAME: &str = "ab-testing";

pub struct AbTesting;

impl Strategy for AbTesting {
    fn decide(
        spec: &AnalysisSpec,
        state: &RolloutState,
        _observation: &Observation,
    ) -> Result<Action, String> {
        require_matches(spec)?;
        progression::iterations(NAME, spec, state)
    }

    fn route(spec: &AnalysisSpec, state: &RolloutState) -> Result<RoutePlan, String> {
        require_matches(spec)?;
        // Without iterations the matched requests would need the state's
        // weight, which A/B testing never sets: refuse, as `decide` does.
        progression::total_iterations(NAME, spec)?;
        Ok(route(spec, state))
    }
}

sluice_plugin_sdk::export_strategy!(AbTesting);

fn require_matches(spec: &AnalysisSpec) -> Result<(), String> {
    if spec.matches.is_empty() {
        return Err(format!(
            "{NAME} strategy needs analysis.match (the requests to send to the canary)"
        ));
    }
    Ok(())
}

/// Flagger's two rules: the matched requests (all to the canary while a
/// rollout runs, else to the primary), then everything else to the primary.
pub fn route(spec: &AnalysisSpec, state: &RolloutState) -> RoutePlan {
    let canary = if canary_active(state) { 100 } else { 0 };
    RoutePlan {
        rules: vec![
            rule(
                spec.matches.clone(),
                vec![
                    backend(Backend::Primary, 100 - canary),
                    backend(Backend::Canary, canary),
                ],
            ),
            rule(Vec::new(), vec![backend(Backend::Primary, 100)]),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_plugin_sdk::strategy::{Advance, HeaderMatch, HttpMatch, Phase, StringMatch};

    fn spec() -> AnalysisSpec {
        AnalysisSpec {
            interval_seconds: 60,
            threshold: 5,
            max_weight: 50,
            step_weight: None,
            step_weights: Vec::new(),
            step_weight_promotion: None,
            iterations: Some(2),
            matches: vec![HttpMatch {
                path_prefix: None,
                headers: vec![HeaderMatch {
                    name: "x-canary".into(),
                    value: StringMatch::Exact("insider".into()),
                }],
                query_params: Vec::new(),
                method: None,
            }],
            mirror: false,
            mirror_weight: None,
            session_affinity: None,
            config: String::new(),
        }
    }

    fn state(phase: Phase, iterations: u32) -> RolloutState {
        RolloutState {
            phase,
            canary_weight: 0,
            iterations,
            failed_checks: 0,
        }
    }

    fn weights(plan: &RoutePlan) -> Vec<Vec<(Backend, u32)>> {
        plan.rules
            .iter()
            .map(|r| r.backends.iter().map(|b| (b.backend, b.weight)).collect())
            .collect()
    }

    #[test]
    fn iterations_then_promotion() {
        let obs = Observation {
            now_unix_seconds: 0,
            phase_started_unix_seconds: 0,
        };
        assert_eq!(
            AbTesting::decide(&spec(), &state(Phase::Progressing, 0), &obs),
            Ok(Action::Advance(Advance {
                canary_weight: 0,
                iterations: 1
            }))
        );
        assert_eq!(
            AbTesting::decide(&spec(), &state(Phase::Progressing, 2), &obs),
            Ok(Action::Promote)
        );
        assert_eq!(
            AbTesting::decide(&spec(), &state(Phase::Promoting, 2), &obs),
            Ok(Action::Finalise)
        );
    }

    #[test]
    fn matched_requests_reach_the_canary_only_during_the_rollout() {
        use Backend::*;
        let before = route(&spec(), &state(Phase::Progressing, 0));
        assert_eq!(
            weights(&before),
            [vec![(Primary, 100), (Canary, 0)], vec![(Primary, 100)]]
        );
        let during = route(&spec(), &state(Phase::Progressing, 1));
        assert_eq!(
            weights(&during),
            [vec![(Primary, 0), (Canary, 100)], vec![(Primary, 100)]]
        );
        assert_eq!(during.rules[0].matches, spec().matches);
        assert!(during.rules[1].matches.is_empty());
        let after = route(&spec(), &state(Phase::Succeeded, 2));
        assert_eq!(weights(&after), weights(&before));
    }

    #[test]
    fn needs_matches_and_iterations() {
        let no_match = AnalysisSpec {
            matches: Vec::new(),
            ..spec()
        };
        assert!(
            AbTesting::route(&no_match, &state(Phase::Progressing, 0))
                .unwrap_err()
                .contains("analysis.match")
        );
        let obs = Observation {
            now_unix_seconds: 0,
            phase_started_unix_seconds: 0,
        };
        let no_iter = AnalysisSpec {
            iterations: None,
            ..spec()
        };
        assert!(
            AbTesting::decide(&no_iter, &state(Phase::Progressing, 0), &obs)
                .unwrap_err()
                .contains("analysis.iterations")
        );
    }
}
