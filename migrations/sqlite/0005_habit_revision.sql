-- A habit's revision goes up with every write to its entries, whatever writes them
-- (the API, a plugin, an import, another replica), so cached stats keyed by it are
-- never stale.
ALTER TABLE habits ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;

CREATE TRIGGER entries_insert_bumps_revision AFTER INSERT ON entries
BEGIN
    UPDATE habits SET revision = revision + 1 WHERE id = NEW.habit_id;
END;

CREATE TRIGGER entries_update_bumps_revision AFTER UPDATE ON entries
BEGIN
    UPDATE habits SET revision = revision + 1 WHERE id = NEW.habit_id;
END;

CREATE TRIGGER entries_delete_bumps_revision AFTER DELETE ON entries
BEGIN
    UPDATE habits SET revision = revision + 1 WHERE id = OLD.habit_id;
END;
