//! The login waiting for the user to come back from the upstream, held by the
//! browser that started it rather than by the server.
//!
//! `/authorize` is open to anyone: whatever it keeps per request, a flood of
//! requests fills. So the pending login is sealed (AES-256-GCM, a key made at
//! start and never written anywhere) into a cookie of the browser, bound to
//! the upstream `state` in the URL as additional data, with its expiry
//! inside. The server keeps nothing per attempt; a callback without the
//! cookie (another browser, an expired or forged one) is refused, which is
//! also what stops login CSRF. A restart makes the key anew, so sign-ins in
//! progress then start again, as they did when they were held in memory.
//!
//! Owns the sealing and the size bounds of what is sealed; it does not check
//! the request (that is [`super::authorize`]).

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// The longest `state` an app may send; longer is refused, not stored.
pub(crate) const MAX_STATE_LEN: usize = 1024;
/// The longest `nonce` an app may send.
pub(crate) const MAX_NONCE_LEN: usize = 512;
/// Browsers keep cookies up to 4096 bytes, name included.
const MAX_SEALED_LEN: usize = 3800;

/// A login waiting for the user to come back from the upstream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    pub(crate) reauthentication: crate::oidc::upstream::Reauthentication,
    /// Unix seconds when the login began.
    pub(crate) started_at: u64,
    /// Unix seconds after which the login cannot be finished.
    pub(crate) expires_at: u64,
}

/// The sealed form of this login is larger than a browser keeps.
#[derive(Debug)]
pub(crate) struct TooLarge;

pub(crate) struct LoginSealer {
    key: RandomizedNonceKey,
}

impl LoginSealer {
    /// A sealer with a fresh random key.
    pub(crate) fn generate() -> Self {
        let mut key = [0u8; 32];
        // aws-lc aborts rather than return predictable bytes.
        let _ = aws_lc_rs::rand::fill(&mut key);
        let key = RandomizedNonceKey::new(&AES_256_GCM, &key)
            .unwrap_or_else(|_| unreachable!("a 32-byte key is an AES-256 key"));
        LoginSealer { key }
    }

    /// `login`, encrypted and authenticated, bound to `upstream_state`.
    pub(crate) fn seal(
        &self,
        upstream_state: &str,
        login: &PendingLogin,
    ) -> Result<String, TooLarge> {
        let mut sealed = serde_json::to_vec(login).map_err(|_| TooLarge)?;
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(upstream_state.as_bytes()), &mut sealed)
            .map_err(|_| TooLarge)?;
        let mut bytes = nonce.as_ref().to_vec();
        bytes.extend_from_slice(&sealed);
        let encoded = URL_SAFE_NO_PAD.encode(bytes);
        (encoded.len() <= MAX_SEALED_LEN)
            .then_some(encoded)
            .ok_or(TooLarge)
    }

    /// The login sealed in `sealed` for `upstream_state`, if this process
    /// sealed it and it has not expired at `now` (Unix seconds).
    pub(crate) fn open(
        &self,
        upstream_state: &str,
        sealed: &str,
        now: u64,
    ) -> Option<PendingLogin> {
        if sealed.len() > MAX_SEALED_LEN {
            return None;
        }
        let mut bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let mut ciphertext = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).ok()?;
        let plaintext = self
            .key
            .open_in_place(nonce, Aad::from(upstream_state.as_bytes()), &mut ciphertext)
            .ok()?;
        let login: PendingLogin = serde_json::from_slice(plaintext).ok()?;
        (login.expires_at > now).then_some(login)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            reauthentication: crate::oidc::upstream::Reauthentication {
                prompt: Some("login consent".into()),
                max_age: Some(86_400),
            },
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
            "another process's key"
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
    fn the_largest_allowed_request_fits_a_cookie_and_more_does_not() {
        let sealer = LoginSealer::generate();
        assert!(sealer.seal("state", &login(100)).is_ok());
        let mut huge = login(100);
        huge.redirect_uri = format!("https://app.example/{}", "p".repeat(2000));
        assert!(sealer.seal("state", &huge).is_err());
    }
}
