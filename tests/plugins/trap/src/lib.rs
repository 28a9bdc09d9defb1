//! Test plugin: `decide` and `route` panic, which in Wasm (panic = abort)
//! is an `unreachable` trap. The host must turn it into an error.

use sluice_plugin_sdk::strategy::{
    Action, AnalysisSpec, Observation, RolloutState, RoutePlan, Strategy,
};

pub struct Trap;

impl Strategy for Trap {
    fn decide(_: &AnalysisSpec, _: &RolloutState, _: &Observation) -> Result<Action, String> {
        panic!("sluice-test-trap: decide panics on purpose")
    }

    fn route(_: &AnalysisSpec, _: &RolloutState) -> Result<RoutePlan, String> {
        panic!("sluice-test-trap: route panics on purpose")
    }
}

sluice_plugin_sdk::export_strategy!(Trap);
