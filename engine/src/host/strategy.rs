//! A loaded strategy plugin. Cheap to clone; every call gets a fresh store.

use super::bindings::strategy::{
    Action, AnalysisSpec, Observation, RolloutState, RoutePlan, Strategy, StrategyPre,
};
use super::{CallState, Limits, PluginFault, PluginMetrics, run_call};

#[derive(Clone)]
pub struct StrategyPlugin {
    name: String,
    digest: String,
    pre: StrategyPre<CallState>,
    limits: Limits,
    metrics: PluginMetrics,
    /// Settings used when a Canary gives none (a RolloutPlugin's `config`).
    default_config: String,
}

impl StrategyPlugin {
    pub(crate) fn new(
        name: &str,
        digest: String,
        pre: StrategyPre<CallState>,
        limits: Limits,
        metrics: PluginMetrics,
    ) -> Self {
        Self {
            name: name.to_string(),
            digest,
            pre,
            limits,
            metrics,
            default_config: String::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plugin with settings to use when a Canary gives none.
    pub fn with_default_config(mut self, config: String) -> Self {
        self.default_config = config;
        self
    }

    /// `config` if set, else the plugin's default settings.
    pub fn config_or_default(&self, config: &str) -> String {
        if config.is_empty() {
            self.default_config.clone()
        } else {
            config.to_string()
        }
    }

    /// sha256 of the component, hex.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn call<R>(
        &self,
        f: impl FnOnce(
            &mut wasmtime::Store<CallState>,
            &Strategy,
        ) -> wasmtime::Result<Result<R, String>>,
    ) -> Result<R, PluginFault> {
        run_call(
            self.pre.engine(),
            &self.metrics,
            &self.name,
            self.limits,
            |store| self.pre.instantiate(store),
            f,
        )
    }

    /// The plugin's raw decision; check it with [`super::validate::action`].
    pub fn decide(
        &self,
        spec: &AnalysisSpec,
        state: RolloutState,
        obs: Observation,
    ) -> Result<Action, PluginFault> {
        self.call(|store, s| {
            s.sluice_plugin_rollout()
                .call_decide(store, spec, state, obs)
        })
    }

    /// The plugin's raw route plan; check it with [`super::validate::route_plan`].
    pub fn route(
        &self,
        spec: &AnalysisSpec,
        state: RolloutState,
    ) -> Result<RoutePlan, PluginFault> {
        self.call(|store, s| s.sluice_plugin_rollout().call_route(store, spec, state))
    }
}
