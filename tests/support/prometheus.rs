//! A real Prometheus over backfilled data: the samples are written as
//! OpenMetrics, turned into TSDB blocks by `promtool tsdb
//! create-blocks-from openmetrics`, and served by `prometheus` on a free
//! loopback port until the value is dropped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const INSTALL: &str = "install Debian's package: apt-get update && apt-get install -y --no-install-recommends prometheus (tests/run, the README's test command, does this)";

/// Builds OpenMetrics text: families in order, samples of a series in
/// time order, as promtool requires.
#[derive(Default)]
pub struct OpenMetrics {
    families: BTreeMap<String, BTreeMap<String, Vec<(i64, f64)>>>,
}

impl OpenMetrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one sample of `name{labels}` at Unix second `t`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], t: i64, value: f64) {
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect();
        self.families
            .entry(name.to_string())
            .or_default()
            .entry(labels.join(","))
            .or_default()
            .push((t, value));
    }

    /// A counter that grows at `rate(t)` per second, sampled every `step`
    /// seconds from `from` to `to`: the increase over (t-step, t] uses the
    /// rate at t, so a rate window ending at a minute sees that minute's rate.
    pub fn counter(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        from: i64,
        to: i64,
        step: i64,
        rate: impl Fn(i64) -> f64,
    ) {
        let mut value = 0.0;
        let mut t = from;
        while t <= to {
            if t > from {
                value += rate(t) * step as f64;
            }
            self.sample(name, labels, t, value);
            t += step;
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, series) in &self.families {
            for (labels, samples) in series {
                let mut samples = samples.clone();
                samples.sort_by_key(|(t, _)| *t);
                for (t, v) in samples {
                    let v = if v.is_nan() {
                        "NaN".to_string()
                    } else {
                        format!("{v}")
                    };
                    let _ = writeln!(out, "{name}{{{labels}}} {v} {t}");
                }
            }
        }
        out.push_str("# EOF\n");
        out
    }
}

fn which(binary: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join(binary).is_file()))
}

/// A running Prometheus; killed on drop.
pub struct TestPrometheus {
    pub url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl TestPrometheus {
    /// Backfills `data` and starts Prometheus over it. Fails (does not
    /// skip) when Prometheus is not installed.
    pub fn start(data: &OpenMetrics) -> Self {
        for binary in ["prometheus", "promtool"] {
            assert!(
                which(binary),
                "`{binary}` is not on PATH: these tests need a real Prometheus; {INSTALL}"
            );
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let input = dir.path().join("data.om");
        std::fs::write(&input, data.render()).expect("write OpenMetrics");
        let tsdb = dir.path().join("tsdb");
        let out = Command::new("promtool")
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(&input)
            .arg(&tsdb)
            .output()
            .expect("run promtool");
        assert!(
            out.status.success(),
            "promtool failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, "global:\n  scrape_interval: 1h\n").expect("write config");
        let log = dir.path().join("prometheus.log");
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", tsdb.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--storage.tsdb.retention.time=100y")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("starting prometheus: {e}; {INSTALL}"));
        let mut p = Self {
            url: format!("http://127.0.0.1:{port}"),
            child,
            _dir: dir,
        };
        p.wait_ready(&log);
        p
    }

    fn wait_ready(&mut self, log: &Path) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = self.url.trim_start_matches("http://").to_string();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "prometheus exited ({status}) before it was ready:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            if ready(&addr) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus was not ready within 60 s:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// GET /-/ready over a plain socket (no runtime needed here).
fn ready(addr: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(format!("GET /-/ready HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .is_err()
    {
        return false;
    }
    let mut response = String::new();
    let _ = s.read_to_string(&mut response);
    response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Drop for TestPrometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
