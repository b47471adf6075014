//! HTTP-dates as a cache reads them from an origin (RFC 9110 5.6.7): the
//! three formats, and what real servers send beside them (any letter case,
//! a weekday that does not match the date), in the formats' strict layout.
//! A date that does not parse is `None`. Also the other way: [`format`], for
//! any time at all.
//!
//! `httpdate` writes only the years 1970 to 9999 and panics outside them,
//! while a bucket may report a file dated 1960 and the HTTP-date grammar
//! lets `Fri, 31 Dec 9999 23:59:60 GMT` name the year 10000. So every date
//! read from an origin or a peer passes [`representable`], and every date
//! written goes through [`format`].

use std::time::{Duration, SystemTime};

/// The last second an HTTP-date names within the four-digit years,
/// 9999-12-31 23:59:59 UTC, in seconds since the epoch.
const LAST_SECOND: u64 = 253_402_300_799;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Parses an HTTP-date leniently: the IMF-fixdate and asctime forms in any
/// letter case and with any weekday, RFC 850 dates as `httpdate` reads them.
/// The layout itself is strict (single spaces, two-digit hours, four-digit
/// years, `GMT`): RFC 9111 5.3 has a cache treat anything else as invalid.
pub fn parse_lenient(text: &str) -> Option<SystemTime> {
    if let Ok(time) = httpdate::parse_http_date(text) {
        return Some(time);
    }
    if !text.is_ascii() {
        return None;
    }
    let b = text.as_bytes();
    // `Sun, 06 Nov 1994 08:49:37 GMT` and `Sun Nov  6 08:49:37 1994`.
    let (day, month, year, clock) = match b.len() {
        29 if &b[3..5] == b", "
            && b[7] == b' '
            && b[11] == b' '
            && b[16] == b' '
            && text[25..].eq_ignore_ascii_case(" GMT") =>
        {
            (&text[5..7], &text[8..11], &text[12..16], &text[17..25])
        }
        24 if b[3] == b' ' && b[7] == b' ' && b[10] == b' ' && b[19] == b' ' => (
            text[8..10].trim_start(),
            &text[4..7],
            &text[20..24],
            &text[11..19],
        ),
        _ => return None,
    };
    if !text[..3].bytes().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    let number = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())).then(|| s.parse().ok())?
    };
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(month))? as u32 + 1;
    let (day, year) = (number(day)? as u32, number(year)?);
    let c = clock.as_bytes();
    if c[2] != b':' || c[5] != b':' {
        return None;
    }
    let (h, m, s) = (
        number(&clock[0..2])?,
        number(&clock[3..5])?,
        number(&clock[6..8])?,
    );
    if h > 23 || m > 59 || s > 60 || day == 0 || year < 1970 {
        return None;
    }
    let days = days_from_civil(i64::try_from(year).ok()?, month, day)?;
    let seconds = u64::try_from(days).ok()? * 86_400 + h * 3600 + m * 60 + s;
    SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_secs(seconds))
        .and_then(representable)
}

/// `time` when an HTTP-date can name it and [`format`] write it back
/// unchanged: from 1970-01-01 00:00:00 to 9999-12-31 23:59:59 UTC (a
/// fraction of a second is kept). `None` otherwise: a date an origin or a
/// peer gives outside that span is treated as no date.
pub fn representable(time: SystemTime) -> Option<SystemTime> {
    let since = time.duration_since(SystemTime::UNIX_EPOCH).ok()?;
    (since.as_secs() <= LAST_SECOND).then_some(time)
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) of `time`, brought into
/// the span [`representable`] allows first, so it never panics.
pub fn format(time: SystemTime) -> String {
    httpdate::fmt_http_date(clamp(time))
}

/// `time` within the span [`representable`] allows.
pub fn clamp(time: SystemTime) -> SystemTime {
    let last = SystemTime::UNIX_EPOCH + Duration::from_secs(LAST_SECOND);
    time.clamp(SystemTime::UNIX_EPOCH, last)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm); `None` for a day past the month's end.
fn days_from_civil(year: i64, month: u32, day: u32) -> Option<i64> {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if day > month_days[(month - 1) as usize] {
        return None;
    }
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Option<u64> {
        parse_lenient(text).map(|t| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs())
    }

    #[test]
    fn the_three_forms_in_any_case_with_any_weekday() {
        let expected = Some(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(at("Sun, 06 Nov 1994 08:49:37 GMT"), expected);
        assert_eq!(at("Sunday, 06-Nov-94 08:49:37 GMT"), expected);
        assert_eq!(at("Sun Nov  6 08:49:37 1994"), expected);
        assert_eq!(at("SUN, 06 NOV 1994 08:49:37 gmt"), expected);
        assert_eq!(
            at("Thu, 06 Nov 1994 08:49:37 GMT"),
            expected,
            "weekday ignored"
        );
        assert_eq!(
            at("Thu Aug  8 02:01:18 2050"),
            at("Mon, 08 Aug 2050 02:01:18 GMT")
        );
    }

    #[test]
    fn dates_outside_the_four_digit_years_are_no_dates_and_any_time_formats() {
        assert_eq!(at("Fri, 31 Dec 9999 23:59:59 GMT"), Some(LAST_SECOND));
        assert_eq!(at("Fri, 31 Dec 9999 23:59:60 GMT"), None, "the year 10000");
        assert_eq!(at("Thu, 31 Dec 1969 23:59:59 GMT"), None);
        assert_eq!(at("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        let epoch = SystemTime::UNIX_EPOCH;
        let last = epoch + Duration::from_secs(LAST_SECOND);
        let sixties = epoch - Duration::from_secs(315_360_000);
        let after = last + Duration::from_millis(1500);
        assert_eq!(representable(sixties), None);
        assert_eq!(representable(after), None);
        assert_eq!(representable(last), Some(last));
        assert_eq!(format(sixties), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(format(after), "Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(format(last), "Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(
            format(epoch + Duration::from_secs(784_111_777)),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
    }

    #[test]
    fn garbage_is_not_a_date() {
        for text in [
            "",
            "0",
            "-1",
            "yesterday",
            "Sun, 31 Feb 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 25:00:00 GMT",
            "Sun, 06 Nov 1994",
        ] {
            assert_eq!(at(text), None, "{text}");
        }
    }
}
