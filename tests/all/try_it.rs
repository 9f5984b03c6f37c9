//! Try it (the console's runner) on its own: it runs one plugin or the
//! whole chain with canned HTTP, collects the plugins' log lines whatever
//! the log level, and the golden case it writes passes `claimsmith test`
//! as it is, and fails once the plugin behaves otherwise.

use crate::support::golden_options;
use crate::support::service_harness::{echo_action, service_config};
use claimsmith::capabilities::http::OutboundHttp;
use claimsmith::config::Config;
use claimsmith::engine::Engine;
use claimsmith::golden::{run_suite, try_login};
use serde_json::json;

fn config(dir: &std::path::Path) -> Config {
    let toml = service_config(
        "https://login.example.com",
        "127.0.0.1:0".parse().unwrap(),
        "https://idp.example.com",
        "",
        &echo_action(),
    );
    let path = dir.join("claimsmith.toml");
    std::fs::write(&path, toml).unwrap();
    Config::load(&path).unwrap()
}

fn login() -> serde_json::Value {
    json!({
        "connection": "dev",
        "client_id": "web-app",
        "upstream": { "access_token": "at", "id_token_claims": { "sub": "ada" } },
        "profile": { "sub": "ada", "geo_ip_country": "NZ" },
    })
}

#[tokio::test]
async fn a_try_collects_the_logs_and_writes_a_case_that_passes_and_can_fail() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let http = OutboundHttp::new().unwrap();
    let engine = Engine::new(&config.engine, http.clone()).unwrap();

    let tried = try_login(&config, &engine, http.clone(), Some("echo"), login())
        .await
        .unwrap();
    assert!(
        tried.outcome["claims"]["access_token"]["seen_event"].is_object(),
        "{:?}",
        tried.outcome
    );
    assert!(
        tried
            .logs
            .iter()
            .any(|line| line.plugin == "echo" && line.message == "echo ran"),
        "the plugin's log line, whatever the host's log level: {:?}",
        tried.logs
    );
    let steps: Vec<&str> = tried.steps.iter().map(|step| step.name.as_str()).collect();
    assert_eq!(steps, ["echo", "mint"], "the plugin alone");

    // The whole chain: both actions run on the given profile.
    let chain = try_login(&config, &engine, http.clone(), None, login())
        .await
        .unwrap();
    assert_eq!(
        chain.outcome["claims"]["access_token"]["geo_ip_country"],
        "NZ"
    );
    assert!(chain.steps.iter().any(|step| step.name == "geo-claims"));

    // The case it wrote passes as it is...
    let case = dir.path().join("tried.yaml");
    std::fs::write(&case, &tried.golden_case).unwrap();
    let mut out = Vec::new();
    let summary = run_suite(std::slice::from_ref(&case), &golden_options(), &mut out)
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&out);
    assert_eq!(
        (summary.passed(), summary.results.len()),
        (1, 1),
        "{report}"
    );
    // ...and fails when the plugin does something else: here, geo-claims
    // answers where echo did.
    std::fs::write(
        &case,
        tried
            .golden_case
            .replace("plugin: echo", "plugin: geo-claims"),
    )
    .unwrap();
    let mut out = Vec::new();
    let summary = run_suite(&[case], &golden_options(), &mut out)
        .await
        .unwrap();
    assert_eq!(summary.passed(), 0, "{}", String::from_utf8_lossy(&out));

    // A login that is not one is refused with where it is wrong.
    let error = try_login(
        &config,
        &engine,
        http,
        Some("echo"),
        json!({ "client_id": 5 }),
    )
    .await
    .unwrap_err();
    assert!(error.starts_with("input: "), "{error}");
}
