//! `sluice demo`: the playground (engine/playground) on this machine, no
//! cluster needed. Two podinfo-like backends behind a real Envoy, a real
//! Prometheus scraping Envoy, a steady load of real requests, and Sluice's
//! engine rolling out the guide's Canary twice, live: a healthy canary
//! (promoted), then one answering 500s (rolled back). One line per
//! analysis tick: the phase, the metric values judged, each decision with
//! its reason, the route's canary weight and the share of requests each
//! backend served under it.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use sluice_api::CanaryPhase;
use sluice_host::{PluginHost, PluginRegistry};
use sluice_playground::{Playground, Rollout, TickReport, Tools, examples};

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// The Envoy binary (default: $SLUICE_ENVOY, then `envoy` on PATH, then
    /// target/tools/venv/bin/envoy).
    #[arg(long, value_name = "PATH")]
    pub envoy: Option<PathBuf>,
    /// The Prometheus binary (default: $SLUICE_PROMETHEUS, then
    /// `prometheus` on PATH).
    #[arg(long, value_name = "PATH")]
    pub prometheus: Option<PathBuf>,
    /// Requests per second sent through Envoy.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Analyse every 2 s over 10 s windows instead of every 5 s over 20 s.
    #[arg(long)]
    pub fast: bool,
}

/// How fast the demo's Canary goes.
struct Pace {
    interval: Duration,
    interval_text: &'static str,
    window: &'static str,
}

/// At most this many ticks per rollout (a healthy one takes about 11).
const MAX_TICKS: usize = 30;

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Runs the demo, printing as it goes; returns the closing summary. On
/// Ctrl-C it stops, and Envoy and Prometheus with it.
pub async fn demo(args: &DemoArgs) -> Result<String> {
    tokio::select! {
        out = run_demo(args) => out,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted; Envoy and Prometheus stopped"),
    }
}

async fn run_demo(args: &DemoArgs) -> Result<String> {
    let tools = Tools::find(args.envoy.as_deref(), args.prometheus.as_deref())?;
    let pace = if args.fast {
        Pace {
            interval: Duration::from_secs(2),
            interval_text: "2s",
            window: "10s",
        }
    } else {
        Pace {
            interval: Duration::from_secs(5),
            interval_text: "5s",
            window: "20s",
        }
    };
    say(&format!(
        "Starting the playground: Envoy ({}), Prometheus ({}), two podinfo-like backends",
        tools.envoy.display(),
        tools.prometheus.display()
    ));
    let mut pg = Playground::start(&tools)
        .await
        .context("starting the playground")?;
    let load = pg.steady_load(args.rate)?;
    say(&format!(
        "Envoy listens on {} (Host: {}), Prometheus on {} (scraping Envoy every second); sending {} requests/s",
        pg.envoy.url(""),
        sluice_playground::HOST,
        pg.prometheus.url,
        args.rate
    ));
    let canary = examples::contour_canary(pace.interval_text, pace.window, 3, "");
    let template = examples::envoy_5xx_template(&pg.prometheus.url)?;
    let mut rollout = Rollout::new(&canary, &[template], &pg.prometheus.url, registry()?)?;
    say(&format!(
        "Canary test/podinfo: provider contour, every {}, 10% steps to 50%; request-success-rate >= 99%, request-duration <= 500 ms, envoy-5xx-percent <= 1% over {}; rollback after 3 failed checks",
        pace.interval_text, pace.window
    ));

    say("\n== 1. A healthy canary (podinfo 6.0.1) ==");
    let healthy = run(&mut pg, &mut rollout, &load, &pace).await?;
    say(&format!("healthy rollout: {}", outcome(healthy)));

    say("\n== 2. A canary answering 500 to 40% of requests (podinfo 6.0.2) ==");
    pg.canary.set_version("6.0.2");
    pg.canary.fail_percent(40);
    let failing = run(&mut pg, &mut rollout, &load, &pace).await?;
    say(&format!("failing rollout: {}", outcome(failing)));

    Ok(format!(
        "\nDone: the healthy canary was {}, the failing one was {}.\n",
        outcome(healthy),
        outcome(failing)
    ))
}

fn outcome(phase: Option<CanaryPhase>) -> &'static str {
    match phase {
        Some(CanaryPhase::Succeeded) => "promoted",
        Some(CanaryPhase::Failed) => "rolled back",
        _ => "not finished",
    }
}

/// Rolls out a new revision (initialising the Canary first if needed);
/// the phase it ended in.
async fn run(
    pg: &mut Playground,
    rollout: &mut Rollout,
    load: &sluice_playground::Load,
    pace: &Pace,
) -> Result<Option<CanaryPhase>> {
    let mut changed = rollout
        .canary()?
        .status
        .and_then(|s| s.phase)
        .is_some_and(|p| p != CanaryPhase::Initializing);
    if changed {
        rollout.new_revision()?;
        say("new revision: podinfo image changed");
    }
    for _ in 0..MAX_TICKS {
        let report: TickReport = rollout.step(&mut pg.envoy, load, pace.interval).await?;
        say(&report.summary());
        let phase = report.status.phase;
        if phase == Some(CanaryPhase::Initialized) && !changed {
            rollout.new_revision()?;
            say("new revision: podinfo image changed");
            changed = true;
        }
        if changed && matches!(phase, Some(CanaryPhase::Succeeded | CanaryPhase::Failed)) {
            return Ok(phase);
        }
    }
    Ok(None)
}

/// The built-in plugins, compiled once and cached as `sluice simulate`
/// caches them.
fn registry() -> Result<PluginRegistry> {
    let cache = crate::cli::artifact_cache(None);
    let host = PluginHost::new(cache)?;
    Ok(PluginRegistry::with_builtins(host)?)
}
