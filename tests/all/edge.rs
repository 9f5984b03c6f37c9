//! What a caller can send the service, against the real service on
//! loopback: a replayed callback, a `state` it wrote itself, a body it
//! trickles, secrets it guesses, an address it claims.

use std::time::Duration;

use reqwest::{StatusCode, Url};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::support::service_harness::{APP_REDIRECT, Harness, harness, harness_with_server};

/// A client that keeps no cookies and follows no redirect: it sends what
/// the test says, as an attacker would.
fn bare_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Starts a web-app sign-in and signs in at the upstream: the `/callback`
/// URL the upstream sent back, and the pending-login cookie `/authorize`
/// set, as `name=value`.
async fn pending_callback(h: &Harness, client: &reqwest::Client) -> (Url, String) {
    let authorize = h.pkce_authorize_url("web-app", &[]);
    let started = client.get(authorize.clone()).send().await.unwrap();
    let cookie = started.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let upstream = authorize
        .join(started.headers()["location"].to_str().unwrap())
        .unwrap();
    let signed_in = client.get(upstream.clone()).send().await.unwrap();
    let callback = upstream
        .join(signed_in.headers()["location"].to_str().unwrap())
        .unwrap();
    (callback, cookie)
}

#[tokio::test]
async fn fifty_replays_of_a_callback_write_one_row_and_reach_the_upstream_once() {
    let h = harness("").await;
    let client = bare_client();
    let (callback, cookie) = pending_callback(&h, &client).await;
    let upstream_before = h.upstream.token_requests();

    let mut statuses = Vec::new();
    for attempt in 0..51 {
        let answer = client
            .get(callback.clone())
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        statuses.push(answer.status());
        if let Some(location) = answer.headers().get("location") {
            let location = location.to_str().unwrap();
            assert!(
                attempt == 0 && location.starts_with(APP_REDIRECT) && location.contains("code="),
                "callback {attempt} went back to the app: {location}"
            );
        }
    }
    assert_eq!(statuses[0], StatusCode::SEE_OTHER);
    assert!(
        statuses[1..]
            .iter()
            .all(|status| *status == StatusCode::BAD_REQUEST),
        "every replay is refused: {statuses:?}"
    );
    assert_eq!(
        h.upstream.token_requests() - upstream_before,
        1,
        "only the first callback reaches the upstream's token endpoint"
    );
    let rows = h.store().recent_logins(100).await.unwrap();
    assert_eq!(rows.len(), 1, "one audit row: {rows:?}");
}

#[tokio::test]
async fn an_upstream_error_description_is_stored_cut() {
    let h = harness("").await;
    let client = bare_client();
    let (callback, cookie) = pending_callback(&h, &client).await;
    let state = callback
        .query_pairs()
        .find(|(name, _)| name == "state")
        .unwrap()
        .1
        .into_owned();
    let mut refused = Url::parse(&format!("{}/callback", h.issuer)).unwrap();
    refused
        .query_pairs_mut()
        .append_pair("state", &state)
        .append_pair("iss", h.upstream.issuer())
        .append_pair("error", "access_denied")
        .append_pair("error_description", &"x".repeat(60_000));
    let answer = client
        .get(refused)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let rows = h.store().recent_logins(10).await.unwrap();
    let stored = serde_json::to_string(&rows[0].outcome).unwrap();
    assert!(stored.contains("access_denied"), "{stored}");
    assert!(stored.len() < 1024, "{} bytes stored", stored.len());
}

#[tokio::test]
async fn a_callback_state_of_any_bytes_gets_an_answer_and_no_cookie_named_by_it() {
    let h = harness("").await;
    let client = bare_client();
    // The 16th byte falls inside a two-byte character.
    let state = format!("a{}", "é".repeat(20));
    let mut callback = Url::parse(&format!("{}/callback", h.issuer)).unwrap();
    callback
        .query_pairs_mut()
        .append_pair("state", &state)
        .append_pair("code", "some-code");
    let answer = client.get(callback).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    let set_cookie = answer.headers()["set-cookie"].to_str().unwrap();
    let name = set_cookie.split('=').next().unwrap();
    let hash = name.strip_prefix("claimsmith_login_").unwrap();
    assert!(
        hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "{set_cookie}"
    );
    let discovery = client
        .get(format!("{}/.well-known/openid-configuration", h.issuer))
        .send()
        .await
        .unwrap();
    assert_eq!(discovery.status(), StatusCode::OK, "still serving");
}

#[tokio::test]
async fn a_trickled_body_is_cut_off_at_the_body_deadline() {
    let h = harness_with_server("", "body_read_timeout_secs = 1").await;
    let address = h.issuer.trim_start_matches("http://").to_owned();
    let mut connection = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /oauth/token HTTP/1.1\r\nhost: {address}\r\n\
         content-type: application/x-www-form-urlencoded\r\ncontent-length: 10000\r\n\r\n"
    );
    connection.write_all(head.as_bytes()).await.unwrap();
    // A byte every 100 ms would take 1000 s to send the body: wait for the
    // service's answer, for half a minute at most.
    let mut answer = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        if connection.write_all(b"a").await.is_err() {
            break;
        }
        let mut buffer = [0u8; 1024];
        match tokio::time::timeout(Duration::from_millis(100), connection.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(read)) => answer.extend_from_slice(&buffer[..read]),
            Err(_) => {}
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "the service answers before the body is done: {answer:?}"
    );
}

#[tokio::test]
async fn a_strangers_wrong_secrets_lock_out_the_stranger_not_the_client() {
    let h = harness_with_server("", "trusted_proxies = [\"127.0.0.1\"]").await;
    let client = bare_client();
    let attempt = |from: &'static str, secret: &'static str| {
        client
            .post(format!("{}/oauth/token", h.issuer))
            .header("x-forwarded-for", from)
            .basic_auth("web-app", Some(secret))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", "nothing"),
            ])
            .send()
    };
    for _ in 0..10 {
        let guessed = attempt("203.0.113.7", "a-wrong-guess").await.unwrap();
        assert_eq!(guessed.status(), StatusCode::UNAUTHORIZED);
    }
    let stranger = attempt("203.0.113.7", "web-app-secret-0123").await.unwrap();
    assert_eq!(
        stranger.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the guesser is refused even the right secret"
    );
    let app = attempt("10.0.0.2", "web-app-secret-0123").await.unwrap();
    let status = app.status();
    let body = app.text().await.unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("invalid_grant"), "authenticated: {body}");
}

#[tokio::test]
async fn a_scope_parameter_over_the_bound_is_refused_before_it_is_split() {
    let h = harness("").await;
    let client = bare_client();
    // Every scope in it is allowed: only the bound refuses it.
    let scope = "openid ".repeat(700);
    let authorize = h.pkce_authorize_url("web-app", &[("scope", scope.as_str())]);
    let answer = client.get(authorize).send().await.unwrap();
    let location = Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap();
    let error: std::collections::HashMap<_, _> = location.query_pairs().collect();
    assert_eq!(
        error.get("error").map(|e| e.as_ref()),
        Some("invalid_scope"),
        "{location}"
    );
    assert!(
        error["error_description"].contains("longer than 4096 bytes"),
        "{location}"
    );
}

#[tokio::test]
async fn a_removed_clients_tokens_no_longer_open_userinfo() {
    let h = harness("").await;
    let tokens = h.signed_in().await;
    let bearer = tokens["access_token"].as_str().unwrap().to_owned();
    let userinfo = |host: String| {
        let bearer = bearer.clone();
        async move {
            bare_client()
                .get(format!("{host}/userinfo"))
                .bearer_auth(bearer)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(userinfo(h.issuer.clone()).await, StatusCode::OK);

    // The same deployment (issuer, database, keys) restarted without web-app.
    let text = std::fs::read_to_string(&h.config).unwrap();
    let without: Vec<&str> = text
        .split("[[clients]]")
        .filter(|block| !block.contains("client_id = \"web-app\""))
        .collect();
    let path = h.dir.path().join("without-web-app.toml");
    std::fs::write(&path, without.join("[[clients]]")).unwrap();
    let config = claimsmith::config::Config::load(&path).unwrap();
    assert!(config.client("web-app").is_none());
    let restarted = claimsmith::oidc::Service::start(config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(claimsmith::oidc::serve(restarted, listener));
    assert_eq!(userinfo(host).await, StatusCode::UNAUTHORIZED);
}

/// What `/authorize` refuses once the client and redirect URI are known:
/// each answered at the app's redirect URI with its RFC 6749 §4.1.2.1 code.
#[tokio::test]
async fn authorize_refuses_each_bad_request_with_its_error() {
    let h = harness("").await;
    let client = bare_client();
    let challenge =
        crate::support::service_harness::challenge(crate::support::service_harness::VERIFIER);
    let s256 = [
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut fields: Vec<(&str, &str)> = s256.to_vec();
        fields.retain(|(name, _)| !extra.iter().any(|(n, _)| n == name));
        fields.extend_from_slice(extra);
        h.authorize_url("web-app", APP_REDIRECT, &fields)
    };
    let refusals = [
        (
            with(&[("scope", "profile email")]),
            "invalid_scope",
            "openid scope is required",
        ),
        (
            with(&[("scope", "openid admin")]),
            "invalid_scope",
            "`admin` is not allowed",
        ),
        (
            with(&[("audience", "https://other.example.com")]),
            "invalid_request",
            "audience",
        ),
        (
            with(&[("connection", "nowhere")]),
            "invalid_request",
            "nowhere",
        ),
        (
            with(&[("code_challenge_method", "plain")]),
            "invalid_request",
            "S256",
        ),
        (
            with(&[("response_type", "token")]),
            "unsupported_response_type",
            "response_type=code",
        ),
        (
            with(&[("prompt", "sometimes")]),
            "invalid_request",
            "prompt",
        ),
        (
            // A public client without PKCE.
            h.authorize_url("spa", crate::support::service_harness::SPA_REDIRECT, &[]),
            "invalid_request",
            "code_challenge",
        ),
    ];
    for (authorize, error, says) in refusals {
        let fields = authorize.query().unwrap_or_default().to_owned();
        let answer = client.get(authorize).send().await.unwrap();
        let location = Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap();
        let params: std::collections::HashMap<_, _> = location.query_pairs().collect();
        assert_eq!(
            params.get("error").map(|e| e.as_ref()),
            Some(error),
            "{fields:?}: {location}"
        );
        assert!(
            params["error_description"].contains(says),
            "{fields:?}: {location}"
        );
        assert!(
            !location.as_str().starts_with(h.upstream.issuer()),
            "{fields:?} went on to the upstream"
        );
    }
}

#[tokio::test]
async fn the_pending_login_cookie_is_http_only_lax_and_for_the_callback_alone() {
    let h = harness("").await;
    let answer = bare_client()
        .get(h.pkce_authorize_url("web-app", &[]))
        .send()
        .await
        .unwrap();
    let cookie = answer.headers()["set-cookie"].to_str().unwrap().to_owned();
    let attributes: Vec<&str> = cookie.split("; ").skip(1).collect();
    assert_eq!(
        attributes,
        ["Path=/callback", "Max-Age=600", "HttpOnly", "SameSite=Lax"],
        "{cookie} (no Secure: this issuer is plain http on loopback)"
    );
}

#[tokio::test]
async fn token_answers_are_not_cacheable() {
    let h = harness("").await;
    let redirect = h.web_login().await;
    let answer = bare_client()
        .post(format!("{}/oauth/token", h.issuer))
        .basic_auth("web-app", Some("web-app-secret-0123"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", redirect.get("code").unwrap()),
            ("redirect_uri", APP_REDIRECT),
            ("code_verifier", crate::support::service_harness::VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.headers()["cache-control"], "no-store");
    assert_eq!(answer.headers()["pragma"], "no-cache");
}
