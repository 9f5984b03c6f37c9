//! What a refresh token stands for, and the seal the store keeps it under.
//!
//! The service seals each grant under the key-encryption key, bound to its
//! token, before the store keeps it, and opens it when the token comes back.
//! Whoever can write the database, but not read the key, cannot make a
//! token stand for another user or more scopes, nor move one token's grant
//! to another token. Grants stored as plain JSON (before they were sealed)
//! do not open.
//!
//! It must not decide whether a token may be used (the token endpoint does)
//! nor keep anything (the store does).

use claimsmith_store::StoredGrant;
use claimsmith_tokens::UpstreamAuthentication;
use claimsmith_tokens::sealing::{KeyEncryptionKey, Sealer};
use serde::{Deserialize, Serialize};

/// What a refresh token stands for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RefreshGrant {
    /// Random id shared by a chain of rotated tokens.
    pub(crate) family: String,
    pub(crate) user_id: String,
    /// The upstream `sub`.
    pub(crate) upstream_subject: String,
    pub(crate) connection: String,
    pub(crate) client_id: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) audience: Option<String>,
    /// When the user authenticated at the upstream (unix seconds): refreshed
    /// tokens keep it, they are not a new authentication.
    pub(crate) auth_time: u64,
    /// The upstream's `acr` and `amr` at sign-in, which refreshed id tokens
    /// keep for the same reason (none in grants sealed before they were kept).
    #[serde(default)]
    pub(crate) authentication: UpstreamAuthentication,
    /// When the family ends (Unix seconds), however often it rotates: the
    /// absolute lifetime from sign-in.
    pub(crate) family_expires_at: u64,
}

/// Seals grants for the store and opens what it hands back.
pub(crate) struct GrantSealer(Sealer);

impl GrantSealer {
    pub(crate) fn new(key_encryption_key: &KeyEncryptionKey) -> Self {
        GrantSealer(key_encryption_key.sealer("refresh grant v1"))
    }

    /// `grant` as the store keeps it for `token`.
    pub(crate) fn seal(
        &self,
        token: &str,
        grant: &RefreshGrant,
    ) -> Result<StoredGrant, serde_json::Error> {
        Ok(StoredGrant {
            family: grant.family.clone(),
            client_id: grant.client_id.clone(),
            sealed: self.0.seal(token.as_bytes(), &serde_json::to_vec(grant)?),
        })
    }

    /// The grant `stored` for `token`: None unless its seal opens for that
    /// token and it names the family and client of the row it came from
    /// (which the store revokes and checks by).
    pub(crate) fn open(&self, token: &str, stored: &StoredGrant) -> Option<RefreshGrant> {
        let plaintext = self.0.open(token.as_bytes(), &stored.sealed)?;
        let grant: RefreshGrant = serde_json::from_slice(&plaintext).ok()?;
        (grant.family == stored.family && grant.client_id == stored.client_id).then_some(grant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> GrantSealer {
        GrantSealer::new(&KeyEncryptionKey::from_secret(
            "q8Zp3rT6vX1cB4nM7kL0sD9fG2hJ5wE8",
        ))
    }

    fn grant() -> RefreshGrant {
        RefreshGrant {
            family: "family-1".to_owned(),
            user_id: "github|42".to_owned(),
            upstream_subject: "42".to_owned(),
            connection: "github".to_owned(),
            client_id: "web".to_owned(),
            scopes: vec!["openid".to_owned(), "offline_access".to_owned()],
            audience: None,
            auth_time: 1_700_000_000,
            authentication: UpstreamAuthentication::default(),
            family_expires_at: 1_800_000_000,
        }
    }

    #[test]
    fn a_sealed_grant_opens_for_its_own_token_only() {
        let sealer = sealer();
        let stored = sealer.seal("token-a", &grant()).unwrap();
        assert_eq!(sealer.open("token-a", &stored), Some(grant()));
        assert_eq!(sealer.open("token-b", &stored), None);
    }

    #[test]
    fn a_grant_written_in_the_database_does_not_open() {
        let sealer = sealer();
        let stored = sealer.seal("token-a", &grant()).unwrap();
        // Another user's grant in plain JSON, as grants were once stored.
        let mut forged = grant();
        forged.user_id = "github|1".to_owned();
        let plain = StoredGrant {
            sealed: serde_json::to_string(&forged).unwrap(),
            ..stored.clone()
        };
        assert_eq!(sealer.open("token-a", &plain), None);
        // Sealed under another deployment's key.
        let other = GrantSealer::new(&KeyEncryptionKey::from_secret(
            "Vb7nQ2xK9mP4wR1tY6uZ3aS8dF5gH0jL",
        ))
        .seal("token-a", &forged)
        .unwrap();
        assert_eq!(sealer.open("token-a", &other), None);
        // One character of the seal changed.
        let mut altered = stored.sealed.into_bytes();
        altered[10] = if altered[10] == b'A' { b'B' } else { b'A' };
        let altered = StoredGrant {
            sealed: String::from_utf8(altered).unwrap(),
            ..plain
        };
        assert_eq!(sealer.open("token-a", &altered), None);
    }

    #[test]
    fn a_grant_moved_to_a_row_of_another_family_or_client_does_not_open() {
        let sealer = sealer();
        let stored = sealer.seal("token-a", &grant()).unwrap();
        let other_family = StoredGrant {
            family: "family-2".to_owned(),
            ..stored.clone()
        };
        assert_eq!(sealer.open("token-a", &other_family), None);
        let other_client = StoredGrant {
            client_id: "other".to_owned(),
            ..stored
        };
        assert_eq!(sealer.open("token-a", &other_client), None);
    }
}
