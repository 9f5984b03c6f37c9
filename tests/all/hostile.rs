//! The hostile-plugin catalogue (issue 9), end to end through the real
//! service: each hostile behaviour fails its own login with a typed error in
//! the audit row and `server_error` with a reference to the app (or is
//! skipped under `on_error = "continue"`), while good logins through the same
//! plugin succeed beside it; the service's memory stays flat after thousands
//! of such failures, and a looping plugin does not slow discovery down.
//!
//! One plugin, `test-hostile`, misbehaves per login as its client's metadata
//! `mode` says, so one service has hostile clients and good ones (see the
//! plugin's doc for the modes). Profiles come from `test-hostile-fetcher` on
//! connections of their own. Every server here listens on 127.0.0.1.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::service_harness::*;
use crate::support::{Setup, login, measuring, plugin_wasm, serve};
use axum::Router;
use axum::routing::get;
use claimsmith::capabilities::http::{
    HttpError, InterceptOutcome, OutboundHttpInterceptor, OutboundRequest, OutboundResponse,
};
use claimsmith::pipeline::{LoginFailure, RunOptions};
use claimsmith::store::{AuditEntry, AuditOutcome, Store};
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// No hostile login may take longer than this: a limit that did not trip
/// fails the test instead of hanging it.
const BOUND: Duration = Duration::from_secs(30);

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(BOUND, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {BOUND:?}: a limit did not trip"))
}

/// `[plugins.hostile]` (test-hostile) with the given `limits` and
/// `allowed_origins`, its own secret `own_key`, and its `[[actions]]` step.
fn hostile_action(limits: &str, grants: &[String], on_error: &str) -> String {
    format!(
        "[plugins.hostile]\npath = {:?}\nworld = \"post-login-action\"\nlimits = {limits}\n\
         allowed_origins = {grants:?}\nsecrets = {{ own_key = {{ value = \"own-secret\" }} }}\n\
         [[actions]]\nplugin = \"hostile\"\non_error = \"{on_error}\"\n",
        plugin_wasm("test-hostile")
    )
}

/// A public client (PKCE) per `(client_id, metadata)`, redirecting to the
/// harness's app, its access tokens for web-app's audience.
fn clients(clients: &[(&str, String)]) -> String {
    clients
        .iter()
        .map(|(id, metadata)| {
            format!(
                "[[clients]]\nclient_id = \"{id}\"\nname = \"{id}\"\n\
                 redirect_uris = [\"{APP_REDIRECT}\"]\naudience = \"https://api.example.com\"\n\
                 metadata = {metadata}\n"
            )
        })
        .collect()
}

fn mode(mode: &str) -> String {
    format!("{{ mode = \"{mode}\" }}")
}

fn fetch(url: &str) -> String {
    format!("{{ mode = \"fetch\", url = \"{url}\" }}")
}

/// A sign-in as public client `client_id` with PKCE, in the harness's browser.
async fn sign_in(h: &Harness, client_id: &str) -> AppRedirect {
    let url = h.authorize_url(
        client_id,
        APP_REDIRECT,
        &[
            ("code_challenge", &challenge(VERIFIER)),
            ("code_challenge_method", "S256"),
        ],
    );
    h.browse(url, APP_REDIRECT).await
}

/// A web-app sign-in (no mode: the plugin behaves) to the end: its tokens
/// must verify and carry the claim the well-behaved plugin sets.
async fn good_login(h: &Harness) {
    let redirect = within("a good login", h.web_login()).await;
    let code = redirect
        .get("code")
        .unwrap_or_else(|| panic!("the good login failed: {redirect:?}"));
    let (status, tokens) = h.exchange(code, VERIFIER).await;
    assert_eq!(status, StatusCode::OK, "{tokens:?}");
    let access = verify(
        &tokens["access_token"],
        &h.jwks().await,
        "https://api.example.com",
        &h.issuer,
    );
    assert_eq!(access["hostile_behaved"], json!(true), "{access:?}");
}

/// The audit row of a failed login, found by the reference the app was told
/// (a concurrent login may have written a newer row, so this does not take
/// the newest as `assert_failure_told_by_reference` does). The app got
/// `server_error` and a short description without any of `details`.
async fn failure_told_by_reference(
    store: &Store,
    redirect: &AppRedirect,
    details: &[&str],
) -> AuditEntry {
    assert_eq!(redirect.get("error"), Some("server_error"), "{redirect:?}");
    assert!(redirect.get("code").is_none(), "{redirect:?}");
    let description = redirect.get("error_description").unwrap();
    let reference = redirect.reference();
    assert!(
        details.iter().all(|detail| !description.contains(detail))
            && !description.contains("hostile")
            && !description.contains("127.0.0.1"),
        "internal detail reached the app: {description:?}"
    );
    store
        .recent_logins(1000)
        .await
        .unwrap()
        .into_iter()
        .find(|entry| entry.correlation_id.as_deref() == Some(reference))
        .unwrap_or_else(|| panic!("no audit row under reference {reference}"))
}

fn failed_error(entry: &AuditEntry) -> &str {
    match &entry.outcome {
        AuditOutcome::Failed { error } => error,
        other => panic!("expected a failed login, got {other:?}: {entry:?}"),
    }
}

/// A loopback server that counts the requests to each of its routes.
#[derive(Clone, Default)]
struct Hits {
    hello: Arc<AtomicUsize>,
    by_name: Arc<AtomicUsize>,
    landing: Arc<AtomicUsize>,
}

fn counted(counter: &Arc<AtomicUsize>, answer: &'static str) -> axum::routing::MethodRouter {
    let counter = counter.clone();
    get(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async move { answer }
    })
}

/// Raw loopback upstreams, by path: `/slow` sends its headers, then its body
/// a byte every 100 ms; `/chunked` streams a 1 GiB chunked body; `/declared`
/// declares a 1 GiB body and streams it. Counts, for each of the last two,
/// the body bytes the host let it write (into the socket's buffers).
struct RawUpstream {
    address: SocketAddr,
    chunked: Arc<AtomicU64>,
    declared: Arc<AtomicU64>,
}

async fn raw_upstream() -> RawUpstream {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = RawUpstream {
        address: listener.local_addr().unwrap(),
        chunked: Arc::default(),
        declared: Arc::default(),
    };
    let (chunked, declared) = (upstream.chunked.clone(), upstream.declared.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(answer_raw(stream, chunked.clone(), declared.clone()));
        }
    });
    upstream
}

async fn answer_raw(
    mut stream: tokio::net::TcpStream,
    chunked: Arc<AtomicU64>,
    declared: Arc<AtomicU64>,
) {
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buffer[..n]),
        }
    }
    let request = String::from_utf8_lossy(&request);
    let path = request.split_whitespace().nth(1).unwrap_or("").to_owned();
    let chunk = vec![b'h'; 64 * 1024];
    let gib_of_chunks = 16 * 1024;
    let (headers, pieces, written): (&str, u64, Option<&AtomicU64>) = match path.as_str() {
        "/slow" => (
            "HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n",
            1000,
            None,
        ),
        "/chunked" => (
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            gib_of_chunks,
            Some(&chunked),
        ),
        "/declared" => (
            "HTTP/1.1 200 OK\r\ncontent-length: 1073741824\r\n\r\n",
            gib_of_chunks,
            Some(&declared),
        ),
        _ => (
            "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            0,
            None,
        ),
    };
    if stream.write_all(headers.as_bytes()).await.is_err() {
        return;
    }
    for _ in 0..pieces {
        let piece: &[u8] = if path == "/slow" {
            tokio::time::sleep(Duration::from_millis(100)).await;
            b"x"
        } else {
            &chunk
        };
        let framed = if path == "/chunked" {
            [format!("{:x}\r\n", piece.len()).as_bytes(), piece, b"\r\n"].concat()
        } else {
            piece.to_vec()
        };
        if stream.write_all(&framed).await.is_err() {
            return;
        }
        if let Some(written) = written {
            written.fetch_add(piece.len() as u64, Ordering::SeqCst);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_action_fails_its_own_login_with_a_typed_error_while_good_logins_succeed() {
    let _heavy = measuring::heavy().await;
    let hits = Hits::default();
    let elsewhere = serve(Router::new().route("/landing", counted(&hits.landing, "landed"))).await;
    let granted = serve(
        Router::new()
            .route("/hello", counted(&hits.hello, "hello"))
            .route("/by-name", counted(&hits.by_name, "reached by name"))
            .route(
                "/redirect",
                get(move || async move {
                    axum::response::Redirect::to(&format!("http://{elsewhere}/landing"))
                }),
            ),
    )
    .await;
    let upstream = raw_upstream().await;
    let raw = upstream.address;
    let grants = [
        format!("http://{granted}"),
        format!("http://localhost:{}", granted.port()),
        format!("http://{raw}"),
    ];
    let cap = 64 * 1024;
    let limits = format!(
        "{{ fuel = 200_000_000, memory_mib = 32, timeout_ms = 3000, http_timeout_ms = 1500, max_response_bytes = {cap} }}"
    );
    let fuel_error = "plugin `hostile` exceeded its fuel budget of 200000000 units";
    let not_granted = format!(
        "fetch failed: HttpError::NotAllowed(\"origin http://{elsewhere} is not granted to plugin `hostile`\")"
    );
    let too_large = format!("fetch failed: HttpError::ResponseTooLarge({cap})");
    // (client, metadata, what its audit row must say)
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        ("loop", mode("loop"), vec![fuel_error]),
        (
            "memory",
            mode("memory"),
            vec!["plugin `hostile` exceeded its memory cap of 32 MiB"],
        ),
        (
            "recursion",
            mode("recursion"),
            vec!["plugin `hostile` trapped: wasm trap: call stack exhausted"],
        ),
        (
            "huge-claim",
            mode("huge-claim"),
            vec!["plugin `hostile` failed: ApiError::TooLarge(102400)"],
        ),
        (
            "claims-over-cap",
            mode("claims-over-cap"),
            vec!["plugin `hostile` failed: ApiError::TooLarge(102400)"],
        ),
        (
            "bad-json",
            mode("bad-json"),
            vec!["plugin `hostile` failed: ApiError::InvalidJson(\"key must be a string"],
        ),
        (
            "reserved-claim",
            mode("reserved-claim"),
            vec!["plugin `hostile` failed: ApiError::ReservedClaim(\"sub\")"],
        ),
        (
            "panic",
            mode("panic"),
            vec!["plugin `hostile` trapped: wasm trap: wasm `unreachable` instruction executed"],
        ),
        (
            "not-granted",
            fetch(&format!("http://{elsewhere}/landing")),
            vec![&not_granted],
        ),
        (
            "loopback-by-name",
            fetch(&format!("http://localhost:{}/by-name", granted.port())),
            vec![
                "fetch failed: HttpError::NotAllowed(\"`localhost` resolves to [127.0.0.1",
                "which plugins may not reach",
            ],
        ),
        (
            "redirect",
            fetch(&format!("http://{granted}/redirect")),
            vec![&not_granted],
        ),
        (
            "slow-loris",
            fetch(&format!("http://{raw}/slow")),
            vec!["plugin `hostile` failed: fetch failed: HttpError::Timeout"],
        ),
        (
            "over-cap-chunked",
            fetch(&format!("http://{raw}/chunked")),
            vec![&too_large],
        ),
        (
            "over-cap-declared",
            fetch(&format!("http://{raw}/declared")),
            vec![&too_large],
        ),
        (
            "secret",
            "{ mode = \"secret\", secret = \"api_key\" }".to_owned(),
            vec![
                "plugin `hostile` failed: secret `api_key` was not given (own secret given: true)",
            ],
        ),
        (
            "sleep",
            mode("sleep"),
            vec!["plugin `hostile` exceeded its wall-clock timeout of 3000 ms"],
        ),
        // Host memory outside the memory cap: the resource table's cap and
        // the field size limit (engine `MAX_RESOURCES`, `MAX_FIELDS_BYTES`).
        (
            "resource-flood",
            mode("resource-flood"),
            vec![
                "plugin `hostile` trapped",
                "resource table has no free keys",
            ],
        ),
        (
            "fields-flood",
            mode("fields-flood"),
            vec![
                "plugin `hostile` trapped",
                "total size of fields exceeds limit",
            ],
        ),
    ];
    let mut registered: Vec<(&str, String)> = cases
        .iter()
        .map(|(client, metadata, _)| (*client, metadata.clone()))
        .collect();
    // The control: a fetch of a granted origin works, so the refusals above
    // are the policy's and not a broken `fetch`.
    registered.push(("granted-fetch", fetch(&format!("http://{granted}/hello"))));
    // Another plugin holds the secret `api_key` the hostile one asks for.
    let victim = format!(
        "[plugins.victim]\npath = {:?}\nworld = \"post-login-action\"\n\
         secrets = {{ api_key = {{ value = \"victim-secret\" }} }}\n",
        plugin_wasm("test-echo")
    );
    let h = Arc::new(
        harness(&format!(
            "{}{victim}{}",
            hostile_action(&limits, &grants, "fail"),
            clients(&registered)
        ))
        .await,
    );

    // Every hostile login at once, and good logins while they run.
    let started = Instant::now();
    let mut hostile = tokio::task::JoinSet::new();
    for (client, _, expected) in cases.clone() {
        let h = h.clone();
        let expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        hostile.spawn(async move {
            let redirect = within(client, sign_in(&h, client)).await;
            (client, expected, redirect, started.elapsed())
        });
    }
    let good = {
        let h = h.clone();
        tokio::spawn(async move {
            let mut took = Vec::new();
            for _ in 0..3 {
                let login = Instant::now();
                good_login(&h).await;
                took.push(login.elapsed());
            }
            took
        })
    };
    let control = sign_in(&h, "granted-fetch").await;
    let (status, tokens) = h
        .redeem(
            control.get("code").expect("the granted fetch succeeds"),
            &[
                ("redirect_uri", APP_REDIRECT),
                ("code_verifier", VERIFIER),
                ("client_id", "granted-fetch"),
            ],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens:?}");
    let good_took = good.await.unwrap();
    let good_done = started.elapsed();

    let mut failed = Vec::new();
    while let Some(outcome) = hostile.join_next().await {
        let (client, expected, redirect, took) = outcome.unwrap();
        if client == "sleep" {
            assert!(
                good_done < took,
                "the good logins ({good_done:?}) waited for the sleeping plugin ({took:?})"
            );
        }
        let details: Vec<&str> = expected.iter().map(String::as_str).collect();
        let entry = failure_told_by_reference(h.store(), &redirect, &details).await;
        println!("{client:>18}: {took:>8.1?}  {:.200}", failed_error(&entry));
        failed.push((client, expected, entry));
    }
    assert_eq!(failed.len(), cases.len());
    for (client, expected, entry) in &failed {
        assert_eq!(&entry.client_id, client);
        let error = failed_error(entry);
        for fragment in expected {
            assert!(
                error.contains(fragment),
                "{client}: {error:?} lacks {fragment:?}"
            );
        }
        // The step that failed is the hostile plugin's, after the others ran.
        let steps: Vec<&str> = entry
            .steps
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            steps,
            ["okta-userinfo", "geo-claims", "hostile"],
            "{client}"
        );
    }
    println!(
        "3 good logins beside them took {good_took:?}, done {good_done:?} after the start; all hostile done after {:?}",
        started.elapsed()
    );

    // Nothing reached what was not granted, redirects were not followed by
    // the host, and no name resolving to loopback was reached.
    assert_eq!(
        hits.landing.load(Ordering::SeqCst),
        0,
        "a refused origin was reached"
    );
    assert_eq!(
        hits.by_name.load(Ordering::SeqCst),
        0,
        "loopback was reached by name"
    );
    assert_eq!(
        hits.hello.load(Ordering::SeqCst),
        1,
        "the control reached its origin"
    );
    // The oversized answers were dropped early, not read whole: 1 GiB was
    // on offer from each; what the host did not read stays in the sockets'
    // buffers (here at most 4 MiB to send and 32 MiB to receive, grown only
    // as fast as the reader reads).
    for (what, written) in [
        ("chunked", &upstream.chunked),
        ("declared", &upstream.declared),
    ] {
        let written = written.load(Ordering::SeqCst);
        println!(
            "the {what} 1 GiB answer got {} KiB into its socket",
            written >> 10
        );
        assert!(
            written < 64 << 20,
            "{written} bytes of the {what} answer were taken"
        );
    }

    // The good logins stored their user; the hostile ones stored nothing of theirs.
    let stored = h.stored_user().await.unwrap();
    assert_eq!(stored.user.logins_count, 4, "3 good logins and the control");
}

/// The audit rows of the logins of `client_id`, newest first.
async fn audit_of_client(store: &Store, client_id: &str) -> Vec<AuditEntry> {
    let rows = store.recent_logins(1000).await.unwrap();
    rows.into_iter()
        .filter(|entry| entry.client_id == client_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_on_error_continue_each_hostile_step_is_skipped_and_its_login_succeeds() {
    let _heavy = measuring::heavy().await;
    // Fuel, memory and the payload cap decide each case but `sleep`, not
    // the clock: the timeout is far above what the others take on a loaded
    // machine (building the 10 MiB claim once took over a second beside the
    // other tests).
    let limits = "{ fuel = 200_000_000, memory_mib = 32, timeout_ms = 10000 }";
    let cases: [(&str, String, &str); 9] = [
        ("loop", mode("loop"), "exceeded its fuel budget"),
        (
            "memory",
            mode("memory"),
            "exceeded its memory cap of 32 MiB",
        ),
        (
            "recursion",
            mode("recursion"),
            "trapped: wasm trap: call stack exhausted",
        ),
        (
            "panic",
            mode("panic"),
            "trapped: wasm trap: wasm `unreachable`",
        ),
        (
            "bad-json",
            mode("bad-json"),
            "failed: ApiError::InvalidJson(",
        ),
        (
            "reserved-claim",
            mode("reserved-claim"),
            "failed: ApiError::ReservedClaim(\"sub\")",
        ),
        (
            "huge-claim",
            mode("huge-claim"),
            "failed: ApiError::TooLarge(102400)",
        ),
        (
            "not-granted",
            fetch("http://127.0.0.1:1/"),
            "HttpError::NotAllowed(\"origin http://127.0.0.1:1 is not granted",
        ),
        (
            "sleep",
            mode("sleep"),
            "exceeded its wall-clock timeout of 10000 ms",
        ),
    ];
    let registered: Vec<(&str, String)> = cases
        .iter()
        .map(|(client, metadata, _)| (*client, metadata.clone()))
        .collect();
    let h = Arc::new(
        harness(&format!(
            "{}{}",
            hostile_action(limits, &[], "continue"),
            clients(&registered)
        ))
        .await,
    );
    let mut logins = tokio::task::JoinSet::new();
    for (client, _, _) in &cases {
        let (h, client) = (h.clone(), *client);
        logins.spawn(async move {
            let redirect = within(client, sign_in(&h, client)).await;
            let code = redirect.get("code").unwrap_or_else(|| {
                panic!("{client}: the skipped step failed the login: {redirect:?}")
            });
            let fields = [
                ("redirect_uri", APP_REDIRECT),
                ("code_verifier", VERIFIER),
                ("client_id", client),
            ];
            let (status, tokens) = h.redeem(code, &fields, None).await;
            assert_eq!(status, StatusCode::OK, "{client}: {tokens:?}");
            let access = verify(
                &tokens["access_token"],
                &h.jwks().await,
                "https://api.example.com",
                &h.issuer,
            );
            (client, access)
        });
    }
    good_login(&h).await;
    while let Some(login) = logins.join_next().await {
        let (client, access) = login.unwrap();
        // Nothing the skipped step set survived it.
        assert_eq!(access["sub"], json!("dev|dev-user-1"), "{client}");
        for claim in [
            "set_before_failing",
            "hostile_behaved",
            "huge",
            "bad",
            "claim_0",
            "fetched_status",
        ] {
            assert!(
                !access.contains_key(claim),
                "{client}: {claim} in {access:?}"
            );
        }
        let scope = access["scope"].as_str().unwrap_or_default();
        assert!(!scope.contains("set:before-failing"), "{client}: {scope}");
        assert_eq!(
            access["geo_ip_country"],
            json!("NZ"),
            "{client}: the chain went on"
        );
    }
    let user = h
        .store()
        .load_user("dev|dev-user-1")
        .await
        .unwrap()
        .unwrap();
    assert!(
        !user.user.app_metadata.contains_key("set_before_failing"),
        "a skipped step's metadata was stored: {:?}",
        user.user.app_metadata
    );
    for (client, _, expected) in &cases {
        let audit = audit_of_client(h.store(), client).await;
        assert_eq!(audit.len(), 1, "{client}");
        assert_eq!(audit[0].outcome, AuditOutcome::Minted, "{client}");
        let hostile = audit[0]
            .steps
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "hostile")
            .unwrap();
        let error = hostile["status"]["skipped"]["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{client}: not skipped: {hostile}"));
        println!("{client:>15}: skipped: {error:.140}");
        assert!(
            error.starts_with("plugin `hostile` ") && error.contains(expected),
            "{client}: {error}"
        );
    }
}

/// A connection of its own, at `upstream`, whose profiles `fetcher` shapes
/// with `options`.
fn connection(name: &str, upstream: &str, fetcher: &str, options: &str) -> String {
    format!(
        "[[connections]]\nname = \"{name}\"\nissuer = \"{upstream}\"\nclient_id = \"claimsmith\"\n\
         client_secret = {{ value = \"{UPSTREAM_SECRET}\" }}\nprofile_fetcher = \"{fetcher}\"\n\
         options = {options}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_profile_fails_its_own_login_naming_the_fetcher() {
    let _heavy = measuring::heavy().await;
    // The harness's provider is made with the harness; the hostile
    // connections sign in at one of their own.
    let upstream = dev_provider().await;
    let at = upstream.issuer().to_owned();
    let fetchers = format!(
        "[plugins.hostile-fetcher]\npath = {:?}\nworld = \"profile-fetcher\"\n\
         [plugins.bad-json]\npath = {:?}\nworld = \"profile-fetcher\"\n",
        plugin_wasm("test-hostile-fetcher"),
        plugin_wasm("test-bad-json"),
    );
    let cases = [
        (
            "huge-profile",
            "plugin `hostile-fetcher` exceeded its memory cap of 64 MiB",
        ),
        (
            "not-object",
            "plugin `hostile-fetcher` returned invalid JSON as the profile: expected a JSON object, got an array",
        ),
        (
            "bad-profile-json",
            "plugin `bad-json` returned invalid JSON as the profile: key must be a string",
        ),
    ];
    let h = Arc::new(
        harness(&format!(
            "{fetchers}{}{}{}{}",
            connection(
                "huge-profile",
                &at,
                "hostile-fetcher",
                "{ mode = \"huge-profile\" }"
            ),
            connection(
                "not-object",
                &at,
                "hostile-fetcher",
                "{ mode = \"not-object\" }"
            ),
            connection("bad-profile-json", &at, "bad-json", "{}"),
            // The control: the same fetcher, behaving.
            connection("fetched", &at, "hostile-fetcher", "{}"),
        ))
        .await,
    );
    let sign_in_at = |connection: &'static str| {
        let h = h.clone();
        async move {
            let url = h.pkce_authorize_url("web-app", &[("connection", connection)]);
            within(connection, h.browse(url, APP_REDIRECT)).await
        }
    };
    let mut logins = tokio::task::JoinSet::new();
    for (connection, _) in cases {
        let sign_in = sign_in_at(connection);
        logins.spawn(async move { (connection, sign_in.await) });
    }
    // Good logins beside them: at the harness's connection, and through
    // the same fetcher on another.
    let control = sign_in_at("fetched").await;
    assert!(control.get("code").is_some(), "{control:?}");
    let good = sign_in_at("dev").await;
    assert!(good.get("code").is_some(), "{good:?}");
    let mut redirects = logins.join_all().await;
    redirects.sort_by_key(|(connection, _)| cases.iter().position(|(c, _)| c == connection));
    for ((connection, expected), (_, redirect)) in cases.iter().zip(&redirects) {
        let entry = failure_told_by_reference(h.store(), redirect, &[expected]).await;
        let error = failed_error(&entry);
        println!("{connection:>17}: {error:.160}");
        assert_eq!(entry.connection, *connection);
        assert!(error.starts_with(expected), "{connection}: {error}");
        let user = h
            .store()
            .load_user(&format!("{connection}|dev-user-1"))
            .await
            .unwrap();
        assert!(user.is_none(), "{connection}: a user was stored");
    }
    assert!(
        h.store()
            .load_user("fetched|dev-user-1")
            .await
            .unwrap()
            .is_some()
    );
}

/// The same 100 MB profile from a fetcher whose operator raised its memory
/// cap: the host takes it, and the login fails in the next plugin that
/// cannot hold it (geo-claims, at 64 MiB), which is blamed for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn a_100_mb_profile_is_refused_naming_the_fetcher_whatever_its_memory_cap() {
    let _heavy = measuring::heavy().await;
    let upstream = dev_provider().await;
    let fetcher = format!(
        "[plugins.hostile-fetcher]\npath = {:?}\nworld = \"profile-fetcher\"\n\
         limits = {{ memory_mib = 512, timeout_ms = 20000 }}\n",
        plugin_wasm("test-hostile-fetcher"),
    );
    let h = harness(&format!(
        "{fetcher}{}",
        connection(
            "huge-profile",
            upstream.issuer(),
            "hostile-fetcher",
            "{ mode = \"huge-profile\" }"
        )
    ))
    .await;
    let url = h.pkce_authorize_url("web-app", &[("connection", "huge-profile")]);
    let redirect = within("the huge profile", h.browse(url, APP_REDIRECT)).await;
    let entry = failure_told_by_reference(h.store(), &redirect, &[]).await;
    let error = failed_error(&entry);
    // With memory to spare, it is the host's profile cap that refuses it,
    // and no other failure of the fetcher would say this.
    assert!(
        error.starts_with("plugin `hostile-fetcher` returned a profile of ")
            && error.contains("bytes, over the cap of 1048576"),
        "{error}"
    );
}

/// The service's log, when it runs as a process.
fn serve_log(h: &Harness) -> String {
    std::fs::read_to_string(h.dir.path().join("serve.log")).unwrap()
}

/// The database of a service running as a process.
async fn process_store(h: &Harness) -> Store {
    Store::open_sqlite(
        &h.dir.path().join("data/claimsmith.db"),
        claimsmith::config::Synchronous::default(),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_flood_is_capped_and_marked_truncated_and_the_login_goes_on() {
    let _heavy = measuring::heavy().await;
    let h = one_mode_as_process("{ timeout_ms = 10000 }", "log-flood").await;
    // 2 MiB to stdout and 512 KiB to stderr a line at a time, and a 1 MiB
    // `log` message, beside a good login; then the plugin behaves.
    let started = Instant::now();
    let (flooded, ()) = tokio::join!(
        async {
            let flooded = within("the log flood", sign_in(&h, "log-flood")).await;
            println!("the flooding login took {:?}", started.elapsed());
            flooded
        },
        good_login(&h)
    );
    let fields = [
        ("redirect_uri", APP_REDIRECT),
        ("code_verifier", VERIFIER),
        ("client_id", "log-flood"),
    ];
    let code = flooded
        .get("code")
        .unwrap_or_else(|| panic!("the flooding login failed: {flooded:?}"));
    let (status, tokens) = h.redeem(code, &fields, None).await;
    assert_eq!(status, StatusCode::OK, "{tokens:?}");

    let log = serve_log(&h);
    let flood_lines: Vec<&str> = log.lines().filter(|l| l.contains("flood fff")).collect();
    let flooded_bytes: usize = flood_lines.len() * "flood \n".len() + flood_lines.len() * 90;
    println!(
        "serve.log: {} KiB in all; {} flood lines (about {} KiB of the plugin's 2.5 MiB of output)",
        log.len() >> 10,
        flood_lines.len(),
        flooded_bytes >> 10
    );
    // 64 KiB of output per call (stdout and stderr together) in 97-byte lines.
    assert!(
        (600..=680).contains(&flood_lines.len()),
        "{} flood lines",
        flood_lines.len()
    );
    assert!(
        flood_lines
            .iter()
            .all(|l| l.contains("plugin=\"hostile\"") && l.contains("stream=\"stdout\"")),
        "stdout used up the budget; stderr got none"
    );
    assert_eq!(
        log.matches("output budget of 65536 bytes used up; further output dropped")
            .count(),
        1,
        "the cut is marked once"
    );
    let message = log
        .lines()
        .find(|l| l.contains("mmmm"))
        .expect("the 1 MiB message is logged");
    assert!(
        message.contains("mmmm… (truncated)") && message.len() < 4096 + 512,
        "{} bytes: {:.200}",
        message.len(),
        message
    );
    assert!(log.len() < 1 << 20, "serve.log holds {} bytes", log.len());
}

/// The service as its own process with the hostile action under `limits`,
/// and one client whose logins run it in `mode_name`.
async fn one_mode_as_process(limits: &str, mode_name: &str) -> Harness {
    harness_as_process(&format!(
        "{}{}",
        hostile_action(limits, &[], "fail"),
        clients(&[(mode_name, mode(mode_name))])
    ))
    .await
}

/// The same 10 MiB as `log-flood`, written in large writes: WASI hands
/// them over in whole 4 KiB pieces, so one of them ends exactly where the
/// 64 KiB budget does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn a_log_flood_in_large_writes_is_marked_truncated_too() {
    let _heavy = measuring::heavy().await;
    let h = one_mode_as_process("{ timeout_ms = 5000 }", "log-flood-aligned").await;
    let redirect = within("the log flood", sign_in(&h, "log-flood-aligned")).await;
    assert!(redirect.get("code").is_some(), "{redirect:?}");
    let log = serve_log(&h);
    let flood_lines = log.lines().filter(|l| l.contains("flood fff")).count();
    println!(
        "serve.log: {} KiB in all; {flood_lines} flood lines",
        log.len() >> 10
    );
    assert!(flood_lines <= 680, "{flood_lines} flood lines");
    assert!(
        log.contains("output budget of 65536 bytes used up; further output dropped"),
        "the cut is not marked"
    );
}

/// Cut or not, each `log` call is a line of its own: a plugin calling it
/// without end fills the host's log until its fuel or its time runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn a_flood_of_log_calls_is_capped_and_marked_truncated() {
    let _heavy = measuring::heavy().await;
    let h = one_mode_as_process("{ timeout_ms = 5000 }", "log-calls").await;
    let redirect = within("the log calls", sign_in(&h, "log-calls")).await;
    println!("{redirect:?}");
    let log = serve_log(&h);
    let calls = log.matches("log call ").count();
    println!(
        "serve.log: {} KiB, {calls} of the plugin's 100000 `log` calls",
        log.len() >> 10
    );
    assert!(calls <= 1000, "{calls} log lines from one login");
    assert_eq!(
        log.matches("output budget of 65536 bytes used up; further output dropped")
            .count(),
        1,
        "the cut is marked once"
    );
}

/// Logins failing in the cheap ways (trap, bad JSON, reserved claim, a
/// fetch not granted), `count` of them, `WORKERS` at a time.
async fn cheap_failures(h: &Arc<Harness>, count: usize) {
    // Measured alone: 16 ms a login one at a time, 7 ms from 4 at a time on
    // (this process and the service share 2 cores).
    const WORKERS: usize = 8;
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..WORKERS {
        let h = h.clone();
        workers.spawn(async move {
            for i in (worker..count).step_by(WORKERS) {
                let client = ["panic", "bad-json", "reserved-claim", "not-granted"][i % 4];
                let redirect = within(client, sign_in(&h, client)).await;
                assert_eq!(redirect.get("error"), Some("server_error"), "{redirect:?}");
            }
        });
    }
    while let Some(worker) = workers.join_next().await {
        worker.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_hostile_failures_leave_the_service_memory_flat() {
    // 10,000 took 211 s here (debug build, 2 cores, 21 ms a login with other
    // tests beside it): too long for the suite. 5,000 keep 4,000 after the
    // warm-up; the figures are printed per login.
    const WARM_UP: usize = 1000;
    const TOTAL: usize = 5000;
    let _heavy = measuring::heavy().await;
    let h = Arc::new(
        harness_as_process(&format!(
            "{}{}",
            hostile_action("{ fuel = 50_000_000 }", &[], "fail"),
            clients(&[
                ("panic", mode("panic")),
                ("bad-json", mode("bad-json")),
                ("reserved-claim", mode("reserved-claim")),
                ("not-granted", fetch("http://127.0.0.1:1/")),
            ])
        ))
        .await,
    );
    let Host::Process(process) = &h.host else {
        unreachable!("started as a process")
    };
    let started = Instant::now();
    let at_start = process.resident_bytes();
    cheap_failures(&h, WARM_UP).await;
    let warm = process.resident_bytes();
    let warmed_up_in = started.elapsed();
    cheap_failures(&h, TOTAL - WARM_UP).await;
    let after = process.resident_bytes();
    let took = started.elapsed();
    let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
    println!(
        "{TOTAL} failed logins in {took:.1?} ({:.2?} each, 8 at a time; the first {WARM_UP} in {warmed_up_in:.1?}); \
         the service's resident memory: {:.1} MiB at start, {:.1} MiB after {WARM_UP}, {:.1} MiB after {TOTAL}",
        took / TOTAL as u32,
        mib(at_start),
        mib(warm),
        mib(after)
    );
    // Every failure was recorded, with the plugin and its cause.
    let store = process_store(&h).await;
    let audit = store.recent_logins(TOTAL as u32).await.unwrap();
    assert_eq!(audit.len(), TOTAL);
    assert!(audit.iter().all(|entry| matches!(
        &entry.outcome,
        AuditOutcome::Failed { error } if error.starts_with("plugin `hostile` ")
    )));
    // Flat: what the warm-up grew (allocator arenas, the instance pool's
    // touched slots) does not grow after it. Measured here: under 2 MiB after
    // the warm-up, for 4,000 as for 9,000 more. Allowed: 24 MiB, because up
    // to 10 pooled SQLite connections may each fill a 2 MiB page cache as
    // the audit table grows. A leak of 6 KiB per failed login passes it.
    let grown = after.saturating_sub(warm);
    assert!(
        grown < 24 << 20,
        "resident memory grew by {:.1} MiB over {} failed logins after the warm-up",
        mib(grown),
        TOTAL - WARM_UP
    );
    good_login(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn looping_plugins_do_not_hold_up_discovery() {
    const LOOPERS: usize = 6;
    let _measuring = measuring::measuring().await;
    let h = Arc::new(
        harness_as_process(&format!(
            "{}{}",
            // Long enough that the loopers outlast the measurement on a
            // slow machine too: that is checked, not assumed.
            hostile_action(
                "{ fuel = 1_000_000_000_000, timeout_ms = 15000 }",
                &[],
                "fail"
            ),
            clients(&[("loop", mode("loop"))])
        ))
        .await,
    );
    let median = |samples: usize| {
        let h = h.clone();
        async move {
            let mut took = Vec::with_capacity(samples);
            for _ in 0..samples {
                let started = Instant::now();
                assert_eq!(h.discovery().await["issuer"], json!(h.issuer));
                took.push(started.elapsed());
            }
            took.sort();
            took[samples / 2]
        }
    };
    median(20).await;
    let idle = median(100).await;

    let started = Instant::now();
    let mut loopers = tokio::task::JoinSet::new();
    for _ in 0..LOOPERS {
        let h = h.clone();
        loopers.spawn(async move { within("a looper", sign_in(&h, "loop")).await });
    }
    // Past the upstream's part of the sign-in, into the plugin.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let loaded = median(100).await;
    let measured_by = started.elapsed();
    assert!(
        loopers.try_join_next().is_none(),
        "the loopers ended before the measurement did ({measured_by:?})"
    );
    let ratio = loaded.as_secs_f64() / idle.as_secs_f64();
    println!(
        "discovery's median answer: {idle:?} idle, {loaded:?} beside {LOOPERS} looping plugins on 2 cores ({ratio:.1}x)"
    );
    while let Some(looper) = loopers.join_next().await {
        let redirect = looper.unwrap();
        assert_eq!(redirect.get("error"), Some("server_error"), "{redirect:?}");
    }
    let audit = process_store(&h).await.recent_logins(100).await.unwrap();
    assert_eq!(audit.len(), LOOPERS);
    assert!(audit.iter().all(|entry| matches!(
        &entry.outcome,
        AuditOutcome::Failed { error } if error == "plugin `hostile` exceeded its wall-clock timeout of 15000 ms"
    )), "{audit:?}");
    assert!(
        ratio < 20.0,
        "discovery was {ratio:.1} times slower beside looping plugins"
    );
}

/// Answers every request the policy lets through itself, and remembers what
/// it was asked and what the policy refused: whatever the policy did, nothing
/// is sent.
#[derive(Default)]
struct NoNetwork {
    asked: std::sync::Mutex<Vec<String>>,
    refused: std::sync::Mutex<Vec<String>>,
}

impl OutboundHttpInterceptor for NoNetwork {
    fn intercept(&self, _plugin: &str, request: &OutboundRequest) -> InterceptOutcome {
        self.asked.lock().unwrap().push(request.url.to_string());
        InterceptOutcome::Complete(Ok(OutboundResponse {
            status: 200,
            headers: Vec::new(),
            body: b"{\"AccessKeyId\": \"stolen\"}".to_vec(),
        }))
    }

    fn refused(&self, _plugin: &str, request: &OutboundRequest, error: &HttpError) {
        self.refused
            .lock()
            .unwrap()
            .push(format!("{} {error}", request.url));
    }
}

/// The cloud metadata service, asked for by address (in several spellings)
/// and by name, by a plugin granted only an unrelated loopback origin. Not
/// through the service: there the host's HTTP client would be the real one,
/// and a broken policy would send a packet to 169.254.169.254. Here the
/// pipeline runs with an interceptor that answers whatever the policy lets
/// through, so nothing can leave the machine, and a broken policy shows as
/// a request it was asked to answer.
#[tokio::test]
async fn the_cloud_metadata_service_is_refused_before_anything_is_sent() {
    let _heavy = measuring::heavy().await;
    let targets = [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://2852039166/latest/meta-data/",
        "http://0xa9.0xfe.0xa9.0xfe/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
    ];
    let mut setup = Setup::new()
        .plugin(
            "hostile",
            "test-hostile",
            "post-login-action",
            "allowed_origins = [\"http://127.0.0.1:1\"]",
        )
        .connection("okta", None, "{}");
    for (i, url) in targets.iter().enumerate() {
        setup = setup.client(&format!("metadata-{i}"), &fetch(url));
    }
    let pipeline = Arc::new(setup.action("hostile", "fail").start().unwrap());
    let network = Arc::new(NoNetwork::default());
    let options = RunOptions {
        interceptor: Some(network.clone()),
        ..RunOptions::default()
    };
    let mut logins = tokio::task::JoinSet::new();
    for i in 0..targets.len() {
        let (pipeline, options) = (pipeline.clone(), options.clone());
        logins.spawn(async move {
            let mut input = login("okta");
            input.client_id = format!("metadata-{i}");
            (i, pipeline.run(&input, &options).await.outcome)
        });
    }
    // The good client (no mode) beside them.
    let good = pipeline.run(&login("okta"), &options).await.outcome;
    let claims = good
        .expect("the good login succeeds")
        .minted()
        .expect("tokens")
        .access_token_claims;
    assert_eq!(claims["hostile_behaved"], json!(true));
    for (i, outcome) in logins.join_all().await {
        let failure = outcome
            .err()
            .unwrap_or_else(|| panic!("{}: minted", targets[i]));
        let message = failure.to_string();
        println!("{:>70}: {message}", targets[i]);
        assert!(
            matches!(failure, LoginFailure::Plugin(_))
                && message.contains("fetch failed: HttpError::NotAllowed(\"origin ")
                && message.ends_with("is not granted to plugin `hostile`\")"),
            "{}: {message}",
            targets[i]
        );
    }
    assert_eq!(*network.asked.lock().unwrap(), Vec::<String>::new());
    assert_eq!(network.refused.lock().unwrap().len(), targets.len());
}

/// A plugin that spends its time in host calls, which cost it little fuel,
/// ends at its timeout as one looping in wasm does: the engine's epoch makes
/// a call yield every few milliseconds whatever it runs, so the timeout can
/// end it. Timed against the wasm loop, on this machine in this run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_looping_on_host_calls_ends_at_its_timeout_as_a_wasm_loop_does() {
    let _measuring = measuring::measuring().await;
    let pipeline = Setup::new()
        .plugin(
            "hostile",
            "test-hostile",
            "post-login-action",
            "limits = { fuel = 1_000_000_000_000, timeout_ms = 200 }",
        )
        .connection("okta", None, "{}")
        .client("host-calls", &mode("host-calls"))
        .client("loop", &mode("loop"))
        .action("hostile", "fail")
        .start()
        .unwrap();
    let median = |client: &'static str| {
        let pipeline = &pipeline;
        async move {
            let mut took = Vec::new();
            for _ in 0..5 {
                let mut input = login("okta");
                input.client_id = client.to_owned();
                let started = Instant::now();
                let failure = pipeline
                    .run(&input, &RunOptions::default())
                    .await
                    .outcome
                    .err();
                took.push(started.elapsed());
                let message = failure
                    .map(|failure| failure.to_string())
                    .unwrap_or_default();
                assert!(
                    message.contains("exceeded its wall-clock timeout of 200 ms"),
                    "{client}: {message}"
                );
            }
            took.sort();
            took[2]
        }
    };
    let in_wasm = median("loop").await;
    let in_host = median("host-calls").await;
    let ratio = in_host.as_secs_f64() / in_wasm.as_secs_f64();
    println!(
        "a 200 ms timeout ends a wasm loop after {in_wasm:?}, a host-call loop after {in_host:?}"
    );
    assert!(
        ratio < 1.5,
        "{in_host:?} in host calls, {in_wasm:?} in wasm"
    );
}
