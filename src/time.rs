//! Times as people read and write them, by chrono: RFC 3339 in UTC for reports, the
//! calendar periods retention counts in (hour, day, ISO week, month, year), and the
//! point in time a selection names (`2026-11-29`, `2026-11-29T12:00:00Z`).
//!
//! Keeps true: every time is milliseconds after the Unix epoch, UTC, on the way in and
//! out; a text that is not a valid date or time (a 30 February, a time without its zone)
//! is refused, never guessed; nothing here reads the clock.

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};

/// The UTC time of `unix_ms` (the epoch itself for a time chrono cannot hold).
fn utc(unix_ms: u64) -> DateTime<Utc> {
    i64::try_from(unix_ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or(DateTime::UNIX_EPOCH)
}

/// RFC 3339 UTC with milliseconds: `2026-11-29T12:00:00.000Z`.
pub fn rfc3339(unix_ms: u64) -> String {
    utc(unix_ms)
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// `YYYY-MM-DD HH:MM` UTC, for tables.
pub fn utc_minutes(unix_ms: u64) -> String {
    utc(unix_ms).format("%Y-%m-%d %H:%M").to_string()
}

/// The calendar periods a retention rule counts in, each as its key (`2026-11-30T02`,
/// `2026-11-30`, `2026-W48`, `2026-11`, `2026`), UTC; a week is an ISO 8601 week, whose
/// year is the year of its Thursday.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Period {
    /// The key of the period holding `unix_ms`.
    pub fn key(self, unix_ms: u64) -> String {
        let t = utc(unix_ms);
        match self {
            Period::Hour => format!("{}T{:02}", t.format("%Y-%m-%d"), t.hour()),
            Period::Day => t.format("%Y-%m-%d").to_string(),
            Period::Week => {
                let w = t.iso_week();
                format!("{:04}-W{:02}", w.year(), w.week())
            }
            Period::Month => t.format("%Y-%m").to_string(),
            Period::Year => format!("{:04}", t.year()),
        }
    }
}

/// Parses a point in time: a date `2026-11-29` (the end of that day, UTC) or an RFC 3339
/// time with its zone (`2026-11-29T12:00:00Z`, `2026-11-29T14:00+02:00`; seconds and
/// their fraction optional, `T` or a space between date and time), to Unix milliseconds.
pub fn parse_point(s: &str) -> Result<u64, String> {
    let bad =
        || format!("{s:?} is not a date (2026-11-29) or an RFC 3339 time (2026-11-29T12:00:00Z)");
    let t = s.trim();
    if t.len() == 10 {
        let day = NaiveDate::parse_from_str(t, "%Y-%m-%d").map_err(|_| bad())?;
        let end = day
            .and_hms_milli_opt(23, 59, 59, 999)
            .ok_or_else(bad)?
            .and_utc();
        return u64::try_from(end.timestamp_millis()).map_err(|_| bad());
    }
    // RFC 3339 needs the seconds; `12:00Z` means `12:00:00Z`.
    let b = t.as_bytes();
    let with_seconds;
    let t = if b.len() > 16 && b[13] == b':' && matches!(b[16], b'Z' | b'z' | b'+' | b'-') {
        with_seconds = format!("{}:00{}", &t[..16], &t[16..]);
        with_seconds.as_str()
    } else {
        t
    };
    if !t.ends_with(['Z', 'z']) && t.rfind(['+', '-']).is_none_or(|i| i < 19) {
        return Err(format!("{} (a time needs its zone: Z or +HH:MM)", bad()));
    }
    let parsed = DateTime::parse_from_rfc3339(t).map_err(|_| bad())?;
    u64::try_from(parsed.timestamp_millis()).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day_ms(y: i32, m: u32, d: u32) -> u64 {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis() as u64
    }

    #[test]
    fn rfc3339_and_periods_match_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(
            rfc3339(1_795_305_600_000 + 3_723_045),
            "2026-11-22T01:02:03.045Z"
        );
        assert_eq!(utc_minutes(1_795_305_600_000 + 3_723_045), "2026-11-22 01:02");
        assert_eq!(Period::Day.key(day_ms(2024, 2, 29)), "2024-02-29");
        assert_eq!(
            Period::Day.key(day_ms(2026, 11, 30) + 86_399_999),
            "2026-11-30"
        );
        assert_eq!(
            Period::Hour.key(day_ms(2026, 11, 30) + 2 * 3_600_000),
            "2026-11-30T02"
        );
        assert_eq!(Period::Week.key(day_ms(2026, 1, 1)), "2026-W01"); // a Thursday
        assert_eq!(Period::Week.key(day_ms(2027, 1, 1)), "2026-W53"); // a Friday
        assert_eq!(Period::Week.key(day_ms(2024, 12, 30)), "2025-W01"); // a Monday
        assert_eq!(Period::Week.key(day_ms(2021, 1, 3)), "2020-W53"); // a Sunday
        assert_eq!(Period::Month.key(day_ms(2026, 11, 30)), "2026-11");
        assert_eq!(Period::Year.key(day_ms(2026, 11, 30)), "2026");
    }

    #[test]
    fn points_read_dates_and_rfc3339_times() {
        let day = day_ms(2026, 11, 29);
        assert_eq!(parse_point("2026-11-29"), Ok(day + 86_400_000 - 1));
        assert_eq!(parse_point("2026-11-29T12:00:00Z"), Ok(day + 12 * 3_600_000));
        assert_eq!(parse_point("2026-11-29T12:00Z"), Ok(day + 12 * 3_600_000));
        assert_eq!(
            parse_point("2026-11-29 12:00:00.25Z"),
            Ok(day + 12 * 3_600_000 + 250)
        );
        assert_eq!(
            parse_point("2026-11-29T14:00:00+02:00"),
            Ok(day + 12 * 3_600_000)
        );
        assert_eq!(parse_point("2026-11-29T14:00+02:00"), Ok(day + 12 * 3_600_000));
        for bad in [
            "2026-02-30",
            "2026-11-29T12:00:00",
            "29/11/2026",
            "2026-13-01",
            "2026-11-29T25:00Z",
            "yesterday",
            "1960-01-01T00:00:00Z",
        ] {
            assert!(parse_point(bad).is_err(), "{bad}");
        }
    }
}
