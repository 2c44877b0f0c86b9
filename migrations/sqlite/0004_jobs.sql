-- Durable jobs for plugins. state: queued -> running -> done, or back to queued
-- with a later run_after, or dead after max_attempts. A running job whose
-- lease_until has passed (its host died) is claimed again.
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    plugin TEXT NOT NULL,
    user_id TEXT,
    kind TEXT NOT NULL,
    payload BLOB NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    run_after BIGINT NOT NULL,
    lease_until BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX jobs_due ON jobs (state, run_after);
