//! Durations as users write them on the command line: `250ms`, `3s`, `2m`.

use std::time::Duration;

/// The longest duration accepted: about 31 years. Anything longer is almost
/// certainly a typo, and refusing it keeps deadline arithmetic from
/// overflowing.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(1_000_000_000);

/// Parses a duration: a decimal number followed by an optional unit, `ms`,
/// `s`, `m`, `h` or `d`. A bare number is seconds; a fraction is allowed
/// (`1.5s`, `0.25`). Negative numbers, exponents and anything above
/// [`MAX_DURATION`] are refused, with a message that names the input and
/// says what to write instead.
pub(crate) fn parse_duration(input: &str) -> Result<Duration, String> {
    let bad = |reason: &str| {
        Err(format!(
            "invalid duration {input:?}: {reason}; write e.g. 250ms, 3s, 2m, 1h or a bare number of seconds"
        ))
    };
    let text = input.trim();
    if text.is_empty() {
        return bad("it is empty");
    }
    if text.starts_with('-') {
        return bad("it is negative");
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let nanos_per_unit: u128 = match unit {
        "ms" => 1_000_000,
        "" | "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3600 * 1_000_000_000,
        "d" => 86400 * 1_000_000_000,
        _ => return bad("the unit must be one of ms, s, m, h, d"),
    };
    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    if whole.is_empty() && fraction.is_empty() {
        return bad("it has no number");
    }
    if fraction.contains('.') {
        return bad("it has more than one decimal point");
    }
    if whole.len() > 20 || fraction.len() > 9 {
        return bad("it is too long");
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        match whole.parse() {
            Ok(w) => w,
            Err(_) => return bad("it is not a number"),
        }
    };
    // The fraction as a count of 10^-9 units, scaled by the unit afterwards.
    let frac_digits = format!("{fraction:0<9}");
    let frac: u128 = match frac_digits.parse() {
        Ok(f) => f,
        Err(_) => return bad("it is not a number"),
    };
    let nanos = whole
        .checked_mul(nanos_per_unit)
        .and_then(|n| n.checked_add(frac * nanos_per_unit / 1_000_000_000));
    match nanos {
        Some(n) if n <= MAX_DURATION.as_nanos() => {
            Ok(Duration::from_nanos(u64::try_from(n).expect("bounded")))
        }
        _ => bad("it is longer than 1000000000 seconds"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("0ms").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse_duration(".5").unwrap(), Duration::from_millis(500));
        assert_eq!(
            parse_duration("1.25ms").unwrap(),
            Duration::from_micros(1250)
        );
        assert_eq!(parse_duration(" 3s ").unwrap(), Duration::from_secs(3));
    }

    #[test]
    fn refusals() {
        for bad in [
            "",
            " ",
            "-1",
            "-1s",
            "abc",
            "1e9h",
            "1e3",
            "1.2.3",
            ".",
            "s",
            "3 s",
            "3sec",
            "1000000001",
            "99999999999999999999999h",
            "1.0000000001s",
            "+3",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert!(parse_duration("1000000000").is_ok());
        assert_eq!(parse_duration("1000000000s").unwrap(), MAX_DURATION);
    }

    #[test]
    fn a_refusal_names_the_input_and_what_to_write() {
        let why = parse_duration("soon").unwrap_err();
        assert!(why.starts_with("invalid duration \"soon\": "), "{why}");
        assert!(why.ends_with("write e.g. 250ms, 3s, 2m, 1h or a bare number of seconds"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        #[test]
        fn never_panics_nor_exceeds_the_limit(s in "\\PC{0,40}|[0-9.]{0,25}(ms|s|m|h|d|x|)") {
            if let Ok(d) = parse_duration(&s) {
                proptest::prop_assert!(d <= MAX_DURATION);
            }
        }

        #[test]
        fn whole_units_round_trip(n in 0u64..1_000_000, unit in 0usize..4) {
            let (suffix, scale) = [("ms", 1u64), ("s", 1000), ("m", 60_000), ("h", 3_600_000)][unit];
            let d = parse_duration(&format!("{n}{suffix}"));
            let millis = n * scale;
            if millis <= MAX_DURATION.as_millis() as u64 {
                proptest::prop_assert_eq!(d.unwrap(), Duration::from_millis(millis));
            } else {
                proptest::prop_assert!(d.is_err());
            }
        }
    }
}
