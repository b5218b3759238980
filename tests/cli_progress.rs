//! What `elect run` shows while it waits: under a pseudo-terminal (script(1))
//! it says what it waits for and who holds the ticket, and erases that once
//! it has the ticket; with a pipe for stderr, or with --quiet, nothing.

mod cli_support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use cli_support::*;

#[test]
fn progress_on_a_terminal_names_the_holder_and_is_erased() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let ready = tmp.path().join("ready");
    let holder = Proc::spawn(
        elect(["run", "--label", "nightly-holder", "-d"])
            .arg(&dir)
            .args(["job", "sh", "-c", &hold_script(&ready)]),
    );
    wait_file(&ready);

    let shell = format!(
        "exec {ELECT} run -d {} job echo got-the-ticket",
        dir.display()
    );
    let mut term = Proc::spawn(
        Command::new("script")
            .args(["-qfec", &shell, "/dev/null"])
            .env("SHELL", "/bin/sh")
            .stdin(Stdio::piped()),
    );
    let seen = Arc::new(Mutex::new(String::new()));
    let mut out = term.child.stdout.take().unwrap();
    let sink = Arc::clone(&seen);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let text = || seen.lock().unwrap().clone();
    wait_until("the waiting display", || text().contains("nightly-holder"));
    let shown = text();
    assert!(shown.contains("elect: waiting"), "{shown:?}");
    assert!(
        shown.contains("for a ticket of \"job\" (1 of 1 held)"),
        "{shown:?}"
    );
    assert!(
        shown.contains(&format!("pid {}", holder.pid())),
        "{shown:?}"
    );
    assert!(shown.contains(" since 20"), "{shown:?}");

    drop(holder);
    let st = term.wait();
    assert_eq!(code(st), 0);
    wait_until("the command's output", || text().contains("got-the-ticket"));
    let all = text();
    let erased = all.rfind("\x1b[J").expect("the display is erased");
    assert!(erased < all.find("got-the-ticket").unwrap(), "{all:?}");
    // The display instead of the lines for a log.
    assert!(
        !all.contains("waiting for a ticket") && !all.contains("got a ticket"),
        "{all:?}"
    );
}

/// Off a terminal (a CI log, cron's mail) a wait leaves a trace: one line
/// when it starts, naming the holders (their labels made safe to print),
/// and one when the ticket is obtained, before the command's own output;
/// with --quiet, none.
#[test]
fn a_wait_off_a_terminal_says_when_it_starts_and_ends() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let ready = tmp.path().join("ready");
    for quiet in [false, true] {
        let holder = Proc::spawn(
            elect(["run", "--label", "nightly\x1b[2J\nholder", "-d"])
                .arg(&dir)
                .args(["job", "sh", "-c", &hold_script(&ready)]),
        );
        wait_file(&ready);
        let mut cmd = elect(["run", "-d"]);
        cmd.arg(&dir);
        if quiet {
            cmd.arg("-q");
        }
        let mut waiter = Proc::spawn(cmd.args(["job", "sh", "-c", "echo command-output >&2"]));
        let err = waiter.stderr_lines();
        if !quiet {
            let line = next_line(&err);
            assert_eq!(
                line,
                format!(
                    "elect: waiting for a ticket of \"job\" (held by pid {} \"nightly [2J holder\")",
                    holder.pid()
                )
            );
        } else {
            wait_until("the waiter to wait", || {
                has_thread(waiter.pid(), "elect-obtain")
            });
        }
        drop(holder);
        let st = waiter.wait();
        assert_eq!(st.code(), Some(0));
        let rest: Vec<String> = err.iter().collect();
        if quiet {
            assert_eq!(rest, ["command-output"], "--quiet: only the command's");
        } else {
            assert_eq!(rest.len(), 2, "{rest:?}");
            let (head, tail) = rest[0]
                .split_once(" after ")
                .unwrap_or_else(|| panic!("{rest:?}"));
            assert!(
                head.starts_with("elect: got a ticket of \"job\" (slot 0, token "),
                "{rest:?}"
            );
            assert!(
                tail.ends_with("ms") || tail.ends_with('s'),
                "how long: {rest:?}"
            );
            assert_eq!(rest[1], "command-output", "before the command's output");
        }
        std::fs::remove_file(&ready).unwrap();
    }
}

#[test]
fn no_progress_without_a_terminal_or_with_quiet() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let ready = tmp.path().join("ready");
    let _holder =
        Proc::spawn(
            elect(["run", "-d"])
                .arg(&dir)
                .args(["job", "sh", "-c", &hold_script(&ready)]),
        );
    wait_file(&ready);

    // Off a terminal: the line that starts the wait and the final message,
    // no display.
    let out = output(
        elect(["run", "-w", "600ms", "-d"])
            .arg(&dir)
            .args(["job", "true"]),
    );
    assert_eq!(out.status.code(), Some(75));
    let err = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err:?}");
    assert!(
        lines[0].starts_with("elect: waiting up to 600ms for a ticket of \"job\" (held by pid "),
        "{err:?}"
    );
    assert!(
        lines[1].starts_with("elect: no ticket of \"job\""),
        "{err:?}"
    );
    assert!(!err.contains('\x1b'), "{err:?}");

    // --quiet: nothing at all.
    let out = output(
        elect(["run", "-q", "-w", "300ms", "-d"])
            .arg(&dir)
            .args(["job", "true"]),
    );
    assert_eq!(out.status.code(), Some(75));
    assert!(
        out.stderr.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Under a terminal with --quiet: nothing at all.
    let shell = format!("exec {ELECT} run -q -w 600ms -d {} job true", dir.display());
    let out = Command::new("script")
        .args(["-qfec", &shell, "/dev/null"])
        .env("SHELL", "/bin/sh")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(75));
    assert!(
        out.stdout.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stdout)
    );
}
