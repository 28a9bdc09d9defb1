//! The built-in `mirroring` strategy: Flagger's traffic mirroring.
//!
//! Blue/green where, during the iterations, every request (or
//! `analysis.mirrorWeight` percent of them) is also copied to the canary
//! with a RequestMirror filter; users only ever get the primary's
//! responses. After the last iteration all traffic switches to the canary,
//! and the next passing interval promotes it.

use sluice_plugin_sdk::progression;
use sluice_plugin_sdk::strategy::{
    Action, AnalysisSpec, Backend, Mirror, Observation, RolloutState, RoutePlan, Strategy,
    canary_active, weighted_route,
};

pub struct Mirroring;

impl Strategy for Mirroring {
    fn decide(
        spec: &AnalysisSpec,
        state: &RolloutState,
        _observation: &Observation,
    ) -> Result<Action, String> {
        supported(spec)?;
        progression::blue_green("mirroring", spec, state)
    }

    fn route(spec: &AnalysisSpec, state: &RolloutState) -> Result<RoutePlan, String> {
        supported(spec)?;
        Ok(route(spec, state))
    }
}

sluice_plugin_sdk::export_strategy!(Mirroring);

/// Mirroring needs `analysis.mirror` (the host refuses a mirror the Canary
/// did not ask for), and switches all traffic, which a Canary with
/// `analysis.match` may not do.
fn supported(spec: &AnalysisSpec) -> Result<(), String> {
    if !spec.mirror {
        return Err("mirroring strategy needs analysis.mirror: true".into());
    }
    if !spec.matches.is_empty() {
        return Err("mirroring strategy does not take analysis.match: use ab-testing".into());
    }
    Ok(())
}

/// One rule: the primary with a mirror to the canary during the
/// iterations, the canary after the switch, the primary at rest.
pub fn route(spec: &AnalysisSpec, state: &RolloutState) -> RoutePlan {
    if !canary_active(state) {
        return weighted_route(0);
    }
    let mut plan = weighted_route(state.canary_weight);
    if state.canary_weight == 0 {
        plan.rules[0].mirror = Some(Mirror {
            backend: Backend::Canary,
            percent: spec.mirror_weight.filter(|&p| p > 0 && p < 100),
        });
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_plugin_sdk::strategy::Phase;

    fn spec(mirror_weight: Option<u32>) -> AnalysisSpec {
        AnalysisSpec {
            interval_seconds: 60,
            threshold: 5,
            max_weight: 50,
            step_weight: None,
            step_weights: Vec::new(),
            step_weight_promotion: None,
            iterations: Some(10),
            matches: Vec::new(),
            mirror: true,
            mirror_weight,
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

    #[test]
    fn mirrors_during_the_iterations_only() {
        let before = route(&spec(None), &state(Phase::Progressing, 0, 0));
        assert!(before.rules[0].mirror.is_none());
        let during = route(&spec(None), &state(Phase::Progressing, 0, 4));
        assert_eq!(
            during.rules[0].mirror,
            Some(Mirror {
                backend: Backend::Canary,
                percent: None
            })
        );
        assert_eq!(during.rules[0].backends[0].weight, 100);
        let switched = route(&spec(None), &state(Phase::Progressing, 100, 11));
        assert!(switched.rules[0].mirror.is_none());
        assert_eq!(switched.rules[0].backends[1].weight, 100);
        let after = route(&spec(None), &state(Phase::Succeeded, 0, 11));
        assert!(after.rules[0].mirror.is_none());
    }

    #[test]
    fn mirror_weight_is_the_percentage() {
        let during = route(&spec(Some(25)), &state(Phase::Progressing, 0, 1));
        assert_eq!(during.rules[0].mirror.as_ref().unwrap().percent, Some(25));
        // 100% is the same as no percentage.
        let during = route(&spec(Some(100)), &state(Phase::Progressing, 0, 1));
        assert_eq!(during.rules[0].mirror.as_ref().unwrap().percent, None);
    }
}
