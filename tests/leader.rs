//! Leader election against the API server double (real kube-rs requests,
//! Lease `resourceVersion` preconditions answered with 409): two replicas
//! never lead at the same moment, a killed leader is replaced only after
//! its Lease runs out, a leader that cannot renew stops writing within the
//! renew deadline, and one whose Lease was taken over stops at once.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use sluice_kube_double::{ApiServer, Fault};
use sluice_operator::leader::{self, Candidate, Election, Fence, Leadership};

const NAMESPACE: &str = "sluice-system";
const LEASE: &str = "sluice-leader";

fn election(id: &str) -> Election {
    Election {
        lease_duration: Duration::from_millis(1500),
        renew_deadline: Duration::from_millis(1000),
        retry_period: Duration::from_millis(100),
        ..Election::new(NAMESPACE, LEASE, id)
    }
}

fn candidate(server: &ApiServer, id: &str) -> Candidate {
    let election = election(id);
    election.check().expect("valid timings");
    leader::spawn(server.client().expect("client"), election)
}

/// Samples the fences every 5 ms for `time`; fails if two are ever open at
/// once. Returns how many samples each fence was open.
async fn never_two_leaders(fences: &[&Fence], time: Duration) -> Vec<usize> {
    let mut open = vec![0; fences.len()];
    let end = Instant::now() + time;
    while Instant::now() < end {
        let now: Vec<bool> = fences.iter().map(|f| f.is_leading()).collect();
        assert!(
            now.iter().filter(|l| **l).count() <= 1,
            "two replicas may write at once: {now:?}"
        );
        for (n, l) in open.iter_mut().zip(&now) {
            *n += usize::from(*l);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    open
}

fn holder(server: &ApiServer) -> (Option<String>, Option<i32>) {
    let lease: Lease = server
        .get(NAMESPACE, LEASE)
        .expect("read")
        .expect("the lease exists");
    let spec = lease.spec.expect("spec");
    (spec.holder_identity, spec.lease_transitions)
}

#[tokio::test(flavor = "multi_thread")]
async fn racing_replicas_never_both_lead_and_a_killed_leader_is_replaced_after_its_lease() {
    let server = ApiServer::start().await.expect("server");
    let (a, b) = (
        candidate(&server, "sluice-a"),
        candidate(&server, "sluice-b"),
    );
    let open = never_two_leaders(&[&a.fence, &b.fence], Duration::from_millis(1500)).await;
    assert!(
        open[0] + open[1] > 0,
        "one of the two leads after 1.5 s: {open:?}"
    );
    let (winner, loser, winner_id) = if a.fence.is_leading() {
        (a, b, "sluice-a")
    } else {
        (b, a, "sluice-b")
    };
    assert_eq!(*winner.leadership.borrow(), Leadership::Leading);
    assert_eq!(*loser.leadership.borrow(), Leadership::Standby);
    assert_eq!(holder(&server), (Some(winner_id.into()), Some(0)));
    // Every Lease write carried the resourceVersion it was based on.
    let writes: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.uri.contains("/leases/"))
        .collect();
    assert!(!writes.is_empty(), "the leader renews with PUT");
    assert!(
        writes
            .iter()
            .all(|r| r.body.contains("\"resourceVersion\"")),
        "a renew without a resourceVersion precondition: {writes:?}"
    );

    // Kill the leader (its task stops, the Lease is not released) and keep
    // its fence, as a process that still runs its last reconcile would.
    let dead_fence = winner.fence.clone();
    let killed = Instant::now();
    drop(winner);
    let open = never_two_leaders(&[&dead_fence, &loser.fence], Duration::from_millis(2500)).await;
    assert!(open[1] > 0, "the standby takes over");
    let mut loser = loser;
    assert!(leader::acquired(&mut loser.leadership).await);
    assert!(
        killed.elapsed() >= Duration::from_millis(1500),
        "not before the lease ran out"
    );
    let (now_holder, transitions) = holder(&server);
    assert_ne!(now_holder.as_deref(), Some(winner_id));
    assert_eq!(transitions, Some(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leader_that_cannot_renew_stops_writing_within_the_renew_deadline() {
    let server = ApiServer::start().await.expect("server");
    let mut a = candidate(&server, "sluice-a");
    assert!(leader::acquired(&mut a.leadership).await);
    // Every Lease write fails from now on.
    server.inject(Fault::internal("leases").times(usize::MAX));
    let failing = Instant::now();
    let mut leadership = a.leadership.clone();
    // The fence is closed once the renew deadline (1 s) has passed since
    // the last successful renew, however late the renew task runs.
    tokio::time::sleep_until((failing + Duration::from_millis(1010)).into()).await;
    assert!(
        !a.fence.is_leading(),
        "the fence is closed at the renew deadline"
    );
    tokio::time::timeout(Duration::from_secs(5), leader::lost(leadership.clone()))
        .await
        .expect("leadership is reported lost after the renew deadline");
    // Lost for good: it never leads again, even once the server recovers.
    server.clear_faults();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(*leadership.borrow_and_update(), Leadership::Lost);
    assert!(!a.fence.is_leading());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leader_whose_lease_was_taken_over_stops_at_once() {
    let server = ApiServer::start().await.expect("server");
    let mut a = candidate(&server, "sluice-a");
    assert!(leader::acquired(&mut a.leadership).await);
    let mut lease: Lease = server.get(NAMESPACE, LEASE).unwrap().unwrap();
    lease.spec.as_mut().unwrap().holder_identity = Some("intruder".into());
    server.put(&lease).expect("another holder writes the lease");
    tokio::time::timeout(
        Duration::from_millis(500),
        leader::lost(a.leadership.clone()),
    )
    .await
    .expect("lost at the next renew");
    assert!(!a.fence.is_leading());
    assert_eq!(holder(&server).0.as_deref(), Some("intruder"));
}

#[test]
fn timings_that_would_let_two_replicas_lead_are_refused() {
    let mut e = Election::new(NAMESPACE, LEASE, "a");
    assert!(e.check().is_ok(), "client-go's defaults");
    e.renew_deadline = e.lease_duration;
    assert_eq!(e.check(), Err(leader::TimingError::RenewDeadline));
    assert!(
        e.check()
            .unwrap_err()
            .to_string()
            .contains("lease duration")
    );
    e = Election::new(NAMESPACE, LEASE, "a");
    e.retry_period = e.renew_deadline;
    assert_eq!(e.check(), Err(leader::TimingError::RetryPeriod));
}
