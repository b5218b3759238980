//! Real etcd servers for the integration tests of the etcd store.
//!
//! A test that needs etcd declares `mod etcd_support;` and begins with
//!
//! ```ignore
//! if !etcd_support::require_etcd("my_test") {
//!     return;
//! }
//! let cluster = etcd_support::EtcdCluster::start(3);
//! // connect to cluster.endpoints() ...
//! ```
//!
//! [`EtcdCluster::start`] runs `etcd` processes (found by [`etcd_binary`])
//! on fresh loopback ports, each member with its own data directory and log
//! file in a temporary directory, and returns once every member reports
//! itself healthy and all agree on a leader. Dropping the cluster kills and
//! reaps every member; a test binary that dies (even by SIGKILL) takes its
//! etcd processes with it (`PR_SET_PDEATHSIG`). Faults are injected with
//! [`EtcdCluster::kill`], [`EtcdCluster::stop`] / [`EtcdCluster::cont`] and
//! [`EtcdCluster::restart`].
//!
//! The helpers speak the little HTTP they need by hand (`GET /health` and
//! the JSON gateway's `POST /v3/maintenance/status` on a member's client
//! URL), so they do not depend on the etcd client under test.
//!
//! # Timing
//!
//! The members run with `--heartbeat-interval 50 --election-timeout 500`
//! ([`HEARTBEAT_MS`], [`ELECTION_MS`]) and `--pre-vote`, so that losing the
//! leader costs about half a second rather than the default one to two
//! seconds, and so that a member resumed after SIGSTOP does not depose a
//! healthy leader.
//!
//! etcd raises every lease TTL to a minimum derived from these settings:
//! `ceil(1.5 * election timeout)` seconds, here `ceil(0.75 s)` = **1 s**
//! ([`MIN_LEASE_TTL_SECS`]). So a grant of 1 s is answered with `TTL 1`
//! (with etcd's default 100/1000 ms it would be answered with `TTL 2`).
//! Measured with etcd 3.4.23 on this harness (2 cores, up to four test
//! binaries at once): a key attached to a fresh 1 s lease disappeared 0.9
//! to 1.5 s after the grant, one on a 2 s lease after 2.4 to 2.6 s (the
//! leader looks for expired leases only every 500 ms). When the leader is
//! lost, the new leader gives every lease a fresh full TTL plus one
//! election timeout: a 2 s lease granted just before its leader was killed
//! expired 3.1 to 3.8 s after the grant. Tests must allow for that, plus
//! what a loaded machine adds, before they expect a lease to be gone.
//!
//! # Data directories
//!
//! Every member gets a directory `elect-etcd-<pid>-XXXXXX` (the pid of the
//! test process) under `$ELECT_TEST_ETCD_DIR` if set, else under the
//! system temporary directory (`$TMPDIR`, else `/tmp`). It holds `data/`
//! (the data dir) and `etcd.log` (the member's stdout and stderr, with a
//! line from the harness before every start). Mind the size: etcd
//! preallocates its write-ahead log, about 125 MB per member, so putting
//! them on a tmpfs (`ELECT_TEST_ETCD_DIR=/dev/shm`: no fsync latency) costs
//! that much memory per member while the test runs.
//!
//! The directories go when the cluster is dropped. A test process killed
//! before that (SIGKILL, Ctrl-C) leaves them behind; the next cluster that
//! starts removes those of processes that no longer exist.
//!
//! # Environment
//!
//! - `ELECT_TEST_ETCD_BIN`: the etcd executable, instead of `etcd` in PATH.
//! - `ELECT_REQUIRE_ETCD`: when set (not empty, not `0`), a missing etcd
//!   fails the test instead of skipping it. CI sets it.
//! - `ELECT_TEST_ETCD_DIR`: where the members' directories are created.
//!
//! Variables `ETCD_*` (which etcd would read as flags) are removed from the
//! members' environment, except `ETCD_UNSUPPORTED_ARCH`.

#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Heartbeat interval of every member, in milliseconds.
pub const HEARTBEAT_MS: u64 = 50;

/// Election timeout of every member, in milliseconds.
pub const ELECTION_MS: u64 = 500;

/// The smallest TTL, in seconds, that etcd grants a lease with the settings
/// above: `ceil(1.5 * ELECTION_MS / 1000)`. A grant of less is raised to it.
pub const MIN_LEASE_TTL_SECS: i64 = 1;

/// How long a cluster may take to start, a member to restart, or the
/// members to agree on a leader, before the test fails. Generous: a
/// 3-member cluster starts in 0.3 to 0.9 s here, with four test binaries
/// starting clusters at once on two cores.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// How often a start is retried with fresh ports after a member exited
/// early (most likely because another test took one of its ports between
/// the probe and etcd's bind).
const START_ATTEMPTS: usize = 6;

/// How long the start of a cluster waits for a member to serve its peer
/// port before it starts the next one anyway (see `await_start`).
const PEER_SERVING_WAIT: Duration = Duration::from_secs(3);

/// Lines of each member's log in [`EtcdCluster::logs`].
const LOG_TAIL_LINES: usize = 40;

/// What begins the line the harness writes to a member's log before it
/// starts the member.
const START_MARK: &str = "==== etcd_support: starting ";

/// Timeout of one HTTP request to a member.
const HTTP_TIMEOUT: Duration = Duration::from_secs(2);

/// Polling interval of the harness and of [`wait_until`].
const POLL: Duration = Duration::from_millis(20);

/// Where etcd is: `$ELECT_TEST_ETCD_BIN` if set and not empty, else the
/// first executable `etcd` in `PATH`. `None` when there is none (or the
/// variable names something that is not an executable file).
pub fn etcd_binary() -> Option<PathBuf> {
    locate_etcd().ok()
}

/// Where etcd is, or why it was not found.
fn locate_etcd() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("ELECT_TEST_ETCD_BIN").filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        return if is_executable(&bin) {
            Ok(bin)
        } else {
            Err(format!(
                "ELECT_TEST_ETCD_BIN={} is not an executable file",
                bin.display()
            ))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join("etcd"))
        .find(|bin| is_executable(bin))
        .ok_or_else(|| "etcd not found".to_string())
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether the test named `test` can run: true when etcd is available.
///
/// When it is not and `ELECT_REQUIRE_ETCD` is set (not empty, not `0`; CI
/// sets it), panics with how to install it. Otherwise prints
/// `SKIPPED <test>: etcd not found (...)` to stderr and returns false; the
/// test should then return at once:
///
/// ```ignore
/// if !require_etcd("lease_expiry") {
///     return;
/// }
/// ```
pub fn require_etcd(test: &str) -> bool {
    let Err(reason) = locate_etcd() else {
        return true;
    };
    let required =
        std::env::var_os("ELECT_REQUIRE_ETCD").is_some_and(|v| !v.is_empty() && v != "0");
    if required {
        panic!(
            "{test}: {reason}, and ELECT_REQUIRE_ETCD is set: install etcd \
             (apt-get install etcd-server) or point ELECT_TEST_ETCD_BIN at an etcd executable"
        );
    }
    eprintln!("SKIPPED {test}: {reason} (apt-get install etcd-server, or set ELECT_TEST_ETCD_BIN)");
    false
}

/// Polls `cond` every 20 ms until it returns true; panics with `what` if it
/// has not after `deadline`. For events that a test cannot await otherwise.
pub fn wait_until(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    loop {
        if cond() {
            return;
        }
        if start.elapsed() >= deadline {
            panic!("timed out after {deadline:?} waiting until {what}");
        }
        std::thread::sleep(POLL);
    }
}

/// One member of an [`EtcdCluster`]: its ports, directories and process.
pub struct EtcdNode {
    name: String,
    client_port: u16,
    peer_port: u16,
    /// The member's directory: `data/` and `etcd.log`.
    dir: TempDir,
    /// The running process; `None` once killed (or exited and reaped).
    child: Option<Child>,
    /// How the last process ended, once reaped.
    exit: Option<ExitStatus>,
    /// Whether the process was stopped with SIGSTOP and not continued.
    stopped: bool,
    /// The member's raft id, as etcd reports it; 0 until known.
    member_id: u64,
}

impl EtcdNode {
    /// The member's name: `n0`, `n1`, ...
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The member's client URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The member's peer URL, `http://127.0.0.1:PORT`.
    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    /// The client port.
    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    /// The pid of the running process, `None` once killed.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process runs (it may be stopped).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Whether the process is stopped by [`EtcdCluster::stop`].
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// The member's raft id (`header.member_id`).
    pub fn member_id(&self) -> u64 {
        self.member_id
    }

    /// The data directory (`--data-dir`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The log file: the member's stdout and stderr.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    /// The last `lines` lines of the log.
    fn log_tail(&self, lines: usize) -> String {
        tail(&self.log_path(), lines)
    }

    /// What the log says since the harness last started the member.
    fn log_since_last_start(&self) -> String {
        let log = tail(&self.log_path(), usize::MAX);
        match log.rfind(START_MARK) {
            Some(at) => log[at..].to_string(),
            None => log,
        }
    }

    /// The member's own header of the log tail in [`EtcdCluster::logs`].
    fn describe(&self) -> String {
        let state = match (&self.child, self.stopped) {
            (Some(c), false) => format!("pid {}", c.id()),
            (Some(c), true) => format!("pid {}, stopped", c.id()),
            (None, _) => match self.exit {
                Some(status) => format!("not running: {status}"),
                None => "not running".to_string(),
            },
        };
        format!(
            "member {} (client {}, peer {}, {state})",
            self.name,
            self.endpoint(),
            self.peer_url()
        )
    }

    /// Reaps the process if it has exited; true if it has.
    fn exited(&mut self) -> bool {
        if let Some(child) = &mut self.child {
            if let Ok(Some(status)) = child.try_wait() {
                self.exit = Some(status);
                self.child = None;
                self.stopped = false;
                return true;
            }
            return false;
        }
        true
    }

    /// SIGKILLs and reaps the process, if any.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            self.exit = child.wait().ok();
        }
        self.stopped = false;
    }
}

/// A cluster of etcd processes on loopback ports, killed when dropped.
///
/// Members are numbered from 0; `i` in the methods is that index, and a
/// method given an index out of range panics.
///
/// Do not share a cluster between tests through a `static`: tests run in
/// parallel, and a cluster that another test kills or stops is not what a
/// test expects. (The processes themselves are started from one long-lived
/// thread of the harness, so they do not die when the thread that asked for
/// them ends; they die with the test process.)
pub struct EtcdCluster {
    nodes: Vec<EtcdNode>,
    bin: PathBuf,
    token: String,
    initial_cluster: String,
}

impl EtcdCluster {
    /// Starts `members` etcd processes as one new cluster (1: a single
    /// node) and waits until every member answers `/health` with true and
    /// all agree on a leader.
    ///
    /// Ports are found by binding `127.0.0.1:0`; if a member exits early
    /// (another process took a port meanwhile), the whole start is retried
    /// with fresh ports and directories. Panics, with the members' log
    /// tails, if etcd is not available, if the members keep exiting, or if
    /// the cluster is not healthy within [`DEADLINE`].
    pub fn start(members: usize) -> EtcdCluster {
        assert!(members >= 1, "an etcd cluster needs at least one member");
        let bin = match locate_etcd() {
            Ok(bin) => bin,
            Err(reason) => panic!(
                "cannot start etcd: {reason} (apt-get install etcd-server, or set \
                 ELECT_TEST_ETCD_BIN); call require_etcd first"
            ),
        };
        static CLUSTERS: AtomicUsize = AtomicUsize::new(0);
        let seq = CLUSTERS.fetch_add(1, Ordering::Relaxed);
        let mut last_failure = String::new();
        for attempt in 1..=START_ATTEMPTS {
            let mut cluster = EtcdCluster::spawn_new(&bin, members, seq, attempt);
            match cluster.await_start() {
                Ok(()) => return cluster,
                // A member exited early: most likely another process took
                // one of its ports. `cluster` is dropped (killed) here, and
                // the next attempt gets fresh ports and directories.
                Err(failure) => {
                    eprintln!(
                        "etcd_support: attempt {attempt} of {START_ATTEMPTS} to start a \
                         {members}-member cluster failed: {failure}"
                    );
                    last_failure = failure;
                }
            }
        }
        panic!(
            "could not start a {members}-member etcd cluster in {START_ATTEMPTS} attempts; \
             the last failure: {last_failure}"
        );
    }

    /// Creates the members' directories, picks their ports and spawns them.
    fn spawn_new(bin: &Path, members: usize, seq: usize, attempt: usize) -> EtcdCluster {
        // Hold every probe listener until all ports are picked, so that the
        // ports of one cluster are distinct.
        let probes: Vec<TcpListener> = (0..2 * members)
            .map(|_| {
                TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                    .unwrap_or_else(|e| panic!("cannot bind a loopback port: {e}"))
            })
            .collect();
        let ports: Vec<u16> = probes
            .iter()
            .map(|l| l.local_addr().expect("a bound listener's address").port())
            .collect();
        drop(probes);

        let base = data_base();
        remove_stale_dirs(&base);
        let prefix = dir_prefix();
        let nodes: Vec<EtcdNode> = (0..members)
            .map(|i| EtcdNode {
                name: format!("n{i}"),
                client_port: ports[2 * i],
                peer_port: ports[2 * i + 1],
                dir: tempfile::Builder::new()
                    .prefix(&prefix)
                    .tempdir_in(&base)
                    .unwrap_or_else(|e| {
                        panic!("cannot create a directory under {}: {e}", base.display())
                    }),
                child: None,
                exit: None,
                stopped: false,
                member_id: 0,
            })
            .collect();
        let initial_cluster = nodes
            .iter()
            .map(|n| format!("{}={}", n.name, n.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        EtcdCluster {
            nodes,
            bin: bin.to_path_buf(),
            // Distinct per cluster, so that distinct clusters get distinct
            // cluster ids and reject each other's peers should a port be
            // reused.
            token: format!("elect-test-{}-{seq}-{attempt}", std::process::id()),
            initial_cluster,
        }
    }

    /// Starts the members of a new cluster and waits until it is up.
    /// `Err` (to retry) if a member exited; panics at the deadline.
    ///
    /// The members start one after the other, each once the previous one
    /// serves its peer port. Before it serves, a new member asks its peers
    /// whether it is already part of their cluster, with a timeout of one
    /// second per peer, and a peer that is itself at that step has bound
    /// its peer port but does not answer yet. Started all at once, a
    /// 3-member cluster took 2.2 s in most starts instead of 0.2 s.
    fn await_start(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + DEADLINE;
        for i in 0..self.nodes.len() {
            self.spawn_member(i, "new");
            if self.nodes.len() == 1 {
                break;
            }
            let serving_by = Instant::now() + PEER_SERVING_WAIT;
            while !self.nodes[i].exited()
                && Instant::now() < serving_by
                && http(self.nodes[i].peer_port, "GET", "/version", None).is_err()
            {
                std::thread::sleep(POLL);
            }
            if !self.nodes[i].is_running() {
                break; // reported below
            }
        }
        loop {
            for i in 0..self.nodes.len() {
                if self.nodes[i].exited() {
                    return Err(format!(
                        "{} exited early:\n{}",
                        self.nodes[i].describe(),
                        indent(&self.nodes[i].log_tail(LOG_TAIL_LINES))
                    ));
                }
            }
            let healthy = self.nodes.iter().all(|n| health(n.client_port));
            if healthy && self.try_leader().is_ok() {
                self.learn_member_ids();
                return Ok(());
            }
            if Instant::now() >= deadline {
                panic!(
                    "a {}-member etcd cluster was not healthy with a leader within {DEADLINE:?}\n{}",
                    self.nodes.len(),
                    self.logs()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Records every answering member's id.
    fn learn_member_ids(&mut self) {
        for node in &mut self.nodes {
            if node.is_running()
                && !node.stopped
                && let Ok(status) = status(node.client_port)
            {
                node.member_id = status.member_id;
            }
        }
    }

    /// Spawns member `i` with `--initial-cluster-state state`.
    fn spawn_member(&mut self, i: usize, state: &str) {
        let node = &self.nodes[i];
        let log_path = node.log_path();
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", log_path.display()));
        let _ = writeln!(
            log,
            "{START_MARK}{} (initial-cluster-state {state}) ====",
            node.name
        );
        let err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot duplicate a descriptor: {e}"));
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--name")
            .arg(&node.name)
            .arg("--data-dir")
            .arg(node.data_dir())
            .arg("--listen-client-urls")
            .arg(node.endpoint())
            .arg("--advertise-client-urls")
            .arg(node.endpoint())
            .arg("--listen-peer-urls")
            .arg(node.peer_url())
            .arg("--initial-advertise-peer-urls")
            .arg(node.peer_url())
            .arg("--initial-cluster")
            .arg(&self.initial_cluster)
            .arg("--initial-cluster-state")
            .arg(state)
            .arg("--initial-cluster-token")
            .arg(&self.token)
            .arg("--heartbeat-interval")
            .arg(HEARTBEAT_MS.to_string())
            .arg("--election-timeout")
            .arg(ELECTION_MS.to_string())
            .arg("--pre-vote")
            .current_dir(node.dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        for (key, _) in std::env::vars_os() {
            let key_str = key.to_string_lossy();
            if key_str.starts_with("ETCD_") && key_str != "ETCD_UNSUPPORTED_ARCH" {
                cmd.env_remove(&key);
            }
        }
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: the closure calls only async-signal-safe functions.
        unsafe {
            cmd.pre_exec(move || {
                // Die with the test process, however it dies.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // It may have died before the prctl.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let child = spawn_from_harness_thread(cmd)
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()));
        let node = &mut self.nodes[i];
        node.child = Some(child);
        node.exit = None;
        node.stopped = false;
    }

    /// How many members the cluster has (running or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Member `i`.
    pub fn node(&self, i: usize) -> &EtcdNode {
        &self.nodes[i]
    }

    /// The client URLs of the members that have not been killed (stopped
    /// members included), comma-separated: the form `--etcd` and
    /// `ELECT_ETCD` take.
    pub fn endpoints(&self) -> String {
        self.nodes
            .iter()
            .filter(|n| n.is_running())
            .map(EtcdNode::endpoint)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The client URLs of all members, killed or not, comma-separated.
    pub fn all_endpoints(&self) -> String {
        self.nodes
            .iter()
            .map(EtcdNode::endpoint)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The client URL of member `i`, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self, i: usize) -> String {
        self.nodes[i].endpoint()
    }

    /// The pid of member `i`; panics if it has been killed.
    pub fn pid(&self, i: usize) -> u32 {
        self.nodes[i]
            .pid()
            .unwrap_or_else(|| panic!("etcd member {i} is not running"))
    }

    /// The index of the current leader.
    ///
    /// Asks every running, not stopped member for its status, until all of
    /// them answer, name the same leader, and that leader is one of them.
    /// So after [`kill`](Self::kill) or [`stop`](Self::stop) of the leader
    /// this waits for the remaining members to elect a new one. Panics with
    /// the members' log tails if that does not happen within [`DEADLINE`].
    pub fn leader(&self) -> usize {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let last = match self.try_leader() {
                Ok(i) => return i,
                Err(why) => why,
            };
            if Instant::now() >= deadline {
                panic!(
                    "the etcd members did not agree on a leader within {DEADLINE:?}: {last}\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// One round of [`leader`](Self::leader): the leader, or why not.
    fn try_leader(&self) -> Result<usize, String> {
        let mut answers = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if !node.is_running() || node.stopped {
                continue;
            }
            match status(node.client_port) {
                Ok(s) => answers.push((i, s)),
                Err(e) => return Err(format!("{}: {e}", node.name)),
            }
        }
        let Some((_, first)) = answers.first() else {
            return Err("no member is running and not stopped".to_string());
        };
        let leader = first.leader;
        if leader == 0 || answers.iter().any(|(_, s)| s.leader != leader) {
            let seen: Vec<String> = answers
                .iter()
                .map(|(i, s)| format!("n{i} sees {:x}", s.leader))
                .collect();
            return Err(format!("no agreement: {}", seen.join(", ")));
        }
        answers
            .iter()
            .find(|(_, s)| s.member_id == leader)
            .map(|(i, _)| *i)
            .ok_or_else(|| format!("leader {leader:x} is not among the answering members"))
    }

    /// SIGKILLs member `i` and reaps it. Nothing happens if it is not
    /// running.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Sends SIGSTOP to member `i` and waits until the kernel reports it
    /// stopped. It keeps its sockets: connections to it hang.
    pub fn stop(&mut self, i: usize) {
        let pid = self.pid(i);
        signal(pid, libc::SIGSTOP);
        wait_until(
            &format!("etcd member {i} (pid {pid}) is stopped"),
            DEADLINE,
            // (A dead member, `Z`, counts: its death shows elsewhere.)
            || proc_state(pid).is_none_or(|s| matches!(s, 'T' | 't' | 'Z' | 'X')),
        );
        self.nodes[i].stopped = true;
    }

    /// Sends SIGCONT to member `i` (stopped by [`stop`](Self::stop)) and
    /// waits until the kernel reports it running again. It does not wait
    /// for the member to catch up: use [`wait_healthy`](Self::wait_healthy).
    pub fn cont(&mut self, i: usize) {
        let pid = self.pid(i);
        signal(pid, libc::SIGCONT);
        wait_until(
            &format!("etcd member {i} (pid {pid}) runs again"),
            DEADLINE,
            || proc_state(pid).is_none_or(|s| !matches!(s, 'T' | 't')),
        );
        self.nodes[i].stopped = false;
    }

    /// Starts member `i` again, with its data directory, ports and
    /// `--initial-cluster`, and `--initial-cluster-state existing`, and
    /// waits until it answers `/health` with true. Kills it first if it
    /// still runs.
    ///
    /// The ports cannot change (they are part of the membership): if
    /// another process holds one, the start is retried until
    /// [`DEADLINE`], then the test fails.
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].kill();
        let deadline = Instant::now() + DEADLINE;
        self.spawn_member(i, "existing");
        loop {
            if self.nodes[i].exited() {
                let port_taken = self.nodes[i]
                    .log_since_last_start()
                    .contains("address already in use");
                if !port_taken || Instant::now() >= deadline {
                    panic!(
                        "etcd member {i} exited after a restart: {}\n{}",
                        self.nodes[i].describe(),
                        self.logs()
                    );
                }
                // Back off: the port's holder may go away.
                std::thread::sleep(Duration::from_millis(200));
                self.spawn_member(i, "existing");
                continue;
            }
            if health(self.nodes[i].client_port)
                && let Ok(s) = status(self.nodes[i].client_port)
            {
                self.nodes[i].member_id = s.member_id;
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "etcd member {i} was not healthy within {DEADLINE:?} of a restart\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits until every running, not stopped member answers `/health`
    /// with true (which etcd does only when the member has a leader).
    pub fn wait_healthy(&self) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let sick: Vec<&str> = self
                .nodes
                .iter()
                .filter(|n| n.is_running() && !n.stopped && !health(n.client_port))
                .map(|n| n.name.as_str())
                .collect();
            if sick.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "etcd members {sick:?} were not healthy within {DEADLINE:?}\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Whether member `i` answers `/health` with true right now.
    pub fn is_healthy(&self, i: usize) -> bool {
        health(self.nodes[i].client_port)
    }

    /// The last lines (about 40) of every member's log, each under a line
    /// naming the member, its URLs and its state: for panic messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            out.push_str(&format!("---- {} ----\n", node.describe()));
            out.push_str(&indent(&node.log_tail(LOG_TAIL_LINES)));
            out.push('\n');
        }
        out
    }
}

impl Drop for EtcdCluster {
    /// Kills and reaps every member. When the test is failing (panicking),
    /// first prints the members' log tails to stderr, which the test
    /// harness shows with the failure.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("etcd_support: logs of the etcd members:\n{}", self.logs());
        }
        for node in &mut self.nodes {
            node.kill();
        }
    }
}

/// What `/v3/maintenance/status` says.
#[derive(Debug, Clone, Copy)]
struct Status {
    /// The answering member's id.
    member_id: u64,
    /// The leader it knows of, 0 if none.
    leader: u64,
}

/// Whether the member on `port` answers `GET /health` with true.
fn health(port: u16) -> bool {
    let Ok((_, body)) = http(port, "GET", "/health", None) else {
        return false;
    };
    let Ok(json) = serde_json::from_str::<serde_json::Value>(&body) else {
        return false;
    };
    match &json["health"] {
        serde_json::Value::String(s) => s == "true",
        serde_json::Value::Bool(b) => *b,
        _ => false,
    }
}

/// The status of the member on `port`.
fn status(port: u16) -> Result<Status, String> {
    let (code, body) = http(port, "POST", "/v3/maintenance/status", Some("{}"))?;
    if code != 200 {
        return Err(format!("status answered HTTP {code}: {body}"));
    }
    let json: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("status is not JSON ({e}): {body}"))?;
    // The gateway writes uint64 as decimal strings and leaves out zeros.
    let number = |v: &serde_json::Value| -> Option<u64> {
        match v {
            serde_json::Value::Null => Some(0),
            serde_json::Value::String(s) => s.parse().ok(),
            serde_json::Value::Number(n) => n.as_u64(),
            _ => None,
        }
    };
    let member_id = number(&json["header"]["member_id"]).filter(|&id| id != 0);
    let leader = number(&json["leader"]);
    match (member_id, leader) {
        (Some(member_id), Some(leader)) => Ok(Status { member_id, leader }),
        _ => Err(format!("status without member_id or leader: {body}")),
    }
}

/// A minimal HTTP/1.1 exchange with 127.0.0.1:`port`: the status code and
/// the body.
///
/// The response ends where its `Content-Length` or its last chunk says, not
/// when the connection closes: etcd 3.4 serves HTTP behind a connection
/// multiplexer (cmux) and often keeps the connection open after answering,
/// `Connection: close` notwithstanding. (Reading to the end cost a timeout
/// per request and made a 3-member start take seconds.)
fn http(port: u16, method: &str, path: &str, body: Option<&str>) -> Result<(u16, String), String> {
    let timeout = HTTP_TIMEOUT;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("socket: {e}"))?;
    let _ = stream.set_nodelay(true);
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Accept: application/json\r\n"
    );
    if let Some(body) = body {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        request.push_str("\r\n");
    }
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(parsed) = parse_response(&response)? {
            return Ok(parsed);
        }
        match stream.read(&mut buf) {
            Ok(0) => {
                return Err(format!(
                    "connection closed after {:?}",
                    String::from_utf8_lossy(&response)
                ));
            }
            Ok(n) => response.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("receive: {e}")),
        }
    }
}

/// The status code and body of a complete HTTP/1.1 response; `None` while
/// `response` is still incomplete. A body without `Content-Length` or
/// chunked encoding is never complete: etcd's responses have either.
fn parse_response(response: &[u8]) -> Result<Option<(u16, String)>, String> {
    let Some(head_end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&response[..head_end]);
    let body = &response[head_end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let code = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line: {status_line:?}"))?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| format!("bad Content-Length: {value:?}"))?,
            );
        }
    }
    let body = if chunked {
        match dechunk(body)? {
            Some(body) => body,
            None => return Ok(None),
        }
    } else if let Some(length) = length {
        if body.len() < length {
            return Ok(None);
        }
        body[..length].to_vec()
    } else {
        return Ok(None);
    };
    Ok(Some((code, String::from_utf8_lossy(&body).into_owned())))
}

/// Decodes a chunked body; `None` while its last chunk is still missing.
fn dechunk(mut rest: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let size_line = String::from_utf8_lossy(&rest[..line_end]);
        let size_hex = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| format!("bad chunk size {size_line:?}"))?;
        let after = &rest[line_end + 2..];
        if size == 0 {
            return Ok(Some(out));
        }
        if after.len() < size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&after[..size]);
        rest = &after[size + 2..];
    }
}

/// Where the members' directories go; see the module documentation.
fn data_base() -> PathBuf {
    match std::env::var_os("ELECT_TEST_ETCD_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => std::env::temp_dir(),
    }
}

/// The prefix of the members' directories of this process.
fn dir_prefix() -> String {
    format!("{DIR_PREFIX}{}-", std::process::id())
}

/// What the names of the members' directories begin with.
const DIR_PREFIX: &str = "elect-etcd-";

/// Removes, once per process, the members' directories under `base` that
/// belong to this user and to test processes that no longer exist.
fn remove_stale_dirs(base: &Path) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use std::os::unix::fs::MetadataExt;
        let Ok(entries) = std::fs::read_dir(base) else {
            return;
        };
        // SAFETY: getuid(2) has no preconditions.
        let uid = unsafe { libc::getuid() };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix(DIR_PREFIX))
                .and_then(|rest| rest.split_once('-'))
                .and_then(|(pid, _)| pid.parse::<u32>().ok())
            else {
                continue;
            };
            let path = entry.path();
            let ours = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir() && m.uid() == uid);
            if ours && !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(&path);
            }
        }
    });
}

/// Spawns `cmd` from one thread of the harness that lives as long as the
/// process. `PR_SET_PDEATHSIG` fires when the *thread* that forked the
/// child ends, and test threads (or a runtime's blocking threads) end
/// before the test process does.
fn spawn_from_harness_thread(cmd: Command) -> std::io::Result<Child> {
    type Request = (Command, Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<Sender<Request>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = channel::<Request>();
        std::thread::Builder::new()
            .name("etcd_support spawner".to_string())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("cannot start the etcd spawner thread");
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = channel();
    spawner
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send((cmd, reply_tx))
        .expect("the etcd spawner thread is gone");
    reply_rx.recv().expect("the etcd spawner thread is gone")
}

/// Sends `sig` to `pid`, panicking on failure.
fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    if unsafe { libc::kill(pid as libc::pid_t, sig) } != 0 {
        panic!("kill({pid}, {sig}): {}", std::io::Error::last_os_error());
    }
}

/// The state letter of `pid` in `/proc/<pid>/stat`, `None` if it is gone.
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// The last `lines` lines of the file at `path` (at most its last 64 KiB).
fn tail(path: &Path, lines: usize) -> String {
    let Ok(mut file) = File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `text` with every line indented, to set a log apart in a message.
fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
