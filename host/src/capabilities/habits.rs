//! The `ham:plugin/habits` interface: the acting user's habits, entries,
//! activities and stats, always through the [`Tracker`] the HTTP API uses, so
//! a plugin meets the same rules as a person.

use std::sync::{Arc, OnceLock};

use futures::future::BoxFuture;
use wasmtime::component::{HasSelf, Linker};

use super::{Caller, CapabilitiesView, ctx};
use crate::habits::{self as domain, EntryInput, EntryStatus, Tracker, TrackerError};
use crate::wit::ham::plugin::habits::{
    self as api, Activity, Entry, EntryValue, Frequency, Habit, HabitKind, HabitStats, Settings,
    Target, TargetType,
};
use crate::wit::ham::plugin::types::Error as GuestError;

/// Today's stats of a user's active habits, as `habits.list-stats` answers:
/// the rules evaluator's, which runs a plugin and so sits above the runtime;
/// it is handed in once it exists ([`super::Capabilities::serve_stats`]).
pub trait StatsSource: Send + Sync {
    fn today<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<Vec<HabitStats>, GuestError>>;
}

/// What the habits interface draws on.
pub struct HabitsHost {
    tracker: Arc<Tracker>,
    stats: OnceLock<Arc<dyn StatsSource>>,
}

impl HabitsHost {
    pub(super) fn new(tracker: Arc<Tracker>) -> Self {
        Self {
            tracker,
            stats: OnceLock::new(),
        }
    }

    pub(super) fn serve_stats(&self, source: Arc<dyn StatsSource>) {
        // Set once at start; a second source would be a wiring mistake, and the
        // first stays.
        let _ = self.stats.set(source);
    }
}

/// The habits context of one invocation.
pub struct HabitsCtx {
    pub(super) caller: Caller,
    pub(super) host: Arc<HabitsHost>,
}

pub(super) fn add_to_linker<T: CapabilitiesView + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    api::add_to_linker::<T, HasSelf<HabitsCtx>>(linker, |t| &mut ctx(t).habits)
}

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
        // A weekday habit as its count of weekdays in 7 days: `habits.frequency`
        // is the first contract's record, kept as it was.
        frequency: {
            let (times, days) = h.frequency.times_in_days();
            Frequency { times, days }
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

impl HabitsCtx {
    fn failed(&self, e: TrackerError) -> GuestError {
        match e {
            TrackerError::NotFound(_) => GuestError::NotFound,
            TrackerError::Invalid(e) => GuestError::InvalidArgument(e.to_string()),
            TrackerError::Store(e) => self.caller.host_failed(e),
        }
    }

    /// The acting user's id, owned: a future holding `&self` across an await is
    /// not `Send`.
    fn user(&self) -> Result<String, GuestError> {
        self.caller.acting_user().map(str::to_string)
    }
}

impl api::Host for HabitsCtx {
    async fn list_habits(&mut self) -> Result<Vec<Habit>, GuestError> {
        let user = self.user()?;
        let habits = self.host.tracker.habits(&user, true).await;
        Ok(habits
            .map_err(|e| self.failed(e))?
            .into_iter()
            .map(habit)
            .collect())
    }

    async fn list_entries(
        &mut self,
        habit_id: String,
        from: String,
        to: String,
    ) -> Result<Vec<Entry>, GuestError> {
        let user = self.user()?;
        let entries = self
            .host
            .tracker
            .entries(&user, &habit_id, Some(from), Some(to))
            .await;
        Ok(entries
            .map_err(|e| self.failed(e))?
            .into_iter()
            .map(entry)
            .collect())
    }

    /// The entry's source is the plugin's name unless it names another source
    /// (such as `strava`); `manual` is the user's own and refused.
    async fn upsert_entry(&mut self, e: Entry) -> Result<(), GuestError> {
        let user = self.user()?;
        let source = if e.source.is_empty() {
            self.caller.plugin().to_string()
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
                tapped_at: None,
            },
            EntryValue::Skipped => EntryInput {
                status: Some(EntryStatus::Skipped),
                value: None,
                note: e.note,
                tapped_at: None,
            },
            EntryValue::Value(v) => EntryInput {
                status: None,
                value: Some(v),
                note: e.note,
                tapped_at: None,
            },
        };
        let recorded = self
            .host
            .tracker
            .record_entry(&user, &e.habit_id, &e.date, input, &source)
            .await;
        recorded.map(drop).map_err(|e| self.failed(e))
    }

    async fn delete_entry(&mut self, habit_id: String, date: String) -> Result<bool, GuestError> {
        let user = self.user()?;
        let deleted = self
            .host
            .tracker
            .delete_entry(&user, &habit_id, &date)
            .await;
        deleted.map_err(|e| self.failed(e))
    }

    async fn list_activities(&mut self, from: i64, to: i64) -> Result<Vec<Activity>, GuestError> {
        let user = self.user()?;
        let found = self.host.tracker.activities_between(&user, from, to).await;
        Ok(found
            .map_err(|e| self.failed(e))?
            .into_iter()
            .map(activity)
            .collect())
    }

    async fn upsert_activity(&mut self, a: Activity) -> Result<(), GuestError> {
        let user = self.user()?;
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
        let recorded = self.host.tracker.record_activity(&user, &a).await;
        recorded.map_err(|e| self.failed(e))
    }

    async fn delete_activity(
        &mut self,
        source: String,
        external_id: String,
    ) -> Result<bool, GuestError> {
        let user = self.user()?;
        let deleted = self
            .host
            .tracker
            .delete_activity(&user, &source, &external_id)
            .await;
        deleted.map_err(|e| self.failed(e))
    }

    async fn list_stats(&mut self) -> Result<Vec<HabitStats>, GuestError> {
        let user = self.user()?;
        let Some(stats) = self.host.stats.get().cloned() else {
            return Err(GuestError::NotConfigured(
                "habit stats are not available in this host".into(),
            ));
        };
        stats.today(&user).await
    }

    async fn get_settings(&mut self) -> Result<Settings, GuestError> {
        let user = self.user()?;
        let time_zone = self.host.tracker.time_zone(&user).await;
        let time_zone = time_zone.map_err(|e| self.failed(e))?;
        let today = domain::today_in(&time_zone);
        Ok(Settings { time_zone, today })
    }
}
