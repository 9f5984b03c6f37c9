-- The user a login is signing in, while its chain runs: Auth0 stores the
-- user before its Actions run, and Actions read it back through the
-- Management API, first sign-in included. Claimsmith stores a user only
-- once a login succeeds, so the Management API answers from here meanwhile.
-- One row per login in progress, deleted when the login ends (stored or
-- not); a row left by a host that stopped mid-login expires and is pruned.
-- The same statements are in the other dialect's 0006_users_signing_in.sql.
CREATE TABLE users_signing_in (
    login_key   TEXT PRIMARY KEY,     -- random, one per login
    user_id     TEXT NOT NULL,
    row_json    TEXT NOT NULL,        -- the user as the Management API shows them
    expires_at  BIGINT NOT NULL       -- unix seconds
);
CREATE INDEX users_signing_in_by_user ON users_signing_in (user_id, expires_at);
