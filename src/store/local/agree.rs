//! Agreeing on N, and being a live participant.
//!
//! Every live participant keeps a shared flock on the resource directory
//! itself, through a descriptor of its own: that is how others tell whether
//! anyone is live, and it makes systemd-tmpfiles leave the directory alone.
//! A process joins at its first obtain and stays a member while its election
//! or any of its tickets lives. The agreed number is in `tickets`; whoever
//! finds nobody live (an exclusive lock on the directory can be had) under
//! the exclusive lock of `tickets` may write it, and everyone else must ask
//! for the number written there.
//!
//! Locks are only tried, never waited for in the kernel: someone outside
//! elect holding the directory exclusively (systemd-tmpfiles does, for a
//! moment), or a stopped participant holding `tickets`, delays a join by
//! short pauses that honour the caller's deadline and cancel.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{ResourceDir, TICKETS_FILE, TICKETS_READ, parse_tickets_file};
use crate::error::{Error, Result};
use crate::interrupt::Interrupter;
use crate::store::safe_open::{self, Access};

/// How long to wait before trying a lock of the agreement again.
const PAUSE: Duration = Duration::from_millis(2);

/// This process's membership of a resource's live participants, with the
/// resource directory it joined.
#[derive(Debug)]
pub(crate) struct Joined {
    /// The process that joined: in a fork child this is not ours to use.
    pub(super) pid: u32,
    pub(super) tickets: u32,
    pub(super) res: ResourceDir,
    /// A descriptor of the directory of our own, with the shared lock.
    pub(super) member: OwnedFd,
    /// Set once a child was handed the membership on purpose (see
    /// `Ticket::share_with`): then leaving only closes our descriptor.
    pub(super) inherited: AtomicBool,
    /// An inotify instance a finished wait left for the next one. Closing
    /// an instance waits for the kernel's fsnotify reaper (an RCU grace
    /// period: milliseconds), which every wait would otherwise pay once,
    /// and a thread that restarts its wait (its slot file replaced) again
    /// and again. One is kept per membership, so none outlives it.
    spare: std::sync::Mutex<Option<crate::sys::Inotify>>,
}

impl Joined {
    /// The spare inotify instance, with its old events read, or a new one;
    /// `None` where the kernel refuses one.
    pub(super) fn inotify(&self) -> Option<crate::sys::Inotify> {
        let spare = self.spare.try_lock().ok().and_then(|mut s| s.take());
        match spare {
            Some(ino) => {
                // Events of an earlier wait say nothing about this one.
                let _ = ino.read();
                Some(ino)
            }
            None => crate::sys::Inotify::new().ok(),
        }
    }

    /// Keeps `ino` for the next wait of this process (a fork child's is
    /// not ours to keep, nor a second one: it is closed).
    pub(super) fn keep_inotify(&self, ino: crate::sys::Inotify) {
        if std::process::id() != self.pid {
            return;
        }
        if let Ok(mut spare) = self.spare.try_lock()
            && spare.is_none()
        {
            *spare = Some(ino);
        }
    }
}

impl Drop for Joined {
    /// Unlocks before closing in the process that joined, so that a child
    /// forked meanwhile (which holds a copy of the descriptor until it
    /// execs or exits) does not keep the resource live; a fork child only
    /// closes its copy.
    fn drop(&mut self) {
        if std::process::id() == self.pid && !self.inherited.load(Ordering::Relaxed) {
            unlock(self.member.as_fd());
        }
    }
}

/// Releases a flock held through `fd`.
pub(super) fn unlock(fd: BorrowedFd<'_>) {
    // SAFETY: plain syscall on a borrowed descriptor.
    unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_UN) };
}

/// Joins the live participants of the resource in `res` asking for
/// `tickets`, agreeing on the number first if nobody is live.
pub(super) fn join(
    res: ResourceDir,
    name: &str,
    tickets: u32,
    mode: u32,
    intr: &Interrupter,
) -> Result<Joined> {
    let (file, _) = safe_open::open_file(
        res.fd.as_fd(),
        &res.path,
        TICKETS_FILE,
        Access::ReadWriteCreate,
        mode,
    )?;
    let member = reopen_dir(&res)?;
    let path = res.path.join(TICKETS_FILE);
    let lock_err = |e| Error::io("cannot lock", &res.path, e);
    let agreed = || -> Result<Option<u32>> {
        let mut buf = [0u8; TICKETS_READ];
        let bytes = safe_open::read_into(file.as_fd(), &mut buf)
            .map_err(|e| Error::io("cannot read", &path, e))?;
        Ok(parse_tickets_file(bytes, || {
            safe_open::fstat(file.as_fd())
                .ok()
                .map(|st| st.st_size as u64)
        }))
    };
    let dir = member.as_fd();
    loop {
        // The fast way, when the file holds our number: take the shared
        // lock, then read again. Once it is held nobody can find the
        // resource idle, so the number cannot change under us.
        if agreed()? == Some(tickets) && safe_open::try_flock(dir, false).map_err(lock_err)? {
            if agreed()? == Some(tickets) {
                break;
            }
            unlock(dir);
        }
        // The full way, under the exclusive lock of `tickets`.
        if !safe_open::try_flock(file.as_fd(), true)
            .map_err(|e| Error::io("cannot lock", &path, e))?
        {
            intr.pause(PAUSE).map_err(|_| Error::Cancelled)?;
            continue;
        }
        let joined = join_locked(&file, dir, &path, name, tickets, &agreed);
        unlock(file.as_fd());
        if joined? {
            break;
        }
        // Someone outside elect holds the directory exclusively for a
        // moment (systemd-tmpfiles ageing it): try again.
        intr.pause(PAUSE).map_err(|_| Error::Cancelled)?;
    }
    Ok(Joined {
        pid: std::process::id(),
        tickets,
        res,
        member,
        inherited: AtomicBool::new(false),
        spare: std::sync::Mutex::new(None),
    })
}

/// The full join, under the `tickets` lock. `Ok(false)`: try again.
fn join_locked(
    file: &OwnedFd,
    dir: BorrowedFd<'_>,
    path: &std::path::Path,
    name: &str,
    tickets: u32,
    agreed: &dyn Fn() -> Result<Option<u32>>,
) -> Result<bool> {
    let lock_err = |e| Error::io("cannot lock", path, e);
    if safe_open::try_flock(dir, true).map_err(lock_err)? {
        // Nobody is live: the number is ours to set.
        record_tickets(file.as_fd(), path, tickets)?;
        // Converting exclusive to shared is not atomic in flock(2); a fast
        // joiner slipping in between reads the number just written, so it
        // cannot disagree unnoticed.
        return safe_open::try_flock(dir, false).map_err(lock_err);
    }
    match agreed()? {
        Some(agreed) if agreed != tickets => Err(Error::TicketMismatch {
            name: name.to_string(),
            asked: tickets,
            agreed,
        }),
        Some(_) => safe_open::try_flock(dir, false).map_err(lock_err),
        // Not live participants but someone outside elect holding the
        // directory exclusively for a moment: try again.
        None if !safe_open::try_flock(dir, false).map_err(lock_err)? => Ok(false),
        None => {
            unlock(dir);
            let bytes = safe_open::read_prefix(file.as_fd(), 32).unwrap_or_default();
            Err(Error::unsafe_path(
                path,
                format!(
                    "it holds {:?}, not a number of tickets, while the resource is in use; stop its participants and remove the file",
                    String::from_utf8_lossy(&bytes)
                ),
            ))
        }
    }
}

/// Writes the agreed number into the `tickets` file, as text. On a file
/// system with no room left (or a quota reached), where not even those few
/// bytes can be written, the number is recorded as the length of a file
/// that is nothing but a hole, which takes no room: N bytes that read as
/// NULs (see `parse_tickets_file`). So a never-used resource can be taken
/// on a full disk, and its participants still agree on N.
fn record_tickets(fd: BorrowedFd<'_>, path: &std::path::Path, tickets: u32) -> Result<()> {
    let Err(err) = safe_open::overwrite(fd, path, format!("{tickets}\n").as_bytes()) else {
        return Ok(());
    };
    let Error::Io { source, .. } = &err else {
        return Err(err);
    };
    if !safe_open::is_no_space(source) {
        return Err(err);
    }
    // SAFETY: plain syscalls on a borrowed descriptor.
    let hole = unsafe {
        libc::ftruncate(fd.as_raw_fd(), 0) == 0
            && libc::ftruncate(fd.as_raw_fd(), libc::off_t::from(tickets)) == 0
    };
    if hole { Ok(()) } else { Err(err) }
}

/// A second open file description of a resource directory: each
/// participant needs its own, because the shared lock that says "live"
/// belongs to the description.
fn reopen_dir(res: &ResourceDir) -> Result<OwnedFd> {
    // SAFETY: "." is a valid C string; the result is checked.
    let fd = unsafe {
        libc::openat(
            res.fd.as_raw_fd(),
            c".".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(Error::io(
            "cannot open",
            &res.path,
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: fd is fresh and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
