-- A pending login is sealed into its browser's cookie (the server keeps
-- nothing per /authorize), so that a flood of /authorize costs no storage.
-- Its callback may be taken once: the first callback of a login records
-- the hash of its upstream state here, and any later one with the same
-- state is refused before it reaches the upstream or the audit trail. A
-- row lives as long as the sealed login could (ten minutes) and is pruned.
-- The same statements are in the other dialect's 0007_spent_logins.sql.
CREATE TABLE spent_logins (
    state_hash  TEXT PRIMARY KEY,     -- SHA-256 hex of the upstream state
    expires_at  BIGINT NOT NULL       -- unix seconds
);

-- The audit trail is pruned by age (`[server] audit_retention_days`).
CREATE INDEX logins_at ON logins (at);
