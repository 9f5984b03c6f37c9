-- Users, the login audit trail and refresh tokens (see host/src/store.rs).
--
-- Kept to plain types so the schema ports to PostgreSQL: JSON documents are
-- TEXT, booleans are INTEGER 0/1, times are RFC 3339 TEXT except token expiry
-- (BIGINT Unix seconds, compared numerically). The one SQLite-only word is
-- AUTOINCREMENT (PostgreSQL: BIGINT GENERATED ALWAYS AS IDENTITY).

CREATE TABLE users (
    user_id       TEXT PRIMARY KEY,
    profile       TEXT NOT NULL,    -- JSON object: profile snapshot of the last login
    user_metadata TEXT NOT NULL,    -- JSON object
    app_metadata  TEXT NOT NULL,    -- JSON object
    logins_count  INTEGER NOT NULL,
    last_login    TEXT,             -- RFC 3339
    created_at    TEXT NOT NULL     -- RFC 3339, set on insert only
);

-- Append-only: one row per login attempt, whatever its outcome. No foreign key
-- to users: a login can fail before a user is known, or be denied before the
-- user is ever stored.
CREATE TABLE logins (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         TEXT NOT NULL,       -- RFC 3339
    user_id    TEXT NULL,
    client_id  TEXT NOT NULL,
    connection TEXT NOT NULL,
    outcome    TEXT NOT NULL CHECK (outcome IN ('minted', 'denied', 'failed')),
    detail     TEXT NULL,           -- the denial reason or the error
    steps      TEXT NOT NULL        -- JSON array of the pipeline's step reports
);

CREATE INDEX logins_user_id ON logins (user_id);

-- Refresh tokens by the SHA-256 hex of their value; the value itself is never
-- stored. `family` ties together a chain of rotated tokens so that the reuse of
-- one revokes them all.
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    family     TEXT NOT NULL,
    grant_json TEXT NOT NULL,        -- JSON: the grant the token carries
    expires_at BIGINT NOT NULL,      -- Unix seconds
    used       INTEGER NOT NULL DEFAULT 0,
    revoked    INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX refresh_tokens_family ON refresh_tokens (family);
