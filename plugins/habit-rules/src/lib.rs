//! `habit-rules`: the bundled rule set. It exports `ham:plugin/scheduled-rules`
//! and judges habits the way Loop Habit Tracker 2.x does ([`Policy::LOOP`]), with
//! weekday schedules beside Loop's `times` in `days`; the rules themselves live in
//! the `habit-rules-engine` crate, shared with other rule sets.

use habit_rules_engine::Policy;
use habit_rules_engine::scheduled_bindings::exports::ham::plugin::scheduled_rules::{
    Evaluation, EvaluationInput, Guest,
};

struct LoopRules;

impl Guest for LoopRules {
    fn evaluate(inputs: Vec<EvaluationInput>) -> Vec<Result<Evaluation, String>> {
        habit_rules_engine::evaluate_scheduled(inputs, Policy::LOOP)
    }
}

habit_rules_engine::scheduled_bindings::export!(LoopRules);
