//! The operator's HTTP endpoints: `/healthz` (the process runs),
//! `/readyz` (the controller has started, or this replica is a standby) and
//! `/metrics` (Prometheus text format).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::telemetry::Telemetry;

#[derive(Clone)]
pub struct Endpoints {
    pub telemetry: Arc<Telemetry>,
    pub ready: Arc<AtomicBool>,
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(e): State<Endpoints>) -> impl IntoResponse {
    if e.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}

async fn metrics(State(e): State<Endpoints>) -> impl IntoResponse {
    match e.telemetry.encode() {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

pub fn router(endpoints: Endpoints) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(endpoints)
}

/// Serves the endpoints on `addr` until `shutdown` resolves.
pub(crate) async fn serve(
    addr: SocketAddr,
    endpoints: Endpoints,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the health and metrics endpoints on {addr}"))?;
    axum::serve(listener, router(endpoints))
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving the health and metrics endpoints")
}
