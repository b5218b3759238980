//! A waiter's record: a process that waited for its slot, in the slot's own
//! kernel queue (one ticket) or on a seat (several), writes its record
//! through the slot file's mapped page. `status` shows the new holder at
//! once, the file keeps a whole record's length, and the write makes no
//! inotify event, unless a watcher listens: then it makes its IN_MODIFY, by
//! which the watcher hears of the new holder.

mod support;

use std::path::Path;

use support::{Role, Worker, election, slot_events, wait_blocked_on, watch_dir};

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

/// One ticket: a worker holds it, a thread of this process waits in the
/// slot's queue, the worker releases. Returns the waiter's ticket and the
/// slot files written meanwhile (IN_MODIFY).
fn handed_over(run: &Path, name: &str, watcher: bool) -> (elect::Ticket, Vec<String>) {
    let res = run.join(name);
    let mut holder = Worker::spawn(Role::Hold { mode: "obtain" }, run, name, 1);
    holder.expect_held();
    let e = election(run, name, 1);
    let watch = watcher.then(|| e.watch().unwrap());
    let waiter = {
        let e = e.clone();
        std::thread::spawn(move || e.obtain().unwrap())
    };
    wait_blocked_on(std::process::id(), &res.join("slot.0"));
    let writes = watch_dir(&res, libc::IN_MODIFY);
    holder.send("release");
    holder.expect("RELEASED");
    let ticket = waiter.join().unwrap();
    let seen = slot_events(&writes);
    drop(watch);
    drop(holder);
    (ticket, seen)
}

#[test]
fn a_waiters_record_makes_no_event_when_nobody_watches_yet_status_shows_it() {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let (ticket, seen) = handed_over(tmp.path(), "quiet", false);
    assert!(
        seen.is_empty(),
        "the record was written with a system call: {seen:?}"
    );
    assert_holder(
        tmp.path(),
        ("quiet", 1),
        0,
        std::process::id(),
        ticket.token(),
    );
}

#[test]
fn a_waiters_record_is_an_event_while_a_watcher_listens() {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let (ticket, seen) = handed_over(tmp.path(), "heard", true);
    assert!(
        seen.contains(&"slot.0".to_string()),
        "a watcher listens, yet the record made no event ({seen:?})"
    );
    assert_holder(
        tmp.path(),
        ("heard", 1),
        0,
        std::process::id(),
        ticket.token(),
    );
}

#[test]
fn a_seated_waiters_record_makes_no_event_when_nobody_watches() {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    let res = run.join("seated");
    let mut holders = support::hold_all(run, "seated", 2);
    let (seat, mut seated, mut head) = support::seat_a_worker(run, "seated", 2);
    let writes = watch_dir(&res, libc::IN_MODIFY);
    let releaser = &mut holders[seat as usize];
    releaser.send("release");
    releaser.expect("RELEASED");
    let (slot, token) = seated.expect_held();
    assert_eq!(slot, seat, "the kernel handed the seat's slot over");
    let seen = slot_events(&writes);
    assert!(
        seen.is_empty(),
        "the record was written with a system call: {seen:?}"
    );
    assert_holder(run, ("seated", 2), slot, seated.pid, token);
    // The head of the line gets the next release.
    seated.send("release");
    seated.expect("RELEASED");
    head.expect_held();
}
