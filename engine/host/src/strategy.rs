//! A loaded strategy plugin, of either contract version. Cheap to clone;
//! every call that runs guest code gets a fresh instance.

use super::bindings::strategy::{Action, AnalysisSpec, Observation, RolloutState, RoutePlan};
use super::bindings::{strategy_v1, strategy_v2};
use super::call::{CallContext, run_call};
use super::convert;
use super::memo::Memo;
use super::schema::{ConfigError, ConfigSchema};
use super::settings::SettingsCheck;
use super::{CallState, FaultKind, Limits, LogSink, PluginFault, PluginHost};

/// The bindings of a strategy, by contract version.
#[derive(Clone)]
pub(crate) enum StrategyPre {
    V1(strategy_v1::StrategyPre<CallState>),
    V2(strategy_v2::StrategyPre<CallState>),
}

impl StrategyPre {
    fn engine(&self) -> &wasmtime::Engine {
        match self {
            StrategyPre::V1(pre) => pre.engine(),
            StrategyPre::V2(pre) => pre.engine(),
        }
    }
}

#[derive(Clone)]
pub struct StrategyPlugin {
    name: String,
    digest: String,
    pre: StrategyPre,
    limits: Limits,
    host: PluginHost,
    /// Settings used when a Canary gives none (a RolloutPlugin's `config`).
    default_config: String,
    /// The plugin's settings check: schema and `validate-config`.
    settings: SettingsCheck,
    /// Route plans by spec and state: `route` is a pure function.
    routes: Memo<RoutePlan>,
    sink: Option<LogSink>,
}

impl StrategyPlugin {
    pub(crate) fn new(
        name: &str,
        digest: String,
        pre: StrategyPre,
        limits: Limits,
        host: PluginHost,
        settings: SettingsCheck,
    ) -> Self {
        Self {
            name: name.to_string(),
            digest,
            pre,
            limits,
            host,
            default_config: String::new(),
            settings,
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
        self.settings.schema()
    }

    /// The contract version the plugin targets: "0.1" or "0.2".
    pub fn contract(&self) -> &'static str {
        match self.pre {
            StrategyPre::V1(_) => "0.1",
            StrategyPre::V2(_) => "0.2",
        }
    }

    /// Whether the plugin checks its own settings (`validate-config`).
    pub fn validates_config(&self) -> bool {
        self.settings.validates()
    }

    /// Checks `config` (or, when it is empty, the plugin's default settings)
    /// against the plugin's settings schema, then with its own
    /// `validate-config` when it exports one. No schema and no export, or
    /// no settings at all, passes.
    pub async fn check_config(&self, config: &str) -> Result<(), ConfigError> {
        let settings = if config.is_empty() {
            self.default_config.as_str()
        } else {
            config
        };
        self.settings.check(self.context(), settings).await
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
        match &self.pre {
            StrategyPre::V1(pre) => {
                run_call(self.context(), async |store| {
                    let plugin = pre.instantiate_async(&mut *store).await?;
                    plugin
                        .sluice_plugin_rollout()
                        .call_decide(&mut *store, spec, state, obs)
                        .await
                })
                .await
            }
            StrategyPre::V2(pre) => {
                let state = self.visible_state(&state)?;
                let spec = convert::spec_to_v2(spec);
                let obs = convert::observation_to_v2(obs);
                let action = run_call(self.context(), async |store| {
                    let plugin = pre.instantiate_async(&mut *store).await?;
                    plugin
                        .sluice_plugin_rollout()
                        .call_decide(&mut *store, &spec, state, obs)
                        .await
                })
                .await?;
                Ok(convert::action_from_v2(action))
            }
        }
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
        let plan = match &self.pre {
            StrategyPre::V1(pre) => {
                let plan = run_call(self.context(), async |store| {
                    let plugin = pre.instantiate_async(&mut *store).await?;
                    plugin
                        .sluice_plugin_rollout()
                        .call_route(&mut *store, spec, state)
                        .await
                })
                .await?;
                convert::plan_from_v1(plan)
            }
            StrategyPre::V2(pre) => {
                // Outside a rollout every request goes to the primary: the
                // host says so itself rather than call a 0.2 plugin in a
                // phase it never sees.
                let Some(state) = convert::state_to_v2(&state) else {
                    return Ok(convert::primary_only());
                };
                let spec = convert::spec_to_v2(spec);
                run_call(self.context(), async |store| {
                    let plugin = pre.instantiate_async(&mut *store).await?;
                    plugin
                        .sluice_plugin_rollout()
                        .call_route(&mut *store, &spec, state)
                        .await
                })
                .await?
            }
        };
        if let Some(k) = key {
            self.routes.put(k, plan.clone());
        }
        Ok(plan)
    }

    /// `state` as a 0.2 plugin sees it; a phase it never sees is the
    /// host's mistake, reported as a refused call rather than a guess.
    fn visible_state(
        &self,
        state: &RolloutState,
    ) -> Result<strategy_v2::sluice::plugin::strategy_types::RolloutState, PluginFault> {
        convert::state_to_v2(state).ok_or_else(|| PluginFault {
            plugin: self.name.clone(),
            kind: FaultKind::InvalidAnswer(format!(
                "a sluice:plugin@0.2 strategy is not called in phase {:?}",
                state.phase
            )),
        })
    }
}
