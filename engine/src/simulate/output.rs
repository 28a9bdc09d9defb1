//! Printing a simulation: as `kubectl describe canary` shows a Canary, or
//! as JSON lines, one per tick.

use std::fmt::Write as _;

use anyhow::Result;
use jiff::Timestamp;
use kube::ResourceExt;
use sluice_api::CanaryStatus;

use super::Simulation;

/// kubectl's short ages: "5s", "55s", "3m", "2h".
fn age(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 3 * 3600 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// The `kubectl describe canary` view of the run's end.
pub fn text(sim: &Simulation) -> String {
    let mut out = String::new();
    header(&mut out, sim);
    status(&mut out, &sim.canary.status.clone().unwrap_or_default());
    events(&mut out, sim);
    alerts(&mut out, sim);
    inventory(&mut out, sim);
    out
}

/// Name, namespace and kind of the Canary.
fn header(out: &mut String, sim: &Simulation) {
    let _ = writeln!(out, "Name:         {}", sim.canary.name_any());
    let _ = writeln!(
        out,
        "Namespace:    {}",
        sim.canary.namespace().unwrap_or_default()
    );
    let _ = writeln!(out, "API Version:  sluice.dev/v1beta1");
    let _ = writeln!(out, "Kind:         Canary");
}

/// The Canary's status: weight, failed checks, iterations (when any),
/// phase and conditions.
fn status(out: &mut String, status: &CanaryStatus) {
    let _ = writeln!(out, "Status:");
    let _ = writeln!(out, "  Canary Weight:  {}", status.canary_weight);
    let _ = writeln!(out, "  Failed Checks:  {}", status.failed_checks);
    if status.iterations > 0 {
        let _ = writeln!(out, "  Iterations:     {}", status.iterations);
    }
    let phase = status.phase.map(|p| p.to_string()).unwrap_or_default();
    let _ = writeln!(out, "  Phase:          {phase}");
    for c in &status.conditions {
        let _ = writeln!(
            out,
            "  Condition:      {}={} ({}) {}",
            c.condition_type,
            c.status,
            c.reason.as_deref().unwrap_or(""),
            c.message.as_deref().unwrap_or("")
        );
    }
}

/// Every event of the run, aged as at the run's end.
fn events(out: &mut String, sim: &Simulation) {
    let end: Option<Timestamp> = sim.final_tick().and_then(|t| t.time.parse().ok());
    let _ = writeln!(out, "Events:");
    let _ = writeln!(out, "  Type     Reason  Age   From    Message");
    let _ = writeln!(out, "  ----     ------  ----  ----    -------");
    for (tick, event) in sim.events() {
        let when: Option<Timestamp> = tick.time.parse().ok();
        let a = match (end, when) {
            // Events of the last tick are a few seconds old, as in the guide.
            (Some(end), Some(when)) => age((end.as_second() - when.as_second()).max(0) + 5),
            _ => "-".into(),
        };
        let kind = format!("{:?}", event.event_type);
        let _ = writeln!(
            out,
            "  {kind:<8} {:<7} {a:<5} sluice  {}",
            event.reason, event.message
        );
    }
}

/// The first line of each alert the run raised; nothing without alerts.
fn alerts(out: &mut String, sim: &Simulation) {
    let alerts: Vec<_> = sim.ticks.iter().flat_map(|t| t.alerts.iter()).collect();
    if !alerts.is_empty() {
        // What `analysis.alerts` providers (Slack, Teams, …) would receive.
        let _ = writeln!(out, "Alerts:");
        for a in alerts {
            let first_line = a.message.lines().next().unwrap_or_default();
            let _ = writeln!(out, "  {:<6} {first_line}", a.severity);
        }
    }
}

/// The objects in the cluster at the end.
fn inventory(out: &mut String, sim: &Simulation) {
    let _ = writeln!(out, "Generated objects:");
    for o in &sim.inventory {
        let _ = writeln!(out, "  {o}");
    }
}

/// One JSON object per tick, one per line.
pub fn json_lines(sim: &Simulation) -> Result<String> {
    let mut out = String::new();
    for t in &sim.ticks {
        out.push_str(&serde_json::to_string(t)?);
        out.push('\n');
    }
    Ok(out)
}
