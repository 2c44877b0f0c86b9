//! Habits and entries, always scoped to their owner: every query names the user,
//! so another user's id is simply not found.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, Result, now_ms};
use crate::habits::{Entry, EntryStatus, Frequency, Habit, HabitKind, Target, TargetType};

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
        let query = sqlx::query(
            "INSERT INTO habits (id, user_id, name, description, color, kind, unit, target_value, target_type, \
             frequency_times, frequency_days, reminder, archived, position, created, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(&h.id)
        .bind(user_id)
        .bind(&h.name)
        .bind(&h.description)
        .bind(&h.color)
        .bind(kind_str(h.kind))
        .bind(h.unit.as_deref());
        let query = bind_f64(query, h.target.map(|t| t.value))
            .bind(h.target.map(|t| target_type_str(t.target_type)))
            .bind(i64::from(h.frequency.times))
            .bind(i64::from(h.frequency.days))
            .bind(h.reminder.as_deref())
            .bind(i64::from(h.archived))
            .bind(h.position)
            .bind(&h.created)
            .bind(now_ms());
        query.execute(self.pool()).await?;
        Ok(())
    }

    pub async fn update_habit(&self, user_id: &str, h: &Habit) -> Result<bool> {
        let query = sqlx::query(
            "UPDATE habits SET name = $3, description = $4, color = $5, kind = $6, unit = $7, target_value = $8, \
             target_type = $9, frequency_times = $10, frequency_days = $11, reminder = $12, archived = $13, \
             position = $14 WHERE user_id = $1 AND id = $2",
        )
        .bind(user_id)
        .bind(&h.id)
        .bind(&h.name)
        .bind(&h.description)
        .bind(&h.color)
        .bind(kind_str(h.kind))
        .bind(h.unit.as_deref());
        let query = bind_f64(query, h.target.map(|t| t.value))
            .bind(h.target.map(|t| target_type_str(t.target_type)))
            .bind(i64::from(h.frequency.times))
            .bind(i64::from(h.frequency.days))
            .bind(h.reminder.as_deref())
            .bind(i64::from(h.archived))
            .bind(h.position);
        let done = query.execute(self.pool()).await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes a habit and its entries, together or not at all.
    pub async fn delete_habit(&self, user_id: &str, id: &str) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
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
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn delete_entry(&self, habit_id: &str, date: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM entries WHERE habit_id = $1 AND date = $2")
            .bind(habit_id)
            .bind(date)
            .execute(self.pool())
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
