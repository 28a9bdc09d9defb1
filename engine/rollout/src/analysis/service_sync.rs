//! Which generated Services this engine has applied, and from what, so
//! that an idle tick does not render and apply the same three Services
//! again: in a cluster each apply is an API call (three per Canary per
//! interval), and rendering them is a third of an idle tick's CPU.
//!
//! The Services are a function of the Canary's `spec.service` (name,
//! port, target port, port name, app protocol, extra metadata), its name,
//! namespace and uid (the owner reference) and the target's selector
//! label. A tick applies them again when any of those changed since this
//! engine last applied them, when it never did (a restart), and at least
//! every [`RESYNC`], so that a Service edited or deleted by hand is put
//! back within that bound.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sluice_api::{Canary, CustomMetadata};

use super::per_canary::PerCanary;
use super::workload::SELECTOR_LABELS;

/// The longest a generated Service edited out of band stays so.
pub const RESYNC: SignedDuration = SignedDuration::from_mins(5);

/// What the Services of one Canary were rendered from: every input of
/// `workload::services`, in full (no lossy hash).
#[derive(Debug, Clone, PartialEq)]
struct Inputs {
    namespace: Option<String>,
    name: Option<String>,
    service_name: Option<String>,
    target: String,
    selector: Option<(String, String)>,
    port: i32,
    port_name: Option<String>,
    target_port: Option<IntOrString>,
    app_protocol: Option<String>,
    metadata: [Option<CustomMetadata>; 3],
}

/// The target's selector label and value, as `workload::selector_label`
/// picks them, borrowed.
pub(crate) fn selector(target: &Deployment) -> Option<(&str, &str)> {
    let labels = target.spec.as_ref()?.selector.match_labels.as_ref()?;
    SELECTOR_LABELS
        .iter()
        .find_map(|l| labels.get(*l).map(|v| (*l, v.as_str())))
}

impl Inputs {
    fn of(canary: &Canary, target: &Deployment) -> Self {
        let svc = &canary.spec.service;
        Inputs {
            namespace: canary.metadata.namespace.clone(),
            name: canary.metadata.name.clone(),
            service_name: svc.name.clone(),
            target: canary.spec.target_ref.name.clone(),
            selector: selector(target).map(|(l, v)| (l.to_string(), v.to_string())),
            port: svc.port,
            port_name: svc.port_name.clone(),
            target_port: svc.target_port.clone(),
            app_protocol: svc.app_protocol.clone(),
            metadata: [svc.apex.clone(), svc.primary.clone(), svc.canary.clone()],
        }
    }

    /// Whether `canary` and a target of `selector` give these inputs (no
    /// allocation).
    fn matches(&self, canary: &Canary, selector: Option<(&str, &str)>) -> bool {
        let svc = &canary.spec.service;
        self.port == svc.port
            && self.namespace == canary.metadata.namespace
            && self.name == canary.metadata.name
            && self.service_name == svc.name
            && self.target == canary.spec.target_ref.name
            && self
                .selector
                .as_ref()
                .map(|(l, v)| (l.as_str(), v.as_str()))
                == selector
            && self.port_name == svc.port_name
            && self.target_port == svc.target_port
            && self.app_protocol == svc.app_protocol
            && self.metadata[0] == svc.apex
            && self.metadata[1] == svc.primary
            && self.metadata[2] == svc.canary
    }
}

/// What the Services of each Canary (by uid: the owner reference) were
/// last applied from, and when.
#[derive(Default)]
pub(crate) struct AppliedServices {
    applied: PerCanary<(Inputs, Timestamp)>,
}

impl AppliedServices {
    /// Whether the Services of `canary` were applied from what `canary`
    /// and a target of `selector` (see [`selector`]) give now, less than
    /// [`RESYNC`] before `now`. A Canary without a uid (never stored) is
    /// never current.
    pub(crate) fn current(
        &self,
        canary: &Canary,
        selector: Option<(&str, &str)>,
        now: Timestamp,
    ) -> bool {
        let Some(uid) = canary.metadata.uid.as_deref() else {
            return false;
        };
        let current = |(inputs, at): &(Inputs, Timestamp)| {
            *at <= now && now.duration_since(*at) < RESYNC && inputs.matches(canary, selector)
        };
        self.applied.get(uid, current).unwrap_or(false)
    }

    /// Forgets `canary` (deleted).
    pub(crate) fn forget(&self, canary: &Canary) {
        self.applied.forget(canary);
    }

    /// Records that the Services of `canary` were applied at `now`.
    pub(crate) fn record(&self, canary: &Canary, target: &Deployment, now: Timestamp) {
        if let Some(uid) = canary.metadata.uid.as_deref() {
            self.applied.insert(uid, (Inputs::of(canary, target), now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_are_current_for_the_same_inputs_within_the_resync_and_until_forgotten() {
        let canary = crate::analysis::fixtures::canary();
        let target: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {"selector": {"matchLabels": {"app": "podinfo"}},
                     "template": {"metadata": {"labels": {"app": "podinfo"}}}}
        }))
        .expect("a Deployment");
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().expect("time");
        let services = AppliedServices::default();
        let selector = Some(("app", "podinfo"));
        assert!(!services.current(&canary, selector, now), "never applied");
        services.record(&canary, &target, now);
        assert!(services.current(&canary, selector, now));
        assert!(!services.current(&canary, Some(("app", "other")), now));
        assert!(!services.current(&canary, selector, now + RESYNC));
        services.forget(&canary);
        assert!(!services.current(&canary, selector, now), "forgotten");
    }
}
