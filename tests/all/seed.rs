//! The seed scenario end to end: okta-userinfo against a real userinfo server
//! on loopback, geo-claims, and tokens an app verifies with the JWKS.

use crate::support::{Setup, login, outcome, root, serve};
use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use claimsmith::pipeline::{LoginFailure, RunOptions};
use claimsmith::replay::RecordedLogin;
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
use serde_json::{Map, Value, json};

async fn userinfo_server(status: StatusCode, body: Value) -> std::net::SocketAddr {
    let router = Router::new().route(
        "/v1/userinfo",
        get(move |headers: HeaderMap| {
            let body = body.clone();
            async move {
                if headers.get("authorization").and_then(|v| v.to_str().ok())
                    != Some("Bearer upstream-at")
                {
                    return (
                        StatusCode::UNAUTHORIZED,
                        axum::Json(json!({"error": "invalid_token"})),
                    );
                }
                (status, axum::Json(body))
            }
        }),
    );
    serve(router).await
}

fn seed(address: std::net::SocketAddr) -> Setup {
    Setup::new()
        .plugin(
            "okta-userinfo",
            "okta-userinfo",
            "profile-fetcher",
            &format!("allowed_origins = [\"http://{address}\"]"),
        )
        .plugin("geo-claims", "geo-claims", "post-login-action", "")
        .connection(
            "okta",
            Some("okta-userinfo"),
            &format!("{{ userinfo_url = \"http://{address}/v1/userinfo\" }}"),
        )
        .action("geo-claims", "fail")
}

fn verify(token: &str, jwks: &jsonwebtoken::jwk::JwkSet, audience: &str) -> Map<String, Value> {
    let header = decode_header(token).unwrap();
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("kid in the JWKS");
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&["https://login.example.com"]);
    decode::<Map<String, Value>>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .unwrap()
        .claims
}

#[tokio::test]
async fn the_seed_login_mints_tokens_that_verify_against_the_jwks() {
    let address = userinfo_server(
        StatusCode::OK,
        json!({"sub": "00u1ada", "name": "Ada Lovelace", "email": "ada@example.com", "user_type": "employee"}),
    )
    .await;
    let pipeline = seed(address).start().unwrap();
    let minted = outcome(&pipeline, &login("okta")).await.unwrap();
    // The JWKS as an app would fetch it: serialized, then parsed.
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_str(&serde_json::to_string(&pipeline.keys().jwks()).unwrap()).unwrap();

    let access = verify(
        &minted.tokens.access_token,
        &jwks,
        "https://api.example.com",
    );
    assert_eq!(access["geo_ip_country"], json!("NZ"));
    assert_eq!(access["sub"], json!("okta|00u1ada"));
    assert_eq!(access["scope"], json!("openid profile email"));

    let id = verify(&minted.tokens.id_token, &jwks, "app");
    assert_eq!(id["nonce"], json!("nonce-123"));
    assert_eq!(id["name"], json!("Ada Lovelace"));
    assert_eq!(id["sub"], json!("okta|00u1ada"));

    let profile = &minted.user.profile;
    assert_eq!(profile["geo_ip_country"], json!("NZ"));
    assert!(
        !profile.contains_key("user_type"),
        "user_type removed: {profile:?}"
    );
}

#[tokio::test]
async fn without_geoipcountry_the_country_is_unknown() {
    let address = userinfo_server(StatusCode::OK, json!({"sub": "00u1ada"})).await;
    let pipeline = seed(address).start().unwrap();
    let mut input = login("okta");
    input.upstream.id_token_claims.remove("geoipcountry");
    let minted = outcome(&pipeline, &input).await.unwrap();
    let access =
        jsonwebtoken::dangerous::insecure_decode::<Map<String, Value>>(&minted.tokens.access_token)
            .unwrap()
            .claims;
    assert_eq!(access["geo_ip_country"], json!("Unknown"));
}

#[tokio::test]
async fn a_failing_userinfo_fails_the_login_with_its_status() {
    let address = userinfo_server(StatusCode::INTERNAL_SERVER_ERROR, json!({})).await;
    let pipeline = seed(address).start().unwrap();
    let failure = outcome(&pipeline, &login("okta")).await.unwrap_err();
    assert!(matches!(failure, LoginFailure::Plugin(_)));
    assert!(failure.to_string().contains("StatusCode: 500"), "{failure}");
    assert!(
        failure.to_string().contains("plugin `okta-userinfo`"),
        "{failure}"
    );
}

#[tokio::test]
async fn the_example_runs_from_its_recorded_input_without_the_network() {
    let config =
        claimsmith::config::Config::load(&root().join("examples/okta/claimsmith.toml")).unwrap();
    let data = tempfile::tempdir().unwrap();
    let config = claimsmith::config::Config {
        data_dir: data.path().to_owned(),
        ..config
    };
    let pipeline = claimsmith::pipeline::Pipeline::new(
        config,
        claimsmith::capabilities::http::OutboundHttp::new().unwrap(),
    )
    .unwrap();
    let recorded = RecordedLogin::load(&root().join("examples/okta/login.json")).unwrap();
    let canned = std::sync::Arc::new(claimsmith::replay::CannedHttp::new(
        recorded.http.clone().unwrap(),
    ));
    let options = RunOptions {
        interceptor: Some(canned.clone()),
        now: Some(1_795_000_000),
        log_sink: None,
        ..RunOptions::default()
    };
    let minted = pipeline
        .run(&recorded.login, &options)
        .await
        .outcome
        .unwrap()
        .minted()
        .unwrap();
    assert!(canned.unmatched().is_empty(), "{:?}", canned.unmatched());
    assert!(
        canned.unrequested().is_empty(),
        "{:?}",
        canned.unrequested()
    );
    let access =
        jsonwebtoken::dangerous::insecure_decode::<Map<String, Value>>(&minted.tokens.access_token)
            .unwrap()
            .claims;
    assert_eq!(access["geo_ip_country"], json!("NZ"));
    assert_eq!(access["iat"], json!(1_795_000_000));
    assert_eq!(
        minted.user.profile["department"],
        json!("Analytical Engines")
    );
}
