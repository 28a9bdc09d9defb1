//! Podinfo-like backends on loopback: every request is answered with JSON
//! naming the backend (`hostname`, `version`) and the path it received,
//! and counted (mirrored copies, whose `Host` Envoy suffixes with
//! `-shadow`, apart). Switches make one answer 500s (all, or a share) or
//! slow down.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Json};
use serde_json::json;

#[derive(Default)]
struct Shared {
    name: String,
    version: Mutex<String>,
    requests: AtomicUsize,
    mirrored: AtomicUsize,
    answered: AtomicU64,
    error_percent: AtomicU8,
    delay_ms: AtomicU64,
    last_headers: Mutex<Vec<(String, String)>>,
}

/// A running backend; stops when dropped.
pub struct Backend {
    shared: Arc<Shared>,
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Backend {
    /// Starts a backend that calls itself `name` (its Service name) and
    /// reports `version`.
    pub async fn start(name: &str, version: &str) -> std::io::Result<Backend> {
        let shared = Arc::new(Shared {
            name: name.into(),
            version: Mutex::new(version.into()),
            ..Default::default()
        });
        let app = Router::new().fallback(answer).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "playground backend stopped");
            }
        });
        Ok(Backend { shared, addr, task })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The name it answers with (its Service's).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Requests served, mirrored copies excluded.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Mirrored copies received.
    pub fn mirrored(&self) -> usize {
        self.shared.mirrored.load(Ordering::SeqCst)
    }

    /// Zeroes both counters.
    pub fn reset(&self) {
        self.shared.requests.store(0, Ordering::SeqCst);
        self.shared.mirrored.store(0, Ordering::SeqCst);
    }

    /// Answer 500 to every request from now on (or stop doing so).
    pub fn fail(&self, on: bool) {
        self.fail_percent(if on { 100 } else { 0 });
    }

    /// Answer 500 to `percent` of the requests from now on, spread evenly
    /// (of any 100 answers in a row, that many fail).
    pub fn fail_percent(&self, percent: u8) {
        self.shared
            .error_percent
            .store(percent.min(100), Ordering::SeqCst);
    }

    /// Wait this long before each answer.
    pub fn slow_down(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.shared.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// The version it reports from now on (a new revision).
    pub fn set_version(&self, version: &str) {
        *self
            .shared
            .version
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = version.into();
    }

    /// The headers of the last request (not mirrored) received.
    pub fn last_headers(&self) -> Vec<(String, String)> {
        self.shared
            .last_headers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(State(s): State<Arc<Shared>>, uri: Uri, headers: HeaderMap) -> impl IntoResponse {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if host.ends_with("-shadow") || host.contains("-shadow:") {
        s.mirrored.fetch_add(1, Ordering::SeqCst);
    } else {
        s.requests.fetch_add(1, Ordering::SeqCst);
        *s.last_headers.lock().unwrap_or_else(|e| e.into_inner()) = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect();
    }
    let delay = s.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let n = s.answered.fetch_add(1, Ordering::SeqCst);
    // Bresenham: of any 100 answers in a row, `percent` fail, spread out.
    let percent = u64::from(s.error_percent.load(Ordering::SeqCst));
    let status = if (n + 1) * percent / 100 > n * percent / 100 {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    let version = s.version.lock().unwrap_or_else(|e| e.into_inner()).clone();
    (
        status,
        Json(json!({
            "hostname": s.name,
            "version": version,
            "message": format!("greetings from podinfo v{version}"),
            "path": uri.to_string(),
        })),
    )
}
