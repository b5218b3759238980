//! Signals and `elect run`, with real processes: forwarding every
//! catchable signal to the command (realtime ones and a queued value
//! included), stopping and continuing, giving up while waiting (killed by
//! the signal, as the command would be), SIGKILL of elect while the command
//! keeps the slot, a waiter taking over from a killed command, and Ctrl-C
//! in a real (pseudo-)terminal, where it stops a shell loop of elect runs.

mod cli_support;

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

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
        assert_eq!(code(st), want, "signal {sig}, trap {trap:?}: {err}");
        // A command that died of the signal: elect dies of it too.
        let died = (want > 128).then_some(want - 128);
        assert_eq!(st.signal(), died, "signal {sig}, trap {trap:?}: {st:?}");
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
    for sig in [
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGALRM,
    ] {
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
        assert_eq!(
            st.signal(),
            Some(sig),
            "killed by it, as a shell expects: {err}"
        );
        assert!(!st.core_dumped(), "no core file of elect's: {err}");
        assert!(
            err.lines().last().is_some_and(|l| {
                l.starts_with("elect: stopped by SIG") && l.ends_with("nothing was taken")
            }),
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

/// The state letter of process `pid` in /proc (`S`, `T` for stopped, ...).
fn state(pid: i32) -> char {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.trim_start().to_string()))
        .and_then(|r| r.chars().next())
        .unwrap_or('?')
}

/// Whether `sig` is pending for process `pid`, not yet taken by it (the
/// shared pending set in /proc/PID/status).
fn pending(pid: i32, sig: i32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("ShdPnd:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (sig - 1)) != 0)
}

/// Every catchable signal but those that stop a wait reaches the command
/// while it runs, and elect survives them all: SIGUSR1, SIGUSR2, SIGALRM,
/// the other classic ones a program may trap, and realtime signals.
#[test]
fn every_catchable_signal_is_forwarded_and_elect_survives() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let ready = tmp.path().join("ready");
    let log = tmp.path().join("log");
    let rtmin = libc::SIGRTMIN();
    let rtmax = libc::SIGRTMAX();
    // (the signal, its name for bash's trap)
    let signals: Vec<(i32, String)> = [
        (libc::SIGUSR1, "USR1"),
        (libc::SIGUSR2, "USR2"),
        (libc::SIGALRM, "ALRM"),
        (libc::SIGVTALRM, "VTALRM"),
        (libc::SIGPROF, "PROF"),
        (libc::SIGPIPE, "PIPE"),
        (libc::SIGWINCH, "WINCH"),
        (libc::SIGURG, "URG"),
        (libc::SIGXFSZ, "XFSZ"),
        (libc::SIGPWR, "PWR"),
        (rtmin, "RTMIN"),
        (rtmin + 1, "RTMIN+1"),
        (rtmax, "RTMAX"),
    ]
    .into_iter()
    .map(|(s, n)| (s, n.to_string()))
    .collect();
    let mut script = String::new();
    for (_, name) in &signals {
        script.push_str(&format!("trap 'echo {name} >> {}' {name}; ", log.display()));
    }
    // Each trapped signal ends a `wait`; the loop waits again.
    script.push_str(&format!(
        "trap 'kill $!; exit 7' TERM; sleep 1000 & touch {}; while :; do wait; done",
        ready.display()
    ));
    let mut p = Proc::spawn(
        elect(["run", "-d"])
            .arg(&dir)
            .args(["job", "--", "bash", "-c", &script]),
    );
    wait_file(&ready);
    let mut want = String::new();
    for (sig, name) in &signals {
        kill(p.pid(), *sig);
        want.push_str(name);
        want.push('\n');
        wait_until(&format!("the command's {name} trap"), || {
            std::fs::read_to_string(&log).is_ok_and(|l| l == want)
        });
        assert!(!p.exited(), "elect survived {name}");
    }
    kill(p.pid(), libc::SIGTERM);
    let (st, err) = p.finish();
    assert_eq!(st.code(), Some(7), "the command's status: {err}");
    assert!(err.is_empty(), "{err}");
}

/// SIGTSTP to elect stops the command and elect (so a shell sees the job
/// stopped); SIGCONT to elect continues both.
#[test]
fn a_stop_signal_stops_both_and_sigcont_continues_both() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let pidfile = tmp.path().join("pid");
    let script = format!("echo $$ > {}; exec sleep 1000", pidfile.display());
    let mut p = Proc::spawn(
        elect(["run", "-d"])
            .arg(&dir)
            .args(["job", "--", "sh", "-c", &script]),
    );
    let cmd: i32 = read_when_written(&pidfile).parse().unwrap();
    kill(p.pid(), libc::SIGTSTP);
    wait_until("the command and elect to stop", || {
        state(cmd) == 'T' && state(p.pid()) == 'T'
    });
    kill(p.pid(), libc::SIGCONT);
    wait_until("the command and elect to continue", || {
        state(cmd) == 'S' && state(p.pid()) == 'S'
    });
    kill(p.pid(), libc::SIGTERM);
    let (st, err) = p.finish();
    assert_eq!(st.signal(), Some(libc::SIGTERM), "{err}");
}

/// While waiting, a signal that a program does not die of (a terminal's
/// resize) changes nothing; one it dies of makes elect give up, killed by
/// it.
#[test]
fn while_waiting_a_harmless_signal_is_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let _holder = holder(&dir, "job", &[]);
    let mut waiter = Proc::spawn(elect(["run", "-d"]).arg(&dir).args(["job", "true"]));
    wait_until("the waiter to wait", || {
        has_thread(waiter.pid(), "elect-obtain")
    });
    for sig in [libc::SIGWINCH, libc::SIGURG] {
        kill(waiter.pid(), sig);
        wait_until("elect to take the signal", || !pending(waiter.pid(), sig));
    }
    assert!(!waiter.exited(), "still waiting");
    kill(waiter.pid(), libc::SIGUSR2);
    let (st, err) = waiter.finish();
    assert_eq!(st.signal(), Some(libc::SIGUSR2), "{err}");
    assert!(
        err.lines()
            .last()
            .is_some_and(|l| l.starts_with("elect: stopped by SIGUSR2 while waiting")),
        "{err}"
    );
}

/// Reads everything `p` writes on stdout into a string, on a thread.
fn screen(p: &mut Proc) -> Arc<Mutex<String>> {
    let seen = Arc::new(Mutex::new(String::new()));
    let mut out = p.child.stdout.take().unwrap();
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
    seen
}

/// Writes a script that runs `body` to `path`.
fn write_script(path: &Path, body: &str) {
    std::fs::write(path, body).unwrap();
}

/// Ctrl-C on `for i in 1 2 3; do elect run x -- ...; done` in a terminal
/// stops the loop, whether elect runs the command or waits for a ticket:
/// elect dies of SIGINT as the command would, so bash (which waits for a
/// child that got the same Ctrl-C to see how it ended) stops too. A bash
/// around the loop traps SIGINT, so that it lives on to write the status
/// it saw: 130, and no later iteration ran.
#[test]
fn ctrl_c_stops_a_shell_loop_of_elect_runs_while_running_and_while_waiting() {
    for waiting in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        let log = tmp.path().join("log");
        let ready = tmp.path().join("ready");
        let _holder = waiting.then(|| holder(&dir, "x", &[]));
        let looped = tmp.path().join("loop.sh");
        write_script(
            &looped,
            &format!(
                "for i in 1 2 3; do\n  echo \"start $i\" >> {log}\n  {ELECT} run -d {dir} x -- sh -c \"touch {ready}.$i; exec sleep 1000\"\ndone\necho 'after the loop' >> {log}\n",
                log = log.display(),
                dir = dir.display(),
                ready = ready.display()
            ),
        );
        let outer = tmp.path().join("outer.sh");
        write_script(
            &outer,
            &format!(
                "trap 'echo \"outer shell got SIGINT\" >> {log}' INT\nbash {looped}\necho \"loop status $?\" >> {log}\n",
                log = log.display(),
                looped = looped.display()
            ),
        );
        let mut term = in_terminal(&format!("exec bash {}", outer.display()));
        let seen = screen(&mut term);
        if waiting {
            // The display says it waits.
            wait_until("elect to wait", || {
                seen.lock().unwrap().contains("elect: waiting")
            });
        } else {
            wait_file(&ready.with_extension("1"));
        }
        let mut stdin = term.child.stdin.take().unwrap();
        stdin.write_all(b"\x03").unwrap();
        stdin.flush().unwrap();
        let next = ready.with_extension("2");
        wait_until("the loop to stop, or go on", || {
            term.exited() || next.exists()
        });
        assert!(!next.exists(), "waiting {waiting}: the loop went on");
        let st = term.wait();
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            text,
            "start 1\nouter shell got SIGINT\nloop status 130\n",
            "waiting {waiting}: {st:?}; on the terminal: {:?}",
            seen.lock().unwrap()
        );
        drop(stdin);
    }
}

/// What the queued signal's handler saw: its code and value, once
/// `QUEUED` is set (atomics: all a signal handler may touch).
static QUEUED: AtomicBool = AtomicBool::new(false);
static QUEUED_CODE: AtomicI32 = AtomicI32::new(0);
static QUEUED_VALUE: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_queued(_sig: i32, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let (code, value) = unsafe { ((*info).si_code, (*info).si_int()) };
    QUEUED_CODE.store(code, Ordering::SeqCst);
    QUEUED_VALUE.store(value, Ordering::SeqCst);
    QUEUED.store(true, Ordering::SeqCst);
}

/// Not a test of its own: the command of `a_queued_signal_keeps_its_value`,
/// which runs this test binary with only this test and
/// `ELECT_TEST_QUEUED_TO` set. It writes the code and value of the first
/// SIGRTMIN+3 it gets into that file.
#[test]
fn queued_signal_receiver() {
    let Some(out) = std::env::var_os("ELECT_TEST_QUEUED_TO") else {
        return;
    };
    let out = std::path::PathBuf::from(out);
    // SAFETY: a zeroed sigaction with a valid SA_SIGINFO handler.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_queued as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigaction(libc::SIGRTMIN() + 3, &sa, std::ptr::null_mut());
    }
    std::fs::write(out.with_extension("ready"), "").unwrap();
    wait_until("the queued signal", || QUEUED.load(Ordering::SeqCst));
    let code = QUEUED_CODE.load(Ordering::SeqCst);
    let value = QUEUED_VALUE.load(Ordering::SeqCst);
    std::fs::write(&out, format!("{code} {value}\n")).unwrap();
}

/// A signal sent with a value (sigqueue(3)) reaches the command with it.
#[test]
fn a_queued_signal_keeps_its_value() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let out = tmp.path().join("queued");
    let me = std::env::current_exe().unwrap();
    let mut p = Proc::spawn(
        elect(["run", "-d"])
            .arg(&dir)
            .args(["job", "--"])
            .arg(me)
            .args(["--exact", "queued_signal_receiver", "--test-threads=1"])
            .env("ELECT_TEST_QUEUED_TO", &out),
    );
    wait_file(&out.with_extension("ready"));
    let value = libc::sigval {
        sival_ptr: 4242 as *mut libc::c_void,
    };
    // SAFETY: sigqueue has no memory-safety preconditions.
    assert_eq!(
        unsafe { libc::sigqueue(p.pid(), libc::SIGRTMIN() + 3, value) },
        0
    );
    assert_eq!(read_when_written(&out), format!("{} 4242", libc::SI_QUEUE));
    let (st, err) = p.finish();
    assert_eq!(st.code(), Some(0), "{err}");
}
