//! Helpers shared by the `cli_*` integration tests: running the built
//! `elect` binary, waiting for events with generous deadlines instead of
//! sleeping, signalling processes, and asking the kernel who holds a lock.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long any awaited event may take: generous, so that a loaded 2-core
/// CI machine never makes a test flaky.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// The built binary.
pub const ELECT: &str = env!("CARGO_BIN_EXE_elect");

/// `elect` with ARGS and an environment that does not leak the caller's run
/// directory into the test.
pub fn elect<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(ELECT);
    cmd.args(args)
        .env_remove("ELECT_DIR")
        .env_remove("ELECT_ETCD")
        .env_remove("ELECT_ETCD_PREFIX")
        .env_remove("XDG_RUNTIME_DIR")
        .stdin(Stdio::null());
    cmd
}

/// Runs `cmd` to the end and returns its output.
pub fn output(cmd: &mut Command) -> Output {
    cmd.output().expect("elect runs")
}

/// The exit code of `status`, or 128+N for a signal, as a shell reports it.
pub fn code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .expect("exited or signalled")
}

/// A child that is killed (SIGKILL) and reaped when dropped, so that a
/// failing test leaves no process behind.
pub struct Proc {
    pub child: Child,
}

impl Proc {
    /// Spawns `cmd` with stdout and stderr piped.
    pub fn spawn(cmd: &mut Command) -> Proc {
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        Proc { child }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits for the process to exit, at most [`DEADLINE`].
    pub fn wait(&mut self) -> ExitStatus {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st;
            }
            assert!(
                Instant::now() < end,
                "process {} did not exit in time",
                self.pid()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the exit and returns the status and everything on stderr.
    pub fn finish(&mut self) -> (ExitStatus, String) {
        let st = self.wait();
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            e.read_to_string(&mut err).expect("read stderr");
        }
        (st, err)
    }

    /// Whether it has exited (reaping it if so).
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_some()
    }

    /// Lines of stdout, read on a thread, as a channel.
    pub fn stdout_lines(&mut self) -> mpsc::Receiver<String> {
        lines(self.child.stdout.take().expect("piped stdout"))
    }

    /// Lines of stderr, read on a thread, as a channel.
    pub fn stderr_lines(&mut self) -> mpsc::Receiver<String> {
        lines(self.child.stderr.take().expect("piped stderr"))
    }
}

impl Drop for Proc {
    /// Stops a process still running: SIGTERM first, which `elect run`
    /// forwards to its command, then SIGKILL if it lingers.
    fn drop(&mut self) {
        if self.exited() {
            return;
        }
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if self.exited() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether process `pid` has ended (gone, or a zombie nobody reaped yet).
pub fn dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

/// Whether process `pid` has a thread named `name` (threads of `elect run`
/// are named after what they do, e.g. `elect-obtain` while it waits).
pub fn has_thread(pid: i32, name: &str) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks
        .flatten()
        .any(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
}

/// The lines read from `r` on a thread.
pub fn lines(r: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The next line from `rx` within [`DEADLINE`].
pub fn next_line(rx: &mpsc::Receiver<String>) -> String {
    rx.recv_timeout(DEADLINE)
        .expect("a line within the deadline")
}

/// Waits until `cond` holds, at most [`DEADLINE`]; panics with `what`.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until `path` exists.
pub fn wait_file(path: &Path) {
    wait_until(&format!("{} to exist", path.display()), || path.exists());
}

/// The trimmed contents of `path`, once it exists and is not empty.
pub fn read_when_written(path: &Path) -> String {
    let mut text = String::new();
    wait_until(&format!("{} to be written", path.display()), || {
        text = std::fs::read_to_string(path).unwrap_or_default();
        text.ends_with('\n')
    });
    text.trim().to_string()
}

/// Sends `sig` to `pid`.
pub fn kill(pid: i32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    let r = unsafe { libc::kill(pid, sig) };
    assert_eq!(
        r,
        0,
        "kill({pid}, {sig}): {}",
        std::io::Error::last_os_error()
    );
}

/// Whether process `pid` exists (a zombie counts until reaped).
pub fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// The slot file of `name`'s slot `slot` in `dir`.
pub fn slot_file(dir: &Path, name: &str, slot: u32) -> PathBuf {
    dir.join(name).join(format!("slot.{slot}"))
}

/// Whether the kernel says some process holds a flock on `path`: looks for
/// its device and inode in /proc/locks, which only observes, so it never
/// takes a lock from anyone.
pub fn kernel_holds(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    let dev = meta.dev();
    // SAFETY: major and minor are pure arithmetic.
    let (maj, min) = (libc::major(dev), libc::minor(dev));
    let wanted = format!("{maj:02x}:{min:02x}:{}", meta.ino());
    let locks = std::fs::read_to_string("/proc/locks").expect("/proc/locks");
    locks.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // "1: FLOCK  ADVISORY  WRITE 123 08:01:4567 0 EOF", possibly with "->"
        let f: Vec<&str> = f.into_iter().filter(|x| *x != "->").collect();
        f.get(1) == Some(&"FLOCK") && f.get(5).is_some_and(|id| same_id(id, &wanted))
    })
}

/// Compares `maj:min:ino` ids, ignoring zero-padding of the hex numbers.
fn same_id(a: &str, b: &str) -> bool {
    let norm = |s: &str| -> Option<(u64, u64, u64)> {
        let mut p = s.split(':');
        Some((
            u64::from_str_radix(p.next()?, 16).ok()?,
            u64::from_str_radix(p.next()?, 16).ok()?,
            p.next()?.parse().ok()?,
        ))
    };
    norm(a).is_some() && norm(a) == norm(b)
}

/// `elect status --json` of `name` in `dir`, parsed.
pub fn status_json(dir: &Path, name: &str) -> serde_json::Value {
    let out = output(elect(["status", "--json", "-d"]).arg(dir).arg(name));
    assert!(
        out.status.success(),
        "status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status --json is JSON")
}

/// Whether `status --json` says slot `slot` of `name` is held.
pub fn held(dir: &Path, name: &str, slot: usize) -> bool {
    status_json(dir, name)["resources"][0]["slots"][slot]["held"] == true
}

/// A shell command line that, run under elect, writes `marker` and then
/// sleeps until killed (the `sleep` in the background, so that the shell's
/// traps run at once; it is killed along with the shell).
///
/// The background job writes `marker` itself: a SIGTERM that reaches the
/// shell just after it forked the job, before the child had dropped the
/// inherited trap, was caught by the child and lost at its exec, and left
/// the `sleep` running (holding the test's pipes) once the shell exited.
pub fn hold_script(marker: &Path) -> String {
    format!(
        "trap 'kill $! 2>/dev/null; exit 143' TERM; {{ touch '{}'; exec sleep 1000; }} & wait",
        marker.display()
    )
}

/// Starts `elect run` (with `extra` options) holding `name` in `dir` until
/// stopped; returns once its command runs.
pub fn holder(dir: &Path, name: &str, extra: &[&str]) -> Proc {
    let marker = dir.with_extension(format!("{name}.ready"));
    let _ = std::fs::remove_file(&marker);
    let p = Proc::spawn(
        elect(["run", "-d"])
            .arg(dir)
            .args(extra)
            .args([name, "--", "sh", "-c"])
            .arg(hold_script(&marker)),
    );
    wait_file(&marker);
    p
}
