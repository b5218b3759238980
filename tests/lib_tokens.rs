//! Fencing tokens strictly increase across every acquisition of a resource:
//! across processes, across process restarts (the counter persists in the
//! run directory) and even after the counter file or the whole directory was
//! removed. A damaged counter is refused with `Error::TokenDamaged`, in this
//! process and in every other, and is never silently reset to a smaller
//! number.

mod support;

use std::path::Path;

use elect::{Election, Error};
use support::{Role, Worker, holds};

#[test]
#[ignore = "the body of worker processes; the other tests run it"]
fn worker_process() {
    support::worker_main();
}

/// Runs a worker process that takes one ticket and exits; returns its token.
fn token_from_a_new_process(run: &Path, name: &str, tickets: u32) -> u64 {
    let mut w = Worker::spawn(Role::Hold { mode: "obtain" }, run, name, tickets);
    let (_, token) = w.expect_held();
    w.finish();
    token
}

/// The last token issued, as the counter file says.
fn stored(run: &Path, name: &str) -> u64 {
    let bytes = std::fs::read(run.join(name).join("token")).unwrap();
    elect::__fuzz::parse_token_file(&bytes)
        .unwrap()
        .expect("a counter")
}

#[test]
fn tokens_increase_across_processes_and_restarts() {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    let here = Election::builder("tokens")
        .tickets(2)
        .dir(run)
        .build()
        .unwrap();
    let mut tokens = Vec::new();
    for i in 0..8 {
        tokens.push(token_from_a_new_process(run, "tokens", 2));
        // Interleave acquisitions by this process, with a fresh Election
        // every other time (as a restarted program would build it).
        let t = if i % 2 == 0 {
            here.obtain().unwrap()
        } else {
            Election::builder("tokens")
                .tickets(2)
                .dir(run)
                .build()
                .unwrap()
                .obtain()
                .unwrap()
        };
        tokens.push(t.token());
        // The counter on disk is the last token issued.
        assert_eq!(stored(run, "tokens"), t.token());
    }
    for pair in tokens.windows(2) {
        assert!(pair[0] < pair[1], "tokens went back: {tokens:?}");
    }
    // While one process holds, tokens of the other slot keep increasing too.
    let held = here.obtain().unwrap();
    let other = token_from_a_new_process(run, "tokens", 2);
    assert!(other > held.token());
}

#[test]
fn tokens_increase_even_after_the_counter_is_removed() {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    let before = token_from_a_new_process(run, "removed", 1);
    std::fs::remove_file(run.join("removed/token")).unwrap();
    let after_file = token_from_a_new_process(run, "removed", 1);
    assert!(after_file > before, "{after_file} after {before}");
    std::fs::remove_dir_all(run.join("removed")).unwrap();
    let after_dir = token_from_a_new_process(run, "removed", 1);
    assert!(after_dir > after_file, "{after_dir} after {after_file}");
}

#[test]
fn a_damaged_token_file_is_an_error_never_a_reset() {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    let e = Election::builder("damaged").dir(run).build().unwrap();
    let last = e.obtain().unwrap().token();
    let path = run.join("damaged/token");
    let slot = run.join("damaged/slot.0");
    let me = std::process::id();

    let damage: [&[u8]; 7] = [
        b"garbage\n",
        b"\n",
        b"12abc\n",
        b"-5\n",
        b"000000000000000000001\n",
        b"99999999999999999999\n",
        b"\xff\x00\x01",
    ];
    for bad in damage {
        std::fs::write(&path, bad).unwrap();
        for attempt in [e.try_obtain(), e.obtain().map(Some)] {
            match attempt {
                Err(Error::TokenDamaged {
                    path: p,
                    content: _,
                }) => assert_eq!(p, path),
                other => panic!("{bad:?}: expected TokenDamaged, got {other:?}"),
            }
            // The slot taken on the way was let go again.
            assert!(!holds(me, &slot, true), "{bad:?}: slot left held");
        }
        // Another process (a restart) is refused the same way.
        let mut w = Worker::spawn(Role::Hold { mode: "obtain" }, run, "damaged", 1);
        let said = w.expect("ERROR");
        assert!(said.starts_with("TokenDamaged"), "{said}");
        w.finish();
        // The file was left as it was, for a person to repair.
        assert_eq!(std::fs::read(&path).unwrap(), bad);
    }

    // The error message says what to do.
    std::fs::write(&path, "garbage\n").unwrap();
    let msg = e.try_obtain().unwrap_err().to_string();
    assert!(
        msg.contains("damaged") && msg.contains(path.to_str().unwrap()),
        "{msg}"
    );

    // Repaired with a larger number, tokens continue above it: at least
    // from the clock, as a new counter starts...
    std::fs::write(&path, format!("{}\n", last + 1000)).unwrap();
    let repaired = e.obtain().unwrap().token();
    assert!(repaired > last + 1000, "{repaired} after {}", last + 1000);
    // ...and from the number itself when it is ahead of the clock.
    let ahead = u64::MAX / 2;
    std::fs::write(&path, format!("{ahead}\n")).unwrap();
    assert_eq!(e.obtain().unwrap().token(), ahead + 1);
    assert_eq!(token_from_a_new_process(run, "damaged", 1), ahead + 2);

    // At the very top the counter refuses to wrap.
    std::fs::write(&path, format!("{}\n", u64::MAX)).unwrap();
    assert!(matches!(e.try_obtain(), Err(Error::TokenExhausted { .. })));
    assert!(!holds(me, &slot, true));
}

#[test]
fn tokens_stay_distinct_while_the_slot_file_is_replaced_under_its_holders() {
    // Removing slot 0 under a holder lets a second one lock the new file
    // while the first still holds the old: the one moment two processes can
    // hold "the" slot. Even then no two acquisitions may get the same token
    // (a holder of a replaced file still writes the counter: only the
    // counter's own lock keeps it from writing over a newer number).
    for tickets in [1, 2] {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().to_path_buf();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let remover = {
            let (done, slot) = (done.clone(), run.join("swap").join("slot.0"));
            std::thread::spawn(move || {
                let mut removed = 0u32;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    removed += u32::from(std::fs::remove_file(&slot).is_ok());
                    std::thread::yield_now();
                }
                removed
            })
        };
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let run = run.clone();
                std::thread::spawn(move || {
                    let e = Election::builder("swap")
                        .tickets(tickets)
                        .dir(&run)
                        .build()
                        .unwrap();
                    (0..1500)
                        .map(|_| e.obtain().unwrap().token())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<u64> = workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let removed = remover.join().unwrap();
        assert!(
            removed > 0,
            "the slot file was never removed: nothing was tried"
        );
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(
            all.len(),
            n,
            "{} duplicate tokens with {tickets} ticket(s)",
            n - all.len()
        );
    }
}

#[test]
fn a_counter_truncated_under_its_users_starts_again_from_the_clock() {
    // A file cut to nothing under its users (a cleaner, a person) is no
    // damage: the counter starts again as a new one does, from the clock,
    // above every token issued before.
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    let cut = |path: &Path| {
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_len(0)
            .unwrap()
    };
    for tickets in [1, 2] {
        let name = format!("cut-{tickets}");
        let path = run.join(&name).join("token");
        let e = Election::builder(&name)
            .tickets(tickets)
            .dir(run)
            .build()
            .unwrap();
        let mut w = Worker::spawn(Role::Hold { mode: "obtain" }, run, &name, tickets);
        let (_, mut last) = w.expect_held();
        w.send("release");
        w.expect("RELEASED");
        for round in 0..3 {
            // Both processes have used the counter now.
            let mine = e.obtain().unwrap().token();
            assert!(mine > last, "round {round}: {mine} after {last}");
            cut(&path);
            let after_cut = e.obtain().unwrap().token();
            assert!(after_cut > mine, "round {round}: {after_cut} after {mine}");
            assert_eq!(stored(run, &name), after_cut);
            cut(&path);
            w.send("obtain");
            let (_, theirs) = w.expect_held();
            assert!(
                theirs > after_cut,
                "round {round}: {theirs} after {after_cut}"
            );
            w.send("release");
            w.expect("RELEASED");
            last = theirs;
        }
        w.finish();
    }
}
