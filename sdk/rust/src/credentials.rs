//! The credentials-exchange world: `on_execute_credentials_exchange(event,
//! api)` over Auth0's `event` and `api` shapes, run before a machine
//! client's access token is minted.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::Error;
pub use crate::action::{Cache, Client, ResourceServer};

/// The generated bindings of the `credentials-exchange` world; the interfaces
/// it shares with the other worlds come from [`crate::fetcher::bindings`] and
/// [`crate::action::bindings`], so that their types are the same ones.
pub mod bindings {
    wit_bindgen::generate!({
        world: "credentials-exchange",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "claimsmith_sdk::credentials::bindings",
        with: {
            "claimsmith:plugin/types@0.1.0": crate::fetcher::bindings::claimsmith::plugin::types,
            "claimsmith:plugin/log@0.1.0": crate::fetcher::bindings::claimsmith::plugin::log,
            "claimsmith:plugin/secrets@0.1.0": crate::fetcher::bindings::claimsmith::plugin::secrets,
            "claimsmith:plugin/http@0.1.0": crate::fetcher::bindings::claimsmith::plugin::http,
            "claimsmith:plugin/event-types@0.1.0": crate::action::bindings::claimsmith::plugin::event_types,
            "claimsmith:plugin/cache@0.1.0": crate::action::bindings::claimsmith::plugin::cache,
        },
    });
}

use bindings::claimsmith::plugin::exchange_api::{self as host, ClaimError};

/// The OAuth errors a denial may answer the token request with: the three
/// Auth0 allows. Parses from Auth0's names (`"invalid_scope"`, ...), for a
/// code read from config or metadata.
pub use bindings::claimsmith::plugin::exchange_api::DenialCode;

/// Auth0's names of the denial codes, as JavaScript and Python plugins give them.
const DENIAL_CODES: [(&str, DenialCode); 3] = [
    ("invalid_scope", DenialCode::InvalidScope),
    ("invalid_request", DenialCode::InvalidRequest),
    ("server_error", DenialCode::ServerError),
];

impl std::str::FromStr for DenialCode {
    type Err = Error;

    /// An unknown code is an error naming it and the three allowed, in the
    /// words the other SDKs use.
    fn from_str(code: &str) -> Result<Self, Error> {
        DENIAL_CODES
            .iter()
            .find(|(name, _)| *name == code)
            .map(|(_, denial)| *denial)
            .ok_or_else(|| {
                let names: Vec<&str> = DENIAL_CODES.iter().map(|(name, _)| *name).collect();
                Error::msg(format!(
                    "the denial code `{code}` is not one of {}",
                    names.join(", ")
                ))
            })
    }
}

/// Everything a credentials-exchange action sees, in Auth0's shape.
#[derive(Debug, Clone)]
pub struct Event {
    /// The machine client asking for the token.
    pub client: Client,
    /// The API the token is for: its identifier is the token's audience.
    pub resource_server: ResourceServer,
    pub transaction: Transaction,
    pub request: Request,
    pub access_token: AccessToken,
}

/// The client's request (Auth0's `event.transaction`).
#[derive(Debug, Clone)]
pub struct Transaction {
    /// The scopes the client asked for, as it asked.
    pub requested_scopes: Vec<String>,
}

/// The token request.
#[derive(Debug, Clone)]
pub struct Request {
    pub ip: Option<String>,
    pub hostname: Option<String>,
    pub user_agent: Option<String>,
    /// The client's preferred language.
    pub language: Option<String>,
    /// `POST`.
    pub method: String,
    /// The form fields, without the client's credentials.
    pub body: Map<String, Value>,
}

/// The access token as it stands before this action (Auth0's
/// `event.accessToken`).
#[derive(Debug, Clone)]
pub struct AccessToken {
    /// The scopes it will carry: those requested and allowed.
    pub scope: Vec<String>,
    /// Custom claims the actions before this one set.
    pub custom_claims: Map<String, Value>,
}

impl From<bindings::ExchangeEvent> for Event {
    fn from(event: bindings::ExchangeEvent) -> Self {
        Event {
            client: Client::from(event.client),
            resource_server: ResourceServer {
                identifier: event.resource_server.identifier,
            },
            transaction: Transaction {
                requested_scopes: event.transaction.requested_scopes,
            },
            request: Request {
                ip: event.request.ip,
                hostname: event.request.hostname,
                user_agent: event.request.user_agent,
                language: event.request.language,
                method: event.request.method,
                body: crate::parse_object(&event.request.body),
            },
            access_token: AccessToken {
                scope: event.access_token.scopes,
                custom_claims: crate::parse_object(&event.access_token.custom_claims),
            },
        }
    }
}

/// What a credentials-exchange action may change, in Auth0's shape. A
/// refused change is an [`Error`] saying why; it changes nothing.
#[derive(Debug)]
pub struct Api {
    _private: (),
}

impl Api {
    pub fn access_token(&mut self) -> AccessTokenClaims {
        AccessTokenClaims { _private: () }
    }

    pub fn access(&mut self) -> Access {
        Access { _private: () }
    }

    /// Auth0's `api.cache`: strings this action keeps across token requests.
    pub fn cache(&mut self) -> Cache {
        Cache::new()
    }
}

/// The custom claims of the access token being minted.
#[derive(Debug)]
pub struct AccessTokenClaims {
    _private: (),
}

impl AccessTokenClaims {
    /// Sets the custom claim `name`; reserved claims (`sub`, `scope`, ...) are refused.
    pub fn set_custom_claim(&self, name: &str, value: &impl Serialize) -> Result<(), Error> {
        let text = crate::json_text(value, &format!("claim `{name}`"))?;
        host::set_custom_claim(name, &text)
            .map_err(|e| refused(&format!("cannot set the access token claim `{name}`"), &e))
    }
}

#[derive(Debug)]
pub struct Access {
    _private: (),
}

impl Access {
    /// Denies the token request: the token endpoint answers the OAuth error
    /// `code` with `reason` as its description.
    pub fn deny(&self, code: DenialCode, reason: &str) {
        host::deny(code, reason);
    }
}

fn refused(what: &str, error: &ClaimError) -> Error {
    crate::refusal!(ClaimError, what, error)
}

/// Runs the plugin's function on the host's call; used by
/// [`credentials_exchange!`](crate::credentials_exchange).
#[doc(hidden)]
pub fn run(
    event: bindings::ExchangeEvent,
    handler: fn(&Event, &mut Api) -> Result<(), Error>,
) -> Result<(), String> {
    crate::run_handler(Event::from(event), &mut Api { _private: () }, handler)
}

/// Makes this crate a credentials-exchange action that runs `handler`, a
/// `fn(&Event, &mut Api) -> Result<(), Error>`.
#[macro_export]
macro_rules! credentials_exchange {
    ($handler:path) => {
        struct ClaimsmithCredentialsExchange;
        impl $crate::credentials::bindings::Guest for ClaimsmithCredentialsExchange {
            fn on_execute_credentials_exchange(
                event: $crate::credentials::bindings::ExchangeEvent,
            ) -> ::core::result::Result<(), ::std::string::String> {
                $crate::credentials::run(event, $handler)
            }
        }
        $crate::credentials::bindings::export!(ClaimsmithCredentialsExchange);
    };
}
