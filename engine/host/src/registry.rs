//! Plugins by name: the built-in ones, plus any the user loads. A Canary
//! names its strategy and evaluators; the registry resolves the names.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use anyhow::Result;

/// Why the registry has no plugin of that name to hand out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "{kind} plugin {name:?} is not available; available {}: {known}",
        plural(kind)
    )]
    Unavailable {
        kind: &'static str,
        name: String,
        known: String,
    },
    #[error("{kind} plugin {name:?} failed to load: {why}")]
    Failed {
        kind: &'static str,
        name: String,
        why: String,
    },
    /// Its build (digest) faulted on many calls across Canaries: see
    /// [`crate::breaker`].
    #[error("{kind} plugin {name:?} ({digest}) is {open}")]
    CircuitOpen {
        kind: &'static str,
        name: String,
        digest: String,
        open: String,
    },
}

/// Makes `plugin` the current version of its name; the version it
/// replaces is kept for the rollouts that run it.
fn install_strategy(r: &mut Registered, plugin: StrategyPlugin) {
    if let Some(old) = r.strategies.insert(plugin.name().to_string(), plugin)
        && !r.previous.contains_key(old.digest())
    {
        if r.previous.len() >= MAX_PREVIOUS_VERSIONS
            && let Some(oldest) = r.previous.keys().next().cloned()
        {
            r.previous.remove(&oldest);
        }
        r.previous.insert(old.digest().to_string(), old);
    }
}

fn plural(kind: &str) -> &'static str {
    match kind {
        "strategy" => "strategies",
        _ => "evaluators",
    }
}

use super::{EvaluatorPlugin, Limits, PluginFault, PluginHost, StrategyPlugin, builtin};

/// Plugins registered at run time (`RolloutPlugin`s), shared by every clone
/// of the registry: a new version is used from the next call on.
#[derive(Default)]
struct Registered {
    strategies: BTreeMap<String, StrategyPlugin>,
    evaluators: BTreeMap<String, EvaluatorPlugin>,
    /// Plugins that failed to load, with why.
    failed: BTreeMap<String, String>,
    /// New strategy versions called alongside the current one, by name.
    shadows: BTreeMap<String, Shadow>,
    /// New evaluator versions judging alongside the current one, by name.
    evaluator_shadows: BTreeMap<String, Shadow<EvaluatorPlugin>>,
    /// Versions replaced lately, by digest: a rollout in progress keeps
    /// the version it started with (see [`PluginRegistry::strategy_pinned`]).
    previous: BTreeMap<String, StrategyPlugin>,
    /// Names whose rollouts in progress move to a new version at once.
    follow_updates: std::collections::BTreeSet<String>,
}

/// Versions of replaced strategies kept for the rollouts that run them.
const MAX_PREVIOUS_VERSIONS: usize = 16;

/// A new version of a plugin under shadow: it decides (a strategy) or
/// judges (an evaluator) alongside the current one on live Canaries, its
/// answers recorded, never applied, until it has answered as the current
/// one did `required` times in a row.
#[derive(Clone)]
pub struct Shadow<P = StrategyPlugin> {
    pub plugin: P,
    pub required: u32,
    pub clean: u32,
    pub divergences: u32,
    pub last_divergence: Option<String>,
}

/// What the registry needs of a plugin version to shadow it.
pub trait Versioned: Clone {
    fn digest(&self) -> &str;
    fn settings(&self) -> String;
}

impl Versioned for StrategyPlugin {
    fn digest(&self) -> &str {
        StrategyPlugin::digest(self)
    }
    fn settings(&self) -> String {
        self.config_or_default("")
    }
}

impl Versioned for EvaluatorPlugin {
    fn digest(&self) -> &str {
        EvaluatorPlugin::digest(self)
    }
    fn settings(&self) -> String {
        self.config_or_default("")
    }
}

/// `plugin` under shadow in `shadows`, keeping the counts of the same
/// build with the same settings (a repeated registration).
fn put_shadow<P: Versioned>(
    shadows: &mut BTreeMap<String, Shadow<P>>,
    name: &str,
    plugin: P,
    required: u32,
) {
    let keep = shadows
        .get(name)
        .filter(|s| {
            s.plugin.digest() == plugin.digest() && s.plugin.settings() == plugin.settings()
        })
        .cloned();
    let shadow = keep.unwrap_or(Shadow {
        plugin,
        required: required.max(1),
        clean: 0,
        divergences: 0,
        last_divergence: None,
    });
    shadows.insert(name.to_string(), shadow);
}

/// Counts one shadowed answer; the shadow that takes over is returned.
fn count_shadow<P: Versioned>(
    shadows: &mut BTreeMap<String, Shadow<P>>,
    name: &str,
    digest: &str,
    divergence: Option<String>,
) -> (ShadowOutcome, Option<P>) {
    let Some(shadow) = shadows
        .get_mut(name)
        .filter(|s| s.plugin.digest() == digest)
    else {
        return (ShadowOutcome::Gone, None);
    };
    if let Some(why) = divergence {
        shadow.clean = 0;
        shadow.divergences += 1;
        shadow.last_divergence = Some(why);
        return (ShadowOutcome::Diverged(shadow.divergences), None);
    }
    shadow.clean += 1;
    if shadow.clean < shadow.required {
        return (ShadowOutcome::Clean(shadow.clean), None);
    }
    let taken = shadows.remove(name).map(|s| s.plugin);
    (ShadowOutcome::TookOver, taken)
}

/// What one shadowed decision did to its shadow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShadowOutcome {
    /// It decided as the current version did; clean decisions in a row.
    Clean(u32),
    /// It decided otherwise; divergences so far.
    Diverged(u32),
    /// Its last clean decision made it the current version.
    TookOver,
    /// The shadow is gone (replaced or promoted meanwhile).
    Gone,
}

#[derive(Clone)]
pub struct PluginRegistry {
    host: PluginHost,
    strategies: Arc<BTreeMap<String, StrategyPlugin>>,
    evaluators: Arc<BTreeMap<String, EvaluatorPlugin>>,
    registered: Arc<RwLock<Registered>>,
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
            registered: Arc::default(),
            strategy_override: None,
            evaluator_override: None,
        })
    }

    pub fn host(&self) -> &PluginHost {
        &self.host
    }

    /// The host's on-disk cache, when it has one: where registration keeps
    /// the last good version of each RolloutPlugin across restarts.
    pub fn artifact_cache(&self) -> Option<&super::ArtifactCache> {
        self.host.cache.as_ref()
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

    /// Whether `name` is a built-in plugin (registered plugins may not
    /// take a built-in's name).
    pub fn is_builtin(&self, name: &str) -> bool {
        self.strategies.contains_key(name) || self.evaluators.contains_key(name)
    }

    /// Registers (or replaces) a strategy under its name, shared with every
    /// clone of this registry. A shadow of that name ends.
    pub fn register_strategy(&self, plugin: StrategyPlugin) {
        if let Ok(mut r) = self.registered.write() {
            r.failed.remove(plugin.name());
            r.evaluators.remove(plugin.name());
            r.shadows.remove(plugin.name());
            install_strategy(&mut r, plugin);
        }
    }

    /// Puts `plugin` under shadow for its name: the current version keeps
    /// deciding; `plugin` takes over after `required` clean decisions in a
    /// row (see [`Self::record_shadow`]) or when promoted. The same build
    /// with the same settings keeps its counts (a repeated registration).
    pub fn register_shadow_strategy(&self, plugin: StrategyPlugin, required: u32) {
        if let Ok(mut r) = self.registered.write() {
            let name = plugin.name().to_string();
            put_shadow(&mut r.shadows, &name, plugin, required);
        }
    }

    /// Puts the evaluator `plugin` under shadow for its name: the current
    /// version keeps judging; `plugin` judges the same samples and takes
    /// over after `required` verdicts like the current one's in a row
    /// (see [`Self::record_evaluator_shadow`]) or when promoted.
    pub fn register_shadow_evaluator(&self, plugin: EvaluatorPlugin, required: u32) {
        if let Ok(mut r) = self.registered.write() {
            let name = plugin.name().to_string();
            put_shadow(&mut r.evaluator_shadows, &name, plugin, required);
        }
    }

    /// The shadow of the strategy `name`, if one runs.
    pub fn shadow(&self, name: &str) -> Option<Shadow> {
        self.registered.read().ok()?.shadows.get(name).cloned()
    }

    /// The shadow of the evaluator `name`, if one runs.
    pub fn evaluator_shadow(&self, name: &str) -> Option<Shadow<EvaluatorPlugin>> {
        self.registered
            .read()
            .ok()?
            .evaluator_shadows
            .get(name)
            .cloned()
    }

    /// Records one shadowed decision of the shadow `digest` of `name`:
    /// `divergence` is `None` when it decided as the current version did,
    /// else what differed.
    pub fn record_shadow(
        &self,
        name: &str,
        digest: &str,
        divergence: Option<String>,
    ) -> ShadowOutcome {
        let Ok(mut r) = self.registered.write() else {
            return ShadowOutcome::Gone;
        };
        let (outcome, taken) = count_shadow(&mut r.shadows, name, digest, divergence);
        if let Some(plugin) = taken {
            install_strategy(&mut r, plugin);
        }
        outcome
    }

    /// Records one shadowed verdict of the evaluator shadow `digest` of
    /// `name`, as [`Self::record_shadow`] does for strategies.
    pub fn record_evaluator_shadow(
        &self,
        name: &str,
        digest: &str,
        divergence: Option<String>,
    ) -> ShadowOutcome {
        let Ok(mut r) = self.registered.write() else {
            return ShadowOutcome::Gone;
        };
        let (outcome, taken) = count_shadow(&mut r.evaluator_shadows, name, digest, divergence);
        if let Some(plugin) = taken {
            r.evaluators.insert(name.to_string(), plugin);
        }
        outcome
    }

    /// Makes the shadow of `name` (a strategy's or an evaluator's) the
    /// current version now, if its digest is `digest` (a user's
    /// promotion); whether it did.
    pub fn promote_shadow(&self, name: &str, digest: &str) -> bool {
        let Ok(mut r) = self.registered.write() else {
            return false;
        };
        if r.shadows
            .get(name)
            .is_some_and(|s| s.plugin.digest() == digest)
            && let Some(shadow) = r.shadows.remove(name)
        {
            install_strategy(&mut r, shadow.plugin);
            return true;
        }
        if r.evaluator_shadows
            .get(name)
            .is_some_and(|s| s.plugin.digest() == digest)
            && let Some(shadow) = r.evaluator_shadows.remove(name)
        {
            r.evaluators.insert(name.to_string(), shadow.plugin);
            return true;
        }
        false
    }

    /// Whether rollouts in progress with the strategy `name` move to a
    /// new version at once (else they keep theirs).
    pub fn set_follow_updates(&self, name: &str, follow: bool) {
        if let Ok(mut r) = self.registered.write() {
            if follow {
                r.follow_updates.insert(name.to_string());
            } else {
                r.follow_updates.remove(name);
            }
        }
    }

    /// The strategy `name` for a rollout that started with version
    /// `digest`: that version while this registry still has it, unless the
    /// plugin follows updates; otherwise the current one.
    pub fn strategy_pinned(
        &self,
        name: &str,
        digest: &str,
    ) -> Result<StrategyPlugin, RegistryError> {
        let current = self.strategy(name)?;
        if current.digest() == digest {
            return Ok(current);
        }
        let pinned = self.registered.read().ok().and_then(|r| {
            if r.follow_updates.contains(name) {
                return None;
            }
            r.previous.get(digest).filter(|p| p.name() == name).cloned()
        });
        match pinned {
            Some(p) => self.guarded("strategy", name, digest, p),
            None => Ok(current),
        }
    }

    /// Registers (or replaces) an evaluator under its name. A shadow of
    /// that name ends.
    pub fn register_evaluator(&self, plugin: EvaluatorPlugin) {
        if let Ok(mut r) = self.registered.write() {
            r.failed.remove(plugin.name());
            r.strategies.remove(plugin.name());
            r.evaluator_shadows.remove(plugin.name());
            r.evaluators.insert(plugin.name().to_string(), plugin);
        }
    }

    /// Records that the plugin `name` could not be loaded: Canaries that
    /// select it wait, with `reason` in their condition.
    pub fn register_failure(&self, name: &str, reason: String) {
        if let Ok(mut r) = self.registered.write() {
            r.strategies.remove(name);
            r.evaluators.remove(name);
            r.failed.insert(name.to_string(), reason);
        }
    }

    /// Forgets a registered plugin (its RolloutPlugin was deleted).
    pub fn unregister(&self, name: &str) {
        if let Ok(mut r) = self.registered.write() {
            r.strategies.remove(name);
            r.evaluators.remove(name);
            r.failed.remove(name);
            r.shadows.remove(name);
            r.evaluator_shadows.remove(name);
            r.previous.retain(|_, p| p.name() != name);
        }
    }

    fn failure(&self, kind: &'static str, name: &str) -> Option<RegistryError> {
        let r = self.registered.read().ok()?;
        r.failed.get(name).map(|why| RegistryError::Failed {
            kind,
            name: name.to_string(),
            why: why.clone(),
        })
    }

    /// `p` unless its circuit breaker is open.
    fn guarded<P>(
        &self,
        kind: &'static str,
        name: &str,
        digest: &str,
        p: P,
    ) -> Result<P, RegistryError> {
        self.host
            .breakers()
            .check(digest)
            .map(|()| p)
            .map_err(|open| RegistryError::CircuitOpen {
                kind,
                name: name.to_string(),
                digest: format!("sha256:{}", &digest[..digest.len().min(12)]),
                open: open.to_string(),
            })
    }

    pub fn strategy(&self, name: &str) -> Result<StrategyPlugin, RegistryError> {
        let p = self.find_strategy(name)?;
        let digest = p.digest().to_string();
        self.guarded("strategy", name, &digest, p)
    }

    fn find_strategy(&self, name: &str) -> Result<StrategyPlugin, RegistryError> {
        if let Some(p) = &self.strategy_override {
            return Ok(p.clone());
        }
        if let Some(p) = self.strategies.get(name) {
            return Ok(p.clone());
        }
        if let Some(p) = self
            .registered
            .read()
            .ok()
            .and_then(|r| r.strategies.get(name).cloned())
        {
            return Ok(p);
        }
        if let Some(why) = self.failure("strategy", name) {
            return Err(why);
        }
        let mut known: Vec<String> = self.strategies.keys().cloned().collect();
        if let Ok(r) = self.registered.read() {
            known.extend(r.strategies.keys().cloned());
        }
        Err(RegistryError::Unavailable {
            kind: "strategy",
            name: name.to_string(),
            known: known.join(", "),
        })
    }

    pub fn evaluator(&self, name: &str) -> Result<EvaluatorPlugin, RegistryError> {
        let p = self.find_evaluator(name)?;
        let digest = p.digest().to_string();
        self.guarded("evaluator", name, &digest, p)
    }

    fn find_evaluator(&self, name: &str) -> Result<EvaluatorPlugin, RegistryError> {
        if let Some(p) = &self.evaluator_override {
            return Ok(p.clone());
        }
        if let Some(p) = self.evaluators.get(name) {
            return Ok(p.clone());
        }
        if let Some(p) = self
            .registered
            .read()
            .ok()
            .and_then(|r| r.evaluators.get(name).cloned())
        {
            return Ok(p);
        }
        if let Some(why) = self.failure("evaluator", name) {
            return Err(why);
        }
        let mut known: Vec<String> = self.evaluators.keys().cloned().collect();
        if let Ok(r) = self.registered.read() {
            known.extend(r.evaluators.keys().cloned());
        }
        Err(RegistryError::Unavailable {
            kind: "evaluator",
            name: name.to_string(),
            known: known.join(", "),
        })
    }
}
