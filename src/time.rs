//! Times as people read and write them, by chrono: RFC 3339 in UTC for reports, the
//! calendar periods retention counts in (hour, day, ISO week, month, year), and the
//! point in time a selection names (`2026-11-29T12:00:00Z`, a local `2026-11-29 12:00` or
//! `2026-11-29`, a relative `2h` or `3 days ago`).
//!
//! Keeps true: every time is milliseconds after the Unix epoch, UTC, on the way in and
//! out; a text that is not a valid date or time (a 30 February, a local time a clock
//! change skips or repeats, a relative time in the future) is refused in one sentence,
//! never guessed; only [`parse_point`] reads the clock and the machine's zone (chrono's
//! `Local`), once each, and hands them to [`parse_point_in`], which reads neither;
//! [`local_time`] reads the zone to say a time back in it.

use chrono::{
    DateTime, Datelike, Local, LocalResult, NaiveDate, NaiveDateTime, TimeDelta, TimeZone,
    Timelike, Utc,
};

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

/// Parses a point in time as [`parse_point_in`] does, in the machine's zone (chrono's
/// `Local`: `TZ`, else the system's) and from the clock's now.
pub fn parse_point(s: &str) -> Result<u64, String> {
    parse_point_in(s, &Local, Utc::now())
}

/// `unix_ms` in the machine's zone, with its offset: `2026-12-07 19:47:00 UTC+01:00`.
pub fn local_time(unix_ms: u64) -> String {
    Local
        .from_utc_datetime(&utc(unix_ms).naive_utc())
        .format("%Y-%m-%d %H:%M:%S UTC%:z")
        .to_string()
}

/// Parses a point in time, to Unix milliseconds:
/// - an RFC 3339 time with its zone (`2026-11-29T12:00:00Z`, `2026-11-29T14:00+02:00`;
///   seconds and their fraction optional, `T` or a space between date and time);
/// - a local time without a zone, read in `zone` (`2026-11-29 12:00`,
///   `2026-11-29T12:00:00`), or a date (`2026-11-29`: the end of that day in `zone`);
/// - a relative time before `now` (`2h`, `90m`, `1w`, `3 days ago`; units s, m, h, d, w,
///   spelt short or long).
pub fn parse_point_in<Tz: TimeZone>(s: &str, zone: &Tz, now: DateTime<Utc>) -> Result<u64, String> {
    let bad = || {
        format!(
            "{s:?} is not a time: give an RFC 3339 time (2026-11-29T12:00:00Z), a local time \
             (2026-11-29 12:00), a date (2026-11-29) or a time ago (2h, 90m, 3 days ago)"
        )
    };
    let t = s.trim();
    let ms = |d: DateTime<Utc>| u64::try_from(d.timestamp_millis()).map_err(|_| bad());
    if let Some(r) = relative(t) {
        let back = r.map_err(|e| format!("{s:?}: {e}"))?;
        return ms(now.checked_sub_signed(back).ok_or_else(bad)?);
    }
    if let Some(naive) = local_naive(t) {
        let naive = naive.map_err(|_| bad())?;
        return match zone.from_local_datetime(&naive) {
            LocalResult::Single(d) => ms(d.with_timezone(&Utc)),
            LocalResult::Ambiguous(a, b) => Err(format!(
                "{s:?} happens twice in the local zone (a clock change: UTC{} and UTC{}); give \
                 its offset, as in 2026-11-29T12:00+01:00",
                a.fixed_offset().offset(),
                b.fixed_offset().offset()
            )),
            LocalResult::None => Err(format!(
                "{s:?} does not exist in the local zone (a clock change skips it); give its \
                 offset, as in 2026-11-29T12:00+01:00"
            )),
        };
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
    let parsed = DateTime::parse_from_rfc3339(t).map_err(|_| bad())?;
    ms(parsed.with_timezone(&Utc))
}

/// A time without a zone (`2026-11-29`, `2026-11-29 12:00`, `2026-11-29T12:00:00.5`): the
/// local date and time it names (a date: its last millisecond), `Err` when it has that
/// shape but is no valid time, `None` when it has another shape (a zone, a word).
fn local_naive(t: &str) -> Option<Result<NaiveDateTime, ()>> {
    let b = t.as_bytes();
    let shaped = b.len() >= 10
        && b[4] == b'-'
        && b[7] == b'-'
        && (b.len() == 10 || (b.len() >= 16 && matches!(b[10], b'T' | b't' | b' ')))
        && !t[10..].contains(['Z', 'z', '+'])
        && !t.get(11..).is_some_and(|x| x.contains('-'));
    if !shaped {
        return None;
    }
    if b.len() == 10 {
        return Some(
            NaiveDate::parse_from_str(t, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_milli_opt(23, 59, 59, 999))
                .ok_or(()),
        );
    }
    let rest = t[11..].to_string();
    let joined = format!("{} {rest}", &t[..10]);
    for f in ["%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(&joined, f) {
            return Some(Ok(n));
        }
    }
    Some(Err(()))
}

/// A time ago (`2h`, `90 m`, `3 days ago`, `1w`): how far back, `Err` with the reason
/// when it has that shape but cannot be counted, `None` when it has another shape.
fn relative(t: &str) -> Option<Result<TimeDelta, String>> {
    let lower = t.to_ascii_lowercase();
    let body = lower.strip_suffix("ago").unwrap_or(&lower).trim_end();
    let digits = body.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let unit = body[digits..].trim_start();
    let secs: i64 = match unit {
        "s" | "sec" | "secs" | "second" | "seconds" => 1,
        "m" | "min" | "mins" | "minute" | "minutes" => 60,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        "w" | "week" | "weeks" => 7 * 86_400,
        // Another shape (a date, a time): not relative.
        _ if !unit.bytes().all(|c| c.is_ascii_alphabetic()) => return None,
        "" => return Some(Err("a time ago needs its unit: s, m, h, d or w (2h, 3 days ago)".into())),
        other => {
            return Some(Err(format!(
                "{other:?} is not a unit of a time ago: s, m, h, d or w (2h, 90m, 3 days ago)"
            )))
        }
    };
    let n: i64 = match body[..digits].parse() {
        Ok(n) => n,
        Err(_) => return Some(Err("that is too long ago".into())),
    };
    Some(
        n.checked_mul(secs)
            .and_then(TimeDelta::try_seconds)
            .ok_or_else(|| "that is too long ago".to_string()),
    )
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
        let p = |s: &str| parse_point_in(s, &Utc, Utc::now());
        assert_eq!(p("2026-11-29"), Ok(day + 86_400_000 - 1));
        assert_eq!(p("2026-11-29T12:00:00Z"), Ok(day + 12 * 3_600_000));
        assert_eq!(p("2026-11-29T12:00Z"), Ok(day + 12 * 3_600_000));
        assert_eq!(p("2026-11-29 12:00:00.25Z"), Ok(day + 12 * 3_600_000 + 250));
        assert_eq!(p("2026-11-29T14:00:00+02:00"), Ok(day + 12 * 3_600_000));
        assert_eq!(p("2026-11-29T14:00+02:00"), Ok(day + 12 * 3_600_000));
        for bad in [
            "2026-02-30",
            "29/11/2026",
            "2026-13-01",
            "2026-11-29T25:00Z",
            "2026-11-29 25:00",
            "2026-11-29 12",
            "yesterday",
            "1960-01-01T00:00:00Z",
        ] {
            let e = p(bad).expect_err(bad);
            assert!(e.starts_with(&format!("{bad:?}")), "{e}");
        }
    }

    /// A time without a zone is read in the zone given (the CLI's: the machine's), the
    /// same instant whatever the machine's own zone.
    #[test]
    fn local_times_without_a_zone_are_read_in_the_zone_given() {
        let day = day_ms(2026, 12, 7);
        let plus_one = chrono::FixedOffset::east_opt(3600).unwrap();
        let minus_five = chrono::FixedOffset::west_opt(5 * 3600).unwrap();
        let at = day + (19 * 60 + 47) * 60_000;
        for (s, want) in [
            ("2026-12-07 19:47", at),
            ("2026-12-07T19:47", at),
            ("2026-12-07T19:47:00", at),
            ("2026-12-07 19:47:00.5", at + 500),
            ("2026-12-07", day + 86_400_000 - 1),
        ] {
            assert_eq!(parse_point_in(s, &Utc, Utc::now()), Ok(want), "{s}");
            assert_eq!(
                parse_point_in(s, &plus_one, Utc::now()),
                Ok(want - 3_600_000),
                "{s}"
            );
            assert_eq!(
                parse_point_in(s, &minus_five, Utc::now()),
                Ok(want + 5 * 3_600_000),
                "{s}"
            );
        }
        // A zone given wins over the local one.
        assert_eq!(
            parse_point_in("2026-12-07T19:47Z", &plus_one, Utc::now()),
            Ok(at)
        );
        // The machine's zone, as chrono sees it.
        let local = Local
            .from_local_datetime(
                &NaiveDate::from_ymd_opt(2026, 12, 7)
                    .unwrap()
                    .and_hms_opt(19, 47, 0)
                    .unwrap(),
            )
            .earliest()
            .unwrap();
        assert_eq!(
            parse_point("2026-12-07 19:47"),
            Ok(local.timestamp_millis() as u64)
        );
    }

    /// A local time a clock change skips or repeats is refused with its reason, never
    /// guessed.
    #[test]
    fn a_local_time_a_clock_change_skips_or_repeats_is_refused() {
        /// Europe's rule for 2026 in one fixed form: UTC+1, UTC+2 from 29 March 01:00 UTC
        /// to 25 October 01:00 UTC.
        #[derive(Clone, Copy)]
        struct Cet;
        impl TimeZone for Cet {
            type Offset = chrono::FixedOffset;
            fn from_offset(_: &chrono::FixedOffset) -> Cet {
                Cet
            }
            fn offset_from_local_date(&self, _: &NaiveDate) -> LocalResult<chrono::FixedOffset> {
                unimplemented!()
            }
            fn offset_from_local_datetime(
                &self,
                l: &NaiveDateTime,
            ) -> LocalResult<chrono::FixedOffset> {
                let (w, s) = (
                    chrono::FixedOffset::east_opt(3600).unwrap(),
                    chrono::FixedOffset::east_opt(7200).unwrap(),
                );
                let fits = |o: chrono::FixedOffset| {
                    self.offset_from_utc_datetime(&(*l - TimeDelta::seconds(o.local_minus_utc() as i64))) == o
                };
                match (fits(w), fits(s)) {
                    (true, true) => LocalResult::Ambiguous(s, w),
                    (true, false) => LocalResult::Single(w),
                    (false, true) => LocalResult::Single(s),
                    (false, false) => LocalResult::None,
                }
            }
            fn offset_from_utc_date(&self, _: &NaiveDate) -> chrono::FixedOffset {
                unimplemented!()
            }
            fn offset_from_utc_datetime(&self, u: &NaiveDateTime) -> chrono::FixedOffset {
                let at = |m, d| NaiveDate::from_ymd_opt(2026, m, d).unwrap().and_hms_opt(1, 0, 0).unwrap();
                let summer = *u >= at(3, 29) && *u < at(10, 25);
                chrono::FixedOffset::east_opt(if summer { 7200 } else { 3600 }).unwrap()
            }
        }
        let skipped = parse_point_in("2026-03-29 02:30", &Cet, Utc::now()).unwrap_err();
        assert!(skipped.contains("does not exist in the local zone"), "{skipped}");
        let twice = parse_point_in("2026-10-25 02:30", &Cet, Utc::now()).unwrap_err();
        assert!(twice.contains("happens twice"), "{twice}");
        assert_eq!(
            parse_point_in("2026-10-25 03:30", &Cet, Utc::now()),
            Ok(day_ms(2026, 10, 25) + (2 * 60 + 30) * 60_000)
        );
    }

    #[test]
    fn relative_times_count_back_from_now() {
        let now = DateTime::from_timestamp_millis(day_ms(2026, 12, 7) as i64 + 123).unwrap();
        let p = |s: &str| parse_point_in(s, &Utc, now);
        let n = now.timestamp_millis() as u64;
        for (s, back) in [
            ("2h", 2 * 3_600_000),
            ("90m", 90 * 60_000),
            ("3 days ago", 3 * 86_400_000),
            ("3days", 3 * 86_400_000),
            ("1w", 7 * 86_400_000),
            ("45s", 45_000),
            ("1 hour ago", 3_600_000),
            ("2 Weeks Ago", 14 * 86_400_000),
            ("0m", 0),
        ] {
            assert_eq!(p(s), Ok(n - back), "{s}");
        }
        for (bad, says) in [
            ("2", "needs its unit"),
            ("3 fortnights ago", "is not a unit"),
            ("2y", "is not a unit"),
            ("99999999999999999999d", "too long ago"),
            ("9999999999999w", "too long ago"),
            ("-2h", "is not a time"),
            ("in 2h", "is not a time"),
            ("2h from now", "is not a time"),
        ] {
            let e = p(bad).expect_err(bad);
            assert!(e.starts_with(&format!("{bad:?}")) && e.contains(says), "{bad}: {e}");
        }
    }
}
