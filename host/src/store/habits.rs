//! Habits and entries, always scoped to their owner: every query names the user,
//! so another user's id is simply not found.

use super::text::{StoredText, decode};
use super::{Backend, Db, Error, Result, now_ms};
use crate::habits::{
    Activity, Entry, EntryStatus, EntryWrite, Frequency, Habit, HabitKind, Reminder, StoredEntry,
    Target, TargetType,
};
use crate::wit::exports::ham::plugin::scheduled_rules::DayEntry;
use crate::wit::ham::plugin::habits::EntryValue;

const HABIT_COLUMNS: &str = "id, name, description, color, kind, unit, target_value, target_type, \
     frequency_times, frequency_days, frequency_weekdays, archived, position, created, group_name";

/// A `habits` row as stored ([`HABIT_COLUMNS`]).
#[derive(sqlx::FromRow)]
struct HabitRecord {
    id: String,
    name: String,
    description: String,
    color: String,
    kind: String,
    unit: Option<String>,
    target_value: Option<f64>,
    target_type: Option<String>,
    frequency_times: i64,
    frequency_days: i64,
    frequency_weekdays: Option<i64>,
    archived: i64,
    position: i64,
    created: String,
    group_name: Option<String>,
}

impl TryFrom<HabitRecord> for Habit {
    type Error = Error;

    fn try_from(r: HabitRecord) -> Result<Self> {
        let target = match (r.target_value, r.target_type) {
            (Some(value), Some(t)) => Some(Target {
                value,
                target_type: decode::<TargetType>(&t)?,
            }),
            _ => None,
        };
        let count = |column, n: i64| u32::try_from(n).map_err(|_| Error::unreadable(column, n));
        Ok(Habit {
            id: r.id,
            name: r.name,
            description: r.description,
            color: r.color,
            kind: decode::<HabitKind>(&r.kind)?,
            unit: r.unit,
            target,
            frequency: match r.frequency_weekdays {
                Some(bits) => u8::try_from(bits)
                    .ok()
                    .and_then(Frequency::from_weekday_bits)
                    .ok_or_else(|| Error::unreadable("habits.frequency_weekdays", bits))?,
                None => Frequency::Every {
                    times: count("habits.frequency_times", r.frequency_times)?,
                    days: count("habits.frequency_days", r.frequency_days)?,
                },
            },
            // Read apart, from `habit_reminders` (see `Db::reminders_of`).
            reminders: Vec::new(),
            archived: r.archived != 0,
            position: r.position,
            group: r.group_name,
            created: r.created,
        })
    }
}

/// A habit with its revision.
#[derive(sqlx::FromRow)]
struct HabitWithRevision {
    #[sqlx(flatten)]
    habit: HabitRecord,
    revision: i64,
}

impl HabitWithRevision {
    fn into_pair(self) -> Result<(Habit, i64)> {
        Ok((self.habit.try_into()?, self.revision))
    }
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// A `habit_reminders` row as stored.
#[derive(sqlx::FromRow)]
struct ReminderRecord {
    habit_id: String,
    time: String,
    days: String,
}

impl ReminderRecord {
    fn into_pair(self) -> Result<(String, Reminder)> {
        let days = read_days(&self.days)?;
        Ok((
            self.habit_id,
            Reminder {
                time: self.time,
                days,
            },
        ))
    }
}

/// Days as `habit_reminders.days` stores them (`1,2,3`), read back.
pub(super) fn read_days(stored: &str) -> Result<Vec<u8>> {
    stored
        .split(',')
        .map(|d| {
            d.parse::<u8>()
                .ok()
                .filter(|d| (1..=7).contains(d))
                .ok_or_else(|| Error::unreadable("habit_reminders.days", stored))
        })
        .collect()
}

/// Days as stored in `habit_reminders.days`: `1,2,3`.
fn stored_days(days: &[u8]) -> String {
    days.iter().map(u8::to_string).collect::<Vec<_>>().join(",")
}

/// Binds `$1` user id, `$2` habit id and `$3`..`$15` the habit's stored fields, in
/// the column order both the insert and the update use.
fn bind_habit<'q>(query: AnyQuery<'q>, user_id: &'q str, h: &'q Habit) -> AnyQuery<'q> {
    let query = query
        .bind(user_id)
        .bind(&h.id)
        .bind(&h.name)
        .bind(&h.description)
        .bind(&h.color)
        .bind(h.kind.as_stored())
        .bind(h.unit.as_deref());
    bind_f64(query, h.target.map(|t| t.value))
        .bind(h.target.map(|t| t.target_type.as_stored()))
        .bind(i64::from(h.frequency.times_in_days().0))
        .bind(i64::from(h.frequency.times_in_days().1))
        .bind(i64::from(h.archived))
        .bind(h.position)
        .bind(h.group.as_deref())
        .bind(h.frequency.weekday_bits().map(i64::from))
}

/// Binds an optional `f64`. sqlx 0.9's Any driver swaps the NULL mappings of
/// `f32` and `f64`, so a NULL `f64` reaches PostgreSQL as a `real` and is refused
/// for a `double precision` column; a NULL `f32` arrives as `double precision`.
fn bind_f64(query: AnyQuery<'_>, value: Option<f64>) -> AnyQuery<'_> {
    match value {
        Some(v) => query.bind(v),
        None => query.bind(None::<f32>),
    }
}

/// An `entries` row as stored.
#[derive(sqlx::FromRow)]
struct EntryRecord {
    habit_id: String,
    date: String,
    status: String,
    value: Option<f64>,
    note: Option<String>,
    source: String,
}

impl TryFrom<EntryRecord> for Entry {
    type Error = Error;

    fn try_from(r: EntryRecord) -> Result<Self> {
        Ok(Entry {
            habit_id: r.habit_id,
            date: r.date,
            status: decode::<EntryStatus>(&r.status)?,
            value: r.value,
            note: r.note,
            source: r.source,
        })
    }
}

/// An `entries` row with its `updated_at`.
#[derive(sqlx::FromRow)]
struct TimedEntryRecord {
    #[sqlx(flatten)]
    entry: EntryRecord,
    updated_at: i64,
}

impl TryFrom<TimedEntryRecord> for StoredEntry {
    type Error = Error;

    fn try_from(r: TimedEntryRecord) -> Result<Self> {
        Ok(StoredEntry {
            entry: r.entry.try_into()?,
            updated_at: r.updated_at,
        })
    }
}

/// One habit's entries up to a date, aggregated (see [`Db::entries_for_rules`]).
#[derive(sqlx::FromRow)]
struct AggregatedEntries {
    habit_id: String,
    dates: Option<String>,
    statuses: Option<String>,
    entry_values: Option<String>,
}

impl AggregatedEntries {
    /// The habit and its entries, oldest first.
    fn into_day_entries(self) -> Result<(String, Vec<DayEntry>)> {
        let (dates, statuses, values) = (
            self.dates.unwrap_or_default(),
            self.statuses.unwrap_or_default(),
            self.entry_values.unwrap_or_default(),
        );
        let mut entries = dates
            .as_bytes()
            .chunks_exact(10)
            .zip(statuses.split(','))
            .zip(values.split(';'))
            .map(|((date, status), value)| {
                let date = std::str::from_utf8(date).map_err(|_| {
                    Error::unreadable("entries.date", String::from_utf8_lossy(date))
                })?;
                let day = civil_day::parse(date)
                    .and_then(|d| i32::try_from(d).ok())
                    .ok_or_else(|| Error::unreadable("entries.date", date))?;
                let value = match decode::<EntryStatus>(status)? {
                    EntryStatus::Skipped => EntryValue::Skipped,
                    EntryStatus::Done => EntryValue::Done,
                    EntryStatus::Value => EntryValue::Value(
                        value
                            .parse()
                            .map_err(|_| Error::unreadable("entries.value", value))?,
                    ),
                };
                Ok(DayEntry { day, value })
            })
            .collect::<Result<Vec<_>>>()?;
        // An aggregate's order is not guaranteed; the rules get oldest first.
        entries.sort_unstable_by_key(|e| e.day);
        Ok((self.habit_id, entries))
    }
}

impl Db {
    pub async fn list_habits(&self, user_id: &str, include_archived: bool) -> Result<Vec<Habit>> {
        let rows: Vec<HabitRecord> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {HABIT_COLUMNS} FROM habits WHERE user_id = $1 AND (archived = 0 OR $2 = 1) \
             ORDER BY position, created_at, id"
        )))
        .bind(user_id)
        .bind(i64::from(include_archived))
        .fetch_all(self.pool())
        .await?;
        let mut habits = rows
            .into_iter()
            .map(Habit::try_from)
            .collect::<Result<Vec<_>>>()?;
        self.attach_reminders(user_id, None, habits.iter_mut())
            .await?;
        Ok(habits)
    }

    /// The reminders of a user's habits (or of one), by habit, in their order.
    async fn reminders_of(
        &self,
        user_id: &str,
        habit_id: Option<&str>,
    ) -> Result<std::collections::HashMap<String, Vec<Reminder>>> {
        let rows: Vec<ReminderRecord> = sqlx::query_as(
            "SELECT r.habit_id, r.time, r.days FROM habit_reminders r \
             JOIN habits h ON h.id = r.habit_id \
             WHERE h.user_id = $1 AND ($2 = '' OR r.habit_id = $2) ORDER BY r.habit_id, r.position",
        )
        .bind(user_id)
        .bind(habit_id.unwrap_or(""))
        .fetch_all(self.pool())
        .await?;
        let mut by_habit: std::collections::HashMap<String, Vec<Reminder>> =
            std::collections::HashMap::new();
        for row in rows {
            let (habit_id, reminder) = row.into_pair()?;
            by_habit.entry(habit_id).or_default().push(reminder);
        }
        Ok(by_habit)
    }

    /// Fills in the reminders of `habits` (all the user's, or the one `habit_id`).
    async fn attach_reminders<'h>(
        &self,
        user_id: &str,
        habit_id: Option<&str>,
        habits: impl Iterator<Item = &'h mut Habit>,
    ) -> Result<()> {
        let mut reminders = self.reminders_of(user_id, habit_id).await?;
        for habit in habits {
            habit.reminders = reminders.remove(&habit.id).unwrap_or_default();
        }
        Ok(())
    }

    /// Replaces a habit's reminders with `h.reminders`, in the transaction `tx`.
    async fn replace_reminders(tx: &mut sqlx::AnyConnection, h: &Habit) -> Result<()> {
        sqlx::query("DELETE FROM habit_reminders WHERE habit_id = $1")
            .bind(&h.id)
            .execute(&mut *tx)
            .await?;
        for (position, r) in (0_i64..).zip(&h.reminders) {
            sqlx::query(
                "INSERT INTO habit_reminders (habit_id, position, time, days) VALUES ($1, $2, $3, $4)",
            )
            .bind(&h.id)
            .bind(position)
            .bind(&r.time)
            .bind(stored_days(&r.days))
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }

    pub async fn get_habit(&self, user_id: &str, id: &str) -> Result<Option<Habit>> {
        let row: Option<HabitRecord> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {HABIT_COLUMNS} FROM habits WHERE user_id = $1 AND id = $2"
        )))
        .bind(user_id)
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        let mut habit = row.map(Habit::try_from).transpose()?;
        self.attach_reminders(user_id, Some(id), habit.iter_mut())
            .await?;
        Ok(habit)
    }

    /// A user's habits with their revision (see the `0005_habit_revision`
    /// migration): `archived` false for the active ones only.
    pub async fn habits_with_revision(
        &self,
        user_id: &str,
        include_archived: bool,
    ) -> Result<Vec<(Habit, i64)>> {
        let rows: Vec<HabitWithRevision> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {HABIT_COLUMNS}, revision FROM habits \
             WHERE user_id = $1 AND (archived = 0 OR $2 = 1) ORDER BY position, created_at, id"
        )))
        .bind(user_id)
        .bind(i64::from(include_archived))
        .fetch_all(self.pool())
        .await?;
        let mut habits = rows
            .into_iter()
            .map(HabitWithRevision::into_pair)
            .collect::<Result<Vec<_>>>()?;
        self.attach_reminders(user_id, None, habits.iter_mut().map(|(h, _)| h))
            .await?;
        Ok(habits)
    }

    /// One of a user's habits with its revision.
    /// A habit's revision (bumped by a trigger on every entry write).
    pub async fn habit_revision(&self, id: &str) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT revision FROM habits WHERE id = $1")
                .bind(id)
                .fetch_optional(self.writer())
                .await?,
        )
    }

    pub async fn habit_with_revision(
        &self,
        user_id: &str,
        id: &str,
    ) -> Result<Option<(Habit, i64)>> {
        let row: Option<HabitWithRevision> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {HABIT_COLUMNS}, revision FROM habits WHERE user_id = $1 AND id = $2"
        )))
        .bind(user_id)
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        let mut habit = row.map(HabitWithRevision::into_pair).transpose()?;
        self.attach_reminders(user_id, Some(id), habit.iter_mut().map(|(h, _)| h))
            .await?;
        Ok(habit)
    }

    /// The entries a rules plugin judges, as day numbers and values, up to `to`
    /// inclusive, oldest first, by habit: of one habit (whose owner the caller
    /// checked), or of all the user's habits.
    ///
    /// Each habit's entries come back as one aggregated row rather than a row per
    /// entry: through sqlx's `Any` driver a row costs about 4 µs, so ten years of
    /// daily entries took 13 ms row by row. And as three aggregates of bare
    /// columns rather than one of concatenated fields: SQLite's `||` per row made
    /// that 2.5 times slower (and `substr` per row costs as much as the rest). The
    /// three see the rows in the same order (one pass of one group): dates run
    /// together (ten bytes each), statuses `,`-separated, values `;`-separated and
    /// empty when null. Values are printed
    /// round-trip exact (`%.17g`; PostgreSQL's `float8` text is shortest-exact).
    pub async fn entries_for_rules(
        &self,
        user_id: &str,
        habit_id: Option<&str>,
        to: &str,
    ) -> Result<std::collections::HashMap<String, Vec<DayEntry>>> {
        let aggregates = match self.backend() {
            super::Backend::Sqlite => {
                "group_concat(e.date, '') AS dates, group_concat(e.status, ',') AS statuses, \
                 group_concat(CASE WHEN e.value IS NULL THEN '' ELSE printf('%.17g', e.value) END, ';') \
                 AS entry_values"
            }
            super::Backend::Postgres => {
                "string_agg(e.date, '') AS dates, string_agg(e.status, ',') AS statuses, \
                 string_agg(COALESCE(e.value::text, ''), ';') AS entry_values"
            }
        };
        let query = match habit_id {
            Some(_) => format!(
                "SELECT e.habit_id, {aggregates} FROM entries e \
                 WHERE e.habit_id = $1 AND e.date <= $2 GROUP BY e.habit_id"
            ),
            None => format!(
                "SELECT e.habit_id, {aggregates} FROM entries e JOIN habits h ON h.id = e.habit_id \
                 WHERE h.user_id = $1 AND e.date <= $2 GROUP BY e.habit_id"
            ),
        };
        let rows: Vec<AggregatedEntries> = sqlx::query_as(sqlx::AssertSqlSafe(query))
            .bind(habit_id.unwrap_or(user_id))
            .bind(to)
            .fetch_all(self.pool())
            .await?;
        rows.into_iter()
            .map(AggregatedEntries::into_day_entries)
            .collect()
    }

    /// The position after the user's last habit.
    pub async fn next_habit_position(&self, user_id: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT CAST(COALESCE(MAX(position), -1) + 1 AS BIGINT) AS position FROM habits \
             WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_one(self.pool())
        .await?)
    }

    /// Stores a new habit with its reminders, together or not at all.
    pub async fn insert_habit(&self, user_id: &str, h: &Habit) -> Result<()> {
        let mut tx = self.begin_write().await?;
        Self::insert_habit_with(&mut tx, user_id, h).await?;
        tx.commit().await?;
        Ok(())
    }

    /// [`Db::insert_habit`] within a transaction.
    pub async fn insert_habit_with(
        tx: &mut sqlx::AnyConnection,
        user_id: &str,
        h: &Habit,
    ) -> Result<()> {
        let query = sqlx::query(
            "INSERT INTO habits (user_id, id, name, description, color, kind, unit, target_value, target_type, \
             frequency_times, frequency_days, archived, position, group_name, frequency_weekdays, \
             created, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        );
        let query = bind_habit(query, user_id, h)
            .bind(&h.created)
            .bind(now_ms());
        query.execute(&mut *tx).await?;
        Self::replace_reminders(tx, h).await
    }

    /// Changes a habit and replaces its reminders, together or not at all;
    /// `false` when the user has no such habit.
    pub async fn update_habit(&self, user_id: &str, h: &Habit) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let query = sqlx::query(
            "UPDATE habits SET name = $3, description = $4, color = $5, kind = $6, unit = $7, target_value = $8, \
             target_type = $9, frequency_times = $10, frequency_days = $11, archived = $12, \
             position = $13, group_name = $14, frequency_weekdays = $15 WHERE user_id = $1 AND id = $2",
        );
        let query = bind_habit(query, user_id, h);
        let done = query.execute(&mut *tx).await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        Self::replace_reminders(&mut tx, h).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Puts the user's habits `ids` (each named once) in that order. They take
    /// the positions they held between them, sorted (made distinct), so habits
    /// not named keep their places. Returns the first id that is not one of the
    /// user's habits, and then writes nothing.
    pub async fn reorder_habits(&self, user_id: &str, ids: &[String]) -> Result<Option<String>> {
        #[derive(sqlx::FromRow)]
        struct Placed {
            id: String,
            position: i64,
        }
        let mut tx = self.begin_write().await?;
        let placed: Vec<Placed> =
            sqlx::query_as("SELECT id, position FROM habits WHERE user_id = $1")
                .bind(user_id)
                .fetch_all(&mut *tx)
                .await?;
        let held: std::collections::HashMap<&str, i64> =
            placed.iter().map(|p| (p.id.as_str(), p.position)).collect();
        let mut positions = Vec::with_capacity(ids.len());
        for id in ids {
            match held.get(id.as_str()) {
                Some(&position) => positions.push(position),
                None => return Ok(Some(id.clone())),
            }
        }
        positions.sort_unstable();
        for i in 1..positions.len() {
            positions[i] = positions[i].max(positions[i - 1] + 1);
        }
        for (id, position) in ids.iter().zip(positions) {
            sqlx::query("UPDATE habits SET position = $3 WHERE user_id = $1 AND id = $2")
                .bind(user_id)
                .bind(id)
                .bind(position)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(None)
    }

    /// Deletes a habit and its entries, together or not at all.
    pub async fn delete_habit(&self, user_id: &str, id: &str) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let owned = sqlx::query("SELECT 1 FROM habits WHERE user_id = $1 AND id = $2")
            .bind(user_id)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        if owned.is_none() {
            return Ok(false);
        }
        sqlx::query("DELETE FROM entries WHERE habit_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM habit_reminders WHERE habit_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM habits WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records an entry (the habit must already be known to be the user's).
    pub async fn upsert_entry(&self, e: &Entry) -> Result<()> {
        Self::upsert_entry_with(self.writer(), e).await
    }

    /// [`Db::upsert_entry`] on any executor (a pool or a transaction).
    pub async fn upsert_entry_with<'c, E: sqlx::Executor<'c, Database = sqlx::Any>>(
        executor: E,
        e: &Entry,
    ) -> Result<()> {
        let query = sqlx::query(
            "INSERT INTO entries (habit_id, date, status, value, note, source, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (habit_id, date) DO UPDATE \
             SET status = excluded.status, value = excluded.value, note = excluded.note, \
             source = excluded.source, updated_at = excluded.updated_at",
        )
        .bind(&e.habit_id)
        .bind(&e.date)
        .bind(e.status.as_str());
        bind_f64(query, e.value)
            .bind(e.note.as_deref())
            .bind(&e.source)
            .bind(now_ms())
            .execute(executor)
            .await?;
        Ok(())
    }

    /// Records an entry tapped at `tapped_at` (ms since the epoch, its
    /// `updated_at`) unless the stored entry of that day comes from a later tap:
    /// the later tap wins, whichever arrives first. One transaction reads the
    /// stored entry (locked on PostgreSQL) and upserts with
    /// `ON CONFLICT ... DO UPDATE ... WHERE entries.updated_at <= excluded.updated_at`,
    /// so nothing is written (no revision bump either) when the stored one wins.
    pub async fn upsert_entry_tapped(&self, e: &Entry, tapped_at: i64) -> Result<EntryWrite> {
        let mut tx = self.begin_write().await?;
        // PostgreSQL locks the row; SQLite's write transaction holds the database.
        let select = match self.backend() {
            Backend::Postgres => concat!(
                "SELECT habit_id, date, status, value, note, source, updated_at FROM entries ",
                "WHERE habit_id = $1 AND date = $2 FOR UPDATE"
            ),
            Backend::Sqlite => concat!(
                "SELECT habit_id, date, status, value, note, source, updated_at FROM entries ",
                "WHERE habit_id = $1 AND date = $2"
            ),
        };
        let previous: Option<TimedEntryRecord> = sqlx::query_as(select)
            .bind(&e.habit_id)
            .bind(&e.date)
            .fetch_optional(&mut *tx)
            .await?;
        let query = sqlx::query(
            "INSERT INTO entries (habit_id, date, status, value, note, source, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (habit_id, date) DO UPDATE \
             SET status = excluded.status, value = excluded.value, note = excluded.note, \
             source = excluded.source, updated_at = excluded.updated_at \
             WHERE entries.updated_at <= excluded.updated_at",
        )
        .bind(&e.habit_id)
        .bind(&e.date)
        .bind(e.status.as_str());
        let done = bind_f64(query, e.value)
            .bind(e.note.as_deref())
            .bind(&e.source)
            .bind(tapped_at)
            .execute(&mut *tx)
            .await?;
        let written = if done.rows_affected() > 0 {
            let replaced = match previous {
                Some(p) => Some(StoredEntry::try_from(p)?),
                None => None,
            }
            .filter(|p| {
                (p.entry.status, p.entry.value, &p.entry.note) != (e.status, e.value, &e.note)
            });
            EntryWrite::Written {
                stored: StoredEntry {
                    entry: e.clone(),
                    updated_at: tapped_at,
                },
                replaced,
            }
        } else {
            // Not written: a later tap is stored. Read it again, for the row may
            // have been inserted by another writer after the first read.
            let kept: TimedEntryRecord = sqlx::query_as(select)
                .bind(&e.habit_id)
                .bind(&e.date)
                .fetch_one(&mut *tx)
                .await?;
            EntryWrite::KeptNewer(kept.try_into()?)
        };
        tx.commit().await?;
        Ok(written)
    }

    pub async fn delete_entry(&self, habit_id: &str, date: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM entries WHERE habit_id = $1 AND date = $2")
            .bind(habit_id)
            .bind(date)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Entries of a habit between two dates, inclusive, oldest first.
    pub async fn list_entries(&self, habit_id: &str, from: &str, to: &str) -> Result<Vec<Entry>> {
        let rows: Vec<EntryRecord> = sqlx::query_as(
            "SELECT habit_id, date, status, value, note, source FROM entries \
             WHERE habit_id = $1 AND date >= $2 AND date <= $3 ORDER BY date",
        )
        .bind(habit_id)
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(Entry::try_from).collect()
    }
}

const ACTIVITY_COLUMNS: &str = "source, external_id, sport_type, name, start_utc, start_local, distance_m, \
     moving_time_s, elapsed_time_s, elevation_gain_m, average_heartrate";

/// An `activities` row as stored ([`ACTIVITY_COLUMNS`]).
#[derive(sqlx::FromRow)]
struct ActivityRecord {
    source: String,
    external_id: String,
    sport_type: String,
    name: String,
    start_utc: i64,
    start_local: String,
    distance_m: Option<f64>,
    moving_time_s: Option<i64>,
    elapsed_time_s: Option<i64>,
    elevation_gain_m: Option<f64>,
    average_heartrate: Option<f64>,
}

impl TryFrom<ActivityRecord> for Activity {
    type Error = Error;

    fn try_from(r: ActivityRecord) -> Result<Self> {
        let seconds = |column, s: Option<i64>| {
            s.map(|s| u32::try_from(s).map_err(|_| Error::unreadable(column, s)))
                .transpose()
        };
        Ok(Activity {
            source: r.source,
            external_id: r.external_id,
            sport_type: r.sport_type,
            name: r.name,
            start_utc: r.start_utc,
            start_local: r.start_local,
            distance_m: r.distance_m,
            moving_time_s: seconds("activities.moving_time_s", r.moving_time_s)?,
            elapsed_time_s: seconds("activities.elapsed_time_s", r.elapsed_time_s)?,
            elevation_gain_m: r.elevation_gain_m,
            average_heartrate: r.average_heartrate,
        })
    }
}

/// Which activities to list.
pub enum ActivityRange<'a> {
    /// By local start date, inclusive, optionally one sport.
    LocalDates {
        from: &'a str,
        to: &'a str,
        sport: Option<&'a str>,
    },
    /// By UTC start, milliseconds, inclusive.
    Utc { from: i64, to: i64 },
}

impl Db {
    pub async fn list_activities(
        &self,
        user_id: &str,
        range: ActivityRange<'_>,
    ) -> Result<Vec<Activity>> {
        let rows: Vec<ActivityRecord> = match range {
            ActivityRange::LocalDates { from, to, sport } => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {ACTIVITY_COLUMNS} FROM activities WHERE user_id = $1 \
                     AND substr(start_local, 1, 10) >= $2 AND substr(start_local, 1, 10) <= $3 \
                     AND ($4 = '' OR sport_type = $4) ORDER BY start_utc"
                )))
                .bind(user_id)
                .bind(from)
                .bind(to)
                .bind(sport.unwrap_or(""))
                .fetch_all(self.pool())
                .await?
            }
            ActivityRange::Utc { from, to } => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {ACTIVITY_COLUMNS} FROM activities WHERE user_id = $1 \
                     AND start_utc >= $2 AND start_utc <= $3 ORDER BY start_utc"
                )))
                .bind(user_id)
                .bind(from)
                .bind(to)
                .fetch_all(self.pool())
                .await?
            }
        };
        rows.into_iter().map(Activity::try_from).collect()
    }

    /// Inserts or replaces the user's activity with this source and external id.
    pub async fn upsert_activity(&self, user_id: &str, a: &Activity) -> Result<()> {
        Self::upsert_activity_with(self.writer(), user_id, a).await
    }

    /// [`Db::upsert_activity`] on any executor (a pool or a transaction).
    pub async fn upsert_activity_with<'c, E: sqlx::Executor<'c, Database = sqlx::Any>>(
        executor: E,
        user_id: &str,
        a: &Activity,
    ) -> Result<()> {
        let query = sqlx::query(
            "INSERT INTO activities (id, user_id, source, external_id, sport_type, name, start_utc, start_local, \
             distance_m, moving_time_s, elapsed_time_s, elevation_gain_m, average_heartrate, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
             ON CONFLICT (user_id, source, external_id) DO UPDATE SET sport_type = excluded.sport_type, \
             name = excluded.name, start_utc = excluded.start_utc, start_local = excluded.start_local, \
             distance_m = excluded.distance_m, moving_time_s = excluded.moving_time_s, \
             elapsed_time_s = excluded.elapsed_time_s, elevation_gain_m = excluded.elevation_gain_m, \
             average_heartrate = excluded.average_heartrate, updated_at = excluded.updated_at",
        )
        .bind(super::new_id())
        .bind(user_id)
        .bind(&a.source)
        .bind(&a.external_id)
        .bind(&a.sport_type)
        .bind(&a.name)
        .bind(a.start_utc)
        .bind(&a.start_local);
        let query = bind_f64(query, a.distance_m)
            .bind(a.moving_time_s.map(i64::from))
            .bind(a.elapsed_time_s.map(i64::from));
        let query = bind_f64(query, a.elevation_gain_m);
        bind_f64(query, a.average_heartrate)
            .bind(now_ms())
            .execute(executor)
            .await?;
        Ok(())
    }

    pub async fn delete_activity(
        &self,
        user_id: &str,
        source: &str,
        external_id: &str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM activities WHERE user_id = $1 AND source = $2 AND external_id = $3",
        )
        .bind(user_id)
        .bind(source)
        .bind(external_id)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() > 0)
    }
}

impl Db {
    /// Adds imported habits (with their entries) and activities to a user's data and
    /// sets their time zone, in one transaction: all of it or none.
    pub async fn import(
        &self,
        user_id: &str,
        time_zone: &str,
        habits: &[(Habit, Vec<Entry>)],
        activities: &[Activity],
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        for (habit, entries) in habits {
            Self::insert_habit_with(&mut tx, user_id, habit).await?;
            for entry in entries {
                Self::upsert_entry_with(&mut *tx, entry).await?;
            }
        }
        for activity in activities {
            Self::upsert_activity_with(&mut *tx, user_id, activity).await?;
        }
        sqlx::query("UPDATE users SET time_zone = $2 WHERE id = $1")
            .bind(user_id)
            .bind(time_zone)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Error;

    async fn db_with_a_habit() -> (tempfile::TempDir, Db, Habit) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("ham.db").display());
        let db = Db::connect(&url).await.unwrap();
        db.create_user("u1", "ada", None, false).await.unwrap();
        let habit = Habit {
            id: "h1".into(),
            name: "Run".into(),
            description: "around the park".into(),
            color: "#00aa00".into(),
            kind: HabitKind::Measurable,
            unit: Some("km".into()),
            target: Some(Target {
                value: 5.0,
                target_type: TargetType::AtMost,
            }),
            frequency: Frequency::Every { times: 3, days: 7 },
            reminders: vec![
                Reminder {
                    time: "07:30".into(),
                    days: vec![1, 2, 3, 4, 5],
                },
                Reminder {
                    time: "09:00".into(),
                    days: vec![6, 7],
                },
            ],
            archived: true,
            position: 4,
            group: Some("Morning".into()),
            created: "2024-02-29".into(),
        };
        db.insert_habit("u1", &habit).await.unwrap();
        (dir, db, habit)
    }

    #[tokio::test]
    async fn columns_are_read_by_name_whatever_their_order() {
        let (_dir, db, habit) = db_with_a_habit().await;
        assert_eq!(db.get_habit("u1", "h1").await.unwrap(), Some(habit.clone()));
        let reversed = HABIT_COLUMNS.rsplit(", ").collect::<Vec<_>>().join(", ");
        let row: HabitWithRevision = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT revision, {reversed} FROM habits WHERE id = 'h1'"
        )))
        .fetch_one(db.pool())
        .await
        .unwrap();
        // The row holds the habit's columns; its reminders are read apart.
        let bare = Habit {
            reminders: Vec::new(),
            ..habit
        };
        assert_eq!(row.into_pair().unwrap(), (bare, 0));
    }

    #[tokio::test]
    async fn reordered_habits_take_the_places_they_held_and_others_keep_theirs() {
        let (_dir, db, first) = db_with_a_habit().await;
        let mut ids = vec![first.id.clone()];
        for (id, position) in [("h2", 7), ("h3", 9), ("h4", 12)] {
            let habit = Habit {
                id: id.into(),
                position,
                ..first.clone()
            };
            db.insert_habit("u1", &habit).await.unwrap();
            ids.push(id.into());
        }
        let positions = |db: Db| async move {
            db.habits_with_revision("u1", true)
                .await
                .unwrap()
                .into_iter()
                .map(|(h, _)| (h.id, h.position))
                .collect::<Vec<_>>()
        };
        // h4 to the front of h2..h4; h1 (position 4) is not named and stays first.
        let moved = ["h4", "h2", "h3"].map(String::from);
        assert_eq!(db.reorder_habits("u1", &moved).await.unwrap(), None);
        assert_eq!(
            positions(db.clone()).await,
            [("h1", 4), ("h4", 7), ("h2", 9), ("h3", 12)].map(|(i, p)| (i.to_string(), p))
        );
        // An id that is not the user's changes nothing and is named.
        let before = positions(db.clone()).await;
        let foreign = ["h3", "nope", "h2"].map(String::from);
        assert_eq!(
            db.reorder_habits("u1", &foreign).await.unwrap(),
            Some("nope".into())
        );
        assert_eq!(
            db.reorder_habits("u2", &moved).await.unwrap(),
            Some("h4".into())
        );
        assert_eq!(positions(db.clone()).await, before);
        // Equal positions (an import can write them) become distinct.
        sqlx::query("UPDATE habits SET position = 3")
            .execute(db.writer())
            .await
            .unwrap();
        let all = ["h3", "h1", "h4", "h2"].map(String::from);
        db.reorder_habits("u1", &all).await.unwrap();
        assert_eq!(
            positions(db).await,
            [("h3", 3), ("h1", 4), ("h4", 5), ("h2", 6)].map(|(i, p)| (i.to_string(), p))
        );
    }

    #[tokio::test]
    async fn an_unknown_stored_name_is_an_error_naming_column_and_value() {
        let (_dir, db, _) = db_with_a_habit().await;
        for (statement, column, value) in [
            (
                "UPDATE habits SET kind = 'counted'",
                "habits.kind",
                "counted",
            ),
            (
                "UPDATE habits SET kind = 'measurable', target_type = 'exactly'",
                "habits.target_type",
                "exactly",
            ),
            (
                "UPDATE habits SET target_type = 'at_most', frequency_days = -1",
                "habits.frequency_days",
                "-1",
            ),
        ] {
            sqlx::query(statement).execute(db.pool()).await.unwrap();
            match db.get_habit("u1", "h1").await {
                Err(Error::Unreadable {
                    column: c,
                    value: v,
                }) => {
                    assert_eq!((c, v.as_str()), (column, value));
                }
                other => panic!("{statement}: {other:?}"),
            }
        }
        sqlx::query("UPDATE habits SET frequency_days = 7")
            .execute(db.pool())
            .await
            .unwrap();
        let entry = Entry {
            habit_id: "h1".into(),
            date: "2024-03-01".into(),
            status: EntryStatus::Value,
            value: Some(2.5),
            note: None,
            source: "manual".into(),
        };
        db.upsert_entry(&entry).await.unwrap();
        assert_eq!(
            db.list_entries("h1", "2024-01-01", "2024-12-31")
                .await
                .unwrap(),
            [entry]
        );
        let judged = db
            .entries_for_rules("u1", None, "2024-12-31")
            .await
            .unwrap();
        assert_eq!(judged["h1"].len(), 1);
        sqlx::query("UPDATE entries SET status = 'maybe'")
            .execute(db.pool())
            .await
            .unwrap();
        for error in [
            db.list_entries("h1", "2024-01-01", "2024-12-31")
                .await
                .unwrap_err(),
            db.entries_for_rules("u1", Some("h1"), "2024-12-31")
                .await
                .unwrap_err(),
        ] {
            assert!(
                matches!(&error, Error::Unreadable { column: "entries.status", value } if value == "maybe"),
                "{error:?}"
            );
        }
    }
}
