//! What a tick derived from a resting Canary's target and primary, kept by
//! their `resourceVersion`s, so that a tick at rest need not read the two
//! Deployments whole: in a cluster that is two full GETs per Canary per
//! interval, and in the in-memory cluster, which keeps Deployments
//! serialized, two decodes.
//!
//! At rest (Initialized, Succeeded, Failed) a tick reads the target and
//! the primary only to find out three things: that the target's revision
//! is still the applied one, what selector its Services are rendered from,
//! and that the primary's rollout has finished. When the target's pods
//! reference no ConfigMap or Secret (optional ones included), all three
//! are functions of the two objects alone, and any write to an object,
//! its status included, gives it a new `resourceVersion`. So a tick at
//! rest that finds both versions unchanged (a metadata-only read each)
//! knows the three answers without reading the objects. A target that
//! references configs is never recorded: a config can change without the
//! target's version changing.
//!
//! Exact, with no resync period of its own: a tick records the facts from
//! objects it read (or, at the end of a bootstrap, from the target its
//! scale-down returned), with the versions those objects carried.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::apps::v1::Deployment;
use sluice_api::Canary;

use super::configs::{self, TrackedConfigs};
use super::{readiness, service_sync, workload};

/// What one Canary's tick derived from its target and primary.
#[derive(Debug, PartialEq)]
pub(crate) struct Observed {
    target: String,
    target_version: String,
    primary_version: String,
    /// The target's revision checksum.
    revision: String,
    /// The target's selector label and value (see [`service_sync`]).
    selector: Option<(String, String)>,
}

impl Observed {
    /// Whether these facts are about `target` at the `applied` revision.
    pub(crate) fn shows(&self, target: &str, applied: Option<&str>) -> bool {
        self.target == target && applied == Some(self.revision.as_str())
    }

    /// The target's selector label and value, borrowed.
    pub(crate) fn selector(&self) -> Option<(&str, &str)> {
        self.selector
            .as_ref()
            .map(|(l, v)| (l.as_str(), v.as_str()))
    }

    /// Whether the target and the primary still have the versions these
    /// facts were derived at.
    pub(crate) fn still_at(&self, target: Option<&str>, primary: Option<&str>) -> bool {
        target == Some(self.target_version.as_str())
            && primary == Some(self.primary_version.as_str())
    }

    /// The facts of `target` and `primary`; `None` when they cannot stand
    /// for the objects: either has no `resourceVersion`, the target's pods
    /// reference configs, or the primary's rollout has not finished.
    fn of(target: &Deployment, primary: &Deployment) -> Option<Self> {
        if !configs::references_none(target) || readiness::rollout_finished(primary).is_err() {
            return None;
        }
        Some(Observed {
            target: target.metadata.name.clone()?,
            target_version: target.metadata.resource_version.clone()?,
            primary_version: primary.metadata.resource_version.clone()?,
            revision: workload::revision_checksum(target, &TrackedConfigs::default()),
            selector: service_sync::selector(target).map(|(l, v)| (l.to_string(), v.to_string())),
        })
    }
}

/// The facts of each Canary (by uid) at rest.
#[derive(Default)]
pub(crate) struct ObservedWorkloads {
    observed: Mutex<HashMap<String, Arc<Observed>>>,
}

impl ObservedWorkloads {
    /// The facts last recorded for `canary`, shared (no copy).
    pub(crate) fn of(&self, canary: &Canary) -> Option<Arc<Observed>> {
        let uid = canary.metadata.uid.as_deref()?;
        self.observed.lock().ok()?.get(uid).cloned()
    }

    /// Records what `target` and `primary` (as read, with their versions)
    /// give for `canary`; forgets what it knew when they give nothing.
    pub(crate) fn record(&self, canary: &Canary, target: &Deployment, primary: &Deployment) {
        let Some(uid) = canary.metadata.uid.as_deref() else {
            return;
        };
        let Ok(mut observed) = self.observed.lock() else {
            return;
        };
        match Observed::of(target, primary) {
            Some(facts) if observed.get(uid).is_some_and(|o| **o == facts) => {}
            Some(facts) => {
                observed.insert(uid.to_string(), Arc::new(facts));
            }
            None => {
                observed.remove(uid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DeploymentStatus;

    fn canary() -> Canary {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "podinfo", "namespace": "test", "uid": "u1"},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": {"port": 9898},
                "analysis": {"interval": "1m", "threshold": 5, "maxWeight": 50, "stepWeight": 10}
            }
        }))
        .expect("a Canary")
    }

    fn deployment(name: &str, version: &str, env_from: Option<&str>) -> Deployment {
        let mut container = serde_json::json!({"name": "app", "image": "podinfo:1"});
        if let Some(config) = env_from {
            container["envFrom"] =
                serde_json::json!([{"configMapRef": {"name": config, "optional": true}}]);
        }
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "test", "resourceVersion": version,
                         "generation": 1},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [container]}
                }
            },
            "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
                       "availableReplicas": 1, "readyReplicas": 1}
        }))
        .expect("a Deployment")
    }

    #[test]
    fn facts_hold_only_for_the_same_versions_target_and_revision() {
        let observed = ObservedWorkloads::default();
        let c = canary();
        assert!(observed.of(&c).is_none(), "nothing recorded yet");
        let target = deployment("podinfo", "5", None);
        observed.record(&c, &target, &deployment("podinfo-primary", "6", None));
        let facts = observed.of(&c).expect("recorded");
        let revision = workload::revision_checksum(&target, &TrackedConfigs::default());
        assert!(facts.shows("podinfo", Some(&revision)));
        assert!(!facts.shows("podinfo", Some("another")));
        assert!(!facts.shows("podinfo", None));
        assert!(!facts.shows("other", Some(&revision)));
        assert!(facts.still_at(Some("5"), Some("6")));
        assert!(
            !facts.still_at(Some("7"), Some("6")),
            "the target was written"
        );
        assert!(
            !facts.still_at(Some("5"), Some("7")),
            "the primary was written"
        );
        assert!(!facts.still_at(None, Some("6")), "the target is gone");
        assert!(!facts.still_at(Some("5"), None), "the primary is gone");
        assert_eq!(facts.selector(), Some(("app", "podinfo")));
    }

    #[test]
    fn a_target_with_configs_or_a_primary_rolling_out_is_forgotten_not_recorded() {
        let observed = ObservedWorkloads::default();
        let c = canary();
        let primary = deployment("podinfo-primary", "6", None);
        observed.record(&c, &deployment("podinfo", "5", None), &primary);
        assert!(observed.of(&c).is_some());
        // An optional reference counts: creating that ConfigMap would
        // change the revision without a write to the target.
        observed.record(&c, &deployment("podinfo", "8", Some("settings")), &primary);
        assert!(observed.of(&c).is_none());

        observed.record(&c, &deployment("podinfo", "5", None), &primary);
        let mut rolling = deployment("podinfo-primary", "9", None);
        rolling.status = Some(DeploymentStatus {
            observed_generation: Some(1),
            replicas: Some(1),
            updated_replicas: Some(1),
            available_replicas: Some(0),
            ..Default::default()
        });
        observed.record(&c, &deployment("podinfo", "5", None), &rolling);
        assert!(observed.of(&c).is_none());

        let mut unversioned = deployment("podinfo", "5", None);
        unversioned.metadata.resource_version = None;
        observed.record(&c, &unversioned, &primary);
        assert!(observed.of(&c).is_none());
    }
}
