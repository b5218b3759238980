//! A bystander (systemd-tmpfiles, a stopped participant, anyone) holding
//! exclusive locks on the resource directory and every file in it cannot
//! make `elect run` miss its deadline or ignore a signal: `-n` and `-w`
//! give up on time, and SIGTERM ends a run that is starting, waiting or
//! holding.

mod cli_support;

use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use cli_support::*;

/// Uses `name` once (so its files exist), then holds exclusive locks on
/// its directory and every file in it until the returned files drop.
fn bystander(dir: &Path, name: &str) -> Vec<File> {
    let out = output(elect(["run", "-d"]).arg(dir).args([name, "true"]));
    assert!(out.status.success(), "{out:?}");
    let res = dir.join(name);
    let mut locks = Vec::new();
    for entry in [".", "tickets", "token", "slot.0"] {
        let f = File::open(res.join(entry)).unwrap();
        f.try_lock().unwrap();
        locks.push(f);
    }
    locks
}

/// How a process ended, as a shell reports it.
fn ended(p: &mut Proc) -> i32 {
    code(p.wait())
}

#[test]
fn no_wait_and_a_timeout_give_up_on_time() {
    let tmp = tempfile::tempdir().unwrap();
    let _locks = bystander(tmp.path(), "stall");
    for (args, budget) in [
        (vec!["run", "-n"], Duration::from_secs(10)),
        (vec!["run", "-w", "1"], Duration::from_secs(11)),
        (vec!["run", "-w", "250ms"], Duration::from_secs(10)),
    ] {
        let start = Instant::now();
        let out = output(
            elect(&args)
                .arg("-d")
                .arg(tmp.path())
                .args(["stall", "true"]),
        );
        let took = start.elapsed();
        assert_eq!(out.status.code(), Some(75), "{args:?}: {out:?}");
        assert!(took < budget, "{args:?} took {took:?}");
    }
}

/// Whether `pid` has the directory `dir` open: it got as far as opening the
/// resource, where a bystander's locks stop it.
fn has_open(pid: i32, dir: &Path) -> bool {
    let want = std::fs::canonicalize(dir).unwrap();
    std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
        fds.flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == want))
    })
}

#[test]
fn sigterm_ends_a_run_that_is_starting_or_waiting() {
    let tmp = tempfile::tempdir().unwrap();
    let _locks = bystander(tmp.path(), "stall");
    let mut p = Proc::spawn(
        elect(["run", "-d"])
            .arg(tmp.path())
            .args(["stall", "sleep", "1000"]),
    );
    let res = tmp.path().join("stall");
    wait_until("elect has the resource open", || has_open(p.pid(), &res));
    kill(p.pid(), libc::SIGTERM);
    let start = Instant::now();
    assert_eq!(ended(&mut p), 128 + libc::SIGTERM);
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn sigterm_ends_a_run_that_holds_while_a_bystander_holds_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let out = output(elect(["run", "-d"]).arg(tmp.path()).args(["held", "true"]));
    assert!(out.status.success());
    let ready = tmp.path().join("ready");
    let mut p = Proc::spawn(elect(["run", "-d"]).arg(tmp.path()).args([
        "held",
        "sh",
        "-c",
        &hold_script(&ready),
    ]));
    wait_file(&ready);
    let res = tmp.path().join("held");
    // The holder is a live participant (a shared lock on the directory):
    // the bystander can share that, and take the files exclusively.
    let dir = File::open(&res).unwrap();
    dir.try_lock_shared().unwrap();
    let mut locks = vec![dir];
    for entry in ["tickets", "token"] {
        let f = File::open(res.join(entry)).unwrap();
        f.try_lock().unwrap();
        locks.push(f);
    }
    kill(p.pid(), libc::SIGTERM);
    let start = Instant::now();
    assert_eq!(ended(&mut p), 128 + libc::SIGTERM);
    assert!(start.elapsed() < Duration::from_secs(10));
}
