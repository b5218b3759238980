//! Timestamps: `SystemTime` in the API, RFC 3339 in UTC to the second
//! (`2026-11-23T10:00:00Z`) in records and in the contract's JSON, without
//! a date-time crate.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The earliest time RFC 3339 can write, 0000-01-01T00:00:00Z, in seconds
/// from the epoch.
const MIN_SECS: i64 = -62_167_219_200;
/// The latest, 9999-12-31T23:59:59Z.
const MAX_SECS: i64 = 253_402_300_799;

/// `t` written as `YYYY-MM-DDTHH:MM:SSZ`, without an allocation. A fraction
/// of a second is dropped; a time outside the years 0000 to 9999, which
/// RFC 3339 cannot write, is written as the nearest one it can.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rfc3339(pub(crate) SystemTime);

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = unix_seconds(self.0).clamp(MIN_SECS, MAX_SECS);
        let (y, m, d) = civil_from_days(secs.div_euclid(86400));
        let rem = secs.rem_euclid(86400);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            rem / 3600,
            rem / 60 % 60,
            rem % 60
        )
    }
}

/// Formats `t` as `YYYY-MM-DDTHH:MM:SSZ` (see [`Rfc3339`]).
#[cfg(test)]
pub(crate) fn rfc3339(t: SystemTime) -> String {
    Rfc3339(t).to_string()
}

/// Now, to the whole second: what a record's `since` can say once written
/// as RFC 3339, so that a record read back equals the one written.
pub(crate) fn rfc3339_now() -> SystemTime {
    let now = SystemTime::now();
    match now.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        // A clock before 1970: not worth a second's precision.
        Err(_) => now,
    }
}

/// Parses an RFC 3339 time: `YYYY-MM-DDTHH:MM:SS`, an optional fraction of
/// a second, and `Z` or an offset `+HH:MM` / `-HH:MM` (`T` and `Z` in
/// either case). Anything else, or a date that does not exist, is `None`.
pub(crate) fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    let digits = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        part.iter().try_fold(0i64, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
        })
    };
    let at = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    if !(at(4, b"-") && at(7, b"-") && at(10, b"Tt") && at(13, b":") && at(16, b":")) {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0u32;
    if at(i, b".") {
        let frac = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if frac == 0 {
            return None;
        }
        for k in 0..9 {
            let digit = if k < frac { b[i + 1 + k] - b'0' } else { 0 };
            nanos = nanos * 10 + u32::from(digit);
        }
        i += 1 + frac;
    }
    let offset = match b.get(i) {
        Some(b'Z' | b'z') if b.len() == i + 1 => 0,
        Some(&sign @ (b'+' | b'-')) if b.len() == i + 6 && at(i + 3, b":") => {
            let (h, m) = (digits(i + 1, 2)?, digits(i + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let minutes = h * 60 + m;
            if sign == b'+' { minutes } else { -minutes }
        }
        _ => return None,
    };
    let secs = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
        - offset * 60;
    let whole = Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 {
        UNIX_EPOCH.checked_add(whole + Duration::from_nanos(nanos.into()))
    } else {
        UNIX_EPOCH
            .checked_sub(whole)?
            .checked_add(Duration::from_nanos(nanos.into()))
    }
}

/// Serde's view of a `SystemTime` field as RFC 3339 text, for
/// `#[serde(with = "crate::time::rfc3339_serde")]`.
pub(crate) mod rfc3339_serde {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(crate) fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&super::Rfc3339(*t))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_rfc3339(&text)
            .ok_or_else(|| D::Error::custom(format!("{text:?} is not an RFC 3339 time")))
    }
}

/// Whole seconds from the epoch to `t`, rounded down (negative before it).
fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => {
            let d = e.duration();
            let s = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            if d.subsec_nanos() > 0 {
                s.saturating_neg().saturating_sub(1)
            } else {
                -s
            }
        }
    }
}

/// Days in `month` (1 to 12) of the proleptic Gregorian `year`.
fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`, public domain).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The inverse of [`civil_from_days`] (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> SystemTime {
        if s >= 0 {
            UNIX_EPOCH + Duration::from_secs(s.unsigned_abs())
        } else {
            UNIX_EPOCH - Duration::from_secs(s.unsigned_abs())
        }
    }

    #[test]
    fn known_dates() {
        for (secs, text) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_795_428_000, "2026-11-23T10:00:00Z"),
            (4_107_542_399, "2100-02-28T23:59:59Z"),
            (-1, "1969-12-31T23:59:59Z"),
            (MIN_SECS, "0000-01-01T00:00:00Z"),
            (MAX_SECS, "9999-12-31T23:59:59Z"),
        ] {
            assert_eq!(rfc3339(at(secs)), text);
            assert_eq!(parse_rfc3339(text), Some(at(secs)), "{text}");
        }
    }

    #[test]
    fn times_rfc3339_cannot_write_are_written_as_the_nearest() {
        assert_eq!(rfc3339(at(MAX_SECS + 1)), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(at(MIN_SECS - 1)), "0000-01-01T00:00:00Z");
        let half = UNIX_EPOCH - Duration::from_millis(500);
        assert_eq!(rfc3339(half), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn offsets_fractions_and_case() {
        let base = at(1_795_428_000);
        for text in [
            "2026-11-23t10:00:00z",
            "2026-11-23T11:30:00+01:30",
            "2026-11-23T08:00:00-02:00",
        ] {
            assert_eq!(parse_rfc3339(text), Some(base), "{text}");
        }
        assert_eq!(
            parse_rfc3339("2026-11-23T10:00:00.25Z"),
            Some(base + Duration::from_millis(250))
        );
        assert_eq!(
            parse_rfc3339("2026-11-23T10:00:00.1234567891Z"),
            Some(base + Duration::from_nanos(123_456_789))
        );
        // A leap second is the next minute's first.
        assert_eq!(
            parse_rfc3339("2016-12-31T23:59:60Z"),
            parse_rfc3339("2017-01-01T00:00:00Z")
        );
    }

    #[test]
    fn everything_else_is_refused() {
        for bad in [
            "",
            "x",
            "2026-11-23",
            "2026-11-23T10:00:00",
            "2026-11-23 10:00:00Z",
            "2026-11-23T10:00Z",
            "2026-11-23T10:00:00.Z",
            "2026-11-23T10:00:00ZZ",
            "2026-11-23T10:00:00+0100",
            "2026-11-23T10:00:00+24:00",
            "2026-13-01T00:00:00Z",
            "2026-00-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-11-23T24:00:00Z",
            "2026-11-23T10:60:00Z",
            "2026-11-23T10:00:61Z",
            "+2026-11-23T10:00:00Z",
            "2026-11-2aT10:00:00Z",
            "２０２６-11-23T10:00:00Z",
            "\u{9b}2J\u{2067}",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
        assert!(parse_rfc3339("2024-02-29T00:00:00Z").is_some());
        assert!(parse_rfc3339("2000-02-29T00:00:00Z").is_some());
        assert!(parse_rfc3339("1900-02-29T00:00:00Z").is_none());
    }

    #[test]
    fn every_second_written_parses_back() {
        let mut s = MIN_SECS;
        while s <= MAX_SECS {
            let t = at(s);
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t), "{s}");
            s += 86_399 * 37 + 12_345;
        }
    }

    #[test]
    fn now_is_the_whole_second_it_is() {
        for _ in 0..3 {
            let before = unix_seconds(SystemTime::now());
            let now = rfc3339_now();
            let after = unix_seconds(SystemTime::now());
            let secs = unix_seconds(now);
            assert!(before <= secs && secs <= after, "{before} {secs} {after}");
            assert_eq!(now, at(secs), "a whole second");
        }
    }
}
