//! Is a Deployment's rollout finished? The same test as
//! `kubectl rollout status`, worded as Flagger words it.

use k8s_openapi::api::apps::v1::Deployment;

/// `Ok(())` when every replica runs the current template and is
/// available, else why not, e.g. "0 of 1 updated replicas are available".
pub fn rollout_finished(d: &Deployment) -> Result<(), String> {
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = &d.status else {
        return Err("waiting for the deployment status".into());
    };
    let generation = d.metadata.generation.unwrap_or(0);
    if status.observed_generation.unwrap_or(0) < generation {
        return Err("observed deployment generation less than desired generation".into());
    }
    if let Some(conds) = &status.conditions
        && conds.iter().any(|c| {
            c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        })
    {
        return Err(format!(
            "deployment {:?} exceeded its progress deadline",
            d.metadata.name.as_deref().unwrap_or_default()
        ));
    }
    let updated = status.updated_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if updated < desired {
        return Err(format!(
            "{updated} out of {desired} new replicas have been updated"
        ));
    }
    if total > updated {
        return Err(format!(
            "{} old replicas are pending termination",
            total - updated
        ));
    }
    if available < updated {
        return Err(format!(
            "{available} of {updated} updated replicas are available"
        ));
    }
    Ok(())
}
