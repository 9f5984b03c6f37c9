-- What several hosts share (issue 11): the codes waiting for their exchange
-- and the signing keys, so that any host serves any step of any login.
-- The same statements are in migrations/postgres/0004_several_hosts.sql.

-- An issued code by the SHA-256 hex of its value. What it stands for (the
-- minted tokens) is sealed under a key derived from the code itself, so the
-- database alone cannot hand them out. One conditional UPDATE redeems it:
-- of two hosts, exactly one wins. `family` is the refresh token family its
-- redemption started: a replay revokes it.
CREATE TABLE authorization_codes (
    code_hash  TEXT PRIMARY KEY,
    sealed     TEXT NOT NULL,
    expires_at BIGINT NOT NULL,       -- Unix seconds
    redeemed   INTEGER NOT NULL DEFAULT 0,
    family     TEXT NULL
);
CREATE INDEX authorization_codes_expires_at ON authorization_codes (expires_at);

-- Signing keys, their private halves sealed under the deployment's
-- key-encryption key. A key's state follows from the times alone (see
-- host/src/keyring.rs): published from created_at, signing from signs_from
-- until the next key signs, published until the last token it signed expired.
CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    algorithm   TEXT NOT NULL,
    sealed_pkcs8 TEXT NOT NULL,
    created_at  BIGINT NOT NULL,      -- Unix seconds
    signs_from  BIGINT NOT NULL       -- Unix seconds
);

-- The plugins' hashes that ran the login (see Pipeline::chain_version).
ALTER TABLE logins ADD COLUMN chain_version TEXT NULL;
