//! Other Unix systems: no inotify and no `/proc/locks`, so waiting polls, and
//! who holds a slot cannot be seen: `status` and `watch` refuse rather than
//! try a lock to find out, which could make another process miss a free
//! ticket.

use super::{FileId, Look};
use std::collections::HashSet;
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// What the file at `path` (relative to `dir`, or to the working directory)
/// is, not following a final symbolic link (see [`super::look_at`]).
pub(crate) fn look_at_c(dir: Option<BorrowedFd<'_>>, path: &CStr) -> io::Result<Look> {
    super::look_by_stat(dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd()), path)
}

/// No inotify here: [`Inotify::new`] always fails, and waiters poll.
#[derive(Debug)]
pub(crate) struct Inotify {
    never: std::convert::Infallible,
}

/// An inotify event (never made here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    pub(crate) wd: i32,
    pub(crate) mask: u32,
    pub(crate) name: Vec<u8>,
}

impl Inotify {
    /// Always fails: the caller polls.
    pub(crate) fn new() -> io::Result<Self> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "no inotify"))
    }

    /// Never called: there is no instance.
    pub(crate) fn as_fd(&self) -> BorrowedFd<'_> {
        match self.never {}
    }

    /// Never called: there is no instance.
    pub(crate) fn add(
        &self,
        _dir: BorrowedFd<'_>,
        _name: Option<&str>,
        _mask: u32,
    ) -> io::Result<i32> {
        match self.never {}
    }

    /// Never called: there is no instance.
    pub(crate) fn remove(&self, _wd: i32) {
        match self.never {}
    }

    /// Never called: there is no instance.
    pub(crate) fn read(&self) -> io::Result<Vec<Event>> {
        match self.never {}
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
