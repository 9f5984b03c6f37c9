//! The login waiting for the user to come back from the upstream, held by the
//! browser that started it rather than by the server.
//!
//! `/authorize` is open to anyone: whatever it keeps per request, a flood of
//! requests fills. So the pending login is sealed (AES-256-GCM, under a key
//! derived from the deployment's key-encryption key, see [`claimsmith_tokens::sealing`])
//! into a cookie of the browser, bound to the upstream `state` in the URL as
//! additional data, with its expiry inside. The server keeps nothing per
//! attempt, so any host of the deployment can take the callback; one without
//! the cookie (another browser, an expired or forged one) is refused, which
//! is also what stops login CSRF.
//!
//! Owns the sealing and the size bounds of what is sealed; it does not check
//! the request (that is [`super::authorize`]).

use serde::{Deserialize, Serialize};

use claimsmith_tokens::sealing::{KeyEncryptionKey, Sealer};

/// The longest `state` an app may send; longer is refused, not stored.
pub(crate) const MAX_STATE_LEN: usize = 1024;
/// The longest `nonce` an app may send.
pub(crate) const MAX_NONCE_LEN: usize = 512;
/// Browsers keep cookies up to 4096 bytes, name included.
const MAX_SEALED_LEN: usize = 3800;

/// A login waiting for the user to come back from the upstream. Its debug
/// output leaves out the upstream PKCE verifier and nonce.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PendingLogin {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) app_state: Option<String>,
    pub(crate) app_nonce: Option<String>,
    pub(crate) code_challenge: Option<String>,
    pub(crate) scopes: Vec<String>,
    pub(crate) audience: Option<String>,
    pub(crate) connection: String,
    pub(crate) upstream_nonce: String,
    pub(crate) upstream_verifier: String,
    /// `prompt` and `max_age`, checked against the upstream's `auth_time`.
    pub(crate) reauthentication: crate::upstream::Reauthentication,
    /// The app's request, for the actions (`event.transaction`).
    pub(crate) transaction: claimsmith_core::Transaction,
    /// Unix seconds when the login began.
    pub(crate) started_at: u64,
    /// Unix seconds after which the login cannot be finished.
    pub(crate) expires_at: u64,
}

impl std::fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingLogin")
            .field("client_id", &self.client_id)
            .field("redirect_uri", &self.redirect_uri)
            .field("connection", &self.connection)
            .field("scopes", &self.scopes)
            .field("audience", &self.audience)
            .field("upstream_verifier", &"<redacted>")
            .field("started_at", &self.started_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The sealed form of this login is larger than a browser keeps.
#[derive(Debug)]
pub(crate) struct TooLarge;

pub(crate) struct LoginSealer {
    sealer: Sealer,
}

impl LoginSealer {
    /// A sealer with a fresh random key (a test's, or a process's own).
    #[cfg(test)]
    pub(crate) fn generate() -> Self {
        LoginSealer {
            sealer: Sealer::generate(),
        }
    }

    /// The deployment's sealer: every host with the same key-encryption key
    /// opens the logins any of them sealed, so the callback may land on any.
    pub(crate) fn new(key_encryption_key: &KeyEncryptionKey) -> Self {
        LoginSealer {
            sealer: key_encryption_key.sealer("pending-login v1"),
        }
    }

    /// `login`, encrypted and authenticated, bound to `upstream_state`.
    pub(crate) fn seal(
        &self,
        upstream_state: &str,
        login: &PendingLogin,
    ) -> Result<String, TooLarge> {
        let plaintext = serde_json::to_vec(login).map_err(|_| TooLarge)?;
        let encoded = self.sealer.seal(upstream_state.as_bytes(), &plaintext);
        (encoded.len() <= MAX_SEALED_LEN)
            .then_some(encoded)
            .ok_or(TooLarge)
    }

    /// The login sealed in `sealed` for `upstream_state`, if a host of this
    /// deployment sealed it and it has not expired at `now` (Unix seconds).
    pub(crate) fn open(
        &self,
        upstream_state: &str,
        sealed: &str,
        now: u64,
    ) -> Option<PendingLogin> {
        if sealed.len() > MAX_SEALED_LEN {
            return None;
        }
        let plaintext = self.sealer.open(upstream_state.as_bytes(), sealed)?;
        let login: PendingLogin = serde_json::from_slice(&plaintext).ok()?;
        (login.expires_at > now).then_some(login)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn login(expires_at: u64) -> PendingLogin {
        PendingLogin {
            client_id: "web-app".into(),
            redirect_uri: "https://app.example/callback".into(),
            app_state: Some("s".repeat(MAX_STATE_LEN)),
            app_nonce: Some("n".repeat(MAX_NONCE_LEN)),
            code_challenge: Some("c".repeat(43)),
            scopes: vec!["openid".into(), "profile".into(), "offline_access".into()],
            audience: Some("https://api.example.com".into()),
            connection: "okta".into(),
            upstream_nonce: "u".repeat(43),
            upstream_verifier: "v".repeat(43),
            reauthentication: crate::upstream::Reauthentication {
                prompt: Some("login consent".into()),
                max_age: Some(86_400),
                acr_values: Some("urn:example:mfa".into()),
            },
            transaction: claimsmith_core::Transaction::default(),
            started_at: 0,
            expires_at,
        }
    }

    #[test]
    fn a_sealed_login_opens_only_with_its_state_key_and_before_expiry() {
        let sealer = LoginSealer::generate();
        let sealed = sealer.seal("state-1", &login(100)).unwrap();
        assert_eq!(sealer.open("state-1", &sealed, 99), Some(login(100)));
        assert_eq!(sealer.open("state-1", &sealed, 100), None, "expired");
        assert_eq!(sealer.open("state-2", &sealed, 99), None, "other state");
        assert_eq!(
            LoginSealer::generate().open("state-1", &sealed, 99),
            None,
            "another deployment's key"
        );
    }

    #[test]
    fn a_tampered_or_forged_cookie_does_not_open() {
        let sealer = LoginSealer::generate();
        let sealed = sealer.seal("state-1", &login(100)).unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = URL_SAFE_NO_PAD.encode(&bytes);
        assert_eq!(sealer.open("state-1", &tampered, 99), None);
        for forged in ["", "x", "%%%", &"A".repeat(10_000)] {
            assert_eq!(sealer.open("state-1", forged, 99), None, "{forged:.20}");
        }
    }

    #[test]
    fn debug_output_leaves_out_the_upstream_verifier() {
        let shown = format!("{:?}", login(100));
        assert!(shown.contains("web-app"), "{shown}");
        assert!(!shown.contains(&"v".repeat(43)), "{shown}");
    }

    #[test]
    fn the_largest_allowed_request_fits_a_cookie_and_more_does_not() {
        let sealer = LoginSealer::generate();
        assert!(sealer.seal("state", &login(100)).is_ok());
        let mut huge = login(100);
        huge.redirect_uri = format!("https://app.example/{}", "p".repeat(2000));
        assert!(sealer.seal("state", &huge).is_err());
    }
}
