//! `sluice replay`: re-runs the plugin calls of a past rollout (a journal
//! written by `sluice simulate --journal` or exported from an operator)
//! through a candidate plugin, with the host's own answer checks, and says
//! where and why the candidate would have decided otherwise. Plugins are
//! pure functions of their inputs, so the journal's own plugin replays
//! with no difference.

use std::path::PathBuf;

use anyhow::{Context, Result};
use sluice_host::bindings::evaluator::Verdict;
use sluice_host::bindings::strategy::Action;
use sluice_host::journal::{Answer, Call, Entry, Journal, RecordedRequirements};
use sluice_host::{EvaluatorPlugin, Limits, PluginFault, PluginHost, StrategyPlugin, validate};

#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// The journal (JSON lines, from `sluice simulate --journal` or
    /// `sluice journal export`).
    #[arg(long, value_name = "FILE")]
    pub journal: PathBuf,
    /// A candidate strategy: replays the journal's strategy calls.
    #[arg(
        long,
        value_name = "WASM",
        required_unless_present = "evaluator_plugin"
    )]
    pub strategy_plugin: Option<PathBuf>,
    /// A candidate evaluator: replays the journal's evaluator calls.
    #[arg(long, value_name = "WASM")]
    pub evaluator_plugin: Option<PathBuf>,
    /// Only this Canary's calls ("namespace/name").
    #[arg(long)]
    pub canary: Option<String>,
    /// Time budget of one call, in milliseconds.
    #[arg(long, default_value_t = 100)]
    pub plugin_timeout_ms: u64,
}

/// The candidates a replay runs.
struct Candidates {
    strategy: Option<StrategyPlugin>,
    evaluator: Option<EvaluatorPlugin>,
}

/// Replays the journal; the report, and whether every replayed call
/// answered as recorded.
pub async fn replay(args: &ReplayArgs) -> Result<(String, bool)> {
    let text = std::fs::read_to_string(&args.journal)
        .with_context(|| format!("reading {}", args.journal.display()))?;
    let entries = Journal::from_json_lines(&text)
        .with_context(|| format!("reading the journal {}", args.journal.display()))?;
    let candidates = load(args)?;
    let mut report = String::new();
    let (mut replayed, mut differ) = (0, 0);
    for entry in entries
        .iter()
        .filter(|e| args.canary.as_deref().is_none_or(|c| e.canary == c))
    {
        let Some(answer) = rerun(&candidates, entry).await else {
            continue;
        };
        replayed += 1;
        let recorded = describe(&entry.call);
        if !same(&recorded, &answer) {
            differ += 1;
            report.push_str(&format!(
                "#{} {} {} {} at {}: recorded {recorded}, candidate {answer}\n",
                entry.seq,
                entry.at,
                entry.canary,
                entry.call.export(),
                situation(&entry.call),
            ));
        }
    }
    let names: Vec<String> = [
        candidates
            .strategy
            .as_ref()
            .map(|p| candidate("strategy", p.name(), p.digest())),
        candidates
            .evaluator
            .as_ref()
            .map(|p| candidate("evaluator", p.name(), p.digest())),
    ]
    .into_iter()
    .flatten()
    .collect();
    let summary = format!(
        "replayed {replayed} of {} calls with {}: {differ} differ\n",
        entries.len(),
        names.join(" and ")
    );
    Ok((summary + &report, differ == 0))
}

fn candidate(kind: &str, name: &str, digest: &str) -> String {
    format!("{kind} {name} (sha256:{})", &digest[..digest.len().min(12)])
}

fn load(args: &ReplayArgs) -> Result<Candidates> {
    let host = PluginHost::new(crate::cli::artifact_cache(None))?;
    let limits = Limits {
        time_budget: std::time::Duration::from_millis(args.plugin_timeout_ms),
        ..Limits::default()
    };
    let read = |p: &PathBuf| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    let name = |p: &PathBuf| {
        p.file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("candidate")
            .to_string()
    };
    let strategy = match &args.strategy_plugin {
        Some(p) => Some(host.load_strategy(&name(p), &read(p)?, limits)?),
        None => None,
    };
    let evaluator = match &args.evaluator_plugin {
        Some(p) => Some(host.load_evaluator(&name(p), &read(p)?, limits)?),
        None => None,
    };
    Ok(Candidates {
        strategy,
        evaluator,
    })
}

/// The candidate's answer to the recorded call, described as
/// [`describe`] does; `None` when no candidate replays this kind of call.
async fn rerun(c: &Candidates, entry: &Entry) -> Option<String> {
    Some(match &entry.call {
        Call::Decide {
            spec,
            state,
            observation,
            ..
        } => {
            let p = c.strategy.as_ref()?;
            let answer = match p.decide(spec, *state, *observation).await {
                Ok(a) => validate::action(p.name(), spec, state, &a).map(|()| a),
                Err(f) => Err(f),
            };
            action_answer(&answer)
        }
        Call::Route { spec, state, .. } => {
            let p = c.strategy.as_ref()?;
            let answer = match p.route(spec, *state).await {
                Ok(plan) => validate::route_plan(p.name(), spec, state, &plan).map(|()| plan),
                Err(f) => Err(f),
            };
            route_answer(&Answer::from(&answer))
        }
        Call::Requirements { metric, .. } => {
            let p = c.evaluator.as_ref()?;
            let answer = p.requirements(metric).await.map(RecordedRequirements::from);
            requirements_answer(&Answer::from(&answer))
        }
        Call::Evaluate {
            metric, samples, ..
        } => {
            let p = c.evaluator.as_ref()?;
            verdict_answer(&Answer::from(&p.evaluate(metric, samples.clone()).await))
        }
    })
}

/// Two answers are the same decision when they are equal, or both faults
/// (nothing moves either way; the reasons name different plugins).
fn same(recorded: &str, candidate: &str) -> bool {
    recorded == candidate || (recorded.starts_with("fault") && candidate.starts_with("fault"))
}

/// The recorded answer, in words.
fn describe(call: &Call) -> String {
    match call {
        Call::Decide { answer, .. } => match answer {
            Answer::Ok(a) => action(a),
            Answer::Fault(why) => format!("fault ({why})"),
        },
        Call::Route { answer, .. } => route_answer(answer),
        Call::Requirements { answer, .. } => requirements_answer(answer),
        Call::Evaluate { answer, .. } => verdict_answer(answer),
    }
}

fn action_answer(answer: &Result<Action, PluginFault>) -> String {
    match answer {
        Ok(a) => action(a),
        Err(f) => format!("fault ({f})"),
    }
}

fn action(a: &Action) -> String {
    match a {
        Action::Advance(a) => format!(
            "advance to weight {} (iterations {})",
            a.canary_weight, a.iterations
        ),
        Action::Hold(why) => format!("hold ({why})"),
        Action::Promote => "promote".into(),
        Action::Rollback(why) => format!("roll back ({why})"),
        Action::Finalise => "finalise".into(),
    }
}

fn route_answer<T: serde::Serialize>(answer: &Answer<T>) -> String {
    match answer {
        Answer::Ok(plan) => format!(
            "route {}",
            serde_json::to_string(plan).unwrap_or_else(|e| e.to_string())
        ),
        Answer::Fault(why) => format!("fault ({why})"),
    }
}

fn requirements_answer(answer: &Answer<RecordedRequirements>) -> String {
    match answer {
        Answer::Ok(r) => format!(
            "requirements (baseline {}, series {})",
            r.baseline,
            r.series.map_or("none".into(), |s| format!(
                "{}s every {}s",
                s.window_seconds, s.step_seconds
            ))
        ),
        Answer::Fault(why) => format!("fault ({why})"),
    }
}

fn verdict_answer(answer: &Answer<Verdict>) -> String {
    match answer {
        Answer::Ok(Verdict::Pass) => "pass".into(),
        Answer::Ok(Verdict::Fail(why)) => format!("fail ({why})"),
        Answer::Ok(Verdict::Inconclusive(why)) => format!("inconclusive ({why})"),
        Answer::Ok(Verdict::NeedsMoreData(why)) => format!("needs more data ({why})"),
        Answer::Fault(why) => format!("fault ({why})"),
    }
}

/// Where the rollout stood at the call: phase, weight, iterations, or the
/// metric's name and value.
fn situation(call: &Call) -> String {
    match call {
        Call::Decide { state, .. } | Call::Route { state, .. } => format!(
            "{} weight {} iterations {}",
            format!("{:?}", state.phase).trim_start_matches("Phase::"),
            state.canary_weight,
            state.iterations
        ),
        Call::Requirements { metric, .. } => format!("metric {}", metric.name),
        Call::Evaluate {
            metric, samples, ..
        } => format!("metric {} = {}", metric.name, samples.canary),
    }
}

#[derive(clap::Subcommand, Debug)]
pub enum JournalCommand {
    /// Fetch the decision journal of a running operator (its `/journal`
    /// endpoint, e.g. through `kubectl port-forward deploy/sluice 8080`).
    Export(JournalExportArgs),
}

#[derive(clap::Args, Debug)]
pub struct JournalExportArgs {
    /// The operator's HTTP address.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080")]
    pub operator: String,
    /// Only this Canary's calls ("namespace/name").
    #[arg(long)]
    pub canary: Option<String>,
    /// Write the journal here (default: standard output).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Fetches and checks the journal; what to print.
pub async fn export(args: &JournalExportArgs) -> Result<String> {
    let http = sluice_rollout::http_client::client(std::time::Duration::from_secs(30), false)?;
    let url = format!("{}/journal", args.operator.trim_end_matches('/'));
    let mut request = http.get(&url);
    if let Some(canary) = &args.canary {
        request = request.query(&[("canary", canary)]);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("asking {url} (--operator) for the journal"))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .with_context(|| format!("reading the journal from {url}"))?;
    anyhow::ensure!(status.is_success(), "{url} answered {status}: {body}");
    let entries = Journal::from_json_lines(&body).with_context(|| format!("{url} answered"))?;
    match &args.output {
        Some(path) => {
            std::fs::write(path, &body).with_context(|| format!("writing {}", path.display()))?;
            Ok(format!(
                "{} calls written to {}\n",
                entries.len(),
                path.display()
            ))
        }
        None => Ok(body),
    }
}
