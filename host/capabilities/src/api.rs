//! What an action may change: the post-login `api` (`claimsmith:plugin/api`)
//! and the credentials-exchange `exchange-api`.
//!
//! Owns the rules on each change — reserved claims refused, values must be
//! JSON, payloads capped — and records the changes in [`ActionEffects`]. It
//! does not mint or store anything: the pipeline decides what the effects of a
//! finished action become.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use claimsmith_core::is_reserved_claim;
use claimsmith_wit::action::claimsmith::plugin::api as wit;
use claimsmith_wit::exchange::claimsmith::plugin::exchange_api as exchange_wit;
use wasmtime::component::{HasSelf, Linker};

use crate::redirect::Redirects;
use crate::{CallContext, Capability, CapabilityView, Has};
use claimsmith_config::{Origin, PluginSpec};
use claimsmith_core::World;
use claimsmith_wit::action::claimsmith::plugin::redirect as redirect_wit;

/// The cap on one token's custom claims, and on one metadata object, as
/// serialized JSON (Auth0 caps custom claims at 100 KB too).
pub const MAX_PAYLOAD_BYTES: u64 = 100 * 1024;
/// A login cannot carry more scopes than this.
const MAX_SCOPES: usize = 100;
const MAX_DENY_REASON_CHARS: usize = 1024;
/// Scopes actions may not add.
const PROTOCOL_SCOPES: &[&str] = &["openid", "offline_access"];

/// Which token a claim goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Id,
}

/// Why a change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("claim `{0}` is reserved to the host")]
    ReservedClaim(String),
    #[error("value is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("payload would exceed {0} bytes")]
    TooLarge(u64),
    #[error("invalid name: {0}")]
    InvalidName(String),
}

/// Everything the actions of one login changed so far. Serialised into a
/// login that waits for the user to come back (`api.redirect`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ActionEffects {
    pub access_token_claims: Map<String, Value>,
    pub id_token_claims: Map<String, Value>,
    pub scopes: Vec<String>,
    pub user_metadata: Map<String, Value>,
    pub app_metadata: Map<String, Value>,
    /// Set by `deny`: the chain stops after the action that set it.
    pub denial: Option<String>,
    /// The OAuth error a credentials-exchange denial answers with.
    pub denial_code: Option<DenialCode>,
    /// Set by `api.redirect.send-user-to`: where the browser goes, query and
    /// `state` included. The chain waits after the action that set it.
    #[serde(skip)]
    pub redirect: Option<String>,
}

/// The OAuth errors a credentials-exchange action may deny a token request
/// with: the three Auth0 allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DenialCode {
    InvalidScope,
    InvalidRequest,
    ServerError,
}

impl DenialCode {
    /// The OAuth `error` (RFC 6749 §5.2; `server_error` from §4.1.2.1).
    pub fn as_str(self) -> &'static str {
        match self {
            DenialCode::InvalidScope => "invalid_scope",
            DenialCode::InvalidRequest => "invalid_request",
            DenialCode::ServerError => "server_error",
        }
    }
}

impl ActionEffects {
    pub fn set_custom_claim(
        &mut self,
        token: TokenKind,
        name: &str,
        value_json: &str,
    ) -> Result<(), ApiError> {
        check_claim_name(name)?;
        let value = parse_json(value_json)?;
        let claims = match token {
            TokenKind::Access => &mut self.access_token_claims,
            TokenKind::Id => &mut self.id_token_claims,
        };
        insert_capped(claims, name, value)
    }

    pub fn remove_custom_claim(&mut self, token: TokenKind, name: &str) -> Result<(), ApiError> {
        check_claim_name(name)?;
        match token {
            TokenKind::Access => self.access_token_claims.remove(name),
            TokenKind::Id => self.id_token_claims.remove(name),
        };
        Ok(())
    }

    pub fn add_scope(&mut self, scope: &str) -> Result<(), ApiError> {
        // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
        let valid = !scope.is_empty()
            && scope.len() <= 256
            && scope
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
        if !valid {
            return Err(ApiError::InvalidName(format!(
                "`{scope}` is not a valid scope token"
            )));
        }
        // These grant protocol powers (an id token, a refresh token) that
        // only the app's own request may ask for.
        if PROTOCOL_SCOPES.contains(&scope) {
            return Err(ApiError::InvalidName(format!(
                "`{scope}` is granted by the app's request, not by actions"
            )));
        }
        // A user's token must never open the Management API.
        if claimsmith_core::MANAGEMENT_SCOPES.contains(&scope) {
            return Err(ApiError::InvalidName(format!(
                "`{scope}` is a Management API scope: only machine clients get it"
            )));
        }
        if !self.scopes.iter().any(|s| s == scope) {
            if self.scopes.len() >= MAX_SCOPES {
                return Err(ApiError::TooLarge(MAX_SCOPES as u64));
            }
            self.scopes.push(scope.to_owned());
        }
        Ok(())
    }

    pub fn remove_scope(&mut self, scope: &str) {
        self.scopes.retain(|s| s != scope);
    }

    /// Sets `key` of the user's metadata; `null` removes it, as in Auth0
    /// (and as the Management API's PATCH does).
    pub fn set_user_metadata(&mut self, key: &str, value_json: &str) -> Result<(), ApiError> {
        set_metadata(&mut self.user_metadata, key, value_json)
    }

    /// Sets `key` of the app metadata; `null` removes it.
    pub fn set_app_metadata(&mut self, key: &str, value_json: &str) -> Result<(), ApiError> {
        set_metadata(&mut self.app_metadata, key, value_json)
    }

    pub fn deny(&mut self, reason: &str) {
        let reason = crate::log::truncated(reason, MAX_DENY_REASON_CHARS);
        self.denial = Some(reason.into_owned());
    }

    /// A credentials-exchange denial: the token request fails with `code`.
    pub fn deny_with(&mut self, code: DenialCode, reason: &str) {
        self.deny(reason);
        self.denial_code = Some(code);
    }
}

/// Checks a whole set of custom claims against the rules the API enforces one
/// call at a time; the pipeline runs it before minting, whatever path the
/// claims took.
pub fn validate_custom_claims(claims: &Map<String, Value>) -> Result<(), ApiError> {
    for name in claims.keys() {
        check_claim_name(name)?;
    }
    if serialized_len(claims) > MAX_PAYLOAD_BYTES {
        return Err(ApiError::TooLarge(MAX_PAYLOAD_BYTES));
    }
    Ok(())
}

fn check_claim_name(name: &str) -> Result<(), ApiError> {
    check_key(name)?;
    if is_reserved_claim(name) {
        return Err(ApiError::ReservedClaim(name.to_owned()));
    }
    Ok(())
}

fn check_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > 256 {
        return Err(ApiError::InvalidName(
            "names are 1 to 256 bytes long".to_owned(),
        ));
    }
    Ok(())
}

fn set_metadata(
    metadata: &mut Map<String, Value>,
    key: &str,
    value_json: &str,
) -> Result<(), ApiError> {
    check_key(key)?;
    match parse_json(value_json)? {
        Value::Null => {
            metadata.remove(key);
            Ok(())
        }
        value => insert_capped(metadata, key, value),
    }
}

fn parse_json(text: &str) -> Result<Value, ApiError> {
    serde_json::from_str(text).map_err(|e| ApiError::InvalidJson(e.to_string()))
}

/// Inserts, then undoes the insert if the object would outgrow the cap, so a
/// refused call changes nothing.
fn insert_capped(object: &mut Map<String, Value>, key: &str, value: Value) -> Result<(), ApiError> {
    let previous = object.insert(key.to_owned(), value);
    if serialized_len(object) > MAX_PAYLOAD_BYTES {
        match previous {
            Some(previous) => object.insert(key.to_owned(), previous),
            None => object.remove(key),
        };
        return Err(ApiError::TooLarge(MAX_PAYLOAD_BYTES));
    }
    Ok(())
}

fn serialized_len(object: &Map<String, Value>) -> u64 {
    // Serializing a Map into a Vec cannot fail.
    serde_json::to_vec(object).map_or(u64::MAX, |bytes| bytes.len() as u64)
}

/// The `api` and `redirect` imports of one action invocation: starts from
/// the effects of the actions before it and records this one's on top.
pub struct ApiCapability {
    pub effects: ActionEffects,
    pub redirects: Redirects,
}

impl From<wit::Token> for TokenKind {
    fn from(token: wit::Token) -> Self {
        match token {
            wit::Token::AccessToken => TokenKind::Access,
            wit::Token::IdToken => TokenKind::Id,
        }
    }
}

impl From<ApiError> for wit::ApiError {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::ReservedClaim(name) => wit::ApiError::ReservedClaim(name),
            ApiError::InvalidJson(why) => wit::ApiError::InvalidJson(why),
            ApiError::TooLarge(cap) => wit::ApiError::TooLarge(cap),
            ApiError::InvalidName(why) => wit::ApiError::InvalidName(why),
        }
    }
}

impl wit::Host for ApiCapability {
    fn set_custom_claim(
        &mut self,
        token: wit::Token,
        name: String,
        value: String,
    ) -> Result<(), wit::ApiError> {
        Ok(self.effects.set_custom_claim(token.into(), &name, &value)?)
    }

    fn remove_custom_claim(
        &mut self,
        token: wit::Token,
        name: String,
    ) -> Result<(), wit::ApiError> {
        Ok(self.effects.remove_custom_claim(token.into(), &name)?)
    }

    fn add_scope(&mut self, scope: String) -> Result<(), wit::ApiError> {
        Ok(self.effects.add_scope(&scope)?)
    }

    fn remove_scope(&mut self, scope: String) {
        self.effects.remove_scope(&scope)
    }

    fn set_user_metadata(&mut self, key: String, value: String) -> Result<(), wit::ApiError> {
        Ok(self.effects.set_user_metadata(&key, &value)?)
    }

    fn set_app_metadata(&mut self, key: String, value: String) -> Result<(), wit::ApiError> {
        Ok(self.effects.set_app_metadata(&key, &value)?)
    }

    fn deny(&mut self, reason: String) {
        self.effects.deny(&reason)
    }
}

/// `api.redirect`, under the rules of [`Redirects`].
impl redirect_wit::Host for ApiCapability {
    fn send_user_to(
        &mut self,
        url: String,
        query: Vec<(String, String)>,
    ) -> Result<(), redirect_wit::RedirectError> {
        let target = self.redirects.target(&url, &query)?;
        self.effects.redirect = Some(target);
        Ok(())
    }

    fn encode_token(
        &mut self,
        secret: String,
        payload: String,
        expires_in_seconds: u64,
    ) -> Result<String, redirect_wit::RedirectError> {
        Ok(self
            .redirects
            .encode_token(&secret, &payload, expires_in_seconds)?)
    }

    fn validate_token(
        &mut self,
        secret: String,
        token_parameter_name: String,
    ) -> Result<String, redirect_wit::RedirectError> {
        let claims = self
            .redirects
            .validate_token(&secret, &token_parameter_name)?;
        Ok(Value::Object(claims).to_string())
    }
}

impl From<ApiError> for exchange_wit::ClaimError {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::ReservedClaim(name) => exchange_wit::ClaimError::ReservedClaim(name),
            ApiError::InvalidJson(why) => exchange_wit::ClaimError::InvalidJson(why),
            ApiError::TooLarge(cap) => exchange_wit::ClaimError::TooLarge(cap),
            ApiError::InvalidName(why) => exchange_wit::ClaimError::InvalidName(why),
        }
    }
}

impl From<exchange_wit::DenialCode> for DenialCode {
    fn from(code: exchange_wit::DenialCode) -> Self {
        match code {
            exchange_wit::DenialCode::InvalidScope => DenialCode::InvalidScope,
            exchange_wit::DenialCode::InvalidRequest => DenialCode::InvalidRequest,
            exchange_wit::DenialCode::ServerError => DenialCode::ServerError,
        }
    }
}

/// A credentials-exchange action changes only its access token.
impl exchange_wit::Host for ApiCapability {
    fn set_custom_claim(
        &mut self,
        name: String,
        value: String,
    ) -> Result<(), exchange_wit::ClaimError> {
        Ok(self
            .effects
            .set_custom_claim(TokenKind::Access, &name, &value)?)
    }

    fn deny(&mut self, code: exchange_wit::DenialCode, reason: String) {
        self.effects.deny_with(code.into(), &reason)
    }
}

/// Post-login actions import `api` and `redirect`, credentials-exchange
/// actions `exchange-api`; a call starts from the effects of the actions
/// before it.
impl Capability for ApiCapability {
    /// Where the plugin may send the user (`redirect_origins`).
    type Grant = Arc<[Origin]>;

    fn grant(plugin: &PluginSpec) -> Arc<[Origin]> {
        Arc::from(plugin.redirect_origins.as_slice())
    }

    fn link<T: CapabilityView>(linker: &mut Linker<T>, world: World) -> wasmtime::Result<()> {
        match world {
            World::PostLoginAction => {
                wit::add_to_linker::<T, HasSelf<ApiCapability>>(linker, |state: &mut T| {
                    state.capabilities().get()
                })?;
                redirect_wit::add_to_linker::<T, HasSelf<ApiCapability>>(linker, |state: &mut T| {
                    state.capabilities().get()
                })
            }
            World::CredentialsExchange => {
                exchange_wit::add_to_linker::<T, HasSelf<ApiCapability>>(linker, |state: &mut T| {
                    state.capabilities().get()
                })
            }
            World::ProfileFetcher => Ok(()),
        }
    }

    fn prepare(grant: &Arc<[Origin]>, call: &mut CallContext<'_>) -> Self {
        ApiCapability {
            effects: std::mem::take(&mut call.effects),
            redirects: Redirects {
                context: call.redirect.clone(),
                allowed_origins: grant.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_claims_are_refused_on_both_tokens() {
        let mut effects = ActionEffects::default();
        for name in ["iss", "sub", "aud", "exp", "nonce", "scope", "azp", "jti"] {
            for token in [TokenKind::Access, TokenKind::Id] {
                assert_eq!(
                    effects.set_custom_claim(token, name, "\"x\""),
                    Err(ApiError::ReservedClaim(name.to_owned()))
                );
                assert_eq!(
                    effects.remove_custom_claim(token, name),
                    Err(ApiError::ReservedClaim(name.to_owned()))
                );
            }
        }
        assert_eq!(effects, ActionEffects::default());
    }

    #[test]
    fn claims_must_be_json_and_land_on_their_token() {
        let mut effects = ActionEffects::default();
        assert!(matches!(
            effects.set_custom_claim(TokenKind::Access, "x", "{oops"),
            Err(ApiError::InvalidJson(_))
        ));
        effects
            .set_custom_claim(TokenKind::Id, "roles", r#"["admin"]"#)
            .unwrap();
        assert_eq!(
            effects.id_token_claims["roles"],
            serde_json::json!(["admin"])
        );
        assert!(effects.access_token_claims.is_empty());
        effects.remove_custom_claim(TokenKind::Id, "roles").unwrap();
        assert!(effects.id_token_claims.is_empty());
    }

    #[test]
    fn the_payload_cap_refuses_and_keeps_the_previous_state() {
        let mut effects = ActionEffects::default();
        let big = format!("\"{}\"", "a".repeat(60 * 1024));
        effects
            .set_custom_claim(TokenKind::Access, "one", &big)
            .unwrap();
        assert_eq!(
            effects.set_custom_claim(TokenKind::Access, "two", &big),
            Err(ApiError::TooLarge(MAX_PAYLOAD_BYTES))
        );
        assert_eq!(effects.access_token_claims.len(), 1);
        assert_eq!(
            effects.set_user_metadata("blob", &format!("\"{}\"", "b".repeat(110 * 1024))),
            Err(ApiError::TooLarge(MAX_PAYLOAD_BYTES))
        );
        assert!(effects.user_metadata.is_empty());
    }

    #[test]
    fn null_metadata_removes_the_key_in_both_kinds() {
        let mut effects = ActionEffects::default();
        effects.user_metadata.insert("theme".into(), "dark".into());
        effects.app_metadata.insert("plan".into(), "gold".into());
        effects.app_metadata.insert("region".into(), "eu".into());
        effects.set_user_metadata("theme", "null").unwrap();
        effects.set_app_metadata("plan", "null").unwrap();
        assert!(
            effects.user_metadata.is_empty(),
            "{:?}",
            effects.user_metadata
        );
        assert_eq!(
            Value::Object(effects.app_metadata),
            serde_json::json!({"region": "eu"})
        );
    }

    #[test]
    fn scopes_are_validated_and_deduplicated() {
        let mut effects = ActionEffects::default();
        effects.add_scope("read:orders").unwrap();
        effects.add_scope("read:orders").unwrap();
        assert_eq!(effects.scopes, vec!["read:orders"]);
        assert!(effects.add_scope("two words").is_err());
        assert!(effects.add_scope("").is_err());
        assert!(
            effects.add_scope("offline_access").is_err(),
            "a refresh token is the app's to ask for"
        );
        assert!(effects.add_scope("openid").is_err());
        effects.remove_scope("read:orders");
        assert!(effects.scopes.is_empty());
    }

    #[test]
    fn scopes_names_and_deny_reasons_are_capped() {
        let mut effects = ActionEffects::default();
        for n in 0..MAX_SCOPES {
            effects.add_scope(&format!("scope:{n}")).unwrap();
        }
        assert_eq!(
            effects.add_scope("one:more"),
            Err(ApiError::TooLarge(MAX_SCOPES as u64))
        );
        assert_eq!(effects.scopes.len(), MAX_SCOPES);
        let long_name = "n".repeat(257);
        assert!(matches!(
            effects.set_custom_claim(TokenKind::Access, &long_name, "1"),
            Err(ApiError::InvalidName(_))
        ));
        assert!(
            effects
                .set_custom_claim(TokenKind::Access, &"n".repeat(256), "1")
                .is_ok()
        );
        effects.deny(&"r".repeat(5000));
        let cut = format!("{}… (truncated)", "r".repeat(MAX_DENY_REASON_CHARS));
        assert_eq!(effects.denial.as_deref(), Some(cut.as_str()));
    }

    #[test]
    fn a_credentials_exchange_denial_keeps_its_code_and_a_capped_reason() {
        let mut effects = ActionEffects::default();
        effects.deny_with(DenialCode::InvalidScope, &"r".repeat(5000));
        assert_eq!(effects.denial_code, Some(DenialCode::InvalidScope));
        assert!(
            effects
                .denial
                .as_deref()
                .unwrap()
                .ends_with("… (truncated)")
        );
        let codes = [
            DenialCode::InvalidScope,
            DenialCode::InvalidRequest,
            DenialCode::ServerError,
        ];
        let names: Vec<&str> = codes.iter().map(|code| code.as_str()).collect();
        assert_eq!(names, ["invalid_scope", "invalid_request", "server_error"]);
    }

    #[test]
    fn an_action_cannot_grant_a_management_api_scope() {
        let mut effects = ActionEffects::default();
        for scope in claimsmith_core::MANAGEMENT_SCOPES {
            let refused = effects.add_scope(scope).unwrap_err();
            assert!(refused.to_string().contains("Management API"), "{refused}");
        }
        assert!(effects.scopes.is_empty());
    }

    #[test]
    fn validation_catches_what_the_api_would_refuse() {
        let mut claims = Map::new();
        claims.insert("geo_ip_country".into(), "NZ".into());
        assert_eq!(validate_custom_claims(&claims), Ok(()));
        claims.insert("iss".into(), "https://evil".into());
        assert_eq!(
            validate_custom_claims(&claims),
            Err(ApiError::ReservedClaim("iss".into()))
        );
    }
}
