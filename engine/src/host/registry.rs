//! Plugins by name: the built-in ones, plus any the user loads. A Canary
//! names its strategy and evaluators; the registry resolves the names.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Result;

use super::{EvaluatorPlugin, Limits, PluginFault, PluginHost, StrategyPlugin, builtin};

#[derive(Clone)]
pub struct PluginRegistry {
    host: PluginHost,
    strategies: Arc<BTreeMap<String, StrategyPlugin>>,
    evaluators: Arc<BTreeMap<String, EvaluatorPlugin>>,
    /// Used for every Canary, whatever it names (`simulate --strategy-plugin`).
    strategy_override: Option<StrategyPlugin>,
    evaluator_override: Option<EvaluatorPlugin>,
}

impl PluginRegistry {
    /// A registry with the built-in plugins, compiled (or read from the cache).
    pub fn with_builtins(host: PluginHost) -> Result<Self, PluginFault> {
        Self::with_builtins_limited(host, Limits::default())
    }

    /// The built-in plugins, each call held to `limits`.
    pub fn with_builtins_limited(host: PluginHost, limits: Limits) -> Result<Self, PluginFault> {
        let mut strategies = BTreeMap::new();
        for name in builtin::STRATEGIES {
            if let Some(wasm) = builtin::strategy(name) {
                strategies.insert(name.to_string(), host.load_strategy(name, wasm, limits)?);
            }
        }
        let mut evaluators = BTreeMap::new();
        for name in builtin::EVALUATORS {
            if let Some(wasm) = builtin::evaluator(name) {
                evaluators.insert(name.to_string(), host.load_evaluator(name, wasm, limits)?);
            }
        }
        Ok(Self {
            host,
            strategies: Arc::new(strategies),
            evaluators: Arc::new(evaluators),
            strategy_override: None,
            evaluator_override: None,
        })
    }

    pub fn host(&self) -> &PluginHost {
        &self.host
    }

    /// Adds or replaces a strategy plugin under `name`.
    pub fn add_strategy(&mut self, plugin: StrategyPlugin) {
        Arc::make_mut(&mut self.strategies).insert(plugin.name().to_string(), plugin);
    }

    pub fn add_evaluator(&mut self, plugin: EvaluatorPlugin) {
        Arc::make_mut(&mut self.evaluators).insert(plugin.name().to_string(), plugin);
    }

    pub fn override_strategy(&mut self, plugin: StrategyPlugin) {
        self.strategy_override = Some(plugin);
    }

    pub fn override_evaluator(&mut self, plugin: EvaluatorPlugin) {
        self.evaluator_override = Some(plugin);
    }

    pub fn strategy(&self, name: &str) -> Result<StrategyPlugin, String> {
        if let Some(p) = &self.strategy_override {
            return Ok(p.clone());
        }
        self.strategies.get(name).cloned().ok_or_else(|| {
            let known: Vec<&str> = self.strategies.keys().map(String::as_str).collect();
            format!(
                "strategy plugin {name:?} is not available; available strategies: {}",
                known.join(", ")
            )
        })
    }

    pub fn evaluator(&self, name: &str) -> Result<EvaluatorPlugin, String> {
        if let Some(p) = &self.evaluator_override {
            return Ok(p.clone());
        }
        self.evaluators.get(name).cloned().ok_or_else(|| {
            let known: Vec<&str> = self.evaluators.keys().map(String::as_str).collect();
            format!(
                "evaluator plugin {name:?} is not available; available evaluators: {}",
                known.join(", ")
            )
        })
    }
}
