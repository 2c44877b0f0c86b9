//! Loop Habit Tracker's full backup (its SQLite database, the `.db` file of
//! Settings -> Export full backup) read into an [`Export`] document, which the
//! import then checks and writes like any other: all of it or none.
//!
//! The encodings, from Loop's published source (`uhabits-core`: `HabitRecord`,
//! `EntryRecord`, `Entry`, `WeekdayList`, `Themes`):
//!
//! - `Habits`: `type` 0 is yes/no, 1 numerical; `target_type` 0 at least, 1 at
//!   most; `freq_num` times every `freq_den` days; `color` an index into Loop's
//!   20-colour palette; `archived` 0/1; `question` and `description` texts;
//!   `reminder_hour`, `reminder_min` and `reminder_days`, a bit set whose bit `i`
//!   is a weekday counted from Saturday (bit 0 Saturday, bit 1 Sunday, bit 2
//!   Monday ... bit 6 Friday). Since schema 26 a habit may sit in a
//!   `HabitGroups` row (`group_id`).
//! - `Repetitions`: `habit`, `timestamp` (milliseconds at UTC midnight of the
//!   local day), `value`, `notes`. For a yes/no habit `value` is 2 (done by the
//!   user), 3 (skipped), 1 (done automatically: derived, not a check-in), 0 (not
//!   done) or -1 (unknown). For a numerical habit it is the amount times 1000, 3
//!   (what Loop shows as 0.003) meaning skipped and a negative value unknown.
//!   Backups from before `value` existed hold done days only.
//!
//! A repetition that is no check-in in HAM (not done, unknown, done
//! automatically) is left out; its note, if it has one, is counted in
//! [`LoopBackup::dropped_notes`], since HAM keeps notes on entries only.
//!
//! The file is untrusted: it is opened read-only, with `trusted_schema` off (no
//! functions run from its schema), its integrity checked, and `Habits` and
//! `Repetitions` must be plain tables.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write as _;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions as _, Connection as _};

use super::{Export, ExportedEntry, ExportedHabit, FORMAT, VERSION};
use crate::habits::{EntryStatus, Frequency, HabitKind, Reminder, Target, TargetType};

/// The source of the entries an import from Loop writes.
pub const SOURCE: &str = "loop";

/// Loop's light-theme palette, by index.
const PALETTE: [&str; 20] = [
    "#d32f2f", "#e64a19", "#f57c00", "#ff8f00", "#f9a825", "#afb42b", "#7cb342", "#388e3c",
    "#00897b", "#00acc1", "#039be5", "#1976d2", "#303f9f", "#5e35b1", "#8e24aa", "#d81b60",
    "#5d4037", "#424242", "#757575", "#9e9e9e",
];

/// ISO weekday (1 = Monday) of each bit of `reminder_days`, bit 0 first.
const REMINDER_DAY_BITS: [u8; 7] = [6, 7, 1, 2, 3, 4, 5];

const YES_MANUAL: i64 = 2;
const SKIP: i64 = 3;

/// A Loop backup as HAM's export document.
#[derive(Debug)]
pub struct LoopBackup {
    pub export: Export,
    /// Notes on days that are no check-in in HAM, and so not imported.
    pub dropped_notes: usize,
}

/// Why a file is not imported; the text says what is wrong, for the person.
#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    #[error("not a Loop Habit Tracker backup: {0}")]
    NotLoop(String),
    #[error("the Loop backup is damaged: {0}")]
    Damaged(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn damaged(e: impl std::fmt::Display) -> LoopError {
    LoopError::Damaged(e.to_string())
}

#[derive(sqlx::FromRow)]
struct HabitRow {
    id: i64,
    name: Option<String>,
    description: Option<String>,
    question: Option<String>,
    freq_num: Option<i64>,
    freq_den: Option<i64>,
    color: Option<i64>,
    position: Option<i64>,
    reminder_hour: Option<i64>,
    reminder_min: Option<i64>,
    reminder_days: Option<i64>,
    archived: Option<i64>,
    #[sqlx(rename = "type")]
    kind: Option<i64>,
    target_type: Option<i64>,
    target_value: Option<f64>,
    unit: Option<String>,
    group_name: Option<String>,
}

#[derive(sqlx::FromRow)]
struct RepetitionRow {
    habit: i64,
    timestamp: i64,
    value: Option<i64>,
    notes: Option<String>,
}

/// Reads a Loop backup. `today` (the importing user's, `YYYY-MM-DD`) is the
/// creation date of a habit with no history.
pub async fn read(bytes: &[u8], today: &str, time_zone: &str) -> Result<LoopBackup, LoopError> {
    if !bytes.starts_with(b"SQLite format 3\0") {
        return Err(LoopError::NotLoop(
            "the file is not an SQLite database (send the .db file of Loop's Export full backup)"
                .into(),
        ));
    }
    let mut file = tempfile::NamedTempFile::new()?;
    file.write_all(bytes)?;
    file.flush()?;
    let mut db = SqliteConnectOptions::new()
        .filename(file.path())
        .read_only(true)
        .create_if_missing(false)
        .pragma("trusted_schema", "OFF")
        .pragma("query_only", "ON")
        .disable_statement_logging()
        .connect()
        .await
        .map_err(damaged)?;
    let read = read_tables(&mut db, today, time_zone).await;
    db.close().await.ok();
    read
}

async fn read_tables(
    db: &mut SqliteConnection,
    today: &str,
    time_zone: &str,
) -> Result<LoopBackup, LoopError> {
    let check: String = sqlx::query_scalar("PRAGMA quick_check")
        .fetch_one(&mut *db)
        .await
        .map_err(damaged)?;
    if check != "ok" {
        return Err(LoopError::Damaged(check));
    }
    let tables: Vec<(String, String)> =
        sqlx::query_as("SELECT type, name FROM sqlite_master WHERE type IN ('table', 'view')")
            .fetch_all(&mut *db)
            .await
            .map_err(damaged)?;
    let table = |name: &str| {
        tables
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|(kind, _)| kind.as_str())
    };
    for required in ["Habits", "Repetitions"] {
        match table(required) {
            Some("table") => {}
            _ => {
                return Err(LoopError::NotLoop(format!("it has no `{required}` table")));
            }
        }
    }
    let habit_columns = columns(db, "Habits").await?;
    for required in ["id", "name", "freq_num", "freq_den"] {
        if !habit_columns.contains(required) {
            return Err(LoopError::NotLoop(format!(
                "its `Habits` table has no `{required}` column"
            )));
        }
    }
    let repetition_columns = columns(db, "Repetitions").await?;
    for required in ["habit", "timestamp"] {
        if !repetition_columns.contains(required) {
            return Err(LoopError::NotLoop(format!(
                "its `Repetitions` table has no `{required}` column"
            )));
        }
    }

    // Columns added over Loop's versions read as NULL where a backup predates them.
    let or_null = |column: &str| {
        if habit_columns.contains(column) {
            format!("h.{column}")
        } else {
            format!("NULL AS {column}")
        }
    };
    let grouped = habit_columns.contains("group_id") && table("HabitGroups") == Some("table");
    let group = if grouped {
        "g.name AS group_name"
    } else {
        "NULL AS group_name"
    };
    let join = if grouped {
        "LEFT JOIN HabitGroups g ON g.id = h.group_id"
    } else {
        ""
    };
    let optional = [
        "description",
        "question",
        "color",
        "position",
        "reminder_hour",
        "reminder_min",
        "reminder_days",
        "archived",
        "type",
        "target_type",
        "target_value",
        "unit",
    ]
    .map(or_null)
    .join(", ");
    let habits: Vec<HabitRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT * FROM (SELECT h.id, h.name, h.freq_num, h.freq_den, {optional}, {group} \
         FROM Habits h {join}) ORDER BY position, id"
    )))
    .fetch_all(&mut *db)
    .await
    .map_err(damaged)?;
    let value = if repetition_columns.contains("value") {
        "value"
    } else {
        "NULL AS value"
    };
    let notes = if repetition_columns.contains("notes") {
        "notes"
    } else {
        "NULL AS notes"
    };
    let repetitions: Vec<RepetitionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT habit, timestamp, {value}, {notes} FROM Repetitions ORDER BY habit, timestamp, id"
    )))
    .fetch_all(&mut *db)
    .await
    .map_err(damaged)?;

    let kinds: HashMap<i64, HabitKind> = habits.iter().map(|h| (h.id, kind(h.kind))).collect();
    let mut entries: HashMap<i64, BTreeMap<String, ExportedEntry>> = HashMap::new();
    let mut dropped_notes = 0;
    for r in repetitions {
        let Some(&habit_kind) = kinds.get(&r.habit) else {
            return Err(LoopError::Damaged(format!(
                "a repetition names habit {}, which does not exist",
                r.habit
            )));
        };
        let date = utc_date(r.timestamp).ok_or_else(|| {
            LoopError::Damaged(format!("timestamp {} is not a date", r.timestamp))
        })?;
        let note = r.notes.filter(|n| !n.trim().is_empty());
        let Some((status, value)) = check_in(habit_kind, r.value) else {
            dropped_notes += usize::from(note.is_some());
            continue;
        };
        entries.entry(r.habit).or_default().insert(
            date.clone(),
            ExportedEntry {
                date,
                status,
                value,
                note,
                source: SOURCE.into(),
            },
        );
    }

    let mut exported = Vec::with_capacity(habits.len());
    for h in habits {
        let days: Vec<ExportedEntry> = entries
            .remove(&h.id)
            .unwrap_or_default()
            .into_values()
            .collect();
        exported.push(habit(h, days, today)?);
    }
    Ok(LoopBackup {
        export: Export {
            format: FORMAT.into(),
            version: VERSION,
            time_zone: time_zone.into(),
            habits: exported,
            activities: Vec::new(),
        },
        dropped_notes,
    })
}

async fn columns(db: &mut SqliteConnection, table: &str) -> Result<HashSet<String>, LoopError> {
    let names: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT name FROM pragma_table_info('{table}')"
    )))
    .fetch_all(&mut *db)
    .await
    .map_err(damaged)?;
    Ok(names.into_iter().map(|n| n.to_ascii_lowercase()).collect())
}

fn kind(stored: Option<i64>) -> HabitKind {
    match stored {
        Some(1) => HabitKind::Measurable,
        _ => HabitKind::Boolean,
    }
}

/// A repetition as a HAM check-in, or none for a day that is no check-in.
fn check_in(kind: HabitKind, value: Option<i64>) -> Option<(EntryStatus, Option<f64>)> {
    match (kind, value) {
        // Before repetitions had values, a row was a done day.
        (HabitKind::Boolean, None | Some(YES_MANUAL)) => Some((EntryStatus::Done, None)),
        (_, Some(SKIP)) => Some((EntryStatus::Skipped, None)),
        (HabitKind::Boolean, Some(_)) => None,
        (HabitKind::Measurable, Some(v)) if v >= 0 => {
            // Loop stores thousandths: 2500 is 2.5.
            #[allow(
                clippy::cast_precision_loss,
                reason = "Loop's own amounts are far below 2^53"
            )]
            Some((EntryStatus::Value, Some(v as f64 / 1000.0)))
        }
        (HabitKind::Measurable, _) => None,
    }
}

/// `YYYY-MM-DD` of a UTC millisecond timestamp.
fn utc_date(ms: i64) -> Option<String> {
    let days = ms.div_euclid(86_400_000);
    let date = jiff::civil::date(1970, 1, 1)
        .checked_add(jiff::Span::new().try_days(days).ok()?)
        .ok()?;
    (date.year() >= 1).then(|| date.strftime("%Y-%m-%d").to_string())
}

fn habit(
    h: HabitRow,
    entries: Vec<ExportedEntry>,
    today: &str,
) -> Result<ExportedHabit, LoopError> {
    let name = h.name.unwrap_or_default().trim().to_string();
    let kind = kind(h.kind);
    let count = |column: &str, n: Option<i64>| {
        n.and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| LoopError::Damaged(format!("habit `{name}` has {column} {n:?}")))
    };
    let frequency = Frequency::Every {
        times: count("freq_num", h.freq_num)?,
        days: count("freq_den", h.freq_den)?,
    };
    let target = (kind == HabitKind::Measurable).then(|| Target {
        value: h.target_value.unwrap_or(0.0),
        target_type: match h.target_type {
            Some(1) => TargetType::AtMost,
            _ => TargetType::AtLeast,
        },
    });
    let unit = h
        .unit
        .map(|u| u.trim().to_string())
        .filter(|u| kind == HabitKind::Measurable && !u.is_empty());
    let description = [h.question, h.description]
        .into_iter()
        .flatten()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n");
    let color = h
        .color
        .and_then(|i| usize::try_from(i).ok())
        .and_then(|i| PALETTE.get(i))
        .unwrap_or(&PALETTE[11]);
    let reminders = match (h.reminder_hour, h.reminder_min) {
        (Some(hour @ 0..=23), Some(minute @ 0..=59)) => {
            let bits = h.reminder_days.unwrap_or(127);
            let mut days: Vec<u8> = REMINDER_DAY_BITS
                .iter()
                .enumerate()
                .filter(|(bit, _)| bits & (1 << bit) != 0)
                .map(|(_, &day)| day)
                .collect();
            days.sort_unstable();
            if days.is_empty() {
                Vec::new()
            } else {
                vec![Reminder {
                    time: format!("{hour:02}:{minute:02}"),
                    days,
                }]
            }
        }
        _ => Vec::new(),
    };
    let created = entries
        .first()
        .map_or_else(|| today.to_string(), |e| e.date.clone());
    Ok(ExportedHabit {
        id: h.id.to_string(),
        name,
        description,
        color: (*color).to_string(),
        kind,
        unit,
        target,
        frequency,
        reminders,
        reminder: None,
        archived: h.archived.unwrap_or(0) != 0,
        position: h.position.unwrap_or(0),
        group: h
            .group_name
            .map(|g| g.trim().to_string())
            .filter(|g| !g.is_empty()),
        created,
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_ins_follow_loops_encoding() {
        use EntryStatus::{Done, Skipped, Value};
        let boolean = HabitKind::Boolean;
        let numerical = HabitKind::Measurable;
        assert_eq!(check_in(boolean, Some(2)), Some((Done, None)));
        assert_eq!(check_in(boolean, None), Some((Done, None)));
        assert_eq!(check_in(boolean, Some(3)), Some((Skipped, None)));
        for not_a_check_in in [1, 0, -1] {
            assert_eq!(check_in(boolean, Some(not_a_check_in)), None);
        }
        assert_eq!(check_in(numerical, Some(2500)), Some((Value, Some(2.5))));
        assert_eq!(check_in(numerical, Some(0)), Some((Value, Some(0.0))));
        assert_eq!(check_in(numerical, Some(3)), Some((Skipped, None)));
        assert_eq!(check_in(numerical, Some(-1)), None);
        assert_eq!(check_in(numerical, None), None);
    }

    #[test]
    fn timestamps_are_utc_days() {
        assert_eq!(utc_date(0).as_deref(), Some("1970-01-01"));
        assert_eq!(utc_date(1_764_547_200_000).as_deref(), Some("2025-12-01"));
        assert_eq!(utc_date(i64::MAX), None);
    }
}
