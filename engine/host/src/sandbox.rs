//! What a plugin's WASI imports get. Toolchains add WASI imports to every
//! component (Rust's `wasm32-wasip2` std, componentize-py, componentize-js),
//! so the host links WASI 0.2, but with stand-ins that are deterministic and
//! never wait:
//!
//! | interface | what the plugin gets |
//! | --- | --- |
//! | `wasi:clocks/wall-clock`, `monotonic-clock` `now` | a clock frozen at 0 |
//! | `wasi:clocks/monotonic-clock` `subscribe-*` | a trap: plugins may not wait |
//! | `wasi:random/*` | a fixed-seed generator, the same bytes every call |
//! | `wasi:cli/environment` | no variables, no arguments |
//! | `wasi:cli/stdin` | an empty stream (end of input at once) |
//! | `wasi:cli/stdout`, `stderr` | captured, at most 4 KiB per call; a write past that fails |
//! | `wasi:filesystem/*` | no preopened directory: nothing to open |
//! | `wasi:sockets/*` | every socket and name lookup refused |
//! | `wasi:io/*` | streams and polls over the above, all ready at once |
//!
//! Nothing else is linked: a component that imports another package
//! (`wasi:http`, say) is refused at load with the import named. Calls run
//! asynchronously under a deadline as well (see `call.rs`), so even a host
//! call that could wait would be cut off at the plugin's budget.

use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

/// The WASI packages the host links (version 0.2.x).
const WASI_PACKAGES: [&str; 6] = [
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:cli/",
    "wasi:filesystem/",
    "wasi:sockets/",
];

/// The WASI 0.2 version wasmtime-wasi defines; the linker matches any
/// 0.2.x import to it.
const WASI_VERSION: &str = "0.2.12";

/// Functions that would make a plugin wait, each a trap that names it.
const DENIED: [(&str, &str, &str); 2] = [
    (
        "wasi:clocks/monotonic-clock",
        "subscribe-duration",
        "plugins may not sleep or wait; time comes from the host's inputs (observation)",
    ),
    (
        "wasi:clocks/monotonic-clock",
        "subscribe-instant",
        "plugins may not sleep or wait; time comes from the host's inputs (observation)",
    ),
];

/// At most this much of a plugin's stdout and stderr is kept per call.
pub(crate) const OUTPUT_CAPTURE_BYTES: usize = 4096;

/// Whether the host links the WASI interface `import` (a full import name
/// such as `wasi:cli/stdout@0.2.4`).
pub(crate) fn links(import: &str) -> bool {
    WASI_PACKAGES.iter().any(|p| import.starts_with(p))
        && import
            .rsplit_once('@')
            .is_some_and(|(_, v)| v.starts_with("0.2."))
}

/// What a plugin gets for one of its WASI imports, in a few words, for
/// `sluice plugin check`.
pub(crate) fn describe(import: &str) -> &'static str {
    let interface = import.split('@').next().unwrap_or(import);
    match interface {
        "wasi:clocks/wall-clock" => "frozen at 0",
        "wasi:clocks/monotonic-clock" => "frozen at 0; subscribe-duration/-instant trap",
        "wasi:random/random" | "wasi:random/insecure" | "wasi:random/insecure-seed" => {
            "fixed seed: the same bytes every call"
        }
        "wasi:cli/environment" => "empty",
        "wasi:cli/stdin" => "empty stream",
        "wasi:cli/stdout" | "wasi:cli/stderr" => "captured, 4 KiB per call",
        "wasi:cli/exit" => "exit ends the call as a trap",
        "wasi:filesystem/preopens" | "wasi:filesystem/types" => "no directories",
        i if i.starts_with("wasi:sockets/") => "refused",
        i if i.starts_with("wasi:cli/terminal") => "no terminal",
        "wasi:io/poll" | "wasi:io/streams" | "wasi:io/error" => "over the stand-ins, never waits",
        _ => "not provided",
    }
}

/// Adds WASI, with the stand-ins, to `linker`.
pub(crate) fn add_to_linker<T: wasmtime_wasi::WasiView + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    linker.allow_shadowing(true);
    for (interface, function, why) in DENIED {
        let mut instance = linker.instance(&format!("{interface}@{WASI_VERSION}"))?;
        let message = format!("{interface}.{function} is not available to plugins: {why}");
        instance.func_new(function, move |_, _, _, _| {
            Err(wasmtime::Error::msg(message.clone()))
        })?;
    }
    linker.allow_shadowing(false);
    Ok(())
}

/// The WASI context of one call: no capabilities, deterministic stand-ins,
/// and `output` as stdout and stderr.
pub(crate) fn context(output: &MemoryOutputPipe) -> WasiCtx {
    WasiCtx::builder()
        .stdout(output.clone())
        .stderr(output.clone())
        .wall_clock(FrozenClock)
        .monotonic_clock(FrozenClock)
        .secure_random(FixedRandom(0x5eed))
        .insecure_random(FixedRandom(0x5eed))
        .insecure_random_seed(0)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_wasi_0_2_of_the_linked_packages() {
        assert!(links("wasi:cli/stdout@0.2.4"));
        assert!(links("wasi:sockets/tcp@0.2.0"));
        assert!(!links("wasi:http/types@0.2.4"));
        assert!(!links("wasi:cli/stdout@0.3.0"));
        assert!(!links("wasi:cli/stdout"));
        assert_eq!(
            describe("wasi:clocks/monotonic-clock@0.2.4"),
            "frozen at 0; subscribe-duration/-instant trap"
        );
    }
}
