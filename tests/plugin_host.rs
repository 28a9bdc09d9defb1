//! The Wasm host: plugins are compiled once and cached, every call is
//! isolated, and a plugin that loops, exhausts memory, traps or answers
//! nonsense is contained and reported.

use crate::common;

use std::time::{Duration, Instant};

use sluice_host::bindings::strategy::{Action, Observation, Phase, RolloutState};
use sluice_host::builtin::wasm;
use sluice_host::{ArtifactCache, FaultKind, Limits, PluginHost, validate};
use sluice_rollout::analysis::analysis_spec;

fn progressing(weight: u32) -> RolloutState {
    RolloutState {
        phase: Phase::Progressing,
        canary_weight: weight,
        iterations: 0,
        failed_checks: 0,
    }
}

fn obs() -> Observation {
    Observation {
        now_unix_seconds: 1_700_000_000,
        phase_started_unix_seconds: 1_700_000_000,
    }
}

fn seed_spec() -> sluice_host::bindings::strategy::AnalysisSpec {
    let settings = common::canary("examples/podinfo-canary.yaml")
        .settings()
        .unwrap();
    analysis_spec(&settings, &Default::default())
}

#[tokio::test]
async fn weighted_plugin_steps_to_max_weight_then_promotes() {
    let host = common::host();
    let p = host
        .load_strategy("weighted", wasm::WEIGHTED, Limits::default())
        .unwrap();
    let spec = seed_spec();
    let mut weights = vec![];
    let mut state = progressing(0);
    loop {
        match p.decide(&spec, state, obs()).await.unwrap() {
            Action::Advance(a) => {
                weights.push(a.canary_weight);
                state.canary_weight = a.canary_weight;
            }
            Action::Promote => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(weights, [10, 20, 30, 40, 50]);
    let plan = p.route(&spec, progressing(30)).await.unwrap();
    validate::route_plan("weighted", &spec, &progressing(30), &plan).unwrap();
    let weights: Vec<u32> = plan.rules[0].backends.iter().map(|b| b.weight).collect();
    assert_eq!(weights, [70, 30]);
}

#[tokio::test]
async fn an_endless_loop_times_out_within_its_budget() {
    let host = common::host();
    let limits = Limits {
        time_budget: Duration::from_millis(50),
        ..Limits::default()
    };
    let p = host
        .load_strategy("loop", common::test_plugin("loop"), limits)
        .unwrap();
    let started = Instant::now();
    let fault = p
        .decide(&seed_spec(), progressing(0), obs())
        .await
        .unwrap_err();
    assert_eq!(fault.kind, FaultKind::Timeout { budget_ms: 50 });
    assert!(
        fault.to_string().contains("plugin loop timed out"),
        "{fault}"
    );
    // Generous bound: the point is that the call ends at all.
    assert!(started.elapsed() < Duration::from_secs(5));
    // The host still serves other plugins afterwards.
    let w = host
        .load_strategy("weighted", wasm::WEIGHTED, Limits::default())
        .unwrap();
    assert!(w.decide(&seed_spec(), progressing(0), obs()).await.is_ok());
}

#[tokio::test]
async fn unbounded_allocation_hits_the_memory_cap() {
    let host = common::host();
    let limits = Limits {
        memory_bytes: 16 * 1024 * 1024,
        ..Limits::default()
    };
    let p = host
        .load_strategy("alloc", common::test_plugin("alloc"), limits)
        .unwrap();
    let fault = p
        .decide(&seed_spec(), progressing(0), obs())
        .await
        .unwrap_err();
    assert_eq!(
        fault.kind,
        FaultKind::MemoryExhausted {
            cap_bytes: 16 * 1024 * 1024
        }
    );
    assert!(
        fault.to_string().contains("exhausted its memory"),
        "{fault}"
    );
}

#[tokio::test]
async fn a_trap_is_reported_with_the_panic_message() {
    let host = common::host();
    let p = host
        .load_strategy("trap", common::test_plugin("trap"), Limits::default())
        .unwrap();
    let fault = p
        .decide(&seed_spec(), progressing(0), obs())
        .await
        .unwrap_err();
    match &fault.kind {
        FaultKind::Trap(msg) => assert!(!msg.is_empty()),
        other => panic!("expected a trap, got {other:?}"),
    }
    assert!(
        fault.to_string().starts_with("plugin trap trapped"),
        "{fault}"
    );
}

#[tokio::test]
async fn an_overweight_answer_is_refused_by_validation() {
    let host = common::host();
    let p = host
        .load_strategy(
            "overweight",
            common::test_plugin("overweight"),
            Limits::default(),
        )
        .unwrap();
    let state = progressing(0);
    let action = p.decide(&seed_spec(), state, obs()).await.unwrap();
    let fault = validate::action("overweight", &seed_spec(), &state, &action).unwrap_err();
    assert!(
        fault
            .to_string()
            .contains("advance to canary weight 150 exceeds the Canary's maximum of 50 (from 0)"),
        "{fault}"
    );
    let plan = p.route(&seed_spec(), state).await.unwrap();
    let fault =
        validate::route_plan("overweight", &seed_spec(), &progressing(10), &plan).unwrap_err();
    assert!(fault.to_string().contains("outside 0-100"), "{fault}");
}

#[tokio::test]
async fn a_file_that_is_not_a_component_or_the_wrong_world_is_refused() {
    let host = common::host();
    let fault = host
        .load_strategy("junk", b"not wasm", Limits::default())
        .err()
        .unwrap();
    assert!(matches!(fault.kind, FaultKind::Load(_)), "{fault}");
    // The threshold plugin is an evaluator, not a strategy.
    let fault = host
        .load_strategy("threshold", wasm::THRESHOLD, Limits::default())
        .err()
        .unwrap();
    assert_eq!(
        fault.to_string(),
        "plugin threshold could not be loaded: it is an evaluator plugin (it exports sluice:plugin/judge), not a strategy plugin"
    );
}

#[tokio::test]
async fn compiled_plugins_are_cached_on_disk_by_digest() {
    let dir = tempfile::tempdir().unwrap();
    let host = PluginHost::new(Some(ArtifactCache::new(dir.path()).unwrap())).unwrap();
    let p = host
        .load_strategy("weighted", wasm::WEIGHTED, Limits::default())
        .unwrap();
    let entries: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries.len(), 1);
    let name = entries[0].to_string_lossy().to_string();
    assert!(
        name.starts_with(p.digest()) && name.ends_with(".cwasm"),
        "{name}"
    );
    // A second host (a restarted engine) loads from the cache and works.
    let host2 = PluginHost::new(Some(ArtifactCache::new(dir.path()).unwrap())).unwrap();
    let p2 = host2
        .load_strategy("weighted", wasm::WEIGHTED, Limits::default())
        .unwrap();
    assert_eq!(p2.digest(), p.digest());
    assert!(p2.decide(&seed_spec(), progressing(0), obs()).await.is_ok());
    // A corrupt cache entry is ignored, not fatal.
    std::fs::write(dir.path().join(&name), b"garbage").unwrap();
    let host3 = PluginHost::new(Some(ArtifactCache::new(dir.path()).unwrap())).unwrap();
    assert!(
        host3
            .load_strategy("weighted", wasm::WEIGHTED, Limits::default())
            .is_ok()
    );
}

#[tokio::test]
async fn threshold_evaluator_uses_flaggers_wording() {
    use sluice_host::bindings::evaluator::{Metric, Samples, ThresholdRange, Verdict};
    let host = common::host();
    let e = host
        .load_evaluator("threshold", wasm::THRESHOLD, Limits::default())
        .unwrap();
    let metric = |name: &str, min, max| Metric {
        name: name.into(),
        threshold_range: ThresholdRange { min, max },
        config: String::new(),
    };
    let judge = async |m: &Metric, v: f64| {
        e.evaluate(
            m,
            Samples {
                canary: v,
                primary: None,
                canary_series: Vec::new(),
                primary_series: Vec::new(),
            },
        )
        .await
        .unwrap()
    };
    assert_eq!(
        judge(&metric("error-rate", None, Some(1.0)), 0.5).await,
        Verdict::Pass
    );
    assert_eq!(
        judge(&metric("error-rate", None, Some(1.0)), 69.17).await,
        Verdict::Fail("error rate 69.17% > 1%".into())
    );
    assert_eq!(
        judge(&metric("latency", None, Some(0.5)), 0.62).await,
        Verdict::Fail("latency 0.62 > 0.5".into())
    );
    assert_eq!(
        judge(&metric("request-success-rate", Some(99.0), None), 98.0).await,
        Verdict::Fail("success rate 98.00% < 99%".into())
    );
    assert_eq!(
        judge(&metric("request-duration", None, Some(500.0)), 1500.0).await,
        Verdict::Fail("request duration 1.5s > 500ms".into())
    );
    assert!(matches!(
        judge(&metric("latency", None, Some(0.5)), f64::NAN).await,
        Verdict::Inconclusive(_)
    ));
}

#[tokio::test]
async fn plugins_get_no_clock_and_no_randomness_from_the_host() {
    // Identical inputs give identical answers, call after call.
    let host = common::host();
    let p = host
        .load_strategy("weighted", wasm::WEIGHTED, Limits::default())
        .unwrap();
    let spec = seed_spec();
    let first = p.route(&spec, progressing(20)).await.unwrap();
    for _ in 0..5 {
        assert_eq!(p.route(&spec, progressing(20)).await.unwrap(), first);
    }
}

#[tokio::test]
async fn a_plugin_for_another_contract_version_is_refused_naming_both_versions() {
    let host = common::host();
    let contract = host
        .inspect("future", common::test_plugin("future"))
        .unwrap();
    assert_eq!(contract.version.as_deref(), Some("0.3.0"));
    let fault = host
        .load_strategy("future", common::test_plugin("future"), Limits::default())
        .err()
        .unwrap();
    assert_eq!(
        fault.to_string(),
        "plugin future could not be loaded: it targets sluice:plugin@0.3.0; this host supports sluice:plugin@0.1.x and 0.2.x: rebuild it with the SDK of one of those versions"
    );
}

#[tokio::test]
async fn plugin_check_reports_contract_calls_and_refusals() {
    use sluice_host::check::check;
    let host = common::host();
    let ok = check(&host, "weighted", wasm::WEIGHTED, Limits::default(), "").await;
    assert!(ok.ok(), "{ok}");
    let text = ok.to_string();
    assert!(text.contains("world:    strategy"), "{text}");
    assert!(text.contains(
        "contract: sluice:plugin@0.1.0 (this host supports sluice:plugin@0.1.x and 0.2.x)"
    ));
    assert!(text.contains("exports:  sluice:plugin/rollout@0.1.0"));
    assert_eq!(ok.trial.len(), 3, "decide, route, route at rest");
    assert!(text.ends_with("result:   OK\n"));

    let evaluator = check(&host, "threshold", wasm::THRESHOLD, Limits::default(), "").await;
    assert!(evaluator.ok() && evaluator.to_string().contains("world:    evaluator"));

    let looping = check(
        &host,
        "loop",
        common::test_plugin("loop"),
        Limits::default(),
        "",
    )
    .await;
    assert_eq!(
        looping.problem.as_deref(),
        Some("plugin loop timed out: no answer within 100 ms")
    );
    let overweight = check(
        &host,
        "overweight",
        common::test_plugin("overweight"),
        Limits::default(),
        "",
    )
    .await;
    assert!(
        overweight
            .problem
            .as_deref()
            .unwrap()
            .contains("advance to canary weight 150 exceeds the Canary's maximum of 50")
    );
    let future = check(
        &host,
        "future",
        common::test_plugin("future"),
        Limits::default(),
        "",
    )
    .await;
    assert!(future.to_string().contains(
        "result:   REFUSED: plugin future could not be loaded: it targets sluice:plugin@0.3.0"
    ));
    let junk = check(&host, "junk", b"\0asm junk", Limits::default(), "").await;
    assert!(!junk.ok() && junk.contract.is_none());
}

// Hostile plugins, written without the SDK (tests/plugins/hostile-*): each
// call ends within its budget plus slack, faults with a reason that names
// the plugin and the cause, and the host keeps serving.

/// A generous bound on "within the budget": the point is that the call
/// ends, on a loaded CI machine too.
const ENDS_WITHIN: Duration = Duration::from_secs(3);

fn spec_with(config: &str) -> sluice_host::bindings::strategy::AnalysisSpec {
    let mut spec = seed_spec();
    spec.config = config.to_string();
    spec
}

/// What a hostile behaviour makes `decide` and `route` end with.
async fn hostile_outcome(config: &str) -> (String, String) {
    let host = common::host();
    let p = host
        .load_strategy(
            "hostile",
            common::test_plugin("hostile_strategy"),
            Limits::default(),
        )
        .unwrap();
    let spec = spec_with(config);
    let started = Instant::now();
    let decided = p.decide(&spec, progressing(10), obs()).await;
    assert!(
        started.elapsed() < ENDS_WITHIN,
        "{config}: decide took {:?}",
        started.elapsed()
    );
    let decided = match decided {
        Ok(action) => match validate::action("hostile", &spec, &progressing(10), &action) {
            Ok(()) => format!("ok {action:?}").chars().take(200).collect(),
            Err(fault) => fault.to_string(),
        },
        Err(fault) => fault.to_string(),
    };
    let started = Instant::now();
    let routed = p.route(&spec, progressing(10)).await;
    assert!(
        started.elapsed() < ENDS_WITHIN,
        "{config}: route took {:?}",
        started.elapsed()
    );
    let routed = match routed {
        Ok(plan) => match validate::route_plan("hostile", &spec, &progressing(10), &plan) {
            Ok(()) => "ok".to_string(),
            Err(fault) => fault.to_string(),
        },
        Err(fault) => fault.to_string(),
    };
    (decided, routed)
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_strategies_fault_within_their_budget_with_the_cause() {
    let sleep = "plugin hostile trapped: wasi:clocks/monotonic-clock.subscribe-duration is not available to plugins";
    let cases: [(&str, &str, &str); 16] = [
        ("sleep", sleep, sleep),
        (
            "clock-loop",
            "plugin hostile timed out: no answer within 100 ms",
            "timed out",
        ),
        (
            "loop",
            "plugin hostile timed out: no answer within 100 ms",
            "timed out",
        ),
        (
            "stdin",
            "plugin hostile returned an error: stdin gave Ok(0) and 0 bytes",
            "stdin gave Ok(0)",
        ),
        (
            "files",
            "plugin hostile returned an error: read /etc/passwd: Err(",
            "read /etc/passwd: Err(",
        ),
        (
            "socket",
            "plugin hostile returned an error: connect: Err(",
            "connect: Err(",
        ),
        (
            "env",
            "plugin hostile returned an error: 0 environment variables",
            "0 environment variables",
        ),
        (
            "wall-clock",
            "plugin hostile returned an error: Ok(0ns)",
            "Ok(0ns)",
        ),
        // Rust's stack lives in linear memory: overflowing it is an
        // out-of-bounds access, or Wasmtime's call-stack limit.
        (
            "stack-overflow",
            "plugin hostile trapped: ",
            "plugin hostile trapped: ",
        ),
        (
            "memory-bomb",
            "plugin hostile exhausted its memory: it tried to use more than 64 MiB",
            "exhausted its memory",
        ),
        (
            "panic",
            "hostile plugin panics on purpose",
            "hostile plugin panics on purpose",
        ),
        (
            "exit",
            "plugin hostile trapped: Exited with i32 exit status",
            "Exited with i32 exit status",
        ),
        (
            "stderr-flood",
            "plugin hostile trapped: ",
            "flooding stderr",
        ),
        (
            "big-error",
            "plugin hostile returned an error: xxxx",
            "returned an error: xxx",
        ),
        (
            "big-reason",
            "returned an invalid answer: reason of 10485760 bytes, longer than 1024",
            "ok",
        ),
        (
            "advance-100",
            "advance to canary weight 100 exceeds the Canary's maximum of 50 (from 10)",
            "ok",
        ),
    ];
    for (config, decide, route) in cases {
        let (decided, routed) = hostile_outcome(config).await;
        assert!(decided.contains(decide), "{config}: decide gave {decided}");
        assert!(routed.contains(route), "{config}: route gave {routed}");
        assert!(
            decided.len() < 2048 && routed.len() < 2048,
            "{config}: reasons are bounded"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_routes_never_widen_traffic() {
    for (config, why) in [
        (
            "all-to-canary",
            "the catch-all rule sends 100% to the canary, but the state's canary weight is 10%",
        ),
        ("huge-regex", "regex of 100000 bytes is longer than 1024"),
        ("pathological-regex", "is too complex"),
        ("backends-1000", "needs one or two backends (got 1000)"),
    ] {
        let (_, routed) = hostile_outcome(config).await;
        assert!(routed.contains(why), "{config}: {routed}");
        assert!(
            routed.starts_with("plugin hostile returned an invalid answer"),
            "{routed}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn plugins_see_a_deterministic_world_and_their_logs_are_capped() {
    // Random numbers are the same every call.
    let (first, _) = hostile_outcome("random").await;
    let (second, _) = hostile_outcome("random").await;
    assert!(first.contains("Hold(\"random "), "{first}");
    assert_eq!(first, second);
    // 10,000 log lines: the call still answers, and only the first 32 are kept.
    let host = common::host();
    let sink = sluice_host::LogSink::default();
    let p = host
        .load_strategy(
            "hostile",
            common::test_plugin("hostile_strategy"),
            Limits::default(),
        )
        .unwrap()
        .with_log_sink(sink.clone());
    let action = p
        .decide(&spec_with("log-flood"), progressing(10), obs())
        .await;
    assert!(action.is_ok(), "{action:?}");
    let lines = sink.lock().unwrap().clone();
    assert_eq!(lines.len(), sluice_host::MAX_LOG_LINES);
    assert_eq!(lines[0], "info: log line 0");
    assert!(
        lines[31].ends_with("(log limit of 32 lines per call reached)"),
        "{}",
        lines[31]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_evaluator_sleeping_in_any_export_faults_at_once() {
    use sluice_host::bindings::evaluator::{Metric, Samples, ThresholdRange};
    let host = common::host();
    let e = host
        .load_evaluator(
            "hostile-eval",
            common::test_plugin("hostile_evaluator"),
            Limits::default(),
        )
        .unwrap();
    let metric = |config: &str| Metric {
        name: "error-rate".into(),
        threshold_range: ThresholdRange {
            min: None,
            max: Some(1.0),
        },
        config: config.into(),
    };
    let samples = || Samples {
        canary: 0.5,
        primary: None,
        canary_series: Vec::new(),
        primary_series: Vec::new(),
    };
    for export in ["wants-baseline", "wants-series"] {
        let started = Instant::now();
        let fault = e
            .requirements(&metric(&format!("sleep-in-{export}")))
            .await
            .unwrap_err();
        assert!(started.elapsed() < ENDS_WITHIN);
        assert!(
            fault
                .to_string()
                .contains("subscribe-duration is not available"),
            "{fault}"
        );
    }
    let fault = e
        .evaluate(&metric("sleep-in-evaluate"), samples())
        .await
        .unwrap_err();
    assert!(
        fault
            .to_string()
            .contains("subscribe-duration is not available"),
        "{fault}"
    );
    let fault = e
        .evaluate(&metric("loop-in-evaluate"), samples())
        .await
        .unwrap_err();
    assert_eq!(fault.kind, FaultKind::Timeout { budget_ms: 100 });
    let fault = e
        .evaluate(&metric("empty-reason"), samples())
        .await
        .unwrap_err();
    assert!(
        fault
            .to_string()
            .contains("needs a reason of 1 to 1024 bytes"),
        "{fault}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn plugin_check_says_why_it_refuses_each_hostile_plugin_and_shows_its_logs() {
    use sluice_host::check::check;
    let host = common::host();
    for (config, why) in [
        ("sleep", "subscribe-duration is not available to plugins"),
        ("loop", "timed out"),
        ("panic", "hostile plugin panics on purpose"),
        ("stderr-flood", "trapped"),
        ("memory-bomb", "exhausted its memory"),
        ("stack-overflow", "trapped"),
        ("exit", "trapped"),
        ("advance-100", "exceeds the Canary's maximum"),
        (
            "all-to-canary",
            "the catch-all rule sends 100% to the canary",
        ),
        ("pathological-regex", "is too complex"),
    ] {
        let report = check(
            &host,
            "hostile",
            common::test_plugin("hostile_strategy"),
            Limits::default(),
            config,
        )
        .await;
        let text = report.to_string();
        assert!(!report.ok(), "{config}: {text}");
        assert!(
            text.contains("result:   REFUSED: plugin hostile"),
            "{config}: {text}"
        );
        assert!(text.contains(why), "{config}: {text}");
    }
    let report = check(
        &host,
        "hostile",
        common::test_plugin("hostile_strategy"),
        Limits::default(),
        "log-flood",
    )
    .await;
    let text = report.to_string();
    assert!(report.ok(), "{text}");
    assert!(text.contains("log:      info: log line 0\n"), "{text}");
    assert!(
        text.contains("sandbox:  wasi:clocks/monotonic-clock@"),
        "{text}"
    );
    assert!(text.contains("sandbox:  wasi:sockets/tcp@"), "{text}");
    assert!(text.contains(": refused\n"), "{text}");
}

#[test]
fn the_plugin_check_command_refuses_hostile_plugins_without_crashing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hostile.wasm");
    std::fs::write(&file, common::test_plugin("hostile_strategy")).unwrap();
    let file = file.to_str().unwrap();
    for (config, why) in [
        ("sleep", "subscribe-duration is not available to plugins"),
        ("panic", "hostile plugin panics on purpose"),
        ("stderr-flood", "flooding stderr"),
        ("loop", "timed out: no answer within 100 ms"),
    ] {
        let out = common::sluice(&["plugin", "check", file, "--config", config]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{config}: {stdout}");
        assert!(
            stdout.contains("result:   REFUSED: plugin hostile"),
            "{config}: {stdout}"
        );
        assert!(stdout.contains(why), "{config}: {stdout}");
    }
    // A truncated component and a file that is not Wasm: refused, with why.
    let truncated = dir.path().join("truncated.wasm");
    std::fs::write(&truncated, &common::test_plugin("hostile_strategy")[..1000]).unwrap();
    let text = dir.path().join("notes.wasm");
    std::fs::write(&text, "not a component at all").unwrap();
    for bad in [&truncated, &text] {
        let out = common::sluice(&["plugin", "check", bad.to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{stdout}");
        assert!(
            stdout.contains("could not be loaded: not a valid Wasm component"),
            "{stdout}"
        );
    }
    let out = common::sluice(&["plugin", "check", file, "--config", "log-flood"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("log:      info: log line 31 (log limit of 32 lines per call reached)"),
        "{stdout}"
    );
}

#[test]
fn a_component_over_the_size_limit_is_refused_before_compiling() {
    let host = common::host();
    let mut huge = wasm::WEIGHTED.to_vec();
    huge.resize(sluice_host::MAX_COMPONENT_BYTES + 1, 0);
    let started = Instant::now();
    let fault = host
        .load_strategy("huge", &huge, Limits::default())
        .err()
        .unwrap();
    assert!(started.elapsed() < ENDS_WITHIN);
    assert_eq!(
        fault.to_string(),
        "plugin huge could not be loaded: it is 33554433 bytes, more than the 32 MiB a plugin may be"
    );
}

#[test]
fn the_simulator_shows_a_plugins_log_lines_and_its_panic_message() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("hostile.wasm");
    std::fs::write(&wasm, common::test_plugin("hostile_strategy")).unwrap();
    let run = |config: &str| {
        let canary = dir.path().join(format!("{config}.yaml"));
        std::fs::write(
            &canary,
            common::read("examples/podinfo-canary.yaml").replace(
                "    stepWeight: 10\n",
                &format!("    stepWeight: 10\n    strategyConfig: {config}\n"),
            ),
        )
        .unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["simulate", "--canary"])
            .arg(&canary)
            .args(["--templates", "examples/metric-templates.yaml"])
            .arg("--strategy-plugin")
            .arg(&wasm)
            .current_dir(common::repo_root())
            .env("SLUICE_LOG", "sluice::plugin=info")
            .env(
                "SLUICE_PLUGIN_CACHE",
                concat!(env!("CARGO_TARGET_TMPDIR"), "/plugin-cache"),
            )
            .output()
            .unwrap()
    };
    // Log lines go to stderr under the target sluice::plugin.
    let out = run("log-flood");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("log line 0"), "{stderr}");
    assert!(stderr.contains("plugin=hostile"), "{stderr}");
    // A panic message is part of the fault in the events.
    let out = run("panic");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("plugin hostile trapped")
            && stdout.contains("hostile plugin panics on purpose"),
        "{stdout}"
    );
}

#[test]
fn plugin_check_keeps_the_compiled_component_in_the_plugin_cache_and_reuses_it() {
    use sha2::Digest as _;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let file = dir.path().join("weighted.wasm");
    let component = wasm::WEIGHTED;
    std::fs::write(&file, component).unwrap();
    let digest = hex::encode(sha2::Sha256::digest(component));
    let check = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["plugin", "check", file.to_str().unwrap()])
            .env("SLUICE_PLUGIN_CACHE", &cache)
            .output()
            .expect("run sluice");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    };
    let compiled = || -> Vec<(std::path::PathBuf, u64)> {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::read_dir(&cache)
            .expect("the cache directory exists")
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                name.starts_with(&digest) && name.ends_with(".cwasm")
            })
            .map(|p| {
                let inode = std::fs::metadata(&p).unwrap().ino();
                (p, inode)
            })
            .collect()
    };
    check();
    let first = compiled();
    assert_eq!(first.len(), 1, "one compiled artifact, named by digest");
    // A second check loads it: the artifact is not written again (a write
    // goes through a new file renamed over it).
    check();
    assert_eq!(compiled(), first);
}
