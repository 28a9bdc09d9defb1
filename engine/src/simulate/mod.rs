//! `sluice simulate`: runs the real analysis engine against the in-memory
//! cluster, with metrics and webhooks scripted by a scenario, one tick per
//! analysis interval.

pub mod metrics;
pub mod output;
pub mod scenario;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapEnvSource, Container, ContainerPort, EnvFromSource, EnvVar, PodSpec,
    PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::ResourceExt;
use serde::Serialize;
use sluice_rollout::router::HttpRoute;

use metrics::SimMetrics;
pub use metrics::{PrometheusSource, RunOptions};
use scenario::{HookOutcome, Scenario};
use sluice_api::{Canary, CanaryPhase, MetricCheck, MetricTemplate, RolloutSettings, Webhook};
use sluice_host::PluginRegistry;
use sluice_rollout::analysis::checks::{MetricTarget, MetricsProvider, WebhookCaller};
use sluice_rollout::analysis::{Analyzer, TickOutcome, workload};
use sluice_rollout::cluster::Event;
use sluice_rollout::cluster::memory::MemoryCluster;
use sluice_rollout::metrics::EvaluationTime;
use sluice_rollout::notify::Alert;

/// When the simulated clock starts unless the scenario says otherwise
/// (`startTime`); fixed so runs are reproducible.
pub const START: &str = "2026-01-01T00:00:00Z";

/// One tick of a simulation, as `--output json` prints it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TickRecord {
    pub tick: u64,
    pub time: String,
    pub phase: Option<CanaryPhase>,
    pub canary_weight: u32,
    pub failed_checks: u32,
    pub iterations: u32,
    pub events: Vec<Event>,
    /// Alerts the tick raised (a cluster would send them to the Canary's
    /// alert providers).
    pub alerts: Vec<AlertRecord>,
    pub http_route: Option<HttpRoute>,
}

/// An alert, as the simulator reports it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AlertRecord {
    /// info, warn or error.
    pub severity: String,
    pub message: String,
}

/// The whole run.
#[derive(Debug, Clone)]
pub struct Simulation {
    pub canary: Canary,
    pub ticks: Vec<TickRecord>,
    /// Objects in the cluster at the end, "kind/namespace/name".
    pub inventory: Vec<String>,
}

impl Simulation {
    pub fn events(&self) -> impl Iterator<Item = (&TickRecord, &Event)> {
        self.ticks
            .iter()
            .flat_map(|t| t.events.iter().map(move |e| (t, e)))
    }

    pub fn messages(&self) -> Vec<String> {
        self.events().map(|(_, e)| e.message.clone()).collect()
    }

    pub fn final_tick(&self) -> Option<&TickRecord> {
        self.ticks.last()
    }
}

/// Scenario metric values, read at the current tick.
#[derive(Clone)]
struct ScriptedMetrics {
    scenario: Arc<Scenario>,
    tick: Arc<AtomicU64>,
}

impl ScriptedMetrics {
    /// The scenario's series of `name` for `target` at the current tick.
    fn scripted_series(&self, name: &str, target: MetricTarget) -> Option<&Vec<f64>> {
        let table = match target {
            MetricTarget::Canary => &self.scenario.series,
            MetricTarget::Primary => &self.scenario.primary_series,
        };
        let tick = self.tick.load(Ordering::SeqCst);
        table.get(name).and_then(|v| Scenario::at_ref(v, tick))
    }
}

impl MetricsProvider for ScriptedMetrics {
    async fn value(
        &self,
        _canary: &Canary,
        check: &MetricCheck,
        target: MetricTarget,
    ) -> Result<Option<f64>, sluice_rollout::BoxError> {
        let table = match target {
            MetricTarget::Canary => &self.scenario.metrics,
            MetricTarget::Primary => &self.scenario.primary_metrics,
        };
        let tick = self.tick.load(Ordering::SeqCst);
        match table.get(&check.name) {
            Some(values) => Ok(Scenario::at(values, tick).flatten()),
            // Only a series: an instant query at the window's end.
            None => Ok(self
                .scripted_series(&check.name, target)
                .and_then(|s| s.last().copied())),
        }
    }

    /// The scenario's list for this tick, whatever the window: the host
    /// keeps the newest samples the window holds.
    async fn series(
        &self,
        _canary: &Canary,
        check: &MetricCheck,
        target: MetricTarget,
        _window: Duration,
        _step: Duration,
    ) -> Result<Vec<f64>, sluice_rollout::BoxError> {
        Ok(self
            .scripted_series(&check.name, target)
            .cloned()
            .unwrap_or_default())
    }
}

/// Scenario webhook outcomes, read at the current tick.
#[derive(Clone)]
struct ScriptedWebhooks {
    scenario: Arc<Scenario>,
    tick: Arc<AtomicU64>,
}

impl WebhookCaller for ScriptedWebhooks {
    async fn call(
        &self,
        _canary: &Canary,
        hook: &Webhook,
        _phase: CanaryPhase,
    ) -> Result<(), sluice_rollout::BoxError> {
        let tick = self.tick.load(Ordering::SeqCst);
        match self
            .scenario
            .webhooks
            .get(&hook.name)
            .and_then(|v| Scenario::at(v, tick))
        {
            Some(HookOutcome::Fail) => Err(format!(
                "(simulated) POST {} returned 500 Internal Server Error",
                hook.url
            )
            .into()),
            _ => Ok(()),
        }
    }

    async fn send_event(
        &self,
        canary: &Canary,
        hook: &Webhook,
        _event: &Event,
        _at: Timestamp,
    ) -> Result<(), sluice_rollout::BoxError> {
        self.call(canary, hook, CanaryPhase::Progressing).await
    }
}

/// Builds the plugin registry a simulation runs with.
pub type RegistryFactory<'a> = dyn Fn() -> Result<PluginRegistry> + 'a;

/// The target Deployment the scenario starts with.
fn initial_deployment(canary: &Canary, scenario: &Scenario) -> Result<Deployment> {
    let namespace = canary.namespace().unwrap_or_else(|| "default".into());
    let target = canary.spec.target_ref.name.clone();
    if let Some(d) = &scenario.deployment {
        return scenario_deployment(d, &target, namespace);
    }
    let container = target_container(canary, scenario, &target)?;
    let replicas = scenario.replicas.unwrap_or(2);
    Ok(deployment(target, namespace, replicas, container))
}

/// The scenario's own Deployment, in the Canary's namespace; it must be
/// the one the Canary targets.
fn scenario_deployment(d: &Deployment, target: &str, namespace: String) -> Result<Deployment> {
    let mut d = d.clone();
    if d.name_any() != target {
        bail!(
            "scenario: deployment.metadata.name is {:?} but the Canary targets {target:?}",
            d.name_any()
        );
    }
    d.metadata.namespace = Some(namespace);
    Ok(d)
}

/// The target's one container: the scenario's initial image (else
/// `<target>:1.0.0`), the scenario's ConfigMaps as its environment, and
/// the port the service sends traffic to.
fn target_container(canary: &Canary, scenario: &Scenario, target: &str) -> Result<Container> {
    let name = scenario.container_name(target);
    let image = match &scenario.initial_image {
        Some(i) => scenario::parse_image(i)?.1,
        None => format!("{target}:1.0.0"),
    };
    Ok(Container {
        name,
        image: Some(image),
        env_from: config_map_env(scenario),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: target_port(canary),
            ..Default::default()
        }]),
        ..Default::default()
    })
}

/// One `envFrom` entry per scenario ConfigMap; none without ConfigMaps.
fn config_map_env(scenario: &Scenario) -> Option<Vec<EnvFromSource>> {
    (!scenario.config_maps.is_empty()).then(|| {
        scenario
            .config_maps
            .keys()
            .map(|name| EnvFromSource {
                config_map_ref: Some(ConfigMapEnvSource {
                    name: name.clone(),
                    optional: None,
                }),
                ..Default::default()
            })
            .collect()
    })
}

/// The port the pods listen on: the service's numeric `targetPort`, else
/// its `port`.
fn target_port(canary: &Canary) -> i32 {
    canary
        .spec
        .service
        .target_port
        .as_ref()
        .and_then(|p| match p {
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i) => Some(*i),
            _ => None,
        })
        .unwrap_or(canary.spec.service.port)
}

/// A Deployment of `replicas` pods running `container`, selected by the
/// label `app: <name>`.
fn deployment(name: String, namespace: String, replicas: i32, container: Container) -> Deployment {
    let labels = BTreeMap::from([("app".to_string(), name.clone())]);
    Deployment {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(namespace),
            labels: Some(labels.clone()),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

fn autoscaler(canary: &Canary) -> Option<HorizontalPodAutoscaler> {
    let r = canary.spec.autoscaler_ref.as_ref()?;
    Some(HorizontalPodAutoscaler {
        metadata: ObjectMeta {
            name: Some(r.name.clone()),
            namespace: canary.namespace(),
            ..Default::default()
        },
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: canary.spec.target_ref.name.clone(),
            },
            min_replicas: Some(2),
            max_replicas: 4,
            ..Default::default()
        }),
        status: None,
    })
}

fn config_map(namespace: &str, name: &str, data: &BTreeMap<String, String>) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            ..Default::default()
        },
        data: Some(data.clone()),
        ..Default::default()
    }
}

/// Applies a scenario change to the target, as a user's `kubectl` would.
fn apply_change(
    cluster: &MemoryCluster,
    canary: &Canary,
    change: &scenario::Change,
    index: usize,
) -> Result<()> {
    let namespace = canary.namespace().unwrap_or_else(|| "default".into());
    match change.route_accepted {
        Some(true) => cluster.set_route_rejection(None),
        Some(false) => cluster.set_route_rejection(Some((
            "NotAllowedByListeners".into(),
            format!("no listener of the Gateway allows routes from namespace {namespace}"),
        ))),
        None => {}
    }
    for (name, data) in &change.config_maps {
        cluster.put_config_map(config_map(&namespace, name, data))?;
    }
    if change.image.is_none() && change.env.is_empty() {
        return Ok(());
    }
    let target = &canary.spec.target_ref.name;
    let mut d = cluster
        .get_deployment(&namespace, target)
        .with_context(|| {
            format!("scenario: changes[{index}]: deployment {target} does not exist")
        })?;
    let pod = d
        .spec
        .as_mut()
        .and_then(|s| s.template.spec.as_mut())
        .with_context(|| {
            format!("scenario: changes[{index}]: deployment {target} has no pod spec")
        })?;
    if let Some(img) = &change.image {
        let (name, image) = scenario::parse_image(img)?;
        let names: Vec<String> = pod.containers.iter().map(|c| c.name.clone()).collect();
        let container = pod.containers.iter_mut().find(|c| c.name == name).with_context(|| {
            format!(
                "scenario: changes[{index}].image: no container named {name:?} in deployment {target} (containers: {})",
                names.join(", ")
            )
        })?;
        container.image = Some(image);
    }
    for c in pod.containers.iter_mut() {
        let env = c.env.get_or_insert_with(Vec::new);
        for (k, v) in &change.env {
            env.retain(|e| &e.name != k);
            env.push(EnvVar {
                name: k.clone(),
                value: Some(v.clone()),
                value_from: None,
            });
        }
    }
    Ok(cluster.put_deployment(d)?)
}

/// Runs `scenario` for `canary`. `registry` builds the plugins; it is called
/// again when the scenario restarts the engine.
pub async fn run(
    canary: Canary,
    templates: Vec<MetricTemplate>,
    scenario: Scenario,
    registry: &RegistryFactory<'_>,
) -> Result<Simulation> {
    run_with(
        canary,
        templates,
        scenario,
        registry,
        &RunOptions::default(),
    )
    .await
}

/// [`run`], with metrics from a real Prometheus when `options` say so.
pub async fn run_with(
    canary: Canary,
    templates: Vec<MetricTemplate>,
    scenario: Scenario,
    registry: &RegistryFactory<'_>,
    options: &RunOptions,
) -> Result<Simulation> {
    let settings = canary.settings().map_err(anyhow::Error::from)?;
    let mut run = Run::start(canary, templates, scenario, registry, options, &settings)?;
    let last_change = run
        .scenario
        .changes
        .iter()
        .map(|c| c.tick)
        .max()
        .unwrap_or(0);
    let mut records = Vec::new();
    for tick in 1..=u64::from(run.scenario.ticks) {
        let record = run.tick(tick).await?;
        let at_rest = matches!(
            record.phase,
            Some(CanaryPhase::Initialized | CanaryPhase::Succeeded | CanaryPhase::Failed)
        );
        records.push(record);
        if at_rest && tick >= u64::from(last_change) {
            break;
        }
    }
    run.finish(records)
}

/// The engine a simulation runs: one analyzer over the simulated cluster.
type SimAnalyzer = Analyzer<MemoryCluster, SimMetrics, ScriptedWebhooks>;

/// Builds the analyzer, at the start and again when the scenario restarts
/// the engine.
struct Engine<'a> {
    cluster: MemoryCluster,
    metrics: SimMetrics,
    webhooks: ScriptedWebhooks,
    registry: &'a RegistryFactory<'a>,
}

impl Engine<'_> {
    /// A new analyzer, with plugins freshly built by the registry factory.
    fn start(&self) -> Result<SimAnalyzer> {
        let plugins = (self.registry)()?;
        Ok(Analyzer::new(
            self.cluster.clone(),
            self.metrics.clone(),
            self.webhooks.clone(),
            plugins,
        ))
    }
}

/// The simulated time of each tick.
struct Clock {
    start: Timestamp,
    /// The analysis interval: one tick's length.
    interval: SignedDuration,
    /// With a real Prometheus and a start time for it: the evaluation time
    /// to move along with the ticks, and its value at the first tick.
    prometheus: Option<(EvaluationTime, Timestamp)>,
}

impl Clock {
    /// Starts at the scenario's `startTime` (else [`START`]) and steps by
    /// the analysis interval.
    fn new(
        scenario: &Scenario,
        settings: &RolloutSettings,
        options: &RunOptions,
        prometheus_clock: Option<EvaluationTime>,
    ) -> Result<Self> {
        let start: Timestamp = match scenario.start_time {
            Some(t) => t,
            None => START.parse().context("simulation start time")?,
        };
        let interval = SignedDuration::try_from(settings.interval).context("analysis interval")?;
        let prometheus_start = options.prometheus.as_ref().and_then(|p| p.start);
        Ok(Self {
            start,
            interval,
            prometheus: prometheus_clock.zip(prometheus_start),
        })
    }

    /// The time of `tick` (the first is 1); moves Prometheus's evaluation
    /// time to the same tick.
    fn at(&self, tick: u64) -> Result<Timestamp> {
        let now = self
            .start
            .checked_add(self.interval * (tick as i32 - 1))
            .context("simulated time out of range")?;
        if let Some((clock, first)) = &self.prometheus {
            let at = first
                .checked_add(self.interval * (tick as i32 - 1))
                .context("Prometheus evaluation time out of range")?;
            clock.set(Some(at));
        }
        Ok(now)
    }
}

/// A simulation under way.
struct Run<'a> {
    scenario: Arc<Scenario>,
    cluster: MemoryCluster,
    /// The Canary as the cluster first stored it.
    canary: Canary,
    namespace: String,
    /// The tick scripted metrics and webhooks read their values at.
    tick_no: Arc<AtomicU64>,
    engine: Engine<'a>,
    analyzer: SimAnalyzer,
    clock: Clock,
}

impl<'a> Run<'a> {
    /// Sets up the cluster the scenario starts with, the metrics, the
    /// engine and the clock.
    fn start(
        canary: Canary,
        templates: Vec<MetricTemplate>,
        scenario: Scenario,
        registry: &'a RegistryFactory<'a>,
        options: &RunOptions,
        settings: &RolloutSettings,
    ) -> Result<Self> {
        let namespace = canary.namespace().unwrap_or_else(|| "default".into());
        let scenario = Arc::new(scenario);
        let cluster = MemoryCluster::new();
        let canary = seed_cluster(&cluster, canary, templates, &scenario, &namespace)?;
        let tick_no = Arc::new(AtomicU64::new(0));
        let (metrics, prometheus_clock) = SimMetrics::new(options, &cluster, &scenario, &tick_no)?;
        let engine = Engine {
            cluster: cluster.clone(),
            metrics,
            webhooks: ScriptedWebhooks {
                scenario: scenario.clone(),
                tick: tick_no.clone(),
            },
            registry,
        };
        let analyzer = engine.start()?;
        let clock = Clock::new(&scenario, settings, options, prometheus_clock)?;
        Ok(Self {
            scenario,
            cluster,
            canary,
            namespace,
            tick_no,
            engine,
            analyzer,
            clock,
        })
    }

    /// Runs tick `tick`: the scenario's changes, then one reconcile at the
    /// tick's simulated time.
    async fn tick(&mut self, tick: u64) -> Result<TickRecord> {
        self.tick_no.store(tick, Ordering::SeqCst);
        if tick > 1 {
            self.cluster.advance_tick();
        }
        self.apply_changes(tick)?;
        let now = self.clock.at(tick)?;
        let current = self
            .cluster
            .canary(&self.namespace, &self.canary.name_any())
            .context("canary vanished")?;
        let outcome = self.analyzer.reconcile(&current, now).await?;
        let route = self
            .cluster
            .route(&self.namespace, &workload::apex_name(&current));
        Ok(tick_record(tick, now, outcome, route))
    }

    /// Applies the scenario's changes for `tick`; a change that restarts
    /// the engine gets a new analyzer.
    fn apply_changes(&mut self, tick: u64) -> Result<()> {
        for (i, change) in self
            .scenario
            .changes
            .iter()
            .enumerate()
            .filter(|(_, c)| u64::from(c.tick) == tick)
        {
            apply_change(&self.cluster, &self.canary, change, i)?;
            if change.restart_engine {
                self.analyzer = self.engine.start()?;
            }
        }
        Ok(())
    }

    /// The whole run: the Canary as it ended, the ticks, and what the
    /// cluster holds.
    fn finish(self, ticks: Vec<TickRecord>) -> Result<Simulation> {
        let canary = self
            .cluster
            .canary(&self.namespace, &self.canary.name_any())
            .context("canary vanished")?;
        Ok(Simulation {
            canary,
            ticks,
            inventory: self.cluster.inventory(),
        })
    }
}

/// Puts what the scenario starts with into `cluster`: its ConfigMaps, the
/// target and its autoscaler, the MetricTemplates and how long the
/// workloads take to get ready; then the Canary, returned as stored.
fn seed_cluster(
    cluster: &MemoryCluster,
    canary: Canary,
    templates: Vec<MetricTemplate>,
    scenario: &Scenario,
    namespace: &str,
) -> Result<Canary> {
    for (name, data) in &scenario.config_maps {
        cluster.put_config_map(config_map(namespace, name, data))?;
    }
    cluster.put_deployment(initial_deployment(&canary, scenario)?)?;
    if let Some(hpa) = autoscaler(&canary) {
        cluster.put_autoscaler(hpa)?;
    }
    for t in templates {
        cluster.put_metric_template(t)?;
    }
    let target = &canary.spec.target_ref.name;
    cluster.set_ready_after(namespace, target, scenario.canary_ready_after);
    cluster.set_ready_after(
        namespace,
        &workload::primary_name(target),
        scenario.primary_ready_after,
    );
    Ok(cluster.put_canary(canary)?)
}

/// What tick `tick` did, at `now`, as `--output json` prints it.
fn tick_record(
    tick: u64,
    now: Timestamp,
    outcome: TickOutcome,
    http_route: Option<HttpRoute>,
) -> TickRecord {
    TickRecord {
        tick,
        time: now.to_string(),
        phase: outcome.status.phase,
        canary_weight: outcome.status.canary_weight,
        failed_checks: outcome.status.failed_checks,
        iterations: outcome.status.iterations,
        events: outcome.events,
        alerts: outcome.alerts.iter().map(alert_record).collect(),
        http_route,
    }
}

/// An alert the engine raised, as the simulator reports it.
fn alert_record(a: &Alert) -> AlertRecord {
    AlertRecord {
        severity: format!("{:?}", a.severity).to_lowercase(),
        message: a.message.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str) -> MetricCheck {
        let canary = sluice_api::load::canary_from_yaml(&format!(
            "apiVersion: sluice.dev/v1beta1\nkind: Canary\nmetadata: {{name: podinfo, namespace: test}}\nspec:\n  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: podinfo}}\n  service: {{port: 9898, gatewayRefs: [{{name: gateway}}]}}\n  analysis:\n    stepWeight: 10\n    metrics:\n      - {{name: {name}, query: up, evaluator: custom}}\n"
        ))
        .unwrap();
        canary.settings().unwrap().metrics.remove(0)
    }

    #[tokio::test]
    async fn scripted_series_and_their_instant_values() {
        let scenario = Scenario::from_yaml(
            "ticks: 5\nmetrics:\n  listed: [7]\nseries:\n  listed: [[1, 2]]\n  latency:\n    - [1, 2, 3]\n    - []\nprimarySeries:\n  latency: [[4, 5]]\n",
        )
        .unwrap();
        let canary = sluice_api::load::canary_from_yaml(crate::cli::DEFAULT_CANARY).unwrap();
        let tick = Arc::new(AtomicU64::new(1));
        let m = ScriptedMetrics {
            scenario: Arc::new(scenario),
            tick: tick.clone(),
        };
        let (latency, listed, none) = (check("latency"), check("listed"), check("none"));
        let series = async |c: &MetricCheck, t| {
            let minute = Duration::from_secs(60);
            m.series(&canary, c, t, minute * 10, minute).await.unwrap()
        };
        assert_eq!(
            series(&latency, MetricTarget::Canary).await,
            vec![1.0, 2.0, 3.0]
        );
        assert_eq!(
            series(&latency, MetricTarget::Primary).await,
            vec![4.0, 5.0]
        );
        assert_eq!(series(&none, MetricTarget::Canary).await, Vec::<f64>::new());
        // Not in `metrics`: the newest sample of the series.
        assert_eq!(
            m.value(&canary, &latency, MetricTarget::Canary)
                .await
                .unwrap(),
            Some(3.0)
        );
        assert_eq!(
            m.value(&canary, &latency, MetricTarget::Primary)
                .await
                .unwrap(),
            Some(5.0)
        );
        // `metrics` wins over the series.
        assert_eq!(
            m.value(&canary, &listed, MetricTarget::Canary)
                .await
                .unwrap(),
            Some(7.0)
        );
        // Tick 2: an empty window, so no instant value either.
        tick.store(2, Ordering::SeqCst);
        assert_eq!(
            series(&latency, MetricTarget::Canary).await,
            Vec::<f64>::new()
        );
        assert_eq!(
            m.value(&canary, &latency, MetricTarget::Canary)
                .await
                .unwrap(),
            None
        );
    }
}
