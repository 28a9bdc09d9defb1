//! The object store: every object of every resource type, as JSON, with
//! the API server's write semantics.
//!
//! Models (per write): one global, monotonically increasing
//! `resourceVersion` (etcd's revision); `metadata.uid`,
//! `creationTimestamp` and `generation` (bumped when anything outside
//! `metadata` and `status` changes); `resourceVersion` preconditions (409
//! Conflict); writes that change nothing are no-ops (no new
//! `resourceVersion`, no watch event); the status subresource (writes to
//! the main resource keep the stored `status`, writes to `/status` change
//! only `status`); finalizers (a delete sets `deletionTimestamp` and the
//! object stays until a write empties `finalizers`); owner-reference
//! garbage collection (deleting an owner deletes the dependents it was the
//! last owner of, `propagationPolicy=Orphan` unlinks them instead); CRD
//! pruning, defaulting and validation ([`crate::schema`]).
//!
//! Every change is kept in a bounded history and broadcast, for watches.
//!
//! Simplified: garbage collection happens synchronously within the delete
//! (the API server's collector is asynchronous); `Foreground` deletes the
//! dependents first, then the owner, without the `foregroundDeletion`
//! finalizer phase; deleting a Namespace does not delete its contents;
//! namespaces need not exist; there is no admission of built-in kinds (a
//! Deployment without a selector is accepted) and no defaulting of their
//! fields; `dryRun` is not supported (see [`crate::routes`]).

use std::collections::{BTreeMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use crate::apply::Apply;
use crate::error::ApiError;
use crate::fields;
use crate::resource::{Registry, ResourceType};
use crate::schema::Schemas;
use crate::select::Selector;

/// (group, plural, namespace, name); the namespace is "" for cluster-scoped
/// objects.
pub type Key = (String, String, String, String);

/// The kind of a change, as watch events name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change of one object.
#[derive(Debug, Clone)]
pub struct Change {
    pub rv: u64,
    pub group: String,
    pub plural: String,
    pub namespace: String,
    pub event: EventType,
    /// The object before (for MODIFIED), so that a watch with a selector
    /// can tell an object leaving the selection.
    pub old: Option<Value>,
    pub object: Value,
}

/// How a write was made.
#[derive(Debug, Clone, Copy, Default)]
pub struct Write<'a> {
    /// `fieldManager` of a non-apply write; recorded in `managedFields`.
    pub manager: Option<&'a str>,
    /// The write went to `/status`.
    pub status_only: bool,
    /// A direct write from the test (not through HTTP): the object is
    /// stored as given (status included), without validation, managed
    /// fields or a `resourceVersion` precondition.
    pub admin: bool,
}

/// `DeleteOptions`, the parts the double honours.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// "Orphan", "Background" (the default) or "Foreground".
    pub propagation: Option<String>,
    pub precondition_rv: Option<String>,
    pub precondition_uid: Option<String>,
}

struct Entry {
    resource: ResourceType,
    object: Value,
}

/// The store's state; callers hold the store's lock.
pub struct State {
    rv: u64,
    objects: BTreeMap<Key, Entry>,
    history: VecDeque<Arc<Change>>,
    /// A watch may start from any `resourceVersion` >= this one: every
    /// later change is still in the history.
    floor: u64,
    history_limit: usize,
    pub registry: Registry,
    pub schemas: Schemas,
    events: broadcast::Sender<Arc<Change>>,
}

fn key_of(resource: &ResourceType, namespace: &str, name: &str) -> Key {
    let ns = if resource.namespaced { namespace } else { "" };
    (
        resource.group.clone(),
        resource.plural.clone(),
        ns.to_string(),
        name.to_string(),
    )
}

/// The current time as the API server writes it in metadata.
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn random_u64(salt: u64) -> u64 {
    RandomState::new().hash_one(salt)
}

fn new_uid(salt: u64) -> String {
    let (a, b) = (random_u64(salt), random_u64(salt.wrapping_add(1)));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// Five characters, as `generateName` appends.
fn name_suffix(salt: u64) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = random_u64(salt);
    (0..5)
        .map(|_| {
            let c = ALPHABET[(n % ALPHABET.len() as u64) as usize] as char;
            n /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

fn meta(object: &Value, key: &str) -> Option<String> {
    object
        .get("metadata")?
        .get(key)?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(String::from)
}

fn meta_mut(object: &mut Value) -> Result<&mut Map<String, Value>, ApiError> {
    let map = object
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the object must be a JSON object"))?;
    let metadata = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    metadata
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be a JSON object"))
}

fn finalizers_empty(object: &Value) -> bool {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
}

/// The object without `metadata` and `status`: what `generation` tracks.
fn spec_part(object: &Value) -> Value {
    let mut v = object.clone();
    if let Some(map) = v.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    v
}

/// Equal but for `metadata.resourceVersion`.
fn same_content(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        v
    };
    strip(a) == strip(b)
}

const SERVER_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// Sets `apiVersion` and `kind` of a new object; drops its `status` when
/// the kind has a status subresource (unless `admin`).
fn set_type(resource: &ResourceType, object: &mut Value, write: Write<'_>) -> Result<(), ApiError> {
    let map = object
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the object must be a JSON object"))?;
    map.insert("apiVersion".into(), resource.api_version().into());
    map.insert("kind".into(), resource.kind.clone().into());
    if resource.status && !write.admin {
        map.remove("status");
    }
    Ok(())
}

/// Removes the metadata the server sets from a new object's metadata
/// (but `managedFields` when the caller has set them).
fn strip_server_metadata(m: &mut Map<String, Value>, managed_done: bool) {
    for key in SERVER_METADATA {
        if !(managed_done && *key == "managedFields") {
            m.remove(*key);
        }
    }
}

/// A new object's name: `metadata.name`, or `generateName` plus a random
/// suffix.
fn new_name(
    resource: &ResourceType,
    m: &Map<String, Value>,
    salt: u64,
) -> Result<String, ApiError> {
    match m
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        Some(name) => Ok(name.to_string()),
        None => match m.get("generateName").and_then(Value::as_str) {
            Some(prefix) => Ok(format!("{prefix}{}", name_suffix(salt))),
            None => Err(ApiError::invalid(
                &resource.qualified_kind(),
                "",
                "metadata.name",
                "Required value: name or generateName is required",
            )),
        },
    }
}

/// Sets a new object's namespace to the request's (none for a
/// cluster-scoped kind); a different namespace in the object is an error.
fn set_namespace(
    resource: &ResourceType,
    m: &mut Map<String, Value>,
    namespace: &str,
) -> Result<(), ApiError> {
    if resource.namespaced {
        if let Some(given) = m.get("namespace").and_then(Value::as_str)
            && !given.is_empty()
            && given != namespace
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        m.insert("namespace".into(), namespace.into());
    } else {
        m.remove("namespace");
    }
    Ok(())
}

/// Checks a replacement of `old`: a JSON object, named `name`, and (unless
/// `admin`) at `old`'s `resourceVersion` when it gives one.
fn check_candidate(
    resource: &ResourceType,
    name: &str,
    old: &Value,
    candidate: &Value,
    write: Write<'_>,
) -> Result<(), ApiError> {
    if !candidate.is_object() {
        return Err(ApiError::bad_request("the object must be a JSON object"));
    }
    if let Some(given) = meta(candidate, "name")
        && given != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({given}) does not match the name on the URL ({name})"
        )));
    }
    if !write.admin
        && let Some(rv) = meta(candidate, "resourceVersion")
        && Some(&rv) != meta(old, "resourceVersion").as_ref()
    {
        return Err(ApiError::conflict(&resource.qualified_plural(), name));
    }
    Ok(())
}

/// A write to `/status`: `old` with the candidate's `status` (and its
/// `managedFields` when the caller has set them).
fn with_status_of(old: &Value, candidate: &Value, managed_done: bool) -> Result<Value, ApiError> {
    let mut n = old.clone();
    if let Some(map) = n.as_object_mut() {
        match candidate.get("status") {
            Some(status) => map.insert("status".into(), status.clone()),
            None => map.remove("status"),
        };
    }
    if managed_done && let Some(mf) = candidate.pointer("/metadata/managedFields").cloned() {
        meta_mut(&mut n)?.insert("managedFields".into(), mf);
    }
    Ok(n)
}

/// A write to the main resource: the candidate with `old`'s `status` (for
/// a kind with a status subresource, unless `admin`), `old`'s server
/// metadata, name and namespace (but those an `admin` write gives, and
/// `managedFields` the caller has set), and the resource's `apiVersion`
/// and `kind`.
fn with_stored_parts(
    resource: &ResourceType,
    old: &Value,
    mut candidate: Value,
    write: Write<'_>,
    managed_done: bool,
) -> Result<Value, ApiError> {
    if resource.status
        && !write.admin
        && let Some(map) = candidate.as_object_mut()
    {
        match old.get("status") {
            Some(status) => map.insert("status".into(), status.clone()),
            None => map.remove("status"),
        };
    }
    let old_meta = old.get("metadata").and_then(Value::as_object);
    let m = meta_mut(&mut candidate)?;
    for k in SERVER_METADATA.iter().chain(&["name", "namespace"]) {
        let keep_given =
            (write.admin && m.contains_key(*k)) || (managed_done && *k == "managedFields");
        if keep_given || *k == "resourceVersion" {
            continue;
        }
        match old_meta.and_then(|om| om.get(*k)) {
            Some(v) => m.insert((*k).to_string(), v.clone()),
            None => m.remove(*k),
        };
    }
    if let Some(map) = candidate.as_object_mut() {
        map.insert("apiVersion".into(), resource.api_version().into());
        map.insert("kind".into(), resource.kind.clone().into());
    }
    Ok(candidate)
}

/// Sets `new`'s `generation` to one more than `old`'s.
fn bump_generation(old: &Value, new: &mut Value) -> Result<(), ApiError> {
    let generation = old
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    meta_mut(new)?.insert("generation".into(), (generation + 1).into());
    Ok(())
}

impl State {
    pub fn new(history_limit: usize, events: broadcast::Sender<Arc<Change>>) -> Self {
        Self {
            rv: 0,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            floor: 0,
            history_limit,
            registry: Registry::default(),
            schemas: Schemas::default(),
            events,
        }
    }

    /// The latest `resourceVersion`.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn emit(
        &mut self,
        resource: &ResourceType,
        event: EventType,
        old: Option<Value>,
        object: &Value,
    ) {
        let change = Arc::new(Change {
            rv: self.rv,
            group: resource.group.clone(),
            plural: resource.plural.clone(),
            namespace: meta(object, "namespace").unwrap_or_default(),
            event,
            old,
            object: object.clone(),
        });
        self.history.push_back(Arc::clone(&change));
        while self.history.len() > self.history_limit {
            if let Some(dropped) = self.history.pop_front() {
                self.floor = dropped.rv;
            }
        }
        // No receiver is fine: no one watches.
        let _ = self.events.send(change);
    }

    /// Forgets the watch history: a watch from any earlier
    /// `resourceVersion` gets 410 Gone (etcd compaction).
    pub fn compact(&mut self) {
        self.history.clear();
        self.floor = self.rv;
    }

    /// The changes after `rv` (oldest first), or `None` when some of them
    /// are no longer in the history.
    pub fn changes_since(&self, rv: u64) -> Option<Vec<Arc<Change>>> {
        if rv < self.floor {
            return None;
        }
        Some(self.history.iter().filter(|c| c.rv > rv).cloned().collect())
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.events.subscribe()
    }

    pub fn get(&self, resource: &ResourceType, namespace: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(&key_of(resource, namespace, name))
            .map(|e| &e.object)
    }

    /// The objects of `resource` (in `namespace`, or all) matching the
    /// selectors, in key order.
    pub fn list(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        labels: &Selector,
        fields: &Selector,
    ) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|((g, p, ns, _), _)| {
                *g == resource.group
                    && *p == resource.plural
                    && namespace.is_none_or(|want| !resource.namespaced || want == ns)
            })
            .map(|(_, e)| &e.object)
            .filter(|o| labels.matches(o) && fields.matches(o))
            .cloned()
            .collect()
    }

    /// POST: creates `object` in `namespace`.
    pub fn create(
        &mut self,
        resource: &ResourceType,
        namespace: &str,
        object: Value,
        write: Write<'_>,
    ) -> Result<Value, ApiError> {
        self.insert_new(resource, namespace, object, write, false)
    }

    fn insert_new(
        &mut self,
        resource: &ResourceType,
        namespace: &str,
        mut object: Value,
        write: Write<'_>,
        managed_done: bool,
    ) -> Result<Value, ApiError> {
        let salt = self.rv;
        let now = now();
        set_type(resource, &mut object, write)?;
        let m = meta_mut(&mut object)?;
        if !write.admin {
            strip_server_metadata(m, managed_done);
        }
        let name = new_name(resource, m, salt)?;
        m.insert("name".into(), name.clone().into());
        set_namespace(resource, m, namespace)?;
        let key = key_of(resource, namespace, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(
                &resource.qualified_plural(),
                &name,
            ));
        }
        m.entry("uid").or_insert_with(|| new_uid(salt).into());
        m.entry("creationTimestamp")
            .or_insert_with(|| now.clone().into());
        m.entry("generation").or_insert_with(|| 1.into());
        self.admit(resource, None, &mut object, write, managed_done, &now)?;
        let rv = self.next_rv();
        meta_mut(&mut object)?.insert("resourceVersion".into(), rv.to_string().into());
        self.objects.insert(
            key,
            Entry {
                resource: resource.clone(),
                object: object.clone(),
            },
        );
        self.emit(resource, EventType::Added, None, &object);
        Ok(object)
    }

    /// For a write through the API (not `admin`): records the manager's
    /// update in `managedFields` (unless the caller has), then prunes,
    /// defaults and validates the object ([`Schemas::admit`]).
    fn admit(
        &self,
        resource: &ResourceType,
        old: Option<&Value>,
        object: &mut Value,
        write: Write<'_>,
        managed_done: bool,
        now: &str,
    ) -> Result<(), ApiError> {
        if write.admin {
            return Ok(());
        }
        if let (Some(manager), false) = (write.manager, managed_done) {
            fields::record_update(old, object, manager, now);
        }
        self.schemas.admit(resource, object)
    }

    /// PUT: replaces the object (or its status) with `candidate`; also the
    /// second half of every PATCH, whose `candidate` is the patched object.
    pub fn update(
        &mut self,
        resource: &ResourceType,
        namespace: &str,
        name: &str,
        candidate: Value,
        write: Write<'_>,
    ) -> Result<Value, ApiError> {
        self.replace(resource, namespace, name, candidate, write, false)
    }

    fn replace(
        &mut self,
        resource: &ResourceType,
        namespace: &str,
        name: &str,
        candidate: Value,
        write: Write<'_>,
        managed_done: bool,
    ) -> Result<Value, ApiError> {
        let key = key_of(resource, namespace, name);
        let old = self
            .objects
            .get(&key)
            .map(|e| e.object.clone())
            .ok_or_else(|| ApiError::not_found(&resource.qualified_plural(), name))?;
        check_candidate(resource, name, &old, &candidate, write)?;
        let now = now();
        let mut new = if write.status_only && !write.admin {
            with_status_of(&old, &candidate, managed_done)?
        } else {
            with_stored_parts(resource, &old, candidate, write, managed_done)?
        };
        self.admit(resource, Some(&old), &mut new, write, managed_done, &now)?;
        if meta(&new, "deletionTimestamp").is_some() && finalizers_empty(&new) {
            return Ok(self.remove_now(&key, new));
        }
        if same_content(&new, &old) {
            return Ok(old);
        }
        if spec_part(&new) != spec_part(&old) && !write.admin {
            bump_generation(&old, &mut new)?;
        }
        let rv = self.next_rv();
        meta_mut(&mut new)?.insert("resourceVersion".into(), rv.to_string().into());
        if let Some(entry) = self.objects.get_mut(&key) {
            entry.object = new.clone();
        }
        self.emit(resource, EventType::Modified, Some(old), &new);
        Ok(new)
    }

    /// PATCH (other than apply): `patch` turns the stored object into the
    /// candidate, which is then written as by [`Self::update`].
    pub fn patch(
        &mut self,
        resource: &ResourceType,
        namespace: &str,
        name: &str,
        patch: impl FnOnce(&mut Value) -> Result<(), ApiError>,
        write: Write<'_>,
    ) -> Result<Value, ApiError> {
        let mut candidate = self
            .get(resource, namespace, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&resource.qualified_plural(), name))?;
        patch(&mut candidate)?;
        self.update(resource, namespace, name, candidate, write)
    }

    /// Server-side apply of `applied` (see [`crate::apply`]); creates the
    /// object when it does not exist.
    pub fn apply(
        &mut self,
        resource: &ResourceType,
        namespace: &str,
        name: &str,
        applied: &Value,
        apply: Apply<'_>,
    ) -> Result<Value, ApiError> {
        let write = Write {
            manager: Some(apply.manager),
            status_only: apply.status_only,
            admin: false,
        };
        if let Some(given) = meta(applied, "name")
            && given != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({given}) does not match the name on the URL ({name})"
            )));
        }
        match self.get(resource, namespace, name).cloned() {
            Some(current) => {
                if let Some(rv) = meta(applied, "resourceVersion")
                    && Some(&rv) != meta(&current, "resourceVersion").as_ref()
                {
                    return Err(ApiError::conflict(&resource.qualified_plural(), name));
                }
                let mut candidate = apply.run(Some(&current), applied)?;
                // The precondition is checked; the merged object carries the
                // current version.
                if let Some(rv) = meta(&current, "resourceVersion") {
                    meta_mut(&mut candidate)?.insert("resourceVersion".into(), rv.into());
                }
                self.replace(resource, namespace, name, candidate, write, true)
            }
            None if apply.status_only => {
                Err(ApiError::not_found(&resource.qualified_plural(), name))
            }
            None => {
                let mut candidate = apply.run(None, applied)?;
                if let Some(m) = candidate.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.insert("name".into(), name.into());
                }
                self.insert_new(resource, namespace, candidate, write, true)
            }
        }
    }

    /// DELETE: removes the object, or marks it for deletion while it has
    /// finalizers; then collects its dependents.
    pub fn delete(
        &mut self,
        resource: &ResourceType,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        let key = key_of(resource, namespace, name);
        let old = self
            .objects
            .get(&key)
            .map(|e| e.object.clone())
            .ok_or_else(|| ApiError::not_found(&resource.qualified_plural(), name))?;
        let mismatch = |want: &Option<String>, field: &str| {
            want.as_ref()
                .is_some_and(|w| Some(w) != meta(&old, field).as_ref())
        };
        if mismatch(&options.precondition_rv, "resourceVersion")
            || mismatch(&options.precondition_uid, "uid")
        {
            return Err(ApiError::conflict(&resource.qualified_plural(), name));
        }
        let uid = meta(&old, "uid").unwrap_or_default();
        match options.propagation.as_deref() {
            Some("Orphan") => self.orphan_dependents(&uid),
            Some("Foreground") => self.collect_dependents(&uid, options),
            _ => {}
        }
        if !finalizers_empty(&old) {
            if meta(&old, "deletionTimestamp").is_some() {
                return Ok(old);
            }
            let mut marked = old.clone();
            let m = meta_mut(&mut marked)?;
            m.insert("deletionTimestamp".into(), now().into());
            m.insert("deletionGracePeriodSeconds".into(), 0.into());
            let rv = self.next_rv();
            meta_mut(&mut marked)?.insert("resourceVersion".into(), rv.to_string().into());
            if let Some(entry) = self.objects.get_mut(&key) {
                entry.object = marked.clone();
            }
            self.emit(resource, EventType::Modified, Some(old), &marked);
            return Ok(marked);
        }
        Ok(self.remove_now(&key, old))
    }

    /// Removes the object for good, then collects its dependents
    /// (background propagation).
    fn remove_now(&mut self, key: &Key, mut object: Value) -> Value {
        let Some(entry) = self.objects.remove(key) else {
            return object;
        };
        let rv = self.next_rv();
        if let Some(m) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("resourceVersion".into(), rv.to_string().into());
        }
        self.emit(
            &entry.resource,
            EventType::Deleted,
            Some(entry.object),
            &object,
        );
        if let Some(uid) = meta(&object, "uid") {
            self.collect_dependents(&uid, &DeleteOptions::default());
        }
        object
    }

    /// The keys of the objects with an owner reference to `uid`.
    fn dependents(&self, uid: &str) -> Vec<Key> {
        self.objects
            .iter()
            .filter(|(_, e)| {
                e.object
                    .pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .is_some_and(|refs| {
                        refs.iter()
                            .any(|r| r.get("uid").and_then(Value::as_str) == Some(uid))
                    })
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn uid_exists(&self, uid: &str) -> bool {
        self.objects
            .values()
            .any(|e| meta(&e.object, "uid").as_deref() == Some(uid))
    }

    /// Garbage collection: each dependent of `uid` loses that owner
    /// reference if it has another live owner, and is deleted otherwise.
    fn collect_dependents(&mut self, uid: &str, options: &DeleteOptions) {
        for key in self.dependents(uid) {
            let Some(entry) = self.objects.get(&key) else {
                continue;
            };
            let (resource, object) = (entry.resource.clone(), entry.object.clone());
            let other_owner = object
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|r| r.get("uid").and_then(Value::as_str))
                .any(|other| other != uid && self.uid_exists(other));
            if other_owner {
                self.unlink_owner(&key, uid);
            } else {
                let dependent_options = DeleteOptions {
                    propagation: options.propagation.clone(),
                    ..DeleteOptions::default()
                };
                let _ = self.delete(&resource, &key.2, &key.3, &dependent_options);
            }
        }
    }

    fn orphan_dependents(&mut self, uid: &str) {
        for key in self.dependents(uid) {
            self.unlink_owner(&key, uid);
        }
    }

    /// Removes the owner reference to `uid` from the object at `key`.
    fn unlink_owner(&mut self, key: &Key, uid: &str) {
        let Some(entry) = self.objects.get(key) else {
            return;
        };
        let (resource, mut object) = (entry.resource.clone(), entry.object.clone());
        if let Some(refs) = object
            .pointer_mut("/metadata/ownerReferences")
            .and_then(Value::as_array_mut)
        {
            refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid));
        }
        let _ = self.update(
            &resource,
            &key.2,
            &key.3,
            object,
            Write {
                admin: true,
                ..Write::default()
            },
        );
    }

    /// A direct write from the test: creates or replaces the object as
    /// given (status included).
    pub fn put(&mut self, mut object: Value) -> Result<Value, ApiError> {
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let kind = object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let resource = self
            .registry
            .by_kind(&api_version, &kind)
            .cloned()
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "no resource type known for apiVersion {api_version:?}, kind {kind:?}"
                ))
            })?;
        let name = meta(&object, "name")
            .ok_or_else(|| ApiError::bad_request("the object has no metadata.name"))?;
        let namespace = meta(&object, "namespace").unwrap_or_else(|| {
            if resource.namespaced {
                "default".to_string()
            } else {
                String::new()
            }
        });
        let write = Write {
            admin: true,
            ..Write::default()
        };
        if self.get(&resource, &namespace, &name).is_some() {
            if let Some(m) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
            }
            self.update(&resource, &namespace, &name, object, write)
        } else {
            self.create(&resource, &namespace, object, write)
        }
    }

    /// Adds the resource types of CRDs.
    pub fn add_types(&mut self, types: Vec<ResourceType>) {
        for t in types {
            self.registry.add(t);
        }
    }

    /// A JSON list of `items` as the API server returns it.
    pub fn list_object(&self, resource: &ResourceType, items: Vec<Value>) -> Value {
        json!({
            "kind": format!("{}List", resource.kind),
            "apiVersion": resource.api_version(),
            "metadata": { "resourceVersion": self.rv.to_string() },
            "items": items,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State::new(100, broadcast::channel(16).0)
    }

    fn cm(name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "1"}})
    }

    #[test]
    fn versions_generation_and_no_op_writes() {
        let mut s = state();
        let r = s
            .registry
            .get("apps", "v1", "deployments")
            .cloned()
            .unwrap();
        let d = json!({"metadata": {"name": "d"}, "spec": {"replicas": 1}, "status": {"x": 1}});
        let created = s.create(&r, "ns", d, Write::default()).unwrap();
        assert_eq!(
            created.pointer("/metadata/resourceVersion"),
            Some(&json!("1"))
        );
        assert_eq!(created.get("status"), None, "status is not set on create");
        // No-op.
        let same = s
            .update(&r, "ns", "d", created.clone(), Write::default())
            .unwrap();
        assert_eq!(same.pointer("/metadata/resourceVersion"), Some(&json!("1")));
        // Status only: generation unchanged.
        let mut st = created.clone();
        st["status"] = json!({"ready": 1});
        let w = Write {
            status_only: true,
            ..Write::default()
        };
        let after = s.update(&r, "ns", "d", st, w).unwrap();
        assert_eq!(after.pointer("/metadata/generation"), Some(&json!(1)));
        assert_eq!(after["status"], json!({"ready": 1}));
        // Stale resourceVersion.
        let err = s
            .update(&r, "ns", "d", created, Write::default())
            .unwrap_err();
        assert_eq!(err.code, 409);
        let mut spec = after.clone();
        spec["spec"]["replicas"] = json!(2);
        spec["status"] = json!({});
        let after = s.update(&r, "ns", "d", spec, Write::default()).unwrap();
        assert_eq!(after.pointer("/metadata/generation"), Some(&json!(2)));
        assert_eq!(after["status"], json!({"ready": 1}), "status kept");
    }

    #[test]
    fn history_floor_and_compaction() {
        let mut s = State::new(2, broadcast::channel(16).0);
        let r = s.registry.get("", "v1", "configmaps").cloned().unwrap();
        for n in ["a", "b", "c"] {
            s.create(&r, "ns", cm(n), Write::default()).unwrap();
        }
        assert!(s.changes_since(0).is_none());
        assert_eq!(s.changes_since(1).map(|c| c.len()), Some(2));
        s.compact();
        assert!(s.changes_since(2).is_none());
        assert_eq!(s.changes_since(3).map(|c| c.len()), Some(0));
    }
}
