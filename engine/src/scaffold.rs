//! `sluice plugin new`: a new plugin crate that builds, tests and passes
//! `sluice plugin check` as it is.
//!
//! The crate is stand-alone (its own Cargo workspace), depends only on the
//! guest SDK (`sluice-plugin-sdk`, by path or by version), and holds a small
//! working plugin of the kind asked for, on the SDK's `v2` API (contract
//! `sluice:plugin@0.2.0`), its unit tests and a README with the next steps.

use std::fmt;
use std::path::{Path, PathBuf};

/// The two kinds of plugins; both are scaffolded on the SDK's `v2` API,
/// for the contract `sluice:plugin@0.2.0`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PluginKind {
    /// Decides how traffic moves (the `strategy` world).
    Strategy,
    /// Judges one metric (the `evaluator` world).
    Evaluator,
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PluginKind::Strategy => "strategy",
            PluginKind::Evaluator => "evaluator",
        })
    }
}

/// Where the new crate takes the SDK from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdkSource {
    /// A directory holding the SDK crate (a Sluice checkout's `plugins/sdk`).
    Path(PathBuf),
    /// The SDK published on crates.io, by version requirement.
    Version(String),
}

/// The version requirement of the SDK when no path is known: the SDK's
/// version follows the contract's (`sluice:plugin@0.1.x`); SDK 0.1 also
/// carries the 0.2 contract, in its `v2` module, which scaffolds use.
pub const SDK_VERSION: &str = "0.1";

/// What to scaffold.
#[derive(Debug, Clone)]
pub struct Scaffold {
    /// The crate's name; the component is `<name with _>.wasm`.
    pub name: String,
    pub kind: PluginKind,
    /// The directory to create (it must not exist, or be empty).
    pub dir: PathBuf,
    pub sdk: SdkSource,
}

/// Why a crate could not be scaffolded.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(
        "{0:?} is not a plugin crate name: use lower-case letters, digits and '-', starting with a letter (at most 64)"
    )]
    Name(String),
    #[error("{} already exists and is not empty: choose another --dir", .0.display())]
    NotEmpty(PathBuf),
    #[error("no SDK crate (sluice-plugin-sdk) at {}: --sdk-path names the SDK's folder, the one with its Cargo.toml", .0.display())]
    NoSdk(PathBuf),
    #[error("writing {}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ScaffoldError + '_ {
    move |source| ScaffoldError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Whether `name` can name a plugin crate.
fn valid_name(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !matches!(name, "test" | "sluice-plugin-sdk")
}

/// The SDK folder of the Sluice checkout that `start` is in, if it is in
/// one: the nearest ancestor with `plugins/sdk/Cargo.toml` naming
/// `sluice-plugin-sdk`.
pub fn find_sdk(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|dir| dir.join("plugins/sdk"))
        .find(|sdk| is_sdk(sdk))
}

fn is_sdk(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("Cargo.toml"))
        .is_ok_and(|toml| toml.contains("name = \"sluice-plugin-sdk\""))
}

/// The crate's library name: the `.wasm` file's stem.
pub fn lib_name(name: &str) -> String {
    name.replace('-', "_")
}

/// `my-rollout` -> `MyRollout`: the plugin type's name.
fn type_name(name: &str) -> String {
    name.split('-')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Created {
    pub dir: PathBuf,
    pub files: Vec<PathBuf>,
    /// The component `cargo build --release --target wasm32-wasip2` makes,
    /// relative to `dir`.
    pub wasm: PathBuf,
}

/// Writes the crate.
pub fn create(s: &Scaffold) -> Result<Created, ScaffoldError> {
    if !valid_name(&s.name) {
        return Err(ScaffoldError::Name(s.name.clone()));
    }
    let sdk_dependency = sdk_dependency(&s.sdk)?;
    ensure_empty(&s.dir)?;
    let lib = lib_name(&s.name);
    let wasm = PathBuf::from(format!("target/wasm32-wasip2/release/{lib}.wasm"));
    let files = crate_files(s, &lib, &wasm, &sdk_dependency);
    let written = write_files(&s.dir, files)?;
    Ok(Created {
        dir: s.dir.clone(),
        files: written,
        wasm,
    })
}

/// The `Cargo.toml` dependency line on the SDK, with the other way to
/// depend on it in a comment; a path must hold the SDK.
fn sdk_dependency(sdk: &SdkSource) -> Result<String, ScaffoldError> {
    Ok(match sdk {
        SdkSource::Path(path) => {
            if !is_sdk(path) {
                return Err(ScaffoldError::NoSdk(path.clone()));
            }
            let path = std::fs::canonicalize(path).map_err(io(path))?;
            format!(
                "sluice-plugin-sdk = {{ path = {} }}\n\
                 # Once the SDK is published, by version instead:\n\
                 # sluice-plugin-sdk = \"{SDK_VERSION}\"",
                toml_string(&path.to_string_lossy())
            )
        }
        SdkSource::Version(version) => format!(
            "sluice-plugin-sdk = {}\n\
             # Or a Sluice checkout's SDK, by path:\n\
             # sluice-plugin-sdk = {{ path = \"../sluice/plugins/sdk\" }}",
            toml_string(version)
        ),
    })
}

/// Refuses a `dir` that exists and is not empty.
fn ensure_empty(dir: &Path) -> Result<(), ScaffoldError> {
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(io(dir))?;
        if entries.next().is_some() {
            return Err(ScaffoldError::NotEmpty(dir.to_path_buf()));
        }
    }
    Ok(())
}

/// The crate's files, by path within it: the templates of `s.kind` filled
/// in with the crate's names, the SDK dependency and the component's path.
fn crate_files(
    s: &Scaffold,
    lib: &str,
    wasm: &Path,
    sdk_dependency: &str,
) -> [(&'static str, String); 4] {
    let fill = |template: &str| {
        template
            .replace("{{name}}", &s.name)
            .replace("{{lib}}", lib)
            .replace("{{Type}}", &type_name(&s.name))
            .replace("{{kind}}", &s.kind.to_string())
            .replace("{{sdk}}", sdk_dependency)
            .replace("{{wasm}}", &wasm.to_string_lossy())
            .replace(
                "{{simulate_flag}}",
                match s.kind {
                    PluginKind::Strategy => "--strategy-plugin",
                    PluginKind::Evaluator => "--evaluator-plugin",
                },
            )
    };
    let lib_rs = match s.kind {
        PluginKind::Strategy => STRATEGY_LIB,
        PluginKind::Evaluator => EVALUATOR_LIB,
    };
    let readme = match s.kind {
        PluginKind::Strategy => README.replace("{{about}}", STRATEGY_ABOUT),
        PluginKind::Evaluator => README.replace("{{about}}", EVALUATOR_ABOUT),
    };
    [
        ("Cargo.toml", fill(CARGO_TOML)),
        ("src/lib.rs", fill(lib_rs)),
        ("README.md", fill(&readme)),
        (".gitignore", "/target\n/Cargo.lock\n".to_string()),
    ]
}

/// Writes `files` under `dir`, creating `dir/src`; the paths written.
fn write_files(dir: &Path, files: [(&str, String); 4]) -> Result<Vec<PathBuf>, ScaffoldError> {
    let src = dir.join("src");
    std::fs::create_dir_all(&src).map_err(io(&src))?;
    let mut written = Vec::new();
    for (file, text) in files {
        let path = dir.join(file);
        std::fs::write(&path, text).map_err(io(&path))?;
        written.push(path);
    }
    Ok(written)
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

const CARGO_TOML: &str = r#"# A Sluice {{kind}} plugin, made by `sluice plugin new`.
[package]
name = "{{name}}"
description = "A Sluice {{kind}} plugin"
version = "0.1.0"
edition = "2024"
publish = false

# A stand-alone crate, not part of any workspace around it.
[workspace]

[lib]
# A `cdylib` built for wasm32-wasip2 is a component Sluice loads as it is:
# {{wasm}}
crate-type = ["cdylib"]

[dependencies]
{{sdk}}

# Plugins are compiled when they are loaded: keep them small. A panic
# aborts, which the host sees as a trap with the panic message.
[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
strip = true
panic = "abort"
"#;

const STRATEGY_ABOUT: &str = "a strategy: while progressing it moves traffic to the canary by
`stepWeight` (or the `step` of its settings, default 5) up to `maxWeight`,
then promotes; while promoting it follows `stepWeightPromotion`. With
`analysis.match`, only the matching requests reach the canary.";

const EVALUATOR_ABOUT: &str = "an evaluator: a metric passes when the canary's value is within the
metric's `thresholdRange` and, when the primary's value is known, at most
`tolerance` (a setting, default 0.1: 10 %) above the primary's.";

const README: &str = r#"# {{name}}

A Sluice plugin made by `sluice plugin new`, for the contract
`sluice:plugin@0.2.0` (the SDK's `v2` API). As it is, it is {{about}}
Its `validate_config` checks the settings when a Canary changes, before
they are used. Replace the logic in `src/lib.rs` with yours;
`docs/plugins.md` of the Sluice repository describes the contract, the SDK
and the sandbox.

You need the `wasm32-wasip2` target once: `rustup target add wasm32-wasip2`.

```sh
cargo test                                      # the logic, natively
cargo build --release --target wasm32-wasip2    # the component
sluice plugin check {{wasm}}                    # as the host will load it
sluice plugin check --fuzz 1000 {{wasm}}        # generated inputs, the host's checks as the oracle
sluice simulate {{simulate_flag}} {{wasm}}      # a whole rollout with it
```

`sluice plugin check` exits 1, with the reason, when the host would refuse
the plugin; with `--fuzz` it also prints the first generated input the host
refuses an answer to, shrunk, and exits 1.

The SDK comes from the `sluice-plugin-sdk` line of `Cargo.toml`: a path to a
Sluice checkout's `plugins/sdk`, or a version once the SDK is published.
"#;

const STRATEGY_LIB: &str = r##"//! `{{name}}`: a Sluice strategy plugin (contract `sluice:plugin@0.2.0`).
//!
//! While progressing it moves traffic to the canary by `stepWeight` (or the
//! `step` of its settings, default 5) up to `maxWeight`, then promotes;
//! while promoting it follows `stepWeightPromotion`. With `analysis.match`,
//! only the matching requests reach the canary.

use sluice_plugin_sdk::v2::strategy::*;

pub struct {{Type}};

impl Strategy for {{Type}} {
    fn decide(
        spec: &RolloutSpec,
        state: &RolloutState,
        _observation: &Observation,
    ) -> Result<Action, String> {
        // The Canary's Flagger settings (stepWeight, …), from JSON.
        let analysis = analysis(spec)?;
        match state.phase {
            Phase::Progressing if state.canary_weight < spec.max_weight => {
                let step = step(spec, &analysis)?;
                Ok(Action::Advance(Advance {
                    canary_weight: (state.canary_weight + step).min(spec.max_weight),
                    iterations: state.iterations,
                }))
            }
            Phase::Progressing => Ok(Action::Promote),
            Phase::Promoting => Ok(promotion_step(&analysis, state)),
            other => Err(format!(
                "{{name}}: decide called in phase {}",
                phase_name(other)
            )),
        }
    }

    fn route(spec: &RolloutSpec, state: &RolloutState) -> Result<RoutePlan, String> {
        let weight = if canary_active(state) {
            state.canary_weight.min(100)
        } else {
            0
        };
        if spec.matches.is_empty() {
            return Ok(weighted_route(weight));
        }
        // The canary's share of the matching requests, then everything
        // else on the primary.
        let mut plan = weighted_route(weight);
        plan.rules[0].matches = spec.matches.clone();
        plan.rules.extend(weighted_route(0).rules);
        Ok(plan)
    }

    /// Called when a Canary's settings change, before they are used: an
    /// error refuses the Canary with this message.
    fn validate_config(config: &str) -> Result<(), String> {
        match Config::parse(config)?.get_u32("step")? {
            Some(0) => Err("{{name}}: step must be at least 1".into()),
            _ => Ok(()),
        }
    }
}

/// The step: the `step` setting, else `stepWeight`, else 5.
fn step(spec: &RolloutSpec, analysis: &Analysis) -> Result<u32, String> {
    let config = Config::parse(&spec.config)?;
    let step = config.get_u32("step")?;
    Ok(step.or(analysis.step_weight).unwrap_or(5).max(1))
}

sluice_plugin_sdk::v2::export_strategy!({{Type}});

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> RolloutSpec {
        RolloutSpec {
            interval_seconds: 60,
            threshold: 5,
            max_weight: 30,
            matches: Vec::new(),
            session_affinity: None,
            analysis: Analysis {
                max_weight: Some(30),
                step_weight: Some(10),
                ..Analysis::default()
            }
            .to_json(),
            config: String::new(),
        }
    }

    fn state(phase: Phase, canary_weight: u32) -> RolloutState {
        RolloutState {
            phase,
            canary_weight,
            iterations: 0,
            failed_checks: 0,
        }
    }

    /// The weights a rollout goes through, until the promotion.
    fn weights(spec: &RolloutSpec) -> Vec<u32> {
        let mut weights = Vec::new();
        let mut weight = 0;
        loop {
            match {{Type}}::decide(spec, &state(Phase::Progressing, weight), &Observation {
                now_unix_seconds: 0,
                phase_started_unix_seconds: 0,
            }) {
                Ok(Action::Advance(a)) => {
                    weight = a.canary_weight;
                    weights.push(weight);
                }
                Ok(Action::Promote) => return weights,
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn steps_to_the_maximum_then_promotes() {
        assert_eq!(weights(&spec()), vec![10, 20, 30]);
        let by_config = RolloutSpec {
            config: r#"{"step": 25}"#.into(),
            ..spec()
        };
        assert_eq!(weights(&by_config), vec![25, 30]);
    }

    #[test]
    fn at_rest_everything_goes_to_the_primary() {
        let plan = {{Type}}::route(&spec(), &state(Phase::Waiting, 0)).unwrap();
        assert_eq!(plan.rules.len(), 1);
        assert_eq!(plan.rules[0].backends[1].weight, 0);
        let plan = {{Type}}::route(&spec(), &state(Phase::Progressing, 20)).unwrap();
        assert_eq!(plan.rules[0].backends[1].weight, 20);
    }

    #[test]
    fn settings_are_checked() {
        assert_eq!({{Type}}::validate_config(r#"{"step": 5}"#), Ok(()));
        assert_eq!({{Type}}::validate_config(""), Ok(()));
        assert!({{Type}}::validate_config(r#"{"step": 0}"#).is_err());
        assert!({{Type}}::validate_config(r#"{"step": "5"}"#).is_err());
    }
}
"##;

const EVALUATOR_LIB: &str = r##"//! `{{name}}`: a Sluice evaluator plugin (contract `sluice:plugin@0.2.0`).
//!
//! A metric passes when the canary's value is within the metric's
//! `thresholdRange` and, when the primary's value is known, at most
//! `tolerance` (a setting, default 0.1: 10 %) above the primary's.

use sluice_plugin_sdk::v2::evaluator::*;

pub struct {{Type}};

/// The `tolerance` setting, default 0.1.
fn tolerance(config: &str) -> Result<f64, String> {
    match Config::parse(config)?.get_f64("tolerance")? {
        None => Ok(0.1),
        Some(t) if t >= 0.0 => Ok(t),
        Some(t) => Err(format!("{{name}}: tolerance must be at least 0, got {t}")),
    }
}

impl Evaluator for {{Type}} {
    /// Ask the host for the primary's value too (no series).
    fn requirements(_metric: &Metric) -> Result<Requirements, String> {
        Ok(Requirements {
            baseline: true,
            series: None,
        })
    }

    fn evaluate(metric: &Metric, samples: &Samples) -> Result<Verdict, String> {
        let tolerance = tolerance(&metric.config)?;
        let (name, canary) = (&metric.name, samples.canary);
        let range = &metric.threshold_range;
        if let Some(min) = range.min
            && canary < min
        {
            return Ok(Verdict::Fail(format!("{name} {canary:.2} < {min}")));
        }
        if let Some(max) = range.max
            && canary > max
        {
            return Ok(Verdict::Fail(format!("{name} {canary:.2} > {max}")));
        }
        if let Some(primary) = samples.primary
            && canary > primary + primary.abs() * tolerance
        {
            return Ok(Verdict::Fail(format!(
                "{name} {canary:.2} is more than {:.0}% above the primary's {primary:.2}",
                tolerance * 100.0
            )));
        }
        Ok(Verdict::Pass)
    }

    /// Called when a Canary's settings change, before they are used: an
    /// error refuses the Canary with this message.
    fn validate_config(config: &str) -> Result<(), String> {
        tolerance(config).map(|_| ())
    }
}

sluice_plugin_sdk::v2::export_evaluator!({{Type}});

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(max: Option<f64>) -> Metric {
        Metric {
            name: "error-rate".into(),
            threshold_range: ThresholdRange { min: None, max },
            config: String::new(),
        }
    }

    fn samples(canary: f64, primary: Option<f64>) -> Samples {
        Samples {
            canary,
            primary,
            canary_series: Vec::new(),
            primary_series: Vec::new(),
        }
    }

    #[test]
    fn judges_the_range_and_the_primary() {
        let m = metric(Some(1.0));
        assert_eq!({{Type}}::evaluate(&m, &samples(0.5, None)), Ok(Verdict::Pass));
        assert_eq!(
            {{Type}}::evaluate(&m, &samples(2.0, None)),
            Ok(Verdict::Fail("error-rate 2.00 > 1".into()))
        );
        assert_eq!({{Type}}::evaluate(&m, &samples(0.5, Some(0.5))), Ok(Verdict::Pass));
        assert!(matches!(
            {{Type}}::evaluate(&m, &samples(0.9, Some(0.5))),
            Ok(Verdict::Fail(_))
        ));
    }

    #[test]
    fn settings_are_checked() {
        assert_eq!({{Type}}::validate_config(r#"{"tolerance": 0.2}"#), Ok(()));
        assert!({{Type}}::validate_config(r#"{"tolerance": -1}"#).is_err());
        assert!({{Type}}::validate_config("[1]").is_err());
    }
}
"##;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("my-rollout"));
        assert!(valid_name("p99"));
        for bad in [
            "",
            "My",
            "9a",
            "a_b",
            "a-",
            "test",
            "a b",
            "sluice-plugin-sdk",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert_eq!(type_name("my-rollout-2"), "MyRollout2");
        assert_eq!(lib_name("my-rollout"), "my_rollout");
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
