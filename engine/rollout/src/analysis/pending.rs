//! Events that survive a kill. A tick that changes a Canary's status writes
//! its events into that status (`status.pendingEvents`) under fixed names,
//! in the same write as the new state, and publishes them after. An engine
//! killed between the two publishes them on its next tick; a cluster keeps
//! one event per name, so none is lost and none is published twice.
//!
//! Ticks that change nothing publish their events without a fixed name: a
//! lost one comes back with the next identical tick.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

use kube::ResourceExt;
use sha2::{Digest, Sha256};
use sluice_api::{Canary, CanaryStatus};

use crate::cluster::Event;

/// At most this many events of one tick are kept in the status; the rest
/// are published without a fixed name.
const MAX_PENDING: usize = 32;
/// Room left for the name's suffix within Kubernetes' 253 bytes.
const MAX_PREFIX: usize = 200;

/// Whether a tick's `status` (which starts without the pending events)
/// changes the stored one, pending events aside; a Canary without a status
/// gets one.
pub(super) fn changes(canary: &Canary, status: &CanaryStatus) -> bool {
    canary.status.as_ref().is_none_or(|s| !s.same_state(status))
}

/// Names the tick's events and writes them into `status` when the tick
/// changed it; otherwise the stored pending events stay as they are (the
/// status is not written).
pub(super) fn stage(canary: &Canary, status: &mut CanaryStatus, events: &mut [Event]) {
    if !changes(canary, status) {
        return;
    }
    let seed = tick_seed(canary);
    status.pending_events = events
        .iter_mut()
        .take(MAX_PENDING)
        .enumerate()
        .map(|(i, event)| {
            let name = event_name(canary, &seed, i);
            event.name = Some(name.clone());
            event.to_pending(name)
        })
        .collect();
}

/// What identifies the tick: the Canary (uid), and the stored version it
/// started from (resourceVersion and status). A tick redone on the same
/// stored version names its events as the first attempt did.
fn tick_seed(canary: &Canary) -> Sha256 {
    let mut h = Sha256::new();
    for part in [
        canary.namespace().unwrap_or_default(),
        canary.name_any(),
        canary.uid().unwrap_or_default(),
        canary.resource_version().unwrap_or_default(),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    if let Ok(status) = serde_json::to_vec(&canary.status) {
        h.update(&status);
    }
    h
}

/// "podinfo.3f2a…": the Canary's name and a digest of the tick and index.
fn event_name(canary: &Canary, seed: &Sha256, index: usize) -> String {
    let mut h = seed.clone();
    h.update(index.to_le_bytes());
    let digest = hex::encode(&h.finalize()[..8]);
    let name = canary.name_any();
    let mut end = name.len().min(MAX_PREFIX);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}.{digest}", &name[..end])
}

/// Which Canaries' pending events this engine has published (a
/// fingerprint of their names per Canary).
#[derive(Default)]
pub(super) struct Published(Mutex<HashMap<u64, u64>>);

impl Published {
    /// Whether the pending events of `status` were published by this engine
    /// (or there are none).
    pub(super) fn knows(&self, canary: &Canary, status: &CanaryStatus) -> bool {
        if status.pending_events.is_empty() {
            return true;
        }
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&key(canary)) == Some(&fingerprint(status))
    }

    /// Forgets `canary` (deleted).
    pub(super) fn forget(&self, canary: &Canary) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&key(canary));
    }

    /// Notes that the pending events of `status` are published.
    pub(super) fn record(&self, canary: &Canary, status: &CanaryStatus) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if status.pending_events.is_empty() {
            map.remove(&key(canary));
        } else {
            map.insert(key(canary), fingerprint(status));
        }
    }
}

/// The Canary, hashed (namespace and name): no allocation per tick.
fn key(canary: &Canary) -> u64 {
    let mut h = DefaultHasher::new();
    canary.metadata.namespace.hash(&mut h);
    canary.metadata.name.hash(&mut h);
    h.finish()
}

fn fingerprint(status: &CanaryStatus) -> u64 {
    let mut h = DefaultHasher::new();
    for p in &status.pending_events {
        p.name.hash(&mut h);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(resource_version: &str, weight: u32) -> Canary {
        let mut c: Canary = serde_json::from_value(serde_json::json!({
            "apiVersion": "flagger.app/v1beta1",
            "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test", "uid": "u1",
                         "resourceVersion": resource_version},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                     "service": {"port": 9898}, "analysis": {"interval": "1m", "threshold": 2}}
        }))
        .unwrap();
        c.status = Some(CanaryStatus {
            canary_weight: weight,
            ..Default::default()
        });
        c
    }

    fn staged(c: &Canary, new_weight: u32) -> (CanaryStatus, Vec<Event>) {
        let mut status = c.status.as_ref().unwrap().without_pending_events();
        status.canary_weight = new_weight;
        let mut events = vec![Event::normal("a"), Event::warning("b")];
        stage(c, &mut status, &mut events);
        (status, events)
    }

    #[test]
    fn a_tick_that_changes_the_status_carries_its_events_under_fixed_names() {
        let c = canary("7", 10);
        let (status, events) = staged(&c, 20);
        assert_eq!(status.pending_events.len(), 2);
        assert_eq!(status.pending_events[1].message, "b");
        assert_eq!(status.pending_events[1].event_type, "Warning");
        assert!(status.pending_events[0].name.starts_with("podinfo."));
        assert_ne!(status.pending_events[0].name, status.pending_events[1].name);
        assert_eq!(
            events[0].name.as_deref(),
            Some(&*status.pending_events[0].name)
        );
        // The same tick redone from the same stored version: the same names.
        assert_eq!(staged(&c, 20).0, status);
        // From another stored version: other names.
        let other = staged(&canary("8", 10), 20).0;
        assert_ne!(other.pending_events[0].name, status.pending_events[0].name);
    }

    #[test]
    fn a_tick_that_changes_nothing_keeps_the_stored_pending_events() {
        let mut c = canary("7", 10);
        let (status, _) = staged(&c, 20);
        c.status = Some(status.clone());
        let mut same = status.without_pending_events();
        let mut events = vec![Event::warning("waiting")];
        assert!(!changes(&c, &same));
        stage(&c, &mut same, &mut events);
        assert_eq!(
            same.pending_events,
            vec![],
            "not written: the stored ones stay"
        );
        assert_eq!(events[0].name, None);
    }

    #[test]
    fn published_pending_events_are_known_until_they_change() {
        let c = canary("7", 10);
        let (status, _) = staged(&c, 20);
        let published = Published::default();
        assert!(!published.knows(&c, &status));
        published.record(&c, &status);
        assert!(published.knows(&c, &status));
        let next = staged(&canary("9", 20), 30).0;
        assert!(!published.knows(&c, &next));
        assert!(published.knows(&c, &CanaryStatus::default()));
        published.forget(&c);
        assert!(
            !published.knows(&c, &status),
            "a deleted Canary is forgotten"
        );
    }
}
