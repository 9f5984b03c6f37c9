-- When a refresh token was first used (Unix seconds): a retry of a lost
-- response within the grace window is not taken for a theft.
ALTER TABLE refresh_tokens ADD COLUMN used_at BIGINT NULL;
-- The token this one was rotated from: whether a retried token's successor
-- was used tells a lost answer from a stolen token.
ALTER TABLE refresh_tokens ADD COLUMN parent_hash TEXT NULL;
CREATE INDEX refresh_tokens_parent_hash ON refresh_tokens (parent_hash);
-- The id an app sees in an error description, so an operator finds the row.
ALTER TABLE logins ADD COLUMN correlation_id TEXT NULL;
