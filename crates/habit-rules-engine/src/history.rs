//! A habit's history: one [`Check`] per day from its first entry to the last day
//! evaluated, with the rule set's [`Policy`] already applied, so that scores,
//! streaks and windows read the same days and none of them looks at raw entries.
//!
//! Entries are normalised here, once: the later of two entries on one day wins; a
//! `value` on a boolean habit counts as done when above 0; `done` on a measurable
//! habit counts as the target's value (both can be left over from a habit whose
//! kind was changed); negative values count as 0, as in Loop. A weekday habit's
//! days off with nothing done (or skipped) are [`Check::Off`].

use crate::date::Day;
use crate::habit::{Habit, Kind, Mark, Policy, SkipRule};

/// One day of a habit's history.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Check {
    /// Nothing recorded (or a boolean "not done").
    Missing,
    /// A boolean habit done.
    Done,
    /// Skipped, under a policy that keeps skips.
    Skipped,
    /// A measurable habit's value for the day.
    Amount(f64),
    /// A day a weekday habit is not due, with nothing done: it neither raises nor
    /// lowers the score, and a streak runs through it but does not start on it.
    Off,
}

/// The days of a habit's history.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    /// The day the series starts: the earlier of the habit's creation and its first
    /// entry. Before it, a habit has no score.
    pub start: Day,
    /// The first day in `checks`: the first entry, or `end + 1` when there is none.
    pub first: Day,
    /// The last day evaluated.
    pub end: Day,
    /// `checks[i]` is day `first + i`, up to `end`.
    checks: Vec<Check>,
}

impl History {
    /// The history of `habit` from `entries` (in any order; the later of two on one
    /// day wins), ignoring entries after `end`. The caller bounds `end - first`.
    pub fn new(
        habit: &Habit,
        entries: &[(Day, Mark)],
        created: Day,
        end: Day,
        policy: Policy,
    ) -> History {
        let mut kept: Vec<(Day, Mark)> = entries
            .iter()
            .copied()
            .filter(|&(day, _)| day <= end)
            .collect();
        // Stable: among entries on one day, the one given last stays last.
        kept.sort_by_key(|&(day, _)| day);
        let first = kept.first().map_or(end + 1, |&(day, _)| day);
        let mut checks = vec![Check::Missing; usize::try_from(end + 1 - first).unwrap_or(0)];
        for (day, mark) in kept {
            if let Some(slot) = usize::try_from(day - first)
                .ok()
                .and_then(|i| checks.get_mut(i))
            {
                *slot = check_of(habit, mark, policy);
            }
        }
        if habit.weekdays.is_some() {
            for (day, slot) in (first..).zip(checks.iter_mut()) {
                if !habit.is_due(day) && matches!(slot, Check::Missing | Check::Skipped) {
                    *slot = Check::Off;
                }
            }
        }
        History {
            start: created.min(first),
            first,
            end,
            checks,
        }
    }

    /// The check on `day`: [`Check::Missing`] outside the history.
    pub fn check(&self, day: Day) -> Check {
        usize::try_from(day - self.first)
            .ok()
            .and_then(|i| self.checks.get(i))
            .copied()
            .unwrap_or(Check::Missing)
    }

    /// The days from `first` to `end`, with their checks, oldest first.
    pub fn days(&self) -> impl Iterator<Item = (Day, Check)> + '_ {
        (self.first..).zip(self.checks.iter().copied())
    }
}

fn check_of(habit: &Habit, mark: Mark, policy: Policy) -> Check {
    match (mark, habit.kind) {
        (Mark::Skipped, _) => match policy.skip {
            SkipRule::Neutral => Check::Skipped,
            SkipRule::Miss => Check::Missing,
        },
        (Mark::Done, Kind::Boolean) => Check::Done,
        (Mark::Value(v), Kind::Boolean) if v > 0.0 => Check::Done,
        (Mark::Value(_), Kind::Boolean) => Check::Missing,
        (Mark::Done, Kind::Measurable(target)) => Check::Amount(target.value),
        (Mark::Value(v), Kind::Measurable(_)) => Check::Amount(v.max(0.0)),
    }
}

impl Check {
    /// What the day adds to its rolling window: 1 for a boolean habit done, the
    /// value for a measurable one, 0 otherwise.
    pub fn amount(self) -> f64 {
        match self {
            Check::Done => 1.0,
            Check::Amount(v) => v,
            Check::Missing | Check::Skipped | Check::Off => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::habit::{Frequency, Target, TargetType};

    const DAILY: Frequency = Frequency { times: 1, days: 1 };

    #[test]
    fn later_entry_on_a_day_wins_and_order_does_not_matter() {
        let habit = Habit {
            kind: Kind::Boolean,
            frequency: DAILY,
            weekdays: None,
        };
        let entries = [(5, Mark::Done), (2, Mark::Skipped), (5, Mark::Skipped)];
        let h = History::new(&habit, &entries, 10, 6, Policy::LOOP);
        assert_eq!((h.start, h.first, h.end), (2, 2, 6));
        assert_eq!(h.check(2), Check::Skipped);
        assert_eq!(h.check(3), Check::Missing);
        assert_eq!(h.check(5), Check::Skipped);
        assert_eq!(h.check(7), Check::Missing);
        assert_eq!(h.days().count(), 5);
    }

    #[test]
    fn strict_policy_turns_skips_into_missing_days() {
        let habit = Habit {
            kind: Kind::Boolean,
            frequency: DAILY,
            weekdays: None,
        };
        let h = History::new(&habit, &[(1, Mark::Skipped)], 0, 3, Policy::STRICT);
        assert_eq!(h.check(1), Check::Missing);
        assert_eq!(h.first, 1, "a skip still anchors the series");
    }

    #[test]
    fn marks_of_the_other_kind_are_read_leniently() {
        let boolean = Habit {
            kind: Kind::Boolean,
            frequency: DAILY,
            weekdays: None,
        };
        let h = History::new(
            &boolean,
            &[(0, Mark::Value(2.0)), (1, Mark::Value(0.0))],
            0,
            1,
            Policy::LOOP,
        );
        assert_eq!((h.check(0), h.check(1)), (Check::Done, Check::Missing));

        let measurable = Habit {
            kind: Kind::Measurable(Target {
                value: 3.0,
                kind: TargetType::AtLeast,
            }),
            frequency: DAILY,
            weekdays: None,
        };
        let h = History::new(
            &measurable,
            &[(0, Mark::Done), (1, Mark::Value(-4.0))],
            0,
            1,
            Policy::LOOP,
        );
        assert_eq!(
            (h.check(0), h.check(1)),
            (Check::Amount(3.0), Check::Amount(0.0))
        );
    }

    #[test]
    fn entries_after_the_end_are_ignored_and_no_entries_is_empty() {
        let habit = Habit {
            kind: Kind::Boolean,
            frequency: DAILY,
            weekdays: None,
        };
        let h = History::new(&habit, &[(9, Mark::Done)], 3, 5, Policy::LOOP);
        assert_eq!((h.start, h.first, h.days().count()), (3, 6, 0));
    }
}
