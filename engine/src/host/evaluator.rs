//! A loaded evaluator plugin. Cheap to clone; every call gets a fresh store.

use super::bindings::evaluator::{Evaluator, EvaluatorPre, Metric, Samples, Verdict};
use super::{CallState, FaultKind, Limits, PluginFault, PluginMetrics, run_call};

#[derive(Clone)]
pub struct EvaluatorPlugin {
    name: String,
    digest: String,
    pre: EvaluatorPre<CallState>,
    limits: Limits,
    metrics: PluginMetrics,
    /// Settings used when a Canary gives none (a RolloutPlugin's `config`).
    default_config: String,
}

impl EvaluatorPlugin {
    pub(crate) fn new(
        name: &str,
        digest: String,
        pre: EvaluatorPre<CallState>,
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

    pub fn digest(&self) -> &str {
        &self.digest
    }

    fn call<R>(
        &self,
        f: impl FnOnce(
            &mut wasmtime::Store<CallState>,
            &Evaluator,
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

    pub fn wants_baseline(&self, metric: &Metric) -> Result<bool, PluginFault> {
        self.call(|store, e| {
            e.sluice_plugin_judge()
                .call_wants_baseline(store, metric)
                .map(Ok)
        })
    }

    /// Judges one metric. A verdict whose reason is empty or absurdly long
    /// is an invalid answer.
    pub fn evaluate(&self, metric: &Metric, samples: Samples) -> Result<Verdict, PluginFault> {
        let verdict = self.call(|store, e| {
            e.sluice_plugin_judge()
                .call_evaluate(store, metric, samples)
        })?;
        let reason = match &verdict {
            Verdict::Pass => return Ok(verdict),
            Verdict::Fail(r) | Verdict::Inconclusive(r) => r,
        };
        if reason.trim().is_empty() || reason.len() > 1024 {
            return Err(PluginFault {
                plugin: self.name.clone(),
                kind: FaultKind::InvalidAnswer(format!(
                    "a failing verdict needs a reason of 1 to 1024 bytes (got {} bytes)",
                    reason.len()
                )),
            });
        }
        Ok(verdict)
    }
}
