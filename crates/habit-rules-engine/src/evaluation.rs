//! One habit's evaluation, end to end: check the [`Request`] (dates as the WIT
//! gives them, `YYYY-MM-DD`), build the history under a [`Policy`], and answer
//! with scores, streaks and window progress in the same shape the WIT wants.
//!
//! This is the whole contract of a rule set short of the wit-bindgen glue, so a
//! component's adapter only copies fields. Input is untrusted: anything malformed
//! is an [`InvalidInput`] naming the field, never a panic; sizes are bounded so a
//! request cannot exhaust the component's memory.

use std::fmt;

use crate::date::{self, Day};
use crate::habit::{Frequency, Habit, Kind, Mark, Policy, Target};
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

/// Evaluates one habit under `policy`.
pub fn evaluate(request: &Request, policy: Policy) -> Result<Outcome, InvalidInput> {
    let habit = habit(request)?;
    let today = day("today", &request.today)?;
    let from = day("from", &request.from)?;
    let to = day("to", &request.to)?;
    let created = day("habit.created", &request.created)?;
    if from > to {
        return refuse(
            "from",
            format!("{} is after to ({})", request.from, request.to),
        );
    }
    if to - from >= MAX_SPAN_DAYS {
        return refuse(
            "to",
            format!(
                "from {} to {} is more than {MAX_SPAN_DAYS} days",
                request.from, request.to
            ),
        );
    }
    let mut entries = Vec::with_capacity(request.entries.len());
    for (i, (text, mark)) in request.entries.iter().enumerate() {
        if let Mark::Value(v) = mark
            && !v.is_finite()
        {
            return refuse(
                format!("entries[{i}].value"),
                format!("{v} is not a number"),
            );
        }
        entries.push((day(format!("entries[{i}].date"), text)?, *mark));
    }

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
    let history = History::new(&habit, &entries, created, end, policy);
    let scores = Scores::of(&habit, &history);
    let all = streaks::all(&habit, &history, today);

    Ok(Outcome {
        scores: (from..=to)
            .map(|d| (date::format(d), scores.at(d)))
            .collect(),
        today_score: scores.at(today),
        current_streak: streaks::current(&all, today).map(span),
        best_streaks: streaks::best(&all, BEST_STREAKS)
            .into_iter()
            .map(span)
            .collect(),
        window: window::progress(&habit, &history, today),
    })
}

fn habit(request: &Request) -> Result<Habit, InvalidInput> {
    let Frequency { times, days } = request.frequency;
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
    let kind = match (request.kind, request.target) {
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
    Ok(Habit {
        kind,
        frequency: request.frequency,
    })
}

fn span(streak: streaks::Streak) -> StreakSpan {
    StreakSpan {
        start: date::format(streak.start),
        end: date::format(streak.end),
        length: u32::try_from(streak.length()).unwrap_or(u32::MAX),
    }
}
