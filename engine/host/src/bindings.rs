//! Host bindings generated from `wit/plugin.wit`, one module per world.

/// The `strategy` world: decides how traffic moves.
pub mod strategy {
    wasmtime::component::bindgen!({
        world: "strategy",
        path: "../../wit",
        additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
        exports: { default: async },
    });

    pub use sluice::plugin::strategy_types::{
        Action, Advance, AnalysisSpec, Observation, Phase, RolloutState, SessionAffinity,
    };
    pub use sluice::plugin::types::*;
}

/// The `evaluator` world: judges one metric.
pub mod evaluator {
    wasmtime::component::bindgen!({
        world: "evaluator",
        path: "../../wit",
        additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
        exports: { default: async },
    });

    pub use sluice::plugin::evaluator_types::*;
}
