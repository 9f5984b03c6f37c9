//! The claim rules every layer applies: which claim names belong to the host.
//!
//! Owns the list; it does not mint (the tokens crate does) or validate a
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
];

/// Whether `name` is one of [`RESERVED_CLAIMS`] (claim names are case-sensitive).
pub fn is_reserved_claim(name: &str) -> bool {
    RESERVED_CLAIMS.contains(&name)
}
