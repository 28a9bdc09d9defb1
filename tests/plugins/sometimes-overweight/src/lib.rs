//! Test plugin: a weighted canary that is right on most inputs, so that
//! `sluice plugin check`'s sample calls (weight 10) pass, and breaks the
//! contract only when the canary weight is above 30: then it advances past
//! the Canary's maximum. `sluice plugin check --fuzz` must find it and
//! shrink the input to weight 31.

use sluice_plugin_sdk::strategy::{
    Action, Advance, AnalysisSpec, Observation, Phase, RolloutState, RoutePlan, Strategy,
    canary_active, phase_name, promotion_step, weighted_route,
};

pub struct SometimesOverweight;

impl Strategy for SometimesOverweight {
    fn decide(
        spec: &AnalysisSpec,
        state: &RolloutState,
        _: &Observation,
    ) -> Result<Action, String> {
        match state.phase {
            // The bug: past 30 %, one step beyond the maximum.
            Phase::Progressing if state.canary_weight > 30 => Ok(Action::Advance(Advance {
                canary_weight: spec.max_weight + 1,
                iterations: state.iterations,
            })),
            Phase::Progressing if state.canary_weight < spec.max_weight => {
                Ok(Action::Advance(Advance {
                    canary_weight: (state.canary_weight + 10).min(spec.max_weight),
                    iterations: state.iterations,
                }))
            }
            Phase::Progressing => Ok(Action::Promote),
            Phase::Promoting => Ok(promotion_step(spec, state)),
            other => Err(format!("decide called in phase {}", phase_name(other))),
        }
    }

    fn route(spec: &AnalysisSpec, state: &RolloutState) -> Result<RoutePlan, String> {
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
        Ok(plan)
    }
}

sluice_plugin_sdk::export_strategy!(SometimesOverweight);
