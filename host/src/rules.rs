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

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use jiff::ToSpan as _;
use jiff::civil::Date;
use serde::Serialize;

use crate::habits::Habit;
use crate::plugins::Registry;
use crate::runtime::InvokeError;
use crate::runtime::bindings::exports::ham::plugin::rules::{self as wit};
use crate::store::habits::wit as convert;
use crate::store::{self, Db};

/// The plugin whose `rules` export judges every habit. Uploading another rule set
/// under this name (see `examples/rules-strict-streaks`) changes how habits are
/// judged, live.
pub const RULES_PLUGIN: &str = "habit-rules";
/// The longest range one stats request may score (ten years and a leap day or three).
pub const MAX_RANGE_DAYS: i64 = 3660;
/// Cached answers kept at most; the cache is emptied when it would grow past this.
const CACHE_CAPACITY: usize = 10_000;

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
    db: Db,
    cache: Mutex<HashMap<CacheKey, (Fingerprint, Arc<HabitStats>)>>,
}

impl Evaluator {
    /// `registry` is weak: the registry owns the runtime, which holds this.
    pub fn new(registry: Weak<Registry>, db: Db) -> Self {
        Self {
            registry,
            db,
            cache: Mutex::new(HashMap::new()),
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
            .filter(|p| p.exports.rules)
            .ok_or(StatsError::NoRulesPlugin)?;
        let mut answers: Vec<Option<Arc<HabitStats>>> = Vec::with_capacity(habits.len());
        let mut misses = Vec::new();
        {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            for (habit, revision) in habits {
                let key = key(habit, range, today);
                let print = fingerprint(habit, *revision, plugin.version_id);
                match cache.get(&key).filter(|(p, _)| *p == print) {
                    Some((_, stats)) => answers.push(Some(stats.clone())),
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

        // Entries up to the later of `to` and today, from the very first: of the one
        // habit, or of all the user's habits when several missed.
        let last = range.to.max(today).to_string();
        let only = match misses.as_slice() {
            [(i, _, _)] => Some(habits[*i].0.id.as_str()),
            _ => None,
        };
        let mut entries = self.db.entries_for_rules(user_id, only, &last).await?;
        let inputs: Vec<wit::EvaluationInput> = misses
            .iter()
            .map(|(i, _, _)| {
                let habit = &habits[*i].0;
                wit::EvaluationInput {
                    habit: convert::habit(habit.clone()),
                    entries: entries
                        .remove(&habit.id)
                        .unwrap_or_default()
                        .into_iter()
                        .map(convert::entry)
                        .collect(),
                    today: today.to_string(),
                    from: range.from.to_string(),
                    to: range.to.to_string(),
                }
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

        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() + checked.len() > CACHE_CAPACITY {
            cache.clear();
        }
        for ((i, key, print), stats) in misses.into_iter().zip(checked) {
            let stats = Arc::new(stats);
            cache.insert(key, (print, stats.clone()));
            answers[i] = Some(stats);
        }
        Ok(answers.into_iter().flatten().collect())
    }
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
fn check_answer(
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
    let expected_days: Vec<String> = range
        .from
        .series(1.day())
        .take_while(|d| *d <= range.to)
        .map(|d| d.to_string())
        .collect();
    evaluations
        .into_iter()
        .zip(inputs)
        .map(|(evaluation, input)| {
            let habit = &input.habit.id;
            let e = evaluation.map_err(|why| format!("habit {habit} refused: {why}"))?;
            if e.scores.len() != expected_days.len() {
                return Err(format!(
                    "habit {habit}: {} scores for {} days",
                    e.scores.len(),
                    expected_days.len()
                ));
            }
            for (score, day) in e.scores.iter().zip(&expected_days) {
                if score.date != *day {
                    return Err(format!(
                        "habit {habit}: score dated {} where {day} was due",
                        score.date
                    ));
                }
                check_unit(habit, &score.date, score.value)?;
            }
            check_unit(habit, &today.to_string(), e.today_score)?;
            let streak = |s: wit::Streak| -> Result<Streak, String> {
                let (Ok(start), Ok(end)) = (s.start.parse::<Date>(), s.end.parse::<Date>()) else {
                    return Err(format!("habit {habit}: a streak has a malformed date"));
                };
                let days = (end - start).get_days() as i64 + 1;
                if s.length == 0 || i64::from(s.length) != days {
                    return Err(format!(
                        "habit {habit}: streak {}..{} has length {}",
                        s.start, s.end, s.length
                    ));
                }
                Ok(Streak {
                    start: s.start,
                    end: s.end,
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
                scores: e
                    .scores
                    .into_iter()
                    .map(|s| DayScore {
                        date: s.date,
                        value: s.value,
                    })
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

mod host {
    use crate::runtime::Invocation;
    use crate::runtime::bindings::ham::plugin::habits::HabitStats;
    use crate::runtime::bindings::ham::plugin::types::Error as GuestError;

    use super::{Range, StatsError};

    impl Invocation {
        /// Today's stats of the acting user's active habits.
        pub(crate) async fn habit_stats_today(&mut self) -> Result<Vec<HabitStats>, GuestError> {
            let user = self.acting_user()?.to_string();
            let Some(evaluator) = self.evaluator.clone() else {
                return Err(GuestError::NotConfigured(
                    "habit stats are not available in this host".into(),
                ));
            };
            let loaded = async {
                let zone = self.db.user_time_zone(&user).await?;
                let habits = self.db.habits_with_revision(&user, false).await?;
                Ok::<_, crate::store::Error>((zone, habits))
            };
            let (zone, habits) = loaded.await.map_err(|e| self.host_failed(e))?;
            let today_text = crate::habits::today_in(&zone);
            let range =
                Range::parse(&today_text, &today_text).map_err(GuestError::InvalidArgument)?;
            let stats = evaluator
                .evaluate(&user, &habits, range.to, &range)
                .await
                .map_err(|e| match e {
                    StatsError::NoRulesPlugin => GuestError::NotConfigured(e.to_string()),
                    StatsError::Invoke { .. } | StatsError::BadAnswer { .. } => {
                        GuestError::Upstream(e.to_string())
                    }
                    StatsError::Db(e) => self.host_failed(e),
                })?;
            Ok(habits
                .iter()
                .zip(stats)
                .map(|((habit, _), s)| HabitStats {
                    habit_id: habit.id.clone(),
                    today_score: s.score,
                    current_streak: s.current_streak,
                    best_streak: s.best_streaks.iter().map(|b| b.length).max().unwrap_or(0),
                })
                .collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
