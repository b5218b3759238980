//! `elect status` and `elect watch` look without locking anything: they
//! read the kernel's list of locks (`/proc/locks`), and where that list
//! cannot be read (a mount namespace that hides /proc) they fail with a
//! clear error (status 125) instead of trying a shared lock on each slot,
//! which made a concurrent `elect run -n` miss a free ticket.
//!
//! The checks that would fail if such a probe came back are deterministic:
//! under a hidden /proc the commands must exit 125 (a probe would answer),
//! and, where strace(1) is installed, a trace of their `flock` calls must be
//! empty, with /proc and without it. A loop racing `status` against
//! `run -n` would catch a probe only about once in a thousand tries.
//!
//! Hiding /proc needs root and unshare(1); tracing needs strace(1). Without
//! them a test prints `SKIPPED <test>: <reason>` and passes.

mod cli_support;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use cli_support::*;

/// Runs `cmd` in a new mount namespace whose /proc is an empty tmpfs, so
/// that `/proc/locks` is missing, as in a container that hides /proc.
const HIDE_PROC: &str = "mount -t tmpfs none /proc && exec \"$0\" \"$@\"";

/// Why /proc cannot be hidden here, if it cannot.
fn cannot_hide_proc() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root to mount over /proc in a new mount namespace".into());
    }
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount -t tmpfs none /proc && ! test -e /proc/locks")
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "unshare --mount cannot hide /proc here ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("unshare(1) cannot run: {e}")),
    }
}

/// Why `flock` calls cannot be traced here, if they cannot.
fn cannot_trace() -> Option<String> {
    let out = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=flock", "-o", "/dev/null", "true"])
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "strace cannot trace here ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("strace(1) is not installed ({e})")),
    }
}

/// `argv` (a program and its arguments) as a command, optionally in a mount
/// namespace without /proc, with the caller's run directory removed from
/// its environment as [`elect`] does.
fn command(argv: &[&std::ffi::OsStr], hide_proc: bool) -> Command {
    let mut cmd = if hide_proc {
        let mut c = Command::new("unshare");
        c.args(["--mount", "--propagation", "private", "sh", "-c", HIDE_PROC]);
        c.args(argv);
        c
    } else {
        let mut c = Command::new(argv[0]);
        c.args(&argv[1..]);
        c
    };
    cmd.env_remove("ELECT_DIR")
        .env_remove("ELECT_ETCD")
        .env_remove("ELECT_ETCD_PREFIX")
        .env_remove("XDG_RUNTIME_DIR")
        .stdin(Stdio::null());
    cmd
}

/// `elect ARGS -d DIR`, optionally without /proc, optionally under strace
/// writing its trace of `flock` (and, to show that the trace works,
/// `openat`) calls to `trace`.
fn elect_cmd(args: &[&str], dir: &Path, hide_proc: bool, trace: Option<&Path>) -> Command {
    let mut argv: Vec<&std::ffi::OsStr> = Vec::new();
    if let Some(t) = trace {
        argv.extend(
            ["strace", "-f", "-qq", "-e", "trace=flock,openat", "-o"]
                .iter()
                .map(std::ffi::OsStr::new),
        );
        argv.push(t.as_os_str());
    }
    argv.push(std::ffi::OsStr::new(ELECT));
    argv.extend(args.iter().map(std::ffi::OsStr::new));
    argv.push(std::ffi::OsStr::new("-d"));
    argv.push(dir.as_os_str());
    command(&argv, hide_proc)
}

/// The `flock` calls in a strace output file, after checking that the
/// trace saw the traced program open files at all.
fn flock_calls(trace: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(trace).expect("the trace");
    assert!(
        text.contains("openat("),
        "the trace shows no openat call: it traced nothing: {text}"
    );
    text.lines()
        .filter(|l| l.contains("flock("))
        .map(str::to_string)
        .collect()
}

/// Checks a run refused for want of /proc/locks: status 125, nothing on
/// stdout, and one line on stderr that names the list, says why it is
/// needed and how to fix it.
fn assert_refused(what: &str, status: ExitStatus, stdout: &[String], err: &str) {
    assert_eq!(code(status), 125, "{what}: {err}");
    assert!(stdout.is_empty(), "{what}: {stdout:?}");
    assert_eq!(err.lines().count(), 1, "{what}: {err}");
    for part in [
        "elect: cannot read /proc/locks: ",
        "held slots from free ones",
        "without locking them",
        "mount /proc",
    ] {
        assert!(err.contains(part), "{what}: no {part:?} in {err}");
    }
}

/// A run directory with `pool` (2 tickets, both slot files made, one held by
/// the returned `elect run`) and `idle` (1 ticket, free, its slot file
/// made). Returns the holder and the holder's slot.
fn populated(dir: &Path) -> (Proc, u32) {
    {
        let pool = elect::Election::builder("pool")
            .tickets(2)
            .dir(dir)
            .build()
            .unwrap();
        let a = pool.try_obtain().unwrap().expect("slot 0 free");
        let b = pool.try_obtain().unwrap().expect("slot 1 free");
        assert_ne!(a.slot(), b.slot());
        let idle = elect::Election::builder("idle").dir(dir).build().unwrap();
        drop(idle.try_obtain().unwrap().expect("idle is free"));
    }
    let h = holder(dir, "pool", &["-t", "2"]);
    let held: Vec<u32> = (0..2)
        .filter(|&i| kernel_holds(&slot_file(dir, "pool", i)))
        .collect();
    assert_eq!(held.len(), 1, "the holder holds one slot: {held:?}");
    (h, held[0])
}

/// The holder's pid and token in slot `slot` of `pool`, as status says.
fn holder_of(dir: &Path, slot: u32) -> (u64, u64) {
    let st = status_json(dir, "pool");
    let s = &st["resources"][0]["slots"][slot as usize];
    assert_eq!(s["held"], true, "{st}");
    (s["pid"].as_u64().unwrap(), s["token"].as_u64().unwrap())
}

#[test]
fn without_proc_locks_status_and_watch_refuse_and_disturb_nobody() {
    if let Some(why) = cannot_hide_proc() {
        eprintln!("SKIPPED without_proc_locks_status_and_watch_refuse_and_disturb_nobody: {why}");
        return;
    }
    let tracing = cannot_trace();
    if let Some(why) = &tracing {
        eprintln!("(the flock trace is left out: {why})");
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let (mut h, slot) = populated(&dir);
    let before = holder_of(&dir, slot);

    let asks: [&[&str]; 6] = [
        &["status", "pool"],
        &["status", "--json", "pool"],
        &["status"],
        &["status", "--json"],
        &["watch", "pool"],
        &["watch", "--json", "idle"],
    ];
    for (i, args) in asks.iter().enumerate() {
        let trace = tracing
            .is_none()
            .then(|| tmp.path().join(format!("trace.{i}")));
        // Spawned and awaited with a deadline: a watch that did not refuse
        // would run until interrupted.
        let mut p = Proc::spawn(&mut elect_cmd(args, &dir, true, trace.as_deref()));
        let stdout = p.stdout_lines();
        let (status, stderr) = p.finish();
        let stdout: Vec<String> = stdout.iter().collect();
        let what = format!("elect {} without /proc", args.join(" "));
        assert_refused(&what, status, &stdout, &stderr);
        if let Some(t) = &trace {
            assert_eq!(flock_calls(t), Vec::<String>::new(), "{what}");
        }
        // Each refusal left the holder as it was.
        assert!(!h.exited(), "{what}: the holder ended");
        assert!(kernel_holds(&slot_file(&dir, "pool", slot)), "{what}");
    }

    // A name never used is an empty list, with or without the kernel's
    // list: there is no slot to judge.
    let out = output(&mut elect_cmd(
        &["status", "--json", "never-used"],
        &dir,
        true,
        None,
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["resources"], serde_json::json!([]), "{st}");

    // The holder kept its ticket throughout, and the free ticket is still
    // free: nothing was taken from anyone.
    assert_eq!(holder_of(&dir, slot), before);
    let other = 1 - slot;
    assert!(!kernel_holds(&slot_file(&dir, "pool", other)));
    let run = output(elect(["run", "-n", "-t", "2", "-d"]).arg(&dir).args([
        "pool",
        "--",
        "sh",
        "-c",
        "echo $ELECT_SLOT",
    ]));
    assert_eq!(
        code(run.status),
        0,
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&run.stdout).trim(),
        other.to_string()
    );
    drop(h);
}

#[test]
fn status_and_watch_make_no_flock_call() {
    if let Some(why) = cannot_trace() {
        eprintln!("SKIPPED status_and_watch_make_no_flock_call: {why}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let (h, slot) = populated(&dir);

    for (i, args) in [
        &["status", "--json"][..],
        &["status", "pool"],
        &["status", "idle"],
    ]
    .iter()
    .enumerate()
    {
        let trace = tmp.path().join(format!("trace.{i}"));
        let out = output(&mut elect_cmd(args, &dir, false, Some(&trace)));
        let what = format!("elect {}", args.join(" "));
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(&trace).unwrap();
        assert!(
            text.contains("\"/proc/locks\""),
            "{what} reads the kernel's list: {text}"
        );
        assert_eq!(flock_calls(&trace), Vec::<String>::new(), "{what}");
    }

    // A watch that sees a holder come and go: `idle` is taken and given
    // back by this process while the traced watch looks.
    let trace = tmp.path().join("trace.watch");
    let pid_file = tmp.path().join("watch.pid");
    let mut argv: Vec<PathBuf> = ["strace", "-f", "-qq", "-e", "trace=flock,openat", "-o"]
        .iter()
        .map(PathBuf::from)
        .collect();
    argv.push(trace.clone());
    argv.extend(["sh", "-c", "echo $$ > \"$0\"; exec \"$@\""].map(PathBuf::from));
    argv.push(pid_file.clone());
    argv.push(PathBuf::from(ELECT));
    argv.extend(["watch", "--json", "idle", "-d"].map(PathBuf::from));
    argv.push(dir.clone());
    let argv: Vec<&std::ffi::OsStr> = argv.iter().map(|p| p.as_os_str()).collect();
    let mut w = Proc::spawn(&mut command(&argv, false));
    let events = w.stdout_lines();
    let said = w.stderr_lines();
    let watching = next_line(&said);
    assert!(watching.contains("idle"), "{watching}");
    let watch_pid: i32 = read_when_written(&pid_file).parse().unwrap();

    let idle = elect::Election::builder("idle").dir(&dir).build().unwrap();
    let t = idle.try_obtain().unwrap().expect("idle is free");
    let acquired = next_line(&events);
    assert!(acquired.contains("\"acquired\""), "{acquired}");
    drop(t);
    let released = next_line(&events);
    assert!(released.contains("\"released\""), "{released}");
    drop(idle);

    kill(watch_pid, libc::SIGINT);
    w.wait();
    assert_eq!(flock_calls(&trace), Vec::<String>::new(), "elect watch");

    // The holder was never disturbed.
    assert!(kernel_holds(&slot_file(&dir, "pool", slot)));
    drop(h);
}
