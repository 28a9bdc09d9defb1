//! The playground's Envoy and its translator (engine/playground), for the
//! tests.

pub use sluice_playground::envoy::*;
pub use sluice_playground::load::Request;

/// The Envoy binary: `$SLUICE_ENVOY`, PATH, or the one `tests/run`
/// installs (target/tools/venv); a failure naming the install command
/// when there is none.
pub fn binary() -> std::path::PathBuf {
    sluice_playground::tools::find_envoy(None).unwrap_or_else(|e| panic!("{e}"))
}
