//! The fencing-token counter of a resource: the file `token` beside the
//! slots, holding the last token issued as 20 decimal digits and a newline.
//!
//! Every acquisition takes the next number under an exclusive flock on the
//! file, so tokens strictly increase across all slots and processes. The
//! counter of a new file starts at the wall clock in microseconds, not at 1:
//! when a /tmp cleaner or an operator removes the run directory, tokens
//! issued afterwards still exceed those issued before (unless the clock was
//! set back or more than a million tokens a second were issued), so a
//! downstream system fencing on them is not locked out by a reset.

use std::io::Write;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use super::fsx;
use crate::error::{Error, Result};
use crate::interrupt::Interrupter;

/// The file name of the counter inside a resource directory.
pub(crate) const TOKEN_FILE: &str = "token";

/// Width of the stored number; with the newline every write is 21 bytes, so
/// the file never changes length and a write is never torn.
const WIDTH: usize = 20;

/// Parses the counter file's contents: `Ok(None)` for a new, empty file,
/// `Ok(Some(n))` for a number, `Err(why)` for anything else.
///
/// ```
/// # use elect::__fuzz::parse_token_file as parse;
/// assert_eq!(parse(b""), Ok(None));
/// assert_eq!(parse(b"00000000000000000042\n"), Ok(Some(42)));
/// assert!(parse(b"42x").is_err());
/// ```
pub fn parse_token_file(bytes: &[u8]) -> std::result::Result<Option<u64>, &'static str> {
    if bytes.is_empty() {
        return Ok(None);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "not text")?;
    let digits = text.strip_suffix('\n').unwrap_or(text);
    if digits.is_empty() || digits.len() > WIDTH || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("not a number of at most 20 digits");
    }
    digits.parse().map(Some).map_err(|_| "larger than u64")
}

/// Issues the next token from the counter file open at `fd` (in the
/// resource directory `dir_path`). The caller keeps other threads of this
/// process out: they may share `fd`, and flock does not exclude holders of
/// the same open file description.
pub(crate) fn next_token(fd: BorrowedFd<'_>, dir_path: &Path, intr: &Interrupter) -> Result<u64> {
    let path = || dir_path.join(TOKEN_FILE);
    // Nobody else takes a token at this moment, mostly: then a try is
    // enough, and the interruptible wait (whose bookkeeping costs system
    // calls of its own) is only for when someone does.
    let free = fsx::try_flock(fd, true).map_err(|e| Error::io("cannot lock", path(), e))?;
    if !free {
        match intr.lock_exclusive(fd) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Error::io("cannot lock", path(), e)),
            Err(_) => return Err(Error::Cancelled),
        }
    }
    // Unlocked on every way out; LOCK_UN makes no inotify event, which is
    // fine: nobody waits on this file's events.
    struct Unlock<'a>(BorrowedFd<'a>);
    impl Drop for Unlock<'_> {
        fn drop(&mut self) {
            // SAFETY: plain syscall on a borrowed descriptor.
            unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
        }
    }
    let _unlock = Unlock(fd);
    // On the stack, like the text written below: this runs between the
    // kernel's hand-off and the new holder's ticket. A file of 64 bytes or
    // more is no counter of ours, and its first 64 bytes show that.
    let mut buf = [0u8; 64];
    let bytes = fsx::read_into(fd, &mut buf).map_err(|e| Error::io("cannot read", path(), e))?;
    let last = match parse_token_file(bytes) {
        Ok(Some(n)) => n,
        Ok(None) => clock_seed(),
        Err(_) => {
            return Err(Error::TokenDamaged {
                path: path(),
                content: String::from_utf8_lossy(bytes).into_owned(),
            });
        }
    };
    let next = last
        .checked_add(1)
        .ok_or_else(|| Error::TokenExhausted { path: path() })?;
    // Always 21 bytes at offset 0: the file keeps its length (a shorter,
    // hand-repaired number is simply overwritten by the longer form).
    let mut text = [0u8; WIDTH + 1];
    writeln!(&mut text[..], "{next:0WIDTH$}").expect("a u64 has at most 20 digits");
    // SAFETY: text is valid for its length.
    let n = unsafe { libc::pwrite(fd.as_raw_fd(), text.as_ptr().cast(), text.len(), 0) };
    if n != text.len() as isize {
        let err = if n < 0 {
            std::io::Error::last_os_error()
        } else {
            std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                "short write (is the disk full?)",
            )
        };
        return Err(Error::io("cannot write", path(), err));
    }
    Ok(next)
}

/// Microseconds since the Unix epoch: where a new counter starts.
fn clock_seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_only_the_format() {
        assert_eq!(parse_token_file(b""), Ok(None));
        assert_eq!(parse_token_file(b"7"), Ok(Some(7)));
        assert_eq!(
            parse_token_file(b"18446744073709551615\n"),
            Ok(Some(u64::MAX))
        );
        for bad in [
            &b"\n"[..],
            b"-1",
            b" 1",
            b"1 ",
            b"18446744073709551616",
            b"1\n\n",
            b"\xff",
            b"000000000000000000001",
        ] {
            assert!(parse_token_file(bad).is_err(), "{bad:?}");
        }
    }
}
