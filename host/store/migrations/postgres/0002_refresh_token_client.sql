-- The client a refresh token was issued to, so that presenting it as another
-- client neither uses it up nor triggers reuse detection.
ALTER TABLE refresh_tokens ADD COLUMN client_id TEXT NOT NULL DEFAULT '';
