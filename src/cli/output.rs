//! Writing to stdout without panicking: Rust ignores SIGPIPE, so a closed
//! pipe (`elect watch | head -1`) is an error to handle, not a crash.

use std::io::Write;

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
