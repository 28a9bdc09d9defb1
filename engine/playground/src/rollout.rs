//! Sluice's engine driving a Canary in real time on the in-memory
//! cluster, its routes served by the playground's Envoy, its metrics read
//! from the playground's Prometheus (`PrometheusMetrics`, queries at
//! Prometheus's now) and its webhooks called over HTTP (`HttpWebhooks`).
//!
//! [`Rollout::step`] is one analysis interval: a tick of the engine at the
//! wall clock's time, the route it left applied to Envoy, then the
//! interval's real requests tallied under that route.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use sluice_api::{Canary, CanaryStatus, MetricCheck, MetricTemplate};
use sluice_host::PluginRegistry;
use sluice_rollout::BoxError;
use sluice_rollout::analysis::Analyzer;
use sluice_rollout::analysis::checks::{MetricTarget, MetricsProvider};
use sluice_rollout::cluster::Event;
use sluice_rollout::cluster::memory::MemoryCluster;
use sluice_rollout::metrics::{PrometheusMetrics, PrometheusSettings};
use sluice_rollout::router::HttpRoute;
use sluice_rollout::webhooks::HttpWebhooks;

use crate::PlaygroundError;
use crate::envoy::Envoy;
use crate::load::{Load, Tally};
use crate::loadtester::LoadTester;

/// A metric value the engine judged in a tick.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricValue {
    /// The check's name, e.g. `request-success-rate`.
    pub name: String,
    /// Whether it was the canary's value or the primary's (a baseline).
    pub target: MetricTarget,
    /// `None`: the query selected nothing (Flagger's "no values found").
    pub value: Option<f64>,
}

/// A [`MetricsProvider`] that remembers what it answered.
#[derive(Clone)]
pub struct Recorder<M> {
    inner: M,
    seen: Arc<Mutex<Vec<MetricValue>>>,
}

impl<M> Recorder<M> {
    pub fn new(inner: M) -> Self {
        Self {
            inner,
            seen: Arc::default(),
        }
    }

    /// The values answered since the last `take`.
    pub fn take(&self) -> Vec<MetricValue> {
        std::mem::take(&mut *self.seen.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl<M: MetricsProvider> MetricsProvider for Recorder<M> {
    async fn value(
        &self,
        canary: &Canary,
        check: &MetricCheck,
        target: MetricTarget,
    ) -> Result<Option<f64>, BoxError> {
        let v = self.inner.value(canary, check, target).await;
        if let Ok(value) = &v {
            self.seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(MetricValue {
                    name: check.name.clone(),
                    target,
                    value: *value,
                });
        }
        v
    }

    async fn series(
        &self,
        canary: &Canary,
        check: &MetricCheck,
        target: MetricTarget,
        window: Duration,
        step: Duration,
    ) -> Result<Vec<f64>, BoxError> {
        self.inner.series(canary, check, target, window, step).await
    }
}

/// Where a rollout's requests come from: what they got since last asked.
pub trait Traffic {
    fn take(&self) -> Tally;
}

impl Traffic for Load {
    fn take(&self) -> Tally {
        Load::take(self)
    }
}

impl Traffic for LoadTester {
    fn take(&self) -> Tally {
        LoadTester::take(self)
    }
}

/// One analysis interval of a rollout.
#[derive(Debug, Clone)]
pub struct TickReport {
    /// 1 for the first tick.
    pub tick: usize,
    /// The Canary's status after the tick.
    pub status: CanaryStatus,
    /// The tick's events (its decisions, with their reasons).
    pub events: Vec<Event>,
    /// The metric values the tick judged (they cover the interval before it).
    pub metrics: Vec<MetricValue>,
    /// The route the tick left, which Envoy then served.
    pub route: HttpRoute,
    /// The percentage of the route's catch-all rule that goes to the
    /// canary Service.
    pub route_canary_percent: f64,
    /// The requests sent and answered during the interval after the tick,
    /// under that route.
    pub served: Tally,
}

impl TickReport {
    /// One line: the phase, the metric values judged, the decisions with
    /// their reasons, the route's canary weight and what each backend
    /// served under it.
    pub fn summary(&self) -> String {
        let phase = self
            .status
            .phase
            .map_or_else(|| "-".to_string(), |p| p.as_str().to_string());
        let mut line = format!("tick {:>2}  {phase:<16}", self.tick);
        let metrics: Vec<String> = self
            .metrics
            .iter()
            .filter(|m| m.target == MetricTarget::Canary)
            .map(|m| match m.value {
                Some(v) => format!("{} {v:.2}", m.name),
                None => format!("{} (no data)", m.name),
            })
            .collect();
        if !metrics.is_empty() {
            line.push_str(&format!(" | {}", metrics.join(", ")));
        }
        let events: Vec<&str> = self.events.iter().map(|e| e.message.as_str()).collect();
        if !events.is_empty() {
            line.push_str(&format!(" | {}", events.join("; ")));
        }
        line.push_str(&format!(
            " | route: canary {:.0}%",
            self.route_canary_percent
        ));
        let total: usize = self.served.by_backend.values().sum();
        if total > 0 {
            let shares: Vec<String> = self
                .served
                .by_backend
                .keys()
                .map(|b| format!("{b} {:.1}%", self.served.share(b)))
                .collect();
            line.push_str(&format!(
                " | served: {} of {total} requests",
                shares.join(", ")
            ));
            let errors = self.served.total() - self.served.with_status(200);
            if errors > 0 {
                line.push_str(&format!(" ({errors} not 200)"));
            }
        }
        line
    }
}

type Engine = Analyzer<MemoryCluster, Recorder<PrometheusMetrics<MemoryCluster>>, HttpWebhooks>;

/// A Canary on the in-memory cluster, rolled out by Sluice's engine.
pub struct Rollout {
    pub cluster: MemoryCluster,
    analyzer: Engine,
    metrics: Recorder<PrometheusMetrics<MemoryCluster>>,
    namespace: String,
    name: String,
    target: String,
    canary_service: String,
    ticks: usize,
    revision: u32,
}

impl Rollout {
    /// The Canary of `canary_yaml` (without its autoscaler: the in-memory
    /// cluster has none) with its target Deployment (one replica of
    /// `podinfo:1`) and `templates`, metrics from Prometheus at
    /// `prometheus_url` (for built-in metrics and templates without an
    /// address).
    pub fn new(
        canary_yaml: &str,
        templates: &[MetricTemplate],
        prometheus_url: &str,
        plugins: PluginRegistry,
    ) -> Result<Rollout, PlaygroundError> {
        let mut canary: Canary = sluice_api::load::canary_from_yaml(canary_yaml)
            .map_err(|e| PlaygroundError::Canary(e.to_string()))?;
        canary.spec.autoscaler_ref = None;
        let namespace = canary
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = canary.metadata.name.clone().unwrap_or_default();
        let target = canary.spec.target_ref.name.clone();
        let cluster = MemoryCluster::new();
        cluster
            .put_deployment(deployment(&namespace, &target, 1)?)
            .map_err(|e| PlaygroundError::Cluster(e.to_string()))?;
        for t in templates {
            cluster
                .put_metric_template(t.clone())
                .map_err(|e| PlaygroundError::Cluster(e.to_string()))?;
        }
        cluster
            .put_canary(canary)
            .map_err(|e| PlaygroundError::Cluster(e.to_string()))?;
        let settings = PrometheusSettings {
            default_address: Some(prometheus_url.to_string()),
            ..PrometheusSettings::default()
        };
        // No evaluation time: every query runs at Prometheus's now.
        let prometheus = PrometheusMetrics::new(cluster.clone(), settings)
            .map_err(|e| PlaygroundError::Metrics(e.to_string()))?;
        let metrics = Recorder::new(prometheus);
        let webhooks = HttpWebhooks::new()
            .map_err(|e| PlaygroundError::Webhooks(e.to_string()))?
            .with_backoff(Duration::from_millis(100));
        let analyzer = Analyzer::new(cluster.clone(), metrics.clone(), webhooks, plugins);
        Ok(Rollout {
            cluster,
            analyzer,
            metrics,
            canary_service: format!("{target}-canary"),
            namespace,
            name,
            target,
            ticks: 0,
            revision: 1,
        })
    }

    /// A new image for the target Deployment (`podinfo:2`, `podinfo:3`,
    /// …): a new revision to roll out.
    pub fn new_revision(&mut self) -> Result<(), PlaygroundError> {
        self.revision += 1;
        let d = deployment(&self.namespace, &self.target, self.revision)?;
        self.cluster
            .put_deployment(d)
            .map_err(|e| PlaygroundError::Cluster(e.to_string()))
    }

    /// The Canary as stored.
    pub fn canary(&self) -> Result<Canary, PlaygroundError> {
        self.cluster
            .canary(&self.namespace, &self.name)
            .ok_or_else(|| PlaygroundError::Cluster("the Canary is gone".into()))
    }

    /// One tick of the engine at the wall clock's time; the route it left
    /// is applied to Envoy before this returns.
    pub async fn tick(&mut self, envoy: &mut Envoy) -> Result<TickReport, PlaygroundError> {
        let canary = self.canary()?;
        self.metrics.take();
        let out = self
            .analyzer
            .reconcile(&canary, jiff::Timestamp::now())
            .await
            .map_err(|e| PlaygroundError::Tick(sluice_rollout::chain(&e)))?;
        self.cluster.advance_tick();
        self.ticks += 1;
        let route = self
            .cluster
            .route(&self.namespace, &self.name)
            .ok_or_else(|| PlaygroundError::Cluster("Sluice wrote no HTTPRoute".into()))?;
        envoy.apply(&route).await?;
        Ok(TickReport {
            tick: self.ticks,
            status: out.status,
            events: out.events,
            metrics: self.metrics.take(),
            route_canary_percent: route_percent(&route, &self.canary_service),
            route,
            served: Tally::default(),
        })
    }

    /// One analysis interval: [`tick`](Self::tick), then `interval` of
    /// `traffic` under the route it left (requests sent before Envoy served
    /// it are left out).
    pub async fn step(
        &mut self,
        envoy: &mut Envoy,
        traffic: &dyn Traffic,
        interval: Duration,
    ) -> Result<TickReport, PlaygroundError> {
        let mut report = self.tick(envoy).await?;
        traffic.take();
        tokio::time::sleep(interval).await;
        report.served = traffic.take();
        Ok(report)
    }
}

/// The target Deployment at revision `n` (image `podinfo:<n>`).
fn deployment(namespace: &str, name: &str, n: u32) -> Result<Deployment, PlaygroundError> {
    let yaml = format!(
        "metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec: {{containers: [{{name: podinfod, image: 'podinfo:{n}'}}]}}\n"
    );
    yaml_serde::from_str(&yaml).map_err(|e| PlaygroundError::Cluster(e.to_string()))
}

/// The percentage the route's last rule (the one without the Canary's
/// conditions) gives `service`, out of the rule's total weight.
pub fn route_percent(route: &HttpRoute, service: &str) -> f64 {
    let Some(rule) = route.spec.rules.as_ref().and_then(|r| r.last()) else {
        return 0.0;
    };
    let backends = rule.backend_refs.as_deref().unwrap_or_default();
    let total: i32 = backends.iter().map(|b| b.weight.unwrap_or(1)).sum();
    let mine: i32 = backends
        .iter()
        .filter(|b| b.name == service)
        .map(|b| b.weight.unwrap_or(1))
        .sum();
    if total == 0 {
        return 0.0;
    }
    100.0 * f64::from(mine) / f64::from(total)
}
