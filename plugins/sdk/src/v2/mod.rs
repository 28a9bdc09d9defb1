//! The 0.2 contract, `sluice:plugin@0.2.0` (`wit/v0.2/plugin.wit`).
//!
//! What changed from 0.1, for a plugin author:
//!
//! - a strategy gets a stable [`strategy::RolloutSpec`]: the few fields the
//!   host checks are typed, the Canary's Flagger settings arrive as JSON in
//!   `analysis` (read them with [`Analysis::parse`]) and the strategy's own
//!   settings in `config` (read them with [`Config::parse`]);
//! - a strategy is called only in the four phases of a running rollout
//!   ([`strategy::Phase`]);
//! - route rules carry Gateway API filters ([`strategy::RouteFilter`]:
//!   header modifiers, redirects, extension references);
//! - an evaluator says what it needs in one call,
//!   [`evaluator::Evaluator::requirements`], and may answer
//!   [`evaluator::Verdict::NeedsMoreData`], which holds the rollout without
//!   a failed check;
//! - either kind may check its settings when the Canary changes, before
//!   they are used (`validate_config`, the `settings` export).
//!
//! A strategy:
//!
//! ```no_run
//! use sluice_plugin_sdk::v2::strategy::*;
//!
//! struct MyStrategy;
//!
//! impl Strategy for MyStrategy {
//!     fn decide(spec: &RolloutSpec, state: &RolloutState, _: &Observation) -> Result<Action, String> {
//!         sluice_plugin_sdk::v2::progression::weighted("my-strategy", spec, state)
//!     }
//!     fn route(_: &RolloutSpec, state: &RolloutState) -> Result<RoutePlan, String> {
//!         Ok(weighted_route(if canary_active(state) { state.canary_weight } else { 0 }))
//!     }
//! }
//!
//! sluice_plugin_sdk::v2::export_strategy!(MyStrategy);
//! ```
//!
//! An evaluator:
//!
//! ```no_run
//! use sluice_plugin_sdk::v2::evaluator::*;
//!
//! struct NonNegative;
//!
//! impl Evaluator for NonNegative {
//!     fn evaluate(metric: &Metric, samples: &Samples) -> Result<Verdict, String> {
//!         Ok(if samples.canary >= 0.0 {
//!             Verdict::Pass
//!         } else {
//!             Verdict::Fail(format!("{} is negative", metric.name))
//!         })
//!     }
//! }
//!
//! sluice_plugin_sdk::v2::export_evaluator!(NonNegative);
//! ```
//!
//! The export macros export the `validated-strategy` and
//! `validated-evaluator` worlds: the component always exports
//! `sluice:plugin/settings@0.2.0`, whose `validate-config` calls the
//! trait's `validate_config` (by default, every setting is accepted).
//!
//! Log through [`log()`] of this module (also re-exported by
//! [`strategy`] and [`evaluator`]): it calls `sluice:plugin/log@0.2.0`. A
//! 0.2 plugin must import only 0.2 interfaces, so it must not call the 0.1
//! [`crate::log()`].

pub mod analysis;
pub mod evaluator;
pub mod progression;
pub mod strategy;

pub use crate::config::{Config, Value};
pub use analysis::Analysis;

/// Log levels of the host's 0.2 `log` import.
pub use crate::bindings::v2::strategy::sluice::plugin::log::Level;

/// Exports a type implementing [`strategy::Strategy`] as the component's
/// `rollout` and `settings` interfaces (the `validated-strategy` world of
/// `sluice:plugin@0.2.0`). Call it once, at the top level of a `cdylib`
/// crate. The same macro as [`export_strategy_v2!`](crate::export_strategy_v2).
pub use crate::export_strategy_v2 as export_strategy;

/// Exports a type implementing [`evaluator::Evaluator`] as the component's
/// `judge` and `settings` interfaces (the `validated-evaluator` world of
/// `sluice:plugin@0.2.0`). Call it once, at the top level of a `cdylib`
/// crate. The same macro as
/// [`export_evaluator_v2!`](crate::export_evaluator_v2).
pub use crate::export_evaluator_v2 as export_evaluator;

/// Logs a message through the host's `sluice:plugin/log@0.2.0` import.
///
/// On a non-Wasm target (unit tests) the message goes to stderr.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    crate::bindings::v2::strategy::sluice::plugin::log::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message}");
}
