//! The objects Sluice generates from the target Deployment: the primary
//! Deployment and autoscaler, and the apex, primary and canary Services.

use std::collections::BTreeMap;

use super::error::WorkloadError;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};

use super::configs::TrackedConfigs;
use sluice_api::{Canary, CustomMetadata};

/// Labels Flagger accepts as a workload's selector, in order of preference.
pub(crate) const SELECTOR_LABELS: [&str; 3] = ["app", "name", "app.kubernetes.io/name"];

pub fn primary_name(target: &str) -> String {
    format!("{target}-primary")
}

pub(crate) fn canary_service_name(apex: &str) -> String {
    format!("{apex}-canary")
}

/// The apex Service / HTTPRoute name: `service.name`, else the target's.
pub fn apex_name(canary: &Canary) -> String {
    canary
        .spec
        .service
        .name
        .clone()
        .unwrap_or_else(|| canary.spec.target_ref.name.clone())
}

/// The owner reference that ties generated objects to their Canary, so that
/// deleting the Canary garbage-collects them.
pub(crate) fn owner_reference(canary: &Canary) -> Option<OwnerReference> {
    let mut owner = canary.controller_owner_ref(&())?;
    owner.block_owner_deletion = Some(true);
    Some(owner)
}

/// The selector label of the target and its value.
pub fn selector_label(target: &Deployment) -> Result<(String, String), WorkloadError> {
    let labels = target
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.as_ref())
        .ok_or(WorkloadError::NoSelector)?;
    SELECTOR_LABELS
        .iter()
        .find_map(|l| labels.get(*l).map(|v| (l.to_string(), v.clone())))
        .ok_or_else(|| WorkloadError::NoSelectorLabel(SELECTOR_LABELS.join(", ")))
}

/// A short checksum of the target's pod template and of the data of its
/// tracked ConfigMaps and Secrets: a new value is a new revision.
pub(crate) fn revision_checksum(target: &Deployment, configs: &TrackedConfigs) -> String {
    let template = target.spec.as_ref().map(|s| &s.template);
    let mut hasher = Sha256::new();
    hasher.update(serde_json::to_vec(&template).unwrap_or_default());
    configs.hash_into(&mut hasher);
    let digest = hasher.finalize();
    hex::encode(&digest[..8])
}

fn meta(canary: &Canary, name: &str, extra: Option<&CustomMetadata>) -> ObjectMeta {
    let mut labels = BTreeMap::new();
    let mut annotations = BTreeMap::new();
    if let Some(extra) = extra {
        labels.extend(extra.labels.clone());
        annotations.extend(extra.annotations.clone());
    }
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: canary.namespace(),
        labels: (!labels.is_empty()).then_some(labels),
        annotations: (!annotations.is_empty()).then_some(annotations),
        owner_references: owner_reference(canary).map(|o| vec![o]),
        ..Default::default()
    }
}

/// The primary Deployment: the target's spec under `<name>-primary`, with
/// its selector label renamed so the two never share pods.
pub fn primary_deployment(
    canary: &Canary,
    target: &Deployment,
    replicas: Option<i32>,
    configs: &TrackedConfigs,
) -> Result<Deployment, WorkloadError> {
    let target_name = target.name_any();
    let (label, value) = selector_label(target)?;
    let primary_value = format!("{value}-primary");
    let mut spec = target.spec.clone().ok_or(WorkloadError::NoSpec)?;
    spec.replicas = replicas.or(spec.replicas);
    let mut match_labels = spec.selector.match_labels.clone().unwrap_or_default();
    match_labels.insert(label.clone(), primary_value.clone());
    spec.selector.match_labels = Some(match_labels);
    if let Some(pod) = spec.template.spec.as_mut() {
        configs.use_primary_copies(pod);
    }
    let template_meta = spec.template.metadata.get_or_insert_with(Default::default);
    template_meta
        .labels
        .get_or_insert_with(Default::default)
        .insert(label.clone(), primary_value.clone());
    let mut m = meta(
        canary,
        &primary_name(&target_name),
        canary.spec.service.primary.as_ref(),
    );
    let mut labels = target.labels().clone();
    labels.insert(label, primary_value);
    labels.extend(m.labels.take().unwrap_or_default());
    m.labels = Some(labels);
    Ok(Deployment {
        metadata: m,
        spec: Some(spec),
        status: None,
    })
}

/// The primary's autoscaler: the target's, pointed at the primary.
pub fn primary_autoscaler(
    canary: &Canary,
    hpa: &HorizontalPodAutoscaler,
) -> Result<HorizontalPodAutoscaler, WorkloadError> {
    let mut spec = hpa.spec.clone().ok_or(WorkloadError::NoAutoscalerSpec)?;
    spec.scale_target_ref.name = primary_name(&canary.spec.target_ref.name);
    Ok(HorizontalPodAutoscaler {
        metadata: meta(canary, &primary_name(&hpa.name_any()), None),
        spec: Some(spec),
        status: None,
    })
}

/// The apex, primary and canary Services.
pub fn services(canary: &Canary, target: &Deployment) -> Result<Vec<Service>, WorkloadError> {
    let (label, value) = selector_label(target)?;
    let apex = apex_name(canary);
    let svc = &canary.spec.service;
    let target_port = svc
        .target_port
        .clone()
        .unwrap_or(IntOrString::Int(svc.port));
    let port = ServicePort {
        name: Some(svc.port_name.clone().unwrap_or_else(|| "http".into())),
        port: svc.port,
        target_port: Some(target_port),
        protocol: Some("TCP".into()),
        app_protocol: svc.app_protocol.clone(),
        ..Default::default()
    };
    let make = |name: String, selector_value: String, extra: Option<&CustomMetadata>| Service {
        metadata: meta(canary, &name, extra),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(BTreeMap::from([(label.clone(), selector_value)])),
            ports: Some(vec![port.clone()]),
            ..Default::default()
        }),
        status: None,
    };
    Ok(vec![
        make(apex.clone(), format!("{value}-primary"), svc.apex.as_ref()),
        make(
            primary_name(&apex),
            format!("{value}-primary"),
            svc.primary.as_ref(),
        ),
        make(
            canary_service_name(&apex),
            value.clone(),
            svc.canary.as_ref(),
        ),
    ])
}
