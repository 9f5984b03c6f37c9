//! The post-login chain: isolation between logins, what each action sees,
//! denial, skipping, reserved claims, and concurrency.

use crate::support::{Setup, login, outcome, report};
use claimsmith::engine::PluginError;
use claimsmith::pipeline::{LoginFailure, RunOptions, StepKind, StepStatus};
use jsonwebtoken::dangerous::insecure_decode;
use serde_json::{Map, Value, json};

fn claims(token: &str) -> Map<String, Value> {
    insecure_decode::<Map<String, Value>>(token)
        .expect("a JWT")
        .claims
}

#[tokio::test]
async fn every_login_gets_a_fresh_instance() {
    let pipeline = Setup::new()
        .actions(&[("counter", "test-counter", "fail", "")])
        .start()
        .unwrap();
    for _ in 0..3 {
        let minted = outcome(&pipeline, &login("okta")).await.unwrap();
        assert_eq!(claims(&minted.tokens.access_token)["calls"], json!(1));
    }
}

/// Page faults this thread has taken (`minflt` of /proc/thread-self/stat).
/// A plugin runs on the thread that calls it, so a current-thread test
/// counts the faults of its plugins' memory.
fn minor_faults_of_this_thread() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    // After `(comm)`: state is the 3rd field, minflt the 10th.
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    after_comm.split(' ').nth(7).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_freed_instance_is_reset_in_place_however_scattered_its_dirty_pages() {
    // test-scatter writes 512 disjoint pages per login, 16 times the regions
    // one PAGEMAP_SCAN returns, and counts those that did not read zero.
    const DIRTIED_PAGES: u64 = 512;
    let pipeline = Setup::new()
        .actions(&[("scatter", "test-scatter", "fail", "")])
        .start()
        .unwrap();
    let mut faults = Vec::new();
    for _ in 0..4 {
        let before = minor_faults_of_this_thread();
        let minted = outcome(&pipeline, &login("okta")).await.unwrap();
        faults.push(minor_faults_of_this_thread() - before);
        // The last login's pages read zero: reset, not handed on.
        assert_eq!(claims(&minted.tokens.access_token)["stale_pages"], json!(0));
    }
    // The first login faults its pages in; later ones find them resident
    // (reset in place), where a reset that gave up after the scan's first
    // batch of regions would decommit them and fault most back in.
    assert!(
        faults[1..].iter().all(|&f| f < DIRTIED_PAGES / 4),
        "page faults per login, first (cold) to last: {faults:?}"
    );
}

#[tokio::test]
async fn actions_see_the_event_and_the_changes_of_the_actions_before_them() {
    let setup = Setup::new()
        .plugin("geo", "geo-claims", "post-login-action", "")
        .plugin(
            "echo",
            "test-echo",
            "post-login-action",
            "secrets = { api_key = { value = \"s3cr3t\" } }",
        )
        .plugin("echo-again", "test-echo", "post-login-action", "")
        .connection("okta", None, "{}")
        .action("geo", "fail")
        .action("echo", "fail")
        .action("echo-again", "fail");
    let pipeline = setup.start().unwrap();
    let mut input = login("okta");
    input
        .upstream
        .id_token_claims
        .insert("geo_ip_country".into(), json!("NZ"));
    input.user.logins_count = 4;
    input.user.last_login = Some("2026-11-01T00:00:00Z".into());
    input
        .user
        .app_metadata
        .insert("echo_count".into(), json!(10));
    let minted = outcome(&pipeline, &input).await.unwrap();

    let access = claims(&minted.tokens.access_token);
    let seen = &access["seen_event"];
    // The second echo sees what geo and the first echo did.
    assert_eq!(seen["access_token_claims"]["geo_ip_country"], json!("NZ"));
    assert_eq!(seen["user"]["app_metadata"]["echo_count"], json!(11));
    assert_eq!(seen["user"]["user_metadata"]["echo_seen"], json!(true));
    assert!(
        seen["scopes"]
            .as_array()
            .unwrap()
            .contains(&json!("echo:read"))
    );
    assert_eq!(seen["user"]["user_id"], json!("okta|00u1ada"));
    assert_eq!(seen["user"]["logins_count"], json!(5));
    assert_eq!(seen["user"]["last_login"], json!("2026-11-01T00:00:00Z"));
    assert_eq!(seen["client"]["client_id"], json!("app"));
    assert_eq!(
        seen["connection"],
        json!({"name": "okta", "strategy": "oidc"})
    );
    assert_eq!(
        seen["request"],
        json!({"ip": "203.0.113.7", "user_agent": "test-agent"})
    );
    assert_eq!(seen["audience"], json!("https://api.example.com"));

    // Secrets: only the plugin's own. The second echo was given none.
    let id = claims(&minted.tokens.id_token);
    assert_eq!(id["has_api_key"], json!(false), "echo-again has no secrets");
    assert_eq!(id["has_undeclared"], json!(false));

    // The record to store carries the metadata the actions set.
    assert_eq!(minted.user.app_metadata["echo_count"], json!(12));
    assert_eq!(minted.user.user_metadata["echo_seen"], json!(true));
    assert_eq!(minted.user.logins_count, 5);
    assert!(minted.scopes.contains(&"echo:read".to_owned()));
    assert_eq!(access["scope"], json!("openid profile email echo:read"));
}

#[tokio::test]
async fn a_plugin_reads_only_its_own_secrets() {
    let pipeline = Setup::new()
        .actions(&[(
            "echo",
            "test-echo",
            "fail",
            "secrets = { api_key = { value = \"s3cr3t\" } }",
        )])
        .start()
        .unwrap();
    let minted = outcome(&pipeline, &login("okta")).await.unwrap();
    let id = claims(&minted.tokens.id_token);
    assert_eq!(id["has_api_key"], json!(true));
    assert_eq!(id["has_undeclared"], json!(false));
}

#[tokio::test]
async fn a_deny_stops_the_chain_and_mints_nothing() {
    let pipeline = Setup::new()
        .actions(&[
            ("denier", "test-denier", "continue", ""),
            ("counter", "test-counter", "fail", ""),
        ])
        .start()
        .unwrap();
    let report = report(&pipeline, &login("okta")).await;
    match report.outcome {
        Err(LoginFailure::Denied { plugin, reason }) => {
            assert_eq!(plugin, "denier");
            assert_eq!(reason, "account locked: okta|00u1ada");
        }
        other => panic!("expected a denial, got {other:?}"),
    }
    assert_eq!(
        report.steps.len(),
        1,
        "the counter never ran: {:?}",
        report.steps
    );
    assert_eq!(
        report.steps[0].status,
        StepStatus::Denied {
            reason: "account locked: okta|00u1ada".into()
        }
    );
}

#[tokio::test]
async fn on_error_continue_skips_the_failing_action_and_keeps_the_rest() {
    let pipeline = Setup::new()
        .actions(&[
            ("trapper", "test-set-then-trap", "continue", ""),
            ("geo", "geo-claims", "fail", ""),
        ])
        .start()
        .unwrap();
    let mut input = login("okta");
    input
        .upstream
        .id_token_claims
        .insert("geo_ip_country".into(), json!("DE"));
    let report = report(&pipeline, &input).await;
    assert!(
        matches!(&report.steps[0].status, StepStatus::Skipped { error } if error.contains("trapper"))
    );
    assert_eq!(report.steps[1].status, StepStatus::Succeeded);
    assert_eq!(report.steps[2].kind, StepKind::Mint);
    let minted = report.outcome.unwrap().minted().unwrap();
    let access = claims(&minted.tokens.access_token);
    assert_eq!(access["geo_ip_country"], json!("DE"));
    // What the skipped action set before it trapped is gone, all of it.
    assert!(access.get("leaked").is_none(), "{access:?}");
    assert!(!minted.user.app_metadata.contains_key("leaked"));
    assert!(!minted.scopes.iter().any(|scope| scope == "leaked:scope"));
    assert!(
        !access["scope"].as_str().unwrap_or("").contains("leaked"),
        "{access:?}"
    );
}

#[tokio::test]
async fn a_failing_action_fails_the_login_by_default() {
    let pipeline = Setup::new()
        .actions(&[("trapper", "test-trapper", "fail", "")])
        .start()
        .unwrap();
    let report = report(&pipeline, &login("okta")).await;
    assert!(matches!(
        report.outcome,
        Err(LoginFailure::Plugin(PluginError::Trapped { .. }))
    ));
    assert!(
        !report.steps.iter().any(|s| s.kind == StepKind::Mint),
        "nothing minted"
    );
}

#[tokio::test]
async fn a_reserved_claim_is_refused_and_never_reaches_a_token() {
    let pipeline = Setup::new()
        .actions(&[("reserved", "test-reserved-claim", "fail", "")])
        .start()
        .unwrap();
    let failure = outcome(&pipeline, &login("okta")).await.unwrap_err();
    let message = failure.to_string();
    assert!(
        message.contains("reserved") && message.contains("sub"),
        "{message}"
    );
    assert!(message.contains("plugin `reserved`"), "{message}");
}

#[tokio::test]
async fn a_skipped_reserved_claim_leaves_the_real_subject() {
    let pipeline = Setup::new()
        .actions(&[("reserved", "test-reserved-claim", "continue", "")])
        .start()
        .unwrap();
    let minted = outcome(&pipeline, &login("okta")).await.unwrap();
    assert_eq!(
        claims(&minted.tokens.access_token)["sub"],
        json!("okta|00u1ada")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_logins_each_get_their_own_instance() {
    let pipeline = std::sync::Arc::new(
        Setup::new()
            .actions(&[("counter", "test-counter", "fail", "")])
            .start()
            .unwrap(),
    );
    let logins = (0..64).map(|_| {
        let pipeline = pipeline.clone();
        tokio::spawn(async move { report(&pipeline, &login("okta")).await })
    });
    for handle in logins {
        let minted = handle.await.unwrap().outcome.unwrap().minted().unwrap();
        assert_eq!(claims(&minted.tokens.access_token)["calls"], json!(1));
    }
}

#[tokio::test]
async fn a_denial_stands_when_the_action_then_fails_even_if_failures_are_skipped() {
    let pipeline = Setup::new()
        .actions(&[
            ("deny-then-fail", "test-deny-then-fail", "continue", ""),
            ("counter", "test-counter", "fail", ""),
        ])
        .start()
        .unwrap();
    let report = report(&pipeline, &login("okta")).await;
    assert!(
        matches!(&report.outcome, Err(LoginFailure::Denied { plugin, reason }) if plugin == "deny-then-fail" && reason == "denied before failing"),
        "{:?}",
        report.outcome
    );
    assert_eq!(
        report.steps.len(),
        1,
        "the chain stopped: {:?}",
        report.steps
    );
}

#[tokio::test]
async fn a_pinned_clock_is_the_wall_clock_plugins_read() {
    let pipeline = Setup::new()
        .actions(&[("echo", "test-echo", "fail", "")])
        .start()
        .unwrap();
    let options = RunOptions {
        now: Some(1_234_567_890),
        ..RunOptions::default()
    };
    let minted = pipeline
        .run(&login("okta"), &options)
        .await
        .outcome
        .unwrap()
        .minted()
        .unwrap();
    let access = claims(&minted.tokens.access_token);
    assert_eq!(access["clock"], json!(1_234_567_890));
    assert_eq!(access["iat"], json!(1_234_567_890));
    // Unpinned, the plugin reads the real clock.
    let minted = outcome(&pipeline, &login("okta")).await.unwrap();
    assert!(
        claims(&minted.tokens.access_token)["clock"]
            .as_u64()
            .unwrap()
            > 1_700_000_000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_wait_for_a_free_instance_slot_instead_of_failing() {
    // One slot, many logins at once: each waits its turn, none fails.
    let pipeline = std::sync::Arc::new(
        Setup::new()
            .max_concurrent_instances(1)
            .actions(&[("counter", "test-counter", "fail", "")])
            .start()
            .unwrap(),
    );
    let logins: Vec<_> = (0..16)
        .map(|_| {
            let pipeline = pipeline.clone();
            tokio::spawn(async move { report(&pipeline, &login("okta")).await })
        })
        .collect();
    for handle in logins {
        let report = handle.await.unwrap();
        assert!(report.outcome.is_ok(), "{:?}", report.outcome);
    }
}
