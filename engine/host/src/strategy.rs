//! A loaded strategy plugin. Cheap to clone; every call that runs guest
//! code gets a fresh instance.

use super::bindings::strategy::{
    Action, AnalysisSpec, Observation, RolloutState, RoutePlan, StrategyPre,
};
use super::call::{CallContext, run_call};
use super::memo::Memo;
use super::schema::{ConfigError, ConfigSchema};
use super::{CallState, Limits, LogSink, PluginFault, PluginHost};

#[derive(Clone)]
pub struct StrategyPlugin {
    name: String,
    digest: String,
    pre: StrategyPre<CallState>,
    limits: Limits,
    host: PluginHost,
    /// Settings used when a Canary gives none (a RolloutPlugin's `config`).
    default_config: String,
    /// The settings schema the component embeds, compiled once at load.
    schema: Option<ConfigSchema>,
    /// Route plans by spec and state: `route` is a pure function.
    routes: Memo<RoutePlan>,
    sink: Option<LogSink>,
}

impl StrategyPlugin {
    pub(crate) fn new(
        name: &str,
        digest: String,
        pre: StrategyPre<CallState>,
        limits: Limits,
        host: PluginHost,
        schema: Option<ConfigSchema>,
    ) -> Self {
        Self {
            name: name.to_string(),
            digest,
            pre,
            limits,
            host,
            default_config: String::new(),
            schema,
            routes: Memo::default(),
            sink: None,
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

    /// The plugin with its log lines also collected in `sink`.
    pub fn with_log_sink(mut self, sink: LogSink) -> Self {
        self.sink = Some(sink);
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

    /// The settings schema the component embeds (`sluice:config-schema`).
    pub fn config_schema(&self) -> Option<&ConfigSchema> {
        self.schema.as_ref()
    }

    /// Checks `config` (or, when it is empty, the plugin's default settings)
    /// against the plugin's settings schema. No schema, or no settings at
    /// all, passes.
    pub fn check_config(&self, config: &str) -> Result<(), ConfigError> {
        let effective = if config.is_empty() {
            self.default_config.as_str()
        } else {
            config
        };
        match &self.schema {
            Some(schema) if !effective.is_empty() => schema.check(effective),
            _ => Ok(()),
        }
    }

    /// sha256 of the component, hex.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn context(&self) -> CallContext<'_> {
        self.host.call_context(
            self.pre.engine(),
            &self.name,
            self.limits,
            self.sink.clone(),
        )
    }

    /// The plugin's raw decision; check it with [`super::validate::action`].
    pub async fn decide(
        &self,
        spec: &AnalysisSpec,
        state: RolloutState,
        obs: Observation,
    ) -> Result<Action, PluginFault> {
        run_call(self.context(), async |store| {
            let plugin = self.pre.instantiate_async(&mut *store).await?;
            plugin
                .sluice_plugin_rollout()
                .call_decide(&mut *store, spec, state, obs)
                .await
        })
        .await
    }

    /// The plugin's raw route plan; check it with
    /// [`super::validate::route_plan`]. Remembered per spec and state.
    pub async fn route(
        &self,
        spec: &AnalysisSpec,
        state: RolloutState,
    ) -> Result<RoutePlan, PluginFault> {
        let key = Memo::<RoutePlan>::key("route", &(spec, state));
        if let Some(plan) = key.as_deref().and_then(|k| self.routes.get(k)) {
            return Ok(plan);
        }
        let plan = run_call(self.context(), async |store| {
            let plugin = self.pre.instantiate_async(&mut *store).await?;
            plugin
                .sluice_plugin_rollout()
                .call_route(&mut *store, spec, state)
                .await
        })
        .await?;
        if let Some(k) = key {
            self.routes.put(k, plan.clone());
        }
        Ok(plan)
    }
}
