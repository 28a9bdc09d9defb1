//! What the engine keeps about each Canary from one tick to the next, by
//! the Canary's uid (its Services' inputs, its confirmed route, its
//! observed workloads): a Canary never stored has no uid and nothing kept,
//! and a deleted one is forgotten.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use sluice_api::Canary;

/// One value per Canary, by uid.
pub(crate) struct PerCanary<T>(Mutex<HashMap<String, T>>);

impl<T> Default for PerCanary<T> {
    fn default() -> Self {
        Self(Mutex::default())
    }
}

impl<T> PerCanary<T> {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, T>> {
        // A panic while holding the lock leaves plain data behind.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What `f` makes of the value kept for the Canary of `uid`, if any.
    pub(crate) fn get<R>(&self, uid: &str, f: impl FnOnce(&T) -> R) -> Option<R> {
        self.lock().get(uid).map(f)
    }

    /// Keeps `value` for the Canary of `uid`.
    pub(crate) fn insert(&self, uid: &str, value: T) {
        self.lock().insert(uid.to_string(), value);
    }

    /// Drops what is kept for the Canary of `uid`.
    pub(crate) fn remove(&self, uid: &str) {
        self.lock().remove(uid);
    }

    /// Drops what is kept for `canary` (deleted).
    pub(crate) fn forget(&self, canary: &Canary) {
        if let Some(uid) = canary.metadata.uid.as_deref() {
            self.remove(uid);
        }
    }
}
