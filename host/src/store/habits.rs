//! Habits and entries, always scoped to their owner: every query names the user,
//! so another user's id is simply not found.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, Result, now_ms};
use crate::habits::{
    Activity, Entry, EntryStatus, Frequency, Habit, HabitKind, Target, TargetType,
};
use crate::runtime::bindings::exports::ham::plugin::rules::DayEntry;
use crate::runtime::bindings::ham::plugin::habits::EntryValue;

const HABIT_COLUMNS: &str = "id, name, description, color, kind, unit, target_value, target_type, \
     frequency_times, frequency_days, reminder, archived, position, created";

fn habit_row(r: &AnyRow) -> Habit {
    let kind = if r.get::<String, _>(4) == "measurable" {
        HabitKind::Measurable
    } else {
        HabitKind::Boolean
    };
    let target = match (r.get::<Option<f64>, _>(6), r.get::<Option<String>, _>(7)) {
        (Some(value), Some(t)) => Some(Target {
            value,
            target_type: if t == "at_most" {
                TargetType::AtMost
            } else {
                TargetType::AtLeast
            },
        }),
        _ => None,
    };
    Habit {
        id: r.get(0),
        name: r.get(1),
        description: r.get(2),
        color: r.get(3),
        kind,
        unit: r.get(5),
        target,
        frequency: Frequency {
            times: u32::try_from(r.get::<i64, _>(8)).unwrap_or(1),
            days: u32::try_from(r.get::<i64, _>(9)).unwrap_or(1),
        },
        reminder: r.get(10),
        archived: r.get::<i64, _>(11) != 0,
        position: r.get(12),
        created: r.get(13),
    }
}

fn kind_str(kind: HabitKind) -> &'static str {
    match kind {
        HabitKind::Boolean => "boolean",
        HabitKind::Measurable => "measurable",
    }
}

fn target_type_str(t: TargetType) -> &'static str {
    match t {
        TargetType::AtLeast => "at_least",
        TargetType::AtMost => "at_most",
    }
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// Binds `$1` user id, `$2` habit id and `$3`..`$14` the habit's stored fields, in
/// the column order both the insert and the update use.
fn bind_habit<'q>(query: AnyQuery<'q>, user_id: &'q str, h: &'q Habit) -> AnyQuery<'q> {
    let query = query
        .bind(user_id)
        .bind(&h.id)
        .bind(&h.name)
        .bind(&h.description)
        .bind(&h.color)
        .bind(kind_str(h.kind))
        .bind(h.unit.as_deref());
    bind_f64(query, h.target.map(|t| t.value))
        .bind(h.target.map(|t| target_type_str(t.target_type)))
        .bind(i64::from(h.frequency.times))
        .bind(i64::from(h.frequency.days))
        .bind(h.reminder.as_deref())
        .bind(i64::from(h.archived))
        .bind(h.position)
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

fn entry_row(r: &AnyRow) -> Entry {
    Entry {
        habit_id: r.get(0),
        date: r.get(1),
        status: EntryStatus::parse(&r.get::<String, _>(2)).unwrap_or(EntryStatus::Done),
        value: r.get(3),
        note: r.get(4),
        source: r.get(5),
    }
}

impl Db {
    pub async fn list_habits(&self, user_id: &str, include_archived: bool) -> Result<Vec<Habit>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {HABIT_COLUMNS} FROM habits WHERE user_id = $1 AND (archived = 0 OR $2 = 1) \
             ORDER BY position, created_at, id"
        )))
        .bind(user_id)
        .bind(i64::from(include_archived))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(habit_row).collect())
    }

    pub async fn get_habit(&self, user_id: &str, id: &str) -> Result<Option<Habit>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {HABIT_COLUMNS} FROM habits WHERE user_id = $1 AND id = $2"
        )))
        .bind(user_id)
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(habit_row))
    }

    /// A user's habits with their revision (see the `0005_habit_revision`
    /// migration): `archived` false for the active ones only.
    pub async fn habits_with_revision(
        &self,
        user_id: &str,
        include_archived: bool,
    ) -> Result<Vec<(Habit, i64)>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {HABIT_COLUMNS}, revision FROM habits \
             WHERE user_id = $1 AND (archived = 0 OR $2 = 1) ORDER BY position, created_at, id"
        )))
        .bind(user_id)
        .bind(i64::from(include_archived))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(|r| (habit_row(r), r.get(14))).collect())
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
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {HABIT_COLUMNS}, revision FROM habits WHERE user_id = $1 AND id = $2"
        )))
        .bind(user_id)
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| (habit_row(&r), r.get(14))))
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
                "group_concat(e.date, ''), group_concat(e.status, ','), \
                 group_concat(CASE WHEN e.value IS NULL THEN '' ELSE printf('%.17g', e.value) END, ';')"
            }
            super::Backend::Postgres => {
                "string_agg(e.date, ''), string_agg(e.status, ','), \
                 string_agg(COALESCE(e.value::text, ''), ';')"
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
        let rows = sqlx::query(sqlx::AssertSqlSafe(query))
            .bind(habit_id.unwrap_or(user_id))
            .bind(to)
            .fetch_all(self.pool())
            .await?;
        let mut by_habit = std::collections::HashMap::new();
        for row in &rows {
            let habit_id: String = row.get(0);
            let dates: Option<String> = row.get(1);
            let statuses: Option<String> = row.get(2);
            let values: Option<String> = row.get(3);
            let (dates, statuses, values) = (
                dates.unwrap_or_default(),
                statuses.unwrap_or_default(),
                values.unwrap_or_default(),
            );
            let mut entries: Vec<DayEntry> = dates
                .as_bytes()
                .chunks_exact(10)
                .zip(statuses.split(','))
                .zip(values.split(';'))
                .filter_map(|((date, status), value)| {
                    let day = civil_day::parse(std::str::from_utf8(date).ok()?)?;
                    Some(DayEntry {
                        day: i32::try_from(day).ok()?,
                        value: match EntryStatus::parse(status)? {
                            EntryStatus::Skipped => EntryValue::Skipped,
                            EntryStatus::Value => EntryValue::Value(value.parse().ok()?),
                            EntryStatus::Done => EntryValue::Done,
                        },
                    })
                })
                .collect();
            // An aggregate's order is not guaranteed; the rules get oldest first.
            entries.sort_unstable_by_key(|e| e.day);
            by_habit.insert(habit_id, entries);
        }
        Ok(by_habit)
    }

    /// The position after the user's last habit.
    pub async fn next_habit_position(&self, user_id: &str) -> Result<i64> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(MAX(position), -1) + 1 AS BIGINT) FROM habits WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_one(self.pool())
        .await?;
        Ok(row.get(0))
    }

    pub async fn insert_habit(&self, user_id: &str, h: &Habit) -> Result<()> {
        Self::insert_habit_with(self.writer(), user_id, h).await
    }

    /// [`Db::insert_habit`] on any executor (a pool or a transaction).
    pub async fn insert_habit_with<'c, E: sqlx::Executor<'c, Database = sqlx::Any>>(
        executor: E,
        user_id: &str,
        h: &Habit,
    ) -> Result<()> {
        let query = sqlx::query(
            "INSERT INTO habits (user_id, id, name, description, color, kind, unit, target_value, target_type, \
             frequency_times, frequency_days, reminder, archived, position, created, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        );
        let query = bind_habit(query, user_id, h)
            .bind(&h.created)
            .bind(now_ms());
        query.execute(executor).await?;
        Ok(())
    }

    pub async fn update_habit(&self, user_id: &str, h: &Habit) -> Result<bool> {
        let query = sqlx::query(
            "UPDATE habits SET name = $3, description = $4, color = $5, kind = $6, unit = $7, target_value = $8, \
             target_type = $9, frequency_times = $10, frequency_days = $11, reminder = $12, archived = $13, \
             position = $14 WHERE user_id = $1 AND id = $2",
        );
        let query = bind_habit(query, user_id, h);
        let done = query.execute(self.writer()).await?;
        Ok(done.rows_affected() > 0)
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
        let rows = sqlx::query(
            "SELECT habit_id, date, status, value, note, source FROM entries \
             WHERE habit_id = $1 AND date >= $2 AND date <= $3 ORDER BY date",
        )
        .bind(habit_id)
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(entry_row).collect())
    }
}

const ACTIVITY_COLUMNS: &str = "source, external_id, sport_type, name, start_utc, start_local, distance_m, \
     moving_time_s, elapsed_time_s, elevation_gain_m, average_heartrate";

fn activity_row(r: &AnyRow) -> Activity {
    let seconds = |i: usize| {
        r.get::<Option<i64>, _>(i)
            .and_then(|v| u32::try_from(v).ok())
    };
    Activity {
        source: r.get(0),
        external_id: r.get(1),
        sport_type: r.get(2),
        name: r.get(3),
        start_utc: r.get(4),
        start_local: r.get(5),
        distance_m: r.get(6),
        moving_time_s: seconds(7),
        elapsed_time_s: seconds(8),
        elevation_gain_m: r.get(9),
        average_heartrate: r.get(10),
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
        let rows = match range {
            ActivityRange::LocalDates { from, to, sport } => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
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
                sqlx::query(sqlx::AssertSqlSafe(format!(
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
        Ok(rows.iter().map(activity_row).collect())
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
        .bind(crate::auth::new_id())
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

// ---- the `ham:plugin/habits` interface: always the acting user's data ----

/// Habits, entries and activities in their WIT form, and the host side of the
/// `habits` interface.
pub mod wit {
    use crate::habits::{self as domain, EntryInput, EntryStatus};
    use crate::runtime::Invocation;
    use crate::runtime::bindings::ham::plugin::habits::{
        self as api, Activity, Entry, EntryValue, Frequency, Habit, HabitKind, Settings, Target,
        TargetType,
    };
    use crate::runtime::bindings::ham::plugin::types::Error as GuestError;
    use crate::store::habits::ActivityRange;

    /// A habit in its WIT form.
    pub fn habit(h: domain::Habit) -> Habit {
        Habit {
            id: h.id,
            name: h.name,
            description: h.description,
            color: h.color,
            kind: match h.kind {
                domain::HabitKind::Boolean => HabitKind::Boolean,
                domain::HabitKind::Measurable => HabitKind::Measurable,
            },
            unit: h.unit,
            target: h.target.map(|t| Target {
                value: t.value,
                type_: match t.target_type {
                    domain::TargetType::AtLeast => TargetType::AtLeast,
                    domain::TargetType::AtMost => TargetType::AtMost,
                },
            }),
            frequency: Frequency {
                times: h.frequency.times,
                days: h.frequency.days,
            },
            archived: h.archived,
            position: u32::try_from(h.position).unwrap_or(u32::MAX),
            created: h.created,
        }
    }

    /// An entry in its WIT form.
    pub fn entry(e: domain::Entry) -> Entry {
        Entry {
            habit_id: e.habit_id,
            date: e.date,
            value: match (e.status, e.value) {
                (EntryStatus::Skipped, _) => EntryValue::Skipped,
                (EntryStatus::Value, Some(v)) => EntryValue::Value(v),
                _ => EntryValue::Done,
            },
            note: e.note,
            source: e.source,
        }
    }

    fn activity(a: domain::Activity) -> Activity {
        Activity {
            source: a.source,
            external_id: a.external_id,
            sport_type: a.sport_type,
            name: a.name,
            start: a.start_utc,
            start_local: a.start_local,
            distance_m: a.distance_m,
            moving_time_s: a.moving_time_s,
            elapsed_time_s: a.elapsed_time_s,
            elevation_gain_m: a.elevation_gain_m,
            average_heartrate: a.average_heartrate,
        }
    }

    fn invalid(e: domain::FieldError) -> GuestError {
        GuestError::InvalidArgument(e.to_string())
    }

    impl Invocation {
        // Borrows only what it needs: a future holding `&Invocation` is not `Send`.
        async fn owned_habit(&mut self, id: &str) -> Result<domain::Habit, GuestError> {
            let user = self.acting_user()?;
            let found = self.db.get_habit(user, id).await;
            found
                .map_err(|e| self.host_failed(e))?
                .ok_or(GuestError::NotFound)
        }
    }

    impl api::Host for Invocation {
        async fn list_habits(&mut self) -> Result<Vec<Habit>, GuestError> {
            let user = self.acting_user()?;
            let habits = self
                .db
                .list_habits(user, true)
                .await
                .map_err(|e| self.host_failed(e))?;
            Ok(habits.into_iter().map(habit).collect())
        }

        async fn list_entries(
            &mut self,
            habit_id: String,
            from: String,
            to: String,
        ) -> Result<Vec<Entry>, GuestError> {
            let habit = self.owned_habit(&habit_id).await?;
            for (name, date) in [("from", &from), ("to", &to)] {
                if !domain::is_date(date) {
                    return Err(GuestError::InvalidArgument(format!(
                        "{name}: `{date}` is not a date YYYY-MM-DD"
                    )));
                }
            }
            let entries = self
                .db
                .list_entries(&habit.id, &from, &to)
                .await
                .map_err(|e| self.host_failed(e))?;
            Ok(entries.into_iter().map(entry).collect())
        }

        /// The entry's source is the plugin's name unless it names another source
        /// (such as `strava`); `manual` is the user's own and refused.
        async fn upsert_entry(&mut self, e: Entry) -> Result<(), GuestError> {
            let habit = self.owned_habit(&e.habit_id).await?;
            let source = if e.source.is_empty() {
                self.plugin.manifest.name.clone()
            } else {
                e.source
            };
            if source == "manual" {
                return Err(GuestError::InvalidArgument(
                    "source: `manual` is reserved for the user".into(),
                ));
            }
            let input = match e.value {
                EntryValue::Done => EntryInput {
                    status: Some(EntryStatus::Done),
                    value: None,
                    note: e.note,
                },
                EntryValue::Skipped => EntryInput {
                    status: Some(EntryStatus::Skipped),
                    value: None,
                    note: e.note,
                },
                EntryValue::Value(v) => EntryInput {
                    status: None,
                    value: Some(v),
                    note: e.note,
                },
            };
            let entry = input.entry(&habit, &e.date, &source).map_err(invalid)?;
            self.db
                .upsert_entry(&entry)
                .await
                .map_err(|e| self.host_failed(e))?;
            if let Some(evaluator) = &self.evaluator {
                evaluator.entry_written(&entry).await;
            }
            Ok(())
        }

        async fn delete_entry(
            &mut self,
            habit_id: String,
            date: String,
        ) -> Result<bool, GuestError> {
            let habit = self.owned_habit(&habit_id).await?;
            let deleted = self
                .db
                .delete_entry(&habit.id, &date)
                .await
                .map_err(|e| self.host_failed(e))?;
            if let (true, Some(evaluator)) = (deleted, &self.evaluator) {
                evaluator.entry_deleted(&habit.id, &date).await;
            }
            Ok(deleted)
        }

        async fn list_activities(
            &mut self,
            from: i64,
            to: i64,
        ) -> Result<Vec<Activity>, GuestError> {
            let user = self.acting_user()?;
            let found = self
                .db
                .list_activities(user, ActivityRange::Utc { from, to })
                .await;
            Ok(found
                .map_err(|e| self.host_failed(e))?
                .into_iter()
                .map(activity)
                .collect())
        }

        async fn upsert_activity(&mut self, a: Activity) -> Result<(), GuestError> {
            let user = self.acting_user()?;
            let a = domain::Activity {
                source: a.source,
                external_id: a.external_id,
                sport_type: a.sport_type,
                name: a.name,
                start_utc: a.start,
                start_local: a.start_local,
                distance_m: a.distance_m,
                moving_time_s: a.moving_time_s,
                elapsed_time_s: a.elapsed_time_s,
                elevation_gain_m: a.elevation_gain_m,
                average_heartrate: a.average_heartrate,
            };
            a.validate().map_err(invalid)?;
            self.db
                .upsert_activity(user, &a)
                .await
                .map_err(|e| self.host_failed(e))
        }

        async fn delete_activity(
            &mut self,
            source: String,
            external_id: String,
        ) -> Result<bool, GuestError> {
            let user = self.acting_user()?;
            self.db
                .delete_activity(user, &source, &external_id)
                .await
                .map_err(|e| self.host_failed(e))
        }

        async fn list_stats(&mut self) -> Result<Vec<api::HabitStats>, GuestError> {
            self.habit_stats_today().await
        }

        async fn get_settings(&mut self) -> Result<Settings, GuestError> {
            let user = self.acting_user()?;
            let time_zone = self
                .db
                .user_time_zone(user)
                .await
                .map_err(|e| self.host_failed(e))?;
            let today = domain::today_in(&time_zone);
            Ok(Settings { time_zone, today })
        }
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
            Self::insert_habit_with(&mut *tx, user_id, habit).await?;
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
