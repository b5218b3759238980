//! Property tests for every parser of outside data: resource names,
//! durations, holder records, the token file, the tickets file and
//! `/proc/locks`. Whatever the input, each returns a value or an error;
//! none panics, and the accepted inputs are exactly the documented ones. A
//! record's text is kept exactly, and `printable` shows it without control
//! or bidirectional-override characters.
//!
//! More cases: `PROPTEST_CASES=100000 cargo test --test fuzz_parsers`.

use std::time::Duration;

use elect::__fuzz::{count_proc_locks, parse_tickets_file, parse_token_file};
use elect::{HolderRecord, parse_duration, printable, validate_name};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn names_never_panic_and_accept_only_the_contract_alphabet(s in "\\PC{0,140}|[A-Za-z0-9._-]{0,140}") {
        let ok = validate_name(&s).is_ok();
        let expected = !s.is_empty()
            && s.len() <= 128
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        prop_assert_eq!(ok, expected, "{:?}", s);
    }

    #[test]
    fn names_from_raw_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let s = String::from_utf8_lossy(&bytes);
        let _ = validate_name(&s);
    }

    #[test]
    fn durations_never_panic(s in "\\PC{0,40}|[0-9.]{0,25}(ms|s|m|h|d|x|)") {
        if let Ok(d) = parse_duration(&s) {
            prop_assert!(d <= elect::MAX_DURATION);
        }
    }

    #[test]
    fn durations_round_trip_whole_units(n in 0u64..1_000_000, unit in 0usize..4) {
        let (suffix, scale) = [("ms", 1u64), ("s", 1000), ("m", 60_000), ("h", 3_600_000)][unit];
        let d = parse_duration(&format!("{n}{suffix}"));
        let millis = n * scale;
        if millis <= elect::MAX_DURATION.as_millis() as u64 {
            prop_assert_eq!(d.unwrap(), Duration::from_millis(millis));
        } else {
            prop_assert!(d.is_err());
        }
    }

    #[test]
    fn records_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = HolderRecord::parse(&bytes);
    }

    #[test]
    fn record_like_json_never_panics(
        pid in any::<i64>(), token in any::<i128>(), label in "\\PC{0,50}", extra in "\\PC{0,20}"
    ) {
        let text = format!(r#"{{"pid":{pid},"since":"x","label":{label:?},"token":{token}}}{extra}"#);
        if let Some(r) = HolderRecord::parse(text.as_bytes()) {
            prop_assert!(!printable(&r.label).chars().any(char::is_control));
        }
    }

    #[test]
    fn record_text_is_kept_exactly_and_shown_without_controls(since in any::<String>(), label in any::<String>()) {
        let text = serde_json::json!({"pid": 1, "since": since, "label": label, "token": 2}).to_string();
        let r = HolderRecord::parse(text.as_bytes());
        // A record longer than a slot file elect reads is not parsed at all.
        prop_assume!(r.is_some());
        let r = r.unwrap();
        prop_assert_eq!(&r.since, &since);
        prop_assert_eq!(&r.label, &label);
        for shown in [printable(&r.since), printable(&r.label)] {
            prop_assert!(!shown.chars().any(|c| c.is_control() || ('\u{202A}'..='\u{202E}').contains(&c) || ('\u{2066}'..='\u{2069}').contains(&c)), "{:?}", shown);
        }
        prop_assert_eq!(printable(&label).chars().count(), label.chars().count());
    }

    #[test]
    fn token_files_never_panic_and_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..40), n in any::<u64>()) {
        let _ = parse_token_file(&bytes);
        prop_assert_eq!(parse_token_file(format!("{n:020}\n").as_bytes()), Ok(Some(n)));
    }

    #[test]
    fn tickets_files_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40), n in 0u32..10_000) {
        let _ = parse_tickets_file(&bytes);
        let parsed = parse_tickets_file(format!("{n}\n").as_bytes());
        prop_assert_eq!(parsed, (1..=elect::MAX_TICKETS).contains(&n).then_some(n));
    }

    #[test]
    fn proc_locks_never_panics(text in "(\\PC{0,80}\n){0,8}|([0-9]+: (-> )?(FLOCK|POSIX) +ADVISORY +(READ|WRITE) -?[0-9]{1,6} [0-9a-f:]{0,12}:[0-9]{0,12} [0-9]+ (EOF|[0-9]+)\n){0,8}") {
        let _ = count_proc_locks(&text);
    }
}
