//! Writing to stdout without panicking: Rust ignores SIGPIPE, so a closed
//! pipe (`elect watch | head -1`) is an error to handle, not a crash; and
//! text and JSON that are safe to print on a terminal.

use std::borrow::Cow;
use std::io::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter};

use super::exit::Failure;

/// Whether `c` must not reach a terminal as it is: a control character
/// (C0, DEL, C1: escape sequences, carriage return, new lines, the 8-bit
/// CSI), or an invisible Unicode format character that reorders or hides
/// text (bidirectional overrides, isolates and marks, zero-width space,
/// word joiner and invisible operators, byte order mark, line and
/// paragraph separators, interlinear annotation marks). The zero-width
/// joiner and non-joiner stay: emoji sequences and some scripts need them.
pub(crate) fn unsafe_on_terminal(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200B}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
        )
}

/// Text from a holder's record (or anywhere else not trusted) made safe to
/// show on a terminal: every character that [`unsafe_on_terminal`] names
/// becomes a space, so that a forged record can neither send escape
/// sequences nor start a line of its own. Borrows when nothing needed
/// replacing. JSON output needs none of this: see [`json`].
pub(crate) fn printable(text: &str) -> Cow<'_, str> {
    if text.chars().any(unsafe_on_terminal) {
        Cow::Owned(
            text.chars()
                .map(|c| if unsafe_on_terminal(c) { ' ' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(text)
    }
}

/// What writing to stdout found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Written {
    /// The text was written and flushed.
    Yes,
    /// Nobody reads stdout any more.
    Closed,
}

/// Writes `text` to stdout and flushes it. A closed stdout is reported as
/// [`Written::Closed`]; any other error is a failure.
pub(crate) fn write(text: &str) -> Result<Written, Failure> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(Written::Yes),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Written::Closed),
        Err(e) => Err(Failure::internal(format!("cannot write to stdout: {e}"))),
    }
}

/// Writes `text` to stdout; a closed stdout is not an error.
pub(crate) fn print(text: &str) -> Result<(), Failure> {
    write(text).map(drop)
}

/// `t` as RFC 3339 in UTC, to the second (`2026-11-23T10:00:00Z`), as the
/// library writes it in JSON. The library's times come from the clock or
/// from a record's RFC 3339 text, so they lie in the years 0000 to 9999;
/// one outside them is written as the nearest one inside.
pub(crate) fn timestamp(t: SystemTime) -> String {
    // 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z.
    let (first, last) = (-62_167_219_200_i64, 253_402_300_799_i64);
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(last),
        Err(e) => {
            let d = e.duration();
            let whole = i64::try_from(d.as_secs()).unwrap_or(-first);
            -whole - i64::from(d.subsec_nanos() > 0)
        }
    }
    .clamp(first, last);
    // Days since 1970-01-01 to a proleptic Gregorian date (Howard
    // Hinnant's `civil_from_days`, public domain).
    let z = secs.div_euclid(86400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let rem = secs.rem_euclid(86400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// `value` as one line of JSON, with every character that must not reach a
/// terminal as it is (see [`unsafe_on_terminal`]) written as a
/// `\uXXXX` escape. JSON itself escapes only C0 controls; a record's text
/// may also hold DEL, C1 controls (the 8-bit CSI) or bidirectional
/// overrides, which a terminal would act on. The escaped text parses back
/// to exactly the same string.
pub(crate) fn json<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    let mut out = Vec::new();
    value.serialize(&mut serde_json::Serializer::with_formatter(
        &mut out,
        TerminalSafe,
    ))?;
    // serde_json writes valid UTF-8.
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// serde_json's compact output, with the string fragments it does not
/// escape itself scanned for characters unsafe on a terminal.
struct TerminalSafe;

impl Formatter for TerminalSafe {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut rest = fragment;
        while let Some((at, c)) = rest.char_indices().find(|&(_, c)| unsafe_on_terminal(c)) {
            writer.write_all(&rest.as_bytes()[..at])?;
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                write!(writer, "\\u{unit:04x}")?;
            }
            rest = &rest[at + c.len_utf8()..];
        }
        CompactFormatter.write_string_fragment(writer, rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_as_the_library_writes_them_in_json() {
        use std::time::Duration;
        let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
        assert_eq!(timestamp(at(0)), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(at(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(timestamp(at(1_795_428_000)), "2026-11-23T10:00:00Z");
        assert_eq!(timestamp(at(4_107_542_399)), "2100-02-28T23:59:59Z");
        assert_eq!(timestamp(at(1 << 40)), "9999-12-31T23:59:59Z");
        let before = UNIX_EPOCH - Duration::from_millis(500);
        assert_eq!(timestamp(before), "1969-12-31T23:59:59Z");
        // Against the library's own JSON of a record it wrote.
        let dir = tempfile::tempdir().unwrap();
        let e = elect::Election::builder("t")
            .dir(dir.path())
            .build()
            .unwrap();
        let record = e.obtain().unwrap().record();
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["since"], timestamp(record.since));
    }

    #[test]
    fn hostile_text_is_shown_defanged() {
        assert_eq!(printable("\x1b]0;pwned\x07 ok\r\n"), " ]0;pwned  ok  ");
        assert_eq!(printable("rtl \u{202E}txt.exe"), "rtl  txt.exe");
        assert_eq!(printable("\x1b[2Jboom\nline\x7f"), " [2Jboom line ");
        assert_eq!(printable("\u{9b}2J\u{2067}"), " 2J ");
        assert!(unsafe_on_terminal('\x1b') && !unsafe_on_terminal('é'));
    }

    #[test]
    fn ordinary_text_is_shown_as_it_is() {
        for ok in [
            "2026-11-23T10:00:00Z",
            "sh -c 'echo \"hi\"'",
            "Привет мир",
            "日本語",
            "👩‍👩‍👧 family",
            "a\u{200D}b",
        ] {
            assert!(
                matches!(printable(ok), Cow::Borrowed(s) if s == ok),
                "{ok:?}"
            );
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        #[test]
        fn shown_text_has_no_control_nor_reordering_character(text in proptest::prelude::any::<String>()) {
            let shown = printable(&text);
            proptest::prop_assert!(!shown.chars().any(|c| c.is_control() || ('\u{202A}'..='\u{202E}').contains(&c) || ('\u{2066}'..='\u{2069}').contains(&c)), "{:?}", shown);
            proptest::prop_assert_eq!(shown.chars().count(), text.chars().count());
        }
    }

    #[test]
    fn json_escapes_what_a_terminal_would_act_on_and_parses_back_exactly() {
        let text = "a\x1b[2J\u{7f}\u{9b}\u{202e}\u{1F600}é\"\\\n";
        let out = json(&text).unwrap();
        assert_eq!(
            out,
            "\"a\\u001b[2J\\u007f\\u009b\\u202e\u{1F600}é\\\"\\\\\\n\""
        );
        assert!(!out.chars().any(unsafe_on_terminal), "{out:?}");
        assert_eq!(serde_json::from_str::<String>(&out).unwrap(), text);
    }
}
