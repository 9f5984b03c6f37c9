//! Swapping a plugin while `claimsmith` serves: the new chain goes in whole
//! or not at all, no login fails across the swap, each login runs on one
//! chain version and its audit row says which.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::plugin_wasm;
use crate::support::service_harness::{ChainReloads, Harness, VERIFIER, harness};
use reqwest::StatusCode;
use serde_json::{Map, Value};

const ROLES_CLAIM: &str = "https://claimsmith.dev/roles";

/// Which build of the swapped action ran, told by the claim it sets.
fn build_that_ran(claims: &Map<String, Value>) -> &'static str {
    match (
        claims.contains_key(ROLES_CLAIM),
        claims.contains_key("seen_event"),
    ) {
        (true, false) => "roles-claim",
        (false, true) => "test-echo",
        other => panic!("no single build ran: {other:?} in {claims:?}"),
    }
}

/// Puts `source` at `target` in one step, as a deploy should (a copy
/// renamed into place), so that no reader sees half a file.
fn deploy(source: &Path, target: &Path) {
    let staged = target.with_extension("staged");
    std::fs::copy(source, &staged).unwrap();
    std::fs::rename(&staged, target).unwrap();
}

async fn login(service: &Harness) -> Map<String, Value> {
    let code = service.web_login().await;
    let (status, tokens) = service
        .exchange(code.get("code").expect("a code"), VERIFIER)
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens:?}");
    service.access_claims(&tokens).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_plugin_swapped_under_load_fails_no_login_and_a_broken_one_is_refused() {
    let plugins = tempfile::tempdir().unwrap();
    let swapped = plugins.path().join("swapped.wasm");
    deploy(&plugin_wasm("roles-claim"), &swapped);
    let service = harness(&format!(
        "[plugins.swapped]\npath = {swapped:?}\nworld = \"post-login-action\"\n\
         [[actions]]\nplugin = \"swapped\"\n"
    ))
    .await;

    // Four logins at a time, all along; the new build deployed a second in.
    let started = Instant::now();
    let deployer = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        deploy(&plugin_wasm("test-echo"), &swapped);
    };
    let runner = || async {
        let mut seen = Vec::new();
        while started.elapsed() < Duration::from_secs(4) {
            let began = started.elapsed();
            seen.push((began, build_that_ran(&login(&service).await)));
        }
        seen
    };
    let ((), a, b, c, d) = tokio::join!(deployer, runner(), runner(), runner(), runner());
    let mut runs: Vec<(Duration, &str)> = [a, b, c, d].concat();
    runs.sort();
    let builds: Vec<&str> = runs.iter().map(|(_, build)| *build).collect();
    let first_new = builds
        .iter()
        .position(|build| *build == "test-echo")
        .expect("the new build took over");
    assert!(first_new > 0, "the old build served first: {builds:?}");
    // Logins that began after the first one on the new build run on it
    // too; a few begun just before may still finish on the old one.
    let settled = runs[first_new].0 + Duration::from_millis(500);
    assert!(
        runs.iter()
            .filter(|(began, _)| *began > settled)
            .all(|(_, build)| *build == "test-echo"),
        "once swapped, only the new build runs: {runs:?}"
    );

    // The audit rows name the version that ran: the first login's for as
    // many logins as the old build served, another for the rest.
    let rows = service.store().recent_logins(10_000).await.unwrap();
    assert_eq!(rows.len(), builds.len(), "every login minted and recorded");
    let versions: Vec<String> = rows
        .iter()
        .map(|row| row.chain_version.clone().expect("a chain version"))
        .collect();
    let old_version = rows.last().unwrap().chain_version.clone().unwrap();
    let on_old = versions.iter().filter(|v| **v == old_version).count();
    let distinct: std::collections::BTreeSet<&String> = versions.iter().collect();
    assert_eq!(distinct.len(), 2, "{distinct:?}");
    let old_builds = builds.iter().filter(|b| **b == "roles-claim").count();
    assert_eq!(
        on_old, old_builds,
        "each login's row names the build it ran"
    );

    // A broken build is refused (the refusal counted, so it was tried): the
    // last good chain keeps serving.
    let refusals = ChainReloads::watch(&service, "refused").await;
    std::fs::write(plugins.path().join("broken.wasm"), b"\0asm but not really").unwrap();
    deploy(&plugins.path().join("broken.wasm"), &swapped);
    refusals.next("the broken build was never tried").await;
    assert_eq!(build_that_ran(&login(&service).await), "test-echo");

    // Rolling back is putting the old file back.
    deploy(&plugin_wasm("roles-claim"), &swapped);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if build_that_ran(&login(&service).await) == "roles-claim" {
            break;
        }
        assert!(Instant::now() < deadline, "the rollback never took");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rows = service.store().recent_logins(1).await.unwrap();
    assert_eq!(
        rows[0].chain_version.as_ref(),
        Some(&old_version),
        "the rolled-back chain has the old version"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_reloads_its_chain_on_sighup() {
    let service = crate::support::service_harness::harness_as_process("").await;
    let crate::support::service_harness::Host::Process(process) = &service.host else {
        unreachable!("harness_as_process runs serve as a process");
    };
    assert!(login(&service).await.contains_key("geo_ip_country"));
    // geo-claims leaves the chain, in an edit the file watcher cannot see
    // (same size, same modification time): only the SIGHUP reloads it.
    let before = std::fs::read_to_string(&service.config).unwrap();
    let modified = std::fs::metadata(&service.config)
        .unwrap()
        .modified()
        .unwrap();
    let mut edited = before.replace("[[actions]]\nplugin = \"geo-claims\"\n", "");
    let padding = before.len() - edited.len() - 2;
    edited += &format!("#{}\n", " ".repeat(padding));
    assert_eq!(edited.len(), before.len());
    std::fs::write(&service.config, &edited).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&service.config)
        .and_then(|file| file.set_modified(modified))
        .unwrap();
    let hangup = std::process::Command::new("kill")
        .args(["-HUP", &process.0.id().to_string()])
        .status()
        .unwrap();
    assert!(hangup.success());
    let log = service.dir.path().join("serve.log");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text
            .lines()
            .any(|line| line.contains("swapped in a new plugin chain") && line.contains("SIGHUP"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "no reload on SIGHUP:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Still serving, on the reloaded chain: without geo-claims.
    assert!(!login(&service).await.contains_key("geo_ip_country"));
}

#[tokio::test]
async fn a_reload_that_changes_the_connections_is_refused_and_the_chain_serves_on() {
    let service = harness("").await;
    let crate::support::service_harness::Host::InProcess(host) = &service.host else {
        unreachable!("harness runs the service in process");
    };
    let serving = host.pipeline().chain_version().to_owned();
    let config = std::fs::read_to_string(&service.config).unwrap();
    assert!(config.contains("name = \"dev\"\n"), "{config}");
    std::fs::write(
        &service.config,
        config.replace("name = \"dev\"\n", "name = \"dev-renamed\"\n"),
    )
    .unwrap();
    let refused = host.reload_chain().await.unwrap_err();
    assert!(
        matches!(
            refused,
            claimsmith::oidc::reload::ReloadError::ConnectionsChanged(_)
        ),
        "{refused}"
    );
    assert!(refused.to_string().contains("dev-renamed"), "{refused}");
    assert_eq!(host.pipeline().chain_version(), serving);
    assert!(login(&service).await.contains_key("geo_ip_country"));
}
