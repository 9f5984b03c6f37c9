//! The credentials-exchange chain, through the real service: a machine
//! client's token for an `[[apis]]` audience goes through
//! `[[credentials_exchange]]` first, where Auth0's documented Action adds a
//! claim unchanged and a denial answers the token request with its OAuth
//! error. The Management API's tokens never go through it.

use reqwest::StatusCode;
use serde_json::{Map, Value, json};

use crate::management::machine_clients;
use crate::support::service_harness::{Harness, start_edited_harness, verify};

const REPORTS: &str = "https://reports.example.com";
const SERVICE: (&str, &str) = ("reports-service", "reports-secret-0123456789");
const SUSPENDED: (&str, &str) = ("suspended", "suspended-secret-0123456789");
const REQUEST_IP: &str = "https://my-api.exampleco.com/request-ip";

/// A machine client for the reports API, with `metadata` (TOML).
fn reports_client((id, secret): (&str, &str), metadata: &str) -> String {
    format!(
        "[[clients]]\nclient_id = \"{id}\"\nname = \"Reports\"\n\
         client_secret = {{ value = \"{secret}\" }}\ngrant_types = [\"client_credentials\"]\n\
         allowed_audiences = [\"{REPORTS}\", \"ISSUER/api/v2/\"]\n\
         allowed_scopes = [\"read:reports\", \"read:roles\"]\nmetadata = {metadata}\n"
    )
}

/// The harness with the reports API and its chain: Auth0's request-ip
/// Action (JavaScript), then m2m-guard (Rust).
async fn exchange_harness(suspended_with: &str) -> Harness {
    let request_ip = crate::support::language_plugin_wasm("js", "auth0-request-ip");
    let guard = crate::support::plugin_wasm("m2m-guard");
    let extra = format!(
        "{}\n[[apis]]\nidentifier = \"{REPORTS}\"\nscopes = [\"read:reports\"]\n\n{}\n{}\n\
         [[credentials_exchange]]\nplugin = \"auth0-request-ip\"\n\n\
         [[credentials_exchange]]\nplugin = \"m2m-guard\"\n\n\
         [plugins.auth0-request-ip]\npath = {request_ip:?}\nworld = \"credentials-exchange\"\n\n\
         [plugins.m2m-guard]\npath = {guard:?}\nworld = \"credentials-exchange\"\n",
        machine_clients(),
        reports_client(SERVICE, "{}"),
        reports_client(
            SUSPENDED,
            &format!("{{ deny_code = \"{suspended_with}\" }}")
        ),
    );
    start_edited_harness(&extra, "", false, |config, issuer| {
        config.replace("ISSUER", issuer)
    })
    .await
}

async fn machine_token(
    h: &Harness,
    client: (&str, &str),
    audience: &str,
) -> (StatusCode, Map<String, Value>) {
    let form = [
        ("grant_type", "client_credentials"),
        ("audience", audience),
        ("scope", "read:reports"),
    ];
    h.token(&form, Some(client)).await
}

#[tokio::test]
async fn auth0s_credentials_exchange_action_adds_its_claim_to_an_api_token_unchanged() {
    let h = exchange_harness("invalid_scope").await;
    let (status, body) = machine_token(&h, SERVICE, REPORTS).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    let claims = verify(&body["access_token"], &h.jwks().await, REPORTS, &h.issuer);
    assert_eq!(claims[REQUEST_IP], json!("127.0.0.1"), "{claims:?}");
    // The chain runs in order, each action on the claims before it.
    assert_eq!(claims["https://claimsmith.dev/client"], json!("Reports"));
    assert_eq!(
        claims["https://claimsmith.dev/requested_scopes"],
        json!(["read:reports"])
    );
    assert_eq!(claims["sub"], json!(SERVICE.0));
    // m2m-guard counts the client's tokens in `api.cache`, across requests.
    assert_eq!(claims["https://claimsmith.dev/tokens_issued"], json!(1));
    let (_, again) = machine_token(&h, SERVICE, REPORTS).await;
    let claims = verify(&again["access_token"], &h.jwks().await, REPORTS, &h.issuer);
    assert_eq!(claims["https://claimsmith.dev/tokens_issued"], json!(2));

    // The Management API's tokens are the host's own: no action shapes them.
    let management = format!("{}/api/v2/", h.issuer);
    let form = [
        ("grant_type", "client_credentials"),
        ("audience", management.as_str()),
        ("scope", "read:roles"),
    ];
    let (status, body) = h.token(&form, Some(SERVICE)).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    let claims = verify(
        &body["access_token"],
        &h.jwks().await,
        &management,
        &h.issuer,
    );
    assert!(claims.get(REQUEST_IP).is_none(), "{claims:?}");
}

#[tokio::test]
async fn a_denial_answers_the_token_request_with_its_oauth_error_and_reason() {
    for (code, status) in [
        ("invalid_scope", StatusCode::BAD_REQUEST),
        ("invalid_request", StatusCode::BAD_REQUEST),
        ("server_error", StatusCode::INTERNAL_SERVER_ERROR),
    ] {
        let h = exchange_harness(code).await;
        let (answered, body) = machine_token(&h, SUSPENDED, REPORTS).await;
        assert_eq!(answered, status, "{code}: {body:?}");
        assert_eq!(
            (body["error"].as_str(), body["error_description"].as_str()),
            (Some(code), Some("client suspended is suspended")),
            "{code}"
        );
        assert!(body.get("access_token").is_none());
        // Another client's token is unaffected.
        let (status, body) = machine_token(&h, SERVICE, REPORTS).await;
        assert_eq!(status, StatusCode::OK, "{body:?}");
    }
}

#[tokio::test]
async fn a_denial_code_auth0_does_not_allow_fails_the_request_and_the_host_serves_on() {
    let h = exchange_harness("access_denied").await;
    let (status, body) = machine_token(&h, SUSPENDED, REPORTS).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body:?}");
    assert_eq!(body["error"], json!("server_error"));
    // The plugin's message stays in the host's log, out of the answer.
    let description = body["error_description"].as_str().unwrap_or_default();
    assert!(!description.contains("access_denied"), "{description}");
    let (status, body) = machine_token(&h, SERVICE, REPORTS).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
}
