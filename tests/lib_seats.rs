//! Seats (several tickets): a waiter at the head of the line with someone
//! behind it sits in one slot's own kernel queue and is handed that slot
//! by the release itself; a lone waiter stays
//! at the head and watches; a seated waiter still gets any other slot that
//! frees (its helper thread watches them); a seat left by a killed waiter
//! is taken by the next head; a seated wait given up (dropped, timed out)
//! leaves its seat and holds nothing.

mod support;

use std::path::Path;
use std::time::{Duration, SystemTime};

use support::{
    Worker, election, hold_all, seat_a_worker, seat_of, wait_blocked_on, wait_holds, wait_seated,
    wait_until, waiter, wake_the_head,
};

#[test]
#[ignore = "the body of worker processes; the other tests run it"]
fn worker_process() {
    support::worker_main();
}

/// Releases the ticket a holding worker holds.
fn release(holder: &mut Worker) {
    holder.send("release");
    holder.expect("RELEASED");
}

#[test]
fn a_waiter_with_someone_behind_sits_and_the_release_hands_it_the_slot() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    let mut holders = hold_all(run, "seats", 2);

    // Alone, the first waiter is the head of the line and watches. With a
    // second behind it, the head sits at its next look, and the second
    // becomes the head.
    let (seat, mut first, mut second) = seat_a_worker(run, "seats", 2);
    // A head that happens to be probing when the slot frees may take it
    // before the seated waiter runs (that is allowed): take the head away,
    // so the slot can only go to the seat.
    second.kill();

    // The release of the seat's slot is handed over inside the unlock: the
    // seated waiter gets that very slot. (That such a release makes no
    // event for a head is tested in lib_waiting, where no winner can empty
    // the seat before the releaser looks.)
    release(&mut holders[seat as usize]);
    let (slot, _) = first.expect_held();
    assert_eq!(slot, seat);
    first.finish();
}

#[test]
fn a_seated_waiter_gets_a_slot_nobody_sits_for_through_its_helper() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    for how in ["release", "kill"] {
        let name = format!("helper-{how}");
        let mut holders = hold_all(run, &name, 3);
        let (seat, mut seated, mut head) = seat_a_worker(run, &name, 3);

        // Nobody is left in line when a slot whose seat is empty frees,
        // by a release or by its holder's death. The seated waiter's own
        // slot stays held: only its helper can get it the freed one.
        head.kill();
        let other = (0..3).find(|&i| i != seat).unwrap();
        match how {
            "release" => release(&mut holders[other as usize]),
            _ => holders[other as usize].kill(),
        }
        assert_eq!(seated.expect_held().0, other, "{how}");
        seated.finish();
    }
}

#[test]
fn a_seat_left_by_a_killed_waiter_is_taken_by_the_next_head() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    let res = run.join("killed");
    let queue = res.join("queue");
    let holders = hold_all(run, "killed", 2);

    // Two seated (each sat with someone behind it), a head, and one
    // behind the head, which therefore may sit once a seat is free.
    let mut waiters = vec![waiter(run, "killed", 2)];
    wait_holds(waiters[0].pid, &queue, true);
    for i in 1..4 {
        waiters.push(waiter(run, "killed", 2));
        wait_blocked_on(waiters[i].pid, &queue);
        if i < 3 {
            wake_the_head(&res);
            wait_seated(waiters[i - 1].pid, &res);
            wait_holds(waiters[i].pid, &queue, true);
        }
    }
    let seat0 = seat_of(waiters[0].pid, &res).unwrap();
    let seat1 = seat_of(waiters[1].pid, &res).unwrap();
    assert_ne!(seat0, seat1);

    // The kernel drops a killed waiter's seat and closes its descriptor of
    // it, which the head hears; the head sits there.
    waiters[0].kill();
    assert_eq!(wait_seated(waiters[2].pid, &res), seat0);
    wait_holds(waiters[3].pid, &queue, true);

    // Both slots freed go to two of the three left (the head may take one
    // before a seated waiter runs), one each.
    drop(holders);
    let left: Vec<u32> = waiters[1..].iter().map(|w| w.pid).collect();
    wait_until("both slots are held by waiters", || {
        let st = elect::status(Some(run), Some("killed")).unwrap();
        let pids: Vec<u32> = st.resources[0]
            .slots
            .iter()
            .filter_map(|s| s.holder.as_ref().map(|h| h.pid))
            .collect();
        pids.len() == 2 && pids[0] != pids[1] && pids.iter().all(|p| left.contains(p))
    });
}

/// After a wait of this process on `res` left its seat `seat`: it holds
/// and awaits nothing, and the worker that stood behind it, now the head
/// and alone, gets the seat's slot when `holder` releases it.
fn left_nothing(res: &Path, mut behind: Worker, holder: &mut Worker, seat: u32) {
    support::assert_no_lock_of_ours(res, true);
    wait_until("the worker heads the line", || {
        support::holds(behind.pid, &res.join("queue"), true)
    });
    release(holder);
    assert_eq!(behind.expect_held().0, seat);
    behind.finish();
}

/// Seats a wait of this process made by `start` (at the head, with a worker
/// behind it), and returns the seat and the worker.
fn seat_our_wait(run: &Path, name: &str, start: impl FnOnce()) -> (u32, Worker) {
    let res = run.join(name);
    let me = std::process::id();
    start();
    wait_holds(me, &res.join("queue"), true);
    let behind = waiter(run, name, 2);
    wait_blocked_on(behind.pid, &res.join("queue"));
    wake_the_head(&res);
    (wait_seated(me, &res), behind)
}

#[test]
fn a_seated_wait_given_up_leaves_its_seat_and_holds_nothing() {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();

    // Timed out.
    let res = run.join("timeout");
    let mut holders = hold_all(run, "timeout", 2);
    let e = election(run, "timeout", 2);
    let mut waiting = None;
    let (seat, behind) = seat_our_wait(run, "timeout", || {
        let e = e.clone();
        waiting = Some(std::thread::spawn(move || {
            e.obtain_timeout(Duration::from_secs(10)).unwrap()
        }));
    });
    assert!(waiting.unwrap().join().unwrap().is_none());
    left_nothing(&res, behind, &mut holders[seat as usize], seat);
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
    let (seat, behind) = seat_our_wait(run, "dropped", || {
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
    wait_until("the dropped wait has left", || {
        seat_of(std::process::id(), &res).is_none()
    });
    left_nothing(&res, behind, &mut holders[seat as usize], seat);
}

#[test]
fn a_slot_freed_without_an_event_still_reaches_a_seated_waiter() {
    // The helper sleeps without a timer; a release nobody hears (a holder
    // outside elect that unlocks and touches nothing) is found by the
    // seated waiter's once-a-second recheck, which starts it again.
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    let res = run.join("silent");
    let e = election(run, "silent", 2);
    drop((e.obtain().unwrap(), e.obtain().unwrap()));
    drop(e);
    // Read-only descriptors: closing them is no inotify event either.
    let outside: Vec<std::fs::File> = (0..2)
        .map(|i| {
            let f = std::fs::File::open(res.join(format!("slot.{i}"))).unwrap();
            f.try_lock().unwrap();
            f
        })
        .collect();
    let (seat, mut seated, mut head) = seat_a_worker(run, "silent", 2);
    head.kill();
    // Past its quick retries after the event that seated the waiter, its
    // helper sleeps with no timeout.
    wait_until("the helper sleeps without a timer", || {
        helper_sleeps_untimed(seated.pid)
    });

    let mut outside: Vec<Option<std::fs::File>> = outside.into_iter().map(Some).collect();
    let other = 1 - seat;
    outside[other as usize] = None;
    assert_eq!(seated.expect_held().0, other);
    seated.finish();
}

/// Whether process `pid`'s seat helper (the thread `elect-seat`) sleeps in
/// ppoll(2) without a timeout, as `/proc/<pid>/task/*/syscall` shows.
fn helper_sleeps_untimed(pid: u32) -> bool {
    let Some(task) = helper_task(pid) else {
        return false;
    };
    let call = std::fs::read_to_string(task.join("syscall")).unwrap_or_default();
    let f: Vec<&str> = call.split_whitespace().collect();
    f.first().and_then(|n| n.parse::<libc::c_long>().ok()) == Some(libc::SYS_ppoll)
        && f.get(3) == Some(&"0x0")
}

/// `/proc/<pid>/task/<tid>` of process `pid`'s seat helper (the thread
/// `elect-seat`), if it has one.
fn helper_task(pid: u32) -> Option<std::path::PathBuf> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
        .map(|t| t.path())
        .find(|t| std::fs::read_to_string(t.join("comm")).is_ok_and(|c| c.trim() == "elect-seat"))
}

#[test]
fn a_seated_waiters_helper_sleeps_without_a_timer_while_the_line_has_a_head() {
    // While a head watches, releases are the head's: the helper takes none,
    // so an event it hears must not start its short retries. Counted as the
    // helper thread's voluntary context switches (one per sleep) over a
    // window after such an event: the retries would add five (0.1, 0.5, 2,
    // 10 and 50 ms). The window is no synchronisation: it is the span in
    // which nothing may happen.
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    let res = run.join("untimed");
    let holders = hold_all(run, "untimed", 3);
    let (seat, seated, head) = seat_a_worker(run, "untimed", 3);
    wait_until("the helper sleeps without a timer", || {
        helper_sleeps_untimed(seated.pid)
    });
    let before = helper_sleeps(seated.pid);
    // A touch of a held slot other than the seat's: the helper hears it.
    let other = (seat + 1) % 3;
    std::fs::File::options()
        .write(true)
        .open(res.join(format!("slot.{other}")))
        .unwrap()
        .set_modified(SystemTime::now())
        .unwrap();
    wait_until("the helper hears the touch", || {
        helper_sleeps(seated.pid) > before
    });
    std::thread::sleep(Duration::from_millis(200));
    let woke = helper_sleeps(seated.pid) - before;
    assert!(woke <= 2, "the helper slept {woke} times after one event");
    assert!(helper_sleeps_untimed(seated.pid));
    drop((holders, seated, head));
}

/// How often process `pid`'s seat helper has gone to sleep: its thread's
/// voluntary context switches.
fn helper_sleeps(pid: u32) -> u64 {
    helper_task(pid)
        .and_then(|t| std::fs::read_to_string(t.join("status")).ok())
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .expect("a seat helper thread")
}
