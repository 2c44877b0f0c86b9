//! Pending events: what a flood of webhook events can make this plugin queue.
//!
//! Anyone can post events to the webhook, naming any athlete and any object. An
//! event for a connected athlete becomes an `event` job, and each job asks Strava
//! once, so without a bound a flood would fill the queue and spend the app's rate
//! limit. Two bounds, both kept in the plugin scope:
//!
//! - **One pending job per (athlete, object type, object id).** Before queueing,
//!   the webhook creates the marker `pending/<athlete>/<object type>/<object id>`
//!   (value: the time it was set, ms) with compare-and-swap; an event whose marker
//!   is already there is folded into the job that marker stands for. The job is
//!   queued to run [`COALESCE_MS`] later, so a burst for one object becomes one
//!   fetch. The job deletes the marker when it starts (an event arriving during
//!   its fetch queues a new job, which sees the newer state), and sets it again
//!   when it is postponed (a retry, Strava's rate limit, the athlete's budget), so
//!   a waiting job still stands for its object.
//! - **At most [`MAX_PER_ATHLETE`] markers per athlete.** Counted with
//!   `list-keys` on the athlete's prefix before the marker is created, and again
//!   after: events for distinct objects arriving together all counted before any
//!   of them wrote, so one that finds the count over the cap after writing gives
//!   way (deletes its marker). The cap is thus a ceiling that concurrent events
//!   cannot overshoot; so that they do not all give way at once and leave it
//!   underfilled, one that gave way tries again after a random pause of up to
//!   [`GIVE_WAY_MAX_MS`], [`ROUNDS`] times in all. Beyond the cap, the event is
//!   dropped with a warning.
//!
//! A marker older than [`STALE_MS`] stands for nothing: a host that died between
//! the marker and the job, or a job that used its last attempt, must not block its
//! object or the athlete's count for longer. Such a marker is taken over by the
//! next event for its object, and when an athlete is at the cap, stale markers are
//! swept (at most once a minute per athlete, key `swept/<athlete>`).

use wasip2::clocks::monotonic_clock;
use wasip2::random::random;

use crate::bindings::ham::plugin::log;
use crate::bindings::ham::plugin::storage::{self, Entry, Scope};
use crate::bindings::ham::plugin::types::Error as HostError;
use crate::now_ms;

/// How long after its first event a job runs: the events for one object that
/// arrive meanwhile are folded into it.
pub const COALESCE_MS: i64 = 1_000;
/// Most objects one athlete may have pending at once.
pub const MAX_PER_ATHLETE: usize = 50;
/// Age at which a marker no longer counts.
pub const STALE_MS: i64 = 60 * 60_000;
/// Least time between two sweeps of one athlete's stale markers.
const SWEEP_EVERY_MS: i64 = 60_000;
/// Tries of an event that gave way at the cap.
const ROUNDS: usize = 3;
/// Longest pause before an event that gave way tries again.
const GIVE_WAY_MAX_MS: u64 = 40;

/// What the webhook does with an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// The marker is ours: queue a job (and [`Marker::release`] if that fails).
    Queue,
    /// A job for this object is already pending: nothing to queue.
    Coalesced,
    /// The athlete has [`MAX_PER_ATHLETE`] objects pending: drop the event.
    Full,
}

/// The marker of one (athlete, object) that has, or is getting, a pending job.
pub struct Marker {
    athlete: u64,
    key: String,
}

fn athlete_prefix(athlete: u64) -> String {
    format!("pending/{athlete}/")
}

/// Whether a marker was set [`STALE_MS`] ago or more (or holds no time).
fn stale(entry: &Entry, now: i64) -> bool {
    let set = String::from_utf8_lossy(&entry.value).parse::<i64>().ok();
    set.is_none_or(|set| now - set >= STALE_MS)
}

impl Marker {
    pub fn new(athlete: u64, object_type: &str, object_id: u64) -> Self {
        Self {
            athlete,
            key: format!("{}{object_type}/{object_id}", athlete_prefix(athlete)),
        }
    }

    /// Decides whether an event for this object queues a job, taking the marker
    /// when it does.
    pub fn admit(&self) -> Result<Admission, HostError> {
        for round in 1..=ROUNDS {
            match self.try_admit()? {
                Some(admission) => return Ok(admission),
                None if round < ROUNDS => {
                    let pause_ms = 1 + random::get_random_u64() % GIVE_WAY_MAX_MS;
                    monotonic_clock::subscribe_duration(pause_ms * 1_000_000).block();
                }
                None => {}
            }
        }
        Ok(Admission::Full)
    }

    /// One try of [`Marker::admit`]; None when it gave way at the cap.
    fn try_admit(&self) -> Result<Option<Admission>, HostError> {
        let now = now_ms();
        let expected = match storage::get(Scope::Plugin, &self.key)? {
            Some(entry) if !stale(&entry, now) => return Ok(Some(Admission::Coalesced)),
            // Stale: take it over; it already counts among the athlete's markers.
            Some(entry) => Some(entry.revision),
            None => {
                if self.pending(now, true)? >= MAX_PER_ATHLETE {
                    return Ok(Some(Admission::Full));
                }
                None
            }
        };
        match storage::compare_and_swap(
            Scope::Plugin,
            &self.key,
            expected,
            now.to_string().as_bytes(),
        ) {
            Ok(_) => {}
            // Another event for this object took it a moment ago.
            Err(HostError::Conflict) => return Ok(Some(Admission::Coalesced)),
            Err(e) => return Err(e),
        }
        // Events for distinct objects arriving together all counted before any of
        // them wrote: count again, ours included, and give way when over.
        if expected.is_none() && self.pending(now, false)? > MAX_PER_ATHLETE {
            self.release();
            return Ok(None);
        }
        Ok(Some(Admission::Queue))
    }

    /// How many markers the athlete has (at most one more than the cap); at the
    /// cap, sweeps stale ones first when `sweep` and none was swept lately.
    fn pending(&self, now: i64, sweep: bool) -> Result<usize, HostError> {
        let prefix = athlete_prefix(self.athlete);
        let limit = u32::try_from(MAX_PER_ATHLETE + 1).unwrap_or(u32::MAX);
        let page = storage::list_keys(Scope::Plugin, &prefix, None, limit)?;
        if !sweep || page.keys.len() < MAX_PER_ATHLETE || !self.sweep_due(now)? {
            return Ok(page.keys.len());
        }
        let mut left = page.keys.len();
        for key in &page.keys {
            if let Some(entry) = storage::get(Scope::Plugin, key)?
                && stale(&entry, now)
                && storage::delete(Scope::Plugin, key)?
            {
                left -= 1;
            }
        }
        if left < page.keys.len() {
            log::log(
                log::Level::Info,
                "stale pending-event markers swept",
                &[
                    ("athlete".into(), self.athlete.to_string()),
                    ("swept".into(), (page.keys.len() - left).to_string()),
                ],
            );
        }
        Ok(left)
    }

    /// Whether this athlete's markers were not swept within [`SWEEP_EVERY_MS`];
    /// records this sweep when so.
    fn sweep_due(&self, now: i64) -> Result<bool, HostError> {
        let key = format!("swept/{}", self.athlete);
        let last = storage::get(Scope::Plugin, &key)?
            .and_then(|e| String::from_utf8_lossy(&e.value).parse::<i64>().ok());
        if last.is_some_and(|at| now - at < SWEEP_EVERY_MS) {
            return Ok(false);
        }
        storage::set(Scope::Plugin, &key, now.to_string().as_bytes())?;
        Ok(true)
    }

    /// Deletes the marker: its job has started (or was never queued). Best
    /// effort: a marker left behind goes stale.
    pub fn release(&self) {
        if let Err(e) = storage::delete(Scope::Plugin, &self.key) {
            log::log(
                log::Level::Warn,
                "could not delete a pending-event marker",
                &[("error".into(), format!("{e:?}"))],
            );
        }
    }

    /// Sets the marker again for a job that was postponed, unless a newer event
    /// set it meanwhile (its own job then stands for the object too).
    pub fn hold(&self) {
        let now = now_ms().to_string();
        match storage::compare_and_swap(Scope::Plugin, &self.key, None, now.as_bytes()) {
            Ok(_) | Err(HostError::Conflict) => {}
            Err(e) => log::log(
                log::Level::Warn,
                "could not set a pending-event marker",
                &[("error".into(), format!("{e:?}"))],
            ),
        }
    }
}
