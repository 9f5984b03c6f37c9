//! Rust: a `cdylib` crate on `claimsmith-sdk`, built by cargo for
//! `wasm32-wasip2` with the `plugin` profile. cargo decides what is up to
//! date.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::{BuildOptions, Language, Project, Toolchain, copy_into_place, read_build_file, run};

/// The cargo profile Rust plugins are built with (small, LTO).
pub const RUST_PROFILE: &str = "plugin";
const WASM_TARGET: &str = "wasm32-wasip2";

pub struct Rust;

impl Toolchain for Rust {
    fn language(&self) -> Language {
        Language::Rust
    }

    fn detect(&self, dir: &Path) -> Result<Option<Project>> {
        let Some(text) = read_build_file(dir, "Cargo.toml")? else {
            return Ok(None);
        };
        let manifest: toml::Table =
            toml::from_str(&text).with_context(|| format!("{}/Cargo.toml", dir.display()))?;
        let Some(name) = manifest
            .get("package")
            .and_then(|p| p.get("name"))
            .and_then(|n| n.as_str())
        else {
            // A workspace manifest: its members are found by the search.
            return Ok(None);
        };
        let cdylib = manifest
            .get("lib")
            .and_then(|lib| lib.get("crate-type"))
            .and_then(|types| types.as_array())
            .is_some_and(|types| types.iter().any(|t| t.as_str() == Some("cdylib")));
        if !cdylib {
            // A crate that is not a component (the host, a library): the
            // search goes on below it.
            return Ok(None);
        }
        Ok(Some(Project {
            name: name.to_owned(),
            language: Language::Rust,
            dir: dir.to_owned(),
            world: None,
            entry: String::new(),
        }))
    }

    fn build(&self, project: &Project, options: &BuildOptions, component: &Path) -> Result<bool> {
        // A failed build must not leave the last one looking current.
        let _ = std::fs::remove_file(component);
        build_rust(project, options.cargo_target_dir.as_deref(), component)?;
        Ok(false)
    }
}

fn build_rust(project: &Project, target_dir: Option<&Path>, component: &Path) -> Result<()> {
    ensure_wasm_target()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(&cargo);
    if let Some(dir) = target_dir {
        command
            .arg("--config")
            .arg(format!("build.target-dir={dir:?}"));
    }
    let output = command
        .args([
            "build",
            "--quiet",
            "--target",
            WASM_TARGET,
            "--profile",
            RUST_PROFILE,
        ])
        .arg("--manifest-path")
        .arg(project.dir.join("Cargo.toml"))
        .arg("--message-format=json-render-diagnostics")
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {cargo}: Rust plugins need cargo (rustup.rs)"))?;
    if !output.status.success() {
        bail!("cargo could not build {} ({})", project.name, output.status);
    }
    // The artifact's path, as cargo reports it: the target dir may be the
    // workspace's or the project's own.
    let built = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .flat_map(|message| message["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|file| file.as_str().map(PathBuf::from))
        .rfind(|file| file.extension().is_some_and(|e| e == "wasm"))
        .with_context(|| {
            format!(
                "cargo built {} but no .wasm: is it a `cdylib` on claimsmith-sdk?",
                project.name
            )
        })?;
    copy_into_place(&built, component)
}

fn ensure_wasm_target() -> Result<()> {
    let Ok(installed) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    else {
        // Without rustup the toolchain may still have the target; cargo says if not.
        return Ok(());
    };
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|line| line.trim() == WASM_TARGET)
    {
        return Ok(());
    }
    eprintln!("installing the {WASM_TARGET} Rust target");
    run(Command::new("rustup").args(["target", "add", WASM_TARGET]))
}
