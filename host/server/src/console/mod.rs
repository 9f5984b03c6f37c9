//! The admin console at `/admin`: users and their roles, the roles, the
//! login trail, the plugins and Try it, as server-rendered pages (see
//! [`pages`]).
//!
//! Administrators sign in through Claimsmith itself: the console is an app
//! of this issuer (`[console] client_id`, PKCE, the code redeemed in
//! process), and the id token must carry `[console] required_claim`. The
//! session is a sealed cookie (HttpOnly, SameSite=Lax, 8 hours; on an
//! `https://` issuer Secure and `__Host-`, so that no other host of the
//! domain can plant one, else path `/admin`) holding the administrator, the
//! session's id and a CSRF token that every POST must repeat. Signing out
//! ends the session on every host (the store keeps the ids of ended
//! sessions until they would have expired), so a copied cookie stops
//! working too. Every page is sent uncacheable, unframeable and under a
//! content security policy that runs only the console's own script. Every
//! sign-in, refusal, role change and Try it is recorded in the admin trail.
//!
//! Owns the console's routes, session and checks. It shows what the store
//! and the chain hold, never a secret value, upstream token or refresh
//! token.

mod pages;
mod roles;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Service;
use super::protocol::{pkce_challenge, random_token};
use super::token::CodeExchange;
use claimsmith_store::LoginFilter;

const SESSION_COOKIE: &str = "claimsmith_admin";
const SIGN_IN_COOKIE: &str = "claimsmith_admin_sign_in";
const SESSION_SECS: u64 = 8 * 3600;
const SIGN_IN_SECS: u64 = 600;
/// Rows on a page of users or logins.
const PAGE_ROWS: u64 = 50;

/// The console's routes, under `/admin`.
pub(crate) fn routes() -> axum::Router<Arc<Service>> {
    axum::Router::new()
        .route("/", get(home))
        .route("/login", get(sign_in))
        .route("/callback", get(signed_in))
        .route("/logout", post(sign_out))
        .route("/users", get(users))
        .route("/users/{id}", get(user))
        .route("/users/{id}/roles", post(roles::change))
        .route("/roles", get(roles::roles))
        .route("/logins", get(logins))
        .route("/logins/{id}", get(login))
        .route("/plugins", get(plugins))
        .route("/plugins/{name}/try", get(try_form).post(try_run))
        .route("/plugins/{name}/shadow", get(shadow))
        .layer(axum::middleware::map_response(page_headers))
}

/// A signed-in administrator.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Session {
    /// The id token's `sub`.
    admin: String,
    /// What signing out records, to refuse the session from then on.
    id: String,
    /// Repeated by every POST.
    csrf: String,
    expires_at: u64,
}

/// A sign-in on its way through `/authorize`.
#[derive(Debug, Serialize, Deserialize)]
struct SignIn {
    state: String,
    nonce: String,
    verifier: String,
    expires_at: u64,
}

/// The name a console cookie has in the browser: `__Host-` on an `https://`
/// issuer (the browser then takes it only Secure, from this host, for path
/// `/`), the bare name on a plain-http development issuer, where browsers
/// refuse `__Host-`.
fn cookie_name(service: &Service, name: &str) -> String {
    if service.issuer().starts_with("https://") {
        format!("__Host-{name}")
    } else {
        name.to_owned()
    }
}

fn cookie(service: &Service, name: &str, value: &str, max_age: u64) -> HeaderValue {
    let attributes = if service.issuer().starts_with("https://") {
        "Path=/; Secure"
    } else {
        "Path=/admin"
    };
    let name = cookie_name(service, name);
    HeaderValue::from_str(&format!(
        "{name}={value}; {attributes}; HttpOnly; SameSite=Lax; Max-Age={max_age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("claimsmith_admin=; Max-Age=0"))
}

/// The console's pages are never cached (they show users and the trail),
/// never framed (no clickjacking of its forms), and run no script but the
/// console's own (`pages::COPY_CASE_SCRIPT`, by its hash).
async fn page_headers(mut response: Response) -> Response {
    static POLICY: std::sync::LazyLock<Option<HeaderValue>> = std::sync::LazyLock::new(|| {
        use base64::Engine as _;
        use sha2::Digest as _;
        let script = base64::engine::general_purpose::STANDARD
            .encode(sha2::Sha256::digest(pages::COPY_CASE_SCRIPT));
        HeaderValue::from_str(&format!(
            "default-src 'none'; script-src 'sha256-{script}'; style-src 'unsafe-inline'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        ))
        .ok()
    });
    let headers = response.headers_mut();
    if let Some(policy) = POLICY.as_ref() {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy.clone());
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

impl Service {
    fn seal<T: Serialize>(&self, what: &str, value: &T) -> String {
        let plaintext = serde_json::to_vec(value).unwrap_or_default();
        self.console_sealer.seal(what.as_bytes(), &plaintext)
    }

    fn open<T: for<'de> Deserialize<'de>>(&self, what: &str, sealed: &str) -> Option<T> {
        let plaintext = self.console_sealer.open(what.as_bytes(), sealed)?;
        serde_json::from_slice(&plaintext).ok()
    }

    /// The administrator of this request, if signed in: a session sealed
    /// by this deployment, not expired, not signed out. A store that cannot
    /// say counts as signed out.
    async fn session(&self, headers: &HeaderMap) -> Option<Session> {
        let sealed = super::authorize::cookie(headers, &cookie_name(self, SESSION_COOKIE))?;
        let session: Session = self.open(SESSION_COOKIE, sealed)?;
        if session.expires_at <= self.clock.now() {
            return None;
        }
        match self.store.console_session_ended(&session.id).await {
            Ok(false) => Some(session),
            Ok(true) => None,
            Err(error) => {
                tracing::error!(%error, "cannot tell whether a console session was ended");
                None
            }
        }
    }
}

/// Why a console request is not served.
enum Refused {
    /// No `[console]` in the config.
    NoConsole,
    SignInFirst,
    /// A POST without the session's CSRF token.
    ForgedForm,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::NoConsole => StatusCode::NOT_FOUND.into_response(),
            Refused::SignInFirst => Redirect::to("/admin/login").into_response(),
            Refused::ForgedForm => (
                StatusCode::FORBIDDEN,
                Html(pages::message(
                    "Refused",
                    "The form was not sent from this console.",
                )),
            )
                .into_response(),
        }
    }
}

/// A handler that takes a [`Session`] serves administrators only: anyone
/// else is sent to sign in (or gets 404 without a `[console]`).
impl axum::extract::FromRequestParts<Arc<Service>> for Session {
    type Rejection = Refused;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        service: &Arc<Service>,
    ) -> Result<Self, Refused> {
        if service.config.console.is_none() {
            return Err(Refused::NoConsole);
        }
        service
            .session(&parts.headers)
            .await
            .ok_or(Refused::SignInFirst)
    }
}

/// A POST's CSRF token must be the session's.
fn check_csrf(session: &Session, form: &HashMap<String, String>) -> Result<(), Refused> {
    match form.get("csrf") {
        Some(token) if super::secrets_equal(token, &session.csrf) => Ok(()),
        _ => Err(Refused::ForgedForm),
    }
}

async fn home(_: Session) -> Response {
    Redirect::to("/admin/users").into_response()
}

async fn sign_in(State(service): State<Arc<Service>>) -> Response {
    let Some(console) = &service.config.console else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let pending = SignIn {
        state: random_token(),
        nonce: random_token(),
        verifier: random_token(),
        expires_at: service.clock.now() + SIGN_IN_SECS,
    };
    let mut url = match reqwest::Url::parse(&format!("{}/authorize", service.issuer())) {
        Ok(url) => url,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &console.client_id)
        .append_pair("redirect_uri", &callback_uri(&service))
        .append_pair("scope", "openid profile email")
        .append_pair("state", &pending.state)
        .append_pair("nonce", &pending.nonce)
        .append_pair("code_challenge", &pkce_challenge(&pending.verifier))
        .append_pair("code_challenge_method", "S256");
    let sealed = service.seal(SIGN_IN_COOKIE, &pending);
    (
        [(
            header::SET_COOKIE,
            cookie(&service, SIGN_IN_COOKIE, &sealed, SIGN_IN_SECS),
        )],
        Redirect::to(url.as_str()),
    )
        .into_response()
}

fn callback_uri(service: &Service) -> String {
    format!("{}/admin/callback", service.issuer())
}

async fn signed_in(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let now = service.clock.now();
    let Some(console) = service.config.console.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (pending, code) = match returning_sign_in(&service, &headers, &params, now) {
        Ok(returned) => returned,
        Err((status, why)) => return refuse(status, &why),
    };
    let Some(client) = service.client(&console.client_id) else {
        return refuse(
            StatusCode::FORBIDDEN,
            "the console's client is not configured",
        );
    };
    let redirect_uri = callback_uri(&service);
    let exchange = CodeExchange {
        client,
        code: &code,
        redirect_uri: Some(&redirect_uri),
        code_verifier: Some(&pending.verifier),
    };
    let tokens = match service.redeem_code(&exchange, now).await {
        Ok(tokens) => tokens,
        Err(error) => return refuse(StatusCode::FORBIDDEN, &error.description),
    };
    let claims = match service.verify_id_token(&tokens, &console.client_id, &pending.nonce) {
        Ok(claims) => claims,
        Err(why) => return refuse(StatusCode::FORBIDDEN, why),
    };
    let admin = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if !console.required_claim.is_met_by(&claims) {
        service
            .record_admin_action(&admin, "console_sign_in_refused", "console", Value::Null)
            .await;
        return refuse(
            StatusCode::FORBIDDEN,
            &format!(
                "{admin} is not an administrator: the id token lacks {} = {}.",
                console.required_claim.name, console.required_claim.value
            ),
        );
    }
    service
        .record_admin_action(&admin, "console_sign_in", "console", Value::Null)
        .await;
    let session = Session {
        admin,
        id: random_token(),
        csrf: random_token(),
        expires_at: now + SESSION_SECS,
    };
    let sealed = service.seal(SESSION_COOKIE, &session);
    let mut response = Redirect::to("/admin/users").into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        cookie(&service, SESSION_COOKIE, &sealed, SESSION_SECS),
    );
    headers.append(header::SET_COOKIE, cookie(&service, SIGN_IN_COOKIE, "", 0));
    response
}

/// The console's sign-in that came back: its sealed cookie still valid, its
/// state this browser's, and the code it brought; else the status and the
/// reason to refuse with.
fn returning_sign_in(
    service: &Service,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
    now: u64,
) -> Result<(SignIn, String), (StatusCode, String)> {
    let pending: Option<SignIn> =
        super::authorize::cookie(headers, &cookie_name(service, SIGN_IN_COOKIE))
            .and_then(|sealed| service.open(SIGN_IN_COOKIE, sealed))
            .filter(|pending: &SignIn| pending.expires_at > now);
    let Some(pending) = pending else {
        return Err((
            StatusCode::BAD_REQUEST,
            "The sign-in expired or was started elsewhere: sign in again.".to_owned(),
        ));
    };
    if params.get("state") != Some(&pending.state) {
        return Err((
            StatusCode::BAD_REQUEST,
            "The sign-in does not match this browser's.".to_owned(),
        ));
    }
    let Some(code) = params.get("code") else {
        let error = params.get("error_description").or(params.get("error"));
        return Err((
            StatusCode::FORBIDDEN,
            format!(
                "Sign-in failed: {}",
                error.map_or("no code", String::as_str)
            ),
        ));
    };
    Ok((pending, code.clone()))
}

/// A page saying why the administrator is not signed in.
fn refuse(status: StatusCode, why: &str) -> Response {
    (status, Html(pages::message("Not signed in", why))).into_response()
}

async fn sign_out(
    State(service): State<Arc<Service>>,
    session: Session,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Err(refused) = check_csrf(&session, &form) {
        return refused.into_response();
    }
    if let Err(error) = service
        .store
        .end_console_session(&session.id, session.expires_at)
        .await
    {
        return server_error(error);
    }
    service
        .record_admin_action(&session.admin, "console_sign_out", "console", Value::Null)
        .await;
    (
        [(header::SET_COOKIE, cookie(&service, SESSION_COOKIE, "", 0))],
        Html(pages::message(
            "Signed out",
            "You are signed out of the console.",
        )),
    )
        .into_response()
}

fn not_found(title: &str, text: &str) -> Response {
    (StatusCode::NOT_FOUND, Html(pages::message(title, text))).into_response()
}

fn server_error(error: impl std::fmt::Display) -> Response {
    let reference = super::correlation_id();
    tracing::error!(%error, reference, "console page failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Html(pages::message(
            "Something failed",
            &format!("The page could not be built (reference {reference})."),
        )),
    )
        .into_response()
}

async fn users(
    State(service): State<Arc<Service>>,
    session: Session,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let q = params.get("q").map(String::as_str).unwrap_or("");
    match service.store.search_users(q.trim(), 0, PAGE_ROWS).await {
        Ok(page) => Html(pages::users(&session, q, &page)).into_response(),
        Err(error) => server_error(error),
    }
}

async fn user(
    State(service): State<Arc<Service>>,
    session: Session,
    Path(id): Path<String>,
) -> Response {
    let row = match service.store.load_user(&id).await {
        Ok(Some(row)) => row,
        Ok(None) => {
            return not_found("No such user", &format!("There is no user {id}."));
        }
        Err(error) => return server_error(error),
    };
    let filter = LoginFilter {
        user_id: Some(id.clone()),
        ..LoginFilter::default()
    };
    let recent = match service.store.logins(&filter, 0, 20).await {
        Ok(recent) => recent,
        Err(error) => return server_error(error),
    };
    match roles::of_user(&service, &id).await {
        Ok(roles) => {
            let page = pages::UserPage {
                user_id: &id,
                row: &row,
                recent: &recent.items,
                roles: &roles,
            };
            Html(pages::user(&session, &page)).into_response()
        }
        Err(error) => server_error(error),
    }
}

async fn logins(
    State(service): State<Arc<Service>>,
    session: Session,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let given = |name: &str| {
        params
            .get(name)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    };
    let filter = LoginFilter {
        user_id: given("user"),
        client_id: given("client"),
        outcome: given("outcome"),
    };
    let page: u64 = params.get("page").and_then(|p| p.parse().ok()).unwrap_or(0);
    match service
        .store
        .logins(&filter, page.saturating_mul(PAGE_ROWS), PAGE_ROWS)
        .await
    {
        Ok(found) => {
            Html(pages::logins(&session, &filter, page, PAGE_ROWS, &found)).into_response()
        }
        Err(error) => server_error(error),
    }
}

async fn login(
    State(service): State<Arc<Service>>,
    session: Session,
    Path(id): Path<String>,
) -> Response {
    let found = match id.parse::<i64>() {
        Ok(id) => service.store.login(id).await,
        Err(_) => Ok(None),
    };
    match found {
        Ok(Some(listing)) => Html(pages::login(&session, &listing)).into_response(),
        Ok(None) => not_found("No such login", &format!("There is no login {id}.")),
        Err(error) => server_error(error),
    }
}

async fn plugins(State(service): State<Arc<Service>>, session: Session) -> Response {
    let infos = super::management::plugin_infos(&service.pipeline());
    Html(pages::plugins(&session, &infos)).into_response()
}

/// A store plugin's shadow run: its tallies and latest differences, as
/// `GET /api/v2/plugins/{name}/shadow` answers them.
async fn shadow(
    State(service): State<Arc<Service>>,
    session: Session,
    Path(name): Path<String>,
) -> Response {
    match service.store.plugin_shadow(&name).await {
        Ok(Some(shadow)) => Html(pages::shadow(&session, &shadow)).into_response(),
        Ok(None) => not_found("Not shadowed", &format!("Plugin {name} is not shadowed.")),
        Err(error) => server_error(error),
    }
}

/// A login to try `plugin` on, to edit: the config's first connection and
/// client, a sample user, and for a profile fetcher a canned userinfo
/// answer at its connection's `userinfo_url`.
fn sample_input(service: &Service, plugin: &str) -> Value {
    let pipeline = service.pipeline();
    let world = pipeline.plugins().get(plugin).map(|p| p.world());
    if world == Some(claimsmith_engine::World::CredentialsExchange) {
        return sample_token_request(pipeline.config());
    }
    let config = pipeline.config().clone();
    let connection = config
        .connections
        .iter()
        .find(|c| c.profile_fetcher.as_deref() == Some(plugin))
        .or(config.connections.first());
    let mut input = Map::new();
    input.insert(
        "connection".into(),
        Value::from(connection.map_or("", |c| c.name.as_str())),
    );
    input.insert(
        "client_id".into(),
        Value::from(config.clients.first().map_or("", |c| c.client_id.as_str())),
    );
    input.insert(
        "upstream".into(),
        serde_json::json!({
            "access_token": "sample-upstream-access-token",
            "id_token_claims": { "sub": "sample-user", "email": "sample@example.com" },
        }),
    );
    let fetcher = connection.filter(|c| c.profile_fetcher.as_deref() == Some(plugin));
    match fetcher {
        Some(connection) => {
            let url = connection
                .options
                .get("userinfo_url")
                .and_then(Value::as_str)
                .unwrap_or("https://idp.example.com/userinfo");
            input.insert(
                "http".into(),
                serde_json::json!([{
                    "request": { "method": "GET", "url": url },
                    "response": { "status": 200, "json": { "sub": "sample-user", "email": "sample@example.com", "name": "Sample User" } },
                }]),
            );
        }
        None => {
            input.insert(
                "profile".into(),
                serde_json::json!({ "sub": "sample-user", "email": "sample@example.com", "geo_ip_country": "NZ" }),
            );
        }
    }
    Value::Object(input)
}

/// A machine client's token request for the first `[[apis]]` audience, for
/// a credentials-exchange plugin's Try it.
fn sample_token_request(config: &claimsmith_config::Config) -> Value {
    let machine = config
        .clients
        .iter()
        .find(|c| c.allows(claimsmith_config::GrantType::ClientCredentials));
    let api = config.apis.first();
    serde_json::json!({
        "client": {
            "client_id": machine.map_or("sample-machine-client", |c| c.client_id.as_str()),
            "name": machine.map_or("Sample machine client", |c| c.name.as_str()),
            "metadata": machine.map(|c| c.metadata.clone()).unwrap_or_default(),
        },
        "audience": api.map_or("https://api.example.com", |api| api.identifier.as_str()),
        "requested_scopes": api.map(|api| api.scopes.clone()).unwrap_or_default(),
        "request": { "ip": "203.0.113.7", "user_agent": "sample-client/1.0" },
    })
}

async fn try_form(
    State(service): State<Arc<Service>>,
    session: Session,
    Path(name): Path<String>,
) -> Response {
    if !service.pipeline().plugins().contains_key(&name) {
        return not_found("No such plugin", &name);
    }
    let input = serde_json::to_string_pretty(&sample_input(&service, &name)).unwrap_or_default();
    Html(pages::try_it(&session, &name, &input, false, None)).into_response()
}

async fn try_run(
    State(service): State<Arc<Service>>,
    session: Session,
    Path(name): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Err(refused) = check_csrf(&session, &form) {
        return refused.into_response();
    }
    let pipeline = service.pipeline();
    if !pipeline.plugins().contains_key(&name) {
        return not_found("No such plugin", &name);
    }
    let text = form.get("input").cloned().unwrap_or_default();
    let whole_chain = form.get("scope").is_some_and(|scope| scope == "chain");
    let result = match serde_json::from_str::<Value>(&text) {
        Err(error) => Err(format!("the input is not JSON: {error}")),
        Ok(input) => {
            let plugin = (!whole_chain).then_some(name.as_str());
            claimsmith_golden::try_login(
                pipeline.config(),
                &service.engine,
                service.plugin_http.clone(),
                plugin,
                input,
            )
            .await
        }
    };
    service
        .record_admin_action(
            &session.admin,
            "try_plugin",
            &name,
            serde_json::json!({
                "whole_chain": whole_chain,
                "outcome": result.as_ref().map(|tried| tried.outcome.keys().cloned().collect::<Vec<_>>()).unwrap_or_default(),
            }),
        )
        .await;
    Html(pages::try_it(
        &session,
        &name,
        &text,
        whole_chain,
        Some(&result),
    ))
    .into_response()
}
