//! Taking a slot and holding it: the try, the holder's record, and the
//! release.
//!
//! A holder keeps two descriptors of its slot file: the lock is on a
//! read-only one (a try that fails closes it, and the close of a read-only
//! descriptor wakes nobody), and the record is written through a write-only
//! one, whose close (IN_CLOSE_WRITE) is the event the head of the line
//! sleeps on. Releasing unlocks first and closes the record descriptor
//! last, so that the event comes after the lock is gone.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::agree::{Joined, unlock};
use super::{Request, slot_name, token};
use crate::error::{Error, Result};
use crate::interrupt::Interrupter;
use crate::record::{HolderRecord, RECORD_LEN};
use crate::store::safe_open::{self, Access};
use crate::sys::{self, FileId, Inotify};

/// What one try of the slots found.
pub(super) enum Tried {
    /// Slot `slot`, locked through `lock`.
    Got {
        slot: u32,
        lock: OwnedFd,
        id: FileId,
    },
    /// Every slot is held.
    None,
    /// A slot file or the directory changed under the try: start again.
    Changed,
}

/// Tries each of the `tickets` slots once without waiting, from slot
/// `first` on and round to it.
pub(super) fn try_slots(j: &Joined, tickets: u32, first: u32, mode: u32) -> Result<Tried> {
    let first = if first < tickets { first } else { 0 };
    for slot in (first..tickets).chain(0..first) {
        match try_slot(j, slot, mode)? {
            Tried::None => {}
            done => return Ok(done),
        }
    }
    Ok(Tried::None)
}

/// How many times in a row one try may find its slot file replaced under
/// it before the caller starts again from the directory.
const REPLACED_TRIES: u32 = 100;

/// Tries slot `slot` once, or again at once if its file was replaced
/// between the open and the lock (the directory itself is looked at only
/// after that keeps happening).
fn try_slot(j: &Joined, slot: u32, mode: u32) -> Result<Tried> {
    let name = slot_name(slot);
    for _ in 0..REPLACED_TRIES {
        let (lock, id) = match safe_open::open_file(
            j.res.fd.as_fd(),
            &j.res.path,
            &name,
            Access::ReadCreate,
            mode,
        ) {
            Ok(opened) => opened,
            // The directory was removed meanwhile.
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Tried::Changed);
            }
            Err(e) => return Err(e),
        };
        let got = safe_open::try_flock(lock.as_fd(), true)
            .map_err(|e| Error::io("cannot lock", j.res.path.join(&name), e))?;
        if !got {
            return Ok(Tried::None);
        }
        // The file locked must still be the one at the slot's name: one
        // that was removed (or replaced) between the open and the lock is
        // no slot, and someone may hold the new one. Closing ours (the only
        // descriptor of this description) frees what we locked; then the
        // new file is tried.
        if sys::look_at(Some(j.res.fd.as_fd()), Path::new(&name)).is_ok_and(|l| l.id == id) {
            return Ok(Tried::Got { slot, lock, id });
        }
    }
    Ok(Tried::Changed)
}

/// A held slot.
#[derive(Debug)]
pub(crate) struct LocalHeld {
    /// The process that obtained it: dropped in a fork child, the ticket
    /// only closes the child's descriptors.
    pid: u32,
    /// Set when a child process was given the descriptors on purpose: then
    /// only closing ours is right, the child keeps the slot.
    inherited: bool,
    /// Always present; taken out only by `Drop`.
    lock: Option<OwnedFd>,
    /// Always present; taken out only by `Drop`.
    record_fd: Option<OwnedFd>,
    /// Keeps the process a live participant while the ticket is held.
    joined: Arc<Joined>,
    /// The waiter's inotify instance, kept with the ticket and given back
    /// to the membership for the next wait at release: closing one takes
    /// milliseconds (see `Joined::inotify`), which must not stand between
    /// a hand-off and the new holder.
    inotify: Option<Inotify>,
    id: FileId,
    path: PathBuf,
    slot: u32,
    token: u64,
    record: HolderRecord,
}

/// Completes an acquisition of `slot`, locked through `lock`: takes the
/// next token and writes the holder's record. `Ok(None)`: the slot file
/// changed under us (start again).
pub(super) fn finish(
    joined: &Arc<Joined>,
    req: &Request,
    got: (u32, OwnedFd, FileId),
    mode: u32,
    intr: &Interrupter,
    inotify: &mut Option<Inotify>,
) -> Result<Option<LocalHeld>> {
    let (slot, lock, id) = got;
    let res = &joined.res;
    let name = slot_name(slot);
    let path = res.path.join(&name);
    let (record_fd, rid, len) =
        match safe_open::open_file_sized(res.fd.as_fd(), &res.path, &name, Access::Write, mode) {
            Ok(opened) => opened,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
    if rid != id {
        return Ok(None);
    }
    let lock = lock_above(lock, &record_fd)
        .map_err(|e| Error::io("cannot duplicate the lock of", &path, e))?;
    let pid = std::process::id();
    // Dropped on the error paths below: the slot goes back at once.
    let mut held = LocalHeld {
        pid,
        inherited: false,
        lock: Some(lock),
        record_fd: Some(record_fd),
        joined: Arc::clone(joined),
        inotify: inotify.take(),
        id,
        path,
        slot,
        token: 0,
        record: HolderRecord {
            pid,
            since: crate::time::rfc3339_now(),
            label: req.label.clone(),
            token: 0,
            command_pid: None,
        },
    };
    held.token = token::next(res, mode, intr)?;
    held.record.token = held.token;
    held.write_record(len);
    Ok(Some(held))
}

impl LocalHeld {
    /// Writes the record. It is for display only, so a failure (a full
    /// disk) does not cost the ticket: the file is emptied instead, so that
    /// no earlier holder's record is shown as this one's.
    fn write_record(&self, old_len: u64) {
        let fd = self
            .record_fd
            .as_ref()
            .expect("present until dropped")
            .as_fd();
        let mut buf = [0u8; RECORD_LEN];
        let bytes = self.record.padded_in(&mut buf);
        if safe_open::overwrite_from(fd, &self.path, bytes, old_len).is_err() {
            // SAFETY: plain syscall on a borrowed descriptor.
            unsafe { libc::ftruncate(fd.as_raw_fd(), 0) };
        }
    }

    /// Marks the ticket as shared with a child process: releasing it here
    /// then only closes this process's descriptors.
    pub(crate) fn set_inherited(&mut self) {
        self.inherited = true;
        self.joined.inherited.store(true, Ordering::Relaxed);
    }

    /// The slot held.
    pub(crate) fn slot(&self) -> u32 {
        self.slot
    }

    /// The fencing token of this acquisition.
    pub(crate) fn token(&self) -> u64 {
        self.token
    }

    /// The slot file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// True while the locked file is still the one at the slot's path: false
    /// once the file, its directory or the run directory was removed or
    /// replaced, after which someone else may hold a fresh slot there.
    pub(crate) fn is_intact(&self) -> bool {
        sys::look_at(None, &self.path).is_ok_and(|look| look.id == self.id)
    }

    /// Adds the pid of the command run under the ticket to the record.
    pub(crate) fn set_command_pid(&mut self, pid: u32) -> Result<()> {
        self.record.command_pid = Some(pid);
        self.write_record(RECORD_LEN as u64);
        Ok(())
    }

    /// The descriptors that carry the ticket: a process that inherits all
    /// of them keeps the slot held (and the resource live) while it runs.
    pub(crate) fn descriptors(&self) -> [RawFd; 3] {
        let raw = |fd: &Option<OwnedFd>| fd.as_ref().map_or(-1, AsRawFd::as_raw_fd);
        [
            raw(&self.lock),
            raw(&self.record_fd),
            self.joined.member.as_raw_fd(),
        ]
    }

    /// The record written for this holder.
    pub(crate) fn record(&self) -> &HolderRecord {
        &self.record
    }
}

impl Drop for LocalHeld {
    /// In the process that obtained it, unlocks before closing: a child
    /// forked meanwhile holds copies of the descriptors until it execs or
    /// exits, and closing ours alone would leave the slot held until then.
    /// The record descriptor closes last; its close is the event that wakes
    /// the head of the line, with the lock already gone. In a fork child,
    /// or for a ticket handed to a child on purpose, only our descriptors
    /// close: the parent's (or the child's) hold is not ours to end.
    fn drop(&mut self) {
        let lock = self.lock.take();
        if let Some(lock) = &lock
            && !self.inherited
            && std::process::id() == self.pid
        {
            unlock(lock.as_fd());
        }
        drop(lock);
        drop(self.record_fd.take());
        if let Some(ino) = self.inotify.take() {
            self.joined.keep_inotify(ino);
        }
    }
}

/// Moves the lock descriptor above the record descriptor.
///
/// When a holder is killed, the kernel closes its descriptors in ascending
/// order but runs the final closes (`__fput`, which queues the inotify event
/// and then drops the flock) in reverse order. With the lock descriptor
/// numbered above the record descriptor, the lock is dropped before the
/// close-after-write event that wakes the head of the line, so the head
/// finds the slot free at its first look instead of after a retry: that is
/// the fail-over time after a SIGKILL.
fn lock_above(lock: OwnedFd, record: &OwnedFd) -> std::io::Result<OwnedFd> {
    if lock.as_raw_fd() > record.as_raw_fd() {
        return Ok(lock);
    }
    // SAFETY: plain syscall; the result is checked.
    let fd = unsafe {
        libc::fcntl(
            lock.as_raw_fd(),
            libc::F_DUPFD_CLOEXEC,
            record.as_raw_fd() + 1,
        )
    };
    if fd < 0 {
        let err = std::io::Error::last_os_error();
        // EINVAL: the lowest number asked for is past RLIMIT_NOFILE, which
        // is "too many open files" in the words a user can act on.
        if err.raw_os_error() == Some(libc::EINVAL) {
            return Err(std::io::Error::from_raw_os_error(libc::EMFILE));
        }
        return Err(err);
    }
    // SAFETY: fd is fresh and owned by nobody else. The old descriptor
    // closes when `lock` drops; the duplicate keeps the description (and
    // its lock), so that close frees nothing and wakes nobody.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
