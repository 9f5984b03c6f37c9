-- A sign-in an action sent to a page (api.redirect) waits here for the user
-- to come back to /continue, on whichever host they reach. The row is the
-- login sealed by the host under the key-encryption key, bound to its state
-- and to a secret only the browser that began it holds (its cookie): whoever
-- reads the database learns nothing of the user, and a link with the state
-- alone opens nothing. The first /continue that opens it deletes it, so it
-- is taken once; one that never comes back expires and is pruned.
-- The same statements are in the other dialect's 0011_suspended_logins.sql.
CREATE TABLE suspended_logins (
    state_hash  TEXT PRIMARY KEY,     -- SHA-256 hex of the state
    sealed      TEXT NOT NULL,
    expires_at  BIGINT NOT NULL       -- unix seconds
);
