//! Test servers for the I/O tests: a real Prometheus over backfilled data,
//! and a small HTTP server that records what it receives.
#![allow(dead_code)]

pub mod backend;
pub mod envoy;
pub mod http;
pub mod operator;
pub mod prometheus;
