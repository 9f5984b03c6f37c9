//! The benchmark's load driver (`bench/load`), held to what its figures
//! claim: it walks complete logins through the real service, and a login
//! counts only when its access token carries the claims the plugins add, so
//! a broken chain cannot post a fast figure.

use crate::support::service_harness::{APP_REDIRECT, ServeProcess, harness, service_config};
use claimsmith::store::AuditOutcome;
use claimsmith_load::{DriveArgs, Report, drive};
use clap::Parser as _;

/// The driver's arguments for web-app at `issuer`, for one second with no
/// warm-up, with `extra` arguments.
fn drive_args(issuer: &str, client_secret: &str, extra: &[&str]) -> DriveArgs {
    let mut args = vec![
        "claimsmith-load",
        "--issuer",
        issuer,
        "--client-id",
        "web-app",
        "--client-secret",
        client_secret,
        "--redirect-uri",
        APP_REDIRECT,
        "--warmup",
        "0",
        "--duration",
        "1",
    ];
    args.extend_from_slice(extra);
    DriveArgs::parse_from(args)
}

const WEB_APP_SECRET: &str = "web-app-secret-0123";

async fn drive_against(issuer: &str, expected_claim: &str) -> Report {
    let pid = std::process::id().to_string();
    let args = drive_args(
        issuer,
        WEB_APP_SECRET,
        &[
            "--concurrency",
            "4",
            "--expect-claim",
            expected_claim,
            "--server-pid",
            &pid,
        ],
    );
    drive(&args).await.expect("the driver runs")
}

#[tokio::test(flavor = "multi_thread")]
async fn counts_complete_logins_whose_tokens_carry_the_plugins_claims() {
    let h = harness("").await;
    let report = drive_against(&h.issuer, "geo_ip_country").await;
    assert_eq!(report.errors, 0, "{:?}", report.error_kinds);
    assert!(report.logins > 0, "{report:?}");
    assert!(
        report.p50_ms > 0.0 && report.p99_ms >= report.p50_ms,
        "{report:?}"
    );
    assert!(report.server_cpu_ms_per_login.is_some_and(|cpu| cpu > 0.0));

    // Every counted login is in the audit trail, minted through the chain.
    let logins = h.store().recent_logins(u32::MAX).await.unwrap();
    let minted = logins
        .iter()
        .filter(|login| login.outcome == AuditOutcome::Minted)
        .count();
    assert!(minted >= report.logins, "{minted} minted, {report:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_login_without_the_expected_claim_is_an_error_not_a_login() {
    let h = harness("").await;
    let report = drive_against(&h.issuer, "claim_no_plugin_sets").await;
    assert_eq!(report.logins, 0, "{report:?}");
    assert!(report.errors > 0, "{report:?}");
    assert!(
        report
            .error_kinds
            .keys()
            .all(|kind| kind == "the access token lacks claim_no_plugin_sets"),
        "{:?}",
        report.error_kinds
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_login_the_service_refuses_is_an_error() {
    let h = harness("").await;
    // A secret the service does not know: every code exchange fails.
    let args = drive_args(&h.issuer, "not-the-web-app-secret", &["--concurrency", "2"]);
    let report = drive(&args).await.expect("the driver runs");
    assert_eq!(report.logins, 0, "{report:?}");
    // Refused, then throttled once the client failed too often.
    let refused = "the token endpoint answered 401 Unauthorized";
    let throttled = "the token endpoint answered 429 Too Many Requests";
    assert!(report.error_kinds.contains_key(refused), "{report:?}");
    assert!(
        report
            .error_kinds
            .keys()
            .all(|kind| kind == refused || kind == throttled),
        "{:?}",
        report.error_kinds
    );
}

/// `claimsmith dev-upstream`, then `claimsmith serve` once the upstream
/// answers, on one config in `dir`: the service's issuer and both processes.
/// Ports are picked by binding and closing, so another process may take one
/// first; the process that then cannot bind exits, and both are started
/// again on other ports.
async fn two_processes_on_free_ports(
    dir: &std::path::Path,
) -> (String, ServeProcess, ServeProcess) {
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .unwrap()
    };
    for _ in 0..5 {
        let (service_port, upstream_port) = (free_port(), free_port());
        let issuer = format!("http://127.0.0.1:{service_port}");
        let upstream = format!("http://127.0.0.1:{upstream_port}");
        let config = dir.join("claimsmith.toml");
        let listen = format!("127.0.0.1:{service_port}").parse().unwrap();
        std::fs::write(&config, service_config(&issuer, listen, &upstream, "", "")).unwrap();
        let mut upstream_process =
            ServeProcess::spawn("dev-upstream", &config, &dir.join("upstream.log"));
        if !upstream_process.answers_as(&upstream).await {
            continue;
        }
        let mut service = ServeProcess::spawn("serve", &config, &dir.join("serve.log"));
        if service.answers_as(&issuer).await {
            return (issuer, service, upstream_process);
        }
    }
    panic!("the two processes did not come up: see {}", dir.display());
}

/// `cargo xtask bench`'s setup, in small: `claimsmith dev-upstream` and
/// `claimsmith serve` on one config as two processes, the driver signing in
/// through both and measuring the service's process alone.
#[tokio::test(flavor = "multi_thread")]
async fn the_service_signs_in_at_a_development_upstream_in_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let (issuer, service, upstream_process) = two_processes_on_free_ports(dir.path()).await;

    let pid = service.0.id().to_string();
    let args = drive_args(
        &issuer,
        WEB_APP_SECRET,
        &[
            "--concurrency",
            "2",
            "--expect-claim",
            "geo_ip_country",
            "--server-pid",
            &pid,
        ],
    );
    let report = drive(&args).await.expect("the driver runs");
    assert_eq!(report.errors, 0, "{:?}", report.error_kinds);
    assert!(report.logins > 0, "{report:?}");
    assert!(
        report.server_rss_mib.is_some_and(|rss| rss > 1.0),
        "{report:?}"
    );
    drop(upstream_process);
}
