//! Properties of the rules that hold for any history, checked on many random ones
//! (a small deterministic PRNG: the same histories every run), and what a user sees
//! for a bad request.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

use habit_rules_engine::{
    Frequency, HabitKind, Mark, Outcome, Policy, Request, Target, TargetType, date, evaluate,
};

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const TODAY: &str = "2026-03-15";
const DAYS: i64 = 120;

fn today() -> date::Day {
    date::parse(TODAY).unwrap()
}

/// A random habit: boolean, at least or at most, with a random frequency.
fn random_habit(rng: &mut Rng) -> (HabitKind, Option<Target>, Frequency) {
    let days = [1, 1, 2, 7, 7, 30, 31][rng.below(7) as usize];
    match rng.below(3) {
        0 => {
            let times = 1 + rng.below(u64::from(days)) as u32;
            (HabitKind::Boolean, None, Frequency { times, days })
        }
        k => {
            let kind = if k == 1 {
                TargetType::AtLeast
            } else {
                TargetType::AtMost
            };
            let value = (rng.below(8) as f64) * 0.5;
            (
                HabitKind::Measurable,
                Some(Target { value, kind }),
                Frequency { times: 1, days },
            )
        }
    }
}

/// Random entries on days `-DAYS..=0` (offsets from today), values in quarters so
/// sums are exact.
fn random_entries(rng: &mut Rng, kind: HabitKind) -> Vec<(i64, Mark)> {
    let density = rng.below(100);
    (-DAYS..=0)
        .filter_map(|d| {
            if !rng.chance(density) {
                return None;
            }
            let mark = if rng.chance(15) {
                Mark::Skipped
            } else {
                match kind {
                    HabitKind::Boolean => Mark::Done,
                    HabitKind::Measurable => Mark::Value(rng.below(16) as f64 * 0.25),
                }
            };
            Some((d, mark))
        })
        .collect()
}

fn request(
    (kind, target, frequency): (HabitKind, Option<Target>, Frequency),
    entries: &[(i64, Mark)],
) -> Request {
    Request {
        kind,
        target,
        frequency,
        weekdays: None,
        created: TODAY.to_string(),
        entries: entries
            .iter()
            .map(|&(d, m)| (date::format(today() + d), m))
            .collect(),
        today: TODAY.to_string(),
        from: date::format(today() - DAYS - 5),
        to: TODAY.to_string(),
    }
}

fn run(
    habit: (HabitKind, Option<Target>, Frequency),
    entries: &[(i64, Mark)],
    policy: Policy,
) -> Outcome {
    evaluate(&request(habit, entries), policy).unwrap()
}

const ROUNDS: u64 = 400;

#[test]
fn scores_are_always_within_0_and_1() {
    let mut rng = Rng(0x5EED_0001);
    for _ in 0..ROUNDS {
        let habit = random_habit(&mut rng);
        let entries = random_entries(&mut rng, habit.0);
        for policy in [Policy::LOOP, Policy::STRICT] {
            let outcome = run(habit, &entries, policy);
            for (day, score) in &outcome.scores {
                assert!((0.0..=1.0).contains(score), "{habit:?} {day}: {score}");
            }
            assert!((0.0..=1.0).contains(&outcome.today_score));
        }
    }
}

#[test]
fn the_same_input_gives_the_same_output() {
    let mut rng = Rng(0x5EED_0002);
    for _ in 0..ROUNDS / 4 {
        let habit = random_habit(&mut rng);
        let entries = random_entries(&mut rng, habit.0);
        let a = run(habit, &entries, Policy::LOOP);
        let b = run(habit, &entries, Policy::LOOP);
        assert_eq!(a, b);
        // Bit for bit, not just within a tolerance.
        for ((_, x), (_, y)) in a.scores.iter().zip(&b.scores) {
            assert_eq!(x.to_bits(), y.to_bits());
        }
    }
}

#[test]
fn a_done_day_never_lowers_todays_score_of_an_at_least_habit() {
    let mut rng = Rng(0x5EED_0003);
    for _ in 0..ROUNDS {
        let mut habit = random_habit(&mut rng);
        if habit.0 == HabitKind::Measurable {
            habit.1 = habit.1.map(|t| Target {
                kind: TargetType::AtLeast,
                ..t
            });
        }
        let mut entries = random_entries(&mut rng, habit.0);
        let before = run(habit, &entries, Policy::LOOP).today_score;
        let day = -(rng.below(DAYS as u64) as i64);
        let done = match habit.0 {
            HabitKind::Boolean => Mark::Done,
            HabitKind::Measurable => Mark::Value(2.0),
        };
        // Only a day with nothing on it (a skip turned done is another question).
        if entries.iter().any(|&(d, _)| d == day) {
            continue;
        }
        entries.push((day, done));
        let after = run(habit, &entries, Policy::LOOP).today_score;
        assert!(after >= before, "{habit:?} day {day}: {before} -> {after}");
    }
}

/// What is exactly true of a skip in Loop's model: the score does not move on the
/// skipped day, and for a daily habit (a window of one day) the days after it go
/// on exactly as if the skipped day had never been on the calendar. Not "today's
/// score is unchanged": skipping a missed day spares the habit that day's decay.
#[test]
fn a_skipped_day_is_as_if_it_had_never_been() {
    let mut rng = Rng(0x5EED_0004);
    let mut checked = 0;
    for _ in 0..ROUNDS {
        let mut habit = random_habit(&mut rng);
        habit.2 = Frequency { times: 1, days: 1 };
        let entries: Vec<(i64, Mark)> = random_entries(&mut rng, habit.0)
            .into_iter()
            .filter(|&(_, m)| m != Mark::Skipped)
            .collect();
        let Some(&(first, _)) = entries.first() else {
            continue;
        };
        // Skip a day after the first entry that has nothing on it.
        let day = first + 1 + rng.below((-first) as u64 + 1) as i64;
        if day > 0 || entries.iter().any(|&(d, _)| d == day) {
            continue;
        }
        let mut skipped = entries.clone();
        skipped.push((day, Mark::Skipped));
        let with_skip = run(habit, &skipped, Policy::LOOP);
        // The same history without that day: everything before it one day later.
        let removed: Vec<(i64, Mark)> = entries
            .iter()
            .map(|&(d, m)| if d < day { (d + 1, m) } else { (d, m) })
            .collect();
        let without_day = run(habit, &removed, Policy::LOOP);
        assert_eq!(
            with_skip.today_score.to_bits(),
            without_day.today_score.to_bits(),
            "{habit:?} skip on {day}"
        );
        // And on the skipped day itself the score stays where it was.
        let i = with_skip.scores.len() - 1 - (-day) as usize;
        assert_eq!(with_skip.scores[i].1, with_skip.scores[i - 1].1);
        checked += 1;
    }
    assert!(checked > 50, "only {checked} histories checked");
}

/// Skipping a day with nothing on it never lowers today's score of a daily
/// boolean habit (it spares a day's decay), and under the strict policy a skip is
/// exactly a missed day.
#[test]
fn skipping_a_missed_day_of_a_daily_habit_never_lowers_the_score() {
    let mut rng = Rng(0x5EED_0005);
    for _ in 0..ROUNDS {
        let habit = (HabitKind::Boolean, None, Frequency { times: 1, days: 1 });
        let mut entries = random_entries(&mut rng, HabitKind::Boolean);
        let day = -(rng.below(DAYS as u64) as i64);
        if entries.iter().any(|&(d, _)| d == day) {
            continue;
        }
        // Keep the series' start where it is, so the skip is not a new first entry.
        entries.push((-DAYS - 1, Mark::Done));
        let before = run(habit, &entries, Policy::LOOP);
        let mut skipped = entries.clone();
        skipped.push((day, Mark::Skipped));
        let after = run(habit, &skipped, Policy::LOOP);
        assert!(after.today_score >= before.today_score);
        let strict = run(habit, &skipped, Policy::STRICT);
        assert_eq!(strict, run(habit, &entries, Policy::STRICT));
    }
}

#[test]
fn streaks_are_consistent_with_their_dates() {
    let mut rng = Rng(0x5EED_0006);
    for _ in 0..ROUNDS {
        let habit = random_habit(&mut rng);
        let entries = random_entries(&mut rng, habit.0);
        for policy in [Policy::LOOP, Policy::STRICT] {
            let outcome = run(habit, &entries, policy);
            assert!(outcome.best_streaks.len() <= 10);
            for s in outcome.best_streaks.iter().chain(&outcome.current_streak) {
                let (start, end) = (date::parse(&s.start).unwrap(), date::parse(&s.end).unwrap());
                assert_eq!(i64::from(s.length), end - start + 1);
                assert!(end <= today());
            }
            for pair in outcome.best_streaks.windows(2) {
                assert!(
                    pair[0].length > pair[1].length
                        || (pair[0].length == pair[1].length && pair[0].end > pair[1].end)
                );
            }
            if let Some(current) = &outcome.current_streak {
                let end = date::parse(&current.end).unwrap();
                assert!(end == today() || end == today() - 1);
            }
        }
    }
}

#[test]
fn strict_streaks_are_never_longer() {
    let mut rng = Rng(0x5EED_0007);
    for _ in 0..ROUNDS {
        let habit = random_habit(&mut rng);
        let entries = random_entries(&mut rng, habit.0);
        let loose = run(habit, &entries, Policy::LOOP);
        let strict = run(habit, &entries, Policy::STRICT);
        let longest = |o: &Outcome| o.best_streaks.first().map_or(0, |s| s.length);
        assert!(longest(&strict) <= longest(&loose), "{habit:?}");
    }
}
