-- Workouts (filled by the Strava sync): one per (user, source, external id).
CREATE TABLE activities (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    source TEXT NOT NULL,
    external_id TEXT NOT NULL,
    sport_type TEXT NOT NULL,
    name TEXT NOT NULL,
    start_utc BIGINT NOT NULL,
    start_local TEXT NOT NULL,
    distance_m DOUBLE PRECISION,
    moving_time_s BIGINT,
    elapsed_time_s BIGINT,
    elevation_gain_m DOUBLE PRECISION,
    average_heartrate DOUBLE PRECISION,
    updated_at BIGINT NOT NULL,
    UNIQUE (user_id, source, external_id)
);
CREATE INDEX activities_by_start ON activities (user_id, start_utc);
