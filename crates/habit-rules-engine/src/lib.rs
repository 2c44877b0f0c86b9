//! The habit rules as a library, for rule set components to build on. It
//! evaluates habits the way Loop Habit Tracker 2.x does: scores as an exponential
//! moving average of rolling-window completion, streaks that run through skips and
//! through the days a non-daily habit's window already covers, and the progress in
//! the current window. A [`Policy`] picks how skips count, which is what tells the
//! bundled `habit-rules` from `examples/rules-strict-streaks`.
//!
//! The rules are plain Rust, one concern a module: [`date`] (days as numbers, the
//! `civil-day` crate), [`habit`] (the types and the [`Policy`]), [`history`]
//! (entries as one check a day), [`score`], [`streaks`], [`window`], and
//! [`evaluation`] (validation and the answer, by day numbers or by dates).
//! [`scheduled_bindings`] is the `ham:plugin/scheduled-rules-plugin` world,
//! generated once here, and [`evaluate_scheduled`] answers its `evaluate` call, so
//! a rule set component is a few lines:
//!
//! ```ignore
//! use habit_rules_engine::scheduled_bindings::exports::ham::plugin::scheduled_rules::*;
//! struct Rules;
//! impl Guest for Rules {
//!     fn evaluate(inputs: Vec<EvaluationInput>) -> Vec<Result<Evaluation, String>> {
//!         habit_rules_engine::evaluate_scheduled(inputs, Policy::LOOP)
//!     }
//! }
//! habit_rules_engine::scheduled_bindings::export!(Rules);
//! ```
//!
//! A rule set against the first `rules` contract uses [`bindings`] and
//! [`evaluate_all`] the same way (as `examples/rules-strict-streaks` does).

pub use civil_day as date;
pub mod evaluation;
pub mod habit;
pub mod history;
pub mod score;
pub mod streaks;
pub mod window;

pub use evaluation::{
    DayOutcome, DayRequest, DaySpan, HabitKind, InvalidInput, Outcome, Request, StreakSpan,
    evaluate, evaluate_days,
};
pub use habit::{Frequency, Mark, Policy, SkipRule, Target, TargetType, Weekdays};

/// The `ham:plugin/rules-plugin` world: the first `rules` contract, for rule sets
/// built against it. The export macro is public (`bindings::export!`); a component
/// crate names its `Guest` type with it.
#[allow(
    unsafe_code,
    reason = "wit-bindgen's glue: the canonical ABI entry points are unsafe by nature"
)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "ham:plugin/rules-plugin",
        generate_all,
        pub_export_macro: true,
        default_bindings_module: "habit_rules_engine::bindings",
    });
}

/// The `ham:plugin/scheduled-rules-plugin` world: `scheduled-rules`, which knows
/// weekday schedules. Shares the `habits` and `log` types with [`bindings`];
/// `scheduled_bindings::export!` names a component's `Guest` type.
#[allow(
    unsafe_code,
    reason = "wit-bindgen's glue: the canonical ABI entry points are unsafe by nature"
)]
pub mod scheduled_bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "ham:plugin/scheduled-rules-plugin",
        with: {
            "ham:plugin/habits@0.1.0": crate::bindings::ham::plugin::habits,
            "ham:plugin/types@0.1.0": crate::bindings::ham::plugin::types,
            "ham:plugin/log@0.1.0": crate::bindings::ham::plugin::log,
        },
        generate_all,
        pub_export_macro: true,
        default_bindings_module: "habit_rules_engine::scheduled_bindings",
    });
}

use bindings::exports::ham::plugin::rules;
use bindings::ham::plugin::habits;
use date::Day;
use scheduled_bindings::exports::ham::plugin::scheduled_rules as scheduled;

/// Answers a `rules.evaluate` call (the first contract) under `policy`: one result
/// per input, in order; an input the rules refuse gets its reason, never a trap.
pub fn evaluate_all(
    inputs: Vec<rules::EvaluationInput>,
    policy: Policy,
) -> Vec<Result<rules::Evaluation, String>> {
    inputs
        .into_iter()
        .map(|input| {
            let entries = input.entries.into_iter().map(|e| (e.day, e.value));
            day_request(
                input.habit,
                None,
                entries,
                input.today,
                input.from,
                input.to,
            )
            .and_then(|request| evaluate_days(&request, policy))
            .map(|outcome| {
                let streak = |span| {
                    let (start, end, length) = streak(span);
                    rules::Streak { start, end, length }
                };
                rules::Evaluation {
                    scores: outcome.scores,
                    today_score: outcome.today_score,
                    current_streak: outcome.current_streak.map(streak),
                    best_streaks: outcome.best_streaks.into_iter().map(streak).collect(),
                    window: rules::WindowProgress {
                        done: outcome.window.done,
                        target: outcome.window.target,
                        days: outcome.window.days,
                    },
                }
            })
            .map_err(|e| e.to_string())
        })
        .collect()
}

/// Answers a `scheduled-rules.evaluate` call under `policy`, as [`evaluate_all`]
/// does, weekday schedules included.
pub fn evaluate_scheduled(
    inputs: Vec<scheduled::EvaluationInput>,
    policy: Policy,
) -> Vec<Result<scheduled::Evaluation, String>> {
    inputs
        .into_iter()
        .map(|input| {
            let weekdays = match input.schedule {
                scheduled::Schedule::Every => Ok(None),
                scheduled::Schedule::Weekdays(days) => {
                    Weekdays::from_iso(&days).map(Some).ok_or(InvalidInput {
                        field: "schedule.weekdays".into(),
                        message: format!(
                            "{days:?} is not a set of ISO weekdays 1 to 7 without repeats"
                        ),
                    })
                }
            };
            let entries = input.entries.into_iter().map(|e| (e.day, e.value));
            weekdays
                .and_then(|weekdays| {
                    day_request(
                        input.habit,
                        weekdays,
                        entries,
                        input.today,
                        input.from,
                        input.to,
                    )
                })
                .and_then(|request| evaluate_days(&request, policy))
                .map(|outcome| {
                    let streak = |span| {
                        let (start, end, length) = streak(span);
                        scheduled::Streak { start, end, length }
                    };
                    scheduled::Evaluation {
                        scores: outcome.scores,
                        today_score: outcome.today_score,
                        current_streak: outcome.current_streak.map(streak),
                        best_streaks: outcome.best_streaks.into_iter().map(streak).collect(),
                        window: scheduled::WindowProgress {
                            done: outcome.window.done,
                            target: outcome.window.target,
                            days: outcome.window.days,
                        },
                    }
                })
                .map_err(|e| e.to_string())
        })
        .collect()
}

fn day_request(
    habit: habits::Habit,
    weekdays: Option<Weekdays>,
    entries: impl Iterator<Item = (i32, habits::EntryValue)>,
    today: i32,
    from: i32,
    to: i32,
) -> Result<DayRequest, InvalidInput> {
    let Some(created) = date::parse(&habit.created) else {
        return Err(InvalidInput {
            field: "habit.created".into(),
            message: format!("`{}` is not a date YYYY-MM-DD", habit.created),
        });
    };
    Ok(DayRequest {
        kind: match habit.kind {
            habits::HabitKind::Boolean => HabitKind::Boolean,
            habits::HabitKind::Measurable => HabitKind::Measurable,
        },
        target: habit.target.map(|t| Target {
            value: t.value,
            kind: match t.type_ {
                habits::TargetType::AtLeast => TargetType::AtLeast,
                habits::TargetType::AtMost => TargetType::AtMost,
            },
        }),
        frequency: Frequency {
            times: habit.frequency.times,
            days: habit.frequency.days,
        },
        weekdays,
        created,
        entries: entries
            .map(|(day, value)| {
                let mark = match value {
                    habits::EntryValue::Done => Mark::Done,
                    habits::EntryValue::Skipped => Mark::Skipped,
                    habits::EntryValue::Value(v) => Mark::Value(v),
                };
                (Day::from(day), mark)
            })
            .collect(),
        today: Day::from(today),
        from: Day::from(from),
        to: Day::from(to),
    })
}

/// A span as (start, end, length). Spans come from days the input gave as `s32`,
/// so they fit back.
fn streak(span: DaySpan) -> (i32, i32, u32) {
    let day = |d: Day| i32::try_from(d).unwrap_or(if d < 0 { i32::MIN } else { i32::MAX });
    (day(span.start), day(span.end), span.length)
}
