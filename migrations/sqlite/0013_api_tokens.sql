-- Personal API tokens (issue 18): a user's long-lived bearer tokens for scripts
-- and home automation. Only the sha256 of a token is stored (hex), never the
-- token; `last_used_at` is refreshed at most once a minute.
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX api_tokens_by_user ON api_tokens (user_id, created_at);
