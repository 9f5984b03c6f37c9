//! Shadow runs through the service: a candidate version of a store plugin
//! run beside the deployed one on live logins, answered only from the live
//! call's recorded HTTP, its differences counted and shown (secrets
//! redacted), while every token stays the deployed version's.

use std::sync::{Arc, Mutex};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::management::{OPS, machine_clients, machine_token};
use crate::support::plugin_wasm;
use crate::support::service_harness::{Harness, VERIFIER, start_edited_harness};

/// Every path the tier service was asked for.
pub(crate) type Asked = Arc<Mutex<Vec<String>>>;

/// A tier service on loopback answering `gold` at `/tier`, 404 elsewhere,
/// noting every request.
pub(crate) async fn tier_service() -> (String, Asked) {
    let asked = Asked::default();
    let noted = asked.clone();
    let router = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let noted = noted.clone();
        async move {
            noted.lock().unwrap().push(uri.path().to_owned());
            if uri.path() == "/tier" {
                (StatusCode::OK, "gold")
            } else {
                (StatusCode::NOT_FOUND, "no")
            }
        }
    });
    let address = crate::support::serve(router).await;
    (format!("http://{address}"), asked)
}

/// The store plugin `tier` (seeded with test-fetch-claim, its secret `url`
/// the tier service's) run `times` in the chain, and the machine clients.
pub(crate) fn tier_config(tier: &str, times: usize) -> String {
    let mut extra = format!(
        "{}\n[plugins.tier]\npath = {:?}\nworld = \"post-login-action\"\nsource = \"store\"\n\
         allowed_origins = [\"{tier}\"]\nsecrets = {{ url = {{ value = \"{tier}/tier\" }} }}\n",
        machine_clients(),
        plugin_wasm("test-fetch-claim"),
    );
    extra.push_str(&"[[actions]]\nplugin = \"tier\"\n".repeat(times));
    extra
}

/// The harness with [`tier_config`], its hosts asking the store every second.
pub(crate) async fn tier_harness(tier: &str, times: usize, server_toml: &str) -> Harness {
    let server = format!("plugin_poll_secs = 1\n{server_toml}");
    start_edited_harness(&tier_config(tier, times), &server, false, |config, _| {
        config
    })
    .await
}

/// A call of `/api/v2/plugins/tier{path}`.
pub(crate) async fn tier_api(
    h: &Harness,
    method: Method,
    path: &str,
    token: &str,
    body: Option<(&str, Vec<u8>)>,
) -> (StatusCode, Value) {
    let url = format!("{}/api/v2/plugins/tier{path}", h.issuer);
    crate::plugin_store::plugin_call(h, method, &url, token, body).await
}

/// test-fetch-more pushed as version 2 and shadowing on every login.
pub(crate) async fn shadowed_by_the_changed_version(h: &Harness, token: &str) {
    let wasm = std::fs::read(plugin_wasm("test-fetch-more")).unwrap();
    let (status, pushed) = tier_api(
        h,
        Method::POST,
        "/versions",
        token,
        Some(("application/wasm", wasm)),
    )
    .await;
    assert_eq!(
        (status, &pushed["version"]),
        (StatusCode::CREATED, &json!(2)),
        "{pushed}"
    );
    let body = serde_json::to_vec(&json!({"version": 2, "sample": 1.0})).unwrap();
    let (status, shadow) = tier_api(
        h,
        Method::POST,
        "/shadow",
        token,
        Some(("application/json", body)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{shadow}");
    assert_eq!(
        (&shadow["version"], &shadow["runs"]),
        (&json!(2), &json!(0))
    );
}

/// The shadow's tally once it counts `runs` runs and drops, to a deadline:
/// each host adds its own every poll.
pub(crate) async fn shadow_after(h: &Harness, token: &str, counted: u64) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (status, shadow) = tier_api(h, Method::GET, "/shadow", token, None).await;
        assert_eq!(status, StatusCode::OK, "{shadow}");
        let seen = shadow["runs"].as_u64().unwrap_or(0) + shadow["dropped"].as_u64().unwrap_or(0);
        if seen >= counted {
            return shadow;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never counted {counted}: {shadow}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

pub(crate) async fn access_claims_of_a_login(h: &Harness) -> serde_json::Map<String, Value> {
    let redirect = h.web_login().await;
    let (status, tokens) = h.exchange(redirect.get("code").unwrap(), VERIFIER).await;
    assert_eq!(status, StatusCode::OK, "{tokens:?}");
    h.access_claims(&tokens).await
}

#[tokio::test]
async fn a_candidate_that_changes_a_claim_shows_up_as_differences_and_sends_nothing() {
    let (tier, asked) = tier_service().await;
    let h = tier_harness(&tier, 1, "").await;
    let token = machine_token(&h, OPS, &[]).await;
    shadowed_by_the_changed_version(&h, &token).await;

    for _ in 0..3 {
        let claims = access_claims_of_a_login(&h).await;
        assert_eq!(
            claims["fetched"], "gold",
            "the deployed version's: {claims:?}"
        );
        assert!(!claims.contains_key("more"), "{claims:?}");
    }
    let shadow = shadow_after(&h, &token, 3).await;
    let tally: Vec<&Value> = ["runs", "identical", "different", "failed", "dropped"]
        .iter()
        .map(|name| &shadow[*name])
        .collect();
    assert_eq!(
        tally,
        [&json!(3), &json!(0), &json!(3), &json!(0), &json!(0)],
        "{shadow}"
    );
    let changes = &shadow["differences"][0]["changes"];
    assert_eq!(shadow["differences"][0]["user_id"], "dev|dev-user-1");
    assert_eq!(
        changes,
        &json!([
            {"what": "access_token claim", "name": "fetched", "live": "gold", "candidate": "gold (changed)"},
            // Its refusal names the URL, which holds the secret `url`.
            {"what": "access_token claim", "name": "more", "live": null, "candidate": "[redacted]"},
        ]),
        "{shadow}"
    );
    // The candidate's requests never left the host: the tier service saw
    // the live calls' alone.
    assert_eq!(*asked.lock().unwrap(), ["/tier", "/tier", "/tier"]);
    // The metrics count the candidate version's runs by outcome.
    let admin = crate::support::service_harness::admin_listener(&h).await;
    let metrics = h.http.get(format!("{admin}/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    let series = r#"claimsmith_shadow_runs_total{plugin="tier",version="2",outcome="different"} 3"#;
    assert!(metrics.contains(series), "{series} in:\n{metrics}");

    let (status, _) = tier_api(&h, Method::DELETE, "/shadow", &token, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = tier_api(&h, Method::GET, "/shadow", &token, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let trail = h.store().admin_actions(10).await.unwrap();
    for action in ["shadow_plugin", "stop_shadow"] {
        assert!(trail.iter().any(|entry| entry.action == action), "{action}");
    }
}

/// The chain runs `tier` twice and the queue holds one run: the second
/// call of each login finds it full (the test's one-thread runtime runs
/// the worker only once the login has handed both over).
#[tokio::test]
async fn a_full_shadow_queue_drops_the_run_and_counts_it() {
    let (tier, _asked) = tier_service().await;
    let h = tier_harness(&tier, 2, "shadow_queue = 1").await;
    let token = machine_token(&h, OPS, &[]).await;
    shadowed_by_the_changed_version(&h, &token).await;
    let claims = access_claims_of_a_login(&h).await;
    assert_eq!(claims["fetched"], "gold");
    let shadow = shadow_after(&h, &token, 2).await;
    assert_eq!(
        (&shadow["runs"], &shadow["dropped"]),
        (&json!(1), &json!(1)),
        "{shadow}"
    );
}

#[tokio::test]
async fn a_shadow_wants_a_stored_version_and_a_sample_of_at_most_one() {
    let (tier, _asked) = tier_service().await;
    let h = tier_harness(&tier, 1, "").await;
    let token = machine_token(&h, OPS, &[]).await;
    for (body, expected) in [
        (json!({"version": 7, "sample": 0.5}), StatusCode::NOT_FOUND),
        (json!({"version": 1, "sample": 0}), StatusCode::BAD_REQUEST),
        (
            json!({"version": 1, "sample": 1.5}),
            StatusCode::BAD_REQUEST,
        ),
        (json!({"version": 1}), StatusCode::BAD_REQUEST),
    ] {
        let bytes = serde_json::to_vec(&body).unwrap();
        let (status, answer) = tier_api(
            &h,
            Method::POST,
            "/shadow",
            &token,
            Some(("application/json", bytes)),
        )
        .await;
        assert_eq!(status, expected, "{body}: {answer}");
    }
    let (status, _) = tier_api(&h, Method::GET, "/shadow", &token, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was shadowed");
}
