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
use super::{Limits, PluginHost, validate};

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
    let action = action.map_err(|f| f.to_string())?;
    validate::action(plugin.name(), &state, &action).map_err(|f| f.to_string())?;
    trial.push((
        format!("decide (progressing, weight 10) -> {action:?}"),
        took,
    ));
    let (plan, took) = timed(|| plugin.route(&spec, state));
    let plan = plan.map_err(|f| f.to_string())?;
    validate::route_plan(plugin.name(), &plan, true).map_err(|f| f.to_string())?;
    trial.push((
        format!(
            "route (progressing, weight 10) -> {} rule(s)",
            plan.rules.len()
        ),
        took,
    ));
    let at_rest = RolloutState {
        phase: Phase::Initialized,
        canary_weight: 0,
        iterations: 0,
        failed_checks: 0,
    };
    let (plan, took) = timed(|| plugin.route(&spec, at_rest));
    let plan = plan.map_err(|f| f.to_string())?;
    validate::route_plan(plugin.name(), &plan, false).map_err(|f| f.to_string())?;
    trial.push(("route (at rest) -> all traffic on the primary".into(), took));
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
    let samples = Samples {
        canary: 0.5,
        primary: wants.then_some(0.4),
    };
    let (verdict, took) = timed(|| plugin.evaluate(&metric, samples));
    let verdict = verdict.map_err(|f| f.to_string())?;
    trial.push((format!("evaluate (canary 0.5, max 1) -> {verdict:?}"), took));
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
