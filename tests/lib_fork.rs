//! Forked workers: a ticket dropped in a fork child (returning from a
//! function, unwinding, exiting through destructors) never releases the
//! parent's ticket; an election used in a fork child works, its timeouts
//! honoured; nothing is shared by accident.
//!
//! Each scenario forks with `libc::fork` in a process of its own (this test
//! binary, re-run with the scenario's name), which reports what it saw on
//! its standard output.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use elect::Election;

const SCENARIO: &str = "ELECT_TEST_FORK_SCENARIO";
const DIR: &str = "ELECT_TEST_FORK_DIR";

fn election(dir: &Path) -> Election {
    Election::builder("fork").dir(dir).build().unwrap()
}

/// Forks; runs `child` in the child, which then exits with its result
/// (0 for true) without running anything else of the parent's; returns the
/// child's exit code.
fn fork_and(child: impl FnOnce() -> bool) -> i32 {
    // SAFETY: fork in a process whose other threads (the test harness's)
    // hold none of the locks the child uses; the child ends with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(false);
        // SAFETY: ends the child at once, as a worker pool's child would.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    }
}

/// The scenarios, run in a process of their own.
#[test]
#[ignore = "the body of the forking processes; the other tests run it"]
fn fork_scenario() {
    let Ok(scenario) = std::env::var(SCENARIO) else {
        return;
    };
    let dir = std::path::PathBuf::from(std::env::var(DIR).unwrap());
    let e = election(&dir);
    let ticket = e.obtain().unwrap();
    if scenario == "campaign" {
        return campaign_scenario(&dir, ticket);
    }
    let code = match scenario.as_str() {
        // The child drops its copy of the ticket, then uses the election:
        // the slot is the parent's, so nothing is free, and a timeout
        // ends on time.
        "drop-and-use" => fork_and(|| {
            drop(ticket_copy(&ticket));
            let none_now = e.try_obtain().unwrap().is_none();
            let start = Instant::now();
            let timed = e
                .obtain_timeout(Duration::from_millis(200))
                .unwrap()
                .is_none();
            let on_time = start.elapsed() < Duration::from_secs(10);
            none_now && timed && on_time
        }),
        // The child returns from a function that owned the ticket, and
        // exits through every destructor.
        "return-and-exit" => fork_and(|| {
            fn take(t: elect::Ticket) -> bool {
                t.is_held()
            }
            take(ticket_copy(&ticket))
        }),
        // A panic unwinds through the child's copy.
        "unwind" => fork_and(|| {
            let copy = ticket_copy(&ticket);
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                let _copy = copy;
                panic!("unwinding through a ticket");
            }));
            true
        }),
        other => panic!("unknown scenario {other}"),
    };
    println!("CHILD {code}");
    println!("STILL-HELD {}", ticket.is_held());
    // Another participant must find the slot taken: the parent still holds.
    let other = election(&dir);
    println!("OTHER-GOT {}", other.try_obtain().unwrap().is_some());
    drop(ticket);
    println!("AFTER-RELEASE {}", other.try_obtain().unwrap().is_some());
}

/// A campaign of the parent waits (the parent holds the ticket) while a
/// fork child drops its copy of the campaign's handle: the child returns at
/// once, the parent's wait goes on asleep (it used to spin, woken for ever
/// by the child's trigger), and wins when the parent releases.
fn campaign_scenario(dir: &Path, ticket: elect::Ticket) {
    let (tx, rx) = std::sync::mpsc::channel();
    let campaign = election(dir)
        .campaign()
        .run_blocking(move |_| tx.send(()).unwrap(), |_| {});
    // Asleep in its wait: its place stands in the line.
    let line = dir.join("fork").join("line");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_dir(&line).map_or(0, |d| d.count()) == 0 {
        assert!(
            Instant::now() < deadline,
            "the campaign never stood in line"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let code = fork_and(|| {
        // SAFETY: the child's one owner of its copy of the handle (see
        // ticket_copy); the original is never used in the child.
        drop(unsafe { std::ptr::read(&campaign) });
        true
    });
    println!("CHILD {code}");
    // A sleeping wait uses no CPU; one woken for ever spins.
    let before = cpu_ticks();
    std::thread::sleep(Duration::from_millis(500));
    println!("TICKS {}", cpu_ticks() - before);
    drop(ticket);
    println!("WON {}", rx.recv_timeout(Duration::from_secs(20)).is_ok());
    campaign.resign().unwrap();
}

/// CPU time of this process so far, in clock ticks (utime + stime).
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat(5), counted after the state (field 3).
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// What a fork child has of a ticket the parent held at the fork: a copy
/// of the same bytes, which Rust knows nothing about. Reading it out of the
/// parent's memory image reproduces that (the parent's own value is not
/// touched in the parent, which is another process).
fn ticket_copy(t: &elect::Ticket) -> elect::Ticket {
    // SAFETY: in the fork child only, this makes the child's one owner of
    // its copy of the parent's ticket; the original is never used (or
    // dropped) in the child afterwards, since the child ends with _exit.
    unsafe { std::ptr::read(t) }
}

fn run(scenario: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "fork_scenario",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SCENARIO, scenario)
        .env(DIR, tmp.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn check(scenario: &str) {
    let text = run(scenario);
    for want in [
        "CHILD 0",
        "STILL-HELD true",
        "OTHER-GOT false",
        "AFTER-RELEASE true",
    ] {
        assert!(text.contains(want), "{scenario}: no {want:?} in:\n{text}");
    }
}

#[test]
fn a_fork_child_that_drops_its_copy_leaves_the_parent_holding_and_can_use_the_election() {
    check("drop-and-use");
}

#[test]
fn a_fork_child_that_returns_and_exits_through_destructors_releases_nothing() {
    check("return-and-exit");
}

#[test]
fn a_fork_child_that_drops_a_copy_of_a_campaign_leaves_the_parents_campaign_alone() {
    let text = run("campaign");
    assert!(text.contains("CHILD 0"), "{text}");
    assert!(text.contains("WON true"), "{text}");
    let ticks: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("TICKS "))
        .expect("TICKS")
        .trim()
        .parse()
        .unwrap();
    // 500 ms asleep is 0 ticks (10 ms each); a spinning wait gets tens.
    assert!(
        ticks < 10,
        "the parent used {ticks} ticks of CPU in 500 ms: its wait spins"
    );
}

#[test]
fn a_fork_child_that_unwinds_releases_nothing() {
    check("unwind");
}
