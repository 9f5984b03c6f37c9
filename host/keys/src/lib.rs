//! Which key signs now and which keys the JWKS publishes, for every host of a
//! deployment at once.
//!
//! The keys live in the database, their private halves sealed under the
//! key-encryption key ([`claimsmith_tokens::sealing`]). A key's state follows from times
//! alone, so hosts need no coordination beyond reading the table again every
//! `[keys] reload_secs`:
//! - **next**: added by `claimsmith keys rotate`, published but not signing
//!   until `signs_from` (now + `rotation_overlap_secs`, by default the JWKS's
//!   cache lifetime plus one reload): by then every host has read it and
//!   every verifier's cached JWKS holds it.
//! - **current**: the latest key whose `signs_from` has come.
//! - **previous**: replaced, still published until every token it signed has
//!   expired (the longest token lifetime, plus one reload for a host that
//!   signed with it late).
//! - **retired**: no longer published; the next rotation deletes it.
//!
//! Owns that schedule and the in-memory [`KeyRing`] the pipeline signs with.
//! It does not sign (that is [`claimsmith_tokens`]) nor write SQL ([`claimsmith_store`]).

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;

use claimsmith_config::{Config, KeySettings};
use claimsmith_core::Clock;
use claimsmith_store::{SigningKeyRow, Store, StoreError};
use claimsmith_tokens::sealing::{KeyEncryptionKey, Sealer};
use claimsmith_tokens::{SigningAlgorithm, SigningKey, TokenError};

#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] TokenError),
    #[error(
        "signing key {kid} does not open with this key-encryption key: every host must have \
         the same [keys] encryption_key"
    )]
    Sealed { kid: String },
    #[error("signing key {kid}: {reason}")]
    Unusable { kid: String, reason: String },
    #[error("the database holds no signing key")]
    Empty,
}

/// Where a key is in its life, at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Next,
    Current,
    Previous,
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Current => "current",
            KeyState::Previous => "previous",
            KeyState::Retired => "retired",
        }
    }

    fn is_published(self) -> bool {
        self != KeyState::Retired
    }
}

/// The state of each row at `now`, in the rows' order (oldest `signs_from`
/// first, as [`Store::signing_keys`] returns them). `retire_after` is how
/// long a replaced key stays published.
pub fn states(rows: &[SigningKeyRow], now: u64, retire_after: u64) -> Vec<KeyState> {
    let current = rows.iter().rposition(|row| row.signs_from <= now);
    rows.iter()
        .enumerate()
        .map(|(index, row)| match current {
            _ if row.signs_from > now => KeyState::Next,
            Some(current) if index == current => KeyState::Current,
            _ => {
                // Replaced when the key after it began to sign.
                let replaced_at = rows
                    .get(index + 1)
                    .map_or(row.signs_from, |successor| successor.signs_from);
                if replaced_at.saturating_add(retire_after) > now {
                    KeyState::Previous
                } else {
                    KeyState::Retired
                }
            }
        })
        .collect()
}

/// How long a replaced key stays published under `config`.
pub fn retire_after(config: &Config) -> u64 {
    config
        .tokens
        .access_token_ttl_secs
        .max(config.tokens.id_token_ttl_secs)
        + config.keys.reload_secs
}

/// The keys as one host holds them: each parsed once, with its schedule.
struct Schedule {
    /// Oldest `signs_from` first.
    keys: Vec<(Arc<SigningKey>, u64)>,
    published: JwkSet,
}

/// The signing key for now and the JWKS, shared by every login of a host
/// and swapped whole when the keys are read again.
#[derive(Clone)]
pub struct KeyRing {
    schedule: Arc<RwLock<Arc<Schedule>>>,
}

impl KeyRing {
    /// A ring of one key that always signs (golden cases, benches, tools
    /// that mint without a database).
    pub fn single(key: SigningKey) -> Self {
        let published = key.jwks();
        KeyRing {
            schedule: Arc::new(RwLock::new(Arc::new(Schedule {
                keys: vec![(Arc::new(key), 0)],
                published,
            }))),
        }
    }

    fn schedule(&self) -> Arc<Schedule> {
        self.schedule
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The key that signs at `now` (Unix seconds): the latest one whose time
    /// has come, else the earliest.
    pub fn signing_key_at(&self, now: u64) -> Arc<SigningKey> {
        let schedule = self.schedule();
        schedule
            .keys
            .iter()
            .rev()
            .find(|(_, signs_from)| *signs_from <= now)
            .or(schedule.keys.first())
            .map(|(key, _)| key.clone())
            .unwrap_or_else(|| unreachable!("a key ring is never empty"))
    }

    /// The published key `kid`, to verify a token this deployment signed.
    pub fn published_key(&self, kid: &str) -> Option<Arc<SigningKey>> {
        self.schedule()
            .keys
            .iter()
            .find(|(key, _)| key.kid() == kid)
            .map(|(key, _)| key.clone())
    }

    /// The public keys a verifier needs now: next, current and previous.
    pub fn jwks(&self) -> JwkSet {
        self.schedule().published.clone()
    }

    /// Reads the keys from the database again.
    pub async fn reload(&self, vault: &KeyVault) -> Result<(), KeyRingError> {
        let schedule = vault.schedule(vault.clock.now()).await?;
        *self
            .schedule
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(schedule);
        Ok(())
    }

    /// Reloads every `reload_secs` for as long as the process runs; a failed
    /// reload keeps the keys it had (and says so).
    pub fn spawn_reloading(&self, vault: KeyVault, reload_secs: u64) {
        let ring = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(reload_secs));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every.tick().await;
            loop {
                every.tick().await;
                if let Err(error) = ring.reload(&vault).await {
                    tracing::warn!(%error, "cannot read the signing keys again; keeping the last ones");
                }
            }
        });
    }
}

/// The signing keys in the database, opened with the key-encryption key.
#[derive(Clone)]
pub struct KeyVault {
    store: Store,
    sealer: Arc<Sealer>,
    retire_after: u64,
    clock: Arc<dyn Clock>,
}

/// One key as `claimsmith keys list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyListing {
    pub kid: String,
    pub algorithm: String,
    pub state: KeyState,
    pub created_at: u64,
    pub signs_from: u64,
}

impl KeyVault {
    /// The vault of `store`'s keys; `clock` decides which key signs and
    /// which are published.
    pub fn new(
        store: Store,
        key_encryption_key: &KeyEncryptionKey,
        retire_after: u64,
        clock: Arc<dyn Clock>,
    ) -> Self {
        KeyVault {
            store,
            sealer: Arc::new(key_encryption_key.sealer("signing-key v1")),
            retire_after,
            clock,
        }
    }

    /// The deployment's key ring; on the first start of a deployment, its
    /// first key, of `algorithm`: imported from `key_file_dir` (the data
    /// directory's `keys/`) when an older Claimsmith left one there, else
    /// generated.
    pub async fn open_ring(
        &self,
        algorithm: SigningAlgorithm,
        key_file_dir: &Path,
    ) -> Result<KeyRing, KeyRingError> {
        let now = self.clock.now();
        if self.store.signing_keys().await?.is_empty() {
            let imported = SigningKey::read_key_file(key_file_dir, algorithm)?;
            let (key, pkcs8) = match imported {
                Some(pkcs8) => {
                    let key = SigningKey::from_pkcs8(algorithm, &pkcs8).map_err(|reason| {
                        KeyRingError::Unusable {
                            kid: "<key file>".to_owned(),
                            reason,
                        }
                    })?;
                    tracing::info!(kid = %key.kid(), "imported the signing key file into the database");
                    (key, pkcs8)
                }
                None => SigningKey::generate_with_pkcs8(algorithm)?,
            };
            // signs_from 0: it signs at once, whatever the hosts' clocks say.
            let row = self.row(&key, &pkcs8, now, 0);
            if !self.store.insert_signing_key(&row, true).await? {
                tracing::info!("another host added the first signing key");
            }
        }
        let ring = KeyRing {
            schedule: Arc::new(RwLock::new(Arc::new(self.schedule(now).await?))),
        };
        let current = ring.signing_key_at(now).algorithm();
        if current != algorithm {
            tracing::warn!(
                signing = %current,
                configured = %algorithm,
                "the current signing key's algorithm is not the configured one: \
                 `claimsmith keys rotate` adds a key of the configured algorithm"
            );
        }
        Ok(ring)
    }

    /// Adds a key of `algorithm` that signs from `now + overlap`, and deletes
    /// the retired ones. Returns the new key's kid.
    pub async fn rotate(
        &self,
        algorithm: SigningAlgorithm,
        now: u64,
        overlap: u64,
    ) -> Result<String, KeyRingError> {
        let (key, pkcs8) = SigningKey::generate_with_pkcs8(algorithm)?;
        let row = self.row(&key, &pkcs8, now, now.saturating_add(overlap));
        self.store.insert_signing_key(&row, false).await?;
        let retired: Vec<String> = self
            .list(now)
            .await?
            .into_iter()
            .filter(|listing| listing.state == KeyState::Retired)
            .map(|listing| listing.kid)
            .collect();
        self.store.delete_signing_keys(&retired).await?;
        for kid in &retired {
            tracing::info!(%kid, "deleted a retired signing key");
        }
        Ok(key.kid().to_owned())
    }

    /// Every key in the database with its state at `now`.
    pub async fn list(&self, now: u64) -> Result<Vec<KeyListing>, KeyRingError> {
        let rows = self.store.signing_keys().await?;
        let states = states(&rows, now, self.retire_after);
        Ok(rows
            .into_iter()
            .zip(states)
            .map(|(row, state)| KeyListing {
                kid: row.kid,
                algorithm: row.algorithm,
                state,
                created_at: row.created_at,
                signs_from: row.signs_from,
            })
            .collect())
    }

    fn row(
        &self,
        key: &SigningKey,
        pkcs8: &[u8],
        created_at: u64,
        signs_from: u64,
    ) -> SigningKeyRow {
        SigningKeyRow {
            kid: key.kid().to_owned(),
            algorithm: key.algorithm().as_str().to_owned(),
            sealed_pkcs8: self.sealer.seal(key.kid().as_bytes(), pkcs8),
            created_at,
            signs_from,
        }
    }

    /// The published keys at `now`, opened and parsed.
    async fn schedule(&self, now: u64) -> Result<Schedule, KeyRingError> {
        let rows = self.store.signing_keys().await?;
        let states = states(&rows, now, self.retire_after);
        let mut keys = Vec::new();
        for (row, state) in rows.into_iter().zip(states) {
            if !state.is_published() {
                continue;
            }
            let pkcs8 = self
                .sealer
                .open(row.kid.as_bytes(), &row.sealed_pkcs8)
                .ok_or_else(|| KeyRingError::Sealed {
                    kid: row.kid.clone(),
                })?;
            let unusable = |reason: String| KeyRingError::Unusable {
                kid: row.kid.clone(),
                reason,
            };
            let algorithm = SigningAlgorithm::from_name(&row.algorithm)
                .ok_or_else(|| unusable(format!("unknown algorithm {}", row.algorithm)))?;
            let key = SigningKey::from_pkcs8(algorithm, &pkcs8).map_err(unusable)?;
            keys.push((Arc::new(key), row.signs_from));
        }
        if keys.is_empty() {
            return Err(KeyRingError::Empty);
        }
        let published = JwkSet {
            keys: keys
                .iter()
                .map(|(key, _)| key.public_jwk().clone())
                .collect(),
        };
        Ok(Schedule { keys, published })
    }
}

/// The deployment's key-encryption key: from config, or for one host a file
/// in the data directory made on first start.
pub fn key_encryption_key(
    config: &Config,
) -> Result<KeyEncryptionKey, claimsmith_tokens::sealing::KeyFileError> {
    match &config.keys {
        KeySettings {
            encryption_key: Some(secret),
            ..
        } => Ok(KeyEncryptionKey::from_secret(secret.expose())),
        KeySettings {
            encryption_key: None,
            ..
        } => {
            KeyEncryptionKey::load_or_generate(&config.data_dir.join("keys").join("encryption.key"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use claimsmith_core::SystemClock;

    fn row(kid: &str, signs_from: u64) -> SigningKeyRow {
        SigningKeyRow {
            kid: kid.to_owned(),
            algorithm: "ES256".to_owned(),
            sealed_pkcs8: String::new(),
            created_at: signs_from.saturating_sub(100),
            signs_from,
        }
    }

    #[test]
    fn a_key_is_next_then_current_then_previous_then_retired() {
        use KeyState::*;
        let rows = [row("a", 0), row("b", 1000)];
        let retire_after = 500;
        assert_eq!(states(&rows, 999, retire_after), [Current, Next]);
        assert_eq!(states(&rows, 1000, retire_after), [Previous, Current]);
        assert_eq!(states(&rows, 1499, retire_after), [Previous, Current]);
        assert_eq!(states(&rows, 1500, retire_after), [Retired, Current]);
    }

    #[test]
    fn only_the_latest_key_whose_time_came_signs() {
        use KeyState::*;
        let rows = [row("a", 0), row("b", 100), row("c", 200), row("d", 300)];
        assert_eq!(states(&rows, 150, 60), [Previous, Current, Next, Next]);
        assert_eq!(states(&rows, 250, 60), [Retired, Previous, Current, Next]);
        assert_eq!(states(&rows, 400, 60), [Retired, Retired, Retired, Current]);
    }

    async fn vault(dir: &Path, secret: &str) -> KeyVault {
        let store =
            Store::open_sqlite(&dir.join("keys.db"), claimsmith_config::Synchronous::Normal)
                .await
                .expect("open");
        KeyVault::new(
            store,
            &KeyEncryptionKey::from_secret(secret),
            3600,
            Arc::new(SystemClock),
        )
    }

    const SECRET: &str = "a-key-encryption-key-for-the-keyring-tests";

    #[tokio::test]
    async fn a_rotation_publishes_first_signs_later_and_the_ring_follows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vault = vault(dir.path(), SECRET).await;
        let ring = vault
            .open_ring(SigningAlgorithm::ES256, &dir.path().join("no-key-files"))
            .await
            .expect("ring");
        let now = SystemClock.now();
        let first = ring.signing_key_at(now).kid().to_owned();
        assert_eq!(ring.jwks().keys.len(), 1);

        let next = vault
            .rotate(SigningAlgorithm::EdDSA, now, 100)
            .await
            .expect("rotate");
        ring.reload(&vault).await.expect("reload");
        assert_eq!(ring.signing_key_at(now).kid(), first, "not before its time");
        assert_eq!(ring.signing_key_at(now + 100).kid(), next);
        assert_eq!(
            ring.signing_key_at(now + 100).algorithm(),
            SigningAlgorithm::EdDSA
        );
        let published: Vec<_> = ring
            .jwks()
            .keys
            .iter()
            .filter_map(|k| k.common.key_id.clone())
            .collect();
        assert_eq!(
            published,
            [first.clone(), next.clone()],
            "the next key is published at once"
        );
        assert!(ring.published_key(&next).is_some());

        let states: Vec<_> = vault
            .list(now)
            .await
            .expect("list")
            .into_iter()
            .map(|k| k.state)
            .collect();
        assert_eq!(states, [KeyState::Current, KeyState::Next]);
        let states: Vec<_> = vault
            .list(now + 100 + 3600)
            .await
            .expect("list")
            .into_iter()
            .map(|k| k.state)
            .collect();
        assert_eq!(states, [KeyState::Retired, KeyState::Current]);

        // A later rotation deletes what retired.
        vault
            .rotate(SigningAlgorithm::ES256, now + 100 + 3600, 10)
            .await
            .expect("rotate");
        let kids: Vec<_> = vault
            .list(now)
            .await
            .expect("list")
            .into_iter()
            .map(|k| k.kid)
            .collect();
        assert!(!kids.contains(&first), "{kids:?}");
    }

    #[tokio::test]
    async fn keys_sealed_under_another_key_encryption_key_do_not_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        vault(dir.path(), SECRET)
            .await
            .open_ring(SigningAlgorithm::ES256, dir.path())
            .await
            .expect("ring");
        let other = vault(dir.path(), "another-key-encryption-key-of-32-characters").await;
        let error = other
            .open_ring(SigningAlgorithm::ES256, dir.path())
            .await
            .err()
            .expect("refused");
        assert!(matches!(error, KeyRingError::Sealed { .. }), "{error}");
        assert!(
            error.to_string().contains("same [keys] encryption_key"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn the_key_file_of_an_older_deployment_is_imported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file_key =
            SigningKey::load_or_generate(&dir.path().join("keys"), SigningAlgorithm::ES256)
                .expect("key file");
        let ring = vault(dir.path(), SECRET)
            .await
            .open_ring(SigningAlgorithm::ES256, &dir.path().join("keys"))
            .await
            .expect("ring");
        assert_eq!(
            ring.signing_key_at(SystemClock.now()).kid(),
            file_key.kid(),
            "tokens signed before stay valid"
        );
    }
}
