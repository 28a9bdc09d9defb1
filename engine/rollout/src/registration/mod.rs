//! Registration of `RolloutPlugin`s. A plugin is fetched from its source,
//! its digest verified, compiled and checked (world, contract version, a
//! sample call of each function within its limits, answers the host
//! accepts) before it goes into the registry under its name, where the next
//! tick of every Canary that selects it finds it. A plugin that fails any
//! step is refused with the reason in its status; a previous good version
//! stays in use, so a bad update never leaves Canaries half-served.

pub mod source;

use std::future::Future;
use std::time::Duration;

use kube::ResourceExt;
use sha2::{Digest, Sha256};

use crate::cluster::Cluster;
use sluice_api::duration;
use sluice_api::rollout_plugin::{PluginKind, RolloutPlugin, RolloutPluginStatus};
use sluice_host::{Limits, PluginRegistry, check, contract};
pub use source::Fetcher;

/// Writes a RolloutPlugin's status subresource.
pub trait PluginStatusWriter: Send + Sync {
    fn update_rollout_plugin_status(
        &self,
        plugin: &RolloutPlugin,
        status: &RolloutPluginStatus,
    ) -> impl Future<Output = crate::cluster::Result<()>> + Send;
}

/// Loads RolloutPlugins into a registry.
#[derive(Clone)]
pub struct Registrar<C> {
    pub cluster: C,
    pub registry: PluginRegistry,
    pub fetcher: Fetcher,
}

/// The limits a RolloutPlugin asks for, checked.
fn limits_of(plugin: &RolloutPlugin) -> Result<Limits, String> {
    let defaults = Limits::default();
    let Some(l) = &plugin.spec.limits else {
        return Ok(defaults);
    };
    let time_budget = match &l.timeout {
        Some(t) => duration::parse(t)
            .map_err(|e| format!("spec.limits.timeout: {e}"))
            .and_then(|d| {
                if d.is_zero() || d > Duration::from_secs(10) {
                    Err(format!(
                        "spec.limits.timeout: {t} is outside 1ms-10s; a plugin call must be quick"
                    ))
                } else {
                    Ok(d)
                }
            })?,
        None => defaults.time_budget,
    };
    let memory_bytes = match l.memory_mib {
        Some(0) | Some(1025..) => {
            return Err("spec.limits.memoryMiB: must be between 1 and 1024".into());
        }
        Some(m) => m as usize * 1024 * 1024,
        None => defaults.memory_bytes,
    };
    Ok(Limits {
        time_budget,
        memory_bytes,
    })
}

fn config_of(plugin: &RolloutPlugin) -> String {
    match &plugin.spec.config {
        None => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

impl<C: Cluster + PluginStatusWriter> Registrar<C> {
    pub fn new(cluster: C, registry: PluginRegistry, fetcher: Fetcher) -> Self {
        Self {
            cluster,
            registry,
            fetcher,
        }
    }

    /// Loads `plugin` (or refuses it) and writes its status.
    pub async fn reconcile(
        &self,
        plugin: &RolloutPlugin,
    ) -> crate::cluster::Result<RolloutPluginStatus> {
        let name = plugin.name_any();
        let previous = plugin.status.clone().unwrap_or_default();
        let status = match self.load(plugin).await {
            Ok((digest, version)) => RolloutPluginStatus {
                loaded: true,
                digest: Some(digest),
                wit_version: version,
                error: None,
                observed_generation: plugin.metadata.generation,
            },
            Err(why) => {
                tracing::warn!(plugin = %name, reason = %why, "plugin refused");
                let still_serving = previous.loaded && self.is_registered(&name, plugin.spec.kind);
                if !still_serving {
                    self.registry.register_failure(&name, why.clone());
                }
                RolloutPluginStatus {
                    loaded: still_serving,
                    digest: previous.digest.filter(|_| still_serving),
                    wit_version: previous.wit_version.filter(|_| still_serving),
                    error: Some(why),
                    observed_generation: plugin.metadata.generation,
                }
            }
        };
        if plugin.status.as_ref() != Some(&status) {
            self.cluster
                .update_rollout_plugin_status(plugin, &status)
                .await?;
        }
        Ok(status)
    }

    /// Forgets a deleted RolloutPlugin.
    pub fn remove(&self, plugin: &RolloutPlugin) {
        self.registry.unregister(&plugin.name_any());
    }

    fn is_registered(&self, name: &str, kind: PluginKind) -> bool {
        match kind {
            PluginKind::Strategy => self.registry.strategy(name).is_ok(),
            PluginKind::Evaluator => self.registry.evaluator(name).is_ok(),
        }
    }

    /// Fetches, verifies, checks and registers; the digest and contract
    /// version on success.
    async fn load(&self, plugin: &RolloutPlugin) -> Result<(String, Option<String>), String> {
        let name = plugin.name_any();
        if self.registry.is_builtin(&name) {
            return Err(format!(
                "metadata.name: {name:?} is a built-in plugin; register yours under another name"
            ));
        }
        let spec = &plugin.spec;
        let remote = spec.source.url.is_some() || spec.source.oci.is_some();
        if remote && spec.sha256.is_none() {
            return Err(
                "spec.sha256: required for url and oci sources (sha256sum plugin.wasm)".into(),
            );
        }
        let limits = limits_of(plugin)?;
        let bytes = self.fetcher.fetch(&self.cluster, &spec.source).await?;
        let digest = hex::encode(Sha256::digest(&bytes));
        if let Some(expected) = &spec.sha256 {
            let expected = expected
                .trim()
                .trim_start_matches("sha256:")
                .to_ascii_lowercase();
            if expected != digest {
                return Err(format!(
                    "spec.sha256: mismatch: expected {expected}, the component's is {digest}; refusing it"
                ));
            }
        }
        let config = config_of(plugin);
        let report = check::check(self.registry.host(), &name, &bytes, limits, &config).await;
        let version = report.contract.as_ref().and_then(|c| c.version.clone());
        let world = report.contract.as_ref().and_then(|c| c.world);
        let wanted = match spec.kind {
            PluginKind::Strategy => contract::World::Strategy,
            PluginKind::Evaluator => contract::World::Evaluator,
        };
        if let Some(world) = world
            && world != wanted
        {
            return Err(format!(
                "spec.kind: the component is {} plugin, not {}",
                world.with_article(),
                wanted.with_article()
            ));
        }
        if let Some(problem) = report.problem {
            return Err(problem);
        }
        // Loading takes the host's compilation lock, which a compilation of
        // another plugin may hold for seconds: never on an executor thread.
        let (host, kind, plugin_name) = (self.registry.host().clone(), spec.kind, name.clone());
        let loaded = tokio::task::spawn_blocking(move || match kind {
            PluginKind::Strategy => host
                .load_strategy(&plugin_name, &bytes, limits)
                .map(Loaded::Strategy),
            PluginKind::Evaluator => host
                .load_evaluator(&plugin_name, &bytes, limits)
                .map(Loaded::Evaluator),
        })
        .await
        .map_err(|e| format!("loading the plugin: {e}"))?
        .map_err(|f| f.to_string())?;
        match loaded {
            Loaded::Strategy(p) => self
                .registry
                .register_strategy(p.with_default_config(config)),
            Loaded::Evaluator(p) => self
                .registry
                .register_evaluator(p.with_default_config(config)),
        }
        tracing::info!(plugin = %name, %digest, "plugin registered");
        Ok((digest, version))
    }
}

/// A plugin loaded for registration.
enum Loaded {
    Strategy(sluice_host::StrategyPlugin),
    Evaluator(sluice_host::EvaluatorPlugin),
}
