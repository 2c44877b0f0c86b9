-- Language-model usage per user, UTC day, provider and model: what budgets
-- (HAM_LLM_DAILY_TOKENS) are checked against. user_id is '' for calls made for no
-- user (a scheduled job), so there is no foreign key to users. No prompt or reply
-- text is kept here: only counts.
CREATE TABLE llm_usage (
    user_id TEXT NOT NULL,
    day TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    input_tokens BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    calls BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, day, provider, model)
);
