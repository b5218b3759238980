//! Kernel-driven fail-over between processes: when a holder is killed with
//! SIGKILL, a waiter in another process owns the freed slot, with no lease
//! or timeout involved. Shown for one ticket and for three (the waiters
//! stand in the line, the first of them watching the slots), for a
//! timed-out wait that must not keep anyone from taking over, and for a
//! head of the line killed while it waits.

mod support;

use std::path::Path;

use support::{Role, Worker, wait_first_in_line, wait_in_line};

#[test]
#[ignore = "the body of worker processes; the other tests run it"]
fn worker_process() {
    support::worker_main();
}

fn holder(run: &Path, name: &str, tickets: u32) -> (Worker, u32, u64) {
    let mut w = Worker::spawn(Role::Hold { mode: "obtain" }, run, name, tickets);
    let (slot, token) = w.expect_held();
    (w, slot, token)
}

#[test]
fn a_waiter_takes_over_from_a_killed_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    let (mut first, slot, token) = holder(run, "failover", 1);
    assert_eq!(slot, 0);

    let mut waiter = Worker::spawn(Role::Hold { mode: "obtain" }, run, "failover", 1);
    waiter.expect("START");
    // It really waits: it stands in the line.
    wait_in_line(waiter.pid, &run.join("failover"));

    first.kill();
    let (slot2, token2) = waiter.expect_held();
    assert_eq!(slot2, 0);
    assert!(token2 > token, "token {token2} after {token}");

    // And again: the next waiter takes over from the second, killed too.
    let mut third = Worker::spawn(Role::Hold { mode: "obtain" }, run, "failover", 1);
    third.expect("START");
    wait_in_line(third.pid, &run.join("failover"));
    waiter.kill();
    let (_, token3) = third.expect_held();
    assert!(token3 > token2, "token {token3} after {token2}");
    third.finish();
}

#[test]
fn a_waiter_for_three_tickets_takes_the_slot_of_a_killed_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    let mut holders: Vec<(Worker, u32, u64)> = (0..3).map(|_| holder(run, "pool", 3)).collect();
    let mut slots: Vec<u32> = holders.iter().map(|h| h.1).collect();
    slots.sort();
    assert_eq!(slots, [0, 1, 2]);
    let top = holders.iter().map(|h| h.2).max().unwrap();

    // The head of the line watches the slots; the second stands behind it.
    let res = run.join("pool");
    let mut head = Worker::spawn(Role::Hold { mode: "obtain" }, run, "pool", 3);
    head.expect("START");
    wait_first_in_line(head.pid, &res);
    let mut second = Worker::spawn(Role::Hold { mode: "obtain" }, run, "pool", 3);
    second.expect("START");
    wait_in_line(second.pid, &res);

    let (mut victim, victim_slot, _) = holders.remove(1);
    victim.kill();
    let (slot, token) = head.expect_held();
    assert_eq!(
        slot, victim_slot,
        "the head took another slot than the freed one"
    );
    assert!(token > top);

    // The second waiter is now the head; kill another holder.
    let (mut victim, victim_slot, _) = holders.remove(0);
    wait_first_in_line(second.pid, &res);
    victim.kill();
    let (slot2, token2) = second.expect_held();
    assert_eq!(slot2, victim_slot);
    assert!(token2 > token);

    // Three holders again, every slot once.
    let mut now: Vec<u32> = vec![holders[0].1, slot, slot2];
    now.sort();
    assert_eq!(now, [0, 1, 2]);
    let st = elect::status(Some(run), Some("pool")).unwrap();
    let pids: Vec<u32> = st.resources[0]
        .slots
        .iter()
        .map(|s| {
            assert!(s.held);
            s.holder.as_ref().unwrap().pid
        })
        .collect();
    for pid in [holders[0].0.pid, head.pid, second.pid] {
        assert!(pids.contains(&pid), "{pid} missing from {pids:?}");
    }
    head.finish();
    second.finish();
}

#[test]
fn a_waiter_that_gave_up_does_not_block_the_next() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    for tickets in [1, 2] {
        let name = format!("gave-up-{tickets}");
        let mut holders: Vec<_> = (0..tickets).map(|_| holder(run, &name, tickets)).collect();
        // A waiter with a short timeout gives up.
        let mut quitter = Worker::spawn(
            Role::Hold {
                mode: "timeout:100",
            },
            run,
            &name,
            tickets,
        );
        quitter.expect("NONE");
        quitter.finish();
        assert_eq!(
            support::live_places(&run.join(&name)),
            [],
            "the quitter left its place behind"
        );
        // Then a patient one takes over from a killed holder.
        let mut waiter = Worker::spawn(Role::Hold { mode: "obtain" }, run, &name, tickets);
        waiter.expect("START");
        wait_in_line(waiter.pid, &run.join(&name));
        holders[0].0.kill();
        let (slot, _) = waiter.expect_held();
        assert_eq!(slot, holders[0].1);
        waiter.finish();
    }
}

#[test]
fn a_killed_head_of_the_line_hands_its_place_to_the_next() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    let mut holders: Vec<(Worker, u32, u64)> = (0..2).map(|_| holder(run, "line", 2)).collect();
    let res = run.join("line");
    let mut head = Worker::spawn(Role::Hold { mode: "obtain" }, run, "line", 2);
    head.expect("START");
    wait_first_in_line(head.pid, &res);
    let mut next = Worker::spawn(Role::Hold { mode: "obtain" }, run, "line", 2);
    next.expect("START");
    wait_in_line(next.pid, &res);

    // The head dies while waiting; the next in line takes its place (and
    // removes the dead one's)...
    head.kill();
    wait_first_in_line(next.pid, &res);
    // ...and gets the slot of a killed holder.
    let (mut victim, victim_slot, _) = holders.remove(0);
    victim.kill();
    let (slot, _) = next.expect_held();
    assert_eq!(slot, victim_slot);
    next.finish();
}
