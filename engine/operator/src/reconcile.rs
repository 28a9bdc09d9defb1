//! What the operator does with one Canary, independent of kube-rs: run an
//! analysis tick when one is due, and revert the target when a Canary with
//! `revertOnDeletion` is deleted. Generic over the cluster, so the same code
//! runs against the in-memory cluster in tests.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use sluice_rollout::analysis::{Result, TickError};

use super::schedule::Schedule;
use super::telemetry::Telemetry;
use sluice_api::{AlertSettings, Canary, CanaryPhase};
use sluice_rollout::analysis::checks::{MetricsProvider, WebhookCaller};
use sluice_rollout::analysis::{Analyzer, readiness, workload};
use sluice_rollout::cluster::{Cluster, ClusterError, Event};
use sluice_rollout::notify::{Alert, AlertProviderSource, Delivery, Notifier};
use sluice_rollout::router;

/// The condition a failed tick sets (as the analysis does for its faults).
const CONDITION_READY: &str = "Ready";
/// Flagger's default analysis interval, for a Canary whose spec is invalid.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// Where a tick's alerts go (Slack, Teams, … through `notify::Notifier`).
pub trait AlertSink: Send + Sync {
    fn deliver<'a>(
        &'a self,
        settings: &'a [AlertSettings],
        alert: &'a Alert,
    ) -> Pin<Box<dyn Future<Output = Vec<Delivery>> + Send + 'a>>;
}

impl<C: Cluster + 'static, P: AlertProviderSource + 'static> AlertSink for Notifier<C, P> {
    fn deliver<'a>(
        &'a self,
        settings: &'a [AlertSettings],
        alert: &'a Alert,
    ) -> Pin<Box<dyn Future<Output = Vec<Delivery>> + Send + 'a>> {
        Box::pin(self.notify(settings, alert))
    }
}

/// Everything a reconcile needs.
pub struct Context<C, M, W> {
    pub analyzer: Analyzer<C, M, W>,
    pub(crate) schedule: Schedule,
    pub telemetry: Arc<Telemetry>,
    /// Delivers alerts; none in tests that do not look at them.
    alerts: Option<Arc<dyn AlertSink>>,
}

impl<C: Cluster, M: MetricsProvider, W: WebhookCaller> Context<C, M, W> {
    pub fn new(analyzer: Analyzer<C, M, W>) -> Self {
        let telemetry = Arc::new(Telemetry::new(analyzer.plugins.host().metrics()));
        Self {
            analyzer,
            schedule: Schedule::default(),
            telemetry,
            alerts: None,
        }
    }

    pub fn with_alerts(mut self, sink: Arc<dyn AlertSink>) -> Self {
        self.alerts = Some(sink);
        self
    }

    /// Reports into `telemetry`, made before the analyzer so that its
    /// metrics provider and webhook caller can count into it.
    pub fn with_telemetry(mut self, telemetry: Arc<Telemetry>) -> Self {
        self.telemetry = telemetry;
        self
    }
}

/// "namespace/name".
pub(crate) fn key(canary: &Canary) -> String {
    format!(
        "{}/{}",
        canary.namespace().unwrap_or_default(),
        canary.name_any()
    )
}

/// Runs an analysis tick for `canary` if one is due at `instant` (one per
/// `analysis.interval`, or at once when the target has a new revision), and
/// says when to come back. `now` is the wall-clock time of the tick.
pub async fn reconcile_canary<C, M, W>(
    ctx: &Context<C, M, W>,
    canary: &Canary,
    now: Timestamp,
    instant: Instant,
) -> Result<Duration>
where
    C: Cluster,
    M: MetricsProvider,
    W: WebhookCaller,
{
    match not_due(ctx, canary, instant).await? {
        Some(wait) => Ok(wait),
        None => run_tick(ctx, canary, now, instant).await,
    }
}

/// How long until `canary`'s next tick, or `None` when one is due now.
pub(crate) async fn not_due<C, M, W>(
    ctx: &Context<C, M, W>,
    canary: &Canary,
    instant: Instant,
) -> Result<Option<Duration>>
where
    C: Cluster,
    M: MetricsProvider,
    W: WebhookCaller,
{
    let interval = canary
        .settings()
        .map(|s| s.interval)
        .unwrap_or(DEFAULT_INTERVAL);
    match ctx.schedule.wait(&key(canary), interval, instant) {
        Some(wait) if !ctx.analyzer.revision_changed(canary).await? => Ok(Some(wait)),
        _ => Ok(None),
    }
}

/// Runs one analysis tick of `canary` now; when to come back.
pub(crate) async fn run_tick<C, M, W>(
    ctx: &Context<C, M, W>,
    canary: &Canary,
    now: Timestamp,
    instant: Instant,
) -> Result<Duration>
where
    C: Cluster,
    M: MetricsProvider,
    W: WebhookCaller,
{
    let settings = canary.settings().ok();
    let interval = settings
        .as_ref()
        .map(|s| s.interval)
        .unwrap_or(DEFAULT_INTERVAL);
    let key = key(canary);
    ctx.schedule.ran(&key, instant);
    let started = Instant::now();
    let outcome = match ctx.analyzer.reconcile(canary, now).await {
        Ok(outcome) => outcome,
        Err(e) => {
            // The tick did not finish: the next reconcile runs it again
            // rather than waiting for the next interval. It starts from the
            // status the cluster holds, so a tick whose status write failed
            // is redone, never applied twice.
            ctx.schedule.forget(&key);
            return Err(e);
        }
    };
    ctx.telemetry
        .observe(canary, &outcome.status, started.elapsed());
    if let Some(sink) = &ctx.alerts
        && !outcome.alerts.is_empty()
    {
        // An alert that cannot be delivered is logged; the rollout goes on.
        let alert_settings = settings.map(|s| s.alerts).unwrap_or_default();
        for alert in &outcome.alerts {
            for delivery in sink.deliver(&alert_settings, alert).await {
                if let Err(e) = delivery.result {
                    tracing::warn!(canary = %key, alert = %delivery.alert, error = %e, "alert not delivered");
                }
            }
        }
    }
    Ok(interval)
}

/// The `Ready` condition's reason for a tick that failed with `error`, or
/// `None` when the failure is not reported on the Canary: a lost write
/// race is redone at once, and a replica that does not lead must not write.
pub(crate) fn failure_reason(error: &TickError) -> Option<&'static str> {
    match error {
        TickError::Cluster(ClusterError::Conflict { .. } | ClusterError::NotLeader { .. }) => None,
        TickError::Cluster(_) => Some("ApiError"),
        TickError::Workload(_) => Some("InvalidTarget"),
        TickError::Missing(_) => Some("ReconcileFailed"),
    }
}

/// Reports a failed tick on the Canary (read afresh): its `Ready`
/// condition False with the reason, and a warning event when the message
/// is new. Best effort: when the API server is what fails, these writes
/// fail too, and the log and `sluice_reconcile_errors_total` carry it. The
/// next tick that runs clean sets `Ready` back to True.
pub(crate) async fn report_failure<C: Cluster>(
    cluster: &C,
    canary: &Canary,
    error: &TickError,
    now: Timestamp,
) {
    let Some(reason) = failure_reason(error) else {
        return;
    };
    let message = format!(
        "Reconcile of {} failed, retrying: {}",
        key(canary),
        sluice_rollout::cluster::chain(error)
    );
    let mut status = canary.status.clone().unwrap_or_default();
    if status.condition(CONDITION_READY).is_some_and(|c| {
        c.reason.as_deref() == Some(reason) && c.message.as_deref() == Some(message.as_str())
    }) {
        return;
    }
    status.set_condition(
        CONDITION_READY,
        "False",
        reason,
        message.clone(),
        &now.to_string(),
    );
    if let Err(e) = cluster.update_canary_status(canary, &status).await {
        tracing::debug!(canary = %key(canary), error = %e, "cannot report the failed tick");
        return;
    }
    if let Err(e) = cluster
        .publish_event(canary, &Event::warning(message))
        .await
    {
        tracing::debug!(canary = %key(canary), error = %e, "cannot report the failed tick");
    }
}

/// Where the cleanup of a deleted Canary stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cleanup {
    /// Nothing is left to do: the finalizer can go.
    Done,
    /// The target is not serving yet; try again later.
    Waiting(String),
}

/// Cleans up after a deleted Canary. Without `revertOnDeletion` there is
/// nothing to do: what Sluice generated is owned by the Canary and garbage
/// collected with it (the target stays as it is, as in Flagger). With it,
/// the target Deployment is scaled back up and, once it serves, takes all
/// the traffic: the apex Service selects its pods and the HTTPRoute sends
/// everything to the apex Service; both lose their owner reference, so they
/// outlive the Canary.
pub async fn finalize<C: Cluster>(cluster: &C, canary: &Canary) -> Result<Cleanup> {
    if !canary.spec.revert_on_deletion {
        return Ok(Cleanup::Done);
    }
    let namespace = canary.namespace().unwrap_or_else(|| "default".into());
    let target_name = &canary.spec.target_ref.name;
    let label = format!("{}.{namespace}", canary.name_any());
    let mut status = canary.status.clone().unwrap_or_default();
    let mut events = Vec::new();
    if status.phase != Some(CanaryPhase::Terminating) {
        status.phase = Some(CanaryPhase::Terminating);
        events.push(Event::normal(format!("Terminating canary {label}")));
    }
    let Some(target) = cluster.deployment(&namespace, target_name).await? else {
        return Ok(Cleanup::Done);
    };
    let target = scale_target_up(cluster, &namespace, target_name, target).await?;
    if let Err(why) = readiness::rollout_finished(&target) {
        publish(cluster, canary, &status, &events).await?;
        return Ok(Cleanup::Waiting(format!(
            "waiting for {target_name}.{namespace} to serve before reverting the traffic: {why}"
        )));
    }
    revert_apex_service(cluster, canary, &target).await?;
    revert_route(cluster, canary).await?;
    status.phase = Some(CanaryPhase::Terminated);
    events.push(Event::normal(format!(
        "Reverted {label}: all traffic is on {target_name}.{namespace}"
    )));
    publish(cluster, canary, &status, &events).await?;
    Ok(Cleanup::Done)
}

/// Scales a scaled-down target back up to the primary's replicas (at
/// least one); the target as the cluster holds it afterwards.
async fn scale_target_up<C: Cluster>(
    cluster: &C,
    namespace: &str,
    target_name: &str,
    target: Arc<Deployment>,
) -> Result<Arc<Deployment>> {
    let replicas = target.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    if replicas == 0 {
        let primary = cluster
            .deployment(namespace, &workload::primary_name(target_name))
            .await?;
        let wanted = primary
            .as_ref()
            .and_then(|p| p.spec.as_ref())
            .and_then(|s| s.replicas)
            .unwrap_or(1)
            .max(1);
        cluster
            .scale_deployment(namespace, target_name, wanted)
            .await?;
    }
    Ok(cluster
        .deployment(namespace, target_name)
        .await?
        .unwrap_or(target))
}

/// Points the apex Service at the target's pods, without an owner
/// reference so that it outlives the Canary.
async fn revert_apex_service<C: Cluster>(
    cluster: &C,
    canary: &Canary,
    target: &Deployment,
) -> Result<()> {
    let (label_key, label_value) = workload::selector_label(target)?;
    if let Some(mut apex) = workload::services(canary, target)?.into_iter().next() {
        apex.metadata.owner_references = None;
        if let Some(spec) = apex.spec.as_mut() {
            spec.selector = Some([(label_key, label_value)].into_iter().collect());
        }
        cluster.apply_service(&apex).await?;
    }
    Ok(())
}

/// Sends all the traffic to the apex Service, through an HTTPRoute
/// without an owner reference so that it outlives the Canary.
async fn revert_route<C: Cluster>(cluster: &C, canary: &Canary) -> Result<()> {
    let mut route = router::render(canary, &router::safe_plan());
    route.metadata.owner_references = None;
    let apex_name = workload::apex_name(canary);
    for rule in route.spec.rules.iter_mut().flatten() {
        let backends = rule.backend_refs.get_or_insert_with(Vec::new);
        backends.retain(|b| b.weight.unwrap_or(1) > 0);
        for b in backends.iter_mut() {
            b.name = apex_name.clone();
            b.filters = None;
        }
    }
    cluster.apply_http_route(&route).await?;
    Ok(())
}

/// Writes the status, if it changed, then publishes the events.
async fn publish<C: Cluster>(
    cluster: &C,
    canary: &Canary,
    status: &sluice_api::CanaryStatus,
    events: &[Event],
) -> Result<()> {
    if canary.status.as_ref() != Some(status) {
        cluster.update_canary_status(canary, status).await?;
    }
    for e in events {
        cluster.publish_event(canary, e).await?;
    }
    Ok(())
}
