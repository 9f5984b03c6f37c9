//! Plugin versions in the store, through the service: a `source = "store"`
//! plugin seeded from its config file, versions pushed and deployed through
//! the Management API and `claimsmith plugins`, every host following a
//! deploy within `[server] plugin_poll_secs`, the audit rows naming the
//! version that ran, and what a push or a deploy refuses.

use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::management::{OPS, machine_clients, machine_token};
use crate::several_hosts::{TwoHosts, two_hosts_edited};
use crate::support::plugin_wasm;
use crate::support::service_harness::{Harness, start_edited_harness};

/// The test config's `geo-claims` as a store plugin, its file the seed.
fn geo_claims_from_the_store(config: String) -> String {
    let file_plugin = "world = \"post-login-action\"\n\n[[connections]]";
    assert!(config.contains(file_plugin), "the config has geo-claims");
    config.replace(
        file_plugin,
        "world = \"post-login-action\"\nsource = \"store\"\n\n[[connections]]",
    )
}

/// Hosts ask the store every second.
const POLL_EVERY_SECOND: &str = "plugin_poll_secs = 1";

async fn store_hosts() -> TwoHosts {
    two_hosts_edited(
        &machine_clients(),
        POLL_EVERY_SECOND,
        geo_claims_from_the_store,
    )
    .await
}

/// A call of `/api/v2/plugins/geo-claims{path}` at `host`.
async fn plugin_api(
    h: &Harness,
    host: &str,
    method: Method,
    path: &str,
    token: &str,
    body: Option<(&str, Vec<u8>)>,
) -> (StatusCode, Value) {
    let url = format!("{host}/api/v2/plugins/geo-claims{path}");
    plugin_call(h, method, &url, token, body).await
}

/// A Management API call at `url` with `body` (its content type and
/// bytes): the status and the answer as JSON (or as a string).
pub(crate) async fn plugin_call(
    h: &Harness,
    method: Method,
    url: &str,
    token: &str,
    body: Option<(&str, Vec<u8>)>,
) -> (StatusCode, Value) {
    let mut request = h.http.request(method, url).bearer_auth(token);
    if let Some((content_type, bytes)) = body {
        request = request
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(bytes);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn push_wasm(h: &Harness, host: &str, token: &str, wasm: &str) -> (StatusCode, Value) {
    let bytes = std::fs::read(plugin_wasm(wasm)).unwrap();
    plugin_api(
        h,
        host,
        Method::POST,
        "/versions",
        token,
        Some(("application/wasm", bytes)),
    )
    .await
}

async fn deploy(h: &Harness, host: &str, token: &str, version: u64) -> (StatusCode, Value) {
    let body = serde_json::to_vec(&json!({"version": version})).unwrap();
    plugin_api(
        h,
        host,
        Method::POST,
        "/deploy",
        token,
        Some(("application/json", body)),
    )
    .await
}

/// The version of `geo-claims` the chain serving at `host` runs.
async fn serving_at(h: &Harness, host: &str, token: &str) -> Option<u64> {
    let response = h
        .http
        .get(format!("{host}/api/v2/plugins"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let plugins: Vec<Value> = response.json().await.unwrap();
    let geo = plugins.iter().find(|p| p["name"] == "geo-claims")?;
    geo["version"].as_u64()
}

/// Waits, to a deadline, for `host` to serve `version`: hosts follow the
/// store on their own, within the poll interval.
async fn wait_until_serving(h: &Harness, host: &str, token: &str, version: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while serving_at(h, host, token).await != Some(version) {
        assert!(
            std::time::Instant::now() < deadline,
            "{host} never served version {version}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A sign-in whose callback (and chain) runs at `host`: the access token's
/// claims, and the version of geo-claims its audit row names.
async fn login_at(hosts: &TwoHosts, host: &str) -> (serde_json::Map<String, Value>, Value) {
    let code = hosts.login_finished_at(host).await;
    let (status, tokens) = hosts.redeem_at(hosts.a_base(), &code).await;
    assert_eq!(status, StatusCode::OK, "{tokens:?}");
    let claims = hosts.a.access_claims(&tokens).await;
    let audit = hosts.a.store().recent_logins(1).await.unwrap();
    let steps = audit[0].steps.as_array().cloned().unwrap_or_default();
    let geo = steps
        .iter()
        .find(|step| step["name"] == "geo-claims")
        .unwrap_or_else(|| panic!("geo-claims ran: {steps:?}"));
    (claims, geo["version"].clone())
}

/// What geo-claims v1 (the seed) sets and test-echo, pushed as v2, does not.
fn from_the_seed(claims: &serde_json::Map<String, Value>) -> bool {
    claims.get("geo_ip_country") == Some(&json!("NZ")) && !claims.contains_key("seen_event")
}

fn from_the_echo(claims: &serde_json::Map<String, Value>) -> bool {
    claims.contains_key("seen_event") && !claims.contains_key("geo_ip_country")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_version_pushed_at_one_host_and_deployed_at_the_other_is_served_by_both() {
    let hosts = store_hosts().await;
    let (a, b) = (hosts.a_base().to_owned(), hosts.b_base.clone());
    let h = &hosts.a;
    let token = machine_token(h, OPS, &[]).await;

    // Both hosts started on the seed, stored once as version 1.
    let (status, versions) = plugin_api(h, &b, Method::GET, "/versions", &token, None).await;
    assert_eq!(status, StatusCode::OK, "{versions}");
    assert_eq!(versions.as_array().map(Vec::len), Some(1), "{versions}");
    assert_eq!(versions[0]["created_by"], "config seed");
    let (claims, version) = login_at(&hosts, &a).await;
    assert!(from_the_seed(&claims), "{claims:?}");
    assert_eq!(version, 1);

    let (status, pushed) = push_wasm(h, &a, &token, "test-echo").await;
    assert_eq!(status, StatusCode::CREATED, "{pushed}");
    assert_eq!(
        (
            &pushed["version"],
            &pushed["world"],
            &pushed["language"],
            &pushed["created_by"]
        ),
        (
            &json!(2),
            &json!("post-login-action"),
            &json!("Rust"),
            &json!("ops")
        ),
        "{pushed}"
    );
    let (status, again) = push_wasm(h, &b, &token, "test-echo").await;
    assert_eq!(
        (status, &again["version"]),
        (StatusCode::OK, &json!(2)),
        "the same bytes"
    );
    // Pushed is not deployed: both hosts still serve the seed.
    assert_eq!(login_at(&hosts, &b).await.1, 1);

    let (status, deployed) = deploy(h, &b, &token, 2).await;
    assert_eq!(status, StatusCode::OK, "{deployed}");
    assert_eq!(
        (&deployed["version"], &deployed["serving"]),
        (&json!(2), &json!(true))
    );
    wait_until_serving(h, &a, &token, 2).await;
    for host in [&a, &b] {
        let (claims, version) = login_at(&hosts, host).await;
        assert!(from_the_echo(&claims), "at {host}: {claims:?}");
        assert_eq!(version, 2, "at {host}");
    }

    // `claimsmith plugins rollback` at A: the version before, on both.
    let rollback = run_cli(&a, &["rollback", "geo-claims"]).await;
    assert_eq!(rollback["version"], 1, "{rollback}");
    wait_until_serving(h, &b, &token, 1).await;
    for host in [&a, &b] {
        let (claims, version) = login_at(&hosts, host).await;
        assert!(from_the_seed(&claims), "at {host}: {claims:?}");
        assert_eq!(version, 1, "at {host}");
    }
    let listed = run_cli(&a, &["list", "geo-claims"]).await;
    let deploys: Vec<&Value> = listed["deployments"].as_array().unwrap().iter().collect();
    let history: Vec<(&Value, &Value)> = deploys
        .iter()
        .map(|d| (&d["version"], &d["deployed_by"]))
        .collect();
    assert_eq!(
        history,
        [
            (&json!(1), &json!("ops")),
            (&json!(2), &json!("ops")),
            (&json!(1), &json!("config seed"))
        ],
        "{listed}"
    );

    // Every change is in the admin trail, by who made it.
    let trail = h.store().admin_actions(10).await.unwrap();
    let changes: Vec<(&str, &str)> = trail
        .iter()
        .map(|e| (e.action.as_str(), e.actor.as_str()))
        .collect();
    for expected in [
        ("seed_plugin", "config seed"),
        ("push_plugin_version", "ops"),
        ("deploy_plugin", "ops"),
    ] {
        assert!(changes.contains(&expected), "{changes:?}");
    }
    assert_eq!(
        changes
            .iter()
            .filter(|(action, _)| *action == "deploy_plugin")
            .count(),
        2,
        "the deploy and the rollback: {changes:?}"
    );
}

/// `claimsmith plugins <args>` as `ops`, `host` its issuer (the CLI
/// finds the token endpoint and the API there): its JSON output.
pub(crate) async fn run_cli(host: &str, args: &[&str]) -> Value {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_claimsmith"));
    command
        .arg("plugins")
        .args(args)
        .args(["--issuer", host])
        .env("CLAIMSMITH_CLIENT_ID", OPS.0)
        .env("CLAIMSMITH_CLIENT_SECRET", OPS.1);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "claimsmith plugins {args:?}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stored_component_that_does_not_match_its_row_is_never_loaded() {
    let hosts = store_hosts().await;
    let (a, b) = (hosts.a_base().to_owned(), hosts.b_base.clone());
    let h = &hosts.a;
    let token = machine_token(h, OPS, &[]).await;
    let (status, pushed) = push_wasm(h, &a, &token, "test-echo").await;
    assert_eq!(status, StatusCode::CREATED, "{pushed}");

    // Behind the service's back, version 2's bytes become another valid
    // component's: its row still names test-echo's digest.
    let other = std::fs::read(plugin_wasm("test-denier")).unwrap();
    let encoded = base64::engine::general_purpose::STANDARD.encode(other);
    let changed = hosts
        .database
        .execute(&format!(
            "UPDATE plugin_versions SET component = '{encoded}' \
             WHERE plugin = 'geo-claims' AND version = 2"
        ))
        .await;
    assert_eq!(changed, 1);

    // B has never seen version 2's bytes: it reads them from the store,
    // and refuses them.
    let (status, deployed) = deploy(h, &b, &token, 2).await;
    assert_eq!(status, StatusCode::OK, "{deployed}");
    assert_eq!(deployed["serving"], false, "{deployed}");
    let refused = hosts.b.reload_chain().await.unwrap_err().to_string();
    assert!(
        refused.contains("version 2 has SHA-256") && refused.contains("its row says"),
        "{refused}"
    );
    let (claims, version) = login_at(&hosts, &b).await;
    assert!(
        from_the_seed(&claims),
        "B serves what it served: {claims:?}"
    );
    assert_eq!(version, 1);
    // Nor are they handed out.
    let (status, pulled) = plugin_api(h, &b, Method::GET, "/versions/2", &token, None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{pulled}");
    let (status, _) = plugin_api(h, &b, Method::GET, "/versions/9", &token, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn what_is_not_a_component_of_the_plugins_world_is_not_stored() {
    let h = start_edited_harness(&machine_clients(), "", false, |config, _| {
        geo_claims_from_the_store(config)
    })
    .await;
    let host = h.issuer.clone();
    let token = machine_token(&h, OPS, &[]).await;
    let wasm = |name: &str| {
        Some((
            "application/wasm",
            std::fs::read(plugin_wasm(name)).unwrap(),
        ))
    };
    let push = |body| plugin_api(&h, &host, Method::POST, "/versions", &token, body);

    let (status, body) = push(Some(("application/wasm", b"\0asm not really".to_vec()))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("not a valid WebAssembly component"),
        "{body}"
    );
    let (status, body) = push(wasm("okta-userinfo")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("does not implement that world"),
        "{body}"
    );
    let (status, body) = push(wasm("test-foreign-import")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("does not grant"),
        "{body}"
    );
    let (status, body) = push(Some((
        "application/octet-stream",
        std::fs::read(plugin_wasm("test-echo")).unwrap(),
    )))
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    let over_the_cap = vec![0u8; claimsmith::oidc::management::MAX_COMPONENT_BYTES + 1];
    let (status, body) = push(Some(("application/wasm", over_the_cap.clone()))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    // Without a token the body is not looked at: 401, not 413.
    let anonymous = h
        .http
        .post(format!("{host}/api/v2/plugins/geo-claims/versions"))
        .header(reqwest::header::CONTENT_TYPE, "application/wasm")
        .body(over_the_cap)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // Nothing of those was kept: the seed is the only version, and no
    // refused upload is left on disk.
    let (status, versions) = plugin_api(&h, &host, Method::GET, "/versions", &token, None).await;
    assert_eq!(
        (status, versions.as_array().map(Vec::len)),
        (StatusCode::OK, Some(1))
    );
    let kept = std::fs::read_dir(h.dir.path().join("data/store-plugins"))
        .unwrap()
        .count();
    assert_eq!(kept, 1, "only the seed's file");

    // Unknown plugins and versions, a file plugin, a bad deploy.
    let unknown = h
        .http
        .get(format!("{host}/api/v2/plugins/nope/versions"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let file_plugin = h
        .http
        .get(format!("{host}/api/v2/plugins/okta-userinfo/versions"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(file_plugin.status(), StatusCode::CONFLICT);
    let (status, body) = deploy(&h, &host, &token, 7).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = plugin_api(
        &h,
        &host,
        Method::POST,
        "/deploy",
        &token,
        Some(("application/json", b"{\"version\": \"latest\"}".to_vec())),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Each route's scope: `reader` has read:logs only.
    let reader = machine_token(&h, crate::management::READER, &[]).await;
    let (status, _) = push_wasm(&h, &host, &reader, "test-echo").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = deploy(&h, &host, &reader, 1).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
