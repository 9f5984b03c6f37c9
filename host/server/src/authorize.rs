//! `/authorize` (an app sends its user here) and `/callback` (the upstream
//! sends the user back): the browser half of a login.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use reqwest::Url;
use serde::Deserialize;
use sha2::Digest as _;

use super::pending::{MAX_NONCE_LEN, MAX_STATE_LEN, PendingLogin};
use super::protocol::{ErrorCode, is_valid_s256_challenge, pkce_challenge, random_token};
use super::token::CodeToIssue;
use super::upstream::Reauthentication;
use super::{ChainRun, OAuthError, Service, error_page};
use claimsmith_capabilities::log::one_line_cut;
use claimsmith_config::ClientConfig;
use claimsmith_core::{StoredUser, Transaction};
use claimsmith_pipeline::{Login, LoginEnd, RequestInfo, UpstreamLogin};

/// An app's authorization request (RFC 6749 §4.1.1, RFC 7636, OIDC Core §3.1.2.1).
#[derive(Debug, Deserialize)]
pub(crate) struct AuthorizeParams {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    /// Which upstream to sign in with; the only one when absent.
    connection: Option<String>,
    audience: Option<String>,
    /// `none`, or any of `login`, `consent`, `select_account`: passed on.
    prompt: Option<String>,
    /// Seconds: the user must have authenticated no longer ago than this.
    max_age: Option<String>,
    /// Shown to the actions (`event.transaction`), not acted on.
    ui_locales: Option<String>,
    acr_values: Option<String>,
    login_hint: Option<String>,
}

/// How much of an upstream's `error` and `error_description` at `/callback`
/// the log and the audit trail keep: the caller writes them.
const MAX_UPSTREAM_ERROR_CHARS: usize = 64;
const MAX_UPSTREAM_DESCRIPTION_CHARS: usize = 256;

/// The prompt values of OIDC Core §3.1.2.1.
const PROMPT_VALUES: [&str; 4] = ["none", "login", "consent", "select_account"];

/// The cookie that holds a pending login in its browser; one per login, so
/// two tabs signing in at once do not clash. Named by a hash of the state:
/// at `/callback` the state is the caller's to write, and no caller input
/// goes into a cookie name.
fn login_cookie_name(upstream_state: &str) -> String {
    state_cookie_name("claimsmith_login", upstream_state)
}

/// `<prefix>_<hash of state>`: a cookie per login, named without caller
/// input.
pub(super) fn state_cookie_name(prefix: &str, state: &str) -> String {
    let digest = sha2::Sha256::digest(state.as_bytes());
    format!("{prefix}_{}", hex::encode(&digest[..8]))
}

fn login_cookie(issuer: &str, upstream_state: &str, value: &str, max_age_secs: u64) -> String {
    let secure = if issuer.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{}={value}; Path=/callback; Max-Age={max_age_secs}; HttpOnly; SameSite=Lax{secure}",
        login_cookie_name(upstream_state)
    )
}

/// The value of cookie `name` in the request.
pub(super) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(key, value)| (key == name).then_some(value))
}

/// Where the app gets its answer: its redirect URI with these parameters,
/// `state`, and our `issuer` (RFC 9207, so that an app with several providers
/// knows which one answered).
fn redirect_to_app(
    issuer: &str,
    redirect_uri: &str,
    state: Option<&str>,
    params: &[(&str, &str)],
) -> Response {
    let Ok(mut url) = Url::parse(redirect_uri) else {
        // Config checked every registered redirect URI parses.
        return error_page(StatusCode::INTERNAL_SERVER_ERROR, "bad redirect URI");
    };
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in params {
            query.append_pair(name, value);
        }
        if let Some(state) = state {
            query.append_pair("state", state);
        }
        query.append_pair("iss", issuer);
    }
    // The URL may carry a code: no cache may keep it.
    (
        [(header::CACHE_CONTROL, "no-store")],
        Redirect::to(url.as_str()),
    )
        .into_response()
}

fn app_error(
    issuer: &str,
    redirect_uri: &str,
    state: Option<&str>,
    error: ErrorCode,
    description: &str,
) -> Response {
    redirect_to_app(
        issuer,
        redirect_uri,
        state,
        &[
            ("error", error.as_str()),
            ("error_description", description),
        ],
    )
}

/// `prompt` and `max_age` checked (OIDC Core §3.1.2.1), and `acr_values`
/// as sent.
fn reauthentication(params: &AuthorizeParams) -> Result<Reauthentication, String> {
    let prompt = params.prompt.as_deref().filter(|p| !p.is_empty());
    if let Some(prompt) = prompt {
        let values: Vec<&str> = prompt.split(' ').collect();
        if let Some(unknown) = values.iter().find(|v| !PROMPT_VALUES.contains(v)) {
            return Err(format!(
                "prompt value `{unknown}` is not one of none, login, consent, select_account"
            ));
        }
        if values.len() > 1 && values.contains(&"none") {
            return Err("prompt=none cannot be combined with other values".into());
        }
    }
    let max_age = match params.max_age.as_deref() {
        None => None,
        Some(text) => Some(
            text.parse::<u64>()
                .map_err(|_| "max_age must be a number of seconds".to_owned())?,
        ),
    };
    Ok(Reauthentication {
        prompt: prompt.map(str::to_owned),
        max_age,
        acr_values: params
            .acr_values
            .as_deref()
            .map(str::trim)
            .filter(|values| !values.is_empty())
            .map(str::to_owned),
    })
}

pub(crate) async fn authorize(
    State(service): State<Arc<Service>>,
    Query(params): Query<AuthorizeParams>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    service.start_login(params, query)
}

impl Service {
    /// The client the request names and its redirect URI, exactly as
    /// registered; else what the error page says. Until both are known good
    /// the user gets a page, never a redirect: an open redirector would leak
    /// codes and errors.
    fn trusted_redirect<'s, 'p>(
        &'s self,
        params: &'p AuthorizeParams,
    ) -> Result<(&'s ClientConfig, &'p str), &'static str> {
        let Some(client) = params.client_id.as_deref().and_then(|id| self.client(id)) else {
            return Err("Unknown client.");
        };
        let Some(redirect_uri) = params.redirect_uri.as_deref().filter(|uri| {
            client
                .redirect_uris
                .iter()
                .any(|registered| registered == uri)
        }) else {
            return Err("The redirect URI is not registered for this client.");
        };
        Ok((client, redirect_uri))
    }

    /// `query` is every parameter of the request, for the actions to see.
    fn start_login(&self, params: AuthorizeParams, query: Vec<(String, String)>) -> Response {
        let (client, redirect_uri) = match self.trusted_redirect(&params) {
            Ok(trusted) => trusted,
            Err(why) => return error_page(StatusCode::BAD_REQUEST, why),
        };
        // An oversized state is not echoed back: it is not stored either.
        if params
            .state
            .as_ref()
            .is_some_and(|s| s.len() > MAX_STATE_LEN)
        {
            return app_error(
                self.issuer(),
                redirect_uri,
                None,
                ErrorCode::InvalidRequest,
                &format!("state is longer than {MAX_STATE_LEN} bytes"),
            );
        }
        let state = params.state.as_deref();
        let fail = |error: ErrorCode, description: &str| {
            app_error(self.issuer(), redirect_uri, state, error, description)
        };
        let checked = match self.check_request(client, &params) {
            Ok(checked) => checked,
            Err(answer) => return fail(answer.error, &answer.description),
        };
        let Some(upstream) = self.upstreams.get(&checked.connection) else {
            return fail(ErrorCode::ServerError, "no connection is configured");
        };
        let upstream_state = random_token();
        let pending = self.pending_login(client, redirect_uri, &params, query, checked);
        let url = match upstream.authorization_url(
            &self.callback_uri(),
            &upstream_state,
            &pending.upstream_nonce,
            &pkce_challenge(&pending.upstream_verifier),
            &pending.reauthentication,
        ) {
            Ok(url) => url,
            Err(error) => {
                let answer = OAuthError::server_error(error);
                return fail(answer.error, &answer.description);
            }
        };
        let Ok(sealed) = self.login_sealer.seal(&upstream_state, &pending) else {
            return fail(
                ErrorCode::InvalidRequest,
                "the sign-in request is too large",
            );
        };
        self.metrics.login_started();
        let set_cookie = login_cookie(
            self.issuer(),
            &upstream_state,
            &sealed,
            super::PENDING_LOGIN_TTL.as_secs(),
        );
        (
            [(header::SET_COOKIE, set_cookie)],
            Redirect::to(url.as_str()),
        )
            .into_response()
    }

    /// The login to finish at `/callback`: what the app asked, and the
    /// nonce and verifier the upstream's answer must match.
    fn pending_login(
        &self,
        client: &ClientConfig,
        redirect_uri: &str,
        params: &AuthorizeParams,
        query: Vec<(String, String)>,
        checked: CheckedRequest,
    ) -> PendingLogin {
        let now = self.clock.now();
        let transaction = Transaction {
            redirect_uri: Some(redirect_uri.to_owned()),
            response_type: params.response_type.clone(),
            ui_locales: params.ui_locales.clone(),
            acr_values: params.acr_values.clone(),
            login_hint: params.login_hint.clone(),
            // Without what the login keeps anyway (put back at the
            // callback), so the sealed cookie does not carry them twice.
            query: query
                .into_iter()
                .filter(|(name, _)| !KEPT_PARAMETERS.contains(&name.as_str()))
                .map(|(name, value)| (name, serde_json::Value::String(value)))
                .collect(),
        };
        PendingLogin {
            transaction,
            client_id: client.client_id.clone(),
            redirect_uri: redirect_uri.to_owned(),
            app_state: params.state.clone(),
            app_nonce: params.nonce.clone(),
            code_challenge: params.code_challenge.clone(),
            scopes: checked.scopes,
            audience: params.audience.clone(),
            connection: checked.connection,
            upstream_nonce: random_token(),
            upstream_verifier: random_token(),
            started_at: now,
            expires_at: now + super::PENDING_LOGIN_TTL.as_secs(),
            reauthentication: checked.reauthentication,
        }
    }

    /// The checks of an authorization request once its client and redirect
    /// URI are known good, so that a refusal goes back to the app (RFC 6749
    /// §4.1.2.1): sizes, response type, reauthentication, PKCE, scopes,
    /// audience and connection.
    fn check_request(
        &self,
        client: &ClientConfig,
        params: &AuthorizeParams,
    ) -> Result<CheckedRequest, OAuthError> {
        if params
            .nonce
            .as_ref()
            .is_some_and(|n| n.len() > MAX_NONCE_LEN)
        {
            return Err(refused(
                ErrorCode::InvalidRequest,
                &format!("nonce is longer than {MAX_NONCE_LEN} bytes"),
            ));
        }

        if params.response_type.as_deref() != Some("code") {
            return Err(refused(
                ErrorCode::UnsupportedResponseType,
                "only response_type=code is supported",
            ));
        }
        let reauthentication = match reauthentication(params) {
            Ok(reauthentication) => reauthentication,
            Err(why) => return Err(refused(ErrorCode::InvalidRequest, &why)),
        };
        check_pkce(client, params)?;
        let scopes = requested_scopes(client, params)?;
        if let Some(audience) = &params.audience
            && client.audience.as_ref() != Some(audience)
            && !client.allowed_audiences.contains(audience)
        {
            return Err(refused(
                ErrorCode::InvalidRequest,
                &format!("audience `{audience}` is not allowed for this client"),
            ));
        }
        let connection = self.chosen_connection(params)?;
        Ok(CheckedRequest {
            scopes,
            reauthentication,
            connection,
        })
    }

    /// The connection the request names, or the only one there is.
    fn chosen_connection(&self, params: &AuthorizeParams) -> Result<String, OAuthError> {
        match params.connection.as_deref() {
            Some(name) if self.upstreams.contains_key(name) => Ok(name.to_owned()),
            Some(name) => Err(refused(
                ErrorCode::InvalidRequest,
                &format!("unknown connection `{name}`"),
            )),
            None if self.upstreams.len() == 1 => match self.upstreams.keys().next() {
                Some(name) => Ok(name.clone()),
                None => Err(refused(
                    ErrorCode::ServerError,
                    "no connection is configured",
                )),
            },
            None => Err(refused(
                ErrorCode::InvalidRequest,
                "several connections: choose one with `connection`",
            )),
        }
    }

    fn callback_uri(&self) -> String {
        format!("{}/callback", self.issuer())
    }
}

/// What a valid authorization request asks for.
struct CheckedRequest {
    scopes: Vec<String>,
    reauthentication: Reauthentication,
    connection: String,
}

/// PKCE as RFC 7636 has it, and required of public clients.
fn check_pkce(client: &ClientConfig, params: &AuthorizeParams) -> Result<(), OAuthError> {
    match (
        &params.code_challenge,
        params.code_challenge_method.as_deref(),
    ) {
        (None, _) if client.client_secret.is_none() => Err(refused(
            ErrorCode::InvalidRequest,
            "public clients must use PKCE (code_challenge)",
        )),
        (Some(challenge), Some("S256")) if !is_valid_s256_challenge(challenge) => Err(refused(
            ErrorCode::InvalidRequest,
            "code_challenge is not an S256 challenge",
        )),
        (Some(_), Some("S256")) | (None, _) => Ok(()),
        (Some(_), _) => Err(refused(
            ErrorCode::InvalidRequest,
            "code_challenge_method must be S256",
        )),
    }
}

/// The longest `scope` parameter read: `/authorize` is open to anyone, so
/// its work is bounded before it starts (a client's allowed scopes, each
/// once, fit easily).
const MAX_SCOPE_PARAM_LEN: usize = 4096;

/// The requested scopes, each once, in order; `openid` among them and each
/// allowed for the client. One pass over a bounded parameter.
fn requested_scopes(
    client: &ClientConfig,
    params: &AuthorizeParams,
) -> Result<Vec<String>, OAuthError> {
    let requested = params.scope.as_deref().unwrap_or("openid");
    if requested.len() > MAX_SCOPE_PARAM_LEN {
        return Err(refused(
            ErrorCode::InvalidScope,
            &format!("scope is longer than {MAX_SCOPE_PARAM_LEN} bytes"),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    let mut scopes: Vec<String> = Vec::new();
    for scope in requested.split_ascii_whitespace() {
        if !client.allowed_scopes.iter().any(|allowed| allowed == scope) {
            return Err(refused(
                ErrorCode::InvalidScope,
                &format!("scope `{scope}` is not allowed for this client"),
            ));
        }
        if seen.insert(scope) {
            scopes.push(scope.to_owned());
        }
    }
    if !seen.contains("openid") {
        return Err(refused(
            ErrorCode::InvalidScope,
            "the openid scope is required",
        ));
    }
    Ok(scopes)
}

/// A refusal of an authorization request, sent to the app's redirect URI.
fn refused(error: ErrorCode, description: &str) -> OAuthError {
    OAuthError::new(StatusCode::BAD_REQUEST, error, description)
}

/// The login the chain runs for a sign-in: what the app asked and what the
/// upstream answered. The chain reads the stored user once the upstream or
/// the profile has named them.
fn sign_in_login(
    pending: &PendingLogin,
    tokens: UpstreamLogin,
    auth_time: Option<u64>,
    request: RequestInfo,
) -> Login {
    Login {
        connection: pending.connection.clone(),
        client_id: pending.client_id.clone(),
        scopes: pending.scopes.clone(),
        audience: pending.audience.clone(),
        nonce: pending.app_nonce.clone(),
        request,
        transaction: transaction(pending),
        upstream: tokens,
        user: StoredUser::default(),
        profile: None,
        refresh: false,
        auth_time,
    }
}

/// The authorization request's parameters the pending login keeps in its
/// own fields.
const KEPT_PARAMETERS: [&str; 3] = ["state", "nonce", "code_challenge"];

/// The app's request as the actions see it: its parameters whole again.
fn transaction(pending: &PendingLogin) -> Transaction {
    let mut transaction = pending.transaction.clone();
    for (name, value) in KEPT_PARAMETERS.into_iter().zip([
        &pending.app_state,
        &pending.app_nonce,
        &pending.code_challenge,
    ]) {
        if let Some(value) = value {
            transaction
                .query
                .insert(name.to_owned(), serde_json::Value::String(value.clone()));
        }
    }
    transaction
}

/// The name of a `Host` header's value, without its port.
/// What actions see of the HTTP request from `caller` (`event.request`).
pub(crate) fn request_info(caller: IpAddr, headers: &HeaderMap) -> RequestInfo {
    let header_text = |name| {
        headers
            .get(name)
            .and_then(|v: &header::HeaderValue| v.to_str().ok())
    };
    RequestInfo {
        ip: Some(caller.to_string()),
        user_agent: header_text(header::USER_AGENT).map(str::to_owned),
        hostname: header_text(header::HOST).map(|host| host_name(host).to_owned()),
        language: header_text(header::ACCEPT_LANGUAGE).and_then(first_language),
    }
}

fn host_name(host: &str) -> &str {
    match host.rsplit_once(':') {
        // `[::1]:8080`, or a name with a port; a bare IPv6 address has no port.
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.ends_with(':') => {
            name
        }
        _ => host,
    }
}

/// The first language of an `Accept-Language` value (`en-GB` of
/// `en-GB,en;q=0.9`).
fn first_language(accept: &str) -> Option<String> {
    accept
        .split(',')
        .filter_map(|tag| tag.split(';').next())
        .map(str::trim)
        .find(|tag| !tag.is_empty() && *tag != "*")
        .map(str::to_owned)
}

/// A callback the upstream's answer fails: the app gets `error`, the log
/// and the audit row `detail`.
struct Refusal {
    error: ErrorCode,
    detail: String,
}

impl Refusal {
    fn new(error: ErrorCode, detail: impl Into<String>) -> Self {
        Refusal {
            error,
            detail: detail.into(),
        }
    }
}

/// What a callback got from the upstream, verified.
struct UpstreamLoginDone {
    tokens: UpstreamLogin,
    auth_time: Option<u64>,
}

/// What the upstream sends back (RFC 6749 §4.1.2).
#[derive(Debug, Deserialize)]
pub(crate) struct CallbackParams {
    code: Option<String>,
    /// RFC 9207: the issuer of the response.
    iss: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

pub(crate) async fn callback(
    State(service): State<Arc<Service>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(params): Query<CallbackParams>,
) -> Response {
    let client = service.caller_address(peer.ip(), &headers);
    let request = request_info(client, &headers);
    let Some(upstream_state) = params.state.clone() else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "The sign-in came back without its state.",
        );
    };
    let sealed_login = cookie(&headers, &login_cookie_name(&upstream_state)).map(str::to_owned);
    let response = service.finish_login(params, sealed_login, request).await;
    // The pending login is spent either way. Appended: a sign-in an action
    // sends to a page sets its own cookie.
    let expire = login_cookie(service.issuer(), &upstream_state, "", 0);
    (AppendHeaders([(header::SET_COOKIE, expire)]), response).into_response()
}

impl Service {
    async fn finish_login(
        &self,
        params: CallbackParams,
        sealed_login: Option<String>,
        request: RequestInfo,
    ) -> Response {
        let pending = params
            .state
            .as_deref()
            .zip(sealed_login)
            .and_then(|(state, sealed)| {
                let pending = self.login_sealer.open(state, &sealed, self.clock.now())?;
                Some((state, pending))
            });
        let Some((state, pending)) = pending else {
            tracing::info!("a callback without a valid sign-in cookie; refused");
            return error_page(
                StatusCode::BAD_REQUEST,
                "This sign-in is unknown, has expired, or did not start in this browser. \
                 Start again from the application.",
            );
        };
        if let Err(refused) = self.spend(state, &pending).await {
            return refused;
        }
        let correlation_id = super::correlation_id();
        let correlation_id = correlation_id.as_str();
        let verified = match self.upstream_login(&pending, &params).await {
            Ok(verified) => verified,
            Err(Refusal { error, detail }) => {
                return self
                    .fail_before_pipeline(&pending, correlation_id, error, &detail)
                    .await;
            }
        };
        let UpstreamLoginDone { tokens, auth_time } = verified;
        let login = sign_in_login(&pending, tokens, auth_time, request);
        self.sign_in(&pending, ChainRun::Start(&login), correlation_id)
            .await
    }

    /// Runs a sign-in's chain (from the start, or back at `/continue`) and
    /// answers the browser: the app's redirect URI with a code or an error,
    /// or the page an action sends the user to.
    pub(crate) async fn sign_in(
        &self,
        pending: &PendingLogin,
        run: ChainRun<'_>,
        correlation_id: &str,
    ) -> Response {
        let code = random_token();
        let to_issue = CodeToIssue {
            code: &code,
            pending,
        };
        let (redirect_uri, app_state) = (&pending.redirect_uri, pending.app_state.as_deref());
        match self.run_login(run, correlation_id, Some(to_issue)).await {
            Ok(LoginEnd::Minted(_)) => {
                redirect_to_app(self.issuer(), redirect_uri, app_state, &[("code", &code)])
            }
            Ok(LoginEnd::Redirected(redirected)) => self.suspend(pending, *redirected).await,
            Err(failure) => {
                let answer = OAuthError::from_failure(&failure, correlation_id);
                let error = answer.error;
                app_error(
                    self.issuer(),
                    redirect_uri,
                    app_state,
                    error,
                    &answer.description,
                )
            }
        }
    }

    /// Marks `pending` used, for every host of the deployment, before
    /// anything else happens: its cookie stays valid until it expires, and a
    /// replayed callback must neither reach the upstream's token endpoint
    /// (with this service's client secret) nor write to the audit trail.
    async fn spend(&self, state: &str, pending: &PendingLogin) -> Result<(), Response> {
        match self
            .store
            .spend_pending_login(state, pending.expires_at)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => {
                tracing::info!(
                    client = pending.client_id,
                    "a callback of a sign-in already used; refused"
                );
                Err(error_page(
                    StatusCode::BAD_REQUEST,
                    "This sign-in has already been used. Start again from the application.",
                ))
            }
            Err(error) => {
                tracing::error!(%error, "cannot mark the sign-in used");
                Err(error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The sign-in cannot be completed now. Start again from the application.",
                ))
            }
        }
    }

    /// The upstream's side of a callback: its issuer (RFC 9207), its error,
    /// the code exchanged for verified tokens, their subject (an OpenID
    /// Connect upstream's must name one) and whether the upstream
    /// authenticated as recently as the app asked.
    async fn upstream_login(
        &self,
        pending: &PendingLogin,
        params: &CallbackParams,
    ) -> Result<UpstreamLoginDone, Refusal> {
        let Some(upstream) = self.upstreams.get(&pending.connection) else {
            let detail = "the connection is gone";
            return Err(Refusal::new(ErrorCode::ServerError, detail));
        };
        if let Err(detail) = upstream.check_response_issuer(params.iss.as_deref()) {
            return Err(Refusal::new(ErrorCode::ServerError, detail));
        }
        if let Some(error) = &params.error {
            // The caller writes these: the log and the audit row keep a
            // bounded, single-line cut of them.
            let description = params.error_description.as_deref().unwrap_or("");
            let detail = format!(
                "the identity provider answered {}: {}",
                one_line_cut(error, MAX_UPSTREAM_ERROR_CHARS),
                one_line_cut(description, MAX_UPSTREAM_DESCRIPTION_CHARS)
            );
            // An interaction code goes to the app as it is (the app must
            // send the user to interact); any other is a refusal.
            let answer = ErrorCode::interaction(error).unwrap_or(ErrorCode::AccessDenied);
            return Err(Refusal::new(answer, detail));
        }
        let Some(code) = params.code.as_deref() else {
            let detail = "the identity provider sent no code";
            return Err(Refusal::new(ErrorCode::ServerError, detail));
        };
        let started = std::time::Instant::now();
        let exchanged = upstream
            .exchange_code(
                code,
                &pending.upstream_verifier,
                &self.callback_uri(),
                &pending.upstream_nonce,
            )
            .await;
        self.metrics
            .upstream_exchange(&pending.connection, exchanged.is_ok(), started.elapsed());
        let tokens = match exchanged {
            Ok(tokens) => tokens,
            Err(error) => {
                let detail = format!("upstream login failed: {error}");
                return Err(Refusal::new(ErrorCode::ServerError, detail));
            }
        };
        if upstream.names_the_user()
            && !tokens
                .id_token_claims
                .get("sub")
                .is_some_and(serde_json::Value::is_string)
        {
            let detail = "the upstream id token has no subject";
            return Err(Refusal::new(ErrorCode::ServerError, detail));
        }
        // When the user really authenticated, if the upstream says so.
        let upstream_auth_time = tokens
            .id_token_claims
            .get("auth_time")
            .and_then(serde_json::Value::as_u64);
        if let Err(detail) =
            pending
                .reauthentication
                .check(upstream_auth_time, pending.started_at, self.clock.now())
        {
            return Err(Refusal::new(ErrorCode::LoginRequired, detail));
        }
        Ok(UpstreamLoginDone {
            tokens,
            auth_time: upstream_auth_time,
        })
    }

    /// A sign-in that failed before the plugins ran: the detail goes to the
    /// log and the audit row under `correlation_id`, the app gets `error`
    /// with a short description naming the reference.
    async fn fail_before_pipeline(
        &self,
        pending: &PendingLogin,
        correlation_id: &str,
        error: ErrorCode,
        detail: &str,
    ) -> Response {
        tracing::warn!(
            connection = pending.connection,
            correlation_id,
            detail = ?detail,
            "sign-in failed before the plugins ran"
        );
        self.record_failed_attempt(
            &pending.client_id,
            &pending.connection,
            detail,
            correlation_id,
        )
        .await;
        let description = match error {
            ErrorCode::AccessDenied => {
                format!("the identity provider refused the sign-in (reference {correlation_id})")
            }
            ErrorCode::ServerError => super::failed_login_description(correlation_id),
            _ => format!(
                "the user must sign in again at the identity provider (reference {correlation_id})"
            ),
        };
        app_error(
            self.issuer(),
            &pending.redirect_uri,
            pending.app_state.as_deref(),
            error,
            &description,
        )
    }
}
