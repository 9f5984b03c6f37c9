//! Every bound of an invocation trips with a typed error naming the plugin and
//! the limit, and the host serves the next login as if nothing happened.

use claimsmith::engine::{Limit, PluginError};
use claimsmith::pipeline::{LoginFailure, StepStatus};
use claimsmith_tests::{Setup, login, outcome, report};

fn plugin_error(failure: LoginFailure) -> PluginError {
    match failure {
        LoginFailure::Plugin(error) => error,
        other => panic!("expected a plugin error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_looping_plugin_runs_out_of_fuel() {
    let pipeline = Setup::new()
        .actions(&[(
            "looper",
            "test-looper",
            "fail",
            "limits = { fuel = 2_000_000 }",
        )])
        .start()
        .unwrap();
    let failure = outcome(&pipeline, &login("okta")).await.unwrap_err();
    let error = plugin_error(failure);
    assert!(
        matches!(&error, PluginError::LimitExceeded { plugin, limit: Limit::Fuel(2_000_000) } if plugin == "looper"),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "plugin `looper` exceeded its fuel budget of 2000000 units"
    );
}

#[tokio::test]
async fn a_looping_plugin_with_fuel_to_spare_hits_the_wall_clock() {
    let pipeline = Setup::new()
        .actions(&[(
            "looper",
            "test-looper",
            "fail",
            "limits = { fuel = 1_000_000_000_000, timeout_ms = 200 }",
        )])
        .start()
        .unwrap();
    // Bounded here too: a broken timeout must fail this test, not hang it.
    let report = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        report(&pipeline, &login("okta")),
    )
    .await
    .expect("the plugin's wall-clock timeout fired");
    let error = plugin_error(report.outcome.unwrap_err());
    assert!(
        matches!(error, PluginError::LimitExceeded { limit: Limit::WallClock(d), .. } if d.as_millis() == 200),
        "{error:?}"
    );
    // The timeout fired because the loop yielded; it did not run to its fuel.
    assert!(report.steps[0].duration.as_secs() < 30);
}

#[tokio::test]
async fn a_plugin_allocating_without_end_hits_its_memory_cap() {
    let pipeline = Setup::new()
        .actions(&[("hog", "test-hog", "fail", "limits = { memory_mib = 8 }")])
        .start()
        .unwrap();
    let error = plugin_error(outcome(&pipeline, &login("okta")).await.unwrap_err());
    assert!(
        matches!(&error, PluginError::LimitExceeded { plugin, limit: Limit::Memory(bytes) } if plugin == "hog" && *bytes == 8 * 1024 * 1024),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "plugin `hog` exceeded its memory cap of 8 MiB"
    );
}

#[tokio::test]
async fn a_trapping_plugin_fails_the_login_with_its_name() {
    let pipeline = Setup::new()
        .actions(&[("trapper", "test-trapper", "fail", "")])
        .start()
        .unwrap();
    let report = report(&pipeline, &login("okta")).await;
    let error = plugin_error(report.outcome.unwrap_err());
    assert!(
        matches!(&error, PluginError::Trapped { plugin, .. } if plugin == "trapper"),
        "{error:?}"
    );
    assert!(
        matches!(&report.steps[0].status, StepStatus::Failed { error } if error.contains("trapper"))
    );
}

#[tokio::test]
async fn a_profile_that_is_not_json_is_refused_naming_the_plugin() {
    let pipeline = Setup::new()
        .plugin("bad-json", "test-bad-json", "profile-fetcher", "")
        .connection("okta", Some("bad-json"), "{}")
        .start()
        .unwrap();
    let error = plugin_error(outcome(&pipeline, &login("okta")).await.unwrap_err());
    assert!(
        matches!(&error, PluginError::InvalidJson { plugin, what: "the profile", .. } if plugin == "bad-json"),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .starts_with("plugin `bad-json` returned invalid JSON as the profile")
    );
}

#[tokio::test]
async fn the_host_keeps_serving_after_every_kind_of_failure() {
    let pipeline = Setup::new()
        .actions(&[
            (
                "looper",
                "test-looper",
                "continue",
                "limits = { fuel = 1_000_000 }",
            ),
            ("hog", "test-hog", "continue", "limits = { memory_mib = 4 }"),
            ("trapper", "test-trapper", "continue", ""),
            ("counter", "test-counter", "fail", ""),
        ])
        .start()
        .unwrap();
    for _ in 0..3 {
        let report = report(&pipeline, &login("okta")).await;
        let statuses: Vec<_> = report.steps.iter().map(|s| &s.status).collect();
        assert!(
            matches!(
                statuses[..3],
                [
                    StepStatus::Skipped { .. },
                    StepStatus::Skipped { .. },
                    StepStatus::Skipped { .. }
                ]
            ),
            "{statuses:?}"
        );
        assert!(report.outcome.is_ok(), "{:?}", report.outcome);
    }
}
