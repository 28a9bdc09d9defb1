//! Server-side apply (`application/apply-patch+yaml`).
//!
//! Models the API server's behaviour, on the field model of
//! [`crate::fields`]:
//!
//! - applying to a missing object creates it;
//! - the applied fields are merged into the stored object, and the manager
//!   (`fieldManager`) then owns exactly the fields of its last apply;
//! - setting a field that another manager (applier or updater) owns, to a
//!   different value, is a 409 Conflict naming the field and the manager,
//!   unless `force=true`, which takes the field over;
//! - setting a field to the value it already has shares its ownership;
//! - a field the manager applied before and no longer applies is removed
//!   from the object unless another manager owns it too;
//! - on the main resource of a kind with a status subresource, `status` in
//!   the applied object is ignored; on `/status`, only `status` is.
//!
//! Simplified: lists are atomic (no merge by key), there is no
//! `x-kubernetes-list-type` or `patchMergeKey` handling, and a manager's
//! main-resource and status fields share one `managedFields` entry.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::fields::{self, Manager, Path};

/// One apply request.
#[derive(Debug, Clone, Copy)]
pub struct Apply<'a> {
    pub manager: &'a str,
    pub force: bool,
    /// The request went to `/status`.
    pub status_only: bool,
    /// The kind has a status subresource.
    pub has_status_subresource: bool,
    /// The time stamp recorded in `managedFields`.
    pub now: &'a str,
}

impl Apply<'_> {
    /// Whether this apply may touch `path`.
    fn in_scope(&self, path: &[String]) -> bool {
        let is_status = path.first().is_some_and(|k| k == "status");
        if self.status_only {
            is_status
        } else if self.has_status_subresource {
            !is_status
        } else {
            true
        }
    }

    fn is_mine(&self, m: &Manager) -> bool {
        m.manager == self.manager && m.operation == "Apply"
    }

    /// The object after applying `applied` to `current` (`None`: the object
    /// does not exist yet and is being created). The caller checks the
    /// `resourceVersion` precondition and stamps server-owned metadata.
    pub fn run(&self, current: Option<&Value>, applied: &Value) -> Result<Value, ApiError> {
        if !applied.is_object() {
            return Err(ApiError::bad_request("the applied object must be a map"));
        }
        let mut object = match current {
            Some(c) => c.clone(),
            None => skeleton(applied),
        };
        let applied_leaves: Vec<(Path, Value)> = fields::leaves(applied)
            .into_iter()
            .filter(|(p, _)| self.in_scope(p))
            .collect();
        let mut managers = fields::managers(&object);
        self.take_over_conflicts(&object, &applied_leaves, &mut managers)?;

        let new_paths: BTreeSet<Path> = applied_leaves.iter().map(|(p, _)| p.clone()).collect();
        let previous: BTreeSet<Path> = managers
            .iter()
            .filter(|m| self.is_mine(m))
            .flat_map(|m| m.fields.iter().cloned())
            .collect();
        self.remove_dropped(&mut object, &managers, &previous, &new_paths);
        merge(&mut object, &applied_leaves, applied);
        self.record_ownership(&mut managers, previous, new_paths, applied);
        fields::store_managers(&mut object, &managers);
        Ok(object)
    }

    /// Checks the applied fields against other managers' fields: a conflict
    /// is an error unless `force`, which takes the fields from them.
    fn take_over_conflicts(
        &self,
        object: &Value,
        applied_leaves: &[(Path, Value)],
        managers: &mut [Manager],
    ) -> Result<(), ApiError> {
        let mut conflicts = Vec::new();
        let mut taken: Vec<(usize, Path)> = Vec::new();
        for (path, value) in applied_leaves {
            let current = fields::get(object, path);
            let empty_map = value.as_object().is_some_and(Map::is_empty);
            if current == Some(value) || (empty_map && current.is_some_and(Value::is_object)) {
                continue;
            }
            for (i, m) in managers.iter().enumerate() {
                if m.manager == self.manager {
                    continue;
                }
                for owned in m.fields.iter().filter(|f| fields::overlaps(f, path)) {
                    conflicts.push((m.manager.clone(), fields::dotted(owned)));
                    taken.push((i, owned.clone()));
                }
            }
        }
        if !conflicts.is_empty() && !self.force {
            conflicts.sort();
            conflicts.dedup();
            return Err(ApiError::apply_conflict(&conflicts));
        }
        for (i, owned) in taken {
            if let Some(m) = managers.get_mut(i) {
                m.fields.remove(&owned);
            }
        }
        Ok(())
    }

    /// Removes the fields this manager applied before (`previous`) and no
    /// longer applies, unless another manager owns them too.
    fn remove_dropped(
        &self,
        object: &mut Value,
        managers: &[Manager],
        previous: &BTreeSet<Path>,
        new_paths: &BTreeSet<Path>,
    ) {
        for old in previous.iter().filter(|p| self.in_scope(p)) {
            // Applied again, or a field inside it is.
            let still_applied = new_paths
                .iter()
                .any(|n| n.len() >= old.len() && fields::overlaps(n, old));
            let owned_by_other = managers
                .iter()
                .any(|m| !self.is_mine(m) && m.fields.iter().any(|f| fields::overlaps(f, old)));
            if !still_applied && !owned_by_other {
                fields::remove(object, old);
            }
        }
    }

    /// Sets this manager's apply entry: its out-of-scope fields from
    /// `previous`, plus what it applied now.
    fn record_ownership(
        &self,
        managers: &mut Vec<Manager>,
        previous: BTreeSet<Path>,
        new_paths: BTreeSet<Path>,
        applied: &Value,
    ) {
        let mut owned: BTreeSet<Path> =
            previous.into_iter().filter(|p| !self.in_scope(p)).collect();
        owned.extend(new_paths);
        let api_version = applied
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        match managers.iter_mut().find(|m| self.is_mine(m)) {
            Some(m) => {
                if m.fields != owned {
                    m.time = self.now.to_string();
                }
                m.fields = owned;
            }
            None => managers.push(Manager {
                manager: self.manager.to_string(),
                operation: "Apply".into(),
                api_version,
                time: self.now.to_string(),
                fields: owned,
            }),
        }
    }
}

/// Merges the applied fields into `object`, and takes `apiVersion` and
/// `kind` from `applied`.
fn merge(object: &mut Value, applied_leaves: &[(Path, Value)], applied: &Value) {
    for (path, value) in applied_leaves {
        // An empty map applied onto a map merges into it (keeps it).
        let empty_map = value.as_object().is_some_and(Map::is_empty);
        if empty_map && fields::get(object, path).is_some_and(Value::is_object) {
            continue;
        }
        fields::set(object, path, value.clone());
    }
    if let Some(map) = object.as_object_mut() {
        for key in ["apiVersion", "kind"] {
            if let Some(v) = applied.get(key) {
                map.insert(key.into(), v.clone());
            }
        }
    }
}

/// The identity of a new object: apiVersion, kind, name and namespace.
fn skeleton(applied: &Value) -> Value {
    let mut object = Map::new();
    let mut meta = Map::new();
    for key in ["apiVersion", "kind"] {
        if let Some(v) = applied.get(key) {
            object.insert(key.into(), v.clone());
        }
    }
    for key in ["name", "namespace"] {
        if let Some(v) = applied.get("metadata").and_then(|m| m.get(key)) {
            meta.insert(key.into(), v.clone());
        }
    }
    object.insert("metadata".into(), Value::Object(meta));
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn apply(manager: &str, force: bool) -> Apply<'_> {
        Apply {
            manager,
            force,
            status_only: false,
            has_status_subresource: true,
            now: "t",
        }
    }

    #[test]
    fn conflict_then_force_then_removal() {
        let a = json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "x"},
                       "spec": {"a": 1, "b": 2}, "status": {"s": 1}});
        let obj = apply("one", false).run(None, &a).unwrap();
        assert_eq!(obj["spec"], json!({"a": 1, "b": 2}));
        assert!(
            obj.get("status").is_none(),
            "status ignored on the main resource"
        );

        // Same value: shared, no conflict.
        let b = json!({"metadata": {"name": "x"}, "spec": {"a": 1}});
        let obj = apply("two", false).run(Some(&obj), &b).unwrap();
        // Different value: conflict naming the field and manager.
        let c = json!({"metadata": {"name": "x"}, "spec": {"a": 1, "b": 3}});
        let err = apply("two", false).run(Some(&obj), &c).unwrap_err();
        assert_eq!(err.code, 409);
        assert!(
            err.message.contains("\"one\"") && err.message.contains(".spec.b"),
            "{err}"
        );
        let obj = apply("two", true).run(Some(&obj), &c).unwrap();
        assert_eq!(obj["spec"], json!({"a": 1, "b": 3}));

        // "one" stops applying a, which "two" still owns: kept.
        let obj = apply("one", false)
            .run(Some(&obj), &json!({"metadata": {"name": "x"}}))
            .unwrap();
        assert_eq!(obj["spec"], json!({"a": 1, "b": 3}));
        // "two" stops applying a: no one owns it any more, it goes.
        let d = json!({"metadata": {"name": "x"}, "spec": {"b": 3}});
        let obj = apply("two", false).run(Some(&obj), &d).unwrap();
        assert_eq!(obj["spec"], json!({"b": 3}));
        let names: Vec<String> = fields::managers(&obj)
            .into_iter()
            .map(|m| m.manager)
            .collect();
        assert_eq!(names, ["two"]);
    }

    #[test]
    fn an_empty_map_does_not_wipe_others_fields() {
        let obj = apply("one", false)
            .run(None, &json!({"metadata": {"name": "x"}, "spec": {"a": 1}}))
            .unwrap();
        let obj = apply("two", false)
            .run(Some(&obj), &json!({"metadata": {"name": "x"}, "spec": {}}))
            .unwrap();
        assert_eq!(obj["spec"], json!({"a": 1}));
    }
}
