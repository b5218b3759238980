//! Property tests for every parser of outside data in the library:
//! resource names, holder records, the token file, the tickets file and
//! `/proc/locks`. Whatever the input, each returns a value or an error;
//! none panics, and the accepted inputs are exactly the documented ones. A
//! record's text is kept exactly. (The command line's own parsers, of
//! durations, and its cleaning of text for a terminal, have theirs in
//! src/cli.)
//!
//! More cases: `PROPTEST_CASES=100000 cargo test --test fuzz_parsers`.

use elect::__fuzz::{
    count_proc_locks, is_valid_name, parse_record, parse_tickets_file, parse_token_file,
};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn names_never_panic_and_accept_only_the_contract_alphabet(s in "\\PC{0,140}|[A-Za-z0-9._-]{0,140}") {
        let ok = is_valid_name(&s);
        let expected = !s.is_empty()
            && s.len() <= 128
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        prop_assert_eq!(ok, expected, "{:?}", s);
    }

    #[test]
    fn names_from_raw_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let s = String::from_utf8_lossy(&bytes);
        let _ = is_valid_name(&s);
    }

    #[test]
    fn records_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse_record(&bytes);
    }

    #[test]
    fn record_like_json_never_panics(
        pid in any::<i64>(), token in any::<i128>(), label in "\\PC{0,50}", extra in "\\PC{0,20}"
    ) {
        let text = format!(r#"{{"pid":{pid},"since":"x","label":{label:?},"token":{token}}}{extra}"#);
        if let Some(r) = parse_record(text.as_bytes()) {
            prop_assert_eq!(u64::from(r.pid) as i64, pid);
            prop_assert_eq!(i128::from(r.token), token);
        }
    }

    #[test]
    fn record_text_is_kept_exactly(label in any::<String>()) {
        let text = serde_json::json!({"pid": 1, "since": "2026-11-23T10:00:00Z", "label": label, "token": 2}).to_string();
        let r = parse_record(text.as_bytes());
        // A record longer than a slot file elect reads is not parsed at all.
        prop_assume!(r.is_some());
        prop_assert_eq!(&r.unwrap().label, &label);
    }

    #[test]
    fn record_times_never_panic(since in "\\PC{0,30}|[0-9]{1,5}-[0-9]{1,2}-[0-9]{1,2}[Tt ][0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(\\.[0-9]{0,12})?([Zz]|[+-][0-9]{2}:[0-9]{2}|)") {
        let text = serde_json::json!({"pid": 1, "since": since, "label": "", "token": 2}).to_string();
        let _ = parse_record(text.as_bytes());
    }

    #[test]
    fn record_times_as_elect_writes_them_read_back_exactly(
        since in "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z"
    ) {
        let text = serde_json::json!({"pid": 1, "since": since, "label": "", "token": 2}).to_string();
        let day: u32 = since[8..10].parse().unwrap();
        match parse_record(text.as_bytes()) {
            Some(r) => prop_assert_eq!(&serde_json::to_value(&r).unwrap()["since"], &since),
            // Only a day that its month does not have is refused.
            None => prop_assert!(day >= 29, "{}", since),
        }
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
