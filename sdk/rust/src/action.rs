//! The post-login-action world: `on_execute_post_login(event, api)` over
//! Auth0's `event` and `api` shapes, and `on_continue_post_login(event, api)`
//! when the user comes back from the page [`Redirect::send_user_to`] sent
//! them to.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::Error;

/// The generated bindings of the `resumable-post-login-action` world, which
/// every Rust action is built for (without a continue handler, its
/// `on-continue-post-login` changes nothing); the interfaces it shares with
/// the profile fetcher come from [`crate::fetcher::bindings`].
pub mod bindings {
    wit_bindgen::generate!({
        world: "resumable-post-login-action",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "claimsmith_sdk::action::bindings",
        with: {
            "claimsmith:plugin/types@0.1.0": crate::fetcher::bindings::claimsmith::plugin::types,
            "claimsmith:plugin/log@0.1.0": crate::fetcher::bindings::claimsmith::plugin::log,
            "claimsmith:plugin/secrets@0.1.0": crate::fetcher::bindings::claimsmith::plugin::secrets,
            "claimsmith:plugin/http@0.1.0": crate::fetcher::bindings::claimsmith::plugin::http,
        },
    });
}

use bindings::claimsmith::plugin::api::{self as host, ApiError, Token};
use bindings::claimsmith::plugin::redirect::{self as host_redirect, RedirectError};

/// Everything a post-login action sees, in Auth0's shape.
#[derive(Debug, Clone)]
pub struct Event {
    pub user: User,
    pub stats: Stats,
    pub client: Client,
    pub connection: Connection,
    pub request: Request,
    pub transaction: Transaction,
    pub authentication: Authentication,
    pub authorization: Authorization,
    /// The access token's audience, when there is one.
    pub resource_server: Option<ResourceServer>,
    /// Custom claims the actions before this one set on the access token.
    pub access_token_claims: Map<String, Value>,
    /// Custom claims the actions before this one set on the id token.
    pub id_token_claims: Map<String, Value>,
}

#[derive(Debug, Clone)]
pub struct User {
    /// `connection|upstream subject`.
    pub user_id: String,
    /// The profile the profile fetcher returned.
    pub profile: Map<String, Value>,
    pub user_metadata: Map<String, Value>,
    pub app_metadata: Map<String, Value>,
    /// When the previous login happened (RFC 3339), if there was one.
    pub last_login: Option<String>,
    /// When the user was first stored (RFC 3339): now, on a first login.
    pub created_at: String,
}

#[derive(Debug, Clone)]
pub struct Stats {
    /// Logins of this user, this one included.
    pub logins_count: u32,
}

#[derive(Debug, Clone)]
pub struct Client {
    pub client_id: String,
    pub name: String,
    /// The client's `metadata` table from config.
    pub metadata: Map<String, Value>,
}

#[derive(Debug, Clone)]
pub struct Connection {
    pub name: String,
    pub strategy: String,
}

#[derive(Debug, Clone)]
pub struct Request {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The host name the browser came back to.
    pub hostname: Option<String>,
    /// The browser's preferred language.
    pub language: Option<String>,
    /// The authorization request's parameters (empty on a refresh).
    pub query: Map<String, Value>,
}

/// The app's request (Auth0's `event.transaction`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct Transaction {
    /// `oidc-basic-profile` for a sign-in, `oauth2-refresh-token` for a refresh.
    pub protocol: String,
    /// The scopes the app asked for.
    pub requested_scopes: Vec<String>,
    pub redirect_uri: Option<String>,
    pub response_type: Vec<String>,
    pub ui_locales: Vec<String>,
    pub acr_values: Vec<String>,
    pub login_hint: Option<String>,
}

/// How the user authenticated upstream (Auth0's `event.authentication`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct Authentication {
    pub methods: Vec<AuthenticationMethod>,
}

/// One upstream `amr` value, at the upstream's `auth_time`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct AuthenticationMethod {
    pub name: String,
    /// RFC 3339.
    pub timestamp: String,
}

/// What the user holds (Auth0's `event.authorization`).
#[derive(Debug, Clone, Default)]
pub struct Authorization {
    /// The names of the user's roles, sorted.
    pub roles: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ResourceServer {
    pub identifier: String,
}

/// The WIT `client` record, which the credentials-exchange world shares.
impl From<bindings::claimsmith::plugin::event_types::Client> for Client {
    fn from(client: bindings::claimsmith::plugin::event_types::Client) -> Self {
        Client {
            client_id: client.client_id,
            name: client.name,
            metadata: crate::parse_object(&client.metadata),
        }
    }
}

impl From<bindings::Event> for Event {
    fn from(event: bindings::Event) -> Self {
        Event {
            user: User {
                user_id: event.user.user_id,
                profile: crate::parse_object(&event.user.profile),
                user_metadata: crate::parse_object(&event.user.user_metadata),
                app_metadata: crate::parse_object(&event.user.app_metadata),
                last_login: event.user.last_login,
                created_at: event.user.created_at,
            },
            stats: Stats {
                logins_count: event.user.logins_count,
            },
            client: Client::from(event.client),
            connection: Connection {
                name: event.connection.name,
                strategy: event.connection.strategy,
            },
            request: Request {
                ip: event.request.ip,
                user_agent: event.request.user_agent,
                hostname: event.request.hostname,
                language: event.request.language,
                query: crate::parse_object(&event.request.query),
            },
            // The host writes both: an unreadable one is the default.
            transaction: serde_json::from_str(&event.transaction).unwrap_or_default(),
            authentication: serde_json::from_str(&event.authentication).unwrap_or_default(),
            authorization: Authorization {
                roles: event.authorization.roles,
            },
            resource_server: event
                .audience
                .map(|identifier| ResourceServer { identifier }),
            access_token_claims: crate::parse_object(&event.access_token_claims),
            id_token_claims: crate::parse_object(&event.id_token_claims),
        }
    }
}

/// What a post-login action may change, in Auth0's shape. A refused change
/// is an [`Error`] saying why; it changes nothing.
#[derive(Debug)]
pub struct Api {
    _private: (),
}

impl Api {
    pub fn access_token(&mut self) -> AccessToken {
        AccessToken(TokenClaims {
            token: Token::AccessToken,
            label: "access token",
        })
    }

    pub fn id_token(&mut self) -> TokenClaims {
        TokenClaims {
            token: Token::IdToken,
            label: "id token",
        }
    }

    pub fn access(&mut self) -> Access {
        Access { _private: () }
    }

    pub fn user(&mut self) -> UserMetadata {
        UserMetadata { _private: () }
    }

    /// Auth0's `api.cache`: strings this action keeps across logins.
    pub fn cache(&mut self) -> Cache {
        Cache::new()
    }

    /// Auth0's `api.redirect`: sending the user to another page mid-login.
    pub fn redirect(&mut self) -> Redirect {
        Redirect { _private: () }
    }
}

/// Auth0's `api.cache`: short-lived strings the host keeps for this action
/// (each call is a fresh instance). Times are milliseconds since the epoch.
#[derive(Debug)]
pub struct Cache {
    _private: (),
}

pub use bindings::claimsmith::plugin::cache::{CacheError, Entry as CacheEntry};

impl Cache {
    /// For both action worlds' `Api`: the cache interface is the same one.
    pub(crate) fn new() -> Self {
        Cache { _private: () }
    }

    /// The entry at `key`, unless it is absent or expired.
    pub fn get(&self, key: &str) -> Option<CacheEntry> {
        bindings::claimsmith::plugin::cache::get(key)
    }

    /// Stores `value` at `key` for `ttl_ms` (or until `expires_at`, the
    /// earlier of both; 15 minutes when neither), at most 24 hours.
    pub fn set(
        &self,
        key: &str,
        value: &str,
        ttl_ms: Option<u64>,
        expires_at: Option<u64>,
    ) -> Result<CacheEntry, CacheError> {
        bindings::claimsmith::plugin::cache::set(key, value, ttl_ms, expires_at)
    }

    /// Removes the entry at `key`; true when there was one.
    pub fn delete(&self, key: &str) -> bool {
        bindings::claimsmith::plugin::cache::delete(key)
    }
}

/// The custom claims of one token.
#[derive(Debug)]
pub struct TokenClaims {
    token: Token,
    label: &'static str,
}

impl TokenClaims {
    /// Sets the custom claim `name`; reserved claims (`sub`, `scope`, ...) are refused.
    pub fn set_custom_claim(&self, name: &str, value: &impl Serialize) -> Result<(), Error> {
        let text = crate::json_text(value, &format!("claim `{name}`"))?;
        host::set_custom_claim(self.token, name, &text)
            .map_err(|e| refused(&format!("cannot set the {} claim `{name}`", self.label), &e))
    }

    pub fn remove_custom_claim(&self, name: &str) -> Result<(), Error> {
        host::remove_custom_claim(self.token, name).map_err(|e| {
            refused(
                &format!("cannot remove the {} claim `{name}`", self.label),
                &e,
            )
        })
    }
}

/// The access token: its custom claims and its scopes.
#[derive(Debug)]
pub struct AccessToken(TokenClaims);

impl std::ops::Deref for AccessToken {
    type Target = TokenClaims;

    fn deref(&self) -> &TokenClaims {
        &self.0
    }
}

impl AccessToken {
    pub fn add_scope(&self, scope: &str) -> Result<(), Error> {
        host::add_scope(scope).map_err(|e| refused(&format!("cannot add the scope `{scope}`"), &e))
    }

    pub fn remove_scope(&self, scope: &str) {
        host::remove_scope(scope);
    }
}

#[derive(Debug)]
pub struct Access {
    _private: (),
}

impl Access {
    /// Denies the login; no token is minted.
    pub fn deny(&self, reason: &str) {
        host::deny(reason);
    }
}

#[derive(Debug)]
pub struct UserMetadata {
    _private: (),
}

impl UserMetadata {
    pub fn set_user_metadata(&self, key: &str, value: &impl Serialize) -> Result<(), Error> {
        let text = crate::json_text(value, &format!("user metadata `{key}`"))?;
        host::set_user_metadata(key, &text)
            .map_err(|e| refused(&format!("cannot set user metadata `{key}`"), &e))
    }

    pub fn set_app_metadata(&self, key: &str, value: &impl Serialize) -> Result<(), Error> {
        let text = crate::json_text(value, &format!("app metadata `{key}`"))?;
        host::set_app_metadata(key, &text)
            .map_err(|e| refused(&format!("cannot set app metadata `{key}`"), &e))
    }
}

fn refused(what: &str, error: &ApiError) -> Error {
    crate::refusal!(ApiError, what, error)
}

/// Auth0's `api.redirect`. The host sends the user once the action returns,
/// signs and checks the tokens, and refuses every call on a refresh.
#[derive(Debug)]
pub struct Redirect {
    _private: (),
}

impl Redirect {
    /// Sends the user to `url` with the `query` parameters once this action
    /// returns (a later call replaces this one; a denial wins). The chain
    /// resumes when they come back to `<issuer>/continue`, with this
    /// action's continue handler, the second of
    /// [`post_login_action!`](crate::post_login_action).
    pub fn send_user_to(&self, url: &str, query: &[(&str, &str)]) -> Result<(), Error> {
        let query: Vec<(String, String)> = query
            .iter()
            .map(|&(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
        host_redirect::send_user_to(url, &query)
            .map_err(|e| redirect_refused("api.redirect.send_user_to", e))
    }

    /// A token (an HS256 JWT signed with `secret`) carrying `payload`, a JSON
    /// object, for the page the user is sent to, expiring after
    /// `expires_in_seconds` (Auth0's default is 900). The host adds `iss`,
    /// `iat`, `exp`, this login's `state`, and `sub` unless `payload` has one.
    pub fn encode_token(
        &self,
        secret: &str,
        payload: &impl Serialize,
        expires_in_seconds: u64,
    ) -> Result<String, Error> {
        let what = "api.redirect.encode_token";
        let text = crate::json_text(payload, &format!("{what}: `payload`"))?;
        host_redirect::encode_token(secret, &text, expires_in_seconds)
            .map_err(|e| redirect_refused(what, e))
    }

    /// The payload of the token the user brought back in the continue
    /// request's parameter `token_parameter_name` (Auth0's default is
    /// `session_token`), once its signature with `secret`, its expiry and its
    /// login check out. Only in the continue handler.
    pub fn validate_token(
        &self,
        secret: &str,
        token_parameter_name: &str,
    ) -> Result<Map<String, Value>, Error> {
        host_redirect::validate_token(secret, token_parameter_name)
            .map(|claims| crate::parse_object(&claims))
            .map_err(|e| redirect_refused("api.redirect.validate_token", e))
    }
}

/// `what: case: detail` for a redirect call the host refused, as the other
/// SDKs word it.
fn redirect_refused(what: &str, error: RedirectError) -> Error {
    let (case, why) = match error {
        RedirectError::NotAllowed(why) => ("not-allowed", why),
        RedirectError::InvalidUrl(why) => ("invalid-url", why),
        RedirectError::InvalidPayload(why) => ("invalid-payload", why),
        RedirectError::InvalidToken(why) => ("invalid-token", why),
    };
    Error::msg(format!("{what}: {case}: {why}"))
}

/// Runs the plugin's function on the host's call; used by
/// [`post_login_action!`](crate::post_login_action).
#[doc(hidden)]
pub fn run(
    event: bindings::Event,
    handler: fn(&Event, &mut Api) -> Result<(), Error>,
) -> Result<(), String> {
    crate::run_handler(Event::from(event), &mut Api { _private: () }, handler)
}

/// The continue handler of an action given none: the user's coming back
/// changes nothing, and the chain resumes, as in Auth0.
#[doc(hidden)]
pub fn resume(_event: &Event, _api: &mut Api) -> Result<(), Error> {
    Ok(())
}

/// Makes this crate a post-login action that runs `handler`, a
/// `fn(&Event, &mut Api) -> Result<(), Error>`, at each login, and the
/// optional second handler, of the same type, when the user comes back from
/// the page [`Redirect::send_user_to`](crate::action::Redirect::send_user_to)
/// sent them to (Auth0's `onContinuePostLogin`):
///
/// ```ignore
/// claimsmith_sdk::post_login_action!(on_execute_post_login);
/// claimsmith_sdk::post_login_action!(on_execute_post_login, on_continue_post_login);
/// ```
#[macro_export]
macro_rules! post_login_action {
    ($handler:path) => {
        $crate::post_login_action!($handler, $crate::action::resume);
    };
    ($handler:path, $on_continue:path) => {
        struct ClaimsmithPostLoginAction;
        impl $crate::action::bindings::Guest for ClaimsmithPostLoginAction {
            fn on_execute_post_login(
                event: $crate::action::bindings::Event,
            ) -> ::core::result::Result<(), ::std::string::String> {
                $crate::action::run(event, $handler)
            }
            fn on_continue_post_login(
                event: $crate::action::bindings::Event,
            ) -> ::core::result::Result<(), ::std::string::String> {
                $crate::action::run(event, $on_continue)
            }
        }
        $crate::action::bindings::export!(ClaimsmithPostLoginAction);
    };
}
