-- A habit's revision goes up with every write to its entries, whatever writes them
-- (the API, a plugin, an import, another replica), so cached stats keyed by it are
-- never stale.
ALTER TABLE habits ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;

CREATE FUNCTION entries_bump_habit_revision() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE habits SET revision = revision + 1 WHERE id = OLD.habit_id;
    ELSE
        UPDATE habits SET revision = revision + 1 WHERE id = NEW.habit_id;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER entries_bump_habit_revision AFTER INSERT OR UPDATE OR DELETE ON entries
    FOR EACH ROW EXECUTE FUNCTION entries_bump_habit_revision();
