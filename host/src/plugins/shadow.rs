//! Shadow runs: a candidate rule set of the rules plugin ([`crate::rules::RULES_PLUGIN`])
//! judges habits beside the active one without anyone seeing its answers, and the
//! host counts how often the two disagree.
//!
//! - The plan ([`ShadowPlan`]) comes with the upload (`rollout`, JSON):
//!   `{"shadow": true, "sample_percent": 10}`; `sample_percent` is 1..=100
//!   (default [`DEFAULT_SAMPLE_PERCENT`]). Only a version of the rules plugin that
//!   judges habits, beside an active one, runs in shadow; anything else is refused
//!   (`rollout_not_applicable`).
//! - Who sees what: everyone gets the stable version's answers, cached as before.
//!   On a sample of the stable version's evaluations (a call answered from the
//!   cache is none), the candidate evaluates the very same inputs in a task of
//!   its own, after the answer is made: at most [`MAX_RUNNING`] at once per
//!   process, a sampled call beyond that is skipped. Nothing the candidate does
//!   delays or fails a user's answer.
//! - Comparing ([`compare`]), per habit: today's score and every day's (within
//!   [`TOLERANCE`]), the current streak, the best streaks, the window. A
//!   candidate that traps, times out or gives an answer the host refuses counts
//!   its habits as errors, not differences.
//! - Counting: each replica adds its figures and its latest differences to the
//!   rollout's row every [`super::rollout::TICK`] ([`ShadowTally`]); the admin
//!   view shows the sums, the same on every replica, and the newest
//!   [`crate::store::rollouts::MAX_SHADOW_EXAMPLES`] differences: the habit's id
//!   and the figures, nothing of its user or its entries. `/metrics` counts
//!   comparisons by outcome (`ham_rules_shadow_comparisons_total`).
//! - Deciding: an admin promotes the candidate (it becomes the active version)
//!   or aborts the run; the host never decides a shadow run by itself.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde_json::Value;

use super::rollout::PlanError;
use crate::rules::HabitStats;
pub use crate::store::rollouts::{ShadowExample, ShadowFigures};

/// The share of evaluations compared when the plan does not say.
pub const DEFAULT_SAMPLE_PERCENT: u8 = 10;
/// Candidate evaluations running at once in one process; a sampled call beyond
/// this is skipped (counted as `skipped` in `/metrics`).
pub const MAX_RUNNING: usize = 2;
/// Scores closer than this are the same.
pub const TOLERANCE: f64 = 1e-9;

/// A shadow run's plan: `{"shadow": true, "sample_percent": 10}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ShadowPlan {
    /// Always true: the candidate serves nobody.
    pub shadow: bool,
    /// The share of the stable version's evaluations the candidate repeats, in
    /// percent (1..=100; default 10).
    pub sample_percent: u8,
}

impl ShadowPlan {
    /// Checks a plan given as JSON with the key `shadow`; the message names the
    /// field at fault.
    pub fn parse(value: &Value) -> Result<Self, PlanError> {
        let bad = |why: String| Err(PlanError(why));
        let Value::Object(fields) = value else {
            return bad(
                "expected an object such as {\"shadow\": true, \"sample_percent\": 10}".into(),
            );
        };
        if let Some(key) = fields
            .keys()
            .find(|k| !matches!(k.as_str(), "shadow" | "sample_percent"))
        {
            return bad(format!(
                "{key}: unknown field in a shadow run (known: shadow, sample_percent)"
            ));
        }
        match fields.get("shadow") {
            Some(Value::Bool(true)) => {}
            Some(other) => {
                return bad(format!(
                    "shadow: {other} is not true (leave it out for a canary rollout)"
                ));
            }
            None => return bad("shadow: required".into()),
        }
        let sample_percent = match fields.get("sample_percent") {
            None => DEFAULT_SAMPLE_PERCENT,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=100).contains(n))
                .and_then(|n| u8::try_from(n).ok())
                .ok_or_else(|| {
                    PlanError(format!(
                        "sample_percent: {v} is not a whole number within 1..=100"
                    ))
                })?,
        };
        Ok(Self {
            shadow: true,
            sample_percent,
        })
    }

    /// Whether this evaluation call is compared: calls are numbered, and a mix of
    /// the number decides, so the share holds over any run of calls.
    pub fn samples(&self) -> bool {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = super::rollout::splitmix64(NEXT.fetch_add(1, Ordering::Relaxed));
        n % 10_000 < u64::from(self.sample_percent) * 100
    }
}

/// How one habit's answers compared.
#[derive(Debug, Clone, PartialEq)]
pub enum Comparison {
    Same,
    Differed(ShadowExample),
    /// The candidate failed (trap, timeout, refused answer).
    Error,
}

impl Comparison {
    /// Its name in `/metrics`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Comparison::Same => "same",
            Comparison::Differed(_) => "differed",
            Comparison::Error => "error",
        }
    }
}

/// Compares one habit's answers: `None` when they agree (scores within
/// [`TOLERANCE`], streaks and window equal), else the difference to show: the
/// first day whose score differs, or `today` when today's score, the streaks or
/// the window do.
pub fn compare(
    habit_id: &str,
    today: &str,
    stable: &HabitStats,
    candidate: &HabitStats,
) -> Option<ShadowExample> {
    let close = |a: f64, b: f64| (a - b).abs() <= TOLERANCE;
    let example = |day: &str, stable_score: f64, candidate_score: f64| ShadowExample {
        habit_id: habit_id.to_string(),
        day: day.to_string(),
        stable_score,
        candidate_score,
        stable_streak: i64::from(stable.current_streak),
        candidate_streak: i64::from(candidate.current_streak),
    };
    let window_same = close(stable.window.done, candidate.window.done)
        && close(stable.window.target, candidate.window.target)
        && stable.window.days == candidate.window.days;
    if !close(stable.score, candidate.score)
        || stable.current_streak != candidate.current_streak
        || stable.best_streaks != candidate.best_streaks
        || !window_same
        || stable.scores.len() != candidate.scores.len()
    {
        return Some(example(today, stable.score, candidate.score));
    }
    stable
        .scores
        .iter()
        .zip(&candidate.scores)
        .find(|(s, c)| s.date != c.date || !close(s.value, c.value))
        .map(|(s, c)| example(&s.date, s.value, c.value))
}

/// This process's shadow figures not yet in the database, per rollout.
#[derive(Debug, Default)]
pub struct ShadowTally {
    pending: Mutex<HashMap<i64, (ShadowFigures, Vec<ShadowExample>)>>,
}

impl ShadowTally {
    /// Counts one habit's comparison for shadow run `rollout`.
    pub fn add(&self, rollout: i64, comparison: Comparison) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        let (figures, examples) = pending.entry(rollout).or_default();
        match comparison {
            Comparison::Same => figures.compared += 1,
            Comparison::Differed(example) => {
                figures.compared += 1;
                figures.differed += 1;
                let keep =
                    usize::try_from(crate::store::rollouts::MAX_SHADOW_EXAMPLES).unwrap_or(10);
                if examples.len() >= keep {
                    examples.remove(0);
                }
                examples.push(example);
            }
            Comparison::Error => figures.errors += 1,
        }
    }

    /// Takes every figure out, for the database.
    pub fn drain(&self) -> Vec<(i64, ShadowFigures, Vec<ShadowExample>)> {
        let Ok(mut pending) = self.pending.lock() else {
            return Vec::new();
        };
        pending
            .drain()
            .map(|(rollout, (figures, examples))| (rollout, figures, examples))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{DayScore, Streak, Window};

    fn stats(scores: &[f64], streak: u32) -> HabitStats {
        HabitStats {
            score: *scores.last().unwrap(),
            scores: scores
                .iter()
                .enumerate()
                .map(|(i, v)| DayScore {
                    date: format!("2026-03-0{}", i + 1),
                    value: *v,
                })
                .collect(),
            current_streak: streak,
            best_streaks: vec![Streak {
                start: "2026-03-01".into(),
                end: "2026-03-03".into(),
                length: 3,
            }],
            window: Window {
                done: 1.0,
                target: 1.0,
                days: 1,
            },
        }
    }

    #[test]
    fn plans_are_checked_field_by_field() {
        let parse = |t: &str| ShadowPlan::parse(&serde_json::from_str(t).unwrap());
        assert_eq!(
            parse(r#"{"shadow": true}"#).unwrap(),
            ShadowPlan {
                shadow: true,
                sample_percent: 10
            }
        );
        assert_eq!(
            parse(r#"{"shadow": true, "sample_percent": 100}"#)
                .unwrap()
                .sample_percent,
            100
        );
        for (text, expected) in [
            (r#"{"shadow": false}"#, "shadow: false is not true"),
            (r#"{"shadow": 1}"#, "shadow: 1 is not true"),
            (
                r#"{"shadow": true, "sample_percent": 0}"#,
                "sample_percent: 0",
            ),
            (
                r#"{"shadow": true, "sample_percent": 101}"#,
                "sample_percent: 101",
            ),
            (
                r#"{"shadow": true, "sample_percent": 5.5}"#,
                "sample_percent: 5.5",
            ),
            (
                r#"{"shadow": true, "canary_percent": 20}"#,
                "canary_percent: unknown field",
            ),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(expected), "{text}: {e}");
        }
        let all = ShadowPlan {
            shadow: true,
            sample_percent: 100,
        };
        assert!((0..100).all(|_| all.samples()));
        let some = ShadowPlan {
            shadow: true,
            sample_percent: 10,
        };
        let n = (0..10_000).filter(|_| some.samples()).count();
        assert!((700..=1300).contains(&n), "{n}");
    }

    #[test]
    fn answers_are_compared_per_habit() {
        let a = stats(&[0.1, 0.2, 0.3], 3);
        assert_eq!(compare("h", "2026-03-03", &a, &a.clone()), None);
        let mut nearly = a.clone();
        nearly.score += 1e-12;
        nearly.scores[1].value -= 1e-12;
        assert_eq!(compare("h", "2026-03-03", &a, &nearly), None);

        let mut day = a.clone();
        day.scores[1].value = 0.25;
        let e = compare("h", "2026-03-03", &a, &day).unwrap();
        assert_eq!(
            (e.day.as_str(), e.stable_score, e.candidate_score),
            ("2026-03-02", 0.2, 0.25)
        );

        let mut streak = a.clone();
        streak.current_streak = 1;
        let e = compare("h", "2026-03-03", &a, &streak).unwrap();
        assert_eq!(
            (
                e.habit_id.as_str(),
                e.day.as_str(),
                e.stable_streak,
                e.candidate_streak
            ),
            ("h", "2026-03-03", 3, 1)
        );

        let mut best = a.clone();
        best.best_streaks.clear();
        assert!(compare("h", "2026-03-03", &a, &best).is_some());
        let mut window = a.clone();
        window.window.done = 0.5;
        assert!(compare("h", "2026-03-03", &a, &window).is_some());
    }

    #[test]
    fn the_tally_keeps_the_latest_examples() {
        let tally = ShadowTally::default();
        let a = stats(&[0.1], 1);
        let mut b = a.clone();
        b.current_streak = 0;
        for i in 0..15 {
            let e = compare(&format!("h{i}"), "2026-03-01", &a, &b).unwrap();
            tally.add(7, Comparison::Differed(e));
        }
        tally.add(7, Comparison::Same);
        tally.add(7, Comparison::Error);
        let drained = tally.drain();
        assert_eq!(drained.len(), 1);
        let (id, figures, examples) = &drained[0];
        assert_eq!(*id, 7);
        assert_eq!(
            *figures,
            ShadowFigures {
                compared: 16,
                differed: 15,
                errors: 1
            }
        );
        assert_eq!(examples.len(), 10);
        assert_eq!(examples[9].habit_id, "h14");
        assert!(tally.drain().is_empty());
    }
}
