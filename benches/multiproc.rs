//! Multi-process figures, each beside its anchor measured in the same run:
//!
//! * hand-off latency (holder releases → a waiting process owns), elect with
//!   1 and 4 tickets against raw kernel flock(2) (one file for N=1; 4 files
//!   with the same 20 processes for N=4), and raw flock(2) with the system
//!   calls elect makes around it ([`ElectCalls`]), which splits elect's cost
//!   into its take-up calls and its way of waiting (the line);
//! * fail-over latency (holder SIGKILLed → a waiting process owns), elect
//!   against raw flock(2);
//! * idle cost: 100 waiters for 10 s, CPU and wake-ups;
//! * scale: hand-offs per second and CPU per hand-off with 4, 16 and 64
//!   waiters on 1 ticket, and 512 contenders for 256 tickets;
//! * status of a run directory with 10,000 resources, through the library
//!   and through the `elect status --json` command.
//!
//! `cargo bench --bench multiproc` (add `-- quick` for a short run, or
//! section names: `handoff failover idle scale status`, or `handoff4`, run
//! only when named, which repeats the N=4 hand-off beside its anchor in
//! interleaved rounds to judge a change to the waiting for several tickets;
//! set
//! `ELECT_BENCH_SAMPLES=DIR` to keep every latency sample for plotting). It
//! re-executes itself for the worker processes; times are CLOCK_MONOTONIC,
//! which all processes of the host share.

mod support;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{ElectCalls, fresh, keep_samples, now_ns};

use elect::Election;

const ROLE: &str = "ELECT_BENCH_ROLE";

fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        let args: Vec<String> = std::env::args().collect();
        match role.as_str() {
            "cycler" => cycler(&args),
            "holder" => holder(&args),
            "failover-waiter" => failover_waiter(&args),
            "status-holder" => status_holder(&args),
            _ => panic!("unknown role {role}"),
        }
        return;
    }
    let selection = support::Selection::from_args();
    let quick = selection.quick;
    let only = |name: &str| selection.only(name);
    let tmp = tempfile::tempdir().unwrap();
    println!(
        "# elect multi-process benchmarks ({} mode)",
        if quick { "quick" } else { "full" }
    );
    if only("handoff") {
        handoff(tmp.path(), quick);
    }
    if selection.named("handoff4") {
        handoff4(tmp.path(), quick);
    }
    if only("failover") {
        failover(tmp.path(), quick);
    }
    if only("idle") {
        idle(tmp.path(), quick);
    }
    if only("scale") {
        scale(tmp.path(), quick);
    }
    if only("status") {
        status(tmp.path(), quick);
    }
}

// ---------------------------------------------------------------- workers

/// Which lock a worker takes.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// Raw flock(2) on one file: the kernel's own hand-off.
    Raw,
    /// Raw flock(2) on this many files, worker `i` always on file `i % n`:
    /// the kernel's own hand-off for n holders at once, with the same
    /// number of processes as elect with n tickets.
    RawLocks(u32),
    /// Raw flock(2) on one file, with the system calls elect makes around
    /// it (see [`ElectCalls`]): the floor of elect's one-ticket hand-off.
    RawCalls,
    /// elect with N tickets.
    Elect(u32),
}

impl Kind {
    fn arg(self) -> String {
        match self {
            Kind::Raw => "raw".into(),
            Kind::RawLocks(n) => format!("rawlocks{n}"),
            Kind::RawCalls => "rawcalls".into(),
            Kind::Elect(n) => format!("elect{n}"),
        }
    }

    /// How many holders at once: N for elect, one for every raw kind.
    fn tickets(self) -> u32 {
        match self {
            Kind::Elect(n) => n,
            _ => 1,
        }
    }

    fn parse(s: &str) -> Self {
        if s == "rawcalls" {
            return Kind::RawCalls;
        }
        if let Some(n) = s.strip_prefix("rawlocks") {
            return Kind::RawLocks(n.parse().unwrap());
        }
        match s.strip_prefix("elect") {
            Some(n) => Kind::Elect(n.parse().unwrap()),
            None => Kind::Raw,
        }
    }
}

/// A held lock of either kind; dropping releases.
#[allow(dead_code)] // held only to be dropped
enum Guard {
    Raw(File),
    Calls(CallsHeld),
    Elect(elect::Ticket),
}

/// A lock taken by [`ElectCalls::obtain`]; dropping releases as elect does.
struct CallsHeld(std::rc::Rc<ElectCalls>);

impl Drop for CallsHeld {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// The election a worker of `kind` uses, made once per process as a real
/// program would.
fn election(kind: Kind, dir: &Path) -> Option<Election> {
    match kind {
        Kind::Elect(n) => Some(
            Election::builder("bench")
                .tickets(n)
                .dir(dir)
                .build()
                .unwrap(),
        ),
        _ => None,
    }
}

/// Takes the lock: a ticket of `e`, or without an election the raw lock
/// `lock` (0 for the one-file anchor).
fn acquire(e: Option<&Election>, dir: &Path, lock: u32) -> (u32, Guard) {
    match e {
        None => {
            let name = match lock {
                0 => "raw.lock".to_string(),
                i => format!("raw{i}.lock"),
            };
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(dir.join(name))
                .unwrap();
            f.lock().unwrap();
            (lock, Guard::Raw(f))
        }
        Some(e) => {
            let t = e.obtain().unwrap();
            (t.slot(), Guard::Elect(t))
        }
    }
}

/// Loops acquire → note latency since the slot's last release by another
/// process → hold → note release time → release → think, until `stop`
/// exists. Shared file layout: per slot, 16 bytes: release time, releaser.
/// Arguments: kind, directory, hold µs, think µs, this worker's number.
fn cycler(args: &[String]) {
    let kind = Kind::parse(&args[1]);
    let dir = PathBuf::from(&args[2]);
    let hold = Duration::from_micros(args[3].parse().unwrap());
    let think = Duration::from_micros(args[4].parse().unwrap());
    let worker: u32 = args[5].parse().unwrap();
    let lock = match kind {
        Kind::RawLocks(n) => worker % n,
        _ => 0,
    };
    let shared = OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join("shared"))
        .unwrap();
    let mut samples = OpenOptions::new()
        .append(true)
        .open(dir.join("samples"))
        .unwrap();
    let me = std::process::id() as u64;
    let mut buf = Vec::new();
    let e = election(kind, &dir);
    let calls = matches!(kind, Kind::RawCalls)
        .then(|| std::rc::Rc::new(ElectCalls::open(&dir.join("calls"))));
    while !dir.join("stop").exists() {
        let (slot, guard) = match &calls {
            Some(c) => {
                assert!(c.obtain(true));
                (0, Guard::Calls(CallsHeld(std::rc::Rc::clone(c))))
            }
            None => acquire(e.as_ref(), &dir, lock),
        };
        let got = now_ns();
        let mut prev = [0u8; 16];
        shared.read_exact_at(&mut prev, slot as u64 * 16).unwrap();
        let released = u64::from_le_bytes(prev[..8].try_into().unwrap());
        let releaser = u64::from_le_bytes(prev[8..].try_into().unwrap());
        if released != 0 && releaser != me {
            buf.extend_from_slice(&(got - released).to_le_bytes());
        }
        spin_or_sleep(hold);
        let mut rec = [0u8; 16];
        rec[..8].copy_from_slice(&now_ns().to_le_bytes());
        rec[8..].copy_from_slice(&me.to_le_bytes());
        shared.write_all_at(&rec, slot as u64 * 16).unwrap();
        drop(guard);
        spin_or_sleep(think);
        if buf.len() >= 8 * 64 {
            samples.write_all(&buf).unwrap();
            buf.clear();
        }
    }
    samples.write_all(&buf).unwrap();
}

fn spin_or_sleep(d: Duration) {
    if !d.is_zero() {
        std::thread::sleep(d);
    }
}

/// Takes the lock, says so by creating `ready`, and holds until killed.
fn holder(args: &[String]) {
    let kind = Kind::parse(&args[1]);
    let dir = PathBuf::from(&args[2]);
    let e = election(kind, &dir);
    let (_slot, _guard) = acquire(e.as_ref(), &dir, 0);
    File::create(dir.join("ready")).unwrap();
    loop {
        std::thread::park();
    }
}

/// Waits for the lock, writes the time it got it into `got`, exits.
fn failover_waiter(args: &[String]) {
    let kind = Kind::parse(&args[1]);
    let dir = PathBuf::from(&args[2]);
    let e = election(kind, &dir);
    let (_slot, _guard) = acquire(e.as_ref(), &dir, 0);
    let t = now_ns();
    std::fs::write(dir.join("got.tmp"), t.to_le_bytes()).unwrap();
    std::fs::rename(dir.join("got.tmp"), dir.join("got")).unwrap();
}

fn spawn(role: &str, args: &[String]) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .env(ROLE, role)
        .args(args)
        .spawn()
        .unwrap()
}

/// Waits until the process sleeps in `flock` or `ppoll` (its wait), then a
/// little more, so that a kill measures the hand-off and not its start-up.
fn wait_asleep(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
        if wchan.contains("lock") || wchan.contains("poll") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "process {pid} never went to sleep (wchan {wchan})"
        );
        std::thread::sleep(Duration::from_micros(500));
    }
    std::thread::sleep(Duration::from_millis(5));
}

fn wait_for(path: &Path) {
    assert!(
        support::wait_for(path, Duration::from_secs(30)),
        "timed out waiting for {}",
        path.display()
    );
}

// ---------------------------------------------------------------- figures

struct Dist(Vec<u64>);

impl Dist {
    fn pct(&self, p: f64) -> f64 {
        let i = ((self.0.len() as f64 - 1.0) * p).round() as usize;
        self.0[i] as f64 / 1000.0
    }

    /// The distribution as one line, and, when `ELECT_BENCH_SAMPLES` names a
    /// directory, every sample (nanoseconds, little-endian u64) in
    /// `<dir>/<what>.u64` for plotting.
    fn line(&self, what: &str) -> String {
        keep_samples("", what, &self.0);
        format!(
            "{what:<44} n={:>6}  p50={:>8.1} µs  p90={:>8.1} µs  p99={:>8.1} µs",
            self.0.len(),
            self.pct(0.5),
            self.pct(0.9),
            self.pct(0.99)
        )
    }
}

/// Runs `waiters + 1` cyclers of `kind` for `secs` and returns the hand-off
/// latencies.
fn run_cyclers(
    base: &Path,
    kind: Kind,
    procs: usize,
    secs: f64,
    hold_us: u64,
    think_us: u64,
) -> (Dist, Duration, f64) {
    let dir = fresh(base, &format!("cyc-{}-{procs}", kind.arg()));
    std::fs::write(dir.join("shared"), vec![0u8; 16 * 4096]).unwrap();
    File::create(dir.join("samples")).unwrap();
    let args = vec![
        kind.arg(),
        dir.to_str().unwrap().into(),
        hold_us.to_string(),
        think_us.to_string(),
    ];
    let start = Instant::now();
    let before = children_cpu();
    let mut kids: Vec<Child> = (0..procs)
        .map(|i| {
            let mut a = args.clone();
            a.push(i.to_string());
            spawn("cycler", &a)
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    File::create(dir.join("stop")).unwrap();
    // A waiter still blocked needs the others to go on releasing; they do
    // until each has seen the stop file after its next turn.
    let failed = kids
        .iter_mut()
        .map(|k| k.wait().unwrap())
        .filter(|status| !status.success())
        .count();
    // A figure from a run in which workers died is not a figure.
    assert_eq!(
        failed, 0,
        "{failed} of {procs} workers failed; see their errors above"
    );
    let elapsed = start.elapsed();
    let cpu = children_cpu() - before;
    let bytes = std::fs::read(dir.join("samples")).unwrap();
    let mut v: Vec<u64> = bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    v.sort_unstable();
    (Dist(v), elapsed, cpu)
}

/// CPU seconds used by reaped children so far.
fn children_cpu() -> f64 {
    // SAFETY: ru is a valid out-pointer.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn handoff(base: &Path, quick: bool) {
    // 8 s of each kind, in 4 rounds of 2 s that run every kind in turn:
    // on a shared machine a slow stretch then falls on all kinds alike,
    // not on whichever ran during it (one 8 s block each had the anchor
    // and elect measured minutes apart).
    let (rounds, secs) = if quick { (1, 2.0) } else { (4, 2.0) };
    println!(
        "\n## Hand-off: holder releases → waiting process owns (hold 1 ms, think 2 ms; {rounds} interleaved rounds of {secs} s)"
    );
    let kinds = [
        (Kind::Raw, 4),
        (Kind::Elect(1), 4),
        (Kind::RawCalls, 4),
        (Kind::Raw, 4),
        (Kind::RawLocks(4), 20),
        (Kind::Elect(4), 20),
    ];
    let mut pooled = vec![(Vec::new(), 0.0); kinds.len()];
    for r in 0..rounds {
        // Each round's medians go to stderr (multiproc.err in a full run),
        // to show drift within the run: the pooled figures hide it.
        let mut p50s = Vec::new();
        for ((kind, procs), (samples, cpu)) in kinds.iter().zip(&mut pooled) {
            let (d, _, used) = run_cyclers(base, *kind, *procs, secs, 1000, 2000);
            p50s.push(format!("{}:{:.1}", kind.arg(), d.pct(0.5)));
            samples.extend(d.0);
            *cpu += used;
        }
        eprintln!("hand-off round {r}, p50 µs: {}", p50s.join(" "));
    }
    let mut results = pooled.into_iter().map(|(mut v, cpu)| {
        v.sort_unstable();
        (Dist(v), cpu)
    });
    let mut next = || results.next().expect("one per kind");
    let ((raw, _), (e1, _), (calls, _), (raw2, _)) = (next(), next(), next(), next());
    let ((raw4, raw4_cpu), (e4, e4_cpu)) = (next(), next());
    println!("{}", raw.line("raw flock(2), 1 holder + 3 waiters"));
    println!("{}", e1.line("elect N=1, 1 holder + 3 waiters"));
    println!("{}", raw2.line("raw flock(2) again (drift check)"));
    println!(
        "{}",
        calls.line("raw flock(2) + elect's system calls, 1 + 3")
    );
    println!(
        "{}",
        raw4.line("raw flock(2), 4 files, 4 holders + 16 waiters")
    );
    println!("{}", e4.line("elect N=4, 4 holders + 16 waiters"));
    let anchor = (raw.pct(0.5) + raw2.pct(0.5)) / 2.0;
    println!(
        "ratio p50 elect/raw: N=1 {:.2}x, N=4 {:.2}x against 4 files with the same 20 processes ({:.2}x against one file) (target ≤ 3x; p99 target < 1000 µs)",
        e1.pct(0.5) / anchor,
        e4.pct(0.5) / raw4.pct(0.5),
        e4.pct(0.5) / anchor,
    );
    println!(
        "ratio p50 elect N=1 / raw flock(2) with elect's system calls: {:.2}x; those calls alone: {:.2}x of raw flock(2)",
        e1.pct(0.5) / calls.pct(0.5),
        calls.pct(0.5) / anchor
    );
    // CPU of all 20 workers over the run, per hand-off: on 2 cores, work
    // around a hand-off competes with the new owner for a CPU.
    let per = |cpu: f64, d: &Dist| cpu * 1e6 / d.0.len().max(1) as f64;
    println!(
        "CPU per hand-off at N=4 (all workers, µs): 4 raw files {:.1}, elect {:.1}",
        per(raw4_cpu, &raw4),
        per(e4_cpu, &e4)
    );
}

/// The N=4 hand-off alone, in rounds that interleave elect with 4 raw
/// files, so that the machine's drift falls on both alike; prints each
/// round and the median of the rounds.
fn handoff4(base: &Path, quick: bool) {
    let (rounds, secs) = if quick { (3, 2.0) } else { (7, 3.0) };
    println!("\n## N=4 hand-off, {rounds} interleaved rounds of {secs} s (p50 µs)");
    let kinds = [Kind::RawLocks(4), Kind::Elect(4)];
    let mut p50s = vec![Vec::new(); kinds.len()];
    let mut cpus = vec![Vec::new(); kinds.len()];
    let mut ratios = Vec::new();
    for r in 0..rounds {
        let mut round = Vec::new();
        for (k, cpu) in kinds.iter().zip(&mut cpus) {
            let (d, _, used) = run_cyclers(base, *k, 20, secs, 1000, 2000);
            // CPU of all 20 workers per hand-off, µs.
            cpu.push(used * 1e6 / d.0.len().max(1) as f64);
            round.push(d.pct(0.5));
        }
        println!(
            "round {r}: 4 raw files {:.1}, elect {:.1}: elect {:.2}x of 4 raw files; CPU per hand-off {:.0}, {:.0} µs",
            round[0],
            round[1],
            round[1] / round[0],
            cpus[0][r],
            cpus[1][r]
        );
        ratios.push(round[1] / round[0]);
        for (v, p) in p50s.iter_mut().zip(round) {
            v.push(p);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "median of rounds: 4 raw files {:.1}, elect {:.1}; elect {:.2}x of 4 raw files; CPU per hand-off {:.0}, {:.0} µs",
        median(&mut p50s[0]),
        median(&mut p50s[1]),
        median(&mut ratios),
        median(&mut cpus[0]),
        median(&mut cpus[1])
    );
}

fn failover(base: &Path, quick: bool) {
    let rounds = if quick { 20 } else { 100 };
    println!("\n## Fail-over: holder SIGKILLed → waiting process owns ({rounds} rounds each)");
    let kinds = [Kind::Raw, Kind::Elect(1), Kind::Elect(3)];
    let mut samples: Vec<Vec<u64>> = vec![Vec::new(); kinds.len()];
    // Rounds of the three kinds interleaved, so that the machine's drift
    // (a fail-over moved by 100 µs between blocks run one after another)
    // falls on all alike.
    for r in 0..rounds {
        for (kind, v) in kinds.iter().zip(&mut samples) {
            v.push(failover_round(base, *kind, r));
        }
    }
    let results: Vec<(Kind, Dist)> = kinds
        .into_iter()
        .zip(samples)
        .map(|(kind, mut v)| {
            v.sort_unstable();
            (kind, Dist(v))
        })
        .collect();
    for (kind, d) in &results {
        println!("{}", d.line(&format!("fail-over {kind:?}")));
    }
    let raw = results[0].1.pct(0.5);
    println!(
        "ratio p50 elect/raw: N=1 {:.2}x, N=3 {:.2}x (target ≤ 1.5x)",
        results[1].1.pct(0.5) / raw,
        results[2].1.pct(0.5) / raw
    );
}

/// One fail-over of `kind`: N holders (N tickets, so the waiter must
/// wait), a waiter asleep, the first holder SIGKILLed; returns the time from
/// the kill until the waiter owns, in ns.
fn failover_round(base: &Path, kind: Kind, round: u32) -> u64 {
    let dir = fresh(base, &format!("fo-{}-{round}", kind.arg()));
    let args = vec![kind.arg(), dir.to_str().unwrap().into()];
    let mut holders: Vec<Child> = Vec::new();
    let n = kind.tickets();
    for _ in 0..n {
        let _ = std::fs::remove_file(dir.join("ready"));
        holders.push(spawn("holder", &args));
        wait_for(&dir.join("ready"));
    }
    let mut waiter = spawn("failover-waiter", &args);
    wait_asleep(waiter.id());
    let t0 = now_ns();
    // SAFETY: plain syscall.
    unsafe { libc::kill(holders[0].id() as i32, libc::SIGKILL) };
    waiter.wait().unwrap();
    let got = u64::from_le_bytes(std::fs::read(dir.join("got")).unwrap().try_into().unwrap());
    for mut h in holders {
        let _ = h.kill();
        let _ = h.wait();
    }
    got.saturating_sub(t0)
}

/// CPU ticks and wake-ups of a process and all its threads. A wake-up is
/// counted when the thread goes back to sleep (a voluntary context switch);
/// involuntary switches are preemptions of a thread already awake, which a
/// busy machine adds to any process, and are left out.
fn proc_cost(pid: u32) -> (u64, u64) {
    let mut ticks = 0;
    let mut switches = 0;
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (0, 0);
    };
    for t in tasks.flatten() {
        let p = t.path();
        if let Ok(stat) = std::fs::read_to_string(p.join("stat")) {
            let after = &stat[stat.rfind(')').unwrap() + 2..];
            let f: Vec<&str> = after.split_whitespace().collect();
            ticks += f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
        }
        if let Ok(status) = std::fs::read_to_string(p.join("status")) {
            for line in status.lines() {
                if let Some(v) = line.strip_prefix("voluntary_ctxt_switches:") {
                    switches += v.trim().parse::<u64>().unwrap();
                }
            }
        }
    }
    (ticks, switches)
}

fn idle(base: &Path, quick: bool) {
    let secs = if quick { 3 } else { 10 };
    let waiters = 100;
    println!("\n## Idle: {waiters} waiters for {secs} s while the tickets are held");
    // SAFETY: sysconf cannot fail for this name.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    for kind in [Kind::Raw, Kind::Elect(1), Kind::Elect(3)] {
        let dir = fresh(base, &format!("idle-{}", kind.arg()));
        let args = vec![kind.arg(), dir.to_str().unwrap().into()];
        let n = kind.tickets();
        let mut holders = Vec::new();
        for _ in 0..n {
            let _ = std::fs::remove_file(dir.join("ready"));
            holders.push(spawn("holder", &args));
            wait_for(&dir.join("ready"));
        }
        let mut ws: Vec<Child> = (0..waiters)
            .map(|_| spawn("failover-waiter", &args))
            .collect();
        // Let them all start and settle into their wait.
        std::thread::sleep(Duration::from_secs(2));
        let before: Vec<_> = ws.iter().map(|w| proc_cost(w.id())).collect();
        std::thread::sleep(Duration::from_secs(secs));
        let after: Vec<_> = ws.iter().map(|w| proc_cost(w.id())).collect();
        let cpu_ms: f64 = before
            .iter()
            .zip(&after)
            .map(|(b, a)| (a.0 - b.0) as f64 / hz * 1000.0)
            .sum();
        let max_wakes = before
            .iter()
            .zip(&after)
            .map(|(b, a)| a.1 - b.1)
            .max()
            .unwrap_or(0);
        println!(
            "{:<12} CPU of all {waiters} waiters: {cpu_ms:>6.1} ms; most wake-ups of one waiter: {max_wakes} ({:.2}/s)",
            format!("{kind:?}"),
            max_wakes as f64 / secs as f64
        );
        for w in ws.iter_mut().chain(holders.iter_mut()) {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
    println!(
        "(target: 0 CPU ticks, at most 1 wake-up per second each; CPU is counted in clock ticks of {:.0} ms)",
        1000.0 / hz
    );
}

fn scale(base: &Path, quick: bool) {
    let secs = if quick { 2.0 } else { 6.0 };
    println!("\n## Scale: back-to-back hand-offs (hold 0, think 0)");
    for kind in [Kind::Raw, Kind::Elect(1)] {
        for procs in [5, 17, 65] {
            let (d, elapsed, cpu) = run_cyclers(base, kind, procs, secs, 0, 0);
            let n = d.0.len().max(1) as f64;
            println!(
                "{:<9} {:>3} waiters: {:>8.0} hand-offs/s, CPU per hand-off {:>6.1} µs, p50 {:>7.1} µs",
                kind.arg(),
                procs - 1,
                n / elapsed.as_secs_f64(),
                cpu / n * 1e6,
                d.pct(0.5)
            );
        }
    }
    let (d, elapsed, cpu) = run_cyclers(base, Kind::Elect(256), 512, secs * 2.0, 1000, 0);
    let n = d.0.len().max(1) as f64;
    println!(
        "elect N=256, 512 contenders: {:>8.0} hand-offs/s, CPU per hand-off {:>6.1} µs, p50 {:>7.1} µs, p99 {:>7.1} µs",
        n / elapsed.as_secs_f64(),
        cpu / n * 1e6,
        d.pct(0.5),
        d.pct(0.99)
    );
    let _ = std::io::stdout().flush();
}

fn status(base: &Path, quick: bool) {
    let resources = if quick { 2_000 } else { 10_000 };
    println!("\n## Status of a run directory with {resources} resources (one held slot each)");
    let dir = fresh(base, "status");
    // Every resource used once; then half of them held, by helper processes
    // of their own (a held ticket keeps 4 descriptors, and 5,000 of them
    // would pass a usual limit of open files), while status is read, so
    // that both the kernel's lock list and the records are in play.
    for i in (1..resources).step_by(2) {
        let e = Election::builder(format!("r{i}"))
            .dir(&dir)
            .build()
            .unwrap();
        drop(e.obtain().unwrap());
    }
    const HOLDERS: usize = 4;
    let holders: Vec<Child> = (0..HOLDERS)
        .map(|h| {
            let _ = std::fs::remove_file(dir.join(format!("ready{h}")));
            let args = [
                dir.to_str().unwrap().to_string(),
                h.to_string(),
                HOLDERS.to_string(),
                resources.to_string(),
            ];
            spawn("status-holder", &args)
        })
        .collect();
    for h in 0..HOLDERS {
        wait_for(&dir.join(format!("ready{h}")));
    }
    // Times `runs` calls of `call`; prints median, best and worst as
    // report.py reads them.
    let timed = |what: &str, runs: usize, call: &dyn Fn()| {
        let mut times: Vec<Duration> = (0..runs)
            .map(|_| {
                let start = Instant::now();
                call();
                start.elapsed()
            })
            .collect();
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{what} over {resources} resources: median {:.1} ms, best {:.1} ms, worst {:.1} ms (target < 200 ms for 10,000)",
            ms(times[runs / 2]),
            ms(times[0]),
            ms(times[runs - 1])
        );
    };
    timed("elect::status + JSON", 7, &|| {
        let st = elect::status(Some(&dir), None).unwrap();
        let json = serde_json::to_string(&st).unwrap();
        assert_eq!(st.resources.len(), resources);
        assert!(json.len() > resources * 20);
    });
    // What target 7 names: the command, a process of its own that reads the
    // directory cold of any state of this one, with its JSON read whole
    // through a pipe as a script would.
    timed("elect status --json (the command)", 11, &|| {
        let out = Command::new(env!("CARGO_BIN_EXE_elect"))
            .args(["status", "--json", "-d"])
            .arg(&dir)
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "elect status failed: {:?}",
            out.status
        );
        assert!(out.stdout.len() > resources * 20);
    });
    for mut h in holders {
        let _ = h.kill();
        let _ = h.wait();
    }
}

/// Holds the even-numbered resources `r{i}` with `i / 2 % holders == h`
/// in `dir`, says so by creating `ready{h}`, and holds until killed.
/// Arguments: directory, h, holders, resources.
fn status_holder(args: &[String]) {
    let dir = PathBuf::from(&args[1]);
    let (h, holders, resources): (usize, usize, usize) = (
        args[2].parse().unwrap(),
        args[3].parse().unwrap(),
        args[4].parse().unwrap(),
    );
    raise_fd_limit();
    let held: Vec<elect::Ticket> = (0..resources)
        .step_by(2)
        .filter(|i| i / 2 % holders == h)
        .map(|i| {
            Election::builder(format!("r{i}"))
                .dir(&dir)
                .build()
                .unwrap()
                .obtain()
                .unwrap()
        })
        .collect();
    File::create(dir.join(format!("ready{h}"))).unwrap();
    loop {
        std::thread::park();
        let _ = &held;
    }
}

/// Holding thousands of tickets in one process needs thousands of
/// descriptors (four for each held ticket: the lock, the record, the
/// resource directory and the membership): raise the limit to 65,536 where
/// the process may (root), else the soft limit to the hard one.
fn raise_fd_limit() {
    // SAFETY: rl is a valid in/out pointer.
    unsafe {
        let mut rl: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 {
            let want = rl.rlim_max.max(65_536);
            let more = libc::rlimit {
                rlim_cur: want,
                rlim_max: want,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &more) != 0 {
                rl.rlim_cur = rl.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
            }
        }
    }
}
