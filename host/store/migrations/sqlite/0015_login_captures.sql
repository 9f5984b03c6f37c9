-- Captured logins (`capture = true` on a plugin): the input of a login a
-- capturing plugin ran in, its upstream tokens and secrets replaced, with
-- what the live run gave, for `claimsmith capture LOG_ID` to write as a
-- golden case. One per audit row, and gone with it when the trail is pruned.
-- The same statements are in the other dialect's 0015_login_captures.sql.
CREATE TABLE login_captures (
    login_id  BIGINT PRIMARY KEY REFERENCES logins (id) ON DELETE CASCADE,
    captured  TEXT NOT NULL        -- JSON: {plugins, input, expect}
);
