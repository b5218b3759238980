//! The `watched` file of a resource: whether anyone is waiting, right now,
//! for the event a release makes.
//!
//! A release unlocks its slot and then touches the slot file's times: the
//! inotify event that wakes the head of the line (several tickets) and any
//! `watch`. Waiters for one ticket sleep in the kernel's own line on the
//! slot's lock and need no event, so with one ticket, or with several and
//! nobody waiting, the touch is a system call (and an inode write) spent for
//! nobody, on the path between a release and the next owner.
//!
//! So those who wait for the event say so first: before every sleep, the
//! head of the line and each watcher raise the 8-byte deadline in this file
//! (mapped shared, so saying it is one atomic store) to the end of that
//! sleep plus [`MARGIN`]; a release touches only while the deadline is
//! ahead. A listener that dies stops raising it and is forgotten within its
//! last sleep plus the margin. The order makes this safe: a listener raises
//! the deadline *before* it looks at the slots, and a releaser reads it
//! *after* it unlocked, so a release that the listener's look missed always
//! sees the deadline (the look and the unlock are ordered by the kernel's
//! lock on the file, the stores and loads around them by `SeqCst`).
//!
//! The deadline is wall-clock time (CLOCK_REALTIME, which, unlike the
//! monotonic clocks, reads the same in every time namespace of the host).
//! A clock set back only makes releases touch for longer; one set forward
//! by more than the margin can leave a listener without its event for one
//! sleep, after which it looks on its own (at most a second) and raises the
//! deadline again. The file holds no secret and steers nothing but whether
//! an event is sent: garbage in it costs latency, never exclusion.
//!
//! A second deadline, after the first, says the same of the event an
//! acquisition makes (IN_MODIFY, the record written), which only watchers
//! listen for: while it is behind, a new holder writes its record through
//! a mapping of the slot file, which makes no event (see `record_page`).
//! Watchers raise both deadlines; the head of the line and seated helpers
//! only the first.
//!
//! Where the file cannot be opened for writing or mapped (a read-only
//! observer, a file system without shared mappings, a system other than
//! Linux), a process cannot say it listens: as a releaser it always
//! touches, and as a watcher it looks on its own often enough not to need
//! the event (see `Watch`).

use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use super::fsx::{self, Access};

/// The file name inside a resource directory.
pub(crate) const WATCHED_FILE: &str = "watched";

/// How long a deadline stays ahead after the sleep it was raised for: the
/// time a listener may take between waking and raising it again.
pub(crate) const MARGIN: Duration = Duration::from_secs(1);

/// The file's length: two 64-bit deadlines, nanoseconds since the epoch,
/// in the host's byte order: for releases, then for acquisitions.
const LEN: u64 = 16;

/// Where the deadline for releases is.
const RELEASES: usize = 0;
/// Where the deadline for acquisitions is.
const OWNERS: usize = 8;

/// This process's mapping of a resource's `watched` file.
#[derive(Debug)]
pub(crate) struct Watched {
    /// Kept to map the file again after a truncation.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    fd: OwnedFd,
    #[cfg(target_os = "linux")]
    page: crate::sys::SharedPage,
}

impl Watched {
    /// Opens (creating) and maps the `watched` file of the resource
    /// directory `dir` at `dir_path`. `None` when it cannot be had; the
    /// caller then does without (see the module's documentation).
    pub(crate) fn open(dir: BorrowedFd<'_>, dir_path: &Path, mode: u32) -> Option<Watched> {
        let (fd, _, len) =
            fsx::open_file_sized(dir, dir_path, WATCHED_FILE, Access::ReadWriteCreate, mode)
                .ok()?;
        Self::map(fd, len)
    }

    #[cfg(target_os = "linux")]
    fn map(fd: OwnedFd, len: u64) -> Option<Watched> {
        use std::os::fd::AsFd;
        if len < LEN {
            lengthen(fd.as_fd()).ok()?;
        }
        let page = crate::sys::SharedPage::map(fd.as_fd()).ok()?;
        Some(Watched { fd, page })
    }

    #[cfg(not(target_os = "linux"))]
    fn map(_fd: OwnedFd, _len: u64) -> Option<Watched> {
        None
    }

    /// Says that this process is about to sleep for up to `sleep` waiting
    /// for the event of a release. Call it before looking at the slots.
    pub(crate) fn announce(&self, sleep: Duration) {
        self.raise(&[RELEASES], sleep);
    }

    /// Says that this process is about to sleep for up to `sleep` waiting
    /// for the events of releases and acquisitions alike, as a watcher
    /// does. Call it before looking at the slots.
    pub(crate) fn announce_watching(&self, sleep: Duration) {
        self.raise(&[RELEASES, OWNERS], sleep);
    }

    /// Raises the deadlines at `offsets` to the end of a sleep of `sleep`.
    fn raise(&self, offsets: &[usize], sleep: Duration) {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsFd;
            use std::sync::atomic::Ordering;
            let until = now_ns().saturating_add(duration_ns(sleep + MARGIN));
            // A store into a page lost to a truncation reaches nobody: make
            // the file whole again and store once more (twice lost in a row
            // is someone truncating on purpose; releasers that lost their
            // page touch regardless).
            for _ in 0..2 {
                if self.page.was_lost()
                    && (lengthen(self.fd.as_fd()).is_err()
                        || self.page.remap(self.fd.as_fd()).is_err())
                {
                    return;
                }
                for &at in offsets {
                    self.page.atomic_u64(at).fetch_max(until, Ordering::SeqCst);
                }
                if !self.page.was_lost() {
                    return;
                }
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (offsets, sleep);
    }

    /// Whether a release must make its event: someone said they listen
    /// and their deadline is ahead, or this process cannot tell. Call it
    /// after unlocking.
    pub(crate) fn wanted(&self) -> bool {
        self.ahead(RELEASES)
    }

    /// Whether an acquisition must make its event (write its record with a
    /// system call): a watcher said it listens and its deadline is ahead,
    /// or this process cannot tell. Call it after storing the record in the
    /// slot file's page, as a watcher raises it before it reads: either the
    /// watcher reads the record, or the holder sees the deadline.
    pub(crate) fn owners_wanted(&self) -> bool {
        self.ahead(OWNERS)
    }

    fn ahead(&self, at: usize) -> bool {
        #[cfg(target_os = "linux")]
        {
            use std::sync::atomic::Ordering;
            let until = self.page.atomic_u64(at).load(Ordering::SeqCst);
            self.page.was_lost() || now_ns() < until
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = at;
            true
        }
    }
}

/// Makes the file [`LEN`] bytes long, so that its page can be mapped and
/// written. No `fstat` first: cutting a longer file loses only garbage, and
/// setting the length it has changes nothing, so a process racing another
/// that just wrote a deadline keeps it.
#[cfg(target_os = "linux")]
fn lengthen(fd: BorrowedFd<'_>) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: plain system call on a borrowed descriptor; checked.
    if unsafe { libc::ftruncate(fd.as_raw_fd(), LEN as libc::off_t) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Wall-clock time in nanoseconds, to the resolution of the kernel's tick
/// (CLOCK_REALTIME_COARSE: a read of the vDSO page, no system call; the
/// deadlines it is compared with are a second wide).
#[cfg(target_os = "linux")]
fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write into; the clock exists on
    // Linux, so the call cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    duration_ns(Duration::new(ts.tv_sec.max(0) as u64, ts.tv_nsec as u32))
}

#[cfg(target_os = "linux")]
fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn open(dir: &Path) -> Watched {
        let d = std::fs::File::open(dir).unwrap();
        Watched::open(d.as_fd(), dir, 0o600).expect("a writable directory")
    }

    #[test]
    fn nobody_listening_is_not_wanted_until_someone_announces() {
        let dir = tempfile::tempdir().unwrap();
        let releaser = open(dir.path());
        let listener = open(dir.path());
        assert_eq!(
            std::fs::metadata(dir.path().join(WATCHED_FILE))
                .unwrap()
                .len(),
            LEN
        );
        assert!(!releaser.wanted(), "a new file: nobody listens");
        let before = now_ns();
        listener.announce(Duration::from_millis(10));
        assert!(releaser.wanted(), "seen through another mapping");
        // A shorter sleep never lowers a deadline raised for a longer one.
        listener.announce(Duration::ZERO);
        let until = u64::from_ne_bytes(
            std::fs::read(dir.path().join(WATCHED_FILE)).unwrap()[..8]
                .try_into()
                .unwrap(),
        );
        assert!(until >= before + duration_ns(Duration::from_millis(10) + MARGIN));
    }

    #[test]
    fn only_a_watcher_wants_the_event_of_an_acquisition() {
        let dir = tempfile::tempdir().unwrap();
        let holder = open(dir.path());
        let listener = open(dir.path());
        assert!(!holder.owners_wanted(), "a new file: nobody listens");
        // The head of a line listens for releases only.
        listener.announce(Duration::from_millis(10));
        assert!(holder.wanted());
        assert!(!holder.owners_wanted(), "a head waits for no acquisition");
        listener.announce_watching(Duration::from_millis(10));
        assert!(holder.owners_wanted(), "a watcher does");
    }

    #[test]
    fn a_deadline_passed_is_not_wanted() {
        let dir = tempfile::tempdir().unwrap();
        let w = open(dir.path());
        let past = now_ns() - duration_ns(Duration::from_secs(5));
        std::fs::write(dir.path().join(WATCHED_FILE), past.to_ne_bytes()).unwrap();
        assert!(!w.wanted());
    }

    #[test]
    fn a_truncated_file_is_wanted_until_announced_again() {
        let dir = tempfile::tempdir().unwrap();
        let releaser = open(dir.path());
        let listener = open(dir.path());
        std::fs::File::create(dir.path().join(WATCHED_FILE)).unwrap();
        // Reading the lost page is a SIGBUS, which the shared page turns
        // into a zero page and a mark: this process cannot tell any more.
        assert!(releaser.wanted());
        listener.announce(Duration::from_millis(10));
        assert_eq!(
            std::fs::metadata(dir.path().join(WATCHED_FILE))
                .unwrap()
                .len(),
            LEN
        );
        // The listener's mapping is whole again; the releaser's stays lost,
        // so it keeps touching.
        assert!(releaser.wanted());
        assert!(!listener.page.was_lost());
    }
}
