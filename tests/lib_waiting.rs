//! Waiting and campaigns: `obtain_timeout` gives up after (not before) its
//! timeout and takes a slot freed during the wait; a campaign with
//! `requeue(true)` competes again after each release while one without
//! ends; resigning a campaign, blocking or async, while it waits for a slot
//! held by another process returns promptly, runs no owned code or cleanup
//! and leaves no lock behind. A release is an inotify event for those who
//! wait on one, even though the holder keeps its descriptors for next time,
//! and none when someone sits in the slot's own queue.

mod support;

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use elect::Ending;
use support::{DEADLINE, election, hold_all, slot_events, wait_blocked_on, wait_holds};

#[test]
#[ignore = "the body of worker processes; the other tests run it"]
fn worker_process() {
    support::worker_main();
}

/// Waits until a thread of this process is waiting for `name`: blocked on
/// `slot.0` (one ticket) or at the head of the line (several).
fn wait_until_we_wait(run: &Path, name: &str, tickets: u32) {
    let me = std::process::id();
    if tickets == 1 {
        wait_blocked_on(me, &run.join(name).join("slot.0"));
    } else {
        wait_holds(me, &run.join(name).join("queue"), true);
    }
}

#[test]
fn obtain_timeout_gives_up_after_the_timeout() {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    for tickets in [1, 3] {
        let name = format!("timeout-{tickets}");
        let holders = hold_all(run, &name, tickets);
        let e = election(run, &name, tickets);
        let timeout = Duration::from_millis(300);
        let start = Instant::now();
        assert!(e.obtain_timeout(timeout).unwrap().is_none());
        let took = start.elapsed();
        assert!(took >= timeout, "gave up early, after {took:?}");
        assert!(took < timeout + DEADLINE, "gave up late, after {took:?}");
        // A zero timeout is a try.
        assert!(e.obtain_timeout(Duration::ZERO).unwrap().is_none());
        // The election stays a live participant (a shared lock on the
        // directory) until it is dropped; nothing else may stay.
        drop(e);
        support::assert_no_lock_of_ours(&run.join(&name), false);
        drop(holders);
    }
}

#[test]
fn obtain_timeout_takes_a_slot_freed_during_the_wait() {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    for tickets in [1, 3] {
        let name = format!("freed-{tickets}");
        let mut holders = hold_all(run, &name, tickets);
        let e = election(run, &name, tickets);
        let waiter = std::thread::spawn(move || e.obtain_timeout(Duration::from_secs(60)));
        wait_until_we_wait(run, &name, tickets);
        holders[0].send("release");
        let got = waiter.join().unwrap().unwrap();
        assert!(got.is_some(), "no slot although one was freed");
    }
}

#[derive(Debug, PartialEq)]
enum Seen {
    Won(u64),
    Cleanup(Ending),
}

fn next(rx: &mpsc::Receiver<Seen>) -> Seen {
    rx.recv_timeout(DEADLINE)
        .expect("the campaign said nothing within the deadline")
}

/// Three wins, each released by the owned code and followed by a cleanup
/// with Released, with increasing tokens. The campaign sends on a
/// rendezvous channel, so it runs at the test's pace; `rx` is dropped
/// before anything can fail, so that a failure cannot leave the campaign
/// blocked in a send while its resignation waits for it.
fn three_rounds(rx: mpsc::Receiver<Seen>) {
    let rounds = std::panic::catch_unwind(|| {
        let mut last = 0;
        for _ in 0..3 {
            match next(&rx) {
                Seen::Won(t) => {
                    assert!(t > last, "token {t} after {last}");
                    last = t;
                }
                other => panic!("expected a win, got {other:?}"),
            }
            assert_eq!(next(&rx), Seen::Cleanup(Ending::Released));
        }
        rx
    });
    match rounds {
        Ok(rx) => drop(rx),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

#[test]
fn a_requeued_blocking_campaign_competes_again_after_release() {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let e = election(tmp.path(), "requeue", 1);
    let (tx, rx) = mpsc::sync_channel(0);
    let tx2 = tx.clone();
    let c = e.campaign().requeue(true).run_blocking(
        move |t| {
            let _ = tx.send(Seen::Won(t.token()));
            t.release();
        },
        move |ending| {
            let _ = tx2.send(Seen::Cleanup(ending));
        },
    );
    three_rounds(rx);
    assert!(!c.is_finished());
    c.resign().unwrap();
    assert!(e.try_obtain().unwrap().is_some());

    // Without requeue it ends after the first release.
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    let c = e.campaign().run_blocking(
        move |t| {
            tx.send(Seen::Won(t.token())).unwrap();
            t.release();
        },
        move |ending| tx2.send(Seen::Cleanup(ending)).unwrap(),
    );
    // Wait with a deadline before joining, so a campaign that does not end
    // fails the test instead of hanging it (dropping `c` resigns it).
    assert!(matches!(next(&rx), Seen::Won(_)));
    assert_eq!(next(&rx), Seen::Cleanup(Ending::Released));
    c.join().unwrap();
    assert!(rx.recv().is_err(), "it went on after the release");
}

#[test]
fn a_requeued_async_campaign_competes_again_after_release() {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let e = election(tmp.path(), "requeue", 2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (tx, rx) = mpsc::sync_channel(0);
    let tx2 = tx.clone();
    let c = {
        let _in_rt = rt.enter();
        e.campaign().requeue(true).run(
            move |t| {
                let tx = tx.clone();
                async move {
                    // Blocking send: the rounds go at the test's pace.
                    let token = t.token();
                    let _ = tokio::task::spawn_blocking(move || tx.send(Seen::Won(token))).await;
                    drop(t);
                }
            },
            move |ending| {
                let tx2 = tx2.clone();
                async move {
                    let _ =
                        tokio::task::spawn_blocking(move || tx2.send(Seen::Cleanup(ending))).await;
                }
            },
        )
    };
    three_rounds(rx);
    assert!(!c.is_finished());
    rt.block_on(c.resign()).unwrap();
    let both: Vec<_> = (0..2).map(|_| e.try_obtain().unwrap()).collect();
    assert!(
        both.iter().all(Option::is_some),
        "resigning left a slot held"
    );
}

#[test]
fn resigning_a_waiting_blocking_campaign_returns_promptly() {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    for tickets in [1, 3] {
        let name = format!("resign-blocking-{tickets}");
        let holders = hold_all(run, &name, tickets);
        let (tx, rx) = mpsc::channel::<&str>();
        let tx2 = tx.clone();
        let c = election(run, &name, tickets).campaign().run_blocking(
            move |_| tx.send("owned").unwrap(),
            move |_| tx2.send("cleanup").unwrap(),
        );
        wait_until_we_wait(run, &name, tickets);
        let start = Instant::now();
        c.resign().unwrap();
        let took = start.elapsed();
        assert!(took < Duration::from_secs(5), "resign took {took:?}");
        assert!(rx.try_recv().is_err(), "owned code or cleanup ran");
        support::assert_no_lock_of_ours(&run.join(&name), false);
        drop(holders);
    }
}

#[test]
fn resigning_a_waiting_async_campaign_returns_promptly() {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for tickets in [1, 3] {
        let name = format!("resign-async-{tickets}");
        let holders = hold_all(run, &name, tickets);
        let (tx, rx) = mpsc::channel::<&str>();
        let tx2 = tx.clone();
        let c = {
            let _in_rt = rt.enter();
            election(run, &name, tickets).campaign().run(
                move |_| {
                    tx.send("owned").unwrap();
                    async {}
                },
                move |_| {
                    tx2.send("cleanup").unwrap();
                    async {}
                },
            )
        };
        wait_until_we_wait(run, &name, tickets);
        let start = Instant::now();
        rt.block_on(c.resign()).unwrap();
        let took = start.elapsed();
        assert!(took < Duration::from_secs(5), "resign took {took:?}");
        assert!(rx.try_recv().is_err(), "owned code or cleanup ran");
        support::assert_no_lock_of_ours(&run.join(&name), false);
        drop(holders);
    }
}

/// Says in the resource's `watched` file that someone listens for release
/// events for the next hour, as the head of a line or a watcher does before
/// each sleep (for that sleep and a second more).
fn listen_for_an_hour(res: &std::path::Path) {
    use std::os::unix::fs::FileExt;
    let until = std::time::SystemTime::now() + Duration::from_secs(3600);
    let ns = until
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(res.join("watched"))
        .unwrap();
    f.write_all_at(&ns.to_ne_bytes(), 0).unwrap();
}

/// The deadline in the resource's `watched` file, as a time.
fn watched_until(res: &std::path::Path) -> std::time::SystemTime {
    let bytes = std::fs::read(res.join("watched")).unwrap();
    let ns = u64::from_ne_bytes(bytes[..8].try_into().unwrap());
    std::time::UNIX_EPOCH + Duration::from_nanos(ns)
}

#[test]
fn a_release_is_an_inotify_event_while_someone_listens_and_none_otherwise() {
    // The head of the line for several tickets, and `elect watch`, sleep
    // on inotify. A holder keeps its descriptors open for its next
    // acquisition, so no close can be the event: the release must make one
    // of its own, the first time and every time after, as long as someone
    // says they listen; and spend no system call on one when nobody does.
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("events");
    let e = election(tmp.path(), "events", 2);
    drop(e.obtain().unwrap());
    let fd = support::watch_dir(&res, libc::IN_ATTRIB | libc::IN_CLOSE_WRITE);
    for round in 0..2 {
        let t = e.obtain().unwrap();
        slot_events(&fd);
        drop(t);
        let seen = slot_events(&fd);
        assert!(
            seen.is_empty(),
            "round {round}: nobody listens, yet the release made {seen:?}"
        );
    }
    listen_for_an_hour(&res);
    for round in 0..3 {
        let t = e.obtain().unwrap();
        let slot = format!("slot.{}", t.slot());
        slot_events(&fd);
        drop(t);
        let seen = slot_events(&fd);
        assert!(
            seen.contains(&slot),
            "round {round}: no event for {slot} on release (saw {seen:?})"
        );
        // And the slot is free by the time the event can be read.
        let other = election(tmp.path(), "events", 2);
        let again = other.try_obtain().unwrap().expect("a slot is free");
        drop(again);
        slot_events(&fd);
    }
}

#[test]
fn a_release_makes_no_event_while_someone_sits_in_its_slots_queue() {
    // A seated waiter (see lib_seats) holds the lock of the slot's seat and
    // is handed the slot by the unlock itself: the release's touch would
    // only wake a head to race it. Here the test holds the seat, so no
    // winner can empty it before the releaser looks.
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("seated");
    let e = election(tmp.path(), "seated", 2);
    let (t0, t1) = (e.obtain().unwrap(), e.obtain().unwrap());
    assert_eq!((t0.slot(), t1.slot()), (0, 1));
    listen_for_an_hour(&res);
    let seat = std::fs::File::options()
        .write(true)
        .create(true)
        .truncate(false)
        .open(res.join("seat.0"))
        .unwrap();
    seat.try_lock().unwrap();
    let fd = support::watch_dir(&res, libc::IN_ATTRIB | libc::IN_CLOSE_WRITE);
    drop(t0);
    let seen = slot_events(&fd);
    assert!(
        seen.is_empty(),
        "a release with its seat taken made {seen:?}"
    );
    // The seat empty again, the same release makes its event.
    seat.unlock().unwrap();
    let t0 = e.try_obtain().unwrap().expect("slot 0 is free");
    assert_eq!(t0.slot(), 0);
    slot_events(&fd);
    drop(t0);
    assert_eq!(slot_events(&fd), ["slot.0"]);
    drop(t1);
}

#[test]
fn the_head_of_the_line_and_a_watcher_say_they_listen() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("heads");
    let e = election(tmp.path(), "heads", 2);
    let held = (e.obtain().unwrap(), e.obtain().unwrap());
    assert!(
        watched_until(&res) < std::time::SystemTime::now(),
        "holders alone do not listen"
    );
    let waiter = {
        let e = e.clone();
        std::thread::spawn(move || e.obtain().map(|t| t.slot()))
    };
    // The head raises the deadline before it looks at the slots, then
    // sleeps: wait (generously) for the deadline to be ahead.
    let deadline = Instant::now() + Duration::from_secs(30);
    while watched_until(&res) <= std::time::SystemTime::now() {
        assert!(Instant::now() < deadline, "the head never said it listens");
        std::thread::sleep(Duration::from_millis(1));
    }
    let freed = held.0.slot();
    drop(held.0);
    assert_eq!(waiter.join().unwrap().unwrap(), freed);
    drop(held.1);

    let other = tempfile::tempdir().unwrap();
    let res = other.path().join("watched-by");
    let e = election(other.path(), "watched-by", 1);
    drop(e.obtain().unwrap());
    assert!(watched_until(&res) < std::time::SystemTime::now());
    let _w = e.watch().unwrap();
    assert!(
        watched_until(&res) > std::time::SystemTime::now(),
        "a new watch listens from the start"
    );
}

/// The scheduling policy of thread `tid` of this process.
fn policy_of(tid: libc::pid_t) -> libc::c_int {
    // SAFETY: plain system call; a thread id of this process.
    unsafe { libc::sched_getscheduler(tid) }
}

#[test]
fn a_waiter_in_line_steps_back_and_gets_its_policy_back() {
    // Woken to become the head of the line, a waiter must not preempt the
    // head that just got its slot: it waits in line under SCHED_BATCH, and
    // is under SCHED_OTHER again as head and once it holds.
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    let mut holders = hold_all(run, "policy", 2);
    let queue = run.join("policy").join("queue");
    let me = std::process::id();
    let spawn_waiter = || {
        let (tx, rx) = mpsc::channel();
        let run = run.to_path_buf();
        let thread = std::thread::spawn(move || {
            // SAFETY: plain system call.
            tx.send(unsafe { libc::gettid() }).unwrap();
            let t = election(&run, "policy", 2).obtain().unwrap();
            // SAFETY: plain system call on this thread.
            let after = unsafe { libc::sched_getscheduler(0) };
            (t, after)
        });
        (rx.recv().unwrap(), thread)
    };
    let (head, first) = spawn_waiter();
    wait_holds(me, &queue, true);
    let (second_tid, second) = spawn_waiter();
    wait_blocked_on(me, &queue);
    assert_eq!(policy_of(head), libc::SCHED_OTHER, "the head");
    assert_eq!(policy_of(second_tid), libc::SCHED_BATCH, "in line");
    holders[0].send("release");
    holders[0].expect("RELEASED");
    let (t1, after1) = first.join().unwrap();
    assert_eq!(after1, libc::SCHED_OTHER);
    // The second is the head now, under its own policy again.
    support::wait_until("the second waiter to be the head", || {
        policy_of(second_tid) == libc::SCHED_OTHER
    });
    holders[1].send("release");
    holders[1].expect("RELEASED");
    let (t2, after2) = second.join().unwrap();
    assert_eq!(after2, libc::SCHED_OTHER);
    drop((t1, t2, holders));
}
