//! The fencing-token counter of a resource: the file `token` beside the
//! slots, holding the last token issued as 20 decimal digits and a newline.
//!
//! Tokens strictly increase across every acquisition of any slot, by any
//! process: the next one is taken under an exclusive flock on the file
//! (tried without blocking, so that a stopped holder of the lock can delay
//! an acquisition but never make it miss its deadline), read, and written
//! back with one `pwrite` of the fixed 21 bytes: no truncation, and no moment
//! at which the file holds anything but the old value or the new.
//!
//! The next token is the larger of the last one plus one and the wall clock
//! in microseconds. So a new or emptied file (a first use, a /tmp cleaner,
//! a truncation) starts above every token issued before, unless tokens were
//! issued faster than one a microsecond or the clock was set back. A file
//! that holds anything else is [`Error::TokenDamaged`], never a reset.

use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::ResourceDir;
use crate::error::{Error, Result};
use crate::interrupt::Interrupter;
use crate::store::safe_open::{self, Access};

/// The file name of the counter inside a resource directory.
pub(crate) const TOKEN_FILE: &str = "token";

/// The length of the counter's text: 20 digits and a newline.
const LEN: usize = 21;

/// How long to wait before trying the counter's lock again.
const LOCK_PAUSE: Duration = Duration::from_millis(1);

/// The first 8 bytes of the counter in the form older versions mapped into
/// memory, still read so that their files carry on.
const OLD_MAGIC: [u8; 8] = *b"elect\0t1";

/// Parses the counter file's contents: `Ok(None)` for a new, empty file,
/// `Ok(Some(n))` for the last token issued (decimal digits and an optional
/// newline, as elect writes it or a person repairing it would; or the
/// 16-byte form of older versions), `Err(why)` for anything else.
///
/// ```
/// # use elect::__fuzz::parse_token_file as parse;
/// assert_eq!(parse(b""), Ok(None));
/// assert_eq!(parse(b"00000000000000000042\n"), Ok(Some(42)));
/// assert_eq!(parse(b"7"), Ok(Some(7)));
/// assert!(parse(b"42x").is_err());
/// ```
pub fn parse_token_file(bytes: &[u8]) -> std::result::Result<Option<u64>, &'static str> {
    if bytes.is_empty() {
        return Ok(None);
    }
    if let Some(rest) = bytes.strip_prefix(&OLD_MAGIC) {
        let n: [u8; 8] = rest.try_into().map_err(|_| "not 16 bytes long")?;
        return Ok(Some(u64::from_ne_bytes(n)));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "not text")?;
    let digits = text.strip_suffix('\n').unwrap_or(text);
    if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("not a number of at most 20 digits");
    }
    digits.parse().map(Some).map_err(|_| "larger than u64")
}

/// Microseconds since the Unix epoch.
fn clock_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Takes the next token of the resource in `res`. `mode` is the mode of the
/// files elect makes there (see `safe_open::open_file`). Waits for the counter's
/// lock only as long as `intr` allows.
pub(super) fn next(res: &ResourceDir, mode: u32, intr: &Interrupter) -> Result<u64> {
    let path = res.path.join(TOKEN_FILE);
    let (file, _, len) = safe_open::open_file_sized(
        res.fd.as_fd(),
        &res.path,
        TOKEN_FILE,
        Access::ReadWriteCreate,
        mode,
    )?;
    let fd = file.as_fd();
    while !safe_open::try_flock(fd, true).map_err(|e| Error::io("cannot lock", &path, e))? {
        intr.pause(LOCK_PAUSE).map_err(|_| Error::Cancelled)?;
    }
    // Unlocked before the descriptor closes on every way out, so that a
    // child forked meanwhile by another thread cannot keep the lock.
    struct Unlock<'a>(std::os::fd::BorrowedFd<'a>);
    impl Drop for Unlock<'_> {
        fn drop(&mut self) {
            // SAFETY: plain syscall on a borrowed descriptor.
            unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
        }
    }
    let _unlock = Unlock(fd);
    let mut buf = [0u8; 64];
    let bytes =
        safe_open::read_into(fd, &mut buf).map_err(|e| Error::io("cannot read", &path, e))?;
    let last = parse_token_file(bytes).map_err(|why| damaged(&path, bytes, why))?;
    let token = match last {
        Some(last) => last
            .checked_add(1)
            .ok_or_else(|| Error::TokenExhausted { path: path.clone() })?
            .max(clock_micros()),
        None => clock_micros(),
    };
    let text = format!("{token:020}\n");
    debug_assert_eq!(text.len(), LEN);
    // One write of the fixed length; longer contents (the 16 bytes of an
    // older version are shorter, a person's repair may be either) are cut.
    let written =
        safe_open::overwrite_from(fd, &path, text.as_bytes(), len.max(bytes.len() as u64));
    match written {
        Err(Error::Io { ref source, .. })
            if safe_open::is_no_space(source) && from_clock(token) =>
        {
            // A full file system (a new counter's first bytes need room):
            // the token came from the clock, and the next one will too,
            // once the clock has passed this one, which it has before the
            // lock is let go. A new counter is left empty, as it was.
            if bytes.is_empty() {
                // SAFETY: plain syscall on a borrowed descriptor.
                unsafe { libc::ftruncate(fd.as_raw_fd(), 0) };
            }
            Ok(token)
        }
        Err(e) => Err(e),
        Ok(()) => Ok(token),
    }
}

/// Whether `token` was taken from the clock rather than from the counter,
/// waiting (at most a millisecond, holding the counter's lock) until the
/// clock has passed it: then the next token, which the clock gives too
/// when the counter could not be written, is larger.
fn from_clock(token: u64) -> bool {
    let now = clock_micros();
    if now < token {
        // The counter is ahead of the clock: only the counter knows.
        return false;
    }
    let end = std::time::Instant::now() + Duration::from_millis(1);
    while clock_micros() <= token {
        if std::time::Instant::now() > end {
            return false;
        }
        std::hint::spin_loop();
    }
    true
}

/// The error for a counter file that holds something else.
fn damaged(path: &Path, bytes: &[u8], _why: &'static str) -> Error {
    let shown: String = String::from_utf8_lossy(&bytes[..bytes.len().min(24)])
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    Error::TokenDamaged {
        path: path.to_path_buf(),
        content: shown,
    }
}

/// The last token issued for the resource in `res`, for display; 0 when
/// there is none or it cannot be read.
pub(super) fn last_issued(res: &ResourceDir) -> u64 {
    safe_open::read_to_show(res.fd.as_fd(), TOKEN_FILE, 64)
        .ok()
        .and_then(|b| parse_token_file(&b).ok().flatten())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counter_file_forms() {
        assert_eq!(parse_token_file(b""), Ok(None));
        assert_eq!(parse_token_file(b"7"), Ok(Some(7)));
        assert_eq!(
            parse_token_file(b"18446744073709551615\n"),
            Ok(Some(u64::MAX))
        );
        let mut old = OLD_MAGIC.to_vec();
        old.extend_from_slice(&7u64.to_ne_bytes());
        assert_eq!(parse_token_file(&old), Ok(Some(7)));
        for bad in [
            &b"x"[..],
            b"\n",
            b"18446744073709551616",
            b"123456789012345678901",
            b"-1",
            b"1 ",
        ] {
            assert!(parse_token_file(bad).is_err(), "{bad:?}");
        }
    }
}
