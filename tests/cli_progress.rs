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

    let out = output(
        elect(["run", "-w", "600ms", "-d"])
            .arg(&dir)
            .args(["job", "true"]),
    );
    assert_eq!(out.status.code(), Some(75));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "only the final message: {err:?}");
    assert!(!err.contains("waiting") && !err.contains('\x1b'), "{err:?}");

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
