-- Shadow runs: a candidate rule set of habit-rules evaluates, off the request
-- path, the inputs of a sample of the stable version's evaluations, and the host
-- compares the answers; the candidate serves nobody. A shadow run is a rollout in
-- state 'shadow' (plan {"shadow": true, "sample_percent": N}), decided by an
-- admin (promoted or aborted). At most one rollout per plugin runs, canary or
-- shadow.
DROP INDEX plugin_rollouts_one_canary;
CREATE UNIQUE INDEX plugin_rollouts_one_running ON plugin_rollouts (name)
    WHERE state IN ('canary', 'shadow');

-- Habit answers compared, those that differed, and those the candidate failed
-- (a trap, a timeout, a refused answer), added up by every replica.
ALTER TABLE plugin_rollouts ADD COLUMN shadow_compared BIGINT NOT NULL DEFAULT 0;
ALTER TABLE plugin_rollouts ADD COLUMN shadow_differed BIGINT NOT NULL DEFAULT 0;
ALTER TABLE plugin_rollouts ADD COLUMN shadow_errors BIGINT NOT NULL DEFAULT 0;

-- The latest answers that differed (at most 10 per run are kept), for the admin
-- view: the habit's id and the figures, nothing of its user or entries. Removed
-- when the run is decided.
CREATE TABLE plugin_shadow_examples (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rollout_id BIGINT NOT NULL,
    habit_id TEXT NOT NULL,
    day TEXT NOT NULL,
    stable_score DOUBLE PRECISION NOT NULL,
    candidate_score DOUBLE PRECISION NOT NULL,
    stable_streak BIGINT NOT NULL,
    candidate_streak BIGINT NOT NULL
);
CREATE INDEX plugin_shadow_examples_by_rollout ON plugin_shadow_examples (rollout_id, id);
