//! The rollout engine: one tick of a Canary (observe, measure, evaluate,
//! decide, act) over the [`cluster::Cluster`] trait, and everything a tick
//! reaches: the router that writes HTTPRoutes, metric providers, webhooks,
//! alerts, plugin registration, and the in-memory cluster the simulator and
//! tests run on. Plugins run in `sluice-host`; the kube-rs cluster and the
//! controllers live in `sluice-operator`.

pub mod analysis;
pub mod cluster;
mod error;
pub mod http_client;
pub mod metrics;
pub mod notify;
pub mod registration;
pub mod router;
pub mod webhooks;

pub use error::{BoxError, chain};
