//! Fault injection and the request log, for tests.
//!
//! Nothing here models the API server; it is how a test makes the double
//! misbehave (a write lost to a concurrent writer, a failing server) and
//! sees what a client sent.

use std::sync::Mutex;

use crate::error::ApiError;

/// How a faulty write fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// 409 Conflict, as when another writer got there first.
    Conflict,
    /// 500 InternalError.
    Internal,
    /// 503 ServiceUnavailable, for reads (get, list, watch) as for writes:
    /// an API server that cannot be reached.
    Unavailable,
}

/// Makes the next `times` writes (POST, PUT, PATCH, DELETE) of a resource
/// fail, or with [`Fault::unavailable`] every request of it. Build with
/// [`Fault::conflict`], [`Fault::internal`] or [`Fault::unavailable`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Lower-case plural: "canaries", "deployments".
    pub plural: String,
    /// Only writes of this object.
    pub name: Option<String>,
    /// Only writes to the `/status` subresource.
    pub status_only: bool,
    /// Only writes to the object itself, not to its `/status`.
    pub main_only: bool,
    pub times: usize,
    pub kind: FaultKind,
}

impl Fault {
    /// The next write of `plural` answers 409 Conflict.
    pub fn conflict(plural: &str) -> Self {
        Self {
            plural: plural.into(),
            name: None,
            status_only: false,
            main_only: false,
            times: 1,
            kind: FaultKind::Conflict,
        }
    }

    /// The next write of `plural` answers 500.
    pub fn internal(plural: &str) -> Self {
        Self {
            kind: FaultKind::Internal,
            ..Self::conflict(plural)
        }
    }

    /// The next request of `plural`, read or write, answers 503.
    pub fn unavailable(plural: &str) -> Self {
        Self {
            kind: FaultKind::Unavailable,
            ..Self::conflict(plural)
        }
    }

    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.into());
        self
    }

    pub fn on_status(mut self) -> Self {
        self.status_only = true;
        self
    }

    /// Only writes to the object itself (a controller's status writes pass).
    pub fn on_main(mut self) -> Self {
        self.main_only = true;
        self
    }

    pub fn times(mut self, times: usize) -> Self {
        self.times = times;
        self
    }
}

/// One request as the double received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query: `/apis/apps/v1/namespaces/x/deployments?watch=true&…`.
    pub uri: String,
    pub content_type: Option<String>,
    /// The body as text (lossy UTF-8).
    pub body: String,
}

/// The faults armed and the requests seen.
#[derive(Debug, Default)]
pub struct Faults {
    armed: Mutex<Vec<Fault>>,
    log: Mutex<Vec<RecordedRequest>>,
}

impl Faults {
    pub fn arm(&self, fault: Fault) {
        if fault.times > 0 {
            lock(&self.armed).push(fault);
        }
    }

    /// The error for a request of `plural`/`name` (to `/status` or not), if
    /// a fault is armed for it; counts it down. Reads meet only
    /// [`FaultKind::Unavailable`] faults.
    pub fn check(
        &self,
        plural: &str,
        qualified_plural: &str,
        name: Option<&str>,
        status: bool,
        write: bool,
    ) -> Option<ApiError> {
        let mut armed = lock(&self.armed);
        let index = armed.iter().position(|f| {
            f.plural == plural
                && (f.name.is_none() || f.name.as_deref() == name)
                && (!f.status_only || status)
                && (!f.main_only || !status)
                && (write || f.kind == FaultKind::Unavailable)
        })?;
        let fault = armed.get_mut(index)?;
        fault.times -= 1;
        let kind = fault.kind;
        if fault.times == 0 {
            armed.remove(index);
        }
        Some(match kind {
            FaultKind::Conflict => ApiError::conflict(qualified_plural, name.unwrap_or_default()),
            FaultKind::Internal => ApiError::internal("injected fault"),
            FaultKind::Unavailable => ApiError::unavailable("injected fault: unavailable"),
        })
    }

    pub fn clear(&self) {
        lock(&self.armed).clear();
    }

    pub fn record(&self, request: RecordedRequest) {
        lock(&self.log).push(request);
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.log).clone()
    }

    pub fn clear_requests(&self) {
        lock(&self.log).clear();
    }
}

/// Locks, ignoring poisoning: a test that panicked while holding the lock
/// left consistent data (each critical section is one push or pop).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_count_down_and_match() {
        let f = Faults::default();
        f.arm(Fault::conflict("canaries").named("a").on_status().times(2));
        assert!(
            f.check("canaries", "canaries.x", Some("a"), false, true)
                .is_none()
        );
        assert!(
            f.check("canaries", "canaries.x", Some("b"), true, true)
                .is_none()
        );
        assert!(
            f.check("canaries", "canaries.x", Some("a"), true, false)
                .is_none(),
            "a read never meets a write fault"
        );
        assert_eq!(
            f.check("canaries", "canaries.x", Some("a"), true, true)
                .unwrap()
                .code,
            409
        );
        assert!(
            f.check("canaries", "canaries.x", Some("a"), true, true)
                .is_some()
        );
        assert!(
            f.check("canaries", "canaries.x", Some("a"), true, true)
                .is_none()
        );
        f.arm(Fault::internal("deployments"));
        assert_eq!(
            f.check("deployments", "d", None, false, true).unwrap().code,
            500
        );
        f.arm(Fault::unavailable("leases").times(2));
        assert_eq!(
            f.check("leases", "l", None, false, false).unwrap().code,
            503
        );
        assert_eq!(f.check("leases", "l", None, false, true).unwrap().code, 503);
        assert!(f.check("leases", "l", None, false, false).is_none());
    }
}
