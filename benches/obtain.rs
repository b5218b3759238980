//! In-process costs: an uncontended try_obtain + release, and a hand-off
//! between two threads of one process.
//!
//! `cargo bench --bench obtain`

use std::sync::mpsc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

mod support;
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
    // A try that finds the file still locked is retried and counted: once
    // in about a million iterations (one full run, kernel 6.18), the lock of
    // the descriptor just closed was still there, which a floor figure
    // should report, not die of.
    let busy = std::cell::Cell::new(0u64);
    g.bench_function("raw open+flock+close", |b| {
        b.iter(|| {
            let f = std::fs::File::open(&path).unwrap();
            while let Err(e) = f.try_lock() {
                assert!(matches!(e, std::fs::TryLockError::WouldBlock), "{e}");
                busy.set(busy.get() + 1);
            }
        })
    });
    if busy.get() > 0 {
        eprintln!(
            "raw open+flock+close: {} tries found the file still locked",
            busy.get()
        );
    }
    // The floor of any lock by flock(2): lock and unlock through a
    // descriptor kept open, two system calls.
    let kept = std::fs::File::open(&path).unwrap();
    g.bench_function("raw flock+unlock, descriptor kept", |b| {
        b.iter(|| {
            kept.try_lock().unwrap();
            kept.unlock().unwrap();
        })
    });
    // The floor of elect's semantics: the same system calls that an
    // uncontended try_obtain + release makes (see `ElectCalls`), made
    // directly, without elect's own code around them.
    let floor = support::ElectCalls::open(&dir.path().join("floor"));
    g.bench_function("raw: the system calls of elect's obtain+release", |b| {
        b.iter(|| {
            assert!(floor.obtain(false));
            floor.release();
        })
    });
    g.finish();
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
