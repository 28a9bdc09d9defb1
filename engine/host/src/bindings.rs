//! Host bindings generated from the contract's WIT, one module per world
//! and version (`wit/plugin.wit` is 0.1, `wit/v0.2/plugin.wit` is 0.2),
//! and the host's own vocabulary on top of them.
//!
//! The host speaks one vocabulary whatever a plugin's version
//! (`convert.rs` translates at the call): 0.1's inputs (`AnalysisSpec`,
//! `RolloutState`, `Metric`, `Samples`, …) and actions, 0.2's route plans
//! (rules with filters) and verdicts (with `needs-more-data`), which are
//! supersets of 0.1's.

/// Contract 0.1: the `strategy` world.
pub mod strategy_v1 {
    wasmtime::component::bindgen!({
        world: "strategy",
        path: "../../wit",
        additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
        exports: { default: async },
    });
}

/// Contract 0.1: the `evaluator` world.
pub mod evaluator_v1 {
    wasmtime::component::bindgen!({
        world: "evaluator",
        path: "../../wit",
        additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
        exports: { default: async },
    });
}

/// Contract 0.2: the `strategy` world (the optional `settings` export is
/// looked up by name, see `settings.rs`).
pub mod strategy_v2 {
    wasmtime::component::bindgen!({
        world: "strategy",
        path: "../../wit/v0.2",
        additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
        exports: { default: async },
    });
}

/// Contract 0.2: the `evaluator` world.
pub mod evaluator_v2 {
    wasmtime::component::bindgen!({
        world: "evaluator",
        path: "../../wit/v0.2",
        additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
        exports: { default: async },
    });
}

/// The host's strategy vocabulary: 0.1's inputs and actions, 0.2's route
/// plans.
pub mod strategy {
    pub use super::strategy_v1::sluice::plugin::strategy_types::{
        Action, Advance, AnalysisSpec, Observation, Phase, RolloutState, SessionAffinity,
    };
    /// A match condition of the Canary (`AnalysisSpec::matches`), in 0.1's
    /// types; [`crate::convert::plan_match`] turns it into a plan's.
    pub use super::strategy_v1::sluice::plugin::types::{
        HeaderMatch as SpecHeaderMatch, HttpMatch as SpecMatch,
        QueryParamMatch as SpecQueryParamMatch, StringMatch as SpecStringMatch,
    };
    pub use super::strategy_v2::sluice::plugin::types::*;
}

/// The host's evaluator vocabulary: 0.1's inputs, 0.2's verdicts.
pub mod evaluator {
    pub use super::evaluator_v1::sluice::plugin::evaluator_types::{
        Metric, Samples, SeriesRequest, ThresholdRange,
    };
    pub use super::evaluator_v2::sluice::plugin::evaluator_types::Verdict;
}
