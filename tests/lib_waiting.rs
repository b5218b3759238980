//! Waiting and campaigns: `obtain_timeout` gives up after (not before) its
//! timeout and takes a slot freed during the wait; a campaign with
//! `requeue(true)` competes again after each release while one without
//! ends; resigning a campaign, blocking or async, while it waits for a slot
//! held by another process returns promptly, runs no owned code or cleanup
//! and leaves no lock behind. A wait given up leaves its place in the line
//! to the one behind it. Every release is the event the head of the line
//! sleeps on, after the slot is free, and a failed try is none; a slot freed
//! without any event still reaches the head within about a second; idle
//! waiters block in no lock and wake about once a second. A campaign's
//! slot stays held while its cleanup runs: the next owner starts after it.

mod support;

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use elect::Ending;
use support::{DEADLINE, Worker, election, hold_all, slot_events, wait_in_line, waiter};

#[test]
#[ignore = "the body of worker processes; the other tests run it"]
fn worker_process() {
    support::worker_main();
}

/// Waits until a thread of this process is waiting for `name`: it stands
/// in the line.
fn wait_until_we_wait(run: &Path, name: &str) {
    wait_in_line(std::process::id(), &run.join(name));
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
        wait_until_we_wait(run, &name);
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
        wait_until_we_wait(run, &name);
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
        wait_until_we_wait(run, &name);
        let start = Instant::now();
        rt.block_on(c.resign()).unwrap();
        let took = start.elapsed();
        assert!(took < Duration::from_secs(5), "resign took {took:?}");
        assert!(rx.try_recv().is_err(), "owned code or cleanup ran");
        support::assert_no_lock_of_ours(&run.join(&name), false);
        drop(holders);
    }
}

/// While a campaign's cleanup runs, the campaign still holds the slot:
/// `cleanup_started` has seen the cleanup begin; then the slot must be
/// locked by this process and the waiting process `w` must hold nothing.
/// `finish_cleanup` lets the cleanup return; then `w` gets the slot.
fn next_owner_waits_for_the_cleanup(
    run: &Path,
    name: &str,
    mut w: Worker,
    cleanup_started: impl FnOnce(),
    finish_cleanup: impl FnOnce(),
) {
    cleanup_started();
    let slot = run.join(name).join("slot.0");
    assert!(
        support::holds(std::process::id(), &slot, true),
        "the slot was freed before the cleanup returned"
    );
    assert!(
        !w.has_said("HELD"),
        "the next owner started during the cleanup"
    );
    finish_cleanup();
    w.expect_held();
    w.finish();
}

#[test]
fn the_next_owner_starts_after_a_blocking_campaigns_cleanup() {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    let name = "cleanup-first-blocking";
    let (tx, rx) = mpsc::channel::<&str>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let tx2 = tx.clone();
    let c = election(run, name, 1).campaign().run_blocking(
        move |_| tx.send("owned").unwrap(),
        move |_| {
            tx2.send("cleanup").unwrap();
            go_rx.recv().unwrap();
        },
    );
    assert_eq!(rx.recv_timeout(DEADLINE).unwrap(), "owned");
    let w = waiter(run, name, 1);
    wait_in_line(w.pid, &run.join(name));
    let resign = std::thread::spawn(move || c.resign());
    next_owner_waits_for_the_cleanup(
        run,
        name,
        w,
        || assert_eq!(rx.recv_timeout(DEADLINE).unwrap(), "cleanup"),
        || go_tx.send(()).unwrap(),
    );
    resign.join().unwrap().unwrap();
}

#[test]
fn the_next_owner_starts_after_an_async_campaigns_cleanup() {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    let name = "cleanup-first-async";
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (tx, rx) = mpsc::channel::<&str>();
    let tx2 = tx.clone();
    let go = std::sync::Arc::new(tokio::sync::Notify::new());
    let go2 = std::sync::Arc::clone(&go);
    let c = {
        let _in_rt = rt.enter();
        election(run, name, 1).campaign().run(
            move |_| {
                tx.send("owned").unwrap();
                std::future::pending::<()>()
            },
            move |_| {
                tx2.send("cleanup").unwrap();
                let go = std::sync::Arc::clone(&go2);
                async move { go.notified().await }
            },
        )
    };
    assert_eq!(rx.recv_timeout(DEADLINE).unwrap(), "owned");
    let w = waiter(run, name, 1);
    wait_in_line(w.pid, &run.join(name));
    let resign = rt.spawn(c.resign());
    next_owner_waits_for_the_cleanup(
        run,
        name,
        w,
        || assert_eq!(rx.recv_timeout(DEADLINE).unwrap(), "cleanup"),
        // A permit is kept if the cleanup is not waiting yet.
        || go.notify_one(),
    );
    rt.block_on(resign).unwrap().unwrap();
}

#[test]
fn a_campaign_resigned_from_its_own_owned_code_ends_with_resigned() {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    let name = "resign-from-within";
    let (handle_tx, handle_rx) = mpsc::channel::<elect::BlockingCampaign>();
    let (tx, rx) = mpsc::channel();
    let c = election(run, name, 1)
        .campaign()
        .requeue(true)
        .run_blocking(
            move |_| {
                let me = handle_rx.recv().unwrap();
                me.resign().unwrap(); // returns at once: this is its thread
            },
            move |ending| tx.send(ending).unwrap(),
        );
    handle_tx.send(c).unwrap();
    assert_eq!(rx.recv_timeout(DEADLINE).unwrap(), Ending::Resigned);
    // The campaign ended (no requeue after a resign) and freed the slot.
    let mut w = waiter(run, name, 1);
    w.expect_held();
    w.finish();
    assert!(rx.try_recv().is_err(), "the campaign competed again");
}

#[test]
fn a_cleanup_that_panics_still_frees_the_slot() {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    let name = "cleanup-panics";
    let (tx, rx) = mpsc::channel();
    let c = election(run, name, 1).campaign().run_blocking(
        move |t| tx.send(t).unwrap(),
        |_| panic!("the cleanup fails"),
    );
    // A clone of the ticket kept outside the campaign: it must not keep the
    // slot once the campaign is over.
    let kept = rx.recv_timeout(DEADLINE).unwrap();
    let resigned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.resign()));
    assert!(resigned.is_err(), "the cleanup's panic reaches resign");
    assert!(!kept.is_held(), "the ticket outlived its campaign");
    let mut w = waiter(run, name, 1);
    w.expect_held();
    w.finish();
}

#[test]
fn a_release_is_a_close_write_event_after_the_slot_is_free_and_a_failed_try_is_none() {
    // The head of the line sleeps on inotify until a slot file is closed
    // after writing. Every release must make that event, the first time
    // and every time after, and only once the slot is free; a try that
    // finds every slot held must make none, or every failed try would wake
    // the head for nothing.
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("events");
    let e = election(tmp.path(), "events", 2);
    drop(e.obtain().unwrap());
    let fd = support::watch_dir(&res, libc::IN_CLOSE_WRITE);
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
    let held = (e.obtain().unwrap(), e.obtain().unwrap());
    slot_events(&fd);
    let other = election(tmp.path(), "events", 2);
    for _ in 0..3 {
        assert!(other.try_obtain().unwrap().is_none());
    }
    let seen = slot_events(&fd);
    assert!(seen.is_empty(), "failed tries made {seen:?}");
    drop(held);
}

/// After a wait of this process on `res` was given up: it holds nothing
/// and left its place, and `behind`, the worker that stood behind it, now
/// stands first and gets the slot `holder` releases.
fn left_its_place(res: &Path, mut behind: Worker, holder: &mut Worker) {
    support::assert_no_lock_of_ours(res, true);
    support::wait_first_in_line(behind.pid, res);
    holder.send("release");
    holder.expect("RELEASED");
    behind.expect_held();
    behind.finish();
}

/// Starts a wait of this process on `name` with `start`, then a worker
/// that stands behind it; returns the worker once both stand in the line.
fn stand_before_a_worker(run: &Path, name: &str, start: impl FnOnce()) -> Worker {
    let res = run.join(name);
    let me = std::process::id();
    start();
    let ours = wait_in_line(me, &res);
    let behind = waiter(run, name, 2);
    let theirs = wait_in_line(behind.pid, &res);
    assert!(
        ours < theirs,
        "{ours:?} arrived first, yet stands after {theirs:?}"
    );
    behind
}

#[test]
fn a_wait_given_up_leaves_its_place_to_the_one_behind() {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();

    // Timed out. The timeout is long enough for the worker to stand behind
    // the wait before it passes; that it did is checked below.
    let res = run.join("timeout");
    let mut holders = hold_all(run, "timeout", 2);
    let e = election(run, "timeout", 2);
    let mut waiting = None;
    let behind = stand_before_a_worker(run, "timeout", || {
        let e = e.clone();
        waiting = Some(std::thread::spawn(move || {
            e.obtain_timeout(Duration::from_secs(5)).unwrap()
        }));
    });
    assert_eq!(
        support::places_of(std::process::id(), &res).len(),
        1,
        "the wait timed out before the worker stood behind it; a slow machine?"
    );
    assert!(waiting.unwrap().join().unwrap().is_none());
    left_its_place(&res, behind, &mut holders[0]);
    drop(holders);

    // Dropped, as an async wait is when its future is.
    let res = run.join("dropped");
    let mut holders = hold_all(run, "dropped", 2);
    let e = election(run, "dropped", 2);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut task = None;
    let behind = stand_before_a_worker(run, "dropped", || {
        let e = e.clone();
        task = Some(std::thread::spawn(move || {
            rt.block_on(async move {
                tokio::select! {
                    t = e.obtain_async() => Some(t.unwrap()),
                    _ = stopped => None,
                }
            })
        }));
    });
    stop.send(()).unwrap();
    assert!(task.unwrap().join().unwrap().is_none());
    support::wait_until("the dropped wait has left the line", || {
        support::places_of(std::process::id(), &res).is_empty()
    });
    left_its_place(&res, behind, &mut holders[0]);
}

#[test]
fn a_slot_freed_without_an_event_still_reaches_the_head() {
    // A holder outside elect that unlocks through a read-only descriptor
    // makes no event the head hears; the head looks at the slots once a
    // second on its own, and finds the slot.
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    for tickets in [1, 2] {
        let name = format!("silent-{tickets}");
        let res = run.join(&name);
        let e = election(run, &name, tickets);
        drop(
            (0..tickets)
                .map(|_| e.obtain().unwrap())
                .collect::<Vec<_>>(),
        );
        drop(e);
        let mut outside: Vec<Option<std::fs::File>> = (0..tickets)
            .map(|i| {
                let f = std::fs::File::open(res.join(format!("slot.{i}"))).unwrap();
                f.try_lock().unwrap();
                Some(f)
            })
            .collect();
        let mut head = waiter(run, &name, tickets);
        wait_in_line(head.pid, &res);
        let freed = tickets - 1;
        let start = Instant::now();
        outside[freed as usize] = None;
        assert_eq!(head.expect_held().0, freed, "N={tickets}");
        let took = start.elapsed();
        assert!(took < Duration::from_secs(10), "N={tickets}: {took:?}");
        head.finish();
    }
}

/// How often the threads of process `pid` have gone to sleep or been
/// preempted: their context switches, from `/proc/<pid>/task/*/status`.
fn context_switches(pid: u32) -> u64 {
    let mut n = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        n += status
            .lines()
            .filter_map(|l| {
                l.strip_prefix("voluntary_ctxt_switches:")
                    .or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))
            })
            .map(|v| v.trim().parse::<u64>().unwrap())
            .sum::<u64>();
    }
    n
}

#[test]
fn idle_waiters_block_in_no_lock_and_wake_about_once_a_second() {
    // Nobody blocks in flock (a lock someone else holds, or a stopped
    // process, could then hold it up past its deadline), and a waiter that
    // has nothing to do sleeps: the head looks at the slots, and every
    // other waiter at the one before it, about once a second. The window
    // is no synchronisation: it is the span over which wake-ups are
    // counted, and a waiter that polled (every 10 ms, say) would wake
    // hundreds of times in it.
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    let res = run.join("idle");
    let holders = hold_all(run, "idle", 2);
    let waiters: Vec<Worker> = (0..3)
        .map(|_| {
            let w = waiter(run, "idle", 2);
            wait_in_line(w.pid, &res);
            w
        })
        .collect();
    let before: Vec<u64> = waiters.iter().map(|w| context_switches(w.pid)).collect();
    let window = Duration::from_secs(5);
    std::thread::sleep(window);
    for (i, w) in waiters.iter().enumerate() {
        let woke = context_switches(w.pid) - before[i];
        assert!(
            woke <= 20,
            "waiter {i} woke {woke} times in {window:?} with nothing to do"
        );
        let blocked = support::blocked_of(w.pid);
        assert!(
            blocked.is_empty(),
            "waiter {i} is blocked in flock on {blocked:?}"
        );
        assert_eq!(support::places_of(w.pid, &res).len(), 1, "waiter {i}");
    }
    drop((waiters, holders));
}
