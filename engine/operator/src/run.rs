//! `sluice run`: wires the engine to a real cluster. kube-rs' `Controller`
//! reconciles Canaries concurrently (a slow Canary never blocks another),
//! wakes a Canary when its target Deployment, a ConfigMap or Secret of its
//! namespace, or a MetricTemplate changes, and handles the finalizer.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use sluice_rollout::BoxError;
use tokio::sync::watch;

use super::leader;
use super::reconcile::{
    Cleanup, Context, failure_reason, finalize, key, not_due, report_failure, run_tick,
};
use super::server::{self, ApiHealth, Endpoints};
use super::telemetry::{Counted, Telemetry};
use crate::kube_cluster::KubeCluster;
use sluice_api::{AlertProvider, Canary, MetricTemplate, RolloutPlugin};
use sluice_host::{ArtifactCache, Limits, PluginHost, PluginRegistry};
use sluice_rollout::analysis::{Analyzer, TickError};
use sluice_rollout::metrics::{PrometheusMetrics, PrometheusSettings};
use sluice_rollout::notify::{AlertProviderSource, Notifier, ProviderKind, ResolvedProvider};
use sluice_rollout::registration::{Fetcher, Registrar};
use sluice_rollout::webhooks::HttpWebhooks;

/// The finalizer Sluice puts on every Canary.
const FINALIZER: &str = "sluice.dev/finalizer";

/// How long to wait before retrying a Canary whose reconcile failed, at
/// most (a Canary whose analysis interval is shorter retries after one
/// interval).
const RETRY: Duration = Duration::from_secs(10);
/// How soon a reconcile that lost a write race (409) runs again.
const CONFLICT_RETRY: Duration = Duration::from_millis(200);

#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Watch one namespace only (default: all).
    #[arg(long, env = "SLUICE_NAMESPACE")]
    namespace: Option<String>,
    /// Prometheus for built-in metrics and templates without an address
    /// (Flagger's -metrics-server).
    #[arg(
        long,
        env = "SLUICE_PROMETHEUS",
        default_value = "http://prometheus:9090"
    )]
    prometheus: String,
    /// Where /healthz, /readyz and /metrics are served.
    #[arg(long, env = "SLUICE_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Elect a leader with a Lease, so that only one replica acts.
    #[arg(long, env = "SLUICE_LEADER_ELECTION", default_value_t = false)]
    pub leader_election: bool,
    /// Namespace of the leader election Lease (default: the pod's).
    #[arg(long, env = "POD_NAMESPACE", default_value = "sluice-system")]
    lease_namespace: String,
    #[arg(long, default_value = "sluice-leader")]
    lease_name: String,
    /// How long a standby waits after the Lease last changed before taking
    /// it over.
    #[arg(long, default_value_t = 15)]
    lease_duration_seconds: u64,
    /// How long the leader retries a failed renew before it stops every
    /// controller and exits (shorter than the lease duration).
    #[arg(long, default_value_t = 10)]
    renew_deadline_seconds: u64,
    /// How often the Lease is tried or renewed.
    #[arg(long, default_value_t = 2)]
    retry_period_seconds: u64,
    /// `/readyz` turns 503 once the Kubernetes API has failed the
    /// operator's probe (a list of Canaries, every second) for this long.
    #[arg(long, default_value_t = 30)]
    unready_after_seconds: u64,
    /// This replica's identity in the Lease (default: the host name).
    #[arg(long, env = "POD_NAME")]
    holder_id: Option<String>,
    /// How long one Kubernetes API call may wait for its answer before it
    /// fails (watches are bounded by the watcher instead): an API server
    /// that hangs fails the tick, which is retried, rather than wedging it.
    #[arg(long, env = "SLUICE_API_TIMEOUT_SECONDS", default_value_t = 30)]
    api_timeout_seconds: u64,
    /// Time budget of one plugin call, in milliseconds.
    #[arg(long, env = "SLUICE_PLUGIN_TIMEOUT_MS", default_value_t = 100)]
    plugin_timeout_ms: u64,
    /// Memory cap of one plugin call, in MiB.
    #[arg(long, env = "SLUICE_PLUGIN_MEMORY_MIB", default_value_t = 64)]
    plugin_memory_mib: usize,
    /// Plugin calls of rollouts the decision journal keeps (the newest,
    /// across Canaries; 0 turns it off), served on `/journal` for
    /// `sluice journal export`.
    #[arg(long, env = "SLUICE_JOURNAL_CALLS", default_value_t = 10_000)]
    journal_calls: usize,
    /// Where compiled plugins are cached.
    #[arg(long, env = "SLUICE_PLUGIN_CACHE")]
    pub plugin_cache: Option<PathBuf>,
    /// OCI registries (host:port) that RolloutPlugins may pull from over
    /// plain HTTP, e.g. a registry inside the cluster.
    #[arg(
        long = "insecure-registry",
        env = "SLUICE_INSECURE_REGISTRIES",
        value_delimiter = ','
    )]
    insecure_registries: Vec<String>,
    /// Operator-wide alert destination for Canaries without
    /// `analysis.alerts`: slack, msteams, discord or generic.
    #[arg(long, env = "SLUICE_ALERT_PROVIDER", requires = "alert_url")]
    alert_provider: Option<String>,
    /// Its webhook URL.
    #[arg(long, env = "SLUICE_ALERT_URL")]
    alert_url: Option<String>,
    #[arg(long, env = "SLUICE_ALERT_CHANNEL", default_value = "")]
    alert_channel: String,
    #[arg(long, env = "SLUICE_ALERT_USERNAME", default_value = "sluice")]
    alert_username: String,
}

/// AlertProviders read from the cluster.
impl AlertProviderSource for KubeCluster {
    async fn alert_provider(
        &self,
        namespace: &str,
        name: &str,
    ) -> sluice_rollout::cluster::Result<Option<AlertProvider>> {
        KubeCluster::alert_provider(self, namespace, name).await
    }
}

/// Why `sluice run` could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("connecting to Kubernetes (in-cluster config or KUBECONFIG)")]
    Connect(#[source] kube::Error),
    /// A part of the engine could not be set up.
    #[error("{what}")]
    Setup {
        what: &'static str,
        #[source]
        source: BoxError,
    },
    /// A command-line setting is refused; the message names the flag.
    #[error("{0}")]
    Flag(String),
    #[error("the leader election stopped")]
    ElectionStopped,
    #[error("lost the leader election lease")]
    LostLease,
}

type Result<T, E = RunError> = std::result::Result<T, E>;

/// `Setup { what, source }` for `?` on a start-up step.
fn setup(what: &'static str) -> impl FnOnce(BoxError) -> RunError {
    move |source| RunError::Setup { what, source }
}

/// The Notifier of the operator, with its default destination if any.
fn notifier(args: &RunArgs, cluster: KubeCluster) -> Result<Notifier<KubeCluster, KubeCluster>> {
    let mut notifier = Notifier::new(cluster.clone(), cluster)
        .map_err(|e| setup("configuring alerts")(e.into()))?;
    if let (Some(kind), Some(url)) = (&args.alert_provider, &args.alert_url) {
        let kind = ProviderKind::parse(kind).ok_or_else(|| {
            RunError::Flag(format!(
                "--alert-provider {kind:?}: use slack, msteams, discord or generic"
            ))
        })?;
        notifier = notifier.with_default_provider(ResolvedProvider {
            kind,
            url: url.clone(),
            token: None,
            channel: args.alert_channel.clone(),
            username: args.alert_username.clone(),
            proxy: None,
        });
    }
    Ok(notifier)
}

type PluginContext = Registrar<KubeCluster>;

/// The finalizer Sluice puts on RolloutPlugins, to unregister them.
const PLUGIN_FINALIZER: &str = "sluice.dev/plugin-finalizer";

async fn reconcile_plugin(
    plugin: Arc<RolloutPlugin>,
    registrar: Arc<PluginContext>,
) -> Result<Action, ReconcileError> {
    let api: Api<RolloutPlugin> = Api::all(registrar.cluster.client().clone());
    finalizer(&api, PLUGIN_FINALIZER, plugin, |event| async {
        match event {
            FinalizerEvent::Apply(plugin) => {
                let status = registrar
                    .reconcile(&plugin)
                    .await
                    .map_err(|e| ReconcileError::Tick(e.into()))?;
                // A refused remote plugin may be fixed upstream: look again.
                Ok(if status.error.is_some() {
                    Action::requeue(Duration::from_secs(300))
                } else if status.shadow.is_some() {
                    // Its progress (and its takeover) shows in the status.
                    Action::requeue(Duration::from_secs(30))
                } else {
                    Action::await_change()
                })
            }
            FinalizerEvent::Cleanup(plugin) => {
                registrar.remove(&plugin);
                Ok(Action::await_change())
            }
        }
    })
    .await
    .map_err(|e| ReconcileError::Finalizer(Box::new(e)))
}

fn plugin_error_policy(
    plugin: Arc<RolloutPlugin>,
    error: &ReconcileError,
    _: Arc<PluginContext>,
) -> Action {
    tracing::warn!(plugin = %plugin.name_any(), %error, "plugin reconcile failed");
    Action::requeue(RETRY)
}

type KubeContext =
    Context<KubeCluster, Counted<PrometheusMetrics<KubeCluster>>, Counted<HttpWebhooks>>;

/// Errors a reconcile reports to kube-rs (which retries via `error_policy`).
#[derive(Debug, thiserror::Error)]
enum ReconcileError {
    #[error("{}", sluice_rollout::cluster::chain(.0))]
    Tick(TickError),
    #[error("{0}")]
    Waiting(String),
    #[error("finalizer: {0}")]
    Finalizer(Box<kube::runtime::finalizer::Error<ReconcileError>>),
}

impl ReconcileError {
    /// The `kind` label of `sluice_reconcile_errors_total`.
    fn kind(&self) -> &'static str {
        use sluice_rollout::cluster::ClusterError;
        match self {
            Self::Tick(TickError::Cluster(e)) => match e {
                ClusterError::Conflict { .. } => "conflict",
                ClusterError::NotLeader { .. } => "not_leader",
                ClusterError::NotFound { .. } => "not_found",
                ClusterError::Invalid { .. } => "invalid",
                ClusterError::Api { source, .. } if timed_out(source.as_ref()) => "timeout",
                ClusterError::Api { .. } => "api",
            },
            Self::Tick(TickError::Workload(_)) => "workload",
            Self::Tick(TickError::Missing(_)) => "missing",
            Self::Waiting(_) => "waiting",
            Self::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.kind(),
                _ if self.is_conflict() => "conflict",
                _ => "finalizer",
            },
        }
    }

    /// Whether the reconcile lost a write race (HTTP 409) and can be redone
    /// at once on a fresh read.
    fn is_conflict(&self) -> bool {
        match self {
            Self::Tick(e) => e.is_conflict(),
            Self::Waiting(_) => false,
            Self::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.is_conflict(),
                kube::runtime::finalizer::Error::AddFinalizer(kube::Error::Api(s))
                | kube::runtime::finalizer::Error::RemoveFinalizer(kube::Error::Api(s)) => {
                    s.code == 409
                }
                _ => false,
            },
        }
    }
}

/// Whether an API call failed because it got no answer within the
/// client's timeout (`client`).
fn timed_out(source: &(dyn std::error::Error + 'static)) -> bool {
    match source.downcast_ref::<kube::Error>() {
        Some(kube::Error::Service(e)) => e.is::<tower::timeout::error::Elapsed>(),
        _ => false,
    }
}

async fn reconcile(canary: Arc<Canary>, ctx: Arc<KubeContext>) -> Result<Action, ReconcileError> {
    let namespace = canary.namespace().unwrap_or_else(|| "default".into());
    let api: Api<Canary> = Api::namespaced(ctx.analyzer.cluster.client().clone(), &namespace);
    finalizer(&api, FINALIZER, canary, |event| async {
        match event {
            FinalizerEvent::Apply(canary) => tick(&ctx, &api, &canary)
                .await
                .map(Action::requeue)
                .map_err(ReconcileError::Tick),
            FinalizerEvent::Cleanup(canary) => {
                match finalize(&ctx.analyzer.cluster, &canary)
                    .await
                    .map_err(ReconcileError::Tick)?
                {
                    Cleanup::Done => {
                        ctx.schedule.forget(&key(&canary));
                        ctx.telemetry.forget(&canary);
                        ctx.analyzer.forget(&canary);
                        Ok(Action::await_change())
                    }
                    Cleanup::Waiting(why) => Err(ReconcileError::Waiting(why)),
                }
            }
        }
    })
    .await
    .map_err(|e| ReconcileError::Finalizer(Box::new(e)))
}

/// One analysis tick, when one is due. The tick reads the Canary afresh
/// from the API server, not from the controller's cache: a cache that lags
/// (a dropped watch, a relist) would replay an older step and write its
/// route back. A tick that still loses a write race (409, someone edited
/// the Canary meanwhile) is redone at once on a new read.
async fn tick(
    ctx: &KubeContext,
    api: &Api<Canary>,
    cached: &Canary,
) -> Result<Duration, TickError> {
    if let Some(wait) = not_due(ctx, cached, Instant::now()).await? {
        return Ok(wait);
    }
    let read = || async {
        api.get(&cached.name_any()).await.map_err(|e| {
            crate::kube_cluster::kube_error(format!("reading Canary {}", key(cached)), e)
        })
    };
    let canary = read().await?;
    let result = match run_tick(ctx, &canary, Timestamp::now(), Instant::now()).await {
        Err(e) if e.is_conflict() => {
            ctx.telemetry.reconcile_failed("conflict");
            tracing::info!(canary = %key(cached), error = %e, "conflict, retrying at once");
            run_tick(ctx, &read().await?, Timestamp::now(), Instant::now()).await
        }
        done => done,
    };
    if let Err(e) = &result
        && failure_reason(e).is_some()
        && let Ok(fresh) = read().await
    {
        report_failure(&ctx.analyzer.cluster, &fresh, e, Timestamp::now()).await;
    }
    result
}

fn error_policy(canary: Arc<Canary>, error: &ReconcileError, ctx: Arc<KubeContext>) -> Action {
    ctx.telemetry.reconcile_failed(error.kind());
    if error.is_conflict() {
        // Someone wrote the Canary since it was read: read it again and
        // redo the tick now (the watch delivers the new version).
        tracing::info!(canary = %key(&canary), %error, "conflict, retrying at once");
        return Action::requeue(CONFLICT_RETRY);
    }
    tracing::warn!(canary = %key(&canary), %error, "reconcile failed");
    // Redone at the next reconcile, never later than the next interval.
    let interval = canary.settings().map_or(RETRY, |s| s.interval);
    Action::requeue(RETRY.min(interval).max(CONFLICT_RETRY))
}

/// Canaries whose target is this Deployment.
fn canaries_of_deployment(store: &Store<Canary>, d: &Deployment) -> Vec<ObjectRef<Canary>> {
    let (ns, name) = (d.namespace(), d.name_any());
    store
        .state()
        .iter()
        .filter(|c| c.namespace() == ns && c.spec.target_ref.name == name)
        .map(|c| ObjectRef::from_obj(c.as_ref()))
        .collect()
}

/// Canaries of a namespace: a ConfigMap or Secret may be read by any of
/// their targets. The schedule makes extra wake-ups cheap: only a changed
/// revision runs a tick.
fn canaries_in(store: &Store<Canary>, namespace: Option<String>) -> Vec<ObjectRef<Canary>> {
    store
        .state()
        .iter()
        .filter(|c| c.namespace() == namespace)
        .map(|c| ObjectRef::from_obj(c.as_ref()))
        .collect()
}

fn api<K>(client: &Client, namespace: &Option<String>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The engine and its collaborators, built from the arguments.
struct Parts {
    ctx: Arc<KubeContext>,
    registrar: Arc<PluginContext>,
}

impl Parts {
    fn build(args: &RunArgs, cluster: KubeCluster) -> Result<Self> {
        let cache = args
            .plugin_cache
            .clone()
            .map(ArtifactCache::new)
            .transpose()
            .map_err(|e| setup("opening the plugin cache")(e.into()))?;
        let host = PluginHost::new(cache)
            .map_err(|e| setup("starting the plugin host")(e.into()))?
            .with_journal(sluice_host::journal::Journal::new(args.journal_calls));
        let limits = Limits {
            time_budget: Duration::from_millis(args.plugin_timeout_ms),
            memory_bytes: args.plugin_memory_mib * 1024 * 1024,
        };
        let registry = PluginRegistry::with_builtins_limited(host, limits)
            .map_err(|f| setup("loading the built-in plugins")(f.into()))?;
        // Made first: failed metric queries and webhook calls count into it.
        let telemetry = Arc::new(Telemetry::new(registry.host().metrics()));
        let metrics = PrometheusMetrics::new(
            cluster.clone(),
            PrometheusSettings {
                default_address: Some(args.prometheus.clone()),
                ..Default::default()
            },
        )
        .map_err(|e| setup("configuring Prometheus")(e.into()))?;
        let webhooks =
            HttpWebhooks::new().map_err(|e| setup("configuring the webhook client")(e.into()))?;
        let (metrics, webhooks) = (telemetry.counted(metrics), telemetry.counted(webhooks));
        let notifier = notifier(args, cluster.clone())?;
        let fetcher = Fetcher::new(Duration::from_secs(60), args.insecure_registries.clone())
            .map_err(|e| setup("configuring the plugin fetcher")(e.into()))?;
        let registrar = Arc::new(Registrar::new(cluster.clone(), registry.clone(), fetcher));
        let ctx = Arc::new(
            Context::new(Analyzer::new(cluster, metrics, webhooks, registry))
                .with_alerts(Arc::new(notifier))
                .with_telemetry(telemetry),
        );
        Ok(Self { ctx, registrar })
    }
}

/// The leader election the arguments ask for, or `None`.
fn election(args: &RunArgs) -> Result<Option<leader::Election>> {
    if !args.leader_election {
        return Ok(None);
    }
    let holder_id = args
        .holder_id
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "sluice".into());
    let election = leader::Election {
        lease_duration: Duration::from_secs(args.lease_duration_seconds),
        renew_deadline: Duration::from_secs(args.renew_deadline_seconds),
        retry_period: Duration::from_secs(args.retry_period_seconds),
        ..leader::Election::new(&args.lease_namespace, &args.lease_name, &holder_id)
    };
    election.check().map_err(|why| {
        RunError::Flag(format!(
            "--lease-duration-seconds, --renew-deadline-seconds, --retry-period-seconds: {why}"
        ))
    })?;
    Ok(Some(election))
}

/// Why the controllers stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Running,
    Signal,
    LostLease,
}

/// Sets `stop` on SIGINT/SIGTERM or when the Lease is lost; readiness
/// turns false at once.
fn watch_for_stop(
    leadership: Option<watch::Receiver<leader::Leadership>>,
    ready: Arc<AtomicBool>,
) -> watch::Receiver<Stop> {
    let (tx, rx) = watch::channel(Stop::Running);
    tokio::spawn(async move {
        let lost = async move {
            match leadership {
                Some(rx) => leader::lost(rx).await,
                None => std::future::pending().await,
            }
        };
        let why = tokio::select! {
            _ = shutdown_signal() => Stop::Signal,
            _ = lost => Stop::LostLease,
        };
        ready.store(false, Ordering::Relaxed);
        if why == Stop::LostLease {
            tracing::error!("lost the leader election lease; stopping every controller");
        }
        let _ = tx.send(why);
    });
    rx
}

/// Lists one Canary every second, so `/readyz` knows whether the API
/// server answers (when it does not, the controllers' watches fail too).
fn probe_api(client: Client, health: Arc<ApiHealth>) {
    let canaries: Api<Canary> = Api::all(client);
    tokio::spawn(async move {
        loop {
            // kube-rs retries a 503 for minutes: bound the probe instead.
            let params = kube::api::ListParams::default().limit(1);
            let list = canaries.list_metadata(&params);
            let probe = match tokio::time::timeout(Duration::from_secs(2), list).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(sluice_rollout::chain(&e)),
                Err(_) => Err("no answer within 2s".to_string()),
            };
            health.record(probe);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

/// Keeps `sluice_leader` current.
fn report_leadership(
    leadership: Option<watch::Receiver<leader::Leadership>>,
    telemetry: Arc<Telemetry>,
) {
    let Some(mut rx) = leadership else {
        telemetry.set_leading(true);
        return;
    };
    tokio::spawn(async move {
        loop {
            let leading = *rx.borrow_and_update() == leader::Leadership::Leading;
            telemetry.set_leading(leading);
            if rx.changed().await.is_err() {
                return;
            }
        }
    });
}

/// Resolves once `stop` leaves `Running`.
async fn stopped(mut stop: watch::Receiver<Stop>) {
    let _ = stop.wait_for(|s| *s != Stop::Running).await;
}

/// A client for the cluster of the environment (in-cluster config or
/// KUBECONFIG) whose calls fail once they have waited `timeout` for an
/// answer. kube-rs sets no read timeout: without this, an API server that
/// never answers a write holds the reconcile of that Canary for ever. The
/// bound covers the wait for the response head only, so watches, whose
/// head comes at once, stream on unbounded (their idle timeout is the
/// watcher's).
async fn client(timeout: Duration) -> Result<Client> {
    let config = kube::Config::infer()
        .await
        .map_err(|e| RunError::Connect(kube::Error::InferConfig(e)))?;
    let builder = kube::client::ClientBuilder::try_from(config).map_err(RunError::Connect)?;
    Ok(builder
        .with_layer(&tower::timeout::TimeoutLayer::new(timeout))
        .build())
}

/// Runs the operator until SIGINT/SIGTERM, or until the Lease is lost
/// (then it exits non-zero, to stand by again after its restart).
pub async fn run(args: RunArgs) -> Result<()> {
    let client = client(Duration::from_secs(args.api_timeout_seconds)).await?;
    let election = election(&args)?;
    let ready = Arc::new(AtomicBool::new(false));
    let candidate = election.map(|e| leader::spawn(client.clone(), e));
    let leadership = candidate.as_ref().map(|c| c.leadership.clone());
    let fence = candidate
        .as_ref()
        .map_or_else(leader::Fence::open, |c| c.fence.clone());
    let cluster = KubeCluster::new(client.clone()).with_fence(fence);
    let parts = Parts::build(&args, cluster)?;
    let endpoints = Endpoints {
        telemetry: Arc::clone(&parts.ctx.telemetry) as Arc<Telemetry>,
        ready: Arc::clone(&ready),
        api: Arc::new(ApiHealth::new(Duration::from_secs(
            args.unready_after_seconds,
        ))),
        journal: parts.ctx.analyzer.plugins.host().journal().clone(),
    };
    probe_api(client.clone(), Arc::clone(&endpoints.api));
    let stop = watch_for_stop(leadership.clone(), Arc::clone(&ready));
    report_leadership(leadership.clone(), Arc::clone(&parts.ctx.telemetry));
    let server = tokio::spawn(server::serve(args.listen, endpoints, stopped(stop.clone())));
    if let Some(mut rx) = leadership {
        // A standby is ready: it serves its probes and waits.
        ready.store(true, Ordering::Relaxed);
        tracing::info!(lease = %args.lease_name, "waiting for leadership");
        tokio::select! {
            leading = leader::acquired(&mut rx) => {
                if !leading {
                    return Err(RunError::ElectionStopped);
                }
            }
            _ = stopped(stop.clone()) => return Ok(()),
        }
    }
    run_controllers(&args, &client, parts, stop.clone(), &ready).await;
    ready.store(false, Ordering::Relaxed);
    server.abort();
    if *stop.borrow() == Stop::LostLease {
        return Err(RunError::LostLease);
    }
    Ok(())
}

/// The Canary and RolloutPlugin controllers, until `stop`.
async fn run_controllers(
    args: &RunArgs,
    client: &Client,
    parts: Parts,
    stop: watch::Receiver<Stop>,
    ready: &AtomicBool,
) {
    let canaries = canary_controller(args, client).graceful_shutdown_on(stopped(stop.clone()));
    // RolloutPlugins: loaded into the registry the Canaries' analyzer reads,
    // so an update takes effect at the next tick.
    let plugins = Controller::new(
        Api::<RolloutPlugin>::all(client.clone()),
        watcher::Config::default(),
    )
    .graceful_shutdown_on(stopped(stop))
    .run(reconcile_plugin, plugin_error_policy, parts.registrar)
    .for_each(|result| async move {
        if let Err(e) = result {
            tracing::debug!(error = %e, "plugin controller");
        }
    });
    ready.store(true, Ordering::Relaxed);
    tracing::info!(namespace = ?args.namespace, "sluice operator running");
    let canaries = canaries
        .run(reconcile, error_policy, parts.ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "controller");
            }
        });
    futures::future::join(plugins, canaries).await;
}

/// The Canary controller: woken by its Canaries, their target Deployments,
/// the ConfigMaps and Secrets of their namespace, and MetricTemplates.
fn canary_controller(args: &RunArgs, client: &Client) -> Controller<Canary> {
    let canaries: Api<Canary> = api(client, &args.namespace);
    let controller = Controller::new(canaries, watcher::Config::default());
    let store = controller.store();
    let (s1, s2, s3) = (store.clone(), store.clone(), store.clone());
    controller
        .watches(
            api::<Deployment>(client, &args.namespace),
            watcher::Config::default(),
            move |d| canaries_of_deployment(&s1, &d),
        )
        .watches(
            api::<ConfigMap>(client, &args.namespace),
            watcher::Config::default(),
            move |c| canaries_in(&s2, c.namespace()),
        )
        .watches(
            api::<Secret>(client, &args.namespace),
            watcher::Config::default(),
            move |s| canaries_in(&s3, s.namespace()),
        )
        .watches(
            Api::<MetricTemplate>::all(client.clone()),
            watcher::Config::default(),
            move |_| {
                store
                    .state()
                    .iter()
                    .map(|c| ObjectRef::from_obj(c.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
