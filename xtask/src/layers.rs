//! The host's layers, and the check that no crate under `host/` depends on
//! one in its own layer or above.
//!
//! Cargo refuses a cycle, but not an arrow between two crates that do not
//! yet depend on each other: without this check, `store` could start
//! depending on `server` as long as `server` did not (yet) use `store`.
//! The table is the README's layer drawing as data; `cargo xtask test` runs
//! the check before anything is built.

use std::path::{Path, PathBuf};

/// Each host crate with its layer: a crate may depend only on crates of a
/// lower layer.
const LAYERS: &[(&str, u8)] = &[
    ("claimsmith-core", 0),
    ("claimsmith-testkit", 0),
    ("claimsmith-oauth", 0),
    ("claimsmith-wit", 1),
    ("claimsmith-tokens", 1),
    ("claimsmith-config", 2),
    ("claimsmith-capabilities", 3),
    ("claimsmith-engine", 4),
    ("claimsmith-store", 5),
    ("claimsmith-keys", 6),
    ("claimsmith-pipeline", 7),
    ("claimsmith-golden", 8),
    ("claimsmith-devprovider", 8),
    ("claimsmith-authoring", 8),
    ("claimsmith-server", 9),
    ("claimsmith", 10),
];

/// Checks every `host/*/Cargo.toml`: each crate is in [`LAYERS`], and each
/// of its `claimsmith-*` dependencies (dev-dependencies included, except of
/// the binary, whose end-to-end tests use everything) is in a lower layer.
pub fn check(host: &Path) -> Result<(), String> {
    let mut problems = Vec::new();
    for (manifest, text) in host_manifests(host)? {
        let name = package_name(&text)
            .ok_or_else(|| format!("{} names no package", manifest.display()))?;
        let Some(layer) = layer_of(name) else {
            problems.push(format!(
                "{name} is not in xtask/src/layers.rs: give it a layer"
            ));
            continue;
        };
        for dependency in internal_dependencies(&text) {
            match layer_of(dependency) {
                Some(below) if below < layer => {}
                Some(_) => problems.push(format!(
                    "{name} (layer {layer}) depends on {dependency}, which is not below it"
                )),
                None => problems.push(format!(
                    "{name} depends on {dependency}, which has no layer"
                )),
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the host's layers are broken:\n  {}",
            problems.join("\n  ")
        ))
    }
}

/// Every `host/*/Cargo.toml`, with its text.
pub fn host_manifests(host: &Path) -> Result<Vec<(PathBuf, String)>, String> {
    let entries =
        std::fs::read_dir(host).map_err(|e| format!("cannot list {}: {e}", host.display()))?;
    let mut manifests = Vec::new();
    for entry in entries {
        let manifest = entry.map_err(|e| e.to_string())?.path().join("Cargo.toml");
        if let Ok(text) = std::fs::read_to_string(&manifest) {
            manifests.push((manifest, text));
        }
    }
    Ok(manifests)
}

fn layer_of(name: &str) -> Option<u8> {
    LAYERS
        .iter()
        .find(|(crate_name, _)| *crate_name == name)
        .map(|(_, layer)| *layer)
}

/// The `name = "..."` of a manifest's `[package]` table.
pub fn package_name(manifest: &str) -> Option<&str> {
    manifest
        .lines()
        .find_map(|line| line.strip_prefix("name = \""))
        .and_then(|rest| rest.strip_suffix('"'))
}

/// The `claimsmith-*` crates a manifest's dependency tables name (the
/// workspace pins every one, so each is a line `claimsmith-x.workspace = true`
/// or `claimsmith-x = { workspace = true, ... }`). The binary's
/// dev-dependencies are left out: its end-to-end tests may use any layer.
fn internal_dependencies(manifest: &str) -> Vec<&str> {
    let is_binary = package_name(manifest) == Some("claimsmith");
    let mut table = "";
    let mut names = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            table = line;
            continue;
        }
        let counted = table == "[dependencies]" || (table == "[dev-dependencies]" && !is_binary);
        let name = line.split(['.', ' ', '=']).next().unwrap_or("");
        if counted && name.starts_with("claimsmith") {
            names.push(name);
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_arrow_up_or_sideways_is_reported() {
        let dir = std::env::temp_dir().join(format!("xtask-layers-{}", std::process::id()));
        let write = |crate_dir: &str, text: &str| {
            std::fs::create_dir_all(dir.join(crate_dir)).unwrap();
            std::fs::write(dir.join(crate_dir).join("Cargo.toml"), text).unwrap();
        };
        write(
            "store",
            "[package]\nname = \"claimsmith-store\"\n[dependencies]\nclaimsmith-core.workspace = true\n",
        );
        assert_eq!(check(&dir), Ok(()));
        write(
            "store",
            "[package]\nname = \"claimsmith-store\"\n[dependencies]\nclaimsmith-server = { workspace = true }\n",
        );
        let error = check(&dir).unwrap_err();
        assert!(
            error.contains("claimsmith-store (layer 5) depends on claimsmith-server"),
            "{error}"
        );
        write(
            "store",
            "[package]\nname = \"claimsmith-store\"\n[dev-dependencies]\nclaimsmith-keys.workspace = true\n",
        );
        assert!(check(&dir).unwrap_err().contains("claimsmith-keys"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_tree_keeps_its_layers() {
        let host = Path::new(env!("CARGO_MANIFEST_DIR")).join("../host");
        assert_eq!(check(&host), Ok(()));
    }
}
