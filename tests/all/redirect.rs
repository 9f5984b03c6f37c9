//! Redirect and resume through the real service: an action sends the user
//! to a page mid-login (`api.redirect.sendUserTo`), the page (a real HTTP
//! server on loopback) sends them back to `/continue` with a signed token,
//! and the login resumes in the action's `onContinuePostLogin`. The
//! suspended login is bound to the browser that began it, taken once and
//! expires; a refresh cannot redirect.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use fantoccini::Locator;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use reqwest::{StatusCode, Url};
use serde_json::{Map, Value, json};

use crate::support::chromium::{
    browser as chromium, chromedriver, click, keep_screenshot, text_of,
};
use crate::support::service_harness::{
    APP_REDIRECT, Harness, Run, SteppedClock, VERIFIER, browser, dev_provider, echo_action,
    refresh_token_of, start_harness_run, verify,
};

const TERMS_SECRET: &str = "terms-secret-0123456789";
const TERMS_CLAIM: &str = "https://my-app.example.com/terms";

/// The terms page: checks the Action's session token (signed with the
/// shared secret, for the state it came with) and answers with its own
/// token, signed with `answer_secret`, saying the terms were accepted: at
/// `/accept` by sending the user straight back to the token's issuer's
/// `/continue`, at `/form` as a page whose button posts it there.
#[derive(Clone)]
struct TermsPage {
    answer_secret: &'static str,
}

/// Where the page sends the user back, with what.
struct Answer {
    continue_url: String,
    state: String,
    token: String,
}

/// The page's answer, or why it refuses to give one.
fn answer(page: &TermsPage, query: &Map<String, Value>) -> Result<Answer, &'static str> {
    let text = |name: &str| query.get(name).and_then(Value::as_str).unwrap_or_default();
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_aud = false;
    let session = jsonwebtoken::decode::<Map<String, Value>>(
        text("session_token"),
        &DecodingKey::from_secret(TERMS_SECRET.as_bytes()),
        &validation,
    )
    .map_err(|_| "bad session token")?
    .claims;
    if session["state"] != json!(text("state")) {
        return Err("the token is for another login");
    }
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({
            "state": text("state"),
            "accepted": true,
            "terms_version": session["terms_version"],
            "exp": session["exp"],
        }),
        &EncodingKey::from_secret(page.answer_secret.as_bytes()),
    )
    .unwrap();
    let issuer = session["iss"].as_str().unwrap_or_default();
    Ok(Answer {
        continue_url: format!("{issuer}/continue"),
        state: text("state").to_owned(),
        token,
    })
}

async fn accept_terms(
    State(page): State<Arc<TermsPage>>,
    Query(query): Query<Map<String, Value>>,
) -> Result<Response, (StatusCode, &'static str)> {
    let answer = answer(&page, &query).map_err(|why| (StatusCode::BAD_REQUEST, why))?;
    let mut back = Url::parse(&answer.continue_url).unwrap();
    back.query_pairs_mut()
        .append_pair("state", &answer.state)
        .append_pair("session_token", &answer.token);
    Ok(Redirect::to(back.as_str()).into_response())
}

async fn terms_form(
    State(page): State<Arc<TermsPage>>,
    Query(query): Query<Map<String, Value>>,
) -> Result<Response, (StatusCode, &'static str)> {
    let answer = answer(&page, &query).map_err(|why| (StatusCode::BAD_REQUEST, why))?;
    let Answer {
        continue_url,
        state,
        token,
    } = answer;
    Ok(axum::response::Html(format!(
        "<!doctype html><title>Terms</title><h1>Terms of service</h1>\
         <form method=\"post\" action=\"{continue_url}\">\
         <input type=\"hidden\" name=\"state\" value=\"{state}\">\
         <input type=\"hidden\" name=\"session_token\" value=\"{token}\">\
         <button id=\"accept\">Accept the terms</button></form>"
    ))
    .into_response())
}

/// The page on a loopback port: its `/accept` URL.
async fn terms_page(answer_secret: &'static str) -> String {
    let router = axum::Router::new()
        .route("/accept", axum::routing::get(accept_terms))
        .route("/form", axum::routing::get(terms_form))
        .with_state(Arc::new(TermsPage { answer_secret }));
    let address = crate::support::serve(router).await;
    format!("http://{address}/accept")
}

/// The origin of `url`, as `redirect_origins` lists it.
fn origin(url: &str) -> String {
    Url::parse(url).unwrap().origin().ascii_serialization()
}

/// The plugin `name` at `wasm`, with `redirect_origins` and secrets, as the
/// last action of the harness's chain.
fn redirecting_action(name: &str, wasm: &std::path::Path, origins: &str, secrets: &str) -> String {
    format!(
        "[plugins.{name}]\npath = {wasm:?}\nworld = \"post-login-action\"\n\
         redirect_origins = [{origins}]\nsecrets = {{ {secrets} }}\n\n\
         [[actions]]\nplugin = \"{name}\"\n"
    )
}

/// The service with Auth0's terms redirect Action (JavaScript) sending
/// users to `page`, on `run`.
async fn terms_harness(page: &str, run: Run) -> Harness {
    let wasm = crate::support::language_plugin_wasm("js", "auth0-terms-redirect");
    let extra = redirecting_action(
        "auth0-terms-redirect",
        &wasm,
        &format!("{:?}", origin(page)),
        &format!(
            "TERMS_URL = {{ value = {page:?} }}, TERMS_SECRET = {{ value = \"{TERMS_SECRET}\" }}"
        ),
    );
    start_harness_run(dev_provider().await, &extra, "", run, |config, _| config).await
}

fn in_process() -> Run {
    Run::InProcess(Arc::new(claimsmith_core::SystemClock))
}

/// Signs in up to the action's redirect: the page URL the service sent the
/// browser to (its cookie now in `h.http`).
async fn sent_to_page(h: &Harness) -> Url {
    sent_to_page_with_cookie(h).await.0
}

/// As [`sent_to_page`], with the cookie (`name=value`) that binds the login
/// to the browser.
async fn sent_to_page_with_cookie(h: &Harness) -> (Url, String) {
    let callback = h.callback_url(h.pkce_authorize_url("web-app", &[])).await;
    let response = h.http.get(callback.clone()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "{callback}");
    let location = response.headers()["location"].to_str().unwrap();
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with("claimsmith_continue_"))
        .and_then(|value| value.split(';').next())
        .expect("the browser's cookie")
        .to_owned();
    (Url::parse(location).unwrap(), cookie)
}

/// A request to `url` from another browser that sends `cookie`.
async fn from_another_browser(url: Url, cookie: &str) -> (StatusCode, String) {
    let response = browser()
        .get(url)
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

/// What `url` answers `client` with: its `/continue` redirect, for a page.
async fn location(client: &reqwest::Client, url: Url) -> Url {
    let response = client.get(url.clone()).send().await.unwrap();
    let location = response.headers()["location"].to_str().unwrap();
    url.join(location).unwrap()
}

async fn refused(client: &reqwest::Client, url: Url) -> (StatusCode, String) {
    let response = client.get(url).send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

#[tokio::test]
async fn auth0s_redirect_action_sends_the_user_to_the_page_and_resumes_unchanged() {
    let page = terms_page(TERMS_SECRET).await;
    let h = terms_harness(&page, in_process()).await;
    let sent = sent_to_page(&h).await;
    assert!(sent.as_str().starts_with(&page), "{sent}");
    let query: Map<String, Value> = sent
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    assert!(
        query["state"].as_str().is_some_and(|s| s.len() >= 43),
        "{query:?}"
    );
    assert!(query.contains_key("session_token"), "{query:?}");
    // Nothing is stored while the user is away.
    assert!(h.stored_user().await.is_none());

    let redirect = h.browse(sent, APP_REDIRECT).await;
    assert_eq!(redirect.get("state"), Some("app-state-1"), "{redirect:?}");
    let (status, body) = h.exchange(redirect.get("code").unwrap(), VERIFIER).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    let id = verify(&body["id_token"], &h.jwks().await, "web-app", &h.issuer);
    assert_eq!(id[TERMS_CLAIM], json!("2026-11"), "{id:?}");
    // The actions before the redirecting one kept their effects.
    assert_eq!(h.access_claims(&body).await["geo_ip_country"], json!("NZ"));
    let stored = h
        .stored_user()
        .await
        .expect("stored once the login finished");
    assert_eq!(stored.user.app_metadata["terms_accepted"], json!("2026-11"));

    // Terms accepted: the next sign-in goes straight to the app.
    let again = h.web_login().await;
    assert!(again.get("code").is_some(), "{again:?}");
}

#[tokio::test]
async fn a_continue_from_another_browser_replayed_or_without_state_is_refused() {
    let page = terms_page(TERMS_SECRET).await;
    let h = terms_harness(&page, in_process()).await;
    let (sent, cookie) = sent_to_page_with_cookie(&h).await;
    let back = location(&browser(), sent).await;
    assert!(back.path().ends_with("/continue"), "{back}");

    // Another browser: without the cookie, or with one of the right name (the
    // state's, which the link gives away) and its own value.
    let name = cookie.split('=').next().unwrap();
    for forged in [String::new(), format!("{name}=forged-secret")] {
        let (status, text) = from_another_browser(back.clone(), &forged).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{forged}");
        assert!(
            text.contains("did not start in this browser"),
            "{forged}: {text}"
        );
    }
    let (status, _) = refused(
        &h.http,
        Url::parse(&format!("{}/continue", h.issuer)).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // The refusals took nothing: the browser that began it finishes it.
    let finished = h.browse(back.clone(), APP_REDIRECT).await;
    assert!(finished.get("code").is_some(), "{finished:?}");
    // Replayed, even with the browser's own cookie copied: taken once.
    let (status, text) = from_another_browser(back, &cookie).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        text.contains("unknown, has expired, or was already finished"),
        "{text}"
    );
}

#[tokio::test]
async fn a_login_that_does_not_come_back_in_time_expires() {
    let page = terms_page(TERMS_SECRET).await;
    let clock = SteppedClock::new();
    let h = terms_harness(&page, Run::InProcess(clock.clone())).await;
    let sent = sent_to_page(&h).await;
    let back = location(&browser(), sent).await;
    clock.advance(claimsmith::oidc::SUSPENDED_LOGIN_SECS + 1);
    let (status, text) = refused(&h.http, back).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("has expired"), "{text}");
    assert!(h.stored_user().await.is_none());
}

#[tokio::test]
async fn a_page_token_that_does_not_validate_fails_the_login_and_stores_nothing() {
    let page = terms_page("not-the-shared-secret").await;
    let h = terms_harness(&page, in_process()).await;
    let sent = sent_to_page(&h).await;
    let redirect = h.browse(sent, APP_REDIRECT).await;
    assert_eq!(redirect.get("error"), Some("server_error"), "{redirect:?}");
    assert!(redirect.get("code").is_none());
    assert!(
        h.stored_user().await.is_none(),
        "a failed login stores nothing"
    );
}

/// The raw-WIT test-redirector sending users to `page`, with `origins`
/// allowed, and test-echo after it, as config.
pub(crate) fn redirector_config(page: &str, origins: &str) -> String {
    let wasm = crate::support::plugin_wasm("test-redirector");
    redirecting_action(
        "redirector",
        &wasm,
        origins,
        &format!("PAGE = {{ value = {page:?} }}, TOKEN_SECRET = {{ value = \"{TERMS_SECRET}\" }}"),
    ) + &echo_action()
}

/// The `/continue` URL at `host` a page answering test-redirector sends the
/// user back to from `sent` (the page URL, with the login's state), with
/// its token signed for that state.
pub(crate) fn continue_from_page(host: &str, sent: &Url) -> (Url, String) {
    page_answer(host, sent, TERMS_SECRET, json!({ "accepted": true }))
}

/// As [`continue_from_page`], the page's token holding `answer` (and the
/// state, and an `exp`), signed with `secret`.
fn page_answer(host: &str, sent: &Url, secret: &str, answer: Value) -> (Url, String) {
    let state = sent
        .query_pairs()
        .find(|(name, _)| name == "state")
        .map(|(_, value)| value.into_owned())
        .expect("the page gets the state");
    let mut claims = answer;
    claims["state"] = json!(state);
    claims["exp"] = json!(u64::MAX / 2);
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    let mut back = Url::parse(&format!("{host}/continue")).unwrap();
    back.query_pairs_mut()
        .append_pair("state", &state)
        .append_pair("session_token", &token);
    (back, state)
}

/// The service with the raw-WIT test-redirector sending users to `page`,
/// with `origins` allowed, and test-echo after it.
async fn redirector_harness(page: &str, origins: &str) -> Harness {
    let extra = redirector_config(page, origins);
    start_harness_run(
        dev_provider().await,
        &extra,
        "",
        in_process(),
        |config, _| config,
    )
    .await
}

#[tokio::test]
async fn the_continue_runs_with_the_requests_parameters_and_a_refresh_cannot_redirect() {
    // The test plays the page: the browser is sent there, and comes back
    // with the token the test signs.
    let page = "http://127.0.0.1:1/page";
    let h = redirector_harness(page, &format!("{:?}", origin(page))).await;
    let sent = sent_to_page(&h).await;
    assert_eq!(
        sent.query_pairs()
            .find(|(name, _)| name == "from")
            .map(|(_, v)| v.into_owned()),
        Some("test".to_owned()),
        "{sent}"
    );
    // The page's answer, signed for this login's state.
    let (back, state) = continue_from_page(&h.issuer, &sent);
    let redirect = h.browse(back, APP_REDIRECT).await;
    let (status, body) = h
        .exchange(redirect.get("code").expect("a code"), VERIFIER)
        .await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    let id = verify(&body["id_token"], &h.jwks().await, "web-app", &h.issuer);
    assert_eq!(id["continued"]["accepted"], json!(true), "{id:?}");
    assert_eq!(id["continue_query"]["state"], json!(state), "{id:?}");
    // The action after the redirecting one ran once the login resumed, on
    // the claims its continue set.
    let access = h.access_claims(&body).await;
    let seen = &access["seen_event"]["id_token_claims"]["continued"];
    assert_eq!(seen["accepted"], json!(true), "{access:?}");

    let (status, refreshed) = h.refresh(&refresh_token_of(&body)).await;
    assert_eq!(status, StatusCode::OK, "{refreshed:?}");
    let refused = h.access_claims(&refreshed).await["redirect_refused"].clone();
    let refused = refused.as_str().unwrap_or_default();
    assert!(
        refused.contains("NotAllowed") && refused.contains("refresh"),
        "{refused}"
    );
}

#[tokio::test]
async fn a_redirect_outside_the_plugins_redirect_origins_is_refused_to_the_action() {
    // Port 1 of loopback: were the refusal missing, the browser would get
    // nowhere, and no packet leaves the machine.
    let h = redirector_harness("http://127.0.0.1:1/elsewhere", "\"http://127.0.0.1:2\"").await;
    let tokens = h.signed_in().await;
    let refused = h.access_claims(&tokens).await["redirect_refused"].clone();
    let refused = refused.as_str().unwrap_or_default();
    assert!(refused.contains("redirect_origins"), "{refused}");
}

/// The app's side, for a real browser: its callback shows the code.
async fn app_page() -> String {
    async fn callback(Query(query): Query<Map<String, Value>>) -> Response {
        let code = query.get("code").and_then(Value::as_str).unwrap_or("none");
        axum::response::Html(format!("<p id=\"code\">{code}</p>")).into_response()
    }
    let router = axum::Router::new().route("/callback", axum::routing::get(callback));
    let address = crate::support::serve(router).await;
    format!("http://{address}/callback")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_chromium_the_user_accepts_the_terms_on_the_page_and_the_login_resumes() {
    let page = terms_page(TERMS_SECRET).await.replace("/accept", "/form");
    let app = app_page().await;
    let wasm = crate::support::language_plugin_wasm("js", "auth0-terms-redirect");
    let extra = format!(
        "[[clients]]\nclient_id = \"terms-app\"\nclient_secret = {{ value = \"terms-app-secret-0123\" }}\n\
         redirect_uris = [\"{app}\"]\n\n{}",
        redirecting_action(
            "auth0-terms-redirect",
            &wasm,
            &format!("{:?}", origin(&page)),
            &format!(
                "TERMS_URL = {{ value = {page:?} }}, TERMS_SECRET = {{ value = \"{TERMS_SECRET}\" }}"
            ),
        )
    );
    let h = start_harness_run(dev_provider().await, &extra, "", in_process(), |c, _| c).await;
    let challenge = crate::support::service_harness::challenge(VERIFIER);
    let authorize = h.authorize_url(
        "terms-app",
        &app,
        &[
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ],
    );

    let driver = chromedriver().await;
    let client = chromium(&driver).await;
    client.goto(authorize.as_str()).await.unwrap();
    let terms = text_of(&client, "h1").await;
    assert_eq!(terms, "Terms of service");
    keep_screenshot(&client, "terms-page").await;
    click(&client, Locator::Id("accept")).await;
    let code = text_of(&client, "p#code").await;
    keep_screenshot(&client, "terms-accepted").await;
    client.close().await.unwrap();

    let fields = [("redirect_uri", app.as_str()), ("code_verifier", VERIFIER)];
    let (status, body) = h
        .redeem(&code, &fields, Some(("terms-app", "terms-app-secret-0123")))
        .await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    let id = verify(&body["id_token"], &h.jwks().await, "terms-app", &h.issuer);
    assert_eq!(id[TERMS_CLAIM], json!("2026-11"), "{id:?}");
}

#[tokio::test]
async fn every_sdks_redirect_and_continue_work_end_to_end() {
    // The test plays the page, on a loopback port nothing listens on.
    let page = "http://127.0.0.1:1/ask";
    for language in ["rust", "js", "python"] {
        let wasm = crate::support::language_plugin_wasm(language, "consent-redirect");
        let extra = redirecting_action(
            "consent-redirect",
            &wasm,
            &format!("{:?}", origin(page)),
            &format!(
                "PAGE = {{ value = {page:?} }}, SECRET = {{ value = \"consent-secret-0123\" }}"
            ),
        );
        let h = start_harness_run(dev_provider().await, &extra, "", in_process(), |c, _| c).await;
        let sent = sent_to_page(&h).await;
        let token = sent
            .query_pairs()
            .find(|(name, _)| name == "session_token")
            .map(|(_, value)| value.into_owned())
            .unwrap_or_else(|| panic!("{language}: {sent}"));
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_aud = false;
        let session = jsonwebtoken::decode::<Map<String, Value>>(
            &token,
            &DecodingKey::from_secret(b"consent-secret-0123"),
            &validation,
        )
        .unwrap_or_else(|e| panic!("{language}: {e}"))
        .claims;
        assert_eq!(session["purpose"], json!("newsletter"), "{language}");
        assert_eq!(session["sub"], json!("dev|dev-user-1"), "{language}");

        let answer = json!({ "consent": "given" });
        let (back, _) = page_answer(&h.issuer, &sent, "consent-secret-0123", answer);
        let redirect = h.browse(back, APP_REDIRECT).await;
        let code = redirect
            .get("code")
            .unwrap_or_else(|| panic!("{language}: {redirect:?}"));
        let (status, body) = h.exchange(code, VERIFIER).await;
        assert_eq!(status, StatusCode::OK, "{language}: {body:?}");
        let id = verify(&body["id_token"], &h.jwks().await, "web-app", &h.issuer);
        assert_eq!(
            id["https://example.com/consent"],
            json!("given"),
            "{language}"
        );
        let stored = h.stored_user().await.expect("stored");
        assert_eq!(
            stored.user.app_metadata["consent"],
            json!("given"),
            "{language}"
        );
    }
}
