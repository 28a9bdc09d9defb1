//! Podinfo-like backends on loopback for the playground: every request is
//! answered with JSON naming the backend (`hostname`, `version`) and the
//! path it received, and counted (mirrored copies, whose `Host` Envoy
//! suffixes with `-shadow`, apart). Switches make one answer 500s or slow
//! down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Json};
use serde_json::json;

#[derive(Default)]
struct Shared {
    name: String,
    version: String,
    requests: AtomicUsize,
    mirrored: AtomicUsize,
    fail: AtomicBool,
    delay_ms: AtomicU64,
    last_headers: std::sync::Mutex<Vec<(String, String)>>,
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
    pub async fn start(name: &str, version: &str) -> Backend {
        let shared = Arc::new(Shared {
            name: name.into(),
            version: version.into(),
            ..Default::default()
        });
        let app = Router::new().fallback(answer).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind backend");
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("backend serves");
        });
        Backend { shared, addr, task }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
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

    /// Answer 500 from now on (or stop doing so).
    pub fn fail(&self, on: bool) {
        self.shared.fail.store(on, Ordering::SeqCst);
    }

    /// Wait this long before each answer.
    pub fn slow_down(&self, delay: Duration) {
        self.shared
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// The headers of the last request (not mirrored) received.
    pub fn last_headers(&self) -> Vec<(String, String)> {
        self.shared.last_headers.lock().unwrap().clone()
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
        *s.last_headers.lock().unwrap() = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect();
    }
    let delay = s.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let status = if s.fail.load(Ordering::SeqCst) {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    (
        status,
        Json(json!({
            "hostname": s.name,
            "version": s.version,
            "message": format!("greetings from podinfo v{}", s.version),
            "path": uri.to_string(),
        })),
    )
}
