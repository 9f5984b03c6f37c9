//! Project automation, so that a fresh clone needs two commands:
//!
//! - `cargo xtask demo`: builds the plugins and the host, then runs
//!   `claimsmith demo`: the service, a development upstream provider, and one
//!   login through the plugin chain over HTTP; it keeps serving.
//! - `cargo xtask test`: builds the plugins, then runs every test.
//!
//! Also `cargo xtask plugins` (only build the plugins) and `cargo xtask bench`.
//! It installs what the build needs (the `wasm32-wasip2` target) itself.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const WASM_TARGET: &str = "wasm32-wasip2";
/// The cargo profile plugins are built with; see the workspace Cargo.toml.
const PLUGIN_PROFILE: &str = "plugin";
/// Folders whose every subfolder with a Cargo.toml is a plugin crate.
const PLUGIN_DIRS: &[&str] = &["plugins", "tests/plugins"];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("plugins") => build_plugins(),
        Some("demo") => build_plugins().and_then(|()| demo()),
        Some("test") => build_plugins().and_then(|()| test(&args[1..])),
        Some("bench") => build_plugins().and_then(|()| bench(&args[1..])),
        _ => {
            eprintln!(
                "usage: cargo xtask <plugins | demo | test [cargo test args] | bench [criterion args]>"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    // xtask/ lives in the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn cargo() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.current_dir(root());
    command
}

fn run(command: &mut Command) -> Result<(), String> {
    let status = command
        .status()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{command:?} failed with {status}"))
    }
}

fn ensure_wasm_target() -> Result<(), String> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| format!("cannot run rustup (needed to add the {WASM_TARGET} target): {e}"))?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|line| line.trim() == WASM_TARGET)
    {
        return Ok(());
    }
    eprintln!("xtask: installing the {WASM_TARGET} target");
    run(Command::new("rustup").args(["target", "add", WASM_TARGET]))
}

fn plugin_crates() -> Result<Vec<String>, String> {
    let mut crates = Vec::new();
    for dir in PLUGIN_DIRS {
        let entries = std::fs::read_dir(root().join(dir)).map_err(|e| format!("{dir}: {e}"))?;
        for entry in entries {
            let manifest = entry.map_err(|e| e.to_string())?.path().join("Cargo.toml");
            if let Ok(text) = std::fs::read_to_string(&manifest) {
                let name = text
                    .lines()
                    .find_map(|line| line.strip_prefix("name = \""))
                    .and_then(|rest| rest.strip_suffix('"'))
                    .ok_or_else(|| format!("{}: no package name", manifest.display()))?;
                crates.push(name.to_owned());
            }
        }
    }
    crates.sort();
    Ok(crates)
}

/// Builds every plugin to `target/wasm32-wasip2/plugin/<crate>.wasm`.
fn build_plugins() -> Result<(), String> {
    ensure_wasm_target()?;
    let mut command = cargo();
    command.args([
        "build",
        "--target",
        WASM_TARGET,
        "--profile",
        PLUGIN_PROFILE,
    ]);
    for name in plugin_crates()? {
        command.args(["-p", &name]);
    }
    run(&mut command)
}

/// The main job: the service on the embedded defaults, a development
/// upstream provider, and one login through the plugin chain over HTTP.
fn demo() -> Result<(), String> {
    claimsmith(
        &["--release"],
        &["demo", "--config", "examples/demo/claimsmith.toml"],
    )
}

fn test(extra: &[String]) -> Result<(), String> {
    run(cargo()
        .args([
            "test",
            "--package",
            "claimsmith",
            "--package",
            "claimsmith-tests",
        ])
        .args(extra))?;
    // The shipped golden cases, through the command CI users run.
    claimsmith(&["--quiet"], &["test", "plugins", "examples"])?;
    // The recorded example login must keep working, as a user runs it.
    claimsmith(
        &["--quiet"],
        &[
            "run",
            "--config",
            "examples/okta/claimsmith.toml",
            "--input",
            "examples/okta/login.json",
        ],
    )
}

/// Runs the `claimsmith` binary through cargo, as a user would.
fn claimsmith(cargo_args: &[&str], args: &[&str]) -> Result<(), String> {
    run(cargo()
        .arg("run")
        .args(cargo_args)
        .args(["--package", "claimsmith", "--"])
        .args(args))
}

fn bench(extra: &[String]) -> Result<(), String> {
    run(cargo()
        .args(["bench", "--package", "claimsmith", "--bench", "login", "--"])
        .args(extra))
}
