//! Lost ownership: when the run directory is removed (`rm -rf`, a /tmp
//! cleaner) or a slot file or resource directory is replaced under a
//! holder, `Ticket::is_held` turns false at once, in this process and in
//! another; a campaign, async or blocking, runs its cleanup with
//! `Ending::Lost` within one second; and meanwhile a second participant in
//! another process takes a fresh slot.

mod support;

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use elect::{Election, Ending};
use support::{DEADLINE, Role, Worker};

#[test]
#[ignore = "the body of worker processes; the other tests run it"]
fn worker_process() {
    support::worker_main();
}

/// The loss must be acted on within this long, as the issue asks.
const WITHIN: Duration = Duration::from_secs(1);

fn election(run: &Path, name: &str) -> Election {
    Election::builder(name).dir(run).build().unwrap()
}

#[test]
fn the_guard_sees_every_kind_of_removal_or_replacement() {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let e = election(&run, "lost");
    let res = run.join("lost");

    // rm -rf of the whole run directory.
    let t = e.obtain().unwrap();
    assert!(t.is_held());
    std::fs::remove_dir_all(&run).unwrap();
    assert!(!t.is_held());
    // A newcomer gets a fresh slot 0 while the old ticket still exists.
    let fresh = e.try_obtain().unwrap().expect("a fresh slot");
    assert!(fresh.is_held());
    assert!(fresh.token() > t.token());
    assert!(!t.is_held());
    drop((t, fresh));

    // The slot file removed.
    let t = e.obtain().unwrap();
    std::fs::remove_file(res.join("slot.0")).unwrap();
    assert!(!t.is_held());
    drop(t);

    // The slot file replaced by another file.
    let t = e.obtain().unwrap();
    std::fs::write(tmp.path().join("impostor"), "").unwrap();
    std::fs::rename(tmp.path().join("impostor"), res.join("slot.0")).unwrap();
    assert!(!t.is_held());
    drop(t);

    // The resource directory moved away and a new one put in its place.
    let t = e.obtain().unwrap();
    std::fs::rename(&res, tmp.path().join("moved")).unwrap();
    std::fs::create_dir(&res).unwrap();
    assert!(!t.is_held());
    drop(t);

    // Released is not held either (seen through a campaign's ticket, of
    // which a clone outlives the release); untouched is held.
    let (tx, rx) = std::sync::mpsc::channel();
    let campaign = e
        .campaign()
        .run_blocking(move |t| tx.send(t).unwrap(), |_| {});
    let t = rx.recv().unwrap();
    assert!(t.is_held());
    t.clone().release();
    assert!(!t.is_held());
    campaign.join().unwrap();
}

#[test]
fn a_holder_in_another_process_sees_the_loss() {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let mut w = Worker::spawn(Role::Hold { mode: "obtain" }, &run, "lost", 1);
    let (_, token) = w.expect_held();
    w.send("intact");
    assert_eq!(w.expect("INTACT"), "true");
    std::fs::remove_dir_all(&run).unwrap();
    w.send("intact");
    assert_eq!(w.expect("INTACT"), "false");
    // Meanwhile a second participant takes a fresh slot.
    let mut second = Worker::spawn(Role::Hold { mode: "try" }, &run, "lost", 1);
    let (slot, token2) = second.expect_held();
    assert_eq!(slot, 0);
    assert!(token2 > token);
    second.send("intact");
    assert_eq!(second.expect("INTACT"), "true");
    w.finish();
    second.finish();
}

/// What a campaign reports to the test.
#[derive(Debug)]
enum Seen {
    Won(u64),
    Cleanup(Ending, Instant),
}

fn next(rx: &mpsc::Receiver<Seen>) -> Seen {
    rx.recv_timeout(DEADLINE)
        .expect("the campaign said nothing within the deadline")
}

/// Removes the run directory under an owning campaign, checks the cleanup
/// says Lost within a second, and that a second participant took a fresh
/// slot meanwhile; returns that participant.
fn remove_and_see_lost(run: &Path, rx: &mpsc::Receiver<Seen>, first: u64) -> Worker {
    std::fs::remove_dir_all(run).unwrap();
    let removed = Instant::now();
    let mut second = Worker::spawn(Role::Hold { mode: "obtain" }, run, "campaign", 1);
    let (_, token) = second.expect_held();
    assert!(token > first);
    match next(rx) {
        Seen::Cleanup(Ending::Lost, at) => {
            let took = at.saturating_duration_since(removed);
            assert!(took < WITHIN, "the loss was noticed after {took:?}");
        }
        other => panic!("expected a cleanup with Lost, got {other:?}"),
    }
    second
}

/// Starts an async campaign that keeps its ticket until ownership ends and
/// reports wins and cleanups.
fn async_campaign(e: &Election, requeue: bool, tx: mpsc::Sender<Seen>) -> elect::Campaign {
    let tx2 = tx.clone();
    e.campaign().requeue(requeue).run(
        move |ticket| {
            tx.send(Seen::Won(ticket.token())).unwrap();
            // Own until told otherwise; the ticket lives in here.
            async move {
                std::future::pending::<()>().await;
                drop(ticket);
            }
        },
        move |ending| {
            tx2.send(Seen::Cleanup(ending, Instant::now())).unwrap();
            async {}
        },
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn an_async_campaign_runs_its_cleanup_with_lost() {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let e = election(&run, "campaign");
    let rt = runtime();
    let (tx, rx) = mpsc::channel();
    let campaign = {
        let _in_rt = rt.enter();
        async_campaign(&e, false, tx)
    };
    let Seen::Won(first) = next(&rx) else {
        panic!("expected a win")
    };
    let second = remove_and_see_lost(&run, &rx, first);
    // Without requeue the campaign ends by itself.
    rt.block_on(campaign.join()).unwrap();
    second.finish();
}

#[test]
fn a_requeued_async_campaign_competes_again_after_a_loss() {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let e = election(&run, "campaign");
    let rt = runtime();
    let (tx, rx) = mpsc::channel();
    let campaign = {
        let _in_rt = rt.enter();
        async_campaign(&e, true, tx)
    };
    let Seen::Won(first) = next(&rx) else {
        panic!("expected a win")
    };
    // The directory vanishes at once: moved away, then removed. (A plain
    // remove_dir_all can fail with ENOTEMPTY here: the campaign may notice
    // the loss while the files go one by one, compete again and create a
    // fresh slot file in the directory being removed.)
    std::fs::rename(&run, tmp.path().join("trash")).unwrap();
    let removed = Instant::now();
    // Best effort: the tempdir removes what is left at the end.
    let _ = std::fs::remove_dir_all(tmp.path().join("trash"));
    match next(&rx) {
        Seen::Cleanup(Ending::Lost, at) => {
            let took = at.saturating_duration_since(removed);
            assert!(took < WITHIN, "the loss was noticed after {took:?}");
        }
        other => panic!("expected a cleanup with Lost, got {other:?}"),
    }
    // It competes again and owns the fresh slot.
    let Seen::Won(again) = next(&rx) else {
        panic!("expected a second win")
    };
    assert!(again > first);
    let st = e.status().unwrap();
    assert!(st.slots[0].held);
    assert_eq!(st.slots[0].holder.as_ref().unwrap().token, again);
    rt.block_on(campaign.resign()).unwrap();
    assert!(matches!(next(&rx), Seen::Cleanup(Ending::Resigned, _)));
    assert!(
        e.try_obtain().unwrap().is_some(),
        "resigning freed the slot"
    );
}

#[test]
fn a_blocking_campaign_runs_its_cleanup_with_lost() {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let e = election(&run, "campaign");
    let (tx, rx) = mpsc::channel();
    let (ticket_tx, ticket_rx) = mpsc::channel();
    let tx2 = tx.clone();
    let campaign = e.campaign().run_blocking(
        move |ticket| {
            tx.send(Seen::Won(ticket.token())).unwrap();
            ticket_tx.send(ticket).unwrap();
        },
        move |ending| tx2.send(Seen::Cleanup(ending, Instant::now())).unwrap(),
    );
    let Seen::Won(first) = next(&rx) else {
        panic!("expected a win")
    };
    let ticket = ticket_rx.recv().unwrap();
    assert!(ticket.is_held());
    let second = remove_and_see_lost(&run, &rx, first);
    assert!(!ticket.is_held());
    // Without requeue the campaign ends by itself.
    campaign.join().unwrap();
    second.finish();
}

#[test]
fn a_waiter_on_a_removed_slot_moves_to_the_fresh_one() {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    for tickets in [1, 2] {
        let name = format!("moved-{tickets}");
        let e = Election::builder(&name)
            .tickets(tickets)
            .dir(&run)
            .build()
            .unwrap();
        // An old holder that never checks is_held.
        let old: Vec<_> = (0..tickets).map(|_| e.obtain().unwrap()).collect();
        let mut waiter = Worker::spawn(Role::Hold { mode: "obtain" }, &run, &name, tickets);
        waiter.expect("START");
        support::wait_in_line(waiter.pid, &run.join(&name));
        std::fs::remove_dir_all(&run).unwrap();
        // The fresh directory's slots are free; the waiter should take one
        // about as fast as a holder notices the loss, not when the old
        // holder happens to let go.
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let got = waiter.expect_held();
            tx.send(got).unwrap();
            waiter
        });
        let got = rx.recv_timeout(Duration::from_secs(5));
        drop(old);
        assert!(
            got.is_ok(),
            "N={tickets}: the waiter missed the free fresh slot"
        );
        reader.join().unwrap().finish();
    }
}
