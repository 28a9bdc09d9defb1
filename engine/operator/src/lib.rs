//! `sluice run`: the Kubernetes operator. A kube-rs `Controller` for
//! Canaries that also watches their target Deployments, the ConfigMaps and
//! Secrets those read, and MetricTemplates; each Canary ticks once per
//! `analysis.interval` through the same engine the simulator drives.

pub mod kube_cluster;
pub mod leader;
pub mod reconcile;
pub mod run;
mod schedule;
pub mod server;
mod telemetry;
