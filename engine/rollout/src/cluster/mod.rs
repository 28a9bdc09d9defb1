//! Cluster I/O behind a narrow trait. The analysis engine reads and writes
//! the cluster only through [`Cluster`]; [`memory::MemoryCluster`] holds
//! real `k8s-openapi` and Gateway API objects for the simulator and tests;
//! the operator's `KubeCluster` (crate `sluice-operator`) talks to an API
//! server through kube-rs.

mod error;
pub mod memory;

pub use error::{BoxError, ClusterError, Result, chain};

use std::future::Future;
use std::sync::Arc;

use crate::router::HttpRoute;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use serde::Serialize;

use sluice_api::{Canary, CanaryStatus, MetricTemplate};

/// The kinds whose `resourceVersion` alone a tick at rest reads: what it
/// derives the revision and readiness from, and its route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Deployment,
    ConfigMap,
    Secret,
    HttpRoute,
}

/// Kubernetes event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EventType {
    Normal,
    Warning,
}

/// An event about a Canary, as `kubectl describe canary` lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub reason: String,
    pub message: String,
    /// A fixed name makes publishing idempotent: a cluster publishes an
    /// event of a name it already has only once. `None`: a fresh name.
    #[serde(skip)]
    pub name: Option<String>,
}

impl Event {
    /// Flagger records every rollout event with reason "Synced".
    pub fn normal(message: impl Into<String>) -> Self {
        Self {
            event_type: EventType::Normal,
            reason: "Synced".into(),
            message: message.into(),
            name: None,
        }
    }

    pub fn warning(message: impl Into<String>) -> Self {
        Self {
            event_type: EventType::Warning,
            reason: "Synced".into(),
            message: message.into(),
            name: None,
        }
    }

    /// The event as the status keeps it until it is published.
    pub fn to_pending(&self, name: String) -> sluice_api::PendingEvent {
        sluice_api::PendingEvent {
            name,
            event_type: match self.event_type {
                EventType::Normal => "Normal",
                EventType::Warning => "Warning",
            }
            .to_string(),
            reason: self.reason.clone(),
            message: self.message.clone(),
        }
    }

    /// A pending event of the status, with its fixed name.
    pub fn from_pending(p: &sluice_api::PendingEvent) -> Self {
        Self {
            event_type: if p.event_type == "Warning" {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: p.reason.clone(),
            message: p.message.clone(),
            name: Some(p.name.clone()),
        }
    }
}

/// Everything the engine needs from a cluster. Writes are declarative
/// ("apply"): an implementation creates the object or brings it to the given
/// state, keeping fields it does not own (e.g. annotations set by others).
pub trait Cluster: Send + Sync {
    fn deployment(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<Arc<Deployment>>>> + Send;
    /// The object's `resourceVersion` alone (a metadata-only read);
    /// `None` when it does not exist or has none.
    fn version(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<String>>> + Send;
    fn apply_deployment(&self, deployment: &Deployment) -> impl Future<Output = Result<()>> + Send;
    /// Sets the Deployment's replicas; returns it as the write left it,
    /// when the cluster gives it back.
    fn scale_deployment(
        &self,
        namespace: &str,
        name: &str,
        replicas: i32,
    ) -> impl Future<Output = Result<Option<Arc<Deployment>>>> + Send;

    fn autoscaler(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<HorizontalPodAutoscaler>>> + Send;
    fn apply_autoscaler(
        &self,
        hpa: &HorizontalPodAutoscaler,
    ) -> impl Future<Output = Result<()>> + Send;

    fn apply_service(&self, service: &Service) -> impl Future<Output = Result<()>> + Send;

    fn http_route(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<Arc<HttpRoute>>>> + Send;
    /// Writes `route`; returns its new `resourceVersion`, when the cluster
    /// gives one.
    fn apply_http_route(
        &self,
        route: &HttpRoute,
    ) -> impl Future<Output = Result<Option<String>>> + Send;

    fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<ConfigMap>>> + Send;
    fn secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<Secret>>> + Send;
    /// The primary's copies of tracked ConfigMaps and Secrets.
    fn apply_config_map(&self, config_map: &ConfigMap) -> impl Future<Output = Result<()>> + Send;
    fn apply_secret(&self, secret: &Secret) -> impl Future<Output = Result<()>> + Send;

    fn metric_template(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<MetricTemplate>>> + Send;

    /// Writes the status subresource of `canary`; returns the Canary's new
    /// `resourceVersion`, when the cluster gives one.
    fn update_canary_status(
        &self,
        canary: &Canary,
        status: &CanaryStatus,
    ) -> impl Future<Output = Result<Option<String>>> + Send;
    /// Publishes an event about `canary`. An event with a
    /// [name](Event::name) the cluster already has is not published again.
    fn publish_event(
        &self,
        canary: &Canary,
        event: &Event,
    ) -> impl Future<Output = Result<()>> + Send;
}
