//! Scores: Loop Habit Tracker's habit strength, a number in 0..1 for every day.
//!
//! Each day the score moves towards that day's completion by an exponential
//! moving average, `score = previous * m + completion * (1 - m)` with
//! `m = 0.5 ^ (sqrt(times / days) / 13)`: a daily habit closes half the gap in 13
//! days, a weekly one in about 34.
//!
//! A day's completion is measured over the rolling window of days ending that day
//! (see [`Habit::rolling_window`]): for a boolean habit the days done out of the
//! check-ins needed, capped at 1; for a measurable one the window's sum against the
//! target (at least: `sum / target`, capped at 1; at most: `1 - (sum - target) /
//! target`, within 0..1, and a day with nothing recorded counts as 0, which is
//! within any at-most target). A skipped day (under [`crate::SkipRule::Neutral`])
//! keeps the previous score: it neither raises nor lowers it, and so does a weekday
//! habit's day off ([`habit_multiplier`] says how far its due days move it).
//!
//! The series starts at [`History::start`]: 0 before, and from there at 0, or at
//! 1 for an at-most habit (nothing consumed yet is on target).

use crate::date::Day;
use crate::habit::{Habit, Kind, TargetType};
use crate::history::{Check, History};

/// How much of the previous score a day keeps, for a habit of this frequency
/// (`times / days`).
pub fn multiplier(frequency: f64) -> f64 {
    0.5f64.powf(frequency.sqrt() / 13.0)
}

/// How much of the previous score a due day keeps. A weekday habit moves only on
/// its `k` due days a week, each by a daily habit's step raised to `7 / k`, so a
/// week of it moves the score as far as a week of a daily habit: done on every
/// due day for eight weeks it scores as a daily habit done for eight weeks would
/// (0.95), whatever its weekdays.
pub fn habit_multiplier(habit: &Habit) -> f64 {
    match habit.weekdays {
        Some(w) => multiplier(1.0).powf(7.0 / f64::from(w.count())),
        None => multiplier(habit.frequency.ratio()),
    }
}

/// The score after a day of this completion.
pub fn next(previous: f64, multiplier: f64, completion: f64) -> f64 {
    previous * multiplier + completion * (1.0 - multiplier)
}

/// The completion of a day whose rolling window holds `total` (days done, or the
/// sum of values).
pub fn completion(habit: &Habit, total: f64) -> f64 {
    let (needed, _) = habit.rolling_window();
    match habit.kind {
        Kind::Boolean => (total / needed).min(1.0),
        Kind::Measurable(target) => match target.kind {
            TargetType::AtLeast if target.value > 0.0 => (total / target.value).min(1.0),
            TargetType::AtLeast => 1.0,
            TargetType::AtMost if target.value > 0.0 => {
                (1.0 - (total - target.value) / target.value).clamp(0.0, 1.0)
            }
            TargetType::AtMost if total > 0.0 => 0.0,
            TargetType::AtMost => 1.0,
        },
    }
}

/// The score a series starts from.
pub fn initial(habit: &Habit) -> f64 {
    match habit.kind {
        Kind::Measurable(t) if t.kind == TargetType::AtMost => 1.0,
        _ => 0.0,
    }
}

/// A habit's scores from its start to the history's end.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    start: Day,
    first: Day,
    initial: f64,
    /// `values[i]` is the score of day `first + i`.
    values: Vec<f64>,
}

impl Scores {
    /// Scores every day of `history`.
    pub fn of(habit: &Habit, history: &History) -> Scores {
        let m = habit_multiplier(habit);
        let (_, window) = habit.rolling_window();
        let checks: Vec<Check> = history.days().map(|(_, check)| check).collect();
        let mut values = Vec::with_capacity(checks.len());
        let mut score = initial(habit);
        let mut total = 0.0;
        for ((i, check), day) in checks.iter().enumerate().zip(history.first..) {
            total += check.amount();
            if let Some(old) = i.checked_sub(window).and_then(|j| checks.get(j)) {
                // Clamped: a long run of fractional values must not leave -1e-17.
                total = (total - old.amount()).max(0.0);
            }
            // Only due days move it: a weekday habit's days off keep the score,
            // even one done on a day off.
            if *check != Check::Skipped && habit.is_due(day) {
                score = next(score, m, completion(habit, total));
            }
            values.push(score);
        }
        Scores {
            start: history.start,
            first: history.first,
            initial: initial(habit),
            values,
        }
    }

    /// The score on `day`: 0 before the series starts; the initial score until the
    /// first entry (nothing can have moved it); after the last day evaluated, the
    /// last score.
    pub fn at(&self, day: Day) -> f64 {
        if day < self.start {
            return 0.0;
        }
        match usize::try_from(day - self.first) {
            Err(_) => self.initial,
            Ok(i) => self
                .values
                .get(i)
                .or(self.values.last())
                .copied()
                .unwrap_or(self.initial),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::habit::{Frequency, Mark, Policy, Target};

    fn boolean(times: u32, days: u32) -> Habit {
        Habit {
            kind: Kind::Boolean,
            frequency: Frequency { times, days },
            weekdays: None,
        }
    }

    #[test]
    fn a_daily_habit_closes_half_the_gap_in_13_days() {
        let m = multiplier(1.0);
        let mut s = 0.0;
        for _ in 0..13 {
            s = next(s, m, 1.0);
        }
        assert!((s - 0.5).abs() < 1e-12, "{s}");
    }

    #[test]
    fn doubled_window_for_boolean_habits_less_than_daily() {
        assert_eq!(boolean(3, 7).rolling_window(), (6.0, 14));
        assert_eq!(boolean(1, 1).rolling_window(), (1.0, 1));
        assert_eq!(boolean(2, 2).rolling_window(), (2.0, 2));
        let measurable = Habit {
            kind: Kind::Measurable(Target {
                value: 5.0,
                kind: TargetType::AtLeast,
            }),
            frequency: Frequency { times: 1, days: 7 },
            weekdays: None,
        };
        assert_eq!(measurable.rolling_window(), (1.0, 7));
    }

    #[test]
    fn before_the_start_is_zero_and_before_the_first_entry_is_the_initial_score() {
        let habit = Habit {
            kind: Kind::Measurable(Target {
                value: 2.0,
                kind: TargetType::AtMost,
            }),
            frequency: Frequency { times: 1, days: 1 },
            weekdays: None,
        };
        let history = History::new(&habit, &[(10, Mark::Value(5.0))], 5, 12, Policy::LOOP);
        let scores = Scores::of(&habit, &history);
        assert_eq!(scores.at(4), 0.0);
        assert_eq!(scores.at(5), 1.0);
        assert_eq!(scores.at(9), 1.0);
        assert!(scores.at(10) < 1.0);
        assert_eq!(scores.at(12), scores.at(13));
    }
}
