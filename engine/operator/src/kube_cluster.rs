//! [`Cluster`] against a real API server, through kube-rs.
//!
//! Semantics follow [`sluice_rollout::cluster::memory::MemoryCluster`], the reference:
//!
//! - reads are plain GETs; a missing object is `Ok(None)`;
//! - the objects Sluice generates (primary Deployment, its
//!   HorizontalPodAutoscaler, the three Services, the HTTPRoute) are written
//!   by server-side apply under one field manager, forcing ownership of the
//!   fields Sluice sets and leaving every other field alone: labels and
//!   annotations users or other controllers put on the HTTPRoute, replicas an
//!   HPA wrote, a Service's cluster IP;
//! - the target is scaled with a merge patch of `spec.replicas` only;
//! - the Canary status goes to the status subresource with the
//!   `resourceVersion` the engine read, so a write based on a stale Canary
//!   fails with 409 ([`ClusterError::Conflict`]) instead of overwriting newer
//!   state;
//! - events go through kube-rs' [`Recorder`] (`events.k8s.io/v1`).
//!
//! [`RBAC_RULES`] lists every permission the operator needs; the deploy
//! manifests are checked against it.

use std::fmt::Debug;
use std::sync::Arc;

use ::kube::api::{Api, Patch, PatchParams, PostParams};
use ::kube::runtime::events::{Event as KubeEvent, EventType as KubeEventType, Recorder, Reporter};
use ::kube::{Client, Resource, ResourceExt};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Secret, Service};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use sluice_rollout::router::HttpRoute;

use crate::leader::Fence;
use sluice_api::{AlertProvider, Canary, CanaryStatus, MetricTemplate};
use sluice_rollout::cluster::{Cluster, ClusterError, Event, EventType, Kind, Result};

/// The field manager (and event reporter) Sluice writes as by default.
const DEFAULT_FIELD_MANAGER: &str = "sluice";

/// The namespace of an object that names none, as in the in-memory cluster.
const DEFAULT_NAMESPACE: &str = "default";

/// The API server limits an event's note to 1 KiB and its reason and action
/// to 128 characters; a longer one is rejected, and the tick that emitted it
/// would fail over and over.
const MAX_NOTE_BYTES: usize = 1024;
const MAX_REASON_BYTES: usize = 128;

/// One ClusterRole rule: `verbs` on `resource` of `api_group` ("" is the
/// core group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RbacRule {
    pub api_group: &'static str,
    pub resource: &'static str,
    pub verbs: &'static [&'static str],
}

const fn rule(
    api_group: &'static str,
    resource: &'static str,
    verbs: &'static [&'static str],
) -> RbacRule {
    RbacRule {
        api_group,
        resource,
        verbs,
    }
}

/// Every permission the operator uses, and no other. The ClusterRoles in
/// `deploy/` must grant exactly these (a test compares them).
///
/// Server-side apply of an object that does not exist yet creates it, which
/// the API server authorizes as `create` as well as `patch`.
pub const RBAC_RULES: &[RbacRule] = &[
    // The controller watches Canaries and adds/removes its finalizer (a
    // JSON patch of metadata.finalizers).
    rule("sluice.dev", "canaries", &["get", "list", "watch", "patch"]),
    // `update_canary_status`: server-side apply on the status subresource.
    rule("sluice.dev", "canaries/status", &["patch"]),
    // Generated objects carry an owner reference to their Canary with
    // blockOwnerDeletion, which requires `update` on the owner's finalizers.
    rule("sluice.dev", "canaries/finalizers", &["update"]),
    // `metric_template`; the controller watches them (a change wakes the
    // Canaries).
    rule("sluice.dev", "metrictemplates", &["get", "list", "watch"]),
    // Alert destinations named by `analysis.alerts`.
    rule("sluice.dev", "alertproviders", &["get"]),
    // Registered plugins: watched, finalized (unregistered on deletion),
    // their load result written to the status subresource.
    rule("sluice.dev", "rolloutplugins", &["list", "watch", "patch"]),
    rule("sluice.dev", "rolloutplugins/status", &["patch"]),
    // Target reads and watch, primary apply, target scaling (merge patch).
    rule(
        "apps",
        "deployments",
        &["get", "list", "watch", "create", "patch"],
    ),
    // The primary's autoscaler: read the target's, apply the primary's.
    rule(
        "autoscaling",
        "horizontalpodautoscalers",
        &["get", "create", "patch"],
    ),
    // The apex, primary and canary Services (apply only).
    rule("", "services", &["create", "patch"]),
    // Configuration the target uses: a change is a new revision (watched),
    // and the primary gets applied copies of it.
    rule(
        "",
        "configmaps",
        &["get", "list", "watch", "create", "patch"],
    ),
    rule("", "secrets", &["get", "list", "watch", "create", "patch"]),
    // The HTTPRoute: read, apply.
    rule(
        "gateway.networking.k8s.io",
        "httproutes",
        &["get", "create", "patch"],
    ),
    // The Recorder creates an event, then patches it into a series when
    // the same event repeats.
    rule("events.k8s.io", "events", &["create", "patch"]),
    // Leader election (`leader`: read, create, then renew or take over by
    // a replace carrying the resourceVersion read).
    rule(
        "coordination.k8s.io",
        "leases",
        &["get", "create", "update"],
    ),
];

/// The error of `action` that kube-rs answered with `err`: a 409 is a
/// [`ClusterError::Conflict`] (nothing was written; re-read and retry), any
/// other failure an [`ClusterError::Api`] that keeps the kube-rs error.
pub(crate) fn kube_error(action: String, err: ::kube::Error) -> ClusterError {
    match &err {
        ::kube::Error::Api(status) if status.code == 409 => ClusterError::Conflict {
            action,
            source: Some(Box::new(err)),
        },
        _ => ClusterError::api(action, err),
    }
}

/// Whether running the tick again later may succeed without anyone changing
/// anything: a conflict, throttling, an unavailable or failing API server,
/// or a transport error. Invalid objects and missing permissions are not.
pub fn is_retryable(err: &ClusterError) -> bool {
    match err {
        ClusterError::Conflict { .. } => true,
        ClusterError::Api { source, .. } => match source.downcast_ref::<::kube::Error>() {
            Some(::kube::Error::Api(status)) => {
                matches!(status.code, 408 | 429 | 500 | 502 | 503 | 504)
            }
            Some(::kube::Error::HyperError(_) | ::kube::Error::Service(_)) => true,
            _ => false,
        },
        ClusterError::NotFound { .. }
        | ClusterError::Invalid { .. }
        | ClusterError::NotLeader { .. } => false,
    }
}

/// See the module documentation. Cloning shares the client and the event
/// recorder (and so its de-duplication cache).
#[derive(Clone)]
pub struct KubeCluster {
    client: Client,
    field_manager: String,
    recorder: Recorder,
    /// Who reports the events (the recorder's, for named events).
    reporter: Reporter,
    /// Writes are sent only while this says so (leader election).
    fence: Fence,
}

impl KubeCluster {
    /// A cluster that writes as field manager "sluice" and reports events as
    /// controller "sluice" from this host (the pod's name in a cluster).
    pub fn new(client: Client) -> Self {
        let reporter = Reporter::from(DEFAULT_FIELD_MANAGER);
        let recorder = Recorder::new(client.clone(), reporter.clone());
        Self {
            client,
            field_manager: DEFAULT_FIELD_MANAGER.to_string(),
            recorder,
            reporter,
            fence: Fence::open(),
        }
    }

    /// Writes only while `fence` says this replica leads: a replica that
    /// lost its Lease (or whose renew hangs) stops writing at once.
    pub(crate) fn with_fence(mut self, fence: Fence) -> Self {
        self.fence = fence;
        self
    }

    /// `Err(NotLeader)` unless this replica may write now.
    fn may_write(&self, action: impl FnOnce() -> String) -> Result<()> {
        if self.fence.is_leading() {
            Ok(())
        } else {
            Err(ClusterError::NotLeader { action: action() })
        }
    }

    /// Writes as another field manager: two operators sharing a cluster must
    /// not take each other's fields.
    pub fn with_field_manager(mut self, field_manager: impl Into<String>) -> Self {
        self.field_manager = field_manager.into();
        self
    }

    /// Reports events as `reporter` (controller name and instance).
    pub fn with_reporter(mut self, reporter: Reporter) -> Self {
        self.recorder = Recorder::new(self.client.clone(), reporter.clone());
        self.reporter = reporter;
        self
    }

    /// Creates an event of a fixed name (events.k8s.io/v1), as the
    /// recorder would; one that exists already was published before (a
    /// tick redone after a restart) and is left as it is.
    async fn create_named_event(
        &self,
        name: &str,
        event: &Event,
        regarding: ObjectReference,
    ) -> std::result::Result<(), ::kube::Error> {
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
        let e = kube_event(event);
        let body = K8sEvent {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            action: Some(e.action),
            reason: Some(e.reason),
            note: e.note,
            type_: Some(
                match event.event_type {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .to_string(),
            ),
            event_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
            regarding: Some(regarding),
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| self.reporter.controller.clone()),
            ),
            ..Default::default()
        };
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &namespace);
        match api.create(&PostParams::default(), &body).await {
            Ok(_) => Ok(()),
            Err(::kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// An AlertProvider, for the notifier (`analysis.alerts`).
    pub async fn alert_provider(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<AlertProvider>> {
        self.get(namespace, name).await
    }

    pub fn field_manager(&self) -> &str {
        &self.field_manager
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    fn api<K>(&self, namespace: &str) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), namespace)
    }

    async fn get<K>(&self, namespace: &str, name: &str) -> Result<Option<K>>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + Debug,
    {
        self.api::<K>(namespace)
            .get_opt(name)
            .await
            .map_err(|e| kube_error(format!("reading {} {namespace}/{name}", K::kind(&())), e))
    }

    /// The `resourceVersion` of a `K`, by a metadata-only GET.
    async fn version_of<K>(&self, namespace: &str, name: &str) -> Result<Option<String>>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + Debug,
    {
        let meta = self
            .api::<K>(namespace)
            .get_metadata_opt(name)
            .await
            .map_err(|e| kube_error(format!("reading {} {namespace}/{name}", K::kind(&())), e))?;
        Ok(meta.and_then(|m| m.metadata.resource_version))
    }

    /// Server-side applies `object` as this cluster's field manager, forcing
    /// ownership of the fields it sets.
    async fn apply<K>(&self, object: &K) -> Result<()>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + Serialize
            + DeserializeOwned
            + Debug,
    {
        self.apply_at(object, None).await.map(drop)
    }

    /// [`Self::apply`], preconditioned on `version` (the `resourceVersion`
    /// read) when given: it fails with 409 if the object changed since.
    async fn apply_at<K>(&self, object: &K, version: Option<String>) -> Result<Option<String>>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + Serialize
            + DeserializeOwned
            + Debug,
    {
        let kind = K::kind(&());
        let name = object.meta().name.clone().ok_or_else(|| {
            ClusterError::invalid(format!("applying a {kind}"), "it has no metadata.name")
        })?;
        let namespace = object
            .meta()
            .namespace
            .clone()
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
        let action = || format!("applying {kind} {namespace}/{name}");
        self.may_write(action)?;
        let mut body =
            apply_body(object, &namespace).map_err(|why| ClusterError::invalid(action(), why))?;
        if let (Some(version), Some(meta)) = (version, body["metadata"].as_object_mut()) {
            meta.insert("resourceVersion".into(), version.into());
        }
        let params = PatchParams::apply(&self.field_manager).force();
        let applied = self
            .api::<K>(&namespace)
            .patch(&name, &params, &Patch::Apply(&body))
            .await
            .map_err(|e| kube_error(action(), e))?;
        Ok(applied.meta().resource_version.clone())
    }
}

/// The apply configuration of `object`: the object as the engine built it,
/// minus what the server owns. The engine may hand over an object it read,
/// and the API server rejects an apply carrying `managedFields`, while a
/// stale `resourceVersion` would turn the apply into a precondition that
/// fails; `status` belongs to the status subresource.
fn apply_body<K>(object: &K, namespace: &str) -> Result<serde_json::Value, String>
where
    K: Resource<DynamicType = ()> + Serialize,
{
    let mut body =
        serde_json::to_value(object).map_err(|e| format!("it does not serialise: {e}"))?;
    let map = body
        .as_object_mut()
        .ok_or("it did not serialize to a JSON object")?;
    map.remove("status");
    // kube-derive and k8s-openapi types serialize these already; set them
    // anyway, an apply without them is rejected.
    map.insert("apiVersion".into(), K::api_version(&()).into());
    map.insert("kind".into(), K::kind(&()).into());
    let meta = map
        .entry("metadata")
        .or_insert_with(|| serde_json::json!({}))
        .as_object_mut()
        .ok_or("its metadata is not a JSON object")?;
    for server_owned in [
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "selfLink",
    ] {
        meta.remove(server_owned);
    }
    meta.insert("namespace".into(), namespace.into());
    Ok(body)
}

/// The status patch: server-side apply of `status` alone, preconditioned on
/// the `resourceVersion` of the Canary the engine read. Apply rather than a
/// merge patch, because a merge patch would keep status fields the engine
/// has cleared (they are omitted, not null, in its JSON).
fn status_patch(canary: &Canary, status: &CanaryStatus) -> Result<serde_json::Value> {
    let action = "writing the status of a Canary";
    let mut metadata = serde_json::Map::new();
    metadata.insert(
        "name".into(),
        canary
            .metadata
            .name
            .clone()
            .ok_or_else(|| ClusterError::invalid(action, "it has no metadata.name"))?
            .into(),
    );
    if let Some(ns) = &canary.metadata.namespace {
        metadata.insert("namespace".into(), ns.clone().into());
    }
    if let Some(rv) = &canary.metadata.resource_version {
        metadata.insert("resourceVersion".into(), rv.clone().into());
    }
    Ok(serde_json::json!({
        "apiVersion": Canary::api_version(&()),
        "kind": Canary::kind(&()),
        "metadata": metadata,
        "status": serde_json::to_value(status)
            .map_err(|e| ClusterError::invalid(action, format!("the status does not serialise: {e}")))?,
    }))
}

/// The kube-rs event for `event`.
///
/// The Recorder folds an event into an earlier one (as a series, keeping the
/// earlier note) when their type, reason and action match, whatever the
/// note. Flagger's events all have reason "Synced", so a fixed action would
/// turn "Advance podinfo.test canary weight 20" into a repeat of "... weight
/// 10". The action is therefore derived from the message: the same message
/// repeats as a series, a new one is a new event.
fn kube_event(event: &Event) -> KubeEvent {
    let digest = Sha256::digest(event.message.as_bytes());
    KubeEvent {
        type_: match event.event_type {
            EventType::Normal => KubeEventType::Normal,
            EventType::Warning => KubeEventType::Warning,
        },
        reason: truncate(&event.reason, MAX_REASON_BYTES),
        note: Some(truncate(&event.message, MAX_NOTE_BYTES)),
        action: format!("Analysis-{}", hex::encode(&digest[..6])),
        secondary: None,
    }
}

/// `s` cut to at most `max` bytes on a character boundary, marked with "…".
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let ellipsis = "…";
    let mut end = max - ellipsis.len();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ellipsis}", &s[..end])
}

fn namespace_of(canary: &Canary) -> String {
    canary
        .namespace()
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string())
}

impl Cluster for KubeCluster {
    async fn deployment(&self, namespace: &str, name: &str) -> Result<Option<Arc<Deployment>>> {
        Ok(self.get(namespace, name).await?.map(Arc::new))
    }

    /// A metadata-only GET (`as=PartialObjectMetadata`): the API server
    /// sends the object's metadata, not its spec, data or status.
    async fn version(&self, kind: Kind, namespace: &str, name: &str) -> Result<Option<String>> {
        match kind {
            Kind::Deployment => self.version_of::<Deployment>(namespace, name).await,
            Kind::ConfigMap => self.version_of::<ConfigMap>(namespace, name).await,
            Kind::Secret => self.version_of::<Secret>(namespace, name).await,
            Kind::HttpRoute => self.version_of::<HttpRoute>(namespace, name).await,
        }
    }

    async fn apply_deployment(&self, deployment: &Deployment) -> Result<()> {
        self.apply(deployment).await
    }

    /// A merge patch of `spec.replicas` alone: the target belongs to the
    /// user, so nothing else of it is touched (and it is not applied, which
    /// would take ownership of its whole spec).
    async fn scale_deployment(
        &self,
        namespace: &str,
        name: &str,
        replicas: i32,
    ) -> Result<Option<Arc<Deployment>>> {
        let params = PatchParams {
            field_manager: Some(self.field_manager.clone()),
            ..PatchParams::default()
        };
        self.may_write(|| format!("scaling Deployment {namespace}/{name} to {replicas}"))?;
        let patch = serde_json::json!({ "spec": { "replicas": replicas } });
        let scaled = self
            .api::<Deployment>(namespace)
            .patch(name, &params, &Patch::Merge(&patch))
            .await
            .map_err(|e| {
                kube_error(
                    format!("scaling Deployment {namespace}/{name} to {replicas}"),
                    e,
                )
            })?;
        Ok(Some(Arc::new(scaled)))
    }

    async fn autoscaler(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<HorizontalPodAutoscaler>> {
        self.get(namespace, name).await
    }

    async fn apply_autoscaler(&self, hpa: &HorizontalPodAutoscaler) -> Result<()> {
        self.apply(hpa).await
    }

    async fn apply_service(&self, service: &Service) -> Result<()> {
        self.apply(service).await
    }

    async fn http_route(&self, namespace: &str, name: &str) -> Result<Option<Arc<HttpRoute>>> {
        Ok(self.get(namespace, name).await?.map(Arc::new))
    }

    /// Preconditioned on the route's `resourceVersion` read just before: a
    /// route write whose call failed (a timeout) may still reach the API
    /// server later, and without it, once a newer route was written, it
    /// would move the traffic back to an old step (onto a canary already
    /// scaled down). With it, such a late write fails with 409.
    async fn apply_http_route(&self, route: &HttpRoute) -> Result<Option<String>> {
        let namespace = route
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
        let version = match &route.metadata.name {
            Some(name) => self
                .get::<HttpRoute>(&namespace, name)
                .await?
                .and_then(|current| current.metadata.resource_version),
            None => None,
        };
        self.apply_at(route, version).await
    }

    async fn config_map(&self, namespace: &str, name: &str) -> Result<Option<ConfigMap>> {
        self.get(namespace, name).await
    }

    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>> {
        self.get(namespace, name).await
    }

    async fn apply_config_map(&self, config_map: &ConfigMap) -> Result<()> {
        self.apply(config_map).await
    }

    async fn apply_secret(&self, secret: &Secret) -> Result<()> {
        self.apply(secret).await
    }

    async fn metric_template(&self, namespace: &str, name: &str) -> Result<Option<MetricTemplate>> {
        self.get(namespace, name).await
    }

    async fn update_canary_status(
        &self,
        canary: &Canary,
        status: &CanaryStatus,
    ) -> Result<Option<String>> {
        let namespace = namespace_of(canary);
        let name = canary.name_any();
        self.may_write(|| format!("writing the status of Canary {namespace}/{name}"))?;
        let body = status_patch(canary, status)?;
        let params = PatchParams::apply(&self.field_manager).force();
        let written = self
            .api::<Canary>(&namespace)
            .patch_status(&name, &params, &Patch::Apply(&body))
            .await
            .map_err(|e| {
                kube_error(
                    format!("writing the status of Canary {namespace}/{name}"),
                    e,
                )
            })?;
        Ok(written.metadata.resource_version)
    }

    async fn publish_event(&self, canary: &Canary, event: &Event) -> Result<()> {
        self.may_write(|| format!("publishing event {:?}", event.message))?;
        let mut regarding = canary.object_ref(&());
        if regarding.namespace.is_none() {
            regarding.namespace = Some(DEFAULT_NAMESPACE.to_string());
        }
        let published = match &event.name {
            Some(name) => self.create_named_event(name, event, regarding).await,
            None => self.recorder.publish(&kube_event(event), &regarding).await,
        };
        published.map_err(|e| {
            let action = format!(
                "publishing event {:?} for Canary {}/{}",
                event.message,
                namespace_of(canary),
                canary.name_any()
            );
            kube_error(action, e)
        })
    }
}

/// RolloutPlugin status, written with server-side apply on the status
/// subresource.
impl sluice_rollout::registration::PluginStatusWriter for KubeCluster {
    async fn update_rollout_plugin_status(
        &self,
        plugin: &sluice_api::RolloutPlugin,
        status: &sluice_api::RolloutPluginStatus,
    ) -> Result<()> {
        self.may_write(|| format!("writing the status of RolloutPlugin {}", plugin.name_any()))?;
        let api: Api<sluice_api::RolloutPlugin> = Api::all(self.client().clone());
        let body = serde_json::json!({
            "apiVersion": "sluice.dev/v1beta1",
            "kind": "RolloutPlugin",
            "status": status,
        });
        api.patch_status(
            &plugin.name_any(),
            &PatchParams::apply(self.field_manager()).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(|e| {
            kube_error(
                format!("writing the status of RolloutPlugin {}", plugin.name_any()),
                e,
            )
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_keeps_short_text_and_cuts_on_char_boundaries() {
        assert_eq!(truncate("abc", 10), "abc");
        let long = "é".repeat(600); // 1200 bytes
        let cut = truncate(&long, MAX_NOTE_BYTES);
        assert!(cut.len() <= MAX_NOTE_BYTES, "{}", cut.len());
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn rbac_rules_name_each_resource_once() {
        let mut seen = std::collections::BTreeSet::new();
        for r in RBAC_RULES {
            assert!(seen.insert((r.api_group, r.resource)), "{r:?} twice");
            assert!(!r.verbs.is_empty());
            assert!(!r.verbs.contains(&"*") && r.resource != "*");
        }
    }
}
