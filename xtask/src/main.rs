//! Project automation, so that a fresh clone needs two commands:
//!
//! - `cargo xtask demo`: builds the plugins and the host, then runs
//!   `claimsmith demo`: the service, a development upstream provider, and one
//!   login through the plugin chain over HTTP; it keeps serving.
//! - `cargo xtask test`: builds the plugins, then runs every test.
//!
//! Also `cargo xtask plugins` (only build the plugins) and `cargo xtask bench`
//! (every performance figure, see `bench.rs`).
//! It installs what the build needs (the `wasm32-wasip2` target) itself.

mod bench;
mod layers;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Where `claimsmith build` puts components (`<language>/<name>.wasm`).
const PLUGINS_OUT: &str = "target/plugins";
/// The compile cache of the end-to-end tests (`tests/all/support`): the
/// golden and scaffold steps share it, so the components (and the Cranelift
/// functions) the tests compiled are not compiled again.
const TEST_COMPILE_CACHE: &str = "target/test-compile-cache";
/// The host as every step builds it: with the development provider, which
/// the demo and the end-to-end tests start.
const HOST_FEATURES: &[&str] = &["--features", "claimsmith/demo"];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("plugins") => build_plugins(
            Profile::Debug,
            &["plugins", "tests/plugins", "examples/auth0"],
        ),
        Some("demo") => build_plugins(Profile::Release, &["plugins"]).and_then(|()| demo()),
        Some("test") => test(&args[1..]),
        Some("bench") => {
            build_plugins(Profile::Release, &["plugins"]).and_then(|()| bench::bench(&args[1..]))
        }
        _ => {
            eprintln!(
                "usage: cargo xtask <plugins | demo | test [cargo test args] | bench [in-process [criterion args] | load]>"
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

/// The host build the following steps use, so plugins are built by the same
/// binary and no second host build is needed.
#[derive(Clone, Copy)]
enum Profile {
    Debug,
    Release,
}

impl Profile {
    fn cargo_args(self) -> &'static [&'static str] {
        match self {
            Profile::Debug => &["--quiet"],
            Profile::Release => &["--quiet", "--release"],
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

/// Builds every plugin project under `dirs` (Rust, JavaScript, Python) with
/// `claimsmith build`, which installs the wasm target and the JavaScript and
/// Python toolchains itself.
fn build_plugins(profile: Profile, dirs: &[&str]) -> Result<(), String> {
    claimsmith(profile.cargo_args(), &build_args(dirs))
}

fn build_args<'a>(dirs: &[&'a str]) -> Vec<&'a str> {
    // The toolchains go where `claimsmith build` keeps them for this user
    // (`~/.cache/claimsmith/toolchains`), shared by every checkout as
    // cargo's registry is: not in `target/`, which `cargo clean` empties.
    let mut args = vec!["build", "--out", PLUGINS_OUT];
    args.extend_from_slice(dirs);
    args
}

/// The main job: the service on the embedded defaults, a development
/// upstream provider, and one login through the plugin chain over HTTP.
fn demo() -> Result<(), String> {
    claimsmith(
        Profile::Release.cargo_args(),
        &["demo", "--config", "examples/demo/claimsmith.toml"],
    )
}

fn test(extra: &[String]) -> Result<(), String> {
    layers::check(&root().join("host"))?;
    postgres()?;
    // Downloads while the build compiles; needed only when the tests run.
    let chromium = std::thread::spawn(chromium);
    // Every host crate's unit tests, the end-to-end binary (`tests/all`), the
    // load driver's and this tool's. Built first, and the host binary of
    // that build runs every other step: a `cargo run` would build the host a
    // second time, since dev-dependencies change the features of shared
    // crates (hyper-util, ...) and with them everything above.
    let packages = tested_packages()?;
    let cargo_test = || {
        let mut command = cargo();
        command
            .arg("test")
            .args(
                packages
                    .iter()
                    .flat_map(|package| ["--package", package.as_str()]),
            )
            .args(HOST_FEATURES);
        command
    };
    run(cargo_test().arg("--no-run"))?;
    debug_host(&build_args(&["plugins", "tests/plugins", "examples/auth0"]))?;
    chromium
        .join()
        .map_err(|_| "the chromium install panicked".to_owned())??;
    run(cargo_test().args(extra))?;
    // The shipped golden cases, through the command CI users run.
    debug_host(&[
        "test",
        "--builds",
        PLUGINS_OUT,
        "--compile-cache",
        TEST_COMPILE_CACHE,
        "plugins",
        "examples",
    ])?;
    scaffolds()?;
    // The recorded example login must keep working, as a user runs it.
    debug_host(&[
        "run",
        "--config",
        "examples/okta/claimsmith.toml",
        "--input",
        "examples/okta/login.json",
    ])
}

/// The packages whose tests `cargo xtask test` runs: every crate under
/// `host/` (read from the tree, so a new crate cannot be left out), the
/// load driver and this tool (its layer check). Plugins and SDKs are tested through them.
fn tested_packages() -> Result<Vec<String>, String> {
    let mut packages = vec!["claimsmith-load".to_owned(), "xtask".to_owned()];
    for (manifest, text) in layers::host_manifests(&root().join("host"))? {
        let name = layers::package_name(&text)
            .ok_or_else(|| format!("{} names no package", manifest.display()))?;
        packages.push(name.to_owned());
    }
    Ok(packages)
}

/// The tests' PostgreSQL (the machine's, unless `CLAIMSMITH_TEST_POSTGRES`
/// names another): started when it is not running, and cleared of scratch
/// databases an earlier run left behind (a test that panics skips its
/// drop). Each test makes its own fresh database.
fn postgres() -> Result<(), String> {
    let own_server = std::env::var_os("CLAIMSMITH_TEST_POSTGRES").is_none();
    let ready = || {
        Command::new("pg_isready")
            .args(["--quiet", "--host", "127.0.0.1", "--port", "5432"])
            .status()
            .is_ok_and(|status| status.success())
    };
    if own_server && !ready() {
        let versions = std::fs::read_dir("/etc/postgresql")
            .map_err(|e| format!("PostgreSQL is not running and /etc/postgresql: {e}"))?;
        for version in versions.flatten() {
            eprintln!(
                "xtask: starting PostgreSQL {}",
                version.file_name().to_string_lossy()
            );
            run(Command::new("pg_ctlcluster")
                .arg("--skip-systemctl-redirect")
                .arg(version.file_name())
                .args(["main", "start"]))?;
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !ready() {
            if std::time::Instant::now() > deadline {
                return Err("PostgreSQL did not come up on 127.0.0.1:5432".to_owned());
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
    if own_server {
        let psql = |sql: &str| {
            Command::new("psql")
                .args([
                    "--host",
                    "127.0.0.1",
                    "--username",
                    "postgres",
                    "--dbname",
                    "test",
                ])
                .args(["--no-align", "--tuples-only", "--command", sql])
                .output()
                .map_err(|e| format!("psql: {e}"))
        };
        let leftovers =
            psql("SELECT datname FROM pg_database WHERE datname LIKE 'claimsmith\\_scratch\\_%'")?;
        for name in String::from_utf8_lossy(&leftovers.stdout).lines() {
            psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
        }
    }
    Ok(())
}

/// Debian's Chromium and ChromeDriver, for the console's browser tests:
/// installed when missing.
fn chromium() -> Result<(), String> {
    let found = |program: &str| {
        Command::new(program)
            .arg("--version")
            .output()
            .is_ok_and(|output| output.status.success())
    };
    if found("chromedriver") && Path::new("/usr/bin/chromium").exists() {
        return Ok(());
    }
    eprintln!("xtask: installing chromium and chromium-driver (the console's browser tests)");
    let install = || {
        Command::new("apt-get")
            .args([
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "chromium",
                "chromium-driver",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|status| status.success())
    };
    if install() {
        return Ok(());
    }
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    if install() {
        Ok(())
    } else {
        Err("cannot install chromium and chromium-driver with apt-get".to_owned())
    }
}

/// `claimsmith new` must never rot: one project of each kind per language is
/// generated, built and held to the golden case it comes with, through the
/// commands a plugin author runs.
fn scaffolds() -> Result<(), String> {
    let dir = root().join("target/scaffolds");
    for language in ["rust", "js", "ts", "python"] {
        for kind in ["action", "profile-fetcher", "credentials-exchange"] {
            let project = dir.join(format!("{language}-{kind}"));
            if project.exists() {
                std::fs::remove_dir_all(&project)
                    .map_err(|e| format!("cannot clear {}: {e}", project.display()))?;
            }
            let project = project.display().to_string();
            let name = format!("new-{kind}");
            debug_host(&["new", kind, &name, "--lang", language, "--dir", &project])?;
            // Rust scaffolds are workspaces of their own: they build in the
            // workspace's target dir so the plugins' dependencies, already
            // compiled for the shipped plugins, are not compiled (and stored)
            // a second time.
            let cargo_target = root().join("target").display().to_string();
            debug_host(&[
                "build",
                &project,
                "--out",
                &format!("{project}/target/plugins"),
                "--cargo-target-dir",
                &cargo_target,
            ])?;
            let cached_before = compiled_components()?;
            debug_host(&[
                "test",
                "--compile-cache",
                TEST_COMPILE_CACHE,
                &format!("{project}/goldens"),
            ])?;
            // Passed: nothing in it is needed again (the next run makes it
            // anew), nor are its compiled components, 35 to 43 MB each for
            // JavaScript and Python (the functions they share with the
            // plugins stay cached). A project that failed stays, to be
            // looked at.
            for entry in compiled_components()?.difference(&cached_before) {
                std::fs::remove_file(entry)
                    .map_err(|e| format!("cannot remove {}: {e}", entry.display()))?;
            }
            std::fs::remove_dir_all(&project)
                .map_err(|e| format!("cannot clear {project}: {e}"))?;
        }
    }
    Ok(())
}

/// The whole components in the tests' compile cache (not Cranelift's
/// functions, which live in a folder of their own).
fn compiled_components() -> Result<std::collections::BTreeSet<PathBuf>, String> {
    let dir = root().join(TEST_COMPILE_CACHE);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(e) => return Err(format!("cannot list {}: {e}", dir.display())),
    };
    Ok(entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "cwasm"))
        .collect())
}

/// Runs the debug `claimsmith` binary that `cargo test` built.
fn debug_host(args: &[&str]) -> Result<(), String> {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from);
    run(Command::new(target.join("debug/claimsmith"))
        .current_dir(root())
        .args(args))
}

/// Runs the `claimsmith` binary through cargo, as a user would.
fn claimsmith(cargo_args: &[&str], args: &[&str]) -> Result<(), String> {
    run(cargo()
        .arg("run")
        .args(cargo_args)
        .args(["--package", "claimsmith"])
        .args(HOST_FEATURES)
        .arg("--")
        .args(args))
}
