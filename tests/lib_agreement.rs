//! Ticket agreement: while a participant with N tickets is live in another
//! process (holding, waiting, or only keeping the election that obtained
//! before), a participant asking for another number gets
//! `Error::TicketMismatch` naming both numbers, from every way of
//! obtaining, without taking a slot. Once every participant has exited
//! (normally or by SIGKILL) or dropped its election and tickets, N may
//! change freely.

mod support;

use std::fs::File;
use std::path::Path;
use std::time::Duration;

use elect::{Election, Error};
use support::{Role, Worker, wait_holds};

#[test]
#[ignore = "the body of worker processes; the other tests run it"]
fn worker_process() {
    support::worker_main();
}

fn election(run: &Path, tickets: u32) -> Election {
    Election::builder("agree")
        .tickets(tickets)
        .dir(run)
        .build()
        .unwrap()
}

/// Every way of obtaining with `asked` tickets is refused, naming both
/// numbers, while participants with `agreed` are live.
fn refused(run: &Path, asked: u32, agreed: u32) {
    let e = election(run, asked);
    let check = |r: elect::Result<Option<elect::Ticket>>| match r {
        Err(err @ Error::TicketMismatch { .. }) => {
            let Error::TicketMismatch {
                asked: a,
                agreed: g,
                ref name,
            } = err
            else {
                unreachable!()
            };
            assert_eq!((a, g, name.as_str()), (asked, agreed, "agree"));
            let msg = err.to_string();
            assert!(
                msg.contains(&asked.to_string()) && msg.contains(&agreed.to_string()),
                "{msg}"
            );
        }
        other => panic!("{asked} against {agreed}: expected TicketMismatch, got {other:?}"),
    };
    check(e.try_obtain());
    check(e.obtain().map(Some));
    check(e.obtain_timeout(Duration::from_secs(30)));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    check(rt.block_on(e.obtain_async()).map(Some));
    // Another process is refused the same way.
    let mut w = Worker::spawn(Role::Hold { mode: "obtain" }, run, "agree", asked);
    let said = w.expect("ERROR");
    assert!(said.starts_with("TicketMismatch"), "{said}");
    w.finish();
}

#[test]
fn a_holder_with_other_tickets_makes_a_mismatch() {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    let mut holder = Worker::spawn(Role::Hold { mode: "obtain" }, run, "agree", 2);
    holder.expect_held();
    refused(run, 3, 2);
    refused(run, 1, 2);
    // Nobody slipped in: one slot held, the number is still 2.
    let st = election(run, 2).status().unwrap();
    assert_eq!(st.tickets, 2);
    assert_eq!(st.slots.iter().filter(|s| s.held).count(), 1);
    // Agreeing participants are welcome.
    let same = election(run, 2).try_obtain().unwrap();
    assert!(same.is_some());
    drop(same);

    // Gone (by SIGKILL even): N may change.
    holder.kill();
    let three = election(run, 3);
    let all: Vec<_> = (0..3)
        .map(|_| three.try_obtain().unwrap().unwrap())
        .collect();
    assert_eq!(three.status().unwrap().tickets, 3);
    refused(run, 2, 3);
    drop(all);
    // An election is live until it is dropped, holding or not.
    refused(run, 1, 3);
    drop(three);
    let one = election(run, 1).try_obtain().unwrap();
    assert!(one.is_some());
    assert_eq!(election(run, 1).status().unwrap().tickets, 1);
}

#[test]
fn a_waiter_with_other_tickets_makes_a_mismatch() {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    // Make the slot files, then hold both slots from outside elect, so the
    // only live participant below is one that waits.
    let e = election(run, 2);
    drop((e.obtain().unwrap(), e.obtain().unwrap()));
    drop(e);
    let res = run.join("agree");
    let outside: Vec<File> = ["slot.0", "slot.1"]
        .iter()
        .map(|s| {
            let f = File::open(res.join(s)).unwrap();
            f.try_lock().unwrap();
            f
        })
        .collect();

    let mut waiter = Worker::spawn(Role::Hold { mode: "obtain" }, run, "agree", 2);
    waiter.expect("START");
    // Live: it holds the shared lock on the resource, and waits in line.
    wait_holds(waiter.pid, &res, false);
    support::wait_in_line(waiter.pid, &res);
    refused(run, 3, 2);

    // When the waiter is gone, 3 is fine, and takes the one free slot.
    waiter.kill();
    let t = election(run, 3)
        .try_obtain()
        .unwrap()
        .expect("slot 2 is free");
    assert_eq!(t.slot(), 2);
    drop(outside);
}

#[test]
fn after_everyone_exits_the_number_may_change() {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    for tickets in [2, 5, 1, 3] {
        let mut w = Worker::spawn(Role::Hold { mode: "obtain" }, run, "agree", tickets);
        w.expect_held();
        w.finish();
        let e = election(run, tickets);
        let all: Vec<_> = (0..tickets).map(|_| e.try_obtain().unwrap()).collect();
        assert!(all.iter().all(Option::is_some));
        assert!(e.try_obtain().unwrap().is_none(), "more than {tickets}");
        assert_eq!(e.status().unwrap().tickets, tickets);
    }
}

#[test]
fn two_elections_in_one_process_must_agree_too() {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    let two = election(run, 2).try_obtain().unwrap().expect("free");
    match election(run, 3).try_obtain() {
        Err(Error::TicketMismatch {
            asked: 3,
            agreed: 2,
            ..
        }) => {}
        other => panic!("expected TicketMismatch, got {other:?}"),
    }
    drop(two);
    assert!(election(run, 3).try_obtain().unwrap().is_some());
}

#[test]
fn an_election_is_live_from_its_first_obtain_until_it_and_its_tickets_are_dropped() {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    // Built but never used: not live, another number is welcome.
    let idle = election(run, 2);
    drop(election(run, 3).try_obtain().unwrap().expect("free"));
    // Obtained and released: live, so its number stands.
    assert!(idle.try_obtain().unwrap().is_some());
    refused(run, 3, 2);
    // A ticket outliving its election keeps the number too.
    let ticket = idle.obtain().unwrap();
    drop(idle);
    refused(run, 3, 2);
    drop(ticket);
    let three = election(run, 3);
    assert!(three.try_obtain().unwrap().is_some());
    assert_eq!(three.status().unwrap().tickets, 3);
}
