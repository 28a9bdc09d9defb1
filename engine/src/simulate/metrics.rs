//! Where a simulation's metric values come from: the scenario's scripted
//! values, or a real Prometheus (`sluice simulate --prometheus URL`) queried
//! with the Canary's real templates while the cluster stays simulated.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::{Context, Result};
use jiff::Timestamp;

use super::ScriptedMetrics;
use super::scenario::Scenario;
use sluice_api::{Canary, MetricCheck};
use sluice_rollout::analysis::checks::{MetricTarget, MetricsProvider};
use sluice_rollout::cluster::memory::MemoryCluster;
use sluice_rollout::metrics::{EvaluationTime, PrometheusMetrics, PrometheusSettings};

/// How a simulation runs, beyond its Canary and scenario.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Query this Prometheus instead of using the scenario's metric values.
    pub prometheus: Option<PrometheusSource>,
}

/// A real Prometheus for a simulation.
#[derive(Debug, Clone)]
pub struct PrometheusSource {
    /// Every query goes here, whatever address the templates give.
    pub url: String,
    /// Evaluation time of the first tick; each tick adds the analysis
    /// interval. Unset: Prometheus's current time at each query.
    pub start: Option<Timestamp>,
    pub timeout: Duration,
}

impl PrometheusSource {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            start: None,
            timeout: sluice_rollout::metrics::prometheus::DEFAULT_TIMEOUT,
        }
    }

    pub fn starting_at(mut self, start: Timestamp) -> Self {
        self.start = Some(start);
        self
    }
}

/// The simulation's metrics provider.
#[derive(Clone)]
pub(super) enum SimMetrics {
    Scripted(ScriptedMetrics),
    Prometheus(PrometheusMetrics<MemoryCluster>),
}

impl SimMetrics {
    /// The provider `options` ask for, and the clock to advance per tick
    /// when queries run at simulated times.
    pub(super) fn new(
        options: &RunOptions,
        cluster: &MemoryCluster,
        scenario: &Arc<Scenario>,
        tick: &Arc<AtomicU64>,
    ) -> Result<(Self, Option<EvaluationTime>)> {
        let Some(source) = &options.prometheus else {
            return Ok((
                Self::Scripted(ScriptedMetrics {
                    scenario: scenario.clone(),
                    tick: tick.clone(),
                }),
                None,
            ));
        };
        let settings = PrometheusSettings {
            override_address: Some(source.url.clone()),
            timeout: source.timeout,
            ..Default::default()
        };
        let clock = EvaluationTime::new();
        let metrics = PrometheusMetrics::new(cluster.clone(), settings)
            .with_context(|| format!("Prometheus at {}", source.url))?
            .with_evaluation_time(clock.clone());
        Ok((
            Self::Prometheus(metrics),
            source.start.is_some().then_some(clock),
        ))
    }
}

impl MetricsProvider for SimMetrics {
    async fn value(
        &self,
        canary: &Canary,
        check: &MetricCheck,
        target: MetricTarget,
    ) -> Result<Option<f64>, sluice_rollout::BoxError> {
        match self {
            Self::Scripted(s) => s.value(canary, check, target).await,
            Self::Prometheus(p) => p.value(canary, check, target).await,
        }
    }

    async fn series(
        &self,
        canary: &Canary,
        check: &MetricCheck,
        target: MetricTarget,
        window: Duration,
        step: Duration,
    ) -> Result<Vec<f64>, sluice_rollout::BoxError> {
        match self {
            Self::Scripted(s) => s.series(canary, check, target, window, step).await,
            Self::Prometheus(p) => p.series(canary, check, target, window, step).await,
        }
    }
}
