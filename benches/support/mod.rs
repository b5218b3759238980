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

/// The system calls an obtain and release of elect make (as `strace` of
/// one shows), made directly without elect's code: the floor of elect's
/// semantics. Per obtain, first: check that the resource directory is
/// still the one at its path (statx). Kept between obtains, as elect keeps them: the resource
/// directory's descriptor and the process's membership (a shared flock on
/// the directory). Per obtain: open the slot read-only, fstat, flock it,
/// check that it is still the file at its path (statx), open it again
/// write-only for the record, fstat, move the lock's descriptor above the
/// record's (F_DUPFD_CLOEXEC, close), take the next token (open `token`,
/// fstat, flock, pread, one pwrite of the fixed 21 bytes, unlock, close)
/// and write the padded record (one pwrite). Per release: unlock the slot,
/// close the lock's descriptor, close the record's (the IN_CLOSE_WRITE that
/// wakes the head of the line).
pub struct ElectCalls {
    dir: std::fs::File,
    path: std::ffi::CString,
    /// Kept shared-locked: a member, as elect stays one between obtains.
    _member: std::fs::File,
    held: std::cell::Cell<Option<(i32, i32)>>,
    padded: Vec<u8>,
}

impl ElectCalls {
    /// Opens (creating) the resource directory `res` and its files and
    /// joins (a shared flock on the directory, kept).
    pub fn open(res: &Path) -> Self {
        use std::os::fd::AsRawFd;
        std::fs::create_dir_all(res).unwrap();
        for name in ["slot.0", "token"] {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(res.join(name))
                .unwrap();
        }
        let member = std::fs::File::open(res).unwrap();
        // SAFETY: plain system call on a descriptor owned here.
        unsafe { libc::flock(member.as_raw_fd(), libc::LOCK_SH) };
        let json = br#"{"pid":4242,"since":"2026-11-23T10:00:00Z","label":"bench","token":1795443104041151}"#;
        let mut padded = vec![b' '; 2304];
        padded[..json.len()].copy_from_slice(json);
        padded[2303] = b'\n';
        ElectCalls {
            dir: std::fs::File::open(res).unwrap(),
            path: std::ffi::CString::new(res.as_os_str().as_encoded_bytes()).unwrap(),
            _member: member,
            held: std::cell::Cell::new(None),
            padded,
        }
    }

    /// Obtains as elect does (see the type's docs), locking the slot with
    /// a blocking flock(2) if `wait` (the kernel's hand-off, not elect's
    /// line). False if the slot was busy and `wait` is false.
    pub fn obtain(&self, wait: bool) -> bool {
        use std::os::fd::AsRawFd;
        let dir = self.dir.as_raw_fd();
        let how = if wait {
            libc::LOCK_EX
        } else {
            libc::LOCK_EX | libc::LOCK_NB
        };
        let flags = libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: plain system calls on descriptors this struct owns or
        // opens here, with buffers that live across each call.
        unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            let mut stx: libc::statx = std::mem::zeroed();
            let look = libc::AT_SYMLINK_NOFOLLOW | libc::AT_STATX_DONT_SYNC;
            let what = libc::STATX_TYPE | libc::STATX_NLINK | libc::STATX_INO | libc::STATX_SIZE;
            libc::statx(libc::AT_FDCWD, self.path.as_ptr(), look, what, &mut stx);
            let lock = libc::openat(
                dir,
                c"slot.0".as_ptr(),
                libc::O_RDONLY | libc::O_CREAT | flags,
                0o600,
            );
            assert!(lock >= 0);
            libc::fstat(lock, &mut st);
            if libc::flock(lock, how) != 0 {
                libc::close(lock);
                return false;
            }
            libc::statx(dir, c"slot.0".as_ptr(), look, what, &mut stx);
            let record = libc::openat(dir, c"slot.0".as_ptr(), libc::O_WRONLY | flags);
            assert!(record >= 0);
            libc::fstat(record, &mut st);
            let above = libc::fcntl(lock, libc::F_DUPFD_CLOEXEC, record + 1);
            libc::close(lock);
            let token = libc::openat(
                dir,
                c"token".as_ptr(),
                libc::O_RDWR | libc::O_CREAT | flags,
                0o600,
            );
            assert!(token >= 0);
            libc::fstat(token, &mut st);
            libc::flock(token, libc::LOCK_EX | libc::LOCK_NB);
            let mut buf = [0u8; 64];
            let n = libc::pread(token, buf.as_mut_ptr().cast(), 64, 0);
            let last: u64 = std::str::from_utf8(&buf[..n.max(0) as usize])
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(0);
            let text = format!("{:020}\n", last + 1);
            libc::pwrite(token, text.as_ptr().cast(), text.len(), 0);
            libc::flock(token, libc::LOCK_UN);
            libc::close(token);
            libc::pwrite(record, self.padded.as_ptr().cast(), self.padded.len(), 0);
            self.held.set(Some((above, record)));
        }
        true
    }

    /// Releases as elect does: unlock the slot, close the lock's descriptor,
    /// then the record's.
    pub fn release(&self) {
        let (lock, record) = self.held.take().expect("held");
        // SAFETY: plain system calls on descriptors opened by `obtain`.
        unsafe {
            libc::flock(lock, libc::LOCK_UN);
            libc::close(lock);
            libc::close(record);
        }
    }
}
