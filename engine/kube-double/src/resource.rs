//! What the double knows of each resource type: group, version, plural,
//! kind, whether it is namespaced and whether it has a status subresource.
//!
//! Models the API server's discovery data. Built-in kinds the operator uses
//! are listed here; CRDs add theirs when loaded. A URL naming a resource the
//! double does not know is still served (generic storage, namespaced as the
//! URL says, no status subresource), so tests may use any type.

use std::collections::BTreeMap;

/// One resource type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    /// "" for the core group.
    pub group: String,
    pub version: String,
    /// Lower-case plural, as in URLs: "deployments".
    pub plural: String,
    /// "Deployment".
    pub kind: String,
    pub namespaced: bool,
    /// Whether `/status` is a subresource (writes to the main resource then
    /// leave `status` alone).
    pub status: bool,
}

impl ResourceType {
    fn builtin(
        group: &str,
        version: &str,
        plural: &str,
        kind: &str,
        namespaced: bool,
        status: bool,
    ) -> Self {
        Self {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            kind: kind.into(),
            namespaced,
            status,
        }
    }

    /// "apps/v1", or "v1" for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// "deployments.apps", or "services" for the core group: how the API
    /// server names a resource in messages.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// "Canary.sluice.dev": how validation messages name the kind.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }
}

/// Resource types by (group, version, plural).
#[derive(Debug, Clone)]
pub struct Registry {
    types: BTreeMap<(String, String, String), ResourceType>,
}

/// The built-in kinds Sluice reads or writes, plus a few common ones:
/// (group, version, plural, kind, namespaced, has a status subresource).
const BUILTINS: &[(&str, &str, &str, &str, bool, bool)] = &[
    ("", "v1", "namespaces", "Namespace", false, true),
    ("", "v1", "nodes", "Node", false, true),
    ("", "v1", "pods", "Pod", true, true),
    ("", "v1", "services", "Service", true, true),
    ("", "v1", "configmaps", "ConfigMap", true, false),
    ("", "v1", "secrets", "Secret", true, false),
    ("", "v1", "events", "Event", true, false),
    ("", "v1", "serviceaccounts", "ServiceAccount", true, false),
    ("", "v1", "endpoints", "Endpoints", true, false),
    ("apps", "v1", "deployments", "Deployment", true, true),
    ("apps", "v1", "replicasets", "ReplicaSet", true, true),
    ("apps", "v1", "statefulsets", "StatefulSet", true, true),
    ("apps", "v1", "daemonsets", "DaemonSet", true, true),
    (
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        true,
        true,
    ),
    ("events.k8s.io", "v1", "events", "Event", true, false),
    ("coordination.k8s.io", "v1", "leases", "Lease", true, false),
    (
        "gateway.networking.k8s.io",
        "v1",
        "httproutes",
        "HTTPRoute",
        true,
        true,
    ),
    (
        "gateway.networking.k8s.io",
        "v1",
        "gateways",
        "Gateway",
        true,
        true,
    ),
    (
        "gateway.networking.k8s.io",
        "v1",
        "gatewayclasses",
        "GatewayClass",
        false,
        true,
    ),
    (
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
        true,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "ClusterRole",
        false,
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        false,
        false,
    ),
];

impl Default for Registry {
    /// The [`BUILTINS`].
    fn default() -> Self {
        let mut registry = Self {
            types: BTreeMap::new(),
        };
        for &(group, version, plural, kind, namespaced, status) in BUILTINS {
            registry.add(ResourceType::builtin(
                group, version, plural, kind, namespaced, status,
            ));
        }
        registry
    }
}

impl Registry {
    pub fn add(&mut self, t: ResourceType) {
        self.types
            .insert((t.group.clone(), t.version.clone(), t.plural.clone()), t);
    }

    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
    }

    /// The type named by a URL: a known one, or a generic one (namespaced
    /// as the URL says) for a plural the double does not know.
    pub fn resolve(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        namespaced_url: bool,
    ) -> ResourceType {
        self.get(group, version, plural)
            .cloned()
            .unwrap_or_else(|| ResourceType {
                group: group.into(),
                version: version.into(),
                plural: plural.into(),
                kind: guess_kind(plural),
                namespaced: namespaced_url,
                status: false,
            })
    }

    /// The type of `apiVersion` + `kind`.
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceType> {
        self.types
            .values()
            .find(|t| t.api_version() == api_version && t.kind == kind)
    }

    pub fn all(&self) -> impl Iterator<Item = &ResourceType> {
        self.types.values()
    }
}

/// "widgets" → "Widget": the kind of an unknown resource.
fn guess_kind(plural: &str) -> String {
    let singular = plural.strip_suffix('s').unwrap_or(plural);
    let mut chars = singular.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
