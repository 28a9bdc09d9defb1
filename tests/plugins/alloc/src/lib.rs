//! Test plugin: `decide` and `route` allocate without bound, 1 MiB at a time,
//! writing to every page so the memory is really used. The host's memory
//! limit must stop them (the allocation fails and the plugin traps).

use sluice_plugin_sdk::strategy::{
    Action, AnalysisSpec, Observation, RolloutState, RoutePlan, Strategy,
};

pub struct Alloc;

const CHUNK: usize = 1 << 20;
const PAGE: usize = 64 << 10;

fn hog() -> ! {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0u8; CHUNK];
        for i in (0..CHUNK).step_by(PAGE) {
            chunk[i] = 1;
        }
        chunks.push(std::hint::black_box(chunk));
    }
}

impl Strategy for Alloc {
    fn decide(_: &AnalysisSpec, _: &RolloutState, _: &Observation) -> Result<Action, String> {
        hog()
    }

    fn route(_: &AnalysisSpec, _: &RolloutState) -> Result<RoutePlan, String> {
        hog()
    }
}

sluice_plugin_sdk::export_strategy!(Alloc);
