//! Auth0's `api.redirect` (`claimsmith:plugin/redirect`): sending the user
//! to a page mid-login, and reading the signed token they bring back.
//!
//! Owns the rules of a redirect: sign-ins only, only to the plugin's
//! `redirect_origins`, `state` always the host's; the URL the browser goes
//! to; and the HS256 tokens of `encode-token` and `validate-token`. Records
//! where the action sends the user in `ActionEffects::redirect` (the `api`
//! capability implements the import with these rules). It does
//! not suspend or resume the login (the pipeline and the server do that)
//! and keeps nothing: each call is given its [`RedirectContext`].

use std::collections::BTreeMap;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use reqwest::Url;
use serde_json::{Map, Value};

use claimsmith_config::Origin;
use claimsmith_wit::action::claimsmith::plugin::redirect as wit;

/// Browsers and proxies cut longer URLs.
pub const MAX_REDIRECT_URL_BYTES: usize = 8 * 1024;
/// What `encode-token` signs at most, as JSON.
const MAX_TOKEN_PAYLOAD_BYTES: usize = 4 * 1024;
/// A token for the page lives a day at most: the login it belongs to
/// expires well before.
const MAX_TOKEN_LIFETIME_SECS: u64 = 24 * 60 * 60;

/// What a sign-in's action calls may do with `api.redirect`. A refresh has
/// none: there is no browser to send.
#[derive(Debug, Clone)]
pub struct RedirectContext {
    /// The host's issuer: the tokens' `iss`.
    pub issuer: String,
    /// The user signing in: the tokens' default `sub`.
    pub user_id: String,
    /// The `state` the page must bring back to `/continue` if this run
    /// suspends.
    pub state: String,
    /// On a login resumed at `/continue`: that request.
    pub continued: Option<Continued>,
    /// Unix seconds: the tokens' clock.
    pub now: u64,
}

/// The `/continue` request a resumed login came back with.
#[derive(Debug, Clone, Default)]
pub struct Continued {
    /// The `state` it brought back.
    pub state: String,
    /// Its query and form parameters (the first value of each name).
    pub parameters: BTreeMap<String, String>,
}

/// Why a redirect call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectError {
    #[error("not allowed: {0}")]
    NotAllowed(String),
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    #[error("invalid payload: {0}")]
    InvalidPayload(String),
    #[error("invalid token: {0}")]
    InvalidToken(String),
}

/// The redirect rules of one call: its context (none on a refresh) and the
/// origins its plugin may send the user to.
#[derive(Debug, Clone, Default)]
pub struct Redirects {
    pub context: Option<Arc<RedirectContext>>,
    pub allowed_origins: Arc<[Origin]>,
}

impl Redirects {
    fn context(&self) -> Result<&RedirectContext, RedirectError> {
        self.context.as_deref().ok_or_else(|| {
            RedirectError::NotAllowed(
                "a refresh has no browser to send: api.redirect works in sign-ins only".to_owned(),
            )
        })
    }

    /// The URL the browser goes to: `url` with `query` and the host's
    /// `state`, once `url` is on an allowed origin.
    pub fn target(&self, url: &str, query: &[(String, String)]) -> Result<String, RedirectError> {
        let context = self.context()?;
        let mut target =
            Url::parse(url).map_err(|e| RedirectError::InvalidUrl(format!("`{url}`: {e}")))?;
        if !matches!(target.scheme(), "http" | "https") {
            return Err(RedirectError::InvalidUrl(format!(
                "`{url}` is not an http or https URL"
            )));
        }
        let origin = Origin::of_url(&target)
            .ok_or_else(|| RedirectError::InvalidUrl(format!("`{url}` has no host")))?;
        if !self.allowed_origins.contains(&origin) {
            return Err(RedirectError::NotAllowed(format!(
                "`{origin}` is not in this plugin's redirect_origins"
            )));
        }
        if query.iter().any(|(name, _)| name == "state") {
            return Err(RedirectError::InvalidUrl(
                "`state` is Claimsmith's: the page brings it back to /continue".to_owned(),
            ));
        }
        target
            .query_pairs_mut()
            .extend_pairs(query)
            .append_pair("state", &context.state);
        let target = String::from(target);
        if target.len() > MAX_REDIRECT_URL_BYTES {
            return Err(RedirectError::InvalidUrl(format!(
                "the URL with its query is longer than {MAX_REDIRECT_URL_BYTES} bytes"
            )));
        }
        Ok(target)
    }

    /// An HS256 token of `payload` for the page, with the host's claims.
    pub fn encode_token(
        &self,
        secret: &str,
        payload_json: &str,
        expires_in_seconds: u64,
    ) -> Result<String, RedirectError> {
        let context = self.context()?;
        let invalid = |why: String| RedirectError::InvalidPayload(why);
        if secret.is_empty() {
            return Err(invalid("the secret is empty".to_owned()));
        }
        if !(1..=MAX_TOKEN_LIFETIME_SECS).contains(&expires_in_seconds) {
            return Err(invalid(format!(
                "expiresInSeconds must be 1 to {MAX_TOKEN_LIFETIME_SECS}"
            )));
        }
        if payload_json.len() > MAX_TOKEN_PAYLOAD_BYTES {
            return Err(invalid(format!(
                "the payload is larger than {MAX_TOKEN_PAYLOAD_BYTES} bytes"
            )));
        }
        let mut claims: Map<String, Value> = match serde_json::from_str(payload_json) {
            Ok(Value::Object(claims)) => claims,
            Ok(_) => return Err(invalid("the payload is not a JSON object".to_owned())),
            Err(e) => return Err(invalid(format!("the payload is not JSON: {e}"))),
        };
        claims
            .entry("sub")
            .or_insert_with(|| context.user_id.clone().into());
        claims.insert("iss".into(), context.issuer.clone().into());
        claims.insert("iat".into(), context.now.into());
        claims.insert("exp".into(), (context.now + expires_in_seconds).into());
        claims.insert("state".into(), context.state.clone().into());
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .map_err(|e| invalid(e.to_string()))
    }

    /// The claims of the token the continue request carries in `parameter`,
    /// once its signature, expiry and `state` check out.
    pub fn validate_token(
        &self,
        secret: &str,
        parameter: &str,
    ) -> Result<Map<String, Value>, RedirectError> {
        let context = self.context()?;
        let continued = context.continued.as_ref().ok_or_else(|| {
            RedirectError::NotAllowed(
                "validateToken reads what the user brought back to /continue: it works once \
                 the login resumes"
                    .to_owned(),
            )
        })?;
        if secret.is_empty() {
            return Err(RedirectError::InvalidPayload(
                "the secret is empty".to_owned(),
            ));
        }
        let invalid = |why: String| RedirectError::InvalidToken(why);
        let token = continued
            .parameters
            .get(parameter)
            .ok_or_else(|| invalid(format!("the continue request has no `{parameter}`")))?;
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked below against the login's clock (pinned in
        // golden cases); the audience is the page's business.
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp"]);
        let claims = jsonwebtoken::decode::<Map<String, Value>>(
            token,
            &DecodingKey::from_secret(secret.as_bytes()),
            &validation,
        )
        .map_err(|e| invalid(format!("`{parameter}`: {e}")))?
        .claims;
        match claims.get("exp").and_then(Value::as_u64) {
            Some(exp) if exp > context.now => {}
            Some(_) => return Err(invalid(format!("`{parameter}` has expired"))),
            None => return Err(invalid(format!("`{parameter}`'s `exp` is not a number"))),
        }
        if claims.get("state").and_then(Value::as_str) != Some(continued.state.as_str()) {
            return Err(invalid(format!(
                "`{parameter}`'s `state` is not this login's"
            )));
        }
        Ok(claims)
    }
}

impl From<RedirectError> for wit::RedirectError {
    fn from(error: RedirectError) -> Self {
        match error {
            RedirectError::NotAllowed(why) => wit::RedirectError::NotAllowed(why),
            RedirectError::InvalidUrl(why) => wit::RedirectError::InvalidUrl(why),
            RedirectError::InvalidPayload(why) => wit::RedirectError::InvalidPayload(why),
            RedirectError::InvalidToken(why) => wit::RedirectError::InvalidToken(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redirects(continued: Option<Continued>) -> Redirects {
        Redirects {
            context: Some(Arc::new(RedirectContext {
                issuer: "https://login.example.com".into(),
                user_id: "okta|00u1".into(),
                state: "state-2".into(),
                continued,
                now: 1_000,
            })),
            allowed_origins: Arc::from(["https://terms.example.com".parse::<Origin>().unwrap()]),
        }
    }

    fn continued(token: &str) -> Option<Continued> {
        Some(Continued {
            state: "state-1".into(),
            parameters: BTreeMap::from([("session_token".into(), token.into())]),
        })
    }

    #[test]
    fn the_target_keeps_the_query_and_adds_the_hosts_state() {
        let target = redirects(None)
            .target(
                "https://terms.example.com/accept?v=2",
                &[("lang".into(), "en nz".into())],
            )
            .unwrap();
        assert_eq!(
            target,
            "https://terms.example.com/accept?v=2&lang=en+nz&state=state-2"
        );
    }

    #[test]
    fn only_allowed_origins_and_never_a_state_of_the_actions() {
        let refused = redirects(None)
            .target("https://evil.example.net/", &[])
            .unwrap_err();
        assert!(
            matches!(refused, RedirectError::NotAllowed(ref why) if why.contains("redirect_origins")),
            "{refused}"
        );
        let refused = redirects(None)
            .target("http://terms.example.com/", &[])
            .unwrap_err();
        assert!(
            matches!(refused, RedirectError::NotAllowed(_)),
            "another scheme is another origin: {refused}"
        );
        assert!(matches!(
            redirects(None).target(
                "https://terms.example.com/",
                &[("state".into(), "mine".into())]
            ),
            Err(RedirectError::InvalidUrl(_))
        ));
        assert!(matches!(
            redirects(None).target("javascript:alert(1)", &[]),
            Err(RedirectError::InvalidUrl(_))
        ));
        let long = "x".repeat(MAX_REDIRECT_URL_BYTES);
        assert!(matches!(
            redirects(None).target("https://terms.example.com/", &[("q".into(), long)]),
            Err(RedirectError::InvalidUrl(_))
        ));
    }

    #[test]
    fn a_refresh_cannot_redirect_or_sign() {
        let none = Redirects::default();
        assert!(matches!(
            none.target("https://terms.example.com/", &[]),
            Err(RedirectError::NotAllowed(_))
        ));
        assert!(matches!(
            none.encode_token("s", "{}", 60),
            Err(RedirectError::NotAllowed(_))
        ));
        assert!(matches!(
            none.validate_token("s", "session_token"),
            Err(RedirectError::NotAllowed(_))
        ));
    }

    #[test]
    fn an_encoded_token_carries_the_payload_and_the_hosts_claims() {
        let token = redirects(None)
            .encode_token("secret", r#"{"terms":"v2","iss":"forged"}"#, 60)
            .unwrap();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        let claims = jsonwebtoken::decode::<Map<String, Value>>(
            &token,
            &DecodingKey::from_secret(b"secret"),
            &validation,
        )
        .unwrap()
        .claims;
        assert_eq!(
            Value::Object(claims),
            serde_json::json!({
                "terms": "v2", "sub": "okta|00u1", "iss": "https://login.example.com",
                "iat": 1000, "exp": 1060, "state": "state-2",
            })
        );
    }

    #[test]
    fn encode_token_refuses_what_it_cannot_sign() {
        let redirects = redirects(None);
        for (secret, payload, ttl) in [
            ("", "{}", 60),
            ("s", "[1]", 60),
            ("s", "{oops", 60),
            ("s", "{}", 0),
            ("s", "{}", MAX_TOKEN_LIFETIME_SECS + 1),
        ] {
            assert!(
                matches!(
                    redirects.encode_token(secret, payload, ttl),
                    Err(RedirectError::InvalidPayload(_))
                ),
                "{secret:?} {payload} {ttl}"
            );
        }
    }

    /// A token the page signed for the login that suspended as `state-1`.
    fn page_token(secret: &[u8], state: &str, exp: u64) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"state": state, "exp": exp, "accepted": true}),
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    #[test]
    fn validate_token_checks_signature_expiry_and_state() {
        let good = page_token(b"secret", "state-1", 1_001);
        let claims = redirects(continued(&good))
            .validate_token("secret", "session_token")
            .unwrap();
        assert_eq!(claims["accepted"], true);
        for (token, why) in [
            (page_token(b"other", "state-1", 1_001), "InvalidSignature"),
            (page_token(b"secret", "state-1", 1_000), "expired"),
            (page_token(b"secret", "state-2", 1_001), "not this login's"),
            ("not.a.jwt".to_owned(), "session_token"),
        ] {
            let refused = redirects(continued(&token))
                .validate_token("secret", "session_token")
                .unwrap_err();
            assert!(
                matches!(&refused, RedirectError::InvalidToken(text) if text.contains(why)),
                "{why}: {refused}"
            );
        }
        let refused = redirects(continued(&good))
            .validate_token("secret", "token")
            .unwrap_err();
        assert!(refused.to_string().contains("has no `token`"), "{refused}");
        assert!(matches!(
            redirects(None).validate_token("secret", "session_token"),
            Err(RedirectError::NotAllowed(_))
        ));
    }
}
