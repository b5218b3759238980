//! Cancel-safety of `obtain_async`: in one process, for one ticket and for
//! three (waiters standing in the line, asleep in ppoll), at least 1000
//! futures are dropped in the middle of their wait (by
//! `tokio::time::timeout` and by `select!`), some of them while a slot was
//! being handed to them. Afterwards every slot is free (all N can be taken
//! at once, and status shows none held), nobody is left in the line, and
//! the counts of open descriptors (`/proc/self/fd`) and threads
//! (`/proc/self/task`) are back where they started.
//!
//! One test function only: descriptors and threads are counted for the
//! whole process, which parallel tests would disturb.

mod support;

use std::time::Duration;

use elect::{Election, Ticket};
use support::{fd_count, thread_count, wait_until};
use tokio::task::JoinSet;
use tokio::time::timeout;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Won,
    Dropped,
}

fn won(r: elect::Result<Ticket>) -> Outcome {
    drop(r.expect("obtain_async failed"));
    Outcome::Won
}

/// One waiting future, given up on in one of several ways.
async fn wait_once(e: Election, i: u64, patient: bool) -> Outcome {
    if patient {
        let t = timeout(Duration::from_secs(60), e.obtain_async()).await;
        return won(t.expect("a patient waiter never got a slot"));
    }
    match i % 4 {
        // Dropped after its first poll.
        0 => tokio::select! {
            biased;
            r = e.obtain_async() => won(r),
            _ = std::future::ready(()) => Outcome::Dropped,
        },
        // Dropped by a timeout of zero to a few milliseconds.
        1 | 2 => match timeout(Duration::from_micros((i * 37) % 4000), e.obtain_async()).await {
            Ok(r) => won(r),
            Err(_) => Outcome::Dropped,
        },
        // Dropped by select! when a sleep ends.
        _ => tokio::select! {
            r = e.obtain_async() => won(r),
            _ = tokio::time::sleep(Duration::from_micros((i * 53) % 3000)) => Outcome::Dropped,
        },
    }
}

/// Takes every slot, which proves that none was left held.
fn take_all(e: &Election) -> Vec<Ticket> {
    let all: Vec<Ticket> = (0..e.tickets())
        .map(|_| e.try_obtain().unwrap().expect("a slot was left held"))
        .collect();
    assert!(e.try_obtain().unwrap().is_none());
    all
}

fn assert_none_held(e: &Election) {
    let st = e.status().unwrap();
    assert_eq!(st.slots.len(), e.tickets() as usize);
    assert!(st.slots.iter().all(|s| !s.held), "{st:?}");
}

#[test]
fn dropped_async_waits_leave_no_slot_descriptor_or_thread() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Warm up: whatever a first wait makes lazily exists before counting
    // (elect keeps no thread, and nothing of a wait but the election's
    // membership of its resource).
    {
        let warm = Election::builder("warm-up")
            .dir(tmp.path())
            .build()
            .unwrap();
        let _held = warm.obtain().unwrap();
        let waited = warm.obtain_timeout(Duration::from_millis(1));
        assert!(waited.unwrap().is_none());
    }
    let fds = fd_count();
    let threads = thread_count();

    for tickets in [1, 3] {
        let e = Election::builder(format!("cancel-{tickets}"))
            .tickets(tickets)
            .dir(tmp.path())
            .build()
            .unwrap();
        let (mut dropped, mut wins) = (0, 0);
        let mut batch = 0u64;
        rt.block_on(async {
            while dropped < 1000 {
                batch += 1;
                let mut held = take_all(&e);
                // Even batches: every slot stays held, every wait is dropped.
                // Odd batches: the slots are freed in the middle of the
                // waits, so some are dropped just as a slot comes to them,
                // and a few patient waiters must win.
                let freeing = batch % 2 == 1;
                let mut set = JoinSet::new();
                for i in 0..50 {
                    let patient = freeing && i % 10 == 9;
                    set.spawn(wait_once(e.clone(), batch * 50 + i, patient));
                }
                if freeing {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    held.clear();
                }
                while let Some(outcome) = set.join_next().await {
                    match outcome.unwrap() {
                        Outcome::Won => wins += 1,
                        Outcome::Dropped => dropped += 1,
                    }
                }
                drop(held);
                assert_none_held(&e);
            }
        });
        assert!(dropped >= 1000);
        assert!(wins >= 5, "only {wins} waits won with {tickets} tickets");
        // Every slot is free: all N at once, and status agrees.
        assert_none_held(&e);
        drop(take_all(&e));
        assert_none_held(&e);
        // And nobody stands in the line: every dropped wait left its place.
        let left = support::live_places(&tmp.path().join(format!("cancel-{tickets}")));
        assert!(left.is_empty(), "places left in the line: {left:?}");
    }

    assert_eq!(fd_count(), fds, "descriptors leaked");
    // A joined thread leaves /proc a moment after join returns.
    wait_until("the thread count is back where it started", || {
        thread_count() == threads
    });
    drop(rt);
}
