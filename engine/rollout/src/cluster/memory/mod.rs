//! An in-memory cluster for the simulator and tests. It holds real
//! `k8s-openapi` and Gateway API objects and plays the part of the
//! Deployment controller: a Deployment whose pod template or replica count
//! changes rolls out, and becomes available after a configurable number of
//! ticks. Deployments, ConfigMaps, Secrets, Canaries and HTTPRoutes carry
//! a `resourceVersion` that changes on every write (a Deployment's status
//! included; a write that changes nothing is none), as an API server's
//! does.

mod encoded;
mod events;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use encoded::Encoded;
use events::EventLog;

use crate::router::HttpRoute;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::ResourceExt;

use super::{Cluster, ClusterError, Event, Kind, Result};
use sluice_api::{Canary, CanaryStatus, MetricTemplate, RolloutPlugin, RolloutPluginStatus};

type Key = (String, String);

fn key(namespace: &str, name: &str) -> Key {
    (namespace.to_string(), name.to_string())
}

fn key_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Result<Key> {
    let name = meta
        .name
        .clone()
        .ok_or_else(|| ClusterError::invalid("writing an object", "it has no metadata.name"))?;
    let namespace = meta.namespace.clone().unwrap_or_else(|| "default".into());
    Ok((namespace, name))
}

/// A Deployment and where its simulated rollout stands. Its metadata and
/// spec are kept serialized (see [`encoded`]); its status, which the
/// simulated controller rewrites, typed.
struct SimDeployment {
    /// The Deployment without its status and `resourceVersion`.
    stored: Encoded,
    status: Option<DeploymentStatus>,
    /// Its `resourceVersion`, new on every write (the status's too).
    version: u64,
    /// Its `metadata.generation` and `spec.replicas`, which the simulated
    /// controller reads.
    generation: Option<i64>,
    replicas: i32,
    /// Tick at which the current rollout started.
    rollout_started: u64,
}

/// A stored Deployment as a reader gets it: decoded outside the lock.
struct DeploymentRead {
    stored: Encoded,
    status: Option<DeploymentStatus>,
    version: u64,
}

impl DeploymentRead {
    fn of(sim: &SimDeployment) -> Self {
        DeploymentRead {
            stored: sim.stored.clone(),
            status: sim.status.clone(),
            version: sim.version,
        }
    }

    fn decode(self, namespace: &str, name: &str) -> Result<Deployment> {
        let mut d: Deployment = self
            .stored
            .decode(&format!("deployment {namespace}/{name}"))?;
        d.status = self.status;
        d.metadata.resource_version = Some(self.version.to_string());
        Ok(d)
    }
}

#[derive(Default)]
struct World {
    tick: u64,
    /// The last `resourceVersion` given out.
    version: u64,
    deployments: BTreeMap<Key, SimDeployment>,
    /// Ticks a Deployment needs to become available after a change.
    ready_after: BTreeMap<Key, u64>,
    /// Statuses a test set by hand, kept instead of the simulated ones.
    pinned_status: BTreeMap<Key, DeploymentStatus>,
    autoscalers: BTreeMap<Key, HorizontalPodAutoscaler>,
    /// Serialized: the engine writes them and does not read them back.
    services: BTreeMap<Key, Encoded>,
    routes: BTreeMap<Key, Arc<HttpRoute>>,
    config_maps: BTreeMap<Key, ConfigMap>,
    secrets: BTreeMap<Key, Secret>,
    templates: BTreeMap<Key, MetricTemplate>,
    canaries: BTreeMap<Key, Arc<Canary>>,
    /// Cluster-scoped, by name.
    rollout_plugins: BTreeMap<String, RolloutPlugin>,
    events: EventLog,
    /// How many of the next event publications fail (an API outage).
    event_failures: usize,
    /// How many times the engine read a Deployment whole.
    deployment_reads: u64,
    /// Why the simulated Gateways refuse routes (reason, message), if they do.
    route_rejection: Option<(String, String)>,
}

/// See the module documentation. Cloning shares the same world.
#[derive(Clone, Default)]
pub struct MemoryCluster {
    world: Arc<Mutex<World>>,
}

fn replicas_of(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// The status the simulated Deployment controller reports for `sim` at
/// `tick`, when it becomes available `ready_after` ticks after a change.
fn simulated_status(sim: &SimDeployment, tick: u64, ready_after: u64) -> DeploymentStatus {
    let replicas = sim.replicas;
    let done = tick.saturating_sub(sim.rollout_started) >= ready_after;
    let available = if done {
        replicas
    } else {
        (replicas - 1).max(0)
    };
    DeploymentStatus {
        observed_generation: sim.generation,
        replicas: Some(replicas),
        updated_replicas: Some(replicas),
        ready_replicas: Some(available),
        available_replicas: Some(available),
        ..Default::default()
    }
}

impl World {
    /// A new `resourceVersion`, for an object being written.
    fn next_version(&mut self) -> Option<String> {
        self.version += 1;
        Some(self.version.to_string())
    }

    /// Recomputes a Deployment's status from how long its rollout has run
    /// (or sets the one a test pinned); a new status is a write.
    fn refresh(&mut self, k: &Key) {
        let ready_after = self.ready_after.get(k).copied().unwrap_or(0);
        let tick = self.tick;
        let pinned = self.pinned_status.get(k);
        let Some(sim) = self.deployments.get_mut(k) else {
            return;
        };
        let status = match pinned {
            Some(pinned) => pinned.clone(),
            None => simulated_status(sim, tick, ready_after),
        };
        // Unchanged status, no write.
        if sim.status.as_ref() != Some(&status) {
            sim.status = Some(status);
            self.version += 1;
            sim.version = self.version;
        }
    }
}

impl MemoryCluster {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, World> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Advances the simulated time by one tick: rollouts progress.
    pub fn advance_tick(&self) {
        let mut w = self.lock();
        w.tick += 1;
        let keys: Vec<Key> = w.deployments.keys().cloned().collect();
        for k in keys {
            w.refresh(&k);
        }
    }

    /// Makes the named Deployment take `ticks` ticks to become available
    /// after each change.
    pub fn set_ready_after(&self, namespace: &str, name: &str, ticks: u64) {
        let mut w = self.lock();
        let k = key(namespace, name);
        w.ready_after.insert(k.clone(), ticks);
        w.refresh(&k);
    }

    /// Gives the named Deployment this status (conditions included) until
    /// `None` hands it back to the simulated Deployment controller, as a
    /// test of what a real controller reports.
    pub fn pin_deployment_status(
        &self,
        namespace: &str,
        name: &str,
        status: Option<DeploymentStatus>,
    ) {
        let mut w = self.lock();
        let k = key(namespace, name);
        match status {
            Some(s) => {
                w.pinned_status.insert(k.clone(), s);
            }
            None => {
                w.pinned_status.remove(&k);
            }
        }
        w.refresh(&k);
    }

    /// Makes the simulated Gateways accept every route (`None`), or refuse
    /// them with `(reason, message)`; their status is rewritten at once.
    pub fn set_route_rejection(&self, rejection: Option<(String, String)>) {
        let mut w = self.lock();
        let tick = w.tick;
        let keys: Vec<Key> = w.routes.keys().cloned().collect();
        for k in keys {
            let version = w.next_version();
            if let Some(route) = w.routes.get_mut(&k) {
                let route = Arc::make_mut(route);
                report_route_status(route, rejection.as_ref(), tick);
                route.metadata.resource_version = version;
            }
        }
        w.route_rejection = rejection;
    }

    /// How many times the engine has read a Deployment whole (through
    /// [`Cluster::deployment`]), for tests of what a tick reads.
    pub fn deployment_reads(&self) -> u64 {
        self.lock().deployment_reads
    }

    /// Makes the next `n` event publications fail, as when the API server
    /// refuses them: the tick that publishes them fails after its writes.
    pub fn fail_event_publishing(&self, n: usize) {
        self.lock().event_failures = n;
    }

    /// Adds or replaces an object as a user would with `kubectl apply`.
    pub fn put_deployment(&self, d: Deployment) -> Result<()> {
        self.apply_deployment_sync(&d)
    }

    pub fn put_autoscaler(&self, h: HorizontalPodAutoscaler) -> Result<()> {
        let k = key_of(&h.metadata)?;
        self.lock().autoscalers.insert(k, h);
        Ok(())
    }

    pub fn put_config_map(&self, c: ConfigMap) -> Result<()> {
        let k = key_of(&c.metadata)?;
        let w = &mut *self.lock();
        put_versioned(&mut w.version, &mut w.config_maps, k, c);
        Ok(())
    }

    pub fn put_secret(&self, s: Secret) -> Result<()> {
        let k = key_of(&s.metadata)?;
        let w = &mut *self.lock();
        put_versioned(&mut w.version, &mut w.secrets, k, s);
        Ok(())
    }

    pub fn put_metric_template(&self, t: MetricTemplate) -> Result<()> {
        let k = key_of(&t.metadata)?;
        self.lock().templates.insert(k, t);
        Ok(())
    }

    /// Adds a Canary (with a generated uid, as an API server would).
    pub fn put_canary(&self, mut c: Canary) -> Result<Canary> {
        let k = key_of(&c.metadata)?;
        if c.metadata.uid.is_none() {
            c.metadata.uid = Some(format!("uid-{}-{}", k.0, k.1));
        }
        let mut w = self.lock();
        if let Some(old) = w.canaries.get(&k) {
            c.status = old.status.clone();
        }
        c.metadata.resource_version = w.next_version();
        w.canaries.insert(k, Arc::new(c.clone()));
        Ok(c)
    }

    /// Adds or replaces a RolloutPlugin (its status is kept, as the API
    /// server keeps a status across spec updates).
    pub fn put_rollout_plugin(&self, mut p: RolloutPlugin) -> Result<RolloutPlugin> {
        let name =
            p.metadata.name.clone().ok_or_else(|| {
                ClusterError::invalid("writing a RolloutPlugin", "it has no name")
            })?;
        let mut w = self.lock();
        let generation = w
            .rollout_plugins
            .get(&name)
            .and_then(|old| {
                p.status = old.status.clone();
                old.metadata.generation
            })
            .unwrap_or(0);
        p.metadata.generation = Some(generation + 1);
        w.rollout_plugins.insert(name, p.clone());
        Ok(p)
    }

    pub fn rollout_plugin(&self, name: &str) -> Option<RolloutPlugin> {
        self.lock().rollout_plugins.get(name).cloned()
    }

    /// A copy of the stored Canary.
    pub fn canary(&self, namespace: &str, name: &str) -> Option<Canary> {
        self.shared_canary(namespace, name)
            .map(Arc::unwrap_or_clone)
    }

    /// The stored Canary itself, shared (what a reconcile gets from a
    /// reflector store): no copy.
    pub fn shared_canary(&self, namespace: &str, name: &str) -> Option<Arc<Canary>> {
        self.lock().canaries.get(&key(namespace, name)).cloned()
    }

    /// The stored Service; `None` also when it cannot be decoded (it was
    /// encoded from a `Service`, so it always can).
    pub fn service(&self, namespace: &str, name: &str) -> Option<Service> {
        let w = self.lock();
        let stored = w.services.get(&key(namespace, name))?;
        stored.decode(&format!("service {namespace}/{name}")).ok()
    }

    pub fn route(&self, namespace: &str, name: &str) -> Option<HttpRoute> {
        self.shared_route(namespace, name).map(Arc::unwrap_or_clone)
    }

    fn shared_route(&self, namespace: &str, name: &str) -> Option<Arc<HttpRoute>> {
        self.lock().routes.get(&key(namespace, name)).cloned()
    }

    /// The stored Deployment; `None` also when it cannot be decoded (it
    /// was encoded from a `Deployment`, so it always can).
    pub fn get_deployment(&self, namespace: &str, name: &str) -> Option<Deployment> {
        self.read_deployment(namespace, name).ok().flatten()
    }

    fn read_deployment(&self, namespace: &str, name: &str) -> Result<Option<Deployment>> {
        let read = self
            .lock()
            .deployments
            .get(&key(namespace, name))
            .map(DeploymentRead::of);
        read.map(|r| r.decode(namespace, name)).transpose()
    }

    fn get_autoscaler(&self, namespace: &str, name: &str) -> Option<HorizontalPodAutoscaler> {
        self.lock().autoscalers.get(&key(namespace, name)).cloned()
    }

    /// Events recorded for a Canary, oldest first.
    pub fn events(&self, namespace: &str, name: &str) -> Vec<Event> {
        self.lock().events.of(&key(namespace, name))
    }

    /// Names of every object, "kind/namespace/name", for tests and `simulate`.
    pub fn inventory(&self) -> Vec<String> {
        let w = self.lock();
        let mut out = Vec::new();
        out.extend(
            w.deployments
                .keys()
                .map(|(ns, n)| format!("deployment.apps/{ns}/{n}")),
        );
        out.extend(
            w.autoscalers
                .keys()
                .map(|(ns, n)| format!("horizontalpodautoscaler.autoscaling/{ns}/{n}")),
        );
        out.extend(w.services.keys().map(|(ns, n)| format!("service/{ns}/{n}")));
        out.extend(
            w.routes
                .keys()
                .map(|(ns, n)| format!("httproutes.gateway.networking.k8s.io/{ns}/{n}")),
        );
        out
    }

    /// Writes `d` (its status and `resourceVersion` are the cluster's);
    /// a write that changes nothing is no write, as with an API server.
    fn apply_deployment_sync(&self, d: &Deployment) -> Result<()> {
        let k = key_of(&d.metadata)?;
        let what = format!("deployment {}/{}", k.0, k.1);
        let mut w = self.lock();
        let old = w.deployments.get(&k);
        let old = old
            .map(|o| o.stored.decode::<Deployment>(&what))
            .transpose()?;
        let (next, changed) = applied(old.as_ref(), d, &k);
        if old.as_ref() == Some(&next) {
            return Ok(());
        }
        let stored = Encoded::new(&next, &what)?;
        let tick = w.tick;
        let version = w.version + 1;
        w.version = version;
        let (status, started) = match w.deployments.get(&k) {
            Some(old) if !changed => (old.status.clone(), old.rollout_started),
            _ => (None, tick),
        };
        w.deployments.insert(
            k.clone(),
            SimDeployment {
                stored,
                status,
                version,
                generation: next.metadata.generation,
                replicas: replicas_of(&next),
                rollout_started: started,
            },
        );
        w.refresh(&k);
        Ok(())
    }
}

/// Stores `object` under `k` with a new `resourceVersion` (taken from the
/// cluster's `version`), unless it is what is stored already: a write that
/// changes nothing keeps the version, as with an API server.
fn put_versioned<T>(version: &mut u64, objects: &mut BTreeMap<Key, T>, k: Key, mut object: T)
where
    T: kube::Resource + PartialEq,
{
    let old = objects.get(&k);
    object.meta_mut().resource_version = old.and_then(|o| o.meta().resource_version.clone());
    if old == Some(&object) {
        return;
    }
    *version += 1;
    object.meta_mut().resource_version = Some(version.to_string());
    objects.insert(k, object);
}

/// `d` as applying it over `old` stores it (without status and
/// `resourceVersion`), and whether its spec changed: the generation moves
/// with the spec, the uid stays, and annotations others set are kept, as
/// server-side apply does.
fn applied(old: Option<&Deployment>, d: &Deployment, k: &Key) -> (Deployment, bool) {
    let mut next = d.clone();
    next.metadata.namespace = Some(k.0.clone());
    next.metadata.resource_version = None;
    next.status = None;
    let Some(old) = old else {
        next.metadata.generation = Some(1);
        next.metadata.uid = Some(format!("uid-deploy-{}-{}", k.0, k.1));
        return (next, true);
    };
    let changed = old.spec != next.spec;
    let generation = old.metadata.generation.unwrap_or(1);
    next.metadata.generation = Some(if changed { generation + 1 } else { generation });
    next.metadata.uid = old.metadata.uid.clone();
    let mut annotations = old.annotations().clone();
    annotations.extend(next.annotations().clone());
    next.metadata.annotations = (!annotations.is_empty()).then_some(annotations);
    (next, changed)
}

impl Cluster for MemoryCluster {
    async fn deployment(&self, namespace: &str, name: &str) -> Result<Option<Arc<Deployment>>> {
        self.lock().deployment_reads += 1;
        Ok(self.read_deployment(namespace, name)?.map(Arc::new))
    }

    async fn version(&self, kind: Kind, namespace: &str, name: &str) -> Result<Option<String>> {
        let w = self.lock();
        let k = key(namespace, name);
        let version = match kind {
            Kind::Deployment => w.deployments.get(&k).map(|d| d.version.to_string()),
            Kind::ConfigMap => w.config_maps.get(&k).and_then(|c| c.resource_version()),
            Kind::Secret => w.secrets.get(&k).and_then(|s| s.resource_version()),
            Kind::HttpRoute => w.routes.get(&k).and_then(|r| r.resource_version()),
        };
        Ok(version)
    }

    async fn apply_deployment(&self, deployment: &Deployment) -> Result<()> {
        self.apply_deployment_sync(deployment)
    }

    async fn scale_deployment(
        &self,
        namespace: &str,
        name: &str,
        replicas: i32,
    ) -> Result<Option<Arc<Deployment>>> {
        let Some(mut d) = self.read_deployment(namespace, name)? else {
            return Err(ClusterError::not_found(format!(
                "scaling Deployment {namespace}/{name}"
            )));
        };
        if d.spec.as_ref().and_then(|s| s.replicas) == Some(replicas) {
            // Already at that scale: the merge patch would change nothing.
            return Ok(Some(Arc::new(d)));
        }
        if let Some(spec) = d.spec.as_mut() {
            spec.replicas = Some(replicas);
        }
        self.apply_deployment_sync(&d)?;
        Ok(self.read_deployment(namespace, name)?.map(Arc::new))
    }

    async fn autoscaler(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<HorizontalPodAutoscaler>> {
        Ok(self.get_autoscaler(namespace, name))
    }

    async fn apply_autoscaler(&self, hpa: &HorizontalPodAutoscaler) -> Result<()> {
        self.put_autoscaler(hpa.clone())
    }

    async fn apply_service(&self, service: &Service) -> Result<()> {
        let k = key_of(&service.metadata)?;
        let what = format!("service {}/{}", k.0, k.1);
        let mut w = self.lock();
        let old: Option<Service> = w.services.get(&k).map(|s| s.decode(&what)).transpose()?;
        if old
            .as_ref()
            .is_some_and(|old| applies_nothing(old, service))
        {
            // A no-op apply: the API server writes nothing either.
            return Ok(());
        }
        let mut next = service.clone();
        if let Some(old) = &old {
            let mut annotations = old.annotations().clone();
            annotations.extend(next.annotations().clone());
            next.metadata.annotations = (!annotations.is_empty()).then_some(annotations);
        }
        w.services.insert(k, Encoded::new(&next, &what)?);
        Ok(())
    }

    async fn http_route(&self, namespace: &str, name: &str) -> Result<Option<Arc<HttpRoute>>> {
        Ok(self.shared_route(namespace, name))
    }

    async fn apply_http_route(&self, route: &HttpRoute) -> Result<Option<String>> {
        let k = key_of(&route.metadata)?;
        let mut w = self.lock();
        let mut next = route.clone();
        if let Some(old) = w.routes.get(&k) {
            // Server-side apply keeps labels and annotations owned by others.
            let mut annotations = old.annotations().clone();
            annotations.extend(next.annotations().clone());
            next.metadata.annotations = (!annotations.is_empty()).then_some(annotations);
            let mut labels = old.labels().clone();
            labels.extend(next.labels().clone());
            next.metadata.labels = (!labels.is_empty()).then_some(labels);
            next.status = old.status.clone();
            next.metadata.generation = old.metadata.generation;
            if old.spec != next.spec {
                next.metadata.generation = Some(old.metadata.generation.unwrap_or(0) + 1);
            }
        } else {
            next.metadata.generation = Some(1);
        }
        let rejection = w.route_rejection.clone();
        report_route_status(&mut next, rejection.as_ref(), w.tick);
        next.metadata.resource_version = w.next_version();
        let version = next.metadata.resource_version.clone();
        w.routes.insert(k, Arc::new(next));
        Ok(version)
    }

    async fn config_map(&self, namespace: &str, name: &str) -> Result<Option<ConfigMap>> {
        Ok(self.lock().config_maps.get(&key(namespace, name)).cloned())
    }

    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>> {
        Ok(self.lock().secrets.get(&key(namespace, name)).cloned())
    }

    async fn apply_config_map(&self, config_map: &ConfigMap) -> Result<()> {
        self.put_config_map(config_map.clone())
    }

    async fn apply_secret(&self, secret: &Secret) -> Result<()> {
        self.put_secret(secret.clone())
    }

    async fn metric_template(&self, namespace: &str, name: &str) -> Result<Option<MetricTemplate>> {
        Ok(self.lock().templates.get(&key(namespace, name)).cloned())
    }

    async fn update_canary_status(
        &self,
        canary: &Canary,
        status: &CanaryStatus,
    ) -> Result<Option<String>> {
        let k = key_of(&canary.metadata)?;
        let mut w = self.lock();
        let version = w.next_version();
        let stored = w.canaries.get_mut(&k).ok_or_else(|| {
            ClusterError::not_found(format!("writing the status of Canary {}/{}", k.0, k.1))
        })?;
        let stored = Arc::make_mut(stored);
        stored.status = Some(status.clone());
        stored.metadata.resource_version = version.clone();
        Ok(version)
    }

    async fn publish_event(&self, canary: &Canary, event: &Event) -> Result<()> {
        let k = key_of(&canary.metadata)?;
        let mut w = self.lock();
        if w.event_failures > 0 {
            w.event_failures -= 1;
            return Err(ClusterError::api(
                format!("publishing event {:?}", event.message),
                "the API server refused it (simulated)",
            ));
        }
        w.events.publish(&k, event);
        Ok(())
    }
}

impl crate::registration::PluginStatusWriter for MemoryCluster {
    async fn update_rollout_plugin_status(
        &self,
        plugin: &RolloutPlugin,
        status: &RolloutPluginStatus,
    ) -> Result<()> {
        let name = plugin.name_any();
        let mut w = self.lock();
        let stored = w.rollout_plugins.get_mut(&name).ok_or_else(|| {
            ClusterError::not_found(format!("writing the status of RolloutPlugin {name}"))
        })?;
        stored.status = Some(status.clone());
        Ok(())
    }
}

/// Whether applying `desired` over `stored` would change nothing: same
/// spec, labels and owners, and every desired annotation already there.
fn applies_nothing(stored: &Service, desired: &Service) -> bool {
    stored.spec == desired.spec
        && stored.metadata.labels == desired.metadata.labels
        && stored.metadata.owner_references == desired.metadata.owner_references
        && desired
            .annotations()
            .iter()
            .all(|(k, v)| stored.annotations().get(k) == Some(v))
}

/// What a Gateway controller writes on a route: for each parent, Accepted
/// and ResolvedRefs for the route's generation.
fn report_route_status(route: &mut HttpRoute, rejection: Option<&(String, String)>, tick: u64) {
    use gateway_api::apis::experimental::httproutes::{
        HttpRouteStatus, HttpRouteStatusParents, HttpRouteStatusParentsParentRef,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    let generation = route.metadata.generation;
    let since =
        Time(jiff::Timestamp::from_second(tick as i64 * 60).unwrap_or(jiff::Timestamp::UNIX_EPOCH));
    let condition = |kind: &str, ok: bool, reason: &str, message: &str| Condition {
        type_: kind.to_string(),
        status: if ok { "True" } else { "False" }.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        observed_generation: generation,
        last_transition_time: since.clone(),
    };
    let parents = route
        .spec
        .parent_refs
        .iter()
        .flatten()
        .map(|p| HttpRouteStatusParents {
            conditions: vec![
                match rejection {
                    None => condition("Accepted", true, "Accepted", "Route is accepted"),
                    Some((reason, message)) => condition("Accepted", false, reason, message),
                },
                condition(
                    "ResolvedRefs",
                    true,
                    "ResolvedRefs",
                    "Resolved all the Object references",
                ),
            ],
            controller_name: "sluice.dev/simulated-gateway".into(),
            parent_ref: HttpRouteStatusParentsParentRef {
                group: p.group.clone(),
                kind: p.kind.clone(),
                name: p.name.clone(),
                namespace: p.namespace.clone(),
                section_name: p.section_name.clone(),
                port: p.port,
            },
        })
        .collect();
    route.status = Some(HttpRouteStatus { parents });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(annotations: &[(&str, &str)], port: i32) -> Service {
        let mut s: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "podinfo-canary", "namespace": "test"},
            "spec": {"selector": {"app": "podinfo"}, "ports": [{"port": port}]}
        }))
        .expect("service");
        let annotations: BTreeMap<String, String> = annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        s.metadata.annotations = (!annotations.is_empty()).then_some(annotations);
        s
    }

    #[tokio::test]
    async fn a_stored_service_keeps_annotations_others_set_across_applies() {
        let cluster = MemoryCluster::new();
        cluster
            .apply_service(&service(&[("mesh/inject", "true")], 9898))
            .await
            .expect("first apply");
        // Sluice applies its own render, without the other writer's key.
        cluster
            .apply_service(&service(&[("sluice.dev/owner", "podinfo")], 9999))
            .await
            .expect("second apply");
        let stored = cluster.service("test", "podinfo-canary").expect("stored");
        let annotations = stored.metadata.annotations.expect("annotations");
        assert_eq!(
            annotations.get("mesh/inject").map(String::as_str),
            Some("true")
        );
        assert_eq!(
            annotations.get("sluice.dev/owner").map(String::as_str),
            Some("podinfo")
        );
        let port = stored.spec.and_then(|s| s.ports).map(|p| p[0].port);
        assert_eq!(port, Some(9999));
        assert!(cluster.service("test", "missing").is_none());
    }

    fn deployment(image: &str) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "podinfo", "namespace": "test", "labels": {"app": "podinfo"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "podinfo"}},
                "template": {
                    "metadata": {"labels": {"app": "podinfo"}},
                    "spec": {"containers": [{"name": "app", "image": image}]}
                }
            }
        }))
        .expect("deployment")
    }

    #[tokio::test]
    async fn a_stored_deployment_reads_back_whole_with_a_version_every_write_changes() {
        let cluster = MemoryCluster::new();
        let version = async || {
            cluster
                .version(Kind::Deployment, "test", "podinfo")
                .await
                .expect("version")
        };
        assert_eq!(version().await, None);
        cluster.set_ready_after("test", "podinfo", 1);
        cluster
            .put_deployment(deployment("podinfo:1"))
            .expect("put");
        let read = cluster.get_deployment("test", "podinfo").expect("stored");
        assert_eq!(read.spec, deployment("podinfo:1").spec);
        assert_eq!(
            read.metadata.labels,
            deployment("podinfo:1").metadata.labels
        );
        assert_eq!(read.metadata.generation, Some(1));
        let v1 = version().await;
        assert!(v1.is_some());
        assert_eq!(read.metadata.resource_version, v1);
        let available = |d: &Deployment| d.status.as_ref().and_then(|s| s.available_replicas);
        assert_eq!(available(&read), Some(1), "still rolling out");

        // The simulated controller's status write is a write…
        cluster.advance_tick();
        let rolled_out = cluster.get_deployment("test", "podinfo").expect("stored");
        assert_eq!(available(&rolled_out), Some(2));
        let v2 = version().await;
        assert_ne!(v2, v1);
        // …a tick that changes no status is none, nor an apply of the same.
        cluster.advance_tick();
        cluster
            .put_deployment(deployment("podinfo:1"))
            .expect("put");
        assert_eq!(version().await, v2);

        // Scaling returns the Deployment as written.
        let scaled = cluster
            .scale_deployment("test", "podinfo", 0)
            .await
            .expect("scale")
            .expect("returned");
        assert_eq!(scaled.spec.as_ref().and_then(|s| s.replicas), Some(0));
        assert_eq!(scaled.metadata.generation, Some(2));
        assert_eq!(scaled.metadata.resource_version, version().await);
        assert_ne!(version().await, v2);
    }

    #[tokio::test]
    async fn a_config_map_or_secret_gets_a_new_version_only_when_it_changes() {
        let cluster = MemoryCluster::new();
        let config = |value: &str| -> ConfigMap {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "settings", "namespace": "test"}, "data": {"k": value}
            }))
            .expect("a ConfigMap")
        };
        let version = async |kind| {
            cluster
                .version(kind, "test", "settings")
                .await
                .expect("read")
        };
        assert_eq!(version(Kind::ConfigMap).await, None);
        cluster.put_config_map(config("1")).expect("put");
        let v1 = version(Kind::ConfigMap).await;
        assert!(v1.is_some());
        cluster.put_config_map(config("1")).expect("put");
        assert_eq!(version(Kind::ConfigMap).await, v1, "no change, no write");
        cluster.put_config_map(config("2")).expect("put");
        assert_ne!(version(Kind::ConfigMap).await, v1);
        let stored = cluster.config_map("test", "settings").await.expect("read");
        assert_eq!(
            stored.and_then(|c| c.metadata.resource_version),
            version(Kind::ConfigMap).await
        );

        let secret: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "settings", "namespace": "test"}, "stringData": {"k": "v"}
        }))
        .expect("a Secret");
        assert_eq!(version(Kind::Secret).await, None);
        cluster.put_secret(secret).expect("put");
        assert!(version(Kind::Secret).await.is_some());
    }
}
