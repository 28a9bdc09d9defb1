//! The playground's podinfo-like backends (engine/playground), for the
//! tests.

pub use sluice_playground::backend::Backend;
