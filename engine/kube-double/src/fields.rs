//! Field paths and the `managedFields` bookkeeping of server-side apply.
//!
//! Models `metadata.managedFields`: one entry per field manager and
//! operation (`Apply` or `Update`), whose `fieldsV1` lists the fields the
//! manager owns, in the API server's `f:` notation.
//!
//! Simplified: a manager owns *leaf* paths only (a scalar, a list, or an
//! empty map); every list is atomic (the API server merges associative
//! lists such as `containers` item by item, keyed by `name`; here whoever
//! sets a list sets all of it); there is no `.` entry for maps, no `k:`/`v:`
//! list keys, and the status subresource's fields are kept in the same
//! entry as the manager's other fields (they are disjoint paths anyway).

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

/// A path from the object's root: `["spec", "replicas"]`.
pub type Path = Vec<String>;

/// Metadata fields the server owns or that identify the object; never
/// tracked as owned fields.
const UNTRACKED_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "generateName",
];

/// The leaf paths of `object` and their values (see the module doc),
/// leaving out `apiVersion`, `kind` and the untracked metadata.
pub fn leaves(object: &Value) -> Vec<(Path, Value)> {
    let mut out = Vec::new();
    if let Some(map) = object.as_object() {
        for (key, value) in map {
            match key.as_str() {
                "apiVersion" | "kind" => {}
                "metadata" => {
                    if let Some(meta) = value.as_object() {
                        for (mk, mv) in meta {
                            if !UNTRACKED_METADATA.contains(&mk.as_str()) {
                                collect(vec!["metadata".into(), mk.clone()], mv, &mut out);
                            }
                        }
                    }
                }
                _ => collect(vec![key.clone()], value, &mut out),
            }
        }
    }
    out
}

fn collect(path: Path, value: &Value, out: &mut Vec<(Path, Value)>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                let mut p = path.clone();
                p.push(key.clone());
                collect(p, child, out);
            }
        }
        _ => out.push((path, value.clone())),
    }
}

/// The value at `path`, if any.
pub fn get<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(object, |node, key| node.as_object()?.get(key))
}

/// Sets `path` to `value`, creating maps on the way (replacing a non-map
/// in the way).
pub fn set(object: &mut Value, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        *object = value;
        return;
    };
    let mut node = object;
    for key in parents {
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
        let Some(map) = node.as_object_mut() else {
            return;
        };
        node = map
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if !node.is_object() {
        *node = Value::Object(Map::new());
    }
    if let Some(map) = node.as_object_mut() {
        map.insert(last.clone(), value);
    }
}

/// Removes the field at `path`, if present.
pub fn remove(object: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = object;
    for key in parents {
        match node.as_object_mut().and_then(|m| m.get_mut(key)) {
            Some(child) => node = child,
            None => return,
        }
    }
    if let Some(map) = node.as_object_mut() {
        map.remove(last);
    }
}

/// Whether one path is a prefix of the other (they name overlapping
/// fields).
pub fn overlaps(a: &[String], b: &[String]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

/// "spec.replicas".
pub fn dotted(path: &[String]) -> String {
    path.join(".")
}

/// One `managedFields` entry, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manager {
    pub manager: String,
    /// "Apply" or "Update".
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub fields: BTreeSet<Path>,
}

/// The managers recorded in `object`'s `metadata.managedFields`.
pub fn managers(object: &Value) -> Vec<Manager> {
    let Some(entries) = object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|entry| {
            let manager = entry.get("manager")?.as_str()?.to_string();
            let operation = entry
                .get("operation")
                .and_then(Value::as_str)
                .unwrap_or("Update")
                .to_string();
            let mut fields = BTreeSet::new();
            if let Some(tree) = entry.get("fieldsV1") {
                decode(tree, &mut Vec::new(), &mut fields);
            }
            Some(Manager {
                manager,
                operation,
                api_version: entry
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                time: entry
                    .get("time")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                fields,
            })
        })
        .collect()
}

fn decode(tree: &Value, path: &mut Path, out: &mut BTreeSet<Path>) {
    let children: Vec<(&String, &Value)> = tree
        .as_object()
        .map(|m| m.iter().filter(|(k, _)| k.starts_with("f:")).collect())
        .unwrap_or_default();
    if children.is_empty() {
        if !path.is_empty() {
            out.insert(path.clone());
        }
        return;
    }
    for (key, child) in children {
        path.push(key[2..].to_string());
        decode(child, path, out);
        path.pop();
    }
}

/// Writes `managers` (those owning something) into `object`'s
/// `metadata.managedFields`, or removes the field when there are none.
pub fn store_managers(object: &mut Value, managers: &[Manager]) {
    let entries: Vec<Value> = managers
        .iter()
        .filter(|m| !m.fields.is_empty())
        .map(|m| {
            json!({
                "manager": m.manager,
                "operation": m.operation,
                "apiVersion": m.api_version,
                "time": m.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": encode(&m.fields),
            })
        })
        .collect();
    if entries.is_empty() {
        remove(object, &["metadata".into(), "managedFields".into()]);
    } else {
        set(
            object,
            &["metadata".into(), "managedFields".into()],
            Value::Array(entries),
        );
    }
}

fn encode(fields: &BTreeSet<Path>) -> Value {
    let mut root = Value::Object(Map::new());
    for path in fields {
        let keyed: Path = path.iter().map(|k| format!("f:{k}")).collect();
        // A leaf must not overwrite a deeper entry already written.
        if get(&root, &keyed).is_none() {
            set(&mut root, &keyed, Value::Object(Map::new()));
        }
    }
    root
}

/// Records a non-apply write by `manager`: it takes ownership of every leaf
/// whose value it changed or added, which other managers lose (as the API
/// server does for `Update` operations; they never conflict). Fields the
/// write removed are dropped from every manager.
pub fn record_update(old: Option<&Value>, new: &mut Value, manager: &str, now: &str) {
    let mut list = old.map(managers).unwrap_or_default();
    let new_leaves = leaves(new);
    let changed: BTreeSet<Path> = new_leaves
        .iter()
        .filter(|(path, value)| old.and_then(|o| get(o, path)) != Some(value))
        .map(|(path, _)| path.clone())
        .collect();
    let present: Vec<Path> = new_leaves.into_iter().map(|(p, _)| p).collect();
    for m in &mut list {
        if m.manager != manager {
            m.fields.retain(|f| !changed.iter().any(|c| overlaps(c, f)));
        }
        // Fields no longer present are owned by no one.
        m.fields
            .retain(|f| present.iter().any(|p| overlaps(p, f) && p.len() >= f.len()));
    }
    if !changed.is_empty() {
        let api_version = new
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        match list
            .iter_mut()
            .find(|m| m.manager == manager && m.operation == "Update")
        {
            Some(m) => {
                m.fields.extend(changed);
                m.time = now.to_string();
            }
            None => list.push(Manager {
                manager: manager.to_string(),
                operation: "Update".into(),
                api_version,
                time: now.to_string(),
                fields: changed,
            }),
        }
    }
    store_managers(new, &list);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Path {
        s.split('.').map(String::from).collect()
    }

    #[test]
    fn leaves_skip_identity_and_treat_lists_as_atomic() {
        let obj = json!({"apiVersion": "v1", "kind": "X",
            "metadata": {"name": "a", "labels": {"l": "1"}},
            "spec": {"list": [1, 2], "m": {}, "n": {"x": 1}}});
        let paths: Vec<String> = leaves(&obj).iter().map(|(p, _)| dotted(p)).collect();
        assert_eq!(
            paths,
            ["metadata.labels.l", "spec.list", "spec.m", "spec.n.x"]
        );
    }

    #[test]
    fn managed_fields_round_trip() {
        let mut obj = json!({"metadata": {"name": "a"}});
        let fields: BTreeSet<Path> = [p("spec.replicas"), p("spec.template.x")].into();
        let m = Manager {
            manager: "m".into(),
            operation: "Apply".into(),
            api_version: "v1".into(),
            time: "t".into(),
            fields,
        };
        store_managers(&mut obj, std::slice::from_ref(&m));
        assert_eq!(
            obj.pointer("/metadata/managedFields/0/fieldsV1"),
            Some(&json!({"f:spec": {"f:replicas": {}, "f:template": {"f:x": {}}}}))
        );
        assert_eq!(managers(&obj), vec![m]);
    }

    #[test]
    fn an_update_takes_changed_fields_from_others() {
        let old = json!({"spec": {"a": 1, "b": 2}});
        let mut first = old.clone();
        record_update(None, &mut first, "one", "t");
        let mut second = json!({"spec": {"a": 1, "b": 3}, "metadata": first["metadata"].clone()});
        record_update(Some(&first), &mut second, "two", "t");
        let ms = managers(&second);
        assert_eq!(ms[0].fields, [p("spec.a")].into());
        assert_eq!(ms[1].fields, [p("spec.b")].into());
    }
}
