-- People, their sessions, their habits and check-ins.
-- Booleans and small integers are BIGINT on both backends: one Rust type (i64) reads them everywhere.
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    email TEXT,
    password_hash TEXT,
    is_admin BIGINT NOT NULL DEFAULT 0,
    time_zone TEXT NOT NULL DEFAULT 'UTC',
    created_at BIGINT NOT NULL
);

-- A session is stored by the sha256 of its token: a database leak is no login.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id);

CREATE TABLE habits (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    color TEXT NOT NULL,
    kind TEXT NOT NULL,
    unit TEXT,
    target_value DOUBLE PRECISION,
    target_type TEXT,
    frequency_times BIGINT NOT NULL,
    frequency_days BIGINT NOT NULL,
    reminder TEXT,
    archived BIGINT NOT NULL DEFAULT 0,
    position BIGINT NOT NULL,
    created TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX habits_by_user ON habits (user_id, position);

-- One check-in per habit per local date: done, skipped, or a measured value.
CREATE TABLE entries (
    habit_id TEXT NOT NULL REFERENCES habits (id) ON DELETE CASCADE,
    date TEXT NOT NULL,
    status TEXT NOT NULL,
    value DOUBLE PRECISION,
    note TEXT,
    source TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (habit_id, date)
);
