//! The example strategies of `examples/plugins/`, built as their READMEs say
//! and run through `sluice plugin check --fuzz`: generated Canaries (with
//! and without `match`, `mirror`, `sessionAffinity`, `iterations`) and
//! states, every answer checked as the host checks it. That the fuzzer
//! fails a strategy that breaks a rule, and prints the input shrunk, is
//! `plugin_authoring`'s test.

use crate::common::{self, sluice};

/// Cases per example, and the seed: fixed, so that a failure is the same
/// input on every run.
const CASES: &str = "300";
const SEED: &str = "20260101";

/// Builds the example in `examples/plugins/{dir}` and fuzzes its
/// `{stem}.wasm` with `config` as its `strategyConfig`; it must pass.
fn passes_fuzzing(dir: &str, stem: &str, config: &str) {
    let _heavy = common::cpu_heavy();
    let wasm = common::build_example_plugin(dir, stem);
    let wasm = wasm.to_str().expect("UTF-8 path");
    let out = sluice(&[
        "plugin", "check", "--fuzz", CASES, "--seed", SEED, "--config", config, wasm,
    ]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{dir}: sluice plugin check --fuzz failed:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let passed = format!(
        "fuzz:     {CASES} cases passed (seed {SEED}): every answer to decide and route accepted"
    );
    assert!(report.contains(&passed), "{dir}: {report}");
    assert!(report.contains("result:   OK"), "{dir}: {report}");
}

#[test]
fn the_doubling_example_passes_fuzzing() {
    passes_fuzzing("doubling", "sluice_doubling", "");
}

#[test]
fn the_time_window_example_passes_fuzzing() {
    // The window is required: without one, every decision while
    // progressing would be the plugin's own error, which the fuzzer counts
    // but cannot check. Office hours: the generated times fall both inside
    // (advance, promote) and outside (hold).
    passes_fuzzing(
        "time-window",
        "sluice_time_window",
        r#"{"start": "09:00", "end": "17:00", "days": ["mon", "tue", "wed", "thu", "fri"]}"#,
    );
}

#[test]
fn the_template_passes_fuzzing() {
    passes_fuzzing("template", "sluice_template", "");
}
