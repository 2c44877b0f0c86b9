-- Reminders, delivery channels and done links (issue 17).
--
-- A habit may have several reminders, each a local time and the ISO weekdays it
-- fires on ("1,2,3,4,5,6,7", sorted, no repeats), in the order the user gave.
-- The single `habits.reminder` of migration 0002 is copied here and then left in
-- place, unused: a replica still running the previous binary during a rolling
-- update reads that column by name, and dropping it would break it mid-update
-- (this binary neither reads nor writes it). A later migration may drop it.
CREATE TABLE habit_reminders (
    habit_id TEXT NOT NULL REFERENCES habits (id) ON DELETE CASCADE,
    position BIGINT NOT NULL,
    time TEXT NOT NULL,
    days TEXT NOT NULL,
    PRIMARY KEY (habit_id, position)
);

INSERT INTO habit_reminders (habit_id, position, time, days)
SELECT id, 0, reminder, '1,2,3,4,5,6,7' FROM habits WHERE reminder IS NOT NULL AND reminder <> '';

-- Where a user's reminders are delivered. The token is sealed (AES-256-GCM under
-- a key derived from the host secret, bound to the user and the channel id);
-- NULL when the channel has none. The last_* columns stay NULL until a delivery
-- worker records a result.
CREATE TABLE notification_channels (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    position BIGINT NOT NULL,
    kind TEXT NOT NULL,
    url TEXT NOT NULL,
    token_sealed BLOB,
    last_error TEXT,
    last_error_at BIGINT,
    last_success_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX notification_channels_by_user ON notification_channels (user_id, position);

-- Done links already redeemed, by the sha256 of their signature: a link works
-- once. Rows may be pruned after `expires_at` (a link is refused as expired then).
CREATE TABLE used_done_links (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL,
    used_at BIGINT NOT NULL
);
