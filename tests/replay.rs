//! The decision journal and `sluice replay`: a simulated rollout's plugin
//! calls, written by `sluice simulate --journal`, replay exactly through
//! the same plugins, and a candidate plugin's different decisions are
//! shown with where and why.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sluice_host::journal::{Answer, Call, Journal};

use crate::common;

fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .current_dir(common::repo_root())
        .output()
        .expect("sluice runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("replay")
        .join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(path: &Path, bytes: &[u8]) -> String {
    std::fs::write(path, bytes).unwrap();
    path.display().to_string()
}

/// `sluice simulate --journal` of a scenario; the journal's path.
fn journal_of(name: &str, scenario: &str) -> PathBuf {
    let path = dir(name).join("journal.jsonl");
    let out = sluice(&[
        "simulate",
        "--scenario",
        scenario,
        "--journal",
        path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    path
}

#[test]
fn a_simulated_rollout_replays_exactly_through_its_own_plugins() {
    let path = journal_of("same", "examples/scenarios/healthy.yaml");
    let entries = Journal::from_json_lines(&std::fs::read_to_string(&path).unwrap()).unwrap();
    // Every kind of call of the rollout is there, with its answer.
    for export in ["decide", "route", "requirements", "evaluate"] {
        assert!(
            entries.iter().any(|e| e.call.export() == export),
            "{export} journalled"
        );
    }
    assert!(entries.iter().all(|e| e.canary == "test/podinfo"));
    assert!(entries.iter().any(|e| matches!(
        &e.call,
        Call::Decide {
            answer: Answer::Ok(sluice_host::bindings::strategy::Action::Promote),
            ..
        }
    )));
    assert!(entries.windows(2).all(|w| w[0].seq < w[1].seq));
    // Only the rollout is journalled: no call made at rest.
    use sluice_host::bindings::strategy::Phase;
    for e in &entries {
        if let Call::Decide { state, .. } | Call::Route { state, .. } = &e.call {
            assert!(
                matches!(
                    state.phase,
                    Phase::Progressing | Phase::Promoting | Phase::Finalising
                ),
                "#{} at {:?}",
                e.seq,
                state.phase
            );
        }
    }

    let d = dir("same");
    let weighted = write(
        &d.join("weighted.wasm"),
        sluice_host::builtin::wasm::WEIGHTED,
    );
    let threshold = write(
        &d.join("threshold.wasm"),
        sluice_host::builtin::evaluator("threshold").unwrap(),
    );
    let out = sluice(&[
        "replay",
        "--journal",
        path.to_str().unwrap(),
        "--strategy-plugin",
        &weighted,
        "--evaluator-plugin",
        &threshold,
    ]);
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    assert!(
        report.starts_with(&format!(
            "replayed {} of {} calls with strategy weighted (sha256:",
            entries.len(),
            entries.len()
        )),
        "{report}"
    );
    assert!(report.contains(": 0 differ"), "{report}");
}

#[test]
fn a_candidate_that_decides_otherwise_is_shown_where_and_why() {
    let path = journal_of("differ", "examples/scenarios/healthy.yaml");
    let d = dir("differ");
    let overweight = write(
        &d.join("overweight.wasm"),
        common::test_plugin("overweight"),
    );
    let out = sluice(&[
        "replay",
        "--journal",
        path.to_str().unwrap(),
        "--strategy-plugin",
        &overweight,
    ]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    // The first step: the recorded plugin advanced to 10, the candidate's
    // answer is refused by the host's checks, which say why.
    assert!(
        report.lines().any(|l| l.contains("test/podinfo decide at Progressing weight 0 iterations 0: recorded advance to weight 10 (iterations 0), candidate fault (plugin overweight returned an invalid answer")),
        "{report}"
    );
    // Only strategy calls are replayed with only a strategy candidate.
    assert!(!report.contains(" evaluate at "), "{report}");
    // A journal that is not one is refused with the line.
    let bad = write(&d.join("bad.jsonl"), b"{\"seq\": 1}\n");
    let out = sluice(&[
        "replay",
        "--journal",
        &bad,
        "--strategy-plugin",
        &overweight,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("line 1 is not a journal entry"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_rollout_of_a_0_1_strategy_replays_with_a_0_2_candidate_deciding_alike() {
    let path = journal_of("v2", "examples/scenarios/healthy.yaml");
    let d = dir("v2");
    let v2 = write(
        &d.join("v2_strategy.wasm"),
        common::test_plugin("v2_strategy"),
    );
    let out = sluice(&[
        "replay",
        "--journal",
        path.to_str().unwrap(),
        "--strategy-plugin",
        &v2,
    ]);
    let report = text(&out);
    // It decides as the 0.1 weighted strategy did at every step; only its
    // routes differ, by the response header filter 0.2 lets it add.
    assert_eq!(out.status.code(), Some(1), "{report}");
    let differing: Vec<&str> = report.lines().filter(|l| l.starts_with('#')).collect();
    assert!(!differing.is_empty(), "{report}");
    for line in &differing {
        assert!(line.contains(" route at "), "{line}");
        assert!(line.contains(r#""x-sluice-weight""#), "{line}");
    }
    assert!(!report.contains(" decide at "), "{report}");
}
