//! Shared helpers of the integration tests: worker processes (the test
//! binary itself, re-run with a role in its environment), a line protocol
//! to talk to them, an independent observer of who held what and when
//! (CLOCK_MONOTONIC timestamps in an O_APPEND log), and probes of the
//! kernel's view (`/proc/<pid>/fdinfo`, `/proc/<pid>/task/*/syscall`,
//! `/proc/self/fd`, `/proc/self/task`).
//!
//! Every test file that spawns workers declares the entry point:
//!
//! ```ignore
//! #[test]
//! #[ignore = "the body of worker processes; the other tests run it"]
//! fn worker_process() {
//!     support::worker_main();
//! }
//! ```

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use elect::{Election, Error};

/// The name of the `#[test]` function that runs [`worker_main`].
pub const ENTRY: &str = "worker_process";

/// How long any awaited event may take before the test fails. Generous on
/// purpose: the events come within milliseconds on an idle machine, and a
/// loaded CI machine must not turn a slow event into a failure.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// What begins a line of the worker protocol on a worker's stdout.
const MARK: &str = "[worker] ";

const ROLE: &str = "ELECT_TEST_ROLE";
const DIR: &str = "ELECT_TEST_DIR";
const NAME: &str = "ELECT_TEST_NAME";
const TICKETS: &str = "ELECT_TEST_TICKETS";
const LABEL: &str = "ELECT_TEST_LABEL";
const MODE: &str = "ELECT_TEST_MODE";
const LOG: &str = "ELECT_TEST_LOG";
const OBSERVER: &str = "ELECT_TEST_OBSERVER";
const ROUNDS: &str = "ELECT_TEST_ROUNDS";
const HOLD_US: &str = "ELECT_TEST_HOLD_US";

/// Serialises the tests of one binary that need it. A ticket released by
/// this process while another thread of it is spawning a child stays held
/// until that child calls exec: between fork and exec the child holds
/// copies of every descriptor, and a flock lasts until the last copy is
/// closed. Tests that expect a release in this process to free a slot (or
/// end a participant's membership) at once take this lock for their whole
/// run, so that no other test spawns a worker meanwhile.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a worker process does.
#[derive(Debug, Clone)]
pub enum Role {
    /// Obtains one ticket (`mode`: `obtain`, `try`, or `timeout:<ms>`),
    /// says `HELD <slot> <token>` (or `NONE`, or `ERROR <error>`), then
    /// obeys stdin: `intact` answers `INTACT <bool>`, `release` releases and
    /// answers `RELEASED`, `obtain` (after a release) obtains again and says
    /// `HELD` again; end of input exits.
    Hold { mode: &'static str },
    /// Says `READY`, waits for a line on stdin, then `rounds` times obtains
    /// (`mode` `obtain`) or tries once (`mode` `try`), and for each ticket
    /// won logs enter and exit around a hold of `hold_us` into `log`,
    /// counting live holders under a flock on `observer`. Says `DONE <wins>`.
    Contend {
        mode: &'static str,
        log: PathBuf,
        observer: PathBuf,
        rounds: u32,
        hold_us: u64,
    },
}

/// A worker process and its output.
pub struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    transcript: Vec<String>,
    pub pid: u32,
}

impl Worker {
    /// Starts a worker for resource `name` with `tickets` in run directory
    /// `dir`.
    pub fn spawn(role: Role, dir: &Path, name: &str, tickets: u32) -> Worker {
        Self::spawn_labelled(role, dir, name, tickets, None)
    }

    /// Like [`spawn`](Self::spawn), with a holder label.
    pub fn spawn_labelled(
        role: Role,
        dir: &Path,
        name: &str,
        tickets: u32,
        label: Option<&str>,
    ) -> Worker {
        let exe = std::env::current_exe().expect("the test binary");
        let mut cmd = Command::new(exe);
        cmd.args([
            "--ignored",
            "--exact",
            ENTRY,
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR, dir)
        .env(NAME, name)
        .env(TICKETS, tickets.to_string())
        .env_remove("ELECT_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        if let Some(l) = label {
            cmd.env(LABEL, l);
        }
        match role {
            Role::Hold { mode } => {
                cmd.env(ROLE, "hold").env(MODE, mode);
            }
            Role::Contend {
                mode,
                log,
                observer,
                rounds,
                hold_us,
            } => {
                cmd.env(ROLE, "contend")
                    .env(MODE, mode)
                    .env(LOG, log)
                    .env(OBSERVER, observer)
                    .env(ROUNDS, rounds.to_string())
                    .env(HOLD_US, hold_us.to_string());
            }
        }
        let mut child = cmd.spawn().expect("cannot start a worker process");
        let (tx, lines) = channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx2.send(format!("stderr: {line}")).is_err() {
                    break;
                }
            }
        });
        Worker {
            pid: child.id(),
            stdin: child.stdin.take(),
            child,
            lines,
            transcript: Vec::new(),
        }
    }

    /// Waits (up to [`DEADLINE`]) for the protocol line `<MARK><word> ...` and
    /// returns what follows the word. An unexpected `ERROR` line, the end of
    /// the output or the deadline fails the test with the transcript.
    pub fn expect(&mut self, word: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.transcript.push(line.clone());
                    // The harness may print before our marker on one line.
                    let said = match line.find(MARK) {
                        Some(at) if !line.starts_with("stderr: ") => &line[at + MARK.len()..],
                        _ => continue,
                    };
                    if let Some(rest) = said.strip_prefix(word)
                        && (rest.is_empty() || rest.starts_with(' '))
                    {
                        return rest.trim_start().to_string();
                    }
                    if said.starts_with("ERROR") {
                        panic!(
                            "worker {} failed while we waited for {word}:\n{}",
                            self.pid,
                            self.transcript.join("\n")
                        );
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "worker {} did not say {word} within {DEADLINE:?}:\n{}",
                    self.pid,
                    self.transcript.join("\n")
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "worker {} ended before saying {word} ({:?}):\n{}",
                    self.pid,
                    self.child.try_wait(),
                    self.transcript.join("\n")
                ),
            }
        }
    }

    /// Whether the worker has said `word` by now, without waiting: reads
    /// what it printed so far. A word seen here is not seen again by
    /// [`expect`](Self::expect).
    pub fn has_said(&mut self, word: &str) -> bool {
        while let Ok(line) = self.lines.try_recv() {
            self.transcript.push(line);
        }
        self.transcript.iter().any(|line| {
            line.find(MARK).is_some_and(|at| {
                !line.starts_with("stderr: ")
                    && line[at + MARK.len()..]
                        .strip_prefix(word)
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
            })
        })
    }

    /// Sends a signal to the worker. SIGSTOP returns once every thread of
    /// the worker has stopped, and SIGCONT once none is stopped: the kernel
    /// wakes one thread for a signal sent to a process, and on a busy
    /// machine another thread can run on (and take a ticket) until the
    /// first has been scheduled and stopped the rest.
    pub fn signal(&self, sig: i32) {
        // SAFETY: plain syscall on our own child, not yet reaped.
        let rc = unsafe { libc::kill(self.pid as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill -{sig} {}", self.pid);
        let stopped = |states: Vec<u8>| states.iter().filter(|&&s| s == b'T').count();
        match sig {
            libc::SIGSTOP => wait_until(&format!("every thread of {} stopped", self.pid), || {
                let states = task_states(self.pid);
                let n = states.len();
                n > 0 && stopped(states) == n
            }),
            libc::SIGCONT => wait_until(&format!("no thread of {} stopped", self.pid), || {
                stopped(task_states(self.pid)) == 0
            }),
            _ => {}
        }
    }

    /// Waits for `HELD <slot> <token>` and returns slot and token.
    pub fn expect_held(&mut self) -> (u32, u64) {
        let rest = self.expect("HELD");
        let mut it = rest.split_whitespace().map(|w| w.parse::<u64>().unwrap());
        (it.next().unwrap() as u32, it.next().unwrap())
    }

    /// Sends one line to the worker's stdin.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{line}").expect("the worker's stdin");
        stdin.flush().unwrap();
    }

    /// Kills the worker with SIGKILL and reaps it: once this returns, the
    /// kernel has closed every descriptor it had, so its flocks are gone.
    pub fn kill(&mut self) {
        // SAFETY: plain syscall on our own child, not yet reaped.
        let rc = unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGKILL) };
        assert_eq!(rc, 0, "kill {}", self.pid);
        let status = self.child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    }

    /// Closes stdin (which tells a holding worker to exit) and waits for the
    /// worker to end, within [`DEADLINE`].
    pub fn finish(mut self) -> ExitStatus {
        self.stdin = None;
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Collect what is left for the message, if any.
                while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                    self.transcript.push(line);
                }
                assert!(
                    status.success(),
                    "worker {} exited with {status:?}:\n{}",
                    self.pid,
                    self.transcript.join("\n")
                );
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "worker {} did not exit within {DEADLINE:?}:\n{}",
                self.pid,
                self.transcript.join("\n")
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// An election of `tickets` tickets for `name` in the run directory `run`.
pub fn election(run: &Path, name: &str, tickets: u32) -> Election {
    Election::builder(name)
        .tickets(tickets)
        .dir(run)
        .build()
        .unwrap()
}

/// Holds every slot of `name` from worker processes, indexed by slot.
pub fn hold_all(run: &Path, name: &str, tickets: u32) -> Vec<Worker> {
    let mut held: Vec<(u32, Worker)> = (0..tickets)
        .map(|_| {
            let mut w = Worker::spawn(Role::Hold { mode: "obtain" }, run, name, tickets);
            let (slot, _) = w.expect_held();
            (slot, w)
        })
        .collect();
    held.sort_by_key(|h| h.0);
    held.into_iter().map(|h| h.1).collect()
}

/// Polls `cond` every few milliseconds until it holds; fails the test after
/// [`DEADLINE`]. For conditions the kernel does not announce (a process
/// taking its place in the line).
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {DEADLINE:?} waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

// The kernel's view of one process's flocks is read from its own /proc
// entries, not from /proc/locks: a reader of /proc/locks gets it a page at
// a time, and while other processes lock and unlock, an entry can be
// skipped, again and again for a long-lived lock on a busy machine.

/// The flocks process `pid` holds, as (inode, exclusive), from the `lock:`
/// lines of `/proc/<pid>/fdinfo/*`.
pub fn locks_of(pid: u32) -> Vec<(u64, bool)> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        for line in text.lines().filter(|l| l.starts_with("lock:")) {
            // `lock:\t1: FLOCK  ADVISORY  WRITE 4242 fe:00:123 0 EOF`
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.get(2) != Some(&"FLOCK") || f.len() < 7 {
                continue;
            }
            if let Some(ino) = f[6].rsplit(':').next().and_then(|i| i.parse().ok()) {
                out.push((ino, f[4] == "WRITE"));
            }
        }
    }
    out
}

/// The state letters (`R`, `S`, `T`, ...) of the threads of process `pid`,
/// from `/proc/<pid>/task/*/stat`.
pub fn task_states(pid: u32) -> Vec<u8> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| {
            let stat = std::fs::read(task.path().join("stat")).ok()?;
            // `tid (comm) S ...`: the state follows the last ')'.
            let end = stat.iter().rposition(|&b| b == b')')?;
            stat.get(end + 2).copied()
        })
        .collect()
}

/// The inodes that threads of process `pid` are blocked on in flock(2),
/// from `/proc/<pid>/task/*/syscall` and the descriptor it names.
pub fn blocked_of(pid: u32) -> Vec<u64> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for task in tasks.flatten() {
        let Ok(text) = std::fs::read_to_string(task.path().join("syscall")) else {
            continue;
        };
        let mut f = text.split_whitespace();
        if f.next().and_then(|n| n.parse::<libc::c_long>().ok()) != Some(libc::SYS_flock) {
            continue;
        }
        let Some(fd) = f
            .next()
            .and_then(|a| i64::from_str_radix(a.trim_start_matches("0x"), 16).ok())
        else {
            continue;
        };
        if let Ok(meta) = std::fs::metadata(format!("/proc/{pid}/fd/{fd}")) {
            out.push(meta.ino());
        }
    }
    out
}

/// A worker that waits for a ticket of `name`.
pub fn waiter(run: &Path, name: &str, tickets: u32) -> Worker {
    let mut w = Worker::spawn(Role::Hold { mode: "obtain" }, run, name, tickets);
    w.expect("START");
    w
}

/// An inotify instance (non-blocking) watching the directory `dir` for the
/// events in `mask`.
pub fn watch_dir(dir: &Path, mask: u32) -> std::os::fd::OwnedFd {
    use std::os::fd::{AsRawFd, FromRawFd};
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
    // SAFETY: plain system calls; the results are checked.
    let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    assert!(fd >= 0);
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    // SAFETY: a valid C string and an inotify descriptor.
    assert!(unsafe { libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), mask) } >= 0);
    fd
}

/// The names of slot files in the events queued on the inotify instance
/// `fd`, read without waiting.
pub fn slot_events(fd: &std::os::fd::OwnedFd) -> Vec<String> {
    use std::os::fd::AsRawFd;
    let mut buf = [0u8; 4096];
    // SAFETY: buf is valid for its length; the descriptor is non-blocking.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    let mut names = Vec::new();
    let mut rest = &buf[..n.max(0) as usize];
    let header = std::mem::size_of::<libc::inotify_event>();
    while rest.len() >= header {
        // SAFETY: at least one header's worth of bytes, read unaligned.
        let ev: libc::inotify_event = unsafe { std::ptr::read_unaligned(rest.as_ptr().cast()) };
        let name = String::from_utf8_lossy(&rest[header..header + ev.len as usize])
            .trim_end_matches('\0')
            .to_string();
        if name.starts_with("slot.") {
            names.push(name);
        }
        rest = &rest[header + ev.len as usize..];
    }
    names
}

/// The inode of `path`.
pub fn ino(path: &Path) -> u64 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .ino()
}

/// Whether process `pid` holds a flock (exclusive or shared) on `path`.
pub fn holds(pid: u32, path: &Path, exclusive: bool) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    locks_of(pid).contains(&(meta.ino(), exclusive))
}

/// Waits until process `pid` holds a flock on `path` (every participant
/// holds its resource directory shared; a waiter holds its place in the
/// line exclusively).
pub fn wait_holds(pid: u32, path: &Path, exclusive: bool) {
    wait_until(&format!("{pid} holds a lock on {}", path.display()), || {
        holds(pid, path, exclusive)
    });
}

/// No lock of this process is left on resource directory `res` or its
/// files (the line's included), held or awaited, and no place of it is left
/// in the line; `but_membership`: except the shared lock on `res` itself
/// that a live election keeps.
pub fn assert_no_lock_of_ours(res: &Path, but_membership: bool) {
    let me = std::process::id();
    let mut ours: Vec<u64> = std::fs::read_dir(res)
        .unwrap()
        .map(|e| ino(&e.unwrap().path()))
        .collect();
    ours.extend(line_places(res).iter().map(|(path, _)| ino(path)));
    ours.push(ino(res));
    let held: Vec<_> = locks_of(me)
        .into_iter()
        .filter(|l| ours.contains(&l.0) && !(but_membership && *l == (ino(res), false)))
        .collect();
    assert!(held.is_empty(), "locks left behind: {held:?}");
    let awaited: Vec<_> = blocked_of(me)
        .into_iter()
        .filter(|i| ours.contains(i))
        .collect();
    assert!(awaited.is_empty(), "still waiting for {awaited:?}");
    let places: Vec<_> = live_places(res)
        .into_iter()
        .filter(|(_, pid)| *pid == me)
        .collect();
    assert!(places.is_empty(), "places left in the line: {places:?}");
}

/// The places in the line of resource directory `res`, oldest first: the
/// files `line/<20-digit ns>.<pid>`, with the pid in their names (live
/// waiters' places, and stale ones not yet removed).
pub fn line_places(res: &Path) -> Vec<(PathBuf, u32)> {
    let Ok(dir) = std::fs::read_dir(res.join("line")) else {
        return Vec::new();
    };
    let mut places: Vec<(String, PathBuf, u32)> = dir
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let (ns, pid) = name.split_once('.')?;
            (ns.len() == 20 && ns.bytes().all(|b| b.is_ascii_digit())).then_some(())?;
            let pid = pid.parse().ok()?;
            Some((name, e.path(), pid))
        })
        .collect();
    places.sort();
    places
        .into_iter()
        .map(|(_, path, pid)| (path, pid))
        .collect()
}

/// The places in the line of `res` that process `pid` holds (an exclusive
/// flock on the file), oldest first: one per waiting thread.
pub fn places_of(pid: u32, res: &Path) -> Vec<PathBuf> {
    line_places(res)
        .into_iter()
        .filter(|(path, p)| *p == pid && holds(pid, path, true))
        .map(|(path, _)| path)
        .collect()
}

/// Waits until process `pid` stands in the line of `res` (holds a place
/// there) and returns its place. This is how a test knows that a worker
/// really waits.
pub fn wait_in_line(pid: u32, res: &Path) -> PathBuf {
    let mut place = None;
    wait_until(
        &format!("{pid} stands in the line of {}", res.display()),
        || {
            place = places_of(pid, res).into_iter().next();
            place.is_some()
        },
    );
    place.unwrap()
}

/// Waits until process `pid` stands first in the line of `res`: it holds
/// its place, and no place (live or stale) is before it.
pub fn wait_first_in_line(pid: u32, res: &Path) {
    wait_until(
        &format!("{pid} stands first in the line of {}", res.display()),
        || {
            line_places(res)
                .first()
                .is_some_and(|(path, p)| *p == pid && holds(pid, path, true))
        },
    );
}

/// CLOCK_MONOTONIC in nanoseconds: one clock for every process of the host.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Open descriptors of this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Threads of this process.
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// One acquisition seen by the observer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    pub pid: u32,
    pub slot: u32,
    pub token: u64,
    /// CLOCK_MONOTONIC after the ticket was obtained.
    pub enter: u64,
    /// CLOCK_MONOTONIC before the ticket was released.
    pub exit: u64,
    /// Live holders counted under the observer lock, this one included.
    pub live: u32,
}

/// Reads the observer's log: every enter must be matched by an exit.
pub fn read_log(path: &Path) -> Vec<Hold> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut open: HashMap<(u32, u64), Hold> = HashMap::new();
    let mut done = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| -> u64 {
            f.get(i)
                .and_then(|w| w.parse().ok())
                .unwrap_or_else(|| panic!("bad log line {line:?}"))
        };
        let (pid, slot, token) = (num(2) as u32, num(3) as u32, num(4));
        match f[0] {
            "enter" => {
                let h = Hold {
                    pid,
                    slot,
                    token,
                    enter: num(1),
                    exit: 0,
                    live: num(5) as u32,
                };
                assert!(open.insert((pid, token), h).is_none(), "{line:?} twice");
            }
            "exit" => {
                let mut h = open
                    .remove(&(pid, token))
                    .unwrap_or_else(|| panic!("{line:?} without enter"));
                assert_eq!(h.slot, slot, "{line:?}");
                h.exit = num(1);
                done.push(h);
            }
            other => panic!("bad log line kind {other:?}"),
        }
    }
    assert!(open.is_empty(), "entered but never left: {open:?}");
    done.sort_by_key(|h| h.enter);
    done
}

/// Checks a log against the election's promises and returns the most
/// holders seen at once:
/// * at no instant more than `tickets` holders (counting ties as overlap),
///   and never two in one slot;
/// * the observer's live count never above `tickets`;
/// * tokens unique, and a hold that ended before another began has the
///   smaller token.
pub fn check_exclusion(holds: &[Hold], tickets: u32) -> u32 {
    // Enters sort before exits at equal times: a tie counts as overlap.
    let mut events: Vec<(u64, u8, usize)> = Vec::new();
    for (i, h) in holds.iter().enumerate() {
        assert!(h.enter <= h.exit, "{h:?}");
        assert!(h.slot < tickets, "slot out of range: {h:?}");
        assert!(
            h.live >= 1 && h.live <= tickets,
            "observer counted {} live holders with {tickets} tickets: {h:?}",
            h.live
        );
        events.push((h.enter, 0, i));
        events.push((h.exit, 1, i));
    }
    events.sort();
    let mut slots: BTreeMap<u32, usize> = BTreeMap::new();
    let mut most = 0;
    for (_, kind, i) in events {
        let h = holds[i];
        if kind == 0 {
            if let Some(other) = slots.insert(h.slot, i) {
                panic!("slot {} shared by {:?} and {h:?}", h.slot, holds[other]);
            }
            most = most.max(slots.len() as u32);
            assert!(
                slots.len() as u32 <= tickets,
                "{} holders at once with {tickets} tickets: {:?}",
                slots.len(),
                slots.values().map(|&j| holds[j]).collect::<Vec<_>>()
            );
        } else {
            assert_eq!(slots.remove(&h.slot), Some(i));
        }
    }
    let tokens: HashSet<u64> = holds.iter().map(|h| h.token).collect();
    assert_eq!(tokens.len(), holds.len(), "a token was issued twice");
    for a in holds {
        for b in holds {
            if a.exit < b.enter {
                assert!(
                    a.token < b.token,
                    "token went back: {a:?} ended before {b:?} began"
                );
            }
        }
    }
    most
}

/// The body of a worker process; returns at once in a normal test run.
pub fn worker_main() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("worker without {k}"));
    let mut b = Election::builder(var(NAME))
        .dir(var(DIR))
        .tickets(var(TICKETS).parse().unwrap());
    if let Ok(l) = std::env::var(LABEL) {
        b = b.label(l);
    }
    let election = b.build().expect("a valid election");
    match role.as_str() {
        "hold" => hold(&election, &var(MODE)),
        "contend" => contend(
            &election,
            &var(MODE),
            Path::new(&var(LOG)),
            Path::new(&var(OBSERVER)),
            var(ROUNDS).parse().unwrap(),
            Duration::from_micros(var(HOLD_US).parse().unwrap()),
        ),
        other => panic!("unknown role {other}"),
    }
    // Skip the test harness's report: the parent reads our stdout.
    std::process::exit(0);
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{MARK}{line}").unwrap();
    out.flush().unwrap();
}

fn say_error(e: &Error) {
    say(&format!("ERROR {e:?} | {e}"));
}

fn hold(election: &Election, mode: &str) {
    say(&format!("START {}", std::process::id()));
    let got = match mode {
        "obtain" => election.obtain().map(Some),
        "try" => election.try_obtain(),
        m => {
            let ms: u64 = m
                .strip_prefix("timeout:")
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("bad mode {m}"));
            election.obtain_timeout(Duration::from_millis(ms))
        }
    };
    let ticket = match got {
        Ok(Some(t)) => t,
        Ok(None) => return say("NONE"),
        Err(e) => return say_error(&e),
    };
    say(&format!("HELD {} {}", ticket.slot(), ticket.token()));
    let mut ticket = Some(ticket);
    for line in std::io::stdin().lock().lines() {
        match line.unwrap().as_str() {
            "intact" => say(&format!(
                "INTACT {}",
                ticket.as_ref().expect("held").is_held()
            )),
            "release" => {
                ticket.take().expect("held").release();
                say("RELEASED");
            }
            "obtain" => match election.obtain() {
                Ok(t) => {
                    say(&format!("HELD {} {}", t.slot(), t.token()));
                    ticket = Some(t);
                }
                Err(e) => return say_error(&e),
            },
            other => panic!("unknown command {other}"),
        }
    }
}

/// Adds `delta` to the live count kept in `observer`, under a flock on it;
/// returns the new count.
fn observe(observer: &Path, delta: i64) -> u32 {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(observer)
        .unwrap();
    f.lock().unwrap();
    let mut text = String::new();
    f.read_to_string(&mut text).unwrap();
    let n: i64 = text.trim().parse().unwrap_or(0) + delta;
    f.seek(SeekFrom::Start(0)).unwrap();
    f.set_len(0).unwrap();
    f.write_all(n.to_string().as_bytes()).unwrap();
    drop(f); // closing unlocks
    n as u32
}

fn log_line(log: &mut File, line: String) {
    // One write(2) of a short line to an O_APPEND file: never interleaved.
    assert_eq!(log.write(line.as_bytes()).unwrap(), line.len());
}

fn contend(
    election: &Election,
    mode: &str,
    log: &Path,
    observer: &Path,
    rounds: u32,
    hold: Duration,
) {
    let mut log = OpenOptions::new().append(true).open(log).unwrap();
    say("READY");
    let mut go = String::new();
    std::io::stdin().lock().read_line(&mut go).unwrap();
    let pid = std::process::id();
    let mut wins = 0;
    for _ in 0..rounds {
        let got = match mode {
            "obtain" => election.obtain().map(Some),
            "try" => election.try_obtain(),
            m => panic!("bad mode {m}"),
        };
        let ticket = match got {
            Ok(Some(t)) => t,
            Ok(None) => {
                std::thread::yield_now();
                continue;
            }
            Err(e) => return say_error(&e),
        };
        wins += 1;
        let enter = monotonic_ns();
        let live = observe(observer, 1);
        let (slot, token) = (ticket.slot(), ticket.token());
        log_line(
            &mut log,
            format!("enter {enter} {pid} {slot} {token} {live}\n"),
        );
        std::thread::sleep(hold);
        observe(observer, -1);
        let exit = monotonic_ns();
        log_line(&mut log, format!("exit {exit} {pid} {slot} {token}\n"));
        drop(ticket);
    }
    say(&format!("DONE {wins}"));
}

/// Makes an empty log and observer file in `dir`.
pub fn observer_files(dir: &Path) -> (PathBuf, PathBuf) {
    let log = dir.join("observer.log");
    let obs = dir.join("observer.count");
    File::create(&log).unwrap();
    std::fs::write(&obs, "0").unwrap();
    (log, obs)
}

/// How many waiters stand in the line of the resource at `res` (see
/// [`live_places`]).
pub fn line_len(res: &Path) -> usize {
    live_places(res).len()
}

/// The places in the line of `res` whose waiter still holds them (an
/// exclusive flock by the pid in the name), oldest first. A waiter that
/// dies leaves its file behind until someone finds it stale; counting only
/// held places keeps that cleaning out of the count.
pub fn live_places(res: &Path) -> Vec<(PathBuf, u32)> {
    line_places(res)
        .into_iter()
        .filter(|(path, pid)| holds(*pid, path, true))
        .collect()
}

/// Waits until `n` waiters stand in the line of the resource at `res`.
pub fn wait_line(res: &Path, n: usize) {
    wait_until(&format!("{n} in the line of {}", res.display()), || {
        line_len(res) == n
    });
}
