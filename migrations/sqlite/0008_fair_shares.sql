-- Fair shares (issue 14).
--
-- plugin_kv_usage: the bytes (key + value, the `size` column) each plugin stores
-- over all its scopes, kept by triggers whatever writes or deletes plugin_kv. A
-- write locks its plugin's row first, so writers of one plugin take turns and the
-- quota checks (per scope: limits.storage_quota_mb; all scopes together:
-- limits.storage_total_mb) cannot be overshot by concurrent writers.
CREATE TABLE plugin_kv_usage (
    plugin TEXT NOT NULL PRIMARY KEY,
    bytes BIGINT NOT NULL DEFAULT 0
);

INSERT INTO plugin_kv_usage (plugin, bytes)
SELECT plugin, SUM(size) FROM plugin_kv GROUP BY plugin;

CREATE TRIGGER plugin_kv_insert_counts AFTER INSERT ON plugin_kv
BEGIN
    INSERT INTO plugin_kv_usage (plugin, bytes) VALUES (NEW.plugin, NEW.size)
    ON CONFLICT (plugin) DO UPDATE SET bytes = plugin_kv_usage.bytes + excluded.bytes;
END;

CREATE TRIGGER plugin_kv_update_counts AFTER UPDATE ON plugin_kv
BEGIN
    UPDATE plugin_kv_usage SET bytes = bytes - OLD.size WHERE plugin = OLD.plugin;
    INSERT INTO plugin_kv_usage (plugin, bytes) VALUES (NEW.plugin, NEW.size)
    ON CONFLICT (plugin) DO UPDATE SET bytes = plugin_kv_usage.bytes + excluded.bytes;
END;

CREATE TRIGGER plugin_kv_delete_counts AFTER DELETE ON plugin_kv
BEGIN
    UPDATE plugin_kv_usage SET bytes = bytes - OLD.size WHERE plugin = OLD.plugin;
END;

-- llm_budget: each user's language-model budget of a UTC day ('' for calls made
-- for no user): tokens used (settled calls) and tokens reserved by calls in
-- flight. A call reserves its estimate (prompt bytes + max_tokens) before it is
-- made, in one statement that also checks the budget, and settles with the real
-- usage after. llm_usage keeps the per-provider and per-model detail.
CREATE TABLE llm_budget (
    user_id TEXT NOT NULL,
    day TEXT NOT NULL,
    used_tokens BIGINT NOT NULL DEFAULT 0,
    reserved_tokens BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, day)
);
