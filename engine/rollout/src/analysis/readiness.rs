//! Is a Deployment's rollout finished? The same test as
//! `kubectl rollout status`, worded as Flagger words it.

use k8s_openapi::api::apps::v1::Deployment;

/// Why a Deployment's rollout has not finished, in Flagger's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    #[error("waiting for the deployment status")]
    NoStatus,
    #[error("observed deployment generation less than desired generation")]
    OldGeneration,
    #[error("deployment {0:?} exceeded its progress deadline")]
    DeadlineExceeded(String),
    #[error("{updated} out of {desired} new replicas have been updated")]
    NotUpdated { updated: i32, desired: i32 },
    #[error("{0} old replicas are pending termination")]
    OldPending(i32),
    #[error("{available} of {updated} updated replicas are available")]
    NotAvailable { available: i32, updated: i32 },
}

impl NotReady {
    /// Whether waiting cannot help: the Deployment controller gave up.
    pub fn is_deadline_exceeded(&self) -> bool {
        matches!(self, Self::DeadlineExceeded(_))
    }
}

/// `Ok(())` when every replica runs the current template and is
/// available, else why not, e.g. "0 of 1 updated replicas are available".
pub fn rollout_finished(d: &Deployment) -> Result<(), NotReady> {
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = &d.status else {
        return Err(NotReady::NoStatus);
    };
    let generation = d.metadata.generation.unwrap_or(0);
    if status.observed_generation.unwrap_or(0) < generation {
        return Err(NotReady::OldGeneration);
    }
    if let Some(conds) = &status.conditions
        && conds.iter().any(|c| {
            c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        })
    {
        return Err(NotReady::DeadlineExceeded(
            d.metadata.name.clone().unwrap_or_default(),
        ));
    }
    let updated = status.updated_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if updated < desired {
        return Err(NotReady::NotUpdated { updated, desired });
    }
    if total > updated {
        return Err(NotReady::OldPending(total - updated));
    }
    if available < updated {
        return Err(NotReady::NotAvailable { available, updated });
    }
    Ok(())
}
