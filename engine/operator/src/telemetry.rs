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

use sluice_api::{Canary, CanaryPhase, CanaryStatus};
use sluice_host::PluginMetrics;
use sluice_rollout::analysis::workload::primary_name;

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
    /// Canaries seen, to count them per namespace.
    known: Mutex<std::collections::BTreeSet<(String, String)>>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    /// conflict, not_leader, api, not_found, invalid, workload, missing,
    /// waiting, finalizer.
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
    pub fn new(plugins: &PluginMetrics) -> Self {
        let mut registry = Registry::default();
        let status = Family::<CanaryLabels, Gauge>::default();
        let weight = Family::<WorkloadLabels, Gauge>::default();
        let total = Family::<NamespaceLabels, Gauge>::default();
        let duration = Family::<CanaryLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            analysis_duration,
        );
        registry.register(
            "sluice_info",
            "Sluice version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        registry.register(
            "sluice_canary_status",
            "Last canary analysis result: 0 running, 1 successful, 2 failed, 3 initialized",
            status.clone(),
        );
        registry.register(
            "sluice_canary_weight",
            "Traffic weight of the primary and canary workloads",
            weight.clone(),
        );
        registry.register(
            "sluice_canary_total",
            "Canaries, by namespace",
            total.clone(),
        );
        registry.register(
            "sluice_canary_duration_seconds",
            "Duration of one analysis tick",
            duration.clone(),
        );
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "sluice_reconcile_errors",
            "Reconciles that failed and were retried, by kind",
            reconcile_errors.clone(),
        );
        let leading = Gauge::default();
        registry.register(
            "sluice_leader",
            "1 while this replica holds the leader election Lease (or runs without one), else 0",
            leading.clone(),
        );
        plugins.register(&mut registry);
        Self {
            registry,
            status,
            weight,
            total,
            duration,
            reconcile_errors,
            leading,
            known: Mutex::default(),
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
