//! The fencing-token counter of a resource: the file `token` beside the
//! slots, holding a magic number and the last token issued.
//!
//! Tokens must strictly increase across every acquisition of any slot, by
//! any process. Every process using the resource maps the file's first page
//! shared, so all of them see one number in the page cache, and takes the
//! next token with one compare-and-swap on it: no system call and no lock
//! between the kernel's hand-off of a slot and its new holder's ticket
//! (under an exclusive flock, as this counter was kept before, a token cost
//! four: lock, read, write, unlock).
//!
//! The file is 16 bytes: 8 bytes of [`MAGIC`], then the counter, a 64-bit
//! integer in the host's byte order (the file is only ever shared by
//! processes of one host). Anything else in it (an empty file, a decimal
//! number that a person wrote to repair it) is taken up under an exclusive
//! flock, by one process, before the mapping is trusted again; what cannot
//! be read as a number is [`Error::TokenDamaged`], never a reset.
//!
//! The counter of a new file starts at the wall clock in microseconds, not
//! at 1: when a /tmp cleaner or an operator removes the run directory,
//! tokens issued afterwards still exceed those issued before (unless the
//! clock was set back or more than a million tokens a second were issued),
//! so a downstream system fencing on them is not locked out by a reset.
//!
//! Where the file cannot be mapped (a file system without shared mappings,
//! a system other than Linux), every process using it takes tokens the old
//! way, under the flock, reading and writing the same 16 bytes.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
#[cfg(target_os = "linux")]
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::fsx;
use crate::error::{Error, Result};
use crate::interrupt::Interrupter;

/// The file name of the counter inside a resource directory.
pub(crate) const TOKEN_FILE: &str = "token";

/// The first 8 bytes of a counter file in its mapped form. The NUL keeps
/// it from ever being read as the decimal form.
const MAGIC: [u8; 8] = *b"elect\0t1";

/// Length of the mapped form: the magic, then the counter.
const LEN: usize = 16;

/// Offset of the counter in the file.
const COUNTER: usize = 8;

/// Parses the counter file's contents: `Ok(None)` for a new, empty file,
/// `Ok(Some(n))` for the last token issued, in the mapped form (the magic
/// and a 64-bit number) or as a decimal number and an optional newline (as
/// a person repairing it would write it), `Err(why)` for anything else.
///
/// ```
/// # use elect::__fuzz::parse_token_file as parse;
/// assert_eq!(parse(b""), Ok(None));
/// assert_eq!(parse(b"00000000000000000042\n"), Ok(Some(42)));
/// let mut mapped = b"elect\0t1".to_vec();
/// mapped.extend_from_slice(&42u64.to_ne_bytes());
/// assert_eq!(parse(&mapped), Ok(Some(42)));
/// assert!(parse(b"42x").is_err());
/// ```
pub fn parse_token_file(bytes: &[u8]) -> std::result::Result<Option<u64>, &'static str> {
    if bytes.is_empty() {
        return Ok(None);
    }
    if let Some(rest) = bytes.strip_prefix(&MAGIC) {
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

/// The counter of one resource, open (and, where it can be, mapped) by this
/// process.
#[derive(Debug)]
pub(crate) struct Counter {
    fd: OwnedFd,
    /// The file's path, for error messages.
    path: PathBuf,
    /// The file's first page, mapped shared; `None`: tokens are taken
    /// under the flock.
    #[cfg(target_os = "linux")]
    page: Option<crate::sys::SharedPage>,
    /// True until the file was found in the mapped form once: a new file
    /// is empty, and a mapping of an empty file must not be touched (the
    /// page lies beyond the end of the file: SIGBUS).
    #[cfg(target_os = "linux")]
    unchecked: AtomicBool,
    /// flock is per open file description, so threads of this process
    /// sharing `fd` would not exclude each other: they take this too.
    in_process: Mutex<()>,
}

impl Counter {
    /// The counter in the file open (read-write) at `fd`, at `path`, which
    /// was `len` bytes long when opened.
    pub(crate) fn new(fd: OwnedFd, path: PathBuf, len: u64) -> Result<Counter> {
        #[cfg(target_os = "linux")]
        let page = match crate::sys::SharedPage::map(fd.as_fd()) {
            Ok(page) => Some(page),
            // A file system that cannot map files: so it is for every
            // process using this file, and all of them take the flock.
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => None,
            Err(e) => return Err(Error::io("cannot map", &path, e)),
        };
        #[cfg(target_os = "linux")]
        let mapped = page.is_some();
        #[cfg(not(target_os = "linux"))]
        let (mapped, _) = (false, len);
        // Reading the counter under the flock must not update its access
        // time: relatime would otherwise write the inode on every token.
        // A mapped counter is read under the flock only to take the file
        // up, which is rare: two system calls saved.
        if !mapped {
            fsx::set_noatime(fd.as_fd());
        }
        Ok(Counter {
            fd,
            path,
            #[cfg(target_os = "linux")]
            page,
            #[cfg(target_os = "linux")]
            unchecked: AtomicBool::new(len != LEN as u64),
            in_process: Mutex::new(()),
        })
    }

    /// Issues the next token. `intr` interrupts a wait for the flock, which
    /// only happens while someone else takes up the file.
    pub(crate) fn next(&self, intr: &Interrupter) -> Result<u64> {
        #[cfg(target_os = "linux")]
        if let Some(page) = &self.page {
            loop {
                if !self.unchecked.load(Ordering::Relaxed)
                    && let Some(token) = self.take_mapped(page)?
                {
                    return Ok(token);
                }
                // Not in the mapped form, or the page was lost to a
                // truncation: take the file up, then try again.
                self.locked(intr, |fd, last| {
                    if page.was_lost() {
                        page.remap(fd)
                            .map_err(|e| Error::io("cannot map", &self.path, e))?;
                    }
                    Ok(last)
                })?;
                self.unchecked.store(false, Ordering::Relaxed);
            }
        }
        self.locked(intr, |_, last| {
            last.checked_add(1).ok_or_else(|| Error::TokenExhausted {
                path: self.path.clone(),
            })
        })
    }

    /// Writes the mapped counter without changing it,
    /// so that the page is mapped writable in this process before a wait
    /// and the token taken after the hand-off costs no page fault. Nothing
    /// when the file is not known to be in the mapped form.
    pub(crate) fn warm_up(&self) {
        #[cfg(target_os = "linux")]
        if let Some(page) = &self.page
            && !self.unchecked.load(Ordering::Relaxed)
        {
            // Not `fetch_add(0)`: the compiler may make an idempotent
            // read-modify-write a fence and a load (in the benchmark it did,
            // and dropped the unused load), and a load maps a shared page
            // read-only at best. A compare-and-swap of the value with itself
            // writes the page whether it succeeds or not.
            let counter = page.atomic_u64(COUNTER);
            let now = counter.load(Ordering::Relaxed);
            let _ = counter.compare_exchange(now, now, Ordering::SeqCst, Ordering::Relaxed);
        }
    }

    /// The next token by compare-and-swap on the mapped counter; `None`
    /// when the page does not hold the mapped form.
    #[cfg(target_os = "linux")]
    fn take_mapped(&self, page: &crate::sys::SharedPage) -> Result<Option<u64>> {
        let magic = page.atomic_u64(0);
        let counter = page.atomic_u64(COUNTER);
        let mut last = counter.load(Ordering::SeqCst);
        loop {
            // Checked on every round: whoever takes the file up writes the
            // counter before the magic, and the magic is gone the moment a
            // person or a truncation changes the file.
            if magic.load(Ordering::SeqCst) != u64::from_ne_bytes(MAGIC) {
                return Ok(None);
            }
            let next = last.checked_add(1).ok_or_else(|| Error::TokenExhausted {
                path: self.path.clone(),
            })?;
            match counter.compare_exchange_weak(last, next, Ordering::SeqCst, Ordering::SeqCst) {
                // A page lost to a truncation reads as zeros; a swap that
                // went through on those is no token.
                Ok(_) if page.was_lost() => return Ok(None),
                Ok(_) => return Ok(Some(next)),
                Err(now) => last = now,
            }
        }
    }

    /// Runs `then` under the exclusive flock with the last token issued,
    /// and leaves the file in the mapped form holding what `then` returned.
    /// The file is left untouched when it cannot be read as a counter.
    fn locked(
        &self,
        intr: &Interrupter,
        then: impl FnOnce(BorrowedFd<'_>, u64) -> Result<u64>,
    ) -> Result<u64> {
        let fd = self.fd.as_fd();
        let _one_thread = self.in_process.lock().unwrap_or_else(|p| p.into_inner());
        // Nobody else takes the lock at this moment, mostly: then a try is
        // enough, and the interruptible wait (whose bookkeeping costs system
        // calls of its own) is only for when someone does.
        let free = fsx::try_flock(fd, true).map_err(|e| self.io("cannot lock", e))?;
        if !free {
            match intr.lock_exclusive(fd) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(self.io("cannot lock", e)),
                Err(_) => return Err(Error::Cancelled),
            }
        }
        // Unlocked on every way out; LOCK_UN makes no inotify event, which
        // is fine: nobody waits on this file's events.
        struct Unlock<'a>(BorrowedFd<'a>);
        impl Drop for Unlock<'_> {
            fn drop(&mut self) {
                // SAFETY: plain syscall on a borrowed descriptor.
                unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
            }
        }
        let _unlock = Unlock(fd);
        // A file of 64 bytes or more is no counter of ours, and its first
        // 64 bytes show that.
        let mut buf = [0u8; 64];
        let bytes = fsx::read_into(fd, &mut buf).map_err(|e| self.io("cannot read", e))?;
        let in_form = bytes.len() == LEN && bytes.starts_with(&MAGIC);
        let last = match parse_token_file(bytes) {
            Ok(Some(n)) => n,
            Ok(None) => clock_seed(),
            Err(_) => {
                return Err(Error::TokenDamaged {
                    path: self.path.clone(),
                    content: String::from_utf8_lossy(bytes).into_owned(),
                });
            }
        };
        let store = then(fd, last)?;
        if in_form && store == last {
            return Ok(store);
        }
        // The counter before the magic, each in one write of its own: a
        // process reading the mapping finds the magic only once the
        // counter beside it is right. Written, not stored through the
        // mapping: on a full disk a write fails cleanly, while a store into
        // a page with no room behind it would be a SIGBUS.
        fsx::write_at(fd, &store.to_ne_bytes(), COUNTER as u64)
            .map_err(|e| self.io("cannot write", e))?;
        // SAFETY: plain syscall on a borrowed descriptor; cuts what was
        // longer (the decimal form) to the mapped form's length.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), LEN as libc::off_t) } != 0 {
            return Err(self.io("cannot truncate", std::io::Error::last_os_error()));
        }
        fsx::write_at(fd, &MAGIC, 0).map_err(|e| self.io("cannot write", e))?;
        Ok(store)
    }

    fn io(&self, what: &'static str, e: std::io::Error) -> Error {
        Error::io(what, &self.path, e)
    }
}

/// The last token issued from the counter file at `path`, for display (`mode`
/// as for [`fsx::open_file`]);
/// 0 when there is none or it cannot be read.
pub(crate) fn last_issued(dir: BorrowedFd<'_>, dir_path: &Path, mode: u32) -> u64 {
    fsx::open_file(dir, dir_path, TOKEN_FILE, fsx::Access::Read, mode)
        .ok()
        .and_then(|(fd, _)| fsx::read_prefix(fd.as_fd(), 64).ok())
        .and_then(|b| parse_token_file(&b).ok().flatten())
        .unwrap_or(0)
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
    fn parse_accepts_only_the_forms() {
        assert_eq!(parse_token_file(b""), Ok(None));
        assert_eq!(parse_token_file(b"7"), Ok(Some(7)));
        assert_eq!(
            parse_token_file(b"18446744073709551615\n"),
            Ok(Some(u64::MAX))
        );
        let mut mapped = MAGIC.to_vec();
        mapped.extend_from_slice(&7u64.to_ne_bytes());
        assert_eq!(parse_token_file(&mapped), Ok(Some(7)));
        for bad in [
            &b"\n"[..],
            b"-1",
            b" 1",
            b"1 ",
            b"18446744073709551616",
            b"1\n\n",
            b"\xff",
            b"000000000000000000001",
            b"elect\0t1",
            b"elect\0t1\0\0\0\0\0\0\0\0\0",
        ] {
            assert!(parse_token_file(bad).is_err(), "{bad:?}");
        }
    }

    /// Minor page faults of this thread so far.
    #[cfg(target_os = "linux")]
    fn faults() -> i64 {
        // SAFETY: ru is a valid out-pointer.
        let ru = unsafe {
            let mut ru: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_THREAD, &mut ru);
            ru
        };
        ru.ru_minflt
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn after_warming_up_a_token_costs_no_page_fault() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TOKEN_FILE);
        let mut form = MAGIC.to_vec();
        form.extend_from_slice(&41u64.to_ne_bytes());
        std::fs::write(&path, &form).unwrap();
        let counter = || {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .unwrap();
            Counter::new(file.into(), path.clone(), LEN as u64).unwrap()
        };
        let intr = Interrupter::new();
        // A first mapping runs the code once, so that only the page of the
        // second mapping can fault below.
        let first = counter();
        first.warm_up();
        assert_eq!(first.next(&intr).unwrap(), 42);
        let second = counter();
        second.warm_up();
        assert_eq!(
            std::fs::read(&path).unwrap()[COUNTER..],
            42u64.to_ne_bytes()
        );
        let before = faults();
        let token = second.next(&intr).unwrap();
        let after = faults();
        assert_eq!(token, 43);
        assert_eq!(after - before, 0, "taking the token faulted");
    }
}
