//! Page 0 of a file mapped `MAP_SHARED`, for counters that several processes
//! update with plain atomics (no system call), and the SIGBUS handler that
//! keeps such a mapping from killing the process.
//!
//! If the file is truncated while mapped (`: > token`), touching the page
//! raises SIGBUS, whose default action kills the process; a library must not
//! die from someone else's shell command. So every mapped page is entered in
//! a fixed table (a signal handler may not lock or allocate, so a static
//! array of atomics), and a process-wide SIGBUS handler replaces a registered
//! page that faults with an anonymous zero page and notes it as lost: the
//! faulting access is retried and reads zeros, and the owner sees
//! [`SharedPage::was_lost`] and repairs (lengthens the file, then
//! [`SharedPage::remap`]). A SIGBUS anywhere else goes on to whatever handled
//! SIGBUS before (Rust's std has its own one for stack overflows).

use libc::{c_int, c_void};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// How many pages can be registered at once: one per resource a process
/// has open (16 KiB of tables). Pages mapped beyond that are unprotected.
const SLOTS: usize = 1024;
/// The registered page addresses; 0 marks a free entry.
static PAGES: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
/// Per entry: the handler replaced that page since it was (re)mapped.
static LOST: [AtomicBool; SLOTS] = [const { AtomicBool::new(false) }; SLOTS];
/// The page size, set before the first registration (the handler cannot
/// call `sysconf`, which is not async-signal-safe).
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);
/// The SIGBUS action found when ours was installed: its `sa_sigaction`
/// (which may be `SIG_DFL` or `SIG_IGN`)...
static PREV_ACTION: AtomicUsize = AtomicUsize::new(libc::SIG_DFL);
/// ...and its `sa_flags` (whether it takes three arguments).
static PREV_FLAGS: AtomicUsize = AtomicUsize::new(0);
/// Installs the handler once per process, at the first `map`.
static INSTALL: Once = Once::new();

/// Page 0 of a file, mapped shared, read-write.
///
/// While it exists its page is registered with the SIGBUS handler, so a
/// truncated file turns into a zero page (see [`was_lost`](Self::was_lost))
/// instead of a crash. If installing the handler failed, mapping still
/// works, only without that protection.
#[derive(Debug)]
pub(crate) struct SharedPage {
    /// The start of the mapping (`PAGE_SIZE` bytes).
    addr: *mut c_void,
    /// Our entry in `PAGES` and `LOST`; `SLOTS` when every entry was taken
    /// (the page is then mapped without protection).
    slot: usize,
}

// SAFETY: the pointer is to a mapping this value owns until drop; it is only
// accessed through atomics, which any thread may use.
unsafe impl Send for SharedPage {}
// SAFETY: as for Send: `&self` gives out only `&AtomicU64`.
unsafe impl Sync for SharedPage {}

impl SharedPage {
    /// Maps page 0 of the file open (read-write) at `fd`. Fails only if
    /// mmap fails. A process with more than `SLOTS` pages mapped at once gets
    /// the others without protection: a failure there would leave a caller
    /// no correct way (taking tokens under a flock while others take them by
    /// compare-and-swap is no exclusion at all).
    pub(crate) fn map(fd: BorrowedFd<'_>) -> io::Result<SharedPage> {
        // SAFETY: sysconf has no preconditions.
        let size = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        PAGE_SIZE.store(size, Ordering::Relaxed);
        INSTALL.call_once(install_handler);
        let addr = mmap(ptr::null_mut(), fd, 0)?;
        let claimed = (0..SLOTS).find(|&i| {
            PAGES[i]
                .compare_exchange(0, addr as usize, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        });
        match claimed {
            Some(slot) => {
                // Left set by the entry's previous owner, perhaps.
                LOST[slot].store(false, Ordering::Release);
                Ok(SharedPage { addr, slot })
            }
            None => Ok(SharedPage { addr, slot: SLOTS }),
        }
    }

    /// The u64 at byte `offset` of the page, as an atomic shared with every
    /// process that maps the file. `offset` must be a multiple of 8 and end
    /// within the page.
    pub(crate) fn atomic_u64(&self, offset: usize) -> &AtomicU64 {
        assert!(offset.is_multiple_of(8) && offset + 8 <= PAGE_SIZE.load(Ordering::Relaxed));
        // SAFETY: in bounds and aligned (mappings are page-aligned); the
        // mapping lives as long as `self`. Other processes change the memory
        // too, but only through atomics, which is what AtomicU64 is for.
        unsafe { &*self.addr.cast::<u8>().add(offset).cast::<AtomicU64>() }
    }

    /// Maps page 0 of `fd` again at the same address (MAP_FIXED), replacing
    /// whatever is there now (e.g. the zero page put in by the SIGBUS
    /// handler). Used after the caller made the file long enough again.
    pub(crate) fn remap(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        let Some(lost) = LOST.get(self.slot) else {
            return mmap(self.addr, fd, libc::MAP_FIXED).map(drop);
        };
        // Cleared first: a truncation after the new mapping is then noted.
        lost.store(false, Ordering::Release);
        mmap(self.addr, fd, libc::MAP_FIXED)
            .map(drop)
            .inspect_err(|_| lost.store(true, Ordering::Release))
    }

    /// Whether the SIGBUS handler covers this page: false for pages mapped
    /// beyond the table's `SLOTS` entries.
    pub(crate) fn is_protected(&self) -> bool {
        self.slot < SLOTS
    }

    /// True once the SIGBUS handler replaced this page by a zero page
    /// (the file was truncated) since [`map`](Self::map) or the last
    /// [`remap`](Self::remap). Stores made since then reached no file.
    pub(crate) fn was_lost(&self) -> bool {
        LOST.get(self.slot)
            .is_some_and(|lost| lost.load(Ordering::Acquire))
    }
}

impl Drop for SharedPage {
    fn drop(&mut self) {
        // Unregistered before unmapping, so that an address reused by some
        // other mapping is never "repaired" by the handler.
        if let Some(page) = PAGES.get(self.slot) {
            page.store(0, Ordering::Release);
        }
        // SAFETY: our mapping; no reference into it outlives `self`.
        unsafe { libc::munmap(self.addr, PAGE_SIZE.load(Ordering::Relaxed)) };
    }
}

/// mmap of one page of `fd` at offset 0, shared and read-write.
fn mmap(at: *mut c_void, fd: BorrowedFd<'_>, flags: c_int) -> io::Result<*mut c_void> {
    let (prot, size) = (
        libc::PROT_READ | libc::PROT_WRITE,
        PAGE_SIZE.load(Ordering::Relaxed),
    );
    // SAFETY: either a new mapping where the kernel chooses, or (MAP_FIXED)
    // over our own page at `at`, which stays mapped either way.
    let addr = unsafe { libc::mmap(at, size, prot, libc::MAP_SHARED | flags, fd.as_raw_fd(), 0) };
    if addr == libc::MAP_FAILED {
        Err(io::Error::last_os_error())
    } else {
        Ok(addr)
    }
}

/// Installs [`on_sigbus`], after saving the current action for chaining.
fn install_handler() {
    // SAFETY: sigaction with valid, zero-initialised structs. The old action
    // is read and saved first, so the handler never runs without it.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGBUS, ptr::null(), &mut old) != 0 {
            return; // no protection; mapping still works
        }
        PREV_ACTION.store(old.sa_sigaction, Ordering::Release);
        PREV_FLAGS.store(old.sa_flags as usize, Ordering::Release);
        let mut new: libc::sigaction = std::mem::zeroed();
        new.sa_sigaction = on_sigbus as *const () as usize;
        // ONSTACK: run on the thread's alternate stack if it set one up.
        new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut new.sa_mask);
        libc::sigaction(libc::SIGBUS, &new, ptr::null_mut());
    }
}

/// The SIGBUS handler. Async-signal-safe: atomics and raw system calls only.
extern "C" fn on_sigbus(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo_t (SA_SIGINFO); si_addr is
    // meaningful for faults (si_code > 0), the only ones looked at. errno is
    // saved and restored around our system calls for the interrupted code.
    unsafe {
        let errno = *libc::__errno_location();
        let fault = (*info).si_code > 0;
        let size = PAGE_SIZE.load(Ordering::Relaxed);
        let page = ((*info).si_addr() as usize) & !(size - 1);
        if let Some(i) = (0..SLOTS).find(|&i| fault && PAGES[i].load(Ordering::Acquire) == page) {
            // A private anonymous page over ours: the faulting access is
            // retried on return and reads zeros instead of SIGBUS again.
            // Noted before the page changes, so that whoever reads the
            // zeros also finds it noted.
            LOST[i].store(true, Ordering::Release);
            let prot = libc::PROT_READ | libc::PROT_WRITE;
            let flags = libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
            if libc::mmap(page as *mut c_void, size, prot, flags, -1, 0) != libc::MAP_FAILED {
                *libc::__errno_location() = errno;
                return;
            }
        }
        match PREV_ACTION.load(Ordering::Acquire) {
            libc::SIG_IGN if !fault => {} // a sent SIGBUS, ignored as before
            libc::SIG_DFL | libc::SIG_IGN => {
                // The default action, as the kernel applies for an ignored
                // fault: a fault recurs on return and kills the process
                // with SIGBUS (and a core dump); a sent signal is re-sent.
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(libc::SIGBUS, &dfl, ptr::null_mut());
                if !fault {
                    libc::raise(libc::SIGBUS);
                }
            }
            prev if PREV_FLAGS.load(Ordering::Relaxed) & libc::SA_SIGINFO as usize != 0 => {
                let prev: extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) =
                    std::mem::transmute(prev);
                prev(sig, info, ctx);
            }
            prev => {
                let prev: extern "C" fn(c_int) = std::mem::transmute(prev);
                prev(sig);
            }
        }
        *libc::__errno_location() = errno;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::os::fd::AsFd;
    use std::os::unix::fs::FileExt;

    fn open(path: &std::path::Path) -> File {
        File::options().read(true).write(true).open(path).unwrap()
    }

    fn pread_u64(file: &File, offset: u64) -> u64 {
        let mut buf = [0; 8];
        file.read_exact_at(&mut buf, offset).unwrap();
        u64::from_ne_bytes(buf)
    }

    fn page_file() -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        file.as_file().set_len(4096).unwrap();
        file
    }

    #[test]
    fn two_mappings_and_the_file_agree() {
        let tmp = page_file();
        let (a, b) = (open(tmp.path()), open(tmp.path()));
        let pa = SharedPage::map(a.as_fd()).unwrap();
        let pb = SharedPage::map(b.as_fd()).unwrap();
        pa.atomic_u64(8).store(41, Ordering::SeqCst);
        assert_eq!(pb.atomic_u64(8).fetch_add(1, Ordering::SeqCst), 41);
        assert_eq!(pa.atomic_u64(8).load(Ordering::SeqCst), 42);
        assert_eq!(pread_u64(&a, 8), 42);
    }

    #[test]
    fn truncation_gives_zeros_then_remap_repairs() {
        let tmp = page_file();
        let file = open(tmp.path());
        let page = SharedPage::map(file.as_fd()).unwrap();
        page.atomic_u64(0).store(7, Ordering::SeqCst);
        assert!(!page.was_lost());
        file.set_len(0).unwrap();
        assert_eq!(page.atomic_u64(0).load(Ordering::SeqCst), 0);
        assert!(page.was_lost());
        file.set_len(16).unwrap();
        page.remap(file.as_fd()).unwrap();
        assert!(!page.was_lost());
        page.atomic_u64(8).store(9, Ordering::SeqCst);
        assert_eq!(pread_u64(&file, 8), 9);
    }

    #[test]
    fn unregistered_sigbus_still_kills() {
        let tmp = page_file();
        let file = open(tmp.path());
        let _installs_the_handler = SharedPage::map(file.as_fd()).unwrap();
        // SAFETY: reads the current action into a zeroed struct.
        let current = unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            assert_eq!(libc::sigaction(libc::SIGBUS, ptr::null(), &mut act), 0);
            act.sa_sigaction
        };
        assert_eq!(
            current, on_sigbus as *const () as usize,
            "ours, chaining to std's"
        );
        let fd = file.as_raw_fd();
        // SAFETY: the child makes only async-signal-safe calls (raw system
        // calls, a volatile read) and leaves by _exit. No core dump; an
        // alarm kills it should the fault loop instead of killing it.
        unsafe {
            let pid = libc::fork();
            assert!(pid >= 0);
            if pid == 0 {
                libc::setrlimit(
                    libc::RLIMIT_CORE,
                    &libc::rlimit {
                        rlim_cur: 0,
                        rlim_max: 0,
                    },
                );
                libc::alarm(10);
                let prot = libc::PROT_READ | libc::PROT_WRITE;
                let size = PAGE_SIZE.load(Ordering::Relaxed);
                let addr = libc::mmap(ptr::null_mut(), size, prot, libc::MAP_SHARED, fd, 0);
                if addr == libc::MAP_FAILED || libc::ftruncate(fd, 0) != 0 {
                    libc::_exit(2);
                }
                ptr::read_volatile(addr.cast::<u64>());
                libc::_exit(0); // survived: the test fails
            }
            let mut status = 0;
            assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
            assert!(libc::WIFSIGNALED(status), "child status {status:#x}");
            assert_eq!(libc::WTERMSIG(status), libc::SIGBUS);
        }
    }

    #[test]
    fn drop_frees_the_entry() {
        let tmp = page_file();
        let file = open(tmp.path());
        let rounds = SLOTS as u64 + 100;
        for _ in 0..rounds {
            let page = SharedPage::map(file.as_fd()).unwrap();
            assert!(page.slot < SLOTS, "mapped without protection");
            page.atomic_u64(0).fetch_add(1, Ordering::SeqCst);
        }
        assert_eq!(pread_u64(&file, 0), rounds);
    }
}
