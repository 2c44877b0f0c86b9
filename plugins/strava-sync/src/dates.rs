//! Calendar arithmetic without a time-zone database: Strava's timestamps are
//! ISO 8601 in UTC (`start_date`), or local wall-clock time wrongly suffixed `Z`
//! (`start_date_local`), which is only ever read as a wall clock here.

/// The day number of `YYYY-MM-DD` (only the first 10 characters are read).
pub fn parse_day(s: &str) -> Option<i64> {
    civil_day::parse(s.get(..10)?)
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
    fn days_and_timestamps() {
        assert_eq!(parse_day("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_day("2023-02-29"), None);
        assert_eq!(
            parse_utc_ms("2026-01-05T07:00:00Z"),
            Some(parse_day("2026-01-05").unwrap() * 86_400_000 + 7 * 3_600_000)
        );
    }
}
