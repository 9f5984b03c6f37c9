//! `[[apis]]`: the APIs (Auth0's resource servers) Claimsmith mints access
//! tokens for, each named by its identifier, the tokens' audience.
//!
//! Owns what an API declares: its scopes (the permissions roles give), its
//! tokens' lifetime and whether its tokens carry the user's permissions.
//! Which client may ask for which API is the clients' section's to check.

use std::collections::HashSet;

use serde::Deserialize;
use toml::Spanned;

use crate::{DEFAULT_ALLOWED_SCOPES, Located, MANAGEMENT_SCOPES};

/// An API tokens are minted for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// The audience of its tokens (`https://api.example.com`, say).
    pub identifier: String,
    /// The scopes it defines: what machine clients may be allowed and what
    /// roles' permissions name.
    pub scopes: Vec<String>,
    /// Its access tokens' lifetime; `[tokens] access_token_ttl_secs` when
    /// not set.
    pub token_ttl_secs: Option<u64>,
    /// Auth0's RBAC setting: a user's access token for it carries the
    /// user's permissions for it (`permissions`), and of the scopes an app
    /// asks for that it defines, only those the user holds are granted.
    pub add_permissions: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApi {
    identifier: String,
    #[serde(default)]
    scopes: Vec<String>,
    token_ttl_secs: Option<u64>,
    #[serde(default)]
    add_permissions: bool,
}

/// The longest lifetime an API's tokens may have: 30 days, Auth0's cap.
const MAX_TOKEN_TTL_SECS: u64 = 30 * 24 * 3600;

/// Scopes an API may not define: OpenID Connect's, which every login
/// client asks for, and the Management API's.
fn reserved_scope(scope: &str) -> bool {
    DEFAULT_ALLOWED_SCOPES.contains(&scope)
        || ["address", "phone"].contains(&scope)
        || MANAGEMENT_SCOPES.contains(&scope)
}

/// `[[apis]]`, checked: unique identifiers that are not the Management
/// API's, scopes of their own, a lifetime in bounds.
pub(crate) fn apis_section(
    management_audience: &str,
    raw: Vec<Spanned<RawApi>>,
) -> Result<Vec<ApiConfig>, Located> {
    let mut identifiers = HashSet::new();
    let mut apis = Vec::new();
    for api in raw {
        let span = api.span();
        let api = api.into_inner();
        check_api(management_audience, &api).map_err(|why| (Some(span.clone()), why))?;
        if !identifiers.insert(api.identifier.clone()) {
            return Err((
                Some(span),
                format!("api `{}` is listed twice", api.identifier),
            ));
        }
        apis.push(ApiConfig {
            identifier: api.identifier,
            scopes: api.scopes,
            token_ttl_secs: api.token_ttl_secs,
            add_permissions: api.add_permissions,
        });
    }
    Ok(apis)
}

fn check_api(management_audience: &str, api: &RawApi) -> Result<(), String> {
    let name = &api.identifier;
    if name.trim().is_empty() {
        return Err("an api's identifier is empty".to_owned());
    }
    if name == management_audience {
        return Err(format!(
            "api `{name}` is the Management API's audience, which Claimsmith defines itself"
        ));
    }
    let mut seen = HashSet::new();
    for scope in &api.scopes {
        if scope.is_empty() || scope.contains(char::is_whitespace) {
            return Err(format!(
                "api `{name}`: scope `{scope}` is empty or has a space"
            ));
        }
        if reserved_scope(scope) {
            return Err(format!(
                "api `{name}`: scope `{scope}` is OpenID Connect's or the Management API's"
            ));
        }
        if !seen.insert(scope) {
            return Err(format!("api `{name}`: scope `{scope}` is listed twice"));
        }
    }
    match api.token_ttl_secs {
        Some(ttl) if !(1..=MAX_TOKEN_TTL_SECS).contains(&ttl) => Err(format!(
            "api `{name}`: token_ttl_secs must be 1 to {MAX_TOKEN_TTL_SECS} (30 days)"
        )),
        _ => Ok(()),
    }
}
