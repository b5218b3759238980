//! Platform mechanisms behind one small interface: being woken when a slot
//! file is closed, reading which files hold a flock, looking at a path,
//! a file page shared between processes (`shared_page`, Linux) and
//! stepping back on the CPU while a wake-up should not preempt
//! (`step_back`).
//!
//! Linux has inotify and `/proc/locks`; other Unix systems get a portable
//! fallback that polls (waking), cannot tell who holds a slot (reading
//! fails: nothing ever tries a lock just to look), take tokens under a flock
//! instead of from a shared page, and do not step back.

use std::ffi::CString;
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

mod clock;
mod step_back;
#[cfg(feature = "etcd")]
pub(crate) use clock::since_boot;
pub use step_back::StepBack;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub(crate) use linux::{DirWatch, locked_files, look_at_c, parse_proc_locks};
#[cfg(target_os = "linux")]
mod shared_page;
#[cfg(target_os = "linux")]
pub(crate) use shared_page::SharedPage;

#[cfg(not(target_os = "linux"))]
mod portable;
#[cfg(not(target_os = "linux"))]
pub(crate) use portable::{DirWatch, locked_files, look_at_c};

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

/// What a [`DirWatch`] saw while waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Seen {
    /// A file whose name starts with `slot.` was closed after writing or
    /// had its times touched: a holder may have released.
    pub(crate) slot_closed: bool,
    /// The number of the first slot file seen closed, if its name said it:
    /// the slot most likely free now, to try first.
    pub(crate) first_closed: Option<u32>,
    /// A slot file was written or created: someone may have acquired.
    pub(crate) slot_written: bool,
    /// The directory itself was removed or moved, or the event queue
    /// overflowed: the caller must look again from scratch.
    pub(crate) dir_changed: bool,
    /// An entry was created in the directory (used when watching a run
    /// directory for a resource directory to appear).
    pub(crate) created: bool,
    /// A file whose name starts with `seat.` was touched or closed after
    /// writing: a seat may have been left empty.
    pub(crate) seat_freed: bool,
}

impl Seen {
    /// True when anything at all was seen.
    pub(crate) fn any(&self) -> bool {
        self.slot_closed || self.slot_written || self.dir_changed || self.created
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

/// How many times this process is a `fork` child (0 in the original
/// process): descriptors cached by one generation must not be used by the
/// next, because after a fork parent and child share their open file
/// descriptions, and flock(2) does not exclude holders of the same one.
///
/// The count is kept by a `pthread_atfork` child handler, registered the
/// first time this is called, so checking it costs no system call.
pub(crate) fn fork_generation() -> u64 {
    use std::sync::Once;
    use std::sync::atomic::{AtomicU64, Ordering};
    static FORKS: AtomicU64 = AtomicU64::new(0);
    static REGISTER: Once = Once::new();
    extern "C" fn on_fork_child() {
        // Async-signal-safe: one atomic add.
        FORKS.fetch_add(1, Ordering::Relaxed);
    }
    REGISTER.call_once(|| {
        // SAFETY: registers a handler that only does an atomic add. If
        // registration fails, caches are used as if no fork happened, as
        // they were before this counter existed.
        unsafe { libc::pthread_atfork(None, None, Some(on_fork_child)) };
    });
    FORKS.load(Ordering::Relaxed)
}

/// This process's id, without a system call after the first: cached per
/// [`fork_generation`].
pub(crate) fn pid() -> u32 {
    use std::sync::atomic::{AtomicU64, Ordering};
    // The generation in the high half, the pid in the low half; 0: none yet.
    static CACHED: AtomicU64 = AtomicU64::new(0);
    let generation = fork_generation() & 0xffff_ffff;
    let cached = CACHED.load(Ordering::Relaxed);
    if cached != 0 && cached >> 32 == generation {
        return cached as u32;
    }
    let pid = std::process::id();
    CACHED.store(generation << 32 | u64::from(pid), Ordering::Relaxed);
    pid
}

/// The open flag for a directory that only leads the way to another:
/// `O_PATH` where there is one (no read permission needed), else read-only.
#[cfg(target_os = "linux")]
pub(crate) const O_PATH: libc::c_int = libc::O_PATH;
/// The open flag for a directory that only leads the way to another.
#[cfg(not(target_os = "linux"))]
pub(crate) const O_PATH: libc::c_int = libc::O_RDONLY;
