//! A real Prometheus (Debian's `prometheus`) in its own temporary
//! directory, scraping Envoy's admin `/stats/prometheus` every second:
//! Envoy's own cluster statistics (`envoy_cluster_upstream_rq`,
//! `envoy_cluster_upstream_rq_time_bucket`, … with `envoy_cluster_name`
//! and `envoy_response_code`) are what Flagger's `contour` queries read.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sluice_rollout::metrics::{Credentials, PrometheusClient, PrometheusError};

/// Why Prometheus did not start or answer.
#[derive(Debug, thiserror::Error)]
pub enum PrometheusProcessError {
    #[error("Prometheus ({binary}) could not be started: {source}")]
    Spawn {
        binary: PathBuf,
        source: std::io::Error,
    },
    #[error("preparing Prometheus's directory {path}: {source}")]
    Files {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("Prometheus {what}; its log:\n{log}")]
    Failed { what: String, log: String },
    #[error(transparent)]
    Query(#[from] PrometheusError),
}

/// The configuration file: one job scraping `targets` every second.
pub fn config(targets: &[String]) -> String {
    let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: envoy\n    metrics_path: /stats/prometheus\n    static_configs:\n      - targets: [{}]\n",
        targets.join(", ")
    )
}

/// A running Prometheus; killed when dropped (its data goes with it).
pub struct Prometheus {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    child: Child,
    dir: tempfile::TempDir,
    client: PrometheusClient,
}

impl Prometheus {
    /// Starts `binary` scraping `targets` (`host:port`, their
    /// `/stats/prometheus`), and waits until it is ready and has scraped
    /// every target once.
    pub async fn start(
        binary: &Path,
        targets: &[String],
    ) -> Result<Prometheus, PrometheusProcessError> {
        let files = |path: &Path| {
            let path = path.to_path_buf();
            move |source| PrometheusProcessError::Files { path, source }
        };
        let dir = tempfile::tempdir().map_err(files(&std::env::temp_dir()))?;
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config(targets)).map_err(files(&config_path))?;
        let log_path = dir.path().join("prometheus.log");
        let log = std::fs::File::create(&log_path).map_err(files(&log_path))?;
        let port = free_port().map_err(files(dir.path()))?;
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--storage.tsdb.retention.time=1d")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|source| PrometheusProcessError::Spawn {
                binary: binary.to_path_buf(),
                source,
            })?;
        let url = format!("http://127.0.0.1:{port}");
        let client = PrometheusClient::new(&url, Credentials::None, Duration::from_secs(5), false)?;
        let mut p = Prometheus {
            url,
            child,
            dir,
            client,
        };
        p.wait_ready(targets.len()).await?;
        Ok(p)
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        let log =
            std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn failed(&mut self, what: &str) -> PrometheusProcessError {
        PrometheusProcessError::Failed {
            what: what.to_string(),
            log: self.log_tail(),
        }
    }

    async fn wait_ready(&mut self, targets: usize) -> Result<(), PrometheusProcessError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.failed(&format!("exited ({status}) before it was ready")));
            }
            let up = self
                .client
                .query("count(up == 1)", None)
                .await
                .ok()
                .flatten();
            if up.is_some_and(|n| n >= targets as f64) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.failed("had not scraped its targets within 60 s"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// An instant query at Prometheus's now: its one value, `None` when it
    /// selects nothing.
    pub async fn query(&self, promql: &str) -> Result<Option<f64>, PrometheusProcessError> {
        Ok(self.client.query(promql, None).await?)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> std::io::Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
}
