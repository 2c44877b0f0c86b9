//! Weekday schedules ("gym on Monday, Wednesday and Friday"): the days off neither
//! build nor break a streak and leave the score as it was; the due days move it so
//! that eight weeks of every due day score as high as eight weeks of a daily habit.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

use habit_rules_engine::{
    Frequency, HabitKind, Mark, Policy, Request, StreakSpan, Target, TargetType, Weekdays, date,
    evaluate,
};

/// 2026-10-05 is a Monday; eight weeks later, 2026-11-27, is the eighth Friday.
const FIRST_MONDAY: &str = "2026-10-05";
const EIGHTH_FRIDAY: &str = "2026-11-27";

fn mon_wed_fri(entries: Vec<(String, Mark)>, today: &str) -> Request {
    Request {
        kind: HabitKind::Boolean,
        target: None,
        // Ignored for a weekday habit: the count of its weekdays stands for it.
        frequency: Frequency { times: 1, days: 1 },
        weekdays: Weekdays::from_iso(&[1, 3, 5]),
        created: FIRST_MONDAY.to_string(),
        entries,
        today: today.to_string(),
        from: FIRST_MONDAY.to_string(),
        to: today.to_string(),
    }
}

/// Every Monday, Wednesday and Friday from the first Monday to `last`.
fn every_due_day(last: &str) -> Vec<(String, Mark)> {
    let (first, last) = (
        date::parse(FIRST_MONDAY).unwrap(),
        date::parse(last).unwrap(),
    );
    (first..=last)
        .filter(|&d| Weekdays::from_iso(&[1, 3, 5]).unwrap().contains(d))
        .map(|d| (date::format(d), Mark::Done))
        .collect()
}

#[test]
fn eight_weeks_of_every_due_day_score_over_0_9_with_one_streak_across_them() {
    let entries = every_due_day(EIGHTH_FRIDAY);
    assert_eq!(entries.len(), 24);
    let outcome = evaluate(&mon_wed_fri(entries, EIGHTH_FRIDAY), Policy::LOOP).unwrap();
    assert!(outcome.today_score >= 0.9, "{}", outcome.today_score);
    // As far as a daily habit done every day for the same eight weeks gets.
    let daily = 1.0 - 0.5f64.powf(56.0 / 13.0);
    assert!(
        (outcome.today_score - daily).abs() < 0.01,
        "{} vs {daily}",
        outcome.today_score
    );
    // Calendar days from the first Monday to today, days off included.
    let streak = StreakSpan {
        start: FIRST_MONDAY.to_string(),
        end: EIGHTH_FRIDAY.to_string(),
        length: 54,
    };
    assert_eq!(outcome.current_streak, Some(streak.clone()));
    assert_eq!(outcome.best_streaks, vec![streak]);
    // The week ending today holds its three due days, all done.
    assert_eq!(
        (
            outcome.window.done,
            outcome.window.target,
            outcome.window.days
        ),
        (3.0, 3.0, 7)
    );
}

#[test]
fn days_off_leave_the_score_and_carry_the_streak_to_today() {
    // Today is the Sunday after the eighth Friday: two days off since.
    let outcome = evaluate(
        &mon_wed_fri(every_due_day(EIGHTH_FRIDAY), "2026-11-29"),
        Policy::LOOP,
    )
    .unwrap();
    let scores: Vec<f64> = outcome.scores.iter().map(|(_, s)| *s).collect();
    let n = scores.len();
    assert_eq!(
        scores[n - 1],
        scores[n - 3],
        "Saturday and Sunday keep Friday's score"
    );
    let streak = outcome.current_streak.unwrap();
    assert_eq!(
        (streak.start.as_str(), streak.end.as_str(), streak.length),
        (FIRST_MONDAY, "2026-11-29", 56)
    );

    // Monday, due and not yet done, does not end it either: today is still open.
    let outcome = evaluate(
        &mon_wed_fri(every_due_day(EIGHTH_FRIDAY), "2026-11-30"),
        Policy::LOOP,
    )
    .unwrap();
    assert_eq!(outcome.current_streak.unwrap().end, "2026-11-29");
}

#[test]
fn a_missed_due_day_ends_the_streak_at_the_last_day_done() {
    let mut entries = every_due_day(EIGHTH_FRIDAY);
    // Wednesday 2026-11-18 missed: the streak before ends on Monday 2026-11-16,
    // not on the Tuesday off after it, and the next starts on Friday 2026-11-20.
    entries.retain(|(d, _)| d != "2026-11-18");
    let outcome = evaluate(&mon_wed_fri(entries, EIGHTH_FRIDAY), Policy::LOOP).unwrap();
    let ends: Vec<(&str, &str)> = outcome
        .best_streaks
        .iter()
        .map(|s| (s.start.as_str(), s.end.as_str()))
        .collect();
    assert_eq!(
        ends,
        [(FIRST_MONDAY, "2026-11-16"), ("2026-11-20", EIGHTH_FRIDAY)]
    );
}

#[test]
fn a_habit_never_done_scores_zero_and_days_off_make_no_streak() {
    let outcome = evaluate(&mon_wed_fri(Vec::new(), EIGHTH_FRIDAY), Policy::LOOP).unwrap();
    assert!(outcome.today_score < 0.1);
    assert_eq!(outcome.today_score, 0.0);
    assert_eq!(outcome.current_streak, None);
    assert!(outcome.best_streaks.is_empty());

    // Only a skip on a Saturday: still nothing (a day off is off, skipped or not).
    let saturday = vec![("2026-11-28".to_string(), Mark::Skipped)];
    let outcome = evaluate(&mon_wed_fri(saturday, "2026-11-28"), Policy::STRICT).unwrap();
    assert_eq!(outcome.current_streak, None);
    assert_eq!(outcome.today_score, 0.0);
}

#[test]
fn a_measurable_weekday_habit_is_held_to_its_target_on_each_due_day() {
    // 30 minutes of yoga on Tuesdays and Thursdays.
    let tue_thu = Weekdays::from_iso(&[2, 4]).unwrap();
    let entries: Vec<(String, Mark)> = (date::parse("2026-11-02").unwrap()
        ..=date::parse("2026-11-29").unwrap())
        .filter(|&d| tue_thu.contains(d))
        .map(|d| (date::format(d), Mark::Value(30.0)))
        .collect();
    let request = Request {
        kind: HabitKind::Measurable,
        target: Some(Target {
            value: 30.0,
            kind: TargetType::AtLeast,
        }),
        frequency: Frequency { times: 1, days: 1 },
        weekdays: Some(tue_thu),
        created: "2026-11-02".to_string(),
        entries,
        today: "2026-11-29".to_string(),
        from: "2026-11-29".to_string(),
        to: "2026-11-29".to_string(),
    };
    let outcome = evaluate(&request, Policy::LOOP).unwrap();
    assert_eq!((outcome.window.done, outcome.window.target), (60.0, 60.0));
    assert_eq!(outcome.current_streak.unwrap().start, "2026-11-03");
    assert!(outcome.today_score > 0.4, "{}", outcome.today_score);
}
