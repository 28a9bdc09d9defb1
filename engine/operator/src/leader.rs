//! Leader election with a `coordination.k8s.io/v1` Lease, so that of two
//! replicas only one ever acts on Canaries. The other waits, ready to take
//! over when the leader's lease runs out.

use std::time::Duration;

use anyhow::{Context, Result};
use kube_leader_election::{LeaseLock, LeaseLockParams, LeaseLockResult};
use tokio::sync::watch;

/// Lease settings.
#[derive(Debug, Clone)]
pub struct Election {
    pub namespace: String,
    pub lease_name: String,
    /// This replica's identity (the pod name).
    pub holder_id: String,
    /// How long a lease lasts without renewal.
    pub lease_ttl: Duration,
}

/// Keeps trying to acquire, then renew, the lease; publishes whether this
/// replica leads. Renews at a third of the TTL, as client-go does.
pub fn spawn(client: kube::Client, election: Election) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    let lock = LeaseLock::new(
        client,
        &election.namespace,
        LeaseLockParams {
            lease_name: election.lease_name.clone(),
            holder_id: election.holder_id.clone(),
            lease_ttl: election.lease_ttl,
        },
    );
    let period = election.lease_ttl / 3;
    tokio::spawn(async move {
        loop {
            let leading = match lock.try_acquire_or_renew().await {
                Ok(LeaseLockResult::Acquired(_)) => true,
                Ok(LeaseLockResult::NotAcquired(_)) => false,
                Err(e) => {
                    // Cannot confirm the lease: act as if lost, so two
                    // replicas never both act.
                    tracing::warn!(error = %e, lease = %election.lease_name, "leader election");
                    false
                }
            };
            if *tx.borrow() != leading {
                tracing::info!(leading, holder = %election.holder_id, "leadership changed");
            }
            if tx.send(leading).is_err() {
                return;
            }
            tokio::time::sleep(period).await;
        }
    });
    rx
}

/// Waits until this replica leads.
pub async fn acquired(rx: &mut watch::Receiver<bool>) -> Result<()> {
    rx.wait_for(|leading| *leading)
        .await
        .map(|_| ())
        .context("the leader election task stopped")
}

/// Resolves when this replica stops leading.
pub async fn lost(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|leading| !*leading).await;
}
