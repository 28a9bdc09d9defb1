//! How long one strategy decision takes through the Wasm host (fresh store,
//! instantiation and the call) next to the same logic called natively.
//! Run with `cargo bench`; the target is under 50 µs per decision.

use std::hint::black_box;
use std::time::{Duration, Instant};

use sluice::analysis::analysis_spec;
use sluice::host::bindings::strategy::{
    Action, Advance, AnalysisSpec, Observation, Phase, RolloutState,
};
use sluice::host::builtin::wasm;
use sluice::host::{Limits, PluginHost};

/// The weighted plugin's decision, written natively for comparison.
fn native_decide(spec: &AnalysisSpec, state: &RolloutState) -> Action {
    let max = spec.step_weights.last().copied().unwrap_or(spec.max_weight);
    if state.canary_weight >= max {
        return Action::Promote;
    }
    let next = match spec.step_weights.iter().find(|w| **w > state.canary_weight) {
        Some(w) if !spec.step_weights.is_empty() => *w,
        _ => (state.canary_weight + spec.step_weight.unwrap_or(10)).min(max),
    };
    Action::Advance(Advance {
        canary_weight: next,
        iterations: state.iterations,
    })
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn measure(iterations: usize, mut f: impl FnMut()) -> Duration {
    for _ in 0..iterations / 10 {
        f();
    }
    let samples = (0..iterations)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    median(samples)
}

fn main() {
    let canary =
        sluice::api::load::canary_from_yaml(include_str!("../../examples/podinfo-canary.yaml"))
            .expect("seed canary");
    let spec = analysis_spec(&canary.settings().expect("valid"), &Default::default());
    let state = RolloutState {
        phase: Phase::Progressing,
        canary_weight: 20,
        iterations: 0,
        failed_checks: 0,
    };
    let obs = Observation {
        now_unix_seconds: 0,
        phase_started_unix_seconds: 0,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let host = PluginHost::new(None).expect("host");
    let compile_start = Instant::now();
    let plugin = host
        .load_strategy("weighted", wasm::WEIGHTED, Limits::default())
        .expect("weighted");
    let compile = compile_start.elapsed();
    assert_eq!(
        rt.block_on(plugin.decide(&spec, state, obs))
            .expect("decides"),
        native_decide(&spec, &state)
    );

    let wasm_median = measure(2000, || {
        black_box(
            rt.block_on(plugin.decide(black_box(&spec), black_box(state), obs))
                .expect("decides"),
        );
    });
    let route_median = measure(2000, || {
        black_box(
            rt.block_on(plugin.route(black_box(&spec), black_box(state)))
                .expect("routes"),
        );
    });
    let native_median = measure(20000, || {
        black_box(native_decide(black_box(&spec), black_box(&state)));
    });
    println!("weighted strategy, one decision (median):");
    println!("  compile (once per plugin):         {:>10.1?}", compile);
    println!(
        "  wasm decide (instantiate + call):  {:>10.1?}",
        wasm_median
    );
    println!(
        "  wasm route  (instantiate + call):  {:>10.1?}",
        route_median
    );
    println!(
        "  native decide:                     {:>10.1?}",
        native_median
    );
    let target = Duration::from_micros(50);
    println!(
        "  target < {target:?} per decision: {}",
        if wasm_median < target {
            "met"
        } else {
            "NOT met"
        }
    );
}
