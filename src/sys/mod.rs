//! Platform mechanisms behind one small interface: inotify (to sleep until
//! a file is closed), `/proc/locks` (to see who holds a flock without
//! taking it), looking at a path, and whether a process is stopped.
//!
//! Linux has all of them; other Unix systems get a portable fallback whose
//! waiters poll and whose `status` refuses (it cannot see holders).

use std::ffi::CString;
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

mod clock;
#[cfg(feature = "etcd")]
pub(crate) use clock::since_boot;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub(crate) use linux::{
    Inotify, holds_lock, lock_holder, locked_files, look_at_c, parse_proc_locks, process_gone,
    same_process,
};

#[cfg(not(target_os = "linux"))]
mod portable;
#[cfg(not(target_os = "linux"))]
pub(crate) use portable::{
    Inotify, holds_lock, lock_holder, locked_files, look_at_c, process_gone, same_process,
};

/// The inotify event bits elect asks for: Linux's own; elsewhere no
/// instance is ever made, so these are never seen.
pub(crate) mod events {
    #[cfg(target_os = "linux")]
    pub(crate) use libc::{
        IN_ATTRIB, IN_CLOSE_WRITE, IN_CREATE, IN_DELETE_SELF, IN_IGNORED, IN_MODIFY, IN_MOVE_SELF,
        IN_MOVED_TO, IN_Q_OVERFLOW,
    };
    #[cfg(not(target_os = "linux"))]
    mod values {
        pub(crate) const IN_MODIFY: u32 = 0x2;
        pub(crate) const IN_ATTRIB: u32 = 0x4;
        pub(crate) const IN_CLOSE_WRITE: u32 = 0x8;
        pub(crate) const IN_MOVED_TO: u32 = 0x80;
        pub(crate) const IN_CREATE: u32 = 0x100;
        pub(crate) const IN_DELETE_SELF: u32 = 0x400;
        pub(crate) const IN_MOVE_SELF: u32 = 0x800;
        pub(crate) const IN_Q_OVERFLOW: u32 = 0x4000;
        pub(crate) const IN_IGNORED: u32 = 0x8000;
    }
    #[cfg(not(target_os = "linux"))]
    pub(crate) use values::*;
}

/// One inotify event (the portable fallback never makes one): its mask,
/// watch and the name of the file it is about (empty for an event about the
/// watched object itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    pub(crate) wd: i32,
    pub(crate) mask: u32,
    pub(crate) name: Vec<u8>,
}

/// What a look at a path found (see `look_at`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Look {
    /// Device and inode.
    pub(crate) id: FileId,
    /// Type and permission bits, as `st_mode`.
    pub(crate) mode: u32,
    /// How many names the file has.
    pub(crate) links: u64,
    /// Its length in bytes.
    pub(crate) size: u64,
}

/// What the file at `path` (relative to `dir`, or to the working directory)
/// is, not following a final symbolic link. A path with a NUL byte names
/// no file.
pub(crate) fn look_at(dir: Option<BorrowedFd<'_>>, path: &Path) -> io::Result<Look> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    look_at_c(dir, &c)
}

/// [`look_at`] by `fstatat`, for where `statx` is missing.
// The casts are no-ops on Linux but not on every Unix.
#[allow(clippy::unnecessary_cast)]
fn look_by_stat(dirfd: libc::c_int, path: &std::ffi::CStr) -> std::io::Result<Look> {
    // SAFETY: path is a valid C string; st is written before it is read.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstatat(dirfd, path.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Look {
            id: FileId::of(&st),
            mode: st.st_mode as u32,
            links: st.st_nlink as u64,
            size: st.st_size as u64,
        })
    }
}

/// The kernel's identity of a file: device and inode, as `/proc/locks` shows
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FileId {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
}

impl FileId {
    /// The identity of a stat result.
    // The casts are no-ops on Linux but not on every Unix.
    #[allow(clippy::unnecessary_cast)]
    pub(crate) fn of(st: &libc::stat) -> Self {
        FileId {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
        }
    }
}

/// Whether process `pid` is stopped (SIGSTOP, Ctrl-Z, a debugger) or in a
/// frozen cgroup: alive, but doing nothing until someone else continues it.
/// A pid that cannot be looked at (gone, another PID namespace, no /proc)
/// counts as running: only a positive sighting makes a waiter skip it.
pub(crate) fn is_stopped(pid: u32) -> bool {
    // The main thread first: one file, where a running waiter's look ends
    // (unless it is frozen, which looks asleep).
    match task_state(format!("/proc/{pid}/stat")) {
        Some(b'T' | b't') => {}
        Some(_) => return is_frozen(pid),
        None => return false,
    }
    // Every thread: a stop signal reaches one thread first, and the others
    // stop a moment later; a thread still running may still take a ticket.
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    let mut any = false;
    for task in tasks.flatten() {
        match task_state(task.path().join("stat")) {
            Some(b'T' | b't') => any = true,
            _ => return false,
        }
    }
    any
}

/// The state letter in a `/proc/.../stat` file: `tid (comm) S ...`, the
/// state after the last ')', as comm may hold anything.
fn task_state(path: impl AsRef<std::path::Path>) -> Option<u8> {
    let stat = std::fs::read(path).ok()?;
    let i = stat.iter().rposition(|&b| b == b')')?;
    stat.get(i + 2).copied()
}

/// Whether `pid` is in a frozen cgroup (v2): its tasks look asleep, not
/// stopped, in `/proc/PID/stat`.
fn is_frozen(pid: u32) -> bool {
    let Ok(cgroups) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
        return false;
    };
    let Some(path) = cgroups.lines().find_map(|l| l.strip_prefix("0::")) else {
        return false;
    };
    if path.contains("..") {
        return false;
    }
    std::fs::read_to_string(format!("/sys/fs/cgroup{path}/cgroup.events"))
        .is_ok_and(|events| events.lines().any(|l| l == "frozen 1"))
}

/// The open flag for a directory that only leads the way to another:
/// `O_PATH` where there is one (no read permission needed), else read-only.
#[cfg(target_os = "linux")]
pub(crate) const O_PATH: libc::c_int = libc::O_PATH;
/// The open flag for a directory that only leads the way to another.
#[cfg(not(target_os = "linux"))]
pub(crate) const O_PATH: libc::c_int = libc::O_RDONLY;
