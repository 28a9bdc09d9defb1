//! Writing a plugin: `sluice plugin new` scaffolds a crate that builds,
//! tests and passes `sluice plugin check` as it is; the guest SDK stands on
//! its own; `sluice plugin check --fuzz` finds a rule a plugin breaks only on
//! some inputs and prints that input, shrunk.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{self, repo_root, sluice, test_plugin};

/// `target/scaffold-test`: the scaffolds and their shared target dir, kept
/// across runs so that rebuilding them is incremental.
fn scaffold_root() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is <target>/tmp")
        .join("scaffold-test")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The test plugin that advances past `maxWeight` only above 30 %.
fn sometimes_overweight() -> PathBuf {
    // Builds the tests/plugins workspace, this plugin included.
    test_plugin("overweight");
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("test-plugins/wasm32-wasip2/release/sluice_test_sometimes_overweight.wasm")
}

#[test]
fn fuzzing_finds_a_rule_broken_only_on_some_inputs_and_prints_the_input_shrunk() {
    let wasm = sometimes_overweight();
    let wasm = wasm.to_str().unwrap();
    // The sample calls of a plain check (weight 10) do not see the bug.
    let plain = sluice(&["plugin", "check", wasm]);
    assert!(plain.status.success(), "{}", text(&plain));
    assert!(
        stdout(&plain).ends_with("result:   OK\n"),
        "{}",
        text(&plain)
    );

    let fuzzed = sluice(&["plugin", "check", "--fuzz", "200", wasm]);
    assert_eq!(fuzzed.status.code(), Some(1), "{}", text(&fuzzed));
    let out = stdout(&fuzzed);
    assert!(
        out.contains("(seed 0)")
            && out.contains(
                "returned an invalid answer: advance to canary weight 32 exceeds the Canary's maximum of 31 (from 31)"
            ),
        "{out}"
    );
    assert!(
        out.contains("the failing call is decide with this input:"),
        "{out}"
    );
    // The shrunk input: the smallest weight that breaks the rule, at the
    // smallest maximum that allows it, progressing, nothing else set.
    let input: serde_json::Value =
        serde_json::from_str(&out[out.find("\n{").expect("the input, as JSON")..])
            .expect("the input is JSON");
    assert_eq!(input["state"]["canary_weight"], 31, "{out}");
    assert_eq!(input["state"]["phase"], "Progressing", "{out}");
    assert_eq!(input["state"]["iterations"], 0, "{out}");
    assert_eq!(input["spec"]["max_weight"], 31, "{out}");
    assert_eq!(input["spec"]["matches"], serde_json::json!([]), "{out}");
    assert_eq!(input["spec"]["session_affinity"], serde_json::Value::Null);
    assert_eq!(input["spec"]["threshold"], 1, "{out}");
    assert_eq!(input["spec"]["interval_seconds"], 1, "{out}");

    // Deterministic: the same seed, the same report; another seed finds
    // the same smallest weight.
    // (Everything from the fuzz lines on: the sample calls print timings.)
    let fuzz_part = |out: &str| out[out.find("fuzz:").expect("fuzz lines")..].to_string();
    let again = sluice(&["plugin", "check", "--fuzz", "200", wasm]);
    assert_eq!(fuzz_part(&stdout(&again)), fuzz_part(&out));
    let other = sluice(&["plugin", "check", "--fuzz", "200", "--seed", "7", wasm]);
    assert_eq!(other.status.code(), Some(1), "{}", text(&other));
    let other = stdout(&other);
    assert!(other.contains("(seed 7)"), "{other}");
    assert!(other.contains("\"canary_weight\": 31"), "{other}");
}

#[test]
fn the_sdks_wit_is_a_copy_of_the_contract() {
    // Both versions: 0.1 and 0.2.
    for wit in ["wit/plugin.wit", "wit/v0.2/plugin.wit"] {
        let contract = std::fs::read(repo_root().join(wit)).unwrap();
        let in_sdk = format!("plugins/sdk/{wit}");
        let copy = std::fs::read(repo_root().join(&in_sdk)).unwrap();
        assert!(
            copy == contract,
            "{in_sdk} differs from {wit}: copy the contract into the SDK (cp {wit} {in_sdk})"
        );
    }
    // Nothing in the SDK reaches out of its folder.
    let sdk = repo_root().join("plugins/sdk");
    let manifest = std::fs::read_to_string(sdk.join("Cargo.toml")).unwrap();
    let settings: Vec<&str> = manifest
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    assert!(
        !settings
            .iter()
            .any(|l| l.contains("workspace") || l.contains("path")),
        "{manifest}"
    );
    let lib = std::fs::read_to_string(sdk.join("src/lib.rs")).unwrap();
    assert!(
        !lib.contains("\"../"),
        "the SDK's bindings read a path out of its folder"
    );
}

/// Runs cargo on a scaffolded crate, offline, in the shared target dir,
/// without the outer build's flags.
fn cargo(dir: &Path, args: &[&str]) -> Output {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    Command::new(cargo)
        .args(args)
        .arg("--offline")
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", scaffold_root().join("target"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .output()
        .expect("run cargo")
}

/// A copy of the SDK outside `plugins/`: a scaffold that builds against it
/// shows that the SDK needs nothing else from the repository.
fn sdk_copy() -> PathBuf {
    let copy = scaffold_root().join("sdk-copy/sluice-plugin-sdk");
    let sdk = repo_root().join("plugins/sdk");
    for file in [
        "Cargo.toml",
        "README.md",
        "wit/plugin.wit",
        "wit/v0.2/plugin.wit",
    ] {
        let to = copy.join(file);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(sdk.join(file), &to).unwrap();
    }
    copy_sources(&sdk.join("src"), &copy.join("src"));
    copy
}

/// Copies the source tree `from` (e.g. `src/`, `src/v2/`) to `to`,
/// rewriting only the files that changed: the copy's mtimes drive the
/// rebuild.
fn copy_sources(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_sources(&entry.path(), &target);
            continue;
        }
        let text = std::fs::read(entry.path()).unwrap();
        if std::fs::read(&target).ok().as_ref() != Some(&text) {
            std::fs::write(&target, text).unwrap();
        }
    }
}

/// `sluice plugin new NAME --kind KIND`, `cargo test`, `cargo build
/// --release --target wasm32-wasip2`, `sluice plugin check --fuzz` and
/// `sluice simulate` with the component; returns the check's output.
fn scaffold_build_check(name: &str, kind: &str) -> String {
    let _heavy = common::cpu_heavy();
    let dir = scaffold_root().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    let sdk = sdk_copy();
    let new = sluice(&[
        "plugin",
        "new",
        name,
        "--kind",
        kind,
        "--dir",
        dir.to_str().unwrap(),
        "--sdk-path",
        sdk.to_str().unwrap(),
    ]);
    assert!(new.status.success(), "{}", text(&new));
    assert!(
        stdout(&new).starts_with(&format!("created:  {kind} plugin {name} in ")),
        "{}",
        text(&new)
    );
    for file in ["Cargo.toml", "src/lib.rs", "README.md"] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }

    let tested = cargo(&dir, &["test"]);
    assert!(tested.status.success(), "cargo test: {}", text(&tested));
    assert!(
        String::from_utf8_lossy(&tested.stdout).contains("test result: ok"),
        "{}",
        text(&tested)
    );
    let built = cargo(&dir, &["build", "--release", "--target", "wasm32-wasip2"]);
    assert!(built.status.success(), "cargo build: {}", text(&built));

    let wasm = scaffold_root().join(format!(
        "target/wasm32-wasip2/release/{}.wasm",
        name.replace('-', "_")
    ));
    let checked = sluice(&["plugin", "check", "--fuzz", "200", wasm.to_str().unwrap()]);
    assert!(checked.status.success(), "{}", text(&checked));

    // And a whole rollout in the simulator, in place of the guide's
    // strategy or of every metric's evaluator.
    let flag = format!("--{kind}-plugin");
    let simulated = sluice(&["simulate", &flag, wasm.to_str().unwrap()]);
    assert!(simulated.status.success(), "{}", text(&simulated));
    assert!(
        stdout(&simulated).contains("Promotion completed! Scaling down podinfo.test"),
        "{}",
        text(&simulated)
    );
    stdout(&checked)
}

#[test]
fn a_new_strategy_builds_tests_and_passes_check_and_fuzzing() {
    let out = scaffold_build_check("acme-steady", "strategy");
    assert!(out.contains("world:    strategy"), "{out}");
    // On the SDK's v2 API: contract 0.2, with the settings export.
    assert!(out.contains("contract: sluice:plugin@0.2.0"), "{out}");
    assert!(out.contains("sluice:plugin/settings@0.2.0"), "{out}");
    assert!(out.contains("result:   OK\n"), "{out}");
    assert!(
        out.contains(
            "fuzz:     200 cases passed (seed 0): every answer to decide and route accepted"
        ),
        "{out}"
    );
}

#[test]
fn a_new_evaluator_builds_tests_and_passes_check_and_fuzzing() {
    let out = scaffold_build_check("acme-judge", "evaluator");
    assert!(out.contains("world:    evaluator"), "{out}");
    assert!(out.contains("contract: sluice:plugin@0.2.0"), "{out}");
    assert!(out.contains("sluice:plugin/settings@0.2.0"), "{out}");
    assert!(
        out.contains("call:     requirements -> baseline true, no series"),
        "{out}"
    );
    assert!(out.contains("result:   OK\n"), "{out}");
    assert!(
        out.contains(
            "fuzz:     200 cases passed (seed 0): every answer to requirements and evaluate accepted"
        ),
        "{out}"
    );
}

#[test]
fn plugin_new_takes_the_sdk_of_the_checkout_or_by_version() {
    let root = scaffold_root().join("defaults");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();

    // Run from the repository: the checkout's SDK, by path.
    let dir = root.join("in-checkout");
    let out = sluice(&[
        "plugin",
        "new",
        "in-checkout",
        "--kind",
        "strategy",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let sdk = std::fs::canonicalize(repo_root().join("plugins/sdk")).unwrap();
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains(&format!(
            "sluice-plugin-sdk = {{ path = \"{}\" }}",
            sdk.display()
        )),
        "{manifest}"
    );
    assert!(manifest.contains("name = \"in-checkout\""), "{manifest}");

    // Run outside any checkout: the published SDK, by version.
    let outside = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["plugin", "new", "elsewhere", "--kind", "evaluator"])
        .current_dir(outside.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains("sluice-plugin-sdk by version 0.1"),
        "{}",
        text(&out)
    );
    let manifest = std::fs::read_to_string(outside.path().join("elsewhere/Cargo.toml")).unwrap();
    assert!(
        manifest.contains("sluice-plugin-sdk = \"0.1\"\n"),
        "{manifest}"
    );
    let lib = std::fs::read_to_string(outside.path().join("elsewhere/src/lib.rs")).unwrap();
    assert!(lib.contains("impl Evaluator for Elsewhere"), "{lib}");
    assert!(
        lib.contains("use sluice_plugin_sdk::v2::evaluator::*;"),
        "{lib}"
    );

    // Never over an existing crate; names cargo and the host accept.
    let again = sluice(&[
        "plugin",
        "new",
        "in-checkout",
        "--kind",
        "strategy",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already exists and is not empty"),
        "{}",
        text(&again)
    );
    let bad = sluice(&["plugin", "new", "Bad_Name", "--kind", "strategy"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("is not a plugin crate name"),
        "{}",
        text(&bad)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzing_an_evaluator_holds_its_verdicts_to_the_hosts_checks() {
    use sluice_host::Limits;
    use sluice_host::fuzz::{FuzzOptions, fuzz};
    let host = crate::common::host();
    let wasm = test_plugin("hostile_evaluator");
    let options = |config: &str| FuzzOptions {
        cases: 100,
        seed: 0,
        config: config.into(),
    };
    // Settings under which it passes everything: every case passes.
    let report = fuzz(&host, "hostile", wasm, Limits::default(), &options(""))
        .await
        .unwrap();
    assert!(report.ok(), "{report}");
    assert_eq!(report.passed, 100);
    // A failing verdict without a reason: the first case fails, shrunk to
    // the first metric name, no thresholds, and samples without a baseline
    // or series (it asks for neither).
    let report = fuzz(
        &host,
        "hostile",
        wasm,
        Limits::default(),
        &options("empty-reason"),
    )
    .await
    .unwrap();
    let failure = report.failure.clone().expect("a failure");
    assert_eq!((failure.case, failure.call), (1, "evaluate"), "{report}");
    assert!(
        failure
            .fault
            .contains("a failing verdict needs a reason of 1 to 1024 bytes (got 0 bytes)"),
        "{report}"
    );
    let input: serde_json::Value = serde_json::from_str(&failure.input).unwrap();
    assert_eq!(input["metric"]["name"], "request-success-rate", "{report}");
    assert_eq!(input["metric"]["config"], "empty-reason", "{report}");
    assert_eq!(
        input["metric"]["threshold_range"],
        serde_json::json!({"min": null, "max": null}),
        "{report}"
    );
    assert_eq!(input["samples"]["primary"], serde_json::Value::Null);
    assert_eq!(input["samples"]["canary_series"], serde_json::json!([]));
    assert_eq!(input["samples"]["canary"], 0.0, "{report}");
}

// Plugins on the SDK's 0.2 API (tests/plugins/v2-strategy and
// v2-evaluator): they pass `sluice plugin check`, their settings checks
// refuse bad settings with their message, and they run whole rollouts in
// the simulator.

/// A 0.2 test plugin of `tests/plugins/` (`v2_strategy`, `v2_evaluator`).
fn v2_plugin(stem: &str) -> PathBuf {
    // Builds the tests/plugins workspace, these plugins included.
    test_plugin("loop");
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("test-plugins/wasm32-wasip2/release/{stem}.wasm"))
}

/// A file in the test's temp dir.
fn temp_file(name: &str, text: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A `sluice simulate --output json` run: one object per tick.
fn simulate_ticks(args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["simulate", "--output", "json"];
    all.extend_from_slice(args);
    let out = sluice(&all);
    assert!(out.status.success(), "sluice {all:?}: {}", text(&out));
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn messages(ticks: &[serde_json::Value]) -> Vec<String> {
    ticks
        .iter()
        .flat_map(|t| t["events"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e["message"].as_str().map(str::to_string))
        .collect()
}

/// The rules of a tick's HTTPRoute.
fn route_rules(tick: &serde_json::Value) -> Vec<serde_json::Value> {
    tick["httpRoute"]["spec"]["rules"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The guide's Canary with `strategyConfig: {redirectLegacy: true}`.
fn canary_redirecting_legacy() -> PathBuf {
    let yaml = crate::common::read("examples/podinfo-canary.yaml");
    let yaml = yaml.replacen(
        "    stepWeight: 10\n",
        "    stepWeight: 10\n    strategyConfig:\n      redirectLegacy: true\n",
        1,
    );
    assert!(
        yaml.contains("redirectLegacy"),
        "the guide's Canary changed"
    );
    temp_file("v2-strategy-canary.yaml", &yaml)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_strategy_on_the_sdk_passes_check_and_its_settings_check_names_the_key() {
    let wasm = v2_plugin("v2_strategy");
    let path = wasm.to_str().unwrap();
    // The host calls the SDK's `validate-config` export, which calls the
    // trait's `validate_config`.
    let bytes = std::fs::read(&wasm).unwrap();
    let plugin = crate::common::host()
        .load_strategy("v2-strategy", &bytes, sluice_host::Limits::default())
        .expect("a 0.2 strategy loads");
    assert_eq!(plugin.contract(), "0.2");
    assert!(plugin.validates_config());
    assert!(
        plugin
            .check_config(r#"{"redirectLegacy": true}"#)
            .await
            .is_ok()
    );
    assert!(plugin.check_config("").await.is_ok());
    let refused = plugin
        .check_config(r#"{"redirectLegacy": true, "factor": 2}"#)
        .await
        .expect_err("an unknown key is refused")
        .to_string();
    assert!(
        refused.contains("v2-strategy: unknown setting \"factor\" (known: redirectLegacy)"),
        "{refused}"
    );

    let out = sluice(&["plugin", "check", path]);
    let report = stdout(&out);
    assert!(out.status.success(), "{}", text(&out));
    assert!(report.contains("world:    strategy"), "{report}");
    assert!(report.contains("sluice:plugin@0.2.0"), "{report}");
    assert!(report.contains("sluice:plugin/settings@0.2.0"), "{report}");
    assert!(report.contains("sluice:plugin/log@0.2.0"), "{report}");
    // A 0.2 plugin imports nothing of 0.1.
    assert!(!report.contains("@0.1.0"), "{report}");
    assert!(report.contains("result:   OK"), "{report}");
    let ok = sluice(&[
        "plugin",
        "check",
        path,
        "--config",
        r#"{"redirectLegacy": true}"#,
    ]);
    assert!(ok.status.success(), "{}", text(&ok));
}

#[test]
fn a_v2_strategy_steps_like_flagger_and_its_routes_carry_filters() {
    let wasm = v2_plugin("v2_strategy");
    let canary = canary_redirecting_legacy();
    let ticks = simulate_ticks(&[
        "--canary",
        canary.to_str().unwrap(),
        "--strategy-plugin",
        wasm.to_str().unwrap(),
    ]);
    // stepWeight 10 up to maxWeight 50, read from the analysis JSON.
    let advances: Vec<String> = messages(&ticks)
        .into_iter()
        .filter(|m| m.starts_with("Advance"))
        .collect();
    let expected: Vec<String> = [10, 20, 30, 40, 50]
        .iter()
        .map(|w| format!("Advance podinfo.test canary weight {w}"))
        .collect();
    assert_eq!(advances, expected, "{:?}", messages(&ticks));
    assert_eq!(ticks.last().unwrap()["phase"], "Succeeded");

    // At 30 %: the catch-all rule tells responses the weight, and a first
    // rule redirects /legacy to / (301) without reaching the canary.
    let tick = ticks
        .iter()
        .find(|t| t["canaryWeight"] == 30 && t["phase"] == "Progressing")
        .expect("a tick at 30 %");
    let rules = route_rules(tick);
    let catch_all = rules.last().expect("a catch-all rule");
    assert!(
        catch_all["filters"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|f| f["type"] == "ResponseHeaderModifier"
                && f["responseHeaderModifier"]["set"]
                    == serde_json::json!([{"name": "x-sluice-weight", "value": "30"}])),
        "{catch_all:#}"
    );
    let legacy = rules
        .iter()
        .find(|r| {
            r["matches"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|m| m["path"]["value"] == "/legacy")
        })
        .unwrap_or_else(|| panic!("a /legacy rule: {rules:#?}"));
    let redirect = legacy["filters"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["type"] == "RequestRedirect")
        .unwrap_or_else(|| panic!("a redirect: {legacy:#}"));
    assert_eq!(
        redirect["requestRedirect"]["statusCode"], 301,
        "{redirect:#}"
    );
    assert_eq!(
        redirect["requestRedirect"]["path"]["replaceFullPath"], "/",
        "{redirect:#}"
    );
    assert!(
        !legacy["backendRefs"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|b| b["name"] == "podinfo-canary" && b["weight"] != 0),
        "{legacy:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_evaluator_asks_for_series_and_holds_while_it_needs_more_data() {
    let wasm = v2_plugin("v2_evaluator");
    let path = wasm.to_str().unwrap();
    let out = sluice(&["plugin", "check", path]);
    let report = stdout(&out);
    assert!(out.status.success(), "{}", text(&out));
    assert!(report.contains("world:    evaluator"), "{report}");
    assert!(report.contains("sluice:plugin@0.2.0"), "{report}");
    assert!(report.contains("sluice:plugin/settings@0.2.0"), "{report}");
    assert!(!report.contains("@0.1.0"), "{report}");
    assert!(
        report.contains("requirements -> baseline true, series of 300s every 60s"),
        "{report}"
    );
    assert!(report.contains("result:   OK"), "{report}");

    let bytes = std::fs::read(&wasm).unwrap();
    let plugin = crate::common::host()
        .load_evaluator("v2-evaluator", &bytes, sluice_host::Limits::default())
        .expect("a 0.2 evaluator loads");
    assert_eq!(plugin.contract(), "0.2");
    assert!(plugin.validates_config());
    assert!(plugin.check_config(r#"{"minSamples": 1}"#).await.is_ok());
    let refused = plugin
        .check_config(r#"{"minSamples": 0}"#)
        .await
        .expect_err("minSamples 0 is refused")
        .to_string();
    assert!(
        refused.contains("v2-evaluator: minSamples must be at least 1"),
        "{refused}"
    );

    // The canary's series has 1 sample up to tick 4, 2 at tick 5, then 4:
    // the checks before tick 6 need more data (minSamples 3), which holds
    // the rollout without a failed check; then every value passes.
    let series = |v: &str| {
        format!(
            "    - [{v}]\n    - [{v}]\n    - [{v}]\n    - [{v}]\n    - [{v}, {v}]\n    - [{v}, {v}, {v}, {v}]\n"
        )
    };
    let scenario = format!(
        "ticks: 20\nchanges:\n  - tick: 2\n    image: podinfod=podinfo:2\n\
         metrics:\n  error-rate: [0.5]\n  latency: [0.2]\n\
         primaryMetrics:\n  error-rate: [0.5]\n  latency: [0.2]\n\
         series:\n  error-rate:\n{}  latency:\n{}\
         primarySeries:\n  error-rate:\n    - [0.5, 0.5, 0.5, 0.5]\n  latency:\n    - [0.2, 0.2, 0.2, 0.2]\n",
        series("0.5"),
        series("0.2")
    );
    let scenario = temp_file("v2-evaluator-scenario.yaml", &scenario);
    let ticks = simulate_ticks(&[
        "--scenario",
        scenario.to_str().unwrap(),
        "--evaluator-plugin",
        path,
    ]);
    let all = messages(&ticks);
    assert!(
        all.iter()
            .any(|m| m.contains("only 1 samples, need 3") || m.contains("only 2 samples, need 3")),
        "{all:#?}"
    );
    assert!(
        ticks.iter().all(|t| t["failedChecks"] == 0),
        "needs-more-data is no failed check: {all:#?}"
    );
    assert!(
        all.iter()
            .any(|m| m == "Advance podinfo.test canary weight 50"),
        "{all:#?}"
    );
    assert_eq!(ticks.last().unwrap()["phase"], "Succeeded", "{all:#?}");

    // A canary over the threshold (error-rate max 1) fails the checks.
    let failing = temp_file(
        "v2-evaluator-failing.yaml",
        "ticks: 20\nchanges:\n  - tick: 2\n    image: podinfod=podinfo:2\n\
         metrics:\n  error-rate: [7]\n  latency: [0.2]\n\
         primaryMetrics:\n  error-rate: [0.5]\n  latency: [0.2]\n\
         series:\n  error-rate:\n    - [7, 7, 7, 7]\n  latency:\n    - [0.2, 0.2, 0.2, 0.2]\n\
         primarySeries:\n  error-rate:\n    - [0.5, 0.5, 0.5, 0.5]\n  latency:\n    - [0.2, 0.2, 0.2, 0.2]\n",
    );
    let ticks = simulate_ticks(&[
        "--scenario",
        failing.to_str().unwrap(),
        "--evaluator-plugin",
        path,
    ]);
    let all = messages(&ticks);
    assert!(
        all.iter().any(|m| m.contains("error-rate 7 > 1")),
        "{all:#?}"
    );
    assert_eq!(ticks.last().unwrap()["phase"], "Failed", "{all:#?}");
}
