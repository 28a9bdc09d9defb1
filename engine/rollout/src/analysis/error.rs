//! Why a tick could not finish. Everything a user can fix (a bad spec, a
//! missing object the pods need, a plugin fault) is not an error: the tick
//! reports it in the Canary's status and events and ends normally. What is
//! left here is what the controller retries.

use thiserror::Error;

use crate::cluster::ClusterError;

#[derive(Debug, Error)]
pub enum TickError {
    /// Reading or writing the cluster failed; a conflict is retried at once.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The target Deployment cannot be copied into a primary and Services.
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    /// An object the tick created or read a moment ago is gone.
    #[error("{0} is missing")]
    Missing(String),
}

impl TickError {
    /// Whether the tick should be retried at once (a 409 on a write).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Cluster(e) if e.is_conflict())
    }
}

/// What the target Deployment lacks for Sluice to derive its primary.
#[derive(Debug, Error)]
pub enum WorkloadError {
    #[error("the target Deployment has no spec.selector.matchLabels")]
    NoSelector,
    #[error("the target Deployment's selector has none of the labels {0}; add one")]
    NoSelectorLabel(String),
    #[error("the target Deployment has no spec")]
    NoSpec,
    #[error("the target's HorizontalPodAutoscaler has no spec")]
    NoAutoscalerSpec,
}

/// The result of a tick step.
pub type Result<T, E = TickError> = std::result::Result<T, E>;
