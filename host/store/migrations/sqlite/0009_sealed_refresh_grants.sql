-- A refresh token's grant (its user, client, scopes and family) is sealed by
-- the host under the key-encryption key, bound to the token: whoever can
-- write the database cannot make a token stand for another user or more
-- scopes, nor move one token's grant to another. Grants stored as plain
-- JSON before do not open: those tokens are refused and their users sign in
-- again.
-- The same statement is in the other dialect's 0009_sealed_refresh_grants.sql.
ALTER TABLE refresh_tokens RENAME COLUMN grant_json TO sealed_grant;
