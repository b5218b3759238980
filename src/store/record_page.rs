//! Record pages: a slot file's first page mapped shared, through which a new
//! holder writes its record with plain stores instead of a `pwrite`.
//!
//! Every acquisition writes the holder's record between the kernel's
//! hand-off and the ticket. As a system call that costs more than the call:
//! the write stores a new modification time, and on ext4 that opens a
//! journal handle. Measured at N=4 (20 `multiproc` workers, three
//! interleaved pairs), leaving the write out took 1.7, 3.9 and 4.9 µs off
//! hand-offs of 23–25 µs, and writing through the page took 2.4 to 3.7 µs
//! off hand-offs of 19–23 µs. A store into a mapping of
//! the file reaches the same page cache, so `status` reads it at once, and
//! stores no time.
//!
//! What it does not make is the inotify event (IN_MODIFY) by which a
//! [`Watcher`](crate::Watcher) hears of a new holder. So a watcher says
//! that it listens (see `Watched::owners_wanted`), and while one does,
//! records are written with `pwrite` as before.
//!
//! A page is mapped only for a slot this process waits on, before it
//! sleeps, and only where it can be protected: a file truncated under the
//! mapping turns into a zero page, not a SIGBUS (see `SharedPage`); the
//! holder then sees the page lost and writes with `pwrite`. The protected
//! pages of a process are few (`SharedPage`'s table), and the token and
//! `watched` pages of every resource need theirs, so record pages take at
//! most [`MAX_PAGES`] of them. Linux only.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::fsx::{self, Access};
use crate::record::RECORD_LEN;
use crate::sys::FileId;

/// The most record pages mapped at once in a process: a quarter of
/// `SharedPage`'s table, which leaves the rest to the token and `watched`
/// pages of several hundred resources. Beyond it records go out with
/// `pwrite`.
pub(crate) const MAX_PAGES: usize = 256;

/// How many record pages this process has mapped.
static MAPPED: AtomicUsize = AtomicUsize::new(0);

/// The first page of one slot file, once a wait for that slot mapped it.
#[derive(Debug, Default)]
pub(crate) struct RecordPage {
    page: Mutex<Option<Page>>,
}

#[derive(Debug)]
struct Page {
    /// The slot file mapped: a page of any other file is no use.
    id: FileId,
    #[cfg(target_os = "linux")]
    page: crate::sys::SharedPage,
}

impl Drop for Page {
    fn drop(&mut self) {
        MAPPED.fetch_sub(1, Ordering::Relaxed);
    }
}

impl RecordPage {
    /// Maps the first page of the slot file `name` in `dir` (at `dir_path`),
    /// which must be the file `id`, unless it is mapped already. Quietly
    /// does without where it cannot: the record is then written with
    /// `pwrite`.
    pub(crate) fn prepare(&self, dir: BorrowedFd<'_>, dir_path: &Path, name: &str, id: FileId) {
        let mut page = self.page.lock().unwrap_or_else(|p| p.into_inner());
        if page.as_ref().is_some_and(|p| p.id == id) {
            return;
        }
        if let Some(new) = map(dir, dir_path, name, id) {
            // The page replaced, if any, is unmapped here, off the hand-off.
            *page = Some(new);
        }
    }

    /// Writes `record` (a whole record, [`RECORD_LEN`] bytes) into the slot
    /// file `id` through its page, if one is mapped and was not lost; says
    /// whether it did. The caller has checked that the file is still at the
    /// slot's path and [`RECORD_LEN`] bytes long.
    pub(crate) fn write(&self, id: FileId, record: &[u8]) -> bool {
        let page = self.page.lock().unwrap_or_else(|p| p.into_inner());
        match page.as_ref() {
            Some(p) if p.id == id && record.len() == RECORD_LEN => p.store(record),
            _ => false,
        }
    }
}

impl Page {
    /// Stores `record` into the page, eight bytes at a time (other
    /// processes read and write the same memory, so only atomics may touch
    /// it); false if the file was truncated under the page, before or
    /// during the stores.
    ///
    /// The first eight bytes are made NUL first and written last: a holder
    /// killed part way, or a reader that comes part way, finds a record
    /// that does not parse, never one that mixes two holders' fields into
    /// a valid one (a `pwrite` is not torn by the writer's death).
    #[cfg(target_os = "linux")]
    fn store(&self, record: &[u8]) -> bool {
        if self.page.was_lost() {
            return false;
        }
        let word =
            |i: usize| u64::from_ne_bytes(record[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        self.page.atomic_u64(0).store(0, Ordering::Relaxed);
        for i in 1..record.len() / 8 {
            self.page
                .atomic_u64(i * 8)
                .store(word(i), Ordering::Relaxed);
        }
        self.page.atomic_u64(0).store(word(0), Ordering::Release);
        !self.page.was_lost()
    }

    #[cfg(not(target_os = "linux"))]
    fn store(&self, _record: &[u8]) -> bool {
        false
    }
}

/// The first page of the file `name` in `dir`, mapped and protected, if it
/// is the file `id`.
#[cfg(target_os = "linux")]
fn map(dir: BorrowedFd<'_>, dir_path: &Path, name: &str, id: FileId) -> Option<Page> {
    // Read and write: a shared writable mapping needs both. The descriptor
    // is closed at once; the mapping keeps the file open, so the close
    // that tells waiters of a release (IN_CLOSE_WRITE) comes only when the
    // page is unmapped (or, for a process that dies, after its other
    // descriptors: see `lock_above`).
    if MAPPED.fetch_add(1, Ordering::Relaxed) >= MAX_PAGES {
        MAPPED.fetch_sub(1, Ordering::Relaxed);
        return None;
    }
    // With group sharing a slot file of another member's fails the check
    // for a private file: that only costs the page (the record then goes
    // out with `pwrite`).
    let page = fsx::open_file(dir, dir_path, name, Access::ReadWrite, 0)
        .ok()
        .filter(|&(_, got)| got == id)
        .and_then(|(fd, _)| crate::sys::SharedPage::map(fd.as_fd()).ok());
    let Some(page) = page else {
        MAPPED.fetch_sub(1, Ordering::Relaxed);
        return None;
    };
    // Counted from here on: dropping it gives the count back.
    let page = Page { id, page };
    page.page.is_protected().then_some(page)
}

#[cfg(not(target_os = "linux"))]
fn map(_dir: BorrowedFd<'_>, _dir_path: &Path, _name: &str, _id: FileId) -> Option<Page> {
    None
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    /// The count of pages is the process's: tests that map pages take
    /// turns.
    fn serial() -> std::sync::MutexGuard<'static, ()> {
        static SERIAL: Mutex<()> = Mutex::new(());
        SERIAL.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot file of a whole record's length in a fresh directory, the
    /// directory open, and the file's id.
    fn slot_file(dir: &Path) -> (std::fs::File, FileId) {
        std::fs::write(dir.join("slot.0"), vec![b' '; RECORD_LEN]).unwrap();
        let d = std::fs::File::open(dir).unwrap();
        let (_, id) = fsx::open_file(d.as_fd(), dir, "slot.0", Access::Read, 0).unwrap();
        (d, id)
    }

    fn record(fill: u8) -> Vec<u8> {
        let mut r = vec![fill; RECORD_LEN];
        r[RECORD_LEN - 1] = b'\n';
        r
    }

    #[test]
    fn a_record_stored_in_the_page_is_what_the_file_reads() {
        let _serial = serial();
        let tmp = tempfile::tempdir().unwrap();
        let (d, id) = slot_file(tmp.path());
        let page = RecordPage::default();
        page.prepare(d.as_fd(), tmp.path(), "slot.0", id);
        assert!(page.write(id, &record(b'a')));
        assert_eq!(
            std::fs::read(tmp.path().join("slot.0")).unwrap(),
            record(b'a')
        );
        // Another file at the slot's path: not through this page.
        let other = FileId {
            dev: id.dev,
            ino: id.ino + 1,
        };
        assert!(!page.write(other, &record(b'b')));
        // Not a whole record: never through the page.
        assert!(!page.write(id, b"{}\n"));
        assert_eq!(
            std::fs::read(tmp.path().join("slot.0")).unwrap(),
            record(b'a')
        );
    }

    #[test]
    fn a_file_truncated_under_its_page_is_written_by_nobody_and_kills_nobody() {
        let _serial = serial();
        let tmp = tempfile::tempdir().unwrap();
        let (d, id) = slot_file(tmp.path());
        let page = RecordPage::default();
        page.prepare(d.as_fd(), tmp.path(), "slot.0", id);
        // `: > slot.0` by someone else: the page's stores would be a
        // SIGBUS, which the shared page turns into a lost page.
        std::fs::File::create(tmp.path().join("slot.0")).unwrap();
        assert!(!page.write(id, &record(b'c')), "a lost page says so");
        assert_eq!(
            std::fs::metadata(tmp.path().join("slot.0")).unwrap().len(),
            0
        );
    }

    #[test]
    fn record_pages_take_no_more_than_their_share_of_the_protected_table() {
        let _serial = serial();
        let tmp = tempfile::tempdir().unwrap();
        let (d, id) = slot_file(tmp.path());
        let base = MAPPED.load(Ordering::Relaxed);
        let all: Vec<RecordPage> = (0..MAX_PAGES - base)
            .map(|_| RecordPage::default())
            .collect();
        for p in &all {
            p.prepare(d.as_fd(), tmp.path(), "slot.0", id);
            assert!(p.write(id, &record(b'd')));
        }
        assert_eq!(MAPPED.load(Ordering::Relaxed), MAX_PAGES);
        let one_more = RecordPage::default();
        one_more.prepare(d.as_fd(), tmp.path(), "slot.0", id);
        assert!(
            !one_more.write(id, &record(b'e')),
            "a page beyond the share"
        );
        drop(all);
        assert_eq!(
            MAPPED.load(Ordering::Relaxed),
            base,
            "unmapped pages give their count back"
        );
        one_more.prepare(d.as_fd(), tmp.path(), "slot.0", id);
        assert!(one_more.write(id, &record(b'e')));
    }
}
