//! A loaded evaluator plugin, of either contract version. Cheap to clone;
//! every call that runs guest code gets a fresh instance.

use super::bindings::evaluator::{Metric, Samples, SeriesRequest, Verdict};
use super::bindings::{evaluator_v1, evaluator_v2};
use super::call::{CallContext, run_call};
use super::convert;
use super::memo::Memo;
use super::schema::{ConfigError, ConfigSchema};
use super::settings::SettingsCheck;
use super::{CallState, FaultKind, Limits, LogSink, PluginFault, PluginHost};

/// The bindings of an evaluator, by contract version.
#[derive(Clone)]
pub(crate) enum EvaluatorPre {
    V1(evaluator_v1::EvaluatorPre<CallState>),
    V2(evaluator_v2::EvaluatorPre<CallState>),
}

impl EvaluatorPre {
    fn engine(&self) -> &wasmtime::Engine {
        match self {
            EvaluatorPre::V1(pre) => pre.engine(),
            EvaluatorPre::V2(pre) => pre.engine(),
        }
    }
}

/// The most samples a series may hold: Prometheus refuses range queries of
/// more than 11,000 points per series, and a plugin's input must stay small
/// next to its memory cap.
const MAX_SERIES_POINTS: u64 = 11_000;

/// How many samples a range query for `request` returns at most: one at
/// each step from `now - window` to `now`, both ends included.
pub fn series_points(request: &SeriesRequest) -> u64 {
    match request.step_seconds {
        0 => 0,
        step => u64::from(request.window_seconds / step) + 1,
    }
}

/// Why the host refuses an evaluator's series request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum SeriesRequestError {
    #[error("series request: step-seconds must be at least 1 (got 0, window {window}s)")]
    NoStep { window: u32 },
    #[error("series request: window-seconds ({window}) must be at least one step ({step})")]
    WindowUnderStep { window: u32, step: u32 },
    #[error(
        "series request: a {window}s window every {step}s is {points} samples, more than {MAX_SERIES_POINTS}"
    )]
    TooManyPoints { window: u32, step: u32, points: u64 },
}

/// Why the host refuses a series request, if it does.
fn check_series_request(request: &SeriesRequest) -> Result<(), SeriesRequestError> {
    let SeriesRequest {
        window_seconds: window,
        step_seconds: step,
    } = *request;
    if step == 0 {
        return Err(SeriesRequestError::NoStep { window });
    }
    if window < step {
        return Err(SeriesRequestError::WindowUnderStep { window, step });
    }
    let points = series_points(request);
    if points > MAX_SERIES_POINTS {
        return Err(SeriesRequestError::TooManyPoints {
            window,
            step,
            points,
        });
    }
    Ok(())
}

/// What an evaluator needs for a metric: the primary's value as a
/// baseline, and a series window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Requirements {
    pub baseline: bool,
    pub series: Option<SeriesRequest>,
}

#[derive(Clone)]
pub struct EvaluatorPlugin {
    name: String,
    digest: String,
    pre: EvaluatorPre,
    limits: Limits,
    host: PluginHost,
    /// Settings used when a Canary gives none (a RolloutPlugin's `config`).
    default_config: String,
    /// The plugin's settings check: schema and `validate-config`.
    settings: SettingsCheck,
    /// Requirements by metric: `requirements` (0.2), `wants-*` (0.1) are
    /// pure functions.
    requirements: Memo<Requirements>,
    sink: Option<LogSink>,
}

impl EvaluatorPlugin {
    pub(crate) fn new(
        name: &str,
        digest: String,
        pre: EvaluatorPre,
        limits: Limits,
        host: PluginHost,
        settings: SettingsCheck,
    ) -> Self {
        Self {
            name: name.to_string(),
            digest,
            pre,
            limits,
            host,
            default_config: String::new(),
            settings,
            requirements: Memo::default(),
            sink: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plugin with settings to use when a Canary gives none.
    pub fn with_default_config(mut self, config: String) -> Self {
        self.default_config = config;
        self
    }

    /// The plugin with its log lines also collected in `sink`.
    pub fn with_log_sink(mut self, sink: LogSink) -> Self {
        self.sink = Some(sink);
        self
    }

    /// `config` if set, else the plugin's default settings.
    pub fn config_or_default(&self, config: &str) -> String {
        if config.is_empty() {
            self.default_config.clone()
        } else {
            config.to_string()
        }
    }

    /// The settings schema the component embeds (`sluice:config-schema`).
    pub fn config_schema(&self) -> Option<&ConfigSchema> {
        self.settings.schema()
    }

    /// The contract version the plugin targets: "0.1" or "0.2".
    pub fn contract(&self) -> &'static str {
        match self.pre {
            EvaluatorPre::V1(_) => "0.1",
            EvaluatorPre::V2(_) => "0.2",
        }
    }

    /// Whether the plugin checks its own settings (`validate-config`).
    pub fn validates_config(&self) -> bool {
        self.settings.validates()
    }

    /// Checks `config` (or, when it is empty, the plugin's default settings)
    /// against the plugin's settings schema, then with its own
    /// `validate-config` when it exports one. No schema and no export, or
    /// no settings at all, passes.
    pub async fn check_config(&self, config: &str) -> Result<(), ConfigError> {
        let settings = if config.is_empty() {
            self.default_config.as_str()
        } else {
            config
        };
        self.settings.check(self.context(), settings).await
    }

    pub fn digest(&self) -> &str {
        &self.digest
    }

    fn context(&self) -> CallContext<'_> {
        self.host.call_context(
            self.pre.engine(),
            &self.name,
            self.limits,
            self.sink.clone(),
        )
    }

    /// What the plugin needs for `metric` (0.2: one `requirements` call;
    /// 0.1: `wants-baseline` and `wants-series`, asked of one instance),
    /// remembered per metric. A
    /// series request the host cannot serve (zero step, window shorter than
    /// a step, too many samples) is an invalid answer: plugin output is
    /// never trusted.
    pub async fn requirements(&self, metric: &Metric) -> Result<Requirements, PluginFault> {
        let key = Memo::<Requirements>::key("requirements", metric);
        if let Some(r) = key.as_deref().and_then(|k| self.requirements.get(k)) {
            return Ok(r);
        }
        let requirements = match &self.pre {
            EvaluatorPre::V1(pre) => {
                run_call(self.context(), async |store| {
                    let plugin = pre.instantiate_async(&mut *store).await?;
                    let judge = plugin.sluice_plugin_judge();
                    let baseline = judge.call_wants_baseline(&mut *store, metric).await?;
                    let series = judge.call_wants_series(&mut *store, metric).await?;
                    Ok(Ok(Requirements { baseline, series }))
                })
                .await?
            }
            EvaluatorPre::V2(pre) => {
                let metric = convert::metric_to_v2(metric);
                let answer = run_call(self.context(), async |store| {
                    let plugin = pre.instantiate_async(&mut *store).await?;
                    plugin
                        .sluice_plugin_judge()
                        .call_requirements(&mut *store, &metric)
                        .await
                })
                .await?;
                Requirements {
                    baseline: answer.baseline,
                    series: answer.series.map(convert::series_from_v2),
                }
            }
        };
        if let Some(r) = &requirements.series {
            check_series_request(r).map_err(|why| PluginFault {
                plugin: self.name.clone(),
                kind: FaultKind::InvalidAnswer(why.to_string()),
            })?;
        }
        if let Some(k) = key {
            self.requirements.put(k, requirements);
        }
        Ok(requirements)
    }

    /// Judges one metric. A verdict whose reason is empty or absurdly long
    /// is an invalid answer. Callers hand only finite samples
    /// (`analysis::checks` refuses the others before any plugin runs).
    pub async fn evaluate(
        &self,
        metric: &Metric,
        samples: Samples,
    ) -> Result<Verdict, PluginFault> {
        let verdict = match &self.pre {
            EvaluatorPre::V1(pre) => {
                let verdict = run_call(self.context(), async |store| {
                    let plugin = pre.instantiate_async(&mut *store).await?;
                    plugin
                        .sluice_plugin_judge()
                        .call_evaluate(&mut *store, metric, &samples)
                        .await
                })
                .await?;
                convert::verdict_from_v1(verdict)
            }
            EvaluatorPre::V2(pre) => {
                let metric = convert::metric_to_v2(metric);
                let samples = convert::samples_to_v2(&samples);
                run_call(self.context(), async |store| {
                    let plugin = pre.instantiate_async(&mut *store).await?;
                    plugin
                        .sluice_plugin_judge()
                        .call_evaluate(&mut *store, &metric, &samples)
                        .await
                })
                .await?
            }
        };
        let reason = match &verdict {
            Verdict::Pass => return Ok(verdict),
            Verdict::Fail(r) | Verdict::Inconclusive(r) | Verdict::NeedsMoreData(r) => r,
        };
        if reason.trim().is_empty() || reason.len() > 1024 {
            return Err(PluginFault {
                plugin: self.name.clone(),
                kind: FaultKind::InvalidAnswer(format!(
                    "a failing verdict needs a reason of 1 to 1024 bytes (got {} bytes)",
                    reason.len()
                )),
            });
        }
        Ok(verdict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(window_seconds: u32, step_seconds: u32) -> SeriesRequest {
        SeriesRequest {
            window_seconds,
            step_seconds,
        }
    }

    #[test]
    fn series_requests_are_bounded() {
        assert_eq!(series_points(&request(600, 30)), 21);
        assert_eq!(series_points(&request(59, 30)), 2);
        assert_eq!(check_series_request(&request(600, 30)), Ok(()));
        assert_eq!(check_series_request(&request(60, 60)), Ok(()));
        assert_eq!(check_series_request(&request(10_999, 1)), Ok(()));
        assert!(
            check_series_request(&request(600, 0))
                .unwrap_err()
                .to_string()
                .contains("step-seconds must be at least 1")
        );
        assert!(
            check_series_request(&request(10, 60))
                .unwrap_err()
                .to_string()
                .contains("at least one step")
        );
        let e = check_series_request(&request(11_000, 1))
            .unwrap_err()
            .to_string();
        assert!(e.contains("11001 samples"), "{e}");
        let e = check_series_request(&request(u32::MAX, 1))
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than 11000"), "{e}");
    }
}
