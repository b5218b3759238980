//! `elect run` as a user runs it: exit statuses, the command's environment,
//! --no-wait, --timeout, -E, commands that cannot run, other failures, and
//! lost tickets. Refusals of bad usage (status 2) are in cli_bad_input.rs.

mod cli_support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cli_support::*;

#[test]
fn exit_status_is_the_commands() {
    let tmp = tempfile::tempdir().unwrap();
    for (script, want) in [("exit 0", 0), ("exit 3", 3), ("exit 255", 255)] {
        let out = output(
            elect(["run", "-d"])
                .arg(tmp.path())
                .args(["job", "sh", "-c", script]),
        );
        assert_eq!(code(out.status), want, "{script}");
    }
}

#[test]
fn command_killed_by_a_signal_kills_elect_by_the_same_signal() {
    use std::os::unix::process::ExitStatusExt;
    let tmp = tempfile::tempdir().unwrap();
    for sig in [libc::SIGKILL, libc::SIGTERM, libc::SIGUSR1, libc::SIGPIPE] {
        let script = format!("kill -{sig} $$");
        let out = output(
            elect(["run", "-d"])
                .arg(tmp.path())
                .args(["job", "--", "sh", "-c", &script]),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        // What a shell sees of the command itself: killed by the signal
        // (WIFSIGNALED), so that it reports 128 + N and a loop stops.
        assert_eq!(
            out.status.signal(),
            Some(sig),
            "{script}: elect dies of it, it does not exit 128+N: {:?} {err}",
            out.status
        );
        assert!(!out.status.core_dumped(), "no core file of elect's own");
        assert!(err.is_empty(), "{script}: {err}");
        assert!(!held(tmp.path(), "job", 0), "{script}: the slot is free");
    }
    // The exit status of a command that exits 130 (a shell that handled
    // Ctrl-C itself) stays an exit status.
    let out = output(
        elect(["run", "-d"])
            .arg(tmp.path())
            .args(["job", "--", "sh", "-c", "exit 130"]),
    );
    assert_eq!(out.status.code(), Some(130));
}

#[test]
fn the_command_gets_every_variable() {
    let tmp = tempfile::tempdir().unwrap();
    let print = "printf '%s\\n' \"$ELECT_NAME\" \"$ELECT_SLOT\" \"$ELECT_TICKETS\" \"$ELECT_DIR\" \"$ELECT_TOKEN\"";
    let run = |cmd: &mut std::process::Command| {
        let out = output(cmd.args(["-t", "3", "team.job", "--", "sh", "-c", print]));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    // A relative --dir is handed to the command as an absolute path.
    let first = run(elect(["run", "-d", "rel-run"]).current_dir(tmp.path()));
    let abs = tmp.path().join("rel-run");
    assert_eq!(first[0], "team.job");
    assert_eq!(first[1], "0");
    assert_eq!(first[2], "3");
    assert_eq!(Path::new(&first[3]), abs);
    let token1: u64 = first[4].parse().expect("ELECT_TOKEN is an integer");

    // ELECT_DIR chooses the run directory when --dir is absent.
    let second = run(elect(["run"]).env("ELECT_DIR", &abs));
    assert_eq!(Path::new(&second[3]), abs);
    let token2: u64 = second[4].parse().unwrap();
    assert!(token2 > token1, "tokens increase: {token1} then {token2}");

    // A second holder at once gets another slot.
    let dir = tmp.path().join("rel-run");
    let _h = holder(&dir, "team.job", &["-t", "3"]);
    let third = run(elect(["run", "-d"]).arg(&dir));
    assert_eq!(third[1], "1", "slot 0 is held, so slot 1");
}

#[test]
fn no_wait_and_conflict_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let ran = tmp.path().join("ran");
    let _h = holder(&dir, "job", &["--label", "the-holder"]);
    let touch = format!("touch {}", ran.display());

    let out = output(
        elect(["run", "-n", "-d"])
            .arg(&dir)
            .args(["job", "sh", "-c", &touch]),
    );
    assert_eq!(out.status.code(), Some(75));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("elect: no ticket of \"job\""), "{err}");
    assert!(err.contains("the-holder"), "names the holder: {err}");

    let out = output(
        elect(["run", "-n", "-E", "9", "-d"])
            .arg(&dir)
            .args(["job", "sh", "-c", &touch]),
    );
    assert_eq!(out.status.code(), Some(9));

    let out = output(
        elect(["run", "--timeout", "0", "-q", "-d"])
            .arg(&dir)
            .args(["job", "sh", "-c", &touch]),
    );
    assert_eq!(out.status.code(), Some(75), "--timeout 0 is --no-wait");
    assert!(
        out.stderr.is_empty(),
        "--quiet: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = output(
        elect(["run", "-n", "--conflict-exit-code=0", "-q", "-d"])
            .arg(&dir)
            .args(["job", "true"]),
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(!ran.exists(), "the command never ran without a ticket");
}

#[test]
fn timeout_gives_up_after_about_the_time_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let _h = holder(&dir, "job", &[]);
    for asked in [Duration::from_secs(1), Duration::from_secs(2)] {
        let start = Instant::now();
        let out = output(
            elect(["run", "-w", &format!("{}ms", asked.as_millis()), "-d"])
                .arg(&dir)
                .args(["job", "true"]),
        );
        let took = start.elapsed();
        assert_eq!(out.status.code(), Some(75));
        let (lo, hi) = (asked.mul_f64(0.8), asked.mul_f64(1.2));
        assert!(took >= lo && took <= hi, "asked {asked:?}, took {took:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("within"), "{err}");
    }
}

#[test]
fn timeout_obtains_when_the_holder_leaves() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let h = holder(&dir, "job", &[]);
    let mut waiter = Proc::spawn(
        elect(["run", "-w", "20s", "-d"])
            .arg(&dir)
            .args(["job", "true"]),
    );
    wait_until("the waiter to wait", || {
        has_thread(waiter.pid(), "elect-obtain")
    });
    drop(h);
    assert_eq!(waiter.wait().code(), Some(0));
}

#[test]
fn command_not_found_127_not_executable_126_before_any_wait() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    // The resource is held: a typo must fail at once, not after the wait.
    let _h = holder(&dir, "job", &[]);
    let script = tmp.path().join("script.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    let cases = [
        ("no-such-command-elect-test".to_string(), 127, "not found"),
        (
            tmp.path().join("missing").display().to_string(),
            127,
            "no such file",
        ),
        (script.display().to_string(), 126, "permission denied"),
        (tmp.path().display().to_string(), 126, "directory"),
    ];
    for (cmd, want, says) in cases {
        let start = Instant::now();
        let out = output(elect(["run", "-d"]).arg(&dir).args(["job", &cmd]));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(want), "{cmd}: {err}");
        assert!(
            err.starts_with("elect: cannot run") && err.contains(&cmd) && err.contains(says),
            "{err}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "did not wait for the ticket"
        );
    }
    // With a free ticket, an exec failure after obtaining maps the same way.
    let free = tmp.path().join("free");
    let out = output(elect(["run", "-d"]).arg(&free).args(["job", "true"]));
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn other_failures_exit_125() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let _h = holder(&dir, "job", &["-t", "2"]);
    let out = output(
        elect(["run", "-t", "3", "-d"])
            .arg(&dir)
            .args(["job", "true"]),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(
        err.starts_with("elect: ") && err.contains("--tickets 2"),
        "{err}"
    );

    // A run directory that is a regular file.
    let file = tmp.path().join("file");
    std::fs::write(&file, "").unwrap();
    let out = output(elect(["run", "-d"]).arg(&file).args(["job", "true"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(
        err.starts_with("elect: ") && err.contains(&*file.to_string_lossy()),
        "{err}"
    );

    // A run directory that is a symbolic link someone else could replace
    // (it sits in a directory anyone may write).
    let open = tmp.path().join("open");
    std::fs::create_dir(&open).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let link = open.join("link");
    std::os::unix::fs::symlink(&dir, &link).unwrap();
    let out = output(elect(["run", "-d"]).arg(&link).args(["other", "true"]));
    assert_eq!(
        out.status.code(),
        Some(125),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn lost_ticket_after_rm_rf_stops_the_command_and_exits_76() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let ready = tmp.path().join("ready");
    let termed = tmp.path().join("termed");
    let script = format!(
        "trap 'echo TERM > {}; kill $!; exit 0' TERM; {{ touch {}; exec sleep 1000; }} & wait",
        termed.display(),
        ready.display()
    );
    let mut p = Proc::spawn(
        elect(["run", "-d"])
            .arg(&dir)
            .args(["job", "sh", "-c", &script]),
    );
    wait_file(&ready);
    std::fs::remove_dir_all(&dir).unwrap();
    let (st, err) = p.finish();
    assert_eq!(st.code(), Some(76), "{err}");
    assert_eq!(
        read_when_written(&termed),
        "TERM",
        "the command got SIGTERM"
    );
    assert!(
        err.starts_with("elect: lost the ticket of \"job\""),
        "{err}"
    );
    assert!(err.contains("SIGTERM"), "{err}");
}

#[test]
fn a_ticket_lost_just_before_the_command_ends_still_gives_76() {
    // The command takes the ticket away itself and ends at once, before
    // elect's next look: the end of its work was not under the ticket.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let out = output(elect(["run", "-d"]).arg(&dir).args([
        "job",
        "sh",
        "-c",
        "rm -rf \"$ELECT_DIR/job\"",
    ]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(76), "{err}");
    assert!(err.contains("before the command"), "{err}");
}

#[test]
fn lost_ticket_kills_a_command_that_ignores_sigterm_after_the_grace() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let ready = tmp.path().join("ready");
    let script = format!("trap '' TERM; touch {}; exec sleep 1000", ready.display());
    let mut p = Proc::spawn(
        elect(["run", "--kill-after", "1s", "-d"])
            .arg(&dir)
            .args(["job", "sh", "-c", &script]),
    );
    wait_file(&ready);
    std::fs::remove_dir_all(&dir).unwrap();
    let start = Instant::now();
    let (st, err) = p.finish();
    assert_eq!(st.code(), Some(76), "{err}");
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "waited the grace period"
    );
    assert!(err.contains("SIGKILL"), "{err}");
}

#[test]
fn no_inherit_command_dies_with_elect_and_does_not_hold() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let pidfile = tmp.path().join("pid");
    let script = format!("echo $$ > {}; exec sleep 1000", pidfile.display());
    let mut p = Proc::spawn(
        elect(["run", "-o", "-d"])
            .arg(&dir)
            .args(["job", "sh", "-c", &script]),
    );
    let cmd: i32 = read_when_written(&pidfile).parse().unwrap();
    let fds = std::fs::read_dir(format!("/proc/{cmd}/fd")).unwrap();
    let slot = std::fs::canonicalize(slot_file(&dir, "job", 0)).unwrap();
    for fd in fds.flatten() {
        let target = std::fs::read_link(fd.path()).unwrap_or_default();
        assert_ne!(target, slot, "the command must not have the ticket");
    }
    kill(p.pid(), libc::SIGKILL);
    p.wait();
    wait_until("the command to die with elect", || dead(cmd));
    let out = output(elect(["run", "-n", "-d"]).arg(&dir).args(["job", "true"]));
    assert_eq!(out.status.code(), Some(0), "the slot is free");
}

/// The nice value and scheduling policy of the command that `elect run`,
/// itself started with `nice` and under `policy`, runs.
fn command_scheduling(dir: &Path, nice: i32, policy: i32) -> (i32, i32) {
    let mut cmd = elect(["run", "-d"]);
    cmd.arg(dir).args(["job", "--", "cat", "/proc/self/stat"]);
    // SAFETY: the closure calls only setpriority and sched_setscheduler,
    // system calls (async-signal-safe), with a sched_param on its stack.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            let param = libc::sched_param { sched_priority: 0 };
            if libc::setpriority(libc::PRIO_PROCESS, 0, nice) != 0
                || libc::sched_setscheduler(0, policy, &param) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = output(&mut cmd);
    assert_eq!(
        code(out.status),
        0,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stat = String::from_utf8(out.stdout).unwrap();
    // "pid (comm) state ...": field 19 is the nice value, 41 the policy.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    (
        fields[19 - 3].parse().unwrap(),
        fields[41 - 3].parse().unwrap(),
    )
}

#[test]
fn the_command_runs_with_elects_nice_value_and_scheduling_policy() {
    // Whatever elect does on its way (waiting, starting the command), the
    // command runs with the nice value and scheduling policy elect had.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    // SAFETY: getpriority has no preconditions (errno is not needed: the
    // value is only compared).
    let own = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    let lower = (own + 5).min(19);
    for (nice, policy) in [
        (own, libc::SCHED_OTHER),
        (lower, libc::SCHED_OTHER),
        (lower, libc::SCHED_BATCH),
        (lower, libc::SCHED_IDLE),
    ] {
        assert_eq!(
            command_scheduling(&dir, nice, policy),
            (nice, policy),
            "elect under nice {nice} and policy {policy}"
        );
    }
}

#[test]
fn a_command_started_after_a_wait_holds_the_ticket_even_with_elect_gone() {
    // Without a display to clear, the waiting thread starts the command the
    // moment the ticket comes: the command must get its variables, be
    // recorded, and hold the ticket itself, as one started after no wait.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let first = holder(&dir, "job", &[]);
    let first_token = status_json(&dir, "job")["resources"][0]["slots"][0]["token"]
        .as_u64()
        .unwrap();
    let vars = tmp.path().join("vars");
    let marker = tmp.path().join("second.ready");
    let script = format!(
        "printf '%s %s\\n' \"$ELECT_SLOT\" \"$ELECT_TOKEN\" > '{}'; {}",
        vars.display(),
        hold_script(&marker)
    );
    let mut waiter = Proc::spawn(
        elect(["run", "-q", "-d"])
            .arg(&dir)
            .args(["job", "--", "sh", "-c"])
            .arg(script),
    );
    wait_until("the waiter to wait", || {
        has_thread(waiter.pid(), "elect-obtain")
    });
    drop(first);
    wait_file(&marker);
    let got = read_when_written(&vars);
    let (slot, token) = got.trim().split_once(' ').unwrap();
    assert_eq!(slot, "0");
    let token: u64 = token.parse().unwrap();
    assert!(token > first_token, "{token} after {first_token}");
    let slot0 = || status_json(&dir, "job")["resources"][0]["slots"][0].clone();
    wait_until("the command's pid in the record", || {
        slot0()["command_pid"].is_u64()
    });
    assert_eq!(slot0()["token"].as_u64(), Some(token));
    assert_eq!(slot0()["pid"].as_i64(), Some(i64::from(waiter.pid())));
    let command = slot0()["command_pid"].as_i64().unwrap() as i32;
    // elect gone, its command still holds the ticket.
    kill(waiter.pid(), libc::SIGKILL);
    waiter.wait();
    assert!(alive(command));
    assert!(held(&dir, "job", 0), "the command holds the ticket");
    let busy = output(
        elect(["run", "-n", "-q", "-d"])
            .arg(&dir)
            .args(["job", "true"]),
    );
    assert_eq!(code(busy.status), 75);
    kill(command, libc::SIGTERM);
    wait_until("the command to end", || dead(command));
    wait_until("the ticket to be free", || !held(&dir, "job", 0));
}

/// Under `elect run NAME`, the command's own `elect run NAME` (same run
/// directory) would wait for its caller for ever: it fails at once (125),
/// names the ticket its caller holds and says what to do, and runs
/// nothing. A different name, a different directory, or variables left
/// over from a ticket released since, change nothing.
#[test]
fn a_nested_run_of_the_same_resource_fails_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let ran = tmp.path().join("ran");
    let inner = format!(
        "{ELECT} run -t \"$ELECT_TICKETS\" job -- touch {ran}; echo \"inner $?\"",
        ran = ran.display()
    );
    for tickets in ["1", "3"] {
        let start = Instant::now();
        let out = output(
            elect(["run", "-t", tickets, "-d"])
                .arg(&dir)
                .args(["job", "--", "sh", "-c", &inner]),
        );
        let (stdout, err) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(0), "-t {tickets}: {err}");
        assert_eq!(stdout.trim(), "inner 125", "-t {tickets}: {err}");
        assert!(
            err.starts_with("elect: \"job\" is already held by this command's caller")
                && err.contains("slot 0")
                && err.contains("ELECT_NAME")
                && err.contains("run the command directly"),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!ran.exists(), "-t {tickets}: the inner command ran");
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    // The whole-script idiom the message suggests runs the script once,
    // under the ticket.
    let script = tmp.path().join("job.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$ELECT_NAME\" = job ] || exec {ELECT} run job -- \"$0\" \"$@\"\necho \"ran $1 on slot $ELECT_SLOT\"\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = output(Command::new(&script).arg("x").env("ELECT_DIR", &dir));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ran x on slot 0\n");

    // Another resource, or the same name in another run directory, is
    // another ticket: it is taken as usual.
    let nested = |cmd: String| {
        output(
            elect(["run", "-d"])
                .arg(&dir)
                .args(["job", "--", "sh", "-c", &cmd]),
        )
    };
    let out = nested(format!("{ELECT} run other-job -- true"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = nested(format!("{ELECT} run -d {} job -- true", other.display()));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Variables of a ticket released since (a daemon started under
    // elect run -o, say) are stale: the slot is free or held with another
    // token, and the run takes its ticket as usual.
    let out = output(elect(["run", "-d"]).arg(&dir).args([
        "job",
        "--",
        "sh",
        "-c",
        "echo $ELECT_SLOT $ELECT_TOKEN",
    ]));
    let stale = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (slot, token) = stale.split_once(' ').unwrap();
    let later = || {
        output(
            elect(["run", "-n"])
                .args(["job", "--", "true"])
                .env("ELECT_DIR", &dir)
                .env("ELECT_NAME", "job")
                .env("ELECT_SLOT", slot)
                .env("ELECT_TOKEN", token),
        )
    };
    let out = later();
    assert_eq!(
        out.status.code(),
        Some(0),
        "free: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _holder = holder(&dir, "job", &[]);
    let out = later();
    assert_eq!(
        out.status.code(),
        Some(75),
        "held by another: no ticket, not a nesting error: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
