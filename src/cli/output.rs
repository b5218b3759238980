//! Writing to stdout without panicking: Rust ignores SIGPIPE, so a closed
//! pipe (`elect watch | head -1`) is an error to handle, not a crash; and
//! JSON that is safe to print on a terminal.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter};

use elect::__cli::unsafe_on_terminal;

use super::exit::Failure;

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

/// `value` as one line of JSON, with every character that must not reach a
/// terminal as it is (see `elect::__cli::unsafe_on_terminal`) written as a
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
