//! Torture run: W worker processes of mixed kinds compete for the N tickets
//! of one resource while a chaos thread SIGKILLs holders and waiters,
//! SIGSTOPs and SIGCONTs them, stops waiters for longer than any hold, and
//! now and then removes the whole run directory; holders fork children that
//! drop their inherited copy of the ticket, and a bystander process holds
//! locks on the resource's files. An independent observer checks the
//! outcome afterwards.
//!
//! ```text
//! cargo run --release --example torture -- --seconds 20 --workers 12 --tickets 2
//!     [--dir DIR] [--long-stop 10s] [--no-forks] [--no-bystander]
//!     [--elect PATH] [--log PATH] [--keep]
//! cargo run --release --example torture -- --analyse LOG --tickets N
//! cargo run --release --features etcd --example torture -- --etcd http://127.0.0.1:2379 \
//!     [--ttl 2s] --seconds 20 --workers 8 --tickets 2
//! ```
//!
//! Worker kinds, assigned round robin: `block` (`Election::obtain`),
//! `timeout` (`Election::obtain_timeout`), `async` (`obtain_async` in a
//! current-thread tokio runtime, a third of the time cancelled by
//! `tokio::time::timeout`) and `cli` (`elect run`, whose command is this
//! program again; skipped with a printed reason when no working `elect`
//! binary is found: `--elect PATH`, else `elect` beside the directory of
//! this executable, i.e. `target/<profile>/elect`).
//!
//! In local mode three more things happen (off in etcd mode):
//!
//! * **Long stops.** Up to two waiters at a time are SIGSTOPped for
//!   `--long-stop` (default 10 s, longer than any hold), half of the time the
//!   one that has waited longest, which is likely the head of the line. They
//!   are never killed, and are continued at their time even after the end.
//! * **Fork children.** A library holder forks, a quarter of the time, a
//!   child that drops its copy of the `Ticket` and `_exit`s; the parent then
//!   asks the kernel (/proc/locks) whether it still holds its slot (`FORKED
//!   held=1`), and holds on at least 20 ms more, so that a slot freed by the
//!   child would be taken by a waiter and show as two holders.
//! * **A bystander** process that every 0.3 to 1.5 s holds a flock,
//!   exclusive or shared, on the resource directory, `tickets`, `token` or
//!   `line/` for 0.1 to 0.9 s (`BYSTAND` before, `BYSTOP` after).
//!
//! After every stop the chaos thread asks the kernel which of the resource's
//! files the stopped process group holds flocks on (`HELD locks=slot.0`):
//! a process stopped between acquiring and logging `ENTER`, or between
//! logging `EXIT` and releasing, really holds its slot, and the analyser
//! counts it as held.
//!
//! The observer is not elect's code: every participant appends one line per
//! event to an `O_APPEND` log with a single `write(2)`, stamped with
//! `CLOCK_MONOTONIC` before the write. A holder logs `ENTER` after it
//! obtained its ticket and `EXIT` before it releases, so each logged holding
//! lies inside the real one; a waiter logs `WAIT` before it starts to wait.
//! The chaos thread logs `KILL`, `STOP`, `CONT` and `RMDIR` *before* it acts.
//! From the log alone the analyser checks:
//!
//! * (a) never more than N holders at once, and never two on one slot. A
//!   holding is cut at a `KILL` of its worker and at an `RMDIR` (the old
//!   holders are then lost and a fresh directory starts); a holding that
//!   began while the removal was under way, or whose holder never once saw
//!   its ticket intact, is not counted, because it cannot be told apart from
//!   one in the doomed directory.
//! * (b) fencing tokens are all distinct, and when A logged `ENTER` before B
//!   logged `WAIT`, B's token is larger (a sound form of "later acquisitions
//!   get larger tokens": `ENTER` follows A's acquisition and `WAIT` precedes
//!   B's).
//! * (c) every lost ownership was noticed within one second of the removal
//!   that caused it (`Ticket::is_held` for library holders; the SIGTERM of
//!   `elect run` for CLI holders), holders of a removed directory stopped
//!   within one second, and no holder lost its ticket without a removal.
//! * (d) hand-offs per second, and the longest stretch a waiter (not itself
//!   stopped) waited while fewer than N holdings were logged, with what
//!   explains it. In local mode this is also a check: no ticket stays free
//!   for more than a second (1.5 s with slack for a loaded machine) while a
//!   running waiter waits, however long another waiter stays stopped. A slot
//!   that a stopped process holds (`HELD`) counts as held; not counted as
//!   free are the waiter's own stops, a removal of the run directory (until
//!   1 s after it), a stopped holder of `token` or `tickets`, and a
//!   bystander's hold that every acquisition or join must wait for (any lock
//!   on `token` or `tickets`, an exclusive one on the directory). Shared
//!   locks on the directory and any lock on `line/` stall nothing, and are
//!   checked like everything else.
//! * (e) every worker finished within 30 s of the end (no lost wake-up).
//! * (g) local mode, arrival order: a waiter that stood in the line before
//!   another running one is served first. A waiter stands in the line at most
//!   100 ms after it logged `WAIT` (500 ms for `elect run`, which starts
//!   first) and logs `ENTER` at most 50 ms (500 ms) after it was served.
//!   Allowed: the earlier waiter was stopped meanwhile (a stopped waiter is
//!   stepped past), its limit had passed, the run directory was removed, or
//!   the bystander held the directory exclusively or `tickets` (a newcomer
//!   cannot join). No worker barges with a non-blocking try.
//! * (h) local mode: a wait with a timeout (`obtain_timeout`, a
//!   `tokio::time::timeout` around `obtain_async`, `elect run -w`) that got
//!   nothing ends within 100 ms of its limit, plus 400 ms of slack (900 ms
//!   for `elect run`, a process start), whatever the bystander holds, unless
//!   its waiter was stopped meanwhile.
//! * A fork child's drop never frees the parent's slot (`FORKED held=0`).
//!
//! It prints a one-screen summary and exits 1 on any violation of (a), (b),
//! (c), (d) in local mode, (e), (g) or (h), keeping the log for inspection.
//!
//! # etcd mode
//!
//! `--etcd ENDPOINTS [--ttl DUR]` (default TTL 2 s; needs the `etcd`
//! feature, and is refused with a message without it) points every worker
//! at the etcd store under a key prefix of the run's own: library workers
//! through `ElectionBuilder::etcd`, CLI workers through `elect run --etcd
//! ENDPOINTS --etcd-prefix P --ttl DUR`. Workers run in process groups of
//! their own, so a signal to a CLI worker's group reaches `elect run` and its
//! command together. The TTL the analyser uses is the one etcd grants (the
//! parent asks for a lease once), which may be more than asked.
//!
//! The chaos: SIGKILL of holders and waiters and SIGSTOPs of up to 300 ms as
//! above, except that stopped workers are not killed; every 1.5 to 3 s a
//! holder's whole process group is stopped for TTL + 0.3 to 1.3 s (`STOP
//! holder ms=.. long`), long enough for its lease to expire on the server
//! and another waiter to take the slot; and every 4 to 8 s, instead of
//! removing a run directory, all of the run's keys are deleted with the
//! etcd client (logged as `RMDIR etcd:PREFIX`, handled as a removal).
//!
//! Holders act, and each act is logged. A lease can expire under a holder
//! that is stopped, so a logged holding (`ENTER` to `EXIT`/`LOST`) no longer
//! means acting. A library holder reads the clock, then calls
//! `Ticket::is_held()`; if true it acts, logging `ACT` with the clock
//! reading (`checked=`), which the true answer covers. The command of
//! `elect run` cannot ask: when its group is continued it may run before
//! `elect` does, as any command can, so its acts carry `ELECT_TOKEN` to a
//! downstream that fences off late writers. Every act, library or command,
//! goes through such a fence: a file per slot holding the largest token that
//! acted, under flock; a smaller token is refused (`FENCED`; a command then
//! waits for elect's SIGTERM), the rest are logged `ACT` inside the fence.
//! The analyser then checks, instead of (a) on logged holdings:
//!
//! * (a) never more than N acting at once and never two on one slot, by two
//!   measures: library holdings from their first to last `checked=` time
//!   (cut at a removal, as above), which tests the leases themselves; all
//!   holdings from their first to last accepted act in the fences' order.
//! * (c) a loss is explained by a removal, or by a stop of the holder's
//!   group of at least a third of the TTL (renewals go every fifth, the
//!   ticket counts as lost 3/5 of the TTL after the last), and is noticed
//!   within 1 s of the removal or of the SIGCONT; for a worker stopped when
//!   the keys were removed, the second counts from its SIGCONT.
//! * (f) every holder stopped past its TTL (+ 200 ms) acts no more once
//!   continued: a library holder logs no act checked after the SIGCONT and
//!   ends with `LOST` within 1 s of it (handled); the `elect run` of a
//!   command exits 76 within 1 s of the SIGCONT (handled) after stopping
//!   its command, and any other exit is a violation; the command's acts
//!   after the SIGCONT that the fence let through (no newer holder had
//!   acted yet) are counted. A library act refused by the fence is a
//!   violation unless the holder was stopped between its check and the
//!   fence, or the keys were removed within 1 s before.
//! * (d) a killed or long-stopped holder frees its slot only when its lease
//!   expires: up to TTL + 0.5 s (etcd looks for expired leases every
//!   500 ms) after its last renewal, so waits with a slot free within
//!   TTL + 1 s of such an act are attributed to it.
//! * (b), (e) as above; tokens are etcd revisions.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::{Read, Seek};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use elect::Election;

/// The resource every worker competes for.
pub const RESOURCE: &str = "torture";
/// Environment variable that carries a role when this code runs inside a
/// test binary (whose arguments belong to the test harness).
pub const ROLE_ENV: &str = "ELECT_TORTURE_ROLE";

const MS: u64 = 1_000_000;
const SEC: u64 = 1_000_000_000;
/// A lost ownership must be noticed within this long.
const NOTICE_LIMIT: u64 = SEC;
/// The longest a process is kept stopped.
const MAX_STOP_MS: u64 = 300;
/// How long workers may take to finish after the end before they count as hung.
const DRAIN_LIMIT: u64 = 30 * SEC;
/// etcd mode: how soon after being continued past its TTL an `elect run`
/// must have stopped its command and exited 76.
const CLI_STOP_LIMIT: u64 = SEC;
/// How long a CLI command that saw its ticket lost waits for elect's SIGTERM.
const TERM_WAIT: u64 = 3 * SEC;

/// The lease TTL of etcd mode when none is asked for.
const DEFAULT_ETCD_TTL: Duration = Duration::from_secs(2);
/// How long a long stop keeps a waiter stopped: longer than any hold.
const DEFAULT_LONG_STOP: Duration = Duration::from_secs(10);
/// How many waiters may be in a long stop at once.
const MAX_LONG_STOPPED: usize = 2;
/// A free ticket may stay free this long while a running waiter waits: the
/// promise is one second (a stopped waiter is stepped past within about a
/// second); the rest is slack for a loaded 2-CPU machine.
const FREE_LIMIT: u64 = 1500 * MS;
/// A timeout or cancel must end a wait within 100 ms of its limit; the rest
/// is slack for a loaded machine (library; `elect run -w` also starts a
/// process).
const TIMEOUT_SLACK: u64 = 500 * MS;
const CLI_TIMEOUT_SLACK: u64 = 1000 * MS;
/// Arrival order: how long after logging WAIT a waiter may take to stand in
/// the line (library; `elect run` first starts), and how late its ENTER may
/// be logged after it was served.
const LINE_ALLOWANCE: u64 = 100 * MS;
const CLI_LINE_ALLOWANCE: u64 = 500 * MS;
const ENTER_SLACK: u64 = 50 * MS;
const CLI_ENTER_SLACK: u64 = 500 * MS;
/// How long a forking holder holds on after its child exited.
const AFTER_FORK: u64 = 20 * MS;

const USAGE: &str = "usage: torture --seconds S --workers W --tickets N [--dir DIR [--long-stop DUR] [--no-forks] [--no-bystander] | --etcd ENDPOINTS [--ttl DUR]] [--elect PATH] [--log PATH] [--keep]";

#[allow(dead_code)]
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a.starts_with("__")) {
        std::process::exit(run_role(&args));
    }
    if args.first().map(String::as_str) == Some("--analyse")
        && args.len() == 4
        && args[2] == "--tickets"
    {
        // Re-analyse a kept log: --analyse LOG --tickets N
        let text = std::fs::read_to_string(&args[1]).expect("readable log");
        let a = analyse(&text, args[3].parse().expect("--tickets N"));
        print!("{}", a.summary);
        std::process::exit(if a.violations == 0 { 0 } else { 1 });
    }
    let opts = match Options::parse(&args) {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("torture: {msg}\n{USAGE}");
            std::process::exit(2);
        }
    };
    match run(&opts, &SelfExec::Args) {
        Ok(outcome) => {
            print!("{}", outcome.summary);
            std::process::exit(if outcome.passed { 0 } else { 1 });
        }
        Err(e) => {
            eprintln!("torture: {e}");
            std::process::exit(3);
        }
    }
}

// ---------------------------------------------------------------- options

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long the chaos lasts.
    pub seconds: f64,
    /// How many worker processes compete at any time.
    pub workers: usize,
    /// The resource's number of tickets.
    pub tickets: u32,
    /// The run directory (default: a fresh temporary one).
    pub dir: Option<PathBuf>,
    /// The `elect` binary for CLI workers.
    pub elect: Option<PathBuf>,
    /// Where to write the log (default: beside the temporary run directory).
    pub log: Option<PathBuf>,
    /// Keep the log and directory even when everything passed.
    pub keep: bool,
    /// etcd mode: the cluster every worker uses instead of a run directory.
    pub etcd: Option<String>,
    /// etcd mode: the lease TTL of every worker.
    pub ttl: Duration,
    /// Local mode: how long a long stop keeps a waiter stopped (zero: no
    /// long stops).
    pub long_stop: Duration,
    /// Local mode: library workers fork children that drop their inherited
    /// copy of the ticket while the parent holds on.
    pub forks: bool,
    /// Local mode: a bystander process now and then holds flocks on the
    /// resource directory, `tickets`, `token` and `line/`.
    pub bystander: bool,
}

impl Options {
    /// Parses the command line (without the program name).
    pub fn parse(args: &[String]) -> Result<Options, String> {
        let mut o = Options {
            seconds: 20.0,
            workers: 12,
            tickets: 2,
            dir: None,
            elect: None,
            log: None,
            keep: false,
            etcd: None,
            ttl: DEFAULT_ETCD_TTL,
            long_stop: DEFAULT_LONG_STOP,
            forks: true,
            bystander: true,
        };
        let mut ttl_given = false;
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match a.as_str() {
                "--seconds" => {
                    o.seconds = checked(a, &value(a)?, "a positive number", |s: &f64| {
                        s.is_finite() && *s > 0.0
                    })?
                }
                "--workers" => {
                    o.workers = checked(a, &value(a)?, "1 to 512", |w| (1..=512).contains(w))?
                }
                "--tickets" => {
                    o.tickets = checked(a, &value(a)?, "1 to 4096", |n| {
                        (1..=elect::MAX_TICKETS).contains(n)
                    })?
                }
                "--dir" => o.dir = Some(value(a)?.into()),
                "--elect" => o.elect = Some(value(a)?.into()),
                "--log" => o.log = Some(value(a)?.into()),
                "--keep" => o.keep = true,
                "--etcd" => o.etcd = Some(value(a)?),
                "--ttl" => {
                    let v = value(a)?;
                    o.ttl = parse_duration(&v)
                        .filter(|d| *d >= Duration::from_secs(1))
                        .ok_or_else(|| format!("--ttl {v:?}: want a duration of 1s or more"))?;
                    ttl_given = true;
                }
                "--long-stop" => {
                    let v = value(a)?;
                    o.long_stop = parse_duration(&v).ok_or_else(|| {
                        format!("--long-stop {v:?}: want a duration such as 10s (0: none)")
                    })?;
                }
                "--no-forks" => o.forks = false,
                "--no-bystander" => o.bystander = false,
                "-h" | "--help" => return Err("help".into()),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        if o.etcd.is_none() && ttl_given {
            return Err("--ttl applies only with --etcd ENDPOINTS".into());
        }
        if o.etcd.is_some() && o.dir.is_some() {
            return Err("--dir is for the local store; drop it with --etcd".into());
        }
        if o.etcd.is_some() && !cfg!(feature = "etcd") {
            return Err(
                "--etcd needs the etcd store: build this example with `--features etcd`, as in \
                 `cargo run --release --features etcd --example torture -- --etcd http://127.0.0.1:2379`"
                    .into(),
            );
        }
        Ok(o)
    }
}

/// A duration as `250ms`, `3s` or `2m`; a bare number is seconds.
fn parse_duration(v: &str) -> Option<Duration> {
    let (num, unit) = match v.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => v.split_at(i),
        None => (v, "s"),
    };
    let n: f64 = num
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n >= 0.0)?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(secs).ok()
}

/// `v`, the value of `option`, parsed and accepted by `ok`; else an error
/// saying what is wanted.
fn checked<T: std::str::FromStr>(
    option: &str,
    v: &str,
    want: &str,
    ok: impl Fn(&T) -> bool,
) -> Result<T, String> {
    v.parse()
        .ok()
        .filter(|x| ok(x))
        .ok_or_else(|| format!("{option} {v:?}: want {want}"))
}

// ---------------------------------------------------------- self re-exec

/// How this executable runs one of its roles in a new process.
#[derive(Debug, Clone)]
pub enum SelfExec {
    /// The example: the role is the argument list.
    Args,
    /// A test binary: the role travels in [`ROLE_ENV`], and the arguments
    /// make the harness run just the named test, which calls [`run_role`].
    TestEnv(String),
}

impl SelfExec {
    fn encode(&self) -> String {
        match self {
            SelfExec::Args => "args".into(),
            SelfExec::TestEnv(name) => format!("env:{name}"),
        }
    }

    fn decode(s: &str) -> SelfExec {
        match s.strip_prefix("env:") {
            Some(name) => SelfExec::TestEnv(name.into()),
            None => SelfExec::Args,
        }
    }

    /// The program and arguments that run `role`, and the value for
    /// [`ROLE_ENV`] if one is needed.
    fn argv(&self, role: &[String]) -> (Vec<String>, Option<String>) {
        let exe = std::env::current_exe()
            .expect("own executable")
            .to_string_lossy()
            .into_owned();
        match self {
            SelfExec::Args => {
                let mut v = vec![exe];
                v.extend(role.iter().cloned());
                (v, None)
            }
            SelfExec::TestEnv(name) => (
                vec![
                    exe,
                    name.clone(),
                    "--exact".into(),
                    "--nocapture".into(),
                    "--test-threads=1".into(),
                    "-q".into(),
                ],
                Some(role.join("\x1f")),
            ),
        }
    }

    fn command(&self, role: &[String]) -> Command {
        let (argv, env) = self.argv(role);
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        if let Some(e) = env {
            cmd.env(ROLE_ENV, e);
        }
        cmd
    }
}

/// The role given in [`ROLE_ENV`], if this process is a worker started by a
/// test binary.
pub fn role_from_env() -> Option<Vec<String>> {
    let v = std::env::var(ROLE_ENV).ok()?;
    Some(v.split('\x1f').map(String::from).collect())
}

// ------------------------------------------------------------------ clock, log, rng

/// CLOCK_MONOTONIC in nanoseconds: the one clock all processes share.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * SEC + ts.tv_nsec as u64
}

/// One log line: `t pid wid kind WHAT slot token extra`, `-` for what is
/// missing; the analyser reads exactly this.
#[allow(clippy::too_many_arguments)]
pub fn format_record(
    t: u64,
    pid: u32,
    wid: u64,
    kind: &str,
    what: &str,
    slot: Option<u32>,
    token: Option<u64>,
    extra: &str,
) -> String {
    let dash = |o: Option<String>| o.unwrap_or_else(|| "-".into());
    let extra = if extra.is_empty() {
        "-".to_string()
    } else {
        extra.replace(['\n', '\r'], " ")
    };
    format!(
        "{t} {pid} {wid} {kind} {what} {} {} {extra}\n",
        dash(slot.map(|s| s.to_string())),
        dash(token.map(|s| s.to_string())),
    )
}

/// The shared observer log: one `O_APPEND` file, one `write(2)` per line.
struct Log {
    file: std::fs::File,
}

impl Log {
    fn open(path: &Path) -> std::io::Result<Log> {
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)?;
        Ok(Log { file })
    }

    /// Appends `t pid wid kind WHAT slot token extra`, `t` read just now.
    #[allow(clippy::too_many_arguments)]
    fn rec(
        &self,
        pid: u32,
        wid: u64,
        kind: &str,
        what: &str,
        slot: Option<u32>,
        token: Option<u64>,
        extra: &str,
    ) {
        let line = format_record(now_ns(), pid, wid, kind, what, slot, token, extra);
        // SAFETY: writes our own buffer to our own descriptor.
        let n = unsafe { libc::write(self.file.as_raw_fd(), line.as_ptr().cast(), line.len()) };
        assert_eq!(n, line.len() as isize, "torn or failed log write");
    }

    /// A record of this process about itself.
    fn me(
        &self,
        wid: u64,
        kind: &str,
        what: &str,
        slot: Option<u32>,
        token: Option<u64>,
        extra: &str,
    ) {
        self.rec(std::process::id(), wid, kind, what, slot, token, extra);
    }
}

/// splitmix64: small, fast, good enough for chaos.
struct Rng(u64);

impl Rng {
    fn seeded(extra: u64) -> Rng {
        Rng(now_ns()
            ^ (u64::from(std::process::id()) << 32)
            ^ extra.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

fn sleep_ns(ns: u64) {
    std::thread::sleep(Duration::from_nanos(ns));
}

// ------------------------------------------------------------------ roles

/// The kinds of worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Block,
    Timeout,
    Async,
    Cli,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Block => "block",
            Kind::Timeout => "timeout",
            Kind::Async => "async",
            Kind::Cli => "cli",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        [Kind::Block, Kind::Timeout, Kind::Async, Kind::Cli]
            .into_iter()
            .find(|k| k.name() == s)
    }
}

/// Runs a role of a child process; returns its exit status.
///
/// * `__worker KIND WID LOG DIR TICKETS UNTIL SELFEXEC ELECT FORKS ENDPOINTS PREFIX TTL_MS`
///   (FORKS `1` or `0`; the last three `-` in local mode; in etcd mode DIR
///   holds the fences)
/// * `__bystander LOG DIR UNTIL` (holds flocks on the resource's files now
///   and then)
/// * `__cli-child WID LOG FENCES` (the command of `elect run`; FENCES is `-`
///   in local mode)
/// * `__cli-probe` (checks that `elect run` works)
pub fn run_role(args: &[String]) -> i32 {
    match args.first().map(String::as_str) {
        Some("__worker") if args.len() == 13 => {
            let kind = Kind::parse(&args[1]).expect("worker kind");
            let w = Worker {
                kind,
                wid: args[2].parse().expect("wid"),
                log: Log::open(Path::new(&args[3])).expect("log"),
                dir: PathBuf::from(&args[4]),
                tickets: args[5].parse().expect("tickets"),
                until: args[6].parse().expect("until"),
                how: SelfExec::decode(&args[7]),
                elect: PathBuf::from(&args[8]),
                log_path: args[3].clone(),
                forks: args[9] == "1",
                etcd: EtcdMode::decode(&args[10..13]),
            };
            w.run();
            0
        }
        Some("__bystander") if args.len() == 4 => {
            bystander(
                &Log::open(Path::new(&args[1])).expect("log"),
                Path::new(&args[2]),
                args[3].parse().expect("until"),
            );
            0
        }
        Some("__cli-child") if args.len() == 4 => cli_child(
            args[1].parse().expect("wid"),
            Path::new(&args[2]),
            (args[3] != "-").then(|| Path::new(&args[3])),
        ),
        Some("__cli-probe") => {
            println!(
                "probe slot={} token={}",
                std::env::var("ELECT_SLOT").unwrap_or_default(),
                std::env::var("ELECT_TOKEN").unwrap_or_default()
            );
            0
        }
        _ => {
            eprintln!("torture: bad role {args:?}");
            2
        }
    }
}

struct Worker {
    kind: Kind,
    wid: u64,
    log: Log,
    log_path: String,
    dir: PathBuf,
    tickets: u32,
    until: u64,
    how: SelfExec,
    elect: PathBuf,
    /// Fork children that drop their copy of a held ticket.
    forks: bool,
    etcd: Option<EtcdMode>,
}

/// etcd mode: where the workers' election lives.
#[derive(Debug, Clone)]
pub struct EtcdMode {
    /// Comma-separated `http://host:port`.
    pub endpoints: String,
    /// The key prefix of this run, so that runs never meet.
    pub prefix: String,
    /// The lease TTL asked for.
    pub ttl: Duration,
}

impl EtcdMode {
    fn encode(m: Option<&EtcdMode>) -> [String; 3] {
        match m {
            Some(m) => [
                m.endpoints.clone(),
                m.prefix.clone(),
                m.ttl.as_millis().to_string(),
            ],
            None => ["-".into(), "-".into(), "-".into()],
        }
    }

    fn decode(a: &[String]) -> Option<EtcdMode> {
        (a[0] != "-").then(|| EtcdMode {
            endpoints: a[0].clone(),
            prefix: a[1].clone(),
            ttl: Duration::from_millis(a[2].parse().expect("ttl ms")),
        })
    }

    #[cfg(feature = "etcd")]
    fn config(&self) -> elect::Etcd {
        elect::Etcd::new(&self.endpoints)
            .and_then(|e| e.prefix(self.prefix.clone()))
            .and_then(|e| e.ttl(self.ttl))
            .expect("etcd settings")
    }
}

/// etcd mode: a builder on the cluster.
#[cfg(feature = "etcd")]
fn on_etcd(b: elect::ElectionBuilder, m: &EtcdMode) -> elect::ElectionBuilder {
    b.etcd(m.config())
}

#[cfg(not(feature = "etcd"))]
fn on_etcd(_: elect::ElectionBuilder, _: &EtcdMode) -> elect::ElectionBuilder {
    unreachable!("etcd mode is refused without the etcd feature")
}

/// etcd mode: one act under a fencing token, as a downstream system that
/// checks `ELECT_TOKEN` would take it. The fence of a slot is a file
/// holding the largest token that acted on it; under its flock an act
/// with a smaller token is refused (logged `FENCED`), any other is
/// accepted, stored and logged `ACT`, so the log shows accepted acts of a
/// slot in the order the fence took them.
#[allow(clippy::too_many_arguments)]
fn fenced_act(
    log: &Log,
    fences: &Path,
    wid: u64,
    kind: &str,
    slot: u32,
    token: u64,
    extra: &str,
) -> bool {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(fences.join(format!("fence.{slot}")))
        .expect("fence file");
    loop {
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
            break;
        }
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EINTR),
            "flock of a fence"
        );
    }
    let mut buf = [0u8; 20];
    let n = f.read_at(&mut buf, 0).expect("read fence");
    let top: u64 = std::str::from_utf8(&buf[..n])
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    if token < top {
        log.me(
            wid,
            kind,
            "FENCED",
            Some(slot),
            Some(token),
            &format!("{extra} fence={top}"),
        );
        return false;
    }
    f.write_all_at(format!("{token:020}").as_bytes(), 0)
        .expect("write fence");
    log.me(wid, kind, "ACT", Some(slot), Some(token), extra);
    true
    // The flock goes with the descriptor.
}

/// The state of one holding: how long to hold and how often the ticket was
/// seen intact so far.
struct Hold {
    end: u64,
    checks: u64,
}

enum Step {
    Lost,
    Done,
    Sleep(Duration),
}

impl Hold {
    fn new(rng: &mut Rng) -> Hold {
        Hold {
            end: now_ns() + rng.range(0, 30) * MS,
            checks: 0,
        }
    }

    /// One check: a lost ticket ends the holding at once; otherwise hold on
    /// until the end, checking every 1 to 3 ms (and once more at the end).
    fn step(&mut self, held: bool, rng: &mut Rng) -> Step {
        if !held {
            return Step::Lost;
        }
        self.checks += 1;
        let now = now_ns();
        if now >= self.end {
            return Step::Done;
        }
        Step::Sleep(Duration::from_nanos(
            rng.range(MS, 3 * MS).min(self.end - now),
        ))
    }
}

impl Worker {
    fn run(&self) {
        let builder = Election::builder(RESOURCE)
            .tickets(self.tickets)
            .label(format!("torture {} {}", self.kind.name(), self.wid));
        let election = match &self.etcd {
            None => builder.dir(&self.dir),
            Some(m) => on_etcd(builder, m),
        }
        .build()
        .expect("election");
        let mut rng = Rng::seeded(self.wid);
        match self.kind {
            Kind::Block | Kind::Timeout => self.run_blocking(&election, &mut rng),
            Kind::Async => {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .expect("runtime");
                rt.block_on(self.run_async(&election, &mut rng));
            }
            Kind::Cli => self.run_cli(&mut rng),
        }
    }

    fn log(&self, what: &str, slot: Option<u32>, token: Option<u64>, extra: &str) {
        self.log
            .me(self.wid, self.kind.name(), what, slot, token, extra);
    }

    /// Whether the ticket may still be acted on. In etcd mode this is an
    /// act: the time is read *before* `is_held()`, so a true answer covers
    /// that moment, and logged with the act (`checked=`) through the fence.
    fn check(&self, ticket: &elect::Ticket) -> bool {
        if self.etcd.is_none() {
            return ticket.is_held();
        }
        let checked = now_ns();
        ticket.is_held()
            && fenced_act(
                &self.log,
                &self.dir,
                self.wid,
                self.kind.name(),
                ticket.slot(),
                ticket.token(),
                &format!("checked={checked}"),
            )
    }

    /// One step of holding `ticket`: how long to sleep before the next,
    /// or `None` once the hold ended (logged as `LOST` or `EXIT`).
    fn hold_step(
        &self,
        hold: &mut Hold,
        ticket: &elect::Ticket,
        rng: &mut Rng,
    ) -> Option<Duration> {
        let (slot, token) = (Some(ticket.slot()), Some(ticket.token()));
        match hold.step(self.check(ticket), rng) {
            Step::Lost => {
                self.log("LOST", slot, token, &format!("checks={}", hold.checks));
                None
            }
            Step::Done => {
                self.log("EXIT", slot, token, "");
                None
            }
            Step::Sleep(d) => Some(d),
        }
    }

    /// A quarter of the time (with `forks`): forks a child that drops its
    /// inherited copy of `ticket` and exits, as a forked worker that returns
    /// or unwinds would. Then checks in /proc/locks that this process still
    /// holds its slot (logged as `FORKED ... held=1`, or `held=0` if the
    /// child's drop freed it) and holds on at least [`AFTER_FORK`] more, so
    /// that a slot freed by mistake would be taken by a waiter and show in
    /// the log as two holders.
    fn maybe_fork(&self, ticket: elect::Ticket, hold: &mut Hold, rng: &mut Rng) -> elect::Ticket {
        if !self.forks || !rng.chance(25) {
            return ticket;
        }
        let (slot, token) = (Some(ticket.slot()), Some(ticket.token()));
        self.log("FORK", slot, token, "");
        // SAFETY: the child only drops its copy of the ticket and exits
        // without running anything else of this process.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            drop(ticket);
            // SAFETY: ends the child at once.
            unsafe { libc::_exit(0) };
        }
        if pid < 0 {
            self.log("FORKED", slot, token, "error");
            return ticket;
        }
        let mut status = 0;
        // SAFETY: waits for our own child.
        while unsafe { libc::waitpid(pid, &mut status, 0) } < 0
            && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
        {}
        let locked = holds_flock(ticket.path(), std::process::id());
        // Only a slot still at its path says anything: after a removal of
        // the run directory the path names a new file.
        let held = match (locked, ticket.is_held()) {
            (Some(l), true) => {
                if l {
                    "1"
                } else {
                    "0"
                }
            }
            _ => "?",
        };
        self.log(
            "FORKED",
            slot,
            token,
            &format!("child={pid} status={status} held={held}"),
        );
        hold.end = hold.end.max(now_ns() + AFTER_FORK);
        ticket
    }

    fn run_blocking(&self, election: &Election, rng: &mut Rng) {
        while now_ns() < self.until {
            let got = if self.kind == Kind::Block {
                self.log("WAIT", None, None, "");
                election.obtain().map(Some)
            } else {
                let limit = rng.range(1, 200);
                self.log("WAIT", None, None, &format!("limit={limit}ms"));
                election.obtain_timeout(Duration::from_millis(limit))
            };
            match got {
                Ok(Some(ticket)) => {
                    self.log("ENTER", Some(ticket.slot()), Some(ticket.token()), "");
                    let mut hold = Hold::new(rng);
                    let ticket = self.maybe_fork(ticket, &mut hold, rng);
                    while let Some(d) = self.hold_step(&mut hold, &ticket, rng) {
                        std::thread::sleep(d);
                    }
                    drop(ticket);
                }
                Ok(None) => self.log("GIVEUP", None, None, ""),
                Err(e) => {
                    self.log("ERR", None, None, &e.to_string());
                    sleep_ns(5 * MS);
                }
            }
        }
    }

    async fn run_async(&self, election: &Election, rng: &mut Rng) {
        while now_ns() < self.until {
            let got = if rng.chance(33) {
                let ms = rng.range(1, 100);
                self.log("WAIT", None, None, &format!("limit={ms}ms"));
                let limit = Duration::from_millis(ms);
                match tokio::time::timeout(limit, election.obtain_async()).await {
                    Ok(r) => r,
                    Err(_) => {
                        self.log("CANCEL", None, None, "");
                        continue;
                    }
                }
            } else {
                self.log("WAIT", None, None, "");
                election.obtain_async().await
            };
            match got {
                Ok(ticket) => {
                    self.log("ENTER", Some(ticket.slot()), Some(ticket.token()), "");
                    let mut hold = Hold::new(rng);
                    let ticket = self.maybe_fork(ticket, &mut hold, rng);
                    while let Some(d) = self.hold_step(&mut hold, &ticket, rng) {
                        tokio::time::sleep(d).await;
                    }
                    drop(ticket);
                }
                Err(e) => {
                    self.log("ERR", None, None, &e.to_string());
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    }

    fn run_cli(&self, rng: &mut Rng) {
        while now_ns() < self.until {
            let fences = match &self.etcd {
                Some(_) => self.dir.to_string_lossy().into_owned(),
                None => "-".into(),
            };
            let role = vec![
                "__cli-child".to_string(),
                self.wid.to_string(),
                self.log_path.clone(),
                fences,
            ];
            let (argv, env) = self.how.argv(&role);
            let mut cmd = Command::new(&self.elect);
            cmd.arg("run")
                .arg("-q")
                .arg("-t")
                .arg(self.tickets.to_string());
            match &self.etcd {
                None => cmd.arg("-d").arg(&self.dir),
                Some(m) => cmd
                    .arg("--etcd")
                    .arg(&m.endpoints)
                    .arg("--etcd-prefix")
                    .arg(&m.prefix)
                    .arg("--ttl")
                    .arg(format!("{}ms", m.ttl.as_millis())),
            };
            let limit = rng.chance(25).then(|| rng.range(1, 200));
            if let Some(ms) = limit {
                cmd.arg("-w").arg(format!("{ms}ms"));
            }
            cmd.arg(RESOURCE).arg("--").args(&argv);
            if let Some(e) = env {
                cmd.env(ROLE_ENV, e);
            }
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let extra = limit.map(|ms| format!("limit={ms}ms")).unwrap_or_default();
            self.log("WAIT", None, None, &extra);
            let status = cmd.output();
            let what = match &status {
                Ok(o) => {
                    let s = o.status;
                    let code = match (s.code(), s.signal()) {
                        (Some(c), _) => format!("code={c}"),
                        (None, Some(sig)) => format!("signal={sig}"),
                        _ => "unknown".into(),
                    };
                    let err = String::from_utf8_lossy(&o.stderr);
                    match err.lines().next() {
                        Some(line) => format!("{code} {line}"),
                        None => code,
                    }
                }
                Err(e) => format!("spawn-error {e}"),
            };
            self.log("CLIEXIT", None, None, &what);
            if status.is_err() {
                sleep_ns(5 * MS);
            }
        }
    }
}

static TERMINATED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigterm(_: libc::c_int) {
    TERMINATED.store(true, Ordering::SeqCst);
}

/// The command that `elect run` starts: logs with `ELECT_SLOT` and
/// `ELECT_TOKEN`, holds 0 to 30 ms and checks, as an observer, that the slot
/// file it inherited a lock on is still the one at the slot's path. If it is
/// not, it logs `LOST` and waits for elect's SIGTERM (`TERM`), which must
/// come within a second.
///
/// In etcd mode (`fences` given) there is no slot file and a command cannot
/// ask whether its ticket still holds: each step is an act through the
/// slot's fence with `ELECT_TOKEN`, and a refused act counts as the loss.
fn cli_child(wid: u64, log_path: &Path, fences: Option<&Path>) -> i32 {
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(
            libc::SIGTERM,
            on_sigterm as extern "C" fn(libc::c_int) as libc::sighandler_t,
        )
    };
    let log = Log::open(log_path).expect("log");
    let env = |k: &str| std::env::var(k).ok();
    let slot: Option<u32> = env("ELECT_SLOT").and_then(|s| s.parse().ok());
    let token: Option<u64> = env("ELECT_TOKEN").and_then(|s| s.parse().ok());
    let rec = |what: &str, extra: &str| log.me(wid, "cli", what, slot, token, extra);
    let (slot_path, held) = match (env("ELECT_DIR"), env("ELECT_NAME"), slot, fences) {
        (_, Some(_), Some(_), Some(_)) if token.is_some() => {
            rec("ENTER", "");
            (PathBuf::new(), None)
        }
        (Some(d), Some(n), Some(s), None) => {
            let path = PathBuf::from(d).join(n).join(format!("slot.{s}"));
            let held = inherited_slot(&path);
            rec("ENTER", if held.is_some() { "" } else { "nofd" });
            (path, held)
        }
        _ => {
            rec("ENTER", "bad-env");
            rec("EXIT", "");
            return 0;
        }
    };
    let intact = || match (fences, slot, token) {
        (Some(f), Some(s), Some(t)) => fenced_act(&log, f, wid, "cli", s, t, "cmd"),
        _ => match held {
            Some(id) => {
                std::fs::symlink_metadata(&slot_path).is_ok_and(|m| (m.dev(), m.ino()) == id)
            }
            None => true,
        },
    };
    let mut rng = Rng::seeded(wid);
    let mut hold = Hold::new(&mut rng);
    loop {
        if TERMINATED.load(Ordering::SeqCst) {
            rec("TERM", &format!("checks={}", hold.checks));
            return 143;
        }
        match hold.step(intact(), &mut rng) {
            Step::Done => {
                rec("EXIT", "");
                return 0;
            }
            Step::Sleep(d) => std::thread::sleep(d),
            Step::Lost => {
                rec("LOST", &format!("checks={}", hold.checks));
                let deadline = now_ns() + TERM_WAIT;
                while now_ns() < deadline {
                    if TERMINATED.load(Ordering::SeqCst) {
                        rec("TERM", "after-lost");
                        return 143;
                    }
                    sleep_ns(MS / 2);
                }
                rec("NOTERM", "");
                return 0;
            }
        }
    }
}

/// The (device, inode) of the slot file this process inherited a
/// descriptor of, found through /proc/self/fd.
fn inherited_slot(slot_path: &Path) -> Option<(u64, u64)> {
    let want_file = slot_path.file_name()?.to_string_lossy().into_owned();
    let want_dir = slot_path
        .parent()?
        .file_name()?
        .to_string_lossy()
        .into_owned();
    for entry in std::fs::read_dir("/proc/self/fd").ok()?.flatten() {
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let t = target.to_string_lossy();
        let t = t.strip_suffix(" (deleted)").unwrap_or(&t);
        let t = Path::new(t);
        let same = t
            .file_name()
            .is_some_and(|f| f.to_string_lossy() == want_file)
            && t.parent()
                .and_then(Path::file_name)
                .is_some_and(|d| d.to_string_lossy() == want_dir);
        if same && let Ok(m) = std::fs::metadata(entry.path()) {
            return Some((m.dev(), m.ino()));
        }
    }
    None
}

// ------------------------------------------------------------------ kernel's view

/// One flock of /proc/locks: holder pid, device (major, minor), inode and
/// whether it is exclusive. Blocked requests (`->`) are left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Flock {
    pid: u32,
    dev: (u32, u32),
    ino: u64,
    exclusive: bool,
}

/// The flocks the kernel lists in /proc/locks.
fn proc_flocks() -> Vec<Flock> {
    let text = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 || f[1] != "FLOCK" {
            continue;
        }
        let id: Vec<&str> = f[5].split(':').collect();
        let (Ok(pid), [maj, min, ino]) = (f[4].parse(), id.as_slice()) else {
            continue;
        };
        let (Ok(maj), Ok(min), Ok(ino)) = (
            u32::from_str_radix(maj, 16),
            u32::from_str_radix(min, 16),
            ino.parse(),
        ) else {
            continue;
        };
        out.push(Flock {
            pid,
            dev: (maj, min),
            ino,
            exclusive: f[3] == "WRITE",
        });
    }
    out
}

/// (major, minor) of a device number, as glibc splits it.
fn dev_parts(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major as u32, minor as u32)
}

/// A file as the kernel's lock list names it: device (major, minor), inode.
type FileKey = ((u32, u32), u64);

/// (device, inode) of the file at `path`, not following a link.
fn file_id(path: &Path) -> Option<FileKey> {
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (dev_parts(m.dev()), m.ino()))
}

/// Whether `pid` holds an exclusive flock on the file at `path`, in the
/// kernel's words; `None` when the path names nothing.
fn holds_flock(path: &Path, pid: u32) -> Option<bool> {
    let (dev, ino) = file_id(path)?;
    Some(
        proc_flocks()
            .iter()
            .any(|l| l.pid == pid && l.exclusive && l.dev == dev && l.ino == ino),
    )
}

/// The processes of process group `pgid`.
fn group_pids(pgid: i32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid pgrp ...`: after the last ')'.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        if rest
            .split_whitespace()
            .nth(2)
            .and_then(|g| g.parse::<i32>().ok())
            == Some(pgid)
        {
            out.push(pid);
        }
    }
    out
}

/// Whether `pid` is stopped (or gone).
fn is_stopped_or_gone(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next().map(str::to_string));
    matches!(state.as_deref(), Some("T" | "t" | "Z" | "X"))
}

/// After a SIGSTOP of group `pgid`: waits (up to 200 ms) until all of it is
/// stopped, then names the files of the resource in `res` that the group
/// holds flocks on (`slot.1,token`), or `-`: a process stopped holding a
/// slot keeps it, one stopped holding `token` or `tickets` holds up every
/// acquisition or join.
fn locks_of_stopped(pgid: i32, res: &Path, tickets: u32) -> String {
    let pids = group_pids(pgid);
    let deadline = now_ns() + 200 * MS;
    while now_ns() < deadline && !pids.iter().all(|&p| is_stopped_or_gone(p)) {
        sleep_ns(MS / 2);
    }
    let mut names: Vec<String> = (0..tickets).map(|i| format!("slot.{i}")).collect();
    names.extend(["token", "tickets"].map(String::from));
    let ids: Vec<(String, FileKey)> = names
        .into_iter()
        .filter_map(|n| file_id(&res.join(&n)).map(|id| (n, id)))
        .collect();
    let mut held: Vec<String> = Vec::new();
    for l in proc_flocks() {
        if !pids.contains(&l.pid) {
            continue;
        }
        if let Some((n, _)) = ids.iter().find(|(_, id)| *id == (l.dev, l.ino))
            && !held.contains(n)
        {
            held.push(n.clone());
        }
    }
    if held.is_empty() {
        "-".into()
    } else {
        held.sort();
        held.join(",")
    }
}

// ------------------------------------------------------------------ bystander

/// What a bystander may lock, beside the slots.
const BYSTANDER_TARGETS: [&str; 4] = [".", "tickets", "token", "line"];

/// A process outside elect that now and then holds a flock on the resource
/// directory, `tickets`, `token` or `line/`, exclusive or shared, for 100 to
/// 900 ms, as systemd-tmpfiles, a backup tool or a stopped participant
/// might. Each hold is logged `BYSTAND` before the lock is tried and
/// `BYSTOP` after it is dropped (`got=0` if it could not be had).
fn bystander(log: &Log, res: &Path, until: u64) {
    let mut rng = Rng::seeded(0xb457);
    while now_ns() < until {
        sleep_ns(rng.range(300, 1500) * MS);
        if now_ns() >= until {
            break;
        }
        let target = BYSTANDER_TARGETS[rng.range(0, 3) as usize];
        let exclusive = rng.chance(50);
        let what = format!(
            "lock={} mode={}",
            if target == "." { "dir" } else { target },
            if exclusive { "ex" } else { "sh" }
        );
        let Ok(file) = std::fs::File::open(res.join(target)) else {
            continue;
        };
        log.me(0, "bystander", "BYSTAND", None, None, &what);
        let how = if exclusive {
            libc::LOCK_EX
        } else {
            libc::LOCK_SH
        };
        // SAFETY: flock on a descriptor we own.
        let got = unsafe { libc::flock(file.as_raw_fd(), how | libc::LOCK_NB) } == 0;
        if got {
            sleep_ns(rng.range(100, 900) * MS);
            // SAFETY: as above.
            unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
        }
        log.me(
            0,
            "bystander",
            "BYSTOP",
            None,
            None,
            &format!("{what} got={}", u8::from(got)),
        );
    }
}

// ------------------------------------------------------------------ parent

/// The result of a run.
pub struct Outcome {
    /// The one-screen summary.
    pub summary: String,
    /// No violation of (a), (b), (c), (e), and in local mode (d), (g), (h).
    pub passed: bool,
    /// The log (kept when the run failed or `--keep` was given).
    pub log: PathBuf,
    /// etcd mode: holders whose process group was stopped past the TTL.
    pub long_stops: u64,
    /// etcd mode: of those, how many acted no more and were stopped in time.
    pub long_stops_handled: u64,
}

/// The live workers: wid → (pid, position). Reaping happens only under its
/// lock, so a pid found in it is never a recycled one.
struct Procs {
    live: HashMap<u64, (i32, usize)>,
}

/// Runs the torture and analyses the log.
pub fn run(opts: &Options, how: &SelfExec) -> std::io::Result<Outcome> {
    let work = tempfile::Builder::new()
        .prefix("elect-torture.")
        .tempdir()?;
    // etcd mode: a prefix of this run's own, and the fences where the run
    // directory would be.
    let mode = opts.etcd.as_ref().map(|endpoints| EtcdMode {
        endpoints: endpoints.clone(),
        prefix: format!("elect-torture/{}-{}/", std::process::id(), now_ns()),
        ttl: opts.ttl,
    });
    let admin = match &mode {
        Some(m) => Some(Admin::connect(&m.endpoints).map_err(std::io::Error::other)?),
        None => None,
    };
    // etcd may grant more than asked (its minimum TTL): what counts is the
    // granted TTL.
    let ttl = match &admin {
        Some(a) => a
            .granted_ttl(opts.ttl)
            .map_err(std::io::Error::other)?
            .max(opts.ttl),
        None => opts.ttl,
    };
    let run_dir = match &mode {
        Some(_) => work.path().join("fences"),
        None => opts.dir.clone().unwrap_or_else(|| work.path().join("run")),
    };
    if mode.is_some() {
        std::fs::create_dir(&run_dir)?;
    }
    let log_path = opts
        .log
        .clone()
        .unwrap_or_else(|| work.path().join("torture.log"));
    let elect = find_elect(opts, how, work.path(), mode.as_ref());
    // Long stops of waiters, fork children and the bystander are about the
    // local engine.
    let local = mode.is_none();
    let forks = local && opts.forks;
    let long_stop = if local {
        opts.long_stop
    } else {
        Duration::ZERO
    };
    let mut kinds = vec![Kind::Block, Kind::Timeout, Kind::Async];
    if elect.is_ok() {
        kinds.push(Kind::Cli);
    }
    let positions: Vec<Kind> = (0..opts.workers).map(|i| kinds[i % kinds.len()]).collect();
    let log = Arc::new(Log::open(&log_path)?);
    let start = now_ns();
    let until = start + (opts.seconds * SEC as f64) as u64;
    log.me(
        0,
        "parent",
        "START",
        None,
        None,
        &match &mode {
            None => format!(
                "tickets={} workers={} long_stop_ms={} forks={} bystander={}",
                opts.tickets,
                opts.workers,
                long_stop.as_millis(),
                u8::from(forks),
                u8::from(opts.bystander)
            ),
            Some(m) => format!(
                "tickets={} workers={} etcd={} prefix={} ttl_ms={}",
                opts.tickets,
                opts.workers,
                m.endpoints,
                m.prefix,
                ttl.as_millis()
            ),
        },
    );
    let elect_path = elect
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let procs = Arc::new(Mutex::new(Procs {
        live: HashMap::new(),
    }));
    let mut next_wid = 1u64;
    let spawn = |pos: usize, wid: u64, procs: &mut Procs| {
        let kind = positions[pos];
        let mut role = vec![
            "__worker".to_string(),
            kind.name().into(),
            wid.to_string(),
            log_path.to_string_lossy().into_owned(),
            run_dir.to_string_lossy().into_owned(),
            opts.tickets.to_string(),
            until.to_string(),
            how.encode(),
            elect_path.clone(),
            if forks { "1" } else { "0" }.into(),
        ];
        role.extend(EtcdMode::encode(mode.as_ref()));
        let mut cmd = how.command(&role);
        cmd.process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        match cmd.spawn() {
            Ok(child) => {
                let pid = child.id();
                log.rec(pid, wid, kind.name(), "SPAWN", None, None, "");
                procs.live.insert(wid, (pid as i32, pos));
            }
            Err(e) => log.me(wid, "parent", "SPAWNERR", None, None, &e.to_string()),
        }
    };
    {
        let mut p = procs.lock().unwrap();
        for pos in 0..opts.workers {
            spawn(pos, next_wid, &mut p);
            next_wid += 1;
        }
    }
    // The bystander: a process of its own, not one of the workers (the
    // chaos leaves it alone); it ends by itself at the end of the run.
    if local && opts.bystander {
        let role = [
            "__bystander".to_string(),
            log_path.to_string_lossy().into_owned(),
            run_dir.join(RESOURCE).to_string_lossy().into_owned(),
            until.to_string(),
        ];
        let spawned = how
            .command(&role)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn();
        if let Err(e) = spawned {
            log.me(
                0,
                "parent",
                "SPAWNERR",
                None,
                None,
                &format!("bystander: {e}"),
            );
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let chaos = {
        let (log, procs, stop) = (Arc::clone(&log), Arc::clone(&procs), Arc::clone(&stop));
        let (log_path, run_dir, workers) = (log_path.clone(), run_dir.clone(), opts.workers);
        let on_etcd = admin.map(|a| (a, mode.clone().expect("etcd mode").prefix, ttl));
        let tickets = opts.tickets;
        std::thread::spawn(move || {
            chaos(
                &log,
                &log_path,
                &procs,
                &stop,
                &run_dir,
                workers,
                on_etcd,
                (long_stop, tickets),
            )
        })
    };
    // Reap and respawn until the end.
    let mut respawns = 0u64;
    loop {
        let now = now_ns();
        let mut p = procs.lock().unwrap();
        for (_, pos) in reap(&log, &mut p) {
            if now < until {
                spawn(pos, next_wid, &mut p);
                next_wid += 1;
                respawns += 1;
            }
        }
        let empty = p.live.is_empty();
        drop(p);
        if now >= until {
            break;
        }
        if empty {
            break;
        }
        sleep_ns(2 * MS);
    }
    stop.store(true, Ordering::SeqCst);
    chaos.join().expect("chaos thread");
    // Drain: workers finish their current round; one that does not is hung.
    let drain_end = now_ns() + DRAIN_LIMIT;
    loop {
        let mut p = procs.lock().unwrap();
        reap(&log, &mut p);
        if p.live.is_empty() {
            break;
        }
        if now_ns() >= drain_end {
            for (&wid, &(pid, _)) in &p.live {
                log.rec(pid as u32, wid, "chaos", "HANG", None, None, "");
                log.rec(pid as u32, wid, "chaos", "KILL", None, None, "hung");
                // SAFETY: signals our own live (unreaped) child's group.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
            }
            drop(p);
            sleep_ns(100 * MS);
            let mut p = procs.lock().unwrap();
            reap(&log, &mut p);
            break;
        }
        drop(p);
        sleep_ns(5 * MS);
    }
    log.me(0, "parent", "END", None, None, "");
    let text = std::fs::read_to_string(&log_path)?;
    let analysis = analyse(&text, opts.tickets);
    let mut summary = String::new();
    let kinds_line: Vec<String> = [Kind::Block, Kind::Timeout, Kind::Async, Kind::Cli]
        .iter()
        .map(|k| {
            format!(
                "{} {}",
                positions.iter().filter(|p| *p == k).count(),
                k.name()
            )
        })
        .collect();
    let _ = writeln!(
        summary,
        "elect torture: {:.1} s, {} workers ({}), {} ticket(s), {} respawns",
        opts.seconds,
        opts.workers,
        kinds_line.join(", "),
        opts.tickets,
        respawns
    );
    if let Some(m) = &mode {
        let _ = writeln!(
            summary,
            "store: etcd {} prefix {} lease TTL {} ms (asked {} ms)",
            m.endpoints,
            m.prefix,
            ttl.as_millis(),
            opts.ttl.as_millis()
        );
    }
    if let Err(why) = &elect {
        let _ = writeln!(summary, "CLI workers skipped: {why}");
    }
    summary.push_str(&analysis.summary);
    let passed = analysis.violations == 0;
    let keep = opts.keep || !passed;
    let _ = writeln!(
        summary,
        "log: {}{}",
        log_path.display(),
        if keep || opts.log.is_some() {
            ""
        } else {
            " (removed)"
        }
    );
    let _ = writeln!(summary, "RESULT: {}", if passed { "PASS" } else { "FAIL" });
    if keep {
        let _ = work.keep();
    }
    Ok(Outcome {
        summary,
        passed,
        log: log_path,
        long_stops: analysis.long_stops,
        long_stops_handled: analysis.long_stops_handled,
    })
}

/// Reaps exited workers (logging `REAP`), returning their (wid, position).
fn reap(log: &Log, p: &mut Procs) -> Vec<(u64, usize)> {
    let mut out = Vec::new();
    loop {
        let mut status = 0;
        // SAFETY: plain waitpid on our own children.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            break;
        }
        let Some((&wid, &(_, pos))) = p.live.iter().find(|(_, (p, _))| *p == pid) else {
            continue;
        };
        p.live.remove(&wid);
        let how = if libc::WIFSIGNALED(status) {
            format!("signal={}", libc::WTERMSIG(status))
        } else {
            format!("code={}", libc::WEXITSTATUS(status))
        };
        log.rec(pid as u32, wid, "parent", "REAP", None, None, &how);
        out.push((wid, pos));
    }
    out
}

/// Follows the log to know who holds and who waits.
struct Tracker {
    offset: u64,
    partial: String,
    holding: HashSet<u64>,
    /// Waiting workers, with when they logged WAIT.
    waiting: HashMap<u64, u64>,
}

impl Tracker {
    fn refresh(&mut self, path: &Path) {
        let Ok(mut f) = std::fs::File::open(path) else {
            return;
        };
        if f.seek(std::io::SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut buf = String::new();
        if f.read_to_string(&mut buf).is_err() {
            return;
        }
        self.offset += buf.len() as u64;
        self.partial.push_str(&buf);
        let complete = match self.partial.rfind('\n') {
            Some(i) => i + 1,
            None => return,
        };
        let lines: String = self.partial.drain(..complete).collect();
        for line in lines.lines() {
            let f: Vec<&str> = line.splitn(8, ' ').collect();
            if f.len() < 5 {
                continue;
            }
            let Ok(wid) = f[2].parse::<u64>() else {
                continue;
            };
            match f[4] {
                "WAIT" => {
                    let t = f[0].parse().unwrap_or(0);
                    self.waiting.insert(wid, t);
                }
                "ENTER" => {
                    self.waiting.remove(&wid);
                    self.holding.insert(wid);
                }
                "EXIT" | "LOST" | "TERM" | "GIVEUP" | "CANCEL" | "ERR" | "CLIEXIT" | "REAP" => {
                    self.waiting.remove(&wid);
                    self.holding.remove(&wid);
                }
                _ => {}
            }
        }
    }
}

/// The chaos thread: kills, stops and continues workers, removes the run
/// directory every 2 to 5 s. Logs each act before it acts.
///
/// In local mode it also stops waiters for `long_stop` (longer than any
/// hold; up to [`MAX_LONG_STOPPED`] at once, the first 0.5 to 1.5 s into
/// the run, the next 1 to 3 s after), half of the time the one that has
/// waited longest (likely the head of the line), and never kills them; and
/// after each stop it logs which of the resource's files the stopped
/// process group holds flocks on (`HELD locks=...`). A long stop ends at
/// its time even after the end of the run.
///
/// In etcd mode (`on_etcd`: the parent's client, the run's key prefix and
/// the granted TTL) it deletes the run's keys instead, every 4 to 8 s, does
/// not kill stopped workers, and every 1.5 to 3 s stops the whole process
/// group of one holder for TTL + 0.3 to 1.3 s (`STOP ... long`).
#[allow(clippy::too_many_arguments)]
fn chaos(
    log: &Log,
    log_path: &Path,
    procs: &Mutex<Procs>,
    stop: &AtomicBool,
    run_dir: &Path,
    workers: usize,
    on_etcd: Option<(Admin, String, Duration)>,
    (long_stop, tickets): (Duration, u32),
) {
    let mut rng = Rng::seeded(0xc4a05);
    let mut tracker = Tracker {
        offset: 0,
        partial: String::new(),
        holding: HashSet::new(),
        waiting: HashMap::new(),
    };
    // (wid, pid, until, long)
    let mut stopped: Vec<(u64, i32, u64, bool)> = Vec::new();
    let etcd = on_etcd.is_some();
    let res = run_dir.join(RESOURCE);
    let long_ns = if etcd { 0 } else { long_stop.as_nanos() as u64 };
    let mut next_long_waiter = now_ns() + rng.range(500, 1500) * MS;
    let (lo, hi) = if etcd { (4000, 8000) } else { (2000, 5000) };
    let mut next_rmdir = now_ns() + rng.range(lo, hi) * MS;
    let mut next_long = now_ns() + rng.range(1500, 3000) * MS;
    let mut long_stopped: Option<u64> = None;
    let max_stopped = (workers / 3).max(1);
    let signal = |wid: u64, what: &str, sig: libc::c_int, extra: &str| -> Option<i32> {
        let p = procs.lock().unwrap();
        let &(pid, _) = p.live.get(&wid)?;
        log.rec(pid as u32, wid, "chaos", what, None, None, extra);
        // SAFETY: pid is a live or zombie child of ours (reaping needs the lock we hold).
        unsafe { libc::kill(-pid, sig) };
        Some(pid)
    };
    while !stop.load(Ordering::SeqCst) {
        sleep_ns(rng.range(20, 80) * MS);
        let now = now_ns();
        stopped.retain(|&(wid, _, until, _)| {
            if until <= now {
                signal(wid, "CONT", libc::SIGCONT, "");
                false
            } else {
                true
            }
        });
        if long_stopped.is_some_and(|w| !stopped.iter().any(|s| s.0 == w)) {
            long_stopped = None;
        }
        if long_ns > 0
            && now >= next_long_waiter
            && stopped.iter().filter(|s| s.3).count() < MAX_LONG_STOPPED
        {
            tracker.refresh(log_path);
            let mut running: Vec<(u64, u64)> = tracker
                .waiting
                .iter()
                .filter(|(w, _)| !stopped.iter().any(|s| s.0 == **w))
                .map(|(&w, &t)| (t, w))
                .collect();
            running.sort_unstable();
            if !running.is_empty() {
                let (_, wid) = if rng.chance(50) {
                    running[0]
                } else {
                    running[rng.range(0, running.len() as u64 - 1) as usize]
                };
                let ms = long_ns / MS;
                if let Some(pid) =
                    signal(wid, "STOP", libc::SIGSTOP, &format!("waiter ms={ms} long"))
                {
                    stopped.push((wid, pid, now_ns() + long_ns, true));
                    let held = locks_of_stopped(pid, &res, tickets);
                    log.rec(
                        pid as u32,
                        wid,
                        "chaos",
                        "HELD",
                        None,
                        None,
                        &format!("locks={held}"),
                    );
                }
                next_long_waiter = now_ns() + rng.range(1000, 3000) * MS;
            }
            continue;
        }
        if let Some((admin, prefix, _)) = &on_etcd
            && now >= next_rmdir
        {
            log.me(0, "chaos", "RMDIR", None, None, &format!("etcd:{prefix}"));
            let r = admin.delete_prefix(prefix);
            log.me(
                0,
                "chaos",
                "RMDONE",
                None,
                None,
                &match r {
                    Ok(n) => format!("ok=true deleted={n}"),
                    Err(e) => format!("ok=false {e}"),
                },
            );
            next_rmdir = now_ns() + rng.range(4000, 8000) * MS;
            continue;
        }
        if now >= next_rmdir {
            log.me(0, "chaos", "RMDIR", None, None, &run_dir.to_string_lossy());
            let mut tries = 0;
            let ok = loop {
                tries += 1;
                match std::fs::remove_dir_all(run_dir) {
                    Ok(()) => break true,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break true,
                    Err(_) if tries < 100 => continue,
                    Err(_) => break false,
                }
            };
            log.me(
                0,
                "chaos",
                "RMDONE",
                None,
                None,
                &format!("ok={ok} tries={tries}"),
            );
            next_rmdir = now_ns() + rng.range(2000, 5000) * MS;
            continue;
        }
        tracker.refresh(log_path);
        let pick = |set: &HashSet<u64>, rng: &mut Rng| -> Option<u64> {
            let mut v: Vec<u64> = set.iter().copied().collect();
            v.sort_unstable();
            (!v.is_empty()).then(|| v[rng.range(0, v.len() as u64 - 1) as usize])
        };
        if let Some((_, _, ttl)) = &on_etcd
            && long_stopped.is_none()
            && now >= next_long
        {
            let free: HashSet<u64> = tracker
                .holding
                .iter()
                .copied()
                .filter(|w| !stopped.iter().any(|s| s.0 == *w))
                .collect();
            if let Some(wid) = pick(&free, &mut rng) {
                let ms = ttl.as_millis() as u64 + rng.range(300, 1300);
                if let Some(pid) =
                    signal(wid, "STOP", libc::SIGSTOP, &format!("holder ms={ms} long"))
                {
                    stopped.push((wid, pid, now_ns() + ms * MS, true));
                    long_stopped = Some(wid);
                }
                next_long = now_ns() + ms * MS + rng.range(1500, 3000) * MS;
            }
            continue;
        }
        // etcd mode leaves stopped workers alive, to see what they do when
        // continued.
        let (holding, waiting): (HashSet<u64>, HashSet<u64>) = if etcd {
            let alive = |set: &HashSet<u64>| -> HashSet<u64> {
                set.iter()
                    .copied()
                    .filter(|w| !stopped.iter().any(|s| s.0 == *w))
                    .collect()
            };
            (
                alive(&tracker.holding),
                alive(&tracker.waiting.keys().copied().collect()),
            )
        } else {
            // A waiter in a long stop stays stopped its full time.
            let short = |set: HashSet<u64>| -> HashSet<u64> {
                set.into_iter()
                    .filter(|w| !stopped.iter().any(|s| s.0 == *w && s.3))
                    .collect()
            };
            (
                short(tracker.holding.clone()),
                short(tracker.waiting.keys().copied().collect()),
            )
        };
        let roll = rng.range(0, 99);
        if roll < 25 {
            if let Some(wid) = pick(&holding, &mut rng) {
                signal(wid, "KILL", libc::SIGKILL, "holder");
                stopped.retain(|s| s.0 != wid);
            }
        } else if roll < 40 {
            if let Some(wid) = pick(&waiting, &mut rng) {
                signal(wid, "KILL", libc::SIGKILL, "waiter");
                stopped.retain(|s| s.0 != wid);
            }
        } else if roll < 75 && stopped.len() < max_stopped {
            let set = if rng.chance(50) { &holding } else { &waiting };
            if let Some(wid) = pick(set, &mut rng)
                && !stopped.iter().any(|s| s.0 == wid)
            {
                let ms = rng.range(5, MAX_STOP_MS);
                let role = if holding.contains(&wid) {
                    "holder"
                } else {
                    "waiter"
                };
                if let Some(pid) = signal(wid, "STOP", libc::SIGSTOP, &format!("{role} ms={ms}")) {
                    stopped.push((wid, pid, now_ns() + ms * MS, false));
                    if !etcd {
                        let held = locks_of_stopped(pid, &res, tickets);
                        log.rec(
                            pid as u32,
                            wid,
                            "chaos",
                            "HELD",
                            None,
                            None,
                            &format!("locks={held}"),
                        );
                    }
                }
            }
        }
    }
    // Short stops end now; a long stop of a waiter lasts its full time.
    stopped.sort_unstable_by_key(|s| s.2);
    for (wid, _, until, long) in stopped {
        if long && !etcd {
            sleep_ns(until.saturating_sub(now_ns()));
            signal(wid, "CONT", libc::SIGCONT, "");
        } else {
            signal(wid, "CONT", libc::SIGCONT, "end");
        }
    }
}

/// etcd mode: the parent's own client, for what no worker does: learning
/// the TTL etcd grants, and deleting the run's keys (the chaos).
#[cfg(feature = "etcd")]
struct Admin {
    rt: tokio::runtime::Runtime,
    client: etcd_client::Client,
}

#[cfg(feature = "etcd")]
impl Admin {
    fn connect(endpoints: &str) -> Result<Admin, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("no runtime: {e}"))?;
        let list: Vec<String> = endpoints.split(',').map(str::to_string).collect();
        let options = etcd_client::ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(5));
        let client = rt
            .block_on(etcd_client::Client::connect(list, Some(options)))
            .map_err(|e| format!("cannot connect to etcd at {endpoints}: {e}"))?;
        Ok(Admin { rt, client })
    }

    /// The TTL etcd grants when `ttl` is asked for.
    fn granted_ttl(&self, ttl: Duration) -> Result<Duration, String> {
        let mut c = self.client.clone();
        self.rt.block_on(async move {
            let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
            let g = c
                .lease_grant(secs as i64, None)
                .await
                .map_err(|e| format!("cannot grant a lease: {e}"))?;
            let _ = c.lease_revoke(g.id()).await;
            Ok(Duration::from_secs(g.ttl().max(1) as u64))
        })
    }

    /// Deletes every key under `prefix`; how many there were.
    fn delete_prefix(&self, prefix: &str) -> Result<i64, String> {
        let mut c = self.client.clone();
        let prefix = prefix.to_string();
        self.rt.block_on(async move {
            c.delete(
                prefix,
                Some(etcd_client::DeleteOptions::new().with_prefix()),
            )
            .await
            .map(|r| r.deleted())
            .map_err(|e| e.to_string())
        })
    }
}

#[cfg(not(feature = "etcd"))]
struct Admin;

#[cfg(not(feature = "etcd"))]
impl Admin {
    fn connect(_: &str) -> Result<Admin, String> {
        Err("etcd mode needs the etcd feature".into())
    }

    fn granted_ttl(&self, _: Duration) -> Result<Duration, String> {
        unreachable!()
    }

    fn delete_prefix(&self, _: &str) -> Result<i64, String> {
        unreachable!()
    }
}

/// Finds the `elect` binary and checks that `elect run` runs a command with
/// ELECT_SLOT and ELECT_TOKEN; the error says why CLI workers are skipped.
fn find_elect(
    opts: &Options,
    how: &SelfExec,
    work: &Path,
    mode: Option<&EtcdMode>,
) -> Result<PathBuf, String> {
    let path = match &opts.elect {
        Some(p) => p.clone(),
        None => {
            let exe = std::env::current_exe().map_err(|e| format!("no own path: {e}"))?;
            exe.parent()
                .and_then(Path::parent)
                .map(|d| d.join("elect"))
                .ok_or("no directory above this executable")?
        }
    };
    if !path.is_file() {
        return Err(format!(
            "{} not found (build it with `cargo build --release` or pass --elect PATH)",
            path.display()
        ));
    }
    let (argv, env) = how.argv(&["__cli-probe".to_string()]);
    let mut cmd = Command::new(&path);
    cmd.arg("run").arg("-t").arg("1");
    match mode {
        None => cmd.arg("-d").arg(work.join("probe")),
        Some(m) => cmd
            .arg("--etcd")
            .arg(&m.endpoints)
            .arg("--etcd-prefix")
            .arg(format!("{}probe/", m.prefix))
            .arg("--ttl")
            .arg(format!("{}ms", m.ttl.as_millis())),
    };
    cmd.arg("probe")
        .arg("--")
        .args(&argv)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(e) = env {
        cmd.env(ROLE_ENV, e);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{} cannot be run: {e}", path.display()))?;
    let deadline = now_ns() + 20 * SEC;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if now_ns() < deadline => sleep_ns(10 * MS),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`{} run` did not finish a trivial command in 20 s",
                    path.display()
                ));
            }
        }
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let ok_line = out.lines().any(|l| {
        l.strip_prefix("probe slot=0 token=")
            .is_some_and(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
    });
    if status.success() && ok_line {
        Ok(path)
    } else {
        Err(format!(
            "`{} run -t 1 {} probe -- CMD` does not work yet ({status}; stdout {:?}; stderr {:?})",
            path.display(),
            if mode.is_some() {
                "--etcd ENDPOINTS"
            } else {
                "-d DIR"
            },
            out.lines().last().unwrap_or(""),
            err.lines().next().unwrap_or("")
        ))
    }
}

// ------------------------------------------------------------------ analysis

/// One log record.
#[derive(Debug, Clone)]
pub struct Rec {
    /// CLOCK_MONOTONIC, ns.
    pub t: u64,
    /// The process the record is about.
    pub pid: u32,
    /// The worker (one incarnation of one worker process).
    pub wid: u64,
    /// Worker kind, `chaos` or `parent`.
    pub kind: String,
    /// WAIT, ENTER, EXIT, LOST, ...
    pub what: String,
    /// The slot, for holder records.
    pub slot: Option<u32>,
    /// The fencing token, for holder records.
    pub token: Option<u64>,
    /// The rest of the line.
    pub extra: String,
}

/// Parses the log; malformed lines are returned apart.
pub fn parse_log(text: &str) -> (Vec<Rec>, Vec<String>) {
    let mut recs = Vec::new();
    let mut bad = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.splitn(8, ' ').collect();
        let rec = (f.len() == 8)
            .then(|| {
                Some(Rec {
                    t: f[0].parse().ok()?,
                    pid: f[1].parse().ok()?,
                    wid: f[2].parse().ok()?,
                    kind: f[3].to_string(),
                    what: f[4].to_string(),
                    slot: if f[5] == "-" {
                        None
                    } else {
                        Some(f[5].parse().ok()?)
                    },
                    token: if f[6] == "-" {
                        None
                    } else {
                        Some(f[6].parse().ok()?)
                    },
                    extra: f[7].to_string(),
                })
            })
            .flatten();
        match rec {
            Some(r) => recs.push(r),
            None => bad.push(line.to_string()),
        }
    }
    recs.sort_by_key(|r| r.t);
    (recs, bad)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Exit,
    Lost,
    Term,
    Killed,
    Reaped,
    Open,
}

#[derive(Debug, Clone)]
struct Acq {
    wid: u64,
    kind: String,
    slot: u32,
    token: Option<u64>,
    wait: Option<u64>,
    enter: u64,
    end: u64,
    how: End,
    /// Times the holder saw its ticket intact before it saw it lost.
    checks: u64,
    /// CLI: when elect's SIGTERM arrived after the command saw the loss.
    term: Option<u64>,
    noterm: bool,
    nofd: bool,
    /// The logged holding as counted for (a), if counted.
    counted: Option<(u64, u64)>,
    /// etcd mode: accepted acts, as (time logged under the fence, time read
    /// before `is_held()` for library holders).
    acts: Vec<(u64, Option<u64>)>,
    /// etcd mode: acts the fence refused, likewise.
    fenced: Vec<(u64, Option<u64>)>,
    /// etcd mode, CLI: when the `elect run` of this holding exited, and how.
    cli_exit: Option<(u64, String)>,
}

#[derive(Debug, Clone)]
struct Wait {
    wid: u64,
    kind: String,
    start: u64,
    end: u64,
    /// The record that ended it: ENTER, GIVEUP, CANCEL, KILL, ...
    ended: String,
    /// The limit of a wait with a timeout or cancel, in ns.
    limit: Option<u64>,
}

/// The analyser's verdict.
pub struct Analysis {
    /// Lines for the summary.
    pub summary: String,
    /// How many violations of (a), (b), (c), (e) and of log integrity.
    pub violations: usize,
    /// One line per kind of violation found, for tests.
    pub found: Vec<String>,
    /// etcd mode: stops of a holder's process group past the TTL.
    pub long_stops: u64,
    /// etcd mode: of those, how many the holder handled as (f) asks.
    pub long_stops_handled: u64,
}

fn checks_of(extra: &str) -> u64 {
    extra
        .split_whitespace()
        .find_map(|w| w.strip_prefix("checks=")?.parse().ok())
        .unwrap_or(0)
}

fn ms(ns: u64) -> f64 {
    ns as f64 / MS as f64
}

/// One step of a sweep: (time, holders after it, holding, 1 for a start).
type SweepStep = (u64, usize, usize, u8);

/// Sweeps spans `(start, end, holding)`: the most at once, the steps, and
/// (kind, detail) of every time more than `n` overlapped or two shared a
/// slot.
fn sweep(
    acqs: &[Acq],
    spans: &[(u64, u64, usize)],
    n: usize,
    what: &str,
) -> (usize, Vec<SweepStep>, Vec<(String, String)>) {
    let mut events: Vec<(u64, u8, usize)> = Vec::new();
    for &(s, e, i) in spans {
        events.push((s, 1, i));
        events.push((e, 0, i));
    }
    events.sort_unstable();
    let mut issues = Vec::new();
    let mut active: Vec<usize> = Vec::new();
    let mut max_held = 0usize;
    let mut steps: Vec<SweepStep> = Vec::new();
    let t0 = events.first().map_or(0, |e| e.0);
    let at = |t: u64| format!("+{:.3} s", ms(t - t0) / 1000.0);
    for &(t, start, i) in &events {
        if start == 1 {
            if let Some(&j) = active.iter().find(|&&j| acqs[j].slot == acqs[i].slot) {
                issues.push((
                    "(a) slot shared".to_string(),
                    format!(
                        "{what}: at t={t} ns ({}) wid {} ({}) token {:?} entered slot {} held by wid {} ({}) token {:?}",
                        at(t),
                        acqs[i].wid,
                        acqs[i].kind,
                        acqs[i].token,
                        acqs[i].slot,
                        acqs[j].wid,
                        acqs[j].kind,
                        acqs[j].token
                    ),
                ));
            }
            active.push(i);
            if active.len() > n {
                let who: Vec<String> = active
                    .iter()
                    .map(|&j| {
                        format!(
                            "wid {} {} slot {} token {:?}",
                            acqs[j].wid, acqs[j].kind, acqs[j].slot, acqs[j].token
                        )
                    })
                    .collect();
                issues.push((
                    "(a) too many holders".to_string(),
                    format!("{what}: {} at t={t} ns: {}", active.len(), who.join("; ")),
                ));
            }
            max_held = max_held.max(active.len());
        } else {
            active.retain(|&j| j != i);
        }
        steps.push((t, active.len(), i, start));
    }
    (max_held, steps, issues)
}

/// Analyses a log for a resource with `tickets` tickets.
pub fn analyse(text: &str, tickets: u32) -> Analysis {
    let (recs, bad) = parse_log(text);
    let n = tickets as usize;
    let mut out = String::new();
    let mut found: Vec<String> = Vec::new();
    let mut violations = 0usize;
    let mut flag = |found: &mut Vec<String>, what: &str, detail: String| {
        violations += 1;
        if !found.iter().any(|f| f.starts_with(what)) {
            found.push(format!("{what}: {detail}"));
        }
    };
    if !bad.is_empty() {
        flag(
            &mut found,
            "log",
            format!("{} malformed line(s), first {:?}", bad.len(), bad[0]),
        );
    }
    let (t0, t_end) = match (recs.first(), recs.last()) {
        (Some(a), Some(b)) => (a.t, b.t),
        _ => (0, 0),
    };
    let rel = |t: u64| ms(t.saturating_sub(t0)) / 1000.0;
    // etcd mode: the START record gives the granted lease TTL.
    let ttl: Option<u64> = recs
        .iter()
        .find(|r| r.what == "START")
        .and_then(|r| {
            r.extra
                .split_whitespace()
                .find_map(|w| w.strip_prefix("ttl_ms=")?.parse::<u64>().ok())
        })
        .map(|t| t * MS);

    // Walk the records in time order.
    let mut acqs: Vec<Acq> = Vec::new();
    let mut waits: Vec<Wait> = Vec::new();
    let mut open_wait: HashMap<u64, (u64, String, Option<u64>)> = HashMap::new();
    // Local mode: forks, stops with the locks the stopped group held, long
    // stops, and the bystander's holds.
    let (mut forks, mut forks_unknown) = (0u64, 0u64);
    let mut stop_held: HashMap<u64, String> = HashMap::new();
    let mut locked_stops: Vec<(u64, u64, u64, String)> = Vec::new();
    let mut stop_long: HashMap<u64, bool> = HashMap::new();
    let mut long_waiter_stops: Vec<(u64, u64, u64)> = Vec::new();
    let mut by_open: Option<(u64, String)> = None;
    let mut by_holds: Vec<(u64, u64, String)> = Vec::new();
    let mut open_acq: HashMap<u64, Vec<usize>> = HashMap::new();
    let mut by_token: HashMap<(u64, Option<u64>), usize> = HashMap::new();
    let mut stop_start: HashMap<u64, u64> = HashMap::new();
    let mut stops: Vec<(u64, u64, u64)> = Vec::new();
    let mut killed_at: HashMap<u64, u64> = HashMap::new();
    let mut rm_start: Option<u64> = None;
    let mut rmdirs: Vec<(u64, u64)> = Vec::new();
    let mut count: HashMap<String, u64> = HashMap::new();
    let mut errors: HashMap<String, u64> = HashMap::new();
    let mut cli_exits: HashMap<String, u64> = HashMap::new();
    let close_wait = |open_wait: &mut HashMap<u64, (u64, String, Option<u64>)>,
                      waits: &mut Vec<Wait>,
                      r: &Rec| {
        if let Some((start, kind, limit)) = open_wait.remove(&r.wid) {
            waits.push(Wait {
                wid: r.wid,
                kind,
                start,
                end: r.t,
                ended: r.what.clone(),
                limit,
            });
        }
    };
    // A stop that ended: remember which of the resource's files it held
    // flocks on, and whether it was a long stop of a waiter.
    let mut end_stop = |held: &mut HashMap<u64, String>,
                        long: &mut HashMap<u64, bool>,
                        wid: u64,
                        s: u64,
                        e: u64| {
        if let Some(locks) = held.remove(&wid)
            && locks != "-"
        {
            locked_stops.push((wid, s, e, locks));
        }
        if long.remove(&wid) == Some(true) {
            long_waiter_stops.push((wid, s, e));
        }
    };
    for r in &recs {
        *count
            .entry(format!(
                "{} {}",
                r.what,
                r.extra.split_whitespace().next().unwrap_or("")
            ))
            .or_default() += 1;
        *count.entry(r.what.clone()).or_default() += 1;
        match r.what.as_str() {
            "WAIT" => {
                close_wait(&mut open_wait, &mut waits, r);
                let limit = r
                    .extra
                    .split_whitespace()
                    .find_map(|w| {
                        w.strip_prefix("limit=")?
                            .strip_suffix("ms")?
                            .parse::<u64>()
                            .ok()
                    })
                    .map(|ms| ms * MS);
                open_wait.insert(r.wid, (r.t, r.kind.clone(), limit));
            }
            "FORKED" => {
                forks += 1;
                if r.extra.contains("held=0") {
                    flag(
                        &mut found,
                        "(a) fork child freed the parent's slot",
                        format!(
                            "wid {} ({}) token {:?}: after its fork child dropped its copy of the ticket and exited, the kernel no longer listed the parent's lock on slot {:?} ({})",
                            r.wid, r.kind, r.token, r.slot, r.extra
                        ),
                    );
                } else if !r.extra.contains("held=1") {
                    forks_unknown += 1;
                }
            }
            "HELD" if stop_start.contains_key(&r.wid) => {
                let locks = r.extra.strip_prefix("locks=").unwrap_or("-");
                stop_held.insert(r.wid, locks.to_string());
            }
            "BYSTAND" => by_open = Some((r.t, r.extra.clone())),
            "BYSTOP" => {
                if let Some((s, what)) = by_open.take() {
                    by_holds.push((s, r.t, format!("{what} {}", r.extra)));
                }
            }
            "ENTER" => {
                let wait = open_wait.get(&r.wid).map(|w| w.0);
                close_wait(&mut open_wait, &mut waits, r);
                let slot = r.slot.unwrap_or(u32::MAX);
                if slot >= tickets {
                    flag(
                        &mut found,
                        "(a) slot",
                        format!("wid {} entered slot {:?} of {tickets}", r.wid, r.slot),
                    );
                }
                if r.token.is_none() {
                    flag(
                        &mut found,
                        "(b) token",
                        format!("wid {} entered without a token", r.wid),
                    );
                }
                acqs.push(Acq {
                    wid: r.wid,
                    kind: r.kind.clone(),
                    slot,
                    token: r.token,
                    wait,
                    enter: r.t,
                    end: t_end,
                    how: End::Open,
                    checks: 0,
                    term: None,
                    noterm: false,
                    nofd: r.extra.contains("nofd"),
                    counted: None,
                    acts: Vec::new(),
                    fenced: Vec::new(),
                    cli_exit: None,
                });
                open_acq.entry(r.wid).or_default().push(acqs.len() - 1);
                by_token.insert((r.wid, r.token), acqs.len() - 1);
            }
            "ACT" | "FENCED" => {
                let Some(&i) = by_token.get(&(r.wid, r.token)) else {
                    flag(
                        &mut found,
                        "log",
                        format!(
                            "{} of wid {} token {:?} outside a holding",
                            r.what, r.wid, r.token
                        ),
                    );
                    continue;
                };
                let checked = r
                    .extra
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("checked=")?.parse().ok());
                if r.what == "ACT" {
                    acqs[i].acts.push((r.t, checked));
                } else {
                    acqs[i].fenced.push((r.t, checked));
                }
            }
            "EXIT" | "LOST" | "TERM" | "NOTERM" => {
                let Some(&i) = by_token.get(&(r.wid, r.token)) else {
                    continue;
                };
                let a = &mut acqs[i];
                match (r.what.as_str(), a.how) {
                    ("TERM", End::Lost) => a.term = Some(r.t),
                    ("NOTERM", _) => a.noterm = true,
                    (what, End::Open) => {
                        a.end = r.t;
                        a.how = match what {
                            "EXIT" => End::Exit,
                            "LOST" => End::Lost,
                            _ => End::Term,
                        };
                        a.checks = checks_of(&r.extra);
                        if let Some(v) = open_acq.get_mut(&r.wid) {
                            v.retain(|&j| j != i);
                        }
                    }
                    _ => {}
                }
            }
            "GIVEUP" | "CANCEL" | "ERR" | "CLIEXIT" => {
                close_wait(&mut open_wait, &mut waits, r);
                if r.what == "ERR" {
                    let key: String = r.extra.chars().take(100).collect();
                    *errors.entry(key).or_default() += 1;
                }
                if r.what == "CLIEXIT" && ttl.is_some() {
                    // The elect run of the last holding of this worker
                    // ended: its command, maybe SIGKILLed by elect without
                    // a word, ended no later.
                    let code = r.extra.split_whitespace().next().unwrap_or("");
                    let last = open_acq
                        .get(&r.wid)
                        .and_then(|v| v.last().copied())
                        .or_else(|| {
                            acqs.iter().rposition(|a| {
                                a.wid == r.wid && a.kind == "cli" && a.cli_exit.is_none()
                            })
                        });
                    if let Some(i) = last {
                        let a = &mut acqs[i];
                        a.cli_exit = Some((r.t, code.to_string()));
                        if a.how == End::Open {
                            a.end = r.t;
                            a.how = if code == "code=76" {
                                End::Lost
                            } else {
                                End::Exit
                            };
                        }
                    }
                    if let Some(v) = open_acq.get_mut(&r.wid) {
                        v.clear();
                    }
                }
                if r.what == "CLIEXIT" {
                    let code = r.extra.split_whitespace().next().unwrap_or("");
                    *cli_exits.entry(code.to_string()).or_default() += 1;
                    if code == "code=125" {
                        let key: String = r.extra.chars().take(100).collect();
                        *errors.entry(key).or_default() += 1;
                    }
                }
            }
            "KILL" | "REAP" => {
                close_wait(&mut open_wait, &mut waits, r);
                if r.what == "KILL" {
                    killed_at.entry(r.wid).or_insert(r.t);
                }
                for i in open_acq.remove(&r.wid).unwrap_or_default() {
                    acqs[i].end = r.t;
                    acqs[i].how = if r.what == "KILL" {
                        End::Killed
                    } else {
                        End::Reaped
                    };
                }
                if let Some(s) = stop_start.remove(&r.wid) {
                    stops.push((r.wid, s, r.t));
                    end_stop(&mut stop_held, &mut stop_long, r.wid, s, r.t);
                }
            }
            "STOP" => {
                stop_start.insert(r.wid, r.t);
                stop_long.insert(
                    r.wid,
                    r.extra.starts_with("waiter") && r.extra.contains("long"),
                );
            }
            "CONT" => {
                if let Some(s) = stop_start.remove(&r.wid) {
                    stops.push((r.wid, s, r.t));
                    end_stop(&mut stop_held, &mut stop_long, r.wid, s, r.t);
                }
            }
            "RMDIR" => rm_start = Some(r.t),
            "RMDONE" => {
                if let Some(s) = rm_start.take() {
                    rmdirs.push((s, r.t));
                }
            }
            "HANG" => flag(
                &mut found,
                "(e) hang",
                format!("wid {} ({}) never finished", r.wid, r.kind),
            ),
            _ => {}
        }
    }
    for (wid, (start, kind, limit)) in open_wait.drain() {
        waits.push(Wait {
            wid,
            kind,
            start,
            end: t_end,
            ended: "END".into(),
            limit,
        });
    }
    for (wid, s) in stop_start.drain() {
        stops.push((wid, s, t_end));
        end_stop(&mut stop_held, &mut stop_long, wid, s, t_end);
    }
    if let Some((s, what)) = by_open.take() {
        by_holds.push((s, t_end, what));
    }
    if let Some(s) = rm_start {
        rmdirs.push((s, t_end));
    }
    rmdirs.sort_unstable();
    let last_rmdir_before = |t: u64| -> Option<u64> {
        let i = rmdirs.partition_point(|&(r, _)| r < t);
        (i > 0).then(|| rmdirs[i - 1].0)
    };

    // A worker stopped when the directory (or, on etcd, the keys) was
    // removed can notice only once continued; time to notice counts from
    // then. Locally that is a waiter stopped just as its ticket came (the
    // long stops last 10 s); on etcd, stops last past the TTL.
    let awake = |wid: u64, r: u64| -> u64 {
        stops
            .iter()
            .filter(|&&(w, st, en)| w == wid && st <= r && en > r)
            .map(|x| x.2)
            .max()
            .unwrap_or(r)
    };
    // (c) losses, and which holdings count for (a).
    let mut lost = 0u64;
    let mut worst_notice = 0u64;
    let mut worst_term = 0u64;
    let mut terms = 0u64;
    for a in &mut acqs {
        let s = a.enter;
        let mut e = a.end;
        if let Some(&k) = killed_at.get(&a.wid) {
            e = e.min(k);
        }
        let mut counted = true;
        // etcd mode: a stop of this worker during the holding, long enough
        // for its lease to run short (a third of the TTL; renewals go every
        // fifth), explains a loss noticed after it was continued.
        let stopped_out = ttl.and_then(|ttl| {
            stops
                .iter()
                .filter(|&&(w, st, en)| {
                    w == a.wid && st < a.end && en > a.enter && en <= a.end && en - st >= ttl / 3
                })
                .map(|&(_, st, en)| (st, en))
                .max_by_key(|x| x.1)
        });
        if matches!(a.how, End::Lost | End::Term)
            && let Some((st, cont)) = stopped_out
            && last_rmdir_before(a.end).is_none_or(|r| r < cont)
        {
            lost += 1;
            let d = a.end - cont;
            worst_notice = worst_notice.max(d);
            if d > NOTICE_LIMIT {
                flag(
                    &mut found,
                    "(c) late notice",
                    format!(
                        "wid {} ({}) noticed its loss {:.0} ms after it was continued",
                        a.wid,
                        a.kind,
                        ms(d)
                    ),
                );
            }
            e = e.min(st);
        } else if matches!(a.how, End::Lost | End::Term) {
            lost += 1;
            match last_rmdir_before(a.end) {
                None => flag(
                    &mut found,
                    "(c) spurious loss",
                    format!(
                        "wid {} ({}) token {:?} lost its ticket at {:.3} s with no removal before",
                        a.wid,
                        a.kind,
                        a.token,
                        rel(a.end)
                    ),
                ),
                Some(r) => {
                    let d = a.end.saturating_sub(awake(a.wid, r));
                    worst_notice = worst_notice.max(d);
                    if d > NOTICE_LIMIT {
                        flag(
                            &mut found,
                            "(c) late notice",
                            format!(
                                "wid {} ({}) noticed a loss {:.0} ms after the removal",
                                a.wid,
                                a.kind,
                                ms(d)
                            ),
                        );
                    }
                    if let Some(term) = a.term.or((a.how == End::Term).then_some(a.end)) {
                        terms += 1;
                        let d = term.saturating_sub(awake(a.wid, r));
                        worst_term = worst_term.max(d);
                        if d > NOTICE_LIMIT {
                            flag(
                                &mut found,
                                "(c) late SIGTERM",
                                format!(
                                    "wid {}: elect run sent SIGTERM {:.0} ms after the removal",
                                    a.wid,
                                    ms(d)
                                ),
                            );
                        }
                    }
                    e = e.min(r);
                }
            }
            if a.checks == 0 {
                counted = false;
            }
        }
        if a.noterm {
            flag(
                &mut found,
                "(c) no SIGTERM",
                format!(
                    "wid {}: elect run did not SIGTERM its command within {} s of the loss",
                    a.wid,
                    TERM_WAIT / SEC
                ),
            );
        }
        if a.nofd {
            flag(
                &mut found,
                "(c) not inherited",
                format!(
                    "wid {}: the command of elect run holds no descriptor of its slot",
                    a.wid
                ),
            );
        }
        let i = rmdirs.partition_point(|&(_, d)| d < s);
        if let Some(&(r, _)) = rmdirs.get(i) {
            if r <= s {
                counted = false;
            } else {
                e = e.min(r);
            }
        }
        if counted && e > s {
            a.counted = Some((s, e));
        }
    }
    // (c) holders of a removed directory stop within a second.
    let mut worst_gone = 0u64;
    for &(r, _) in &rmdirs {
        for a in acqs.iter().filter(|a| a.enter < r && a.end > r) {
            let end = killed_at.get(&a.wid).map_or(a.end, |&k| k.min(a.end));
            let d = end.saturating_sub(awake(a.wid, r));
            worst_gone = worst_gone.max(d);
            if d > NOTICE_LIMIT {
                flag(
                    &mut found,
                    "(c) holder outlived removal",
                    format!(
                        "wid {} ({}) held on {:.0} ms after the removal at {:.3} s",
                        a.wid,
                        a.kind,
                        ms(d),
                        rel(r)
                    ),
                );
            }
        }
    }

    // (a) at most N at once, one per slot. In etcd mode logged holdings may
    // overlap (a holder stopped past its TTL logs LOST after another
    // entered), so what counts there is acting: the span from the first to
    // the last act of a holding, by the time read before `is_held()` for
    // library holders, and by the fence's order for all.
    let logged: Vec<(u64, u64, usize)> = acqs
        .iter()
        .enumerate()
        .filter_map(|(i, a)| a.counted.map(|(s, e)| (s, e, i)))
        .collect();
    let (max_held, steps, issues) = sweep(&acqs, &logged, n, "logged holdings");
    if ttl.is_none() {
        for (what, detail) in issues {
            flag(&mut found, &what, detail);
        }
    }
    let mut max_acting = 0;
    if ttl.is_some() {
        let cut = |s: u64, e: u64| -> Option<(u64, u64)> {
            let i = rmdirs.partition_point(|&(_, d)| d < s);
            match rmdirs.get(i) {
                Some(&(r, _)) if r <= s => None,
                Some(&(r, _)) => Some((s, e.min(r))),
                None => Some((s, e)),
            }
        };
        let library: Vec<(u64, u64, usize)> = acqs
            .iter()
            .enumerate()
            .filter(|(_, a)| a.kind != "cli")
            .filter_map(|(i, a)| {
                let checked: Vec<u64> = a.acts.iter().filter_map(|x| x.1).collect();
                let (s, e) = (*checked.iter().min()?, *checked.iter().max()?);
                // An act is an instant: the span includes its last one.
                cut(s, e + 1).map(|(s, e)| (s, e, i))
            })
            .collect();
        let (m1, _, issues) = sweep(&acqs, &library, n, "acts of library holders");
        for (what, detail) in issues {
            flag(&mut found, &what, detail);
        }
        let fenced: Vec<(u64, u64, usize)> = acqs
            .iter()
            .enumerate()
            .filter_map(|(i, a)| {
                let (s, e) = (a.acts.first()?.0, a.acts.last()?.0);
                Some((s, e + 1, i))
            })
            .collect();
        let (m2, _, issues) = sweep(&acqs, &fenced, n, "acts through the fences");
        for (what, detail) in issues {
            flag(&mut found, &what, detail);
        }
        max_acting = m1.max(m2);
    }
    let counted_n = acqs.iter().filter(|a| a.counted.is_some()).count();

    // (b) tokens distinct; ENTER(A) before WAIT(B) ⇒ token(A) < token(B).
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for (i, a) in acqs.iter().enumerate() {
        if let Some(tok) = a.token
            && let Some(&j) = seen.get(&tok)
        {
            flag(
                &mut found,
                "(b) duplicate token",
                format!("token {tok} given to wid {} and wid {}", acqs[j].wid, a.wid),
            );
        } else if let Some(tok) = a.token {
            seen.insert(tok, i);
        }
    }
    let mut order: Vec<usize> = (0..acqs.len()).collect();
    order.sort_by_key(|&i| acqs[i].enter);
    let mut prefix: Vec<(u64, usize)> = Vec::with_capacity(order.len());
    for &i in &order {
        let tok = acqs[i].token.unwrap_or(0);
        let best = match prefix.last() {
            Some(&(m, j)) if m >= tok => (m, j),
            _ => (tok, i),
        };
        prefix.push(best);
    }
    let mut ordered_pairs = 0u64;
    for b in &acqs {
        let (Some(w), Some(tok)) = (b.wait, b.token) else {
            continue;
        };
        let k = order.partition_point(|&i| acqs[i].enter < w);
        ordered_pairs += k as u64;
        if k > 0 && prefix[k - 1].0 >= tok {
            let a = &acqs[prefix[k - 1].1];
            flag(
                &mut found,
                "(b) token order",
                format!(
                    "wid {} ({}) entered at {:.3} s with token {:?}, then wid {} ({}) began waiting at {:.3} s and got the smaller-or-equal token {tok}",
                    a.wid,
                    a.kind,
                    rel(a.enter),
                    a.token,
                    b.wid,
                    b.kind,
                    rel(w)
                ),
            );
        }
    }

    // (f) etcd mode: a holder stopped past its TTL acts no more once
    // continued; a library holder logs LOST within NOTICE_LIMIT, the elect
    // run of a command exits 76 within CLI_STOP_LIMIT. A library holder's
    // act refused by the fence means a later ticket acted first: allowed
    // only when the holder was stopped between its check and the fence, or
    // just after a removal of the keys.
    let (mut long_stops, mut long_handled, mut worst_resume) = (0u64, 0u64, 0u64);
    let (mut late_cmd_acts, mut fenced_lib, mut fenced_cmd) = (0usize, 0usize, 0usize);
    if let Some(ttl) = ttl {
        for a in &acqs {
            for &(t, checked) in &a.fenced {
                if a.kind == "cli" {
                    fenced_cmd += 1;
                    continue;
                }
                fenced_lib += 1;
                let c = checked.unwrap_or(t);
                let stopped_between = stops
                    .iter()
                    .any(|&(w, st, en)| w == a.wid && st < t && en > c);
                let removed = last_rmdir_before(t).is_some_and(|r| t - r <= NOTICE_LIMIT);
                if !stopped_between && !removed {
                    flag(
                        &mut found,
                        "(f) fenced off",
                        format!(
                            "wid {} ({}) token {:?} checked its ticket at {:.3} s and was refused by the fence of slot {} at {:.3} s: a later ticket had acted",
                            a.wid,
                            a.kind,
                            a.token,
                            rel(c),
                            a.slot,
                            rel(t)
                        ),
                    );
                }
            }
        }
        for &(w, st, cont) in &stops {
            if cont - st <= ttl + 200 * MS {
                continue;
            }
            let Some(a) = acqs
                .iter()
                .find(|a| a.wid == w && a.enter < st && a.end > st)
            else {
                continue;
            };
            long_stops += 1;
            if a.kind == "cli" {
                late_cmd_acts += a.acts.iter().filter(|x| x.0 >= cont).count();
                match &a.cli_exit {
                    Some((t, code)) if code == "code=76" => {
                        let d = t.saturating_sub(cont);
                        worst_resume = worst_resume.max(d);
                        if d > CLI_STOP_LIMIT {
                            flag(
                                &mut found,
                                "(f) late stop",
                                format!(
                                    "wid {}: elect run exited {:.0} ms after it was continued past its TTL",
                                    a.wid,
                                    ms(d)
                                ),
                            );
                        } else {
                            long_handled += 1;
                        }
                    }
                    Some((t, code)) => flag(
                        &mut found,
                        "(f) loss not reported",
                        format!(
                            "wid {}: stopped {:.0} ms at {:.3} s, past its TTL, yet elect run exited {code} at {:.3} s",
                            a.wid,
                            ms(cont - st),
                            rel(st),
                            rel(*t)
                        ),
                    ),
                    None => {}
                }
            } else {
                let late = a.acts.iter().filter(|x| x.1.unwrap_or(x.0) >= cont).count();
                if late > 0 {
                    flag(
                        &mut found,
                        "(f) acted after its lease ran out",
                        format!(
                            "wid {} ({}) token {:?}: stopped {:.0} ms at {:.3} s, past its TTL, then acted {late} time(s)",
                            a.wid,
                            a.kind,
                            a.token,
                            ms(cont - st),
                            rel(st)
                        ),
                    );
                }
                // An EXIT right after SIGCONT ends a holding whose last
                // check came before the stop: no act, nothing to notice.
                if a.how == End::Lost {
                    let d = a.end.saturating_sub(cont);
                    worst_resume = worst_resume.max(d);
                    if d <= NOTICE_LIMIT && late == 0 {
                        long_handled += 1;
                    }
                }
            }
        }
    }
    // etcd mode: a killed or stopped holder frees its slot only when its
    // lease expires.
    let on_holders: Vec<u64> = recs
        .iter()
        .filter(|r| matches!(r.what.as_str(), "KILL" | "STOP") && r.extra.starts_with("holder"))
        .map(|r| r.t)
        .collect();

    // (d) waits while a slot stood free.
    let mut stops_of: HashMap<u64, Vec<(u64, u64)>> = HashMap::new();
    for &(w, s, e) in &stops {
        stops_of.entry(w).or_default().push((s, e));
    }
    for v in stops_of.values_mut() {
        v.sort_unstable();
    }
    stops.sort_unstable_by_key(|&(_, s, _)| s);
    let mut waits_of: HashMap<u64, Vec<(u64, u64)>> = HashMap::new();
    for w in &waits {
        waits_of.entry(w.wid).or_default().push((w.start, w.end));
    }
    let mut ends_of: HashMap<u64, Vec<u64>> = HashMap::new();
    for x in &acqs {
        ends_of.entry(x.wid).or_default().push(x.end);
    }
    waits_of.values_mut().for_each(|v| v.sort_unstable());
    ends_of.values_mut().for_each(|v| v.sort_unstable());
    let no_stops: Vec<(u64, u64)> = Vec::new();
    let levels_of =
        |steps: &[SweepStep]| -> Vec<(u64, usize)> { steps.iter().map(|s| (s.0, s.1)).collect() };
    // The longest stretch of [w.start, w.end] with fewer than N holdings
    // (as `levels` count them) and outside every window of `off` (sorted by
    // start): (length, start, end).
    let free_run = |w: &Wait, levels: &[(u64, usize)], off: &[(u64, u64)]| -> (u64, u64, u64) {
        let mut best = (0, w.start, w.start);
        let mut run_start: Option<u64> = None;
        let mut consider = |a: u64, b: u64, free: bool| {
            let mut cur = a;
            let mut piece = |pa: u64, pb: u64, f: bool| {
                if f {
                    let rs = *run_start.get_or_insert(pa);
                    if pb - rs > best.0 {
                        best = (pb - rs, rs, pb);
                    }
                } else if pb > pa {
                    run_start = None;
                }
            };
            for &(s, e) in off {
                if e <= cur || s >= b {
                    continue;
                }
                if s > cur {
                    piece(cur, s, free);
                }
                piece(s.max(cur), e.min(b), false);
                cur = cur.max(e.min(b));
            }
            if cur < b {
                piece(cur, b, free);
            }
        };
        let mut i = levels.partition_point(|s| s.0 <= w.start);
        let mut level = if i == 0 { 0 } else { levels[i - 1].1 };
        let mut t = w.start;
        while i < levels.len() && levels[i].0 < w.end {
            consider(t, levels[i].0, level < n);
            t = levels[i].0;
            level = levels[i].1;
            i += 1;
        }
        consider(t, w.end, level < n);
        best
    };
    // What else was stopped during [a, b], as the log saw it then.
    let stopped_during = |me: u64, a: u64, b: u64| -> (Vec<u64>, Vec<u64>) {
        let (mut waiting, mut released) = (Vec::new(), Vec::new());
        let hi = stops.partition_point(|&(_, s, _)| s < b);
        for &(o, s, e) in stops[..hi].iter().rev() {
            if s + 20 * SEC < a {
                break;
            }
            if o == me || e <= a {
                continue;
            }
            let (from, to) = (s.max(a), e.min(b));
            let in_wait = waits_of
                .get(&o)
                .is_some_and(|v| v.iter().any(|&(ws, we)| ws < to && we > from));
            if in_wait {
                waiting.push(o);
                continue;
            }
            // Stopped after logging EXIT but before releasing: the last
            // holding of `o` ended before the stop, and no WAIT came since.
            let last_end = ends_of.get(&o).and_then(|v| {
                let k = v.partition_point(|&x| x <= s);
                (k > 0).then(|| v[k - 1])
            });
            if let Some(end) = last_end {
                let waited_since = waits_of
                    .get(&o)
                    .is_some_and(|v| v.iter().any(|&(ws, _)| ws >= end && ws <= s));
                if !waited_since {
                    released.push(o);
                }
            }
        }
        (waiting, released)
    };
    let edge = |t: u64, start: u8| -> Option<&Acq> {
        let i = steps.partition_point(|s| s.0 < t);
        steps[i..]
            .iter()
            .take_while(|s| s.0 == t)
            .find(|s| s.3 == start)
            .map(|s| &acqs[s.2])
    };
    let levels = levels_of(&steps);
    let mut worst_any: Option<(u64, u64, usize, String)> = None;
    let mut worst_plain: Option<(u64, u64, usize)> = None;
    let mut over_100_unexplained = 0u64;
    for (wi, w) in waits.iter().enumerate() {
        let own = stops_of.get(&w.wid).unwrap_or(&no_stops);
        let (len, a, b) = free_run(w, &levels, own);
        if len == 0 {
            continue;
        }
        let mut why: Vec<String> = Vec::new();
        let (waiting, released) = stopped_during(w.wid, a, b);
        if !waiting.is_empty() {
            why.push(format!(
                "waiter(s) {waiting:?} stopped meanwhile (in line, or between acquiring and logging ENTER)"
            ));
        }
        if !released.is_empty() {
            why.push(format!(
                "worker(s) {released:?} stopped between logging EXIT and releasing"
            ));
        }
        let k = rmdirs.partition_point(|&(r, _)| r <= b);
        if k > 0 && rmdirs[k - 1].1 + NOTICE_LIMIT >= a {
            why.push("run directory removed within 1 s".into());
        }
        if edge(b, 1).is_some_and(|x| x.kind == "cli")
            || edge(a, 0).is_some_and(|x| x.kind == "cli")
        {
            why.push("start-up or tear-down of elect run around its command".into());
        }
        if let Some(ttl) = ttl
            && on_holders.iter().any(|&x| x <= b && x + ttl + SEC >= a)
        {
            why.push("a holder killed or stopped within TTL + 1 s: its lease had to expire".into());
        }
        if edge(a, 0).is_some_and(|x| matches!(x.how, End::Killed | End::Reaped)) {
            why.push("holder killed".into());
        }
        if by_holds.iter().any(|&(s, e, _)| s < b && e > a) {
            why.push("the bystander held a lock".into());
        }
        if worst_any.as_ref().is_none_or(|x| len > x.0) {
            worst_any = Some((len, a, wi, why.join("; ")));
        }
        if why.is_empty() {
            if len > 100 * MS {
                over_100_unexplained += 1;
            }
            if worst_plain.is_none_or(|x| len > x.0) {
                worst_plain = Some((len, a, wi));
            }
        }
    }

    // (d) the promise, in local mode: no ticket stays free for more than a
    // second (FREE_LIMIT with slack) while a running waiter waits, however
    // long another waiter stays stopped. A slot counts as held while a
    // stopped process holds its flock (logged as HELD at the stop: stopped
    // between acquiring and logging ENTER, or between logging EXIT and
    // releasing). Not counted as free: the waiter's own stops, a removal of
    // the run directory until 1 s after it, a stop of a process holding
    // `token` or `tickets` (every acquisition or join waits for it), and a
    // bystander's hold that every acquisition or join must wait for (any
    // lock on `token` or `tickets`, an exclusive one on the directory).
    let mut free_checked = 0u64;
    let mut worst_free: Option<(u64, u64, usize)> = None;
    let stalls = |what: &str| {
        what.contains("got=1")
            && (what.contains("lock=token")
                || what.contains("lock=tickets")
                || (what.contains("lock=dir") && what.contains("mode=ex")))
    };
    let mut off_all: Vec<(u64, u64)> = Vec::new();
    if ttl.is_none() {
        off_all.extend(rmdirs.iter().map(|&(r, d)| (r, d + NOTICE_LIMIT)));
        off_all.extend(
            locked_stops
                .iter()
                .filter(|x| x.3.contains("token") || x.3.contains("tickets"))
                .map(|x| (x.1, x.2)),
        );
        off_all.extend(by_holds.iter().filter(|x| stalls(&x.2)).map(|x| (x.0, x.1)));
        let mut held_spans: Vec<(u64, u64, usize)> = logged.clone();
        for x in &locked_stops {
            // A stopped holder whose holding is logged is counted already.
            if logged
                .iter()
                .any(|&(s, e, i)| acqs[i].wid == x.0 && s <= x.1 && e > x.1)
            {
                continue;
            }
            let slots = x.3.split(',').filter(|l| l.starts_with("slot.")).count();
            for _ in 0..slots {
                held_spans.push((x.1, x.2, usize::MAX));
            }
        }
        let mut ev: Vec<(u64, i64)> = Vec::new();
        for &(s, e, _) in &held_spans {
            ev.push((s, 1));
            ev.push((e, -1));
        }
        ev.sort_unstable();
        let mut level = 0i64;
        let strict_levels: Vec<(u64, usize)> = ev
            .iter()
            .map(|&(t, d)| {
                level += d;
                (t, level.max(0) as usize)
            })
            .collect();
        for (wi, w) in waits.iter().enumerate() {
            let mut off: Vec<(u64, u64)> = stops_of.get(&w.wid).unwrap_or(&no_stops).clone();
            off.extend(off_all.iter().copied());
            off.sort_unstable();
            let (len, a, _) = free_run(w, &strict_levels, &off);
            free_checked += 1;
            if worst_free.is_none_or(|x| len > x.0) {
                worst_free = Some((len, a, wi));
            }
            if len > FREE_LIMIT {
                flag(
                    &mut found,
                    "(d) free ticket",
                    format!(
                        "wid {} ({}) waited, running, {:.0} ms from {:.3} s while a ticket stood free (limit {:.0} ms)",
                        w.wid,
                        w.kind,
                        ms(len),
                        rel(a),
                        ms(FREE_LIMIT)
                    ),
                );
            }
        }
    }

    // (g) arrival order, in local mode: a waiter that stood in the line
    // before another running one is served first. A waiter stands in the
    // line at most LINE_ALLOWANCE after it logged WAIT (`elect run` has to
    // start first), and logs ENTER at most ENTER_SLACK after it was served.
    // Allowed: the earlier waiter was stopped meanwhile (stepped past), the
    // run directory was removed (everyone starts again), a bystander held
    // the directory exclusively or `tickets` (a newcomer cannot join).
    let mut order_pairs = 0u64;
    let mut order_excused = 0u64;
    // Out of order, by the kind of the waiter served first.
    let mut overtakers: HashMap<String, u64> = HashMap::new();
    if ttl.is_none() {
        let mut by_wid: HashMap<u64, Vec<usize>> = HashMap::new();
        for (i, w) in waits.iter().enumerate() {
            by_wid.entry(w.wid).or_default().push(i);
        }
        for v in by_wid.values_mut() {
            v.sort_unstable_by_key(|&i| waits[i].start);
        }
        let joins_stalled: Vec<(u64, u64)> = by_holds
            .iter()
            .filter(|x| {
                x.2.contains("got=1")
                    && (x.2.contains("lock=tickets")
                        || (x.2.contains("lock=dir") && x.2.contains("mode=ex")))
            })
            .map(|x| (x.0, x.1))
            .collect();
        let overlaps = |v: &[(u64, u64)], a: u64, b: u64| v.iter().any(|&(s, e)| s < b && e > a);
        for bw in waits.iter().filter(|w| w.ended == "ENTER") {
            let served = bw.end;
            for (&wid, list) in &by_wid {
                if wid == bw.wid {
                    continue;
                }
                // The wait of `wid` under way when `bw` was served.
                let k = list.partition_point(|&i| waits[i].start <= served);
                if k == 0 {
                    continue;
                }
                let aw = &waits[list[k - 1]];
                let cli = aw.kind == "cli";
                let allowance = if cli {
                    CLI_LINE_ALLOWANCE
                } else {
                    LINE_ALLOWANCE
                };
                let slack = if cli { CLI_ENTER_SLACK } else { ENTER_SLACK };
                // A wait whose limit had passed may have left the line.
                if aw.start + allowance >= bw.start
                    || aw.end <= served + slack
                    || aw.limit.is_some_and(|l| aw.start + l <= served)
                {
                    continue;
                }
                order_pairs += 1;
                let own = stops_of.get(&wid).unwrap_or(&no_stops);
                let removed = rmdirs
                    .iter()
                    .any(|&(r, d)| r < served && d + NOTICE_LIMIT > aw.start);
                if overlaps(own, aw.start, served)
                    || removed
                    || overlaps(&joins_stalled, aw.start, served)
                {
                    order_excused += 1;
                    continue;
                }
                *overtakers.entry(bw.kind.clone()).or_default() += 1;
                flag(
                    &mut found,
                    "(g) arrival order",
                    format!(
                        "wid {} ({}) began waiting at {:.3} s, wid {} ({}) at {:.3} s, yet wid {} was served at {:.3} s while wid {} still waited (until {:.3} s, {})",
                        aw.wid,
                        aw.kind,
                        rel(aw.start),
                        bw.wid,
                        bw.kind,
                        rel(bw.start),
                        bw.wid,
                        rel(served),
                        aw.wid,
                        rel(aw.end),
                        aw.ended
                    ),
                );
            }
        }
    }

    // (h) timeouts and cancels, in local mode: a wait with a limit that
    // did not get a ticket ends within 100 ms of it (with slack for the
    // machine), whatever the bystander holds, unless its waiter was stopped
    // meanwhile.
    let mut timeouts_checked = 0u64;
    let mut worst_over: Option<(u64, usize)> = None;
    if ttl.is_none() {
        for (wi, w) in waits.iter().enumerate() {
            let Some(limit) = w.limit else { continue };
            let gave_up = match w.ended.as_str() {
                "GIVEUP" | "CANCEL" => true,
                // `elect run -w` that got nothing: its exit status 75.
                "CLIEXIT" => true,
                _ => false,
            };
            if !gave_up {
                continue;
            }
            let own = stops_of.get(&w.wid).unwrap_or(&no_stops);
            if own.iter().any(|&(s, e)| s < w.end && e > w.start) {
                continue;
            }
            timeouts_checked += 1;
            let over = (w.end - w.start).saturating_sub(limit);
            if worst_over.is_none_or(|x| over > x.0) {
                worst_over = Some((over, wi));
            }
            let slack = if w.kind == "cli" {
                CLI_TIMEOUT_SLACK
            } else {
                TIMEOUT_SLACK
            };
            if over > slack {
                flag(
                    &mut found,
                    "(h) late timeout",
                    format!(
                        "wid {} ({}) waited with a limit of {:.0} ms from {:.3} s and gave up {:.0} ms late ({})",
                        w.wid,
                        w.kind,
                        ms(limit),
                        rel(w.start),
                        ms(over),
                        w.ended
                    ),
                );
            }
        }
    }

    // Summary.
    let c = |k: &str| count.get(k).copied().unwrap_or(0);
    let secs = (t_end - t0) as f64 / SEC as f64;
    let by_kind = |k: &str| acqs.iter().filter(|a| a.kind == k).count();
    let _ = writeln!(
        out,
        "chaos: {} kills ({} holders, {} waiters), {} stops (<= {MAX_STOP_MS} ms), {} removals of the run directory",
        c("KILL"),
        c("KILL holder"),
        c("KILL waiter"),
        c("STOP"),
        rmdirs.len()
    );
    let _ = writeln!(
        out,
        "acquisitions: {} = {:.1} hand-offs/s (block {}, timeout {}, async {}, cli {}); {} timeouts, {} cancels",
        acqs.len(),
        acqs.len() as f64 / secs.max(1e-9),
        by_kind("block"),
        by_kind("timeout"),
        by_kind("async"),
        by_kind("cli"),
        c("GIVEUP"),
        c("CANCEL")
    );
    if !cli_exits.is_empty() {
        let mut v: Vec<_> = cli_exits.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        v.sort();
        let _ = writeln!(out, "elect run exits: {}", v.join(", "));
    }
    if !errors.is_empty() {
        let total: u64 = errors.values().sum();
        let (msg, _) = errors.iter().max_by_key(|e| e.1).expect("non-empty");
        let _ = writeln!(
            out,
            "obtain errors (not violations): {total}, most often: {msg}"
        );
    }
    let verdict = |prefix: &str| {
        if found.iter().any(|f| f.starts_with(prefix)) {
            "FAIL"
        } else {
            "ok"
        }
    };
    // On etcd a logged holding is not an acting one (a stopped holder's
    // lease expires under it): (a) is judged on acts, reported in (f).
    let held_what = if ttl.is_some() {
        "holdings logged (acting: see (f))"
    } else {
        "holders at once"
    };
    let _ = writeln!(
        out,
        "(a) {held_what}: max {max_held} of {tickets}; {counted_n} of {} holdings counted, one per slot   [{}]",
        acqs.len(),
        verdict("(a)")
    );
    let _ = writeln!(
        out,
        "(b) tokens: {} distinct of {}; {ordered_pairs} ordered pairs checked   [{}]",
        seen.len(),
        acqs.len(),
        verdict("(b)")
    );
    let _ = writeln!(
        out,
        "(c) {lost} lost ownerships, noticed within {:.1} ms of the removal ({}); old holders gone within {:.1} ms   [{}]",
        ms(worst_notice),
        if terms == 0 {
            "no elect run command saw a SIGTERM for it".to_string()
        } else {
            format!(
                "{terms} elect run SIGTERMs, within {:.1} ms",
                ms(worst_term)
            )
        },
        ms(worst_gone),
        verdict("(c)")
    );
    match &worst_any {
        Some((len, a, wi, why)) => {
            let w = &waits[*wi];
            let _ = writeln!(
                out,
                "(d) worst wait with a slot free: {:.1} ms (wid {} {}, at {:.3} s){}",
                ms(*len),
                w.wid,
                w.kind,
                rel(*a),
                if why.is_empty() {
                    String::new()
                } else {
                    format!(": {why}")
                }
            );
        }
        None => {
            let _ = writeln!(out, "(d) no waiter ever waited while a slot stood free");
        }
    }
    if let Some((len, a, wi)) = worst_plain {
        let w = &waits[wi];
        let _ = writeln!(
            out,
            "    worst unexplained: {:.1} ms (wid {} {}, at {:.3} s); {} unexplained over 100 ms; {} waits in all",
            ms(len),
            w.wid,
            w.kind,
            rel(a),
            over_100_unexplained,
            waits.len()
        );
    }
    if ttl.is_none() {
        let (len, at, who) = match worst_free {
            Some((len, a, wi)) => (len, a, format!("wid {} {}", waits[wi].wid, waits[wi].kind)),
            None => (0, t0, "-".into()),
        };
        let _ = writeln!(
            out,
            "    free ticket while a running waiter waited (the 1 s promise): worst {:.1} ms ({who}, at {:.3} s) of {free_checked} waits, limit {:.0} ms; {} long stops of waiters ({} s), {} stops holding a lock of the resource   [{}]",
            ms(len),
            rel(at),
            ms(FREE_LIMIT),
            long_waiter_stops.len(),
            long_waiter_stops
                .iter()
                .map(|x| format!("{:.1}", (x.2 - x.1) as f64 / SEC as f64))
                .collect::<Vec<_>>()
                .join(", "),
            locked_stops.len(),
            verdict("(d)")
        );
    }
    let _ = writeln!(out, "(e) no hung worker   [{}]", verdict("(e)"));
    if ttl.is_none() {
        let mut by_kind: Vec<String> = overtakers.iter().map(|(k, v)| format!("{k} {v}")).collect();
        by_kind.sort();
        let _ = writeln!(
            out,
            "(g) arrival order: {order_pairs} times a waiter was served while one that came earlier still waited, {order_excused} of them allowed (the earlier one stopped, its limit passed, a removal, a bystander on the directory or tickets){}   [{}]",
            if by_kind.is_empty() {
                String::new()
            } else {
                format!(
                    "; served out of order, by the kind served first: {}",
                    by_kind.join(", ")
                )
            },
            verdict("(g)")
        );
        let _ = writeln!(
            out,
            "(h) timeouts and cancels: {timeouts_checked} checked, worst {:.1} ms past the limit{} (limit: 100 ms + {:.0} ms slack, elect run {:.0} ms)   [{}]",
            worst_over.map_or(0.0, |x| ms(x.0)),
            worst_over.map_or(String::new(), |(_, wi)| format!(
                " (wid {} {}, at {:.3} s)",
                waits[wi].wid,
                waits[wi].kind,
                rel(waits[wi].start)
            )),
            ms(TIMEOUT_SLACK - 100 * MS),
            ms(CLI_TIMEOUT_SLACK - 100 * MS),
            verdict("(h)")
        );
        let stalling = by_holds.iter().filter(|x| x.2.contains("got=1")).count();
        let _ = writeln!(
            out,
            "forks: {forks} children dropped their copy of a held ticket ({forks_unknown} not judged: directory removed); bystander: {} holds ({stalling} taken)",
            by_holds.len()
        );
    }
    if let Some(ttl) = ttl {
        let acts: usize = acqs.iter().map(|a| a.acts.len()).sum();
        let _ = writeln!(
            out,
            "(f) TTL {:.0} ms; {acts} acts, at most {max_acting} acting at once; {long_stops} holders stopped past the TTL, {long_handled} handled, gone within {:.1} ms of SIGCONT; {late_cmd_acts} late acts of commands let through by the fence, {fenced_cmd} fenced off; {fenced_lib} library acts fenced off   [{}]",
            ms(ttl),
            ms(worst_resume),
            verdict("(f)")
        );
    }
    for f in &found {
        let _ = writeln!(out, "VIOLATION {f}");
    }
    if violations > found.len() {
        let _ = writeln!(out, "({violations} violations in all)");
    }
    Analysis {
        summary: out,
        violations,
        found,
        long_stops,
        long_stops_handled: long_handled,
    }
}
