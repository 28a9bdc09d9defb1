//! The built-in `blue-green` strategy: Flagger's blue/green.
//!
//! All traffic stays on the primary while the canary is tested for
//! `analysis.iterations` intervals (by the load tester and the metrics);
//! then all traffic switches to the canary, and the next passing interval
//! promotes it.

use sluice_plugin_sdk::progression;
use sluice_plugin_sdk::strategy::{
    Action, AnalysisSpec, Observation, RolloutState, RoutePlan, Strategy, canary_active,
    weighted_route,
};

pub struct BlueGreen;

impl Strategy for BlueGreen {
    fn decide(
        spec: &AnalysisSpec,
        state: &RolloutState,
        _observation: &Observation,
    ) -> Result<Action, String> {
        refuse_matches(spec)?;
        progression::blue_green("blue-green", spec, state)
    }

    fn route(spec: &AnalysisSpec, state: &RolloutState) -> Result<RoutePlan, String> {
        refuse_matches(spec)?;
        Ok(route(state))
    }
}

sluice_plugin_sdk::export_strategy!(BlueGreen);

/// Blue/green switches all traffic, which a Canary with `analysis.match`
/// may not do (only matching requests may reach its canary): such a Canary
/// is A/B testing's.
fn refuse_matches(spec: &AnalysisSpec) -> Result<(), String> {
    if spec.matches.is_empty() {
        Ok(())
    } else {
        Err("blue-green strategy does not take analysis.match: use ab-testing".into())
    }
}

/// One rule: the primary, or the canary once the switch happened.
pub fn route(state: &RolloutState) -> RoutePlan {
    weighted_route(if canary_active(state) {
        state.canary_weight
    } else {
        0
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_plugin_sdk::strategy::Phase;

    fn state(phase: Phase, canary_weight: u32, iterations: u32) -> RolloutState {
        RolloutState {
            phase,
            canary_weight,
            iterations,
            failed_checks: 0,
        }
    }

    fn canary_weight(plan: &RoutePlan) -> u32 {
        assert_eq!(plan.rules.len(), 1);
        assert!(plan.rules[0].mirror.is_none());
        plan.rules[0].backends[1].weight
    }

    #[test]
    fn traffic_stays_on_the_primary_until_the_switch() {
        assert_eq!(canary_weight(&route(&state(Phase::Progressing, 0, 3))), 0);
        assert_eq!(
            canary_weight(&route(&state(Phase::Progressing, 100, 11))),
            100
        );
        assert_eq!(
            canary_weight(&route(&state(Phase::Promoting, 100, 11))),
            100
        );
        // At rest, whatever the status says, nothing reaches the canary.
        assert_eq!(canary_weight(&route(&state(Phase::Failed, 100, 11))), 0);
    }
}
