//! `sluice plugin check`: what a plugin author (or a platform team about to
//! register a plugin) wants to know before a Canary uses it: which world and
//! contract version it targets, what it imports and exports, its size and
//! digest, and whether it loads and answers a sample call within the limits
//! with an answer the host accepts.

use std::fmt::{self, Write as _};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::bindings::evaluator::{Metric, Samples, ThresholdRange};
use super::bindings::strategy::{AnalysisSpec, Observation, Phase, RolloutState};
use super::contract::{self, World};
use super::evaluator::series_points;
use super::{FaultKind, Limits, PluginFault, PluginHost, validate};

/// Series in the sample evaluation hold at most this many values.
const TRIAL_SERIES_POINTS: u64 = 60;

/// The findings of one check.
#[derive(Debug, Clone)]
pub struct Report {
    pub size_bytes: usize,
    pub sha256: String,
    pub contract: Option<contract::Contract>,
    /// Why the plugin cannot be used, if it cannot.
    pub problem: Option<String>,
    /// What the sample calls answered, and how long they took.
    pub trial: Vec<(String, Duration)>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problem.is_none()
    }
}

fn sample_spec() -> AnalysisSpec {
    AnalysisSpec {
        interval_seconds: 60,
        threshold: 5,
        max_weight: 50,
        step_weight: Some(10),
        step_weights: Vec::new(),
        step_weight_promotion: None,
        iterations: Some(10),
        matches: Vec::new(),
        mirror: false,
        mirror_weight: None,
        session_affinity: None,
        config: String::new(),
    }
}

/// Checks `wasm`, named `name` in messages, with `host`, each call held to
/// `limits`.
pub fn check(host: &PluginHost, name: &str, wasm: &[u8], limits: Limits) -> Report {
    let mut report = Report {
        size_bytes: wasm.len(),
        sha256: hex::encode(Sha256::digest(wasm)),
        contract: None,
        problem: None,
        trial: Vec::new(),
    };
    let contract = match host.inspect(name, wasm) {
        Ok(c) => c,
        Err(fault) => {
            report.problem = Some(fault.to_string());
            return report;
        }
    };
    let world = contract.world;
    report.contract = Some(contract);
    let outcome = match world {
        Some(World::Evaluator) => trial_evaluator(host, name, wasm, limits, &mut report.trial),
        // A component with no sluice export fails the strategy check with
        // the message that says so.
        _ => trial_strategy(host, name, wasm, limits, &mut report.trial),
    };
    if let Err(problem) = outcome {
        report.problem = Some(problem);
    }
    report
}

fn timed<R>(f: impl FnOnce() -> R) -> (R, Duration) {
    let started = Instant::now();
    let r = f();
    (r, started.elapsed())
}

/// A plugin may refuse a sample it has no settings for (an A/B strategy
/// without matches): that is an answer, not a fault. Traps, time-outs,
/// memory exhaustion and contract breaches are faults.
fn answered<R>(
    call: &str,
    result: Result<R, PluginFault>,
    took: Duration,
    trial: &mut Vec<(String, Duration)>,
) -> Result<Option<R>, String> {
    match result {
        Ok(r) => Ok(Some(r)),
        Err(PluginFault {
            kind: FaultKind::Error(e),
            ..
        }) => {
            trial.push((
                format!("{call} -> error for the sample settings: {e}"),
                took,
            ));
            Ok(None)
        }
        Err(fault) => Err(fault.to_string()),
    }
}

fn trial_strategy(
    host: &PluginHost,
    name: &str,
    wasm: &[u8],
    limits: Limits,
    trial: &mut Vec<(String, Duration)>,
) -> Result<(), String> {
    let plugin = host
        .load_strategy(name, wasm, limits)
        .map_err(|f| f.to_string())?;
    let spec = sample_spec();
    let state = RolloutState {
        phase: Phase::Progressing,
        canary_weight: 10,
        iterations: 1,
        failed_checks: 0,
    };
    let observation = Observation {
        now_unix_seconds: 1_767_225_600,
        phase_started_unix_seconds: 1_767_225_540,
    };
    let (action, took) = timed(|| plugin.decide(&spec, state, observation));
    if let Some(action) = answered("decide", action, took, trial)? {
        validate::action(plugin.name(), &state, &action).map_err(|f| f.to_string())?;
        trial.push((
            format!("decide (progressing, weight 10) -> {action:?}"),
            took,
        ));
    }
    let (plan, took) = timed(|| plugin.route(&spec, state));
    if let Some(plan) = answered("route", plan, took, trial)? {
        validate::route_plan(plugin.name(), &plan, true).map_err(|f| f.to_string())?;
        trial.push((
            format!(
                "route (progressing, weight 10) -> {} rule(s)",
                plan.rules.len()
            ),
            took,
        ));
    }
    let at_rest = RolloutState {
        phase: Phase::Initialized,
        canary_weight: 0,
        iterations: 0,
        failed_checks: 0,
    };
    let (plan, took) = timed(|| plugin.route(&spec, at_rest));
    if let Some(plan) = answered("route at rest", plan, took, trial)? {
        validate::route_plan(plugin.name(), &plan, false).map_err(|f| f.to_string())?;
        trial.push(("route (at rest) -> all traffic on the primary".into(), took));
    }
    Ok(())
}

fn trial_evaluator(
    host: &PluginHost,
    name: &str,
    wasm: &[u8],
    limits: Limits,
    trial: &mut Vec<(String, Duration)>,
) -> Result<(), String> {
    let plugin = host
        .load_evaluator(name, wasm, limits)
        .map_err(|f| f.to_string())?;
    let metric = Metric {
        name: "error-rate".into(),
        threshold_range: ThresholdRange {
            min: None,
            max: Some(1.0),
        },
        config: String::new(),
    };
    let (wants, took) = timed(|| plugin.wants_baseline(&metric));
    let wants = wants.map_err(|f| f.to_string())?;
    trial.push((format!("wants-baseline -> {wants}"), took));
    let (series, took) = timed(|| plugin.wants_series(&metric));
    let series = series.map_err(|f| f.to_string())?;
    trial.push((
        match &series {
            Some(r) => format!(
                "wants-series -> {}s window every {}s",
                r.window_seconds, r.step_seconds
            ),
            None => "wants-series -> none".to_string(),
        },
        took,
    ));
    // As many samples as the request asks for, up to a sample's worth, so
    // the evaluator is tried on the shape of input it will get.
    let points = series
        .as_ref()
        .map_or(0, |r| series_points(r).min(TRIAL_SERIES_POINTS) as usize);
    let sample_series =
        |base: f64| -> Vec<f64> { (0..points).map(|i| base + (i % 7) as f64 * 0.01).collect() };
    let samples = Samples {
        canary: 0.5,
        primary: wants.then_some(0.4),
        canary_series: sample_series(0.5),
        primary_series: if wants {
            sample_series(0.4)
        } else {
            Vec::new()
        },
    };
    let described = if points > 0 {
        format!("canary 0.5, max 1, series of {points}")
    } else {
        "canary 0.5, max 1".to_string()
    };
    let (verdict, took) = timed(|| plugin.evaluate(&metric, samples));
    if let Some(verdict) = answered("evaluate", verdict, took, trial)? {
        trial.push((format!("evaluate ({described}) -> {verdict:?}"), took));
    }
    Ok(())
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        let _ = writeln!(out, "size:     {} bytes", self.size_bytes);
        let _ = writeln!(out, "sha256:   {}", self.sha256);
        if let Some(c) = &self.contract {
            let world = c
                .world
                .map(|w| w.to_string())
                .unwrap_or_else(|| "none".into());
            let _ = writeln!(out, "world:    {world}");
            let _ = writeln!(
                out,
                "contract: {}@{} (this host supports {}@{})",
                contract::PACKAGE,
                c.version.as_deref().unwrap_or("?"),
                contract::PACKAGE,
                contract::ACCEPTS
            );
            let _ = writeln!(out, "exports:  {}", c.exports.join(", "));
            let _ = writeln!(out, "imports:  {}", c.imports.join(", "));
        }
        for (call, took) in &self.trial {
            let _ = writeln!(
                out,
                "call:     {call} in {:.3} ms",
                took.as_secs_f64() * 1000.0
            );
        }
        match &self.problem {
            None => {
                let _ = writeln!(out, "result:   OK");
            }
            Some(p) => {
                let _ = writeln!(out, "result:   REFUSED: {p}");
            }
        }
        f.write_str(&out)
    }
}
