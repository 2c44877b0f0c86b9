//! `rules-strict-streaks`: the bundled rules under a stricter [`Policy`]: a skipped
//! day counts as a miss, so scores take it like any other day without a check-in,
//! and streaks break on it. Everything else (the score's formula, rolling windows,
//! the intervals of non-daily habits, validation) is `habit-rules-engine`'s.

use habit_rules_engine::Policy;
use habit_rules_engine::bindings::exports::ham::plugin::rules::{
    Evaluation, EvaluationInput, Guest,
};

struct StrictRules;

impl Guest for StrictRules {
    fn evaluate(inputs: Vec<EvaluationInput>) -> Vec<Result<Evaluation, String>> {
        habit_rules_engine::evaluate_all(inputs, Policy::STRICT)
    }
}

habit_rules_engine::bindings::export!(StrictRules);
