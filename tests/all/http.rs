//! Outbound HTTP from plugins, against real servers on loopback: granted
//! origins work, everything else is refused before a packet leaves.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::support::{Setup, language_plugin_wasm, login, outcome, serve};
use axum::Router;
use axum::routing::get;
use claimsmith::capabilities::http::{GuardedResolver, OutboundHttp};
use claimsmith::pipeline::LoginFailure;
use jsonwebtoken::dangerous::insecure_decode;
use serde_json::{Map, Value, json};

/// A loopback server counting the requests it receives.
async fn counting_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let router = Router::new()
        .route(
            "/hello",
            get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { "hello from loopback" }
            }),
        )
        .route("/big", get(|| async { "x".repeat(64 * 1024) }))
        .route(
            "/echo",
            axum::routing::post({
                let counter = hits.clone();
                move |body: String| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    async move { body }
                }
            }),
        )
        .route(
            "/redirect",
            get(|| async { axum::response::Redirect::temporary("/hello") }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        );
    (serve(router).await, hits)
}

/// The same fetcher twice: `test-fetcher` calls the contract's `http.fetch`,
/// `test-js-fetcher` JavaScript's global `fetch()` (wasi:http). Both must be
/// held to one policy, so every test below runs both.
const FETCHERS: [(&str, &str); 2] = [("rust", "test-fetcher"), ("js", "test-js-fetcher")];

fn fetcher_setup(fetcher: (&str, &str), grant: &str, metadata: &str, limits: &str) -> Setup {
    let (language, name) = fetcher;
    Setup::new()
        .plugin_at(
            "fetcher",
            &language_plugin_wasm(language, name),
            "post-login-action",
            &format!("allowed_origins = [{grant:?}]\nlimits = {limits}"),
        )
        .connection("okta", None, "{}")
        .client("fetching-app", metadata)
        .action("fetcher", "fail")
}

fn fetch_url(url: &str) -> String {
    format!("{{ fetch_url = {url:?} }}")
}

/// The fetcher granted the loopback server at `address`, asked for `path` on it.
fn granted_fetch(
    fetcher: (&str, &str),
    address: SocketAddr,
    path: &str,
    limits: &str,
) -> claimsmith::pipeline::Pipeline {
    fetcher_setup(
        fetcher,
        &format!("http://{address}"),
        &fetch_url(&format!("http://{address}{path}")),
        limits,
    )
    .start()
    .unwrap()
}

fn fetching_login() -> claimsmith::pipeline::Login {
    let mut input = login("okta");
    input.client_id = "fetching-app".into();
    input
}

fn access_claims(minted: &claimsmith::pipeline::MintedLogin) -> Map<String, Value> {
    insecure_decode::<Map<String, Value>>(&minted.tokens.access_token)
        .unwrap()
        .claims
}

/// Runs the login, which must fail in the fetcher's own step as a fetch
/// that got no answer; returns the failure.
async fn fetch_failure(
    fetcher: (&str, &str),
    pipeline: &claimsmith::pipeline::Pipeline,
) -> LoginFailure {
    let failure = outcome(pipeline, &fetching_login()).await.unwrap_err();
    assert!(
        matches!(failure, LoginFailure::Plugin(_)),
        "{fetcher:?}: {failure:?}"
    );
    assert!(
        failure.to_string().contains("fetch failed"),
        "{fetcher:?}: {failure}"
    );
    failure
}

#[tokio::test]
async fn a_granted_origin_is_reached() {
    for fetcher in FETCHERS {
        let (address, hits) = counting_server().await;
        let pipeline = granted_fetch(fetcher, address, "/hello", "{}");
        let minted = outcome(&pipeline, &fetching_login()).await.unwrap();
        let claims = access_claims(&minted);
        assert_eq!(claims["fetched_status"], json!(200), "{fetcher:?}");
        assert_eq!(
            claims["fetched_body"],
            json!("hello from loopback"),
            "{fetcher:?}"
        );
        assert_eq!(hits.load(Ordering::SeqCst), 1, "{fetcher:?}");
    }
}

#[tokio::test]
async fn an_origin_not_granted_is_refused_without_a_request() {
    for fetcher in FETCHERS {
        let (address, hits) = counting_server().await;
        let other_port = address.port().wrapping_add(1);
        // Granted: the same host on another port. Asked: the real server.
        let pipeline = fetcher_setup(
            fetcher,
            &format!("http://127.0.0.1:{other_port}"),
            &fetch_url(&format!("http://{address}/hello")),
            "{}",
        )
        .start()
        .unwrap();
        fetch_failure(fetcher, &pipeline).await;
        assert_eq!(
            hits.load(Ordering::SeqCst),
            0,
            "{fetcher:?}: no request reached the server"
        );
    }
    // The contract's error names the reason to the plugin itself.
    let (address, _) = counting_server().await;
    let pipeline = fetcher_setup(
        FETCHERS[0],
        "http://127.0.0.1:1",
        &fetch_url(&format!("http://{address}/hello")),
        "{}",
    )
    .start()
    .unwrap();
    let message = outcome(&pipeline, &fetching_login())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        message.contains(&format!(
            "NotAllowed(\"origin http://{address} is not granted to plugin `fetcher`\")"
        )),
        "{message}"
    );
}

/// JavaScript streams a request body to the host: it arrives whole, and one
/// past the cap is refused before anything is sent.
#[tokio::test]
async fn a_javascript_request_body_arrives_whole_and_is_capped() {
    let js = FETCHERS[1];
    let (address, hits) = counting_server().await;
    let url = format!("http://{address}/echo");
    let pipeline = fetcher_setup(
        js,
        &format!("http://{address}"),
        &format!("{{ fetch_url = {url:?}, fetch_body_size = 100000 }}"),
        "{ max_response_bytes = 200000 }",
    )
    .start()
    .unwrap();
    let minted = outcome(&pipeline, &fetching_login()).await.unwrap();
    let claims = access_claims(&minted);
    assert_eq!(claims["fetched_status"], json!(200));
    assert_eq!(claims["fetched_body"], json!("x".repeat(100_000)));
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    let too_big = claimsmith::capabilities::http::MAX_STREAMED_REQUEST_BYTES + 1;
    let pipeline = fetcher_setup(
        js,
        &format!("http://{address}"),
        &format!("{{ fetch_url = {url:?}, fetch_body_size = {too_big} }}"),
        "{}",
    )
    .start()
    .unwrap();
    fetch_failure(js, &pipeline).await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "the oversized body was not sent"
    );
}

#[tokio::test]
async fn a_granted_hostname_that_resolves_to_a_blocked_address_is_refused() {
    for fetcher in FETCHERS {
        let (address, hits) = counting_server().await;
        // `internal.test` resolves to loopback here, as a rebinding attacker's
        // name would: granted by name, it must still not reach the address.
        let resolver = GuardedResolver::default()
            .with_override("internal.test", vec![IpAddr::from([127, 0, 0, 1])]);
        let port = address.port();
        let pipeline = fetcher_setup(
            fetcher,
            &format!("http://internal.test:{port}"),
            &fetch_url(&format!("http://internal.test:{port}/hello")),
            "{}",
        )
        .start_with(OutboundHttp::with_resolver(resolver).unwrap())
        .unwrap();
        let failure = fetch_failure(fetcher, &pipeline).await;
        if fetcher.0 == "rust" {
            let message = failure.to_string();
            assert!(
                message.contains("NotAllowed") && message.contains("127.0.0.1"),
                "{message}"
            );
        }
        assert_eq!(hits.load(Ordering::SeqCst), 0, "{fetcher:?}");
    }
}

/// A server that records the headers of every request it gets.
async fn header_recording_server() -> (
    SocketAddr,
    Arc<std::sync::Mutex<Vec<Vec<(String, String)>>>>,
) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorder = seen.clone();
    let router = Router::new().route(
        "/hello",
        get(move |headers: axum::http::HeaderMap| {
            let received = headers
                .iter()
                .map(|(name, value)| {
                    let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                    (name.as_str().to_owned(), value)
                })
                .collect();
            recorder.lock().unwrap().push(received);
            async { "hello" }
        }),
    );
    (serve(router).await, seen)
}

/// The headers a plugin may not set, each with a value the origin would
/// recognise as the plugin's.
const FORBIDDEN_HEADERS: [(&str, &str); 8] = [
    ("host", "plugin-marker.test"),
    ("content-length", "7777"),
    ("transfer-encoding", "plugin-marker"),
    ("connection", "plugin-marker"),
    ("upgrade", "plugin-marker"),
    ("te", "plugin-marker"),
    ("trailer", "plugin-marker"),
    ("proxy-authorization", "Basic plugin-marker"),
];

#[tokio::test]
async fn no_forbidden_request_header_a_plugin_sets_reaches_the_origin_on_either_path() {
    for fetcher in FETCHERS {
        for (name, value) in FORBIDDEN_HEADERS {
            let (address, seen) = header_recording_server().await;
            let headers = format!("{{ {name:?} = {value:?} }}");
            let pipeline = fetcher_setup(
                fetcher,
                &format!("http://{address}"),
                &format!("{{ fetch_url = \"http://{address}/hello\", fetch_headers = {headers} }}"),
                "{}",
            )
            .start()
            .unwrap();
            let outcome = outcome(&pipeline, &fetching_login()).await;
            let received = seen.lock().unwrap().clone();
            assert!(
                received.iter().flatten().all(|(_, got)| got != value),
                "{fetcher:?}: `{name}` reached the origin: {received:?}"
            );
            if fetcher.0 == "rust" {
                // The contract's fetch refuses it before any request.
                let failure = outcome.unwrap_err().to_string();
                assert!(
                    failure.contains(&format!("header `{name}` is set by the host")),
                    "{name}: {failure}"
                );
                assert!(received.is_empty(), "{name}: {received:?}");
            }
        }
    }
}

#[tokio::test]
async fn a_response_over_the_cap_is_refused() {
    for fetcher in FETCHERS {
        let (address, _) = counting_server().await;
        let pipeline = granted_fetch(fetcher, address, "/big", "{ max_response_bytes = 1024 }");
        let failure = fetch_failure(fetcher, &pipeline).await.to_string();
        // The contract's error says it; JavaScript's NetworkError does not,
        // so the host does.
        let said = match fetcher.0 {
            "rust" => "ResponseTooLarge(1024)",
            _ => "its last failed request: response larger than 1024 bytes",
        };
        assert!(failure.contains(said), "{failure}");
    }
}

#[tokio::test]
async fn a_slow_origin_times_out_within_the_plugin_http_timeout() {
    for fetcher in FETCHERS {
        let (address, _) = counting_server().await;
        let pipeline = granted_fetch(fetcher, address, "/slow", "{ http_timeout_ms = 100 }");
        let failure = fetch_failure(fetcher, &pipeline).await.to_string();
        let said = match fetcher.0 {
            "rust" => "HttpError::Timeout",
            _ => "its last failed request: timed out",
        };
        assert!(failure.contains(said), "{failure}");
    }
}

/// Left at its default, the request timeout ends before the call's, so the
/// plugin sees the timeout as an `http-error` and fails in its own words
/// rather than being killed at the call's timeout.
#[tokio::test]
async fn a_slow_origin_times_out_before_the_call_with_the_default_http_timeout() {
    for fetcher in FETCHERS {
        let (address, _) = counting_server().await;
        let pipeline = granted_fetch(fetcher, address, "/slow", "{ timeout_ms = 2000 }");
        let failure = fetch_failure(fetcher, &pipeline).await.to_string();
        assert!(!failure.contains("wall-clock"), "{failure}");
        assert!(
            failure.contains("imed out") || failure.contains("Timeout"),
            "{failure}"
        );
    }
}

#[tokio::test]
async fn the_default_profile_merges_the_id_token_and_userinfo() {
    let router = Router::new().route(
        "/userinfo",
        get(|headers: axum::http::HeaderMap| async move {
            let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
            axum::Json(json!({ "name": "Ada Lovelace", "email": "ada@lovelace.example", "bearer": bearer }))
        }),
    );
    let address = serve(router).await;
    let pipeline = Setup::new()
        .connection(
            "plain",
            None,
            &format!("{{ userinfo_url = \"http://{address}/userinfo\" }}"),
        )
        .start()
        .unwrap();
    let minted = outcome(&pipeline, &login("plain")).await.unwrap();
    let profile = &minted.user.profile;
    assert_eq!(profile["name"], json!("Ada Lovelace"));
    assert_eq!(
        profile["email"],
        json!("ada@lovelace.example"),
        "userinfo wins"
    );
    assert_eq!(profile["geoipcountry"], json!("NZ"), "from the id token");
    assert_eq!(profile["bearer"], json!("Bearer upstream-at"));
    assert!(
        !profile.contains_key("iss") && !profile.contains_key("aud"),
        "{profile:?}"
    );
}

#[tokio::test]
async fn redirects_are_returned_to_the_plugin_not_followed() {
    for fetcher in FETCHERS {
        let (address, hits) = counting_server().await;
        let pipeline = granted_fetch(fetcher, address, "/redirect", "{}");
        let minted = outcome(&pipeline, &fetching_login()).await.unwrap();
        assert_eq!(
            access_claims(&minted)["fetched_status"],
            json!(307),
            "{fetcher:?}"
        );
        assert_eq!(
            hits.load(Ordering::SeqCst),
            0,
            "{fetcher:?}: the redirect target was not requested"
        );
    }
}

#[tokio::test]
async fn a_userinfo_about_another_subject_is_refused() {
    let router = Router::new().route(
        "/userinfo",
        get(|| async { axum::Json(json!({ "sub": "someone-else", "name": "Mallory" })) }),
    );
    let address = serve(router).await;
    let pipeline = Setup::new()
        .connection(
            "plain",
            None,
            &format!("{{ userinfo_url = \"http://{address}/userinfo\" }}"),
        )
        .start()
        .unwrap();
    let failure = outcome(&pipeline, &login("plain")).await.unwrap_err();
    assert!(matches!(failure, LoginFailure::Userinfo(_)), "{failure:?}");
    assert!(failure.to_string().contains("`sub` differs"), "{failure}");
}
