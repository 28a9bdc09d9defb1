//! Test plugin: `decide` and `route` never return. The host must interrupt
//! them (fuel or epoch deadline).

use sluice_plugin_sdk::strategy::{
    Action, AnalysisSpec, Observation, RolloutState, RoutePlan, Strategy,
};

pub struct Loop;

fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        // black_box keeps the optimiser from proving anything about the loop.
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

impl Strategy for Loop {
    fn decide(_: &AnalysisSpec, _: &RolloutState, _: &Observation) -> Result<Action, String> {
        spin()
    }

    fn route(_: &AnalysisSpec, _: &RolloutState) -> Result<RoutePlan, String> {
        spin()
    }
}

sluice_plugin_sdk::export_strategy!(Loop);
