//! Load: requests with their own headers and cookies, and [`Load`], a
//! generator that sends them at a steady rate, concurrently, and tallies
//! which backend answered each (the `hostname` of the podinfo-like answer).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

/// One request of a load: a path and its headers (`Host` included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// `GET path` for `host`.
    pub fn get(host: &str, path: &str) -> Self {
        Self {
            path: path.into(),
            headers: vec![("host".into(), host.into())],
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Adds `name=value` to the request's `Cookie` header.
    pub fn cookie(mut self, name: &str, value: &str) -> Self {
        let pair = format!("{name}={value}");
        match self
            .headers
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case("cookie"))
        {
            Some((_, v)) => {
                v.push_str("; ");
                v.push_str(&pair);
            }
            None => self.headers.push(("cookie".into(), pair)),
        }
        self
    }

    /// Sends the request to `base` (`http://host:port`).
    pub async fn send(
        &self,
        client: &reqwest::Client,
        base: &str,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let mut req = client.get(format!("{base}{}", self.path));
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        req.send().await
    }
}

/// What a load got back: which backend answered (the `hostname` of the
/// podinfo-like answer), the statuses, the transport errors and the
/// `Set-Cookie` values seen.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub by_backend: BTreeMap<String, usize>,
    pub statuses: BTreeMap<u16, usize>,
    pub errors: usize,
    pub set_cookies: BTreeMap<String, usize>,
    /// Per backend, how many of its answers set a cookie.
    pub cookies_from: BTreeMap<String, usize>,
    /// Requests a steady load did not send because as many as its
    /// concurrency were still waiting for an answer.
    pub skipped: usize,
}

impl Tally {
    /// Counts one answer (or transport error).
    pub async fn record(&mut self, r: Result<reqwest::Response, reqwest::Error>) {
        let r = match r {
            Ok(r) => r,
            Err(_) => {
                self.errors += 1;
                return;
            }
        };
        *self.statuses.entry(r.status().as_u16()).or_default() += 1;
        let cookies: Vec<String> = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|c| c.to_str().unwrap_or_default().to_string())
            .collect();
        let body: Value = r.json().await.unwrap_or_default();
        if let Some(h) = body["hostname"].as_str() {
            *self.by_backend.entry(h.to_string()).or_default() += 1;
            if !cookies.is_empty() {
                *self.cookies_from.entry(h.to_string()).or_default() += 1;
            }
        }
        for c in cookies {
            *self.set_cookies.entry(c).or_default() += 1;
        }
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: Tally) {
        for (k, v) in other.by_backend {
            *self.by_backend.entry(k).or_default() += v;
        }
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        for (k, v) in other.set_cookies {
            *self.set_cookies.entry(k).or_default() += v;
        }
        for (k, v) in other.cookies_from {
            *self.cookies_from.entry(k).or_default() += v;
        }
        self.errors += other.errors;
        self.skipped += other.skipped;
    }

    /// How many requests `backend` answered.
    pub fn served_by(&self, backend: &str) -> usize {
        self.by_backend.get(backend).copied().unwrap_or(0)
    }

    /// Every request answered, counted over statuses and errors.
    pub fn total(&self) -> usize {
        self.statuses.values().sum::<usize>() + self.errors
    }

    /// The percentage of answers `backend` gave (0 with no answer).
    pub fn share(&self, backend: &str) -> f64 {
        let total: usize = self.by_backend.values().sum();
        if total == 0 {
            return 0.0;
        }
        100.0 * self.served_by(backend) as f64 / total as f64
    }

    /// How many answers had `status`.
    pub fn with_status(&self, status: u16) -> usize {
        self.statuses.get(&status).copied().unwrap_or(0)
    }
}

/// How a [`Load`] sends.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadSpec {
    /// Requests per second, evenly spaced.
    pub rate: f64,
    /// At most this many requests wait for an answer at once; a request
    /// due while that many wait is not sent (counted in `skipped`), so a
    /// slow backend never slows the rate of the others' requests.
    pub concurrency: usize,
    /// Stop after this long (`None`: until stopped or dropped).
    pub duration: Option<Duration>,
}

impl LoadSpec {
    /// `rate` requests per second, at most 64 in flight, until stopped.
    pub fn steady(rate: f64) -> Self {
        Self {
            rate,
            concurrency: 64,
            duration: None,
        }
    }
}

struct Shared {
    /// The answers to the requests sent since the last `take`, and how
    /// many `take`s there have been (a request sent before the last one
    /// is not counted when its answer comes).
    tally: Mutex<(u64, Tally)>,
    sent: AtomicU64,
    running: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A steady load on a base URL, tallied; stops when dropped.
pub struct Load {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    /// Starts sending to `base` (`http://127.0.0.1:<port>`) as `spec`
    /// says; `request(i)` is the i-th request.
    pub fn start(
        base: &str,
        spec: LoadSpec,
        request: impl Fn(u64) -> Request + Send + Sync + 'static,
    ) -> Result<Load, crate::envoy::EnvoyError> {
        let client = crate::envoy::client()?;
        let shared = Arc::new(Shared {
            tally: Mutex::new((0, Tally::default())),
            sent: AtomicU64::new(0),
            running: AtomicBool::new(true),
        });
        let base = base.trim_end_matches('/').to_string();
        let task = tokio::spawn(run(shared.clone(), client, base, spec, Arc::new(request)));
        Ok(Load { shared, task })
    }

    /// The answers to the requests sent since the last `take` (or the
    /// start) that have come, and a fresh count from now on: answers to
    /// requests sent before are never counted, so a tally holds only
    /// requests sent, and answered, within one period (e.g. under one
    /// route).
    pub fn take(&self) -> Tally {
        let mut guard = lock(&self.shared.tally);
        guard.0 += 1;
        std::mem::take(&mut guard.1)
    }

    /// Requests sent so far.
    pub fn sent(&self) -> u64 {
        self.shared.sent.load(Ordering::SeqCst)
    }

    /// Whether it still sends (its duration has not run out).
    pub fn is_running(&self) -> bool {
        self.shared.running.load(Ordering::SeqCst) && !self.task.is_finished()
    }

    /// Stops sending; answers still due are not counted.
    pub fn stop(&self) {
        self.shared.running.store(false, Ordering::SeqCst);
        self.task.abort();
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop();
    }
}

type RequestFn = Arc<dyn Fn(u64) -> Request + Send + Sync>;

async fn run(
    shared: Arc<Shared>,
    client: reqwest::Client,
    base: String,
    spec: LoadSpec,
    request: RequestFn,
) {
    let rate = if spec.rate.is_finite() && spec.rate > 0.0 {
        spec.rate
    } else {
        1.0
    };
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    // A late tick (a busy machine) is caught up: the count per second
    // stays the rate.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let permits = Arc::new(tokio::sync::Semaphore::new(spec.concurrency.max(1)));
    let until = spec.duration.map(|d| tokio::time::Instant::now() + d);
    let mut in_flight = tokio::task::JoinSet::new();
    let mut i = 0u64;
    loop {
        ticker.tick().await;
        if until.is_some_and(|u| tokio::time::Instant::now() >= u) {
            break;
        }
        // Reap finished requests so the set stays small.
        while in_flight.try_join_next().is_some() {}
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            lock(&shared.tally).1.skipped += 1;
            continue;
        };
        let r = request(i);
        i += 1;
        shared.sent.fetch_add(1, Ordering::SeqCst);
        let (client, base, shared) = (client.clone(), base.clone(), shared.clone());
        let period = lock(&shared.tally).0;
        in_flight.spawn(async move {
            let mut one = Tally::default();
            one.record(r.send(&client, &base).await).await;
            let mut guard = lock(&shared.tally);
            if guard.0 == period {
                guard.1.merge(one);
            }
            drop(permit);
        });
    }
    shared.running.store(false, Ordering::SeqCst);
    // Let the last answers land in the tally.
    while in_flight.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_join_one_header() {
        let r = Request::get("www.example.com", "/")
            .cookie("type", "insider")
            .cookie("flagger-cookie", "abc");
        assert_eq!(
            r.headers,
            vec![
                ("host".to_string(), "www.example.com".to_string()),
                (
                    "cookie".to_string(),
                    "type=insider; flagger-cookie=abc".to_string()
                )
            ]
        );
    }
}
