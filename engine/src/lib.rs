//! Sluice: progressive delivery over the Gateway API, with the strategy and
//! the metric evaluation running as sandboxed WebAssembly components.
//!
//! This crate is the `sluice` command (its CLI and the simulator); the
//! engine lives in `sluice-rollout`, the Wasm host in `sluice-host`, the
//! custom resources in `sluice-api` and the operator in `sluice-operator`.

pub mod cli;
pub mod demo;
pub mod replay;
pub mod scaffold;
pub mod simulate;
