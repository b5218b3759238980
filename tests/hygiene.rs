//! Descriptor, thread and signal hygiene: thousands of obtain/release
//! cycles, timed-out waits, cancelled async waits and a resigned campaign
//! in one process leave the open descriptor count and the thread count
//! where they started; no thread is left once the last `Election` and
//! `Ticket` are gone; and the library installs no signal handler, changes
//! no signal disposition and leaves the caller's signal mask as it was.
//!
//! Everything here runs in one test function, because descriptors, threads
//! and signal dispositions are counted for the whole process and parallel
//! tests in the same binary would disturb the count.

use std::time::{Duration, Instant};

use elect::Election;

mod support;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// Threads end a moment after they are joined; wait for the count to settle.
fn settled_threads(expected: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = threads();
        if n <= expected || Instant::now() > deadline {
            return n;
        }
        std::thread::yield_now();
    }
}

/// The signals this process catches (has a handler for) and ignores, and
/// those the calling thread blocks: `SigCgt` and `SigIgn` of
/// `/proc/self/status`, `SigBlk` of `/proc/thread-self/status`.
fn signals() -> (u64, u64, u64) {
    let field = |path: &str, name: &str| -> u64 {
        let text = std::fs::read_to_string(path).unwrap();
        let value = text
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {path}"));
        u64::from_str_radix(value.trim(), 16).unwrap()
    };
    (
        field("/proc/self/status", "SigCgt:"),
        field("/proc/self/status", "SigIgn:"),
        field("/proc/thread-self/status", "SigBlk:"),
    )
}

/// Makes a thread of this process wait in the line of `three` once, so
/// that whatever a wait makes lazily exists before counting: every slot
/// held, a waiter in line, one slot freed for it.
fn wait_once(three: &Election, res: &std::path::Path) {
    let mut held: Vec<_> = (0..three.tickets())
        .map(|_| three.obtain().unwrap())
        .collect();
    let waiter = {
        let e = three.clone();
        std::thread::spawn(move || e.obtain_timeout(Duration::from_secs(60)))
    };
    support::wait_in_line(std::process::id(), res);
    held.pop();
    let got = waiter.join().unwrap().unwrap().expect("a slot");
    drop((got, held));
}

#[test]
fn descriptors_and_threads_come_back_to_where_they_started() {
    let tmp = tempfile::tempdir().unwrap();
    let one = Election::builder("one").dir(tmp.path()).build().unwrap();
    let three = Election::builder("three")
        .tickets(3)
        .dir(tmp.path())
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let before_elections = open_fds();
    let threads_before_elections = threads();
    let signals_before = signals();
    // Warm up: create the files and any lazily made process state. Each
    // Election keeps its membership of the resource (the directory, with a
    // shared lock) while it lives; that is the steady state the counts
    // below come back to.
    drop(one.obtain().unwrap());
    let three_held: Vec<_> = (0..3).map(|_| three.obtain().unwrap()).collect();
    assert!(
        three
            .obtain_timeout(Duration::from_millis(1))
            .unwrap()
            .is_none()
    );
    drop(three_held);
    // A wait of each (a membership keeps one inotify instance for its
    // next wait, as it keeps its directory).
    wait_once(&one, &tmp.path().join("one"));
    wait_once(&three, &tmp.path().join("three"));
    let fds = open_fds();
    let tasks = threads();

    // 10,000 obtain/release cycles, alternating kinds of obtain.
    for i in 0..10_000 {
        let t = match i % 3 {
            0 => one.try_obtain().unwrap().unwrap(),
            1 => one.obtain().unwrap(),
            _ => three
                .obtain_timeout(Duration::from_secs(5))
                .unwrap()
                .unwrap(),
        };
        if i % 2 == 0 {
            t.release();
        }
    }
    assert_eq!(open_fds(), fds, "descriptors after 10,000 cycles");

    // Timed-out waits, for one ticket and for several.
    let held_one = one.obtain().unwrap();
    let held_three: Vec<_> = (0..3).map(|_| three.obtain().unwrap()).collect();
    for _ in 0..50 {
        assert!(
            one.obtain_timeout(Duration::from_millis(2))
                .unwrap()
                .is_none()
        );
        assert!(
            three
                .obtain_timeout(Duration::from_millis(2))
                .unwrap()
                .is_none()
        );
    }

    // 1,000 cancelled async waits: half for each.
    rt.block_on(async {
        for i in 0..1000 {
            let e = if i % 2 == 0 { &one } else { &three };
            let r = tokio::time::timeout(Duration::from_micros(200), e.obtain_async()).await;
            assert!(r.is_err(), "no ticket can be free");
        }
    });
    // A cancelled wait leaves the line at once (the future's drop joins
    // its thread).
    let me = std::process::id();
    for name in ["one", "three"] {
        let left = support::places_of(me, &tmp.path().join(name));
        assert_eq!(left, [] as [std::path::PathBuf; 0], "{name}");
    }

    // A campaign that waits, resigned.
    let (tx, ran) = std::sync::mpsc::channel();
    let tx2 = tx.clone();
    let campaign = three.campaign().run_blocking(
        move |t| {
            let _ = tx.send("owned");
            drop(t);
        },
        move |_| {
            let _ = tx2.send("cleanup");
        },
    );
    support::wait_in_line(me, &tmp.path().join("three"));
    campaign.resign().unwrap();
    assert!(ran.try_recv().is_err(), "the campaign won, or cleaned up");
    drop(held_one);
    drop(held_three);
    assert_eq!(open_fds(), fds, "descriptors after cancelled waits");
    assert_eq!(
        settled_threads(tasks),
        tasks,
        "threads after cancelled waits"
    );
    assert!(one.status().unwrap().slots.iter().all(|s| !s.held));
    assert!(three.status().unwrap().slots.iter().all(|s| !s.held));
    let (sigs, ign, blk) = signals();
    drop((one, three));
    assert_eq!(
        open_fds(),
        before_elections,
        "descriptors once the elections are gone"
    );
    assert_eq!(
        settled_threads(threads_before_elections),
        threads_before_elections,
        "threads once the last Election and Ticket are gone"
    );
    let (before_cgt, before_ign, before_blk) = signals_before;
    assert_eq!(
        sigs, before_cgt,
        "caught signals (SigCgt) {sigs:#x}, {before_cgt:#x} before"
    );
    assert_eq!(
        ign, before_ign,
        "ignored signals (SigIgn) {ign:#x}, {before_ign:#x} before"
    );
    assert_eq!(
        blk, before_blk,
        "signals blocked in the calling thread {blk:#x}, {before_blk:#x} before"
    );
    assert_eq!(signals(), signals_before, "once the elections are gone");
}
