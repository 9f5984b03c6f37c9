//! Canaries through the service: a stored version served to a share of
//! the users instead of the deployed one, rolled back by the host once its
//! failures pass the canary's threshold, promoted by deploying it.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::management::{OPS, machine_token};
use crate::shadow::{access_claims_of_a_login, tier_api, tier_harness, tier_service};
use crate::support::plugin_wasm;
use crate::support::service_harness::Harness;

async fn push(h: &Harness, token: &str, wasm: &str) -> u64 {
    let bytes = std::fs::read(plugin_wasm(wasm)).unwrap();
    let (status, pushed) = tier_api(
        h,
        Method::POST,
        "/versions",
        token,
        Some(("application/wasm", bytes)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{pushed}");
    pushed["version"].as_u64().unwrap()
}

async fn post_json(h: &Harness, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    let bytes = serde_json::to_vec(&body).unwrap();
    tier_api(
        h,
        Method::POST,
        path,
        token,
        Some(("application/json", bytes)),
    )
    .await
}

/// The version of `tier` the latest login's audit row names.
async fn version_of_the_latest_login(h: &Harness) -> Value {
    let audit = h.store().recent_logins(1).await.unwrap();
    let steps = audit[0].steps.as_array().cloned().unwrap_or_default();
    let tier = steps.iter().find(|step| step["name"] == "tier");
    tier.map_or(Value::Null, |step| step["version"].clone())
}

#[tokio::test]
async fn a_canary_that_fails_is_rolled_back_by_itself() {
    let (tier, _asked) = tier_service().await;
    let h = tier_harness(&tier, 1, "").await;
    let admin = crate::support::service_harness::admin_listener(&h).await;
    let token = machine_token(&h, OPS, &[]).await;
    let trapping = push(&h, &token, "test-trapper").await;
    let terms = json!({"version": trapping, "share": 1.0, "max_failure_rate": 0.5, "min_calls": 2});
    let (status, canary) = post_json(&h, "/canary", &token, terms).await;
    assert_eq!(status, StatusCode::OK, "{canary}");
    assert_eq!(
        (&canary["share"], &canary["window_secs"]),
        (&json!(1.0), &json!(300))
    );

    // Every user is the canary's: two logins fail on it, and it is gone.
    for _ in 0..2 {
        let redirect = h.web_login().await;
        assert_eq!(redirect.get("error"), Some("server_error"), "{redirect:?}");
        assert_eq!(version_of_the_latest_login(&h).await, json!(trapping));
    }
    let (status, _) = tier_api(&h, Method::GET, "/canary", &token, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "rolled back");
    let claims = access_claims_of_a_login(&h).await;
    assert_eq!(
        claims["fetched"], "gold",
        "the deployed version again: {claims:?}"
    );
    assert_eq!(version_of_the_latest_login(&h).await, json!(1));
    // The metrics tell the versions' calls apart.
    let metrics = h.http.get(format!("{admin}/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    for series in [
        format!(
            r#"claimsmith_plugin_version_calls_total{{plugin="tier",version="{trapping}",status="failed"}} 2"#
        ),
        r#"claimsmith_plugin_version_calls_total{plugin="tier",version="1",status="succeeded"} 1"#
            .to_owned(),
    ] {
        assert!(metrics.contains(&series), "{series} in:\n{metrics}");
    }
    let trail = h.store().admin_actions(10).await.unwrap();
    let rollback = trail
        .iter()
        .find(|entry| entry.action == "roll_back_canary")
        .expect("the rollback is in the admin trail");
    assert_eq!(rollback.actor, "claimsmith (canary watch)");
    assert_eq!(
        (&rollback.detail["calls"], &rollback.detail["failures"]),
        (&json!(2), &json!(2))
    );
}

#[tokio::test]
async fn a_canary_serves_its_users_until_it_is_deployed() {
    let (tier, _asked) = tier_service().await;
    let h = tier_harness(&tier, 1, "").await;
    let token = machine_token(&h, OPS, &[]).await;
    let changed = push(&h, &token, "test-fetch-more").await;
    for (terms, expected) in [
        (json!({"version": 9, "share": 0.5}), StatusCode::NOT_FOUND),
        (
            json!({"version": changed, "share": 0}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"version": changed, "share": 0.5, "max_failure_rate": 2}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (status, body) = post_json(&h, "/canary", &token, terms.clone()).await;
        assert_eq!(status, expected, "{terms}: {body}");
    }
    let (status, _) = post_json(
        &h,
        "/canary",
        &token,
        json!({"version": changed, "share": 1.0}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for _ in 0..2 {
        let claims = access_claims_of_a_login(&h).await;
        assert_eq!(claims["fetched"], "gold (changed)", "{claims:?}");
        assert_eq!(version_of_the_latest_login(&h).await, json!(changed));
    }

    // Deploying the canary's version promotes it: the canary ends.
    let (status, deployed) = post_json(&h, "/deploy", &token, json!({"version": changed})).await;
    assert_eq!(status, StatusCode::OK, "{deployed}");
    let (status, _) = tier_api(&h, Method::GET, "/canary", &token, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let claims = access_claims_of_a_login(&h).await;
    assert_eq!(claims["fetched"], "gold (changed)");
    let (status, _) = tier_api(&h, Method::DELETE, "/canary", &token, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing to end");
}
