-- A console session is a sealed cookie (the server keeps nothing per
-- session), so signing out must be remembered somewhere else: without this,
-- a copy of the cookie would stay good for the rest of its eight hours.
-- Signing out records the hash of the session's id here, every console
-- request of that session is refused from then on on every host, and the
-- row is pruned when the session would have expired anyway.
-- The same statements are in the other dialect's 0008_ended_console_sessions.sql.
CREATE TABLE ended_console_sessions (
    session_hash  TEXT PRIMARY KEY,   -- SHA-256 hex of the session's id
    expires_at    BIGINT NOT NULL     -- unix seconds
);
