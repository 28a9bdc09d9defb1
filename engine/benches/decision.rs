//! One strategy decision three ways, in one process so the ratios hold on a
//! noisy machine:
//! - `wasm`: the built-in weighted plugin through the host (a fresh
//!   instance from the pool, the call, and the host's check of the answer);
//! - `native`: the same logic as a Rust function;
//! - `process`: the same logic in a child process answering over a Unix
//!   socket, as Argo Rollouts runs its plugins (one request, one answer,
//!   JSON, per decision).
//!
//! Prints median and p99 of each, then a last line
//! `decision: wasm_us=X native_us=Y process_us=Z` (medians). Run with
//! `cargo bench --bench decision`.

use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use sluice_host::bindings::strategy::{
    Action, Advance, AnalysisSpec, Observation, Phase, RolloutState,
};
use sluice_host::builtin::wasm;
use sluice_host::{Limits, PluginHost, validate};
use sluice_rollout::analysis::analysis_spec;

/// Set in the child: the socket to answer on.
const CHILD_SOCKET: &str = "SLUICE_BENCH_PLUGIN_SOCKET";

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

/// The out-of-process plugin: one JSON request per line, one JSON answer.
fn serve(socket: &str) {
    let stream = UnixStream::connect(socket).expect("connect to the host");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
    let mut line = String::new();
    while reader.read_line(&mut line).expect("read") > 0 {
        let (spec, state, _obs): (AnalysisSpec, RolloutState, Observation) =
            serde_json::from_str(&line).expect("request");
        let mut answer = serde_json::to_vec(&native_decide(&spec, &state)).expect("answer");
        answer.push(b'\n');
        writer.write_all(&answer).expect("write");
        line.clear();
    }
}

/// The host side of the out-of-process plugin.
struct ProcessPlugin {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    child: std::process::Child,
}

impl ProcessPlugin {
    fn start(dir: &std::path::Path) -> Self {
        let socket = dir.join("plugin.sock");
        let listener = UnixListener::bind(&socket).expect("bind");
        let child = std::process::Command::new(std::env::current_exe().expect("exe"))
            .env(CHILD_SOCKET, &socket)
            .spawn()
            .expect("start the plugin process");
        let (stream, _) = listener.accept().expect("accept");
        Self {
            reader: BufReader::new(stream.try_clone().expect("clone")),
            writer: stream,
            child,
        }
    }

    fn decide(&mut self, spec: &AnalysisSpec, state: RolloutState, obs: Observation) -> Action {
        let mut request = serde_json::to_vec(&(spec, state, obs)).expect("request");
        request.push(b'\n');
        self.writer.write_all(&request).expect("send");
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("answer");
        serde_json::from_str(&line).expect("action")
    }
}

impl Drop for ProcessPlugin {
    fn drop(&mut self) {
        let _ = self.writer.shutdown(std::net::Shutdown::Both);
        let _ = self.child.wait();
    }
}

struct Figures {
    median: Duration,
    p99: Duration,
}

fn measure(iterations: usize, mut f: impl FnMut()) -> Figures {
    for _ in 0..iterations / 10 {
        f();
    }
    let mut samples: Vec<Duration> = (0..iterations)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    samples.sort();
    Figures {
        median: samples[samples.len() / 2],
        p99: samples[samples.len() * 99 / 100],
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The inputs of the measured decision: the seed Canary's analysis at 20%.
fn seed_inputs() -> (AnalysisSpec, RolloutState, Observation) {
    let canary =
        sluice_api::load::canary_from_yaml(include_str!("../../examples/podinfo-canary.yaml"))
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
    (spec, state, obs)
}

/// `-- --wasm-only N`: the number of wasm decisions to make and nothing
/// else, for a profiler.
fn wasm_only() -> Option<usize> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == "--wasm-only")?;
    Some(
        args.get(i + 1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(100_000),
    )
}

/// The three medians and p99s, and the last line.
fn report(compile: Duration, wasm: &Figures, native: &Figures, out_of_process: &Figures) {
    println!("weighted strategy, one decision:");
    println!("  compile (once per digest)  {:>10.1?}", compile);
    for (name, f) in [
        ("wasm, through the host", wasm),
        ("native", native),
        ("out-of-process (socket)", out_of_process),
    ] {
        println!(
            "  {name:<26} median {:>8.2} µs   p99 {:>8.2} µs",
            us(f.median),
            us(f.p99)
        );
    }
    println!(
        "  wasm is {:.1}x faster than the process model",
        us(out_of_process.median) / us(wasm.median)
    );
    println!(
        "decision: wasm_us={:.2} native_us={:.3} process_us={:.2}",
        us(wasm.median),
        us(native.median),
        us(out_of_process.median)
    );
}

fn main() {
    if let Ok(socket) = std::env::var(CHILD_SOCKET) {
        return serve(&socket);
    }
    let (spec, state, obs) = seed_inputs();
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
    if let Some(n) = wasm_only() {
        for _ in 0..n {
            black_box(
                rt.block_on(plugin.decide(&spec, state, obs))
                    .expect("decides"),
            );
        }
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let mut process = ProcessPlugin::start(dir.path());

    let expected = native_decide(&spec, &state);
    assert_eq!(
        rt.block_on(plugin.decide(&spec, state, obs))
            .expect("decides"),
        expected
    );
    assert_eq!(process.decide(&spec, state, obs), expected);

    let wasm = measure(5000, || {
        let action = rt
            .block_on(plugin.decide(black_box(&spec), black_box(state), obs))
            .expect("decides");
        validate::action("weighted", &spec, &state, &action).expect("valid");
        black_box(action);
    });
    let native = measure(50_000, || {
        black_box(native_decide(black_box(&spec), black_box(&state)));
    });
    let out_of_process = measure(5000, || {
        black_box(process.decide(black_box(&spec), black_box(state), obs));
    });
    report(compile, &wasm, &native, &out_of_process);
}
