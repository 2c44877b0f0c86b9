//! A rule set that misbehaves as its `mode` variable says, so tests can check how
//! the host treats a bad rules plugin:
//!
//! - `out-of-range`: every score is 1.5
//! - `wrong-days`: one score too few
//! - `refuse`: refuses every habit
//! - `trap`: panics
//! - `spin`: loops forever (runs out of fuel, or hits the deadline)
//! - anything else: a constant, valid answer (every score 0.5)

wit_bindgen::generate!({
    path: "../../../wit",
    inline: "
        package test:bad-rules;
        world bad-rules {
            import ham:plugin/config@0.1.0;
            export ham:plugin/rules@0.1.0;
        }
    ",
    world: "test:bad-rules/bad-rules",
    generate_all,
});

use exports::ham::plugin::rules::{Evaluation, EvaluationInput, Guest, WindowProgress};

struct BadRules;

impl Guest for BadRules {
    fn evaluate(inputs: Vec<EvaluationInput>) -> Vec<Result<Evaluation, String>> {
        let mode = ham::plugin::config::get("mode")
            .ok()
            .flatten()
            .unwrap_or_default();
        match mode.as_str() {
            "trap" => panic!("a rules plugin that traps"),
            "spin" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            _ => {}
        }
        inputs
            .into_iter()
            .map(|input| {
                if mode == "refuse" {
                    return Err("this rule set refuses everything".to_string());
                }
                let value = if mode == "out-of-range" { 1.5 } else { 0.5 };
                let days =
                    usize::try_from(i64::from(input.to) - i64::from(input.from) + 1).unwrap_or(0);
                let mut scores = vec![value; days];
                if mode == "wrong-days" {
                    scores.pop();
                }
                Ok(Evaluation {
                    scores,
                    today_score: value,
                    current_streak: None,
                    best_streaks: Vec::new(),
                    window: WindowProgress {
                        done: 0.0,
                        target: 1.0,
                        days: 1,
                    },
                })
            })
            .collect()
    }
}

export!(BadRules);
