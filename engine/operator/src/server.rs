//! The operator's HTTP endpoints: `/healthz` (the process runs),
//! `/readyz` (the controller has started, or this replica is a standby),
//! `/metrics` (Prometheus text format) and `/journal` (the decision
//! journal, JSON lines; `?canary=namespace/name` for one Canary's).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use sluice_host::journal::Journal;

use super::telemetry::Telemetry;

#[derive(Clone)]
pub struct Endpoints {
    pub telemetry: Arc<Telemetry>,
    pub ready: Arc<AtomicBool>,
    pub api: Arc<ApiHealth>,
    /// The plugin host's decision journal, served on `/journal`.
    pub journal: Journal,
}

/// `/journal`'s query: one Canary's calls ("namespace/name").
#[derive(serde::Deserialize)]
struct JournalQuery {
    canary: Option<String>,
}

/// The decision journal as JSON lines (`sluice journal export` reads it).
async fn journal(State(e): State<Endpoints>, Query(q): Query<JournalQuery>) -> impl IntoResponse {
    match Journal::to_json_lines(&e.journal.entries(q.canary.as_deref())) {
        Ok(body) => (
            [(header::CONTENT_TYPE, "application/jsonl; charset=utf-8")],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Whether the API server answers the operator: set by a probe, read by
/// `/readyz`, which turns 503 once the API has failed for longer than
/// `unready_after` (the controllers' watches fail with it).
#[derive(Debug)]
pub struct ApiHealth {
    unready_after: Duration,
    failing: Mutex<Option<(Instant, String)>>,
}

impl ApiHealth {
    pub fn new(unready_after: Duration) -> Self {
        Self {
            unready_after,
            failing: Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Instant, String)>> {
        self.failing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records one probe: `Ok` clears, `Err` starts (or continues) a failure.
    pub fn record(&self, probe: Result<(), String>) {
        let mut failing = self.lock();
        match probe {
            Ok(()) => *failing = None,
            Err(why) => {
                let since = failing.as_ref().map_or_else(Instant::now, |(at, _)| *at);
                *failing = Some((since, why));
            }
        }
    }

    /// Why the operator is not ready, if the API has failed for too long.
    pub fn unready_reason(&self) -> Option<String> {
        let failing = self.lock();
        let (since, why) = failing.as_ref()?;
        (since.elapsed() >= self.unready_after).then(|| {
            format!(
                "the Kubernetes API has failed for {}s: {why}",
                since.elapsed().as_secs()
            )
        })
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(e): State<Endpoints>) -> impl IntoResponse {
    if !e.ready.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "not ready".to_string());
    }
    match e.api.unready_reason() {
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
        None => (StatusCode::OK, "ready".to_string()),
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
        .route("/journal", get(journal))
        .with_state(endpoints)
}

/// Serves the endpoints on `addr` until `shutdown` resolves.
pub(crate) async fn serve(
    addr: SocketAddr,
    endpoints: Endpoints,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    axum::serve(listener, router(endpoints))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ServeError::Serve)
}

/// Why the endpoints stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("binding the health and metrics endpoints on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("serving the health and metrics endpoints")]
    Serve(#[source] std::io::Error),
}
