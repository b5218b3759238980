//! Process hygiene of `elect run`: after every one of its signal paths it
//! exits with the contract's status and leaves no zombie and no orphan.
//!
//! The test process makes itself a child subreaper
//! (`PR_SET_CHILD_SUBREAPER`), so that any descendant orphaned by elect's
//! death (its command, or what the command started) is re-parented to the
//! test process instead of to init, where it could not be seen. After each
//! path, once elect itself has been reaped, the test lists every process
//! whose chain of parents leads to it: a process still running there is an
//! orphan, a zombie is a child elect exited without reaping. Each path
//! must leave none; whatever is found is killed and reaped, so that the
//! check fails meaningfully and the next path starts clean. The first
//! checks prove the detector sees a real orphan and a real zombie.
//!
//! Paths: SIGINT, SIGTERM, SIGHUP and SIGQUIT while waiting (with and
//! without --timeout), and the same while the command runs (forwarded; the
//! command exits of it, with and without -o, and a shell that cleans up its
//! own background job); the lost ticket (rm -rf of the run directory),
//! ended by SIGTERM and, for a command that ignores SIGTERM, by SIGKILL
//! after -k; and SIGKILL of elect.
//!
//! SIGKILL of elect itself leaves the command running by design: the
//! command inherits the ticket, and goes on holding it until it exits; the
//! test proves it is then the one process left, and ends it. With
//! `-o/--no-inherit` the command does not hold the ticket and dies with
//! elect (PR_SET_PDEATHSIG): the test proves it is killed by SIGKILL.
//!
//! elect signals its command, not the command's own children: a command
//! that starts children must pass signals on to them (or `exec` its last
//! program, as the commands here do), exactly as under flock(1) or env(1).
//! That holds on a lost ticket too: SIGTERM and SIGKILL go to the command
//! alone, so a child it started and did not stop runs on, re-parented to
//! init, after elect exits 76.
//!
//! Everything runs in one test function, in order, because the subreaper
//! setting and the list of descendants belong to the whole test process.

mod cli_support;

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use cli_support::*;

/// One process of /proc.
#[derive(Debug, Clone)]
#[allow(dead_code)] // the fields are read through Debug in failure messages
struct Ps {
    pid: i32,
    ppid: i32,
    state: char,
    comm: String,
}

/// Every process of the system, as /proc tells it at this moment.
fn processes() -> Vec<Ps> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        // A process may end while it is read; it is then not listed.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) S ppid ...", where comm may itself hold ") ".
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let mut rest = stat[close + 1..].split_whitespace();
        let state = rest.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid = rest.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        all.push(Ps {
            pid,
            ppid,
            state,
            comm: stat[open + 1..close].to_string(),
        });
    }
    all
}

/// Every process whose chain of parents leads to this test process.
fn descendants() -> Vec<Ps> {
    let me = std::process::id() as i32;
    let all = processes();
    let mut tree: HashSet<i32> = HashSet::from([me]);
    let mut found = Vec::new();
    loop {
        let more: Vec<Ps> = all
            .iter()
            .filter(|p| !tree.contains(&p.pid) && tree.contains(&p.ppid))
            .cloned()
            .collect();
        if more.is_empty() {
            return found;
        }
        tree.extend(more.iter().map(|p| p.pid));
        found.extend(more);
    }
}

/// Reaps this process's child `pid` if it has ended; its wait status.
fn try_reap(pid: i32) -> Option<i32> {
    let mut status = 0;
    // SAFETY: waitpid writes one int.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    (r == pid).then_some(status)
}

/// Kills and reaps every descendant, however deep: children first die,
/// then their own children are re-parented here and die in turn.
fn kill_and_reap_all() {
    let me = std::process::id() as i32;
    let end = Instant::now() + DEADLINE;
    loop {
        let left = descendants();
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < end, "cannot clean up {left:?}");
        for p in &left {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(p.pid, libc::SIGKILL) };
            if p.ppid == me {
                try_reap(p.pid);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Asserts that nothing of `path` is left: no orphan, no zombie. What is
/// found is killed and reaped first, so that the next path starts clean.
fn assert_clean(path: &str) {
    let left = descendants();
    kill_and_reap_all();
    assert!(
        left.is_empty(),
        "{path}: left behind (state R/S = orphan, Z = zombie): {left:?}"
    );
}

/// Makes this process a child subreaper.
fn become_subreaper() {
    // SAFETY: prctl with integer arguments only.
    let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(r, 0, "prctl: {}", std::io::Error::last_os_error());
}

/// The detector sees an orphan re-parented here, and a zombie.
fn the_detector_sees_orphans_and_zombies(tmp: &Path) {
    let pidfile = tmp.join("orphan.pid");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "sleep 1000 >/dev/null 2>&1 & echo $! > {}",
            pidfile.display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success());
    let orphan: i32 = read_when_written(&pidfile).parse().unwrap();
    let me = std::process::id() as i32;
    let left = descendants();
    assert!(
        left.iter()
            .any(|p| p.pid == orphan && p.ppid == me && p.state != 'Z'),
        "the orphaned sleep {orphan} is re-parented here: {left:?}"
    );
    kill_and_reap_all();
    assert!(descendants().is_empty());

    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id() as i32;
    wait_until("true to end", || dead(pid));
    let left = descendants();
    assert!(
        left.iter().any(|p| p.pid == pid && p.state == 'Z'),
        "the unreaped child {pid} is a zombie: {left:?}"
    );
    child.wait().unwrap();
    assert_clean("control after reaping");
}

/// Starts `cmd` with its stderr in a file rather than a pipe: an orphan
/// that kept a pipe open would make reading it hang instead of the check
/// fail.
fn start(cmd: &mut Command, tmp: &Path) -> (Proc, std::path::PathBuf) {
    let errfile = tempfile::NamedTempFile::new_in(tmp)
        .unwrap()
        .into_temp_path();
    let child = cmd
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&errfile).unwrap())
        .spawn()
        .expect("spawn elect");
    (Proc { child }, errfile.keep().unwrap())
}

/// Waits for `p` to exit; its status and what it wrote on stderr.
fn finish(p: &mut Proc, errfile: &Path) -> (ExitStatus, String) {
    let st = p.wait();
    (st, std::fs::read_to_string(errfile).unwrap_or_default())
}

/// Like `hold_script`, a shell that writes `marker` and sleeps in the
/// background until SIGTERM, but that also reaps its background job before
/// it exits (`kill` alone would leave the sleep to be reaped by init, which
/// is the shell's doing, not elect's).
fn tidy_hold_script(marker: &Path) -> String {
    format!(
        "trap 'kill $!; wait $!; exit 143' TERM; {{ touch '{}'; exec sleep 1000; }} & wait",
        marker.display()
    )
}

/// SIGINT, SIGTERM, SIGHUP, SIGQUIT.
const SIGNALS: [i32; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

fn signals_while_waiting(tmp: &Path) {
    let dir = tmp.join("waiting");
    // The test process itself holds the only ticket: no other process.
    let _held = elect::Election::builder("job")
        .dir(&dir)
        .build()
        .unwrap()
        .try_obtain()
        .unwrap()
        .expect("a free ticket");
    let ran = tmp.join("ran");
    for sig in SIGNALS {
        for timeout in [None, Some("20s")] {
            let path = format!("signal {sig} while waiting, --timeout {timeout:?}");
            let mut cmd = elect(["run", "-d"]);
            cmd.arg(&dir);
            if let Some(t) = timeout {
                cmd.args(["-w", t]);
            }
            let (mut p, errfile) = start(cmd.args(["job", "--", "touch"]).arg(&ran), tmp);
            wait_until("elect to wait", || has_thread(p.pid(), "elect-obtain"));
            kill(p.pid(), sig);
            let (st, err) = finish(&mut p, &errfile);
            assert_eq!(code(st), 128 + sig, "{path}: {err}");
            assert!(!ran.exists(), "{path}: the command ran");
            assert_clean(&path);
        }
    }
}

fn signals_while_the_command_runs(tmp: &Path) {
    let dir = tmp.join("running");
    let mut n = 0;
    for sig in SIGNALS {
        for no_inherit in [false, true] {
            n += 1;
            let ready = tmp.join(format!("running{n}"));
            let path = format!("signal {sig} while the command runs, -o {no_inherit}");
            let mut cmd = elect(["run", "-d"]);
            cmd.arg(&dir);
            if no_inherit {
                cmd.arg("-o");
            }
            // No core file from SIGQUIT; exec, so the shell is the sleep.
            let script = format!("ulimit -c 0; touch {}; exec sleep 1000", ready.display());
            let (mut p, errfile) = start(cmd.args(["job", "--", "sh", "-c", &script]), tmp);
            wait_file(&ready);
            kill(p.pid(), sig);
            let (st, err) = finish(&mut p, &errfile);
            assert_eq!(code(st), 128 + sig, "{path}: the command died of it: {err}");
            assert_clean(&path);
        }
    }
    // A shell with a background job that it ends on SIGTERM.
    let ready = tmp.join("running-trap");
    let (mut p, errfile) = start(
        elect(["run", "-d"])
            .arg(&dir)
            .args(["job", "--", "sh", "-c", &tidy_hold_script(&ready)]),
        tmp,
    );
    wait_file(&ready);
    kill(p.pid(), libc::SIGTERM);
    let (st, err) = finish(&mut p, &errfile);
    assert_eq!(code(st), 143, "{err}");
    assert_clean("SIGTERM to a shell with a background job");
}

fn lost_ticket(tmp: &Path) {
    for (n, (extra, script, says)) in [
        (vec![], "hold", "SIGTERM"),
        (vec!["-o"], "hold", "SIGTERM"),
        (vec!["-k", "1s"], "ignore", "SIGKILL"),
        (vec!["-o", "-k", "1s"], "ignore", "SIGKILL"),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = tmp.join(format!("lost{n}"));
        let ready = tmp.join(format!("lost{n}.ready"));
        let script = match script {
            "hold" => tidy_hold_script(&ready),
            _ => format!("trap '' TERM; touch {}; exec sleep 1000", ready.display()),
        };
        let path = format!("lost ticket, {extra:?}, ended by {says}");
        let (mut p, errfile) = start(
            elect(["run", "-d"])
                .arg(&dir)
                .args(&extra)
                .args(["job", "--", "sh", "-c", &script]),
            tmp,
        );
        wait_file(&ready);
        std::fs::remove_dir_all(&dir).unwrap();
        let (st, err) = finish(&mut p, &errfile);
        assert_eq!(code(st), 76, "{path}: {err}");
        assert!(err.contains(says), "{path}: {err}");
        assert_clean(&path);
    }
}

/// Waits until this process's child `pid` has ended and reaps it; its
/// wait status. Until elect's death is complete the command is elect's
/// child, not yet this process's, and waitpid says ECHILD.
fn reap_when_ended(pid: i32) -> i32 {
    let mut status = None;
    wait_until(&format!("{pid} to end and be re-parented here"), || {
        status = try_reap(pid);
        status.is_some()
    });
    status.unwrap()
}

fn sigkill_of_elect(tmp: &Path) {
    let me = std::process::id() as i32;
    for no_inherit in [false, true] {
        let dir = tmp.join(format!("killed-{no_inherit}"));
        let pidfile = tmp.join(format!("killed-{no_inherit}.pid"));
        let script = format!("echo $$ > {}; exec sleep 1000", pidfile.display());
        let mut cmd = elect(["run", "-d"]);
        cmd.arg(&dir);
        if no_inherit {
            cmd.arg("-o");
        }
        let (mut p, errfile) = start(cmd.args(["job", "--", "sh", "-c", &script]), tmp);
        let command: i32 = read_when_written(&pidfile).parse().unwrap();
        kill(p.pid(), libc::SIGKILL);
        let (st, err) = finish(&mut p, &errfile);
        assert_eq!(code(st), 128 + libc::SIGKILL, "{err}");
        if no_inherit {
            // PR_SET_PDEATHSIG: the command is killed with elect.
            let st = reap_when_ended(command);
            assert!(
                libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGKILL,
                "-o: the command died of SIGKILL, status {st:#x}"
            );
            assert_clean("SIGKILL of elect -o");
        } else {
            // By design the command runs on, holding the ticket: it is
            // the one process left, re-parented here.
            wait_until("the command to be re-parented here", || {
                processes().iter().any(|p| p.pid == command && p.ppid == me)
            });
            let left = descendants();
            assert!(
                left.len() == 1 && left[0].pid == command && left[0].state != 'Z',
                "SIGKILL of elect: only the command {command} runs on: {left:?}"
            );
            assert!(
                kernel_holds(&slot_file(&dir, "job", 0)),
                "it holds the slot"
            );
            kill(command, libc::SIGKILL);
            let st = reap_when_ended(command);
            assert!(libc::WIFSIGNALED(st), "status {st:#x}");
            assert_clean("SIGKILL of elect, after ending its command");
            assert!(!kernel_holds(&slot_file(&dir, "job", 0)), "slot freed");
        }
    }
}

fn commands_that_exit_by_themselves(tmp: &Path) {
    let dir = tmp.join("plain");
    for (script, want) in [("exit 3", 3), ("kill -TERM $$", 143)] {
        let out = output(
            elect(["run", "-d"])
                .arg(&dir)
                .args(["job", "--", "sh", "-c", script]),
        );
        assert_eq!(code(out.status), want, "{script}");
        assert_clean(script);
    }
}

#[test]
fn elect_run_leaves_no_zombie_and_no_orphan_on_any_signal_path() {
    become_subreaper();
    let tmp = tempfile::tempdir().unwrap();
    assert_clean("before anything");
    the_detector_sees_orphans_and_zombies(tmp.path());
    commands_that_exit_by_themselves(tmp.path());
    signals_while_waiting(tmp.path());
    signals_while_the_command_runs(tmp.path());
    lost_ticket(tmp.path());
    sigkill_of_elect(tmp.path());
}
