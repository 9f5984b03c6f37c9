//! Secrets the host hands to someone else to keep: pending logins sealed into
//! the browser's cookie, signing keys at rest in the database, issued codes
//! waiting in the database for their exchange.
//!
//! Owns the one cipher (AES-256-GCM, from aws-lc-rs) and the key-encryption
//! key every host of a deployment shares, from which each use derives its own
//! key (HKDF-SHA256 with a label), so that no two uses can open each other's
//! boxes. It does not decide what is sealed or for how long.

use std::io::Write as _;
use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, KeyType, Salt};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

/// The shortest key-encryption key accepted from config: 32 characters of
/// `openssl rand -base64 32` carry far more than 128 bits.
pub const MIN_KEY_ENCRYPTION_KEY_LEN: usize = 32;

/// The deployment's key-encryption key: the root of every key this module
/// derives. Every host of a deployment must have the same one.
pub struct KeyEncryptionKey {
    secret: Vec<u8>,
}

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyEncryptionKey(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read the key-encryption key {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("cannot write the key-encryption key {path}: {error}")]
    Write { path: String, error: std::io::Error },
    #[error(
        "the key-encryption key in {path} is shorter than {MIN_KEY_ENCRYPTION_KEY_LEN} characters"
    )]
    TooShort { path: String },
}

impl KeyEncryptionKey {
    /// The key as written in config (checked there to be long enough).
    pub fn from_secret(secret: &str) -> Self {
        KeyEncryptionKey {
            secret: secret.trim().as_bytes().to_vec(),
        }
    }

    /// A one-host deployment's key: read from `path`, or made (32 random
    /// bytes, base64) and written there with mode 0600 when it does not
    /// exist yet.
    pub fn load_or_generate(path: &Path) -> Result<Self, KeyFileError> {
        let shown = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) if text.trim().len() >= MIN_KEY_ENCRYPTION_KEY_LEN => {
                return Ok(Self::from_secret(&text));
            }
            Ok(_) => return Err(KeyFileError::TooShort { path: shown }),
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                return Err(KeyFileError::Read { path: shown, error });
            }
            Err(_) => {}
        }
        let mut random = [0u8; 32];
        // aws-lc aborts rather than return predictable bytes.
        let _ = aws_lc_rs::rand::fill(&mut random);
        let text = STANDARD.encode(random);
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()
        };
        match write() {
            Ok(()) => {
                tracing::info!(path = %shown, "generated the key-encryption key");
                Ok(Self::from_secret(&text))
            }
            // Another process of this host made it first: use theirs.
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                Self::load_or_generate(path)
            }
            Err(error) => Err(KeyFileError::Write { path: shown, error }),
        }
    }

    /// The sealer for one use, named by `label`.
    pub fn sealer(&self, label: &str) -> Sealer {
        let mut key = [0u8; 32];
        let prk = Salt::new(HKDF_SHA256, b"claimsmith").extract(&self.secret);
        let info = [label.as_bytes()];
        prk.expand(&info, KeyLength(key.len()))
            .and_then(|okm| okm.fill(&mut key))
            .unwrap_or_else(|_| unreachable!("32 bytes is within HKDF-SHA256's output"));
        Sealer::new(&key)
    }
}

struct KeyLength(usize);

impl KeyType for KeyLength {
    fn len(&self) -> usize {
        self.0
    }
}

/// Encrypts and authenticates small values under one key, each bound to
/// additional data it must be opened with (a name, an id).
pub struct Sealer {
    key: RandomizedNonceKey,
}

impl Sealer {
    pub fn new(key: &[u8; 32]) -> Self {
        let key = RandomizedNonceKey::new(&AES_256_GCM, key)
            .unwrap_or_else(|_| unreachable!("a 32-byte key is an AES-256 key"));
        Sealer { key }
    }

    /// A sealer with a fresh random key, for values that live as long as
    /// the process (and in tests).
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        let _ = aws_lc_rs::rand::fill(&mut key);
        Self::new(&key)
    }

    /// `plaintext` sealed and bound to `bound_to`, as base64url: nonce,
    /// ciphertext, tag.
    pub fn seal(&self, bound_to: &[u8], plaintext: &[u8]) -> String {
        let mut sealed = plaintext.to_vec();
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(bound_to), &mut sealed)
            .unwrap_or_else(|_| unreachable!("AES-GCM seals anything below 64 GiB"));
        let mut bytes = nonce.as_ref().to_vec();
        bytes.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// What [`Sealer::seal`] sealed with this key and `bound_to`; None for
    /// anything else (another key, other bound data, altered bytes).
    pub fn open(&self, bound_to: &[u8], sealed: &str) -> Option<Vec<u8>> {
        let mut bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let mut ciphertext = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).ok()?;
        let plaintext = self
            .key
            .open_in_place(nonce, Aad::from(bound_to), &mut ciphertext)
            .ok()?;
        Some(plaintext.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn a_sealed_value_opens_only_with_its_key_label_and_bound_data() {
        let kek = KeyEncryptionKey::from_secret(SECRET);
        let sealed = kek.sealer("codes").seal(b"id-1", b"payload");
        assert_eq!(
            kek.sealer("codes").open(b"id-1", &sealed).as_deref(),
            Some(&b"payload"[..]),
            "another host with the same key opens it"
        );
        assert_eq!(kek.sealer("keys").open(b"id-1", &sealed), None, "label");
        assert_eq!(
            kek.sealer("codes").open(b"id-2", &sealed),
            None,
            "bound data"
        );
        let other = KeyEncryptionKey::from_secret("another key, long enough to pass!!");
        assert_eq!(other.sealer("codes").open(b"id-1", &sealed), None, "key");
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 2;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).expect("ascii");
        assert_eq!(kek.sealer("codes").open(b"id-1", &altered), None, "bytes");
    }

    #[test]
    fn the_generated_key_file_is_private_and_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys").join("encryption.key");
        let first = KeyEncryptionKey::load_or_generate(&path).expect("generate");
        let second = KeyEncryptionKey::load_or_generate(&path).expect("load");
        let sealed = first.sealer("x").seal(b"", b"kept");
        assert_eq!(
            second.sealer("x").open(b"", &sealed).as_deref(),
            Some(&b"kept"[..])
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "short").expect("write");
        let error = KeyEncryptionKey::load_or_generate(&path).expect_err("too short");
        assert!(matches!(error, KeyFileError::TooShort { .. }), "{error}");
    }
}
