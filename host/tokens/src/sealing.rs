//! Secrets the host hands to someone else to keep: pending logins sealed into
//! the browser's cookie, signing keys at rest in the database, issued codes
//! waiting in the database for their exchange.
//!
//! Owns the one cipher (AES-256-GCM, from aws-lc-rs) and the key-encryption
//! key every host of a deployment shares, from which each use derives its own
//! key (HKDF-SHA256 with a label), so that no two uses can open each other's
//! boxes, and each sealed value a key of its own (see [`Sealer`]). It does not decide what is sealed or for how long.

use std::io::Write as _;
use std::path::Path;

use aws_lc_rs::aead::{
    AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, RandomizedNonceKey, UnboundKey,
};
use aws_lc_rs::hkdf::{HKDF_SHA256, KeyType, Prk, Salt};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

/// The shortest key-encryption key accepted from config: 32 characters of
/// `openssl rand -base64 32` carry far more than 128 bits.
pub const MIN_KEY_ENCRYPTION_KEY_LEN: usize = 32;
/// The least a key-encryption key must carry by [`estimated_bits`].
pub const MIN_KEY_ENCRYPTION_KEY_BITS: f64 = 128.0;

/// Why `secret` cannot be the key-encryption key, if it cannot: too short,
/// or too regular to have been made at random (see [`estimated_bits`]).
pub fn key_encryption_key_weakness(secret: &str) -> Option<String> {
    let secret = secret.trim();
    if secret.len() < MIN_KEY_ENCRYPTION_KEY_LEN {
        return Some(format!(
            "must be at least {MIN_KEY_ENCRYPTION_KEY_LEN} characters \
             (`openssl rand -base64 32` makes one)"
        ));
    }
    let bits = estimated_bits(secret);
    (bits < MIN_KEY_ENCRYPTION_KEY_BITS).then(|| {
        format!(
            "is too regular to be a random key (about {bits:.0} bits, at least \
             {MIN_KEY_ENCRYPTION_KEY_BITS:.0} needed): make one with `openssl rand -base64 32`"
        )
    })
}

/// At most how many bits of randomness `secret` carries: its length times
/// the Shannon entropy of its own byte frequencies. A random key scores far
/// above the bound (44 base64 characters about 210 bits); a repeated
/// character, a short pattern repeated or a word typed over and over scores
/// below it. It cannot tell a long passphrase from a random key, which is
/// why the README asks for `openssl rand`: the key is fed to HKDF, not to a
/// password hash, so it must be random, not memorable.
pub fn estimated_bits(secret: &str) -> f64 {
    let bytes = secret.as_bytes();
    let mut counts = [0usize; 256];
    for &byte in bytes {
        counts[usize::from(byte)] += 1;
    }
    let total = bytes.len() as f64;
    let per_byte: f64 = counts
        .iter()
        .filter(|&&count| count > 0)
        .map(|&count| {
            let p = count as f64 / total;
            -p * p.log2()
        })
        .sum();
    per_byte * total
}

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
    #[error("the key-encryption key in {path} {why}")]
    Weak { path: String, why: String },
}

impl KeyEncryptionKey {
    /// The key as written in config (checked there by
    /// [`key_encryption_key_weakness`]).
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
            Ok(text) => {
                return match key_encryption_key_weakness(&text) {
                    None => Ok(Self::from_secret(&text)),
                    Some(why) => Err(KeyFileError::Weak { path: shown, why }),
                };
            }
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
///
/// Each value is sealed under a key of its own, derived (HKDF-SHA256) from
/// this sealer's key and 24 random bytes sent with it. AES-GCM under one key
/// with random 96-bit nonces is safe for about 2^32 messages, and a pending
/// login is sealed for every `/authorize` anyone sends; with a key per
/// message, a nonce can never repeat under a key.
pub struct Sealer {
    root: Prk,
    /// What sealers before per-message keys sealed (`nonce || ciphertext`
    /// under the sealer's key itself): signing keys at rest may be that
    /// old. Only ever opens; nothing is sealed this way any more.
    legacy: RandomizedNonceKey,
}

/// The first byte of a value sealed under a per-message key.
const PER_MESSAGE_KEY: u8 = 2;
/// The random bytes each message key is derived from.
const MESSAGE_SALT_LEN: usize = 24;
/// A message key is used once, so its one nonce may be fixed.
const ONLY_NONCE: [u8; NONCE_LEN] = [0; NONCE_LEN];

impl Sealer {
    pub fn new(key: &[u8; 32]) -> Self {
        let legacy = RandomizedNonceKey::new(&AES_256_GCM, key)
            .unwrap_or_else(|_| unreachable!("a 32-byte key is an AES-256 key"));
        let root = Salt::new(HKDF_SHA256, b"claimsmith sealer per-message keys").extract(key);
        Sealer { root, legacy }
    }

    /// A sealer with a fresh random key, for values that live as long as
    /// the process (and in tests).
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        let _ = aws_lc_rs::rand::fill(&mut key);
        Self::new(&key)
    }

    fn message_key(&self, salt: &[u8]) -> LessSafeKey {
        let mut key = [0u8; 32];
        self.root
            .expand(&[salt], KeyLength(key.len()))
            .and_then(|okm| okm.fill(&mut key))
            .unwrap_or_else(|_| unreachable!("32 bytes is within HKDF-SHA256's output"));
        let key = UnboundKey::new(&AES_256_GCM, &key)
            .unwrap_or_else(|_| unreachable!("a 32-byte key is an AES-256 key"));
        LessSafeKey::new(key)
    }

    /// `plaintext` sealed and bound to `bound_to`, as base64url: a version
    /// byte, the message key's salt, ciphertext, tag.
    pub fn seal(&self, bound_to: &[u8], plaintext: &[u8]) -> String {
        let mut salt = [0u8; MESSAGE_SALT_LEN];
        // aws-lc aborts rather than return predictable bytes.
        let _ = aws_lc_rs::rand::fill(&mut salt);
        let mut sealed = plaintext.to_vec();
        self.message_key(&salt)
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(ONLY_NONCE),
                Aad::from(bound_to),
                &mut sealed,
            )
            .unwrap_or_else(|_| unreachable!("AES-GCM seals anything below 64 GiB"));
        let mut bytes = Vec::with_capacity(1 + MESSAGE_SALT_LEN + sealed.len());
        bytes.push(PER_MESSAGE_KEY);
        bytes.extend_from_slice(&salt);
        bytes.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// What [`Sealer::seal`] sealed with this key and `bound_to` (or a
    /// sealer before per-message keys did); None for anything else (another
    /// key, other bound data, altered bytes).
    pub fn open(&self, bound_to: &[u8], sealed: &str) -> Option<Vec<u8>> {
        let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        self.open_per_message(bound_to, &bytes)
            .or_else(|| self.open_legacy(bound_to, bytes))
    }

    fn open_per_message(&self, bound_to: &[u8], bytes: &[u8]) -> Option<Vec<u8>> {
        let (&version, rest) = bytes.split_first()?;
        if version != PER_MESSAGE_KEY || rest.len() < MESSAGE_SALT_LEN {
            return None;
        }
        let (salt, ciphertext) = rest.split_at(MESSAGE_SALT_LEN);
        let mut ciphertext = ciphertext.to_vec();
        let plaintext = self
            .message_key(salt)
            .open_in_place(
                Nonce::assume_unique_for_key(ONLY_NONCE),
                Aad::from(bound_to),
                &mut ciphertext,
            )
            .ok()?;
        Some(plaintext.to_vec())
    }

    fn open_legacy(&self, bound_to: &[u8], mut bytes: Vec<u8>) -> Option<Vec<u8>> {
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let mut ciphertext = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).ok()?;
        let plaintext = self
            .legacy
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
        assert!(matches!(error, KeyFileError::Weak { .. }), "{error}");
        std::fs::write(&path, "a".repeat(64)).expect("write");
        let error = KeyEncryptionKey::load_or_generate(&path).expect_err("too regular");
        assert!(error.to_string().contains("too regular"), "{error}");
    }

    #[test]
    fn random_keys_pass_the_entropy_bound_and_regular_ones_do_not() {
        for _ in 0..100 {
            let mut random = [0u8; 32];
            let _ = aws_lc_rs::rand::fill(&mut random);
            let key = STANDARD.encode(random);
            assert_eq!(key_encryption_key_weakness(&key), None, "{key}");
            assert_eq!(key_encryption_key_weakness(&hex::encode(random)), None);
        }
        for regular in [
            "a".repeat(40),
            "ab".repeat(20),
            "password".repeat(5),
            "0000000000000000000000000000000000000001".to_owned(),
        ] {
            assert!(
                key_encryption_key_weakness(&regular)
                    .is_some_and(|why| why.contains("too regular")),
                "{regular}"
            );
        }
    }

    #[test]
    fn each_value_is_sealed_under_a_key_of_its_own() {
        let sealer = Sealer::new(&[7; 32]);
        let first = URL_SAFE_NO_PAD
            .decode(sealer.seal(b"", b"same"))
            .expect("base64");
        let second = URL_SAFE_NO_PAD
            .decode(sealer.seal(b"", b"same"))
            .expect("base64");
        assert_eq!(first[0], PER_MESSAGE_KEY);
        assert_ne!(
            first[1..=MESSAGE_SALT_LEN],
            second[1..=MESSAGE_SALT_LEN],
            "a fresh salt each time"
        );
        // The salt picks the key: the same ciphertext under another salt
        // does not open.
        let mut moved = first.clone();
        moved[1..=MESSAGE_SALT_LEN].copy_from_slice(&second[1..=MESSAGE_SALT_LEN]);
        assert_eq!(sealer.open(b"", &URL_SAFE_NO_PAD.encode(&moved)), None);
        assert_eq!(
            sealer.open(b"", &URL_SAFE_NO_PAD.encode(&first)).as_deref(),
            Some(&b"same"[..])
        );
    }

    #[test]
    fn a_value_sealed_before_per_message_keys_still_opens() {
        let key = [9; 32];
        let old = RandomizedNonceKey::new(&AES_256_GCM, &key).expect("key");
        let mut sealed = b"an old signing key".to_vec();
        let nonce = old
            .seal_in_place_append_tag(Aad::from(b"kid-1"), &mut sealed)
            .expect("seal");
        let mut bytes = nonce.as_ref().to_vec();
        bytes.extend_from_slice(&sealed);
        let sealer = Sealer::new(&key);
        let text = URL_SAFE_NO_PAD.encode(&bytes);
        assert_eq!(
            sealer.open(b"kid-1", &text).as_deref(),
            Some(&b"an old signing key"[..])
        );
        assert_eq!(
            sealer.open(b"kid-2", &text),
            None,
            "still bound to its data"
        );
    }
}
