//! A disk cache of compiled plugins, so that an engine restart does not pay
//! for Cranelift again. Entries are keyed by the plugin's sha256 and by a hash
//! of the engine's compilation settings and Wasmtime version: a stale entry
//! is simply never looked up.
//!
//! It also keeps verified components themselves (`{sha256}.wasm`), so that a
//! RolloutPlugin's last good version can be loaded again after a restart
//! when its source has gone bad or away.
//!
//! Why not Wasmtime's own cache (`wasmtime-cache`, `Config::cache`)? It keys
//! entries by a hash of the module bytes and compiler settings, compresses
//! them with zstd and prunes them from a background worker configured by a
//! TOML file. Sluice needs entries addressed by the sha256 a RolloutPlugin
//! pins (the same key its status reports), and the verified source bytes
//! next to them for the last-good fallback, which that cache cannot hold;
//! plugins are small (tens of KiB built-in, 32 MiB at most), so compression
//! and a pruning worker would add a C build (zstd) and a thread for little.
//! What both share: a restart loads a compiled plugin in about 0.3 ms
//! instead of compiling it again.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::Result;
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Why the plugin cache refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("creating plugin cache directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0:?} is not a sha256 digest")]
    NotADigest(String),
    #[error("the component's sha256 is {actual}, not {expected}")]
    DigestMismatch { actual: String, expected: String },
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
}

impl ArtifactCache {
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, CacheError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|source| CacheError::CreateDir {
            path: dir.clone(),
            source,
        })?;
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
    pub(crate) fn load_or_compile(
        &self,
        engine: &Engine,
        digest: &str,
        wasm: &[u8],
    ) -> Result<Component> {
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

    fn component_path(&self, digest: &str) -> Option<PathBuf> {
        // The digest comes from a status anyone with access may write:
        // never a path.
        let hex = digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit());
        hex.then(|| {
            self.dir
                .join(format!("{}.wasm", digest.to_ascii_lowercase()))
        })
    }

    /// Keeps a verified component under its sha256 (hex), written atomically.
    pub fn store_component(&self, digest: &str, wasm: &[u8]) -> Result<(), CacheError> {
        let Some(path) = self.component_path(digest) else {
            return Err(CacheError::NotADigest(digest.to_string()));
        };
        let actual = hex::encode(Sha256::digest(wasm));
        if actual != digest.to_ascii_lowercase() {
            return Err(CacheError::DigestMismatch {
                actual,
                expected: digest.to_string(),
            });
        }
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == wasm.len() as u64) {
            return Ok(());
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, wasm)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|source| {
                let _ = std::fs::remove_file(&tmp);
                CacheError::Write { path, source }
            })
    }

    /// The component stored under `digest`, when it is there and still has
    /// that digest.
    pub fn component(&self, digest: &str) -> Option<Vec<u8>> {
        let path = self.component_path(digest)?;
        let bytes = std::fs::read(&path).ok()?;
        if hex::encode(Sha256::digest(&bytes)) != digest.to_ascii_lowercase() {
            tracing::warn!(path = %path.display(), "ignoring a cached component whose digest does not match");
            return None;
        }
        Some(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_are_kept_by_digest_and_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let cache = ArtifactCache::new(dir).unwrap();
        let wasm = b"\0asm not really";
        let digest = hex::encode(Sha256::digest(wasm));
        assert_eq!(cache.component(&digest), None);
        cache.store_component(&digest, wasm).unwrap();
        assert_eq!(cache.component(&digest).as_deref(), Some(&wasm[..]));
        assert!(cache.store_component(&"0".repeat(64), wasm).is_err());
        assert!(cache.store_component("../escape", wasm).is_err());
        assert_eq!(cache.component("../escape"), None);
        std::fs::write(dir.join(format!("{digest}.wasm")), b"tampered").unwrap();
        assert_eq!(cache.component(&digest), None, "a changed file is not used");
    }
}
