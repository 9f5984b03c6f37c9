//! Golden cases from real logins: a login a `capture = true` plugin ran in
//! is kept, its tokens and secrets replaced, and `claimsmith capture
//! LOG_ID` writes it as a case that passes against the build that served
//! it (pulled from the store) and fails against one that changes its
//! claims, without the case ever reaching the network.

use std::path::Path;
use std::process::{Command, Output};

use claimsmith::store::LoginFilter;

use crate::plugin_store::run_cli;
use crate::shadow::{access_claims_of_a_login, tier_config, tier_service};
use crate::support::plugin_wasm;
use crate::support::service_harness::{Harness, UPSTREAM_SECRET, start_edited_harness};

/// `claimsmith <args>`, run off the test's runtime.
async fn claimsmith(args: Vec<String>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_claimsmith"));
    command.args(args).env_remove("RUST_LOG");
    tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap()
}

/// The newest audit row's id.
async fn latest_log_id(h: &Harness) -> i64 {
    let page = h
        .store()
        .logins(&LoginFilter::default(), 0, 1)
        .await
        .unwrap();
    page.items[0].id
}

/// `claimsmith capture` of `log_id` into `out`.
async fn capture(h: &Harness, log_id: i64, out: &Path) -> Output {
    claimsmith(vec![
        "capture".into(),
        log_id.to_string(),
        "--config".into(),
        h.config.display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ])
    .await
}

async fn run_case(case: &Path) -> Output {
    claimsmith(vec!["test".into(), case.display().to_string()]).await
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The tier config with `capture = true`, its seed (version 1) the build
/// that changes the claim.
fn capturing_tier_config(tier: &str) -> String {
    let served = format!("{:?}", plugin_wasm("test-fetch-claim"));
    let config = tier_config(tier, 1).replace(
        "source = \"store\"\n",
        "source = \"store\"\ncapture = true\n",
    );
    assert!(config.contains(&served), "{config}");
    config.replace(&served, &format!("{:?}", plugin_wasm("test-fetch-more")))
}

/// The config file with the tier plugin's `path` pointed at `wasm`.
fn point_tier_at(h: &Harness, wasm: &Path) {
    let config = std::fs::read_to_string(&h.config).unwrap();
    let seed = format!("{:?}", plugin_wasm("test-fetch-more"));
    assert!(config.contains(&seed), "{config}");
    std::fs::write(&h.config, config.replace(&seed, &format!("{wasm:?}"))).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_login_is_a_golden_case_that_holds_the_next_build_to_it() {
    let (tier, asked) = tier_service().await;
    let h = start_edited_harness(&capturing_tier_config(&tier), "", false, |c, _| c).await;
    // Version 2, pushed and deployed with the CLI, serves the login.
    let wasm = plugin_wasm("test-fetch-claim").display().to_string();
    let pushed = run_cli(&h.issuer, &["push", &wasm, "--name", "tier"]).await;
    assert_eq!(pushed["version"], 2, "{pushed}");
    let deployed = run_cli(&h.issuer, &["deploy", "tier", "2"]).await;
    assert_eq!(deployed["serving"], true, "{deployed}");
    let claims = access_claims_of_a_login(&h).await;
    assert_eq!(claims["fetched"], "gold");
    let log_id = latest_log_id(&h).await;

    let cases = h.dir.path().join("cases");
    std::fs::create_dir(&cases).unwrap();
    let case = cases.join("captured.yaml");
    let written = capture(&h, log_id, &case).await;
    assert!(written.status.success(), "{}", text(&written));
    let yaml = std::fs::read_to_string(&case).unwrap();
    for secret in [format!("{tier}/tier"), UPSTREAM_SECRET.to_owned()] {
        assert!(!yaml.contains(&secret), "{secret} kept:\n{yaml}");
    }
    let file: serde_json::Value = serde_norway::from_str(&yaml).unwrap();
    assert_eq!(file["config"], "../claimsmith.toml", "relative to the case");
    assert_eq!(file["input"]["upstream"]["access_token"], "[redacted]");
    assert!(
        file["name"].as_str().unwrap().contains("tier v2"),
        "names the version that served it: {yaml}"
    );
    assert_eq!(
        file["expect"]["claims"]["access_token"]["fetched"], "gold",
        "{yaml}"
    );
    assert!(
        yaml.contains("url: '[redacted]'") || yaml.contains("url: \"[redacted]\""),
        "the tier request's URL is the secret `url`: {yaml}"
    );

    // The config's `path` holds a build that changes the claim: the case
    // holds it to what the live login gave.
    let failed = run_case(&case).await;
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed));
    assert!(
        text(&failed).contains("gold (changed)"),
        "{}",
        text(&failed)
    );

    // The version that served it, pulled from the store, passes.
    let served = h.dir.path().join("tier-v2.wasm");
    let out = served.display().to_string();
    let pulled = run_cli(&h.issuer, &["pull", "tier", "2", "--out", &out]).await;
    assert_eq!(pulled["sha256"], pushed["sha256"], "{pulled}");
    point_tier_at(&h, &served);
    let passed = run_case(&case).await;
    assert!(passed.status.success(), "{}", text(&passed));

    // Both runs of the case were answered from the capture: the tier
    // service saw the live login's request alone.
    assert_eq!(*asked.lock().unwrap(), ["/tier"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_no_capturing_plugin_ran_in_is_not_kept() {
    let (tier, _asked) = tier_service().await;
    let h = start_edited_harness(&tier_config(&tier, 1), "", false, |config, _| config).await;
    access_claims_of_a_login(&h).await;
    let log_id = latest_log_id(&h).await;
    let case = h.dir.path().join("captured.yaml");
    let refused = capture(&h, log_id, &case).await;
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains(&format!("login {log_id} was not captured")),
        "{}",
        text(&refused)
    );
    assert!(!case.exists());
}
