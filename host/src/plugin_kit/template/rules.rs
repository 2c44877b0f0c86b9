//! A HAM rule set: it judges habits for every stats request (scores, streaks and
//! progress), exporting `ham:plugin/scheduled-rules`. It must be pure: the same
//! input gives the same answer.
//!
//! The rules here are simple on purpose, a start to make your own:
//!
//! - a day is due every day from the habit's creation on, or on the listed ISO
//!   weekdays of a weekday habit;
//! - a due day is done with a `done` entry, or a value that meets the target
//!   (any value above 0 without one); a skip neither counts nor breaks a streak,
//!   and neither does today while it is not done yet;
//! - a day's score is the share of the due days of the 7 days ending that day
//!   that were done (skipped days, and today not done yet, left out);
//! - a streak runs from a done due day to the last done due day with no due day
//!   missed between;
//! - the window counts the days done in the last `frequency.days` days against
//!   `frequency.times`.
//!
//! Days are numbers (days since 1970-01-01). The host checks every answer: one
//! score in 0..1 per day of `from..=to`, streaks whose `length` is their calendar
//! days, a window with `days` above 0.

wit_bindgen::generate!({
    path: "wit",
    world: "ham:plugin/scheduled-rules-plugin",
    generate_all,
});

use std::collections::BTreeMap;

use exports::ham::plugin::scheduled_rules::{
    Evaluation, EvaluationInput, Guest, Schedule, Streak, WindowProgress,
};
use ham::plugin::habits::{EntryValue, HabitKind, TargetType};

struct Rules;

impl Guest for Rules {
    fn evaluate(inputs: Vec<EvaluationInput>) -> Vec<Result<Evaluation, String>> {
        inputs.iter().map(evaluate_one).collect()
    }
}

export!(Rules);

/// How one due day went.
#[derive(Clone, Copy, PartialEq)]
enum Mark {
    Done,
    Skipped,
    Missed,
}

fn evaluate_one(input: &EvaluationInput) -> Result<Evaluation, String> {
    if input.from > input.to {
        return Err(format!("from {} is after to {}", input.from, input.to));
    }
    let entries: BTreeMap<i32, &EntryValue> =
        input.entries.iter().map(|e| (e.day, &e.value)).collect();
    // The series starts at the earlier of the habit's creation and its first entry.
    let first_entry = input.entries.first().map(|e| e.day);
    let start = match (day_of(&input.habit.created), first_entry) {
        (Some(created), Some(entry)) => created.min(entry),
        (created, entry) => created.or(entry).unwrap_or(input.today),
    };
    let due = |day: i32| {
        day >= start
            && match &input.schedule {
                Schedule::Every => true,
                Schedule::Weekdays(days) => days.contains(&iso_weekday(day)),
            }
    };
    let mark = |day: i32| match entries.get(&day) {
        Some(EntryValue::Done) => Mark::Done,
        Some(EntryValue::Value(v)) if meets_target(input, *v) => Mark::Done,
        Some(EntryValue::Skipped) => Mark::Skipped,
        // Today is still open.
        _ if day == input.today => Mark::Skipped,
        _ => Mark::Missed,
    };

    let score = |day: i32| {
        let (mut done, mut counted) = (0u32, 0u32);
        for d in (day - 6..=day).filter(|d| due(*d)) {
            match mark(d) {
                Mark::Done => (done, counted) = (done + 1, counted + 1),
                Mark::Missed => counted += 1,
                Mark::Skipped => {}
            }
        }
        if counted == 0 {
            0.0
        } else {
            f64::from(done) / f64::from(counted)
        }
    };
    let scores = (input.from..=input.to).map(score).collect();

    // Streaks up to today.
    let mut streaks = Vec::new();
    let mut open: Option<(i32, i32)> = None;
    for day in (start..=input.today).filter(|d| due(*d)) {
        match mark(day) {
            Mark::Done => open = Some((open.map_or(day, |(first, _)| first), day)),
            Mark::Skipped => {}
            Mark::Missed => streaks.extend(open.take()),
        }
    }
    let streak = |(start, end): (i32, i32)| Streak {
        start,
        end,
        length: u32::try_from(end - start + 1).unwrap_or(0),
    };
    let current_streak = open.map(streak);
    streaks.extend(open);
    let mut best_streaks: Vec<Streak> = streaks.into_iter().map(streak).collect();
    best_streaks.sort_by(|a, b| b.length.cmp(&a.length).then(b.end.cmp(&a.end)));
    best_streaks.truncate(10);

    let days = input.habit.frequency.days.max(1);
    let window_start = input.today - i32::try_from(days).unwrap_or(1) + 1;
    let done = (window_start..=input.today)
        .filter(|d| mark(*d) == Mark::Done)
        .count();
    Ok(Evaluation {
        scores,
        today_score: score(input.today),
        current_streak,
        best_streaks,
        window: WindowProgress {
            done: done as f64,
            target: f64::from(input.habit.frequency.times),
            days,
        },
    })
}

/// Whether a measurable habit's value counts as done.
fn meets_target(input: &EvaluationInput, value: f64) -> bool {
    match (&input.habit.kind, &input.habit.target) {
        (HabitKind::Measurable, Some(target)) => match target.type_ {
            TargetType::AtLeast => value >= target.value,
            TargetType::AtMost => value <= target.value,
        },
        _ => value > 0.0,
    }
}

/// A `YYYY-MM-DD` date as days since 1970-01-01 (Howard Hinnant's
/// `days_from_civil`); none when it is not a date.
fn day_of(date: &str) -> Option<i32> {
    let mut parts = date.splitn(3, '-').map(|p| p.parse::<i32>().ok());
    let (y, m, d) = (parts.next()??, parts.next()??, parts.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// The ISO weekday (1 = Monday to 7 = Sunday) of a day number; day 0,
/// 1970-01-01, was a Thursday.
fn iso_weekday(day: i32) -> u8 {
    (day + 3).rem_euclid(7) as u8 + 1
}
