//! Descriptor and thread hygiene: thousands of obtain/release cycles,
//! timed-out waits and cancelled async waits in one process leave the open
//! descriptor count and the thread count where they started.
//!
//! Everything here runs in one test function, because descriptors and
//! threads are counted for the whole process and parallel tests in the same
//! binary would disturb the count.

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

/// Makes a thread of this process sit on a seat of `three` once, so that
/// what sitting keeps for next time (the seats' descriptors, the helper
/// thread and its descriptors) exists before counting: every slot held, a
/// waiter at the head of the line and a second behind it; a touch of a slot
/// file wakes the head, which finds nothing free and sits.
fn sit_once(three: &Election, res: &std::path::Path) {
    let me = std::process::id();
    let held: Vec<_> = (0..3).map(|_| three.obtain().unwrap()).collect();
    let wait = || {
        let e = three.clone();
        std::thread::spawn(move || e.obtain_timeout(Duration::from_secs(60)))
    };
    let head = wait();
    support::wait_holds(me, &res.join("queue"), true);
    let behind = wait();
    support::wait_blocked_on(me, &res.join("queue"));
    let slot = std::fs::File::options()
        .write(true)
        .open(res.join("slot.0"))
        .unwrap();
    slot.set_modified(std::time::SystemTime::now()).unwrap();
    support::wait_seated(me, res);
    drop(held);
    let got = [head, behind].map(|t| t.join().unwrap().unwrap().expect("a slot"));
    drop(got);
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
    // Warm up: create the files and any lazily made process state. Each
    // Election keeps its resource directory, `tickets` and `token` open, and
    // one inotify watch once it has waited in line; that is the steady state
    // the counts below come back to.
    drop(one.obtain().unwrap());
    let three_held: Vec<_> = (0..3).map(|_| three.obtain().unwrap()).collect();
    assert!(
        three
            .obtain_timeout(Duration::from_millis(1))
            .unwrap()
            .is_none()
    );
    drop(three_held);
    sit_once(&three, &tmp.path().join("three"));
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

    // Timed-out waits, on the kernel-queue path and on the inotify path.
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

    // 1,000 cancelled async waits: half on each path.
    rt.block_on(async {
        for i in 0..1000 {
            let e = if i % 2 == 0 { &one } else { &three };
            let r = tokio::time::timeout(Duration::from_micros(200), e.obtain_async()).await;
            assert!(r.is_err(), "no ticket can be free");
        }
    });
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
    drop((one, three));
    assert_eq!(
        open_fds(),
        before_elections,
        "descriptors once the elections are gone"
    );
}
