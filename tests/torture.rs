//! The torture run in CI: `examples/torture.rs` included as a module, run
//! for a short while with 12 workers and 2 tickets, then 1 ticket; plus unit
//! tests that prove the analyser can fail.
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
