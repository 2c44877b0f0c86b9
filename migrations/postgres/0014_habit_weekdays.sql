-- A habit due on fixed weekdays ("gym on Monday, Wednesday and Friday"): the ISO
-- weekdays as bits, 1 for Monday to 64 for Sunday. NULL for a habit due
-- `frequency_times` in every `frequency_days` days. A weekday habit also keeps
-- its count of weekdays in 7 in `frequency_times` / `frequency_days`, which is
-- what a reader of the first contract sees.
ALTER TABLE habits ADD COLUMN frequency_weekdays INTEGER;
