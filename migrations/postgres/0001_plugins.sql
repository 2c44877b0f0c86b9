-- Every uploaded version of every plugin is kept; the active one per name is the
-- version with the highest activation sequence number.
CREATE TABLE plugin_versions (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    manifest TEXT NOT NULL,
    component BYTEA NOT NULL,
    source TEXT NOT NULL,
    uploaded_at BIGINT NOT NULL,
    activated_seq BIGINT
);
CREATE INDEX plugin_versions_by_name ON plugin_versions (name, activated_seq);

-- Plugin key-value storage. owner is '' for the plugin-wide scope, else a user id.
-- size (key bytes + value bytes) is what the per-plugin quota counts. Keys compare
-- bytewise ("C" collation) so prefix listing and cursors agree with SQLite.
CREATE TABLE plugin_kv (
    plugin TEXT NOT NULL,
    owner TEXT NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    value BYTEA NOT NULL,
    size BIGINT NOT NULL,
    revision BIGINT NOT NULL,
    PRIMARY KEY (plugin, owner, key)
);
