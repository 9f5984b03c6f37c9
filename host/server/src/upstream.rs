//! The OpenID Connect and OAuth 2.0 client side: Claimsmith signing users in
//! at an upstream provider (Okta, say, or a social provider that speaks only
//! OAuth 2.0).
//!
//! Owns discovery, the authorization request, the code exchange and the
//! verification of the upstream id token (signature against the upstream's
//! JWKS, fetched and cached for as long as its `Cache-Control` says, refetched
//! on an unknown `kid`; `iss`, `aud`, `exp` with a small leeway; `nonce`). A
//! plain OAuth 2.0 upstream has none of that: its endpoints are configured,
//! an id token it sends is handed on unverified (there is no key to verify
//! it against) and names nobody; the profile fetcher names the user. It does
//! not run plugins or mint.

use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
use reqwest::Url;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::protocol::form_urlencode;
use claimsmith_config::{UpstreamProtocol, UpstreamRegistration};
use claimsmith_core::UpstreamLogin;

/// How far an upstream's clock may be off, in seconds.
const CLOCK_LEEWAY_SECS: u64 = 60;
/// The JWKS is refetched for an unknown key at most this often: rarely enough
/// that unknown kids cannot make us hammer the upstream, often enough that a
/// rotation does not fail logins for long.
const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(5);
/// How long a JWKS is trusted when its answer says nothing.
const JWKS_DEFAULT_MAX_AGE: Duration = Duration::from_secs(3600);
/// The bounds on what an answer may say: not every login a fetch, and a key
/// withdrawn upstream is not trusted for more than a day.
const JWKS_MAX_AGE_BOUNDS: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(24 * 3600));

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream discovery at {url} failed: {reason}")]
    Discovery { url: String, reason: String },
    #[error("upstream token request failed: {0}")]
    TokenRequest(String),
    #[error("upstream refused the code: {0}")]
    TokenRefused(String),
    #[error("upstream id token invalid: {0}")]
    InvalidIdToken(String),
    #[error("upstream JWKS unavailable: {0}")]
    Jwks(String),
}

#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    /// RFC 9207: its authorization responses always name their issuer.
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
}

/// What an app asked about how the user authenticates (OIDC Core
/// §3.1.2.1): `prompt` (`none`, `login`, ...), `max_age` in seconds, and
/// `acr_values`, passed to the upstream as asked.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, Deserialize)]
pub struct Reauthentication {
    pub prompt: Option<String>,
    pub max_age: Option<u64>,
    /// Space-separated, as sent; the upstream answers with its `acr`.
    #[serde(default)]
    pub acr_values: Option<String>,
}

impl Reauthentication {
    /// Whether the upstream's `auth_time` (None when it sent none) honours
    /// the request, for a sign-in that started at `started_at`; why not if
    /// it does not. `max_age` needs an `auth_time` no older than it;
    /// `prompt=login` one from this sign-in.
    pub fn check(&self, auth_time: Option<u64>, started_at: u64, now: u64) -> Result<(), String> {
        let wants_login = self
            .prompt
            .as_deref()
            .is_some_and(|p| p.split(' ').any(|v| v == "login"));
        if self.max_age.is_none() && !wants_login {
            return Ok(());
        }
        let Some(auth_time) = auth_time else {
            return Err(
                "the upstream id token has no auth_time to check max_age or prompt=login against"
                    .into(),
            );
        };
        if let Some(max_age) = self.max_age
            && now.saturating_sub(auth_time) > max_age + CLOCK_LEEWAY_SECS
        {
            return Err(format!(
                "the user authenticated {} s ago, more than max_age {max_age} s",
                now.saturating_sub(auth_time)
            ));
        }
        if wants_login && auth_time + CLOCK_LEEWAY_SECS < started_at {
            return Err(
                "the upstream did not sign the user in again, as prompt=login asked".into(),
            );
        }
        Ok(())
    }
}

/// One upstream provider, discovered when it speaks OpenID Connect.
pub struct UpstreamClient {
    registration: UpstreamRegistration,
    /// The endpoints; for OpenID Connect, its discovery document.
    discovery: Discovery,
    /// OpenID Connect: its id token is verified and names the user.
    verifies_id_tokens: bool,
    http: reqwest::Client,
    jwks: RwLock<CachedJwks>,
    /// When the JWKS was last refetched for an unknown key.
    jwks_fetched: Mutex<Option<Instant>>,
}

struct CachedJwks {
    keys: JwkSet,
    expires: Instant,
}

impl UpstreamClient {
    /// An OpenID Connect upstream discovered (its document and JWKS
    /// fetched); a plain OAuth 2.0 one as configured.
    pub async fn connect(
        registration: UpstreamRegistration,
        http: reqwest::Client,
    ) -> Result<Self, UpstreamError> {
        let issuer = match &registration.protocol {
            UpstreamProtocol::OpenIdConnect { issuer } => issuer.clone(),
            UpstreamProtocol::OAuth2 {
                authorization_endpoint,
                token_endpoint,
            } => {
                let discovery = Discovery {
                    issuer: String::new(),
                    authorization_endpoint: authorization_endpoint.clone(),
                    token_endpoint: token_endpoint.clone(),
                    jwks_uri: String::new(),
                    authorization_response_iss_parameter_supported: false,
                };
                return Ok(Self::new(registration, discovery, false, http));
            }
        };
        Self::discover(registration, &issuer, http).await
    }

    fn new(
        registration: UpstreamRegistration,
        discovery: Discovery,
        verifies_id_tokens: bool,
        http: reqwest::Client,
    ) -> Self {
        UpstreamClient {
            registration,
            discovery,
            verifies_id_tokens,
            http,
            jwks: RwLock::new(CachedJwks {
                keys: JwkSet { keys: Vec::new() },
                expires: Instant::now(),
            }),
            jwks_fetched: Mutex::new(None),
        }
    }

    /// Whether its id token is verified and names the user (OpenID Connect),
    /// or the profile fetcher names them (plain OAuth 2.0).
    pub fn names_the_user(&self) -> bool {
        self.verifies_id_tokens
    }

    /// Fetches an OpenID Connect upstream's discovery document and JWKS.
    async fn discover(
        registration: UpstreamRegistration,
        issuer: &str,
        http: reqwest::Client,
    ) -> Result<Self, UpstreamError> {
        let url = format!("{issuer}/.well-known/openid-configuration");
        let failed = |reason: String| UpstreamError::Discovery {
            url: url.clone(),
            reason,
        };
        let response = http
            .get(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| failed(e.to_string()))?;
        let discovery: Discovery = capped_json(response).await.map_err(failed)?;
        if discovery.issuer.trim_end_matches('/') != issuer {
            return Err(failed(format!(
                "it names issuer `{}`, not `{issuer}`",
                discovery.issuer
            )));
        }
        let client = Self::new(registration, discovery, true, http);
        client.refresh_jwks().await?;
        Ok(client)
    }

    /// RFC 9207 mix-up defence: the `iss` of an authorization response must
    /// be this upstream's issuer, and must be there when it promised to send
    /// it. Otherwise the response may come from another upstream, and its
    /// code must not be sent to this one. A plain OAuth 2.0 upstream has no
    /// issuer to compare: its responses are tied to it by the pending
    /// login's state alone.
    pub fn check_response_issuer(&self, iss: Option<&str>) -> Result<(), String> {
        if !self.verifies_id_tokens {
            return Ok(());
        }
        match iss {
            Some(iss) if iss == self.discovery.issuer => Ok(()),
            Some(iss) => Err(format!(
                "the authorization response names issuer {iss:?}, but this sign-in went to {:?}",
                self.discovery.issuer
            )),
            None if self
                .discovery
                .authorization_response_iss_parameter_supported =>
            {
                Err(format!(
                    "the authorization response has no `iss`, which {:?} promises to send",
                    self.discovery.issuer
                ))
            }
            None => Ok(()),
        }
    }

    /// Where to send the user, with our state, nonce and PKCE challenge.
    pub fn authorization_url(
        &self,
        redirect_uri: &str,
        state: &str,
        nonce: &str,
        code_challenge: &str,
        reauthentication: &Reauthentication,
    ) -> Result<Url, UpstreamError> {
        let mut url = Url::parse(&self.discovery.authorization_endpoint).map_err(|e| {
            UpstreamError::Discovery {
                url: self.discovery.authorization_endpoint.clone(),
                reason: e.to_string(),
            }
        })?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.registration.client_id)
            .append_pair("redirect_uri", redirect_uri);
        if !self.registration.scopes.is_empty() {
            url.query_pairs_mut()
                .append_pair("scope", &self.registration.scopes.join(" "));
        }
        url.query_pairs_mut().append_pair("state", state);
        // A nonce is OpenID Connect's; PKCE is OAuth 2.0's (RFC 7636), and a
        // server without it ignores the parameters.
        if self.verifies_id_tokens {
            url.query_pairs_mut().append_pair("nonce", nonce);
        }
        url.query_pairs_mut()
            .append_pair("code_challenge", code_challenge)
            .append_pair("code_challenge_method", "S256");
        // The app's say on re-authentication is passed on: only the upstream
        // signs users in.
        if let Some(prompt) = &reauthentication.prompt {
            url.query_pairs_mut().append_pair("prompt", prompt);
        }
        if let Some(max_age) = reauthentication.max_age {
            url.query_pairs_mut()
                .append_pair("max_age", &max_age.to_string());
        }
        if let Some(acr_values) = &reauthentication.acr_values {
            url.query_pairs_mut().append_pair("acr_values", acr_values);
        }
        Ok(url)
    }

    /// Exchanges `code` for tokens and verifies the id token (an OpenID
    /// Connect upstream's must be there).
    pub async fn exchange_code(
        &self,
        code: &str,
        code_verifier: &str,
        redirect_uri: &str,
        nonce: &str,
    ) -> Result<UpstreamLogin, UpstreamError> {
        #[derive(Deserialize)]
        struct TokenResponse {
            access_token: String,
            id_token: Option<String>,
        }
        let response = self
            .http
            .post(&self.discovery.token_endpoint)
            // Some OAuth 2.0 servers (GitHub's) answer a form unless asked.
            .header(reqwest::header::ACCEPT, "application/json")
            // RFC 6749 §2.3.1: form-encoded, then base64; a secret with `:`
            // or `%` in it is otherwise misread.
            .basic_auth(
                form_urlencode(&self.registration.client_id),
                Some(form_urlencode(self.registration.client_secret.expose())),
            )
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", code_verifier),
            ])
            .send()
            .await
            .map_err(|e| UpstreamError::TokenRequest(e.to_string()))?;
        if !response.status().is_success() {
            let status = response.status();
            let mut response = response;
            let body = claimsmith_capabilities::http::read_body_capped(&mut response, 4096)
                .await
                .map(|body| String::from_utf8_lossy(&body).into_owned())
                .unwrap_or_default();
            // The body is for operators, not for the app the error reaches.
            tracing::warn!(%status, body = %claimsmith_capabilities::log::truncated(&body, 300), "upstream token endpoint refused the code");
            return Err(UpstreamError::TokenRefused(status.to_string()));
        }
        let tokens: TokenResponse = capped_json(response)
            .await
            .map_err(|e| UpstreamError::TokenRequest(format!("bad token response: {e}")))?;
        if !self.verifies_id_tokens {
            return Ok(UpstreamLogin {
                access_token: tokens.access_token,
                id_token: tokens.id_token.unwrap_or_default(),
                id_token_claims: Map::new(),
            });
        }
        let id_token = tokens
            .id_token
            .ok_or_else(|| UpstreamError::InvalidIdToken("the token response has none".into()))?;
        let id_token_claims = self.verify_id_token(&id_token, nonce).await?;
        Ok(UpstreamLogin {
            access_token: tokens.access_token,
            id_token,
            id_token_claims,
        })
    }

    /// Verifies signature, issuer, audience, expiry and nonce.
    async fn verify_id_token(
        &self,
        id_token: &str,
        nonce: &str,
    ) -> Result<Map<String, Value>, UpstreamError> {
        let invalid = |why: String| UpstreamError::InvalidIdToken(why);
        let header = decode_header(id_token).map_err(|e| invalid(e.to_string()))?;
        let kid = header.kid.as_deref();
        let expired = self.jwks.read().unwrap_or_else(|e| e.into_inner()).expires <= Instant::now();
        if expired {
            self.refresh_jwks().await?;
        }
        let key = match self.key_for(kid)? {
            Some(key) => key,
            None => {
                // A rotated key: look once more before refusing (throttled).
                self.refresh_jwks_throttled().await?;
                self.key_for(kid)?.ok_or_else(|| {
                    invalid(format!("unknown signing key `{}`", kid.unwrap_or("(none)")))
                })?
            }
        };
        let mut validation = Validation::new(header.alg);
        // Only the algorithm the key is for: never the header's say alone.
        validation.algorithms = vec![key.1.unwrap_or(header.alg)];
        validation.set_issuer(&[&self.discovery.issuer]);
        validation.set_audience(&[&self.registration.client_id]);
        validation.leeway = CLOCK_LEEWAY_SECS;
        validation.set_required_spec_claims(&["iss", "aud", "exp", "sub"]);
        let claims = decode::<Map<String, Value>>(id_token, &key.0, &validation)
            .map_err(|e| invalid(e.to_string()))?
            .claims;
        // OIDC Core §3.1.3.7: with several audiences, we must be the party
        // the token was issued to.
        if let Some(Value::Array(audiences)) = claims.get("aud")
            && audiences.len() > 1
            && claims.get("azp").and_then(Value::as_str) != Some(&self.registration.client_id)
        {
            return Err(invalid(
                "several audiences and `azp` is not this client".into(),
            ));
        }
        if claims.get("nonce").and_then(Value::as_str) != Some(nonce) {
            return Err(invalid("the nonce does not match this login".into()));
        }
        Ok(claims)
    }

    /// The key named `kid` (without a kid, the JWKS's only key), with the
    /// algorithm the JWKS says it is for.
    fn key_for(
        &self,
        kid: Option<&str>,
    ) -> Result<Option<(DecodingKey, Option<jsonwebtoken::Algorithm>)>, UpstreamError> {
        let cached = self.jwks.read().unwrap_or_else(|e| e.into_inner());
        let jwks = &cached.keys;
        let jwk = match kid {
            Some(kid) => jwks.find(kid),
            None if jwks.keys.len() == 1 => jwks.keys.first(),
            None => None,
        };
        let Some(jwk) = jwk else {
            return Ok(None);
        };
        let key = DecodingKey::from_jwk(jwk)
            .map_err(|e| UpstreamError::Jwks(format!("signing key unusable: {e}")))?;
        let algorithm = jwk
            .common
            .key_algorithm
            .and_then(|alg| alg.to_string().parse().ok());
        Ok(Some((key, algorithm)))
    }

    async fn refresh_jwks_throttled(&self) -> Result<(), UpstreamError> {
        {
            let mut last = self.jwks_fetched.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|at| at.elapsed() < JWKS_REFETCH_INTERVAL) {
                return Ok(());
            }
            *last = Some(std::time::Instant::now());
        }
        self.refresh_jwks().await
    }

    async fn refresh_jwks(&self) -> Result<(), UpstreamError> {
        let response = self
            .http
            .get(&self.discovery.jwks_uri)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| UpstreamError::Jwks(e.to_string()))?;
        let max_age = response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|value| value.to_str().ok())
            .map_or(JWKS_DEFAULT_MAX_AGE, cache_max_age);
        let keys: JwkSet = capped_json(response).await.map_err(UpstreamError::Jwks)?;
        *self.jwks.write().unwrap_or_else(|e| e.into_inner()) = CachedJwks {
            keys,
            expires: Instant::now() + max_age,
        };
        Ok(())
    }
}

/// The largest answer read from an upstream (discovery, token, JWKS): real
/// ones are a few kilobytes.
const MAX_UPSTREAM_BODY_BYTES: u64 = 256 * 1024;

/// The JSON body of an upstream answer, refused past the size cap.
async fn capped_json<T: serde::de::DeserializeOwned>(
    mut response: reqwest::Response,
) -> Result<T, String> {
    let body =
        claimsmith_capabilities::http::read_body_capped(&mut response, MAX_UPSTREAM_BODY_BYTES)
            .await
            .map_err(|e| e.to_string())?;
    serde_json::from_slice(&body).map_err(|e| format!("bad JSON: {e}"))
}

/// How long a `Cache-Control` value lets the JWKS be kept, within bounds:
/// `no-store`/`no-cache` as the lower bound, no `max-age` as the default.
fn cache_max_age(cache_control: &str) -> Duration {
    let mut max_age = JWKS_DEFAULT_MAX_AGE;
    for directive in cache_control.split(',').map(str::trim) {
        if directive.eq_ignore_ascii_case("no-store") || directive.eq_ignore_ascii_case("no-cache")
        {
            return JWKS_MAX_AGE_BOUNDS.0;
        }
        if let Some((name, value)) = directive.split_once('=')
            && name.trim().eq_ignore_ascii_case("max-age")
            && let Ok(seconds) = value.trim().trim_matches('"').parse::<u64>()
        {
            max_age = Duration::from_secs(seconds);
        }
    }
    max_age.clamp(JWKS_MAX_AGE_BOUNDS.0, JWKS_MAX_AGE_BOUNDS.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jwks_lifetime_follows_cache_control_within_bounds() {
        let secs = |value: &str| cache_max_age(value).as_secs();
        assert_eq!(secs("public, max-age=300"), 300);
        assert_eq!(secs("max-age=\"600\""), 600);
        assert_eq!(secs("public"), 3600);
        assert_eq!(secs("max-age=0"), 1);
        assert_eq!(secs("no-store"), 1);
        assert_eq!(secs("max-age=99999999"), 24 * 3600);
        assert_eq!(secs("max-age=nonsense"), 3600);
    }
}
