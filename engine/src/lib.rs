//! Sluice: progressive delivery over the Gateway API, with the strategy and
//! the metric evaluation running as sandboxed WebAssembly components.

pub mod analysis;
pub mod api;
pub mod cli;
pub mod cluster;
pub mod controller;
pub mod host;
pub mod http_client;
pub mod metrics;
pub mod notify;
pub mod registration;
pub mod router;
pub mod simulate;
pub mod webhooks;
