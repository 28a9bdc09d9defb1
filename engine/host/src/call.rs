//! One plugin call: a fresh store, a budget that always holds, and what went
//! wrong, classified.
//!
//! How a call is bounded, whatever the guest does:
//! - it runs asynchronously on the caller's executor thread (no thread hop);
//! - the engine's epoch advances every [`EPOCH_TICK`]; after the call's
//!   first [`RUN_BEFORE_YIELD`], at each tick the guest yields to the
//!   executor, so other Canaries' work interleaves, and once the call's
//!   budget has passed the guest traps (`Timeout`);
//! - the whole call, instantiation included, sits inside a
//!   `tokio::time::timeout` of the budget plus [`SLACK`]: a host call that
//!   waits (none of the stand-ins do, see `sandbox.rs`) is cut off there;
//! - memory growth past the cap traps (`MemoryExhausted`);
//! - log lines, stdout and stderr are capped per call.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::sandbox;
use super::{FaultKind, PluginFault, PluginMetrics};

/// How often the epoch advances; the granularity of time budgets.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(2);
/// A call runs this long before it first yields to other Canaries' work:
/// a short call (most take microseconds) ends without ever waiting
/// behind another guest's slice, however many hostile guests share the
/// executor thread.
const RUN_BEFORE_YIELD: Duration = Duration::from_millis(10);
/// How much past its budget a call may end: the epoch's granularity and
/// the executor's scheduling.
const SLACK: Duration = Duration::from_millis(50);
/// At most this many log lines of one call are kept; the rest are counted.
pub const MAX_LOG_LINES: usize = 32;
/// Longer log lines are cut.
const MAX_LOG_LINE: usize = 1024;

/// The most of a plugin's own error or trap output a fault keeps.
const MAX_REASON: usize = 512;

/// Text a plugin wrote, for logs and events: at most `max` characters, one
/// line, no control characters (a plugin cannot forge log lines or drive a
/// terminal).
fn printable(text: &str, max: usize) -> String {
    text.chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

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

/// Where a plugin's log lines go besides `tracing` (target
/// `sluice::plugin`): `sluice plugin check` collects them to show them.
pub type LogSink = Arc<Mutex<Vec<String>>>;

/// The state of one call's store.
pub(crate) struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    memory: MemoryCap,
    output: MemoryOutputPipe,
    plugin: String,
    logged: usize,
    sink: Option<LogSink>,
}

impl CallState {
    fn new(plugin: &str, limits: Limits, sink: Option<LogSink>) -> Self {
        let output = MemoryOutputPipe::new(sandbox::OUTPUT_CAPTURE_BYTES);
        Self {
            wasi: sandbox::context(&output),
            table: ResourceTable::new(),
            memory: MemoryCap {
                cap: limits.memory_bytes,
                exceeded: false,
            },
            output,
            plugin: plugin.to_string(),
            logged: 0,
            sink,
        }
    }

    /// Records one log line of the plugin, within the per-call cap.
    fn record_log(&mut self, level: tracing::Level, message: &str) {
        self.logged += 1;
        if self.logged > MAX_LOG_LINES {
            return;
        }
        let mut line = printable(message, MAX_LOG_LINE);
        if self.logged == MAX_LOG_LINES {
            line = format!("{line} (log limit of {MAX_LOG_LINES} lines per call reached)");
        }
        match level {
            tracing::Level::ERROR => {
                tracing::error!(target: "sluice::plugin", plugin = %self.plugin, "{line}")
            }
            tracing::Level::WARN => {
                tracing::warn!(target: "sluice::plugin", plugin = %self.plugin, "{line}")
            }
            tracing::Level::INFO => {
                tracing::info!(target: "sluice::plugin", plugin = %self.plugin, "{line}")
            }
            _ => tracing::debug!(target: "sluice::plugin", plugin = %self.plugin, "{line}"),
        }
        if let Some(sink) = &self.sink
            && let Ok(mut lines) = sink.lock()
        {
            lines.push(format!("{}: {line}", level.as_str().to_ascii_lowercase()));
        }
    }

    /// What the guest wrote to stdout and stderr, trimmed.
    fn output(&self) -> String {
        String::from_utf8_lossy(&self.output.contents())
            .trim()
            .to_string()
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

/// What a call needs besides its closures.
pub(crate) struct CallContext<'a> {
    pub(crate) engine: &'a Engine,
    pub(crate) metrics: &'a PluginMetrics,
    pub(crate) plugin: &'a str,
    pub(crate) limits: Limits,
    pub(crate) sink: Option<LogSink>,
    /// One permit per call the instance pool has room for.
    pub(crate) permits: &'a tokio::sync::Semaphore,
}

/// Runs one plugin call in a fresh store and classifies what went wrong.
/// `call` instantiates the plugin and calls it.
pub(crate) async fn run_call<R>(
    cx: CallContext<'_>,
    call: impl AsyncFnOnce(&mut Store<CallState>) -> wasmtime::Result<Result<R, String>>,
) -> Result<R, PluginFault> {
    // Waiting for room in the pool is not the plugin's time: every call
    // holding a permit ends within its own budget.
    let _permit = cx.permits.acquire().await;
    let started = Instant::now();
    let mut store = new_store(&cx, started);
    let outcome = tokio::time::timeout(cx.limits.time_budget + SLACK, call(&mut store)).await;
    let result = match outcome {
        Ok(Ok(Ok(answer))) => Ok(answer),
        Ok(Ok(Err(message))) => Err(FaultKind::Error(printable(&message, MAX_REASON))),
        Ok(Err(e)) => Err(classify(&e, store.data(), cx.limits)),
        Err(_elapsed) => Err(FaultKind::Timeout {
            budget_ms: cx.limits.time_budget.as_millis() as u64,
        }),
    };
    let result = result.map_err(|kind| PluginFault {
        plugin: cx.plugin.to_string(),
        kind,
    });
    let fault = result.as_ref().err().map(|f| f.kind.label());
    cx.metrics.record(cx.plugin, started.elapsed(), fault);
    result
}

/// A store whose guest yields at every epoch tick and traps once the
/// budget, counted from `started`, has passed.
fn new_store(cx: &CallContext<'_>, started: Instant) -> Store<CallState> {
    let mut store = Store::new(
        cx.engine,
        CallState::new(cx.plugin, cx.limits, cx.sink.clone()),
    );
    store.limiter(|s| &mut s.memory);
    let budget = cx.limits.time_budget;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        let ran = started.elapsed();
        Ok(if ran >= budget {
            UpdateDeadline::Interrupt
        } else if ran < RUN_BEFORE_YIELD {
            UpdateDeadline::Continue(1)
        } else {
            UpdateDeadline::Yield(1)
        })
    });
    store
}

fn classify(e: &wasmtime::Error, state: &CallState, limits: Limits) -> FaultKind {
    if state.memory.exceeded {
        return FaultKind::MemoryExhausted {
            cap_bytes: limits.memory_bytes,
        };
    }
    if let Some(Trap::Interrupt) = e.downcast_ref::<Trap>() {
        return FaultKind::Timeout {
            budget_ms: limits.time_budget.as_millis() as u64,
        };
    }
    // The cause without Wasmtime's backtrace context.
    let mut reason = match e.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => e.root_cause().to_string(),
    };
    let output = state.output();
    if !output.is_empty() {
        let lines: Vec<&str> = output.lines().collect();
        let tail = lines[lines.len().saturating_sub(3)..].join(" / ");
        reason = format!("{reason} ({tail})");
    }
    FaultKind::Trap(printable(&reason, MAX_REASON))
}

/// The `log` import of one world: both worlds share it, but each has its
/// own generated types.
macro_rules! log_host {
    ($world:ident) => {
        impl super::bindings::$world::sluice::plugin::log::Host for CallState {
            fn log(
                &mut self,
                level: super::bindings::$world::sluice::plugin::log::Level,
                message: String,
            ) {
                use super::bindings::$world::sluice::plugin::log::Level;
                let level = match level {
                    Level::Debug => tracing::Level::DEBUG,
                    Level::Info => tracing::Level::INFO,
                    Level::Warn => tracing::Level::WARN,
                    Level::Error => tracing::Level::ERROR,
                };
                self.record_log(level, &message);
            }
        }
    };
}

log_host!(strategy_v1);
log_host!(evaluator_v1);
log_host!(strategy_v2);
log_host!(evaluator_v2);

// Type-only interfaces the worlds import: nothing to implement.
impl super::bindings::strategy_v1::sluice::plugin::types::Host for CallState {}
impl super::bindings::strategy_v1::sluice::plugin::strategy_types::Host for CallState {}
impl super::bindings::evaluator_v1::sluice::plugin::evaluator_types::Host for CallState {}
impl super::bindings::strategy_v2::sluice::plugin::types::Host for CallState {}
impl super::bindings::strategy_v2::sluice::plugin::strategy_types::Host for CallState {}
impl super::bindings::evaluator_v2::sluice::plugin::evaluator_types::Host for CallState {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_call_that_waits_on_the_host_is_cut_off_at_budget_plus_slack() {
        // No stand-in waits, but if a host call ever did, the call's timer
        // still ends it: here the "call" never finishes at all.
        let engine = Engine::default();
        let metrics = PluginMetrics::default();
        let permits = tokio::sync::Semaphore::new(1);
        let limits = Limits {
            time_budget: Duration::from_millis(20),
            ..Limits::default()
        };
        let cx = CallContext {
            engine: &engine,
            metrics: &metrics,
            plugin: "waiter",
            limits,
            sink: None,
            permits: &permits,
        };
        let started = Instant::now();
        let result: Result<(), PluginFault> = run_call(cx, async |_store| {
            std::future::pending::<()>().await;
            Ok(Ok(()))
        })
        .await;
        let fault = result.unwrap_err();
        assert_eq!(fault.kind, FaultKind::Timeout { budget_ms: 20 });
        assert!(started.elapsed() >= Duration::from_millis(20) + SLACK);
        assert!(started.elapsed() < Duration::from_secs(5));
        // The permit is back: the next call can run.
        assert_eq!(permits.available_permits(), 1);
    }

    #[tokio::test]
    async fn waiting_for_a_pool_slot_is_not_part_of_the_budget() {
        // One slot, two calls of 60 ms each under a 100 ms budget: the
        // second waits for the first, then gets its own full budget.
        let engine = Engine::default();
        let metrics = PluginMetrics::default();
        let permits = tokio::sync::Semaphore::new(1);
        let call = || {
            let cx = CallContext {
                engine: &engine,
                metrics: &metrics,
                plugin: "slow",
                limits: Limits::default(),
                sink: None,
                permits: &permits,
            };
            run_call(cx, async |_store| {
                tokio::time::sleep(Duration::from_millis(60)).await;
                Ok(Ok(()))
            })
        };
        let started = Instant::now();
        let (a, b) = tokio::join!(call(), call());
        assert_eq!((a, b), (Ok(()), Ok(())));
        assert!(started.elapsed() >= Duration::from_millis(120));
    }

    #[test]
    fn log_lines_are_cut_at_their_length_and_counted_per_call() {
        let sink = LogSink::default();
        let mut state = CallState::new("p", Limits::default(), Some(sink.clone()));
        state.record_log(tracing::Level::INFO, &"x".repeat(5000));
        state.record_log(tracing::Level::WARN, "forged\nINFO admin logged in\x1b[2J");
        for _ in 0..100 {
            state.record_log(tracing::Level::DEBUG, "again");
        }
        let lines = sink.lock().unwrap().clone();
        assert_eq!(lines.len(), MAX_LOG_LINES);
        assert_eq!(lines[0], format!("info: {}", "x".repeat(MAX_LOG_LINE)));
        assert_eq!(lines[1], "warn: forged INFO admin logged in [2J");
    }
}
