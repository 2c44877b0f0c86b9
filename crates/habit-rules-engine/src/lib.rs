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
//! [`evaluation`] (validation and the answer, by day numbers or by dates). [`bindings`] is the `ham:plugin/rules-plugin`
//! world, generated once here, and [`evaluate_all`] answers its `evaluate` call, so
//! a rule set component is a few lines:
//!
//! ```ignore
//! struct Rules;
//! impl habit_rules_engine::bindings::exports::ham::plugin::rules::Guest for Rules {
//!     fn evaluate(inputs: Vec<EvaluationInput>) -> Vec<Result<Evaluation, String>> {
//!         habit_rules_engine::evaluate_all(inputs, Policy::LOOP)
//!     }
//! }
//! habit_rules_engine::bindings::export!(Rules);
//! ```

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
pub use habit::{Frequency, Mark, Policy, SkipRule, Target, TargetType};

/// The `ham:plugin/rules-plugin` world. The export macro is public
/// (`bindings::export!`); a component crate names its `Guest` type with it.
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

use bindings::exports::ham::plugin::rules::{Evaluation, EvaluationInput, Streak, WindowProgress};
use bindings::ham::plugin::habits;
use date::Day;

/// Answers a `rules.evaluate` call under `policy`: one result per input, in order;
/// an input the rules refuse gets its reason, never a trap.
pub fn evaluate_all(
    inputs: Vec<EvaluationInput>,
    policy: Policy,
) -> Vec<Result<Evaluation, String>> {
    inputs
        .into_iter()
        .map(|input| {
            request(input)
                .and_then(|request| evaluate_days(&request, policy))
                .map(evaluation)
                .map_err(|e| e.to_string())
        })
        .collect()
}

fn request(input: EvaluationInput) -> Result<DayRequest, InvalidInput> {
    let habit = input.habit;
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
        created,
        entries: input
            .entries
            .into_iter()
            .map(|e| {
                let mark = match e.value {
                    habits::EntryValue::Done => Mark::Done,
                    habits::EntryValue::Skipped => Mark::Skipped,
                    habits::EntryValue::Value(v) => Mark::Value(v),
                };
                (Day::from(e.day), mark)
            })
            .collect(),
        today: Day::from(input.today),
        from: Day::from(input.from),
        to: Day::from(input.to),
    })
}

fn evaluation(outcome: DayOutcome) -> Evaluation {
    Evaluation {
        scores: outcome.scores,
        today_score: outcome.today_score,
        current_streak: outcome.current_streak.map(streak),
        best_streaks: outcome.best_streaks.into_iter().map(streak).collect(),
        window: WindowProgress {
            done: outcome.window.done,
            target: outcome.window.target,
            days: outcome.window.days,
        },
    }
}

/// Spans come from days the input gave as `s32`, so they fit back.
fn streak(span: DaySpan) -> Streak {
    let day = |d: Day| i32::try_from(d).unwrap_or(if d < 0 { i32::MIN } else { i32::MAX });
    Streak {
        start: day(span.start),
        end: day(span.end),
        length: span.length,
    }
}
