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
    pub(crate) fn is_deadline_exceeded(&self) -> bool {
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

/// Flagger's progress deadline: whether waiting for `d` to become ready may
/// still succeed at `now`. Not once the Deployment controller reports
/// `ProgressDeadlineExceeded`, nor once the Deployment's `Available`
/// condition has been False (`MinimumReplicasUnavailable`) for longer than
/// `deadline`: the deadline counts from the Deployment's own last change of
/// availability, so a late, short unavailability does not roll back at
/// once. `None` when the Deployment reports no `Progressing` condition to
/// judge by (the caller then counts from the start of the phase).
pub(crate) fn within_deadline(
    d: &Deployment,
    deadline: std::time::Duration,
    now: jiff::Timestamp,
) -> Option<bool> {
    let status = d.status.as_ref()?;
    if d.metadata.generation.unwrap_or(0) > status.observed_generation.unwrap_or(0) {
        return Some(true);
    }
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let condition = |kind: &str| conditions.iter().find(|c| c.type_ == kind);
    let progress = condition("Progressing")?;
    if progress.reason.as_deref() == Some("ProgressDeadlineExceeded") {
        return Some(false);
    }
    let Some(available) = condition("Available") else {
        return Some(true);
    };
    if available.status != "False"
        || available.reason.as_deref() != Some("MinimumReplicasUnavailable")
    {
        return Some(true);
    }
    let Some(since) = available.last_update_time.as_ref() else {
        return Some(true);
    };
    let deadline = jiff::SignedDuration::try_from(deadline).unwrap_or(jiff::SignedDuration::MAX);
    Some(since.0.checked_add(deadline).is_ok_and(|end| end >= now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use std::time::Duration;

    fn deployment(conditions: Vec<DeploymentCondition>) -> Deployment {
        Deployment {
            status: Some(DeploymentStatus {
                conditions: Some(conditions),
                replicas: Some(1),
                updated_replicas: Some(1),
                available_replicas: Some(0),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn condition(kind: &str, status: &str, reason: &str, at: i64) -> DeploymentCondition {
        DeploymentCondition {
            type_: kind.into(),
            status: status.into(),
            reason: Some(reason.into()),
            last_update_time: Some(Time(jiff::Timestamp::from_second(at).unwrap())),
            ..Default::default()
        }
    }

    #[test]
    fn the_deadline_counts_from_the_deployments_last_change_of_availability() {
        let now = jiff::Timestamp::from_second(1_000).unwrap();
        let deadline = Duration::from_secs(60);
        let progressing = condition("Progressing", "True", "ReplicaSetUpdated", 0);
        let unavailable_since = |at| {
            deployment(vec![
                progressing.clone(),
                condition("Available", "False", "MinimumReplicasUnavailable", at),
            ])
        };
        assert_eq!(
            within_deadline(&unavailable_since(990), deadline, now),
            Some(true)
        );
        assert_eq!(
            within_deadline(&unavailable_since(940), deadline, now),
            Some(true)
        );
        assert_eq!(
            within_deadline(&unavailable_since(939), deadline, now),
            Some(false)
        );
        let stuck = deployment(vec![condition(
            "Progressing",
            "False",
            "ProgressDeadlineExceeded",
            999,
        )]);
        assert_eq!(within_deadline(&stuck, deadline, now), Some(false));
        assert_eq!(within_deadline(&deployment(vec![]), deadline, now), None);
        let available = deployment(vec![
            progressing.clone(),
            condition("Available", "True", "MinimumReplicasAvailable", 0),
        ]);
        assert_eq!(within_deadline(&available, deadline, now), Some(true));
    }
}
