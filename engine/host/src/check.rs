//! `sluice plugin check`: what a plugin author (or a platform team about to
//! register a plugin) wants to know before a Canary uses it: which world and
//! contract version it targets, what it imports and exports, its size and
//! digest, what each of its WASI imports gets in the sandbox, whether it
//! loads and answers sample calls within the limits with answers the host
//! accepts, and the plugin's own log lines and output.

use std::fmt::{self, Write as _};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::bindings::evaluator::{Metric, Samples, ThresholdRange};
use super::bindings::strategy::{AnalysisSpec, Observation, Phase, RolloutState};
use super::contract::{self, World};
use super::evaluator::series_points;
use super::{FaultKind, Limits, LogSink, PluginFault, PluginHost, sandbox, schema, validate};

/// Series in the sample evaluation hold at most this many values.
const TRIAL_SERIES_POINTS: u64 = 60;

/// The findings of one check.
#[derive(Debug, Clone)]
pub struct Report {
    size_bytes: usize,
    sha256: String,
    pub contract: Option<contract::Contract>,
    /// The settings schema the component embeds, indented (`Some(None)`:
    /// none; `None`: not read, the component did not compile).
    pub schema: Option<Option<String>>,
    /// Whether `--config` was checked against the schema and matched.
    config_matched: bool,
    /// Why the plugin cannot be used, if it cannot.
    pub problem: Option<String>,
    /// What the sample calls answered, and how long they took.
    pub trial: Vec<(String, Duration)>,
    /// The plugin's log lines during the sample calls.
    logs: Vec<String>,
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
/// `limits`, with `config` as the plugin's settings. Compiles off the async
/// executor.
pub async fn check(
    host: &PluginHost,
    name: &str,
    wasm: &[u8],
    limits: Limits,
    config: &str,
) -> Report {
    let mut report = Report::of(wasm);
    if let Err(problem) = report.examine(host, name, wasm, limits, config).await {
        report.problem = Some(problem);
    }
    report
}

impl Report {
    /// The report of `wasm` before any check: its size and digest.
    fn of(wasm: &[u8]) -> Self {
        Report {
            size_bytes: wasm.len(),
            sha256: hex::encode(Sha256::digest(wasm)),
            contract: None,
            schema: None,
            config_matched: false,
            problem: None,
            trial: Vec::new(),
            logs: Vec::new(),
        }
    }

    /// Compiles, reads the settings schema and makes the sample calls,
    /// recording what each step finds; the first problem ends the check.
    async fn examine(
        &mut self,
        host: &PluginHost,
        name: &str,
        wasm: &[u8],
        limits: Limits,
        config: &str,
    ) -> Result<(), String> {
        let world = self.compile(host, name, wasm).await?;
        self.read_schema(name, wasm, config)?;
        let trial = Trial {
            host,
            name,
            wasm,
            limits,
            config,
            sink: LogSink::default(),
        };
        self.sample_calls(&trial, world).await
    }

    /// Compiles `wasm` off the async executor and records its contract;
    /// the world it targets, if any.
    async fn compile(
        &mut self,
        host: &PluginHost,
        name: &str,
        wasm: &[u8],
    ) -> Result<Option<World>, String> {
        let compiled = {
            let (host, name, wasm) = (host.clone(), name.to_string(), wasm.to_vec());
            tokio::task::spawn_blocking(move || host.inspect(&name, &wasm)).await
        };
        let contract = match compiled {
            Ok(Ok(c)) => c,
            Ok(Err(fault)) => return Err(fault.to_string()),
            Err(e) => return Err(format!("plugin {name} could not be compiled: {e}")),
        };
        let world = contract.world;
        self.contract = Some(contract);
        Ok(world)
    }

    /// Records the settings schema `wasm` embeds, and checks a non-empty
    /// `config` against it.
    fn read_schema(&mut self, name: &str, wasm: &[u8], config: &str) -> Result<(), String> {
        let schema = schema::read(wasm)
            .map_err(|why| format!("plugin {name} could not be loaded: {why}"))?;
        self.schema = Some(schema.as_ref().map(schema::ConfigSchema::pretty));
        if let Some(schema) = schema
            && !config.is_empty()
        {
            schema
                .check(config)
                .map_err(|why| format!("the settings (--config) {why}"))?;
            self.config_matched = true;
        }
        Ok(())
    }

    /// Makes the sample calls of a plugin of `world`, recording them and
    /// the plugin's log lines.
    async fn sample_calls(
        &mut self,
        trial: &Trial<'_>,
        world: Option<World>,
    ) -> Result<(), String> {
        let outcome = match world {
            Some(World::Evaluator) => trial.evaluator(&mut self.trial).await,
            // A component with no sluice export fails the strategy check with
            // the message that says so.
            _ => trial.strategy(&mut self.trial).await,
        };
        self.logs = trial.sink.lock().map(|l| l.clone()).unwrap_or_default();
        outcome
    }
}

async fn timed<R>(f: impl Future<Output = R>) -> (R, Duration) {
    let started = Instant::now();
    let r = f.await;
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

/// The plugin's own check of the settings (`validate-config`, contract
/// 0.2): a refusal of `--config` is the check's result.
fn settings_checked(
    config: &str,
    verdict: Result<(), schema::ConfigError>,
    took: Duration,
    trial: &mut Vec<(String, Duration)>,
) -> Result<(), String> {
    let what = if config.is_empty() {
        "no settings"
    } else {
        "--config"
    };
    match verdict {
        Ok(()) => {
            trial.push((format!("validate-config ({what}) -> accepted"), took));
            Ok(())
        }
        Err(why) => Err(format!("the settings ({what}) {why}")),
    }
}

/// The sample calls of one check.
struct Trial<'a> {
    host: &'a PluginHost,
    name: &'a str,
    wasm: &'a [u8],
    limits: Limits,
    config: &'a str,
    sink: LogSink,
}

impl Trial<'_> {
    async fn strategy(&self, trial: &mut Vec<(String, Duration)>) -> Result<(), String> {
        let plugin = self
            .host
            .load_strategy(self.name, self.wasm, self.limits)
            .map_err(|f| f.to_string())?
            .with_log_sink(self.sink.clone());
        if plugin.validates_config() {
            let (verdict, took) = timed(plugin.check_config(self.config)).await;
            settings_checked(self.config, verdict, took, trial)?;
        }
        let spec = AnalysisSpec {
            config: self.config.to_string(),
            ..sample_spec()
        };
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
        let (action, took) = timed(plugin.decide(&spec, state, observation)).await;
        if let Some(action) = answered("decide", action, took, trial)? {
            validate::action(plugin.name(), &spec, &state, &action).map_err(|f| f.to_string())?;
            trial.push((
                format!("decide (progressing, weight 10) -> {action:?}"),
                took,
            ));
        }
        let (plan, took) = timed(plugin.route(&spec, state)).await;
        if let Some(plan) = answered("route", plan, took, trial)? {
            validate::route_plan(plugin.name(), &spec, &state, &plan).map_err(|f| f.to_string())?;
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
        let (plan, took) = timed(plugin.route(&spec, at_rest)).await;
        if let Some(plan) = answered("route at rest", plan, took, trial)? {
            validate::route_plan(plugin.name(), &spec, &at_rest, &plan)
                .map_err(|f| f.to_string())?;
            trial.push(("route (at rest) -> all traffic on the primary".into(), took));
        }
        Ok(())
    }

    async fn evaluator(&self, trial: &mut Vec<(String, Duration)>) -> Result<(), String> {
        let plugin = self
            .host
            .load_evaluator(self.name, self.wasm, self.limits)
            .map_err(|f| f.to_string())?
            .with_log_sink(self.sink.clone());
        if plugin.validates_config() {
            let (verdict, took) = timed(plugin.check_config(self.config)).await;
            settings_checked(self.config, verdict, took, trial)?;
        }
        let metric = Metric {
            name: "error-rate".into(),
            threshold_range: ThresholdRange {
                min: None,
                max: Some(1.0),
            },
            config: self.config.to_string(),
        };
        let (requirements, took) = timed(plugin.requirements(&metric)).await;
        let requirements = requirements.map_err(|f| f.to_string())?;
        let (wants, series) = (requirements.baseline, requirements.series);
        trial.push((
            match &series {
                Some(r) => format!(
                    "requirements -> baseline {wants}, series of {}s every {}s",
                    r.window_seconds, r.step_seconds
                ),
                None => format!("requirements -> baseline {wants}, no series"),
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
        let (verdict, took) = timed(plugin.evaluate(&metric, samples)).await;
        if let Some(verdict) = answered("evaluate", verdict, took, trial)? {
            trial.push((format!("evaluate ({described}) -> {verdict:?}"), took));
        }
        Ok(())
    }
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
            for import in c.imports.iter().filter(|i| i.starts_with("wasi:")) {
                let _ = writeln!(out, "sandbox:  {import}: {}", sandbox::describe(import));
            }
        }
        match &self.schema {
            Some(None) => {
                let _ = writeln!(out, "schema:   no settings schema");
            }
            Some(Some(json)) => {
                let _ = writeln!(out, "schema:   {}", json.replace('\n', "\n          "));
                if self.config_matched {
                    let _ = writeln!(out, "config:   matches the settings schema");
                }
            }
            None => {}
        }
        for (call, took) in &self.trial {
            let _ = writeln!(
                out,
                "call:     {call} in {:.3} ms",
                took.as_secs_f64() * 1000.0
            );
        }
        for line in &self.logs {
            let _ = writeln!(out, "log:      {line}");
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
