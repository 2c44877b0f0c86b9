//! What a user sees from one evaluation: streaks, window progress, the start of the
//! series, the strict policy, and the refusal of a bad request (never a panic).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

use habit_rules_engine::{
    Frequency, HabitKind, Mark, Policy, Request, StreakSpan, Target, TargetType, evaluate,
};

fn daily_boolean(entries: &[(&str, Mark)]) -> Request {
    Request {
        kind: HabitKind::Boolean,
        target: None,
        frequency: Frequency { times: 1, days: 1 },
        weekdays: None,
        created: "2026-03-01".to_string(),
        entries: entries.iter().map(|(d, m)| (d.to_string(), *m)).collect(),
        today: "2026-03-10".to_string(),
        from: "2026-03-08".to_string(),
        to: "2026-03-10".to_string(),
    }
}

fn span(start: &str, end: &str, length: u32) -> StreakSpan {
    StreakSpan {
        start: start.to_string(),
        end: end.to_string(),
        length,
    }
}

#[test]
fn current_and_best_streaks_with_a_skip() {
    let request = daily_boolean(&[
        ("2026-03-02", Mark::Done),
        ("2026-03-03", Mark::Done),
        ("2026-03-05", Mark::Done),
        ("2026-03-06", Mark::Skipped),
        ("2026-03-07", Mark::Done),
        ("2026-03-08", Mark::Done),
        ("2026-03-09", Mark::Done),
    ]);
    let loop_rules = evaluate(&request, Policy::LOOP).unwrap();
    // Today (the 10th) is still open: the streak that ended yesterday is current.
    assert_eq!(
        loop_rules.current_streak,
        Some(span("2026-03-05", "2026-03-09", 5))
    );
    assert_eq!(
        loop_rules.best_streaks,
        [
            span("2026-03-05", "2026-03-09", 5),
            span("2026-03-02", "2026-03-03", 2)
        ]
    );
    let strict = evaluate(&request, Policy::STRICT).unwrap();
    assert_eq!(
        strict.current_streak,
        Some(span("2026-03-07", "2026-03-09", 3))
    );
    assert_eq!(
        strict.best_streaks,
        [
            span("2026-03-07", "2026-03-09", 3),
            span("2026-03-02", "2026-03-03", 2),
            span("2026-03-05", "2026-03-05", 1),
        ]
    );
    // The strict rules lower the score on the skip; Loop's keep it.
    assert!(strict.today_score < loop_rules.today_score);
    assert_eq!(loop_rules.scores.len(), 3);
    assert_eq!(loop_rules.scores[0].0, "2026-03-08");
    assert_eq!(loop_rules.scores[2].1, loop_rules.today_score);
}

#[test]
fn no_current_streak_after_a_missed_yesterday() {
    let request = daily_boolean(&[("2026-03-08", Mark::Done)]);
    let outcome = evaluate(&request, Policy::LOOP).unwrap();
    assert_eq!(outcome.current_streak, None);
    assert_eq!(outcome.best_streaks, [span("2026-03-08", "2026-03-08", 1)]);
}

#[test]
fn a_weekly_habit_done_three_days_ago_has_a_streak_through_today() {
    let mut request = daily_boolean(&[("2026-03-07", Mark::Done)]);
    request.frequency = Frequency { times: 1, days: 7 };
    let outcome = evaluate(&request, Policy::LOOP).unwrap();
    assert_eq!(
        outcome.current_streak,
        Some(span("2026-03-07", "2026-03-10", 4))
    );
    assert_eq!(
        (
            outcome.window.done,
            outcome.window.target,
            outcome.window.days
        ),
        (1.0, 1.0, 7)
    );
}

#[test]
fn measurable_window_and_the_series_start_at_creation() {
    let request = Request {
        kind: HabitKind::Measurable,
        target: Some(Target {
            value: 3.0,
            kind: TargetType::AtMost,
        }),
        frequency: Frequency { times: 1, days: 7 },
        weekdays: None,
        created: "2026-03-05".to_string(),
        entries: vec![
            ("2026-03-02".to_string(), Mark::Value(1.0)), // outside the window
            ("2026-03-08".to_string(), Mark::Value(1.5)),
            ("2026-03-10".to_string(), Mark::Value(2.0)),
        ],
        today: "2026-03-10".to_string(),
        from: "2026-03-01".to_string(),
        to: "2026-03-03".to_string(),
    };
    let outcome = evaluate(&request, Policy::LOOP).unwrap();
    assert_eq!(
        (
            outcome.window.done,
            outcome.window.target,
            outcome.window.days
        ),
        (3.5, 3.0, 7)
    );
    // The series starts at the first entry (before creation): 0 before it, and an
    // at-most habit starts from 1.
    assert_eq!(outcome.scores[0], ("2026-03-01".to_string(), 0.0));
    assert_eq!(outcome.scores[1], ("2026-03-02".to_string(), 1.0));
    assert!(outcome.today_score < 1.0);
}

#[test]
fn an_at_most_habit_is_on_target_from_its_creation() {
    let request = Request {
        kind: HabitKind::Measurable,
        target: Some(Target {
            value: 2.0,
            kind: TargetType::AtMost,
        }),
        frequency: Frequency { times: 1, days: 1 },
        weekdays: None,
        created: "2026-03-05".to_string(),
        entries: vec![],
        today: "2026-03-10".to_string(),
        from: "2026-03-04".to_string(),
        to: "2026-03-05".to_string(),
    };
    let outcome = evaluate(&request, Policy::LOOP).unwrap();
    assert_eq!(outcome.scores[0].1, 0.0);
    assert_eq!(outcome.scores[1].1, 1.0);
    assert_eq!(outcome.today_score, 1.0);
    assert_eq!(outcome.current_streak, None);
}

/// A change that spoils a good request.
type Change = Box<dyn Fn(&mut Request)>;

#[test]
fn a_bad_request_is_refused_with_the_field_named() {
    let good = daily_boolean(&[("2026-03-08", Mark::Done)]);
    let cases: Vec<(Change, &str)> = vec![
        (
            Box::new(|r| r.today = "2026-02-30".into()),
            "today: `2026-02-30` is not a date YYYY-MM-DD",
        ),
        (
            Box::new(|r| r.from = "yesterday".into()),
            "from: `yesterday` is not a date YYYY-MM-DD",
        ),
        (
            Box::new(|r| r.to = String::new()),
            "to: `` is not a date YYYY-MM-DD",
        ),
        (
            Box::new(|r| r.created = "2026-3-1".into()),
            "habit.created: `2026-3-1` is not a date YYYY-MM-DD",
        ),
        (
            Box::new(|r| r.entries.push(("2026-13-01".into(), Mark::Done))),
            "entries[1].date: `2026-13-01` is not a date YYYY-MM-DD",
        ),
        (
            Box::new(|r| r.entries.push(("2026-03-09".into(), Mark::Value(f64::NAN)))),
            "entries[1].value: NaN is not a number",
        ),
        (
            Box::new(|r| r.from = "2026-03-11".into()),
            "from: 2026-03-11 is after to (2026-03-10)",
        ),
        (
            Box::new(|r| r.from = "1800-01-01".into()),
            "to: from 1800-01-01 to 2026-03-10 is more than 73050 days",
        ),
        (
            Box::new(|r| r.entries.push(("1800-01-01".into(), Mark::Done))),
            "entries: the first entry (1800-01-01) is more than 73050 days before 2026-03-10",
        ),
        (
            Box::new(|r| r.frequency.times = 0),
            "habit.frequency.times: must be at least 1",
        ),
        (
            Box::new(|r| r.frequency.days = 0),
            "habit.frequency.days: must be at least 1",
        ),
        (
            Box::new(|r| r.frequency = Frequency { times: 8, days: 7 }),
            "habit.frequency.times: 8 times cannot fit in 7 days",
        ),
        (
            Box::new(|r| {
                r.frequency = Frequency {
                    times: 1,
                    days: 400,
                }
            }),
            "habit.frequency.days: must be at most 366",
        ),
        (
            Box::new(|r| r.kind = HabitKind::Measurable),
            "habit.target: a measurable habit needs a target",
        ),
        (
            Box::new(|r| {
                r.kind = HabitKind::Measurable;
                r.target = Some(Target {
                    value: -1.0,
                    kind: TargetType::AtLeast,
                });
            }),
            "habit.target.value: -1 must be a number of at least 0",
        ),
    ];
    for (change, message) in cases {
        let mut request = good.clone();
        change(&mut request);
        for policy in [Policy::LOOP, Policy::STRICT] {
            let refused = evaluate(&request, policy).unwrap_err();
            assert_eq!(refused.to_string(), message);
        }
    }
    assert!(evaluate(&good, Policy::LOOP).is_ok());
}

#[test]
fn extreme_but_valid_dates_do_not_panic() {
    let mut request = daily_boolean(&[("0001-01-01", Mark::Done), ("9999-12-31", Mark::Done)]);
    request.created = "0001-01-01".into();
    request.today = "0001-01-02".into();
    request.from = "0001-01-01".into();
    request.to = "0001-01-02".into();
    let outcome = evaluate(&request, Policy::LOOP).unwrap();
    assert_eq!(
        outcome.current_streak,
        Some(span("0001-01-01", "0001-01-01", 1))
    );

    // A habit created in year 1 with no entries costs nothing.
    let mut request = daily_boolean(&[]);
    request.created = "0001-01-01".into();
    request.today = "9999-12-31".into();
    request.from = "9999-12-01".into();
    request.to = "9999-12-31".into();
    let outcome = evaluate(&request, Policy::LOOP).unwrap();
    assert_eq!(outcome.today_score, 0.0);
}
