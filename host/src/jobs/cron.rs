//! Five-field cron expressions (`minute hour day-of-month month day-of-week`), as
//! in manifests' `schedule`, evaluated in UTC.
//!
//! Each field is `*`, a number, a range `a-b`, a step `*/n` or `a-b/n`, or a comma
//! list of those. Day of week is 0-6 from Sunday (7 is Sunday too). As in classic
//! cron, when both day fields are restricted a day matches if either does.

use std::collections::BTreeSet;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: BTreeSet<u32>,
    hours: BTreeSet<u32>,
    days: BTreeSet<u32>,
    months: BTreeSet<u32>,
    weekdays: BTreeSet<u32>,
    days_restricted: bool,
    weekdays_restricted: bool,
}

impl Cron {
    /// Parses an expression; the error names the field at fault.
    pub fn parse(expr: &str) -> Result<Self, String> {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = fields.as_slice() else {
            return Err(format!(
                "`{expr}` must have five fields (minute hour day month weekday)"
            ));
        };
        let mut weekdays = field(weekday, "weekday", 0, 7)?;
        if weekdays.remove(&7) {
            weekdays.insert(0);
        }
        Ok(Self {
            minutes: field(minute, "minute", 0, 59)?,
            hours: field(hour, "hour", 0, 23)?,
            days: field(day, "day", 1, 31)?,
            months: field(month, "month", 1, 12)?,
            weekdays,
            days_restricted: *day != "*",
            weekdays_restricted: *weekday != "*",
        })
    }

    /// Whether the minute starting at `unix_minute` (minutes since the epoch, UTC)
    /// is one of this expression's slots.
    pub fn matches(&self, unix_minute: i64) -> bool {
        let Some(Ok(ts)) = unix_minute
            .checked_mul(60)
            .map(jiff::Timestamp::from_second)
        else {
            return false;
        };
        let dt = ts.to_zoned_datetime(jiff::tz::TimeZone::UTC);
        let num = |v: i8| u32::try_from(v).unwrap_or(99);
        let weekday = u32::from(dt.weekday().to_sunday_zero_offset().unsigned_abs());
        let day_ok = match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => self.days.contains(&num(dt.day())) || self.weekdays.contains(&weekday),
            _ => self.days.contains(&num(dt.day())) && self.weekdays.contains(&weekday),
        };
        self.minutes.contains(&num(dt.minute()))
            && self.hours.contains(&num(dt.hour()))
            && self.months.contains(&num(dt.month()))
            && day_ok
    }
}

fn field(text: &str, name: &str, min: u32, max: u32) -> Result<BTreeSet<u32>, String> {
    let bad = |why: &str| format!("{name} `{text}`: {why}");
    let number = |s: &str| -> Result<u32, String> {
        let n: u32 = s
            .parse()
            .map_err(|_| bad(&format!("`{s}` is not a number")))?;
        if n < min || n > max {
            return Err(bad(&format!("{n} is outside {min}-{max}")));
        }
        Ok(n)
    };
    let mut values = BTreeSet::new();
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| bad("a step is a positive number"))?,
            ),
            None => (part, 1),
        };
        let (from, to) = match range {
            "*" => (min, max),
            r => match r.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                None if step > 1 => (number(r)?, max),
                None => (number(r)?, number(r)?),
            },
        };
        if from > to {
            return Err(bad("a range runs low to high"));
        }
        values.extend((from..=to).step_by(step as usize));
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minute(s: &str) -> i64 {
        s.parse::<jiff::Timestamp>().unwrap().as_second() / 60
    }

    #[test]
    fn matches_the_slots_it_names() {
        let every_six_hours = Cron::parse("0 */6 * * *").unwrap();
        assert!(every_six_hours.matches(minute("2026-11-23T06:00:00Z")));
        assert!(!every_six_hours.matches(minute("2026-11-23T06:01:00Z")));
        assert!(!every_six_hours.matches(minute("2026-11-23T07:00:00Z")));
        // Mondays at 08:30; 2026-11-23 is a Monday.
        let monday = Cron::parse("30 8 * * 1").unwrap();
        assert!(monday.matches(minute("2026-11-23T08:30:00Z")));
        assert!(!monday.matches(minute("2026-11-24T08:30:00Z")));
        let sunday = Cron::parse("0 0 * * 7").unwrap();
        assert!(sunday.matches(minute("2026-11-22T00:00:00Z")));
        // Day of month or weekday when both are restricted.
        let either = Cron::parse("0 12 1 * 1").unwrap();
        assert!(either.matches(minute("2026-12-01T12:00:00Z")));
        assert!(either.matches(minute("2026-11-23T12:00:00Z")));
        assert!(!either.matches(minute("2026-11-24T12:00:00Z")));
        assert!(
            Cron::parse("* * * * *")
                .unwrap()
                .matches(minute("2031-02-03T04:05:00Z"))
        );
        assert!(
            Cron::parse("5,10-12/2 * * * *")
                .unwrap()
                .matches(minute("2026-11-23T10:12:00Z"))
        );
    }

    #[test]
    fn refusals_name_the_field() {
        for (expr, field) in [
            ("* *", "five fields"),
            ("60 * * * *", "minute"),
            ("* 24 * * *", "hour"),
            ("* * 0 * *", "day"),
            ("* * * 13 *", "month"),
            ("* * * * 8", "weekday"),
            ("*/0 * * * *", "minute"),
            ("5-1 * * * *", "minute"),
        ] {
            let err = Cron::parse(expr).unwrap_err();
            assert!(err.contains(field), "{expr}: {err}");
        }
    }
}
