//! Window progress: how far the habit is in the rolling window of
//! `frequency.days` days ending today, the number a user checks to know whether
//! this week's three runs are done. Not doubled like the score's window: this is
//! the habit's own period, as the user set it. A weekday habit's window is the 7
//! days ending today, against its due days in them.

use crate::date::Day;
use crate::habit::{Habit, Kind};
use crate::history::History;

/// Progress in the window of `days` days ending today.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Days done (boolean) or the sum of values (measurable).
    pub done: f64,
    /// `frequency.times` (boolean) or the target's value (measurable).
    pub target: f64,
    pub days: u32,
}

/// The progress of `habit` in the window ending `today`.
pub fn progress(habit: &Habit, history: &History, today: Day) -> Progress {
    let days = habit.frequency.days;
    let done = (today - i64::from(days) + 1..=today)
        .map(|day| history.check(day).amount())
        .sum();
    let target = match (habit.kind, habit.weekdays) {
        (Kind::Boolean, _) => f64::from(habit.frequency.times),
        (Kind::Measurable(target), None) => target.value,
        // A weekday habit's target is for each due day: the week holds `times` of them.
        (Kind::Measurable(target), Some(_)) => target.value * f64::from(habit.frequency.times),
    };
    Progress { done, target, days }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::habit::{Frequency, Mark, Policy, Target, TargetType};

    #[test]
    fn counts_days_done_in_the_window_ending_today() {
        let habit = Habit {
            kind: Kind::Boolean,
            frequency: Frequency { times: 3, days: 7 },
            weekdays: None,
        };
        let entries = [
            (2, Mark::Done), // outside: the window is days 3 to 9
            (3, Mark::Done),
            (5, Mark::Skipped),
            (9, Mark::Done),
        ];
        let history = History::new(&habit, &entries, 0, 9, Policy::LOOP);
        assert_eq!(
            progress(&habit, &history, 9),
            Progress {
                done: 2.0,
                target: 3.0,
                days: 7
            }
        );
    }

    #[test]
    fn sums_values_against_the_target() {
        let habit = Habit {
            kind: Kind::Measurable(Target {
                value: 20.0,
                kind: TargetType::AtLeast,
            }),
            frequency: Frequency { times: 1, days: 7 },
            weekdays: None,
        };
        let entries = [
            (0, Mark::Value(8.5)),
            (4, Mark::Value(5.0)),
            (6, Mark::Value(1.5)),
        ];
        let history = History::new(&habit, &entries, 0, 6, Policy::LOOP);
        assert_eq!(progress(&habit, &history, 6).done, 15.0);
        // Nothing recorded, or the history ends before the window: 0.
        let empty = History::new(&habit, &[], 0, 6, Policy::LOOP);
        assert_eq!(progress(&habit, &empty, 6).done, 0.0);
    }
}
