//! Torture run: W worker processes of mixed kinds compete for the N tickets
//! of one resource while a chaos thread SIGKILLs holders and waiters,
//! SIGSTOPs and SIGCONTs them and now and then removes the whole run
//! directory. An independent observer checks the outcome afterwards.
//!
//! ```text
//! cargo run --release --example torture -- --seconds 20 --workers 12 --tickets 2
//!     [--dir DIR] [--elect PATH] [--log PATH] [--keep]
//! cargo run --release --example torture -- --analyse LOG --tickets N
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
//!   explains it: another waiter stopped at the head of the line, a removal,
//!   or the start-up of an `elect run` command.
//! * (e) every worker finished within 30 s of the end (no lost wake-up).
//!
//! It prints a one-screen summary and exits 1 on any violation of (a), (b),
//! (c) or (e), keeping the log for inspection.

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
/// How long a CLI command that saw its ticket lost waits for elect's SIGTERM.
const TERM_WAIT: u64 = 3 * SEC;

const USAGE: &str = "usage: torture --seconds S --workers W --tickets N [--dir DIR] [--elect PATH] [--log PATH] [--keep]";

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
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match a.as_str() {
                "--seconds" => {
                    let v = value(a)?;
                    o.seconds = v
                        .parse()
                        .ok()
                        .filter(|s: &f64| s.is_finite() && *s > 0.0)
                        .ok_or_else(|| format!("--seconds {v:?}: want a positive number"))?;
                }
                "--workers" => {
                    let v = value(a)?;
                    o.workers = v
                        .parse()
                        .ok()
                        .filter(|w| (1..=512).contains(w))
                        .ok_or_else(|| format!("--workers {v:?}: want 1 to 512"))?;
                }
                "--tickets" => {
                    let v = value(a)?;
                    o.tickets = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=elect::MAX_TICKETS).contains(n))
                        .ok_or_else(|| format!("--tickets {v:?}: want 1 to 4096"))?;
                }
                "--dir" => o.dir = Some(value(a)?.into()),
                "--elect" => o.elect = Some(value(a)?.into()),
                "--log" => o.log = Some(value(a)?.into()),
                "--keep" => o.keep = true,
                "-h" | "--help" => return Err("help".into()),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(o)
    }
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
/// * `__worker KIND WID LOG DIR TICKETS UNTIL SELFEXEC ELECT`
/// * `__cli-child WID LOG` (the command of `elect run`)
/// * `__cli-probe` (checks that `elect run` works)
pub fn run_role(args: &[String]) -> i32 {
    match args.first().map(String::as_str) {
        Some("__worker") if args.len() == 9 => {
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
            };
            w.run();
            0
        }
        Some("__cli-child") if args.len() == 3 => {
            cli_child(args[1].parse().expect("wid"), Path::new(&args[2]))
        }
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
        let election = Election::builder(RESOURCE)
            .tickets(self.tickets)
            .dir(&self.dir)
            .label(format!("torture {} {}", self.kind.name(), self.wid))
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

    fn run_blocking(&self, election: &Election, rng: &mut Rng) {
        while now_ns() < self.until {
            self.log("WAIT", None, None, "");
            let got = if self.kind == Kind::Block {
                election.obtain().map(Some)
            } else {
                election.obtain_timeout(Duration::from_millis(rng.range(1, 200)))
            };
            match got {
                Ok(Some(ticket)) => {
                    let (slot, token) = (Some(ticket.slot()), Some(ticket.token()));
                    self.log("ENTER", slot, token, "");
                    let mut hold = Hold::new(rng);
                    loop {
                        match hold.step(ticket.is_held(), rng) {
                            Step::Lost => {
                                self.log("LOST", slot, token, &format!("checks={}", hold.checks));
                                break;
                            }
                            Step::Done => {
                                self.log("EXIT", slot, token, "");
                                break;
                            }
                            Step::Sleep(d) => std::thread::sleep(d),
                        }
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
            self.log("WAIT", None, None, "");
            let got = if rng.chance(33) {
                let limit = Duration::from_millis(rng.range(1, 100));
                match tokio::time::timeout(limit, election.obtain_async()).await {
                    Ok(r) => r,
                    Err(_) => {
                        self.log("CANCEL", None, None, "");
                        continue;
                    }
                }
            } else {
                election.obtain_async().await
            };
            match got {
                Ok(ticket) => {
                    let (slot, token) = (Some(ticket.slot()), Some(ticket.token()));
                    self.log("ENTER", slot, token, "");
                    let mut hold = Hold::new(rng);
                    loop {
                        match hold.step(ticket.is_held(), rng) {
                            Step::Lost => {
                                self.log("LOST", slot, token, &format!("checks={}", hold.checks));
                                break;
                            }
                            Step::Done => {
                                self.log("EXIT", slot, token, "");
                                break;
                            }
                            Step::Sleep(d) => tokio::time::sleep(d).await,
                        }
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
            let role = vec![
                "__cli-child".to_string(),
                self.wid.to_string(),
                self.log_path.clone(),
            ];
            let (argv, env) = self.how.argv(&role);
            let mut cmd = Command::new(&self.elect);
            cmd.arg("run")
                .arg("-q")
                .arg("-t")
                .arg(self.tickets.to_string())
                .arg("-d")
                .arg(&self.dir);
            if rng.chance(25) {
                cmd.arg("-w").arg(format!("{}ms", rng.range(1, 200)));
            }
            cmd.arg(RESOURCE).arg("--").args(&argv);
            if let Some(e) = env {
                cmd.env(ROLE_ENV, e);
            }
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            self.log("WAIT", None, None, "");
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
fn cli_child(wid: u64, log_path: &Path) -> i32 {
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
    let slot_path = match (env("ELECT_DIR"), env("ELECT_NAME"), slot) {
        (Some(d), Some(n), Some(s)) => PathBuf::from(d).join(n).join(format!("slot.{s}")),
        _ => {
            rec("ENTER", "bad-env");
            rec("EXIT", "");
            return 0;
        }
    };
    let held = inherited_slot(&slot_path);
    rec("ENTER", if held.is_some() { "" } else { "nofd" });
    let intact = || match held {
        Some(id) => std::fs::symlink_metadata(&slot_path).is_ok_and(|m| (m.dev(), m.ino()) == id),
        None => true,
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

// ------------------------------------------------------------------ parent

/// The result of a run.
pub struct Outcome {
    /// The one-screen summary.
    pub summary: String,
    /// No violation of (a), (b), (c) or (e).
    pub passed: bool,
    /// The log (kept when the run failed or `--keep` was given).
    pub log: PathBuf,
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
    let run_dir = opts.dir.clone().unwrap_or_else(|| work.path().join("run"));
    let log_path = opts
        .log
        .clone()
        .unwrap_or_else(|| work.path().join("torture.log"));
    let elect = find_elect(opts, how, work.path());
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
        &format!("tickets={} workers={}", opts.tickets, opts.workers),
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
        let role = vec![
            "__worker".to_string(),
            kind.name().into(),
            wid.to_string(),
            log_path.to_string_lossy().into_owned(),
            run_dir.to_string_lossy().into_owned(),
            opts.tickets.to_string(),
            until.to_string(),
            how.encode(),
            elect_path.clone(),
        ];
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
    let stop = Arc::new(AtomicBool::new(false));
    let chaos = {
        let (log, procs, stop) = (Arc::clone(&log), Arc::clone(&procs), Arc::clone(&stop));
        let (log_path, run_dir, workers) = (log_path.clone(), run_dir.clone(), opts.workers);
        std::thread::spawn(move || chaos(&log, &log_path, &procs, &stop, &run_dir, workers))
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
    waiting: HashSet<u64>,
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
                    self.waiting.insert(wid);
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
fn chaos(
    log: &Log,
    log_path: &Path,
    procs: &Mutex<Procs>,
    stop: &AtomicBool,
    run_dir: &Path,
    workers: usize,
) {
    let mut rng = Rng::seeded(0xc4a05);
    let mut tracker = Tracker {
        offset: 0,
        partial: String::new(),
        holding: HashSet::new(),
        waiting: HashSet::new(),
    };
    let mut stopped: Vec<(u64, i32, u64)> = Vec::new();
    let mut next_rmdir = now_ns() + rng.range(2000, 5000) * MS;
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
        stopped.retain(|&(wid, _, until)| {
            if until <= now {
                signal(wid, "CONT", libc::SIGCONT, "");
                false
            } else {
                true
            }
        });
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
        let roll = rng.range(0, 99);
        if roll < 25 {
            if let Some(wid) = pick(&tracker.holding, &mut rng) {
                signal(wid, "KILL", libc::SIGKILL, "holder");
                stopped.retain(|s| s.0 != wid);
            }
        } else if roll < 40 {
            if let Some(wid) = pick(&tracker.waiting, &mut rng) {
                signal(wid, "KILL", libc::SIGKILL, "waiter");
                stopped.retain(|s| s.0 != wid);
            }
        } else if roll < 75 && stopped.len() < max_stopped {
            let set = if rng.chance(50) {
                &tracker.holding
            } else {
                &tracker.waiting
            };
            if let Some(wid) = pick(set, &mut rng)
                && !stopped.iter().any(|s| s.0 == wid)
            {
                let ms = rng.range(5, MAX_STOP_MS);
                let role = if tracker.holding.contains(&wid) {
                    "holder"
                } else {
                    "waiter"
                };
                if let Some(pid) = signal(wid, "STOP", libc::SIGSTOP, &format!("{role} ms={ms}")) {
                    stopped.push((wid, pid, now_ns() + ms * MS));
                }
            }
        }
    }
    for (wid, _, _) in stopped {
        signal(wid, "CONT", libc::SIGCONT, "end");
    }
}

/// Finds the `elect` binary and checks that `elect run` runs a command with
/// ELECT_SLOT and ELECT_TOKEN; the error says why CLI workers are skipped.
fn find_elect(opts: &Options, how: &SelfExec, work: &Path) -> Result<PathBuf, String> {
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
    cmd.arg("run")
        .arg("-t")
        .arg("1")
        .arg("-d")
        .arg(work.join("probe"))
        .arg("probe")
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
            "`{} run -t 1 -d DIR probe -- CMD` does not work yet ({status}; stdout {:?}; stderr {:?})",
            path.display(),
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
}

#[derive(Debug, Clone)]
struct Wait {
    wid: u64,
    kind: String,
    start: u64,
    end: u64,
}

/// The analyser's verdict.
pub struct Analysis {
    /// Lines for the summary.
    pub summary: String,
    /// How many violations of (a), (b), (c), (e) and of log integrity.
    pub violations: usize,
    /// One line per kind of violation found, for tests.
    pub found: Vec<String>,
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

    // Walk the records in time order.
    let mut acqs: Vec<Acq> = Vec::new();
    let mut waits: Vec<Wait> = Vec::new();
    let mut open_wait: HashMap<u64, (u64, String)> = HashMap::new();
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
    let close_wait =
        |open_wait: &mut HashMap<u64, (u64, String)>, waits: &mut Vec<Wait>, wid: u64, t: u64| {
            if let Some((start, kind)) = open_wait.remove(&wid) {
                waits.push(Wait {
                    wid,
                    kind,
                    start,
                    end: t,
                });
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
                close_wait(&mut open_wait, &mut waits, r.wid, r.t);
                open_wait.insert(r.wid, (r.t, r.kind.clone()));
            }
            "ENTER" => {
                let wait = open_wait.get(&r.wid).map(|w| w.0);
                close_wait(&mut open_wait, &mut waits, r.wid, r.t);
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
                });
                open_acq.entry(r.wid).or_default().push(acqs.len() - 1);
                by_token.insert((r.wid, r.token), acqs.len() - 1);
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
                close_wait(&mut open_wait, &mut waits, r.wid, r.t);
                if r.what == "ERR" {
                    let key: String = r.extra.chars().take(100).collect();
                    *errors.entry(key).or_default() += 1;
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
                close_wait(&mut open_wait, &mut waits, r.wid, r.t);
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
                }
            }
            "STOP" => {
                stop_start.insert(r.wid, r.t);
            }
            "CONT" => {
                if let Some(s) = stop_start.remove(&r.wid) {
                    stops.push((r.wid, s, r.t));
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
    for (wid, (start, kind)) in open_wait.drain() {
        waits.push(Wait {
            wid,
            kind,
            start,
            end: t_end,
        });
    }
    for (wid, s) in stop_start.drain() {
        stops.push((wid, s, t_end));
    }
    if let Some(s) = rm_start {
        rmdirs.push((s, t_end));
    }
    rmdirs.sort_unstable();
    let last_rmdir_before = |t: u64| -> Option<u64> {
        let i = rmdirs.partition_point(|&(r, _)| r < t);
        (i > 0).then(|| rmdirs[i - 1].0)
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
        if matches!(a.how, End::Lost | End::Term) {
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
                    let d = a.end - r;
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
                        let d = term - r;
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
            let d = end.saturating_sub(r);
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

    // (a) at most N at once, one per slot.
    let mut events: Vec<(u64, u8, usize)> = Vec::new();
    for (i, a) in acqs.iter().enumerate() {
        if let Some((s, e)) = a.counted {
            events.push((s, 1, i));
            events.push((e, 0, i));
        }
    }
    events.sort_unstable();
    let mut active: Vec<usize> = Vec::new();
    let mut max_held = 0usize;
    let mut steps: Vec<(u64, usize, usize, u8)> = Vec::new();
    for &(t, start, i) in &events {
        if start == 1 {
            if let Some(&j) = active.iter().find(|&&j| acqs[j].slot == acqs[i].slot) {
                flag(
                    &mut found,
                    "(a) slot shared",
                    format!(
                        "at {:.3} s wid {} ({}) token {:?} entered slot {} held by wid {} ({}) token {:?}",
                        rel(t),
                        acqs[i].wid,
                        acqs[i].kind,
                        acqs[i].token,
                        acqs[i].slot,
                        acqs[j].wid,
                        acqs[j].kind,
                        acqs[j].token
                    ),
                );
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
                flag(
                    &mut found,
                    "(a) too many holders",
                    format!(
                        "{} holders at {:.3} s: {}",
                        active.len(),
                        rel(t),
                        who.join("; ")
                    ),
                );
            }
            max_held = max_held.max(active.len());
        } else {
            active.retain(|&j| j != i);
        }
        steps.push((t, active.len(), i, start));
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
    let free_run = |w: &Wait| -> (u64, u64, u64) {
        // The longest stretch of [start, end] with fewer than N counted
        // holdings while this waiter itself was not stopped.
        let own = stops_of.get(&w.wid).unwrap_or(&no_stops);
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
            for &(s, e) in own {
                if e <= cur || s >= b {
                    continue;
                }
                if s > cur {
                    piece(cur, s, free);
                }
                piece(s.max(cur), e.min(b), false);
                cur = e.min(b);
            }
            if cur < b {
                piece(cur, b, free);
            }
        };
        let mut i = steps.partition_point(|s| s.0 <= w.start);
        let mut level = if i == 0 { 0 } else { steps[i - 1].1 };
        let mut t = w.start;
        while i < steps.len() && steps[i].0 < w.end {
            consider(t, steps[i].0, level < n);
            t = steps[i].0;
            level = steps[i].1;
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
            if s + 10 * SEC < a {
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
    let mut worst_any: Option<(u64, u64, usize, String)> = None;
    let mut worst_plain: Option<(u64, u64, usize)> = None;
    let mut over_100_unexplained = 0u64;
    for (wi, w) in waits.iter().enumerate() {
        let (len, a, b) = free_run(w);
        if len == 0 {
            continue;
        }
        let mut why: Vec<String> = Vec::new();
        let (waiting, released) = stopped_during(w.wid, a, b);
        if !waiting.is_empty() {
            why.push(format!(
                "waiter(s) {waiting:?} stopped meanwhile (head of the line, or stopped between acquiring and logging ENTER)"
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
        if edge(a, 0).is_some_and(|x| matches!(x.how, End::Killed | End::Reaped)) {
            why.push("holder killed".into());
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
    let _ = writeln!(
        out,
        "(a) holders at once: max {max_held} of {tickets}; {counted_n} of {} holdings counted, one per slot   [{}]",
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
            "no elect run lost its ticket".to_string()
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
    let _ = writeln!(out, "(e) no hung worker   [{}]", verdict("(e)"));
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
    }
}
