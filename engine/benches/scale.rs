//! What N Canaries cost one engine: N Canaries with two metrics each (the
//! seed's `request-success-rate` and `request-duration`, answered at
//! once by an in-process provider) against the in-memory cluster, through
//! the real `Analyzer::reconcile` and the built-in Wasm plugins.
//!
//! Prints, per N, the CPU seconds of one analysis round while every Canary
//! progresses (metrics, evaluator and strategy calls, route and status
//! writes), of one idle round (the first after the bootstrap: every Canary
//! at rest, nothing changed), and the process's peak RSS, then a last line
//! `scale: canaries=N analysis_round_cpu_s=A idle_round_cpu_s=B rss_mib=C`.
//!
//! `cargo bench --bench scale` runs N = 1000; `cargo bench --bench scale --
//! 10000` any other N (peak RSS is the process's, so run one N per process).

use std::time::Duration;

use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use sluice_api::{Canary, CanaryPhase, MetricCheck, Webhook};
use sluice_host::{PluginHost, PluginRegistry};
use sluice_rollout::analysis::Analyzer;
use sluice_rollout::analysis::checks::{MetricTarget, MetricsProvider, WebhookCaller};
use sluice_rollout::cluster::memory::MemoryCluster;

/// Reconciles that run at once, as the operator's controller allows.
const CONCURRENCY: usize = 64;

const CANARY: &str = r#"
apiVersion: sluice.dev/v1beta1
kind: Canary
metadata: {name: NAME, namespace: bench}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: NAME}
  service:
    port: 9898
    gatewayRefs: [{name: gateway, namespace: istio-ingress}]
  analysis:
    interval: 1m
    threshold: 5
    maxWeight: 50
    stepWeight: 5
    metrics:
      - name: request-success-rate
        thresholdRange: {min: 99}
        interval: 1m
      - name: request-duration
        thresholdRange: {max: 500}
        interval: 1m
"#;

fn deployment(name: &str, image: &str) -> k8s_openapi::api::apps::v1::Deployment {
    yaml_serde::from_str(&format!(
        "metadata: {{name: {name}, namespace: bench}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec: {{containers: [{{name: app, image: '{image}'}}]}}\n"
    ))
    .expect("deployment")
}

/// Healthy metrics and webhooks, answered at once.
struct Healthy;

impl MetricsProvider for Healthy {
    async fn value(
        &self,
        _: &Canary,
        check: &MetricCheck,
        _: MetricTarget,
    ) -> Result<Option<f64>, sluice_rollout::BoxError> {
        Ok(Some(check.threshold_range.min.unwrap_or(1.0)))
    }

    async fn series(
        &self,
        _: &Canary,
        _: &MetricCheck,
        _: MetricTarget,
        _: Duration,
        _: Duration,
    ) -> Result<Vec<f64>, sluice_rollout::BoxError> {
        Ok(Vec::new())
    }
}

impl WebhookCaller for Healthy {
    async fn call(
        &self,
        _: &Canary,
        _: &Webhook,
        _: CanaryPhase,
    ) -> Result<(), sluice_rollout::BoxError> {
        Ok(())
    }

    async fn send_event(
        &self,
        _: &Canary,
        _: &Webhook,
        _: &sluice_rollout::cluster::Event,
        _: Timestamp,
    ) -> Result<(), sluice_rollout::BoxError> {
        Ok(())
    }
}

/// CPU time of this process so far (user + system), and its peak RSS.
fn usage() -> (Duration, u64) {
    // SAFETY: getrusage only writes into the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    (tv(u.ru_utime) + tv(u.ru_stime), peak_rss_mib())
}

/// The peak RSS of this process image, in MiB: `VmHWM` of
/// `/proc/self/status`. Not `ru_maxrss`, which Linux carries over an
/// `execve` from the process that forked (under `cargo bench`, cargo's own
/// hundred MiB).
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM in /proc/self/status");
    kib / 1024
}

struct Bench {
    cluster: MemoryCluster,
    analyzer: Analyzer<MemoryCluster, Healthy, Healthy>,
    names: Vec<String>,
    now: Timestamp,
}

impl Bench {
    /// One tick of every Canary; returns its CPU time and the phases seen.
    async fn round(&mut self) -> (Duration, Vec<Option<CanaryPhase>>) {
        let (before, _) = usage();
        let cluster = &self.cluster;
        let analyzer = &self.analyzer;
        let now = self.now;
        let phases: Vec<Option<CanaryPhase>> = futures::stream::iter(&self.names)
            .map(|name| async move {
                let canary = cluster.shared_canary("bench", name).expect("canary");
                let out = analyzer.reconcile(&canary, now).await.expect("reconcile");
                out.status.phase
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let (after, _) = usage();
        self.now += SignedDuration::from_secs(60);
        self.cluster.advance_tick();
        (after - before, phases)
    }
}

fn count(phases: &[Option<CanaryPhase>], phase: CanaryPhase) -> usize {
    phases.iter().filter(|p| **p == Some(phase)).count()
}

/// The bench over an in-memory cluster holding N targets and their
/// Canaries, and the peak RSS once the cluster held them (before the engine
/// started).
fn populate(n: usize) -> (Bench, u64) {
    let cluster = MemoryCluster::new();
    let names: Vec<String> = (0..n).map(|i| format!("app{i}")).collect();
    for name in &names {
        cluster
            .put_deployment(deployment(name, "app:1"))
            .expect("deployment");
        let canary =
            sluice_api::load::canary_from_yaml(&CANARY.replace("NAME", name)).expect("canary");
        cluster.put_canary(canary).expect("canary");
    }
    let (_, cluster_rss_mib) = usage();
    let registry = PluginRegistry::with_builtins(PluginHost::new(None).expect("host"))
        .expect("built-in plugins");
    let analyzer = Analyzer::new(cluster.clone(), Healthy, Healthy, registry);
    let bench = Bench {
        cluster,
        analyzer,
        names,
        now: "2026-01-01T00:00:00Z".parse().expect("time"),
    };
    (bench, cluster_rss_mib)
}

/// `-- N --idle-rounds R`: the R idle rounds to run and nothing else (each
/// one's CPU time printed), for a profiler.
fn idle_rounds_only() -> Option<usize> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == "--idle-rounds")?;
    Some(args.get(i + 1).and_then(|r| r.parse().ok()).unwrap_or(10))
}

/// The CPU time of each measured round.
struct Rounds {
    bootstrap: Duration,
    next_idle: Duration,
    idle: Duration,
    analysis: Duration,
}

/// Prints the figures, and the last line.
fn report(n: usize, r: &Rounds, rss_mib: u64, cluster_rss_mib: u64) {
    let per_canary = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    println!("{n} Canaries, 2 metrics each, in-memory cluster:");
    for (name, d) in [
        ("bootstrap round", r.bootstrap),
        ("idle round", r.idle),
        ("next round at rest", r.next_idle),
        ("analysis round", r.analysis),
    ] {
        println!(
            "  {name:<20} {:>8.3} s CPU ({:.1} µs per Canary)",
            d.as_secs_f64(),
            per_canary(d)
        );
    }
    println!(
        "  peak RSS             {rss_mib:>8} MiB ({cluster_rss_mib} MiB once the in-memory cluster held the objects, before the engine started)"
    );
    println!(
        "scale: canaries={n} analysis_round_cpu_s={:.3} idle_round_cpu_s={:.3} rss_mib={rss_mib}",
        r.analysis.as_secs_f64(),
        r.idle.as_secs_f64()
    );
}

async fn run(n: usize) {
    let (mut bench, cluster_rss_mib) = populate(n);
    // Bootstrap: primaries, services, routes.
    let (bootstrap, phases) = bench.round().await;
    assert_eq!(count(&phases, CanaryPhase::Initialized), n);
    if let Some(rounds) = idle_rounds_only() {
        for i in 1..=rounds {
            let (cpu, _) = bench.round().await;
            println!("idle round {i}: {:.3} s CPU", cpu.as_secs_f64());
        }
        return;
    }
    // At rest, nothing changed: the idle round, then the next one, which
    // should cost the same (see `analysis::route_sync`).
    let (idle, phases) = bench.round().await;
    assert_eq!(count(&phases, CanaryPhase::Initialized), n);
    let (next_idle, _) = bench.round().await;
    // A new revision everywhere; after two rounds every Canary progresses.
    for name in &bench.names {
        bench
            .cluster
            .put_deployment(deployment(name, "app:2"))
            .expect("deployment");
    }
    bench.round().await;
    bench.round().await;
    let (analysis, phases) = bench.round().await;
    assert_eq!(count(&phases, CanaryPhase::Progressing), n, "all progress");
    let (_, rss_mib) = usage();
    let rounds = Rounds {
        bootstrap,
        next_idle,
        idle,
        analysis,
    };
    report(n, &rounds, rss_mib, cluster_rss_mib);
}

fn main() {
    // `cargo bench` passes `--bench`; the first number is N.
    let n = std::env::args()
        .nth(1)
        .and_then(|a| a.parse::<usize>().ok())
        .unwrap_or(1000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(n));
}
