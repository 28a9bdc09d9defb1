//! A disk cache of compiled plugins, so that an engine restart does not pay
//! for Cranelift again. Entries are keyed by the plugin's sha256 and by a hash
//! of the engine's compilation settings and Wasmtime version: a stale entry
//! is simply never looked up.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use wasmtime::Engine;
use wasmtime::component::Component;

#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
}

impl ArtifactCache {
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating plugin cache directory {}", dir.display()))?;
        Ok(Self { dir })
    }

    /// The default location: `$SLUICE_PLUGIN_CACHE`, else `$XDG_CACHE_HOME/sluice`
    /// or `~/.cache/sluice`.
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("SLUICE_PLUGIN_CACHE") {
            return Some(PathBuf::from(dir));
        }
        if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
            return Some(Path::new(&dir).join("sluice"));
        }
        std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache").join("sluice"))
    }

    fn path_for(&self, engine: &Engine, digest: &str) -> PathBuf {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        env!("CARGO_PKG_VERSION").hash(&mut h);
        self.dir.join(format!("{digest}-{:016x}.cwasm", h.finish()))
    }

    /// Loads the compiled form of `wasm`, compiling and storing it on a miss.
    /// Cache I/O problems are logged and never fatal: compiling is the fallback.
    pub fn load_or_compile(&self, engine: &Engine, digest: &str, wasm: &[u8]) -> Result<Component> {
        let path = self.path_for(engine, digest);
        if let Ok(bytes) = std::fs::read(&path) {
            // Read into memory rather than mapping the file: a mapped file
            // that someone truncates would crash the process (SIGBUS).
            // SAFETY: the bytes were written by `Component::serialize` of this
            // engine configuration (the key includes its compatibility hash)
            // into a directory only Sluice writes; Wasmtime still checks the
            // header and refuses incompatible artifacts.
            match unsafe { Component::deserialize(engine, &bytes) } {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "ignoring unusable cached plugin")
                }
            }
        }
        let component = Component::new(engine, wasm)?;
        match component.serialize() {
            Ok(bytes) => {
                let tmp = path.with_extension(format!("tmp{}", std::process::id()));
                let written =
                    std::fs::write(&tmp, &bytes).and_then(|()| std::fs::rename(&tmp, &path));
                if let Err(e) = written {
                    tracing::warn!(path = %path.display(), error = %e, "could not cache compiled plugin");
                    let _ = std::fs::remove_file(&tmp);
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not serialize compiled plugin"),
        }
        Ok(component)
    }
}
