//! The on-disk cache of compiled plugins, so a restart does not recompile.
//!
//! An entry is keyed by the sha256 of the wasm and by the engine's
//! compatibility hash (wasmtime version, target, compiler settings): a new
//! wasm, a new wasmtime or a changed setting all miss the cache.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::component::Component;

pub(crate) struct CompileCache {
    dir: PathBuf,
}

impl CompileCache {
    pub(crate) fn new(dir: PathBuf) -> Self {
        CompileCache { dir }
    }

    /// The compiled form of `wasm`, from the cache or compiled and cached now.
    /// A cache that cannot be read or written costs a compile, never a failure.
    pub(crate) fn component(
        &self,
        engine: &wasmtime::Engine,
        wasm: &[u8],
        digest: &str,
    ) -> wasmtime::Result<Component> {
        let path = self.entry_path(engine, digest);
        if path.exists() {
            // SAFETY: deserializing runs the machine code in the file. The cache
            // directory (the data directory's by default, or `compile_cache_dir`)
            // is written only by `store` below from wasmtime's own output, and
            // must be as private as the data directory: whoever can write there
            // can run code in the host.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok(component),
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "compile cache entry unusable; recompiling");
                }
            }
        }
        let compiled = engine.precompile_component(wasm)?;
        if let Err(error) = store(&path, &compiled) {
            tracing::warn!(path = %path.display(), %error, "cannot write the compile cache");
        }
        // SAFETY: `compiled` was produced by this engine a moment ago.
        unsafe { Component::deserialize(engine, &compiled) }
    }

    fn entry_path(&self, engine: &wasmtime::Engine, digest: &str) -> PathBuf {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        self.dir
            .join(format!("{digest}-{:016x}.cwasm", hasher.finish()))
    }
}

/// Writes next to the final path and renames, so a crash or a concurrent
/// start never leaves a half-written entry under the real name.
fn store(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let unique = WRITES.fetch_add(1, Ordering::Relaxed);
    let temporary = path.with_extension(format!("tmp-{}-{unique}", std::process::id()));
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(&temporary, path)
}
