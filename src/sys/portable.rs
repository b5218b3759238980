//! Other Unix systems: no inotify and no `/proc/locks`, so waiting polls, and
//! who holds a slot cannot be seen: `status` and `watch` refuse rather than
//! try a lock to find out, which could make another process miss a free
//! ticket.

use super::{Event, FileId, Look};
use std::collections::HashMap;
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
    pub(crate) fn read(&self) -> io::Result<Vec<Event>> {
        match self.never {}
    }
}

/// Unknown without `/proc/locks`: always an error, which the caller reports
/// (it never tries a lock instead).
pub(crate) fn locked_files() -> io::Result<HashMap<FileId, u32>> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "this system has no /proc/locks",
    ))
}

/// Whether process `pid` has ended (gone; a zombie is not told apart here).
pub(crate) fn process_gone(pid: u32) -> bool {
    // SAFETY: signal 0 only checks.
    pid != 0
        && unsafe { libc::kill(pid as libc::pid_t, 0) } != 0
        && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// Whether two pids name the same process: no namespaces to look through
/// here.
pub(crate) fn same_process(a: u32, b: u32) -> bool {
    a == b
}

/// No list of descriptors' locks here: no holder can be seen.
pub(crate) fn holds_lock(_pid: u32, _id: FileId) -> bool {
    false
}

/// No list of descriptors' locks here: no holder can be seen.
pub(crate) fn lock_holder(_id: FileId) -> Option<u32> {
    None
}
