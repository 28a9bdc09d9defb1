//! The "measure" and "evaluate" steps of a tick: webhooks and metric
//! checks. Where values come from is behind two small traits, so the
//! simulator can script them and the operator can ask Prometheus.

use std::future::Future;
use std::time::Duration;

use crate::BoxError;
use sluice_api::{Canary, CanaryPhase, MetricCheck, Webhook};
use sluice_host::bindings::evaluator::{Metric, Samples, SeriesRequest, ThresholdRange, Verdict};
use sluice_host::evaluator::{Requirements, series_points};
use sluice_host::journal::{Answer, Call, RecordedRequirements};
use sluice_host::{EvaluatorPlugin, PluginRegistry};

pub use super::shadow_evaluator::ShadowNote;
use super::shadow_evaluator::{Judged, judge_in_shadow};

/// Which workload a metric query is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricTarget {
    Canary,
    Primary,
}

/// Reads metrics: the current value, and for evaluators that ask for it,
/// the series of values over a window.
pub trait MetricsProvider: Send + Sync {
    /// The current value of a metric. `Ok(None)` means the query returned
    /// no data.
    fn value(
        &self,
        canary: &Canary,
        check: &MetricCheck,
        target: MetricTarget,
    ) -> impl Future<Output = Result<Option<f64>, BoxError>> + Send;

    /// The metric's values over `[now - window, now]`, one every `step`,
    /// oldest first (a Prometheus range query). Empty when the query
    /// selected no series; steps without a value are left out.
    ///
    /// Providers that cannot serve series keep this default, which says so:
    /// a check whose evaluator asks for a series then fails with that
    /// reason instead of being judged on data it did not get.
    fn series(
        &self,
        _canary: &Canary,
        check: &MetricCheck,
        _target: MetricTarget,
        _window: Duration,
        _step: Duration,
    ) -> impl Future<Output = Result<Vec<f64>, BoxError>> + Send {
        let reason = format!(
            "this metrics provider has no series (range queries) for {}",
            check.name
        );
        std::future::ready(Err(reason.into()))
    }
}

/// Calls a webhook; `Err` carries why it did not pass.
pub trait WebhookCaller: Send + Sync {
    fn call(
        &self,
        canary: &Canary,
        hook: &Webhook,
        phase: CanaryPhase,
    ) -> impl Future<Output = Result<(), BoxError>> + Send;

    /// Sends one event to an `event` webhook (Flagger's event payload).
    fn send_event(
        &self,
        canary: &Canary,
        hook: &Webhook,
        event: &crate::cluster::Event,
        at: jiff::Timestamp,
    ) -> impl Future<Output = Result<(), BoxError>> + Send;
}

/// A fault that stops a check from being judged at all, as opposed to a
/// check that was judged and failed. Each is a reason of the Canary's
/// `Ready` condition while it lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A metric query failed, returned no data or a value that is not a
    /// finite number.
    MetricUnavailable,
    /// A webhook did not answer, refused the connection or answered an error.
    WebhookFailed,
    /// A plugin is missing or failed to load.
    PluginUnavailable,
    /// A plugin call trapped, ran out of budget or gave an invalid answer.
    PluginFault,
    /// A metric's settings do not fit its evaluator's settings schema.
    InvalidPluginConfig,
}

impl Fault {
    /// The `Ready` condition's reason for this fault.
    pub fn reason(self) -> &'static str {
        match self {
            Fault::MetricUnavailable => "MetricUnavailable",
            Fault::WebhookFailed => "WebhookFailed",
            Fault::PluginUnavailable => "PluginUnavailable",
            Fault::PluginFault => "PluginFault",
            Fault::InvalidPluginConfig => "InvalidPluginConfig",
        }
    }
}

/// One failed check: the "Halt … advancement …" event message in
/// Flagger's wording, and the fault behind it when it could not be judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckFailure {
    pub message: String,
    pub fault: Option<Fault>,
    /// The evaluator needs more data (0.2's `needs-more-data`): the check
    /// holds the rollout without failing, within the Canary's horizon.
    pub needs_more_data: bool,
}

impl CheckFailure {
    /// A check that was judged and failed.
    pub fn judged(message: String) -> Self {
        Self {
            message,
            fault: None,
            needs_more_data: false,
        }
    }

    /// A check that could not be judged because of `fault`.
    pub fn fault(fault: Fault, message: String) -> Self {
        Self {
            message,
            fault: None,
            needs_more_data: false,
        }
        .with_fault(fault)
    }

    /// A check whose evaluator needs more data to judge.
    pub fn waiting(message: String) -> Self {
        Self {
            message,
            fault: None,
            needs_more_data: true,
        }
    }

    fn with_fault(mut self, fault: Fault) -> Self {
        self.fault = Some(fault);
        self
    }
}

/// Tells the circuit breaker of the plugin `name` (build `digest`) how a
/// call for `canary` went. `Some` is the event to publish when this fault
/// opens the breaker: from then on the registry hands the plugin to no
/// Canary (see `sluice_host::breaker`).
pub fn tell_breaker<T, E: std::fmt::Display>(
    plugins: &PluginRegistry,
    canary: &Canary,
    (name, digest, export): (&str, &str, &'static str),
    result: &Result<T, E>,
) -> Option<String> {
    let host = plugins.host();
    let fault = match result {
        Ok(_) => {
            host.breakers().record_success(digest, export);
            return None;
        }
        Err(fault) => fault.to_string(),
    };
    let open = host
        .breakers()
        .record_fault(digest, export, &key_of(canary), &fault)?;
    host.metrics().record_circuit_opened(name);
    Some(format!(
        "Plugin {name} (sha256:{}) {open}",
        &digest[..digest.len().min(12)]
    ))
}

/// "namespace/name" of a Canary, as breakers and the journal name it.
pub fn key_of(canary: &Canary) -> String {
    format!(
        "{}/{}",
        canary.metadata.namespace.as_deref().unwrap_or("default"),
        canary.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Checks every metric at the tick's time `at` (RFC 3339, for the
/// journal); returns one failure per failed check.
pub async fn run_metrics<M: MetricsProvider>(
    provider: &M,
    plugins: &PluginRegistry,
    canary: &Canary,
    checks: &[MetricCheck],
    (target_label, at): (&str, &str),
) -> Vec<CheckFailure> {
    let mut notes = Vec::new();
    let when = (target_label, at);
    run_metrics_noting(provider, plugins, canary, checks, when, &mut notes).await
}

/// [`run_metrics`], with what the evaluators under shadow had to say
/// added to `notes` (see [`super::shadow_evaluator`]).
pub async fn run_metrics_noting<M: MetricsProvider>(
    provider: &M,
    plugins: &PluginRegistry,
    canary: &Canary,
    checks: &[MetricCheck],
    (target_label, at): (&str, &str),
    notes: &mut Vec<ShadowNote>,
) -> Vec<CheckFailure> {
    let mut failures = Vec::new();
    for check in checks {
        let run = run_metric(provider, plugins, canary, check, (target_label, at), notes);
        if let Err(reason) = run.await {
            failures.push(reason);
        }
    }
    failures
}

/// One metric check: the canary's value, then what the evaluator asks
/// for (the primary's value as a baseline, series over a window), then the
/// evaluator's verdict.
async fn run_metric<M: MetricsProvider>(
    provider: &M,
    plugins: &PluginRegistry,
    canary: &Canary,
    check: &MetricCheck,
    (target_label, at): (&str, &str),
    notes: &mut Vec<ShadowNote>,
) -> Result<(), CheckFailure> {
    let value = canary_value(provider, canary, check, target_label)
        .await
        .map_err(unavailable)?;
    let evaluator = evaluator_for(plugins, check, target_label).await?;
    let run = MetricRun {
        provider,
        plugins,
        canary,
        check,
        target_label,
        at,
        metric: metric_for(check, &evaluator),
        evaluator: &evaluator,
    };
    let requirements = run.requirements().await?;
    let samples = run.samples(value, requirements).await?;
    let verdict = run.judge(samples, requirements, notes).await?;
    outcome(verdict, target_label, check)
}

/// A failed query, no data or a value that is not a finite number.
fn unavailable(message: String) -> CheckFailure {
    CheckFailure::fault(Fault::MetricUnavailable, message)
}

/// The check's evaluator, held to its settings check: the tick checked
/// the settings before any plugin call, but a plugin replaced since is
/// held to its own check too.
async fn evaluator_for(
    plugins: &PluginRegistry,
    check: &MetricCheck,
    target_label: &str,
) -> Result<EvaluatorPlugin, CheckFailure> {
    let evaluator = plugins.evaluator(&check.evaluator).map_err(|e| {
        CheckFailure::fault(
            Fault::PluginUnavailable,
            format!("Halt {target_label} advancement metric {}: {e}", check.name),
        )
    })?;
    evaluator
        .check_config(&check.evaluator_config)
        .await
        .map_err(|why| {
            CheckFailure::fault(
                Fault::InvalidPluginConfig,
                format!(
                    "Halt {target_label} advancement metric {}: evaluatorConfig for evaluator plugin {} {why}",
                    check.name, check.evaluator
                ),
            )
        })?;
    Ok(evaluator)
}

/// A verdict as the check's outcome.
fn outcome(verdict: Verdict, target_label: &str, check: &MetricCheck) -> Result<(), CheckFailure> {
    match verdict {
        Verdict::Pass => Ok(()),
        Verdict::Fail(reason) | Verdict::Inconclusive(reason) => Err(CheckFailure::judged(
            format!("Halt {target_label} advancement {reason}"),
        )),
        Verdict::NeedsMoreData(reason) => Err(CheckFailure::waiting(format!(
            "Halt {target_label} advancement metric {} needs more data: {reason}",
            check.name
        ))),
    }
}

/// One metric check once its evaluator is known: what the calls of the
/// check share.
struct MetricRun<'a, M> {
    provider: &'a M,
    plugins: &'a PluginRegistry,
    canary: &'a Canary,
    check: &'a MetricCheck,
    target_label: &'a str,
    /// The tick's time (RFC 3339), for the journal.
    at: &'a str,
    metric: Metric,
    evaluator: &'a EvaluatorPlugin,
}

impl<M: MetricsProvider> MetricRun<'_, M> {
    /// A plugin fault as a failed check, told to the plugin's breaker.
    fn plugin_fault(&self, f: sluice_host::PluginFault) -> CheckFailure {
        let mut message = format!("Halt {} advancement {f}", self.target_label);
        let failed: Result<(), _> = Err(f);
        let plugin = (
            self.check.evaluator.as_str(),
            self.evaluator.digest(),
            "evaluate",
        );
        if let Some(opened) = tell_breaker(self.plugins, self.canary, plugin, &failed) {
            message = format!("{message}; {opened}");
        }
        CheckFailure::fault(Fault::PluginFault, message)
    }

    fn journal(&self, call: Call) {
        self.plugins.host().journal().record(
            self.at.to_string(),
            key_of(self.canary),
            self.evaluator.name(),
            self.evaluator.digest(),
            call,
        )
    }

    /// What the evaluator needs (journalled).
    async fn requirements(&self) -> Result<Requirements, CheckFailure> {
        let requirements = self.evaluator.requirements(&self.metric).await;
        if self.plugins.host().journal().is_on() {
            let recorded = requirements
                .as_ref()
                .map(|r| RecordedRequirements::from(*r));
            self.journal(Call::Requirements {
                metric: self.metric.clone(),
                answer: Answer::from(&recorded),
            });
        }
        requirements.map_err(|f| self.plugin_fault(f))
    }

    /// The samples the evaluator asked for, around the canary's `value`.
    async fn samples(&self, value: f64, wants: Requirements) -> Result<Samples, CheckFailure> {
        let (provider, canary, check, label) =
            (self.provider, self.canary, self.check, self.target_label);
        let primary = if wants.baseline {
            baseline_value(provider, canary, check, label)
                .await
                .map_err(unavailable)?
        } else {
            None
        };
        let (canary_series, primary_series) = match &wants.series {
            None => (Vec::new(), Vec::new()),
            Some(request) => {
                series_samples(provider, canary, check, label, request, wants.baseline)
                    .await
                    .map_err(unavailable)?
            }
        };
        Ok(Samples {
            canary: value,
            primary,
            canary_series,
            primary_series,
        })
    }

    /// The evaluator's verdict on `samples` (journalled, and judged by the
    /// evaluator's shadow too when one runs: see
    /// [`super::shadow_evaluator`]).
    async fn judge(
        &self,
        samples: Samples,
        requirements: Requirements,
        notes: &mut Vec<ShadowNote>,
    ) -> Result<Verdict, CheckFailure> {
        let journalled = self
            .plugins
            .host()
            .journal()
            .is_on()
            .then(|| samples.clone());
        let shadowed = self
            .plugins
            .evaluator_shadow(&self.check.evaluator)
            .map(|shadow| (shadow, samples.clone()));
        let verdict = self.evaluator.evaluate(&self.metric, samples).await;
        if let Some((shadow, samples)) = shadowed {
            let judged = Judged {
                shadow,
                check: self.check,
                current: self.evaluator,
                requirements,
                samples: &samples,
                verdict: &verdict,
            };
            notes.extend(judge_in_shadow(self.plugins, judged, self.target_label).await);
        }
        if let Some(samples) = journalled {
            self.journal(Call::Evaluate {
                metric: self.metric.clone(),
                samples,
                answer: Answer::from(&verdict),
            });
        }
        let verdict = verdict.map_err(|f| self.plugin_fault(f))?;
        self.plugins
            .host()
            .breakers()
            .record_success(self.evaluator.digest(), "evaluate");
        Ok(verdict)
    }
}

/// The metric as `evaluator` sees it, with its default configuration when
/// the check gives none.
fn metric_for(check: &MetricCheck, evaluator: &EvaluatorPlugin) -> Metric {
    Metric {
        name: check.name.clone(),
        threshold_range: ThresholdRange {
            min: check.threshold_range.min,
            max: check.threshold_range.max,
        },
        config: evaluator.config_or_default(&check.evaluator_config),
    }
}

/// The canary's current value of the metric; no data, a value that is not
/// a finite number and a failed query each halt the advancement.
async fn canary_value<M: MetricsProvider>(
    provider: &M,
    canary: &Canary,
    check: &MetricCheck,
    target_label: &str,
) -> Result<f64, String> {
    match provider.value(canary, check, MetricTarget::Canary).await {
        Ok(Some(v)) if !v.is_finite() => Err(not_finite(target_label, check, "", v)),
        Ok(Some(v)) => Ok(v),
        Ok(None) => {
            let kind = match check.source {
                sluice_api::MetricSource::Builtin(_) => "builtin",
                _ => "custom",
            };
            Err(format!(
                "Halt advancement no values found for {kind} metric: {} probably {target_label} is not receiving traffic",
                check.name
            ))
        }
        Err(e) => Err(format!(
            "Halt {target_label} advancement metric {} query failed: {e}",
            check.name
        )),
    }
}

/// The primary's current value of the metric, for an evaluator that
/// compares against a baseline; `None` when the query returned no data.
async fn baseline_value<M: MetricsProvider>(
    provider: &M,
    canary: &Canary,
    check: &MetricCheck,
    target_label: &str,
) -> Result<Option<f64>, String> {
    match provider.value(canary, check, MetricTarget::Primary).await {
        Ok(Some(v)) if !v.is_finite() => Err(not_finite(target_label, check, " baseline", v)),
        Ok(v) => Ok(v),
        Err(e) => Err(format!(
            "Halt {target_label} advancement metric {} baseline query failed: {e}",
            check.name
        )),
    }
}

/// The canary's series and, for an evaluator that wants a baseline, the
/// primary's (empty otherwise), as `request` asks for them.
async fn series_samples<M: MetricsProvider>(
    provider: &M,
    canary: &Canary,
    check: &MetricCheck,
    target_label: &str,
    request: &SeriesRequest,
    wants_baseline: bool,
) -> Result<(Vec<f64>, Vec<f64>), String> {
    let canary_series = fetch_series(provider, canary, check, MetricTarget::Canary, request)
        .await
        .map_err(|e| {
            format!(
                "Halt {target_label} advancement metric {} series query failed: {e}",
                check.name
            )
        })?;
    let primary_series = if wants_baseline {
        fetch_series(provider, canary, check, MetricTarget::Primary, request)
            .await
            .map_err(|e| {
                format!(
                    "Halt {target_label} advancement metric {} baseline series query failed: {e}",
                    check.name
                )
            })?
    } else {
        Vec::new()
    };
    Ok((canary_series, primary_series))
}

/// Why a value that is not a finite number never reaches an evaluator.
fn not_finite(target_label: &str, check: &MetricCheck, which: &str, value: f64) -> String {
    format!(
        "Halt {target_label} advancement metric {}{which} value {value} is not a finite number",
        check.name
    )
}

/// A series as the contract promises it to plugins, whatever the provider
/// returned: finite values only, and no more than the window holds (the
/// newest ones), so a provider that returns too much cannot blow up a
/// plugin's input.
async fn fetch_series<M: MetricsProvider>(
    provider: &M,
    canary: &Canary,
    check: &MetricCheck,
    target: MetricTarget,
    request: &SeriesRequest,
) -> Result<Vec<f64>, String> {
    let window = Duration::from_secs(request.window_seconds.into());
    let step = Duration::from_secs(request.step_seconds.into());
    let mut values = provider
        .series(canary, check, target, window, step)
        .await
        .map_err(|e| e.to_string())?;
    values.retain(|v| v.is_finite());
    let keep = usize::try_from(series_points(request)).unwrap_or(usize::MAX);
    if values.len() > keep {
        values.drain(..values.len() - keep);
    }
    Ok(values)
}
