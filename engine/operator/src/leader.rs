//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's
//! `leaderelection` does it, so that of several replicas at most one acts
//! on Canaries at any moment.
//!
//! - Every write of the Lease (create, take over, renew) carries the
//!   `resourceVersion` that was read: of two replicas racing for it, the
//!   API server lets exactly one through and answers 409 to the other.
//! - A Lease held by another replica is taken over only after it has not
//!   changed for `lease_duration`, measured on this replica's own monotonic
//!   clock (the holder's `renewTime` is never compared with local time, so
//!   clock skew between nodes does not matter).
//! - The leader renews every `retry_period`. A failed renew is retried until
//!   `renew_deadline` has passed since the last successful one; then the
//!   leadership is lost for good (the process exits and stands by again
//!   after a restart).
//! - [`Fence::is_leading`] is true only while the last successful renew is
//!   younger than `renew_deadline`, whatever the renew task is doing. The
//!   operator's cluster writes check it, so a replica whose renew hangs stops
//!   writing by itself. Since `renew_deadline` < `lease_duration`, a leader
//!   stops writing before any other replica can take the Lease over.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tokio::sync::watch;

/// Lease settings (client-go's defaults: 15 s, 10 s, 2 s).
#[derive(Debug, Clone)]
pub struct Election {
    pub namespace: String,
    pub lease_name: String,
    /// This replica's identity (the pod name).
    pub holder_id: String,
    /// How long others wait after the Lease last changed before taking it.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up.
    pub renew_deadline: Duration,
    /// How often the Lease is tried or renewed.
    pub retry_period: Duration,
}

impl Election {
    /// Client-go's timings.
    pub fn new(namespace: &str, lease_name: &str, holder_id: &str) -> Self {
        Self {
            namespace: namespace.into(),
            lease_name: lease_name.into(),
            holder_id: holder_id.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// Refuses timings that would let two replicas lead at once.
    pub fn check(&self) -> Result<(), TimingError> {
        if self.retry_period.is_zero() || self.retry_period >= self.renew_deadline {
            return Err(TimingError::RetryPeriod);
        }
        if self.renew_deadline >= self.lease_duration {
            return Err(TimingError::RenewDeadline);
        }
        Ok(())
    }
}

/// Election timings that could let two replicas lead at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    #[error("the retry period must be shorter than the renew deadline")]
    RetryPeriod,
    #[error(
        "the renew deadline must be shorter than the lease duration, or two replicas could lead at once"
    )]
    RenewDeadline,
}

/// Where this replica stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leadership {
    /// Waiting for the Lease.
    Standby,
    /// Holding the Lease.
    Leading,
    /// Held the Lease and could not keep it: stop everything and exit.
    Lost,
}

/// Whether this replica may write now; shared with the cluster client.
#[derive(Debug, Clone)]
pub struct Fence {
    state: Arc<Mutex<FenceState>>,
    renew_deadline: Duration,
}

#[derive(Debug)]
struct FenceState {
    last_renew: Option<Instant>,
    lost: bool,
}

impl Fence {
    fn new(renew_deadline: Duration) -> Self {
        Self {
            state: Arc::new(Mutex::new(FenceState {
                last_renew: None,
                lost: false,
            })),
            renew_deadline,
        }
    }

    /// A fence that always allows writing (no leader election).
    pub(crate) fn open() -> Self {
        let fence = Self::new(Duration::MAX);
        fence.renewed(Instant::now());
        fence
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FenceState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True while this replica holds the Lease and renewed it less than the
    /// renew deadline ago.
    pub fn is_leading(&self) -> bool {
        let s = self.lock();
        !s.lost
            && s.last_renew
                .is_some_and(|at| at.elapsed() < self.renew_deadline)
    }

    fn renewed(&self, at: Instant) {
        self.lock().last_renew = Some(at);
    }

    fn lose(&self) {
        let mut s = self.lock();
        s.lost = true;
        s.last_renew = None;
    }
}

/// Why one attempt on the Lease did not succeed.
#[derive(Debug, thiserror::Error)]
enum LeaseError {
    #[error("the lease is held by {0}")]
    HeldBy(String),
    #[error("another replica wrote the lease first (409 Conflict)")]
    Conflict,
    #[error("the lease is now held by {0}")]
    TakenOver(String),
    #[error("no renew succeeded within the renew deadline ({0:?})")]
    Deadline(Duration),
    #[error("reading or writing the lease: {0}")]
    Api(#[from] kube::Error),
}

/// What this replica last saw of the Lease, and when (local clock).
struct Observed {
    holder: Option<String>,
    renew_time: Option<Timestamp>,
    at: Instant,
}

/// One replica's view of the election.
struct Elector {
    api: Api<Lease>,
    election: Election,
    observed: Option<Observed>,
}

impl Elector {
    fn now() -> MicroTime {
        MicroTime(Timestamp::now())
    }

    /// Notes the Lease's record; a change restarts the expiry clock.
    fn observe(&mut self, spec: &LeaseSpec) {
        let holder = spec.holder_identity.clone();
        let renew_time = spec.renew_time.as_ref().map(|t| t.0);
        let changed = self
            .observed
            .as_ref()
            .is_none_or(|o| o.holder != holder || o.renew_time != renew_time);
        if changed {
            self.observed = Some(Observed {
                holder,
                renew_time,
                at: Instant::now(),
            });
        }
    }

    fn expired(&self) -> bool {
        self.observed
            .as_ref()
            .is_none_or(|o| o.at.elapsed() >= self.election.lease_duration)
    }

    fn spec(&self, acquire: Option<MicroTime>, transitions: Option<i32>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.election.holder_id.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.election.lease_duration.as_secs()).unwrap_or(i32::MAX),
            ),
            acquire_time: acquire,
            renew_time: Some(Self::now()),
            lease_transitions: transitions,
            ..Default::default()
        }
    }

    /// Creates, renews or takes over the Lease; `Ok` when this replica holds
    /// it afterwards.
    async fn try_acquire_or_renew(&mut self) -> Result<(), LeaseError> {
        let name = self.election.lease_name.clone();
        let Some(mut lease) = self.api.get_opt(&name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name),
                    ..Default::default()
                },
                spec: Some(self.spec(Some(Self::now()), Some(0))),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => Err(LeaseError::Conflict),
                Err(e) => Err(e.into()),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        self.observe(&spec);
        let ours = spec.holder_identity.as_deref() == Some(self.election.holder_id.as_str());
        let held = spec
            .holder_identity
            .as_deref()
            .is_some_and(|h| !h.is_empty());
        if held && !ours && !self.expired() {
            return Err(LeaseError::HeldBy(spec.holder_identity.unwrap_or_default()));
        }
        lease.spec = Some(if ours {
            self.spec(spec.acquire_time, spec.lease_transitions)
        } else {
            let transitions = spec.lease_transitions.unwrap_or(0) + 1;
            self.spec(Some(Self::now()), Some(transitions))
        });
        // `replace` sends the resourceVersion read above: a precondition.
        match self
            .api
            .replace(&name, &PostParams::default(), &lease)
            .await
        {
            Ok(written) => {
                if let Some(spec) = &written.spec {
                    self.observe(spec);
                }
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Err(LeaseError::Conflict),
            Err(e) => Err(e.into()),
        }
    }

    /// Renews the Lease; refuses when someone else holds it now.
    async fn renew(&mut self) -> Result<(), LeaseError> {
        if let Some(lease) = self.api.get_opt(&self.election.lease_name).await? {
            let holder = lease.spec.and_then(|s| s.holder_identity);
            if holder.as_deref() != Some(self.election.holder_id.as_str()) {
                return Err(LeaseError::TakenOver(holder.unwrap_or_default()));
            }
        }
        self.try_acquire_or_renew().await
    }
}

/// A replica in the election. Dropping it stops the election task at once,
/// without releasing the Lease, as a killed process would.
pub struct Candidate {
    pub leadership: watch::Receiver<Leadership>,
    pub fence: Fence,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Candidate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs the election: publishes [`Leadership`] and keeps the fence current.
/// Once lost, leadership never comes back in this process.
pub fn spawn(client: kube::Client, election: Election) -> Candidate {
    let (tx, rx) = watch::channel(Leadership::Standby);
    let fence = Fence::new(election.renew_deadline);
    let mut elector = Elector {
        api: Api::namespaced(client, &election.namespace),
        election,
        observed: None,
    };
    let task_fence = fence.clone();
    let task = tokio::spawn(async move {
        acquire(&mut elector, &task_fence).await;
        let _ = tx.send(Leadership::Leading);
        tracing::info!(holder = %elector.election.holder_id, "leading");
        let why = keep(&mut elector, &task_fence).await;
        task_fence.lose();
        tracing::error!(holder = %elector.election.holder_id, reason = %why, "lost leadership");
        let _ = tx.send(Leadership::Lost);
    });
    Candidate {
        leadership: rx,
        fence,
        task,
    }
}

/// Tries every retry period until this replica holds the Lease.
async fn acquire(elector: &mut Elector, fence: &Fence) {
    loop {
        let started = Instant::now();
        match elector.try_acquire_or_renew().await {
            Ok(()) => {
                fence.renewed(started);
                return;
            }
            Err(LeaseError::Api(e)) => tracing::warn!(error = %e, "leader election"),
            Err(why) => tracing::debug!(reason = %why, "standing by"),
        }
        tokio::time::sleep(elector.election.retry_period).await;
    }
}

/// Renews every retry period; returns why leadership was lost.
async fn keep(elector: &mut Elector, fence: &Fence) -> LeaseError {
    let mut last_renew = Instant::now();
    loop {
        tokio::time::sleep(elector.election.retry_period).await;
        let started = Instant::now();
        let left = elector
            .election
            .renew_deadline
            .saturating_sub(last_renew.elapsed());
        let attempt = tokio::time::timeout(left, elector.renew()).await;
        match attempt {
            Ok(Ok(())) => {
                // Counted from when the request left: the server's view can
                // only be older than that.
                last_renew = started;
                fence.renewed(started);
            }
            Ok(Err(e @ LeaseError::TakenOver(_))) => return e,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "renewing the lease");
                if last_renew.elapsed() >= elector.election.renew_deadline {
                    return LeaseError::Deadline(elector.election.renew_deadline);
                }
            }
            Err(_) => return LeaseError::Deadline(elector.election.renew_deadline),
        }
    }
}

/// Waits until this replica leads; `false` if the election task ended.
pub async fn acquired(rx: &mut watch::Receiver<Leadership>) -> bool {
    rx.wait_for(|l| *l == Leadership::Leading).await.is_ok()
}

/// Resolves when this replica stops leading.
pub async fn lost(mut rx: watch::Receiver<Leadership>) {
    let _ = rx.wait_for(|l| *l == Leadership::Lost).await;
}
