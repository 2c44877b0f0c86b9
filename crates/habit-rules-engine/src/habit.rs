//! What the rules know about a habit: its kind (with a measurable habit's target),
//! its frequency, the marks a user records, and the [`Policy`] a rule set applies
//! to them. Plain types with no WIT in them, so another rule set can reuse them.

use crate::date::Day;

/// `times` check-ins every `days` days: daily is 1/1, three times a week is 3/7.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frequency {
    pub times: u32,
    pub days: u32,
}

impl Frequency {
    /// `times / days`: 1 for a daily habit, 3/7 for three times a week.
    pub fn ratio(self) -> f64 {
        f64::from(self.times) / f64::from(self.days)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetType {
    /// At least `value` in each window: running 5 km a week.
    AtLeast,
    /// At most `value` in each window: 2 coffees a day.
    AtMost,
}

/// A measurable habit's goal for each window of `frequency.days` days.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target {
    pub value: f64,
    pub kind: TargetType,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// Done or not done.
    Boolean,
    /// A number a day, summed over each window and held against the target.
    Measurable(Target),
}

/// ISO weekdays a habit is due on, as a set: bit 0 is Monday, bit 6 Sunday.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Weekdays(u8);

impl Weekdays {
    /// The set of these ISO weekdays (1 = Monday to 7 = Sunday); none when a day is
    /// out of range, repeated, or the list is empty.
    pub fn from_iso(days: &[u8]) -> Option<Weekdays> {
        let mut bits = 0u8;
        for &d in days {
            if !(1..=7).contains(&d) || bits & (1 << (d - 1)) != 0 {
                return None;
            }
            bits |= 1 << (d - 1);
        }
        (bits != 0).then_some(Weekdays(bits))
    }

    /// The ISO weekdays in the set, ascending.
    pub fn iso(self) -> Vec<u8> {
        (1..=7).filter(|d| self.0 & (1 << (d - 1)) != 0).collect()
    }

    /// Days in the set, 1 to 7.
    pub fn count(self) -> u32 {
        self.0.count_ones()
    }

    /// Whether `day` falls on one of the weekdays.
    pub fn contains(self, day: Day) -> bool {
        self.0 & (1 << (weekday(day) - 1)) != 0
    }
}

/// The ISO weekday of `day`, 1 = Monday to 7 = Sunday (1970-01-01, day 0, was a
/// Thursday).
pub fn weekday(day: Day) -> u8 {
    // rem_euclid of 7 is 0..=6, so the cast cannot truncate.
    (day + 3).rem_euclid(7) as u8 + 1
}

/// The part of a habit the rules read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Habit {
    pub kind: Kind,
    /// For a weekday habit, the count of its weekdays in 7 days.
    pub frequency: Frequency,
    /// The weekdays it is due on; none for a habit due `times` in every `days`.
    pub weekdays: Option<Weekdays>,
}

impl Habit {
    /// A habit due `frequency.times` in every `frequency.days` days.
    pub fn every(kind: Kind, frequency: Frequency) -> Habit {
        Habit {
            kind,
            frequency,
            weekdays: None,
        }
    }

    /// Whether `day` is one the habit is due on: every day, unless it has weekdays.
    pub fn is_due(&self, day: Day) -> bool {
        self.weekdays.is_none_or(|w| w.contains(day))
    }

    /// The rolling window a day's completion is measured over, as (check-ins
    /// needed, days). For a boolean habit less often than daily both are doubled,
    /// as Loop does, so that a weekly habit done on a Monday one week and on a
    /// Sunday the next still looks regular.
    /// A weekday habit is measured day by day on its due days: (1, 1).
    pub fn rolling_window(&self) -> (f64, usize) {
        if self.weekdays.is_some() {
            return (1.0, 1);
        }
        let Frequency { times, days } = self.frequency;
        let doubled = matches!(self.kind, Kind::Boolean) && times < days;
        let factor = if doubled { 2 } else { 1 };
        (f64::from(times * factor), days as usize * factor as usize)
    }
}

/// An entry as the user recorded it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mark {
    Done,
    Skipped,
    Value(f64),
}

/// How a rule set counts a skipped day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipRule {
    /// Loop's rule: a skip neither raises nor lowers the score, and a streak runs
    /// through it.
    Neutral,
    /// A skip is a day with nothing recorded: the score takes it like any other
    /// day, and it ends a streak (unless the habit's window is already met, as for
    /// any other missed day of a non-daily habit).
    Miss,
}

/// The choices that tell one rule set from another; the engine is the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub skip: SkipRule,
}

impl Policy {
    /// Loop Habit Tracker's rules: the bundled `habit-rules`.
    pub const LOOP: Policy = Policy {
        skip: SkipRule::Neutral,
    };
    /// Skips count as misses.
    pub const STRICT: Policy = Policy {
        skip: SkipRule::Miss,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekdays_are_iso_and_refuse_repeats_and_strangers() {
        assert_eq!(weekday(0), 4, "1970-01-01 was a Thursday");
        assert_eq!(weekday(-1), 3);
        assert_eq!(weekday(crate::date::parse("2026-11-30").unwrap()), 1);
        let mwf = Weekdays::from_iso(&[5, 1, 3]).unwrap();
        assert_eq!((mwf.iso(), mwf.count()), (vec![1, 3, 5], 3));
        assert!(mwf.contains(crate::date::parse("2026-12-02").unwrap()));
        assert!(!mwf.contains(crate::date::parse("2026-12-03").unwrap()));
        for bad in [&[][..], &[0], &[8], &[1, 1]] {
            assert_eq!(Weekdays::from_iso(bad), None, "{bad:?}");
        }
    }
}
