//! Operator metrics on `/metrics`, named like Flagger's (`flagger_canary_*`
//! → `sluice_canary_*`) so that dashboards port, plus the plugin call
//! metrics of the Wasm host.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use sluice_api::{Canary, CanaryPhase, CanaryStatus, MetricCheck, Webhook};
use sluice_host::PluginMetrics;
use sluice_rollout::BoxError;
use sluice_rollout::analysis::checks::{MetricTarget, MetricsProvider, WebhookCaller};
use sluice_rollout::analysis::workload::primary_name;
use sluice_rollout::metrics::{MetricError, PrometheusError};
use sluice_rollout::webhooks::WebhookError;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CanaryLabels {
    name: String,
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkloadLabels {
    workload: String,
    namespace: String,
}

fn analysis_duration() -> Histogram {
    // 1 ms to ~30 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// The operator's metrics and the registry that exports them.
pub struct Telemetry {
    registry: Registry,
    status: Family<CanaryLabels, Gauge>,
    weight: Family<WorkloadLabels, Gauge>,
    total: Family<NamespaceLabels, Gauge>,
    duration: Family<CanaryLabels, Histogram, fn() -> Histogram>,
    reconcile_errors: Family<ErrorLabels, Counter>,
    leading: Gauge,
    check_faults: CheckFaults,
    /// Canaries seen, to count them per namespace.
    known: Mutex<std::collections::BTreeSet<(String, String)>>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    /// conflict, not_leader, api, timeout, not_found, invalid, workload,
    /// missing, waiting, finalizer.
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NamespaceLabels {
    namespace: String,
}

/// Flagger's encoding of `flagger_canary_status`: 0 running, 1 successful,
/// 2 failed; Sluice adds 3 for a Canary at rest before its first rollout.
fn status_value(phase: Option<CanaryPhase>) -> i64 {
    match phase {
        Some(CanaryPhase::Succeeded) => 1,
        Some(CanaryPhase::Failed) => 2,
        Some(CanaryPhase::Initialized) | None => 3,
        Some(_) => 0,
    }
}

impl Telemetry {
    /// The operator's metrics, registered in the order `/metrics` lists
    /// them: Flagger's, the operator's own, the failed checks', then the
    /// plugin host's.
    pub fn new(plugins: &PluginMetrics) -> Self {
        let mut telemetry = Self {
            registry: Registry::default(),
            status: Family::default(),
            weight: Family::default(),
            total: Family::default(),
            duration: Family::<CanaryLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                analysis_duration,
            ),
            reconcile_errors: Family::default(),
            leading: Gauge::default(),
            check_faults: CheckFaults::default(),
            known: Mutex::default(),
        };
        telemetry.register_flagger_metrics();
        telemetry.register_operator_metrics();
        telemetry.register_check_faults();
        plugins.register(&mut telemetry.registry);
        telemetry
    }

    /// The metrics Flagger exposes, under Sluice's names: the version, and
    /// the Canaries' status, weights, count and analysis durations.
    fn register_flagger_metrics(&mut self) {
        self.registry.register(
            "sluice_info",
            "Sluice version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        self.registry.register(
            "sluice_canary_status",
            "Last canary analysis result: 0 running, 1 successful, 2 failed, 3 initialized",
            self.status.clone(),
        );
        self.registry.register(
            "sluice_canary_weight",
            "Traffic weight of the primary and canary workloads",
            self.weight.clone(),
        );
        self.registry.register(
            "sluice_canary_total",
            "Canaries, by namespace",
            self.total.clone(),
        );
        self.registry.register(
            "sluice_canary_duration_seconds",
            "Duration of one analysis tick",
            self.duration.clone(),
        );
    }

    /// The operator's own health: failed reconciles and leadership.
    fn register_operator_metrics(&mut self) {
        self.registry.register(
            "sluice_reconcile_errors",
            "Reconciles that failed and were retried, by kind",
            self.reconcile_errors.clone(),
        );
        self.registry.register(
            "sluice_leader",
            "1 while this replica holds the leader election Lease (or runs without one), else 0",
            self.leading.clone(),
        );
    }

    /// The failed metric queries and webhook calls of Canaries' checks.
    fn register_check_faults(&mut self) {
        self.registry.register(
            "sluice_metric_query_failures",
            "Metric queries that gave no value, by Canary, metric and cause (timeout, unreachable, http_status, bad_query, bad_response, no_data, config)",
            self.check_faults.metrics.clone(),
        );
        self.registry.register(
            "sluice_webhook_failures",
            "Webhook calls that did not pass, by Canary, webhook and cause (timeout, unreachable, http_status, other)",
            self.check_faults.webhooks.clone(),
        );
    }

    /// Counts the failures of `inner`'s metric queries or webhook calls
    /// into this registry's `sluice_metric_query_failures_total` and
    /// `sluice_webhook_failures_total`.
    pub(crate) fn counted<T>(&self, inner: T) -> Counted<T> {
        Counted {
            inner,
            faults: self.check_faults.clone(),
        }
    }

    /// Records the outcome of one tick.
    pub(crate) fn observe(&self, canary: &Canary, status: &CanaryStatus, elapsed: Duration) {
        let namespace = canary.metadata.namespace.clone().unwrap_or_default();
        let name = canary.metadata.name.clone().unwrap_or_default();
        let labels = CanaryLabels {
            name: name.clone(),
            namespace: namespace.clone(),
        };
        self.status
            .get_or_create(&labels)
            .set(status_value(status.phase));
        self.duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        let target = &canary.spec.target_ref.name;
        let canary_weight = i64::from(status.canary_weight.min(100));
        self.weight
            .get_or_create(&WorkloadLabels {
                workload: primary_name(target),
                namespace: namespace.clone(),
            })
            .set(100 - canary_weight);
        self.weight
            .get_or_create(&WorkloadLabels {
                workload: target.clone(),
                namespace: namespace.clone(),
            })
            .set(canary_weight);
        self.count(namespace, name, true);
    }

    /// Counts a failed reconcile of `kind`.
    pub(crate) fn reconcile_failed(&self, kind: &str) {
        self.reconcile_errors
            .get_or_create(&ErrorLabels { kind: kind.into() })
            .inc();
    }

    /// Whether this replica leads.
    pub(crate) fn set_leading(&self, leading: bool) {
        self.leading.set(i64::from(leading));
    }

    /// Forgets a deleted Canary.
    pub(crate) fn forget(&self, canary: &Canary) {
        let namespace = canary.metadata.namespace.clone().unwrap_or_default();
        let name = canary.metadata.name.clone().unwrap_or_default();
        self.status.remove(&CanaryLabels {
            name: name.clone(),
            namespace: namespace.clone(),
        });
        self.count(namespace, name, false);
    }

    fn count(&self, namespace: String, name: String, present: bool) {
        let Ok(mut known) = self.known.lock() else {
            return;
        };
        if present {
            known.insert((namespace.clone(), name));
        } else {
            known.remove(&(namespace.clone(), name));
        }
        let n = known.iter().filter(|(ns, _)| *ns == namespace).count();
        self.total
            .get_or_create(&NamespaceLabels { namespace })
            .set(n as i64);
    }

    /// The metrics in Prometheus' text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    namespace: String,
    name: String,
    /// The metric's or the webhook's name in the Canary.
    check: String,
    cause: &'static str,
}

/// Failed metric queries and webhook calls (a failed check the rollout
/// halts or rolls back on, not a failed reconcile).
#[derive(Clone, Default)]
struct CheckFaults {
    metrics: Family<CheckLabels, Counter>,
    webhooks: Family<CheckLabels, Counter>,
}

fn check_labels(canary: &Canary, check: &str, cause: &'static str) -> CheckLabels {
    CheckLabels {
        namespace: canary.metadata.namespace.clone().unwrap_or_default(),
        name: canary.metadata.name.clone().unwrap_or_default(),
        check: check.to_string(),
        cause,
    }
}

/// Why a metric query gave no value, as a label.
fn metric_cause(error: &BoxError) -> &'static str {
    match error.downcast_ref::<MetricError>() {
        Some(MetricError::Prometheus(e)) => match e {
            PrometheusError::Timeout { .. } => "timeout",
            PrometheusError::Unreachable { .. } => "unreachable",
            PrometheusError::Status { .. } => "http_status",
            PrometheusError::BadQuery { .. } => "bad_query",
            _ => "bad_response",
        },
        _ => "config",
    }
}

/// Why a webhook did not pass, as a label.
fn webhook_cause(error: &BoxError) -> &'static str {
    match error.downcast_ref::<WebhookError>() {
        Some(WebhookError::Timeout { .. }) => "timeout",
        Some(WebhookError::Unreachable { .. }) => "unreachable",
        Some(WebhookError::Status { .. }) => "http_status",
        _ => "other",
    }
}

/// A metrics provider or webhook caller whose failures are counted.
pub(crate) struct Counted<T> {
    inner: T,
    faults: CheckFaults,
}

impl<M: MetricsProvider> MetricsProvider for Counted<M> {
    async fn value(
        &self,
        canary: &Canary,
        check: &MetricCheck,
        target: MetricTarget,
    ) -> Result<Option<f64>, BoxError> {
        let value = self.inner.value(canary, check, target).await;
        let cause = match &value {
            Ok(Some(_)) => None,
            Ok(None) => Some("no_data"),
            Err(e) => Some(metric_cause(e)),
        };
        if let Some(cause) = cause {
            self.faults
                .metrics
                .get_or_create(&check_labels(canary, &check.name, cause))
                .inc();
        }
        value
    }

    async fn series(
        &self,
        canary: &Canary,
        check: &MetricCheck,
        target: MetricTarget,
        window: Duration,
        step: Duration,
    ) -> Result<Vec<f64>, BoxError> {
        let series = self.inner.series(canary, check, target, window, step).await;
        if let Err(e) = &series {
            self.faults
                .metrics
                .get_or_create(&check_labels(canary, &check.name, metric_cause(e)))
                .inc();
        }
        series
    }
}

impl<W: WebhookCaller> WebhookCaller for Counted<W> {
    async fn call(
        &self,
        canary: &Canary,
        hook: &Webhook,
        phase: CanaryPhase,
    ) -> Result<(), BoxError> {
        let result = self.inner.call(canary, hook, phase).await;
        if let Err(e) = &result {
            self.faults
                .webhooks
                .get_or_create(&check_labels(canary, &hook.name, webhook_cause(e)))
                .inc();
        }
        result
    }

    async fn send_event(
        &self,
        canary: &Canary,
        hook: &Webhook,
        event: &sluice_rollout::cluster::Event,
        at: jiff::Timestamp,
    ) -> Result<(), BoxError> {
        let result = self.inner.send_event(canary, hook, event, at).await;
        if let Err(e) = &result {
            self.faults
                .webhooks
                .get_or_create(&check_labels(canary, &hook.name, webhook_cause(e)))
                .inc();
        }
        result
    }
}
