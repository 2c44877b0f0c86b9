//! Streaks: runs of consecutive days that count, up to today.
//!
//! A day counts when it is done, skipped (under [`crate::SkipRule::Neutral`]), or
//! for a measurable habit when its value meets the target on its own (at least:
//! `value >= target`; at most: a value recorded and `value <= target`), as in Loop.
//!
//! A boolean habit less often than daily does not need every day: as Loop does, each
//! run of `times` check-ins that fits in `days` days makes an interval of `days`
//! days starting at the oldest of them, and every day of it counts (Loop's
//! `YES_AUTO`). Intervals that overlap the next one are slid back into the past, by
//! at most the distance from their newest check-in to their end, so that check-ins
//! spread unevenly still join into one streak. With a period of 30 or 31 days an
//! interval is a calendar month long.

use crate::date::{self, Day};
use crate::habit::{Frequency, Habit, Kind, TargetType};
use crate::history::{Check, History};

/// A run of counting days, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Streak {
    pub start: Day,
    pub end: Day,
}

impl Streak {
    pub fn length(self) -> i64 {
        self.end - self.start + 1
    }
}

/// The days covered by a run of check-ins: from `begin` (the oldest check-in of
/// the run) to `end`; `center` is the newest check-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub begin: Day,
    pub center: Day,
    pub end: Day,
}

/// The intervals made by `done` (days done, newest first), newest first.
pub fn intervals(frequency: Frequency, done: &[Day]) -> Vec<Interval> {
    let times = frequency.times.max(1) as usize;
    let mut out = Vec::new();
    for (newest, oldest) in done.iter().zip(done.iter().skip(times - 1)) {
        let (begin, center) = (*oldest, *newest);
        let size = match frequency.days {
            30 | 31 if date::is_last_of_month(begin) => date::length_of_month_of(begin + 1),
            30 | 31 => date::length_of_month_of(begin),
            days => i64::from(days),
        };
        if center - begin < size {
            out.push(Interval {
                begin,
                center,
                end: begin + size - 1,
            });
        }
    }
    out
}

/// Slides each interval (newest first) back into the past where it overlaps the
/// newer one before it, by at most the distance from its center to its end.
pub fn snap_together(intervals: &mut [Interval]) {
    for i in 1..intervals.len() {
        let newer = intervals[i - 1];
        let current = &mut intervals[i];
        let overlap = current.end - newer.begin;
        if overlap >= 0 {
            let shift = (current.end - current.center).min(overlap + 1);
            current.begin -= shift;
            current.end -= shift;
        }
    }
}

/// Every streak of `habit` up to `today`, oldest first.
pub fn all(habit: &Habit, history: &History, today: Day) -> Vec<Streak> {
    let covering = match habit.kind {
        // A weekday habit is due on fixed days; each counts on its own.
        Kind::Boolean if habit.weekdays.is_some() => Vec::new(),
        Kind::Boolean => {
            let mut done: Vec<Day> = history
                .days()
                .filter(|&(day, check)| check == Check::Done && day <= today)
                .map(|(day, _)| day)
                .collect();
            done.reverse();
            let mut found = intervals(habit.frequency, &done);
            snap_together(&mut found);
            found
        }
        Kind::Measurable(_) => Vec::new(),
    };
    let lo = covering
        .iter()
        .map(|i| i.begin)
        .fold(history.first, Day::min);
    if lo > today {
        return Vec::new();
    }
    let mut counts = vec![false; usize::try_from(today - lo + 1).unwrap_or(0)];
    for interval in &covering {
        for day in interval.begin.max(lo)..=interval.end.min(today) {
            if let Some(slot) = usize::try_from(day - lo)
                .ok()
                .and_then(|i| counts.get_mut(i))
            {
                *slot = true;
            }
        }
    }
    for (day, slot) in (lo..).zip(counts.iter_mut()) {
        *slot = *slot || counts_on_its_own(habit, history.check(day));
    }

    // A day off (a weekday habit's day not due) carries a streak but does not
    // start one: a streak runs from a counting day to the last counting day, or
    // on through the days off up to today or yesterday while it is still open.
    let mut streaks = Vec::new();
    let mut open: Option<(Day, Day)> = None;
    let days = (lo..).zip(counts.iter().copied().chain([false]));
    for (day, counted) in days {
        let off = !counted && day <= today && history.check(day) == Check::Off;
        match (counted, off, open) {
            (true, _, None) => open = Some((day, day)),
            (true, _, Some((start, _))) => open = Some((start, day)),
            (false, true, _) => {}
            (false, false, Some((start, last))) => {
                let end = if day >= today { day - 1 } else { last };
                streaks.push(Streak { start, end });
                open = None;
            }
            (false, false, None) => {}
        }
    }
    streaks
}

fn counts_on_its_own(habit: &Habit, check: Check) -> bool {
    match (check, habit.kind) {
        (Check::Done | Check::Skipped, _) => true,
        (Check::Amount(v), Kind::Measurable(target)) => match target.kind {
            TargetType::AtLeast => v >= target.value,
            TargetType::AtMost => v <= target.value,
        },
        (Check::Amount(_) | Check::Missing | Check::Off, _) => false,
    }
}

/// The streak that includes `today`, or that ended yesterday (today is still open).
pub fn current(streaks: &[Streak], today: Day) -> Option<Streak> {
    streaks
        .iter()
        .rev()
        .find(|s| s.end == today || s.end == today - 1)
        .copied()
}

/// Up to `limit` longest streaks, longest first; among equal lengths the later first.
pub fn best(streaks: &[Streak], limit: usize) -> Vec<Streak> {
    let mut sorted = streaks.to_vec();
    sorted.sort_by(|a, b| b.length().cmp(&a.length()).then_with(|| b.end.cmp(&a.end)));
    sorted.truncate(limit);
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::habit::{Mark, Policy, Target};

    fn boolean(times: u32, days: u32) -> Habit {
        Habit {
            kind: Kind::Boolean,
            frequency: Frequency { times, days },
            weekdays: None,
        }
    }

    fn streaks_of(
        habit: &Habit,
        entries: &[(Day, Mark)],
        today: Day,
        policy: Policy,
    ) -> Vec<(Day, Day)> {
        let history = History::new(habit, entries, today, today, policy);
        all(habit, &history, today)
            .into_iter()
            .map(|s| (s.start, s.end))
            .collect()
    }

    fn done(days: &[Day]) -> Vec<(Day, Mark)> {
        days.iter().map(|&d| (d, Mark::Done)).collect()
    }

    #[test]
    fn daily_streaks_and_skips_under_both_policies() {
        let habit = boolean(1, 1);
        let mut entries = done(&[0, 1, 3, 4, 6]);
        entries.push((2, Mark::Skipped));
        assert_eq!(
            streaks_of(&habit, &entries, 6, Policy::LOOP),
            [(0, 4), (6, 6)]
        );
        assert_eq!(
            streaks_of(&habit, &entries, 6, Policy::STRICT),
            [(0, 1), (3, 4), (6, 6)]
        );
    }

    #[test]
    fn weekly_check_ins_cover_their_week() {
        let habit = boolean(1, 7);
        // Done on days 0 and 7: two back-to-back weeks, up to day 10 (today).
        assert_eq!(
            streaks_of(&habit, &done(&[0, 7]), 10, Policy::LOOP),
            [(0, 10)]
        );
        // Done on days 0 and 9: days 7 and 8 are in no week, and the older interval
        // cannot slide (its only check-in is its begin), so the streak breaks.
        assert_eq!(
            streaks_of(&habit, &done(&[0, 9]), 12, Policy::LOOP),
            [(0, 6), (9, 12)]
        );
    }

    #[test]
    fn overlapping_intervals_slide_back_into_the_past() {
        // Twice a week, done on days 10, 12 and 14. Intervals (newest first):
        // [12, 18] center 14, [10, 16] center 12. The older one overlaps: it slides
        // back by min(16 - 12, 16 - 12 + 1) = 4 to [6, 12].
        let habit = boolean(2, 7);
        let mut found = intervals(habit.frequency, &[14, 12, 10]);
        assert_eq!(
            found,
            [
                Interval {
                    begin: 12,
                    center: 14,
                    end: 18
                },
                Interval {
                    begin: 10,
                    center: 12,
                    end: 16
                },
            ]
        );
        snap_together(&mut found);
        assert_eq!(
            found[1],
            Interval {
                begin: 6,
                center: 12,
                end: 12
            }
        );
        assert_eq!(
            streaks_of(&habit, &done(&[10, 12, 14]), 20, Policy::LOOP),
            [(6, 18)]
        );
    }

    #[test]
    fn check_ins_too_far_apart_make_no_interval() {
        let habit = boolean(2, 7);
        assert!(intervals(habit.frequency, &[7, 0]).is_empty());
        // Each done day still counts on its own.
        assert_eq!(
            streaks_of(&habit, &done(&[0, 7]), 7, Policy::LOOP),
            [(0, 0), (7, 7)]
        );
    }

    #[test]
    fn monthly_intervals_are_calendar_months() {
        let jan_31 = date::parse("2023-01-31").unwrap();
        let feb_10 = date::parse("2023-02-10").unwrap();
        let f = Frequency { times: 1, days: 30 };
        // Begun on the last day of a month: as long as the next month (28 days).
        assert_eq!(intervals(f, &[jan_31])[0].end, jan_31 + 27);
        assert_eq!(intervals(f, &[feb_10])[0].end, feb_10 + 27);
        let mar_3 = date::parse("2023-03-03").unwrap();
        assert_eq!(intervals(f, &[mar_3])[0].end, mar_3 + 30);
    }

    #[test]
    fn measurable_days_count_when_they_meet_the_target() {
        let at_least = Habit {
            kind: Kind::Measurable(Target {
                value: 2.0,
                kind: TargetType::AtLeast,
            }),
            frequency: Frequency { times: 1, days: 1 },
            weekdays: None,
        };
        let entries = [
            (0, Mark::Value(2.0)),
            (1, Mark::Value(3.0)),
            (2, Mark::Skipped),
            (3, Mark::Value(1.0)),
            (4, Mark::Value(5.0)),
        ];
        assert_eq!(
            streaks_of(&at_least, &entries, 5, Policy::LOOP),
            [(0, 2), (4, 4)]
        );

        let at_most = Habit {
            kind: Kind::Measurable(Target {
                value: 2.0,
                kind: TargetType::AtMost,
            }),
            frequency: Frequency { times: 1, days: 1 },
            weekdays: None,
        };
        // Day 2 has nothing recorded: it does not count (as in Loop).
        let entries = [
            (0, Mark::Value(0.0)),
            (1, Mark::Value(2.0)),
            (3, Mark::Value(3.0)),
            (4, Mark::Value(1.0)),
        ];
        assert_eq!(
            streaks_of(&at_most, &entries, 4, Policy::LOOP),
            [(0, 1), (4, 4)]
        );
    }

    #[test]
    fn current_streak_includes_today_or_ended_yesterday() {
        let s = [Streak { start: 0, end: 3 }, Streak { start: 5, end: 8 }];
        assert_eq!(current(&s, 8), Some(s[1]));
        assert_eq!(current(&s, 9), Some(s[1]));
        assert_eq!(current(&s, 10), None);
        assert_eq!(current(&[], 10), None);
    }

    #[test]
    fn best_streaks_longest_first_then_later_first_at_most_limit() {
        let s: Vec<Streak> = [(0, 2), (4, 9), (11, 13), (15, 15), (17, 22)]
            .iter()
            .map(|&(start, end)| Streak { start, end })
            .collect();
        let best = best(&s, 3);
        let ends: Vec<Day> = best.iter().map(|s| s.end).collect();
        assert_eq!(ends, [22, 9, 13]);
    }

    #[test]
    fn no_streak_after_today() {
        let habit = boolean(1, 7);
        // The week begun today is cut at today.
        assert_eq!(streaks_of(&habit, &done(&[5]), 5, Policy::LOOP), [(5, 5)]);
    }
}
