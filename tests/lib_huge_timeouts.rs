//! A timeout too long to be a deadline (`Duration::MAX`, or anything that
//! would overflow `Instant`) means "no deadline": nothing panics, and the
//! wait ends as an untimed one would.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use elect::{Election, Ending, EventKind};

fn election(dir: &std::path::Path) -> Election {
    Election::builder("huge").dir(dir).build().unwrap()
}

#[test]
fn obtain_timeout_of_duration_max_takes_a_free_ticket() {
    let dir = tempfile::tempdir().unwrap();
    let e = election(dir.path());
    let t = e.obtain_timeout(Duration::MAX).unwrap();
    assert!(t.is_some_and(|t| t.is_held()));
}

#[test]
fn obtain_timeout_of_duration_max_waits_for_a_release() {
    let dir = tempfile::tempdir().unwrap();
    let e = election(dir.path());
    let held = e.obtain().unwrap();
    let e2 = e.clone();
    let waiter = std::thread::spawn(move || {
        e2.obtain_timeout(Duration::MAX)
            .map(|t| t.map(|t| t.token()))
    });
    std::thread::sleep(Duration::from_millis(100));
    assert!(!waiter.is_finished(), "it waits");
    let first = held.token();
    held.release();
    let token = waiter.join().unwrap().unwrap().expect("a ticket");
    assert!(token > first);
}

#[test]
fn a_watcher_waits_duration_max_for_the_next_event() {
    let dir = tempfile::tempdir().unwrap();
    let e = election(dir.path());
    let mut w = e.watch().unwrap();
    let e2 = e.clone();
    let holder = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        e2.obtain().unwrap().token()
    });
    let ev = w
        .next_event_timeout(Duration::MAX)
        .unwrap()
        .expect("an event");
    assert_eq!(ev.kind, EventKind::Acquired);
    assert_eq!(ev.token, holder.join().unwrap());
}

#[test]
fn a_blocking_campaign_checking_every_duration_max_still_ends() {
    let dir = tempfile::tempdir().unwrap();
    let e = election(dir.path());
    let (tx, rx) = mpsc::channel();
    let campaign = e.campaign().check_every(Duration::MAX).run_blocking(
        // Released a moment later, while the campaign sleeps between
        // checks.
        |t| {
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                t.release();
            });
        },
        move |ending| tx.send(ending).unwrap(),
    );
    campaign.join().unwrap();
    assert_eq!(rx.recv().unwrap(), Ending::Released);
}

#[cfg(feature = "tokio")]
#[test]
fn an_async_campaign_checking_every_duration_max_still_ends() {
    let dir = tempfile::tempdir().unwrap();
    let e = election(dir.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    rt.block_on(async {
        let campaign = e
            .campaign()
            .check_every(Duration::MAX)
            // Owns a moment, while the campaign sleeps between checks.
            .run(
                |_t| tokio::time::sleep(Duration::from_millis(50)),
                |_| async {},
            );
        campaign.join().await.unwrap();
    });
    assert!(started.elapsed() < Duration::from_secs(5));
}
