//! One habit's evaluation, end to end: check the [`DayRequest`] (days as numbers,
//! as the WIT gives them), build the history under a [`Policy`], and answer with
//! scores, streaks and window progress in the shape the WIT wants. [`Request`] and
//! [`Outcome`] are the same with `YYYY-MM-DD` dates, for people and tests.
//!
//! This is the whole contract of a rule set short of the wit-bindgen glue, so a
//! component's adapter only copies fields. Input is untrusted: anything malformed
//! is an [`InvalidInput`] naming the field, never a panic; sizes are bounded so a
//! request cannot exhaust the component's memory.

use std::fmt;

use crate::date::{self, Day};
use crate::habit::{Frequency, Habit, Kind, Mark, Policy, Target, Weekdays};
use crate::history::History;
use crate::score::Scores;
use crate::{streaks, window};

/// The most days from `from` to `to`, and from the first entry to the last day
/// evaluated: 200 years.
pub const MAX_SPAN_DAYS: i64 = 73_050;
/// The longest frequency period, as the host allows.
pub const MAX_PERIOD_DAYS: u32 = 366;
/// How many best streaks an evaluation lists.
pub const BEST_STREAKS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HabitKind {
    Boolean,
    Measurable,
}

/// What the host asks about one habit.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub kind: HabitKind,
    /// Required for a measurable habit; ignored for a boolean one.
    pub target: Option<Target>,
    pub frequency: Frequency,
    /// The weekdays a weekday habit is due on; `frequency` is then ignored (the
    /// count of them in 7 days stands for it).
    pub weekdays: Option<Weekdays>,
    /// `YYYY-MM-DD`: the habit's creation. The series starts at the earlier of it
    /// and the first entry.
    pub created: String,
    /// (`YYYY-MM-DD`, mark), in any order; the later of two on one day wins.
    pub entries: Vec<(String, Mark)>,
    pub today: String,
    /// The days to score, inclusive.
    pub from: String,
    pub to: String,
}

/// [`Request`] with days as numbers: what the `rules` WIT interface carries.
#[derive(Debug, Clone, PartialEq)]
pub struct DayRequest {
    pub kind: HabitKind,
    pub target: Option<Target>,
    pub frequency: Frequency,
    pub weekdays: Option<Weekdays>,
    pub created: Day,
    /// (day, mark), in any order; the later of two on one day wins.
    pub entries: Vec<(Day, Mark)>,
    pub today: Day,
    pub from: Day,
    pub to: Day,
}

/// A streak by day numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaySpan {
    pub start: Day,
    pub end: Day,
    pub length: u32,
}

/// [`Outcome`] by day numbers: one score per day from `from` to `to`.
#[derive(Debug, Clone, PartialEq)]
pub struct DayOutcome {
    pub scores: Vec<f64>,
    pub today_score: f64,
    pub current_streak: Option<DaySpan>,
    pub best_streaks: Vec<DaySpan>,
    pub window: window::Progress,
}

/// A streak with its dates written out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreakSpan {
    pub start: String,
    pub end: String,
    pub length: u32,
}

/// The answer for one habit.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// (`YYYY-MM-DD`, score in 0..1) for every day from `from` to `to`, oldest first.
    pub scores: Vec<(String, f64)>,
    pub today_score: f64,
    /// The streak that includes today, or that ended yesterday.
    pub current_streak: Option<StreakSpan>,
    /// Up to [`BEST_STREAKS`], longest first; among equal lengths the later first.
    pub best_streaks: Vec<StreakSpan>,
    pub window: window::Progress,
}

/// A request refused: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidInput {
    pub field: String,
    pub message: String,
}

impl fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for InvalidInput {}

fn refuse<T>(field: impl Into<String>, message: impl Into<String>) -> Result<T, InvalidInput> {
    Err(InvalidInput {
        field: field.into(),
        message: message.into(),
    })
}

fn day(field: impl Into<String>, text: &str) -> Result<Day, InvalidInput> {
    match date::parse(text) {
        Some(day) => Ok(day),
        None => refuse(field, format!("`{text}` is not a date YYYY-MM-DD")),
    }
}

/// Evaluates one habit under `policy`, dates as text.
pub fn evaluate(request: &Request, policy: Policy) -> Result<Outcome, InvalidInput> {
    let mut entries = Vec::with_capacity(request.entries.len());
    for (i, (text, mark)) in request.entries.iter().enumerate() {
        entries.push((day(format!("entries[{i}].date"), text)?, *mark));
    }
    let days = DayRequest {
        kind: request.kind,
        target: request.target,
        frequency: request.frequency,
        weekdays: request.weekdays,
        created: day("habit.created", &request.created)?,
        entries,
        today: day("today", &request.today)?,
        from: day("from", &request.from)?,
        to: day("to", &request.to)?,
    };
    let outcome = evaluate_days(&days, policy)?;
    let text = |span: DaySpan| StreakSpan {
        start: date::format(span.start),
        end: date::format(span.end),
        length: span.length,
    };
    Ok(Outcome {
        scores: (days.from..=days.to)
            .map(date::format)
            .zip(outcome.scores)
            .collect(),
        today_score: outcome.today_score,
        current_streak: outcome.current_streak.map(text),
        best_streaks: outcome.best_streaks.into_iter().map(text).collect(),
        window: outcome.window,
    })
}

/// `field` is formatted only when `day` is refused: this runs once per entry.
fn in_calendar(field: fmt::Arguments<'_>, day: Day) -> Result<Day, InvalidInput> {
    if (date::MIN_DAY..=date::MAX_DAY).contains(&day) {
        Ok(day)
    } else {
        refuse(
            field.to_string(),
            format!("day {day} is outside the years 1 to 9999"),
        )
    }
}

/// Evaluates one habit under `policy`, days as numbers.
pub fn evaluate_days(request: &DayRequest, policy: Policy) -> Result<DayOutcome, InvalidInput> {
    let frequency = match request.weekdays {
        Some(w) => Frequency {
            times: w.count(),
            days: 7,
        },
        None => request.frequency,
    };
    let mut habit = habit(request.kind, request.target, frequency)?;
    habit.weekdays = request.weekdays;
    let today = in_calendar(format_args!("today"), request.today)?;
    let from = in_calendar(format_args!("from"), request.from)?;
    let to = in_calendar(format_args!("to"), request.to)?;
    let created = in_calendar(format_args!("habit.created"), request.created)?;
    if from > to {
        return refuse(
            "from",
            format!("{} is after to ({})", date::format(from), date::format(to)),
        );
    }
    if to - from >= MAX_SPAN_DAYS {
        return refuse(
            "to",
            format!(
                "from {} to {} is more than {MAX_SPAN_DAYS} days",
                date::format(from),
                date::format(to)
            ),
        );
    }
    for (i, &(day, mark)) in request.entries.iter().enumerate() {
        in_calendar(format_args!("entries[{i}].day"), day)?;
        if let Mark::Value(v) = mark
            && !v.is_finite()
        {
            return refuse(
                format!("entries[{i}].value"),
                format!("{v} is not a number"),
            );
        }
    }
    let entries = &request.entries;

    let end = to.max(today);
    if let Some(first) = entries.iter().map(|&(d, _)| d).min()
        && end - first >= MAX_SPAN_DAYS
    {
        return refuse(
            "entries",
            format!(
                "the first entry ({}) is more than {MAX_SPAN_DAYS} days before {}",
                date::format(first),
                date::format(end)
            ),
        );
    }
    let history = History::new(&habit, entries, created, end, policy);
    let scores = Scores::of(&habit, &history);
    let all = streaks::all(&habit, &history, today);

    Ok(DayOutcome {
        scores: (from..=to).map(|d| scores.at(d)).collect(),
        today_score: scores.at(today),
        current_streak: streaks::current(&all, today).map(span),
        best_streaks: streaks::best(&all, BEST_STREAKS)
            .into_iter()
            .map(span)
            .collect(),
        window: window::progress(&habit, &history, today),
    })
}

fn habit(
    kind: HabitKind,
    target: Option<Target>,
    frequency: Frequency,
) -> Result<Habit, InvalidInput> {
    let Frequency { times, days } = frequency;
    if times == 0 {
        return refuse("habit.frequency.times", "must be at least 1");
    }
    if days == 0 {
        return refuse("habit.frequency.days", "must be at least 1");
    }
    if times > days {
        return refuse(
            "habit.frequency.times",
            format!("{times} times cannot fit in {days} days"),
        );
    }
    if days > MAX_PERIOD_DAYS {
        return refuse(
            "habit.frequency.days",
            format!("must be at most {MAX_PERIOD_DAYS}"),
        );
    }
    let kind = match (kind, target) {
        (HabitKind::Boolean, _) => Kind::Boolean,
        (HabitKind::Measurable, None) => {
            return refuse("habit.target", "a measurable habit needs a target");
        }
        (HabitKind::Measurable, Some(target)) => {
            if !target.value.is_finite() || target.value < 0.0 {
                return refuse(
                    "habit.target.value",
                    format!("{} must be a number of at least 0", target.value),
                );
            }
            Kind::Measurable(target)
        }
    };
    Ok(Habit::every(kind, frequency))
}

fn span(streak: streaks::Streak) -> DaySpan {
    DaySpan {
        start: streak.start,
        end: streak.end,
        length: u32::try_from(streak.length()).unwrap_or(u32::MAX),
    }
}
