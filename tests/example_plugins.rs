//! The example plugins of `examples/plugins/`, built as their READMEs say
//! (outside the engine's build, against the SDK by path), checked with
//! `sluice plugin check`, and run through the simulator: the Mann-Whitney
//! evaluator on scripted series and on a real Prometheus's range queries,
//! the time-window strategy on the simulated clock.

use crate::common;
use crate::support;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use jiff::Timestamp;
use sluice::simulate::{self, PrometheusSource, RunOptions};
use sluice_api::{Canary, CanaryPhase, MetricCheck};
use sluice_host::{Limits, PluginRegistry};
use sluice_rollout::analysis::checks::{
    CheckFailure, Fault, MetricTarget, MetricsProvider, run_metrics,
};
use support::prometheus::{OpenMetrics, TestPrometheus};

fn mann_whitney() -> PathBuf {
    common::build_example_plugin("mann-whitney", "sluice_mann_whitney")
}

fn time_window() -> PathBuf {
    common::build_example_plugin("time-window", "sluice_time_window")
}

use common::sluice;

/// A `sluice simulate --output json` run: one object per tick.
fn simulate_json(args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["simulate", "--output", "json"];
    all.extend_from_slice(args);
    let out = sluice(&all);
    assert!(
        out.status.success(),
        "sluice {all:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8 output")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

/// (tick, message) of every event.
fn events(ticks: &[serde_json::Value]) -> Vec<(u64, String)> {
    ticks
        .iter()
        .flat_map(|t| {
            let tick = t["tick"].as_u64().unwrap_or_default();
            t["events"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |e| (tick, e["message"].as_str().unwrap_or_default().to_string()))
        })
        .collect()
}

fn final_phase(ticks: &[serde_json::Value]) -> String {
    ticks.last().expect("at least one tick")["phase"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// The registry with the Mann-Whitney plugin registered under the name the
/// statistical Canary selects, as a RolloutPlugin would register it.
fn registry_with_mann_whitney() -> PluginRegistry {
    let wasm = std::fs::read(mann_whitney()).expect("read the component");
    let mut registry = common::registry();
    let plugin = registry
        .host()
        .load_evaluator("mann-whitney", &wasm, Limits::default())
        .expect("the evaluator loads");
    registry.add_evaluator(plugin);
    registry
}

#[test]
fn every_example_plugin_passes_plugin_check() {
    for (dir, stem, world, says) in [
        (
            "doubling",
            "sluice_doubling",
            "strategy",
            "decide (progressing",
        ),
        (
            "time-window",
            "sluice_time_window",
            "strategy",
            "route (at rest)",
        ),
        (
            "template",
            "sluice_template",
            "strategy",
            "decide (progressing",
        ),
        (
            "mann-whitney",
            "sluice_mann_whitney",
            "evaluator",
            "requirements -> baseline true, series of 600s every 30s",
        ),
    ] {
        let wasm = common::build_example_plugin(dir, stem);
        let out = sluice(&["plugin", "check", path(&wasm)]);
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{dir}: {report}");
        assert!(report.contains(&format!("world:    {world}")), "{report}");
        assert!(report.contains("sluice:plugin@0.1.0"), "{report}");
        assert!(report.contains(says), "{dir}: {report}");
        assert!(report.contains("result:   OK"), "{report}");
    }
}

#[test]
fn the_template_runs_a_rollout_in_the_simulator() {
    let wasm = common::build_example_plugin("template", "sluice_template");
    let ticks = simulate_json(&["--strategy-plugin", path(&wasm)]);
    let advances: Vec<String> = events(&ticks)
        .into_iter()
        .map(|(_, m)| m)
        .filter(|m| m.starts_with("Advance"))
        .collect();
    let expected: Vec<String> = [10, 20, 30, 40, 50]
        .iter()
        .map(|w| format!("Advance podinfo.test canary weight {w}"))
        .collect();
    assert_eq!(advances, expected);
    assert_eq!(final_phase(&ticks), "Succeeded");
}

#[test]
fn mann_whitney_promotes_a_canary_like_its_primary() {
    let wasm = mann_whitney();
    let ticks = simulate_json(&[
        "--canary",
        "examples/podinfo-canary-statistical.yaml",
        "--scenario",
        "examples/scenarios/statistical-healthy.yaml",
        "--evaluator-plugin",
        path(&wasm),
    ]);
    let messages: Vec<String> = events(&ticks).into_iter().map(|(_, m)| m).collect();
    assert!(
        !messages.iter().any(|m| m.starts_with("Halt")),
        "{messages:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m == "Advance podinfo.test canary weight 50"),
        "{messages:#?}"
    );
    assert_eq!(final_phase(&ticks), "Succeeded");
}

#[test]
fn mann_whitney_rolls_back_a_latency_regression() {
    let wasm = mann_whitney();
    let ticks = simulate_json(&[
        "--canary",
        "examples/podinfo-canary-statistical.yaml",
        "--scenario",
        "examples/scenarios/statistical-regression.yaml",
        "--evaluator-plugin",
        path(&wasm),
    ]);
    let events = events(&ticks);
    let halts: Vec<&(u64, String)> = events
        .iter()
        .filter(|(_, m)| m.starts_with("Halt"))
        .collect();
    // The scenario's numbers: 21 vs 21 samples, U=428.5 of 441, and
    // p = 8.42e-8 one-sided (SciPy: mannwhitneyu(…, alternative="greater",
    // method="asymptotic")).
    let reason = "Halt podinfo.test advancement request-duration: canary is higher than primary (Mann-Whitney U=428.5, p=8.42e-8 < 0.05)";
    assert_eq!(
        halts.iter().map(|(_, m)| m.as_str()).collect::<Vec<_>>(),
        vec![reason; 5],
        "{events:#?}"
    );
    // The regression starts at tick 8; the canary had advanced before.
    assert_eq!(halts[0].0, 8);
    assert!(
        events
            .iter()
            .any(|(t, m)| *t < 8 && m == "Advance podinfo.test canary weight 20"),
        "{events:#?}"
    );
    assert!(
        events
            .iter()
            .any(|(_, m)| m == "Rolling back podinfo.test failed checks threshold reached 5"),
        "{events:#?}"
    );
    assert_eq!(final_phase(&ticks), "Failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_metric_selects_the_evaluator_by_name_and_too_few_samples_is_inconclusive() {
    // request-duration names mann-whitney; the success rate goes back to
    // the built-in threshold evaluator: both kinds in one Canary.
    let yaml = common::read("examples/podinfo-canary-statistical.yaml");
    let (head, _) = yaml
        .split_once("      - name: request-success-rate")
        .expect("the success-rate metric");
    let (_, webhooks) = yaml.split_once("    webhooks:").expect("webhooks");
    let yaml = format!(
        "{head}      - name: request-success-rate\n        interval: 1m\n        thresholdRange:\n          min: 99\n    webhooks:{webhooks}"
    );
    let canary = sluice_api::load::canary_from_yaml(&yaml).expect("canary parses");
    // The first check (tick 7, the tick after the first step) sees 4
    // samples of the canary, the next one 8, then 21.
    let scenario = common::scenario(
        "ticks: 30
canaryReadyAfter: 2
primaryReadyAfter: 2
metrics:
  request-success-rate: [99.9]
series:
  request-duration:
    - [100, 101, 99, 102]
    - [100, 101, 99, 102]
    - [100, 101, 99, 102]
    - [100, 101, 99, 102]
    - [100, 101, 99, 102]
    - [100, 101, 99, 102]
    - [100, 101, 99, 102]
    - [100, 101, 99, 102, 98, 100, 103, 97]
    - [100, 101, 99, 102, 98, 100, 103, 97, 101, 99, 100, 102, 98, 101, 99, 100, 103, 97, 100, 101, 99]
primarySeries:
  request-duration:
    - [99, 101, 100, 102, 98, 100, 101, 97, 103, 99, 100, 101, 98, 102, 99, 100, 101, 98, 100, 102, 99]
changes:
  - tick: 4
    image: podinfo=podinfo:2
",
    );
    let sim = common::simulate_with(canary, scenario, registry_with_mann_whitney()).await;
    let messages = sim.messages();
    let inconclusive: Vec<&String> = messages
        .iter()
        .filter(|m| m.contains("too few samples"))
        .collect();
    assert_eq!(
        inconclusive.first().map(|m| m.as_str()),
        Some(
            "Halt podinfo.test advancement request-duration: too few samples for a Mann-Whitney test (canary 4, primary 21; minSamples 10)"
        ),
        "{messages:#?}"
    );
    assert!(
        inconclusive[1].contains("(canary 8, primary 21"),
        "{messages:#?}"
    );
    assert_eq!(inconclusive.len(), 2, "{messages:#?}");
    // Inconclusive ticks count as failed checks, but fewer than the
    // threshold: with enough samples the canary is promoted.
    assert!(
        messages
            .iter()
            .any(|m| m == "Promotion completed! Scaling down podinfo.test"),
        "{messages:#?}"
    );
    assert_eq!(
        sim.final_tick().unwrap().phase,
        Some(CanaryPhase::Succeeded)
    );
}

/// Instant values always; series as scripted per target; records what the
/// host asked for.
struct ScriptedSeries {
    canary: Result<Vec<f64>, String>,
    primary: Result<Vec<f64>, String>,
    asked: Mutex<Vec<(MetricTarget, Duration, Duration)>>,
}

impl ScriptedSeries {
    fn new(canary: Result<Vec<f64>, String>, primary: Result<Vec<f64>, String>) -> Self {
        Self {
            canary,
            primary,
            asked: Mutex::new(Vec::new()),
        }
    }
}

impl MetricsProvider for ScriptedSeries {
    async fn value(
        &self,
        _: &Canary,
        _: &MetricCheck,
        _: MetricTarget,
    ) -> Result<Option<f64>, sluice_rollout::BoxError> {
        Ok(Some(100.0))
    }

    async fn series(
        &self,
        _: &Canary,
        _: &MetricCheck,
        target: MetricTarget,
        window: Duration,
        step: Duration,
    ) -> Result<Vec<f64>, sluice_rollout::BoxError> {
        self.asked
            .lock()
            .expect("lock")
            .push((target, window, step));
        match target {
            MetricTarget::Canary => self.canary.clone().map_err(Into::into),
            MetricTarget::Primary => self.primary.clone().map_err(Into::into),
        }
    }
}

/// A provider with instant values only (the trait's default `series`).
struct InstantOnly;

impl MetricsProvider for InstantOnly {
    async fn value(
        &self,
        _: &Canary,
        _: &MetricCheck,
        _: MetricTarget,
    ) -> Result<Option<f64>, sluice_rollout::BoxError> {
        Ok(Some(100.0))
    }
}

fn healthy(n: usize) -> Vec<f64> {
    (0..n).map(|i| 100.0 + (i % 5) as f64).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn series_reach_the_evaluator_as_the_contract_says() {
    let registry = registry_with_mann_whitney();
    let canary = common::canary("examples/podinfo-canary-statistical.yaml");
    let checks = canary.settings().expect("valid canary").metrics;
    let duration = &checks[..1];
    assert_eq!(duration[0].name, "request-duration");
    let run = |provider| {
        let (registry, canary) = (registry.clone(), canary.clone());
        let checks = duration.to_vec();
        async move {
            let failures: Vec<String> = run_metrics(
                &provider,
                &registry,
                &canary,
                &checks,
                ("podinfo.test", "t"),
            )
            .await
            .into_iter()
            .map(|f| f.message)
            .collect();
            (failures, provider)
        }
    };

    // The window of the Canary's evaluatorConfig, for both sides.
    let (failures, p) = run(ScriptedSeries::new(Ok(healthy(21)), Ok(healthy(21)))).await;
    assert_eq!(failures, Vec::<String>::new());
    let window = (Duration::from_secs(600), Duration::from_secs(30));
    assert_eq!(
        *p.asked.lock().unwrap(),
        vec![
            (MetricTarget::Canary, window.0, window.1),
            (MetricTarget::Primary, window.0, window.1)
        ]
    );

    // Only the newest 21 samples (600 s every 30 s) reach the plugin, and
    // never NaN or ±Inf: old slow samples are outside the window.
    let mut canary_series = vec![1000.0; 19];
    canary_series.extend([f64::NAN, f64::INFINITY]);
    canary_series.extend(healthy(21));
    let (failures, _) = run(ScriptedSeries::new(Ok(canary_series), Ok(healthy(21)))).await;
    assert_eq!(failures, Vec::<String>::new());
    // The same slow samples inside the window fail the check.
    let mut canary_series = healthy(11);
    canary_series.extend([1000.0; 10]);
    let (failures, _) = run(ScriptedSeries::new(Ok(canary_series), Ok(healthy(21)))).await;
    assert_eq!(failures.len(), 1);
    assert!(
        failures[0].starts_with(
            "Halt podinfo.test advancement request-duration: canary is higher than primary (Mann-Whitney U="
        ),
        "{failures:?}"
    );

    // Series errors are failed checks naming the metric and the side.
    let (failures, _) = run(ScriptedSeries::new(
        Err("query returned 2 series, expected one; query: q".into()),
        Ok(healthy(21)),
    ))
    .await;
    assert_eq!(
        failures,
        vec![
            "Halt podinfo.test advancement metric request-duration series query failed: query returned 2 series, expected one; query: q"
        ]
    );
    let (failures, _) = run(ScriptedSeries::new(
        Ok(healthy(21)),
        Err("Prometheus at http://p:9090 did not answer within 5s".into()),
    ))
    .await;
    assert_eq!(
        failures,
        vec![
            "Halt podinfo.test advancement metric request-duration baseline series query failed: Prometheus at http://p:9090 did not answer within 5s"
        ]
    );
    let failures = run_metrics(
        &InstantOnly,
        &registry,
        &canary,
        duration,
        ("podinfo.test", "t"),
    )
    .await;
    assert_eq!(
        failures,
        vec![CheckFailure::fault(
            Fault::MetricUnavailable,
            "Halt podinfo.test advancement metric request-duration series query failed: this metrics provider has no series (range queries) for request-duration".into()
        )]
    );
}

#[test]
fn time_window_holds_until_the_window_opens() {
    let wasm = time_window();
    let ticks = simulate_json(&[
        "--canary",
        "examples/podinfo-canary-time-window.yaml",
        "--templates",
        "examples/metric-templates.yaml",
        "--scenario",
        "examples/scenarios/time-window.yaml",
        "--strategy-plugin",
        path(&wasm),
    ]);
    // The clock starts at the scenario's startTime, one minute a tick.
    assert_eq!(ticks[0]["time"], "2026-01-05T08:52:00Z");
    let time_of = |tick: u64| {
        ticks[tick as usize - 1]["time"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let events = events(&ticks);
    let holds: Vec<&(u64, String)> = events
        .iter()
        .filter(|(_, m)| m.starts_with("Holding"))
        .collect();
    assert!(!holds.is_empty(), "{events:#?}");
    for (tick, m) in &holds {
        assert!(
            time_of(*tick).as_str() < "2026-01-05T09:00:00Z",
            "{tick}: {m}"
        );
        assert!(
            m.starts_with("Holding podinfo.test advancement: outside the time window (mon,tue,wed,thu,fri 09:00-17:00 UTC): it is mon 2026-01-05 08:5")
                && m.ends_with("; the window opens mon 2026-01-05 09:00 UTC"),
            "{m}"
        );
    }
    let advances: Vec<&(u64, String)> = events
        .iter()
        .filter(|(_, m)| m.starts_with("Advance"))
        .collect();
    assert_eq!(advances.len(), 5, "{events:#?}");
    assert_eq!(time_of(advances[0].0), "2026-01-05T09:00:00Z");
    assert_eq!(advances[0].1, "Advance podinfo.test canary weight 10");
    // Never any traffic to the canary before 09:00.
    for t in &ticks {
        if t["time"].as_str().unwrap_or_default() < "2026-01-05T09:00:00Z" {
            assert_eq!(t["canaryWeight"], 0, "{t}");
        }
    }
    assert_eq!(final_phase(&ticks), "Succeeded");
}

#[test]
fn time_window_stops_advancing_when_the_window_closes() {
    let wasm = time_window();
    let ticks = simulate_json(&[
        "--canary",
        "examples/podinfo-canary-time-window.yaml",
        "--templates",
        "examples/metric-templates.yaml",
        "--scenario",
        "examples/scenarios/time-window-closing.yaml",
        "--strategy-plugin",
        path(&wasm),
    ]);
    let at_five = ticks
        .iter()
        .position(|t| t["time"] == "2026-01-09T17:00:00Z")
        .expect("the run reaches 17:00");
    let weight_before = ticks[at_five - 1]["canaryWeight"].as_u64().unwrap_or(0);
    assert!(weight_before > 0, "advanced before 17:00");
    for t in &ticks[at_five..] {
        assert_eq!(t["canaryWeight"].as_u64(), Some(weight_before), "{t}");
        assert_eq!(t["phase"], "Progressing", "{t}");
        let messages: Vec<&str> = t["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["message"].as_str())
            .collect();
        assert!(
            messages.iter().any(|m| m
                .starts_with("Holding podinfo.test advancement: outside the time window")
                && m.ends_with("the window opens mon 2026-01-12 09:00 UTC")),
            "{messages:?}"
        );
    }
    assert_eq!(final_phase(&ticks), "Progressing");
}

/// 2026-01-01T00:00:00Z, the simulator's first tick.
const T0: i64 = 1_767_225_600;

/// A uniform number in [0, 1) from a seed and a time (splitmix64).
fn uniform(seed: u64, t: i64) -> f64 {
    let mut z = seed
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(t as u64);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Podinfo's own histogram for a canary and a primary pod, 10 req/s each,
/// no errors: every request takes 50-100 ms, except a share between 100
/// and 250 ms that varies every 10 s, uniformly within `canary_slow` and
/// `primary_slow`. The P99 of each minute is then in the upper bucket and
/// moves with that share.
fn latency_data(canary_slow: (f64, f64), primary_slow: (f64, f64)) -> OpenMetrics {
    let mut d = OpenMetrics::new();
    let (from, to) = (T0 - 1800, T0 + 3600);
    for (pod, (lo, hi), seed) in [
        ("podinfo-7d9f8b6c5-x2kq4", canary_slow, 1),
        ("podinfo-primary-5f6d7c8b9-abcde", primary_slow, 2),
    ] {
        let slow = move |t: i64| lo + (hi - lo) * uniform(seed, t);
        d.counter(
            "http_request_duration_seconds_count",
            &[
                ("kubernetes_namespace", "test"),
                ("kubernetes_pod_name", pod),
                ("status", "200"),
            ],
            from,
            to,
            10,
            |_| 10.0,
        );
        for le in ["0.05", "0.1", "0.25", "+Inf"] {
            let rate = move |t: i64| match le {
                "0.05" => 0.0,
                "0.1" => 10.0 * (1.0 - slow(t)),
                _ => 10.0,
            };
            d.counter(
                "http_request_duration_seconds_bucket",
                &[
                    ("kubernetes_namespace", "test"),
                    ("kubernetes_pod_name", pod),
                    ("le", le),
                ],
                from,
                to,
                10,
                rate,
            );
        }
    }
    d
}

async fn simulate_statistical_against(
    prom: &TestPrometheus,
    scenario: &str,
) -> simulate::Simulation {
    let registry = registry_with_mann_whitney();
    let factory = move || Ok(registry.clone());
    simulate::run_with(
        common::canary("examples/podinfo-canary-statistical.yaml"),
        Vec::new(),
        common::scenario(&common::read(scenario)),
        &factory,
        &RunOptions {
            prometheus: Some(
                PrometheusSource::new(prom.url.clone())
                    .starting_at(Timestamp::from_second(T0).expect("valid time")),
            ),
        },
    )
    .await
    .expect("simulation runs")
}

#[tokio::test(flavor = "multi_thread")]
async fn mann_whitney_on_real_prometheus_range_queries() {
    // Same distribution on both sides: promoted.
    let prom = TestPrometheus::start(&latency_data((0.02, 0.04), (0.02, 0.04)));
    let sim =
        simulate_statistical_against(&prom, "examples/scenarios/statistical-healthy.yaml").await;
    let messages = sim.messages();
    assert!(
        !messages.iter().any(|m| m.starts_with("Halt")),
        "{messages:#?}"
    );
    assert_eq!(
        sim.final_tick().unwrap().phase,
        Some(CanaryPhase::Succeeded),
        "{messages:#?}"
    );
    drop(prom);

    // The canary's slow share doubles: its P99 is some 20 ms higher.
    let prom = TestPrometheus::start(&latency_data((0.05, 0.08), (0.02, 0.04)));
    let sim =
        simulate_statistical_against(&prom, "examples/scenarios/statistical-healthy.yaml").await;
    let messages = sim.messages();
    let halts: Vec<&String> = messages.iter().filter(|m| m.starts_with("Halt")).collect();
    assert_eq!(halts.len(), 5, "{messages:#?}");
    for h in &halts {
        assert!(
            h.starts_with(
                "Halt podinfo.test advancement request-duration: canary is higher than primary (Mann-Whitney U="
            ) && h.ends_with(" < 0.05)"),
            "{h}"
        );
    }
    assert!(
        messages
            .iter()
            .any(|m| m == "Rolling back podinfo.test failed checks threshold reached 5"),
        "{messages:#?}"
    );
    assert_eq!(sim.final_tick().unwrap().phase, Some(CanaryPhase::Failed));
}

// Plugins in other languages: the Python and JavaScript examples, built
// with the toolchains `tests/run` installs into target/tools, pass the
// same checks in the same sandbox as Rust plugins, and judge real rollouts.

/// A tool `tests/run` installs, or a failure that says so.
fn tool(path: &str) -> PathBuf {
    let p = common::repo_root().join(path);
    assert!(
        p.exists(),
        "{} is missing: run tests/run, the README's test command, which installs it",
        p.display()
    );
    p
}

/// Builds an example plugin in another language into the test's temp dir.
fn build_foreign_plugin(dir: &str, command: &[&str], out_name: &str) -> PathBuf {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(out_name);
    let (program, args) = command.split_first().expect("a command");
    let status = std::process::Command::new(tool(program))
        .args(args)
        .arg("-o")
        .arg(&out)
        .current_dir(common::repo_root().join("examples/plugins").join(dir))
        // Nothing written into the source tree.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("run the plugin toolchain");
    assert!(
        status.status.success(),
        "building examples/plugins/{dir} failed:\n{}{}",
        String::from_utf8_lossy(&status.stdout),
        String::from_utf8_lossy(&status.stderr)
    );
    out
}

fn python_baseline() -> PathBuf {
    build_foreign_plugin(
        "python-baseline",
        &[
            "target/tools/venv/bin/componentize-py",
            "-d",
            "../../../wit/v0.2",
            "-w",
            "validated-evaluator",
            "componentize",
            "app",
        ],
        "python_baseline.wasm",
    )
}

fn js_threshold() -> PathBuf {
    build_foreign_plugin(
        "js-threshold",
        &[
            "target/tools/node/node_modules/.bin/componentize-js",
            "threshold.js",
            "--wit",
            "../../../wit/v0.2",
            "--world-name",
            "evaluator",
            "--disable",
            "http",
            "fetch-event",
        ],
        "js_threshold.wasm",
    )
}

/// A scenario file in the test's temp dir.
fn scenario_file(name: &str, yaml: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&p, yaml).expect("write the scenario");
    p
}

/// Runs the seed Canary with `wasm` as every metric's evaluator.
fn simulate_with_evaluator(wasm: &Path, scenario: &Path) -> Vec<serde_json::Value> {
    simulate_json(&[
        "--canary",
        "examples/podinfo-canary.yaml",
        "--templates",
        "examples/metric-templates.yaml",
        "--scenario",
        path(scenario),
        "--evaluator-plugin",
        path(wasm),
        "--plugin-timeout-ms",
        "1000",
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(
    clippy::await_holding_lock,
    reason = "the guard keeps other CPU-heavy tests (on other threads, each with its own runtime) from running beside this one; nothing in this runtime waits for it"
)]
async fn a_python_evaluator_passes_plugin_check_and_judges_against_the_primary() {
    let _heavy = common::cpu_heavy();
    let wasm = python_baseline();
    let out = sluice(&[
        "plugin",
        "check",
        path(&wasm),
        "--plugin-timeout-ms",
        "1000",
    ]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("world:    evaluator"), "{report}");
    // Contract 0.2, world validated-evaluator: judge and settings.
    assert!(report.contains("sluice:plugin@0.2.0"), "{report}");
    assert!(
        report.contains("sluice:plugin/settings@0.2.0")
            && report.contains("sluice:plugin/judge@0.2.0"),
        "{report}"
    );
    // componentize-py imports most of WASI: each gets its stand-in.
    assert!(report.contains("sandbox:  wasi:sockets/tcp@"), "{report}");
    assert!(
        report.contains("sandbox:  wasi:filesystem/types@"),
        "{report}"
    );
    assert!(
        report.contains("requirements -> baseline true, no series"),
        "{report}"
    );
    assert!(
        report
            .contains("Verdict::Fail(\"error-rate 0.5 is more than 10% above the primary's 0.4\")"),
        "{report}"
    );
    assert!(
        report.contains("log:      debug: error-rate: canary 0.5, primary 0.4"),
        "{report}"
    );

    // Its `validate-config` refuses a bad maxIncrease before it is used.
    let bytes = std::fs::read(&wasm).expect("read the component");
    let limits = Limits {
        time_budget: Duration::from_secs(1),
        ..Limits::default()
    };
    let plugin = common::host()
        .load_evaluator("python-baseline", &bytes, limits)
        .expect("the evaluator loads");
    assert!(plugin.validates_config());
    assert!(plugin.check_config(r#"{"maxIncrease": 0.2}"#).await.is_ok());
    for bad in [r#"{"maxIncrease": -1}"#, r#"{"maxIncrease": "x"}"#] {
        let why = plugin
            .check_config(bad)
            .await
            .expect_err("a bad maxIncrease is refused")
            .to_string();
        assert!(
            why.contains("maxIncrease must be a number of at least 0"),
            "{bad}: {why}"
        );
    }

    let base = "ticks: 20\nchanges:\n  - tick: 2\n    image: podinfod=podinfo:2\nprimaryMetrics:\n  error-rate: [0.5]\n  latency: [0.2]\n";
    let healthy = scenario_file(
        "python-healthy.yaml",
        &format!("{base}metrics:\n  error-rate: [0.5]\n  latency: [0.21]\n"),
    );
    let ticks = simulate_with_evaluator(&wasm, &healthy);
    assert_eq!(final_phase(&ticks), "Succeeded", "{:?}", events(&ticks));
    let worse = scenario_file(
        "python-worse.yaml",
        &format!("{base}metrics:\n  error-rate: [0.9]\n  latency: [0.2]\n"),
    );
    let ticks = simulate_with_evaluator(&wasm, &worse);
    assert_eq!(final_phase(&ticks), "Failed");
    assert!(
        events(&ticks).iter().any(|(_, m)| m
            == "Halt podinfo.test advancement error-rate 0.9 is more than 10% above the primary's 0.5"),
        "{:?}",
        events(&ticks)
    );

    // No baseline for the first ticks: needs-more-data holds the rollout
    // without a failed check, then the baseline arrives and it promotes.
    let late_baseline = scenario_file(
        "python-late-baseline.yaml",
        "ticks: 20\nchanges:\n  - tick: 2\n    image: podinfod=podinfo:2\n\
         primaryMetrics:\n  error-rate: [null, null, null, null, null, 0.5]\n  latency: [0.2]\n\
         metrics:\n  error-rate: [0.5]\n  latency: [0.2]\n",
    );
    let ticks = simulate_with_evaluator(&wasm, &late_baseline);
    let events = events(&ticks);
    let waits: Vec<&(u64, String)> = events
        .iter()
        .filter(|(_, m)| m.contains("error-rate: no baseline from the primary yet"))
        .collect();
    assert!(!waits.is_empty(), "{events:?}");
    assert!(waits.iter().all(|(tick, _)| *tick <= 6), "{events:?}");
    assert!(
        ticks.iter().all(|t| t["failedChecks"] == 0),
        "needs-more-data is no failed check: {events:?}"
    );
    assert_eq!(final_phase(&ticks), "Succeeded", "{events:?}");
}

#[test]
fn a_javascript_evaluator_passes_plugin_check_and_judges_a_rollout() {
    let _heavy = common::cpu_heavy();
    let wasm = js_threshold();
    let out = sluice(&[
        "plugin",
        "check",
        path(&wasm),
        "--plugin-timeout-ms",
        "1000",
        "--config",
        "{\"band\": [0, 0.4]}",
    ]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("world:    evaluator"), "{report}");
    // Contract 0.2, world evaluator: the settings export is optional, and
    // this plugin has none.
    assert!(report.contains("sluice:plugin@0.2.0"), "{report}");
    assert!(
        report.contains("exports:  sluice:plugin/judge@0.2.0\n"),
        "{report}"
    );
    assert!(!report.contains("sluice:plugin/settings@"), "{report}");
    assert!(
        report.contains("requirements -> baseline false, no series"),
        "{report}"
    );
    assert!(
        report.contains("Verdict::Fail(\"error-rate 0.5 is outside [0, 0.4]\")"),
        "{report}"
    );
    assert!(
        report.contains("log:      debug: error-rate: 0.5"),
        "{report}"
    );

    let base = "ticks: 20\nchanges:\n  - tick: 2\n    image: podinfod=podinfo:2\n";
    let healthy = scenario_file(
        "js-healthy.yaml",
        &format!("{base}metrics:\n  error-rate: [0.5]\n  latency: [0.2]\n"),
    );
    let ticks = simulate_with_evaluator(&wasm, &healthy);
    assert_eq!(final_phase(&ticks), "Succeeded", "{:?}", events(&ticks));
    let failing = scenario_file(
        "js-failing.yaml",
        &format!("{base}metrics:\n  error-rate: [0.5, 0.5, 0.5, 7]\n  latency: [0.2]\n"),
    );
    let ticks = simulate_with_evaluator(&wasm, &failing);
    assert_eq!(final_phase(&ticks), "Failed");
    assert!(
        events(&ticks)
            .iter()
            .any(|(_, m)| m == "Halt podinfo.test advancement error-rate 7 > 1"),
        "{:?}",
        events(&ticks)
    );
}

#[test]
fn a_component_importing_wasi_http_is_refused_naming_the_import() {
    let _heavy = common::cpu_heavy();
    // componentize-js's default build imports wasi:http, which plugins do
    // not get: the refusal says which import and how to rebuild.
    let wasm = build_foreign_plugin(
        "js-threshold",
        &[
            "target/tools/node/node_modules/.bin/componentize-js",
            "threshold.js",
            "--wit",
            "../../../wit/v0.2",
            "--world-name",
            "evaluator",
        ],
        "js_threshold_with_http.wasm",
    );
    let out = sluice(&["plugin", "check", path(&wasm)]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report.contains("it imports wasi:http/"), "{report}");
    assert!(report.contains("--disable http fetch-event"), "{report}");
    // Refused from its import names, before it is compiled: nothing of it
    // reaches the plugin cache (`common::sluice`'s).
    use sha2::Digest as _;
    let digest = hex::encode(sha2::Sha256::digest(std::fs::read(&wasm).unwrap()));
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache");
    let cached = std::fs::read_dir(&cache)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().starts_with(&digest));
    assert!(!cached, "{digest} was compiled into {}", cache.display());
}
