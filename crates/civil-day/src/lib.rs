//! Calendar dates as day numbers: a date is the number of days since 1970-01-01
//! ([`Day`]), the unit the `rules` WIT interface uses, and `YYYY-MM-DD` text is
//! parsed once at an edge and written back only for people. The host and the
//! guests share this crate, so both sides count days the same way.
//!
//! The conversions are the proleptic Gregorian ones (Howard Hinnant's
//! `days_from_civil` / `civil_from_days`), for years 1 to 9999: the range the
//! host accepts. No time zones here: the host has already turned "now" into the
//! user's `today`.

/// Days since 1970-01-01 (negative before).
pub type Day = i64;

/// The first and last day this module accepts: 0001-01-01 and 9999-12-31.
pub const MIN_DAY: Day = -719_162;
pub const MAX_DAY: Day = 2_932_896;

/// The day `text` names, if it is a real date written `YYYY-MM-DD` (years 1 to
/// 9999); none for anything else, such as `2024-02-30` or `2024-2-1`.
pub fn parse(text: &str) -> Option<Day> {
    let bytes = text.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let year = digits(&bytes[0..4])?;
    let month = digits(&bytes[5..7])?;
    let day = digits(&bytes[8..10])?;
    if year == 0 || !(1..=12).contains(&month) || day == 0 || day > month_length(year, month) {
        return None;
    }
    Some(from_civil(year, month, day))
}

/// `YYYY-MM-DD` for `day`. Days outside years 1 to 9999 are clamped to that range
/// (they cannot come from [`parse`], and the rules never step that far).
pub fn format(day: Day) -> String {
    let (year, month, dom) = to_civil(day.clamp(MIN_DAY, MAX_DAY));
    format!("{year:04}-{month:02}-{dom:02}")
}

/// The number of days in the month that contains `day`.
pub fn length_of_month_of(day: Day) -> i64 {
    let (year, month, _) = to_civil(day);
    month_length(year, month)
}

/// Whether `day` is the last day of its month.
pub fn is_last_of_month(day: Day) -> bool {
    let (_, _, dom) = to_civil(day);
    dom == length_of_month_of(day)
}

fn digits(bytes: &[u8]) -> Option<i64> {
    bytes.iter().try_fold(0i64, |n, b| {
        b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0'))
    })
}

fn month_length(year: i64, month: i64) -> i64 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The day of a valid calendar date (years 1 to 9999); none for anything else.
pub fn from_ymd(year: i64, month: i64, day: i64) -> Option<Day> {
    ((1..=9999).contains(&year)
        && (1..=12).contains(&month)
        && day >= 1
        && day <= month_length(year, month))
    .then(|| from_civil(year, month, day))
}

fn from_civil(year: i64, month: i64, day: i64) -> Day {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn to_civil(day: Day) -> (i64, i64, i64) {
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let dom = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, dom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_days() {
        assert_eq!(parse("1970-01-01"), Some(0));
        assert_eq!(parse("2000-03-01"), Some(11_017));
        assert_eq!(parse("1969-12-31"), Some(-1));
        assert_eq!(parse("0001-01-01"), Some(MIN_DAY));
        assert_eq!(parse("9999-12-31"), Some(MAX_DAY));
    }

    #[test]
    fn round_trips_every_day_of_four_centuries() {
        for day in parse("1900-01-01").unwrap()..parse("2300-01-01").unwrap() {
            assert_eq!(parse(&format(day)), Some(day), "{}", format(day));
        }
    }

    #[test]
    fn refuses_what_is_not_a_date() {
        for text in [
            "",
            "2024-02-30",
            "2023-02-29",
            "2024-13-01",
            "2024-00-10",
            "2024-01-00",
            "0000-01-01",
            "2024-1-01",
            "2024/01/01",
            "24-01-01",
            "2024-01-1x",
            "+024-01-01",
            "2024-01-01T00:00",
        ] {
            assert_eq!(parse(text), None, "{text}");
        }
        assert!(parse("2024-02-29").is_some());
        assert!(parse("2000-02-29").is_some());
        assert_eq!(parse("1900-02-29"), None);
    }

    #[test]
    fn from_ymd_checks_the_calendar() {
        assert_eq!(from_ymd(2000, 3, 1), Some(11_017));
        assert_eq!(from_ymd(2023, 2, 29), None);
        assert_eq!(from_ymd(0, 1, 1), None);
    }

    #[test]
    fn month_lengths() {
        assert_eq!(length_of_month_of(parse("2024-02-10").unwrap()), 29);
        assert_eq!(length_of_month_of(parse("2023-02-10").unwrap()), 28);
        assert_eq!(length_of_month_of(parse("2023-04-30").unwrap()), 30);
        assert!(is_last_of_month(parse("2023-04-30").unwrap()));
        assert!(!is_last_of_month(parse("2023-05-30").unwrap()));
    }
}
