-- What the rules plugin judges (date, status, value of one habit's entries), in an
-- index that holds it all, so the stats query can be an index-only scan instead of
-- a heap fetch per entry (entries of several habits are written day by day, so one
-- habit's rows lie scattered through the table).
CREATE INDEX entries_judged ON entries (habit_id, date) INCLUDE (status, value);
