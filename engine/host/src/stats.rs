//! Per-plugin call metrics, recorded where every call goes through
//! ([`super::run_call`]) and exported by the operator on `/metrics`.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    plugin: String,
    /// timeout, memory, trap, error, invalid, load.
    fault: String,
}

fn call_duration() -> Histogram {
    // 50 µs to ~1.6 s: a healthy call takes microseconds, the budget
    // (100 ms by default) bounds a bad one.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// Counters shared by every plugin of a host. Cheap to clone (handles).
#[derive(Clone, Debug)]
pub struct PluginMetrics {
    calls: Family<PluginLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    duration: Family<PluginLabels, Histogram, fn() -> Histogram>,
    circuit_opened: Family<PluginLabels, Counter>,
    shadow_divergences: Family<PluginLabels, Counter>,
}

impl Default for PluginMetrics {
    fn default() -> Self {
        Self {
            calls: Family::default(),
            failures: Family::default(),
            duration: Family::new_with_constructor(call_duration),
            circuit_opened: Family::default(),
            shadow_divergences: Family::default(),
        }
    }
}

impl PluginMetrics {
    pub(crate) fn record(&self, plugin: &str, elapsed: Duration, fault: Option<&str>) {
        let labels = PluginLabels {
            plugin: plugin.to_string(),
        };
        self.calls.get_or_create(&labels).inc();
        self.duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        if let Some(fault) = fault {
            self.failures
                .get_or_create(&FailureLabels {
                    plugin: plugin.to_string(),
                    fault: fault.to_string(),
                })
                .inc();
        }
    }

    /// An answer the host refused after the call returned.
    pub fn record_invalid_answer(&self, plugin: &str) {
        self.failures
            .get_or_create(&FailureLabels {
                plugin: plugin.to_string(),
                fault: "invalid".to_string(),
            })
            .inc();
    }

    /// The circuit breaker of a build of `plugin` opened (see
    /// [`crate::breaker`]).
    pub fn record_circuit_opened(&self, plugin: &str) {
        self.circuit_opened
            .get_or_create(&PluginLabels {
                plugin: plugin.to_string(),
            })
            .inc();
    }

    /// A shadowed version of `plugin` decided otherwise than the current.
    pub fn record_shadow_divergence(&self, plugin: &str) {
        self.shadow_divergences
            .get_or_create(&PluginLabels {
                plugin: plugin.to_string(),
            })
            .inc();
    }

    /// Divergences of `plugin`'s shadowed versions so far.
    pub fn shadow_divergences(&self, plugin: &str) -> u64 {
        self.shadow_divergences
            .get_or_create(&PluginLabels {
                plugin: plugin.to_string(),
            })
            .get()
    }

    /// Times a circuit breaker of `plugin` opened so far.
    pub fn circuit_openings(&self, plugin: &str) -> u64 {
        self.circuit_opened
            .get_or_create(&PluginLabels {
                plugin: plugin.to_string(),
            })
            .get()
    }

    /// Calls recorded for `plugin` so far.
    pub fn calls(&self, plugin: &str) -> u64 {
        self.calls
            .get_or_create(&PluginLabels {
                plugin: plugin.to_string(),
            })
            .get()
    }

    /// Adds the metrics to `registry` under `sluice_plugin_*`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "sluice_plugin_calls",
            "Plugin calls, by plugin",
            self.calls.clone(),
        );
        registry.register(
            "sluice_plugin_failures",
            "Plugin calls that failed (timeout, memory, trap, error, invalid answer, load), by plugin",
            self.failures.clone(),
        );
        registry.register(
            "sluice_plugin_call_duration_seconds",
            "Duration of one plugin call (fresh store, instantiation and the call)",
            self.duration.clone(),
        );
        registry.register(
            "sluice_plugin_circuit_opened",
            "Times a plugin build was marked failed on every Canary after repeated faults (circuit breaker), by plugin",
            self.circuit_opened.clone(),
        );
        registry.register(
            "sluice_plugin_shadow_divergences",
            "Decisions where a shadowed new version of a strategy differed from the current one, by plugin",
            self.shadow_divergences.clone(),
        );
    }
}
