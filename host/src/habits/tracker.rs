//! The tracker: every operation on a user's habits, entries and activities, for
//! the HTTP API and the `habits` plugin interface alike.
//!
//! Both paths go through here so they cannot drift: the same validation (the
//! rules in [`super`]), the same ownership (another user's habit is
//! [`TrackerError::NotFound`], never a hint that it exists), and one place that
//! keeps the rules' view of entries in step with writes. Callers only parse
//! their input and map [`TrackerError`] to their own error shape.
//!
//! The rules plugin judges a habit on all its entries, so the tracker keeps each
//! habit's entries as the rules take them while the habit's revision (bumped by
//! a trigger on every entry write) stands: another range or day of an unchanged
//! habit does not read ten years of entries again. A write through this tracker
//! patches the kept entries; a write anywhere else (another replica, an import)
//! bumps the revision, and the next read reloads.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{Activity, Entry, EntryInput, EntryStatus, EntryWrite, FieldError, Habit, HabitInput};
use crate::store::habits::ActivityRange;
use crate::store::{self, Db};
use crate::wit::exports::ham::plugin::scheduled_rules::DayEntry;
use crate::wit::ham::plugin::habits::EntryValue;

/// Kept entries, all habits together, before the lot is dropped.
const KEPT_ENTRIES: usize = 2_000_000;

/// Why a tracker operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    /// No such habit (or entry) of this user's.
    #[error("{0}")]
    NotFound(String),
    /// A value breaks a habit's rules; names the field.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error(transparent)]
    Store(#[from] store::Error),
}

pub type Result<T, E = TrackerError> = std::result::Result<T, E>;

/// A habit's entries as the rules take them, as of one revision, up to the day
/// `last`.
struct KeptEntries {
    revision: i64,
    last: i32,
    entries: Vec<DayEntry>,
}

/// Habits, entries and activities of every user, with their rules.
pub struct Tracker {
    db: Db,
    kept: Mutex<HashMap<String, KeptEntries>>,
}

fn no_such_habit() -> TrackerError {
    TrackerError::NotFound("no such habit".into())
}

impl Tracker {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            kept: Mutex::new(HashMap::new()),
        }
    }

    /// The user's habits, by position; archived ones too if asked.
    pub async fn habits(&self, user_id: &str, include_archived: bool) -> Result<Vec<Habit>> {
        Ok(self.db.list_habits(user_id, include_archived).await?)
    }

    /// One of the user's habits.
    pub async fn habit(&self, user_id: &str, id: &str) -> Result<Habit> {
        self.db
            .get_habit(user_id, id)
            .await?
            .ok_or_else(no_such_habit)
    }

    /// The user's habits with their revisions, for the rules.
    pub async fn habits_with_revision(
        &self,
        user_id: &str,
        include_archived: bool,
    ) -> Result<Vec<(Habit, i64)>> {
        Ok(self
            .db
            .habits_with_revision(user_id, include_archived)
            .await?)
    }

    /// One of the user's habits with its revision, for the rules.
    pub async fn habit_with_revision(&self, user_id: &str, id: &str) -> Result<(Habit, i64)> {
        self.db
            .habit_with_revision(user_id, id)
            .await?
            .ok_or_else(no_such_habit)
    }

    /// Creates a habit from `input` (`name` and `kind` required), created today
    /// in `time_zone`, after the user's last habit.
    pub async fn create_habit(
        &self,
        user_id: &str,
        time_zone: &str,
        input: HabitInput,
    ) -> Result<Habit> {
        if input.name.is_none() {
            return Err(FieldError::new("name", "required").into());
        }
        if input.kind.is_none() {
            return Err(FieldError::new("kind", "required: boolean or measurable").into());
        }
        let position = self.db.next_habit_position(user_id).await?;
        let habit = input.apply(super::blank(
            crate::auth::new_id(),
            super::today_in(time_zone),
            position,
        ))?;
        self.db.insert_habit(user_id, &habit).await?;
        Ok(habit)
    }

    /// Changes a habit: absent fields stay.
    pub async fn update_habit(&self, user_id: &str, id: &str, input: HabitInput) -> Result<Habit> {
        let habit = input.apply(self.habit(user_id, id).await?)?;
        match self.db.update_habit(user_id, &habit).await? {
            true => Ok(habit),
            false => Err(no_such_habit()),
        }
    }

    /// Puts the habits `ids` in that order (see [`Db::reorder_habits`]) and
    /// returns the user's active habits as they now stand.
    pub async fn reorder_habits(&self, user_id: &str, ids: &[String]) -> Result<Vec<Habit>> {
        if ids.len() > super::MAX_REORDERED {
            return Err(FieldError::new(
                "ids",
                format!("at most {} habits at once", super::MAX_REORDERED),
            )
            .into());
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(twice) = ids.iter().find(|id| !seen.insert(id.as_str())) {
            return Err(FieldError::new("ids", format!("`{twice}` appears twice")).into());
        }
        if let Some(unknown) = self.db.reorder_habits(user_id, ids).await? {
            return Err(TrackerError::NotFound(format!("no such habit: {unknown}")));
        }
        self.habits(user_id, false).await
    }

    /// Deletes a habit with its entries.
    pub async fn delete_habit(&self, user_id: &str, id: &str) -> Result<()> {
        match self.db.delete_habit(user_id, id).await? {
            true => {
                self.kept_entries().remove(id);
                Ok(())
            }
            false => Err(no_such_habit()),
        }
    }

    /// A habit's entries over `from..=to` (open ends: all), oldest first.
    pub async fn entries(
        &self,
        user_id: &str,
        habit_id: &str,
        from: Option<String>,
        to: Option<String>,
    ) -> Result<Vec<Entry>> {
        let habit = self.habit(user_id, habit_id).await?;
        let (from, to) = super::date_range(from, to)?;
        Ok(self.db.list_entries(&habit.id, &from, &to).await?)
    }

    /// Records the entry of `date` (an idempotent upsert) from `source`
    /// (`manual` for the user's own), tapped at `input.tapped_at` (absent or in the future: now). The later tap of a
    /// day wins: when the stored entry comes from a later tap it is kept and
    /// returned as [`EntryWrite::KeptNewer`], and nothing changes.
    pub async fn record_entry(
        &self,
        user_id: &str,
        habit_id: &str,
        date: &str,
        input: EntryInput,
        source: &str,
    ) -> Result<EntryWrite> {
        let habit = self.habit(user_id, habit_id).await?;
        let tapped_at = input.tap_time(store::now_ms())?;
        let entry = input.entry(&habit, date, source)?;
        let written = self.db.upsert_entry_tapped(&entry, tapped_at).await?;
        if let EntryWrite::Written { .. } = written {
            let value = match (entry.status, entry.value) {
                (EntryStatus::Skipped, _) => EntryValue::Skipped,
                (EntryStatus::Value, Some(v)) => EntryValue::Value(v),
                _ => EntryValue::Done,
            };
            self.entry_changed(&entry.habit_id, &entry.date, Some(value))
                .await;
        }
        Ok(written)
    }

    /// Deletes the entry of `date`; `false` when there was none.
    pub async fn delete_entry(&self, user_id: &str, habit_id: &str, date: &str) -> Result<bool> {
        let habit = self.habit(user_id, habit_id).await?;
        if !super::is_date(date) {
            return Err(
                FieldError::new("date", format!("`{date}` is not a date YYYY-MM-DD")).into(),
            );
        }
        let deleted = self.db.delete_entry(&habit.id, date).await?;
        if deleted {
            self.entry_changed(&habit.id, date, None).await;
        }
        Ok(deleted)
    }

    /// The user's workouts that started between two instants (ms since the
    /// epoch, inclusive).
    pub async fn activities_between(
        &self,
        user_id: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<Activity>> {
        let range = ActivityRange::Utc { from, to };
        Ok(self.db.list_activities(user_id, range).await?)
    }

    /// The user's workouts by local start date over `from..=to` (open ends: all),
    /// optionally of one sport type.
    pub async fn activities_on_dates(
        &self,
        user_id: &str,
        from: Option<String>,
        to: Option<String>,
        sport: Option<&str>,
    ) -> Result<Vec<Activity>> {
        let (from, to) = super::date_range(from, to)?;
        let range = ActivityRange::LocalDates {
            from: &from,
            to: &to,
            sport,
        };
        Ok(self.db.list_activities(user_id, range).await?)
    }

    /// Records a workout (an upsert by source and external id).
    pub async fn record_activity(&self, user_id: &str, activity: &Activity) -> Result<()> {
        activity.validate()?;
        Ok(self.db.upsert_activity(user_id, activity).await?)
    }

    /// Deletes a workout; `false` when there was none.
    pub async fn delete_activity(
        &self,
        user_id: &str,
        source: &str,
        external_id: &str,
    ) -> Result<bool> {
        Ok(self
            .db
            .delete_activity(user_id, source, external_id)
            .await?)
    }

    /// The user's time zone.
    pub async fn time_zone(&self, user_id: &str) -> Result<String> {
        Ok(self.db.user_time_zone(user_id).await?)
    }

    fn kept_entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, KeptEntries>> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Patches a habit's kept entries after a write of one day (`None`: deleted)
    /// that this process just made. The patch applies only if the habit's
    /// revision is now exactly one past the kept one, so that write is the only
    /// one since; otherwise (a write by another replica or path came between)
    /// the kept entries are dropped and the next evaluation reads them. Setting
    /// one day is idempotent, so kept entries that already hold this write (read
    /// between the write and this call) stay right.
    async fn entry_changed(&self, habit_id: &str, date: &str, value: Option<EntryValue>) {
        let revision = self.db.habit_revision(habit_id).await.ok().flatten();
        let day = civil_day::parse(date).and_then(|d| i32::try_from(d).ok());
        let mut kept = self.kept_entries();
        let (Some(revision), Some(day)) = (revision, day) else {
            kept.remove(habit_id);
            return;
        };
        let Some(k) = kept.get_mut(habit_id) else {
            return;
        };
        if k.revision + 1 != revision {
            kept.remove(habit_id);
            return;
        }
        if day <= k.last {
            match (k.entries.binary_search_by_key(&day, |e| e.day), value) {
                (Ok(i), Some(value)) => k.entries[i].value = value,
                (Ok(i), None) => {
                    k.entries.remove(i);
                }
                (Err(i), Some(value)) => k.entries.insert(i, DayEntry { day, value }),
                (Err(_), None) => {}
            }
        }
        k.revision = revision;
    }

    /// The entries the rules judge `habits` (each with its revision) on, up to
    /// the day `last` (days since 1970-01-01): kept ones where the revision still
    /// stands, the rest read from the database (one habit's, or all the user's
    /// habits' when several are missing).
    pub async fn entries_for_rules(
        &self,
        user_id: &str,
        habits: &[(&Habit, i64)],
        last: jiff::civil::Date,
        last_day: i32,
    ) -> Result<HashMap<String, Vec<DayEntry>>, store::Error> {
        let mut found = HashMap::new();
        let mut missing = Vec::new();
        {
            let kept = self.kept_entries();
            for (habit, revision) in habits {
                match kept.get(&habit.id) {
                    Some(k) if k.revision == *revision && k.last >= last_day => {
                        let upto = k.entries.partition_point(|e| e.day <= last_day);
                        found.insert(habit.id.clone(), k.entries[..upto].to_vec());
                    }
                    _ => missing.push((*habit, *revision)),
                }
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let only = match missing.as_slice() {
            [(habit, _)] => Some(habit.id.as_str()),
            _ => None,
        };
        let mut loaded = self
            .db
            .entries_for_rules(user_id, only, &last.to_string())
            .await?;
        let mut kept = self.kept_entries();
        let total: usize = kept.values().map(|k| k.entries.len()).sum();
        if total + loaded.values().map(Vec::len).sum::<usize>() > KEPT_ENTRIES {
            kept.clear();
        }
        for (habit, revision) in missing {
            let entries = loaded.remove(&habit.id).unwrap_or_default();
            kept.insert(
                habit.id.clone(),
                KeptEntries {
                    revision,
                    last: last_day,
                    entries: entries.clone(),
                },
            );
            found.insert(habit.id.clone(), entries);
        }
        Ok(found)
    }
}
