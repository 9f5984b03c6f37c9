//! The `claimsmith` command's log lines as CI sees them: stderr is a pipe
//! there, and ANSI colour codes would land in the CI log and in files.
//! Needs the example's plugins built (`cargo xtask test` builds them first).

use std::process::Command;

#[test]
fn log_lines_are_not_coloured_when_stderr_is_not_a_terminal() {
    let root = crate::support::root();
    let output = Command::new(env!("CARGO_BIN_EXE_claimsmith"))
        .current_dir(&root)
        .args(["check", "--config", "examples/okta/claimsmith.toml"])
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
