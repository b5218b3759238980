//! The line waiters stand in: served in arrival order for every number of
//! tickets, never held up for long by a waiter that is stopped or dead, and
//! never by a bystander that holds locks on the resource's files.

use std::path::Path;
use std::time::{Duration, Instant};

mod support;
use support::{Role, Worker, election, wait_line};

#[test]
#[ignore = "the body of worker processes; the other tests run it"]
fn worker_process() {
    support::worker_main();
}

/// Holds every slot of `name` with workers; returns them.
fn hold_all(run: &Path, name: &str, tickets: u32) -> Vec<Worker> {
    (0..tickets)
        .map(|_| {
            let mut w = Worker::spawn(Role::Hold { mode: "try" }, run, name, tickets);
            w.expect("START");
            w.expect_held();
            w
        })
        .collect()
}

/// Starts `n` waiters one after the other, each in the line before the
/// next arrives.
fn line_up(run: &Path, name: &str, tickets: u32, n: usize) -> Vec<Worker> {
    let res = run.join(name);
    (0..n)
        .map(|i| {
            let w = support::waiter(run, name, tickets);
            wait_line(&res, i + 1);
            w
        })
        .collect()
}

/// Releases one slot at a time and checks that the waiters get them in the
/// order they arrived, and that nobody behind the one served got one.
fn served_in_arrival_order(tickets: u32, waiters: usize) {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    // Whoever holds a slot now, oldest first; each served waiter joins them.
    let mut holders: std::collections::VecDeque<Worker> = hold_all(run, "order", tickets).into();
    let mut line: Vec<Option<Worker>> = line_up(run, "order", tickets, waiters)
        .into_iter()
        .map(Some)
        .collect();
    for i in 0..waiters {
        let mut holder = holders.pop_front().unwrap();
        holder.send("release");
        holder.expect("RELEASED");
        let mut served = line[i].take().unwrap();
        served.expect_held();
        for (j, later) in line.iter_mut().enumerate().skip(i + 1) {
            let later = later.as_mut().unwrap();
            assert!(
                !later.has_said("HELD"),
                "waiter {j} was served before waiter {i}, who arrived first"
            );
        }
        holders.push_back(served);
    }
}

#[test]
fn one_ticket_serves_waiters_in_arrival_order() {
    served_in_arrival_order(1, 4);
}

#[test]
fn two_tickets_serve_waiters_in_arrival_order() {
    served_in_arrival_order(2, 6);
}

#[test]
fn eight_tickets_serve_waiters_in_arrival_order() {
    served_in_arrival_order(8, 12);
}

/// A waiter stopped at the head of the line (Ctrl-Z) keeps a free slot from
/// the running waiter behind it only until that one looks again (once a
/// second), however long it stays stopped; continued, it is served next.
fn stopped_head_is_stepped_past(tickets: u32) {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    let mut holders = hold_all(run, "stop", tickets);
    let mut line = line_up(run, "stop", tickets, 2);
    line[0].signal(libc::SIGSTOP);
    let mut holder = holders.remove(0);
    holder.send("release");
    holder.expect("RELEASED");
    let freed = Instant::now();
    line[1].expect_held();
    let waited = freed.elapsed();
    // About a second; the bound is generous for a loaded machine, and far
    // below what a stopped head would cost (for ever).
    assert!(waited < Duration::from_secs(20), "{waited:?}");
    assert!(!line[0].has_said("HELD"), "a stopped process took nothing");
    // Continued, the first waiter is first in line again: the next slot
    // freed (the one just taken) is its.
    line[0].signal(libc::SIGCONT);
    line[1].send("release");
    line[1].expect("RELEASED");
    line[0].expect_held();
}

#[test]
fn a_stopped_head_keeps_a_free_ticket_only_briefly_one_ticket() {
    stopped_head_is_stepped_past(1);
}

#[test]
fn a_stopped_head_keeps_a_free_ticket_only_briefly_two_tickets() {
    stopped_head_is_stepped_past(2);
}

#[test]
fn two_stopped_waiters_in_a_row_are_both_stepped_past() {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    let mut holders = hold_all(run, "stops", 2);
    let mut line = line_up(run, "stops", 2, 3);
    line[0].signal(libc::SIGSTOP);
    line[1].signal(libc::SIGSTOP);
    let mut holder = holders.remove(0);
    holder.send("release");
    holder.expect("RELEASED");
    line[2].expect_held();
    for w in &line[..2] {
        w.signal(libc::SIGCONT);
    }
}

#[test]
fn a_waiter_killed_in_line_leaves_no_gap() {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    let mut holders = hold_all(run, "gap", 1);
    let mut line = line_up(run, "gap", 1, 3);
    // The head and the middle die without leaving; the last is next.
    line[0].kill();
    line[1].kill();
    // Their stale places are removed (by the last, once it found the slot
    // held, before it slept): nothing, live or stale, stands before it.
    support::wait_first_in_line(line[2].pid, &run.join("gap"));
    let mut holder = holders.remove(0);
    holder.send("release");
    holder.expect("RELEASED");
    line[2].expect_held();
}

/// A bystander (systemd-tmpfiles, a stopped participant, anyone) holding an
/// exclusive lock on the resource directory or any file in it delays no
/// deadline: the wait ends on time, with no ticket.
#[test]
fn a_bystander_holding_every_lock_cannot_stall_a_timeout() {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    let e = election(run, "stall", 2);
    let held = e.obtain().unwrap();
    drop(e.obtain().unwrap());
    drop(held);
    drop(e);
    let res = run.join("stall");
    std::fs::create_dir_all(res.join("line")).unwrap();
    let mut locks = Vec::new();
    for name in [".", "tickets", "token", "line", "slot.0"] {
        let f = std::fs::File::open(res.join(name)).unwrap();
        f.try_lock().unwrap();
        locks.push(f);
    }
    // A fresh election (not yet a live participant) must join under the
    // directory held exclusively: it cannot, and says so on time.
    for timeout in [Duration::ZERO, Duration::from_millis(200)] {
        let fresh = election(run, "stall", 2);
        let start = Instant::now();
        let got = fresh.obtain_timeout(timeout);
        let took = start.elapsed();
        assert!(matches!(got, Ok(None)), "{got:?}");
        assert!(
            took < timeout + Duration::from_secs(5),
            "{took:?} for {timeout:?}"
        );
    }
}

#[test]
fn a_huge_timeout_is_no_deadline_and_no_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let e = election(tmp.path(), "huge", 1);
    let t = e.obtain_timeout(Duration::MAX).unwrap();
    assert!(t.is_some());
}

#[test]
fn a_run_directory_too_long_for_its_slot_paths_is_an_error_not_a_spin() {
    let tmp = tempfile::tempdir().unwrap();
    let long = tmp.path().join("d/".repeat(2100));
    let e = election(&long, "x", 1);
    let start = Instant::now();
    for result in [
        e.try_obtain().map(|_| ()),
        e.obtain_timeout(Duration::from_secs(1)).map(|_| ()),
    ] {
        let err = result.unwrap_err();
        assert!(err.to_string().contains("limit"), "{err}");
    }
    assert!(elect::status(Some(&long), None).is_err());
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(!tmp.path().join("d").exists(), "nothing was made");
}

/// A dropped async wait and a resigned campaign end on time while a
/// bystander holds the resource directory exclusively (the waits cannot
/// even join).
#[cfg(feature = "tokio")]
#[test]
fn a_dropped_async_wait_and_a_resign_end_on_time_under_a_bystander() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    drop(election(run, "busy", 1).obtain().unwrap());
    let dir = std::fs::File::open(run.join("busy")).unwrap();
    dir.try_lock().unwrap();
    let e = election(run, "busy", 1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let start = Instant::now();
    let got = rt.block_on(async {
        tokio::time::timeout(Duration::from_millis(200), e.obtain_async()).await
    });
    assert!(got.is_err(), "no ticket can be had: {got:?}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    let campaign = e.campaign().run_blocking(|_| {}, |_| {});
    let start = Instant::now();
    campaign.resign().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    drop(dir);
}

/// A blocking wait cancelled from another thread keeps its place in line
/// until the cancel, then leaves it at once: the waiter behind moves up and
/// gets the ticket the holder releases.
#[test]
fn a_cancelled_blocking_wait_leaves_the_line_and_takes_nothing() {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    let res = run.join("c");
    let mut holder = hold_all(run, "c", 1).pop().unwrap();
    let e = election(run, "c", 1);
    let cancel = elect::Cancel::new();
    let (e2, c2) = (e.clone(), cancel.clone());
    let wait = std::thread::spawn(move || e2.obtain_cancellable(&c2, None));
    support::wait_in_line(std::process::id(), &res);
    let mut behind = support::waiter(run, "c", 1);
    wait_line(&res, 2);
    assert!(!cancel.is_cancelled());
    cancel.cancel();
    let got = wait.join().unwrap();
    assert!(matches!(got, Err(elect::Error::Cancelled)), "{got:?}");
    assert!(cancel.is_cancelled());
    assert!(
        support::places_of(std::process::id(), &res).is_empty(),
        "the cancelled wait left the line"
    );
    // A cancel given before a wait ends it at once, ticket free or not.
    assert!(matches!(
        e.obtain_cancellable(&cancel, None),
        Err(elect::Error::Cancelled)
    ));
    holder.send("release");
    holder.expect("RELEASED");
    behind.expect_held();
    // A fresh cancel with a timeout: `Ok(None)` when the time is up.
    let start = Instant::now();
    let got = e.obtain_cancellable(&elect::Cancel::new(), Some(Duration::from_millis(50)));
    assert!(matches!(got, Ok(None)), "{got:?}");
    assert!(start.elapsed() >= Duration::from_millis(50));
}
