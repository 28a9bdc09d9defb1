//! The Wasm host: compiles plugins once, then runs every call in a fresh,
//! isolated store with a time budget and a memory cap, and no capabilities.
//!
//! Plugins are components of the `sluice:plugin` worlds (see `wit/`). They
//! are built with Rust's `wasm32-wasip2` target (or componentize-py,
//! componentize-js), whose runtimes import WASI interfaces; the host links
//! WASI with deterministic stand-ins that never wait (`sandbox.rs`), and
//! bounds every call (`call.rs`), so a plugin is a deterministic function
//! of its inputs that always answers, or faults, within its budget.

pub mod bindings;
pub mod breaker;
pub mod builtin;
mod cache;
mod call;
pub mod check;
pub mod contract;
mod convert;
pub mod evaluator;
mod fault;
pub mod fuzz;
pub mod journal;
mod memo;
pub mod registry;
mod sandbox;
pub mod schema;
mod settings;
mod stats;
pub mod strategy;
pub mod validate;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

pub use breaker::{BreakerPolicy, Breakers};
pub use cache::{ArtifactCache, CacheError};
use call::{CallState, EPOCH_TICK};
pub use call::{Limits, LogSink, MAX_LOG_LINES};
pub use convert::{plan_match, primary_only, spec_match};
pub use evaluator::EvaluatorPlugin;
pub use fault::{FaultKind, PluginFault};
pub use registry::PluginRegistry;
pub use stats::PluginMetrics;
pub use strategy::StrategyPlugin;

/// Calls that may run at once; the instance pool is sized for this many.
/// More calls wait for a slot (outside their budget).
const DEFAULT_CONCURRENT_CALLS: u32 = 32;
/// The largest component the host compiles: componentize-py's evaluators
/// are about 18 MB.
pub const MAX_COMPONENT_BYTES: usize = 32 * 1024 * 1024;
/// Compiled components kept in memory, by digest.
const MAX_COMPILED: usize = 64;
/// The most memory any plugin may be given (`RolloutPlugin`
/// `spec.limits.memoryMiB` is at most 1024).
const MAX_MEMORY_BYTES: usize = 1024 * 1024 * 1024;
/// Memory a pool slot keeps resident between calls, reset in place.
const KEEP_RESIDENT_BYTES: usize = 4 * 1024 * 1024;
/// Per component: core instances, memories and tables the pool allows.
/// Rust plugins use a handful; componentize-py and -js runtimes more.
const CORE_INSTANCES_PER_COMPONENT: u32 = 64;
const MEMORIES_PER_COMPONENT: u32 = 8;

/// Owns the Wasmtime engine shared by every plugin.
#[derive(Clone)]
pub struct PluginHost {
    engine: Engine,
    cache: Option<ArtifactCache>,
    metrics: PluginMetrics,
    /// One permit per call the instance pool has room for.
    permits: Arc<Semaphore>,
    /// Compilations run one at a time: a large component takes hundreds of
    /// MiB while Cranelift works on it.
    compiling: Arc<Mutex<()>>,
    /// Compiled components by digest: each digest is compiled once.
    compiled: Arc<Mutex<HashMap<String, Component>>>,
    /// Circuit breakers by digest, shared by every Canary.
    breakers: Breakers,
    /// Every plugin call of the rollouts, when on.
    journal: journal::Journal,
    _ticker: Arc<EpochTicker>,
}

/// Why the plugin host could not start.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// Wasmtime refused the engine configuration (pooling allocator, memory
    /// reservation) on this machine.
    #[error("creating the Wasm engine")]
    Engine(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl PluginHost {
    /// A host; `cache` keeps compiled plugins on disk across restarts.
    pub fn new(cache: Option<ArtifactCache>) -> Result<Self, HostError> {
        Self::with_concurrency(cache, DEFAULT_CONCURRENT_CALLS)
    }

    /// A host whose instance pool has room for `calls` calls at once.
    fn with_concurrency(cache: Option<ArtifactCache>, calls: u32) -> Result<Self, HostError> {
        let calls = calls.max(1);
        let engine = Engine::new(&engine_config(calls))
            .map_err(|e| HostError::Engine(anyhow::Error::from(e).into()))?;
        let ticker = Arc::new(EpochTicker::start(&engine));
        Ok(Self {
            engine,
            cache,
            metrics: PluginMetrics::default(),
            permits: Arc::new(Semaphore::new(calls as usize)),
            compiling: Arc::default(),
            compiled: Arc::default(),
            breakers: Breakers::default(),
            journal: journal::Journal::default(),
            _ticker: ticker,
        })
    }

    /// Opens plugins' circuit breakers by `policy` instead of the default.
    pub fn with_breaker_policy(mut self, policy: BreakerPolicy) -> Self {
        self.breakers = Breakers::new(policy);
        self
    }

    /// Records the plugin calls of rollouts in `journal` (see [`journal`]).
    pub fn with_journal(mut self, journal: journal::Journal) -> Self {
        self.journal = journal;
        self
    }

    /// The decision journal (off unless [`Self::with_journal`]).
    pub fn journal(&self) -> &journal::Journal {
        &self.journal
    }

    /// The circuit breakers of this host's plugins, by digest.
    pub fn breakers(&self) -> &Breakers {
        &self.breakers
    }

    /// Call counts, failures and durations of every plugin of this host.
    pub fn metrics(&self) -> &PluginMetrics {
        &self.metrics
    }

    /// What a call of `plugin` needs from its host.
    pub(crate) fn call_context<'a>(
        &'a self,
        engine: &'a Engine,
        plugin: &'a str,
        limits: Limits,
        sink: Option<LogSink>,
    ) -> call::CallContext<'a> {
        call::CallContext {
            engine,
            metrics: &self.metrics,
            plugin,
            limits,
            sink,
            permits: &self.permits,
        }
    }

    /// Compiles `wasm` and checks that it is a `world` plugin of a contract
    /// version this host accepts; returns that version.
    fn compile_checked(
        &self,
        name: &str,
        wasm: &[u8],
        world: contract::World,
    ) -> Result<(Component, String, contract::Version), PluginFault> {
        let (component, digest) = self.compile(name, wasm)?;
        let version = contract::check(&contract::inspect(&self.engine, &component), world)
            .map_err(|why| PluginFault {
                plugin: name.to_string(),
                kind: FaultKind::Load(why.to_string()),
            })?;
        Ok((component, digest, version))
    }

    /// Compiles (or loads from the cache) a component, and reads its contract.
    pub fn inspect(&self, name: &str, wasm: &[u8]) -> Result<contract::Contract, PluginFault> {
        let (component, _) = self.compile(name, wasm)?;
        Ok(contract::inspect(&self.engine, &component))
    }

    /// Compiles `wasm`, one compilation at a time. CPU-bound: call it off
    /// the async executor (`tokio::task::spawn_blocking`) when other work
    /// must keep its schedule.
    fn compile(&self, name: &str, wasm: &[u8]) -> Result<(Component, String), PluginFault> {
        let fault = |why: String| PluginFault {
            plugin: name.to_string(),
            kind: FaultKind::Load(why),
        };
        if wasm.len() > MAX_COMPONENT_BYTES {
            return Err(fault(format!(
                "it is {} bytes, more than the {} MiB a plugin may be",
                wasm.len(),
                MAX_COMPONENT_BYTES / (1024 * 1024)
            )));
        }
        let digest = hex::encode(Sha256::digest(wasm));
        let _one_at_a_time = self.compiling.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(component) = self.compiled_component(&digest) {
            return Ok((component, digest));
        }
        // Read from the bytes, before seconds of compiling.
        if let Some(why) = contract::top_level_imports(wasm)
            .as_deref()
            .and_then(contract::refused_import)
        {
            return Err(fault(why.to_string()));
        }
        let compiled = match &self.cache {
            Some(cache) => cache.load_or_compile(&self.engine, &digest, wasm),
            None => Component::new(&self.engine, wasm).map_err(anyhow::Error::from),
        };
        let component =
            compiled.map_err(|e| fault(format!("not a valid Wasm component: {e:#}")))?;
        if let Ok(mut compiled) = self.compiled.lock() {
            if compiled.len() >= MAX_COMPILED {
                compiled.clear();
            }
            compiled.insert(digest.clone(), component.clone());
        }
        Ok((component, digest))
    }

    fn compiled_component(&self, digest: &str) -> Option<Component> {
        self.compiled.lock().ok()?.get(digest).cloned()
    }

    fn linker(&self) -> Result<Linker<CallState>> {
        let mut linker = Linker::new(&self.engine);
        sandbox::add_to_linker(&mut linker)
            .map_err(anyhow::Error::from)
            .context("linking WASI")?;
        Ok(linker)
    }

    /// Compiles and links a strategy plugin of either contract version.
    pub fn load_strategy(
        &self,
        name: &str,
        wasm: &[u8],
        limits: Limits,
    ) -> Result<StrategyPlugin, PluginFault> {
        let (component, digest, version) =
            self.compile_checked(name, wasm, contract::World::Strategy)?;
        let schema = read_schema(name, wasm)?;
        let fault = |e: anyhow::Error| PluginFault {
            plugin: name.to_string(),
            kind: FaultKind::Load(format!(
                "{:#}",
                e.context("it does not fit the sluice:plugin/strategy world")
            )),
        };
        let load_fault = |e: wasmtime::Error| fault(anyhow::Error::from(e));
        let mut linker = self.linker().map_err(fault)?;
        let (pre, settings) = match version {
            contract::Version::V0_1 => {
                bindings::strategy_v1::Strategy::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
                    .map_err(load_fault)?;
                let pre = linker.instantiate_pre(&component).map_err(load_fault)?;
                let pre = strategy::StrategyPre::V1(
                    bindings::strategy_v1::StrategyPre::new(pre).map_err(load_fault)?,
                );
                (pre, settings::SettingsCheck::new(schema, None))
            }
            contract::Version::V0_2 => {
                bindings::strategy_v2::Strategy::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
                    .map_err(load_fault)?;
                let pre = linker.instantiate_pre(&component).map_err(load_fault)?;
                let validator = settings::export(&component).map(|f| (pre.clone(), f));
                let pre = strategy::StrategyPre::V2(
                    bindings::strategy_v2::StrategyPre::new(pre).map_err(load_fault)?,
                );
                (pre, settings::SettingsCheck::new(schema, validator))
            }
        };
        Ok(StrategyPlugin::new(
            name,
            digest,
            pre,
            limits,
            self.clone(),
            settings,
        ))
    }

    /// Compiles and links an evaluator plugin of either contract version.
    pub fn load_evaluator(
        &self,
        name: &str,
        wasm: &[u8],
        limits: Limits,
    ) -> Result<EvaluatorPlugin, PluginFault> {
        let (component, digest, version) =
            self.compile_checked(name, wasm, contract::World::Evaluator)?;
        let schema = read_schema(name, wasm)?;
        let fault = |e: anyhow::Error| PluginFault {
            plugin: name.to_string(),
            kind: FaultKind::Load(format!(
                "{:#}",
                e.context("it does not fit the sluice:plugin/evaluator world")
            )),
        };
        let load_fault = |e: wasmtime::Error| fault(anyhow::Error::from(e));
        let mut linker = self.linker().map_err(fault)?;
        let (pre, settings) = match version {
            contract::Version::V0_1 => {
                bindings::evaluator_v1::Evaluator::add_to_linker::<_, HasSelf<_>>(
                    &mut linker,
                    |s| s,
                )
                .map_err(load_fault)?;
                let pre = linker.instantiate_pre(&component).map_err(load_fault)?;
                let pre = evaluator::EvaluatorPre::V1(
                    bindings::evaluator_v1::EvaluatorPre::new(pre).map_err(load_fault)?,
                );
                (pre, settings::SettingsCheck::new(schema, None))
            }
            contract::Version::V0_2 => {
                bindings::evaluator_v2::Evaluator::add_to_linker::<_, HasSelf<_>>(
                    &mut linker,
                    |s| s,
                )
                .map_err(load_fault)?;
                let pre = linker.instantiate_pre(&component).map_err(load_fault)?;
                let validator = settings::export(&component).map(|f| (pre.clone(), f));
                let pre = evaluator::EvaluatorPre::V2(
                    bindings::evaluator_v2::EvaluatorPre::new(pre).map_err(load_fault)?,
                );
                (pre, settings::SettingsCheck::new(schema, validator))
            }
        };
        Ok(EvaluatorPlugin::new(
            name,
            digest,
            pre,
            limits,
            self.clone(),
            settings,
        ))
    }
}

/// The settings schema `wasm` embeds, compiled; a schema the host cannot
/// use refuses the plugin.
fn read_schema(name: &str, wasm: &[u8]) -> Result<Option<schema::ConfigSchema>, PluginFault> {
    schema::read(wasm).map_err(|why| PluginFault {
        plugin: name.to_string(),
        kind: FaultKind::Load(why.to_string()),
    })
}

/// The engine: components, epoch interruption, async calls, and a pooling
/// instance allocator with room for `calls` calls at once.
fn engine_config(calls: u32) -> Config {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(calls)
        .total_core_instances(calls * CORE_INSTANCES_PER_COMPONENT)
        .total_memories(calls * MEMORIES_PER_COMPONENT)
        .total_tables(calls * MEMORIES_PER_COMPONENT)
        .total_stacks(calls)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MEMORIES_PER_COMPONENT)
        .max_tables_per_component(MEMORIES_PER_COMPONENT)
        .max_memories_per_module(MEMORIES_PER_COMPONENT)
        .max_tables_per_module(MEMORIES_PER_COMPONENT)
        .max_memory_size(MAX_MEMORY_BYTES)
        .table_elements(100_000)
        // A call dirties a few pages (the top of Rust's 1 MiB stack, data,
        // a little heap): reset just those in place (PAGEMAP_SCAN, Linux
        // 6.7+, else memset of the low 4 MiB) instead of unmapping the
        // memory and faulting it back in on the next call, and batch the
        // unmaps that remain, each of which costs every thread a TLB flush.
        .pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
        .table_keep_resident(64 * 1024)
        .decommit_batch_size(16);
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        // No map from native code back to Wasm offsets: faults report the
        // trap and the guest's own output, not Wasm backtraces, and the
        // map costs about 60 MiB while a 12 MB JavaScript component
        // compiles (454 instead of 515 MiB peak RSS for `plugin check`).
        .generate_address_map(false)
        .max_wasm_stack(512 * 1024)
        // A pool slot is as large as the reservation: 1 GiB (the largest
        // memory a plugin may get) rather than the default 4 GiB keeps the
        // pool's address space at a quarter, for explicit bounds checks.
        .memory_reservation(MAX_MEMORY_BYTES as u64)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}

/// Advances the engine's epoch in the background; stops with the engine.
struct EpochTicker;

impl EpochTicker {
    fn start(engine: &Engine) -> Self {
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("sluice-epoch".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .ok();
        EpochTicker
    }
}
