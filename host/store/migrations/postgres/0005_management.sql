-- The Management API and the admin console (issue 12). The same statements
-- (but for the id column's dialect) are in migrations/sqlite/0005_management.sql.

-- The profile's email, lowercased, so users are found by it. Filled in by
-- each login; a user who has not signed in since has none.
ALTER TABLE users ADD COLUMN email TEXT NULL;
CREATE INDEX users_email ON users (email);

-- What administrators did: the Management API's writes and the console's
-- actions. Append-only.
CREATE TABLE admin_actions (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      TEXT NOT NULL,            -- RFC 3339
    actor   TEXT NOT NULL,            -- a client id, or the console user's id
    action  TEXT NOT NULL,            -- e.g. update_user, try_plugin
    target  TEXT NOT NULL,            -- a user id, a plugin name
    detail  TEXT NOT NULL             -- JSON: what was asked, never a secret
);
