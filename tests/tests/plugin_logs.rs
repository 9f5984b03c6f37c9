//! Plugin log, stdout and stderr reach the host's log, tagged with the
//! plugin. Alone in its test binary: `tracing` caches per call site whether
//! anyone listens, and tests on other threads with no subscriber would race
//! this test's scoped subscriber.

use claimsmith_tests::{CapturedLogs, Setup, login, outcome};

#[tokio::test]
async fn plugin_log_stdout_and_stderr_reach_the_host_log_tagged_with_the_plugin() {
    let captured = CapturedLogs::default();
    let _guard = tracing::subscriber::set_default(captured.subscriber());
    let pipeline = Setup::new()
        .actions(&[("echo", "test-echo", "fail", "")])
        .start()
        .unwrap();
    outcome(&pipeline, &login("okta")).await.unwrap();
    let logs = captured.text();
    for line in ["echo ran", "echo stdout line", "echo stderr line"] {
        let found = logs
            .lines()
            .find(|l| l.contains(line))
            .unwrap_or_else(|| panic!("`{line}` not logged:\n{logs}"));
        assert!(found.contains("plugin=\"echo\""), "{found}");
    }
}
