//! The analysis state machine: one call of [`Analyzer::reconcile`] is one
//! tick of Flagger's scheduler for one Canary. It observes the cluster,
//! measures (webhooks, metrics), asks the plugins to evaluate and decide,
//! checks their answers, and acts. All rollout state lives in the Canary's
//! status, so a restarted engine continues where the last one stopped.

pub mod checks;
pub mod configs;
mod error;
#[cfg(test)]
mod fixtures;
mod gateway;
mod observed;
mod pending;
mod per_canary;
pub mod readiness;
mod route_sync;
pub mod service_sync;
mod shadow_evaluator;
pub mod workload;

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;

use crate::cluster::{Cluster, Event, Kind};
use crate::router;
use checks::{CheckFailure, Fault, MetricsProvider, WebhookCaller};
pub use error::{Result, TickError, WorkloadError};
use sluice_api::{AlertSeverity, Canary, CanaryPhase, CanaryStatus, HookType, RolloutSettings};
use sluice_host::bindings::strategy as wit;
use sluice_host::journal::{Answer, Call};
use sluice_host::schema::ConfigError;
use sluice_host::{PluginFault, PluginRegistry, StrategyPlugin, validate};

/// The condition Sluice sets when a spec is invalid or a plugin is missing.
const CONDITION_READY: &str = "Ready";
/// Flagger's condition: whether the last rollout was promoted.
const CONDITION_PROMOTED: &str = "Promoted";

/// What one tick did.
#[derive(Debug, Clone)]
pub struct TickOutcome {
    pub status: CanaryStatus,
    pub events: Vec<Event>,
    /// Alerts for the Canary's `analysis.alerts` (or the operator's
    /// default provider); the caller delivers them.
    pub alerts: Vec<crate::notify::Alert>,
    /// The fault that kept a check from being judged this tick, if any
    /// (also the reason of the Canary's `Ready` condition).
    pub fault: Option<Fault>,
}

/// Drives rollouts. Generic over where it reads and writes, so the
/// simulator and the operator run the same code.
pub struct Analyzer<C, M, W> {
    pub cluster: C,
    metrics: M,
    webhooks: W,
    pub plugins: PluginRegistry,
    /// The pending events (of each Canary's status) this engine has
    /// published, so that it publishes them once (see [`pending`]).
    published: pending::Published,
    /// The generated Services this engine applied, and from what (see
    /// [`service_sync`]).
    services: service_sync::AppliedServices,
    /// The routes this engine found already as resting Canaries render
    /// them, and from what (see [`route_sync`]).
    routes: route_sync::ConfirmedRoutes,
    /// What ticks at rest derived from each Canary's target and primary,
    /// by their versions (see [`observed`]).
    workloads: observed::ObservedWorkloads,
}

/// The state of one tick while it runs.
struct Tick<'a> {
    canary: &'a Canary,
    /// "podinfo.test": how Flagger names a target in events.
    label: String,
    namespace: String,
    target: String,
    now: Timestamp,
    status: CanaryStatus,
    events: Vec<Event>,
    /// The target's tracked ConfigMaps and Secrets, read once per tick.
    configs: configs::TrackedConfigs,
    /// Alerts raised this tick: severity, message, and whether to attach
    /// the rollout's settings (Flagger's `metadata`).
    alerts: Vec<(AlertSeverity, String, bool)>,
    /// The route of the new state, written only once that state is: a
    /// tick whose status write fails leaves the route where it was.
    route: Option<router::HttpRoute>,
    /// What the route of a Canary at rest was rendered from this tick, to
    /// be recorded once the writes are done (see [`route_sync`]).
    rendered: Option<route_sync::Rendered>,
    /// Whether the spec, plugin, target and configs were all there.
    ready: bool,
    /// The Canary's own `strategyConfig` (a shadowed version gets its own
    /// default when this is empty).
    strategy_config: String,
    /// The first fault of the tick (a check that could not be judged): the
    /// `Ready` condition's reason and message until a tick runs clean.
    fault: Option<(Fault, String)>,
}

impl<'a> Tick<'a> {
    /// A tick of `canary` at `now`, starting from its stored status.
    fn new(canary: &'a Canary, now: Timestamp) -> Self {
        let namespace = canary.namespace().unwrap_or_else(|| "default".into());
        let target = canary.spec.target_ref.name.clone();
        Tick {
            canary,
            label: format!("{target}.{namespace}"),
            namespace,
            target,
            now,
            status: canary
                .status
                .as_ref()
                .map(CanaryStatus::without_pending_events)
                .unwrap_or_default(),
            events: Vec::new(),
            configs: Default::default(),
            alerts: Vec::new(),
            route: None,
            rendered: None,
            ready: false,
            strategy_config: String::new(),
            fault: None,
        }
    }
}

impl Tick<'_> {
    fn info(&mut self, message: String) {
        self.events.push(Event::normal(message));
    }

    fn warn(&mut self, message: String) {
        self.events.push(Event::warning(message));
    }

    fn alert(&mut self, severity: AlertSeverity, message: impl Into<String>) {
        self.alerts.push((severity, message.into(), false));
    }

    fn phase(&self) -> Option<CanaryPhase> {
        self.status.phase
    }

    /// Whether the Canary is at rest: initialised, promoted or rolled back.
    fn at_rest(&self) -> bool {
        matches!(
            self.status.phase,
            Some(CanaryPhase::Initialized | CanaryPhase::Succeeded | CanaryPhase::Failed)
        )
    }

    /// Whether a rollout is under way (its plugin calls are journalled).
    fn in_rollout(&self) -> bool {
        matches!(
            self.status.phase,
            Some(
                CanaryPhase::Progressing
                    | CanaryPhase::Waiting
                    | CanaryPhase::WaitingPromotion
                    | CanaryPhase::Promoting
                    | CanaryPhase::Finalising
            )
        )
    }

    fn set_phase(&mut self, phase: CanaryPhase) {
        if self.status.phase != Some(phase) {
            self.status.phase = Some(phase);
            self.status.last_transition_time = Some(self.now.to_string());
        }
    }

    fn set_condition(&mut self, condition_type: &str, status: &str, reason: &str, message: String) {
        let now = self.now.to_string();
        self.status
            .set_condition(condition_type, status, reason, message, &now);
    }

    fn condition_message(&self, condition_type: &str) -> Option<&str> {
        self.status
            .conditions
            .iter()
            .find(|c| c.condition_type == condition_type)
            .and_then(|c| c.message.as_deref())
    }

    /// Marks the Canary not ready, with an event the first time the reason appears.
    fn not_ready(&mut self, reason: &str, message: String) {
        if self.condition_message(CONDITION_READY) != Some(message.as_str()) {
            self.warn(message.clone());
        }
        self.set_condition(CONDITION_READY, "False", reason, message);
    }

    /// Notes that the Canary's spec, plugin, target and configs are all
    /// there; [`Self::settle_ready`] sets the condition at the end of the tick.
    fn mark_ready(&mut self) {
        self.ready = true;
    }

    /// Notes a fault (the first of the tick is the one the `Ready`
    /// condition shows). Its event is the failure's own.
    fn record_fault(&mut self, fault: Fault, message: &str) {
        if self.fault.is_none() {
            self.fault = Some((fault, message.to_string()));
        }
    }

    /// A gate that could not be asked (not one that said no): the gate
    /// stays closed; the fault is the `Ready` reason, with an event when
    /// its message is new.
    fn gate_fault(&mut self, message: String) {
        if self.condition_message(CONDITION_READY) != Some(message.as_str()) {
            self.warn(message.clone());
        }
        self.record_fault(Fault::WebhookFailed, &message);
    }

    /// A failed check counts; a fault behind it is also recorded.
    fn record_failure(&mut self, failure: &CheckFailure) {
        if let Some(fault) = failure.fault {
            self.record_fault(fault, &failure.message);
        }
    }

    /// The `Ready` condition at the end of a tick that got as far as
    /// [`Self::mark_ready`]: False with the fault's reason while a fault
    /// lasts, True again after the first clean tick.
    fn settle_ready(&mut self) {
        if !self.ready {
            return;
        }
        if let Some((fault, message)) = self.fault.clone() {
            self.set_condition(CONDITION_READY, "False", fault.reason(), message);
            return;
        }
        if self
            .status
            .conditions
            .iter()
            .any(|c| c.condition_type == CONDITION_READY && c.status != "True")
        {
            self.set_condition(
                CONDITION_READY,
                "True",
                "Valid",
                "The Canary spec is valid".into(),
            );
        }
    }

    /// The alerts raised this tick, at the phase and weight it ends with;
    /// those that ask for it carry the rollout's settings.
    fn build_alerts(&self, settings: Option<&RolloutSettings>) -> Vec<crate::notify::Alert> {
        let phase = self.status.phase.unwrap_or(CanaryPhase::Initializing);
        self.alerts
            .iter()
            .map(|(severity, message, metadata)| {
                let alert = crate::notify::Alert::new(self.canary, *severity, message.clone())
                    .at(phase, self.status.canary_weight);
                match (settings, metadata) {
                    (Some(s), true) => alert.with_rollout_metadata(s),
                    _ => alert,
                }
            })
            .collect()
    }

    /// The state a plugin sees. Waiting for an approval is progressing to a
    /// strategy: the gates are the host's business.
    fn rollout_state(&self) -> wit::RolloutState {
        let phase = match self.status.phase.unwrap_or(CanaryPhase::Initializing) {
            CanaryPhase::Waiting | CanaryPhase::WaitingPromotion => CanaryPhase::Progressing,
            other => other,
        };
        wit::RolloutState {
            phase: wit_phase(phase),
            canary_weight: self.status.canary_weight,
            iterations: self.status.iterations,
            failed_checks: self.status.failed_checks,
        }
    }

    /// What the strategy observes: the host's clock and when the phase began.
    fn observation(&self) -> wit::Observation {
        wit::Observation {
            now_unix_seconds: self.now.as_second().max(0) as u64,
            phase_started_unix_seconds: (self.now.as_second() - self.seconds_in_phase()).max(0)
                as u64,
        }
    }

    fn seconds_in_phase(&self) -> i64 {
        let since = self
            .status
            .last_transition_time
            .as_deref()
            .and_then(|t| t.parse::<Timestamp>().ok())
            .unwrap_or(self.now);
        (self.now.as_second() - since.as_second()).max(0)
    }
}

/// The plugin's phase enum for a Canary phase.
fn wit_phase(p: CanaryPhase) -> wit::Phase {
    use CanaryPhase::*;
    match p {
        Initializing => wit::Phase::Initializing,
        Initialized => wit::Phase::Initialized,
        Waiting => wit::Phase::Waiting,
        Progressing => wit::Phase::Progressing,
        WaitingPromotion => wit::Phase::WaitingPromotion,
        Promoting => wit::Phase::Promoting,
        Finalising => wit::Phase::Finalising,
        Succeeded => wit::Phase::Succeeded,
        Failed => wit::Phase::Failed,
        Terminating => wit::Phase::Terminating,
        Terminated => wit::Phase::Terminated,
    }
}

/// At the end of a rollout the sticky cookie becomes the previous one, which
/// the route deletes from browsers that still carry it.
fn retire_cookie(status: &mut CanaryStatus) {
    if let Some(c) = status.session_affinity_cookie.take() {
        status.previous_session_affinity_cookie = Some(c);
    }
}

use sluice_host::validate::canary_traffic_allowed;

/// The value part of a stored "name=value" cookie.
fn cookie_value(cookie: Option<&str>) -> Option<String> {
    cookie.map(|c| c.split_once('=').map_or(c, |(_, v)| v).to_string())
}

/// The analysis settings as the strategy plugin sees them.
pub fn analysis_spec(settings: &RolloutSettings, status: &CanaryStatus) -> wit::AnalysisSpec {
    wit::AnalysisSpec {
        interval_seconds: settings.interval.as_secs(),
        threshold: settings.threshold,
        max_weight: settings.max_weight,
        step_weight: settings.step_weight,
        step_weights: settings.step_weights.clone(),
        step_weight_promotion: settings.step_weight_promotion,
        iterations: settings.iterations,
        matches: router::plan_matches(&settings.matches)
            .iter()
            .map(sluice_host::spec_match)
            .collect(),
        mirror: settings.mirror,
        mirror_weight: settings.mirror_weight,
        session_affinity: settings
            .session_affinity
            .as_ref()
            .map(|s| wit::SessionAffinity {
                cookie_name: s.cookie_name.clone(),
                max_age_seconds: s.max_age,
                cookie_value: cookie_value(status.session_affinity_cookie.as_deref())
                    .unwrap_or_default(),
                previous_cookie_value: cookie_value(
                    status.previous_session_affinity_cookie.as_deref(),
                ),
                primary_cookie_name: s.primary_cookie_name.clone(),
            }),
        config: settings.strategy_config.clone(),
    }
}

/// The analysis settings for `strategy`, with its default settings when
/// the Canary gives none.
fn spec_for(
    settings: &RolloutSettings,
    status: &CanaryStatus,
    strategy: &StrategyPlugin,
) -> wit::AnalysisSpec {
    let mut spec = analysis_spec(settings, status);
    spec.config = strategy.config_or_default(&spec.config);
    spec
}

impl<C: Cluster, M: MetricsProvider, W: WebhookCaller> Analyzer<C, M, W> {
    pub fn new(cluster: C, metrics: M, webhooks: W, plugins: PluginRegistry) -> Self {
        Self {
            cluster,
            metrics,
            webhooks,
            plugins,
            published: Default::default(),
            services: Default::default(),
            routes: Default::default(),
            workloads: Default::default(),
        }
    }

    /// Runs one tick for `canary` at time `now`, writes the status and
    /// publishes the events. Errors are cluster I/O failures: the caller
    /// retries the tick later; nothing half-done moves traffic.
    pub async fn reconcile(&self, canary: &Canary, now: Timestamp) -> Result<TickOutcome> {
        self.publish_stored_events(canary).await?;
        let mut tick = Tick::new(canary, now);
        // Checked once per tick: the step and the hooks and alerts after it
        // read the same settings.
        let settings = canary.settings();
        self.step(&mut tick, settings.as_ref()).await?;
        tick.settle_ready();
        pending::stage(canary, &mut tick.status, &mut tick.events);
        // State first: the status (with its resourceVersion precondition),
        // then the route it implies. A lost race writes neither, and the
        // redone tick starts from the stored status: no step runs twice
        // and the route is never ahead of the recorded state.
        let written = route_sync::Written {
            status: self.write_status(&tick).await?,
            route: self.write_route(&tick).await?,
        };
        if let Some(rendered) = &tick.rendered {
            self.routes
                .record(tick.canary, &tick.status, rendered, written);
        }
        self.publish_events(&tick).await?;
        let settings = settings.ok();
        self.send_event_webhooks(&tick, settings.as_ref()).await;
        let alerts = tick.build_alerts(settings.as_ref());
        Ok(TickOutcome {
            fault: tick.fault.map(|(fault, _)| fault),
            status: tick.status,
            events: tick.events,
            alerts,
        })
    }

    /// Forgets what this engine kept about `canary` (deleted): its
    /// published events, applied Services, confirmed route and observed
    /// workloads, so that a fleet that churns Canaries does not grow it.
    pub fn forget(&self, canary: &Canary) {
        self.published.forget(canary);
        self.services.forget(canary);
        self.routes.forget(canary);
        self.workloads.forget(canary);
    }

    /// Writes the tick's status, if it changed (with the resourceVersion
    /// precondition of the Canary read at the start of the tick); returns
    /// the Canary's new `resourceVersion` when it wrote it.
    async fn write_status(&self, t: &Tick<'_>) -> Result<Option<Option<String>>> {
        if !pending::changes(t.canary, &t.status) {
            return Ok(None);
        }
        let version = self
            .cluster
            .update_canary_status(t.canary, &t.status)
            .await?;
        Ok(Some(version))
    }

    /// Writes the route staged for the tick's new state, if any; returns
    /// its new `resourceVersion` when it wrote it.
    async fn write_route(&self, t: &Tick<'_>) -> Result<Option<Option<String>>> {
        let Some(route) = &t.route else {
            return Ok(None);
        };
        Ok(Some(self.cluster.apply_http_route(route).await?))
    }

    /// Publishes the tick's events on the Canary, in order.
    async fn publish_events(&self, t: &Tick<'_>) -> Result<()> {
        for event in &t.events {
            self.cluster.publish_event(t.canary, event).await?;
        }
        if !t.status.pending_events.is_empty() {
            self.published.record(t.canary, &t.status);
        }
        Ok(())
    }

    /// Publishes the events the stored status says are pending, unless this
    /// engine did already: a tick killed between its status write and its
    /// events loses none, and their fixed names keep them from doubling.
    async fn publish_stored_events(&self, canary: &Canary) -> Result<()> {
        let Some(status) = &canary.status else {
            return Ok(());
        };
        if self.published.knows(canary, status) {
            return Ok(());
        }
        for p in &status.pending_events {
            let event = crate::cluster::Event::from_pending(p);
            self.cluster.publish_event(canary, &event).await?;
        }
        self.published.record(canary, status);
        Ok(())
    }

    /// Flagger's event webhooks get every event; a failing one is logged,
    /// never a reason to stop the rollout.
    async fn send_event_webhooks(&self, t: &Tick<'_>, settings: Option<&RolloutSettings>) {
        for hook in settings
            .into_iter()
            .flat_map(|s| s.webhooks_of(HookType::Event))
        {
            for event in &t.events {
                if let Err(e) = self.webhooks.send_event(t.canary, hook, event, t.now).await {
                    tracing::warn!(canary = %t.label, hook = %hook.name, error = %e, "event webhook failed");
                }
            }
        }
    }

    /// Whether the target has a revision the Canary has not taken up yet,
    /// so that an operator can tick at once rather than at the next interval.
    pub async fn revision_changed(&self, canary: &Canary) -> Result<bool> {
        let Some(applied) = canary
            .status
            .as_ref()
            .and_then(|s| s.last_applied_spec.as_deref())
        else {
            return Ok(false);
        };
        let namespace = canary.namespace().unwrap_or_else(|| "default".into());
        let target = &canary.spec.target_ref.name;
        let Some(deployment) = self.cluster.deployment(&namespace, target).await? else {
            return Ok(false);
        };
        let Ok(configs) = configs::collect(&self.cluster, &namespace, &deployment).await? else {
            return Ok(false);
        };
        Ok(workload::revision_checksum(&deployment, &configs) != applied)
    }

    /// One tick's work, Flagger's scheduler steps in order: check the
    /// spec, resolve the strategy, read the target and its configs, mark
    /// the Canary ready, initialise it (bootstrap) or keep its Services in
    /// line, wait for the primary, detect a new revision, then run the
    /// phase and sync the route.
    async fn step(
        &self,
        t: &mut Tick<'_>,
        settings: Result<&RolloutSettings, &sluice_api::SpecErrors>,
    ) -> Result<()> {
        let settings = match settings {
            Ok(s) => s,
            Err(errors) => {
                t.not_ready("InvalidSpec", errors.to_string());
                return Ok(());
            }
        };
        if t.canary.spec.suspend {
            return Ok(());
        }
        t.strategy_config.clone_from(&settings.strategy_config);
        let Some(strategy) = self.resolve_strategy(t, settings).await? else {
            return Ok(());
        };
        if let Some(why) = self.plugin_config_refusal(settings, &strategy).await {
            t.not_ready("InvalidPluginConfig", why);
            return Ok(());
        }
        if self.workloads_unchanged(t).await? {
            t.mark_ready();
            return self.sync_route(t, settings, &strategy).await;
        }
        let Some(target) = self.read_target_and_configs(t).await? else {
            return Ok(());
        };
        t.mark_ready();
        if matches!(t.phase(), None | Some(CanaryPhase::Initializing)) {
            return self.bootstrap(t, settings, &strategy, &target).await;
        }
        self.sync_services(t, &target).await?;
        let Some(primary) = self.wait_for_primary(t).await? else {
            return self.sync_route(t, settings, &strategy).await;
        };
        if self
            .detect_new_revision(t, settings, &strategy, &target, &primary)
            .await?
        {
            return self.sync_route(t, settings, &strategy).await;
        }
        self.note_plugin_swap(t, &strategy);
        self.run_phase(t, settings, &strategy, &target).await?;
        self.sync_route(t, settings, &strategy).await
    }

    /// The Canary's strategy plugin, or `None` when it is unavailable (see
    /// [`Self::strategy_unavailable`]): the tick goes no further.
    async fn resolve_strategy(
        &self,
        t: &mut Tick<'_>,
        settings: &RolloutSettings,
    ) -> Result<Option<StrategyPlugin>> {
        let name = &settings.strategy.name;
        let resolved = match &t.status.strategy_digest {
            Some(digest) if t.in_rollout() => self.plugins.strategy_pinned(name, digest),
            _ => self.plugins.strategy(name),
        };
        match resolved {
            Ok(p) => Ok(Some(p)),
            Err(e) => {
                self.strategy_unavailable(t, settings, &e).await?;
                Ok(None)
            }
        }
    }

    /// Why the Canary's settings for its plugins do not fit their settings
    /// schemas (`sluice:config-schema`), checked before any plugin call:
    /// the strategy's, then each metric's evaluator's (an evaluator that is
    /// unavailable is left to its check).
    async fn plugin_config_refusal(
        &self,
        settings: &RolloutSettings,
        strategy: &StrategyPlugin,
    ) -> Option<String> {
        let refusal = |field: String, kind: &str, name: &str, config: &str, why: ConfigError| {
            let field = if config.is_empty() {
                format!("the RolloutPlugin's config (used as {field} is empty)")
            } else {
                field
            };
            format!("{field} for {kind} plugin {name} {why}")
        };
        let config = &settings.strategy_config;
        if let Err(why) = strategy.check_config(config).await {
            let field = "spec.analysis.strategyConfig".to_string();
            return Some(refusal(field, "strategy", strategy.name(), config, why));
        }
        for (i, check) in settings.metrics.iter().enumerate() {
            let Ok(evaluator) = self.plugins.evaluator(&check.evaluator) else {
                continue;
            };
            if let Err(why) = evaluator.check_config(&check.evaluator_config).await {
                let field = format!("spec.analysis.metrics[{i}].evaluatorConfig");
                let config = &check.evaluator_config;
                return Some(refusal(field, "evaluator", evaluator.name(), config, why));
            }
        }
        None
    }

    /// Whether the Canary is at rest and its target, primary and the
    /// target's configs are as a tick last found them (by their
    /// `resourceVersion`s, read alone), at the applied revision, with the
    /// Services current: the tick then knows all it would read them for,
    /// and only syncs the route (see [`observed`]).
    async fn workloads_unchanged(&self, t: &Tick<'_>) -> Result<bool> {
        if !t.at_rest() {
            return Ok(false);
        }
        let Some(seen) = self.workloads.of(t.canary) else {
            return Ok(false);
        };
        if !seen.shows(&t.target, t.status.last_applied_spec.as_deref())
            || !self.services.current(t.canary, seen.selector(), t.now)
        {
            return Ok(false);
        }
        for (kind, name, version) in seen.versions() {
            let now = self.cluster.version(kind, &t.namespace, name).await?;
            if now.as_deref() != version {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The target Deployment, with its tracked ConfigMaps and Secrets read
    /// into the tick; `None` (and the Canary not ready) when one is missing.
    async fn read_target_and_configs(&self, t: &mut Tick<'_>) -> Result<Option<Arc<Deployment>>> {
        let Some(target) = self.cluster.deployment(&t.namespace, &t.target).await? else {
            t.not_ready(
                "TargetNotFound",
                format!(
                    "Target deployment {} not found; create it or fix spec.targetRef",
                    t.label
                ),
            );
            return Ok(None);
        };
        t.configs = match configs::collect(&self.cluster, &t.namespace, &target).await? {
            Ok(c) => c,
            Err(why) => {
                t.not_ready("ConfigNotFound", why.to_string());
                return Ok(None);
            }
        };
        Ok(Some(target))
    }

    /// Keeps the generated Services in line with the spec: applied again
    /// when what they are rendered from changed, and at least every
    /// [`service_sync::RESYNC`] (see [`service_sync`]).
    async fn sync_services(&self, t: &Tick<'_>, target: &Deployment) -> Result<()> {
        if self
            .services
            .current(t.canary, service_sync::selector(target), t.now)
        {
            return Ok(());
        }
        for svc in workload::services(t.canary, target)? {
            self.cluster.apply_service(&svc).await?;
        }
        self.services.record(t.canary, target, t.now);
        Ok(())
    }

    /// The primary Deployment once its rollout has finished; `None` (with
    /// an event) while it is still rolling out. A missing primary is an
    /// error: bootstrap created it.
    async fn wait_for_primary(&self, t: &mut Tick<'_>) -> Result<Option<Arc<Deployment>>> {
        let primary_name = workload::primary_name(&t.target);
        let primary = self
            .cluster
            .deployment(&t.namespace, &primary_name)
            .await?
            .ok_or_else(|| {
                TickError::Missing(format!("primary deployment {primary_name}.{}", t.namespace))
            })?;
        if let Err(why) = readiness::rollout_finished(&primary) {
            t.warn(format!(
                "Waiting for {primary_name}.{} rollout to finish: {why}",
                t.namespace
            ));
            return Ok(None);
        }
        Ok(Some(primary))
    }

    /// Flagger's new-revision detection. At rest (Initialized, Succeeded,
    /// Failed) a new revision scales the target up and starts a rollout;
    /// mid-analysis it restarts the analysis. True when the tick ends here
    /// (always at rest, whether or not there is a new revision): only the
    /// route is synced.
    async fn detect_new_revision(
        &self,
        t: &mut Tick<'_>,
        settings: &RolloutSettings,
        strategy: &StrategyPlugin,
        target: &Deployment,
        primary: &Deployment,
    ) -> Result<bool> {
        let revision = workload::revision_checksum(target, &t.configs);
        let changed = t.status.last_applied_spec.as_deref() != Some(revision.as_str());
        match t.phase() {
            Some(CanaryPhase::Initialized | CanaryPhase::Succeeded | CanaryPhase::Failed) => {
                if changed {
                    t.info(format!("New revision detected {}", t.label));
                    self.scale_up_target(t, primary).await?;
                    self.start_rollout(t, settings, &revision, strategy);
                } else {
                    self.workloads.record(t.canary, target, primary, &t.configs);
                }
                Ok(true)
            }
            Some(
                CanaryPhase::Progressing | CanaryPhase::Waiting | CanaryPhase::WaitingPromotion,
            ) if changed => {
                t.info(format!(
                    "New revision detected! Restarting analysis for {}",
                    t.label
                ));
                self.start_rollout(t, settings, &revision, strategy);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Scales the target up to the primary's replicas (at least one) for
    /// a new rollout.
    async fn scale_up_target(&self, t: &mut Tick<'_>, primary: &Deployment) -> Result<()> {
        let replicas = primary
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1)
            .max(1);
        self.cluster
            .scale_deployment(&t.namespace, &t.target, replicas)
            .await?;
        t.info(format!("Scaling up {}", t.label));
        Ok(())
    }

    /// The step of the current phase: promoting, finalising, or the
    /// analysis (progressing, or waiting at one of its gates).
    async fn run_phase(
        &self,
        t: &mut Tick<'_>,
        settings: &RolloutSettings,
        strategy: &StrategyPlugin,
        target: &Deployment,
    ) -> Result<()> {
        match t.phase() {
            Some(CanaryPhase::Promoting) => self.promoting(t, settings, strategy).await,
            Some(CanaryPhase::Finalising) => self.finalise(t, settings).await,
            Some(
                CanaryPhase::Progressing | CanaryPhase::Waiting | CanaryPhase::WaitingPromotion,
            ) => self.progressing(t, settings, strategy, target).await,
            _ => Ok(()),
        }
    }

    fn start_rollout(
        &self,
        t: &mut Tick<'_>,
        settings: &RolloutSettings,
        revision: &str,
        strategy: &StrategyPlugin,
    ) {
        if t.status
            .strategy_digest
            .as_deref()
            .is_some_and(|d| d != strategy.digest())
        {
            t.info(format!(
                "Strategy plugin {} changed to sha256:{} for {}",
                strategy.name(),
                &strategy.digest()[..12],
                t.label
            ));
        }
        t.status.canary_weight = 0;
        t.status.iterations = 0;
        t.status.failed_checks = 0;
        t.status.data_waits = 0;
        t.status.last_applied_spec = Some(revision.to_string());
        t.status.strategy_digest = Some(strategy.digest().to_string());
        if let Some(sa) = &settings.session_affinity {
            // Flagger keeps "name=value"; the value only has to be new per rollout.
            t.status.session_affinity_cookie = Some(format!("{}={revision}", sa.cookie_name));
        }
        t.status.phase = None;
        t.set_phase(CanaryPhase::Progressing);
        t.set_condition(
            CONDITION_PROMOTED,
            "Unknown",
            "Progressing",
            "New revision detected, progressing canary analysis.".into(),
        );
        t.alerts.push((
            AlertSeverity::Info,
            "New revision detected, progressing canary analysis.".into(),
            true,
        ));
    }

    /// Creates the primary, its autoscaler, the Services and the HTTPRoute,
    /// then scales the target down once the primary serves.
    async fn bootstrap(
        &self,
        t: &mut Tick<'_>,
        settings: &RolloutSettings,
        strategy: &StrategyPlugin,
        target: &Deployment,
    ) -> Result<()> {
        if !self.create_primary(t, target).await?
            || !self.create_primary_autoscaler(t).await?
            || !self.create_services(t, target).await?
        {
            return Ok(());
        }
        t.set_phase(CanaryPhase::Initializing);
        let Some(primary) = self.primary_initialized(t).await? else {
            return self.sync_route(t, settings, strategy).await;
        };
        self.finish_initialization(t, strategy, target, primary.as_deref())
            .await?;
        // Rendered for the state the tick records, so that the next tick
        // at rest finds it current (see `route_sync`).
        self.sync_route(t, settings, strategy).await
    }

    /// Creates the primary Deployment (and its copies of the tracked
    /// configs) unless it exists; false (and the Canary not ready) when the
    /// target cannot be copied.
    async fn create_primary(&self, t: &mut Tick<'_>, target: &Deployment) -> Result<bool> {
        let primary_name = workload::primary_name(&t.target);
        if self
            .cluster
            .deployment(&t.namespace, &primary_name)
            .await?
            .is_some()
        {
            return Ok(true);
        }
        let primary = match workload::primary_deployment(t.canary, target, None, &t.configs) {
            Ok(p) => p,
            Err(e) => {
                t.not_ready("InvalidTarget", format!("{}: {e:#}", t.label));
                return Ok(false);
            }
        };
        self.apply_primary_configs(t).await?;
        self.cluster.apply_deployment(&primary).await?;
        Ok(true)
    }

    /// Copies the Canary's autoscaler for the primary, if it names one;
    /// false (and the Canary not ready) when that autoscaler is missing.
    async fn create_primary_autoscaler(&self, t: &mut Tick<'_>) -> Result<bool> {
        let Some(hpa_ref) = &t.canary.spec.autoscaler_ref else {
            return Ok(true);
        };
        match self.cluster.autoscaler(&t.namespace, &hpa_ref.name).await? {
            Some(hpa) => {
                let primary_hpa = workload::primary_autoscaler(t.canary, &hpa)?;
                self.cluster.apply_autoscaler(&primary_hpa).await?;
                Ok(true)
            }
            None => {
                t.not_ready(
                    "AutoscalerNotFound",
                    format!(
                        "HorizontalPodAutoscaler {}.{} not found; create it or remove spec.autoscalerRef",
                        hpa_ref.name, t.namespace
                    ),
                );
                Ok(false)
            }
        }
    }

    /// Creates the generated Services; false (and the Canary not ready)
    /// when the target gives none.
    async fn create_services(&self, t: &mut Tick<'_>, target: &Deployment) -> Result<bool> {
        match workload::services(t.canary, target) {
            Ok(services) => {
                for svc in services {
                    self.cluster.apply_service(&svc).await?;
                }
                self.services.record(t.canary, target, t.now);
                Ok(true)
            }
            Err(e) => {
                t.not_ready("InvalidTarget", format!("{}: {e:#}", t.label));
                Ok(false)
            }
        }
    }

    /// The primary, as read, once its rollout has finished (`Some(None)`
    /// when it cannot be read back); `None`, with an event saying what it
    /// waits for, while it rolls out.
    async fn primary_initialized(
        &self,
        t: &mut Tick<'_>,
    ) -> Result<Option<Option<Arc<Deployment>>>> {
        let primary_name = workload::primary_name(&t.target);
        let primary = self.cluster.deployment(&t.namespace, &primary_name).await?;
        if let Some(Err(why)) = primary.as_deref().map(readiness::rollout_finished) {
            t.warn(format!(
                "Waiting for {primary_name}.{} rollout to finish: {why}",
                t.namespace
            ));
            return Ok(None);
        }
        Ok(Some(primary))
    }

    /// The primary serves: traffic off the target, the target scaled down,
    /// and its revision recorded as applied and promoted (Initialized).
    /// What the scaled-down target, the `primary` read and the target's
    /// configs give is kept for the ticks at rest (see [`observed`]).
    async fn finish_initialization(
        &self,
        t: &mut Tick<'_>,
        strategy: &StrategyPlugin,
        target: &Deployment,
        primary: Option<&Deployment>,
    ) -> Result<()> {
        self.drain_canary(t).await?;
        let scaled = self
            .cluster
            .scale_deployment(&t.namespace, &t.target, 0)
            .await?;
        if let (Some(scaled), Some(primary)) = (scaled, primary) {
            self.workloads
                .record(t.canary, &scaled, primary, &t.configs);
        }
        let revision = workload::revision_checksum(target, &t.configs);
        t.status.last_applied_spec = Some(revision.clone());
        t.status.last_promoted_spec = Some(revision);
        t.status.strategy_digest = Some(strategy.digest().to_string());
        t.set_phase(CanaryPhase::Initialized);
        t.set_condition(
            CONDITION_PROMOTED,
            "True",
            "Initialized",
            "Deployment initialization completed.".into(),
        );
        t.info(format!("Initialization done! {}", t.label));
        Ok(())
    }

    /// Flagger's analysis step, gate by gate: a route behind the recorded
    /// state is re-applied first; the step holds while the canary or the
    /// route is not ready, rolls back on a manual rollback hook or at the
    /// failed-checks threshold, and waits for confirm-rollout. Then the
    /// checks run (unless the analysis is skipped) and the strategy
    /// decides.
    async fn progressing(
        &self,
        t: &mut Tick<'_>,
        settings: &RolloutSettings,
        strategy: &StrategyPlugin,
        target: &Deployment,
    ) -> Result<()> {
        if self.route_reapplied(t, settings, strategy).await?
            || self.held_for_canary_rollout(t, settings, target).await?
            || self.held_for_gateways(t, settings).await?
            || self.manual_rollback(t, settings).await?
            || self.threshold_reached(t, settings).await?
            || !self.confirm_rollout(t, settings).await
        {
            return Ok(());
        }
        if settings.skip_analysis {
            return self.skip_analysis(t, settings).await;
        }
        if self.checks_failed(t, settings).await {
            return Ok(());
        }
        self.ask_strategy(t, settings, strategy).await
    }

    /// True when the route is behind the recorded state (see
    /// [`Self::route_behind_state`]): this tick only re-applies it.
    async fn route_reapplied(
        &self,
        t: &mut Tick<'_>,
        settings: &RolloutSettings,
        strategy: &StrategyPlugin,
    ) -> Result<bool> {
        if !self.route_behind_state(t, settings, strategy).await? {
            return Ok(false);
        }
        t.info(format!(
            "Route of {} re-applied for canary weight {}; the analysis resumes at the next interval",
            t.label, t.status.canary_weight
        ));
        Ok(true)
    }

    /// Flagger's manual rollback: true (rolled back) when a rollback hook
    /// answers yes.
    async fn manual_rollback(&self, t: &mut Tick<'_>, settings: &RolloutSettings) -> Result<bool> {
        for hook in settings.webhooks_of(HookType::Rollback) {
            if self
                .webhooks
                .call(t.canary, hook, CanaryPhase::Progressing)
                .await
                .is_ok()
            {
                let msg = format!("Rolling back {} manual webhook invoked", t.label);
                self.rollback(t, settings, msg).await?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// True (rolled back) once the failed checks reach the threshold.
    async fn threshold_reached(
        &self,
        t: &mut Tick<'_>,
        settings: &RolloutSettings,
    ) -> Result<bool> {
        if t.status.failed_checks < settings.threshold {
            return Ok(false);
        }
        let msg = format!(
            "Rolling back {} failed checks threshold reached {}",
            t.label, t.status.failed_checks
        );
        self.rollback(t, settings, msg).await?;
        Ok(true)
    }

    /// Flagger's skipAnalysis: straight to promotion, once confirmed.
    async fn skip_analysis(&self, t: &mut Tick<'_>, settings: &RolloutSettings) -> Result<()> {
        t.info(format!("Skipping analysis for {}", t.label));
        if !self.confirm_promotion(t, settings).await {
            return Ok(());
        }
        self.promote(t, settings).await
    }

    /// Runs this tick's checks; true when the tick must stop there. A
    /// failed check counts, raises an alert and an event per failure.
    /// Checks that only need more data (0.2 evaluators) hold the rollout
    /// without counting, for at most `analysis.maxDataWaits` rounds in a
    /// row; past that horizon every further such round is a failed check,
    /// until a round passes.
    async fn checks_failed(&self, t: &mut Tick<'_>, settings: &RolloutSettings) -> bool {
        let mut failures = self.run_checks(t, settings).await;
        if failures.is_empty() {
            t.status.data_waits = 0;
            return false;
        }
        if failures.iter().all(|f| f.needs_more_data) {
            t.status.data_waits += 1;
            let (round, horizon) = (t.status.data_waits, settings.max_data_waits);
            if round <= horizon {
                for f in failures {
                    t.info(format!(
                        "{} (waiting for data, round {round} of {horizon})",
                        f.message
                    ));
                }
                return true;
            }
            for f in &mut failures {
                f.message = format!(
                    "{} (still no data after {horizon} rounds: counted as a failed check)",
                    f.message
                );
            }
        }
        t.status.failed_checks += 1;
        let messages: Vec<&str> = failures.iter().map(|f| f.message.as_str()).collect();
        t.alert(AlertSeverity::Warn, messages.join("\n"));
        for f in failures {
            t.record_failure(&f);
            t.info(f.message);
        }
        true
    }

    /// Asks the strategy what to do after passing checks, and does it; a
    /// plugin fault counts as a failed check.
    async fn ask_strategy(
        &self,
        t: &mut Tick<'_>,
        settings: &RolloutSettings,
        strategy: &StrategyPlugin,
    ) -> Result<()> {
        let state = t.rollout_state();
        let spec = spec_for(settings, &t.status, strategy);
        let observation = t.observation();
        match self.decide(t, strategy, &spec, state, observation).await {
            Ok(action) => self.act(t, settings, strategy, &spec, action).await,
            Err(fault) => {
                self.plugin_failed(t, &fault);
                Ok(())
            }
        }
    }

    /// Carries out the strategy's action during the analysis: advance,
    /// hold, promote (once confirmed) or roll back.
    async fn act(
        &self,
        t: &mut Tick<'_>,
        settings: &RolloutSettings,
        strategy: &StrategyPlugin,
        spec: &wit::AnalysisSpec,
        action: wit::Action,
    ) -> Result<()> {
        match action {
            wit::Action::Advance(a) => self.advance(t, settings, strategy, spec, a).await?,
            wit::Action::Hold(reason) => {
                if !reason.trim().is_empty() {
                    t.info(format!("Holding {} advancement: {reason}", t.label));
                }
            }
            wit::Action::Promote => {
                if self.confirm_promotion(t, settings).await {
                    self.promote(t, settings).await?;
                }
            }
            wit::Action::Rollback(reason) => {
                let msg = format!(
                    "Rolling back {} strategy {}: {reason}",
                    t.label,
                    strategy.name()
                );
                self.rollback(t, settings, msg).await?;
            }
            wit::Action::Finalise => {}
        }
        Ok(())
    }

    /// This tick's checks, in Flagger's order: the pre-rollout hooks on the
    /// first step; later the rollout hooks, then (if they pass) the metrics.
    /// One failure ("Halt … advancement …") per failed check.
    async fn run_checks(&self, t: &mut Tick<'_>, settings: &RolloutSettings) -> Vec<CheckFailure> {
        let first_step = t.status.canary_weight == 0 && t.status.iterations == 0;
        let mut failures = Vec::new();
        if first_step {
            t.info(format!("Starting canary analysis for {}", t.label));
            for hook in settings.webhooks_of(HookType::PreRollout) {
                if let Err(e) = self
                    .webhooks
                    .call(t.canary, hook, CanaryPhase::Progressing)
                    .await
                {
                    failures.push(CheckFailure::fault(
                        Fault::WebhookFailed,
                        format!(
                            "Halt {} advancement pre-rollout check {} failed {e}",
                            t.label, hook.name
                        ),
                    ));
                }
            }
        } else {
            for hook in settings.webhooks_of(HookType::Rollout) {
                if let Err(e) = self
                    .webhooks
                    .call(t.canary, hook, CanaryPhase::Progressing)
                    .await
                {
                    failures.push(CheckFailure::fault(
                        Fault::WebhookFailed,
                        format!(
                            "Halt {} advancement external check {} failed {e}",
                            t.label, hook.name
                        ),
                    ));
                }
            }
            if failures.is_empty() {
                let mut notes = Vec::new();
                failures = checks::run_metrics_noting(
                    &self.metrics,
                    &self.plugins,
                    t.canary,
                    &settings.metrics,
                    (&t.label, &t.now.to_string()),
                    &mut notes,
                )
                .await;
                for note in notes {
                    if note.warning {
                        t.warn(note.message);
                    } else {
                        t.info(note.message);
                    }
                }
            }
        }
        failures
    }

    /// The strategy's advance, once its route for the next state is valid
    /// and (for more traffic) confirmed: the new weight or iteration, with
    /// Flagger's event.
    async fn advance(
        &self,
        t: &mut Tick<'_>,
        settings: &RolloutSettings,
        strategy: &StrategyPlugin,
        spec: &wit::AnalysisSpec,
        a: wit::Advance,
    ) -> Result<()> {
        let state = t.rollout_state();
        let mut next = state;
        next.canary_weight = a.canary_weight;
        next.iterations = a.iterations;
        if let Err(fault) = self.checked_plan(t, strategy, spec, next).await {
            self.plugin_failed(t, &fault);
            return Ok(());
        }
        if a.canary_weight > state.canary_weight
            && !self.confirm_traffic_increase(t, settings).await
        {
            return Ok(());
        }
        let iteration_step = a.iterations > state.iterations;
        t.status.canary_weight = a.canary_weight;
        t.status.iterations = a.iterations;
        let past_last_iteration = settings.iterations.is_some_and(|n| a.iterations > n);
        // A weighted canary's first iteration is Flagger's mirror step: its
        // event names the weight, as Flagger's does.
        let weighted = settings.iterations.is_none_or(|n| n == 0);
        if iteration_step && past_last_iteration && a.canary_weight > state.canary_weight {
            // Blue/green's switch, in Flagger's words.
            t.info("Routing all traffic to canary".to_string());
        } else if iteration_step && !weighted {
            let total = settings
                .iterations
                .map(|n| n.to_string())
                .unwrap_or_else(|| "?".into());
            t.info(format!(
                "Advance {} canary iteration {}/{total}",
                t.label, a.iterations
            ));
        } else {
            t.info(format!(
                "Advance {} canary weight {}",
                t.label, a.canary_weight
            ));
        }
        Ok(())
    }

    /// Holds the step (true) while the canary Deployment's rollout has not
    /// finished, and rolls back once the progress deadline has passed.
    async fn held_for_canary_rollout(
        &self,
        t: &mut Tick<'_>,
        settings: &RolloutSettings,
        target: &Deployment,
    ) -> Result<bool> {
        let Err(why) = readiness::rollout_finished(target) else {
            return Ok(false);
        };
        let exceeded = match readiness::within_deadline(target, settings.progress_deadline, t.now) {
            Some(within) => !within,
            // No conditions to judge by: count from the start of the phase.
            None => t.seconds_in_phase() as u64 > settings.progress_deadline.as_secs(),
        };
        if exceeded || why.is_deadline_exceeded() {
            let msg = format!(
                "Rolling back {} progress deadline exceeded canary deployment {} not ready: {why}",
                t.label, t.label
            );
            self.rollback(t, settings, msg).await?;
        } else {
            t.warn(format!("Waiting for {} rollout to finish: {why}", t.label));
        }
        Ok(true)
    }

    /// Holds the step (true) while a Gateway has not accepted the current
    /// route, and rolls back once the progress deadline has passed.
    async fn held_for_gateways(
        &self,
        t: &mut Tick<'_>,
        settings: &RolloutSettings,
    ) -> Result<bool> {
        let name = workload::apex_name(t.canary);
        let route = format!("{name}.{}", t.namespace);
        let acceptance = match self.cluster.http_route(&t.namespace, &name).await? {
            Some(r) => gateway::acceptance(&r),
            None => gateway::RouteAcceptance::Pending("the route does not exist yet".into()),
        };
        let (waiting, why) = match acceptance {
            gateway::RouteAcceptance::Accepted => return Ok(false),
            gateway::RouteAcceptance::Pending(why) => (true, why),
            gateway::RouteAcceptance::Rejected(why) => (false, why),
        };
        if t.seconds_in_phase() as u64 > settings.progress_deadline.as_secs() {
            let msg = format!(
                "Rolling back {} progress deadline exceeded HTTPRoute {route} not accepted: {why}",
                t.label
            );
            self.rollback(t, settings, msg).await?;
            return Ok(true);
        }
        t.warn(if waiting {
            format!("Waiting for HTTPRoute {route} to be accepted: {why}")
        } else {
            format!(
                "Halt {} advancement HTTPRoute {route} not accepted: {why}",
                t.label
            )
        });
        Ok(true)
    }

    /// The first of `hook_type`'s webhooks that does not say yes, if any.
    async fn first_refusal<'s>(
        &self,
        t: &mut Tick<'_>,
        settings: &'s RolloutSettings,
        hook_type: HookType,
    ) -> Option<&'s sluice_api::Webhook> {
        for hook in settings.webhooks_of(hook_type) {
            let call = self
                .webhooks
                .call(t.canary, hook, CanaryPhase::Progressing)
                .await;
            if let Err(e) = call {
                if gate_fault(e.as_ref()) {
                    t.gate_fault(format!(
                        "Gate {} of {} could not be asked: {e}",
                        hook.name, t.label
                    ));
                }
                return Some(hook);
            }
        }
        None
    }

    /// A plugin replaced while a rollout runs (a RolloutPlugin updated)
    /// takes over at this tick; the status records the new digest, and an
    /// event says so.
    fn note_plugin_swap(&self, t: &mut Tick<'_>, strategy: &StrategyPlugin) {
        let previous = t.status.strategy_digest.clone();
        if !t.in_rollout() || previous.as_deref() == Some(strategy.digest()) {
            return;
        }
        if let Some(previous) = previous {
            t.info(format!(
                "Strategy plugin {} changed from sha256:{} to sha256:{} for {}; the rollout continues with the new one",
                strategy.name(),
                previous.get(..12).unwrap_or(&previous),
                &strategy.digest()[..12],
                t.label
            ));
        }
        t.status.strategy_digest = Some(strategy.digest().to_string());
    }

    /// Flagger's confirm-rollout gate: until every such hook says yes, the
    /// Canary waits (phase Waiting) and nothing is measured or moved.
    async fn confirm_rollout(&self, t: &mut Tick<'_>, settings: &RolloutSettings) -> bool {
        let hooks: Vec<String> = settings
            .webhooks_of(HookType::ConfirmRollout)
            .map(|h| h.name.clone())
            .collect();
        if let Some(hook) = self
            .first_refusal(t, settings, HookType::ConfirmRollout)
            .await
        {
            if t.phase() != Some(CanaryPhase::Waiting) {
                t.set_phase(CanaryPhase::Waiting);
                t.warn(format!(
                    "Halt {} advancement waiting for approval {}",
                    t.label, hook.name
                ));
                if !hook.mute_alert {
                    t.alert(AlertSeverity::Warn, "Canary is waiting for approval.");
                }
            }
            return false;
        }
        if t.phase() == Some(CanaryPhase::Waiting) {
            t.set_phase(CanaryPhase::Progressing);
            t.info(format!("Confirm-rollout check {} passed", hooks.join(", ")));
        }
        true
    }

    /// Flagger's confirm-traffic-increase gate, before every weight increase.
    async fn confirm_traffic_increase(&self, t: &mut Tick<'_>, settings: &RolloutSettings) -> bool {
        match self
            .first_refusal(t, settings, HookType::ConfirmTrafficIncrease)
            .await
        {
            Some(hook) => {
                t.warn(format!(
                    "Halt {} advancement waiting for traffic increase approval {}",
                    t.label, hook.name
                ));
                if !hook.mute_alert {
                    t.alert(
                        AlertSeverity::Warn,
                        "Canary traffic increase is waiting for approval.",
                    );
                }
                false
            }
            None => true,
        }
    }

    /// Flagger's confirm-promotion gate: the analysis goes on (phase
    /// WaitingPromotion) until every such hook says yes.
    async fn confirm_promotion(&self, t: &mut Tick<'_>, settings: &RolloutSettings) -> bool {
        let hooks: Vec<String> = settings
            .webhooks_of(HookType::ConfirmPromotion)
            .map(|h| h.name.clone())
            .collect();
        if let Some(hook) = self
            .first_refusal(t, settings, HookType::ConfirmPromotion)
            .await
        {
            if t.phase() != Some(CanaryPhase::WaitingPromotion) {
                t.set_phase(CanaryPhase::WaitingPromotion);
                t.warn(format!(
                    "Halt {} advancement waiting for promotion approval {}",
                    t.label, hook.name
                ));
                if !hook.mute_alert {
                    t.alert(
                        AlertSeverity::Warn,
                        "Canary promotion is waiting for approval.",
                    );
                }
            }
            return false;
        }
        if t.phase() == Some(CanaryPhase::WaitingPromotion) {
            t.info(format!(
                "Confirm-promotion check {} passed",
                hooks.join(", ")
            ));
        }
        true
    }

    /// Copies the canary's template to the primary; traffic moves back once
    /// the primary has rolled out.
    async fn promote(&self, t: &mut Tick<'_>, _settings: &RolloutSettings) -> Result<()> {
        let primary_name = workload::primary_name(&t.target);
        t.info(format!(
            "Copying {} template spec to {primary_name}.{}",
            t.label, t.namespace
        ));
        let target = self
            .cluster
            .deployment(&t.namespace, &t.target)
            .await?
            .ok_or_else(|| TickError::Missing(format!("target deployment {}", t.label)))?;
        let current = self.cluster.deployment(&t.namespace, &primary_name).await?;
        let replicas = current
            .as_ref()
            .and_then(|p| p.spec.as_ref())
            .and_then(|s| s.replicas);
        let primary = workload::primary_deployment(t.canary, &target, replicas, &t.configs)?;
        self.apply_primary_configs(t).await?;
        self.cluster.apply_deployment(&primary).await?;
        t.set_phase(CanaryPhase::Promoting);
        Ok(())
    }

    /// Copies the tracked ConfigMaps and Secrets for the primary.
    async fn apply_primary_configs(&self, t: &Tick<'_>) -> Result<()> {
        let (config_maps, secrets) = t.configs.primary_copies(t.canary);
        for c in &config_maps {
            self.cluster.apply_config_map(c).await?;
        }
        for s in &secrets {
            self.cluster.apply_secret(s).await?;
        }
        Ok(())
    }

    async fn promoting(
        &self,
        t: &mut Tick<'_>,
        settings: &RolloutSettings,
        strategy: &StrategyPlugin,
    ) -> Result<()> {
        let state = t.rollout_state();
        let spec = spec_for(settings, &t.status, strategy);
        let observation = t.observation();
        let action = match self.decide(t, strategy, &spec, state, observation).await {
            Ok(a) => a,
            Err(fault) => {
                // The primary already runs the new revision: the safe way out
                // of a broken plugin is to finish, all traffic on the primary.
                t.warn(format!(
                    "{fault}; routing all traffic to the promoted primary"
                ));
                wit::Action::Finalise
            }
        };
        match action {
            wit::Action::Advance(a) => {
                let mut next = state;
                next.canary_weight = a.canary_weight;
                if let Err(fault) = self.checked_plan(t, strategy, &spec, next).await {
                    t.warn(format!(
                        "{fault}; routing all traffic to the promoted primary"
                    ));
                    return self.finish_promotion(t);
                }
                t.status.canary_weight = a.canary_weight;
                t.info(format!(
                    "Advance {} primary weight {}",
                    t.label,
                    100 - a.canary_weight
                ));
                Ok(())
            }
            wit::Action::Finalise => self.finish_promotion(t),
            wit::Action::Hold(_) => Ok(()),
            wit::Action::Rollback(reason) => {
                let msg = format!(
                    "Rolling back {} strategy {}: {reason}",
                    t.label,
                    strategy.name()
                );
                self.rollback(t, settings, msg).await
            }
            wit::Action::Promote => Ok(()),
        }
    }

    fn finish_promotion(&self, t: &mut Tick<'_>) -> Result<()> {
        t.status.canary_weight = 0;
        t.set_phase(CanaryPhase::Finalising);
        Ok(())
    }

    async fn finalise(&self, t: &mut Tick<'_>, settings: &RolloutSettings) -> Result<()> {
        self.drain_canary(t).await?;
        self.cluster
            .scale_deployment(&t.namespace, &t.target, 0)
            .await?;
        t.status.canary_weight = 0;
        t.status.failed_checks = 0;
        t.status.data_waits = 0;
        t.status.last_promoted_spec = t.status.last_applied_spec.clone();
        retire_cookie(&mut t.status);
        t.set_phase(CanaryPhase::Succeeded);
        t.set_condition(
            CONDITION_PROMOTED,
            "True",
            "Succeeded",
            "Canary analysis completed successfully, promotion finished.".into(),
        );
        t.info(format!("Promotion completed! Scaling down {}", t.label));
        t.alert(
            AlertSeverity::Info,
            "Canary analysis completed successfully, promotion finished.",
        );
        self.post_rollout_hooks(t, settings, CanaryPhase::Succeeded)
            .await;
        Ok(())
    }

    /// Whether the HTTPRoute in the cluster is not the one the recorded
    /// state implies (its write failed after the state was recorded). Then
    /// this tick only puts it in place: every step is analysed on traffic
    /// at its own weight, none is skipped.
    async fn route_behind_state(
        &self,
        t: &mut Tick<'_>,
        settings: &RolloutSettings,
        strategy: &StrategyPlugin,
    ) -> Result<bool> {
        let spec = spec_for(settings, &t.status, strategy);
        let state = t.rollout_state();
        let Ok(plan) = self.checked_plan(t, strategy, &spec, state).await else {
            return Ok(false);
        };
        let current = self.current_route(t).await?;
        let wanted = router::render(t.canary, &plan);
        Ok(current.is_some_and(|r| r.spec != wanted.spec))
    }

    /// Before the canary is scaled down: if the current route still sends
    /// it any request (a route write that failed after its state was
    /// recorded), the all-primary route goes out first.
    async fn drain_canary(&self, t: &mut Tick<'_>) -> Result<()> {
        let current = self.current_route(t).await?;
        let canary = workload::canary_service_name(&workload::apex_name(t.canary));
        let serves_canary = current.as_ref().is_some_and(|r| {
            r.spec.rules.iter().flatten().any(|rule| {
                rule.backend_refs
                    .iter()
                    .flatten()
                    .any(|b| b.name == canary && b.weight.unwrap_or(1) > 0)
            })
        });
        if serves_canary {
            self.route_all_to_primary(t).await?;
        }
        Ok(())
    }

    /// The Canary's HTTPRoute as the cluster holds it.
    async fn current_route(&self, t: &Tick<'_>) -> Result<Option<Arc<router::HttpRoute>>> {
        Ok(self
            .cluster
            .http_route(&t.namespace, &workload::apex_name(t.canary))
            .await?)
    }

    /// Whether the stored route (by its `resourceVersion`, read alone) was
    /// found to be what this tick at rest renders (see [`route_sync`]);
    /// then the tick records it again once its writes are done.
    async fn route_current(
        &self,
        t: &mut Tick<'_>,
        state: wit::RolloutState,
        digest: &str,
    ) -> Result<bool> {
        let apex = workload::apex_name(t.canary);
        let version = self.cluster.version(Kind::HttpRoute, &t.namespace, &apex);
        let version = version.await?;
        let seen = route_sync::Seen::of(t.canary, &t.status, state, digest, version.as_deref());
        if !seen.is_some_and(|seen| self.routes.current(&seen)) {
            return Ok(false);
        }
        t.rendered = Some(route_sync::Rendered::new(state, digest, version.as_deref()));
        Ok(true)
    }

    /// Writes the host's all-primary route now, asking no plugin.
    async fn route_all_to_primary(&self, t: &Tick<'_>) -> Result<()> {
        self.cluster
            .apply_http_route(&router::render(t.canary, &router::safe_plan()))
            .await?;
        Ok(())
    }

    /// Sends all traffic back to the primary without asking the plugin,
    /// scales the canary down and marks the rollout failed.
    async fn rollback(
        &self,
        t: &mut Tick<'_>,
        settings: &RolloutSettings,
        message: String,
    ) -> Result<()> {
        t.alert(AlertSeverity::Error, message.clone());
        t.warn(message);
        // Traffic off the canary now, before its pods go: no route staged
        // for after the status write.
        t.route = None;
        self.route_all_to_primary(t).await?;
        t.status.canary_weight = 0;
        t.status.iterations = 0;
        retire_cookie(&mut t.status);
        self.cluster
            .scale_deployment(&t.namespace, &t.target, 0)
            .await?;
        t.set_phase(CanaryPhase::Failed);
        t.set_condition(
            CONDITION_PROMOTED,
            "False",
            "Failed",
            "Canary analysis failed, Deployment scaled to zero.".into(),
        );
        t.warn(format!("Canary failed! Scaling down {}", t.label));
        self.post_rollout_hooks(t, settings, CanaryPhase::Failed)
            .await;
        Ok(())
    }

    async fn post_rollout_hooks(
        &self,
        t: &mut Tick<'_>,
        settings: &RolloutSettings,
        phase: CanaryPhase,
    ) {
        for hook in settings.webhooks_of(HookType::PostRollout) {
            if let Err(e) = self.webhooks.call(t.canary, hook, phase).await {
                t.warn(format!(
                    "Post-rollout hook {} failed for {}: {e}",
                    hook.name, t.label
                ));
            }
        }
    }

    /// No strategy plugin to ask (deleted, or it failed to load). At rest
    /// nothing moves. Mid-analysis each tick counts as a failed check, and
    /// the threshold rolls back to the primary: the all-primary route is
    /// the host's own, no plugin is needed for it. During a promotion the
    /// current route stays (the primary is taking the new revision).
    async fn strategy_unavailable(
        &self,
        t: &mut Tick<'_>,
        settings: &RolloutSettings,
        e: &sluice_host::registry::RegistryError,
    ) -> Result<()> {
        let why = format!("{}: {e}", t.label);
        t.not_ready("PluginUnavailable", why.clone());
        let analysing = matches!(
            t.phase(),
            Some(CanaryPhase::Progressing | CanaryPhase::Waiting | CanaryPhase::WaitingPromotion)
        );
        if !analysing {
            return Ok(());
        }
        t.status.failed_checks += 1;
        t.warn(format!("Halt {} advancement {why}", t.label));
        self.threshold_reached(t, settings).await?;
        Ok(())
    }

    /// A plugin fault counts as a failed check; nothing moves.
    fn plugin_failed(&self, t: &mut Tick<'_>, fault: &PluginFault) {
        tracing::warn!(canary = %t.label, %fault, "plugin fault");
        t.status.failed_checks += 1;
        let message = format!("Halt {} advancement {fault}", t.label);
        t.record_fault(Fault::PluginFault, &message);
        t.warn(message);
    }

    /// The strategy's decision, checked against the state and the spec.
    async fn decide(
        &self,
        t: &mut Tick<'_>,
        strategy: &StrategyPlugin,
        spec: &wit::AnalysisSpec,
        state: wit::RolloutState,
        obs: wit::Observation,
    ) -> Result<wit::Action, PluginFault> {
        let journalled = self.plugins.host().journal().is_on().then_some(obs);
        let action = async {
            let action = strategy.decide(spec, state, obs).await?;
            validate::action(strategy.name(), spec, &state, &action).inspect_err(|_| {
                self.plugins
                    .host()
                    .metrics()
                    .record_invalid_answer(strategy.name())
            })?;
            Ok(action)
        }
        .await;
        self.tell_breaker(t, (strategy.name(), strategy.digest(), "decide"), &action);
        self.shadow_decide(t, strategy, (spec, state, obs), &action)
            .await;
        if let Some(observation) = journalled {
            let call = Call::Decide {
                spec: spec.clone(),
                state,
                observation,
                answer: Answer::from(&action),
            };
            self.journal(t, strategy, call);
        }
        action
    }

    /// When a new version of `strategy` runs under shadow, asks it the same
    /// question and records whether it answered as `current` did; its
    /// answer is never applied. A divergence and the takeover are events.
    async fn shadow_decide(
        &self,
        t: &mut Tick<'_>,
        strategy: &StrategyPlugin,
        (spec, state, obs): (&wit::AnalysisSpec, wit::RolloutState, wit::Observation),
        current: &std::result::Result<wit::Action, PluginFault>,
    ) {
        let Some(shadow) = self.plugins.shadow(strategy.name()) else {
            return;
        };
        let candidate = &shadow.plugin;
        if candidate.digest() == strategy.digest() {
            return;
        }
        let (answer, refused) =
            shadow_answer(candidate, &t.strategy_config, (spec, state, obs)).await;
        let divergence = match (current, &answer) {
            _ if refused => Some(format!(
                "at weight {}: sha256:{} {}",
                state.canary_weight,
                short(candidate.digest()),
                describe_answer(&answer)
            )),
            (Ok(a), Ok(b)) if a == b => None,
            (Err(_), Err(_)) => None,
            _ => Some(format!(
                "at weight {}: sha256:{} decided {}, sha256:{} would have decided {}",
                state.canary_weight,
                short(strategy.digest()),
                describe_answer(current),
                short(candidate.digest()),
                describe_answer(&answer)
            )),
        };
        let outcome =
            self.plugins
                .record_shadow(strategy.name(), candidate.digest(), divergence.clone());
        let name = strategy.name();
        match (outcome, divergence) {
            (sluice_host::registry::ShadowOutcome::Diverged(_), Some(why)) => {
                self.plugins.host().metrics().record_shadow_divergence(name);
                t.warn(format!("Shadow strategy {name} of {} diverged {why}", t.label));
            }
            (sluice_host::registry::ShadowOutcome::TookOver, _) => t.info(format!(
                "Shadow strategy {name} sha256:{} took over after {} decisions the same as sha256:{}",
                short(candidate.digest()),
                shadow.required,
                short(strategy.digest())
            )),
            _ => {}
        }
    }

    /// Tells the plugin's circuit breaker how a call went; the fault that
    /// opens it is said in an event (see `sluice_host::breaker`).
    fn tell_breaker<T>(
        &self,
        t: &mut Tick<'_>,
        plugin: (&str, &str, &'static str),
        result: &std::result::Result<T, PluginFault>,
    ) {
        if let Some(message) = checks::tell_breaker(&self.plugins, t.canary, plugin, result) {
            t.warn(message);
        }
    }

    /// The plugin's route plan for `state`, checked against the state.
    async fn checked_plan(
        &self,
        t: &mut Tick<'_>,
        strategy: &StrategyPlugin,
        spec: &wit::AnalysisSpec,
        state: wit::RolloutState,
    ) -> Result<wit::RoutePlan, PluginFault> {
        let plan = async {
            let plan = strategy.route(spec, state).await?;
            validate::route_plan(strategy.name(), spec, &state, &plan).inspect_err(|_| {
                self.plugins
                    .host()
                    .metrics()
                    .record_invalid_answer(strategy.name())
            })?;
            Ok(plan)
        }
        .await;
        self.tell_breaker(t, (strategy.name(), strategy.digest(), "route"), &plan);
        if self.plugins.host().journal().is_on() && t.in_rollout() {
            let call = Call::Route {
                spec: spec.clone(),
                state,
                answer: Answer::from(&plan),
            };
            self.journal(t, strategy, call);
        }
        plan
    }

    /// Records a strategy call in the host's journal.
    fn journal(&self, t: &Tick<'_>, strategy: &StrategyPlugin, call: Call) {
        self.plugins.host().journal().record(
            t.now.to_string(),
            checks::key_of(t.canary),
            strategy.name(),
            strategy.digest(),
            call,
        );
    }

    /// Applies the route of the current state. If the plugin cannot give a
    /// valid one, an active rollout keeps its current route and a Canary at
    /// rest gets the all-primary route.
    async fn sync_route(
        &self,
        t: &mut Tick<'_>,
        settings: &RolloutSettings,
        strategy: &StrategyPlugin,
    ) -> Result<()> {
        let state = t.rollout_state();
        // At rest, a route found current by its version is not read whole
        // or rendered again (see `route_sync`); during a rollout every
        // route call is made.
        if !t.in_rollout() && self.route_current(t, state, strategy.digest()).await? {
            return Ok(());
        }
        let current = self.current_route(t).await?;
        if !t.in_rollout() {
            let version = current
                .as_ref()
                .and_then(|r| r.metadata.resource_version.as_deref());
            t.rendered = Some(route_sync::Rendered::new(state, strategy.digest(), version));
        }
        let spec = spec_for(settings, &t.status, strategy);
        let plan = match self.checked_plan(t, strategy, &spec, state).await {
            Ok(plan) => plan,
            Err(fault) => {
                t.rendered = None;
                let keep = canary_traffic_allowed(&state) && current.is_some();
                report_route_fault(t, keep, &fault);
                if keep {
                    return Ok(());
                }
                router::safe_plan()
            }
        };
        let route = router::render(t.canary, &plan);
        if current.as_ref().map(|r| &r.spec) != Some(&route.spec) {
            t.route = Some(route);
        }
        Ok(())
    }
}

/// The event and fault of a tick whose route plan faulted: the current
/// route is kept (`keep`: the canary may have traffic and a route is
/// stored), else it is set to the primary only.
fn report_route_fault(t: &mut Tick<'_>, keep: bool, fault: &PluginFault) {
    let message = if keep {
        tracing::warn!(canary = %t.label, %fault, "keeping the current route");
        format!(
            "Route of {} not updated, keeping the current one: {fault}",
            t.label
        )
    } else {
        tracing::warn!(canary = %t.label, %fault, "using the all-primary route");
        format!("Route of {} set to the primary only: {fault}", t.label)
    };
    t.record_fault(Fault::PluginFault, &message);
    t.warn(message);
}

/// A shadowed version's checked answer to the current version's question,
/// with its own settings; true when it refused the Canary's settings (it
/// is held to its own settings check first: one that refuses a live
/// Canary's settings diverges, so it never takes over a Canary it would
/// stop).
async fn shadow_answer(
    candidate: &StrategyPlugin,
    strategy_config: &str,
    (spec, state, obs): (&wit::AnalysisSpec, wit::RolloutState, wit::Observation),
) -> (std::result::Result<wit::Action, PluginFault>, bool) {
    if let Err(why) = candidate.check_config(strategy_config).await {
        let kind = sluice_host::FaultKind::InvalidAnswer(format!("strategyConfig {why}"));
        return (Err(PluginFault::new(candidate.name(), kind)), true);
    }
    let mut spec = spec.clone();
    spec.config = candidate.config_or_default(strategy_config);
    let answer = match candidate.decide(&spec, state, obs).await {
        Ok(a) => validate::action(candidate.name(), &spec, &state, &a).map(|()| a),
        Err(f) => Err(f),
    };
    (answer, false)
}

/// The first 12 hex digits of a digest.
fn short(digest: &str) -> &str {
    &digest[..digest.len().min(12)]
}

/// A strategy's answer in words, for shadow divergences.
fn describe_answer(answer: &std::result::Result<wit::Action, PluginFault>) -> String {
    match answer {
        Ok(wit::Action::Advance(a)) => format!(
            "advance to weight {} (iterations {})",
            a.canary_weight, a.iterations
        ),
        Ok(wit::Action::Hold(why)) => format!("hold ({why})"),
        Ok(wit::Action::Promote) => "promote".into(),
        Ok(wit::Action::Rollback(why)) => format!("roll back ({why})"),
        Ok(wit::Action::Finalise) => "finalise".into(),
        Err(fault) => format!("fault ({fault})"),
    }
}

/// Whether a gate's error is a fault (no answer, a time-out, a server
/// error) rather than the gate saying no (any other HTTP status).
fn gate_fault(e: &(dyn std::error::Error + 'static)) -> bool {
    match e.downcast_ref::<crate::webhooks::WebhookError>() {
        Some(crate::webhooks::WebhookError::Status { status, .. }) => status.starts_with('5'),
        _ => true,
    }
}
