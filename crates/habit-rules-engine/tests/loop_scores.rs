//! Loop Habit Tracker's own expected scores (`testdata/loop_scores.json`, from its
//! `ScoreListTest.kt`) replayed through [`habit_rules_engine::evaluate`] on several
//! "todays", each within 1e-6 as Loop checks them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

use habit_rules_engine::{
    Frequency, HabitKind, Mark, Policy, Request, Target, TargetType, date, evaluate,
};
use serde_json::Value;

const TOLERANCE: f64 = 1e-6;

fn cases() -> Vec<Value> {
    let text = include_str!("../testdata/loop_scores.json");
    serde_json::from_str::<Value>(text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn request(case: &Value, today: date::Day) -> Request {
    let habit = &case["habit"];
    let kind = match habit["kind"].as_str().unwrap() {
        "boolean" => HabitKind::Boolean,
        "measurable" => HabitKind::Measurable,
        other => panic!("kind {other}"),
    };
    let target = habit["target"].as_object().map(|t| Target {
        value: t["value"].as_f64().unwrap(),
        kind: match t["type"].as_str().unwrap() {
            "at_least" => TargetType::AtLeast,
            "at_most" => TargetType::AtMost,
            other => panic!("target type {other}"),
        },
    });
    let frequency = Frequency {
        times: habit["frequency"]["times"].as_u64().unwrap() as u32,
        days: habit["frequency"]["days"].as_u64().unwrap() as u32,
    };
    let entries = case["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let day = today + e["day"].as_i64().unwrap();
            let mark = match e["status"].as_str() {
                Some("done") => Mark::Done,
                Some("skipped") => Mark::Skipped,
                Some(other) => panic!("status {other}"),
                None => Mark::Value(e["value"].as_f64().unwrap()),
            };
            (date::format(day), mark)
        })
        .collect();
    let expected_days = case["expected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["day"].as_i64().unwrap());
    let oldest = expected_days.clone().min().unwrap();
    let newest = expected_days.max().unwrap();
    Request {
        kind,
        target,
        frequency,
        weekdays: None,
        created: date::format(today),
        entries,
        today: date::format(today),
        from: date::format(today + oldest),
        to: date::format(today + newest),
    }
}

fn replay_on(today_text: &str) -> usize {
    let today = date::parse(today_text).unwrap();
    let mut checked = 0;
    for case in cases() {
        let name = case["name"].as_str().unwrap();
        let request = request(&case, today);
        let outcome = evaluate(&request, Policy::LOOP).unwrap_or_else(|e| panic!("{name}: {e}"));
        let from = date::parse(&request.from).unwrap();
        for expected in case["expected"].as_array().unwrap() {
            let day = today + expected["day"].as_i64().unwrap();
            let want = expected["value"].as_f64().unwrap();
            let (date_text, got) = &outcome.scores[(day - from) as usize];
            assert_eq!(*date_text, date::format(day));
            assert!(
                (got - want).abs() <= TOLERANCE,
                "{name} on {today_text}, day {}: got {got}, Loop says {want}",
                expected["day"]
            );
            if day == today {
                assert_eq!(outcome.today_score, *got, "{name}");
            }
            checked += 1;
        }
    }
    checked
}

#[test]
fn every_loop_case_within_1e6() {
    // 39 cases, 155 expected values in all.
    assert_eq!(replay_on("2026-11-24"), 155);
}

#[test]
fn the_same_on_other_todays() {
    for today in ["2024-02-29", "2023-01-01", "2000-03-01", "2099-12-31"] {
        replay_on(today);
    }
}

#[test]
fn the_data_covers_every_loop_test_group() {
    let names: Vec<String> = cases()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    for group in ["YesNo ", "AtLeast ", "AtLeastWithSkip ", "AtMost "] {
        assert!(names.iter().any(|n| n.starts_with(group)), "{group}");
    }
    assert_eq!(names.len(), 39);
}
