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

use exports::ham::plugin::rules::{DayScore, Evaluation, EvaluationInput, Guest, WindowProgress};

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
                let mut scores: Vec<DayScore> = days(&input.from, &input.to)
                    .into_iter()
                    .map(|date| DayScore { date, value })
                    .collect();
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

/// The dates from `from` to `to`, inclusive (proleptic Gregorian).
fn days(from: &str, to: &str) -> Vec<String> {
    let (Some(mut day), Some(last)) = (day_number(from), day_number(to)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    while day <= last {
        out.push(date_of(day));
        day += 1;
    }
    out
}

fn day_number(date: &str) -> Option<i64> {
    let mut parts = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (parts.next()??, parts.next()??, parts.next()??);
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

fn date_of(z: i64) -> String {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

export!(BadRules);
