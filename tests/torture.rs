//! The torture run in CI: `examples/torture.rs` included as a module, run
//! for a short while with 12 workers and 2 tickets, then 1 ticket (each with
//! a waiter stopped for 10 s at about a second in, fork children dropping
//! inherited tickets and a bystander holding the resource's locks); plus
//! unit tests that prove the analyser can fail.
//!
//! Workers re-execute this test binary: the role travels in the
//! `ELECT_TORTURE_ROLE` environment variable and the arguments ask the test
//! harness for the `torture_role` test alone, which runs the role and exits.
//! `ELECT_TORTURE_SECONDS` sets the length of each run (default 10).
#![cfg(feature = "tokio")]

#[allow(dead_code)]
#[path = "../examples/torture.rs"]
mod torture;

use std::sync::Mutex;

/// The runs share two cores with everything else: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Not a test: the entry point of worker processes (see the module docs).
#[test]
fn torture_role() {
    if let Some(role) = torture::role_from_env() {
        std::process::exit(torture::run_role(&role));
    }
}

/// Runs the torture with `workers` and `tickets`, for the seconds in the
/// variable `seconds_var` (default `default_seconds`), on `etcd` if given;
/// asserts the analyser passed, printing `extra` with the summary.
fn run_torture(
    workers: usize,
    tickets: u32,
    etcd: Option<String>,
    (seconds_var, default_seconds): (&str, f64),
    extra: impl FnOnce() -> String,
) -> torture::Outcome {
    let seconds = std::env::var(seconds_var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_seconds);
    let opts = torture::Options {
        seconds,
        workers,
        tickets,
        dir: None,
        elect: option_env!("CARGO_BIN_EXE_elect").map(Into::into),
        log: None,
        keep: false,
        etcd,
        ttl: std::time::Duration::from_secs(2),
        long_stop: std::time::Duration::from_secs(10),
        forks: true,
        bystander: true,
    };
    let outcome = torture::run(&opts, &torture::SelfExec::TestEnv("torture_role".into()))
        .expect("torture run");
    println!("{}", outcome.summary);
    assert!(
        outcome.passed,
        "torture with {tickets} ticket(s) found violations; log kept at {}:\n{}{}",
        outcome.log.display(),
        outcome.summary,
        extra()
    );
    outcome
}

fn torture_run(tickets: u32) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    run_torture(
        12,
        tickets,
        None,
        ("ELECT_TORTURE_SECONDS", 10.0),
        String::new,
    );
}

#[test]
fn torture_two_tickets() {
    torture_run(2);
}

#[test]
fn torture_one_ticket() {
    torture_run(1);
}

#[cfg(feature = "etcd")]
#[path = "etcd_support/mod.rs"]
mod etcd_support;

/// The torture pointed at a single-node etcd: 8 workers, 2 tickets, leases
/// of 2 s (the harness' etcd grants down to 1 s), holders SIGKILLed and a
/// holder's whole process group SIGSTOPped past its TTL every few seconds.
/// `ELECT_TORTURE_ETCD_SECONDS` sets the length (default 20).
#[cfg(feature = "etcd")]
#[test]
fn torture_etcd_two_tickets() {
    if !etcd_support::require_etcd("torture_etcd_two_tickets") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let cluster = etcd_support::EtcdCluster::start(1);
    let outcome = run_torture(
        8,
        2,
        Some(cluster.endpoints()),
        ("ELECT_TORTURE_ETCD_SECONDS", 20.0),
        || format!("\netcd:\n{}", cluster.logs()),
    );
    assert!(
        outcome.long_stops_handled >= 1,
        "no holder was stopped past its TTL and seen to handle it ({} such stops); log at {}:\n{}",
        outcome.long_stops,
        outcome.log.display(),
        outcome.summary
    );
}

const S: u64 = 1_000_000_000;
const M: u64 = 1_000_000;

/// A synthetic log line, as a worker with pid 1000 + `wid` writes it.
fn line(
    t: u64,
    wid: u64,
    kind: &str,
    what: &str,
    slot: Option<u32>,
    token: Option<u64>,
    extra: &str,
) -> String {
    torture::format_record(t, 1000 + wid as u32, wid, kind, what, slot, token, extra)
}

/// A clean hand-off between two workers of one ticket.
fn clean_log() -> String {
    let mut log = String::new();
    log += &line(S, 1, "block", "WAIT", None, None, "");
    log += &line(S + M, 1, "block", "ENTER", Some(0), Some(10), "");
    log += &line(S + 2 * M, 2, "async", "WAIT", None, None, "");
    log += &line(S + 20 * M, 1, "block", "EXIT", Some(0), Some(10), "");
    log += &line(S + 21 * M, 2, "async", "ENTER", Some(0), Some(11), "");
    log += &line(S + 40 * M, 2, "async", "EXIT", Some(0), Some(11), "");
    log
}

#[test]
fn analyser_passes_a_clean_log() {
    let a = torture::analyse(&clean_log(), 1);
    assert_eq!(a.violations, 0, "{}", a.summary);
}

#[test]
fn analyser_finds_overlap_token_and_late_loss() {
    let mut log = clean_log();
    // Overlap: wid 3 enters slot 0 while wid 4 holds it, with one ticket.
    log += &line(2 * S, 4, "block", "WAIT", None, None, "");
    log += &line(2 * S + M, 4, "block", "ENTER", Some(0), Some(12), "");
    log += &line(2 * S + 2 * M, 3, "timeout", "WAIT", None, None, "");
    log += &line(2 * S + 3 * M, 3, "timeout", "ENTER", Some(0), Some(13), "");
    log += &line(2 * S + 9 * M, 3, "timeout", "EXIT", Some(0), Some(13), "");
    log += &line(2 * S + 10 * M, 4, "block", "EXIT", Some(0), Some(12), "");
    // Token order: wid 5 starts waiting after wid 3 entered with 13, yet
    // gets 9.
    log += &line(3 * S, 5, "cli", "WAIT", None, None, "");
    log += &line(3 * S + M, 5, "cli", "ENTER", Some(0), Some(9), "");
    log += &line(3 * S + 2 * M, 5, "cli", "EXIT", Some(0), Some(9), "");
    // Late loss: the directory is removed at 4 s, wid 6 notices at 5.5 s.
    log += &line(4 * S - 10 * M, 6, "async", "WAIT", None, None, "");
    log += &line(4 * S - 9 * M, 6, "async", "ENTER", Some(0), Some(20), "");
    log += &line(4 * S, 0, "chaos", "RMDIR", None, None, "/run");
    log += &line(4 * S + M, 0, "chaos", "RMDONE", None, None, "ok=true");
    log += &line(
        4 * S + 1500 * M,
        6,
        "async",
        "LOST",
        Some(0),
        Some(20),
        "checks=3",
    );
    let a = torture::analyse(&log, 1);
    println!("{}", a.summary);
    let has = |p: &str| a.found.iter().any(|f| f.starts_with(p));
    assert!(has("(a) too many holders"), "{:?}", a.found);
    assert!(has("(a) slot shared"), "{:?}", a.found);
    assert!(has("(b) token order"), "{:?}", a.found);
    assert!(has("(c) late notice"), "{:?}", a.found);
    assert!(a.summary.contains("VIOLATION"));
}

#[test]
fn analyser_finds_duplicate_tokens_spurious_loss_and_hangs() {
    let mut log = clean_log();
    log += &line(2 * S, 7, "block", "WAIT", None, None, "");
    log += &line(2 * S + M, 7, "block", "ENTER", Some(0), Some(11), "");
    log += &line(
        2 * S + 2 * M,
        7,
        "block",
        "LOST",
        Some(0),
        Some(11),
        "checks=1",
    );
    log += &line(3 * S, 8, "block", "HANG", None, None, "");
    log += "this line is torn\n";
    let a = torture::analyse(&log, 1);
    let has = |p: &str| a.found.iter().any(|f| f.starts_with(p));
    assert!(has("(b) duplicate token"), "{:?}", a.found);
    assert!(has("(c) spurious loss"), "{:?}", a.found);
    assert!(has("(e) hang"), "{:?}", a.found);
    assert!(has("log"), "{:?}", a.found);
}

#[test]
fn analyser_does_not_count_holders_of_a_removed_directory() {
    // An old holder is cut at the removal, so the new directory's holder
    // does not overlap it; one that never saw its ticket intact is not
    // counted at all.
    let mut log = String::new();
    log += &line(S, 1, "block", "WAIT", None, None, "");
    log += &line(S + M, 1, "block", "ENTER", Some(0), Some(10), "");
    log += &line(2 * S, 0, "chaos", "RMDIR", None, None, "/run");
    log += &line(2 * S + M, 0, "chaos", "RMDONE", None, None, "ok=true");
    log += &line(2 * S + 2 * M, 2, "async", "WAIT", None, None, "");
    log += &line(2 * S + 3 * M, 2, "async", "ENTER", Some(0), Some(99), "");
    // wid 3 began waiting before the removal, got a slot of the doomed
    // directory and was stopped before it logged ENTER: never counted.
    log += &line(S + 500 * M, 3, "timeout", "WAIT", None, None, "");
    log += &line(2 * S + 5 * M, 3, "timeout", "ENTER", Some(1), Some(11), "");
    log += &line(
        2 * S + 6 * M,
        3,
        "timeout",
        "LOST",
        Some(1),
        Some(11),
        "checks=0",
    );
    log += &line(
        2 * S + 9 * M,
        1,
        "block",
        "LOST",
        Some(0),
        Some(10),
        "checks=4",
    );
    log += &line(2 * S + 20 * M, 2, "async", "EXIT", Some(0), Some(99), "");
    let a = torture::analyse(&log, 2);
    assert_eq!(a.violations, 0, "{}", a.summary);
    assert!(a.summary.contains("max 1 of 2"), "{}", a.summary);
}

/// A log in which wid 1 holds the one ticket, then releases at 2 s; wid 2
/// waits from 1 s (and is stopped for 10 s at 1.5 s: a long stop of the
/// head of the line), wid 3 waits from 1.2 s.
fn stopped_head_log(wid3_enters_at: u64) -> String {
    let mut log = String::new();
    log += &line(S, 1, "block", "WAIT", None, None, "");
    log += &line(S + M, 1, "block", "ENTER", Some(0), Some(10), "");
    log += &line(S + 2 * M, 2, "block", "WAIT", None, None, "");
    log += &line(S + 200 * M, 3, "async", "WAIT", None, None, "");
    log += &line(
        S + 500 * M,
        2,
        "chaos",
        "STOP",
        None,
        None,
        "waiter ms=10000 long",
    );
    log += &line(S + 501 * M, 2, "chaos", "HELD", None, None, "locks=-");
    log += &line(2 * S, 1, "block", "EXIT", Some(0), Some(10), "");
    log += &line(wid3_enters_at, 3, "async", "ENTER", Some(0), Some(11), "");
    log += &line(
        wid3_enters_at + 10 * M,
        3,
        "async",
        "EXIT",
        Some(0),
        Some(11),
        "",
    );
    log += &line(11 * S + 500 * M, 2, "chaos", "CONT", None, None, "");
    log += &line(11 * S + 501 * M, 2, "block", "ENTER", Some(0), Some(12), "");
    log += &line(11 * S + 600 * M, 2, "block", "EXIT", Some(0), Some(12), "");
    log
}

#[test]
fn analyser_allows_stepping_past_a_stopped_head_within_the_limit() {
    // wid 3 steps past the stopped wid 2 within a second of the release.
    let a = torture::analyse(&stopped_head_log(2 * S + 900 * M), 1);
    assert_eq!(a.violations, 0, "{}", a.summary);
    assert!(
        a.summary.contains("1 long stops of waiters"),
        "{}",
        a.summary
    );
}

#[test]
fn analyser_finds_a_ticket_left_free_behind_a_stopped_waiter() {
    // wid 3 waits, running, 5 s while the ticket stands free.
    let a = torture::analyse(&stopped_head_log(7 * S), 1);
    let has = |p: &str| a.found.iter().any(|f| f.starts_with(p));
    assert!(has("(d) free ticket"), "{:?}\n{}", a.found, a.summary);
}

#[test]
fn analyser_counts_a_slot_held_by_a_stopped_process_as_held() {
    // wid 2 took the ticket and was stopped before it logged ENTER: the
    // kernel listed its lock on slot.0 (HELD), so wid 3's long wait is
    // no free ticket.
    let mut log = String::new();
    log += &line(S, 2, "block", "WAIT", None, None, "");
    log += &line(S + 200 * M, 3, "async", "WAIT", None, None, "");
    log += &line(
        S + 500 * M,
        2,
        "chaos",
        "STOP",
        None,
        None,
        "waiter ms=10000 long",
    );
    log += &line(S + 501 * M, 2, "chaos", "HELD", None, None, "locks=slot.0");
    log += &line(11 * S + 500 * M, 2, "chaos", "CONT", None, None, "");
    log += &line(11 * S + 501 * M, 2, "block", "ENTER", Some(0), Some(12), "");
    log += &line(11 * S + 600 * M, 2, "block", "EXIT", Some(0), Some(12), "");
    log += &line(11 * S + 601 * M, 3, "async", "ENTER", Some(0), Some(13), "");
    log += &line(11 * S + 700 * M, 3, "async", "EXIT", Some(0), Some(13), "");
    let a = torture::analyse(&log, 1);
    assert_eq!(a.violations, 0, "{}", a.summary);
    // The same without the kernel's word is a free ticket.
    let a = torture::analyse(&log.replace("locks=slot.0", "locks=-"), 1);
    assert!(
        a.found.iter().any(|f| f.starts_with("(d) free ticket")),
        "{:?}",
        a.found
    );
}

#[test]
fn analyser_finds_waiters_served_out_of_arrival_order() {
    // wid 2 waits from 1 s, wid 3 from 1.5 s; wid 3 is served first while
    // wid 2, never stopped, still waits.
    let mut log = String::new();
    log += &line(S, 1, "block", "WAIT", None, None, "");
    log += &line(S + M, 1, "block", "ENTER", Some(0), Some(10), "");
    log += &line(S + 2 * M, 2, "block", "WAIT", None, None, "");
    log += &line(S + 500 * M, 3, "timeout", "WAIT", None, None, "limit=900ms");
    log += &line(2 * S, 1, "block", "EXIT", Some(0), Some(10), "");
    log += &line(2 * S + M, 3, "timeout", "ENTER", Some(0), Some(11), "");
    log += &line(2 * S + 100 * M, 3, "timeout", "EXIT", Some(0), Some(11), "");
    log += &line(2 * S + 101 * M, 2, "block", "ENTER", Some(0), Some(12), "");
    log += &line(2 * S + 140 * M, 2, "block", "EXIT", Some(0), Some(12), "");
    let a = torture::analyse(&log, 1);
    let has = |p: &str| a.found.iter().any(|f| f.starts_with(p));
    assert!(has("(g) arrival order"), "{:?}\n{}", a.found, a.summary);
    // Had wid 2 been stopped meanwhile, it was stepped past: allowed.
    let mut stopped = log.clone();
    stopped += &line(S + 600 * M, 2, "chaos", "STOP", None, None, "waiter ms=100");
    stopped += &line(S + 700 * M, 2, "chaos", "CONT", None, None, "");
    let a = torture::analyse(&stopped, 1);
    assert_eq!(a.violations, 0, "{}", a.summary);
}

#[test]
fn analyser_finds_late_timeouts_and_fork_children_that_freed_a_slot() {
    let mut log = clean_log();
    // A 50 ms timeout that gave up after 900 ms, the waiter never stopped.
    log += &line(3 * S, 4, "timeout", "WAIT", None, None, "limit=50ms");
    log += &line(3 * S + 900 * M, 4, "timeout", "GIVEUP", None, None, "");
    // A fork child whose drop freed its parent's slot.
    log += &line(4 * S, 5, "block", "WAIT", None, None, "");
    log += &line(4 * S + M, 5, "block", "ENTER", Some(0), Some(20), "");
    log += &line(4 * S + 2 * M, 5, "block", "FORK", Some(0), Some(20), "");
    log += &line(
        4 * S + 3 * M,
        5,
        "block",
        "FORKED",
        Some(0),
        Some(20),
        "child=77 status=0 held=0",
    );
    log += &line(4 * S + 30 * M, 5, "block", "EXIT", Some(0), Some(20), "");
    let a = torture::analyse(&log, 1);
    let has = |p: &str| a.found.iter().any(|f| f.starts_with(p));
    assert!(has("(h) late timeout"), "{:?}", a.found);
    assert!(has("(a) fork child freed"), "{:?}", a.found);
    let ok = log.replace("held=0", "held=1").replace(
        &line(3 * S + 900 * M, 4, "timeout", "GIVEUP", None, None, ""),
        &line(3 * S + 60 * M, 4, "timeout", "GIVEUP", None, None, ""),
    );
    let a = torture::analyse(&ok, 1);
    assert_eq!(a.violations, 0, "{}", a.summary);
}
