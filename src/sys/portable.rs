//! Other Unix systems: no inotify and no `/proc/locks`, so waiting polls, and
//! who holds a slot cannot be seen: `status` and `watch` refuse rather than
//! try a lock to find out, which could make another process miss a free
//! ticket.

use std::collections::HashSet;
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use super::{FileId, Look, Seen};

/// What the file at `path` (relative to `dir`, or to the working directory)
/// is, not following a final symbolic link (see [`super::look_at`]).
pub(crate) fn look_at_c(dir: Option<BorrowedFd<'_>>, path: &CStr) -> io::Result<Look> {
    super::look_by_stat(dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd()), path)
}

/// How often a waiter looks again without inotify.
const POLL: Duration = Duration::from_millis(20);

/// Without inotify, waiting is a short sleep that reports "maybe changed".
#[derive(Debug)]
pub(crate) struct DirWatch;

impl DirWatch {
    /// Always succeeds; there is nothing to set up.
    pub(crate) fn releases(_dir: BorrowedFd<'_>) -> io::Result<Self> {
        Ok(DirWatch)
    }

    /// Always succeeds; there is nothing to set up.
    pub(crate) fn changes(_dir: BorrowedFd<'_>) -> io::Result<Self> {
        Ok(DirWatch)
    }

    /// Refused: seats need inotify (see `store::seats`).
    pub(crate) fn slot_files(_dir: BorrowedFd<'_>, _n: u32) -> io::Result<Self> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "no inotify"))
    }

    /// As [`DirWatch::wait`]; `also` is not looked at.
    pub(crate) fn wait_or(
        &self,
        timeout: Option<Duration>,
        _also: Option<BorrowedFd<'_>>,
    ) -> io::Result<Seen> {
        self.wait(timeout)
    }

    /// Sleeps for the shorter of `timeout` and the poll interval.
    pub(crate) fn wait(&self, timeout: Option<Duration>) -> io::Result<Seen> {
        std::thread::sleep(timeout.map_or(POLL, |t| t.min(POLL)));
        Ok(Seen {
            slot_closed: true,
            slot_written: true,
            created: true,
            ..Seen::default()
        })
    }

    /// Nothing is queued without inotify.
    pub(crate) fn drain(&self) -> io::Result<Seen> {
        Ok(Seen::default())
    }
}

/// Unknown without `/proc/locks`: always an error, which the caller reports
/// (it never tries a lock instead).
pub(crate) fn locked_files() -> io::Result<HashSet<FileId>> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "this system has no /proc/locks",
    ))
}
