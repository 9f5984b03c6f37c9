//! OAuth and OIDC protocol primitives, shared by the service and the
//! development provider: the error codes, random values, PKCE (RFC 7636) and
//! form decoding.
//! Nothing here knows about clients, users or plugins, and it must stay free
//! of HTTP frameworks (no axum) and of every other Claimsmith crate: the load
//! driver links it without linking wasmtime.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// The error codes an authorization server answers with, each where its
/// RFC defines it. Typed so that a misspelt code does not compile; the
/// wire form is [`ErrorCode::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// RFC 6749 §4.1.2.1 and §5.2.
    InvalidRequest,
    /// RFC 6749 §5.2.
    InvalidClient,
    /// RFC 6749 §5.2.
    InvalidGrant,
    /// RFC 6749 §4.1.2.1 and §5.2.
    UnauthorizedClient,
    /// RFC 6749 §5.2.
    UnsupportedGrantType,
    /// RFC 6749 §4.1.2.1.
    UnsupportedResponseType,
    /// RFC 6749 §4.1.2.1 and §5.2.
    InvalidScope,
    /// RFC 6749 §4.1.2.1.
    AccessDenied,
    /// RFC 6749 §4.1.2.1.
    ServerError,
    /// RFC 6750 §3.1: a bearer token that is expired, revoked or malformed.
    InvalidToken,
    /// OIDC Core §3.1.2.6.
    LoginRequired,
    /// OIDC Core §3.1.2.6.
    InteractionRequired,
    /// OIDC Core §3.1.2.6.
    ConsentRequired,
    /// OIDC Core §3.1.2.6.
    AccountSelectionRequired,
}

impl ErrorCode {
    /// The codes an upstream may answer to `prompt=none` and the like
    /// (OIDC Core §3.1.2.6), which an app needs as they are: they tell it
    /// the user must interact.
    pub const INTERACTION: [ErrorCode; 4] = [
        ErrorCode::LoginRequired,
        ErrorCode::InteractionRequired,
        ErrorCode::ConsentRequired,
        ErrorCode::AccountSelectionRequired,
    ];

    /// The code as it is sent.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::ServerError => "server_error",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::InteractionRequired => "interaction_required",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::AccountSelectionRequired => "account_selection_required",
        }
    }

    /// The interaction code an upstream answered, if `code` is one.
    pub fn interaction(code: &str) -> Option<ErrorCode> {
        ErrorCode::INTERACTION
            .into_iter()
            .find(|known| known.as_str() == code)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// 256 random bits, base64url: codes, states, nonces, verifiers, tokens.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    // aws-lc aborts rather than return predictable bytes.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The PKCE S256 challenge of `verifier` (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// RFC 7636 §4.1: 43 to 128 unreserved characters.
pub fn is_valid_code_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// An S256 challenge is the base64url (no padding) of 32 bytes: 43 characters.
pub fn is_valid_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// Decodes one `application/x-www-form-urlencoded` component ('+' is a
/// space), as HTTP Basic client credentials are (RFC 6749 §2.3.1).
pub fn form_urldecode(input: &str) -> Option<String> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex_digits = bytes.get(i + 1..i + 3)?;
                let text = std::str::from_utf8(hex_digits).ok()?;
                out.push(u8::from_str_radix(text, 16).ok()?);
                i += 2;
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Encodes one component as `application/x-www-form-urlencoded`, as HTTP
/// Basic client credentials must be before base64 (RFC 6749 §2.3.1).
pub fn form_urlencode(input: &str) -> String {
    form_urlencoded::byte_serialize(input.as_bytes()).collect()
}

/// The credentials of an `Authorization` header using `scheme`, whose name is
/// case-insensitive (RFC 9110 §11.1).
pub fn authorization_credentials<'h>(header: &'h str, scheme: &str) -> Option<&'h str> {
    let (name, credentials) = header.split_once(' ')?;
    name.eq_ignore_ascii_case(scheme)
        .then(|| credentials.trim_start())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_interaction_codes_pass_through_from_an_upstream() {
        assert_eq!(
            ErrorCode::interaction("consent_required"),
            Some(ErrorCode::ConsentRequired)
        );
        assert_eq!(ErrorCode::interaction("access_denied"), None);
        assert_eq!(ErrorCode::interaction("server_error"), None);
        assert_eq!(
            ErrorCode::AccountSelectionRequired.to_string(),
            "account_selection_required"
        );
    }

    #[test]
    fn pkce_matches_the_rfc_7636_example() {
        // RFC 7636 Appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(is_valid_s256_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!is_valid_s256_challenge("short"));
        assert!(!is_valid_code_verifier("too-short"));
        assert!(!is_valid_code_verifier(&format!("{}!", "a".repeat(50))));
    }

    #[test]
    fn authorization_schemes_are_case_insensitive() {
        assert_eq!(
            authorization_credentials("Bearer abc", "Bearer"),
            Some("abc")
        );
        assert_eq!(
            authorization_credentials("bearer abc", "Bearer"),
            Some("abc")
        );
        assert_eq!(authorization_credentials("BASIC  x", "Basic"), Some("x"));
        assert_eq!(authorization_credentials("Basic", "Basic"), None);
        assert_eq!(authorization_credentials("Bearerabc", "Bearer"), None);
    }

    #[test]
    fn form_components_round_trip() {
        let secret = "a b+c:d%e/é";
        assert_eq!(form_urlencode(secret), "a+b%2Bc%3Ad%25e%2F%C3%A9");
        assert_eq!(
            form_urldecode(&form_urlencode(secret)).as_deref(),
            Some(secret)
        );
    }

    #[test]
    fn form_components_decode() {
        assert_eq!(form_urldecode("a+b%2Bc%3A").as_deref(), Some("a b+c:"));
        assert_eq!(form_urldecode("%zz"), None);
        assert_ne!(random_token(), random_token());
    }
}
