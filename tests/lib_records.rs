//! A waiter's record: a process that waited in line for its slot writes
//! its record as soon as it has the slot. `status` shows the new holder at
//! once, the file keeps a whole record's length, and a watcher hears of the
//! new holder, with its pid and token.

mod support;

use std::path::Path;

use elect::EventKind;
use support::{DEADLINE, Role, Worker, election, wait_in_line};

#[test]
#[ignore = "the body of worker processes; the other tests run it"]
fn worker_process() {
    support::worker_main();
}

/// The length of every record elect writes (see `record::RECORD_LEN`).
const RECORD_LEN: u64 = 2304;

/// Asserts that `status` names `pid` with `token` as the holder of `slot`,
/// and that the slot file holds a whole record.
fn assert_holder(run: &Path, (name, tickets): (&str, u32), slot: u32, pid: u32, token: u64) {
    let st = election(run, name, tickets).status().unwrap();
    let holder = st.slots[slot as usize]
        .holder
        .clone()
        .unwrap_or_else(|| panic!("no record of slot {slot}"));
    assert_eq!(
        (holder.pid, holder.token),
        (pid, token),
        "the record of slot {slot}"
    );
    let len = std::fs::metadata(run.join(name).join(format!("slot.{slot}")))
        .unwrap()
        .len();
    assert_eq!(len, RECORD_LEN);
}

/// A worker holds the only free slot of `name` (`tickets` tickets, the
/// others held by this process), a thread of this process waits in line,
/// the worker releases. Returns the waiter's ticket, the worker's pid and
/// token, and the events a watcher started before the wait saw (with
/// `watcher`).
fn handed_over(
    run: &Path,
    name: &str,
    tickets: u32,
    watcher: bool,
) -> (elect::Ticket, (u32, u64), Vec<elect::Event>) {
    let res = run.join(name);
    let e = election(run, name, tickets);
    let others: Vec<_> = (1..tickets).map(|_| e.obtain().unwrap()).collect();
    let mut holder = Worker::spawn(Role::Hold { mode: "obtain" }, run, name, tickets);
    let (_, old_token) = holder.expect_held();
    let mut watch = watcher.then(|| e.watch().unwrap());
    let waiter = {
        let e = e.clone();
        std::thread::spawn(move || e.obtain().unwrap())
    };
    wait_in_line(std::process::id(), &res);
    holder.send("release");
    holder.expect("RELEASED");
    let ticket = waiter.join().unwrap();
    let mut seen = Vec::new();
    if let Some(w) = &mut watch {
        while seen.len() < 2 {
            match w.next_event_timeout(DEADLINE).unwrap() {
                Some(ev) => seen.push(ev),
                None => panic!("the watcher heard only {seen:?} within {DEADLINE:?}"),
            }
        }
    }
    let old = (holder.pid, old_token);
    drop(holder);
    drop(others);
    (ticket, old, seen)
}

#[test]
fn status_shows_a_waiters_record_at_once() {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    for tickets in [1, 2] {
        let name = format!("shown-{tickets}");
        let (ticket, _, _) = handed_over(tmp.path(), &name, tickets, false);
        assert_holder(
            tmp.path(),
            (&name, tickets),
            ticket.slot(),
            std::process::id(),
            ticket.token(),
        );
    }
}

#[test]
fn a_watcher_hears_of_a_waiter_that_took_the_slot() {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    for tickets in [1, 2] {
        let name = format!("heard-{tickets}");
        let (ticket, (old_pid, old_token), seen) = handed_over(tmp.path(), &name, tickets, true);
        let slot = ticket.slot();
        let brief: Vec<_> = seen
            .iter()
            .map(|e| (e.kind, e.slot, e.pid, e.token))
            .collect();
        assert_eq!(
            brief,
            [
                (EventKind::Released, slot, old_pid, old_token),
                (
                    EventKind::Acquired,
                    slot,
                    std::process::id(),
                    ticket.token()
                ),
            ],
            "N={tickets}"
        );
    }
}
