//! Discovery: `/version`, `/api`, `/apis`, `/api/v1`, `/apis/{g}/{v}`.
//!
//! Models the legacy (non-aggregated) discovery documents, enough for
//! kube-rs' `Discovery` and for `kubectl api-resources`-style lookups.
//! Simplified: no aggregated discovery (`application/json;g=apidiscovery…`
//! is answered with the legacy form), no short names or categories.

use serde_json::{Value, json};

use crate::resource::{Registry, ResourceType};

/// The version the double claims to be: the API k8s-openapi's `v1_33`
/// feature targets.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-kube-double",
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "",
        "compiler": "rustc",
        "platform": "linux/amd64",
    })
}

pub fn core_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1" }],
    })
}

pub fn groups(registry: &Registry) -> Value {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for t in registry.all().filter(|t| !t.group.is_empty()) {
        match groups.iter_mut().find(|(g, _)| *g == t.group) {
            Some((_, versions)) => {
                if !versions.contains(&t.version) {
                    versions.push(t.version.clone());
                }
            }
            None => groups.push((t.group.clone(), vec![t.version.clone()])),
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(name, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| json!({ "groupVersion": format!("{name}/{v}"), "version": v }))
                .collect();
            json!({
                "name": name,
                "versions": versions,
                "preferredVersion": versions.first().cloned().unwrap_or(Value::Null),
            })
        })
        .collect();
    json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
}

/// The resources of one group version, or `None` if it serves none.
pub fn resources(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let types: Vec<&ResourceType> = registry
        .all()
        .filter(|t| t.group == group && t.version == version)
        .collect();
    if types.is_empty() {
        return None;
    }
    let verbs = json!([
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch"
    ]);
    let mut resources = Vec::new();
    for t in types {
        resources.push(json!({
            "name": t.plural,
            "singularName": t.kind.to_lowercase(),
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": verbs,
        }));
        if t.status {
            resources.push(json!({
                "name": format!("{}/status", t.plural),
                "singularName": "",
                "namespaced": t.namespaced,
                "kind": t.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}
