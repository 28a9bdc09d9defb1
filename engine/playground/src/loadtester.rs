//! A webhook receiver that behaves like Flagger's load tester
//! (`flagger/pkg/loadtester/server.go`), for Canaries' webhooks:
//!
//! - `/gate/approve` answers 200, `/gate/halt` 403;
//! - `/gate/check` answers 200 "Approved" when the Canary's gate
//!   (`<name>.<namespace>` of the payload) is open, else 403 "Forbidden";
//!   gates start closed; `/gate/open` and `/gate/close` (a payload naming
//!   the Canary) open and close it, 202;
//! - `/rollback/check`, `/rollback/open`, `/rollback/close`: the same for
//!   the Canary's rollback gate (`rollback.<name>.<namespace>`);
//! - any other path runs the hook's `metadata.cmd`: without metadata 400
//!   "metadata not found in payload"; `type: cmd` (the default) is a
//!   background task, 202, skipped while the same Canary's same command
//!   still runs; `type: bash` runs `bash -c cmd` and answers 200, or 500
//!   with the output when it fails; other types are 400 "unknown task
//!   type".
//!
//! One difference: a `hey` command (Flagger's load test, e.g. `hey -z 1m
//! -q 10 -c 2 -host www.example.com http://127.0.0.1:PORT/`) is not run as
//! a program but played by the playground's [`Load`] generator: `-q`
//! requests per second per worker times `-c` workers, for `-z` (or `-n`
//! requests), with `-host` and `-H` headers; other flags are refused (400).
//! Other `cmd` commands run with `sh -c`, as Flagger's runner does.
//! Every call is recorded ([`LoadTester::calls`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::{any, post};
use serde::Deserialize;

use crate::load::{Load, LoadSpec, Request, Tally};

/// What Flagger posts to a webhook (`CanaryWebhookPayload`).
#[derive(Debug, Clone, Deserialize)]
struct Payload {
    name: String,
    namespace: String,
    #[serde(default)]
    metadata: Option<BTreeMap<String, String>>,
}

/// One call the receiver answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The path called, e.g. `/gate/check`.
    pub path: String,
    /// `<name>.<namespace>` of the payload ("" when it did not decode).
    pub canary: String,
    /// The hook's `metadata.cmd`, for command hooks.
    pub cmd: Option<String>,
    /// The status answered.
    pub status: u16,
    /// What it did: "approved", "started", "skipped: already running" …
    pub outcome: String,
}

/// A task of the runner: a load playing `hey`, or a shell command.
enum Task {
    Load(Load),
    Shell(tokio::task::JoinHandle<()>),
}

impl Task {
    fn running(&self) -> bool {
        match self {
            Task::Load(l) => l.is_running(),
            Task::Shell(h) => !h.is_finished(),
        }
    }
}

#[derive(Default)]
struct Shared {
    gates: Mutex<BTreeMap<String, bool>>,
    calls: Mutex<Vec<Call>>,
    /// Tasks by canary and command, as Flagger's runner keys them.
    tasks: Mutex<BTreeMap<(String, String), Task>>,
    /// What finished loads had tallied and was not taken yet.
    done: Mutex<Tally>,
    timeout: Duration,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running receiver on a loopback port; stops when dropped, with its
/// loads.
pub struct LoadTester {
    shared: Arc<Shared>,
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl LoadTester {
    /// Starts the receiver; blocking commands (`type: bash`) time out
    /// after `timeout`, as Flagger's `-timeout`.
    pub async fn start(timeout: Duration) -> std::io::Result<LoadTester> {
        let shared = Arc::new(Shared {
            timeout,
            ..Default::default()
        });
        let app = Router::new()
            .route("/healthz", any(|| async { "OK" }))
            .route("/gate/approve", any(|| async { (StatusCode::OK, "OK") }))
            .route(
                "/gate/halt",
                any(|| async { (StatusCode::FORBIDDEN, "Forbidden") }),
            )
            .route("/gate/check", post(gate_check))
            .route("/gate/open", post(gate_open))
            .route("/gate/close", post(gate_close))
            .route("/rollback/check", post(gate_check))
            .route("/rollback/open", post(gate_open))
            .route("/rollback/close", post(gate_close))
            .fallback(run_task)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "playground load tester stopped");
            }
        });
        Ok(LoadTester { shared, addr, task })
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        locked(&self.shared.calls).clone()
    }

    /// What the loads it started were answered since the last `take`.
    pub fn take(&self) -> Tally {
        let mut total = std::mem::take(&mut *locked(&self.shared.done));
        for task in locked(&self.shared.tasks).values() {
            if let Task::Load(l) = task {
                total.merge(l.take());
            }
        }
        total
    }

    /// Whether a load it started is still sending.
    pub fn load_running(&self) -> bool {
        locked(&self.shared.tasks)
            .values()
            .any(|t| matches!(t, Task::Load(l) if l.is_running()))
    }
}

impl Drop for LoadTester {
    fn drop(&mut self) {
        self.task.abort();
        locked(&self.shared.tasks).clear();
    }
}

fn record(s: &Shared, path: &str, canary: &str, cmd: Option<&str>, status: u16, outcome: &str) {
    locked(&s.calls).push(Call {
        path: path.to_string(),
        canary: canary.to_string(),
        cmd: cmd.map(str::to_string),
        status,
        outcome: outcome.to_string(),
    });
}

/// The gate a path names for the payload's Canary.
fn gate_key(path: &str, p: &Payload) -> String {
    let canary = format!("{}.{}", p.name, p.namespace);
    if path.starts_with("/rollback/") {
        format!("rollback.{canary}")
    } else {
        canary
    }
}

fn decode(s: &Shared, path: &str, body: &[u8]) -> Result<Payload, (StatusCode, String)> {
    serde_json::from_slice(body).map_err(|e| {
        record(s, path, "", None, 400, &format!("bad payload: {e}"));
        (
            StatusCode::BAD_REQUEST,
            format!("decoding the request body failed: {e}"),
        )
    })
}

async fn gate_check(State(s): State<Arc<Shared>>, uri: Uri, body: Bytes) -> impl IntoResponse {
    let path = uri.path();
    let p = match decode(&s, path, &body) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let key = gate_key(path, &p);
    let open = *locked(&s.gates).entry(key.clone()).or_insert(false);
    let canary = format!("{}.{}", p.name, p.namespace);
    if open {
        record(&s, path, &canary, None, 200, "approved");
        (StatusCode::OK, "Approved".to_string())
    } else {
        record(&s, path, &canary, None, 403, "forbidden");
        (StatusCode::FORBIDDEN, "Forbidden".to_string())
    }
}

async fn set_gate(s: &Shared, path: &str, body: &[u8], open: bool) -> (StatusCode, String) {
    let p = match decode(s, path, body) {
        Ok(p) => p,
        Err(e) => return e,
    };
    locked(&s.gates).insert(gate_key(path, &p), open);
    let canary = format!("{}.{}", p.name, p.namespace);
    record(
        s,
        path,
        &canary,
        None,
        202,
        if open { "opened" } else { "closed" },
    );
    (StatusCode::ACCEPTED, String::new())
}

async fn gate_open(State(s): State<Arc<Shared>>, uri: Uri, body: Bytes) -> impl IntoResponse {
    set_gate(&s, uri.path(), &body, true).await
}

async fn gate_close(State(s): State<Arc<Shared>>, uri: Uri, body: Bytes) -> impl IntoResponse {
    set_gate(&s, uri.path(), &body, false).await
}

/// A rollout hook's command, as Flagger's `/` handler runs it.
async fn run_task(State(s): State<Arc<Shared>>, uri: Uri, body: Bytes) -> impl IntoResponse {
    let path = uri.path().to_string();
    let p = match decode(&s, &path, &body) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let canary = format!("{}.{}", p.name, p.namespace);
    let Some(metadata) = p.metadata.filter(|m| !m.is_empty()) else {
        record(&s, &path, &canary, None, 400, "no metadata");
        return (
            StatusCode::BAD_REQUEST,
            "metadata not found in payload".to_string(),
        );
    };
    let cmd = metadata.get("cmd").cloned().unwrap_or_default();
    let typ = metadata.get("type").map_or("cmd", String::as_str);
    match typ {
        "bash" => {
            let (status, out) = run_blocking("bash", &cmd, s.timeout).await;
            let outcome = if status == StatusCode::OK {
                "ran".to_string()
            } else {
                format!("failed: {out}")
            };
            record(&s, &path, &canary, Some(&cmd), status.as_u16(), &outcome);
            (status, out)
        }
        "cmd" => {
            let (status, outcome) = add_task(&s, &canary, &cmd);
            record(&s, &path, &canary, Some(&cmd), status.as_u16(), &outcome);
            let body = if status == StatusCode::ACCEPTED {
                String::new()
            } else {
                outcome
            };
            (status, body)
        }
        other => {
            record(&s, &path, &canary, Some(&cmd), 400, "unknown task type");
            (
                StatusCode::BAD_REQUEST,
                format!("unknown task type {other}"),
            )
        }
    }
}

/// `<shell> -c cmd`, killed after `timeout` (as Flagger's runner does
/// with its context): 200 with its output, or 500 with why.
async fn run_blocking(shell: &str, cmd: &str, timeout: Duration) -> (StatusCode, String) {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let out_path = dir.path().join("output");
    let spawned = std::fs::File::create(&out_path).and_then(|out| {
        let err = out.try_clone()?;
        std::process::Command::new(shell)
            .arg("-c")
            .arg(cmd)
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
    });
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("command could not start: {e}"),
            );
        }
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if tokio::time::Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!("command timed out after {timeout:?}"));
            }
            Ok(None) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => break Err(e.to_string()),
        }
    };
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    match status {
        Ok(s) if s.success() => (StatusCode::OK, output),
        Ok(s) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("command failed ({s}): {output}"),
        ),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// Adds a background task unless the same Canary's same command runs.
fn add_task(s: &Arc<Shared>, canary: &str, cmd: &str) -> (StatusCode, String) {
    let key = (canary.to_string(), cmd.to_string());
    let mut tasks = locked(&s.tasks);
    if tasks.get(&key).is_some_and(Task::running) {
        return (StatusCode::ACCEPTED, "skipped: already running".into());
    }
    if let Some(Task::Load(old)) = tasks.remove(&key) {
        locked(&s.done).merge(old.take());
    }
    let task = if cmd.trim_start().starts_with("hey ") {
        let hey = match Hey::parse(cmd) {
            Ok(h) => h,
            Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()),
        };
        match hey.start() {
            Ok(load) => Task::Load(load),
            Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    } else {
        let (cmd, timeout) = (cmd.to_string(), s.timeout);
        Task::Shell(tokio::spawn(async move {
            let (status, out) = run_blocking("sh", &cmd, timeout).await;
            tracing::info!(%cmd, %status, %out, "load tester command finished");
        }))
    };
    tasks.insert(key, task);
    (StatusCode::ACCEPTED, "started".into())
}

/// The `hey` flags the playground plays.
#[derive(Debug, Clone, PartialEq)]
pub struct Hey {
    /// `http://host:port` of the URL.
    pub base: String,
    /// The URL's path and query.
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// Requests per second, all workers together.
    pub rate: f64,
    pub workers: usize,
    pub duration: Duration,
}

/// Why a `hey` command is not played.
#[derive(Debug, thiserror::Error)]
pub enum HeyError {
    #[error("unterminated quote in {0:?}")]
    UnterminatedQuote(String),
    #[error("hey: {0} needs a value")]
    NoValue(String),
    #[error("hey -z {value}: {source}")]
    Duration {
        value: String,
        source: sluice_api::duration::DurationError,
    },
    #[error("hey -n: {0}")]
    Requests(std::num::ParseIntError),
    #[error("hey -q: {0}")]
    Rate(std::num::ParseFloatError),
    #[error("hey -c: {0}")]
    Workers(std::num::ParseIntError),
    #[error("hey -H {0:?}: not \"Name: value\"")]
    Header(String),
    #[error("hey -m {0}: the playground sends GET only")]
    Method(String),
    #[error("hey {0}: not supported by the playground")]
    Unsupported(String),
    #[error("hey: no URL")]
    NoUrl,
    #[error("hey {0}: only http:// URLs")]
    NotHttp(String),
}

/// The flags of a `hey` command, as given.
struct HeyFlags {
    /// `-z`.
    duration: Option<Duration>,
    /// `-n`.
    requests: Option<u64>,
    /// `-q`: per worker.
    rate: Option<f64>,
    /// `-c`.
    workers: usize,
    /// `-host` and `-H`.
    headers: Vec<(String, String)>,
    url: Option<String>,
}

impl HeyFlags {
    /// Reads the words after `hey`.
    fn parse(words: &[String]) -> Result<HeyFlags, HeyError> {
        let mut flags = HeyFlags {
            duration: None,
            requests: None,
            rate: None,
            workers: 50,
            headers: Vec::new(),
            url: None,
        };
        let mut it = words.iter().skip(1);
        while let Some(w) = it.next() {
            if w.starts_with('-') {
                flags.set(w, || {
                    it.next()
                        .cloned()
                        .ok_or_else(|| HeyError::NoValue(w.clone()))
                })?;
            } else {
                flags.url = Some(w.clone());
            }
        }
        Ok(flags)
    }

    /// Sets `flag`, taking its value from `value`.
    fn set(
        &mut self,
        flag: &str,
        value: impl FnOnce() -> Result<String, HeyError>,
    ) -> Result<(), HeyError> {
        match flag {
            "-z" => {
                let v = value()?;
                let parsed = sluice_api::duration::parse(&v);
                self.duration =
                    Some(parsed.map_err(|source| HeyError::Duration { value: v, source })?);
            }
            "-n" => self.requests = Some(value()?.parse().map_err(HeyError::Requests)?),
            "-q" => self.rate = Some(value()?.parse().map_err(HeyError::Rate)?),
            "-c" => self.workers = value()?.parse().map_err(HeyError::Workers)?,
            "-host" => self.headers.push(("host".to_string(), value()?)),
            "-H" => {
                let v = value()?;
                let (k, val) = v
                    .split_once(':')
                    .ok_or_else(|| HeyError::Header(v.clone()))?;
                self.headers
                    .push((k.trim().to_ascii_lowercase(), val.trim().to_string()));
            }
            "-m" => {
                let m = value()?;
                if !m.eq_ignore_ascii_case("GET") {
                    return Err(HeyError::Method(m));
                }
            }
            other => return Err(HeyError::Unsupported(other.to_string())),
        }
        Ok(())
    }
}

impl Hey {
    /// Parses `hey [-z D] [-n N] [-q QPS] [-c C] [-host H] [-H "K: V"]… URL`.
    pub fn parse(cmd: &str) -> Result<Hey, HeyError> {
        let flags = HeyFlags::parse(&split_words(cmd)?)?;
        let url = flags.url.ok_or(HeyError::NoUrl)?;
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| HeyError::NotHttp(url.clone()))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let workers = flags.workers.max(1);
        let rate = flags.rate.map_or(100.0, |q| q * workers as f64);
        let duration = match (flags.duration, flags.requests) {
            (Some(z), _) => z,
            (None, Some(n)) => Duration::from_secs_f64(n as f64 / rate),
            (None, None) => Duration::from_secs_f64(200.0 / rate),
        };
        let mut headers = flags.headers;
        if !headers.iter().any(|(k, _)| k == "host") {
            headers.insert(0, ("host".to_string(), authority.to_string()));
        }
        Ok(Hey {
            base: format!("http://{authority}"),
            path: path.to_string(),
            headers,
            rate,
            workers,
            duration,
        })
    }

    /// Starts the load it describes.
    pub fn start(&self) -> Result<Load, crate::envoy::EnvoyError> {
        let request = Request {
            path: self.path.clone(),
            headers: self.headers.clone(),
        };
        Load::start(
            &self.base,
            LoadSpec {
                rate: self.rate,
                concurrency: self.workers.max(64),
                duration: Some(self.duration),
            },
            move |_| request.clone(),
        )
    }
}

/// Splits a command line into words, with single and double quotes.
fn split_words(cmd: &str) -> Result<Vec<String>, HeyError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for ch in cmd.chars() {
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(ch);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(HeyError::UnterminatedQuote(cmd.to_string()));
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hey_commands_become_loads() {
        let h = Hey::parse(
            "hey -z 2m -q 10 -c 2 -host www.example.com -H 'Cookie: type=insider' http://127.0.0.1:8080/api",
        )
        .unwrap();
        assert_eq!(h.base, "http://127.0.0.1:8080");
        assert_eq!(h.path, "/api");
        assert_eq!(h.rate, 20.0);
        assert_eq!(h.duration, Duration::from_secs(120));
        assert_eq!(
            h.headers,
            vec![
                ("host".to_string(), "www.example.com".to_string()),
                ("cookie".to_string(), "type=insider".to_string())
            ]
        );
        assert!(Hey::parse("hey -x 1 http://a/").is_err());
        assert!(Hey::parse("hey -z 1m https://a/").is_err());
    }

    #[test]
    fn hey_errors_say_what_is_wrong() {
        let err = |cmd| Hey::parse(cmd).unwrap_err().to_string();
        assert_eq!(
            err("hey -x 1 http://a/"),
            "hey -x: not supported by the playground"
        );
        assert_eq!(err("hey -z"), "hey: -z needs a value");
        assert_eq!(
            err("hey -c many http://a/"),
            "hey -c: invalid digit found in string"
        );
        assert_eq!(
            err("hey -H nocolon http://a/"),
            "hey -H \"nocolon\": not \"Name: value\""
        );
        assert_eq!(
            err("hey -m POST http://a/"),
            "hey -m POST: the playground sends GET only"
        );
        assert_eq!(err("hey -z 1m"), "hey: no URL");
        assert_eq!(err("hey https://a/"), "hey https://a/: only http:// URLs");
        assert_eq!(
            err("hey 'http://a/"),
            "unterminated quote in \"hey 'http://a/\""
        );
    }
}

#[cfg(test)]
mod server_tests {
    use super::*;

    async fn post(lt: &LoadTester, path: &str, body: serde_json::Value) -> (u16, String) {
        let r = crate::envoy::client()
            .unwrap()
            .post(lt.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// The answers of Flagger's load tester (pkg/loadtester/server.go).
    #[tokio::test]
    async fn it_answers_as_flaggers_load_tester() {
        let lt = LoadTester::start(Duration::from_secs(5)).await.unwrap();
        answers_gates(&lt).await;
        answers_commands(&lt).await;
    }

    /// The approve, halt, gate and rollback-gate endpoints.
    async fn answers_gates(lt: &LoadTester) {
        let canary = serde_json::json!({"name": "podinfo", "namespace": "test"});
        assert_eq!(post(lt, "/gate/approve", canary.clone()).await.0, 200);
        assert_eq!(post(lt, "/gate/halt", canary.clone()).await.0, 403);
        // Gates start closed, per Canary.
        assert_eq!(
            post(lt, "/gate/check", canary.clone()).await,
            (403, "Forbidden".into())
        );
        assert_eq!(post(lt, "/gate/open", canary.clone()).await.0, 202);
        assert_eq!(
            post(lt, "/gate/check", canary.clone()).await,
            (200, "Approved".into())
        );
        let other = serde_json::json!({"name": "other", "namespace": "test"});
        assert_eq!(post(lt, "/gate/check", other).await.0, 403);
        // The rollback gate is another.
        assert_eq!(post(lt, "/rollback/check", canary.clone()).await.0, 403);
        assert_eq!(post(lt, "/rollback/open", canary.clone()).await.0, 202);
        assert_eq!(post(lt, "/rollback/check", canary.clone()).await.0, 200);
        assert_eq!(post(lt, "/gate/close", canary.clone()).await.0, 202);
        assert_eq!(post(lt, "/gate/check", canary.clone()).await.0, 403);
    }

    /// Hooks' commands: `bash` blocking, `cmd` in the background.
    async fn answers_commands(lt: &LoadTester) {
        let canary = serde_json::json!({"name": "podinfo", "namespace": "test"});
        assert_eq!(
            post(lt, "/", canary).await,
            (400, "metadata not found in payload".into())
        );
        let hook = |metadata: serde_json::Value| serde_json::json!({"name": "podinfo", "namespace": "test", "metadata": metadata});
        let (status, body) = post(
            lt,
            "/",
            hook(serde_json::json!({"type": "bash", "cmd": "echo ok"})),
        )
        .await;
        assert_eq!((status, body.trim()), (200, "ok"));
        let (status, body) = post(
            lt,
            "/",
            hook(serde_json::json!({"type": "bash", "cmd": "echo no; exit 3"})),
        )
        .await;
        assert_eq!(status, 500);
        assert!(body.contains("no"), "{body}");
        assert_eq!(
            post(
                lt,
                "/",
                hook(serde_json::json!({"type": "helm", "cmd": "ls"}))
            )
            .await,
            (400, "unknown task type helm".into())
        );
        assert_eq!(
            post(lt, "/", hook(serde_json::json!({"cmd": "sleep 2"})))
                .await
                .0,
            202
        );
        assert_eq!(
            post(lt, "/", hook(serde_json::json!({"cmd": "sleep 2"})))
                .await
                .0,
            202
        );
        let outcomes: Vec<String> = lt
            .calls()
            .into_iter()
            .filter(|c| c.cmd.as_deref() == Some("sleep 2"))
            .map(|c| c.outcome)
            .collect();
        assert_eq!(outcomes, ["started", "skipped: already running"]);
    }
}
