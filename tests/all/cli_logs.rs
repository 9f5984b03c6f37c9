//! The `claimsmith` command's log lines as CI sees them: stderr is a pipe
//! there, and ANSI colour codes would land in the CI log and in files.
//! Needs the example's plugins built (`cargo xtask test` builds them first).

use std::process::Command;

/// `claimsmith check` of the Okta example, from the workspace root.
fn check_the_example() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_claimsmith"));
    command.current_dir(crate::support::root()).args([
        "check",
        "--config",
        "examples/okta/claimsmith.toml",
    ]);
    command
}

#[test]
fn log_lines_are_not_coloured_when_stderr_is_not_a_terminal() {
    let output = check_the_example()
        .env_remove("RUST_LOG")
        .output()
        .expect("run claimsmith");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("INFO"),
        "the default filter logs at info: {stderr}"
    );
    assert!(stderr.contains("plugin loaded"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "no ANSI codes: {stderr:?}");
}

/// `CLAIMSMITH_PERF_MAP` (README, "Profiling a plugin"): wasmtime writes
/// the plugins' compiled functions to `/tmp/perf-PID.map` for `perf`.
#[test]
fn with_claimsmith_perf_map_set_the_plugins_functions_are_in_a_perf_map() {
    let child = check_the_example()
        .env("CLAIMSMITH_PERF_MAP", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run claimsmith");
    let map = std::path::PathBuf::from(format!("/tmp/perf-{}.map", child.id()));
    let output = child.wait_with_output().expect("wait for claimsmith");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&map).unwrap_or_default();
    let _ = std::fs::remove_file(&map);
    assert!(
        text.lines().any(|line| line.contains("wasm[")),
        "{} names no wasm function:\n{text}",
        map.display()
    );
}
