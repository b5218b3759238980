//! Releasing frees the slot at once even while another thread of the
//! process is starting children: between fork and exec a child holds copies
//! of every descriptor, so a release that only closed its own would leave
//! the slot held until the child had exec'd.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use elect::Election;

#[test]
fn a_release_is_immediate_while_another_thread_forks() {
    let tmp = tempfile::tempdir().unwrap();
    let e = Election::builder("forky").dir(tmp.path()).build().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let spawner = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut spawned = 0u32;
            while !stop.load(Ordering::Relaxed) {
                std::process::Command::new("true").status().unwrap();
                spawned += 1;
            }
            spawned
        })
    };
    let mut still_held = 0;
    let rounds = 3000;
    for _ in 0..rounds {
        let t = e
            .try_obtain()
            .unwrap()
            .expect("free: released in the round before");
        drop(t);
        // A second, independent participant must find it free right away.
        match e.status().unwrap().slots[0].held {
            false => {}
            true => still_held += 1,
        }
    }
    stop.store(true, Ordering::Relaxed);
    let spawned = spawner.join().unwrap();
    assert!(spawned > 10, "the spawner ran only {spawned} times");
    assert_eq!(
        still_held, 0,
        "released slots still held after {still_held} of {rounds} releases"
    );
}
