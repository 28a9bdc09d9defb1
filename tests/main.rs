//! Sluice's integration tests, in one binary so that Wasmtime, kube and the
//! rest are linked once: one module per area, each a file of this folder.
//! Run one area with `cargo test --test integration <module>::`, e.g.
//! `cargo test --test integration strategies::`.

mod common;
mod support;

mod analysis;
mod api;
mod contract_v2;
mod controller;
mod crds;
mod deploy;
mod example_fuzz;
mod example_plugins;
mod golden;
mod guest_plugins;
mod kube_cluster;
mod leader;
mod notify;
mod operator;
mod playground;
mod plugin_authoring;
mod plugin_config;
mod plugin_host;
mod prometheus;
mod registration;
mod replay;
mod simulate;
mod strategies;
mod webhooks;
