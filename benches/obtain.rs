//! In-process costs: an uncontended try_obtain + release, and a hand-off
//! between two threads of one process.
//!
//! `cargo bench --bench obtain`

use std::sync::mpsc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use elect::Election;

fn uncontended(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("uncontended");
    for tickets in [1, 4] {
        let e = Election::builder("bench")
            .tickets(tickets)
            .dir(dir.path())
            .build()
            .unwrap();
        drop(e.obtain().unwrap());
        g.bench_function(format!("try_obtain+release/tickets={tickets}"), |b| {
            b.iter(|| drop(e.try_obtain().unwrap().unwrap()))
        });
    }
    // The floor: the system calls of a bare flock acquisition on one file.
    let path = dir.path().join("raw");
    std::fs::write(&path, "").unwrap();
    g.bench_function("raw open+flock+close", |b| {
        b.iter(|| {
            let f = std::fs::File::open(&path).unwrap();
            f.try_lock().unwrap();
        })
    });
    // The floor of elect's semantics: the same 13 system calls that an
    // uncontended try_obtain + release makes (see `Floor::iteration`), made
    // directly, without elect's own code around them.
    let floor = Floor::new(dir.path());
    g.bench_function("raw: the 13 system calls of elect's obtain+release", |b| {
        b.iter(|| floor.iteration())
    });
    g.finish();
}

/// Descriptors for the floor benchmark, kept open as elect keeps them.
struct Floor {
    member: std::fs::File,
    tickets: std::fs::File,
    token: std::fs::File,
    lock: std::fs::File,
    record: std::fs::File,
    slot_path: std::ffi::CString,
}

impl Floor {
    fn new(base: &std::path::Path) -> Self {
        use std::os::unix::ffi::OsStrExt;
        let res = base.join("floor");
        std::fs::create_dir_all(&res).unwrap();
        std::fs::write(res.join("tickets"), "1\n").unwrap();
        std::fs::write(res.join("token"), format!("{:020}\n", 1)).unwrap();
        std::fs::write(res.join("slot.0"), "").unwrap();
        let rw = |p: &str| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(res.join(p))
                .unwrap()
        };
        Floor {
            member: std::fs::File::open(&res).unwrap(),
            tickets: rw("tickets"),
            token: rw("token"),
            lock: std::fs::File::open(res.join("slot.0")).unwrap(),
            record: std::fs::OpenOptions::new()
                .write(true)
                .open(res.join("slot.0"))
                .unwrap(),
            slot_path: std::ffi::CString::new(res.join("slot.0").as_os_str().as_bytes()).unwrap(),
        }
    }

    /// join: read `tickets`, shared lock on the directory, read again;
    /// lock the slot; check its path (statx asking for the inode only);
    /// token: lock, read, write, unlock; record: one write of the padded
    /// record; release: unlock the slot, touch its times (the event that
    /// wakes the head of the line), unlock the directory.
    fn iteration(&self) {
        use std::os::fd::AsRawFd;
        let mut buf = [0u8; 64];
        let mut record = [b' '; 2304];
        let json = br#"{"pid":4242,"since":"2026-11-23T10:00:00Z","label":"target/release/deps/obtain --bench","token":1795443104041151}"#;
        record[..json.len()].copy_from_slice(json);
        record[2303] = b'\n';
        // SAFETY: plain system calls on descriptors this struct owns, with
        // buffers that live across each call.
        unsafe {
            let mut stx: libc::statx = std::mem::zeroed();
            libc::pread(self.tickets.as_raw_fd(), buf.as_mut_ptr().cast(), 32, 0);
            libc::flock(self.member.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB);
            libc::pread(self.tickets.as_raw_fd(), buf.as_mut_ptr().cast(), 32, 0);
            assert_eq!(
                libc::flock(self.lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB),
                0
            );
            libc::statx(
                libc::AT_FDCWD,
                self.slot_path.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW | libc::AT_STATX_DONT_SYNC,
                libc::STATX_INO,
                &mut stx,
            );
            let t = self.token.as_raw_fd();
            libc::flock(t, libc::LOCK_EX | libc::LOCK_NB);
            libc::pread(t, buf.as_mut_ptr().cast(), 64, 0);
            libc::pwrite(t, b"00000000000000000002\n".as_ptr().cast(), 21, 0);
            libc::flock(t, libc::LOCK_UN);
            libc::pwrite(
                self.record.as_raw_fd(),
                record.as_ptr().cast(),
                record.len(),
                0,
            );
            libc::flock(self.lock.as_raw_fd(), libc::LOCK_UN);
            libc::futimens(self.record.as_raw_fd(), std::ptr::null());
            libc::flock(self.member.as_raw_fd(), libc::LOCK_UN);
        }
    }
}

/// One thread holds and releases; another waits in obtain(). Measures
/// release → the waiter owns.
fn thread_handoff(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let e = Election::builder("handoff")
        .dir(dir.path())
        .build()
        .unwrap();
    c.bench_function("handoff between threads/tickets=1", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let held = e.obtain().unwrap();
                let (tx, rx) = mpsc::channel();
                let e2 = e.clone();
                let waiter = std::thread::spawn(move || {
                    let t = e2.obtain().unwrap();
                    tx.send(Instant::now()).unwrap();
                    drop(t);
                });
                // Give the waiter time to block in the kernel.
                std::thread::sleep(Duration::from_millis(2));
                let released = Instant::now();
                drop(held);
                let got = rx.recv().unwrap();
                total += got - released;
                waiter.join().unwrap();
            }
            total
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = uncontended, thread_handoff
}
criterion_main!(benches);
