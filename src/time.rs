//! RFC 3339 timestamps in UTC, to the second, without a date-time crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// Formats `t` as `YYYY-MM-DDTHH:MM:SSZ`. Times before 1970 print as the epoch.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// [`rfc3339`] of now. The text changes once a second, and every
/// acquisition asks for it between the kernel's hand-off and the holder's
/// ticket, so the last one made is kept and only copied while the second
/// lasts.
pub(crate) fn rfc3339_now() -> String {
    use std::sync::Mutex;
    static LAST: Mutex<(u64, String)> = Mutex::new((u64::MAX, String::new()));
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    if last.0 != secs {
        *last = (secs, rfc3339(now));
    }
    last.1.clone()
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn known_dates() {
        let at = |s| rfc3339(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(4_107_542_399), "2100-02-28T23:59:59Z");
    }

    #[test]
    fn now_is_the_second_it_is() {
        for _ in 0..3 {
            let before = rfc3339(SystemTime::now());
            let now = rfc3339_now();
            let after = rfc3339(SystemTime::now());
            assert!(before <= now && now <= after, "{before} {now} {after}");
        }
    }
}
