//! Habit stats: scores, streaks and window progress come from the active rules
//! plugin ([`RULES_PLUGIN`]), not from host code, so how a habit is judged is
//! swapped like any plugin. This module builds the plugin's input from stored data,
//! checks its answer, and caches answers.
//!
//! A rules plugin is untrusted: an answer with a score outside 0..1, a wrong number
//! of days, or a refusal is rejected whole ([`StatsError::BadAnswer`]), counted in
//! `/metrics`, and never cached, so earlier good answers are not overwritten.
//!
//! The cache key holds everything an answer depends on: the habit's judged fields,
//! its revision (bumped by a database trigger on every entry write, whichever path
//! or replica writes), the plugin version, today and the range. A swap or rollback
//! changes the version, so no stale answer is served; old ones just age out.
//!
//! The cache is bounded in bytes, not entries ([`StatsCache`]): answers of long
//! ranges are large (a score per day), and any signed-in user chooses ranges. It
//! holds at most [`CACHE_BYTES`] in all, and one user's answers at most
//! [`CACHE_BYTES_PER_USER`]; past either, the least recently used answers go
//! (the user's own first, when it is their share that is full). A request's range
//! is at most [`MAX_RANGE_DAYS`] days (422 naming `to` beyond).
//!
//! While a candidate rule set runs in shadow (see [`crate::plugins::shadow`]), a
//! sample of the evaluations made here is repeated by the candidate in a task of
//! its own, after the answer is made, and the answers are compared; users only
//! ever get the active version's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use jiff::ToSpan as _;
use jiff::civil::Date;
use serde::Serialize;

use crate::capabilities::habits as convert;
use crate::habits::{Habit, Tracker};
use crate::plugins::Registry;
use crate::plugins::rollout::Plan;
use crate::plugins::shadow::{self, Comparison};
use crate::runtime::InvokeError;
use crate::runtime::LoadedPlugin;
use crate::store;
use crate::wit::exports::ham::plugin::scheduled_rules::{self as wit};

/// The plugin whose rules export (`scheduled-rules`, or `rules` for a rule set built
/// against the first contract) judges every habit. Uploading another rule set
/// under this name (see `examples/rules-strict-streaks`) changes how habits are
/// judged, live.
pub const RULES_PLUGIN: &str = "habit-rules";
/// The longest range one stats request may score (ten years and a leap day or three).
pub const MAX_RANGE_DAYS: i64 = 3660;
/// Bytes the cached answers of all users may hold (as [`StatsCache`] counts them).
pub const CACHE_BYTES: usize = 32 * 1024 * 1024;
/// Bytes the cached answers of one user may hold: a quarter of the cache, so one
/// user asking for many ranges pushes out their own answers, not everyone's.
pub const CACHE_BYTES_PER_USER: usize = CACHE_BYTES / 4;

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DayScore {
    pub date: String,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Streak {
    pub start: String,
    pub end: String,
    pub length: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Window {
    pub done: f64,
    pub target: f64,
    pub days: u32,
}

/// A habit's stats as `GET /api/habits/{id}/stats` shows them.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct HabitStats {
    /// Today's score, 0..1.
    pub score: f64,
    /// One score per day of the requested range, oldest first.
    pub scores: Vec<DayScore>,
    /// Days in the current streak (including today, or ending yesterday); 0 for none.
    pub current_streak: u32,
    /// Up to 10 longest streaks, longest first.
    pub best_streaks: Vec<Streak>,
    pub window: Window,
}

/// Why stats could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("no rules plugin `{RULES_PLUGIN}` is active")]
    NoRulesPlugin,
    #[error("plugin {plugin} {version} {source}")]
    Invoke {
        plugin: String,
        version: String,
        source: InvokeError,
    },
    #[error("plugin {plugin} {version} gave an invalid answer: {why}")]
    BadAnswer {
        plugin: String,
        version: String,
        why: String,
    },
    #[error(transparent)]
    Db(#[from] store::Error),
}

/// The days to score: `from` to `to`, inclusive.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Range {
    pub from: Date,
    pub to: Date,
}

impl Range {
    /// A range from `YYYY-MM-DD` dates; the message names the parameter at fault.
    pub fn parse(from: &str, to: &str) -> Result<Self, String> {
        let parse = |name: &str, s: &str| {
            if !crate::habits::is_date(s) {
                return Err(format!("{name}: `{s}` is not a date YYYY-MM-DD"));
            }
            s.parse::<Date>()
                .map_err(|_| format!("{name}: `{s}` is not a date YYYY-MM-DD"))
        };
        let range = Self {
            from: parse("from", from)?,
            to: parse("to", to)?,
        };
        if range.from > range.to {
            return Err(format!("from: {from} is after to: {to}"));
        }
        if range.days() > MAX_RANGE_DAYS {
            return Err(format!("to: the range is over {MAX_RANGE_DAYS} days"));
        }
        Ok(range)
    }

    /// Days in the range.
    pub fn days(&self) -> i64 {
        (self.to - self.from).get_days() as i64 + 1
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    habit_id: String,
    range: Range,
    today: Date,
}

#[derive(Debug, Clone, PartialEq)]
struct Fingerprint {
    /// The habit's judged fields.
    habit: String,
    revision: i64,
    plugin_version: i64,
}

/// Evaluates habits with the active rules plugin, and caches the answers.
pub struct Evaluator {
    registry: Weak<Registry>,
    /// Where the entries come from, kept between evaluations.
    tracker: Arc<Tracker>,
    cache: Mutex<StatsCache>,
    /// Candidate evaluations of a shadow run that may run at once.
    shadow_slots: Arc<tokio::sync::Semaphore>,
}

impl Evaluator {
    /// `registry` is weak: the registry owns the runtime, which holds this.
    pub fn new(registry: Weak<Registry>, tracker: Arc<Tracker>) -> Self {
        Self {
            registry,
            tracker,
            cache: Mutex::new(StatsCache::new(CACHE_BYTES, CACHE_BYTES_PER_USER)),
            shadow_slots: Arc::new(tokio::sync::Semaphore::new(shadow::MAX_RUNNING)),
        }
    }

    /// Stats of `habits` (each with its revision) over `range`, in order: cached
    /// answers where still valid, the rest from one call of the rules plugin.
    pub async fn evaluate(
        &self,
        user_id: &str,
        habits: &[(Habit, i64)],
        today: Date,
        range: &Range,
    ) -> Result<Vec<Arc<HabitStats>>, StatsError> {
        let registry = self.registry.upgrade().ok_or(StatsError::NoRulesPlugin)?;
        let plugin = registry
            .get(RULES_PLUGIN)
            .filter(|p| p.exports.judges_habits())
            .ok_or(StatsError::NoRulesPlugin)?;
        let mut answers: Vec<Option<Arc<HabitStats>>> = Vec::with_capacity(habits.len());
        let mut misses = Vec::new();
        {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            for (habit, revision) in habits {
                let key = key(habit, range, today);
                let print = fingerprint(habit, *revision, plugin.version_id);
                match cache.get(&key, &print) {
                    Some(stats) => answers.push(Some(stats)),
                    None => {
                        answers.push(None);
                        misses.push((answers.len() - 1, key, print));
                    }
                }
            }
        }
        if misses.is_empty() {
            return Ok(answers.into_iter().flatten().collect());
        }

        // Entries up to the later of `to` and today, from the very first.
        let last = range.to.max(today);
        let missed: Vec<(&Habit, i64)> = misses
            .iter()
            .map(|(i, _, _)| (&habits[*i].0, habits[*i].1))
            .collect();
        let mut entries = self
            .tracker
            .entries_for_rules(user_id, &missed, last, day_of(last))
            .await?;
        let inputs: Vec<wit::EvaluationInput> = missed
            .iter()
            .map(|(habit, _)| wit::EvaluationInput {
                schedule: match habit.frequency.weekdays() {
                    Some(days) => wit::Schedule::Weekdays(days.to_vec()),
                    None => wit::Schedule::Every,
                },
                habit: convert::habit((*habit).clone()),
                entries: entries.remove(&habit.id).unwrap_or_default(),
                today: day_of(today),
                from: day_of(range.from),
                to: day_of(range.to),
            })
            .collect();

        let name = plugin.manifest.name.clone();
        let version = plugin.version_label();
        let evaluations = registry
            .runtime()
            .evaluate_rules(plugin.clone(), &inputs)
            .await
            .map_err(|source| StatsError::Invoke {
                plugin: name.clone(),
                version: version.clone(),
                source,
            })?;
        let checked = check_answer(evaluations, &inputs, range, today).map_err(|why| {
            registry.runtime().metrics.inc(
                "ham_rules_rejected_answers_total",
                &[("plugin", &name), ("version", &version)],
            );
            tracing::warn!(plugin = %name, version = %version, why = %why, "rules plugin answer rejected");
            StatsError::BadAnswer {
                plugin: name.clone(),
                version: version.clone(),
                why,
            }
        })?;

        let mut fresh = Vec::with_capacity(checked.len());
        {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            for ((i, key, print), stats) in misses.into_iter().zip(checked) {
                let stats = Arc::new(stats);
                cache.insert(user_id, key, print, stats.clone());
                fresh.push(stats.clone());
                answers[i] = Some(stats);
            }
        }
        self.shadow(&registry, &plugin, inputs, fresh, range, today);
        Ok(answers.into_iter().flatten().collect())
    }

    /// On a sample of the stable version's evaluations, while a shadow run is
    /// under way, has the candidate evaluate the same `inputs` in a task of its
    /// own and counts how its answers compare with `stable` (the answers just
    /// made, in order). Returns at once: the task never holds up the caller, and
    /// a call beyond [`shadow::MAX_RUNNING`] running ones is skipped.
    fn shadow(
        &self,
        registry: &Arc<Registry>,
        active: &LoadedPlugin,
        inputs: Vec<wit::EvaluationInput>,
        stable: Vec<Arc<HabitStats>>,
        range: &Range,
        today: Date,
    ) {
        let snapshot = registry.snapshot();
        let Some(run) = snapshot.shadow(RULES_PLUGIN).cloned() else {
            return;
        };
        let Plan::Shadow(plan) = run.plan else {
            return;
        };
        // The run compares against the version that made these answers.
        let against = snapshot.plugins.get(RULES_PLUGIN).map(|p| p.version_id);
        if against != Some(active.version_id) || !plan.samples() {
            return;
        }
        let metrics = &registry.runtime().metrics;
        let Ok(slot) = self.shadow_slots.clone().try_acquire_owned() else {
            metrics.add(
                "ham_rules_shadow_comparisons_total",
                &[("plugin", RULES_PLUGIN), ("outcome", "skipped")],
                u64::try_from(inputs.len()).unwrap_or(0),
            );
            return;
        };
        let registry = registry.clone();
        let range = range.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let candidate = run.candidate.clone();
            let version = candidate.version_label();
            let answer = registry
                .runtime()
                .evaluate_rules(candidate, &inputs)
                .await
                .map_err(|e| e.to_string())
                .and_then(|evaluations| check_answer(evaluations, &inputs, &range, today));
            let day = today.to_string();
            let comparisons: Vec<Comparison> = match answer {
                Ok(answers) => inputs
                    .iter()
                    .zip(&stable)
                    .zip(&answers)
                    .map(
                        |((input, s), c)| match shadow::compare(&input.habit.id, &day, s, c) {
                            None => Comparison::Same,
                            Some(example) => Comparison::Differed(example),
                        },
                    )
                    .collect(),
                Err(why) => {
                    tracing::info!(plugin = RULES_PLUGIN, version = %version, why = %why, "the shadow candidate failed; counted as errors");
                    inputs.iter().map(|_| Comparison::Error).collect()
                }
            };
            let metrics = &registry.runtime().metrics;
            for comparison in comparisons {
                metrics.inc(
                    "ham_rules_shadow_comparisons_total",
                    &[("plugin", RULES_PLUGIN), ("outcome", comparison.outcome())],
                );
                registry.shadow_tally().add(run.rollout_id, comparison);
            }
        });
    }
}

/// A date as the `rules` interface counts it: days since 1970-01-01. jiff's dates
/// (years -9999 to 9999) are all within `s32`.
pub fn day_of(date: Date) -> i32 {
    civil_day::from_ymd(
        i64::from(date.year()),
        i64::from(date.month()),
        i64::from(date.day()),
    )
    .and_then(|d| i32::try_from(d).ok())
    .unwrap_or(i32::MIN)
}

/// Cached answers, bounded in bytes overall and per user, least recently used
/// out first. Sizes are estimates of the heap an answer holds (its scores, their
/// dates, its streaks, its key), close enough to bound memory, not exact.
pub struct StatsCache {
    max_bytes: usize,
    max_user_bytes: usize,
    bytes: usize,
    entries: HashMap<CacheKey, Cached>,
    /// Every entry by its last use (ticks are unique), oldest first.
    order: std::collections::BTreeMap<u64, CacheKey>,
    users: HashMap<String, UserShare>,
    tick: u64,
}

struct Cached {
    print: Fingerprint,
    stats: Arc<HabitStats>,
    user: String,
    bytes: usize,
    used: u64,
}

#[derive(Default)]
struct UserShare {
    bytes: usize,
    /// The user's entries by last use, oldest first.
    order: std::collections::BTreeMap<u64, CacheKey>,
}

impl StatsCache {
    /// A cache of at most `max_bytes`, and `max_user_bytes` per user.
    pub fn new(max_bytes: usize, max_user_bytes: usize) -> Self {
        Self {
            max_bytes,
            max_user_bytes: max_user_bytes.min(max_bytes),
            bytes: 0,
            entries: HashMap::new(),
            order: Default::default(),
            users: HashMap::new(),
            tick: 0,
        }
    }

    /// Bytes held, as counted.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Bytes held for one user.
    pub fn user_bytes(&self, user: &str) -> usize {
        self.users.get(user).map_or(0, |u| u.bytes)
    }

    /// Answers held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The answer for `key` if it was made for `print`; marks it used. An answer
    /// made for another fingerprint is a miss but stays (until a new answer for
    /// the key replaces it, or it ages out): a rollback to the plugin version it
    /// was made by finds it again.
    fn get(&mut self, key: &CacheKey, print: &Fingerprint) -> Option<Arc<HabitStats>> {
        if self.entries.get(key)?.print != *print {
            return None;
        }
        self.tick += 1;
        let tick = self.tick;
        let cached = self.entries.get_mut(key)?;
        let last = std::mem::replace(&mut cached.used, tick);
        let stats = cached.stats.clone();
        let user = cached.user.clone();
        self.order.remove(&last);
        self.order.insert(tick, key.clone());
        if let Some(share) = self.users.get_mut(&user) {
            share.order.remove(&last);
            share.order.insert(tick, key.clone());
        }
        Some(stats)
    }

    /// Keeps an answer made for `user`, making room: the user's least recently
    /// used answers while their share is full, then anyone's while the cache is.
    /// An answer bigger than a user's share is not kept.
    fn insert(&mut self, user: &str, key: CacheKey, print: Fingerprint, stats: Arc<HabitStats>) {
        self.remove(&key);
        let bytes = cached_bytes(&key, &print, &stats, user);
        if bytes > self.max_user_bytes {
            return;
        }
        while self.user_bytes(user) + bytes > self.max_user_bytes {
            let oldest = self
                .users
                .get(user)
                .and_then(|u| u.order.first_key_value())
                .map(|(_, k)| k.clone());
            match oldest {
                Some(k) => self.remove(&k),
                None => break,
            }
        }
        while self.bytes + bytes > self.max_bytes {
            match self.order.first_key_value().map(|(_, k)| k.clone()) {
                Some(k) => self.remove(&k),
                None => break,
            }
        }
        self.tick += 1;
        let tick = self.tick;
        self.bytes += bytes;
        self.order.insert(tick, key.clone());
        let share = self.users.entry(user.to_string()).or_default();
        share.bytes += bytes;
        share.order.insert(tick, key.clone());
        self.entries.insert(
            key,
            Cached {
                print,
                stats,
                user: user.to_string(),
                bytes,
                used: tick,
            },
        );
    }

    fn remove(&mut self, key: &CacheKey) {
        let Some(cached) = self.entries.remove(key) else {
            return;
        };
        self.bytes = self.bytes.saturating_sub(cached.bytes);
        self.order.remove(&cached.used);
        if let Some(share) = self.users.get_mut(&cached.user) {
            share.bytes = share.bytes.saturating_sub(cached.bytes);
            share.order.remove(&cached.used);
            if share.order.is_empty() {
                self.users.remove(&cached.user);
            }
        }
    }
}

/// The heap one cached answer holds, with its key and bookkeeping.
fn cached_bytes(key: &CacheKey, print: &Fingerprint, stats: &HabitStats, user: &str) -> usize {
    use std::mem::size_of;
    // The map entry, the two order entries and the per-user name, roughly.
    const BOOKKEEPING: usize = 160;
    let scores = stats.scores.capacity() * size_of::<DayScore>()
        + stats
            .scores
            .iter()
            .map(|s| s.date.capacity())
            .sum::<usize>();
    let streaks = stats.best_streaks.capacity() * size_of::<Streak>()
        + stats
            .best_streaks
            .iter()
            .map(|s| s.start.capacity() + s.end.capacity())
            .sum::<usize>();
    BOOKKEEPING
        + size_of::<HabitStats>()
        + scores
        + streaks
        + size_of::<CacheKey>()
        + 3 * key.habit_id.capacity()
        + size_of::<Cached>()
        + print.habit.capacity()
        + 2 * user.len()
}

fn key(habit: &Habit, range: &Range, today: Date) -> CacheKey {
    CacheKey {
        habit_id: habit.id.clone(),
        range: range.clone(),
        today,
    }
}

fn fingerprint(habit: &Habit, revision: i64, plugin_version: i64) -> Fingerprint {
    Fingerprint {
        habit: format!(
            "{:?}|{:?}|{:?}|{}",
            habit.kind, habit.target, habit.frequency, habit.created
        ),
        revision,
        plugin_version,
    }
}

/// Checks every evaluation against its input; the first fault refuses the lot.
/// (`ham plugin test --rules` checks with it too.)
pub(crate) fn check_answer(
    evaluations: Vec<Result<wit::Evaluation, String>>,
    inputs: &[wit::EvaluationInput],
    range: &Range,
    today: Date,
) -> Result<Vec<HabitStats>, String> {
    if evaluations.len() != inputs.len() {
        return Err(format!(
            "{} results for {} habits",
            evaluations.len(),
            inputs.len()
        ));
    }
    let (from, to) = (day_of(range.from), day_of(range.to));
    let expected_days = usize::try_from(to - from + 1).unwrap_or(0);
    // The range's dates, written once for every habit's scores.
    let dates: Vec<String> = range
        .from
        .series(1.day())
        .take(expected_days)
        .map(|d| d.to_string())
        .collect();
    evaluations
        .into_iter()
        .zip(inputs)
        .map(|(evaluation, input)| {
            let habit = &input.habit.id;
            let e = evaluation.map_err(|why| format!("habit {habit} refused: {why}"))?;
            if e.scores.len() != expected_days {
                return Err(format!(
                    "habit {habit}: {} scores for {expected_days} days",
                    e.scores.len(),
                ));
            }
            for (value, date) in e.scores.iter().zip(&dates) {
                check_unit(habit, date, *value)?;
            }
            check_unit(habit, &today.to_string(), e.today_score)?;
            let streak = |s: wit::Streak| -> Result<Streak, String> {
                let text = |day: i32| civil_day::format(i64::from(day));
                let (start, end) = (text(s.start), text(s.end));
                let in_calendar =
                    |day: i32| (civil_day::MIN_DAY..=civil_day::MAX_DAY).contains(&i64::from(day));
                if !in_calendar(s.start) || !in_calendar(s.end) {
                    return Err(format!(
                        "habit {habit}: a streak has a day outside the calendar"
                    ));
                }
                let days = i64::from(s.end) - i64::from(s.start) + 1;
                if s.length == 0 || i64::from(s.length) != days {
                    return Err(format!(
                        "habit {habit}: streak {start}..{end} has length {}",
                        s.length
                    ));
                }
                Ok(Streak {
                    start,
                    end,
                    length: s.length,
                })
            };
            let current = e.current_streak.map(streak).transpose()?;
            let best = e
                .best_streaks
                .into_iter()
                .map(streak)
                .collect::<Result<Vec<_>, _>>()?;
            let w = e.window;
            if !(w.done.is_finite() && w.done >= 0.0 && w.target.is_finite() && w.target >= 0.0)
                || w.days == 0
            {
                return Err(format!("habit {habit}: window progress out of range"));
            }
            Ok(HabitStats {
                score: e.today_score,
                scores: dates
                    .iter()
                    .cloned()
                    .zip(e.scores)
                    .map(|(date, value)| DayScore { date, value })
                    .collect(),
                current_streak: current.map_or(0, |s| s.length),
                best_streaks: best,
                window: Window {
                    done: w.done,
                    target: w.target,
                    days: w.days,
                },
            })
        })
        .collect()
}

fn check_unit(habit: &str, date: &str, value: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "habit {habit}: score {value} on {date} is outside 0..1"
        ))
    }
}

// ---- `habits.list-stats` for plugins: the acting user's habits, today ----

impl crate::capabilities::habits::StatsSource for Evaluator {
    fn today<'a>(
        &'a self,
        user_id: &'a str,
    ) -> futures::future::BoxFuture<
        'a,
        Result<
            Vec<crate::wit::ham::plugin::habits::HabitStats>,
            crate::wit::ham::plugin::types::Error,
        >,
    > {
        use crate::wit::ham::plugin::habits::HabitStats as Today;
        use crate::wit::ham::plugin::types::Error as GuestError;
        let internal = |e: &dyn std::fmt::Display| {
            tracing::error!(error = %e, "habit stats for a plugin failed in the host");
            GuestError::Internal
        };
        Box::pin(async move {
            let loaded = async {
                let zone = self.tracker.time_zone(user_id).await?;
                let habits = self.tracker.habits_with_revision(user_id, false).await?;
                Ok::<_, crate::habits::TrackerError>((zone, habits))
            };
            let (zone, habits) = loaded.await.map_err(|e| internal(&e))?;
            let today_text = crate::habits::today_in(&zone);
            let range =
                Range::parse(&today_text, &today_text).map_err(GuestError::InvalidArgument)?;
            let stats = self
                .evaluate(user_id, &habits, range.to, &range)
                .await
                .map_err(|e| match e {
                    StatsError::NoRulesPlugin => GuestError::NotConfigured(e.to_string()),
                    StatsError::Invoke { .. } | StatsError::BadAnswer { .. } => {
                        GuestError::Upstream(e.to_string())
                    }
                    StatsError::Db(e) => internal(&e),
                })?;
            Ok(habits
                .iter()
                .zip(stats)
                .map(|((habit, _), s)| Today {
                    habit_id: habit.id.clone(),
                    today_score: s.score,
                    current_streak: s.current_streak,
                    best_streak: s.best_streaks.iter().map(|b| b.length).max().unwrap_or(0),
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(days: usize) -> Arc<HabitStats> {
        Arc::new(HabitStats {
            score: 0.5,
            scores: (0..days)
                .map(|_| DayScore {
                    date: "2026-01-01".into(),
                    value: 0.5,
                })
                .collect(),
            current_streak: 0,
            best_streaks: Vec::new(),
            window: Window {
                done: 0.0,
                target: 1.0,
                days: 1,
            },
        })
    }

    fn cache_key(habit: usize, days: i64) -> CacheKey {
        let from = Date::constant(2020, 1, 1);
        CacheKey {
            habit_id: format!("habit-{habit:04}"),
            range: Range {
                from,
                to: from.checked_add(jiff::Span::new().days(days - 1)).unwrap(),
            },
            today: Date::constant(2026, 3, 1),
        }
    }

    fn print() -> Fingerprint {
        Fingerprint {
            habit: "boolean".into(),
            revision: 1,
            plugin_version: 1,
        }
    }

    #[test]
    fn the_stats_cache_stays_within_its_bytes() {
        // The real bounds, filled the way an attacker would: the longest range,
        // for ever new ranges, by several users.
        let mut cache = StatsCache::new(CACHE_BYTES, CACHE_BYTES_PER_USER);
        let big = answer(MAX_RANGE_DAYS as usize);
        let one = cached_bytes(&cache_key(0, MAX_RANGE_DAYS), &print(), &big, "mallory");
        assert!(one > MAX_RANGE_DAYS as usize * 40, "{one} bytes counted");
        for i in 0..400 {
            let user = ["mallory", "eve", "trudy", "oscar", "peggy"][i % 5];
            cache.insert(user, cache_key(i, MAX_RANGE_DAYS), print(), big.clone());
            assert!(cache.bytes() <= CACHE_BYTES, "{} bytes", cache.bytes());
            assert!(cache.user_bytes(user) <= CACHE_BYTES_PER_USER);
        }
        // 10,000 answers of 3,660 scores were possible before; now a few hundred.
        assert!(
            cache.len() < CACHE_BYTES / one + 1,
            "{} answers",
            cache.len()
        );
        let total: usize = cache.entries.values().map(|c| c.bytes).sum();
        assert_eq!(total, cache.bytes());
        assert_eq!(
            cache.users.values().map(|u| u.bytes).sum::<usize>(),
            cache.bytes()
        );
    }

    #[test]
    fn one_user_filling_the_cache_pushes_out_their_own_answers_first() {
        let small = answer(30);
        let unit = cached_bytes(&cache_key(0, 30), &print(), &small, "alice");
        // Room for 8 answers, 4 per user.
        let mut cache = StatsCache::new(8 * unit, 4 * unit);
        cache.insert("alice", cache_key(0, 30), print(), small.clone());
        cache.insert("alice", cache_key(1, 30), print(), small.clone());
        for i in 100..200 {
            cache.insert("mallory", cache_key(i, 30), print(), small.clone());
        }
        assert!(
            cache.get(&cache_key(0, 30), &print()).is_some(),
            "alice's answers stay"
        );
        assert!(cache.get(&cache_key(1, 30), &print()).is_some());
        assert!(cache.user_bytes("mallory") <= 4 * unit);
        // The newest of mallory's stay, the oldest went.
        assert!(cache.get(&cache_key(199, 30), &print()).is_some());
        assert!(cache.get(&cache_key(100, 30), &print()).is_none());

        // Least recently used goes first when the whole cache is full.
        for (user, i) in [("bob", 300), ("bob", 301), ("carol", 400), ("carol", 401)] {
            cache.insert(user, cache_key(i, 30), print(), small.clone());
        }
        assert!(cache.bytes() <= 8 * unit);
        assert!(cache.get(&cache_key(401, 30), &print()).is_some());

        // Another fingerprint is a miss; the answer stays for its own, and a new
        // answer for the key replaces it without counting twice.
        let before = cache.bytes();
        let stale = Fingerprint {
            revision: 2,
            ..print()
        };
        assert!(cache.get(&cache_key(401, 30), &stale).is_none());
        assert!(cache.get(&cache_key(401, 30), &print()).is_some());
        cache.insert("carol", cache_key(401, 30), stale.clone(), small.clone());
        assert_eq!(cache.bytes(), before);
        assert!(cache.get(&cache_key(401, 30), &stale).is_some());
        // An answer bigger than a user's share is not kept at all.
        let mut tiny = StatsCache::new(unit, unit);
        tiny.insert("alice", cache_key(0, 3660), print(), answer(3660));
        assert!(tiny.is_empty());
    }

    #[test]
    fn ranges_are_checked() {
        assert_eq!(Range::parse("2026-01-01", "2026-01-31").unwrap().days(), 31);
        assert!(
            Range::parse("2026-02-30", "2026-03-01")
                .unwrap_err()
                .starts_with("from")
        );
        assert!(Range::parse("2026-03-02", "2026-03-01").is_err());
        assert!(
            Range::parse("2000-01-01", "2026-03-01")
                .unwrap_err()
                .contains("over")
        );
    }
}
