//! The `sluice` command line.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use kube::CustomResourceExt;

use crate::simulate::{self, output, scenario::Scenario};
use sluice_api::{AlertProvider, Canary, MetricTemplate, RolloutPlugin, load};
use sluice_host::journal::Journal;
use sluice_host::{ArtifactCache, Limits, PluginHost, PluginRegistry};

/// The seed guide's weighted canary, its templates and a healthy scenario:
/// what `sluice simulate` runs when given no files.
pub const DEFAULT_CANARY: &str = include_str!("../../examples/podinfo-canary.yaml");
pub const DEFAULT_TEMPLATES: &str = include_str!("../../examples/metric-templates.yaml");
pub const DEFAULT_SCENARIO: &str = include_str!("../../examples/scenarios/healthy.yaml");

#[derive(Parser, Debug)]
#[command(
    name = "sluice",
    version,
    about = "Progressive delivery over the Gateway API, with Wasm plugins"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: a large variant costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a Canary's rollout against a simulated cluster, scripted by a scenario.
    Simulate(SimulateArgs),
    /// Run the operator against the cluster of the current kubeconfig or
    /// service account.
    Run(sluice_operator::run::RunArgs),
    /// Work with plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Print the CustomResourceDefinitions as YAML.
    Crd,
    /// Run a healthy and a failing rollout live, through a real Envoy and
    /// Prometheus on this machine (no cluster needed).
    Demo(crate::demo::DemoArgs),
    /// Re-run the plugin calls of a past rollout (a journal) through a
    /// candidate plugin and show where and why it decides otherwise.
    /// Exits 1 when a decision differs.
    Replay(crate::replay::ReplayArgs),
    /// Work with decision journals.
    #[command(subcommand)]
    Journal(crate::replay::JournalCommand),
}

#[derive(Subcommand, Debug)]
pub enum PluginCommand {
    /// Inspect a plugin (.wasm component): world, contract version,
    /// imports, exports, size, digest, and sample calls within the limits.
    /// Exits 1 when the host would refuse it, or when `--fuzz` finds an
    /// input whose answer the host refuses.
    Check(PluginCheckArgs),
    /// Create a plugin crate (Rust, with the guest SDK) that builds, tests
    /// and passes `plugin check` as it is.
    New(PluginNewArgs),
}

#[derive(clap::Args, Debug)]
pub struct PluginNewArgs {
    /// The crate's name: lower-case letters, digits and '-', starting with
    /// a letter; the component is named after it, with '_' for '-'.
    pub name: String,
    #[arg(long, value_enum)]
    pub kind: crate::scaffold::PluginKind,
    /// The folder to create (default: ./NAME); it must not exist, or be empty.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The SDK's folder (a Sluice checkout's plugins/sdk). Default: the SDK
    /// of the Sluice checkout the command runs in, else the published SDK
    /// by version.
    #[arg(long)]
    pub sdk_path: Option<PathBuf>,
}

/// `sluice plugin new`: writes the crate and says what to do next.
pub fn plugin_new(args: &PluginNewArgs) -> Result<String> {
    use crate::scaffold::{self, Scaffold, SdkSource};
    let sdk = match &args.sdk_path {
        Some(path) => SdkSource::Path(path.clone()),
        None => std::env::current_dir()
            .ok()
            .and_then(|dir| scaffold::find_sdk(&dir))
            .map_or_else(
                || SdkSource::Version(scaffold::SDK_VERSION.into()),
                SdkSource::Path,
            ),
    };
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    let created = scaffold::create(&Scaffold {
        name: args.name.clone(),
        kind: args.kind,
        dir,
        sdk: sdk.clone(),
    })?;
    let sdk = match sdk {
        SdkSource::Path(p) => format!("path {}", p.display()),
        SdkSource::Version(v) => format!("version {v} (crates.io; or set --sdk-path)"),
    };
    let wasm = created.wasm.display();
    Ok(format!(
        "created:  {kind} plugin {name} in {dir}\n\
         sdk:      sluice-plugin-sdk by {sdk}\n\
         next:     cd {dir}\n\
         \x20         cargo test\n\
         \x20         cargo build --release --target wasm32-wasip2\n\
         \x20         sluice plugin check --fuzz 1000 {wasm}\n",
        kind = args.kind,
        name = args.name,
        dir = created.dir.display(),
    ))
}

#[derive(clap::Args, Debug)]
pub struct PluginCheckArgs {
    /// The component to check.
    pub file: PathBuf,
    /// Time budget of one plugin call, in milliseconds.
    #[arg(long, default_value_t = 100)]
    pub plugin_timeout_ms: u64,
    /// Memory cap of one plugin call, in MiB.
    #[arg(long, default_value_t = 64)]
    pub plugin_memory_mib: usize,
    /// Settings to try the plugin with: a strategy's `strategyConfig`, an
    /// evaluator's metric config (as a RolloutPlugin's `config` would give).
    #[arg(long, default_value = "")]
    pub config: String,
    /// Where compiled plugins are cached (default: ~/.cache/sluice); a
    /// second check of the same component skips its compilation.
    #[arg(long, env = "SLUICE_PLUGIN_CACHE")]
    pub plugin_cache: Option<PathBuf>,
    /// Also run this many generated inputs through the plugin, with the
    /// host's answer checks as the oracle; the first failing input is
    /// printed, shrunk.
    #[arg(long, value_name = "N")]
    pub fuzz: Option<u32>,
    /// The seed of `--fuzz`'s generator: the same seed, the same inputs.
    #[arg(long, default_value_t = 0, requires = "fuzz")]
    pub seed: u64,
}

/// `sluice plugin check`: the report, and whether the plugin is usable.
pub async fn plugin_check(args: &PluginCheckArgs) -> Result<(String, bool)> {
    let wasm =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let host = PluginHost::new(artifact_cache(args.plugin_cache.clone()))?;
    let limits = Limits {
        time_budget: std::time::Duration::from_millis(args.plugin_timeout_ms),
        memory_bytes: args.plugin_memory_mib * 1024 * 1024,
    };
    let name = args
        .file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".into());
    let report = sluice_host::check::check(&host, &name, &wasm, limits, &args.config).await;
    let mut out = report.to_string();
    let Some(cases) = args.fuzz.filter(|_| report.ok()) else {
        return Ok((out, report.ok()));
    };
    let options = sluice_host::fuzz::FuzzOptions {
        cases,
        seed: args.seed,
        config: args.config.clone(),
    };
    let fuzzed = sluice_host::fuzz::fuzz(&host, &name, &wasm, limits, &options).await?;
    out.push_str(&fuzzed.to_string());
    Ok((out, fuzzed.ok()))
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// The `kubectl describe canary` view.
    Text,
    /// One JSON object per tick, one per line.
    Json,
}

#[derive(clap::Args, Debug)]
pub struct SimulateArgs {
    /// Canary manifest (default: the guide's podinfo weighted canary).
    #[arg(long)]
    pub canary: Option<PathBuf>,
    /// MetricTemplate manifests (default with the built-in canary: the guide's templates).
    #[arg(long = "templates")]
    pub templates: Vec<PathBuf>,
    /// Scenario file (default: a healthy rollout).
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,
    /// A strategy plugin (.wasm component) to use instead of the Canary's.
    #[arg(long)]
    pub strategy_plugin: Option<PathBuf>,
    /// An evaluator plugin (.wasm component) to use for every metric.
    #[arg(long)]
    pub evaluator_plugin: Option<PathBuf>,
    /// Time budget of one plugin call, in milliseconds.
    #[arg(long, default_value_t = 100)]
    pub plugin_timeout_ms: u64,
    /// Memory cap of one plugin call, in MiB.
    #[arg(long, default_value_t = 64)]
    pub plugin_memory_mib: usize,
    /// Where compiled plugins are cached (default: ~/.cache/sluice).
    #[arg(long, env = "SLUICE_PLUGIN_CACHE")]
    pub plugin_cache: Option<PathBuf>,
    /// Take metric values from this Prometheus (e.g. http://127.0.0.1:9090)
    /// instead of the scenario; every query goes there, whatever address
    /// the MetricTemplates give.
    #[arg(long, value_name = "URL")]
    pub prometheus: Option<String>,
    /// Evaluation time of the first tick's queries (RFC 3339); each tick
    /// adds the analysis interval. Default: Prometheus's current time.
    #[arg(long, value_name = "RFC3339", requires = "prometheus")]
    pub prometheus_time: Option<String>,
    /// Write every plugin call of the rollout (inputs and answers) to FILE,
    /// as JSON lines, for `sluice replay`.
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
}

/// Calls a simulation's journal keeps (the newest).
const SIMULATION_JOURNAL_CALLS: usize = 100_000;

/// The simulation options the arguments ask for; checks that Prometheus
/// answers before the run, so a wrong URL is one clear error.
pub async fn run_options(args: &SimulateArgs) -> Result<simulate::RunOptions> {
    let Some(url) = &args.prometheus else {
        return Ok(simulate::RunOptions::default());
    };
    let mut source = simulate::PrometheusSource::new(url.clone());
    if let Some(t) = &args.prometheus_time {
        let start: jiff::Timestamp = t.parse().with_context(|| {
            format!("--prometheus-time {t:?} is not an RFC 3339 time (e.g. 2026-01-01T00:00:00Z)")
        })?;
        source = source.starting_at(start);
    }
    sluice_rollout::metrics::PrometheusClient::new(
        url,
        sluice_rollout::metrics::Credentials::None,
        source.timeout,
        false,
    )?
    .check_online()
    .await
    .context("--prometheus")?;
    Ok(simulate::RunOptions {
        prometheus: Some(source),
    })
}

fn read(path: &PathBuf) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// The compiled-plugin cache in `dir`, else in the default directory;
/// none (every load compiles) when neither can be used.
pub fn artifact_cache(dir: Option<PathBuf>) -> Option<ArtifactCache> {
    let dir = dir.or_else(ArtifactCache::default_dir)?;
    ArtifactCache::new(dir)
        .inspect_err(|e| tracing::warn!(error = %e, "plugin cache disabled"))
        .ok()
}

/// Builds the plugin registry: built-ins plus the command line's overrides.
pub fn registry(args: &SimulateArgs) -> Result<PluginRegistry> {
    registry_with_journal(args, Journal::default())
}

/// [`registry`], its plugin calls recorded in `journal`.
fn registry_with_journal(args: &SimulateArgs, journal: Journal) -> Result<PluginRegistry> {
    let host = PluginHost::new(artifact_cache(args.plugin_cache.clone()))?.with_journal(journal);
    let limits = Limits {
        time_budget: std::time::Duration::from_millis(args.plugin_timeout_ms),
        memory_bytes: args.plugin_memory_mib * 1024 * 1024,
    };
    let mut registry = PluginRegistry::with_builtins(host.clone())?;
    if let Some(path) = &args.strategy_plugin {
        let wasm = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("custom");
        registry.override_strategy(host.load_strategy(name, &wasm, limits)?);
    }
    if let Some(path) = &args.evaluator_plugin {
        let wasm = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("custom");
        registry.override_evaluator(host.load_evaluator(name, &wasm, limits)?);
    }
    Ok(registry)
}

/// Loads the Canary, templates and scenario the arguments name, or the defaults.
pub fn inputs(args: &SimulateArgs) -> Result<(Canary, Vec<MetricTemplate>, Scenario)> {
    let canary_text = match &args.canary {
        Some(p) => read(p)?,
        None => DEFAULT_CANARY.to_string(),
    };
    let canary = load::canary_from_yaml(&canary_text).context("reading the Canary")?;
    let mut templates = Vec::new();
    if args.templates.is_empty() && args.canary.is_none() {
        templates = load::metric_templates_from_yaml(DEFAULT_TEMPLATES)?;
    }
    for p in &args.templates {
        templates.extend(
            load::metric_templates_from_yaml(&read(p)?)
                .with_context(|| format!("reading {}", p.display()))?,
        );
    }
    let scenario_text = match &args.scenario {
        Some(p) => read(p)?,
        None => DEFAULT_SCENARIO.to_string(),
    };
    let scenario = Scenario::from_yaml(&scenario_text)?;
    // A Canary the engine would refuse is bad input for a simulation.
    canary.settings().map_err(anyhow::Error::from)?;
    Ok((canary, templates, scenario))
}

pub async fn simulate(args: &SimulateArgs) -> Result<String> {
    let (canary, templates, scenario) = inputs(args)?;
    // One journal for every registry of the run (a simulated restart
    // builds a new one).
    let journal = match args.journal {
        Some(_) => Journal::new(SIMULATION_JOURNAL_CALLS),
        None => Journal::default(),
    };
    // Fail early, before the run, when the strategy is unavailable.
    let reg = registry_with_journal(args, journal.clone())?;
    let settings = canary.settings().map_err(anyhow::Error::from)?;
    reg.strategy(&settings.strategy.name)
        .map_err(anyhow::Error::msg)?;
    let first = std::cell::Cell::new(Some(reg));
    let factory = || match first.take() {
        Some(r) => Ok(r),
        None => registry_with_journal(args, journal.clone()),
    };
    let options = run_options(args).await?;
    let sim = simulate::run_with(canary, templates, scenario, &factory, &options).await?;
    if let Some(path) = &args.journal {
        let lines = Journal::to_json_lines(&journal.entries(None))?;
        std::fs::write(path, lines).with_context(|| format!("writing {}", path.display()))?;
    }
    match args.output {
        OutputFormat::Text => Ok(output::text(&sim)),
        OutputFormat::Json => output::json_lines(&sim),
    }
}

/// The CRDs, as a multi-document YAML stream.
pub fn crds() -> Result<String> {
    let mut out = String::new();
    for crd in [
        Canary::crd(),
        MetricTemplate::crd(),
        AlertProvider::crd(),
        RolloutPlugin::crd(),
    ] {
        out.push_str("---\n");
        out.push_str(&yaml_serde::to_string(&crd)?);
    }
    Ok(out)
}
