//! Claimsmith plugins in Rust, in the shape of Auth0's scripts.
//!
//! A post-login action is one function over a typed [`action::Event`] and an
//! [`action::Api`]; a credentials-exchange action one over a
//! [`credentials::Event`] and a [`credentials::Api`]; a profile fetcher is one
//! function from the upstream access token and a [`fetcher::FetchContext`] to
//! a [`fetcher::Profile`].
//! Errors go through `?`: anything that implements `std::error::Error`, or a
//! `String`, converts into [`Error`], whose text fails the login.
//!
//! ```ignore
//! use claimsmith_sdk::action::{Api, Event};
//!
//! fn on_execute_post_login(event: &Event, api: &mut Api) -> Result<(), claimsmith_sdk::Error> {
//!     if let Some(country) = event.user.profile.get("geo_ip_country") {
//!         api.access_token().set_custom_claim("geo_ip_country", country)?;
//!     }
//!     Ok(())
//! }
//!
//! claimsmith_sdk::post_login_action!(on_execute_post_login);
//! ```
//!
//! An action that sends the user away ([`action::Redirect::send_user_to`])
//! names a second function, Auth0's `onContinuePostLogin`, run when they come
//! back: `post_login_action!(on_execute_post_login, on_continue_post_login)`.
//!
//! The WIT contract (`wit/claimsmith.wit`) stays underneath: this crate
//! holds the bindings of the three worlds (post-login actions are built for
//! `resumable-post-login-action`), and the export macros
//! (`post_login_action!`, `credentials_exchange!`, `profile_fetcher!`) make a
//! crate a component of one of them.

pub mod action;
pub mod credentials;
pub mod fetcher;
pub mod http;
pub mod log;

use std::fmt;

/// Why a plugin failed; its text becomes the step's error.
///
/// Like `anyhow::Error`, it does not implement `std::error::Error` itself,
/// so that every error type, `String` and `&str` convert into it through `?`.
pub struct Error(String);

impl Error {
    pub fn msg(message: impl fmt::Display) -> Self {
        Error(message.to_string())
    }
}

impl<E: Into<Box<dyn std::error::Error + Send + Sync>>> From<E> for Error {
    fn from(error: E) -> Self {
        Error(error.into().to_string())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// The value of this plugin's secret `name`, or `None`.
pub fn secret(name: &str) -> Option<String> {
    fetcher::bindings::claimsmith::plugin::secrets::secret(name)
}

/// `value` as JSON text for the host; an error naming `what` when it cannot be.
fn json_text(value: &impl serde::Serialize, what: &str) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|e| Error::msg(format!("{what}: {e}")))
}

/// `what: case: detail` for a change the host refused, from either action
/// world's error type (`api-error`, `claim-error`): the same four cases,
/// generated as two types.
macro_rules! refusal {
    ($error_type:ident, $what:expr, $error:expr) => {
        $crate::Error::msg(match $error {
            $error_type::ReservedClaim(name) => format!("{}: reserved-claim: {name}", $what),
            $error_type::InvalidJson(why) => format!("{}: invalid-json: {why}", $what),
            $error_type::TooLarge(cap) => format!("{}: too-large: {cap}", $what),
            $error_type::InvalidName(why) => format!("{}: invalid-name: {why}", $what),
        })
    };
}
pub(crate) use refusal;

/// Runs an action's `handler` on the event and api of one call; the WIT
/// export's result (an error's text fails the step).
fn run_handler<E, A>(
    event: E,
    api: &mut A,
    handler: fn(&E, &mut A) -> Result<(), Error>,
) -> Result<(), String> {
    handler(&event, api).map_err(|e| e.to_string())
}

/// Parses a JSON object text from the host; anything else reads as empty.
fn parse_object(text: &str) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::from_str(text) {
        Ok(serde_json::Value::Object(object)) => object,
        _ => serde_json::Map::new(),
    }
}
