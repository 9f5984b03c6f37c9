//! A development upstream OpenID Connect provider, for `claimsmith demo` and
//! the tests: NOT for production.
//!
//! It is a real, small OIDC provider (authorization code flow with PKCE S256,
//! ES256 id tokens, a JWKS, discovery and a userinfo endpoint) served with
//! axum on a loopback address, with exactly one test user. It has no login
//! UI: every valid authorization request signs that user in at once. Started
//! as [`Protocol::OAuth2`] it is a plain OAuth 2.0 server instead, the way a
//! social provider such as GitHub is one.
//!
//! It owns only itself (its own signing key, codes and access tokens, all in
//! memory); it shares no state with the service except over HTTP. Tests can
//! switch [`Faults`] on at any time to make it misbehave the way a real
//! upstream might. Every log line it emits says it is the development
//! provider.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use aws_lc_rs::rand;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use axum::Router;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Redirect, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt as _;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::Url;
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use claimsmith_core::{Clock, SystemClock};
use claimsmith_oauth::{
    ErrorCode, form_urldecode, is_valid_code_verifier, is_valid_s256_challenge, pkce_challenge,
    random_token,
};
use claimsmith_tokens::{ID_TOKEN_TYP, SigningAlgorithm, SigningKey};

/// How long an authorization code can be redeemed.
const CODE_TTL: Duration = Duration::from_secs(60);
/// Lifetime of access tokens and id tokens, in seconds.
const TOKEN_TTL_SECS: u64 = 3600;
/// The nonce an id token carries under [`Faults::wrong_nonce`].
const WRONG_NONCE: &str = "not-the-nonce";
/// Scopes it knows; requested scopes outside this list are not granted.
const SUPPORTED_SCOPES: &[&str] = &["openid", "profile", "email"];
/// How long [`DevProvider::shutdown`] waits for open connections to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The one test user the provider signs in.
#[derive(Debug, Clone)]
pub struct DevUser {
    pub sub: String,
    pub email: String,
    pub name: String,
    /// Put in the id token as `geoipcountry` when set.
    pub geoipcountry: Option<String>,
    /// Returned by `/userinfo` as `user_type`.
    pub user_type: String,
    /// Returned by `/userinfo` as `groups` (what `roles-claim` maps to roles).
    pub groups: Vec<String>,
}

impl Default for DevUser {
    fn default() -> Self {
        Self {
            sub: "dev-user-1".to_owned(),
            email: "ada@example.com".to_owned(),
            name: "Ada Lovelace".to_owned(),
            geoipcountry: Some("NZ".to_owned()),
            user_type: "employee".to_owned(),
            groups: vec!["engineers".to_owned()],
        }
    }
}

/// Misbehaviours a test can switch on at any time (shared, behind a Mutex).
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// `/authorize` redirects back with `?error=<this>&state=...` instead of a code.
    pub authorize_error: Option<String>,
    /// `/token` answers 400 `{"error":"invalid_grant"}`.
    pub token_error: bool,
    /// The id token is signed by a different key than the JWKS publishes (same kid).
    pub bad_signature: bool,
    /// The id token carries nonce `"not-the-nonce"`.
    pub wrong_nonce: bool,
    /// `/userinfo` answers this status with `{"error":"server_error"}`.
    pub userinfo_status: Option<u16>,
    /// The id token is issued for another audience.
    pub wrong_audience: bool,
    /// The id token names another issuer.
    pub wrong_issuer: bool,
    /// The id token expired this many seconds ago.
    pub expired_secs_ago: Option<u64>,
    /// The id token is for this audience too (`aud` a list of two), with
    /// `azp` as [`Faults::authorized_party`] says.
    pub second_audience: Option<String>,
    /// The id token's `azp`.
    pub authorized_party: Option<String>,
    /// The id token is signed by the key [`DevProvider::rotate_key`] retired,
    /// which the JWKS no longer publishes (a key withdrawn after a leak).
    pub retired_key_signs: bool,
    /// The JWKS answer says `Cache-Control: max-age=<this>`.
    pub jwks_max_age_secs: Option<u64>,
    /// The id token's `auth_time` is this long ago, as when the user's
    /// session at the provider is old and was not asked to sign in again.
    pub stale_auth_secs: Option<u64>,
}

/// The one client the provider knows, and its user.
pub struct DevProviderConfig {
    pub client_id: String,
    pub client_secret: String,
    pub user: DevUser,
    pub protocol: Protocol,
}

/// What the provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    OpenIdConnect,
    /// Plain OAuth 2.0, as a social provider speaks it: no discovery and no
    /// JWKS, no nonce asked for and no `openid` scope needed; an id token
    /// (signed, its key published nowhere) only when `openid` is asked for,
    /// as Okta behind Auth0's OAuth2 connector sends one; and `/userinfo`
    /// answers in the provider's own shape, `{id, login, name, email, ...}`,
    /// a number for `id` and no `sub`, as GitHub's `/user` does.
    OAuth2,
}

/// The test user's numeric id at a [`Protocol::OAuth2`] provider.
pub const OAUTH2_USER_ID: u64 = 1815;

/// A running development provider. Serves until [`DevProvider::shutdown`] or
/// until dropped (dropping starts a graceful shutdown without waiting for it).
pub struct DevProvider {
    issuer: String,
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown_tx: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for DevProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevProvider")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl DevProvider {
    /// Binds `addr` (use 127.0.0.1:0 in tests), serves until dropped or `shutdown`.
    ///
    /// Refuses a non-loopback address (`InvalidInput`): the provider signs in
    /// its user for anyone who asks.
    pub async fn start(addr: SocketAddr, config: DevProviderConfig) -> io::Result<DevProvider> {
        check_start_args(addr, &config)?;
        let key = SigningKey::generate(SigningAlgorithm::ES256).map_err(io::Error::other)?;
        let impostor_key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|error| io::Error::other(format!("cannot generate a P-256 key: {error}")))?;

        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let issuer = format!("http://{addr}");

        let shared = Arc::new(Shared {
            issuer: issuer.clone(),
            client_id: config.client_id,
            client_secret: config.client_secret,
            user: config.user,
            protocol: config.protocol,
            key: std::sync::RwLock::new(Arc::new(key)),
            retired_key: std::sync::RwLock::new(None),
            impostor_key,
            faults: Mutex::new(Faults::default()),
            grants: Mutex::new(Grants::default()),
            token_requests: AtomicUsize::new(0),
            jwks_requests: AtomicUsize::new(0),
        });

        let (shutdown_tx, server) = spawn_server(
            listener,
            routes(Arc::clone(&shared), config.protocol),
            issuer.clone(),
        );

        tracing::warn!(
            %issuer,
            client_id = %shared.client_id,
            user = %shared.user.sub,
            "development provider listening: NOT for production, it signs its test user in \
             without a login page"
        );
        Ok(DevProvider {
            issuer,
            addr,
            shared,
            shutdown_tx: Some(shutdown_tx),
            server: Some(server),
        })
    }

    /// The issuer URL, `http://127.0.0.1:PORT`; every endpoint is under it.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the active faults; takes effect for the next request.
    pub fn set_faults(&self, faults: Faults) {
        tracing::info!(?faults, "development provider: faults set");
        *lock(&self.shared.faults) = faults;
    }

    /// Signs from now on with a new key, and publishes only that one.
    pub fn rotate_key(&self) -> Result<(), claimsmith_tokens::TokenError> {
        let key = SigningKey::generate(SigningAlgorithm::ES256)?;
        tracing::info!(kid = key.kid(), "development provider: signing key rotated");
        let retired = std::mem::replace(
            &mut *self
                .shared
                .key
                .write()
                .unwrap_or_else(PoisonError::into_inner),
            Arc::new(key),
        );
        *self
            .shared
            .retired_key
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(retired);
        Ok(())
    }

    /// How many token requests it answered (successful or not).
    pub fn token_requests(&self) -> usize {
        self.shared.token_requests.load(Ordering::SeqCst)
    }

    /// How many times the JWKS was fetched.
    pub fn jwks_requests(&self) -> usize {
        self.shared.jwks_requests.load(Ordering::SeqCst)
    }

    /// Stops accepting connections and waits (a few seconds at most) for the
    /// open ones to finish.
    pub async fn shutdown(mut self) {
        if let Some(shutdown_tx) = self.shutdown_tx.take() {
            let _ = shutdown_tx.send(());
        }
        if let Some(mut server) = self.server.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut server)
                .await
                .is_err()
        {
            tracing::warn!(
                issuer = %self.issuer,
                "development provider: connections still open after {SHUTDOWN_GRACE:?}, \
                 aborting"
            );
            server.abort();
        }
    }
}

impl Drop for DevProvider {
    fn drop(&mut self) {
        if let Some(shutdown_tx) = self.shutdown_tx.take() {
            let _ = shutdown_tx.send(());
        }
    }
}

/// Refuses what [`DevProvider::start`] must not serve.
fn check_start_args(addr: SocketAddr, config: &DevProviderConfig) -> io::Result<()> {
    if !addr.ip().is_loopback() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "the development provider only listens on loopback addresses, not {addr}: \
                 it signs its test user in without asking"
            ),
        ));
    }
    if config.client_id.is_empty() || config.client_secret.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the development provider needs a non-empty client_id and client_secret",
        ));
    }
    Ok(())
}

/// The provider's endpoints, under its issuer.
fn routes(shared: Arc<Shared>, protocol: Protocol) -> Router {
    let router = match protocol {
        Protocol::OpenIdConnect => Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks)),
        Protocol::OAuth2 => Router::new(),
    };
    router
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .route("/userinfo", get(userinfo).post(userinfo))
        .with_state(shared)
}

/// Serves `router` on `listener` in a task until the returned sender fires
/// or is dropped.
fn spawn_server(
    listener: tokio::net::TcpListener,
    router: Router,
    issuer: String,
) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        // As the service does (`oidc::serve`): no Nagle delay on answers.
        let listener = listener.tap_io(|stream| {
            let _ = stream.set_nodelay(true);
        });
        let result = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                // A dropped sender also means "stop".
                let _ = shutdown_rx.await;
            })
            .await;
        match result {
            Ok(()) => {
                tracing::info!(%issuer, "development provider stopped");
            }
            Err(error) => {
                tracing::error!(%issuer, %error, "development provider failed");
            }
        }
    });
    (shutdown_tx, server)
}

/// State shared by the handlers.
struct Shared {
    issuer: String,
    client_id: String,
    client_secret: String,
    user: DevUser,
    protocol: Protocol,
    /// Replaced by [`DevProvider::rotate_key`], as a provider rotates keys.
    key: std::sync::RwLock<Arc<SigningKey>>,
    /// The key before the last rotation: signs under [`Faults::retired_key_signs`].
    retired_key: std::sync::RwLock<Option<Arc<SigningKey>>>,
    /// Signs id tokens under [`Faults::bad_signature`]; never published.
    impostor_key: EcdsaKeyPair,
    faults: Mutex<Faults>,
    grants: Mutex<Grants>,
    token_requests: AtomicUsize,
    jwks_requests: AtomicUsize,
}

impl Shared {
    fn faults(&self) -> Faults {
        lock(&self.faults).clone()
    }

    fn key(&self) -> Arc<SigningKey> {
        self.key
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[derive(Default)]
struct Grants {
    codes: HashMap<String, CodeGrant>,
    access_tokens: HashMap<String, AccessGrant>,
    last_pruned: Option<Instant>,
}

/// Expired grants are swept at most this often: a sweep per request walked
/// every live access token (an hour's worth under `cargo xtask bench`'s
/// load), which made the provider's own cost grow with its traffic.
const PRUNE_INTERVAL: Duration = Duration::from_secs(1);

impl Grants {
    fn prune(&mut self, now: Instant) {
        if self
            .last_pruned
            .is_some_and(|last| now.saturating_duration_since(last) < PRUNE_INTERVAL)
        {
            return;
        }
        self.last_pruned = Some(now);
        self.codes.retain(|_, grant| grant.expires_at > now);
        self.access_tokens.retain(|_, grant| grant.expires_at > now);
    }
}

/// What an authorization code was issued for.
#[derive(Clone)]
struct CodeGrant {
    client_id: String,
    redirect_uri: String,
    code_challenge: String,
    nonce: String,
    scope: String,
    /// The authentication context the client asked for (the first of its
    /// `acr_values`), which the test user is taken to have met.
    acr: Option<String>,
    expires_at: Instant,
    /// Set once redeemed: the access token it was exchanged for (revoked if the
    /// code is presented again, RFC 6749 section 4.1.2).
    redeemed_for: Option<String>,
}

struct AccessGrant {
    expires_at: Instant,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data stays consistent even if a handler panicked.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Request parameters, each given at most once (RFC 6749 section 3.1).
struct Params(HashMap<String, String>);

impl Params {
    /// Err names the first parameter given more than once.
    fn from_pairs(pairs: Vec<(String, String)>) -> Result<Self, String> {
        let mut map = HashMap::with_capacity(pairs.len());
        for (name, value) in pairs {
            match map.entry(name) {
                Entry::Occupied(entry) => return Err(entry.key().clone()),
                Entry::Vacant(entry) => {
                    entry.insert(value);
                }
            }
        }
        Ok(Self(map))
    }

    /// The value, with an empty one counted as absent (RFC 6749 section 3.1).
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }
}

/// An OAuth 2.0 error answered as JSON (RFC 6749 section 5.2).
#[derive(Debug)]
struct OAuthError {
    status: StatusCode,
    error: ErrorCode,
    description: String,
    /// Extra response header: `WWW-Authenticate` for 401s.
    www_authenticate: Option<&'static str>,
}

impl OAuthError {
    fn new(status: StatusCode, error: ErrorCode, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            www_authenticate: None,
        }
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            description,
        )
    }

    fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidGrant,
            description,
        )
    }

    fn invalid_client(description: impl Into<String>) -> Self {
        Self {
            www_authenticate: Some(r#"Basic realm="claimsmith development provider""#),
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::InvalidClient,
                description,
            )
        }
    }

    fn invalid_token(description: impl Into<String>) -> Self {
        Self {
            www_authenticate: Some(r#"Bearer error="invalid_token""#),
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::InvalidToken,
                description,
            )
        }
    }

    fn server_error(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::ServerError,
            description,
        )
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = Json(json!({
            "error": self.error.as_str(),
            "error_description": format!("development provider: {}", self.description),
        }));
        let mut response = (self.status, no_store_headers(), body).into_response();
        if let Some(challenge) = self.www_authenticate {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

/// RFC 6749 section 5.1: token responses must not be cached.
fn no_store_headers() -> [(header::HeaderName, HeaderValue); 2] {
    [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::PRAGMA, HeaderValue::from_static("no-cache")),
    ]
}

async fn discovery(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let issuer = &shared.issuer;
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": SUPPORTED_SCOPES,
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "nonce", "acr", "amr", "email", "name", "geoipcountry"
        ],
    }))
}

async fn jwks(State(shared): State<Arc<Shared>>) -> Response {
    shared.jwks_requests.fetch_add(1, Ordering::SeqCst);
    let mut response = Json(shared.key().jwks()).into_response();
    if let Some(max_age) = shared.faults().jwks_max_age_secs
        && let Ok(value) = HeaderValue::from_str(&format!("max-age={max_age}"))
    {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    response
}

/// An authorization request it cannot redirect back from: a plain 400 page.
fn authorize_page_error(reason: &str) -> Response {
    tracing::info!(
        reason,
        "development provider: authorization request refused"
    );
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("Claimsmith development provider: bad authorization request: {reason}\n"),
    )
        .into_response()
}

/// Redirects to `redirect_uri` with `params` appended to its query.
fn redirect_with(redirect_uri: &Url, params: &[(&str, &str)]) -> Response {
    let mut target = redirect_uri.clone();
    target.query_pairs_mut().extend_pairs(params);
    Redirect::to(target.as_str()).into_response()
}

fn redirect_error(
    redirect_uri: &Url,
    issuer: &str,
    state: Option<&str>,
    error: &str,
    description: &str,
) -> Response {
    tracing::info!(
        error,
        description,
        "development provider: authorization request answered with an error"
    );
    let description = format!("development provider: {description}");
    let mut params = vec![
        ("error", error),
        ("error_description", description.as_str()),
        ("iss", issuer),
    ];
    if let Some(state) = state {
        params.push(("state", state));
    }
    redirect_with(redirect_uri, &params)
}

async fn authorize(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let Ok(Query(pairs)) = query else {
        return authorize_page_error("the query string does not parse");
    };
    let params = match Params::from_pairs(pairs) {
        Ok(params) => params,
        Err(name) => return authorize_page_error(&format!("{name} is given more than once")),
    };
    let (redirect_uri_text, redirect_uri) = match client_redirect_uri(&shared, &params) {
        Ok(redirect) => redirect,
        Err(reason) => return authorize_page_error(reason),
    };
    let request = match code_request(&params, shared.protocol) {
        Ok(request) => request,
        Err((error, description)) => {
            return redirect_error(
                &redirect_uri,
                &shared.issuer,
                params.get("state"),
                error.as_str(),
                description,
            );
        }
    };

    if let Some(error) = shared.faults().authorize_error {
        tracing::info!(
            %error,
            "development provider: fault authorize_error, redirecting with an error"
        );
        return redirect_with(
            &redirect_uri,
            &[
                ("error", error.as_str()),
                ("state", request.state),
                ("iss", &shared.issuer),
            ],
        );
    }

    let code = issue_code(&shared, redirect_uri_text, &request);
    // RFC 9207: the response names its issuer, against mix-up attacks. A
    // plain OAuth 2.0 server, as most social providers, does not.
    let mut answer = vec![("code", code.as_str()), ("state", request.state)];
    if shared.protocol == Protocol::OpenIdConnect {
        answer.push(("iss", &shared.issuer));
    }
    redirect_with(&redirect_uri, &answer)
}

/// The client's redirect_uri, as given and parsed, once the client and it
/// check out; Err is why the request is refused.
fn client_redirect_uri<'a>(
    shared: &Shared,
    params: &'a Params,
) -> Result<(&'a str, Url), &'static str> {
    // Until client and redirect_uri are known good, errors cannot go back to
    // the client (RFC 6749 section 4.1.2.1).
    match params.get("client_id") {
        None => return Err("client_id is missing"),
        Some(client_id) if client_id != shared.client_id => return Err("unknown client_id"),
        Some(_) => {}
    }
    let redirect_uri_text = params
        .get("redirect_uri")
        .ok_or("redirect_uri is missing")?;
    match Url::parse(redirect_uri_text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.fragment().is_none() => {
            Ok((redirect_uri_text, url))
        }
        _ => Err("redirect_uri must be an absolute http(s) URL without a fragment"),
    }
}

/// What a valid authorization request asks a code for.
struct CodeRequest<'a> {
    state: &'a str,
    nonce: &'a str,
    /// The requested scopes it knows, each once.
    granted: Vec<&'a str>,
    code_challenge: &'a str,
    /// The first of `acr_values`, if the client sent any.
    acr: Option<&'a str>,
}

/// Checks the parameters whose errors go back to the client; Err is the
/// error to redirect with.
fn code_request(
    params: &Params,
    protocol: Protocol,
) -> Result<CodeRequest<'_>, (ErrorCode, &'static str)> {
    if params.get("response_type") != Some("code") {
        return Err((
            ErrorCode::UnsupportedResponseType,
            "only response_type=code is supported",
        ));
    }
    let state = params
        .get("state")
        .ok_or((ErrorCode::InvalidRequest, "state is required"))?;
    let oidc = protocol == Protocol::OpenIdConnect;
    let nonce = match params.get("nonce") {
        Some(nonce) => nonce,
        None if !oidc => "",
        None => return Err((ErrorCode::InvalidRequest, "nonce is required")),
    };
    let requested: Vec<&str> = params.get("scope").unwrap_or("").split(' ').collect();
    if oidc && !requested.contains(&"openid") {
        return Err((ErrorCode::InvalidScope, "scope must include openid"));
    }
    let mut granted: Vec<&str> = Vec::new();
    for scope in requested {
        if SUPPORTED_SCOPES.contains(&scope) && !granted.contains(&scope) {
            granted.push(scope);
        }
    }
    let code_challenge = params.get("code_challenge").ok_or((
        ErrorCode::InvalidRequest,
        "PKCE is required: code_challenge is missing",
    ))?;
    if params.get("code_challenge_method") != Some("S256") {
        return Err((
            ErrorCode::InvalidRequest,
            "code_challenge_method must be S256",
        ));
    }
    if !is_valid_s256_challenge(code_challenge) {
        return Err((
            ErrorCode::InvalidRequest,
            "code_challenge is not a base64url SHA-256 digest",
        ));
    }
    Ok(CodeRequest {
        state,
        nonce,
        granted,
        code_challenge,
        acr: params
            .get("acr_values")
            .and_then(|values| values.split_ascii_whitespace().next()),
    })
}

/// Signs the test user in: records a new code for `request` and returns it.
fn issue_code(shared: &Shared, redirect_uri_text: &str, request: &CodeRequest<'_>) -> String {
    let code = random_token();
    let now = Instant::now();
    {
        let mut grants = lock(&shared.grants);
        grants.prune(now);
        grants.codes.insert(
            code.clone(),
            CodeGrant {
                client_id: shared.client_id.clone(),
                redirect_uri: redirect_uri_text.to_owned(),
                code_challenge: request.code_challenge.to_owned(),
                nonce: request.nonce.to_owned(),
                scope: request.granted.join(" "),
                acr: request.acr.map(str::to_owned),
                expires_at: now + CODE_TTL,
                redeemed_for: None,
            },
        );
    }
    tracing::info!(
        user = %shared.user.sub,
        redirect_uri = %redirect_uri_text,
        "development provider: signed the test user in, redirecting with a code"
    );
    code
}

/// The client id a token request authenticated as.
fn authenticate_client(
    shared: &Shared,
    headers: &HeaderMap,
    params: &Params,
) -> Result<(), OAuthError> {
    let basic = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(value) => {
            let value = value
                .to_str()
                .map_err(|_| OAuthError::invalid_client("the Authorization header is not ASCII"))?;
            let (scheme, credentials) = value.split_once(' ').ok_or_else(|| {
                OAuthError::invalid_client("the Authorization header is malformed")
            })?;
            if !scheme.eq_ignore_ascii_case("basic") {
                return Err(OAuthError::invalid_client(
                    "only HTTP Basic client authentication is accepted in the Authorization header",
                ));
            }
            let decoded = STANDARD
                .decode(credentials.trim())
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| OAuthError::invalid_client("Basic credentials are not base64"))?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or_else(|| OAuthError::invalid_client("Basic credentials lack a ':'"))?;
            // RFC 6749 section 2.3.1: both are form-urlencoded before base64.
            let id = form_urldecode(id)
                .ok_or_else(|| OAuthError::invalid_client("Basic user is badly encoded"))?;
            let secret = form_urldecode(secret)
                .ok_or_else(|| OAuthError::invalid_client("Basic password is badly encoded"))?;
            Some((id, secret))
        }
    };

    let (client_id, secret) = match (basic, params.get("client_secret")) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request(
                "use one client authentication method, not both Basic and client_secret",
            ));
        }
        (Some((id, secret)), None) => {
            if params.get("client_id").is_some_and(|form_id| form_id != id) {
                return Err(OAuthError::invalid_client(
                    "client_id in the form differs from the Basic user",
                ));
            }
            (id, secret)
        }
        (None, Some(secret)) => {
            let id = params.get("client_id").ok_or_else(|| {
                OAuthError::invalid_client("client_secret given without client_id")
            })?;
            (id.to_owned(), secret.to_owned())
        }
        (None, None) => {
            return Err(OAuthError::invalid_client(
                "client authentication is required",
            ));
        }
    };

    let id_ok = client_id == shared.client_id;
    let secret_ok = aws_lc_rs::constant_time::verify_slices_are_equal(
        secret.as_bytes(),
        shared.client_secret.as_bytes(),
    )
    .is_ok();
    if id_ok && secret_ok {
        Ok(())
    } else {
        Err(OAuthError::invalid_client("unknown client or wrong secret"))
    }
}

async fn token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    shared.token_requests.fetch_add(1, Ordering::SeqCst);
    match exchange_code(&shared, &headers, form) {
        Ok(response) => response,
        Err(error) => {
            tracing::info!(
                error = error.error.as_str(),
                description = %error.description,
                "development provider: token request refused"
            );
            error.into_response()
        }
    }
}

fn exchange_code(
    shared: &Shared,
    headers: &HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, OAuthError> {
    let faults = shared.faults();
    if faults.token_error {
        return Err(OAuthError::invalid_grant("fault token_error is on"));
    }
    let Form(pairs) = form.map_err(|rejection| {
        OAuthError::invalid_request(format!("the body is not a form: {rejection}"))
    })?;
    let params = Params::from_pairs(pairs)
        .map_err(|name| OAuthError::invalid_request(format!("{name} is given more than once")))?;

    authenticate_client(shared, headers, &params)?;

    match params.get("grant_type") {
        None => return Err(OAuthError::invalid_request("grant_type is missing")),
        Some("authorization_code") => {}
        Some(_) => {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::UnsupportedGrantType,
                "only authorization_code is supported",
            ));
        }
    }
    let (access_token, grant) = redeem_code(shared, &params)?;

    let mut body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": TOKEN_TTL_SECS,
        "scope": grant.scope,
    });
    let wants_id_token = shared.protocol == Protocol::OpenIdConnect
        || grant.scope.split(' ').any(|scope| scope == "openid");
    if wants_id_token {
        match id_token(shared, &grant, &faults) {
            Ok(id_token) => body["id_token"] = json!(id_token),
            Err(error) => {
                lock(&shared.grants).access_tokens.remove(&access_token);
                return Err(error);
            }
        }
    }
    tracing::info!(
        user = %shared.user.sub,
        scope = %grant.scope,
        "development provider: exchanged a code for tokens"
    );
    let body = Json(body);
    Ok((no_store_headers(), body).into_response())
}

/// Spends the code the token request presents and issues an access token
/// for it; Ok is that token and what the code was issued for.
fn redeem_code(shared: &Shared, params: &Params) -> Result<(String, CodeGrant), OAuthError> {
    let code = params
        .get("code")
        .ok_or_else(|| OAuthError::invalid_request("code is missing"))?;
    let redirect_uri = params
        .get("redirect_uri")
        .ok_or_else(|| OAuthError::invalid_request("redirect_uri is missing"))?;
    let verifier = params.get("code_verifier");

    let access_token = random_token();
    let now = Instant::now();
    let mut grants = lock(&shared.grants);
    grants.prune(now);
    let Grants {
        codes,
        access_tokens,
        ..
    } = &mut *grants;
    let grant = match codes.get_mut(code) {
        None => return Err(OAuthError::invalid_grant("unknown or expired code")),
        // Not swept yet (see PRUNE_INTERVAL), but expired all the same.
        Some(grant) if grant.expires_at <= now => {
            return Err(OAuthError::invalid_grant("unknown or expired code"));
        }
        Some(grant) if grant.client_id != shared.client_id => {
            return Err(OAuthError::invalid_grant(
                "code was issued to another client",
            ));
        }
        Some(grant) => grant,
    };
    if let Some(previous) = &grant.redeemed_for {
        access_tokens.remove(previous);
        tracing::warn!(
            "development provider: authorization code presented twice; revoked the access \
             token it was exchanged for"
        );
        return Err(OAuthError::invalid_grant("code was already used"));
    }
    // From here on the code is spent, whatever the outcome.
    grant.redeemed_for = Some(access_token.clone());
    let grant = grant.clone();
    if grant.redirect_uri != redirect_uri {
        return Err(OAuthError::invalid_grant(
            "redirect_uri differs from the authorization request's",
        ));
    }
    check_code_verifier(verifier, &grant.code_challenge)?;
    access_tokens.insert(
        access_token.clone(),
        AccessGrant {
            expires_at: now + Duration::from_secs(TOKEN_TTL_SECS),
        },
    );
    Ok((access_token, grant))
}

/// PKCE (RFC 7636 section 4.6): the verifier must hash to the code's challenge.
fn check_code_verifier(verifier: Option<&str>, code_challenge: &str) -> Result<(), OAuthError> {
    let Some(verifier) = verifier else {
        return Err(OAuthError::invalid_grant("code_verifier is missing"));
    };
    if !is_valid_code_verifier(verifier) {
        return Err(OAuthError::invalid_grant(
            "code_verifier must be 43 to 128 unreserved characters",
        ));
    }
    let computed = pkce_challenge(verifier);
    if aws_lc_rs::constant_time::verify_slices_are_equal(
        computed.as_bytes(),
        code_challenge.as_bytes(),
    )
    .is_err()
    {
        return Err(OAuthError::invalid_grant(
            "code_verifier does not match the code_challenge",
        ));
    }
    Ok(())
}

fn id_token(shared: &Shared, grant: &CodeGrant, faults: &Faults) -> Result<String, OAuthError> {
    let user = &shared.user;
    let now = SystemClock.now();
    let mut claims = Map::new();
    let issuer = if faults.wrong_issuer {
        format!("{}/elsewhere", shared.issuer)
    } else {
        shared.issuer.clone()
    };
    let audience = if faults.wrong_audience {
        "another-client"
    } else {
        grant.client_id.as_str()
    };
    let issued_at = match faults.expired_secs_ago {
        Some(ago) => now.saturating_sub(TOKEN_TTL_SECS + ago),
        None => now,
    };
    claims.insert("iss".into(), json!(issuer));
    claims.insert("sub".into(), json!(user.sub));
    match &faults.second_audience {
        Some(second) => claims.insert("aud".into(), json!([audience, second])),
        None => claims.insert("aud".into(), json!(audience)),
    };
    if let Some(party) = &faults.authorized_party {
        claims.insert("azp".into(), json!(party));
    }
    claims.insert("exp".into(), json!(issued_at + TOKEN_TTL_SECS));
    claims.insert("iat".into(), json!(issued_at));
    let nonce = if faults.wrong_nonce {
        tracing::info!("development provider: fault wrong_nonce, id token carries another nonce");
        WRONG_NONCE
    } else {
        grant.nonce.as_str()
    };
    if !nonce.is_empty() {
        claims.insert("nonce".into(), json!(nonce));
    }
    // The test user is signed in at the authorization request, moments ago.
    let auth_time = now.saturating_sub(faults.stale_auth_secs.unwrap_or(0));
    claims.insert("auth_time".into(), json!(auth_time));
    // Asked for an authentication context, the test user meets it: with a
    // password, and a one-time code too when the context names `mfa`.
    if let Some(acr) = &grant.acr {
        let amr: &[&str] = if acr.contains("mfa") {
            &["pwd", "otp"]
        } else {
            &["pwd"]
        };
        claims.insert("acr".into(), json!(acr));
        claims.insert("amr".into(), json!(amr));
    }
    claims.insert("email".into(), json!(user.email));
    claims.insert("name".into(), json!(user.name));
    if let Some(country) = &user.geoipcountry {
        claims.insert("geoipcountry".into(), json!(country));
    }

    let retired = shared
        .retired_key
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
        .filter(|_| faults.retired_key_signs);
    let token = retired
        .unwrap_or_else(|| shared.key())
        .sign(ID_TOKEN_TYP, &claims)
        .map_err(|error| OAuthError::server_error(error.to_string()))?;
    if !faults.bad_signature {
        return Ok(token);
    }

    // Same header (so the same kid) and claims, signed by the unpublished key.
    tracing::info!("development provider: fault bad_signature, id token signed by another key");
    let signing_input = token
        .rsplit_once('.')
        .map(|(input, _)| input)
        .ok_or_else(|| OAuthError::server_error("a signed token has no '.'"))?;
    let signature = shared
        .impostor_key
        .sign(&rand::SystemRandom::new(), signing_input.as_bytes())
        .map_err(|_| OAuthError::server_error("signing with the impostor key failed"))?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.as_ref())
    ))
}

async fn userinfo(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(status) = shared.faults().userinfo_status {
        tracing::info!(
            status,
            "development provider: fault userinfo_status, answering an error"
        );
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (
            status,
            Json(json!({"error": ErrorCode::ServerError.as_str()})),
        )
            .into_response();
    }
    match check_access_token(&shared, &headers) {
        Ok(()) => {
            let user = &shared.user;
            tracing::info!(user = %user.sub, "development provider: answered userinfo");
            if shared.protocol == Protocol::OAuth2 {
                return Json(json!({
                    "id": OAUTH2_USER_ID,
                    "login": user.sub,
                    "name": user.name,
                    "email": user.email,
                    "user_type": user.user_type,
                }))
                .into_response();
            }
            Json(json!({
                "sub": user.sub,
                "name": user.name,
                "email": user.email,
                "email_verified": true,
                "user_type": user.user_type,
                "groups": user.groups,
            }))
            .into_response()
        }
        Err(error) => {
            tracing::info!(
                description = %error.description,
                "development provider: userinfo request refused"
            );
            error.into_response()
        }
    }
}

fn check_access_token(shared: &Shared, headers: &HeaderMap) -> Result<(), OAuthError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| OAuthError::invalid_token("no Authorization header"))?
        .to_str()
        .map_err(|_| OAuthError::invalid_token("the Authorization header is not ASCII"))?;
    let token = value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| OAuthError::invalid_token("expected a Bearer token"))?;
    let now = Instant::now();
    let mut grants = lock(&shared.grants);
    grants.prune(now);
    if grants
        .access_tokens
        .get(token)
        .is_some_and(|grant| grant.expires_at > now)
    {
        Ok(())
    } else {
        Err(OAuthError::invalid_token(
            "unknown, expired or revoked access token",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};

    const CLIENT_ID: &str = "claimsmith-dev";
    const CLIENT_SECRET: &str = "dev-secret";
    const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-verifier";
    const NONCE: &str = "n-0S6_WzA2Mj";
    const STATE: &str = "af0ifjsldkj";

    async fn start() -> DevProvider {
        start_with_secret(CLIENT_SECRET).await
    }

    async fn start_with_secret(secret: &str) -> DevProvider {
        start_at("127.0.0.1:0", secret)
            .await
            .expect("start the development provider")
    }

    async fn start_at(addr: &str, secret: &str) -> io::Result<DevProvider> {
        let config = DevProviderConfig {
            client_id: CLIENT_ID.to_owned(),
            client_secret: secret.to_owned(),
            user: DevUser::default(),
            protocol: Protocol::OpenIdConnect,
        };
        DevProvider::start(addr.parse().expect("addr"), config).await
    }

    fn http() -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
    }

    fn form_body(pairs: &[(&str, &str)]) -> String {
        let mut url = Url::parse("http://form.invalid/").expect("url");
        url.query_pairs_mut().extend_pairs(pairs);
        url.query().unwrap_or_default().to_owned()
    }

    fn authorize_url(provider: &DevProvider, pairs: &[(&str, &str)]) -> Url {
        let mut url = Url::parse(&format!("{}/authorize", provider.issuer())).expect("url");
        url.query_pairs_mut().extend_pairs(pairs);
        url
    }

    fn good_authorize_params() -> Vec<(&'static str, String)> {
        vec![
            ("response_type", "code".to_owned()),
            ("client_id", CLIENT_ID.to_owned()),
            ("redirect_uri", REDIRECT_URI.to_owned()),
            ("scope", "openid email profile".to_owned()),
            ("state", STATE.to_owned()),
            ("nonce", NONCE.to_owned()),
            ("code_challenge", pkce_challenge(VERIFIER)),
            ("code_challenge_method", "S256".to_owned()),
        ]
    }

    fn as_refs<'a>(params: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
        params.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    /// GET /authorize and return the response (not followed).
    async fn authorize_raw(provider: &DevProvider, params: &[(&str, &str)]) -> reqwest::Response {
        http()
            .get(authorize_url(provider, params))
            .send()
            .await
            .expect("authorize request")
    }

    /// The query parameters of the 303's Location, which must go to REDIRECT_URI.
    fn redirect_params(response: &reqwest::Response) -> HashMap<String, String> {
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let location = response
            .headers()
            .get(header::LOCATION)
            .expect("Location")
            .to_str()
            .expect("ascii");
        let url = Url::parse(location).expect("Location is a URL");
        assert_eq!(
            format!("{}://{}{}", url.scheme(), url.authority(), url.path()),
            REDIRECT_URI
        );
        url.query_pairs().into_owned().collect()
    }

    async fn authorize_code(provider: &DevProvider) -> String {
        let params = good_authorize_params();
        let response = authorize_raw(provider, &as_refs(&params)).await;
        let params = redirect_params(&response);
        assert_eq!(params.get("state").map(String::as_str), Some(STATE));
        assert!(!params.contains_key("error"), "{params:?}");
        params.get("code").expect("code").clone()
    }

    async fn token_request(
        provider: &DevProvider,
        basic: Option<(&str, &str)>,
        pairs: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut request = http()
            .post(format!("{}/token", provider.issuer()))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form_body(pairs));
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, Some(secret));
        }
        let response = request.send().await.expect("token request");
        let status = response.status();
        let body: Value = response.json().await.expect("token response is JSON");
        (status, body)
    }

    async fn exchange(provider: &DevProvider, code: &str, verifier: &str) -> (StatusCode, Value) {
        token_request(
            provider,
            Some((CLIENT_ID, CLIENT_SECRET)),
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", verifier),
            ],
        )
        .await
    }

    async fn fetch_jwks(provider: &DevProvider) -> JwkSet {
        http()
            .get(format!("{}/jwks", provider.issuer()))
            .send()
            .await
            .expect("jwks request")
            .json()
            .await
            .expect("JWKS parses")
    }

    /// Verifies like a relying party: key by kid from the fetched JWKS, iss, aud, exp.
    async fn verify_id_token(
        provider: &DevProvider,
        id_token: &str,
    ) -> Result<Value, jsonwebtoken::errors::Error> {
        let jwks = fetch_jwks(provider).await;
        let header = decode_header(id_token).expect("header decodes");
        assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
        let kid = header.kid.expect("kid in the header");
        let jwk = jwks.find(&kid).expect("kid is in the JWKS");
        let decoding_key = DecodingKey::from_jwk(jwk).expect("decoding key");
        let mut validation = Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.set_issuer(&[provider.issuer()]);
        validation.set_audience(&[CLIENT_ID]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        decode::<Value>(id_token, &decoding_key, &validation).map(|data| data.claims)
    }

    async fn userinfo_with(provider: &DevProvider, access_token: &str) -> reqwest::Response {
        http()
            .get(format!("{}/userinfo", provider.issuer()))
            .bearer_auth(access_token)
            .send()
            .await
            .expect("userinfo request")
    }

    #[tokio::test]
    async fn discovery_describes_the_endpoints() {
        let provider = start().await;
        let issuer = provider.issuer().to_owned();
        assert_eq!(
            issuer,
            format!("http://127.0.0.1:{}", provider.addr().port())
        );
        assert_ne!(provider.addr().port(), 0);

        let response = http()
            .get(format!("{issuer}/.well-known/openid-configuration"))
            .send()
            .await
            .expect("discovery");
        assert_eq!(response.status(), StatusCode::OK);
        let doc: Value = response.json().await.expect("json");
        assert_eq!(doc["issuer"], issuer);
        assert_eq!(doc["authorization_endpoint"], format!("{issuer}/authorize"));
        assert_eq!(doc["token_endpoint"], format!("{issuer}/token"));
        assert_eq!(doc["userinfo_endpoint"], format!("{issuer}/userinfo"));
        assert_eq!(doc["jwks_uri"], format!("{issuer}/jwks"));
        assert_eq!(doc["response_types_supported"], json!(["code"]));
        assert_eq!(doc["subject_types_supported"], json!(["public"]));
        assert_eq!(
            doc["id_token_signing_alg_values_supported"],
            json!(["ES256"])
        );
        assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(
            doc["token_endpoint_auth_methods_supported"],
            json!(["client_secret_basic", "client_secret_post"])
        );
        let scopes = doc["scopes_supported"].as_array().expect("scopes");
        assert!(scopes.contains(&json!("openid")), "{scopes:?}");

        // The jwks_uri serves one ES256 signing key.
        let jwks = fetch_jwks(&provider).await;
        assert_eq!(jwks.keys.len(), 1);
        let jwk = serde_json::to_value(&jwks.keys[0]).expect("jwk");
        assert_eq!(jwk["alg"], "ES256");
        assert_eq!(jwk["use"], "sig");
        assert!(jwk.get("d").is_none(), "no private key in the JWKS");
    }

    #[tokio::test]
    async fn full_login_round_trip_with_pkce() {
        let provider = start().await;
        let code = authorize_code(&provider).await;
        assert!(code.len() >= 43, "code has at least 256 bits: {code}");
        assert_eq!(provider.token_requests(), 0);

        let (status, body) = exchange(&provider, &code, VERIFIER).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(provider.token_requests(), 1);
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3600);
        assert_eq!(body["scope"], "openid email profile");
        let access_token = body["access_token"].as_str().expect("access_token");
        assert!(access_token.len() >= 43);

        let id_token = body["id_token"].as_str().expect("id_token");
        let claims = verify_id_token(&provider, id_token)
            .await
            .expect("the id token verifies against the JWKS");
        assert_eq!(claims["iss"], provider.issuer());
        assert_eq!(claims["sub"], "dev-user-1");
        assert_eq!(claims["aud"], CLIENT_ID);
        assert_eq!(claims["nonce"], NONCE);
        assert_eq!(claims["email"], "ada@example.com");
        assert_eq!(claims["name"], "Ada Lovelace");
        assert_eq!(claims["geoipcountry"], "NZ");
        let iat = claims["iat"].as_u64().expect("iat");
        assert_eq!(claims["exp"].as_u64().expect("exp"), iat + 3600);
        assert!(iat.abs_diff(SystemClock.now()) < 60);

        let response = userinfo_with(&provider, access_token).await;
        assert_eq!(response.status(), StatusCode::OK);
        let info: Value = response.json().await.expect("json");
        assert_eq!(
            info,
            json!({
                "sub": "dev-user-1",
                "name": "Ada Lovelace",
                "email": "ada@example.com",
                "email_verified": true,
                "user_type": "employee",
                "groups": ["engineers"],
            })
        );
    }

    #[tokio::test]
    async fn client_secret_post_works_and_user_without_country_has_no_claim() {
        let provider = DevProvider::start(
            "127.0.0.1:0".parse().expect("addr"),
            DevProviderConfig {
                client_id: CLIENT_ID.to_owned(),
                client_secret: CLIENT_SECRET.to_owned(),
                user: DevUser {
                    geoipcountry: None,
                    ..DevUser::default()
                },
                protocol: Protocol::OpenIdConnect,
            },
        )
        .await
        .expect("start");
        let code = authorize_code(&provider).await;
        let (status, body) = token_request(
            &provider,
            None,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", VERIFIER),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let claims = verify_id_token(&provider, body["id_token"].as_str().expect("id_token"))
            .await
            .expect("verifies");
        assert!(claims.get("geoipcountry").is_none(), "{claims}");
    }

    #[tokio::test]
    async fn basic_credentials_are_form_urldecoded() {
        // RFC 6749 section 2.3.1: id and secret are form-urlencoded before base64.
        let secret = "s3cr3t+/:% é";
        let provider = start_with_secret(secret).await;
        let code = authorize_code(&provider).await;
        let pairs = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", VERIFIER),
        ];
        let encoded_secret = form_body(&[("x", secret)])
            .strip_prefix("x=")
            .expect("prefix")
            .to_owned();
        // The raw secret is not what the RFC asks for: refused, code untouched.
        let (status, body) = token_request(&provider, Some((CLIENT_ID, secret)), &pairs).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let (status, body) =
            token_request(&provider, Some((CLIENT_ID, &encoded_secret)), &pairs).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    #[tokio::test]
    async fn replayed_code_is_refused_and_revokes_its_access_token() {
        let provider = start().await;
        let code = authorize_code(&provider).await;
        let (status, body) = exchange(&provider, &code, VERIFIER).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let access_token = body["access_token"].as_str().expect("access_token");
        assert_eq!(
            userinfo_with(&provider, access_token).await.status(),
            StatusCode::OK
        );

        let (status, body) = exchange(&provider, &code, VERIFIER).await;
        assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
        assert!(body.get("id_token").is_none());
        assert_eq!(provider.token_requests(), 2);
        assert_eq!(
            userinfo_with(&provider, access_token).await.status(),
            StatusCode::UNAUTHORIZED,
            "the replay revoked the access token"
        );
        // And a third try is refused too.
        let (status, _) = exchange(&provider, &code, VERIFIER).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn wrong_code_verifier_is_refused_and_spends_the_code() {
        let provider = start().await;
        let code = authorize_code(&provider).await;
        let wrong = "x".repeat(43);
        let (status, body) = exchange(&provider, &code, &wrong).await;
        assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
        let (status, body) = exchange(&provider, &code, VERIFIER).await;
        assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");

        // A missing verifier is refused as well.
        let code = authorize_code(&provider).await;
        let (status, body) = token_request(
            &provider,
            Some((CLIENT_ID, CLIENT_SECRET)),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
            ],
        )
        .await;
        assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    }

    #[tokio::test]
    async fn code_is_bound_to_redirect_uri_and_expires() {
        let provider = start().await;
        let code = authorize_code(&provider).await;
        let (status, body) = token_request(
            &provider,
            Some((CLIENT_ID, CLIENT_SECRET)),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "http://127.0.0.1:9/other"),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
        assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");

        let code = authorize_code(&provider).await;
        for grant in lock(&provider.shared.grants).codes.values_mut() {
            grant.expires_at = Instant::now();
        }
        let (status, body) = exchange(&provider, &code, VERIFIER).await;
        assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");

        let (status, body) = exchange(&provider, "made-up-code", VERIFIER).await;
        assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    }

    #[tokio::test]
    async fn bad_client_credentials_are_401_invalid_client() {
        let provider = start().await;
        let code = authorize_code(&provider).await;
        let pairs = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", VERIFIER),
        ];
        for basic in [
            Some((CLIENT_ID, "wrong-secret")),
            Some(("other-client", CLIENT_SECRET)),
            None,
        ] {
            let (status, body) = token_request(&provider, basic, &pairs).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{basic:?}: {body}");
            assert_eq!(body["error"], "invalid_client", "{basic:?}");
        }
        let mut post_pairs = pairs.to_vec();
        post_pairs.extend([("client_id", CLIENT_ID), ("client_secret", "wrong-secret")]);
        let (status, body) = token_request(&provider, None, &post_pairs).await;
        assert_oauth_error(status, &body, StatusCode::UNAUTHORIZED, "invalid_client");

        // Failed client authentication does not spend the code.
        let (status, body) = exchange(&provider, &code, VERIFIER).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(provider.token_requests(), 5);
    }

    #[tokio::test]
    async fn unknown_client_gets_a_page_not_a_redirect() {
        let provider = start().await;
        let mut params = good_authorize_params();
        params[1].1 = "someone-else".to_owned();
        let response = authorize_raw(&provider, &as_refs(&params)).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(response.headers().get(header::LOCATION).is_none());

        let mut params = good_authorize_params();
        params[2].1 = "not a url".to_owned();
        let response = authorize_raw(&provider, &as_refs(&params)).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(response.headers().get(header::LOCATION).is_none());
    }

    #[tokio::test]
    async fn bad_authorization_requests_redirect_with_errors() {
        let provider = start().await;
        let cases: [(&str, Option<&str>, &str); 5] = [
            ("response_type", Some("token"), "unsupported_response_type"),
            ("code_challenge", None, "invalid_request"),
            ("code_challenge_method", Some("plain"), "invalid_request"),
            ("nonce", None, "invalid_request"),
            ("scope", Some("email"), "invalid_scope"),
        ];
        for (name, value, expected) in cases {
            let mut params = good_authorize_params();
            params.retain(|(k, _)| *k != name);
            if let Some(value) = value {
                params.push((name, value.to_owned()));
            }
            let response = authorize_raw(&provider, &as_refs(&params)).await;
            let query = redirect_params(&response);
            assert_eq!(
                query.get("error").map(String::as_str),
                Some(expected),
                "{name}"
            );
            assert_eq!(
                query.get("state").map(String::as_str),
                Some(STATE),
                "{name}"
            );
            assert!(!query.contains_key("code"), "{name}");
        }
        assert!(lock(&provider.shared.grants).codes.is_empty());
    }

    #[tokio::test]
    async fn unknown_access_token_is_401() {
        let provider = start().await;
        let response = userinfo_with(&provider, "not-a-token").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().get(header::WWW_AUTHENTICATE).is_some());
        let response = http()
            .get(format!("{}/userinfo", provider.issuer()))
            .send()
            .await
            .expect("userinfo");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn fault_authorize_error() {
        let provider = start().await;
        provider.set_faults(Faults {
            authorize_error: Some("access_denied".to_owned()),
            ..Faults::default()
        });
        let params = good_authorize_params();
        let response = authorize_raw(&provider, &as_refs(&params)).await;
        let query = redirect_params(&response);
        assert_eq!(
            query.get("error").map(String::as_str),
            Some("access_denied")
        );
        assert_eq!(query.get("state").map(String::as_str), Some(STATE));
        assert!(!query.contains_key("code"));

        provider.set_faults(Faults::default());
        authorize_code(&provider).await;
    }

    #[tokio::test]
    async fn fault_token_error() {
        let provider = start().await;
        let code = authorize_code(&provider).await;
        provider.set_faults(Faults {
            token_error: true,
            ..Faults::default()
        });
        let (status, body) = exchange(&provider, &code, VERIFIER).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "invalid_grant");
        assert!(body.get("access_token").is_none());
        assert_eq!(provider.token_requests(), 1);
    }

    /// The answer was `expected` with OAuth error `error`.
    fn assert_oauth_error(status: StatusCode, body: &Value, expected: StatusCode, error: &str) {
        assert_eq!(
            (status, body["error"].as_str()),
            (expected, Some(error)),
            "{body}"
        );
    }

    /// A provider with `faults` on, and its answer to a good code exchange.
    async fn tokens_under(faults: Faults) -> (DevProvider, Value) {
        let provider = start().await;
        provider.set_faults(faults);
        let code = authorize_code(&provider).await;
        let (status, body) = exchange(&provider, &code, VERIFIER).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        (provider, body)
    }

    #[tokio::test]
    async fn fault_bad_signature() {
        let (provider, body) = tokens_under(Faults {
            bad_signature: true,
            ..Faults::default()
        })
        .await;
        let id_token = body["id_token"].as_str().expect("id_token");
        let jwks = fetch_jwks(&provider).await;
        let header = decode_header(id_token).expect("header");
        assert_eq!(
            header.kid.as_deref(),
            jwks.keys[0].common.key_id.as_deref(),
            "same kid as the published key"
        );
        let error = verify_id_token(&provider, id_token)
            .await
            .expect_err("the signature must not verify");
        assert_eq!(
            *error.kind(),
            jsonwebtoken::errors::ErrorKind::InvalidSignature
        );
        // The claims themselves are intact.
        let claims: Value =
            jsonwebtoken::dangerous::insecure_decode_claims(id_token).expect("claims");
        assert_eq!(claims["nonce"], NONCE);
    }

    #[tokio::test]
    async fn fault_wrong_nonce() {
        let (provider, body) = tokens_under(Faults {
            wrong_nonce: true,
            ..Faults::default()
        })
        .await;
        let claims = verify_id_token(&provider, body["id_token"].as_str().expect("id_token"))
            .await
            .expect("still validly signed");
        assert_eq!(claims["nonce"], "not-the-nonce");
    }

    #[tokio::test]
    async fn fault_userinfo_status() {
        let provider = start().await;
        let code = authorize_code(&provider).await;
        let (_, body) = exchange(&provider, &code, VERIFIER).await;
        let access_token = body["access_token"].as_str().expect("access_token");
        provider.set_faults(Faults {
            userinfo_status: Some(500),
            ..Faults::default()
        });
        let response = userinfo_with(&provider, access_token).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body: Value = response.json().await.expect("json");
        assert_eq!(body, json!({"error": "server_error"}));

        provider.set_faults(Faults::default());
        assert_eq!(
            userinfo_with(&provider, access_token).await.status(),
            StatusCode::OK
        );
    }

    #[tokio::test]
    async fn refuses_non_loopback_and_stops_on_shutdown() {
        let error = start_at("0.0.0.0:0", CLIENT_SECRET)
            .await
            .expect_err("not loopback");
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);

        let provider = start().await;
        let client = http();
        let discovery = format!("{}/.well-known/openid-configuration", provider.issuer());
        // Leaves a keep-alive connection open in the client's pool.
        assert!(client.get(&discovery).send().await.is_ok());
        tokio::time::timeout(Duration::from_secs(3), provider.shutdown())
            .await
            .expect("shutdown does not hang on idle connections");
        assert!(client.get(&discovery).send().await.is_err());
    }
}
