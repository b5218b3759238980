//! What the benchmarks share: a clock that means the same in every process,
//! fresh work directories, waiting for a file a worker writes, keeping raw
//! samples for the plot, and elect's system calls made directly (the floor
//! elect's own figures are compared with).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What the command line of a multi-process bench asks for: `quick` for a
/// short run, and section names to run only those (none: all). `cargo
/// bench` adds `--bench`, which is left out.
pub struct Selection {
    pub quick: bool,
    names: Vec<String>,
}

impl Selection {
    pub fn from_args() -> Self {
        let names: Vec<String> = std::env::args()
            .skip(1)
            .filter(|a| a != "--bench" && a != "quick")
            .collect();
        Selection {
            quick: std::env::args().skip(1).any(|a| a == "quick"),
            names,
        }
    }

    /// Whether section `name` runs.
    pub fn only(&self, name: &str) -> bool {
        self.names.is_empty() || self.names.iter().any(|n| n == name)
    }

    /// Whether section `name`, which runs only when asked for, was.
    pub fn named(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }
}

/// CLOCK_MONOTONIC in nanoseconds: one clock for all processes of a run,
/// so a stamp taken by one process can be compared with another's.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// `base/name`, emptied and created.
pub fn fresh(base: &Path, name: &str) -> PathBuf {
    let d = base.join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Waits until `path` exists; false if `limit` passed first. Polling is
/// fine here: it runs between measurements, never during one.
pub fn wait_for(path: &Path, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while !path.exists() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    true
}

/// When `ELECT_BENCH_SAMPLES` names a directory, writes every sample
/// (nanoseconds, little-endian u64) to `<dir>/<prefix><what>.u64` for
/// report.py's plot. A number in the variable is a sample count, not a
/// directory, and keeps nothing.
pub fn keep_samples(prefix: &str, what: &str, samples: &[u64]) {
    let Some(dir) = std::env::var_os("ELECT_BENCH_SAMPLES") else {
        return;
    };
    if dir.to_string_lossy().parse::<usize>().is_ok() {
        return;
    }
    let name: String = what
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let bytes: Vec<u8> = samples.iter().flat_map(|v| v.to_le_bytes()).collect();
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(Path::new(&dir).join(format!("{prefix}{name}.u64")), bytes);
}

/// The descriptors elect keeps open for a resource with one ticket, and the
/// system calls it makes through them to obtain and release, made directly
/// without elect's code: the floor of elect's semantics, which `strace` of
/// an obtain and release shows.
pub struct ElectCalls {
    /// Kept shared-locked: a member, as elect stays one between obtains.
    _member: std::fs::File,
    /// The counter file, mapped; `counter` points into the mapping.
    _token: std::fs::File,
    counter: &'static std::sync::atomic::AtomicU64,
    /// The `watched` deadline, mapped: a release touches only while it is
    /// ahead, which nobody makes it here.
    _watched: std::fs::File,
    watched: &'static std::sync::atomic::AtomicU64,
    lock: std::fs::File,
    record: std::fs::File,
    slot: std::ffi::CString,
    padded: Vec<u8>,
}

impl ElectCalls {
    /// Opens (creating) the resource directory `res` and its files, joins
    /// (a shared flock on the directory, kept) and maps the counter.
    pub fn open(res: &Path) -> Self {
        use std::os::fd::AsRawFd;
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::FileExt;
        std::fs::create_dir_all(res).unwrap();
        let open = |name: &str, read: bool, write: bool| {
            std::fs::OpenOptions::new()
                .read(read)
                .write(write)
                .create(write)
                .truncate(false)
                .open(res.join(name))
                .unwrap()
        };
        let token = open("token", true, true);
        token.write_all_at(&[0u8; 16], 0).unwrap();
        // SAFETY: maps 16 bytes (one page) of a file of 16 bytes, shared;
        // the mapping is never unmapped, so the reference lives for ever.
        let counter = unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                16,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                token.as_raw_fd(),
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            &*(p.cast::<u8>().add(8).cast::<std::sync::atomic::AtomicU64>())
        };
        let watched = open("watched", true, true);
        watched.write_all_at(&[0u8; 8], 0).unwrap();
        // SAFETY: as for the counter: one page of an 8-byte file, shared,
        // never unmapped.
        let deadline = unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                8,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                watched.as_raw_fd(),
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            &*(p.cast::<std::sync::atomic::AtomicU64>())
        };
        let member = std::fs::File::open(res).unwrap();
        // SAFETY: plain system call on a descriptor owned here.
        unsafe { libc::flock(member.as_raw_fd(), libc::LOCK_SH) };
        let record = open("slot.0", false, true);
        let json = br#"{"pid":4242,"since":"2026-11-23T10:00:00Z","label":"bench","token":1795443104041151}"#;
        let mut padded = vec![b' '; 2304];
        padded[..json.len()].copy_from_slice(json);
        padded[2303] = b'\n';
        ElectCalls {
            _member: member,
            _token: token,
            counter,
            _watched: watched,
            watched: deadline,
            lock: open("slot.0", true, false),
            record,
            slot: std::ffi::CString::new(res.join("slot.0").as_os_str().as_bytes()).unwrap(),
            padded,
        }
    }

    /// Obtains as elect does: lock the slot (waiting in flock(2) if
    /// `wait`), check its path (statx without times), take a token (one
    /// compare-and-swap on the mapped counter, no system call) and write
    /// the padded record. False if the slot was busy and `wait` is false.
    pub fn obtain(&self, wait: bool) -> bool {
        use std::os::fd::AsRawFd;
        use std::sync::atomic::Ordering;
        let how = if wait {
            libc::LOCK_EX
        } else {
            libc::LOCK_EX | libc::LOCK_NB
        };
        // SAFETY: plain system calls on descriptors this struct owns, with
        // buffers that live across each call.
        unsafe {
            if libc::flock(self.lock.as_raw_fd(), how) != 0 {
                return false;
            }
            let mut stx: libc::statx = std::mem::zeroed();
            libc::statx(
                libc::AT_FDCWD,
                self.slot.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW | libc::AT_STATX_DONT_SYNC,
                libc::STATX_TYPE | libc::STATX_NLINK | libc::STATX_INO | libc::STATX_SIZE,
                &mut stx,
            );
            let last = self.counter.load(Ordering::SeqCst);
            let _ =
                self.counter
                    .compare_exchange(last, last + 1, Ordering::SeqCst, Ordering::SeqCst);
            libc::pwrite(
                self.record.as_raw_fd(),
                self.padded.as_ptr().cast(),
                self.padded.len(),
                0,
            );
        }
        true
    }

    /// Releases as elect does: unlock the slot, then touch its times (the
    /// event that wakes the head of the line) only if the `watched`
    /// deadline is ahead of the coarse wall clock: here it never is.
    pub fn release(&self) {
        use std::os::fd::AsRawFd;
        use std::sync::atomic::Ordering;
        // SAFETY: plain system calls on descriptors this struct owns, and a
        // timespec that lives across the call.
        unsafe {
            libc::flock(self.lock.as_raw_fd(), libc::LOCK_UN);
            let mut ts: libc::timespec = std::mem::zeroed();
            libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts);
            let now = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
            if now < self.watched.load(Ordering::SeqCst) {
                libc::futimens(self.record.as_raw_fd(), std::ptr::null());
            }
        }
    }
}
