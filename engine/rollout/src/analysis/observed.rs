//! What a tick derived from a resting Canary's target, primary and the
//! configs the target's pods reference, kept by their `resourceVersion`s,
//! so that a tick at rest need not read those objects whole: in a cluster
//! that is a full GET of each per Canary per interval (Secrets included),
//! and in the in-memory cluster, which keeps Deployments serialized, a
//! decode of each Deployment.
//!
//! At rest (Initialized, Succeeded, Failed) a tick reads those objects
//! only to find out three things: that the target's revision (its pod
//! template and the data of its tracked ConfigMaps and Secrets) is still
//! the applied one, what selector its Services are rendered from, and that
//! the primary's rollout has finished. All three are functions of the
//! objects alone, and any write to an object (its status, or a config's
//! tracking annotation, included) gives it a new `resourceVersion`. So a
//! tick at rest that finds every version unchanged (a metadata-only read
//! each) knows the three answers without reading the objects. A config the
//! pods reference but that does not exist is recorded as absent: creating
//! it is a change too.
//!
//! Exact, with no resync period of its own: a tick records the facts from
//! objects it read (or, at the end of a bootstrap, from the target its
//! scale-down returned), with the versions those objects carried.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use sluice_api::Canary;

use super::configs::{TrackedConfigs, Version};
use super::per_canary::PerCanary;
use super::{readiness, service_sync, workload};
use crate::cluster::Kind;

/// What one Canary's tick derived from its target, primary and configs.
#[derive(Debug, PartialEq)]
pub(crate) struct Observed {
    target: String,
    /// The target's revision checksum.
    revision: String,
    /// The target's selector label and value (see [`service_sync`]).
    selector: Option<(String, String)>,
    /// The target's, the primary's and every referenced config's version.
    versions: Vec<Version>,
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

    /// The objects these facts were derived from, with the version each
    /// must still have (`None`: must still be absent) for them to hold.
    pub(crate) fn versions(&self) -> impl Iterator<Item = (Kind, &str, Option<&str>)> {
        self.versions
            .iter()
            .map(|(kind, name, version)| (*kind, name.as_str(), version.as_deref()))
    }

    /// The facts of `target` and `primary` with the `configs` read for the
    /// target; `None` when they cannot stand for the objects: either
    /// Deployment has no name or `resourceVersion`, or the primary's
    /// rollout has not finished.
    fn of(target: &Deployment, primary: &Deployment, configs: &TrackedConfigs) -> Option<Self> {
        readiness::rollout_finished(primary).ok()?;
        let deployment = |d: &Deployment| -> Option<Version> {
            let version = d.metadata.resource_version.clone()?;
            Some((Kind::Deployment, d.metadata.name.clone()?, Some(version)))
        };
        let mut versions = vec![deployment(target)?, deployment(primary)?];
        versions.extend_from_slice(configs.versions());
        Some(Observed {
            target: target.metadata.name.clone()?,
            revision: workload::revision_checksum(target, configs),
            selector: service_sync::selector(target).map(|(l, v)| (l.to_string(), v.to_string())),
            versions,
        })
    }
}

/// The facts of each Canary (by uid) at rest.
#[derive(Default)]
pub(crate) struct ObservedWorkloads {
    observed: PerCanary<Arc<Observed>>,
}

impl ObservedWorkloads {
    /// The facts last recorded for `canary`, shared (no copy).
    pub(crate) fn of(&self, canary: &Canary) -> Option<Arc<Observed>> {
        let uid = canary.metadata.uid.as_deref()?;
        self.observed.get(uid, Arc::clone)
    }

    /// Forgets `canary` (deleted).
    pub(crate) fn forget(&self, canary: &Canary) {
        self.observed.forget(canary);
    }

    /// Records what `target`, `primary` and the target's `configs` (as
    /// read, with their versions) give for `canary`; forgets what it knew
    /// when they give nothing.
    pub(crate) fn record(
        &self,
        canary: &Canary,
        target: &Deployment,
        primary: &Deployment,
        configs: &TrackedConfigs,
    ) {
        let Some(uid) = canary.metadata.uid.as_deref() else {
            return;
        };
        match Observed::of(target, primary, configs) {
            // At rest nothing changes from tick to tick: no new copy then.
            Some(facts) if self.observed.get(uid, |o| **o == facts) == Some(true) => {}
            Some(facts) => self.observed.insert(uid, Arc::new(facts)),
            None => self.observed.remove(uid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::fixtures::canary;
    use crate::cluster::Cluster;
    use crate::cluster::memory::MemoryCluster;
    use k8s_openapi::api::apps::v1::DeploymentStatus;
    use k8s_openapi::api::core::v1::ConfigMap;

    fn deployment(name: &str, version: &str, env_from: &[&str]) -> Deployment {
        let refs: Vec<_> = env_from
            .iter()
            .map(|c| serde_json::json!({"configMapRef": {"name": c, "optional": true}}))
            .collect();
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "test", "resourceVersion": version,
                         "generation": 1},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "app", "image": "podinfo:1",
                                             "envFrom": refs}]}
                }
            },
            "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
                       "availableReplicas": 1, "readyReplicas": 1}
        }))
        .expect("a Deployment")
    }

    /// The configs of `target` as a tick reads them from `cluster`.
    async fn configs(cluster: &MemoryCluster, target: &Deployment) -> TrackedConfigs {
        super::super::configs::collect(cluster, "test", target)
            .await
            .expect("read")
            .expect("found")
    }

    #[tokio::test]
    async fn facts_name_every_object_they_came_from_with_its_version() {
        let cluster = MemoryCluster::new();
        let present: ConfigMap =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "present",
                "namespace": "test"}, "data": {"k": "v"}}))
            .expect("a ConfigMap");
        cluster.put_config_map(present).expect("stored");
        let target = deployment("podinfo", "5", &["present", "absent"]);
        let configs = configs(&cluster, &target).await;
        let observed = ObservedWorkloads::default();
        let c = canary();
        assert!(observed.of(&c).is_none(), "nothing recorded yet");
        observed.record(
            &c,
            &target,
            &deployment("podinfo-primary", "6", &[]),
            &configs,
        );
        let facts = observed.of(&c).expect("recorded");

        let present_version = cluster
            .config_map("test", "present")
            .await
            .expect("read")
            .and_then(|c| c.metadata.resource_version);
        let versions: Vec<_> = facts.versions().collect();
        assert_eq!(
            versions,
            [
                (Kind::Deployment, "podinfo", Some("5")),
                (Kind::Deployment, "podinfo-primary", Some("6")),
                (Kind::ConfigMap, "absent", None),
                (Kind::ConfigMap, "present", present_version.as_deref()),
            ]
        );
        let revision = workload::revision_checksum(&target, &configs);
        assert!(facts.shows("podinfo", Some(&revision)));
        assert!(!facts.shows("podinfo", Some("another")));
        assert!(!facts.shows("podinfo", None));
        assert!(!facts.shows("other", Some(&revision)));
        assert_eq!(facts.selector(), Some(("app", "podinfo")));
        observed.forget(&c);
        assert!(observed.of(&c).is_none(), "a deleted Canary is forgotten");
    }

    #[test]
    fn a_primary_rolling_out_or_an_unversioned_deployment_is_forgotten_not_recorded() {
        let observed = ObservedWorkloads::default();
        let c = canary();
        let none = TrackedConfigs::default();
        let primary = deployment("podinfo-primary", "6", &[]);
        observed.record(&c, &deployment("podinfo", "5", &[]), &primary, &none);
        assert!(observed.of(&c).is_some());

        let mut rolling = deployment("podinfo-primary", "9", &[]);
        rolling.status = Some(DeploymentStatus {
            observed_generation: Some(1),
            replicas: Some(1),
            updated_replicas: Some(1),
            available_replicas: Some(0),
            ..Default::default()
        });
        observed.record(&c, &deployment("podinfo", "5", &[]), &rolling, &none);
        assert!(observed.of(&c).is_none());

        observed.record(&c, &deployment("podinfo", "5", &[]), &primary, &none);
        let mut unversioned = deployment("podinfo", "5", &[]);
        unversioned.metadata.resource_version = None;
        observed.record(&c, &unversioned, &primary, &none);
        assert!(observed.of(&c).is_none());
    }
}
