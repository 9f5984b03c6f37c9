//! The claim rules every layer applies: which claim names belong to the host.
//!
//! Owns the lists; it does not mint (the tokens crate does) or validate a
//! plugin's effects (the capabilities do, with this list).

/// Claims the host sets itself; plugins may neither set nor remove them.
pub const RESERVED_CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "azp",
    "nonce",
    "auth_time",
    "at_hash",
    "c_hash",
    "acr",
    "amr",
    "sid",
    "scope",
    "client_id",
    "cnf",
    "act",
    "may_act",
    // The grant a token came from: `client-credentials` marks the machine
    // tokens the Management API accepts, so no plugin may write it.
    "gty",
    // An API's RBAC decides it from the user's roles (`[[apis]]`
    // `add_permissions`): a plugin that wrote it would grant permissions.
    "permissions",
];

/// The audience of Management API tokens: `<issuer>/api/v2/`, as Auth0's.
/// The config keeps it from login clients.
pub fn management_audience(issuer: &str) -> String {
    format!("{issuer}/api/v2/")
}

/// The Management API's scopes. Only a `client_credentials` client may hold
/// them: the config refuses them to login clients and the `api` capability
/// refuses them to actions, so that no user's token carries them.
pub const MANAGEMENT_SCOPES: &[&str] = &[
    "read:users",
    "update:users",
    "read:logs",
    "read:plugins",
    "create:plugins",
    "update:plugins",
    "read:roles",
    "create:roles",
    "update:roles",
    "delete:roles",
];

/// Whether `name` is one of [`RESERVED_CLAIMS`] (claim names are case-sensitive).
pub fn is_reserved_claim(name: &str) -> bool {
    RESERVED_CLAIMS.contains(&name)
}
