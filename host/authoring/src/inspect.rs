//! `claimsmith inspect`: what a compiled plugin is before it is deployed —
//! its world, imports and exports, size, digest, source language and
//! compile time. A component that is not a Claimsmith plugin is refused.
//!
//! Owns what the command shows; compiling, the import checks and reading
//! the component's metadata (its producers, its language) are the engine's.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use claimsmith_capabilities::http::OutboundHttp;
use claimsmith_engine::{Engine, EngineSettings, PluginSpec, World};

#[derive(Debug)]
pub struct Inspection {
    pub world: World,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    pub size_bytes: u64,
    pub sha256: String,
    /// The source language, from the producers sections, when they say.
    pub language: Option<String>,
    /// Every `language`, `processed-by` and `sdk` entry, as `name version`.
    pub producers: Vec<String>,
    pub compile_time: Duration,
}

pub fn inspect(path: &Path) -> Result<Inspection> {
    let wasm = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let http = OutboundHttp::new().context("cannot set up the engine's HTTP client")?;
    let engine = Engine::new(&EngineSettings::default(), http)?;
    let description = engine.describe(&wasm).map_err(|reason| {
        anyhow::anyhow!(
            "{} is not a WebAssembly component Claimsmith can run: {reason}",
            path.display()
        )
    })?;
    let Some(world) = description.world else {
        bail!(
            "{} is not a Claimsmith plugin: it exports [{}], and a plugin exports \
             `on-execute-post-login` (post-login-action), `on-execute-credentials-exchange` \
             (credentials-exchange) or `fetch-profile` (profile-fetcher)",
            path.display(),
            description.exports.join(", ")
        );
    };
    // The same checks as at start: every import must be one the host grants.
    engine.load(PluginSpec {
        name: path
            .file_stem()
            .map_or_else(|| "plugin".to_owned(), |s| s.to_string_lossy().into_owned()),
        path: path.to_owned(),
        sha256: None,
        source: claimsmith_engine::PluginSource::File,
        version: None,
        world,
        capture: false,
        limits: Default::default(),
        secrets: Default::default(),
        http: Default::default(),
        redirect_origins: Vec::new(),
    })?;
    Ok(Inspection {
        world,
        imports: description.imports,
        exports: description.exports,
        size_bytes: wasm.len() as u64,
        sha256: hex::encode(Sha256::digest(&wasm)),
        language: description.language,
        producers: description
            .producers
            .iter()
            .map(|(field, name, version)| {
                format!("{field}: {name} {version}").trim_end().to_owned()
            })
            .collect(),
        compile_time: description.compile_time,
    })
}
