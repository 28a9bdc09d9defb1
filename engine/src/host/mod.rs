//! The Wasm host: compiles plugins once, then runs every call in a fresh,
//! isolated store with a time budget and a memory cap, and no capabilities.
//!
//! Plugins are components of the `sluice:plugin` worlds (see `wit/`). They
//! are built with Rust's `wasm32-wasip2` target, whose standard library
//! imports a few WASI interfaces; the host links WASI with an empty context:
//! no files, no network, no environment, no arguments, a frozen clock and a
//! fixed random seed, so a plugin is a deterministic function of its inputs.

pub mod bindings;
pub mod builtin;
pub mod cache;
pub mod check;
pub mod contract;
pub mod evaluator;
pub mod fault;
pub mod registry;
pub mod stats;
pub mod strategy;
pub mod validate;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, ResourceLimiter, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

pub use cache::ArtifactCache;
pub use evaluator::EvaluatorPlugin;
pub use fault::{FaultKind, PluginFault};
pub use registry::PluginRegistry;
pub use stats::PluginMetrics;
pub use strategy::StrategyPlugin;

/// How often the epoch advances; the granularity of time budgets.
const EPOCH_TICK: Duration = Duration::from_millis(5);
/// At most this much of a plugin's stderr (panic messages) is kept.
const STDERR_CAPTURE_BYTES: usize = 4096;

/// Per-call resource limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock budget of one call, instantiation included.
    pub time_budget: Duration,
    /// Linear memory (and tables) a call may use.
    pub memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            time_budget: Duration::from_millis(100),
            memory_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Owns the Wasmtime engine shared by every plugin.
#[derive(Clone)]
pub struct PluginHost {
    engine: Engine,
    cache: Option<ArtifactCache>,
    metrics: PluginMetrics,
    _ticker: Arc<EpochTicker>,
}

impl PluginHost {
    /// A host; `cache` keeps compiled plugins on disk across restarts.
    pub fn new(cache: Option<ArtifactCache>) -> Result<Self> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.max_wasm_stack(512 * 1024);
        let engine = Engine::new(&config)
            .map_err(anyhow::Error::from)
            .context("creating the Wasm engine")?;
        let ticker = Arc::new(EpochTicker::start(&engine));
        Ok(Self {
            engine,
            cache,
            metrics: PluginMetrics::default(),
            _ticker: ticker,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Call counts, failures and durations of every plugin of this host.
    pub fn metrics(&self) -> &PluginMetrics {
        &self.metrics
    }

    /// Compiles `wasm` and checks that it is a `world` plugin of a contract
    /// version this host accepts.
    fn compile_checked(
        &self,
        name: &str,
        wasm: &[u8],
        world: contract::World,
    ) -> Result<(Component, String), PluginFault> {
        let (component, digest) = self.compile(name, wasm)?;
        contract::check(&contract::inspect(&self.engine, &component), world).map_err(|why| {
            PluginFault {
                plugin: name.to_string(),
                kind: FaultKind::Load(why),
            }
        })?;
        Ok((component, digest))
    }

    /// Compiles (or loads from the cache) a component, and reads its contract.
    pub fn inspect(&self, name: &str, wasm: &[u8]) -> Result<contract::Contract, PluginFault> {
        let (component, _) = self.compile(name, wasm)?;
        Ok(contract::inspect(&self.engine, &component))
    }

    fn compile(&self, name: &str, wasm: &[u8]) -> Result<(Component, String), PluginFault> {
        let digest = hex::encode(Sha256::digest(wasm));
        let compiled = match &self.cache {
            Some(cache) => cache.load_or_compile(&self.engine, &digest, wasm),
            None => Component::new(&self.engine, wasm).map_err(anyhow::Error::from),
        };
        let component = compiled.map_err(|e| PluginFault {
            plugin: name.to_string(),
            kind: FaultKind::Load(format!("not a valid Wasm component: {e:#}")),
        })?;
        Ok((component, digest))
    }

    fn linker(&self) -> Result<Linker<CallState>> {
        let mut linker = Linker::new(&self.engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(anyhow::Error::from)
            .context("linking WASI")?;
        Ok(linker)
    }

    /// Compiles and links a strategy plugin.
    pub fn load_strategy(
        &self,
        name: &str,
        wasm: &[u8],
        limits: Limits,
    ) -> Result<StrategyPlugin, PluginFault> {
        let (component, digest) = self.compile_checked(name, wasm, contract::World::Strategy)?;
        let load_fault = |e: anyhow::Error| PluginFault {
            plugin: name.to_string(),
            kind: FaultKind::Load(format!("{e:#}")),
        };
        let mut linker = self.linker().map_err(load_fault)?;
        bindings::strategy::Strategy::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| load_fault(e.into()))?;
        let pre = linker
            .instantiate_pre(&component)
            .and_then(bindings::strategy::StrategyPre::new)
            .map_err(|e| {
                load_fault(
                    anyhow::Error::from(e)
                        .context("it does not fit the sluice:plugin/strategy world"),
                )
            })?;
        Ok(StrategyPlugin::new(
            name,
            digest,
            pre,
            limits,
            self.metrics.clone(),
        ))
    }

    /// Compiles and links an evaluator plugin.
    pub fn load_evaluator(
        &self,
        name: &str,
        wasm: &[u8],
        limits: Limits,
    ) -> Result<EvaluatorPlugin, PluginFault> {
        let (component, digest) = self.compile_checked(name, wasm, contract::World::Evaluator)?;
        let load_fault = |e: anyhow::Error| PluginFault {
            plugin: name.to_string(),
            kind: FaultKind::Load(format!("{e:#}")),
        };
        let mut linker = self.linker().map_err(load_fault)?;
        bindings::evaluator::Evaluator::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| load_fault(e.into()))?;
        let pre = linker
            .instantiate_pre(&component)
            .and_then(bindings::evaluator::EvaluatorPre::new)
            .map_err(|e| {
                load_fault(
                    anyhow::Error::from(e)
                        .context("it does not fit the sluice:plugin/evaluator world"),
                )
            })?;
        Ok(EvaluatorPlugin::new(
            name,
            digest,
            pre,
            limits,
            self.metrics.clone(),
        ))
    }
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

/// The state of one call's store: an empty WASI context and the memory cap.
pub struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    memory: MemoryCap,
    stderr: MemoryOutputPipe,
    plugin: String,
}

impl CallState {
    fn new(plugin: &str, limits: Limits) -> Self {
        let stderr = MemoryOutputPipe::new(STDERR_CAPTURE_BYTES);
        let wasi = WasiCtx::builder()
            .stderr(stderr.clone())
            .wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            .secure_random(FixedRandom(0x5eed))
            .insecure_random(FixedRandom(0x5eed))
            .insecure_random_seed(0)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            memory: MemoryCap {
                cap: limits.memory_bytes,
                exceeded: false,
            },
            stderr,
            plugin: plugin.to_string(),
        }
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl bindings::strategy::sluice::plugin::log::Host for CallState {
    fn log(&mut self, level: bindings::strategy::sluice::plugin::log::Level, message: String) {
        use bindings::strategy::sluice::plugin::log::Level;
        let message: String = message.chars().take(1024).collect();
        match level {
            Level::Debug => tracing::debug!(plugin = %self.plugin, "{message}"),
            Level::Info => tracing::info!(plugin = %self.plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin = %self.plugin, "{message}"),
            Level::Error => tracing::error!(plugin = %self.plugin, "{message}"),
        }
    }
}

impl bindings::evaluator::sluice::plugin::log::Host for CallState {
    fn log(&mut self, level: bindings::evaluator::sluice::plugin::log::Level, message: String) {
        use bindings::evaluator::sluice::plugin::log::Level;
        let message: String = message.chars().take(1024).collect();
        match level {
            Level::Debug => tracing::debug!(plugin = %self.plugin, "{message}"),
            Level::Info => tracing::info!(plugin = %self.plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin = %self.plugin, "{message}"),
            Level::Error => tracing::error!(plugin = %self.plugin, "{message}"),
        }
    }
}

// Type-only interfaces the worlds import: nothing to implement.
impl bindings::strategy::sluice::plugin::types::Host for CallState {}
impl bindings::strategy::sluice::plugin::strategy_types::Host for CallState {}
impl bindings::evaluator::sluice::plugin::evaluator_types::Host for CallState {}

/// Refuses memory growth past the cap and remembers that it did, so the
/// fault can be reported as memory exhaustion rather than a bare trap.
struct MemoryCap {
    cap: usize,
    exceeded: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.exceeded = true;
            wasmtime::bail!(
                "memory limit of {} bytes exceeded (wanted {desired})",
                self.cap
            );
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// A clock that always reads zero: plugins get time only from the host's inputs.
struct FrozenClock;

impl wasmtime_wasi::HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// A deterministic byte source (xorshift), so random numbers do not make
/// plugin answers differ between runs.
struct FixedRandom(u64);

impl rand_core::TryRng for FixedRandom {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        self.try_next_u64().map(|x| x as u32)
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        Ok(x)
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Self::Error> {
        for chunk in dest.chunks_mut(8) {
            let bytes = self.try_next_u64()?.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        Ok(())
    }
}

/// Runs one plugin call in a fresh store and classifies what went wrong.
pub(crate) fn run_call<P, R>(
    engine: &Engine,
    metrics: &PluginMetrics,
    plugin: &str,
    limits: Limits,
    instantiate: impl FnOnce(&mut Store<CallState>) -> wasmtime::Result<P>,
    call: impl FnOnce(&mut Store<CallState>, &P) -> wasmtime::Result<Result<R, String>>,
) -> Result<R, PluginFault> {
    let started = std::time::Instant::now();
    let result = run_call_in_store(engine, plugin, limits, instantiate, call);
    let fault = result.as_ref().err().map(|f| f.kind.label());
    metrics.record(plugin, started.elapsed(), fault);
    result
}

fn run_call_in_store<P, R>(
    engine: &Engine,
    plugin: &str,
    limits: Limits,
    instantiate: impl FnOnce(&mut Store<CallState>) -> wasmtime::Result<P>,
    call: impl FnOnce(&mut Store<CallState>, &P) -> wasmtime::Result<Result<R, String>>,
) -> Result<R, PluginFault> {
    let mut store = Store::new(engine, CallState::new(plugin, limits));
    store.limiter(|s| &mut s.memory);
    let ticks = limits
        .time_budget
        .as_millis()
        .div_ceil(EPOCH_TICK.as_millis())
        .max(1) as u64;
    // One extra tick: the deadline can land just after the current epoch ticks.
    store.set_epoch_deadline(ticks + 1);
    store.epoch_deadline_trap();
    let outcome = instantiate(&mut store).and_then(|instance| call(&mut store, &instance));
    match outcome {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(message)) => Err(PluginFault {
            plugin: plugin.to_string(),
            kind: FaultKind::Error(message.chars().take(512).collect()),
        }),
        Err(e) => Err(PluginFault {
            plugin: plugin.to_string(),
            kind: classify(&e, &store, limits),
        }),
    }
}

fn classify(e: &wasmtime::Error, store: &Store<CallState>, limits: Limits) -> FaultKind {
    if store.data().memory.exceeded {
        return FaultKind::MemoryExhausted {
            cap_bytes: limits.memory_bytes,
        };
    }
    if let Some(Trap::Interrupt) = e.downcast_ref::<Trap>() {
        return FaultKind::Timeout {
            budget_ms: limits.time_budget.as_millis() as u64,
        };
    }
    let stderr = String::from_utf8_lossy(&store.data().stderr.contents())
        .trim()
        .to_string();
    let mut reason = match e.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{e:#}"),
    };
    if !stderr.is_empty() {
        let tail: String = stderr.lines().rev().take(3).collect::<Vec<_>>().join(" / ");
        reason = format!("{reason} ({tail})");
    }
    FaultKind::Trap(reason.chars().take(512).collect())
}
