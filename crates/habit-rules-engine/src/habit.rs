//! What the rules know about a habit: its kind (with a measurable habit's target),
//! its frequency, the marks a user records, and the [`Policy`] a rule set applies
//! to them. Plain types with no WIT in them, so another rule set can reuse them.

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

/// The part of a habit the rules read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Habit {
    pub kind: Kind,
    pub frequency: Frequency,
}

impl Habit {
    /// The rolling window a day's completion is measured over, as (check-ins
    /// needed, days). For a boolean habit less often than daily both are doubled,
    /// as Loop does, so that a weekly habit done on a Monday one week and on a
    /// Sunday the next still looks regular.
    pub fn rolling_window(&self) -> (f64, usize) {
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
