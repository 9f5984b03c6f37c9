//! `cargo xtask bench`: every figure of the performance section, in one run
//! on this machine, so that the ratios compare like with like.
//!
//! - `in-process`: the criterion bench `host/claimsmith/benches/login.rs` (the seed
//!   chain against minting alone, 1/5/20 actions, each plugin per language).
//! - `load`: complete code-flow logins over HTTP with the project's driver
//!   (`bench/load`), against `claimsmith serve` on `examples/bench/` (its
//!   development upstream, `claimsmith dev-upstream`, in a process of its
//!   own), then
//!   against node-oidc-provider (`bench/peer`, installed here from the npm
//!   registry), then against 20 plugins loaded at 256 concurrent logins,
//!   started on a warm compile cache.
//!
//! Then `claimsmith-load report` writes `target/bench/report.md` and, after a
//! whole run only, the README's table. Everything listens on and talks to
//! 127.0.0.1 only.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{HOST_FEATURES, cargo, root, run};

const CLAIMSMITH_ISSUER: &str = "http://127.0.0.1:8190";
/// The development upstream (`claimsmith dev-upstream`) the service signs in at.
const CLAIMSMITH_UPSTREAM_PORT: u16 = 8191;
const PEER_PORT: u16 = 8192;
/// The client both providers register (examples/bench, bench/peer).
const CLIENT: [&str; 6] = [
    "--client-id",
    "bench-app",
    "--client-secret",
    "bench-app-secret-0123456789",
    "--redirect-uri",
    "http://127.0.0.1:9/bench/app",
];
/// What geo-claims and roles-claim (or the peer's claims hook) add: a login
/// without them does not count.
const EXPECTED_CLAIMS: [&str; 4] = [
    "--expect-claim",
    "geo_ip_country",
    "--expect-claim",
    "https://claimsmith.dev/roles",
];
const CONCURRENCY: &str = "16";
const HIGH_CONCURRENCY: &str = "256";
const SECONDS: &str = "10";

pub fn bench(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("in-process") => in_process(&args[1..]),
        // A part alone leaves the README's table, which shows one whole run.
        Some("load") => load().and_then(|()| report(false)),
        None => in_process(&[])
            .and_then(|()| load())
            .and_then(|()| report(true)),
        Some(other) => Err(format!(
            "unknown bench part {other:?}: `cargo xtask bench [in-process [criterion args] | load]`"
        )),
    }
}

fn in_process(criterion_args: &[String]) -> Result<(), String> {
    run(cargo()
        .args(["bench", "--package", "claimsmith", "--bench", "login", "--"])
        .args(criterion_args))
}

fn bench_dir() -> PathBuf {
    root().join("target/bench")
}

fn load() -> Result<(), String> {
    // The load run starts `claimsmith dev-upstream`: the `demo` feature.
    run(cargo()
        .args([
            "build",
            "--quiet",
            "--release",
            "--package",
            "claimsmith",
            "--package",
            "claimsmith-load",
        ])
        .args(HOST_FEATURES))?;
    let dir = bench_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;

    // Claimsmith, seed chain, on a fresh database.
    fresh_data_dir()?;
    let claimsmith =
        spawn_claimsmith(&root().join("examples/bench/claimsmith.toml"), "claimsmith")?;
    drive(
        &claimsmith.service,
        CLAIMSMITH_ISSUER,
        CONCURRENCY,
        "Claimsmith",
        "load-claimsmith.json",
    )?;
    drop(claimsmith);

    let peer = spawn_peer()?;
    let peer_issuer = format!("http://127.0.0.1:{PEER_PORT}");
    drive(
        &peer,
        &peer_issuer,
        CONCURRENCY,
        "node-oidc-provider",
        "load-peer.json",
    )?;
    drop(peer);

    // 20 plugins: the first start fills the compile cache, the second is
    // timed from process start to first answer, then takes 256 logins at once.
    let twenty = write_twenty_plugin_config(&dir)?;
    fresh_data_dir()?;
    let cold = spawn_claimsmith(&twenty, "twenty-cold")?;
    wait_for_log_line(&cold.service, "serving", Duration::from_secs(120))?;
    drop(cold);
    let warm = spawn_claimsmith(&twenty, "twenty")?;
    drive(
        &warm.service,
        CLAIMSMITH_ISSUER,
        HIGH_CONCURRENCY,
        "Claimsmith, 20 plugins",
        "load-twenty.json",
    )
}

/// Writes target/bench/report.md, and the README's table when `readme`.
fn report(readme: bool) -> Result<(), String> {
    let dir = bench_dir();
    let path = |file: &str| dir.join(file).display().to_string();
    let mut command = Command::new(root().join("target/release/claimsmith-load"));
    command
        .current_dir(root())
        .args(["report", "--in-process", &path("in-process.json")])
        .args(["--claimsmith", &path("load-claimsmith.json")])
        .args(["--peer", &path("load-peer.json")])
        .args(["--twenty", &path("load-twenty.json")])
        .args(["--out", &path("report.md")]);
    if readme {
        command.args(["--readme", "README.md"]);
    }
    run(&mut command)
}

/// A server process, killed when dropped (also when a step fails).
struct Server {
    child: Child,
    started_unix_ms: u128,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis())
}

/// Refuses to start a server where another one already answers, which the
/// driver would measure instead.
fn ensure_port_free(port: u16) -> Result<(), String> {
    TcpListener::bind(("127.0.0.1", port))
        .map(drop)
        .map_err(|e| format!("127.0.0.1:{port} is taken ({e}): stop what listens there"))
}

fn fresh_data_dir() -> Result<(), String> {
    let data = bench_dir().join("claimsmith-data");
    match std::fs::remove_dir_all(&data) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("cannot clear {}: {error}", data.display()))
        }
        _ => Ok(()),
    }
}

fn spawn(mut command: Command, log_name: &str) -> Result<Server, String> {
    let log = bench_dir().join(format!("{log_name}.log"));
    let file =
        std::fs::File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let errors = file
        .try_clone()
        .map_err(|e| format!("cannot share {}: {e}", log.display()))?;
    let started_unix_ms = unix_ms();
    let child = command
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(errors)
        .spawn()
        .map_err(|e| format!("cannot start {command:?}: {e}"))?;
    Ok(Server {
        child,
        started_unix_ms,
        log,
    })
}

/// `claimsmith serve` on `config`, and the development upstream it signs in
/// at as a process of its own, so the service's CPU and memory are measured
/// without the upstream's work.
struct ClaimsmithUnderTest {
    service: Server,
    _upstream: Server,
}

fn spawn_claimsmith(config: &Path, log_name: &str) -> Result<ClaimsmithUnderTest, String> {
    ensure_port_free(8190)?;
    ensure_port_free(CLAIMSMITH_UPSTREAM_PORT)?;
    let claimsmith = |command: &str| {
        let mut process = Command::new(root().join("target/release/claimsmith"));
        process
            .current_dir(root())
            .arg(command)
            .arg("--config")
            .arg(config);
        process
    };
    let upstream = spawn(claimsmith("dev-upstream"), &format!("{log_name}-upstream"))?;
    wait_for_log_line(
        &upstream,
        "development upstream ready",
        Duration::from_secs(30),
    )?;
    Ok(ClaimsmithUnderTest {
        service: spawn(claimsmith("serve"), log_name)?,
        _upstream: upstream,
    })
}

/// Installs the peer's pinned packages from the npm registry into
/// target/bench/peer (only when its lock file changed) and starts it.
fn spawn_peer() -> Result<Server, String> {
    ensure_port_free(PEER_PORT)?;
    let source = root().join("bench/peer");
    let dir = bench_dir().join("peer");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let installed_lock = std::fs::read(dir.join("node_modules/.claimsmith-lock")).ok();
    let lock = std::fs::read(source.join("package-lock.json"))
        .map_err(|e| format!("cannot read bench/peer/package-lock.json: {e}"))?;
    for file in ["package.json", "package-lock.json", "server.mjs"] {
        std::fs::copy(source.join(file), dir.join(file))
            .map_err(|e| format!("cannot copy bench/peer/{file}: {e}"))?;
    }
    if installed_lock.as_deref() != Some(lock.as_slice()) {
        run(Command::new("npm").current_dir(&dir).args([
            "ci",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ]))?;
        std::fs::write(dir.join("node_modules/.claimsmith-lock"), &lock)
            .map_err(|e| format!("cannot record the peer's install: {e}"))?;
    }
    let mut command = Command::new("node");
    command
        .current_dir(&dir)
        .arg("server.mjs")
        .env("PEER_PORT", PEER_PORT.to_string());
    spawn(command, "peer")
}

fn drive(
    server: &Server,
    issuer: &str,
    concurrency: &str,
    label: &str,
    json: &str,
) -> Result<(), String> {
    let json = bench_dir().join(json).display().to_string();
    let driven = run(Command::new(root().join("target/release/claimsmith-load"))
        .current_dir(root())
        .args(["drive", "--issuer", issuer])
        .args(CLIENT)
        .args(EXPECTED_CLAIMS)
        .args(["--concurrency", concurrency, "--duration", SECONDS])
        .args(["--server-pid", &server.child.id().to_string()])
        .args([
            "--server-started-unix-ms",
            &server.started_unix_ms.to_string(),
        ])
        .args(["--label", label, "--json", &json]));
    driven.map_err(|error| format!("{error} (the server's log: {})", server.log.display()))
}

/// Waits until the server's log has `line`.
fn wait_for_log_line(server: &Server, line: &str, timeout: Duration) -> Result<(), String> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let log = std::fs::read_to_string(&server.log).unwrap_or_default();
        if log.contains(line) {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(format!(
                "{} did not say {line:?} within {timeout:?}",
                server.log.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// examples/bench with 20 actions, each its own plugin entry (ten of
/// geo-claims, ten of roles-claim: each entry is loaded and instantiated on
/// its own, as 20 different plugins would be). Written under target/bench,
/// whose relative paths resolve to the same places as examples/bench's.
fn write_twenty_plugin_config(dir: &Path) -> Result<PathBuf, String> {
    let base = std::fs::read_to_string(root().join("examples/bench/claimsmith.toml"))
        .map_err(|e| format!("cannot read examples/bench/claimsmith.toml: {e}"))?;
    let base = base
        .split("[[actions]]")
        .next()
        .unwrap_or_default()
        .to_owned();
    let mut text = base;
    for index in 0..20 {
        let plugin = if index % 2 == 0 {
            "geo-claims"
        } else {
            "roles-claim"
        };
        text.push_str(&format!(
            "\n[plugins.{plugin}-{index}]\npath = \"../../target/plugins/rust/{plugin}.wasm\"\nworld = \"post-login-action\"\n"
        ));
    }
    for index in 0..20 {
        let plugin = if index % 2 == 0 {
            "geo-claims"
        } else {
            "roles-claim"
        };
        text.push_str(&format!("\n[[actions]]\nplugin = \"{plugin}-{index}\"\n"));
    }
    let path = dir.join("twenty-plugins.toml");
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}
