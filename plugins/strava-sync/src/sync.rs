//! The jobs: `event` (one webhook event, queued acting for the athlete's user) and
//! `backfill` (one page of the athlete's activities; the next page is a new job, so
//! a restart resumes where it stopped).
//!
//! Events are hints, and anyone can forge one: what is stored always comes from
//! the API, and nothing is removed on an event's word. Every activity event
//! (create, update or delete) reconciles that activity with Strava: found (and
//! the athlete's) -> upserted; 404 or 403 -> removed here. A delete Strava does
//! not confirm changes nothing and is logged. An athlete deauthorization drops the
//! connection only when Strava refuses the stored tokens.
//!
//! Every write is an upsert, and a habit's day is recomputed from all of that
//! day's activities (a measurable habit gets the sum, not an increment), so
//! running a job twice, or a duplicate delivery, changes nothing.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bindings::exports::ham::plugin::job_handler::{JobError, RetryLater};
use crate::bindings::ham::plugin::habits::{self, Activity, Entry, EntryValue};
use crate::bindings::ham::plugin::storage::{self, Scope};
use crate::bindings::ham::plugin::types::Error as HostError;
use crate::bindings::ham::plugin::{jobs, log};
use crate::pending::Marker;
use crate::rules::{self, Measure, Rule, Workout};
use crate::strava::{self, ApiError, Config, Connection, Status};
use crate::{SOURCE, budget, dates, now_ms};

/// A webhook event, as Strava posts it.
#[derive(Debug, Deserialize)]
pub struct Event {
    pub object_type: String,
    pub object_id: u64,
    pub aspect_type: String,
    #[serde(default)]
    pub updates: serde_json::Map<String, Value>,
    pub owner_id: u64,
    pub subscription_id: u64,
    #[allow(
        dead_code,
        reason = "required by the shape; the job reads the API, not the event"
    )]
    pub event_time: i64,
}

impl Event {
    /// Whether the job has anything to do: an activity event, or an athlete
    /// revoking access (Strava sends no other athlete events).
    pub fn actionable(&self) -> bool {
        self.object_type == "activity" || self.deauthorizes()
    }

    /// An athlete `update` with `authorized: "false"`.
    pub fn deauthorizes(&self) -> bool {
        self.object_type == "athlete"
            && self.aspect_type == "update"
            && self.updates.get("authorized").and_then(Value::as_str) == Some("false")
    }

    /// The marker that keeps one job pending for this event's object.
    pub fn marker(&self) -> Marker {
        Marker::new(self.owner_id, &self.object_type, self.object_id)
    }

    /// The event, when the body has Strava's shape.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let event: Event =
            serde_json::from_slice(body).map_err(|e| format!("not a Strava event: {e}"))?;
        if !matches!(event.object_type.as_str(), "activity" | "athlete") {
            return Err("object_type: must be activity or athlete".into());
        }
        if !matches!(event.aspect_type.as_str(), "create" | "update" | "delete") {
            return Err("aspect_type: must be create, update or delete".into());
        }
        Ok(event)
    }
}

/// One page of a backfill.
#[derive(Serialize, Deserialize)]
pub struct BackfillPage {
    /// Seconds since the epoch.
    pub after: i64,
    pub page: u32,
}

pub const PER_PAGE: usize = 100;

fn host(e: HostError) -> JobError {
    JobError::Retry(format!("host call failed: {e:?}"))
}

fn api(e: ApiError) -> JobError {
    let (outcome, why) = match e {
        ApiError::RateLimited(ms) => {
            return JobError::RetryAfter(RetryLater {
                reason: "Strava's rate limit is spent".into(),
                after_ms: ms,
            });
        }
        ApiError::Unauthorized => (
            JobError::Fail("Strava refused the tokens: the user must reconnect".into()),
            "Strava refused the tokens: reconnect".to_string(),
        ),
        ApiError::NotFound => (
            JobError::Fail("not found at Strava, or hidden from HAM".into()),
            "not found at Strava, or hidden from HAM".to_string(),
        ),
        ApiError::Transient(why) => (JobError::Retry(why.clone()), why),
        ApiError::Permanent(why) => (JobError::Fail(why.clone()), why),
    };
    Status::record(Err(&why));
    outcome
}

fn config() -> Result<Config, JobError> {
    Config::load().map_err(|why| JobError::Retry(format!("not configured: {why}")))
}

/// One webhook event (`job` is the job's id, for the log). Its marker is
/// released first, so an event arriving while this job asks Strava queues another
/// job; a job postponed takes it again (see [`crate::pending`]).
pub fn run_event(job: &str, payload: &[u8]) -> Result<(), JobError> {
    let event = Event::parse(payload).map_err(JobError::Fail)?;
    let marker = event.marker();
    marker.release();
    let outcome = reconcile(job, &event);
    if matches!(outcome, Err(JobError::Retry(_) | JobError::RetryAfter(_))) {
        marker.hold();
    }
    outcome
}

fn reconcile(job: &str, event: &Event) -> Result<(), JobError> {
    if !event.actionable() {
        return Ok(());
    }
    let cfg = config()?;
    let Some(mut conn) = Connection::load().map_err(host)? else {
        log::log(
            log::Level::Info,
            "event for a user no longer connected: ignored",
            &[],
        );
        return Ok(());
    };
    if conn.athlete_id != event.owner_id {
        return Ok(());
    }
    if event.deauthorizes() {
        return confirm_deauthorization(job, &cfg, &mut conn);
    }
    reconcile_activity(job, &cfg, &mut conn, event)
}

/// Reserves one call to Strava for an event job: waits (no attempt used) while
/// Strava's rate limit is spent, or the user's event budget is.
fn reserve_call(job: &str) -> Result<(), JobError> {
    if let Some(ms) = strava::rate_block_ms() {
        return Err(api(ApiError::RateLimited(ms)));
    }
    match budget::take(now_ms()).map_err(host)? {
        Ok(()) => Ok(()),
        Err(ms) => {
            log::log(
                log::Level::Warn,
                "this athlete's event budget is spent: the event waits",
                &[
                    ("job".into(), job.to_string()),
                    ("wait_ms".into(), ms.to_string()),
                ],
            );
            Err(JobError::RetryAfter(RetryLater {
                reason: "the athlete's event budget is spent".into(),
                after_ms: ms,
            }))
        }
    }
}

/// The athlete who owns an activity, as the API describes it.
fn owner(detail: &Value) -> Option<u64> {
    detail.get("athlete")?.get("id")?.as_u64()
}

/// Makes the stored activity what Strava says it is: upserted when Strava has it
/// (and it is this athlete's), removed when Strava answers 404 or 403.
fn reconcile_activity(
    job: &str,
    cfg: &Config,
    conn: &mut Connection,
    event: &Event,
) -> Result<(), JobError> {
    let id = event.object_id;
    let fields = || {
        vec![
            ("job".to_string(), job.to_string()),
            ("activity".to_string(), id.to_string()),
            ("aspect".to_string(), event.aspect_type.clone()),
        ]
    };
    reserve_call(job)?;
    match strava::get(cfg, conn, &format!("/activities/{id}")) {
        Ok(detail) if owner(&detail) == Some(conn.athlete_id) => {
            if event.aspect_type == "delete" {
                log::log(
                    log::Level::Warn,
                    "delete event not confirmed: Strava still has the activity; kept",
                    &fields(),
                );
            }
            let dates = store_activity(&detail).map_err(host)?;
            recompute(&dates).map_err(host)?;
            Status::record(Ok(()));
            Ok(())
        }
        Ok(_) => {
            // Another athlete's (public) activity, named in an event for this one.
            log::log(
                log::Level::Warn,
                "event names an activity that is not this athlete's: ignored",
                &fields(),
            );
            Ok(())
        }
        // Deleted, or made private to the app.
        Err(ApiError::NotFound) => {
            remove_activity(id).map_err(host)?;
            Status::record(Ok(()));
            Ok(())
        }
        Err(e) => Err(api(e)),
    }
}

/// An athlete deauthorization, confirmed: the connection is forgotten only when
/// Strava refuses the stored tokens (a 401 after one refresh, or the refresh
/// refused). While Strava accepts them, nothing changes.
fn confirm_deauthorization(job: &str, cfg: &Config, conn: &mut Connection) -> Result<(), JobError> {
    reserve_call(job)?;
    let athlete = conn.athlete_id;
    let fields = || {
        vec![
            ("job".to_string(), job.to_string()),
            ("athlete".to_string(), athlete.to_string()),
        ]
    };
    match strava::get(cfg, conn, "/athlete") {
        Err(ApiError::Unauthorized) => {
            forget_connection(athlete).map_err(host)?;
            log::log(
                log::Level::Info,
                "athlete deauthorized HAM: connection removed",
                &fields(),
            );
            Ok(())
        }
        Ok(_) | Err(ApiError::NotFound) => {
            log::log(
                log::Level::Warn,
                "deauthorization event not confirmed: Strava still accepts the tokens; kept",
                &fields(),
            );
            Ok(())
        }
        Err(e) => Err(api(e)),
    }
}

pub fn run_backfill(payload: &[u8]) -> Result<(), JobError> {
    let page: BackfillPage = serde_json::from_slice(payload)
        .map_err(|_| JobError::Fail("backfill payload is not {after, page}".into()))?;
    let cfg = config()?;
    let Some(mut conn) = Connection::load().map_err(host)? else {
        return Ok(());
    };
    let path = format!(
        "/athlete/activities?after={}&page={}&per_page={PER_PAGE}",
        page.after, page.page
    );
    let list = strava::get(&cfg, &mut conn, &path).map_err(api)?;
    let items = list.as_array().cloned().unwrap_or_default();
    let mut touched = BTreeSet::new();
    for item in &items {
        touched.extend(store_activity(item).map_err(host)?);
    }
    recompute(&touched).map_err(host)?;
    if items.len() >= PER_PAGE {
        let next = BackfillPage {
            after: page.after,
            page: page.page + 1,
        };
        let bytes = serde_json::to_vec(&next).unwrap_or_default();
        jobs::enqueue("backfill", &bytes, None).map_err(host)?;
    }
    Status::record(Ok(()));
    Ok(())
}

/// Forgets the user's tokens, status and athlete mapping (the rules stay: they are
/// the user's settings, used again on a reconnect).
pub fn forget_connection(athlete_id: u64) -> Result<(), HostError> {
    let key = format!("athlete/{athlete_id}");
    // Only this user's mapping: another user may have linked the athlete since.
    if let Some(entry) = storage::get(Scope::Plugin, &key)?
        && entry.value == jobs::grant()?.into_bytes()
    {
        storage::delete(Scope::Plugin, &key)?;
    }
    Connection::forget()?;
    Status::forget()
}

fn activity_key(id: &str) -> String {
    format!("activity/{id}")
}

/// Upserts an activity from the API's JSON (detail or summary); returns the local
/// dates to recompute (its date, and its old date when it moved).
pub fn store_activity(v: &Value) -> Result<BTreeSet<String>, HostError> {
    let mut touched = BTreeSet::new();
    let Some(id) = v.get("id").and_then(Value::as_u64).map(|n| n.to_string()) else {
        return Ok(touched);
    };
    let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default();
    let (Some(start), Some(start_local)) = (
        dates::parse_utc_ms(text("start_date")),
        dates::wall_clock(text("start_date_local")),
    ) else {
        log::log(
            log::Level::Warn,
            "activity without start dates: skipped",
            &[("activity".into(), id)],
        );
        return Ok(touched);
    };
    let sport_type = match text("sport_type") {
        "" => text("type"),
        s => s,
    };
    let num = |k: &str| v.get(k).and_then(Value::as_f64).filter(|n| n.is_finite());
    let secs = |k: &str| {
        v.get(k)
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
    };
    let activity = Activity {
        source: SOURCE.into(),
        external_id: id.clone(),
        sport_type: sport_type.to_string(),
        name: text("name").chars().take(200).collect(),
        start,
        start_local: start_local.clone(),
        distance_m: num("distance").filter(|d| *d >= 0.0),
        moving_time_s: secs("moving_time"),
        elapsed_time_s: secs("elapsed_time"),
        elevation_gain_m: num("total_elevation_gain").filter(|d| *d >= 0.0),
        average_heartrate: num("average_heartrate").filter(|d| *d > 0.0),
    };
    habits::upsert_activity(&activity)?;
    let date = start_local[..10].to_string();
    let key = activity_key(&id);
    if let Some(old) = storage::get(Scope::User, &key)? {
        let old = String::from_utf8_lossy(&old.value).into_owned();
        if old != date {
            touched.insert(old);
        }
    }
    storage::set(Scope::User, &key, date.as_bytes())?;
    touched.insert(date);
    Ok(touched)
}

/// Deletes an activity and recomputes the day it was on.
pub fn remove_activity(id: u64) -> Result<(), HostError> {
    let id = id.to_string();
    habits::delete_activity(SOURCE, &id)?;
    let key = activity_key(&id);
    if let Some(old) = storage::get(Scope::User, &key)? {
        storage::delete(Scope::User, &key)?;
        let date = String::from_utf8_lossy(&old.value).into_owned();
        recompute(&BTreeSet::from([date]))?;
    }
    Ok(())
}

/// Rounds of [`recompute`] for one date before the job gives up and is retried.
const RECOMPUTE_ROUNDS: usize = 8;

/// Sets each mapped habit's entry for each date from that date's activities: done
/// (or the sum of the measure) when some activity matches, no Strava entry when
/// none does. Entries the user wrote by hand are left alone.
///
/// Jobs for activities of one day can run at once (two workers, two replicas), and
/// each writes the day's entry from the activities it listed: one that listed
/// before the other's activity was stored, but wrote last, would leave the day
/// short of that activity. So each date has a marker key, written by every job
/// after it changed the day's activities; a job that finds the marker at another
/// revision after writing the entry lists and writes again. The last writer's
/// check then always follows the last change it may have missed.
pub fn recompute(dates_to_do: &BTreeSet<String>) -> Result<(), HostError> {
    let rules = rules::load()?;
    if rules.is_empty() {
        return Ok(());
    }
    let habit_ids: BTreeSet<&str> = rules.iter().map(|r| r.habit_id.as_str()).collect();
    for date in dates_to_do {
        let Some(day) = dates::parse_day(date) else {
            continue;
        };
        recompute_until_settled(day, date, &rules, &habit_ids)?;
    }
    Ok(())
}

/// Recomputes one date until no other job changed it meanwhile (see [`recompute`]);
/// `conflict` after [`RECOMPUTE_ROUNDS`], so the job is retried.
fn recompute_until_settled(
    day: i64,
    date: &str,
    rules: &[Rule],
    habit_ids: &BTreeSet<&str>,
) -> Result<(), HostError> {
    let marker = format!("day/{date}");
    let mut seen = storage::set(Scope::User, &marker, &[])?;
    for _ in 0..RECOMPUTE_ROUNDS {
        recompute_date(day, date, rules, habit_ids)?;
        match storage::get(Scope::User, &marker)?.map(|e| e.revision) {
            Some(now) if now != seen => seen = now,
            _ => return Ok(()),
        }
    }
    Err(HostError::Conflict)
}

/// One pass of [`recompute`] over one date.
fn recompute_date(
    day: i64,
    date: &str,
    rules: &[Rule],
    habit_ids: &BTreeSet<&str>,
) -> Result<(), HostError> {
    // Local dates are within ±14 h of UTC.
    let from = (day - 1) * 86_400_000;
    let to = (day + 2) * 86_400_000;
    let activities: Vec<Activity> = habits::list_activities(from, to)?
        .into_iter()
        .filter(|a| a.source == SOURCE && a.start_local.starts_with(date))
        .collect();
    for habit_id in habit_ids {
        if let Err(e) = recompute_habit(habit_id, date, rules, &activities) {
            log::log(
                log::Level::Warn,
                "could not update a habit from Strava",
                &[
                    ("habit".into(), (*habit_id).to_string()),
                    ("error".into(), format!("{e:?}")),
                ],
            );
        }
    }
    Ok(())
}

fn recompute_habit(
    habit_id: &str,
    date: &str,
    rules: &[Rule],
    activities: &[Activity],
) -> Result<(), HostError> {
    let mine: Vec<&Rule> = rules.iter().filter(|r| r.habit_id == habit_id).collect();
    let mut matched = 0usize;
    let mut total = 0.0;
    for a in activities {
        let w = Workout {
            sport_type: &a.sport_type,
            distance_m: a.distance_m,
            moving_time_s: a.moving_time_s,
        };
        if let Some(rule) = mine.iter().find(|r| r.matches(&w)) {
            matched += 1;
            total += rule.amount(&w);
        }
    }
    let existing = habits::list_entries(habit_id, date, date)?
        .into_iter()
        .next();
    if existing.as_ref().is_some_and(|e| e.source != SOURCE) {
        return Ok(());
    }
    if matched == 0 {
        if existing.is_some() {
            habits::delete_entry(habit_id, date)?;
        }
        return Ok(());
    }
    let value = match mine.first().map(|r| r.measure) {
        Some(Measure::Done) | None => EntryValue::Done,
        Some(_) => EntryValue::Value((total * 100.0).round() / 100.0),
    };
    habits::upsert_entry(&Entry {
        habit_id: habit_id.to_string(),
        date: date.to_string(),
        value,
        note: None,
        source: SOURCE.into(),
    })
}
