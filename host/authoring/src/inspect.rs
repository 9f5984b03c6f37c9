//! `claimsmith inspect`: what a compiled plugin is before it is deployed —
//! its world, imports and exports, size, digest, source language and
//! compile time. A component that is not a Claimsmith plugin is refused.
//!
//! Owns reading the component's metadata; compiling and the import checks
//! are the engine's.

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
        world,
        limits: Default::default(),
        secrets: Default::default(),
        http: Default::default(),
        redirect_origins: Vec::new(),
    })?;
    let producers = producers(&wasm);
    Ok(Inspection {
        world,
        imports: description.imports,
        exports: description.exports,
        size_bytes: wasm.len() as u64,
        sha256: hex::encode(Sha256::digest(&wasm)),
        language: source_language(&producers, &wasm),
        producers: producers
            .iter()
            .map(|(field, name, version)| {
                format!("{field}: {name} {version}").trim_end().to_owned()
            })
            .collect(),
        compile_time: description.compile_time,
    })
}

/// `(field, name, version)` of every producers section, in the component and
/// its nested modules, without repeats.
fn producers(wasm: &[u8]) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        let Ok(wasmparser::Payload::CustomSection(section)) = payload else {
            continue;
        };
        let wasmparser::KnownCustom::Producers(reader) = section.as_known() else {
            continue;
        };
        for field in reader.into_iter().flatten() {
            for value in field.values.into_iter().flatten() {
                let entry = (
                    field.name.to_owned(),
                    value.name.to_owned(),
                    value.version.to_owned(),
                );
                if !found.contains(&entry) {
                    found.push(entry);
                }
            }
        }
    }
    found
}

/// The language a plugin was written in. The componentizers of JavaScript
/// and Python embed an engine written in other languages (C++, Rust), so
/// their own marks come first; componentize-py leaves no producers entry, but
/// its runtime's symbols are in the component.
fn source_language(producers: &[(String, String, String)], wasm: &[u8]) -> Option<String> {
    let has = |wanted_field: &str, needle: &str| {
        producers.iter().any(|(field, name, _)| {
            field == wanted_field && name.to_ascii_lowercase().contains(needle)
        })
    };
    if has("language", "javascript")
        || has("processed-by", "componentizejs")
        || has("processed-by", "componentize-js")
    {
        return Some("JavaScript".to_owned());
    }
    if has("language", "python")
        || wasm
            .windows(PYTHON_RUNTIME_MARK.len())
            .any(|window| window == PYTHON_RUNTIME_MARK)
    {
        return Some("Python".to_owned());
    }
    if has("language", "rust") || has("processed-by", "wit-bindgen-rust") {
        return Some("Rust".to_owned());
    }
    producers
        .iter()
        .find(|(field, _, _)| field == "language")
        .map(|(_, name, _)| name.clone())
}

const PYTHON_RUNTIME_MARK: &[u8] = b"componentize_py_runtime";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn componentizers_name_the_source_language_before_their_engine() {
        let entry = |field: &str, name: &str| (field.to_owned(), name.to_owned(), String::new());
        let js = [
            entry("language", "C11"),
            entry("processed-by", "ComponentizeJS"),
        ];
        assert_eq!(source_language(&js, b"").as_deref(), Some("JavaScript"));
        // componentize-py: a Rust runtime, recognised by its symbols.
        let py = [entry("language", "Rust")];
        let py_wasm = b"...componentize_py_runtime...";
        assert_eq!(source_language(&py, py_wasm).as_deref(), Some("Python"));
        let rust = [entry("processed-by", "wit-bindgen-rust")];
        assert_eq!(source_language(&rust, b"").as_deref(), Some("Rust"));
        assert_eq!(source_language(&[], b""), None);
    }
}
