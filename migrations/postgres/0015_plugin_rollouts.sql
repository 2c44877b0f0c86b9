-- Rollouts: a new version of a plugin (the candidate) serves a share of its HTTP
-- requests and jobs beside the version already active (the stable one) until the
-- host, judging both by their error rates, or an admin decides. The candidate is
-- not stamped active while it is on trial: promotion stamps it, a rollback or an
-- abort leaves the stable version active. state: canary, then promoted,
-- rolled_back or aborted; at most one canary per plugin. plan is the rollout's
-- JSON (canary_percent, min_requests, max_error_rate, window_s); the figures are
-- those the decision was made on (requests and errors over the window).
CREATE TABLE plugin_rollouts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL,
    stable_id BIGINT NOT NULL,
    candidate_id BIGINT NOT NULL,
    plan TEXT NOT NULL,
    state TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    decided_at BIGINT,
    decided_by TEXT,
    reason TEXT,
    stable_requests BIGINT NOT NULL DEFAULT 0,
    stable_errors BIGINT NOT NULL DEFAULT 0,
    candidate_requests BIGINT NOT NULL DEFAULT 0,
    candidate_errors BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX plugin_rollouts_one_canary ON plugin_rollouts (name) WHERE state = 'canary';
CREATE INDEX plugin_rollouts_by_name ON plugin_rollouts (name, id);

-- Requests and errors of a running rollout, per arm (stable, candidate) and
-- second, added up by every replica; removed when the rollout is decided.
CREATE TABLE plugin_rollout_counts (
    rollout_id BIGINT NOT NULL,
    arm TEXT NOT NULL,
    second BIGINT NOT NULL,
    requests BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    PRIMARY KEY (rollout_id, arm, second)
);

-- Approval: an upload that asks for more than the active version (HAM_PLUGIN_APPROVAL
-- = required) is stored with approval 'pending' and activated once approved
-- ('approved'); NULL: it needed none. added_capabilities is the JSON list of what it
-- asks for beyond the active version; rollout_plan the rollout asked with it.
ALTER TABLE plugin_versions ADD COLUMN approval TEXT;
ALTER TABLE plugin_versions ADD COLUMN added_capabilities TEXT;
ALTER TABLE plugin_versions ADD COLUMN rollout_plan TEXT;
