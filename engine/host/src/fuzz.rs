//! `sluice plugin check --fuzz N`: generated inputs, run through a plugin
//! by the host, with the host's own answer checks as the oracle.
//!
//! A strategy gets analysis specs the host could build from a valid Canary
//! (`maxWeight` 1–100, `stepWeight` no larger, or increasing `stepWeights`;
//! `match`, `mirror`, `sessionAffinity` in every combination), rollout states
//! the host could be in (only the phases a plugin sees, a canary weight
//! within the Canary's maximum, none at rest) and observations. Each case
//! asks for the route of the state, and, while progressing or promoting, for
//! a decision and the route of the state the decision leads to; every
//! answer goes through [`validate`]. An evaluator gets metrics and samples
//! (finite values; the primary's only when it wants a baseline; series only
//! as long as the window it asks for), through the same checks of series
//! requests and verdicts as the engine's calls.
//!
//! A trap, a time-out, memory exhaustion or an answer the host refuses is a
//! failure; the plugin's own error (`err(…)`) is an answer. The first
//! failing case is shrunk with [`proptest`]'s value trees to a smallest
//! input that still fails, and reported with that input as JSON. Runs are
//! deterministic: the same seed generates the same cases.

use std::cell::Cell;
use std::fmt;

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::{Just, Strategy, any, prop_oneof};
use proptest::sample::select;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde::Serialize;

use super::bindings::evaluator::{Metric, Samples, ThresholdRange};
use super::bindings::strategy::{
    Action, AnalysisSpec, Observation, Phase, RolloutState, SessionAffinity,
    SpecHeaderMatch as HeaderMatch, SpecMatch as HttpMatch, SpecStringMatch as StringMatch,
};
use super::contract::World;
use super::evaluator::series_points;
use super::{
    EvaluatorPlugin, FaultKind, Limits, PluginFault, PluginHost, StrategyPlugin, validate,
};

/// The cases `sluice plugin check --fuzz` runs without a count.
pub const DEFAULT_CASES: u32 = 256;
/// Calls of the plugin spent on shrinking one failure, at most.
const MAX_SHRINK_RUNS: u32 = 512;
/// Series in generated samples hold at most this many values.
const MAX_SERIES: usize = 60;

/// What a fuzz run does.
#[derive(Debug, Clone)]
pub struct FuzzOptions {
    /// How many generated cases to run.
    pub cases: u32,
    /// The seed of the generator: the same seed, the same cases.
    pub seed: u64,
    /// The plugin's settings (`strategyConfig` or a metric's config), the
    /// same in every case.
    pub config: String,
}

/// Why a fuzz run could not run (a plugin that fails a case is a
/// [`FuzzReport`] with a failure, not an error).
#[derive(Debug, thiserror::Error)]
pub enum FuzzError {
    /// The component does not load as a plugin.
    #[error(transparent)]
    Load(#[from] PluginFault),
    /// Compiling the component stopped short (its task panicked or was
    /// cancelled).
    #[error("compiling the plugin: {0}")]
    Compile(String),
    /// The component exports neither world.
    #[error("plugin {0} is neither a strategy nor an evaluator: nothing to fuzz")]
    NoWorld(String),
    /// The generator gave up (it never does with these strategies).
    #[error("generating a case: {0}")]
    Generate(String),
    /// A failing input could not be written as JSON.
    #[error("writing the failing input: {0}")]
    Json(#[from] serde_json::Error),
}

/// The first failing case, shrunk.
#[derive(Debug, Clone)]
pub struct FuzzFailure {
    /// Which generated case failed first (1-based).
    pub case: u32,
    /// How many times shrinking found a smaller failing input.
    pub shrink_steps: u32,
    /// The call that failed with the shrunk input: `decide`, `route`,
    /// `requirements` or `evaluate`.
    pub call: &'static str,
    /// The fault, as the host reports it.
    pub fault: String,
    /// The shrunk input of the failing call, as pretty JSON.
    pub input: String,
}

/// The outcome of a fuzz run.
#[derive(Debug, Clone)]
pub struct FuzzReport {
    pub world: World,
    pub seed: u64,
    /// Cases asked for.
    pub cases: u32,
    /// Cases whose every answer the host accepted.
    pub passed: u32,
    /// Calls the plugin answered with its own error (counted, not failed).
    pub own_errors: u32,
    pub failure: Option<FuzzFailure>,
}

impl FuzzReport {
    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }
}

impl fmt::Display for FuzzReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let calls = match self.world {
            World::Strategy => "decide and route",
            World::Evaluator => "requirements and evaluate",
        };
        match &self.failure {
            None => {
                write!(
                    f,
                    "fuzz:     {} cases passed (seed {}): every answer to {calls} accepted",
                    self.passed, self.seed
                )?;
                if self.own_errors > 0 {
                    write!(
                        f,
                        "; {} call(s) answered with the plugin's own error",
                        self.own_errors
                    )?;
                }
                writeln!(f)
            }
            Some(failure) => {
                writeln!(
                    f,
                    "fuzz:     FAILED at case {} of {} (seed {}), after {} passed: {}",
                    failure.case, self.cases, self.seed, self.passed, failure.fault
                )?;
                writeln!(
                    f,
                    "fuzz:     shrunk in {} step(s); the failing call is {} with this input:",
                    failure.shrink_steps, failure.call
                )?;
                writeln!(f, "{}", failure.input)
            }
        }
    }
}

/// A failing call: which, why, and its input.
struct CaseFailure {
    call: &'static str,
    fault: PluginFault,
    input: serde_json::Value,
}

/// Loads `wasm` as the world it exports and fuzzes it.
pub async fn fuzz(
    host: &PluginHost,
    name: &str,
    wasm: &[u8],
    limits: Limits,
    options: &FuzzOptions,
) -> Result<FuzzReport, FuzzError> {
    let contract = {
        let (host, name, wasm) = (host.clone(), name.to_string(), wasm.to_vec());
        tokio::task::spawn_blocking(move || host.inspect(&name, &wasm))
            .await
            .map_err(|e| FuzzError::Compile(e.to_string()))??
    };
    match contract.world {
        Some(World::Strategy) => {
            let plugin = host.load_strategy(name, wasm, limits)?;
            fuzz_strategy(&plugin, options).await
        }
        Some(World::Evaluator) => {
            let plugin = host.load_evaluator(name, wasm, limits)?;
            fuzz_evaluator(&plugin, options).await
        }
        None => Err(FuzzError::NoWorld(name.to_string())),
    }
}

/// Fuzzes a loaded strategy plugin.
pub async fn fuzz_strategy(
    plugin: &StrategyPlugin,
    options: &FuzzOptions,
) -> Result<FuzzReport, FuzzError> {
    let own_errors = Cell::new(0u32);
    let oracle = async |case: StrategyCase| strategy_case(plugin, case, &own_errors).await;
    run(
        World::Strategy,
        &strategy_cases(options.config.clone()),
        options,
        oracle,
        &own_errors,
    )
    .await
}

/// Fuzzes a loaded evaluator plugin.
pub async fn fuzz_evaluator(
    plugin: &EvaluatorPlugin,
    options: &FuzzOptions,
) -> Result<FuzzReport, FuzzError> {
    let own_errors = Cell::new(0u32);
    let oracle = async |case: EvaluatorCase| evaluator_case(plugin, case, &own_errors).await;
    run(
        World::Evaluator,
        &evaluator_cases(options.config.clone()),
        options,
        oracle,
        &own_errors,
    )
    .await
}

/// A generator seeded by `seed`: 32 bytes for ChaCha, the seed's first.
fn runner(seed: u64) -> TestRunner {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    )
}

/// Runs `options.cases` cases of `strategy` through `oracle`; the first
/// failure is shrunk as proptest's runner does: simplify while the input
/// still fails, complicate when it passes, until neither can move.
async fn run<S: Strategy>(
    world: World,
    strategy: &S,
    options: &FuzzOptions,
    oracle: impl AsyncFn(S::Value) -> Result<(), CaseFailure>,
    own_errors: &Cell<u32>,
) -> Result<FuzzReport, FuzzError> {
    let mut runner = runner(options.seed);
    let mut report = FuzzReport {
        world,
        seed: options.seed,
        cases: options.cases,
        passed: 0,
        own_errors: 0,
        failure: None,
    };
    for case in 1..=options.cases {
        let mut tree = strategy
            .new_tree(&mut runner)
            .map_err(|reason| FuzzError::Generate(reason.to_string()))?;
        let Err(mut failure) = oracle(tree.current()).await else {
            report.passed += 1;
            continue;
        };
        let mut steps = 0;
        let mut runs = 0;
        if tree.simplify() {
            while runs < MAX_SHRINK_RUNS {
                runs += 1;
                match oracle(tree.current()).await {
                    Err(smaller) => {
                        failure = smaller;
                        steps += 1;
                        if !tree.simplify() {
                            break;
                        }
                    }
                    Ok(()) => {
                        if !tree.complicate() {
                            break;
                        }
                    }
                }
            }
        }
        report.failure = Some(FuzzFailure {
            case,
            shrink_steps: steps,
            call: failure.call,
            fault: failure.fault.to_string(),
            input: serde_json::to_string_pretty(&failure.input)?,
        });
        break;
    }
    report.own_errors = own_errors.get();
    Ok(report)
}

/// `Ok(Some(answer))`, `Ok(None)` for the plugin's own error (counted), or
/// the failure of `call` with `input`.
fn answer<T>(
    call: &'static str,
    result: Result<T, PluginFault>,
    input: impl FnOnce() -> serde_json::Value,
    own_errors: &Cell<u32>,
) -> Result<Option<T>, CaseFailure> {
    match result {
        Ok(answer) => Ok(Some(answer)),
        Err(PluginFault {
            kind: FaultKind::Error(_),
            ..
        }) => {
            own_errors.set(own_errors.get() + 1);
            Ok(None)
        }
        Err(fault) => Err(CaseFailure {
            call,
            fault,
            input: input(),
        }),
    }
}

fn json(value: impl Serialize) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_else(|e| serde_json::Value::String(e.to_string()))
}

// ---- strategies ------------------------------------------------------------

/// One generated input of a strategy.
#[derive(Debug, Clone, Serialize)]
pub struct StrategyCase {
    pub spec: AnalysisSpec,
    pub state: RolloutState,
    pub observation: Observation,
}

/// The route of `state`, checked; with the failing input on failure.
async fn checked_route(
    plugin: &StrategyPlugin,
    spec: &AnalysisSpec,
    state: RolloutState,
    own_errors: &Cell<u32>,
) -> Result<(), CaseFailure> {
    let input = || serde_json::json!({ "spec": json(spec), "state": json(state) });
    let plan = answer("route", plugin.route(spec, state).await, input, own_errors)?;
    if let Some(plan) = plan {
        validate::route_plan(plugin.name(), spec, &state, &plan).map_err(|fault| CaseFailure {
            call: "route",
            fault,
            input: input(),
        })?;
    }
    Ok(())
}

async fn strategy_case(
    plugin: &StrategyPlugin,
    case: StrategyCase,
    own_errors: &Cell<u32>,
) -> Result<(), CaseFailure> {
    let StrategyCase {
        spec,
        state,
        observation,
    } = case;
    checked_route(plugin, &spec, state, own_errors).await?;
    if !matches!(state.phase, Phase::Progressing | Phase::Promoting) {
        return Ok(());
    }
    let input = || {
        serde_json::json!({
            "spec": json(&spec),
            "state": json(state),
            "observation": json(observation),
        })
    };
    let action = answer(
        "decide",
        plugin.decide(&spec, state, observation).await,
        input,
        own_errors,
    )?;
    let Some(action) = action else {
        return Ok(());
    };
    validate::action(plugin.name(), &spec, &state, &action).map_err(|fault| CaseFailure {
        call: "decide",
        fault,
        input: input(),
    })?;
    // The state the host moves to, whose route it asks for next.
    let next = match action {
        Action::Advance(a) => RolloutState {
            canary_weight: a.canary_weight,
            iterations: a.iterations,
            ..state
        },
        Action::Promote => RolloutState {
            phase: Phase::Promoting,
            ..state
        },
        Action::Hold(_) | Action::Finalise | Action::Rollback(_) => return Ok(()),
    };
    checked_route(plugin, &spec, next, own_errors).await
}

/// The highest canary weight the host holds for `spec` after `iterations`
/// (as `validate` allows it): `maxWeight`, or all of it past blue/green's
/// last iteration on a Canary without `match`.
fn weight_limit(spec: &AnalysisSpec, iterations: u32) -> u32 {
    if spec.matches.is_empty() && spec.iterations.is_some_and(|n| iterations > n) {
        100
    } else {
        spec.max_weight
    }
}

/// Header conditions of a Canary's `analysis.match`.
fn header_matches() -> impl Strategy<Value = HttpMatch> {
    let name = select(vec!["x-canary", "cookie", "user-agent", "x-user-type"]);
    let value = prop_oneof![
        select(vec!["insider", "always", "beta"]).prop_map(|v| StringMatch::Exact(v.into())),
        select(vec![
            "^(.*?;)?(canary=always)(;.*)?$",
            ".*Firefox.*",
            "^beta-[0-9]+$"
        ])
        .prop_map(|v| StringMatch::Regex(v.into())),
        select(vec!["Mozilla", "beta"]).prop_map(|v| StringMatch::Prefix(v.into())),
    ];
    (name, value).prop_map(|(name, value)| HttpMatch {
        path_prefix: None,
        headers: vec![HeaderMatch {
            name: name.into(),
            value,
        }],
        query_params: Vec::new(),
        method: None,
    })
}

fn session_affinity() -> impl Strategy<Value = SessionAffinity> {
    (
        select(vec!["canary", "flagger-cookie"]),
        1u32..=86_400,
        select(vec!["", "a8f3k2", "LpQ0x7w"]),
        option::of(select(vec!["z9y8x7", "Qm3"])),
        option::of(Just("primary")),
    )
        .prop_map(
            |(name, max_age, value, previous, primary)| SessionAffinity {
                cookie_name: name.into(),
                max_age_seconds: max_age,
                cookie_value: value.into(),
                previous_cookie_value: previous.map(Into::into),
                primary_cookie_name: primary.map(Into::into),
            },
        )
}

/// The phases a strategy sees (the host reports waiting as progressing),
/// the most telling first: shrinking moves toward the front.
fn phases() -> impl Strategy<Value = Phase> {
    select(vec![
        Phase::Progressing,
        Phase::Promoting,
        Phase::Initialized,
        Phase::Initializing,
        Phase::Finalising,
        Phase::Succeeded,
        Phase::Failed,
        Phase::Terminating,
        Phase::Terminated,
    ])
}

/// Strategy inputs. Every part is drawn independently and made consistent
/// afterwards (a step no larger than the maximum, a weight within it), so
/// that each part shrinks on its own.
pub fn strategy_cases(config: String) -> impl Strategy<Value = StrategyCase> {
    (schedules(), traffic(), states(), observations()).prop_map(
        move |(schedule, traffic, state, observation)| {
            let spec = analysis_spec(schedule, traffic, config.clone());
            let state = rollout_state(&spec, state);
            StrategyCase {
                spec,
                state,
                observation: observation_of(observation),
            }
        },
    )
}

/// A drawn schedule, in this order: `maxWeight`; which steps (0:
/// `stepWeight`, 1: none, else `stepWeights`); `stepWeight`;
/// `stepWeights`; `stepWeightPromotion`; `iterations`; `threshold`;
/// `interval` in seconds.
type Schedule = (u32, u8, u32, Vec<u32>, Option<u32>, Option<u32>, u32, u64);

/// Drawn traffic settings: `match`, `mirror`, `mirrorWeight`,
/// `sessionAffinity`.
type Traffic = (Vec<HttpMatch>, bool, Option<u32>, Option<SessionAffinity>);

/// A drawn rollout state: phase, canary weight, iterations, failed checks.
type DrawnState = (Phase, u32, u32, u32);

/// A drawn observation: now, and the seconds since the phase started.
type DrawnObservation = (u64, u64);

/// The schedule part of the analysis spec, drawn before it is made
/// consistent.
fn schedules() -> impl Strategy<Value = Schedule> {
    (
        1u32..=100,
        0u8..3,
        1u32..=100,
        vec(1u32..=100, 1..=5),
        option::of(1u32..=100),
        option::of(1u32..=20),
        1u32..=10,
        1u64..=3600,
    )
}

/// The traffic part of the analysis spec: header matches, mirroring and
/// session affinity.
fn traffic() -> impl Strategy<Value = Traffic> {
    (
        vec(header_matches(), 0..=2),
        any::<bool>(),
        option::of(1u32..=100),
        option::of(session_affinity()),
    )
}

/// Rollout states, before the canary weight and failed checks are bounded.
fn states() -> impl Strategy<Value = DrawnState> {
    (phases(), 0u32..=100, 0u32..=25, 0u32..=10)
}

/// Observations: a time between 2023 and 2030, up to a day into the phase.
fn observations() -> impl Strategy<Value = DrawnObservation> {
    (1_700_000_000u64..=1_900_000_000, 0u64..=86_400)
}

/// The analysis spec of a drawn schedule and traffic, its steps made
/// consistent ([`consistent_steps`]) and its `mirrorWeight` only with
/// `mirror`.
fn analysis_spec(schedule: Schedule, traffic: Traffic, config: String) -> AnalysisSpec {
    let (max_weight, steps, step_weight, step_weights, promotion, iterations, threshold, interval) =
        schedule;
    let (matches, mirror, mirror_weight, session_affinity) = traffic;
    let (step_weight, step_weights, max_weight) =
        consistent_steps(steps, step_weight, step_weights, max_weight);
    AnalysisSpec {
        interval_seconds: interval,
        threshold,
        max_weight,
        step_weight,
        step_weights,
        step_weight_promotion: promotion,
        iterations,
        matches,
        mirror,
        mirror_weight: mirror_weight.filter(|_| mirror),
        session_affinity,
        config,
    }
}

/// `stepWeight`, `stepWeights` and `maxWeight` as a valid Canary has them:
/// by `steps`, either stepWeight (at most maxWeight), or neither, or
/// increasing stepWeights whose last is the maximum.
fn consistent_steps(
    steps: u8,
    step_weight: u32,
    step_weights: Vec<u32>,
    max_weight: u32,
) -> (Option<u32>, Vec<u32>, u32) {
    match steps {
        0 => (Some(step_weight.min(max_weight)), Vec::new(), max_weight),
        1 => (None, Vec::new(), max_weight),
        _ => {
            let mut weights = step_weights;
            weights.sort_unstable();
            weights.dedup();
            let max = weights.last().copied().unwrap_or(max_weight);
            (None, weights, max)
        }
    }
}

/// The rollout state of a drawn one under `spec`: a canary weight only
/// while progressing or promoting, within what the host holds, and no more
/// failed checks than the threshold.
fn rollout_state(spec: &AnalysisSpec, state: DrawnState) -> RolloutState {
    let (phase, weight, iterations, failed_checks) = state;
    let active = matches!(phase, Phase::Progressing | Phase::Promoting);
    let canary_weight = if active {
        weight.min(weight_limit(spec, iterations))
    } else {
        0
    };
    RolloutState {
        phase,
        canary_weight,
        iterations,
        failed_checks: failed_checks.min(spec.threshold),
    }
}

/// The observation of a drawn one: the phase started `in_phase` seconds
/// before `now`.
fn observation_of((now, in_phase): DrawnObservation) -> Observation {
    Observation {
        now_unix_seconds: now,
        phase_started_unix_seconds: now - in_phase,
    }
}

// ---- evaluators ------------------------------------------------------------

/// One generated input of an evaluator: the values the host has; which of
/// them reach the plugin depends on its requirements.
#[derive(Debug, Clone, Serialize)]
pub struct EvaluatorCase {
    pub metric: Metric,
    pub canary: f64,
    pub primary: f64,
    pub canary_series: Vec<f64>,
    pub primary_series: Vec<f64>,
}

async fn evaluator_case(
    plugin: &EvaluatorPlugin,
    case: EvaluatorCase,
    own_errors: &Cell<u32>,
) -> Result<(), CaseFailure> {
    let metric = &case.metric;
    let requirements = plugin
        .requirements(metric)
        .await
        .map_err(|fault| CaseFailure {
            call: "requirements",
            fault,
            input: serde_json::json!({ "metric": json(metric) }),
        })?;
    let points = requirements
        .series
        .as_ref()
        .map_or(0, |r| series_points(r).min(MAX_SERIES as u64) as usize);
    let series = |s: &[f64]| s.iter().copied().take(points).collect::<Vec<_>>();
    let samples = Samples {
        canary: case.canary,
        primary: requirements.baseline.then_some(case.primary),
        canary_series: series(&case.canary_series),
        primary_series: if requirements.baseline {
            series(&case.primary_series)
        } else {
            Vec::new()
        },
    };
    let input = || serde_json::json!({ "metric": json(metric), "samples": json(&samples) });
    answer(
        "evaluate",
        plugin.evaluate(metric, samples.clone()).await,
        input,
        own_errors,
    )?;
    Ok(())
}

/// Evaluator inputs: metric names and threshold ranges of the kind Flagger
/// users write, finite values of either sign, series up to 60 samples.
pub fn evaluator_cases(config: String) -> impl Strategy<Value = EvaluatorCase> {
    let value = || -1.0e6f64..1.0e6;
    let metric = (
        select(vec![
            "request-success-rate",
            "request-duration",
            "error-rate",
            "latency",
        ]),
        option::of(-1000.0f64..1000.0),
        option::of(-1000.0f64..1000.0),
    );
    (
        metric,
        value(),
        value(),
        vec(value(), 0..=MAX_SERIES),
        vec(value(), 0..=MAX_SERIES),
    )
        .prop_map(
            move |((name, min, max), canary, primary, canary_series, primary_series)| {
                EvaluatorCase {
                    metric: Metric {
                        name: name.into(),
                        threshold_range: ThresholdRange { min, max },
                        config: config.clone(),
                    },
                    canary,
                    primary,
                    canary_series,
                    primary_series,
                }
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin;

    fn options(cases: u32) -> FuzzOptions {
        FuzzOptions {
            cases,
            seed: 0,
            config: String::new(),
        }
    }

    #[test]
    fn generated_strategy_inputs_are_ones_the_host_could_give() {
        let strategy = strategy_cases(String::new());
        let mut runner = runner(7);
        for _ in 0..2000 {
            let case = strategy.new_tree(&mut runner).unwrap().current();
            let (spec, state) = (&case.spec, &case.state);
            assert!((1..=100).contains(&spec.max_weight), "{spec:?}");
            assert!(spec.step_weight.is_none() || spec.step_weights.is_empty());
            assert!(spec.step_weight.is_none_or(|s| s <= spec.max_weight));
            assert!(spec.step_weights.windows(2).all(|w| w[0] < w[1]));
            if let Some(last) = spec.step_weights.last() {
                assert_eq!(*last, spec.max_weight);
            }
            assert!(spec.mirror || spec.mirror_weight.is_none());
            assert!(state.canary_weight <= weight_limit(spec, state.iterations));
            assert!(!matches!(
                state.phase,
                Phase::Waiting | Phase::WaitingPromotion
            ));
            if !matches!(state.phase, Phase::Progressing | Phase::Promoting) {
                assert_eq!(state.canary_weight, 0);
            }
            assert!(
                case.observation.phase_started_unix_seconds <= case.observation.now_unix_seconds
            );
        }
    }

    #[test]
    fn the_same_seed_generates_the_same_cases() {
        let strategy = strategy_cases(String::new());
        let draw = |seed| {
            let mut runner = runner(seed);
            (0..20)
                .map(|_| format!("{:?}", strategy.new_tree(&mut runner).unwrap().current()))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn built_in_plugins_pass() {
        let host = PluginHost::new(None).unwrap();
        for name in builtin::STRATEGIES {
            let wasm = builtin::strategy(name).unwrap();
            let report = fuzz(&host, name, wasm, Limits::default(), &options(150))
                .await
                .unwrap();
            assert!(report.ok(), "{name}: {report}");
            assert_eq!(report.passed, 150, "{name}: {report}");
            assert!(
                report
                    .to_string()
                    .starts_with("fuzz:     150 cases passed (seed 0)")
            );
        }
        for name in builtin::EVALUATORS {
            let wasm = builtin::evaluator(name).unwrap();
            let report = fuzz(&host, name, wasm, Limits::default(), &options(150))
                .await
                .unwrap();
            assert!(report.ok(), "{name}: {report}");
            assert_eq!(report.passed, 150, "{name}: {report}");
            assert_eq!(report.own_errors, 0, "{name}: {report}");
        }
    }
}
