//! Plugin log, stdout and stderr reach the host's log, tagged with the
//! plugin. Read from the log of `claimsmith run`, a process with its own
//! subscriber: a subscriber scoped to a test would race the other tests of
//! this binary (`tracing` caches per call site whether anyone listens).

use crate::support::{Setup, language_plugin_wasm, login_json};

/// The host's log (stderr, at debug) of `claimsmith run` on `setup`'s config
/// and a login to `client_id` at connection `okta`, with no canned HTTP;
/// and whether the run minted.
fn run_logs(setup: &Setup, client_id: &str) -> (bool, String) {
    let config = setup.write();
    let input = config.with_file_name("login.json");
    let mut login = login_json("okta");
    login["client_id"] = client_id.into();
    login["http"] = serde_json::json!([]);
    std::fs::write(&input, login.to_string()).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_claimsmith"))
        .args(["run", "--config"])
        .arg(&config)
        .arg("--input")
        .arg(&input)
        .env("RUST_LOG", "debug")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let logs = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.success(), logs)
}

/// The host's log of one login through test-echo.
fn echo_login_logs() -> String {
    let setup = Setup::new().actions(&[("echo", "test-echo", "fail", "")]);
    let (minted, logs) = run_logs(&setup, "app");
    assert!(minted, "{logs}");
    logs
}

#[test]
fn plugin_log_stdout_and_stderr_reach_the_host_log_tagged_with_the_plugin() {
    let logs = echo_login_logs();
    for line in ["echo ran", "echo stdout line", "echo stderr line"] {
        let found = logs
            .lines()
            .find(|l| l.contains(line))
            .unwrap_or_else(|| panic!("`{line}` not logged:\n{logs}"));
        assert!(found.contains("plugin=\"echo\""), "{found}");
    }
}

/// A plugin's output cannot restyle an operator's terminal nor forge a log
/// line: control characters are escaped as in its `log` messages.
#[test]
fn control_characters_a_plugin_prints_are_logged_escaped() {
    let logs = echo_login_logs();
    let line = logs
        .lines()
        .find(|l| l.contains("echo hostile line"))
        .unwrap_or_else(|| panic!("the hostile line is not logged:\n{logs}"));
    assert!(
        line.contains(r"\u{1b}[31mred\r2026-01-01T00:00:00Z ERROR forged\u{7}")
            && line.contains("plugin=\"echo\""),
        "{line}"
    );
    assert!(
        !logs.contains(['\x1b', '\r', '\x07']),
        "raw control characters logged:\n{logs:?}"
    );
}

/// The contract's `http.fetch` and JavaScript's `fetch()` (wasi:http) meet
/// one policy in one place: a refusal is logged the same way for both, with
/// the reason and the plugin, and without the URL's query.
#[test]
fn a_refused_fetch_is_logged_alike_from_rust_and_javascript() {
    for (language, name) in [("rust", "test-fetcher"), ("js", "test-js-fetcher")] {
        let setup = Setup::new()
            .plugin_at(
                "fetcher",
                &language_plugin_wasm(language, name),
                "post-login-action",
                "allowed_origins = [\"http://127.0.0.1:1\"]",
            )
            .connection("okta", None, "{}")
            .client(
                "fetching-app",
                "{ fetch_url = \"http://127.0.0.2:9/userinfo?token=query-secret\" }",
            )
            .action("fetcher", "fail");
        let (minted, logs) = run_logs(&setup, "fetching-app");
        assert!(
            !minted,
            "{language}: the refused fetch fails the login:\n{logs}"
        );
        let refusal = logs
            .lines()
            .find(|l| l.contains("plugin fetch failed"))
            .unwrap_or_else(|| panic!("{language}: no refusal logged:\n{logs}"));
        assert!(
            refusal.contains(
                "not allowed: origin http://127.0.0.2:9 is not granted to plugin `fetcher`"
            ) && refusal.contains("plugin=fetcher"),
            "{language}: {refusal}"
        );
        // The host's own lines; wasmtime's trace-level call logs are capped
        // by the `claimsmith` command's log filter (see `telemetry::log_filter`).
        let host_lines: Vec<&str> = logs
            .lines()
            // Targets are module paths: `claimsmith::plugin` and the host
            // crates' `claimsmith_<crate>::...`.
            .filter(|l| l.contains(" claimsmith::") || l.contains(" claimsmith_"))
            .collect();
        assert!(
            host_lines
                .iter()
                .any(|l| l.contains("url=http://127.0.0.2:9/userinfo"))
                && !host_lines.iter().any(|l| l.contains("query-secret")),
            "{language}: {host_lines:#?}"
        );
    }
}
