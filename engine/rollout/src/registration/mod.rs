//! Registration of `RolloutPlugin`s. A plugin is fetched from its source,
//! its digest verified, compiled and checked (world, contract version, a
//! sample call of each function within its limits, answers the host
//! accepts) before it goes into the registry under its name, where the next
//! tick of every Canary that selects it finds it. A plugin that fails any
//! step is refused with the reason in its status; a previous good version
//! stays in use, so a bad update never leaves Canaries half-served.
//!
//! The last good version survives a restart: its digest is in the status
//! (`status.digest`) and its bytes in the host's on-disk plugin cache, so
//! when a restarted operator finds the source refused or unreachable it
//! loads that version from the cache and the plugin stays loaded, the
//! status saying why the source was refused and which version serves.

pub mod source;

use std::future::Future;
use std::time::Duration;

use kube::ResourceExt;
use sha2::{Digest, Sha256};

use crate::cluster::Cluster;
use sluice_api::duration;
use sluice_api::rollout_plugin::{
    DEFAULT_SHADOW_TICKS, PROMOTE_SHADOW_ANNOTATION, PluginKind, RolloutPlugin,
    RolloutPluginStatus, RolloutPolicy, ShadowStatus,
};
use sluice_host::{Limits, PluginRegistry, check, contract};
pub use source::{FetchError, Fetcher, Timeouts};

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
    fetcher: Fetcher,
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

/// The sha256 digest of `bytes`, in hex; refused when it is not the
/// `expected` one (given in hex, optionally prefixed `sha256:`).
fn verified_digest(expected: Option<&str>, bytes: &[u8]) -> Result<String, String> {
    let digest = hex::encode(Sha256::digest(bytes));
    if let Some(expected) = expected {
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
    Ok(digest)
}

/// The contract version of a checked component, or why it is refused: a
/// component of another kind than `kind`, or the check's problem.
fn accepted_version(report: check::Report, kind: PluginKind) -> Result<Option<String>, String> {
    let version = report.contract.as_ref().and_then(|c| c.version.clone());
    let world = report.contract.as_ref().and_then(|c| c.world);
    let wanted = match kind {
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
    Ok(version)
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
                shadow: self.shadow_status(&name),
            },
            Err(why) => {
                tracing::warn!(plugin = %name, reason = %why, "plugin refused");
                match self.last_good(plugin, &previous).await {
                    Ok(digest) => RolloutPluginStatus {
                        loaded: true,
                        error: Some(format!(
                            "{why}; still serving the last good version, sha256 {digest}"
                        )),
                        digest: Some(digest),
                        wit_version: previous.wit_version,
                        observed_generation: plugin.metadata.generation,
                        shadow: self.shadow_status(&name),
                    },
                    Err(lost) => {
                        let why = match lost {
                            Some(lost) => format!("{why}; {lost}"),
                            None => why,
                        };
                        self.registry.register_failure(&name, why.clone());
                        RolloutPluginStatus {
                            loaded: false,
                            digest: None,
                            wit_version: None,
                            error: Some(why),
                            observed_generation: plugin.metadata.generation,
                            shadow: None,
                        }
                    }
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

    /// The shadowed version of the plugin `name`, as its status shows it.
    fn shadow_status(&self, name: &str) -> Option<ShadowStatus> {
        let status =
            |digest: &str, clean, required, divergences, last: Option<String>| ShadowStatus {
                digest: digest.to_string(),
                clean_ticks: clean,
                required_ticks: required,
                divergences,
                last_divergence: last,
            };
        if let Some(s) = self.registry.shadow(name) {
            return Some(status(
                s.plugin.digest(),
                s.clean,
                s.required,
                s.divergences,
                s.last_divergence,
            ));
        }
        let s = self.registry.evaluator_shadow(name)?;
        Some(status(
            s.plugin.digest(),
            s.clean,
            s.required,
            s.divergences,
            s.last_divergence,
        ))
    }

    /// Forgets a deleted RolloutPlugin.
    pub fn remove(&self, plugin: &RolloutPlugin) {
        self.registry.unregister(&plugin.name_any());
    }

    /// The digest of the plugin registered under `name`, if any.
    fn registered_digest(&self, name: &str, kind: PluginKind) -> Option<String> {
        match kind {
            PluginKind::Strategy => self
                .registry
                .strategy(name)
                .ok()
                .map(|p| p.digest().to_string()),
            PluginKind::Evaluator => self
                .registry
                .evaluator(name)
                .ok()
                .map(|p| p.digest().to_string()),
        }
    }

    /// After a refusal: the digest of the version that keeps serving, the
    /// one in memory or, after a restart, the status's digest loaded again
    /// from the plugin cache. `Err` when none does, with why the last good
    /// version could not be restored, if there was one.
    async fn last_good(
        &self,
        plugin: &RolloutPlugin,
        previous: &RolloutPluginStatus,
    ) -> Result<String, Option<String>> {
        let name = plugin.name_any();
        if !previous.loaded || self.registry.is_builtin(&name) {
            return Err(None);
        }
        let kind = plugin.spec.kind;
        if let Some(digest) = self.registered_digest(&name, kind) {
            return Ok(digest);
        }
        let Some(digest) = previous.digest.clone() else {
            return Err(None);
        };
        let Some(cache) = self.registry.artifact_cache() else {
            return Err(Some(format!(
                "the last good version (sha256 {digest}) is lost: the operator has no plugin cache (--plugin-cache) to keep it across restarts"
            )));
        };
        let Some(bytes) = cache.component(&digest) else {
            return Err(Some(format!(
                "the last good version (sha256 {digest}) is not in the plugin cache"
            )));
        };
        // The cached version was checked when it first loaded; the spec's
        // limits and config apply, or the defaults when its limits are bad.
        let limits = limits_of(plugin).unwrap_or_default();
        self.install(&name, kind, bytes, limits, config_of(plugin), None)
            .await
            .map_err(|why| {
                Some(format!(
                    "the last good version (sha256 {digest}) failed to load: {why}"
                ))
            })?;
        tracing::info!(plugin = %name, %digest, "last good version restored from the plugin cache");
        Ok(digest)
    }

    /// Fetches, verifies, checks and registers; the digest and contract
    /// version on success.
    async fn load(&self, plugin: &RolloutPlugin) -> Result<(String, Option<String>), String> {
        let name = plugin.name_any();
        self.admissible(plugin, &name)?;
        let spec = &plugin.spec;
        let limits = limits_of(plugin)?;
        let bytes = self
            .fetcher
            .fetch(&self.cluster, &spec.source)
            .await
            .map_err(|e| e.to_string())?;
        let digest = verified_digest(spec.sha256.as_deref(), &bytes)?;
        let config = config_of(plugin);
        let report = check::check(self.registry.host(), &name, &bytes, limits, &config).await;
        let version = accepted_version(report, spec.kind)?;
        let serving = self
            .register(plugin, &name, bytes, digest, limits, config)
            .await?;
        Ok((serving, version))
    }

    /// Refuses, before fetching, a plugin named like a built-in, or from a
    /// remote source without a digest to verify.
    fn admissible(&self, plugin: &RolloutPlugin, name: &str) -> Result<(), String> {
        if self.registry.is_builtin(name) {
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
        Ok(())
    }

    /// Registers a checked component of `plugin` under `name`: under
    /// shadow when its policy asks for it (and promoted at once if its
    /// annotation asks for that), else in service. The digest of the
    /// version that serves.
    async fn register(
        &self,
        plugin: &RolloutPlugin,
        name: &str,
        bytes: Vec<u8>,
        digest: String,
        limits: Limits,
        config: String,
    ) -> Result<String, String> {
        let spec = &plugin.spec;
        if spec.kind == PluginKind::Strategy {
            self.registry.set_follow_updates(name, spec.follow_updates);
        }
        if let Some(required) = self.shadow_ticks(plugin, &digest) {
            self.install(name, spec.kind, bytes, limits, config, Some(required))
                .await?;
            self.promote_if_asked(plugin, &digest);
            return Ok(self.registered_digest(name, spec.kind).unwrap_or(digest));
        }
        self.install(name, spec.kind, bytes, limits, config, None)
            .await?;
        tracing::info!(plugin = %name, %digest, "plugin registered");
        Ok(digest)
    }

    /// Ticks a new version `digest` must run under shadow, when it is to
    /// (`rolloutPolicy: shadow` and another version serves).
    fn shadow_ticks(&self, plugin: &RolloutPlugin, digest: &str) -> Option<u32> {
        let spec = &plugin.spec;
        if spec.rollout_policy != RolloutPolicy::Shadow {
            return None;
        }
        let current = self.registered_digest(&plugin.name_any(), spec.kind)?;
        (current != digest).then(|| spec.shadow_ticks.unwrap_or(DEFAULT_SHADOW_TICKS))
    }

    /// A user's promotion: the annotation names the shadowed digest.
    fn promote_if_asked(&self, plugin: &RolloutPlugin, digest: &str) {
        let asked = plugin
            .annotations()
            .get(PROMOTE_SHADOW_ANNOTATION)
            .map(|d| d.trim().trim_start_matches("sha256:").to_ascii_lowercase());
        let name = plugin.name_any();
        if asked.as_deref() == Some(digest) && self.registry.promote_shadow(&name, digest) {
            tracing::info!(plugin = %name, %digest, "shadowed version promoted by its annotation");
        }
    }

    /// Loads a checked component and registers it under `name`, keeping
    /// its bytes in the plugin cache as the last good version.
    async fn install(
        &self,
        name: &str,
        kind: PluginKind,
        bytes: Vec<u8>,
        limits: Limits,
        config: String,
        shadow: Option<u32>,
    ) -> Result<(), String> {
        // Loading takes the host's compilation lock, which a compilation of
        // another plugin may hold for seconds: never on an executor thread.
        let (host, plugin_name) = (self.registry.host().clone(), name.to_string());
        let cache = self.registry.artifact_cache().cloned();
        let loaded = tokio::task::spawn_blocking(move || {
            let loaded = match kind {
                PluginKind::Strategy => host
                    .load_strategy(&plugin_name, &bytes, limits)
                    .map(Loaded::Strategy),
                PluginKind::Evaluator => host
                    .load_evaluator(&plugin_name, &bytes, limits)
                    .map(Loaded::Evaluator),
            };
            if let (Ok(_), Some(cache)) = (&loaded, cache) {
                let digest = hex::encode(Sha256::digest(&bytes));
                if let Err(e) = cache.store_component(&digest, &bytes) {
                    tracing::warn!(plugin = %plugin_name, error = %e, "could not keep the plugin in the cache; it will not survive a restart if its source fails");
                }
            }
            loaded
        })
        .await
        .map_err(|e| format!("loading the plugin: {e}"))?
        .map_err(|f| f.to_string())?;
        match (loaded, shadow) {
            (Loaded::Strategy(p), Some(required)) => {
                tracing::info!(plugin = %name, digest = %p.digest(), required, "new version under shadow");
                self.registry
                    .register_shadow_strategy(p.with_default_config(config), required)
            }
            (Loaded::Strategy(p), None) => self
                .registry
                .register_strategy(p.with_default_config(config)),
            (Loaded::Evaluator(p), Some(required)) => {
                tracing::info!(plugin = %name, digest = %p.digest(), required, "new version under shadow");
                self.registry
                    .register_shadow_evaluator(p.with_default_config(config), required)
            }
            (Loaded::Evaluator(p), None) => self
                .registry
                .register_evaluator(p.with_default_config(config)),
        }
        Ok(())
    }
}

/// A plugin loaded for registration.
enum Loaded {
    Strategy(sluice_host::StrategyPlugin),
    Evaluator(sluice_host::EvaluatorPlugin),
}
