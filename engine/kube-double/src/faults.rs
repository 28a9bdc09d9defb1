//! Fault injection and the request log, for tests.
//!
//! Nothing here models the API server; it is how a test makes the double
//! misbehave (a write lost to a concurrent writer, a failing server) and
//! sees what a client sent.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use crate::error::ApiError;

/// How a faulty request fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// 409 Conflict, as when another writer got there first.
    Conflict,
    /// 500 InternalError.
    Internal,
    /// 503 ServiceUnavailable, for reads (get, list, watch) as for writes:
    /// an API server that cannot be reached.
    Unavailable,
    /// The write is held this long (or until the test releases it), then
    /// served as usual, whether or not the client still waits for the
    /// answer: an API server (or etcd) that hangs, then commits a write
    /// whose answer nobody reads.
    Delay(Duration),
    /// As [`FaultKind::Delay`], held until the test releases it
    /// ([`crate::ApiServer::release_held`]).
    Held,
}

/// What an armed fault does to one request.
#[derive(Debug, Clone)]
pub enum Injected {
    /// Answer with this error instead of serving the request.
    Fail(ApiError),
    /// Serve the request after `delay`, or once the test releases held
    /// requests (a change of `release`), whichever comes first.
    Hold {
        delay: Duration,
        release: watch::Receiver<u64>,
    },
}

impl Injected {
    /// Waits out a hold (at once for a failure).
    pub async fn wait(self) {
        if let Injected::Hold { delay, mut release } = self {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = release.changed() => {}
            }
        }
    }
}

/// Makes the next `times` writes (POST, PUT, PATCH, DELETE) of a resource
/// fail or hang, or with [`Fault::unavailable`] every request of it. Build
/// with [`Fault::conflict`], [`Fault::internal`], [`Fault::unavailable`] or
/// [`Fault::delayed`].
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

    /// The next write of `plural` is held for `delay` before it is served
    /// (longer than a client's timeout: the client gives up, the write
    /// still lands).
    pub fn delayed(plural: &str, delay: Duration) -> Self {
        Self {
            kind: FaultKind::Delay(delay),
            ..Self::conflict(plural)
        }
    }

    /// The next write of `plural` is held until the test releases it
    /// ([`crate::ApiServer::release_held`]), then served: a write that lands
    /// exactly when the test says, long after its client gave up.
    pub fn held(plural: &str) -> Self {
        Self {
            kind: FaultKind::Held,
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
    /// The `Accept` header (`…;as=PartialObjectMetadata;…` for a
    /// metadata-only read).
    pub accept: Option<String>,
    /// The body as text (lossy UTF-8).
    pub body: String,
}

/// A request an armed fault met: which object, and what it did to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultMet {
    pub plural: String,
    pub name: Option<String>,
    /// To the `/status` subresource.
    pub status: bool,
    pub kind: FaultKind,
}

/// The faults armed and the requests seen.
#[derive(Debug)]
pub struct Faults {
    armed: Mutex<Vec<Fault>>,
    log: Mutex<Vec<RecordedRequest>>,
    met: Mutex<Vec<FaultMet>>,
    /// Bumped to let every held request go.
    release: watch::Sender<u64>,
    /// Held requests not served yet.
    holding: AtomicUsize,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            armed: Mutex::default(),
            log: Mutex::default(),
            met: Mutex::default(),
            release: watch::Sender::new(0),
            holding: AtomicUsize::new(0),
        }
    }
}

impl Faults {
    pub fn arm(&self, fault: Fault) {
        if fault.times > 0 {
            lock(&self.armed).push(fault);
        }
    }

    /// What happens to a request of `plural`/`name` (to `/status` or not),
    /// if a fault is armed for it; counts it down. Reads meet only
    /// [`FaultKind::Unavailable`] faults.
    pub fn check(
        &self,
        plural: &str,
        qualified_plural: &str,
        name: Option<&str>,
        status: bool,
        write: bool,
    ) -> Option<Injected> {
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
        drop(armed);
        lock(&self.met).push(FaultMet {
            plural: plural.to_string(),
            name: name.map(String::from),
            status,
            kind,
        });
        Some(match kind {
            FaultKind::Conflict => Injected::Fail(ApiError::conflict(
                qualified_plural,
                name.unwrap_or_default(),
            )),
            FaultKind::Internal => Injected::Fail(ApiError::internal("injected fault")),
            FaultKind::Unavailable => {
                Injected::Fail(ApiError::unavailable("injected fault: unavailable"))
            }
            FaultKind::Delay(delay) => self.hold(delay),
            FaultKind::Held => self.hold(Duration::MAX),
        })
    }

    /// A hold, counted until [`Faults::served`]: it listens for releases
    /// from now on, so a release sent once the fault was met lets it go.
    fn hold(&self, delay: Duration) -> Injected {
        self.holding.fetch_add(1, Ordering::SeqCst);
        let mut release = self.release.subscribe();
        release.borrow_and_update();
        Injected::Hold { delay, release }
    }

    /// A held request was served.
    pub fn served(&self) {
        self.holding.fetch_sub(1, Ordering::SeqCst);
    }

    /// Held requests not served yet.
    pub fn holding(&self) -> usize {
        self.holding.load(Ordering::SeqCst)
    }

    /// Lets every request held now go.
    pub fn release(&self) {
        self.release.send_modify(|n| *n += 1);
    }

    pub fn clear(&self) {
        lock(&self.armed).clear();
    }

    /// Every request a fault met so far, oldest first.
    pub fn met(&self) -> Vec<FaultMet> {
        lock(&self.met).clone()
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

    /// The code of the error a request meets, if any.
    fn code(injected: Option<Injected>) -> Option<u16> {
        match injected? {
            Injected::Fail(e) => Some(e.code),
            Injected::Hold { .. } => None,
        }
    }

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
            code(f.check("canaries", "canaries.x", Some("a"), true, true)),
            Some(409)
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
            code(f.check("deployments", "d", None, false, true)),
            Some(500)
        );
        f.arm(Fault::unavailable("leases").times(2));
        assert_eq!(code(f.check("leases", "l", None, false, false)), Some(503));
        assert_eq!(code(f.check("leases", "l", None, false, true)), Some(503));
        assert!(f.check("leases", "l", None, false, false).is_none());
    }

    #[test]
    fn a_delay_holds_writes_only_and_counts_down() {
        let f = Faults::default();
        let delay = Duration::from_millis(1500);
        f.arm(Fault::delayed("httproutes", delay).on_main());
        assert!(
            f.check("httproutes", "h", Some("r"), false, false)
                .is_none(),
            "a read is not held"
        );
        assert!(
            f.check("httproutes", "h", Some("r"), true, true).is_none(),
            "on_main: a status write is not held"
        );
        assert!(matches!(
            f.check("httproutes", "h", Some("r"), false, true),
            Some(Injected::Hold { delay: d, .. }) if d == delay
        ));
        assert_eq!(f.holding(), 1, "held until served");
        f.served();
        assert_eq!(f.holding(), 0);
        assert!(f.check("httproutes", "h", Some("r"), false, true).is_none());
        assert_eq!(
            f.met(),
            [FaultMet {
                plural: "httproutes".into(),
                name: Some("r".into()),
                status: false,
                kind: FaultKind::Delay(delay),
            }],
            "the request it met is recorded"
        );
    }
}
