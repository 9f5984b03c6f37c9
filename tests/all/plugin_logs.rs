//! Plugin log, stdout and stderr reach the host's log, tagged with the
//! plugin. Alone in its test binary: `tracing` caches per call site whether
//! anyone listens, and tests on other threads with no subscriber would race
//! this test's scoped subscriber.

use crate::support::{CapturedLogs, Setup, language_plugin_wasm, login, outcome};

/// The host's log of one login through test-echo.
async fn echo_login_logs() -> String {
    let captured = CapturedLogs::default();
    let _guard = tracing::subscriber::set_default(captured.subscriber());
    let pipeline = Setup::new()
        .actions(&[("echo", "test-echo", "fail", "")])
        .start()
        .unwrap();
    outcome(&pipeline, &login("okta")).await.unwrap();
    captured.text()
}

#[tokio::test]
async fn plugin_log_stdout_and_stderr_reach_the_host_log_tagged_with_the_plugin() {
    let logs = echo_login_logs().await;
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
#[tokio::test]
async fn control_characters_a_plugin_prints_are_logged_escaped() {
    let logs = echo_login_logs().await;
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
#[tokio::test]
async fn a_refused_fetch_is_logged_alike_from_rust_and_javascript() {
    for (language, name) in [("rust", "test-fetcher"), ("js", "test-js-fetcher")] {
        let captured = CapturedLogs::default();
        let _guard = tracing::subscriber::set_default(captured.subscriber());
        let pipeline = Setup::new()
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
            .action("fetcher", "fail")
            .start()
            .unwrap();
        let mut input = login("okta");
        input.client_id = "fetching-app".into();
        outcome(&pipeline, &input).await.unwrap_err();
        let logs = captured.text();
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
