//! `/oauth/token` (an app trades a code or a refresh token for tokens) and
//! `/userinfo` (an app reads the user with an access token).

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

mod client_credentials;

use axum::Form;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::{Map, Value, json};

use super::pending::PendingLogin;
use super::protocol::{
    ErrorCode, authorization_credentials, form_urldecode, is_valid_code_verifier, pkce_challenge,
    random_token,
};
use super::refresh_grant::RefreshGrant;
use super::{ChainRun, OAuthError, Service, secrets_equal};
use claimsmith_config::{ClientConfig, GrantType};
use claimsmith_pipeline::{
    Login, LoginFailure, MintedLogin, RequestInfo, UpstreamLogin, UserLookup,
    standard_profile_claims,
};
use claimsmith_store::Redemption;

/// A code waiting for the app to exchange it, with the login's tokens.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct IssuedCode<'m> {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) code_challenge: Option<String>,
    pub(crate) upstream_subject: String,
    pub(crate) connection: String,
    pub(crate) audience: Option<String>,
    /// The scopes the app asked for and was allowed, before the actions ran:
    /// each refresh runs the actions again from these.
    pub(crate) requested_scopes: Vec<String>,
    /// Borrowed while sealed, owned once opened.
    pub(crate) minted: Cow<'m, MintedLogin>,
}

impl IssuedCode<'_> {
    /// Sealed under a key derived from `code` itself: the database keeps
    /// the tokens a code stands for, but only the code's holder can open
    /// them.
    pub(crate) fn seal(&self, code: &str) -> Result<String, serde_json::Error> {
        let plaintext = serde_json::to_vec(self)?;
        Ok(code_sealer(code).seal(b"", &plaintext))
    }

    fn open(code: &str, sealed: &str) -> Option<IssuedCode<'static>> {
        let plaintext = code_sealer(code).open(b"", sealed)?;
        serde_json::from_slice(&plaintext).ok()
    }
}

/// The code a sign-in answers its app with (`code`, random) for the login
/// `pending` started: stored with the login's audit row, so that the trail
/// says minted only when the code is there to exchange.
pub(crate) struct CodeToIssue<'a> {
    pub(crate) code: &'a str,
    pub(crate) pending: &'a PendingLogin,
}

impl CodeToIssue<'_> {
    /// `minted`, as the code's exchange will give it, sealed under the code.
    pub(crate) fn seal(&self, minted: &MintedLogin) -> Result<String, serde_json::Error> {
        let pending = self.pending;
        let issued = IssuedCode {
            client_id: pending.client_id.clone(),
            redirect_uri: pending.redirect_uri.clone(),
            code_challenge: pending.code_challenge.clone(),
            upstream_subject: minted.upstream_subject.clone(),
            connection: pending.connection.clone(),
            audience: pending.audience.clone(),
            requested_scopes: pending.scopes.clone(),
            minted: Cow::Borrowed(minted),
        };
        issued.seal(self.code)
    }
}

/// Codes are 256 random bits (43 characters), a key-encryption key's worth.
/// An authorization-code exchange (RFC 6749 §4.1.3) by a client already
/// authenticated.
pub(super) struct CodeExchange<'a> {
    pub(super) client: &'a ClientConfig,
    pub(super) code: &'a str,
    pub(super) redirect_uri: Option<&'a str>,
    pub(super) code_verifier: Option<&'a str>,
}

impl CodeExchange<'_> {
    /// The code was issued to this client, for this redirect URI, and the
    /// verifier matches its PKCE challenge.
    fn check(&self, issued: &IssuedCode<'_>) -> Result<(), OAuthError> {
        if issued.client_id != self.client.client_id {
            return Err(OAuthError::invalid_grant(
                "the code was issued to another client",
            ));
        }
        still_allowed(
            self.client,
            GrantType::AuthorizationCode,
            &issued.requested_scopes,
        )?;
        if self.redirect_uri != Some(issued.redirect_uri.as_str()) {
            return Err(OAuthError::invalid_grant(
                "redirect_uri does not match the authorization request",
            ));
        }
        match (&issued.code_challenge, self.code_verifier) {
            (Some(_), None) => Err(OAuthError::invalid_grant("code_verifier is missing")),
            (Some(challenge), Some(verifier))
                if !is_valid_code_verifier(verifier) || pkce_challenge(verifier) != *challenge =>
            {
                Err(OAuthError::invalid_grant(
                    "code_verifier does not match the challenge",
                ))
            }
            // A verifier for a code issued without a challenge is a
            // downgrade attempt (RFC 9700 §2.1.1).
            (None, Some(_)) => Err(OAuthError::invalid_grant(
                "the authorization request had no code_challenge",
            )),
            _ => Ok(()),
        }
    }
}

/// A code or refresh token is used under the client's config as it is now,
/// not as it was when the login began: a restart with a narrower config
/// (a grant type or a scope taken away) holds for the grants already out.
fn still_allowed(
    client: &ClientConfig,
    grant: GrantType,
    scopes: &[String],
) -> Result<(), OAuthError> {
    if !client.allows(grant) {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::UnauthorizedClient,
            format!("this client may no longer use the {} grant", grant.as_str()),
        ));
    }
    match scopes.iter().find(|s| !client.allowed_scopes.contains(s)) {
        Some(scope) => Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidScope,
            format!("scope `{scope}` is no longer allowed to this client"),
        )),
        None => Ok(()),
    }
}

fn code_sealer(code: &str) -> claimsmith_tokens::sealing::Sealer {
    claimsmith_tokens::sealing::KeyEncryptionKey::from_secret(code).sealer("authorization code v1")
}

/// A request to the token or revocation endpoint: what authenticates its
/// client, and the caller's address, by which failures are counted.
pub(super) struct ClientRequest {
    headers: HeaderMap,
    form: HashMap<String, String>,
    caller: IpAddr,
}

impl ClientRequest {
    fn new(
        service: &Service,
        peer: SocketAddr,
        headers: HeaderMap,
        form: HashMap<String, String>,
    ) -> Self {
        let caller = service.caller_address(peer.ip(), &headers);
        ClientRequest {
            headers,
            form,
            caller,
        }
    }
}

pub(crate) async fn token(
    State(service): State<Arc<Service>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    // The request's one reading of the clock: every expiry it checks or
    // sets is against this instant.
    let now = service.clock.now();
    let request = ClientRequest::new(&service, peer, headers, form);
    let answer = match request.form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => service.exchange_code(&request, now).await,
        Some("refresh_token") => service.refresh(&request, now).await,
        Some("client_credentials") => service.client_credentials(&request, now).await,
        Some(other) => Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::UnsupportedGrantType,
            format!("grant_type `{other}` is not supported"),
        )),
        None => Err(OAuthError::invalid_request("grant_type is missing")),
    };
    match answer {
        Ok(body) => (
            [
                (header::CACHE_CONTROL, "no-store"),
                (header::PRAGMA, "no-cache"),
            ],
            axum::Json(body),
        )
            .into_response(),
        Err(error) => error.into_response(),
    }
}

impl Service {
    /// `client_secret_basic`, `client_secret_post`, or a public client's id.
    fn authenticate_client(&self, request: &ClientRequest) -> Result<&ClientConfig, OAuthError> {
        let (headers, form) = (&request.headers, &request.form);
        let (client_id, secret) = match headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| authorization_credentials(v, "Basic"))
        {
            Some(encoded) => {
                let decoded = STANDARD
                    .decode(encoded.trim())
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
                let (id, secret) = decoded
                    .split_once(':')
                    .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
                let malformed = || OAuthError::invalid_client("malformed Basic credentials");
                (
                    form_urldecode(id).ok_or_else(malformed)?,
                    Some(form_urldecode(secret).ok_or_else(malformed)?),
                )
            }
            None => (
                form.get("client_id")
                    .cloned()
                    .ok_or_else(|| OAuthError::invalid_client("no client authentication"))?,
                form.get("client_secret").cloned(),
            ),
        };
        let client = self
            .client(&client_id)
            .ok_or_else(|| OAuthError::invalid_client("unknown client"))?;
        let Some(expected) = &client.client_secret else {
            return Ok(client);
        };
        let caller = request.caller;
        if let Some(wait) = self
            .failed_authentications
            .locked_for(&client.client_id, caller)
        {
            return Err(OAuthError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::InvalidClient,
                format!(
                    "too many failed authentications: try again in {} s",
                    wait.as_secs() + 1
                ),
            ));
        }
        match secret {
            Some(given) if secrets_equal(expected.expose(), &given) => Ok(client),
            _ => {
                self.failed_authentications
                    .record_failure(&client.client_id, caller);
                Err(OAuthError::invalid_client("client authentication failed"))
            }
        }
    }

    async fn exchange_code(&self, request: &ClientRequest, now: u64) -> Result<Value, OAuthError> {
        let form = &request.form;
        let exchange = CodeExchange {
            client: self.authenticate_client(request)?,
            code: required(form, "code")?,
            redirect_uri: form.get("redirect_uri").map(String::as_str),
            code_verifier: form.get("code_verifier").map(String::as_str),
        };
        self.redeem_code(&exchange, now).await
    }

    /// Tokens for an authorization code (RFC 6749 §4.1.3), for the client
    /// that has been authenticated: the token endpoint's, or the console
    /// redeeming its own sign-in.
    pub(super) async fn redeem_code(
        &self,
        exchange: &CodeExchange<'_>,
        now: u64,
    ) -> Result<Value, OAuthError> {
        // Redeemed whatever follows: a code is tried once, at one host.
        let family = random_token();
        let issued = self.redeemed_code(exchange.code, &family, now).await?;
        exchange.check(&issued)?;
        let grant = RefreshGrant {
            family,
            user_id: issued.minted.user.user_id.clone(),
            upstream_subject: issued.upstream_subject,
            connection: issued.connection,
            client_id: issued.client_id,
            scopes: issued.requested_scopes,
            audience: issued.audience,
            auth_time: issued.minted.auth_time,
            authentication: issued.minted.authentication.clone(),
            family_expires_at: now + self.config().server.refresh_token_lifetime_secs,
        };
        self.token_response(&issued.minted, grant, None, now).await
    }

    /// The login sealed under `code`, spent by this call; a code used twice
    /// revokes what its first use got (RFC 6749 §4.1.2: it leaked).
    async fn redeemed_code(
        &self,
        code: &str,
        family: &str,
        now: u64,
    ) -> Result<IssuedCode<'static>, OAuthError> {
        let redemption = self
            .timed("redeem_code", self.store.redeem_code(code, family, now))
            .await
            .map_err(OAuthError::server_error)?;
        let issued = match redemption {
            Redemption::Redeemed { sealed } => IssuedCode::open(code, &sealed),
            Redemption::Replayed { family } => {
                tracing::warn!(
                    "an authorization code was used twice; its refresh tokens are revoked"
                );
                if let Some(family) = family {
                    let until = now + self.config().server.refresh_token_lifetime_secs;
                    self.store
                        .revoke_refresh_family(&family, until)
                        .await
                        .map_err(OAuthError::server_error)?;
                }
                None
            }
            Redemption::Unknown => None,
        };
        issued.ok_or_else(|| OAuthError::invalid_grant("the code is unknown, used or expired"))
    }

    async fn refresh(&self, request: &ClientRequest, now: u64) -> Result<Value, OAuthError> {
        let form = &request.form;
        let client = self.authenticate_client(request)?;
        let token = required(form, "refresh_token")?;
        let stored = self
            .timed(
                "consume_refresh_token",
                self.store.consume_refresh_token(
                    token,
                    &client.client_id,
                    now,
                    self.config().server.refresh_token_reuse_grace_secs,
                ),
            )
            .await
            .map_err(OAuthError::server_error)?
            .ok_or_else(|| {
                OAuthError::invalid_grant("the refresh token is unknown, used or expired")
            })?;
        let grant = self.refresh_grants.open(token, &stored).ok_or_else(|| {
            tracing::warn!(
                family = %stored.family,
                "a refresh token's grant does not open: written in the database by someone \
                 else, or stored before grants were sealed"
            );
            OAuthError::invalid_grant("the refresh token is unknown, used or expired")
        })?;
        if grant.client_id != client.client_id {
            return Err(OAuthError::invalid_grant(
                "the refresh token was issued to another client",
            ));
        }
        still_allowed(client, GrantType::RefreshToken, &grant.scopes)?;
        let lookup = UserLookup {
            user_id: &grant.user_id,
            upstream_roles: None,
            // The audience the chain gives the token: the grant's, else
            // the client's default.
            permissions_for: self
                .config()
                .permissions_for(grant.audience.as_deref().or(client.audience.as_deref())),
        };
        let (stored, authorization) = super::read_user(&self.store, &self.metrics, lookup)
            .await
            .map_err(OAuthError::server_error)?;
        let mut stored =
            stored.ok_or_else(|| OAuthError::invalid_grant("the user no longer exists"))?;
        stored.user.roles = authorization.roles;
        stored.user.permissions = authorization.permissions;
        // The actions run again, as Auth0 does on refresh, on the stored
        // profile: there is no upstream login to fetch a new one from.
        let login = Login {
            connection: grant.connection.clone(),
            client_id: grant.client_id.clone(),
            scopes: grant.scopes.clone(),
            audience: grant.audience.clone(),
            nonce: None,
            request: RequestInfo::default(),
            transaction: Default::default(),
            upstream: UpstreamLogin {
                access_token: String::new(),
                id_token: String::new(),
                id_token_claims: remembered_upstream_claims(&grant),
            },
            user: stored.user,
            profile: Some(stored.profile),
            refresh: true,
            auth_time: Some(grant.auth_time),
        };
        let correlation_id = super::correlation_id();
        let refreshed = self
            .run_login(ChainRun::Start(&login), &correlation_id, None)
            .await
            .map_err(|failure| match failure {
                // RFC 6749 §5.2 has no access_denied at the token endpoint.
                LoginFailure::Denied { reason, .. } => OAuthError::invalid_grant(reason),
                other => OAuthError::from_failure(&other, &correlation_id),
            })?;
        // A refresh has no browser to send: its actions' api.redirect refuses.
        let Some(minted) = refreshed.minted() else {
            tracing::error!(correlation_id, "a refresh ended in a redirect; refused");
            return Err(OAuthError::from_failure(
                &LoginFailure::Storage,
                &correlation_id,
            ));
        };
        self.token_response(&minted, grant, Some(token), now).await
    }

    /// The token response; a refresh token (same family) when `offline_access`
    /// was granted.
    async fn token_response(
        &self,
        minted: &MintedLogin,
        grant: RefreshGrant,
        rotated_from: Option<&str>,
        now: u64,
    ) -> Result<Value, OAuthError> {
        let mut body = json!({
            "access_token": minted.tokens.access_token,
            "id_token": minted.tokens.id_token,
            "token_type": "Bearer",
            "expires_in": minted.tokens.expires_in,
            "scope": minted.scopes.join(" "),
        });
        let family_expires_at = grant.family_expires_at;
        let may_refresh = self
            .client(&grant.client_id)
            .is_some_and(|client| client.allows(GrantType::RefreshToken));
        if may_refresh
            && minted.scopes.iter().any(|s| s == "offline_access")
            && family_expires_at > now
        {
            let refresh_token = random_token();
            let stored = self
                .refresh_grants
                .seal(&refresh_token, &grant)
                .map_err(OAuthError::server_error)?;
            self.timed(
                "insert_refresh_token",
                self.store.insert_refresh_token(
                    &refresh_token,
                    rotated_from,
                    &stored,
                    family_expires_at,
                ),
            )
            .await
            .map_err(OAuthError::server_error)?;
            body["refresh_token"] = Value::String(refresh_token);
        }
        Ok(body)
    }
}

/// RFC 7009: an app revokes a refresh token, and with it its family. An
/// unknown token, an access token (a JWT, which lives out its short life) or
/// another client's token is answered 200 too, so the answer tells nothing.
pub(crate) async fn revoke(
    State(service): State<Arc<Service>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let request = ClientRequest::new(&service, peer, headers, form);
    let answer = async {
        let client = service.authenticate_client(&request)?;
        let token = required(&request.form, "token")?;
        let revoked = service
            .store
            .revoke_refresh_token(token, &client.client_id)
            .await
            .map_err(OAuthError::server_error)?;
        if revoked {
            tracing::info!(client = client.client_id, "refresh token family revoked");
        }
        Ok::<_, OAuthError>(())
    };
    match answer.await {
        Ok(()) => (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")]).into_response(),
        Err(error) => error.into_response(),
    }
}

pub(crate) async fn userinfo(State(service): State<Arc<Service>>, headers: HeaderMap) -> Response {
    match service.userinfo(&headers).await {
        Ok(claims) => ([(header::CACHE_CONTROL, "no-store")], axum::Json(claims)).into_response(),
        Err(description) => (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                format!("Bearer error=\"invalid_token\", error_description=\"{description}\""),
            )],
        )
            .into_response(),
    }
}

impl Service {
    /// The claims of the request's Bearer access token, when this
    /// deployment signed it (with any key still published: a token signed
    /// before a rotation stays good until it expires), it has not expired,
    /// and its `aud` is `audience` when one is given.
    pub(crate) fn verify_bearer(
        &self,
        headers: &HeaderMap,
        audience: Option<&str>,
    ) -> Result<Map<String, Value>, &'static str> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| authorization_credentials(v, "Bearer"))
            .ok_or("a Bearer access token is required")?;
        let header = jsonwebtoken::decode_header(token).map_err(|_| "malformed token")?;
        if header.typ.as_deref() != Some(claimsmith_tokens::ACCESS_TOKEN_TYP) {
            return Err("not an access token");
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.keys.published_key(kid))
            .ok_or("signed by no published key")?;
        let decoding =
            DecodingKey::from_jwk(key.public_jwk()).map_err(|_| "no verification key")?;
        // The algorithm of our key, never the token header's say.
        let mut validation = Validation::new(key.algorithm().jwt_algorithm());
        validation.set_issuer(&[self.issuer()]);
        match audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        jsonwebtoken::decode::<Map<String, Value>>(token, &decoding, &validation)
            .map(|data| data.claims)
            .map_err(|_| "the token is invalid, expired or not for this audience")
    }

    /// The claims of the id token in a token answer of this issuer, for
    /// `client_id`, carrying `nonce` (the console's own sign-in).
    pub(super) fn verify_id_token(
        &self,
        tokens: &Value,
        client_id: &str,
        nonce: &str,
    ) -> Result<Map<String, Value>, &'static str> {
        let token = tokens["id_token"].as_str().ok_or("no id token")?;
        let header = jsonwebtoken::decode_header(token).map_err(|_| "malformed id token")?;
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.keys.published_key(kid))
            .ok_or("the id token is signed by no published key")?;
        let decoding =
            DecodingKey::from_jwk(key.public_jwk()).map_err(|_| "no verification key")?;
        let mut validation = Validation::new(key.algorithm().jwt_algorithm());
        validation.set_issuer(&[self.issuer()]);
        validation.set_audience(&[client_id]);
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &decoding, &validation)
            .map_err(|_| "the id token is invalid")?
            .claims;
        if claims.get("nonce").and_then(Value::as_str) != Some(nonce) {
            return Err("the id token is not for this sign-in");
        }
        Ok(claims)
    }

    /// The standard claims the access token's scopes release, from the stored
    /// profile (OIDC Core §5.3).
    async fn userinfo(&self, headers: &HeaderMap) -> Result<Value, &'static str> {
        let claims = self.verify_bearer(headers, None)?;
        // A client removed from the config takes its users' tokens with it.
        let client_id = claims.get("client_id").and_then(Value::as_str);
        if client_id.and_then(|id| self.client(id)).is_none() {
            return Err("the token's client is not configured");
        }
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .ok_or("no subject")?;
        let scopes: Vec<String> = claims
            .get("scope")
            .and_then(Value::as_str)
            .unwrap_or("")
            .split_ascii_whitespace()
            .map(str::to_owned)
            .collect();
        let stored = self
            .store
            .load_user(subject)
            .await
            .map_err(|_| "storage unavailable")?
            .ok_or("unknown user")?;
        let mut released = standard_profile_claims(&stored.profile, &scopes);
        released.insert("sub".to_owned(), Value::String(subject.to_owned()));
        Ok(Value::Object(released))
    }
}

/// The form field `name`, or the OAuth answer for its absence.
/// What a refresh knows of the upstream's id token at sign-in: the user's
/// `sub`, and the `acr` and `amr` the refreshed id token keeps.
fn remembered_upstream_claims(grant: &RefreshGrant) -> Map<String, Value> {
    let mut claims = Map::from_iter([(
        "sub".to_owned(),
        Value::String(grant.upstream_subject.clone()),
    )]);
    grant.authentication.insert_into(&mut claims);
    claims
}

fn required<'f>(form: &'f HashMap<String, String>, name: &str) -> Result<&'f String, OAuthError> {
    form.get(name)
        .ok_or_else(|| OAuthError::invalid_request(format!("{name} is missing")))
}
