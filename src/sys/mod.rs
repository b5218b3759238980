//! Platform mechanisms behind one small interface: being woken when a slot
//! file is closed, and reading which files hold a flock.
//!
//! Linux has inotify and `/proc/locks`; other Unix systems get a portable
//! fallback that polls (waking) and briefly tries a shared lock (reading).

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub(crate) use linux::{DirWatch, locked_files, parse_proc_locks};

#[cfg(not(target_os = "linux"))]
mod portable;
#[cfg(not(target_os = "linux"))]
pub(crate) use portable::{DirWatch, locked_files};

/// What a [`DirWatch`] saw while waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Seen {
    /// A file whose name starts with `slot.` was closed after writing: a
    /// holder may have released.
    pub(crate) slot_closed: bool,
    /// A slot file was written or created: someone may have acquired.
    pub(crate) slot_written: bool,
    /// The directory itself was removed or moved, or the event queue
    /// overflowed: the caller must look again from scratch.
    pub(crate) dir_changed: bool,
    /// An entry was created in the directory (used when watching a run
    /// directory for a resource directory to appear).
    pub(crate) created: bool,
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
