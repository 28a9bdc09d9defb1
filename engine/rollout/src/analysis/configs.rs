//! Config tracking, as Flagger does it: the ConfigMaps and Secrets that the
//! target's pods mount or reference are part of its revision (a change to
//! one starts a rollout), and the primary gets its own copies,
//! `<name>-primary`, so that a change reaches the primary only when the
//! canary is promoted.

use std::collections::BTreeMap;

use crate::cluster::Result;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, PodSpec, Secret};
use kube::ResourceExt;
use sha2::{Digest, Sha256};

use crate::cluster::{Cluster, Kind};
use sluice_api::Canary;

/// Annotation on a ConfigMap or Secret that opts it out of tracking, with
/// the value "disabled" (Flagger's name is accepted too).
const TRACKING_ANNOTATIONS: [&str; 2] =
    ["sluice.dev/config-tracking", "flagger.app/config-tracking"];

/// The kinds of tracked objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum ConfigKind {
    ConfigMap,
    Secret,
}

impl From<ConfigKind> for Kind {
    fn from(kind: ConfigKind) -> Self {
        match kind {
            ConfigKind::ConfigMap => Kind::ConfigMap,
            ConfigKind::Secret => Kind::Secret,
        }
    }
}

/// An object's kind, name and `resourceVersion` (`None`: it does not exist).
pub(crate) type Version = (Kind, String, Option<String>);

/// Names referenced by a pod spec, per kind, with whether every reference
/// to it is optional.
type References = BTreeMap<(ConfigKind, String), bool>;

/// The tracked ConfigMaps and Secrets of a target, as read from the cluster.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrackedConfigs {
    config_maps: Vec<ConfigMap>,
    secrets: Vec<Secret>,
    /// The version of every object the pods reference, tracked or not,
    /// absent ones included: what the revision can change with.
    versions: Vec<Version>,
}

fn note(refs: &mut References, kind: ConfigKind, name: Option<&String>, optional: Option<bool>) {
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return;
    };
    let optional = optional.unwrap_or(false);
    refs.entry((kind, name.clone()))
        .and_modify(|o| *o &= optional)
        .or_insert(optional);
}

/// Every ConfigMap and Secret the pod spec mounts as a volume (also through
/// projected volumes) or reads with `envFrom` / `env[].valueFrom`.
fn references(spec: &PodSpec) -> References {
    use ConfigKind::*;
    let mut refs = References::new();
    for v in spec.volumes.iter().flatten() {
        if let Some(c) = &v.config_map {
            note(&mut refs, ConfigMap, Some(&c.name), c.optional);
        }
        if let Some(s) = &v.secret {
            note(&mut refs, Secret, s.secret_name.as_ref(), s.optional);
        }
        for source in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(c) = &source.config_map {
                note(&mut refs, ConfigMap, Some(&c.name), c.optional);
            }
            if let Some(s) = &source.secret {
                note(&mut refs, Secret, Some(&s.name), s.optional);
            }
        }
    }
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    for c in containers {
        for from in c.env_from.iter().flatten() {
            if let Some(r) = &from.config_map_ref {
                note(&mut refs, ConfigMap, Some(&r.name), r.optional);
            }
            if let Some(r) = &from.secret_ref {
                note(&mut refs, Secret, Some(&r.name), r.optional);
            }
        }
        for env in c.env.iter().flatten() {
            let Some(from) = &env.value_from else {
                continue;
            };
            if let Some(r) = &from.config_map_key_ref {
                note(&mut refs, ConfigMap, Some(&r.name), r.optional);
            }
            if let Some(r) = &from.secret_key_ref {
                note(&mut refs, Secret, Some(&r.name), r.optional);
            }
        }
    }
    refs
}

fn tracking_disabled(annotations: &BTreeMap<String, String>) -> bool {
    TRACKING_ANNOTATIONS
        .iter()
        .any(|a| annotations.get(*a).is_some_and(|v| v == "disabled"))
}

/// A ConfigMap or Secret the target's pods need and cannot find.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{kind} {name}.{namespace} used by {user}.{namespace} not found; create it or mark the reference optional"
)]
pub(crate) struct MissingConfig {
    kind: &'static str,
    name: String,
    namespace: String,
    /// The Deployment whose pods reference it.
    user: String,
}

/// Reads the tracked objects of `target`. The outer error is cluster I/O;
/// the inner one says which object a non-optional reference needs and
/// cannot find (the pods could not start).
pub(crate) async fn collect<C: Cluster>(
    cluster: &C,
    namespace: &str,
    target: &Deployment,
) -> Result<Result<TrackedConfigs, MissingConfig>> {
    let Some(pod) = target.spec.as_ref().and_then(|s| s.template.spec.as_ref()) else {
        return Ok(Ok(TrackedConfigs::default()));
    };
    let mut tracked = TrackedConfigs::default();
    for ((kind, name), optional) in references(pod) {
        let mut version = None;
        match kind {
            ConfigKind::ConfigMap => match cluster.config_map(namespace, &name).await? {
                Some(c) => {
                    version.clone_from(&c.metadata.resource_version);
                    if !tracking_disabled(c.annotations()) {
                        tracked.config_maps.push(c);
                    }
                }
                None if optional => {}
                None => {
                    return Ok(Err(MissingConfig {
                        kind: "ConfigMap",
                        name,
                        namespace: namespace.to_string(),
                        user: target.name_any(),
                    }));
                }
            },
            ConfigKind::Secret => match cluster.secret(namespace, &name).await? {
                Some(s) => {
                    version.clone_from(&s.metadata.resource_version);
                    if !tracking_disabled(s.annotations()) {
                        tracked.secrets.push(s);
                    }
                }
                None if optional => {}
                None => {
                    return Ok(Err(MissingConfig {
                        kind: "Secret",
                        name,
                        namespace: namespace.to_string(),
                        user: target.name_any(),
                    }));
                }
            },
        }
        tracked.versions.push((kind.into(), name, version));
    }
    Ok(Ok(tracked))
}

/// The name of the primary's copy of a tracked object.
fn primary_config_name(name: &str) -> String {
    format!("{name}-primary")
}

impl TrackedConfigs {
    /// The version of every object the target's pods reference (see
    /// [`collect`]).
    pub(crate) fn versions(&self) -> &[Version] {
        &self.versions
    }

    fn tracks(&self, kind: ConfigKind, name: &str) -> bool {
        match kind {
            ConfigKind::ConfigMap => self.config_maps.iter().any(|c| c.name_any() == name),
            ConfigKind::Secret => self.secrets.iter().any(|s| s.name_any() == name),
        }
    }

    /// Feeds the data of every tracked object into a revision checksum.
    pub(crate) fn hash_into(&self, hasher: &mut Sha256) {
        for c in &self.config_maps {
            hasher.update(b"configmap\0");
            hasher.update(c.name_any().as_bytes());
            hasher.update(serde_json::to_vec(&(&c.data, &c.binary_data)).unwrap_or_default());
        }
        for s in &self.secrets {
            hasher.update(b"secret\0");
            hasher.update(s.name_any().as_bytes());
            hasher.update(serde_json::to_vec(&(&s.data, &s.string_data)).unwrap_or_default());
        }
    }

    /// The primary's copies, owned by the Canary.
    pub(crate) fn primary_copies(&self, canary: &Canary) -> (Vec<ConfigMap>, Vec<Secret>) {
        let meta = |name: &str, labels: &BTreeMap<String, String>| {
            k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(primary_config_name(name)),
                namespace: canary.namespace(),
                labels: (!labels.is_empty()).then(|| labels.clone()),
                owner_references: super::workload::owner_reference(canary).map(|o| vec![o]),
                ..Default::default()
            }
        };
        let config_maps = self
            .config_maps
            .iter()
            .map(|c| ConfigMap {
                metadata: meta(&c.name_any(), c.labels()),
                data: c.data.clone(),
                binary_data: c.binary_data.clone(),
                immutable: None,
            })
            .collect();
        let secrets = self
            .secrets
            .iter()
            .map(|s| Secret {
                metadata: meta(&s.name_any(), s.labels()),
                data: s.data.clone(),
                string_data: s.string_data.clone(),
                type_: s.type_.clone(),
                immutable: None,
            })
            .collect();
        (config_maps, secrets)
    }

    /// Points every reference to a tracked object in `spec` at the
    /// primary's copy.
    pub(crate) fn use_primary_copies(&self, spec: &mut PodSpec) {
        use ConfigKind::*;
        let rename = |kind: ConfigKind, name: &mut String| {
            if self.tracks(kind, name) {
                *name = primary_config_name(name);
            }
        };
        for v in spec.volumes.iter_mut().flatten() {
            if let Some(c) = &mut v.config_map {
                rename(ConfigMap, &mut c.name);
            }
            if let Some(name) = v.secret.as_mut().and_then(|s| s.secret_name.as_mut()) {
                rename(Secret, name);
            }
            for source in v
                .projected
                .iter_mut()
                .flat_map(|p| p.sources.iter_mut().flatten())
            {
                if let Some(c) = &mut source.config_map {
                    rename(ConfigMap, &mut c.name);
                }
                if let Some(s) = &mut source.secret {
                    rename(Secret, &mut s.name);
                }
            }
        }
        let containers = spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten());
        for c in containers {
            for from in c.env_from.iter_mut().flatten() {
                if let Some(r) = &mut from.config_map_ref {
                    rename(ConfigMap, &mut r.name);
                }
                if let Some(r) = &mut from.secret_ref {
                    rename(Secret, &mut r.name);
                }
            }
            for env in c.env.iter_mut().flatten() {
                let Some(from) = &mut env.value_from else {
                    continue;
                };
                if let Some(r) = &mut from.config_map_key_ref {
                    rename(ConfigMap, &mut r.name);
                }
                if let Some(r) = &mut from.secret_key_ref {
                    rename(Secret, &mut r.name);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapEnvSource, ConfigMapVolumeSource, Container, EnvFromSource, EnvVar, EnvVarSource,
        SecretKeySelector, SecretVolumeSource, Volume,
    };

    fn pod() -> PodSpec {
        PodSpec {
            containers: vec![Container {
                name: "app".into(),
                env_from: Some(vec![EnvFromSource {
                    config_map_ref: Some(ConfigMapEnvSource {
                        name: "settings".into(),
                        optional: None,
                    }),
                    ..Default::default()
                }]),
                env: Some(vec![EnvVar {
                    name: "TOKEN".into(),
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: "api".into(),
                            key: "token".into(),
                            optional: Some(true),
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }],
            volumes: Some(vec![
                Volume {
                    name: "files".into(),
                    config_map: Some(ConfigMapVolumeSource {
                        name: "files".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                Volume {
                    name: "certs".into(),
                    secret: Some(SecretVolumeSource {
                        secret_name: Some("certs".into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }
    }

    #[test]
    fn finds_every_kind_of_reference() {
        let refs = references(&pod());
        let names: Vec<String> = refs
            .iter()
            .map(|((k, n), o)| format!("{k:?}/{n}/{o}"))
            .collect();
        assert_eq!(
            names,
            [
                "ConfigMap/files/false",
                "ConfigMap/settings/false",
                "Secret/api/true",
                "Secret/certs/false"
            ]
        );
    }

    #[test]
    fn the_primary_uses_its_copies_of_tracked_objects_only() {
        let cm = |name: &str| ConfigMap {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let tracked = TrackedConfigs {
            config_maps: vec![cm("settings")],
            ..Default::default()
        };
        let mut spec = pod();
        tracked.use_primary_copies(&mut spec);
        let c = &spec.containers[0];
        let env_from = c.env_from.as_ref().unwrap()[0]
            .config_map_ref
            .as_ref()
            .unwrap();
        assert_eq!(env_from.name, "settings-primary");
        let volumes = spec.volumes.as_ref().unwrap();
        assert_eq!(volumes[0].config_map.as_ref().unwrap().name, "files");
        assert_eq!(
            volumes[1].secret.as_ref().unwrap().secret_name.as_deref(),
            Some("certs")
        );
    }

    #[test]
    fn tracking_can_be_disabled_per_object() {
        let mut a = BTreeMap::new();
        assert!(!tracking_disabled(&a));
        a.insert(
            "flagger.app/config-tracking".to_string(),
            "disabled".to_string(),
        );
        assert!(tracking_disabled(&a));
    }
}
