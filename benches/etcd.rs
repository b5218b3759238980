//! The etcd store's figures, each beside the local store's measured in the
//! same run with the same worker code (only the builder differs), and beside
//! the raw etcd round-trip as the floor:
//!
//! * `handoff`: holder drops its Ticket (lease revoked) → a waiting process
//!   owns; N=1 (1 holder + 3 waiters) on a single member and on a 3-member
//!   cluster, N=4 (4 holders + 16 waiters) on a single member;
//! * `failover`: holder SIGKILLed → a waiting process owns, with a 2 s TTL
//!   (the smallest etcd grants with its default election timeout);
//! * `uncontended`: try_obtain + release in one process;
//! * `cli`: one `elect run ... -- true`, by hyperfine if installed;
//! * `leader`: the etcd leader of a 3-member cluster SIGKILLed while a
//!   holder holds and a waiter waits.
//!
//! `cargo bench --features cli,etcd --bench etcd` (add `-- quick` for the short
//! run, or section names). The bench starts its own etcd (`etcd` in PATH, or
//! `ELECT_BENCH_ETCD_BIN`) on loopback ports with data directories under
//! the system temporary directory (or `ELECT_BENCH_ETCD_DIR`), and
//! re-executes itself for the worker processes; times are CLOCK_MONOTONIC
//! stamps, which all processes of the host share. It prints a markdown
//! section and, with `ELECT_BENCH_OUT=FILE`, writes it there too.
//! `ELECT_BENCH_SAMPLES=N` sets the hand-offs per row (default 200 quick,
//! 1000 full; the kills and other counts scale with it); a value that is
//! not a number is taken, as by multiproc.rs, as a directory in which to
//! keep every latency sample (little-endian u64 nanoseconds).

mod support;

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::FileExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{fresh, keep_samples, now_ns, wait_for};

use elect::{Election, Etcd};
use etcd_client::{Client, ConnectOptions, GetOptions, LeaseTimeToLiveOptions};

const ROLE: &str = "ELECT_ETCD_BENCH_ROLE";

/// The TTL asked for in the fail-over rows.
const FAILOVER_TTL: u64 = 2;

fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let spec = Spec::parse(&args);
        let work = PathBuf::from(&args[Spec::ARGS]);
        let rest = &args[Spec::ARGS + 1..];
        match role.as_str() {
            "cycler" => cycler(&spec, &work, rest),
            "holder" => holder(&spec, &work),
            "waiter" => waiter(&spec, &work),
            _ => panic!("unknown role {role}"),
        }
        return;
    }
    let selection = support::Selection::from_args();
    let quick = selection.quick;
    let only = |name: &str| selection.only(name);
    let samples = match std::env::var("ELECT_BENCH_SAMPLES").map(|v| v.parse::<usize>()) {
        Ok(Ok(n)) if n >= 20 => n,
        _ if quick => 200,
        _ => 1000,
    };
    let mut b = Bench::new(quick, samples);
    let load_before = load_average();
    let started = Instant::now();
    eprintln!("starting etcd: a single member and a 3-member cluster");
    let mut single = Cluster::start(1, &b.rt);
    let mut three = Cluster::start(3, &b.rt);
    b.anchors(&single, &three, "before");
    if only("handoff") {
        b.handoff(&single, &three);
    }
    if only("failover") {
        b.failover(&single, &three);
    }
    if only("uncontended") {
        b.uncontended(&single, &three);
    }
    if only("cli") {
        b.cli(&single);
    }
    b.anchors(&single, &three, "after");
    if only("leader") {
        b.leader(&mut three);
    }

    single.stop_all();
    three.stop_all();
    let report = b.report(quick, &load_before, started.elapsed(), &single);
    print!("{report}");
    if let Some(out) = std::env::var_os("ELECT_BENCH_OUT") {
        std::fs::write(&out, &report).unwrap();
        eprintln!("written to {}", Path::new(&out).display());
    }
}

// ---------------------------------------------------------------- workers

/// Where a worker's election lives and what it is; passed as arguments.
#[derive(Clone, Debug)]
struct Spec {
    /// `local` or `etcd`.
    kind: String,
    /// The run directory, or the endpoints.
    location: String,
    prefix: String,
    ttl: u64,
    tickets: u32,
    name: String,
}

impl Spec {
    const ARGS: usize = 6;

    fn local(dir: &Path, tickets: u32, name: &str) -> Spec {
        Spec {
            kind: "local".into(),
            location: dir.to_str().unwrap().into(),
            prefix: "-".into(),
            ttl: 0,
            tickets,
            name: name.into(),
        }
    }

    fn etcd(endpoints: &str, prefix: &str, ttl: u64, tickets: u32, name: &str) -> Spec {
        Spec {
            kind: "etcd".into(),
            location: endpoints.into(),
            prefix: prefix.into(),
            ttl,
            tickets,
            name: name.into(),
        }
    }

    fn args(&self) -> Vec<String> {
        vec![
            self.kind.clone(),
            self.location.clone(),
            self.prefix.clone(),
            self.ttl.to_string(),
            self.tickets.to_string(),
            self.name.clone(),
        ]
    }

    fn parse(a: &[String]) -> Spec {
        Spec {
            kind: a[0].clone(),
            location: a[1].clone(),
            prefix: a[2].clone(),
            ttl: a[3].parse().unwrap(),
            tickets: a[4].parse().unwrap(),
            name: a[5].clone(),
        }
    }

    fn is_etcd(&self) -> bool {
        self.kind == "etcd"
    }

    /// The election: the one place where local and etcd workers differ.
    fn election(&self) -> Election {
        let b = Election::builder(&self.name).tickets(self.tickets);
        let b = if self.is_etcd() {
            b.etcd(
                Etcd::new(&self.location)
                    .unwrap()
                    .prefix(self.prefix.as_str())
                    .unwrap()
                    .ttl(Duration::from_secs(self.ttl))
                    .unwrap(),
            )
        } else {
            b.dir(&self.location)
        };
        b.build().unwrap()
    }
}

/// One sample of a cycler: the hand-off latency, and whether the new owner
/// had been waiting when the slot was released (else the slot was free when
/// it came, and the figure is no hand-off).
const SAMPLE: usize = 16;

/// Loops obtain → note latency since the slot's last release by another
/// process → hold → note release time → release (drop) → think, until
/// `stop` exists. Shared file: per slot, 16 bytes: release time, releaser.
fn cycler(spec: &Spec, work: &Path, rest: &[String]) {
    let hold = Duration::from_micros(rest[0].parse().unwrap());
    let think = Duration::from_micros(rest[1].parse().unwrap());
    let shared = OpenOptions::new()
        .read(true)
        .write(true)
        .open(work.join("shared"))
        .unwrap();
    let mut samples = OpenOptions::new()
        .append(true)
        .open(work.join("samples"))
        .unwrap();
    let me = std::process::id() as u64;
    let e = spec.election();
    while !work.join("stop").exists() {
        let asked = now_ns();
        let ticket = e.obtain().unwrap();
        let got = now_ns();
        let slot = ticket.slot() as u64;
        let mut prev = [0u8; 16];
        shared.read_exact_at(&mut prev, slot * 16).unwrap();
        let released = u64::from_le_bytes(prev[..8].try_into().unwrap());
        let releaser = u64::from_le_bytes(prev[8..].try_into().unwrap());
        if released != 0 && releaser != me {
            let mut s = [0u8; SAMPLE];
            s[..8].copy_from_slice(&(got - released).to_le_bytes());
            s[8..].copy_from_slice(&u64::from(asked < released).to_le_bytes());
            samples.write_all(&s).unwrap();
        }
        std::thread::sleep(hold);
        let mut rec = [0u8; 16];
        rec[..8].copy_from_slice(&now_ns().to_le_bytes());
        rec[8..].copy_from_slice(&me.to_le_bytes());
        shared.write_all_at(&rec, slot * 16).unwrap();
        drop(ticket);
        std::thread::sleep(think);
    }
}

/// Writes `text` to `work/name` so that it appears whole.
fn publish(work: &Path, name: &str, text: &str) {
    let tmp = work.join(format!("{name}.tmp.{}", std::process::id()));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, work.join(name)).unwrap();
}

/// Takes a ticket, says so in `ready` (its token), then every 5 ms: notes
/// in `lost` when it first finds the ticket not held (and in `back` when it
/// first finds it held again after that), and when `release`
/// exists releases it, writing `released`: the time before the drop and
/// after it. Killed by the fail-over rows before any of that.
fn holder(spec: &Spec, work: &Path) {
    let e = spec.election();
    let t = e.obtain().unwrap();
    publish(work, "ready", &t.token().to_string());
    let (mut lost, mut back) = (false, false);
    loop {
        let held = t.is_held();
        if !lost && !held {
            lost = true;
            publish(work, "lost", &now_ns().to_string());
        }
        // A ticket seen lost that looks held again later (a renewal went
        // through after all).
        if lost && !back && held {
            back = true;
            publish(work, "back", &now_ns().to_string());
        }
        if work.join("release").exists() {
            let before = now_ns();
            drop(t);
            let after = now_ns();
            publish(work, "released", &format!("{before} {after}"));
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Says it starts waiting (`waiting`), obtains, writes `got`: the time and
/// its token, and exits (releasing).
fn waiter(spec: &Spec, work: &Path) {
    let e = spec.election();
    publish(work, "waiting", "");
    let t = e.obtain().unwrap();
    let at = now_ns();
    publish(work, "got", &format!("{at} {}", t.token()));
}

/// Spawns this binary as a worker; its stdout goes to stderr, so that the
/// report on stdout stays clean.
fn spawn(role: &str, spec: &Spec, work: &Path, rest: &[String]) -> Child {
    let mut args = spec.args();
    args.push(work.to_str().unwrap().into());
    args.extend(rest.iter().cloned());
    Command::new(std::env::current_exe().unwrap())
        .env(ROLE, role)
        .args(args)
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

fn read_u64s(path: &Path) -> Vec<u64> {
    std::fs::read_to_string(path)
        .unwrap()
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect()
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

// ---------------------------------------------------------------- etcd

/// One etcd member.
struct Member {
    name: String,
    client: u16,
    peer: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Member {
    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client)
    }
    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer)
    }
}

/// etcd members on loopback ports with data directories in a temporary
/// directory, with etcd's default timing (heartbeat 100 ms, election
/// timeout 1000 ms), killed when dropped.
struct Cluster {
    members: Vec<Member>,
    initial: String,
    token: String,
    _base: tempfile::TempDir,
}

fn etcd_bin() -> PathBuf {
    std::env::var_os("ELECT_BENCH_ETCD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("etcd"))
}

fn data_base() -> PathBuf {
    std::env::var_os("ELECT_BENCH_ETCD_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

impl Cluster {
    fn start(n: usize, rt: &tokio::runtime::Runtime) -> Cluster {
        let base = tempfile::Builder::new()
            .prefix("elect-bench-etcd-")
            .tempdir_in(data_base())
            .unwrap();
        // Hold every probe until all ports are picked, so they differ.
        let probes: Vec<std::net::TcpListener> = (0..2 * n)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let ports: Vec<u16> = probes
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        drop(probes);
        let members: Vec<Member> = (0..n)
            .map(|i| {
                let dir = base.path().join(format!("n{i}"));
                std::fs::create_dir_all(&dir).unwrap();
                Member {
                    name: format!("n{i}"),
                    client: ports[2 * i],
                    peer: ports[2 * i + 1],
                    dir,
                    child: None,
                }
            })
            .collect();
        let initial = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        let mut c = Cluster {
            members,
            initial,
            token: format!("elect-bench-{}-{n}", std::process::id()),
            _base: base,
        };
        for i in 0..n {
            c.spawn_member(i, "new");
        }
        c.wait_leader(rt, Duration::from_secs(60))
            .expect("etcd did not elect a leader within 60 s; see its logs in the data directory");
        c
    }

    fn spawn_member(&mut self, i: usize, state: &str) {
        let m = &self.members[i];
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(m.dir.join("etcd.log"))
            .unwrap();
        let mut cmd = Command::new(etcd_bin());
        cmd.args(["--name", &m.name])
            .arg("--data-dir")
            .arg(m.dir.join("data"))
            .args(["--listen-client-urls", &m.endpoint()])
            .args(["--advertise-client-urls", &m.endpoint()])
            .args(["--listen-peer-urls", &m.peer_url()])
            .args(["--initial-advertise-peer-urls", &m.peer_url()])
            .args(["--initial-cluster", &self.initial])
            .args(["--initial-cluster-state", state])
            .args(["--initial-cluster-token", &self.token])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("ETCD_") {
                cmd.env_remove(k);
            }
        }
        // SAFETY: prctl is async-signal-safe. Members die with the bench
        // (they are spawned from the main thread, which lives as long).
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
                Ok(())
            });
        }
        self.members[i].child = Some(cmd.spawn().expect("cannot start etcd"));
    }

    fn endpoints(&self) -> String {
        self.members
            .iter()
            .map(Member::endpoint)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// (member index, its id, the leader it knows) of every running member
    /// that answers.
    fn statuses(&self, rt: &tokio::runtime::Runtime) -> Vec<(usize, u64, u64)> {
        let mut out = Vec::new();
        for (i, m) in self.members.iter().enumerate() {
            if m.child.is_none() {
                continue;
            }
            let ep = m.endpoint();
            let r = rt.block_on(async move {
                let opts = ConnectOptions::new()
                    .with_connect_timeout(Duration::from_millis(500))
                    .with_timeout(Duration::from_millis(500));
                let mut c = Client::connect([ep], Some(opts)).await?;
                c.status().await
            });
            if let Ok(s) = r {
                let id = s.header().map_or(0, |h| h.member_id());
                out.push((i, id, s.leader()));
            }
        }
        out
    }

    /// The leader's index once every running member answers and agrees.
    fn wait_leader(&self, rt: &tokio::runtime::Runtime, limit: Duration) -> Option<usize> {
        let deadline = Instant::now() + limit;
        loop {
            let running = self.members.iter().filter(|m| m.child.is_some()).count();
            let s = self.statuses(rt);
            if s.len() == running
                && let Some(&(_, _, leader)) = s.first()
                && leader != 0
                && s.iter().all(|x| x.2 == leader)
                && let Some(&(i, _, _)) = s.iter().find(|x| x.1 == leader)
            {
                return Some(i);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            kill(&mut c);
        }
    }

    fn stop_all(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}

async fn connect(endpoints: &str) -> Client {
    let eps: Vec<&str> = endpoints.split(',').collect();
    Client::connect(eps, None).await.unwrap()
}

// ---------------------------------------------------------------- figures

struct Dist(Vec<u64>);

impl Dist {
    fn new(mut v: Vec<u64>) -> Dist {
        v.sort_unstable();
        Dist(v)
    }

    /// Nanoseconds at quantile `p` (nearest rank, as multiproc.rs).
    fn pct(&self, p: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        let i = ((self.0.len() as f64 - 1.0) * p).round() as usize;
        self.0[i] as f64
    }

    fn p50(&self) -> f64 {
        self.pct(0.5)
    }

    /// Keeps the samples when ELECT_BENCH_SAMPLES names a directory.
    fn keep(&self, what: &str) {
        keep_samples("etcd_", what, &self.0);
    }
}

/// A duration in nanoseconds with three significant digits and a unit.
fn fmt_ns(ns: f64) -> String {
    if ns.is_nan() {
        return "–".into();
    }
    let (v, unit) = if ns < 1e3 {
        (ns, "ns")
    } else if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    if v >= 100.0 {
        format!("{v:.0} {unit}")
    } else if v >= 10.0 {
        format!("{v:.1} {unit}")
    } else {
        format!("{v:.2} {unit}")
    }
}

fn ratio(a: f64, b: f64) -> String {
    if a.is_nan() || b.is_nan() || b == 0.0 {
        "–".into()
    } else {
        format!("{:.2}×", a / b)
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn command_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The bench's state: the runtime of its own etcd client, and the report
/// as it grows.
struct Bench {
    rt: tokio::runtime::Runtime,
    tmp: tempfile::TempDir,
    quick: bool,
    samples: usize,
    /// put and get round-trips: (label, put, get).
    rtt: Vec<(String, Dist, Dist)>,
    /// Markdown of each section, in the order measured.
    sections: Vec<String>,
    /// The TTLs the server granted in the fail-over rows.
    granted: Vec<i64>,
    rows: usize,
}

/// The hold and think times of the hand-off cyclers. The hold is long
/// enough for the next waiter to have settled (read the line, found itself
/// at its head, seen the slots full and started its watch) before the
/// release, so that the figure is the hand-off and not the line's advance.
const HOLD_US: u64 = 20_000;

/// [`HOLD_US`], or `ELECT_BENCH_HOLD_MS` if set.
fn hold_us() -> u64 {
    std::env::var("ELECT_BENCH_HOLD_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(HOLD_US, |ms| ms * 1000)
}
const THINK_US: u64 = 2_000;

impl Bench {
    fn new(quick: bool, samples: usize) -> Bench {
        Bench {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            tmp: tempfile::tempdir().unwrap(),
            quick,
            samples,
            rtt: Vec::new(),
            sections: Vec::new(),
            granted: Vec::new(),
            rows: 0,
        }
    }

    /// A fresh key prefix, so that rows do not meet.
    fn prefix(&mut self) -> String {
        self.rows += 1;
        format!("bench-{}-{}/", std::process::id(), self.rows)
    }

    /// The raw round-trips, measured from this process with the same client
    /// crate: a put (one write through raft, with its WAL fsync) and a
    /// linearizable get (a read index through the leader).
    fn anchors(&mut self, single: &Cluster, three: &Cluster, when: &str) {
        let n = self.samples;
        for (label, c) in [("1 member", single), ("3 members", three)] {
            let eps = c.endpoints();
            let (put, get) = self.rt.block_on(async move {
                let mut client = connect(&eps).await;
                let (mut put, mut get) = (Vec::new(), Vec::new());
                for i in 0..n + 20 {
                    let t = now_ns();
                    client
                        .put("bench-anchor", i.to_string(), None)
                        .await
                        .unwrap();
                    let p = now_ns() - t;
                    let t = now_ns();
                    client.get("bench-anchor", None).await.unwrap();
                    let g = now_ns() - t;
                    if i >= 20 {
                        put.push(p);
                        get.push(g);
                    }
                }
                (put, get)
            });
            eprintln!(
                "anchor {label} {when}: put p50 {}",
                fmt_ns(Dist::new(put.clone()).p50())
            );
            self.rtt
                .push((format!("{label}, {when}"), Dist::new(put), Dist::new(get)));
        }
    }

    /// The put round-trip of `members` (1 or 3), median of before and after.
    /// The two ratio cells of a row: p50 over the put round-trip of its
    /// cluster, and over the local store's p50 (the local row is the anchor).
    fn ratios(&self, d: &Dist, is_local: bool, anchor: &str, local: f64) -> String {
        if is_local {
            "– | anchor".into()
        } else {
            format!(
                "{} | {}",
                ratio(d.p50(), self.put_anchor(anchor)),
                ratio(d.p50(), local)
            )
        }
    }

    fn put_anchor(&self, members: &str) -> f64 {
        let v: Vec<f64> = self
            .rtt
            .iter()
            .filter(|(l, _, _)| l.starts_with(members))
            .map(|(_, p, _)| p.p50())
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    }

    /// Runs `procs` cyclers on `spec` until `self.samples` hand-offs were
    /// seen; returns the hand-offs and how many acquisitions found the slot
    /// already free.
    fn run_cyclers(&self, spec: &Spec, procs: usize) -> (Dist, usize) {
        let work = fresh(
            self.tmp.path(),
            &format!("cyc-{}-{}", spec.kind, spec.prefix.replace('/', "")),
        );
        std::fs::write(work.join("shared"), vec![0u8; 16 * 64]).unwrap();
        File::create(work.join("samples")).unwrap();
        let rest = [hold_us().to_string(), THINK_US.to_string()];
        let mut kids: Vec<Child> = (0..procs)
            .map(|_| spawn("cycler", spec, &work, &rest))
            .collect();
        let want = self.samples as u64;
        let deadline = Instant::now() + Duration::from_secs(120);
        let count = |work: &Path| -> u64 {
            let bytes = std::fs::read(work.join("samples")).unwrap();
            bytes.chunks_exact(SAMPLE).filter(|c| c[8] == 1).count() as u64
        };
        while count(&work) < want {
            if Instant::now() > deadline || kids.iter_mut().any(|k| k.try_wait().unwrap().is_some())
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        File::create(work.join("stop")).unwrap();
        let failed = kids
            .iter_mut()
            .map(|k| k.wait().unwrap())
            .filter(|s| !s.success())
            .count();
        assert_eq!(failed, 0, "{failed} of {procs} cyclers failed; see above");
        let bytes = std::fs::read(work.join("samples")).unwrap();
        let mut handoffs = Vec::new();
        let mut free = 0;
        for c in bytes.chunks_exact(SAMPLE) {
            let v = u64::from_le_bytes(c[..8].try_into().unwrap());
            if c[8] == 1 {
                handoffs.push(v);
            } else {
                free += 1;
            }
        }
        (Dist::new(handoffs), free)
    }

    fn handoff(&mut self, single: &Cluster, three: &Cluster) {
        let mut rows: Vec<(String, String, Dist, usize, &'static str)> = Vec::new();
        let local_dir = fresh(self.tmp.path(), "local-handoff");
        type Case = (&'static str, &'static str, Option<u8>, u32, usize);
        let cases: [Case; 5] = [
            ("local", "N=1, 1 holder + 3 waiters", None, 1, 4),
            ("etcd, 1 member", "N=1, 1 holder + 3 waiters", Some(1), 1, 4),
            (
                "etcd, 3 members",
                "N=1, 1 holder + 3 waiters",
                Some(3),
                1,
                4,
            ),
            ("local", "N=4, 4 holders + 16 waiters", None, 4, 20),
            (
                "etcd, 1 member",
                "N=4, 4 holders + 16 waiters",
                Some(1),
                4,
                20,
            ),
        ];
        for (store, what, members, n, procs) in cases {
            let spec = match members {
                None => Spec::local(&local_dir, n, &format!("handoff{n}")),
                Some(m) => {
                    let c = if m == 1 { single } else { three };
                    let p = self.prefix();
                    Spec::etcd(&c.endpoints(), &p, 5, n, "handoff")
                }
            };
            eprintln!("hand-off: {store}, {what}");
            let (d, free) = self.run_cyclers(&spec, procs);
            d.keep(&format!("handoff {store} {what}"));
            let anchor = match members {
                Some(3) => "3 members",
                _ => "1 member",
            };
            rows.push((store.into(), what.into(), d, free, anchor));
        }
        let mut s = String::new();
        let _ = writeln!(
            s,
            "\n### Hand-off: holder drops its Ticket → a waiting process owns\n\n\
             Each worker loops obtain → hold {} ms → stamp → drop → think {} ms; a sample is \
             the time from a holder's stamp to the next owner's return from `obtain()`, \
             counted only if that owner was already waiting when the slot was released. \
             On etcd the drop revokes the lease (one round-trip, waited for), etcd deletes \
             the slot key, the head of the line sees the delete on the watch it keeps and \
             takes that slot in one transaction. Anchor: the put \
             round-trip of the same cluster (mean of the medians before and after).\n",
            hold_us() / 1000,
            THINK_US / 1000
        );
        let _ = writeln!(
            s,
            "| store | contenders | n | p50 | p90 | p99 | p50 ÷ put round-trip | p50 ÷ local | free on arrival (not counted) |"
        );
        let _ = writeln!(s, "| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        for (store, what, d, free, anchor) in &rows {
            let local = rows
                .iter()
                .find(|r| r.0 == "local" && r.1 == *what)
                .map_or(f64::NAN, |r| r.2.p50());
            let is_local = store == "local";
            let _ = writeln!(
                s,
                "| {store} | {what} | {} | {} | {} | {} | {} | {free} |",
                d.0.len(),
                fmt_ns(d.p50()),
                fmt_ns(d.pct(0.9)),
                fmt_ns(d.pct(0.99)),
                self.ratios(d, is_local, anchor, local),
            );
        }
        self.sections.push(s);
    }

    /// Kills holders, `parallel` pairs at a time (one resource each, kills
    /// staggered), and returns kill → owned for each.
    fn failover_rounds(&mut self, specs: &[Spec], kills: usize, parallel: usize) -> Dist {
        let mut v = Vec::new();
        let mut round = 0;
        while v.len() < kills {
            round += 1;
            let k = parallel.min(kills - v.len());
            let mut pairs = Vec::new();
            for (j, spec) in specs.iter().take(k).enumerate() {
                let work = fresh(self.tmp.path(), &format!("fo-{}-{round}-{j}", spec.kind));
                let h = spawn("holder", spec, &work, &[]);
                pairs.push((spec.clone(), work, h, None::<Child>));
            }
            for (spec, work, _, w) in &mut pairs {
                assert!(
                    wait_for(&work.join("ready"), Duration::from_secs(30)),
                    "holder not ready"
                );
                *w = Some(spawn("waiter", spec, work, &[]));
            }
            for (spec, work, _, _) in &pairs {
                assert!(wait_for(&work.join("waiting"), Duration::from_secs(30)));
                if spec.is_etcd() {
                    self.wait_queued(spec);
                }
            }
            // Let every waiter settle into its watch (or flock).
            std::thread::sleep(Duration::from_millis(300));
            if specs[0].is_etcd() {
                self.note_granted(&specs[0]);
            }
            let mut t0s = Vec::new();
            for (_, _, h, _) in &mut pairs {
                t0s.push(now_ns());
                // SAFETY: plain syscall.
                unsafe { libc::kill(h.id() as i32, libc::SIGKILL) };
                // Stagger the kills so that they fall at other phases of
                // the server's expiry checks (every 500 ms) and renewals.
                std::thread::sleep(Duration::from_millis(if specs[0].is_etcd() {
                    97
                } else {
                    0
                }));
            }
            for ((_, work, h, w), t0) in pairs.iter_mut().zip(t0s) {
                let _ = h.wait();
                let ok = wait_for(&work.join("got"), Duration::from_secs(60));
                assert!(ok, "the waiter never owned after the kill");
                let got = read_u64s(&work.join("got"))[0];
                v.push(got.saturating_sub(t0));
                let _ = w.as_mut().unwrap().wait();
            }
        }
        Dist::new(v)
    }

    /// Waits until the waiter of `spec` stands in etcd's line.
    fn wait_queued(&self, spec: &Spec) {
        let key = format!("{}{}/queue/", spec.prefix, spec.name);
        let eps = spec.location.clone();
        let ok = self.rt.block_on(async move {
            let mut c = connect(&eps).await;
            for _ in 0..3000 {
                let r = c
                    .get(
                        key.clone(),
                        Some(GetOptions::new().with_prefix().with_count_only()),
                    )
                    .await
                    .unwrap();
                if r.count() > 0 {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            false
        });
        assert!(ok, "the waiter never joined the line");
    }

    /// Notes the TTL the server granted to the leases under `spec`'s
    /// resource keys.
    fn note_granted(&mut self, spec: &Spec) {
        let eps = spec.location.clone();
        let granted = self.rt.block_on(async move {
            let mut c = connect(&eps).await;
            let leases = c.leases().await.unwrap();
            let mut out = Vec::new();
            for l in leases.leases() {
                if let Ok(r) = c
                    .lease_time_to_live(l.id(), Some(LeaseTimeToLiveOptions::new()))
                    .await
                {
                    out.push(r.granted_ttl());
                }
            }
            out
        });
        self.granted.extend(granted);
    }

    fn failover(&mut self, single: &Cluster, three: &Cluster) {
        let kills = (self.samples / 10).clamp(5, 50);
        let parallel = 5;
        let local_dir = fresh(self.tmp.path(), "local-failover");
        let mut rows = Vec::new();
        let local: Vec<Spec> = (0..parallel)
            .map(|j| Spec::local(&local_dir, 1, &format!("fo{j}")))
            .collect();
        eprintln!("fail-over: local");
        let d = self.failover_rounds(&local, kills, 1);
        rows.push(("local", d));
        for (label, c) in [("etcd, 1 member", single), ("etcd, 3 members", three)] {
            let p = self.prefix();
            let specs: Vec<Spec> = (0..parallel)
                .map(|j| Spec::etcd(&c.endpoints(), &p, FAILOVER_TTL, 1, &format!("fo{j}")))
                .collect();
            eprintln!("fail-over: {label}");
            let d = self.failover_rounds(&specs, kills, parallel);
            rows.push((label, d));
        }
        self.granted.sort_unstable();
        self.granted.dedup();
        let granted = self
            .granted
            .iter()
            .map(|g| format!("{g} s"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut s = String::new();
        let _ = writeln!(
            s,
            "\n### Fail-over: holder SIGKILLed → a waiting process owns\n\n\
             TTL asked {FAILOVER_TTL} s, granted by the server: {granted} (etcd's minimum is \
             1.5 × its election timeout, here 1 s, so 2 s is granted as asked). \
             A holder and a waiter per resource; on etcd {parallel} resources at a time, their \
             holders killed 97 ms apart. Expected ≈ the TTL: the lease expires TTL after the \
             last renewal the server received (renewals every TTL/5), and the leader looks for \
             expired leases every 500 ms. The local store's figure is the kernel's fail-over \
             (flock released at exit).\n"
        );
        let _ = writeln!(
            s,
            "| store | TTL | kills | p50 | p90 | p99 | min | max | p50 ÷ TTL |"
        );
        let _ = writeln!(s, "| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        for (label, d) in &rows {
            d.keep(&format!("failover {label}"));
            let local = *label == "local";
            let _ = writeln!(
                s,
                "| {label} | {} | {} | {} | {} | {} | {} | {} | {} |",
                if local {
                    "–".into()
                } else {
                    format!("{FAILOVER_TTL} s")
                },
                d.0.len(),
                fmt_ns(d.p50()),
                fmt_ns(d.pct(0.9)),
                fmt_ns(d.pct(0.99)),
                fmt_ns(d.pct(0.0)),
                fmt_ns(d.pct(1.0)),
                if local {
                    "–".into()
                } else {
                    ratio(d.p50(), FAILOVER_TTL as f64 * 1e9)
                }
            );
        }
        self.sections.push(s);
    }

    fn uncontended(&mut self, single: &Cluster, three: &Cluster) {
        let n = self.samples;
        let dir = fresh(self.tmp.path(), "local-uncontended");
        let mut specs = vec![("local", Spec::local(&dir, 1, "solo"))];
        for (label, c) in [("etcd, 1 member", single), ("etcd, 3 members", three)] {
            let p = self.prefix();
            specs.push((label, Spec::etcd(&c.endpoints(), &p, 5, 1, "solo")));
        }
        let mut rows = Vec::new();
        for (label, spec) in specs {
            eprintln!("uncontended: {label}");
            let e = spec.election();
            let mut v = Vec::new();
            for i in 0..n + 10 {
                let t = now_ns();
                let ticket = e.try_obtain().unwrap().expect("uncontended");
                drop(ticket);
                let d = now_ns() - t;
                // The first calls connect and warm up.
                if i >= 10 {
                    v.push(d);
                }
            }
            rows.push((label, Dist::new(v)));
        }
        let mut s = String::new();
        let _ = writeln!(
            s,
            "\n### Uncontended try_obtain + release, one process\n\n\
             `election.try_obtain()` then drop, back to back, after 10 warm-up calls (the \
             first connects). On etcd one call is: a read (tickets and slots in one txn), a \
             lease grant, a put-if-free txn, a watch on the own slot key, and at the drop a \
             lease revoke: three writes and one read, against one put as the anchor.\n"
        );
        let _ = writeln!(
            s,
            "| store | n | p50 | p90 | p99 | p50 ÷ put round-trip | p50 ÷ local |"
        );
        let _ = writeln!(s, "| --- | --- | --- | --- | --- | --- | --- |");
        let local = rows[0].1.p50();
        for (label, d) in &rows {
            d.keep(&format!("uncontended {label}"));
            let anchor = if label.contains('3') {
                "3 members"
            } else {
                "1 member"
            };
            let is_local = *label == "local";
            let _ = writeln!(
                s,
                "| {label} | {} | {} | {} | {} | {} |",
                d.0.len(),
                fmt_ns(d.p50()),
                fmt_ns(d.pct(0.9)),
                fmt_ns(d.pct(0.99)),
                self.ratios(d, is_local, anchor, local),
            );
        }
        self.sections.push(s);
    }

    fn cli(&mut self, single: &Cluster) {
        let elect = env!("CARGO_BIN_EXE_elect");
        let dir = fresh(self.tmp.path(), "cli");
        let prefix = self.prefix();
        let runs = (self.samples / 4).clamp(20, 200);
        let eps = single.endpoints();
        let local = format!("{elect} run -d {} bench-cli -- true", dir.display());
        let etcd = format!("{elect} run --etcd {eps} --etcd-prefix {prefix} bench-cli -- true");
        let commands = [
            ("`true`", "true".to_string()),
            ("`elect run -d DIR bench-cli -- true`", local),
            (
                "`elect run --etcd E --etcd-prefix P bench-cli -- true`",
                etcd,
            ),
        ];
        let hyperfine = Command::new("hyperfine")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        let mut rows = Vec::new();
        let how = if hyperfine {
            let json = self.tmp.path().join("hyperfine.json");
            eprintln!("cli: hyperfine, {runs} runs each");
            let mut cmd = Command::new("hyperfine");
            cmd.args([
                "-N",
                "--warmup",
                "5",
                "--runs",
                &runs.to_string(),
                "--style",
                "none",
            ])
            .arg("--export-json")
            .arg(&json);
            for (_, c) in &commands {
                cmd.arg(c);
            }
            let st = cmd.stdout(Stdio::null()).status().unwrap();
            assert!(st.success(), "hyperfine failed");
            let v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
            for ((label, _), r) in commands.iter().zip(v["results"].as_array().unwrap()) {
                let times: Vec<u64> = r["times"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| (t.as_f64().unwrap() * 1e9) as u64)
                    .collect();
                rows.push((label.to_string(), Dist::new(times)));
            }
            format!(
                "hyperfine -N --warmup 5 --runs {runs} ({})",
                command_line("hyperfine", &["--version"])
            )
        } else {
            eprintln!("cli: hyperfine not installed, own timing, {runs} runs each");
            for (label, c) in &commands {
                let words: Vec<&str> = c.split_whitespace().collect();
                let mut v = Vec::new();
                for i in 0..runs + 5 {
                    let t = now_ns();
                    let st = Command::new(words[0]).args(&words[1..]).status().unwrap();
                    assert!(st.success());
                    if i >= 5 {
                        v.push(now_ns() - t);
                    }
                }
                rows.push((label.to_string(), Dist::new(v)));
            }
            format!("own timing (hyperfine not installed), {runs} runs after 5 warm-ups")
        };
        let mut s = String::new();
        let _ = writeln!(
            s,
            "\n### One CLI call\n\n{how}. `elect run` on etcd connects, reads, grants a \
             lease, takes a slot, writes the command's pid into the record, runs `true`, \
             and revokes the lease. `elect` is the bench profile's build with `--features etcd`.\n"
        );
        let _ = writeln!(
            s,
            "| command | runs | p50 | p90 | p99 | p50 ÷ local `elect run` |"
        );
        let _ = writeln!(s, "| --- | --- | --- | --- | --- | --- |");
        let local = rows[1].1.p50();
        for (label, d) in &rows {
            let _ = writeln!(
                s,
                "| {label} | {} | {} | {} | {} | {} |",
                d.0.len(),
                fmt_ns(d.p50()),
                fmt_ns(d.pct(0.9)),
                fmt_ns(d.pct(0.99)),
                ratio(d.p50(), local)
            );
        }
        self.sections.push(s);
    }

    /// Kills the leader of the 3-member cluster while a holder holds and a
    /// waiter waits; `delay` later the holder releases.
    fn leader(&mut self, three: &mut Cluster) {
        let rounds = if self.quick { 2 } else { 4 };
        let ttl = elect::DEFAULT_TTL.as_secs();
        let mut out = Vec::new();
        for round in 0..2 * rounds {
            // Even rounds release right after the kill; odd ones hold on
            // for TTL + 2 s first (past the expiry of a lease that the new
            // leader could not renew), to see whether the holder keeps its
            // ticket.
            let delay = if round % 2 == 0 {
                Duration::ZERO
            } else {
                Duration::from_secs(ttl + 2)
            };
            // Every member up and agreeing on a leader.
            for i in 0..three.members.len() {
                if three.members[i].child.is_none() {
                    three.spawn_member(i, "existing");
                }
            }
            three
                .wait_leader(&self.rt, Duration::from_secs(60))
                .expect("the cluster did not recover");
            let p = self.prefix();
            let spec = Spec::etcd(&three.endpoints(), &p, ttl, 1, "leader");
            let work = fresh(self.tmp.path(), &format!("leader-{round}"));
            let mut h = spawn("holder", &spec, &work, &[]);
            assert!(wait_for(&work.join("ready"), Duration::from_secs(30)));
            let token0 = read_u64s(&work.join("ready"))[0];
            let mut w = spawn("waiter", &spec, &work, &[]);
            assert!(wait_for(&work.join("waiting"), Duration::from_secs(30)));
            self.wait_queued(&spec);
            std::thread::sleep(Duration::from_millis(500));
            let leader = three
                .wait_leader(&self.rt, Duration::from_secs(10))
                .expect("no leader");
            eprintln!("leader round {round}: killing member n{leader}, release after {delay:?}");
            let t_kill = now_ns();
            three.kill(leader);
            let release_at = Instant::now() + delay;
            let mut t_leader = None;
            let mut released = false;
            // Past the waiter's re-read of the keys every 30 s.
            let deadline = Instant::now() + delay + Duration::from_secs(40);
            while !work.join("got").exists() && Instant::now() < deadline {
                if !released && Instant::now() >= release_at {
                    File::create(work.join("release")).unwrap();
                    released = true;
                }
                if t_leader.is_none() {
                    let s = three.statuses(&self.rt);
                    if s.iter().any(|x| x.2 != 0 && s.iter().any(|y| y.1 == x.2)) {
                        t_leader = Some(now_ns() - t_kill);
                    }
                } else {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            let got = work
                .join("got")
                .exists()
                .then(|| read_u64s(&work.join("got")));
            let rel = wait_for(&work.join("released"), Duration::from_secs(10))
                .then(|| read_u64s(&work.join("released")));
            let stamp = |name: &str| {
                let p = work.join(name);
                p.exists().then(|| read_u64s(&p)[0].saturating_sub(t_kill))
            };
            let (lost, back) = (stamp("lost"), stamp("back"));
            kill(&mut h);
            kill(&mut w);
            // The client crate itself, with one member still down: how many
            // of 30 reads through a client given all endpoints fail.
            let eps = three.endpoints();
            let failing = self.rt.block_on(async move {
                let mut c = connect(&eps).await;
                let mut f = 0;
                for _ in 0..30 {
                    if c.get("bench-probe", None).await.is_err() {
                        f += 1;
                    }
                }
                f
            });
            out.push(LeaderRound {
                failing,
                delay,
                t_leader,
                lost,
                back,
                release: rel.as_ref().map(|r| (r[0] - t_kill, r[1] - r[0])),
                handoff: match (&got, &rel) {
                    (Some(g), Some(r)) => Some(g[0].saturating_sub(r[0])),
                    _ => None,
                },
                owned: got.as_ref().map(|g| g[0] - t_kill),
                tokens: (token0, got.as_ref().map(|g| g[1])),
            });
        }
        let mut s = String::new();
        let _ = writeln!(
            s,
            "\n### Leader of a 3-member cluster SIGKILLed while a holder holds and a waiter waits\n\n\
             TTL {ttl} s (elect's default); etcd's default timing (heartbeat 100 ms, election \
             timeout 1000 ms). Clients are given all three endpoints. The holder either \
             releases right after the kill, or holds on for TTL + 2 s watching `is_held()` every \
             5 ms and then releases. \"never\": not within 40 s after the release. \"new leader\": when a surviving member first reports a \
             leader among the members (polled); \"drop took\": the holder's drop, which waits \
             for the lease revoke; hand-off: release stamp → waiter owns. The killed member is \
             restarted before the next round. \"raw gets failing after\": of 30 `get`s through \
             a fresh etcd-client given all three endpoints, sent once the round is over and \
             with the killed member still down, how many failed (transport error).\n"
        );
        let _ = writeln!(
            s,
            "| round | release | new leader after | holder's ticket | drop took | hand-off | kill → waiter owns | tokens | raw gets failing after |"
        );
        let _ = writeln!(s, "| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        let f = |v: Option<u64>| v.map_or("never".into(), |v| fmt_ns(v as f64));
        for (i, r) in out.iter().enumerate() {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} of 30 |",
                i + 1,
                if r.delay.is_zero() {
                    "right after the kill".to_string()
                } else {
                    format!("{} s after the kill", r.delay.as_secs())
                },
                f(r.t_leader),
                match (r.lost, r.back) {
                    (Some(l), Some(b)) => format!(
                        "seen lost {} after the kill, held again at {}",
                        fmt_ns(l as f64),
                        fmt_ns(b as f64)
                    ),
                    (Some(l), None) => format!("seen lost {} after the kill", fmt_ns(l as f64)),
                    (None, _) => "held until released".into(),
                },
                r.release.map_or("–".into(), |(_, d)| fmt_ns(d as f64)),
                f(r.handoff),
                f(r.owned),
                match r.tokens {
                    (a, Some(b)) =>
                        format!("{a} → {b}{}", if b > a { "" } else { " (not increasing!)" }),
                    (a, None) => format!("{a} → –"),
                },
                r.failing
            );
        }
        let handoffs: Vec<u64> = out
            .iter()
            .filter(|r| r.delay.is_zero())
            .filter_map(|r| r.handoff)
            .collect();
        if !handoffs.is_empty() {
            let each: Vec<String> = handoffs.iter().map(|&h| fmt_ns(h as f64)).collect();
            let d = Dist::new(handoffs);
            let _ = writeln!(
                s,
                "\nHand-off right after the kill, {} rounds: {} (median {}).",
                d.0.len(),
                each.join(", "),
                fmt_ns(d.p50())
            );
        }
        self.sections.push(s);
    }

    fn report(&self, quick: bool, load_before: &str, took: Duration, single: &Cluster) -> String {
        let mut s = String::new();
        let fs = command_line(
            "stat",
            &["-f", "-c", "%T", single.members[0].dir.to_str().unwrap()],
        );
        let _ = writeln!(s, "## On etcd (feature `etcd`)\n");
        let _ = writeln!(
            s,
            "Measured in one run of `cargo bench --features cli,etcd --bench etcd{}` \
             ({} mode, {} hand-offs per row, {:.0} s), which starts its own etcd on loopback \
             ports: one single member and one 3-member cluster, etcd's default flags. \
             Every etcd figure stands beside the local store's, measured in the same run with \
             the same worker code (only the builder differs: `.etcd(Etcd::new(E)?.prefix(P)?.ttl(T)?)` \
             instead of `.dir(D)`), and beside the raw etcd round-trip from the same client crate.\n",
            if quick { " -- quick" } else { "" },
            if quick { "quick" } else { "full" },
            self.samples,
            took.as_secs_f64()
        );
        let _ = writeln!(
            s,
            "- date: {}; kernel {}, {} CPUs",
            command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            command_line("uname", &["-r"]),
            command_line("nproc", &[])
        );
        let _ = writeln!(
            s,
            "- etcd: {} ({}); data directories on {fs} ({})",
            command_line(etcd_bin().to_str().unwrap(), &["--version"])
                .lines()
                .next()
                .unwrap_or(""),
            etcd_bin().display(),
            data_base().display()
        );
        let _ = writeln!(
            s,
            "- load average before the run: {load_before}; after: {}",
            load_average()
        );
        let _ = writeln!(s, "\n### Anchor: raw etcd round-trips\n");
        let _ = writeln!(
            s,
            "One `put` (a write through raft: the leader's WAL fsync, and on 3 members a \
             follower's too) and one linearizable `get`, back to back from one client, before \
             and after the other rows (drift check).\n"
        );
        let _ = writeln!(s, "| cluster | op | n | p50 | p90 | p99 |");
        let _ = writeln!(s, "| --- | --- | --- | --- | --- | --- |");
        for (label, put, get) in &self.rtt {
            for (op, d) in [("put", put), ("get", get)] {
                d.keep(&format!("rtt {label} {op}"));
                let _ = writeln!(
                    s,
                    "| {label} | {op} | {} | {} | {} | {} |",
                    d.0.len(),
                    fmt_ns(d.p50()),
                    fmt_ns(d.pct(0.9)),
                    fmt_ns(d.pct(0.99))
                );
            }
        }
        for sec in &self.sections {
            s.push_str(sec);
        }
        s
    }
}

struct LeaderRound {
    /// Of 30 raw gets afterwards, with the member still down, how many failed.
    failing: usize,
    delay: Duration,
    t_leader: Option<u64>,
    lost: Option<u64>,
    back: Option<u64>,
    /// (release stamp after the kill, how long the drop took)
    release: Option<(u64, u64)>,
    handoff: Option<u64>,
    owned: Option<u64>,
    tokens: (u64, Option<u64>),
}
