//! Calendar arithmetic without a time-zone database: Strava's timestamps are
//! ISO 8601 in UTC (`start_date`), or local wall-clock time wrongly suffixed `Z`
//! (`start_date_local`), which is only ever read as a wall clock here.

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD` of a day number.
pub fn format_day(days: i64) -> String {
    let z = days + 719_468;
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

/// The day number of `YYYY-MM-DD` (only the first 10 characters are read).
pub fn parse_day(s: &str) -> Option<i64> {
    let s = s.get(..10)?;
    let mut parts = s.split('-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    (format_day(days) == s).then_some(days)
}

/// `YYYY-MM-DDTHH:MM:SS[.fff][Z]` read as UTC, in milliseconds since the epoch.
pub fn parse_utc_ms(s: &str) -> Option<i64> {
    let days = parse_day(s)?;
    let time = s.get(11..19)?;
    if s.as_bytes().get(10) != Some(&b'T') {
        return None;
    }
    let mut parts = time.split(':');
    let h: i64 = parts.next()?.parse().ok()?;
    let mi: i64 = parts.next()?.parse().ok()?;
    let se: i64 = parts.next()?.parse().ok()?;
    Some(((days * 24 + h) * 60 + mi) * 60_000 + se * 1000)
}

/// The wall-clock part `YYYY-MM-DDTHH:MM:SS` of a Strava timestamp.
pub fn wall_clock(s: &str) -> Option<String> {
    parse_utc_ms(s)?;
    s.get(..19).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(format_day(days_from_civil(2024, 2, 29)), "2024-02-29");
        assert_eq!(parse_day("2023-02-29"), None);
        assert_eq!(
            parse_utc_ms("2026-01-05T07:00:00Z"),
            Some(days_from_civil(2026, 1, 5) * 86_400_000 + 7 * 3_600_000)
        );
    }
}
