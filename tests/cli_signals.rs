//! Signals and `elect run`, with real processes: forwarding to the command,
//! giving up while waiting, SIGKILL of elect while the command keeps the
//! slot, a waiter taking over from a killed command, and Ctrl-C in a real
//! (pseudo-)terminal.

mod cli_support;

use std::io::Write;
use std::process::{Command, Stdio};

use cli_support::*;

#[test]
fn forwarded_signals_reach_the_command_and_its_status_comes_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let cases = [
        // The command handles SIGTERM and exits with its own status.
        (libc::SIGTERM, "trap 'kill $!; exit 42' TERM", 42),
        // The command dies of the forwarded signal: 128 + N.
        (libc::SIGTERM, "", 128 + libc::SIGTERM),
        (libc::SIGHUP, "", 128 + libc::SIGHUP),
        (libc::SIGINT, "", 128 + libc::SIGINT),
    ];
    for (i, (sig, trap, want)) in cases.into_iter().enumerate() {
        let ready = tmp.path().join(format!("ready{i}"));
        let script = if trap.is_empty() {
            format!("touch {}; exec sleep 1000", ready.display())
        } else {
            format!(
                "{trap}; {{ touch {}; exec sleep 1000; }} & wait",
                ready.display()
            )
        };
        let mut p = Proc::spawn(
            elect(["run", "-d"])
                .arg(&dir)
                .args(["job", "sh", "-c", &script]),
        );
        wait_file(&ready);
        kill(p.pid(), sig);
        let (st, err) = p.finish();
        assert_eq!(st.code(), Some(want), "signal {sig}, trap {trap:?}: {err}");
    }
}

#[test]
fn a_signal_while_waiting_gives_up_with_nothing_taken() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let ready = tmp.path().join("ready");
    let ran = tmp.path().join("ran");
    let _holder = {
        let mut p = Proc::spawn(elect(["run", "-d"]).arg(&dir).args([
            "job",
            "sh",
            "-c",
            &hold_script(&ready),
        ]));
        wait_file(&ready);
        let _ = p.exited();
        p
    };
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT] {
        let mut waiter = Proc::spawn(
            elect(["run", "-d"])
                .arg(&dir)
                .args(["job", "touch"])
                .arg(&ran),
        );
        wait_until("the waiter to wait", || {
            has_thread(waiter.pid(), "elect-obtain")
        });
        kill(waiter.pid(), sig);
        let (st, err) = waiter.finish();
        assert_eq!(st.code(), Some(128 + sig), "exits 128+N, not killed: {err}");
        assert!(
            err.starts_with("elect: stopped by SIG") && err.contains("nothing was taken"),
            "{err}"
        );
    }
    assert!(!ran.exists());
    // Still exactly the holder's.
    let st = status_json(&dir, "job");
    let kernel = kernel_holds(&slot_file(&dir, "job", 0));
    assert!(
        st["resources"][0]["slots"][0]["held"] == true && kernel,
        "kernel {kernel}: {st}"
    );
}

#[test]
fn sigkill_of_elect_leaves_the_command_holding_then_a_waiter_takes_over() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let pidfile = tmp.path().join("pid");
    let tokfile = tmp.path().join("token");
    let script = format!(
        "echo $$ > {}; echo $ELECT_TOKEN > {}; exec sleep 1000",
        pidfile.display(),
        tokfile.display()
    );
    let mut p = Proc::spawn(
        elect(["run", "-d"])
            .arg(&dir)
            .args(["job", "sh", "-c", &script]),
    );
    let cmd: i32 = read_when_written(&pidfile).parse().unwrap();
    let token: u64 = read_when_written(&tokfile).parse().unwrap();
    let elect_pid = p.pid();
    wait_until("the command's pid in the record", || {
        status_json(&dir, "job")["resources"][0]["slots"][0]["command_pid"] == cmd
    });

    kill(elect_pid, libc::SIGKILL);
    assert_eq!(code(p.wait()), 128 + libc::SIGKILL);
    assert!(!dead(cmd), "the command runs on");

    let st = status_json(&dir, "job");
    let slot = &st["resources"][0]["slots"][0];
    assert_eq!(slot["held"], true, "{st}");
    assert_eq!(
        slot["pid"], elect_pid,
        "the record names the dead elect: {st}"
    );
    assert_eq!(slot["command_pid"], cmd, "{st}");
    assert!(kernel_holds(&slot_file(&dir, "job", 0)));
    let out = output(elect(["run", "-n", "-d"]).arg(&dir).args(["job", "true"]));
    assert_eq!(
        out.status.code(),
        Some(75),
        "the command still holds the ticket"
    );

    let next = tmp.path().join("next");
    let mut waiter = Proc::spawn(
        elect(["run", "-d"])
            .arg(&dir)
            .args(["job", "sh", "-c"])
            .arg(format!("echo $ELECT_TOKEN > {}", next.display())),
    );
    wait_until("the waiter to wait", || {
        has_thread(waiter.pid(), "elect-obtain")
    });
    assert!(!waiter.exited(), "no ticket while the command lives");
    kill(cmd, libc::SIGKILL);
    let (st, err) = waiter.finish();
    assert_eq!(st.code(), Some(0), "{err}");
    let next_token: u64 = read_when_written(&next).parse().unwrap();
    assert!(next_token > token, "{next_token} > {token}");
}

/// Runs `shell_command` under script(1), in a new pseudo-terminal whose
/// input is the returned stdin.
fn in_terminal(shell_command: &str) -> Proc {
    let mut cmd = Command::new("script");
    cmd.args(["-qfec", shell_command, "/dev/null"])
        .env("SHELL", "/bin/sh")
        .env_remove("ELECT_DIR")
        .stdin(Stdio::piped());
    Proc::spawn(&mut cmd)
}

#[test]
fn ctrl_c_in_a_terminal_reaches_the_command_and_elect_stays_in_charge() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let ready = tmp.path().join("ready");
    let log = tmp.path().join("log");
    let elect_pid = tmp.path().join("elect-pid");
    let inner = format!(
        "trap 'echo INT >> {log}' INT; trap 'echo TERM >> {log}; kill $!; exit 143' TERM; touch {ready}; sleep 1000 & while :; do wait; done",
        log = log.display(),
        ready = ready.display()
    );
    let shell = format!(
        "echo $$ > {pid}; exec {ELECT} run -d {dir} job sh -c \"{inner}\"",
        pid = elect_pid.display(),
        dir = dir.display()
    );
    let mut term = in_terminal(&shell);
    let pid: i32 = read_when_written(&elect_pid).parse().unwrap();
    wait_file(&ready);
    let mut stdin = term.child.stdin.take().unwrap();
    stdin.write_all(b"\x03").unwrap();
    stdin.flush().unwrap();
    wait_until("the command's INT trap", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("INT"))
    });
    // elect survived the Ctrl-C and still forwards what kill(1) sends. (A
    // second copy of the SIGINT would usually merge with the terminal's
    // while pending, so the log cannot prove it was not sent; the
    // `a_signal_while_waiting` and forwarding tests cover the rest.)
    kill(pid, libc::SIGTERM);
    let st = term.wait();
    assert_eq!(code(st), 143);
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "INT\nTERM\n");
    drop(stdin);
}

#[test]
fn one_ctrl_c_in_a_terminal_stops_both_and_frees_the_slot() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let ready = tmp.path().join("ready");
    let shell = format!(
        "exec {ELECT} run -d {dir} job sh -c 'touch {ready}; exec sleep 1000'",
        dir = dir.display(),
        ready = ready.display()
    );
    let mut term = in_terminal(&shell);
    wait_file(&ready);
    let mut stdin = term.child.stdin.take().unwrap();
    stdin.write_all(b"\x03").unwrap();
    stdin.flush().unwrap();
    let (st, err) = term.finish();
    assert_eq!(code(st), 130, "{err}");
    assert!(!held(&dir, "job", 0), "no orphan holds the slot");
    let out = output(elect(["run", "-n", "-d"]).arg(&dir).args(["job", "true"]));
    assert_eq!(out.status.code(), Some(0));
}
