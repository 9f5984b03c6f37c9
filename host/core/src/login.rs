//! A login as the host's crates pass it to each other: what the upstream
//! returned, the user as stored, and the report of each step.
//!
//! Owns the shapes only; it does not run, store or mint anything.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One login as the pipeline receives it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// The connection (upstream provider) the user signed in with.
    pub connection: String,
    /// The application the tokens are for.
    pub client_id: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The access token's audience; the client's default when absent.
    pub audience: Option<String>,
    /// The app's nonce, echoed in the id token.
    pub nonce: Option<String>,
    #[serde(default)]
    pub request: RequestInfo,
    /// The authorization request a sign-in answers (Auth0's
    /// `event.transaction`); empty on a refresh.
    #[serde(default)]
    pub transaction: Transaction,
    pub upstream: UpstreamLogin,
    /// The user as stored before this login (nothing for a first login).
    #[serde(default)]
    pub user: StoredUser,
    /// A profile fetched already: the profile step is skipped and the
    /// actions see this one (replays and golden cases of actions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Map<String, Value>>,
    /// A refresh re-running the actions, not a sign-in: the user's login
    /// count and last login stay as they are.
    #[serde(default)]
    pub refresh: bool,
    /// When the user authenticated (unix seconds); now when absent.
    #[serde(default)]
    pub auth_time: Option<u64>,
}

/// The HTTP request that started the login.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RequestInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The `Host` the browser came back to.
    #[serde(default)]
    pub hostname: Option<String>,
    /// The browser's first `Accept-Language`.
    #[serde(default)]
    pub language: Option<String>,
}

/// The app's authorization request, as a sign-in's actions see it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Transaction {
    pub redirect_uri: Option<String>,
    pub response_type: Option<String>,
    /// Space-separated, as sent.
    pub ui_locales: Option<String>,
    /// Space-separated, as sent.
    pub acr_values: Option<String>,
    pub login_hint: Option<String>,
    /// Every parameter of the request (Auth0's `event.request.query`).
    #[serde(default)]
    pub query: Map<String, Value>,
}

/// What the upstream provider returned. The claims are those of a verified
/// id token: the caller verified it.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamLogin {
    pub access_token: String,
    /// The raw id token, handed to the profile fetcher as it is.
    #[serde(default)]
    pub id_token: String,
    pub id_token_claims: Map<String, Value>,
}

/// The tokens are credentials: debug output shows only that they are there.
impl std::fmt::Debug for UpstreamLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamLogin")
            .field("access_token", &"<redacted>")
            .field("id_token", &"<redacted>")
            .field("id_token_claims", &self.id_token_claims)
            .finish()
    }
}

/// A user's stored state before a login.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoredUser {
    #[serde(default)]
    pub user_metadata: Map<String, Value>,
    #[serde(default)]
    pub app_metadata: Map<String, Value>,
    #[serde(default)]
    pub logins_count: u32,
    pub last_login: Option<String>,
    /// When the user was first stored (RFC 3339); none before a first login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// The names of the roles the user holds, sorted (Auth0's
    /// `event.authorization.roles`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// The permissions those roles give for the login's API, sorted, when
    /// the API adds them to its tokens (`[[apis]]` `add_permissions`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<String>,
}

/// The user after a successful login, to be stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    /// `connection|upstream subject`.
    pub user_id: String,
    /// The profile snapshot of this login.
    pub profile: Map<String, Value>,
    pub user_metadata: Map<String, Value>,
    pub app_metadata: Map<String, Value>,
    pub logins_count: u32,
    /// This login's time, RFC 3339.
    pub last_login: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// The plugin's name, or `userinfo` / `mint` for the host's own steps.
    pub name: String,
    /// The store's version of the plugin that ran (`source = "store"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    pub kind: StepKind,
    pub duration: Duration,
    /// Fuel the plugin used; none for the host's own steps.
    pub fuel_consumed: Option<u64>,
    pub status: StepStatus,
    /// The limit the call ran into, for the metrics (the status's error
    /// says it in words): `fuel`, `memory`, `wall_clock` or
    /// `instance_pool`.
    #[serde(skip)]
    pub limit_tripped: Option<&'static str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    ProfileFetcher,
    PostLoginAction,
    CredentialsExchange,
    Userinfo,
    Mint,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Succeeded,
    Denied {
        reason: String,
    },
    /// Failed, and configured `on_error = "continue"`: the chain went on.
    Skipped {
        error: String,
    },
    Failed {
        error: String,
    },
}

/// The id of the user an upstream subject signs in as.
pub fn user_id(connection: &str, upstream_subject: &str) -> String {
    format!("{connection}|{upstream_subject}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_shows_no_token() {
        let tokens = UpstreamLogin {
            access_token: "upstream-access-token-value".into(),
            id_token: "upstream.id.token".into(),
            id_token_claims: Map::from_iter([("sub".to_owned(), Value::from("ada"))]),
        };
        let shown = format!("{tokens:?}");
        assert!(shown.contains("ada"), "{shown}");
        assert!(!shown.contains("upstream-access-token-value"), "{shown}");
        assert!(!shown.contains("upstream.id.token"), "{shown}");
    }
}
