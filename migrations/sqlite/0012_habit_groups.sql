-- A habit's optional group ("Morning", "Health"): Today shows the habits of a
-- group together. NULL for a habit in no group. Order within and across groups
-- stays `habits.position`.
ALTER TABLE habits ADD COLUMN group_name TEXT;
