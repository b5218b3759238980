//! The etcd store: the same election on an etcd v3 cluster, for
//! participants on many hosts.
//!
//! Keys, under a prefix (default `elect/`), for a resource `NAME`:
//!
//! - `NAME/tickets`: the N that the live participants agreed on. It has no
//!   lease, so like the `tickets` file of a run directory it outlives its
//!   users and says the N of the last use. It changes only in a transaction
//!   that finds no live participant, and every participant joins in a
//!   transaction that finds it equal to its own N, so two Ns are never live
//!   at once.
//! - `NAME/slot/I`: slot `I` is held. The key is attached to the holder's
//!   lease, so it vanishes when the holder releases, or when the lease
//!   expires after a crash or a partition. Its value is the holder record
//!   (display only); its create revision, which etcd makes strictly larger
//!   for every write in the cluster, is the fencing token.
//! - `NAME/queue/LEASE`: a waiter, on its lease. Waiters stand in the order
//!   of their create revisions. Each watches only the key just before its
//!   own for deletion, and only the head of the line watches the slots, so
//!   one release wakes one process (no herd), in arrival order.
//!
//! Liveness is a lease per ticket with a TTL, renewed in the background
//! every TTL/5. Because the server lets the lease expire TTL after the last
//! renewal *it received*, and that is after the renewal was *sent*, a holder
//! whose renewals fail treats its ticket as lost [`LOST_AFTER`] of the TTL
//! after the last renewal that went through, and `elect run` kills its
//! command by [`KILL_BY`] of it: early, not late, wherever clocks run at the
//! same rate.
//!
//! Every etcd call runs on one small tokio runtime of the process; the
//! blocking API hands a future to it and waits for the answer.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, KeyValue, PutOptions,
    SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use tokio::sync::Notify;

use crate::error::{Error, Result};
use crate::interrupt::{Interrupter, Reason};
use crate::record::HolderRecord;
use crate::status::{ResourceStatus, SlotStatus};
use crate::store::Request;
use crate::sys::since_boot;

/// The lease TTL when none is asked for.
pub const DEFAULT_TTL: Duration = Duration::from_secs(5);

/// The key prefix when none is asked for.
pub const DEFAULT_PREFIX: &str = "elect/";

/// Renewals are sent every TTL / `RENEW_PER_TTL`.
const RENEW_PER_TTL: u32 = 5;

/// A ticket whose lease was not renewed for this share of the TTL is lost
/// (in fifths of the TTL: 3/5).
pub(crate) const LOST_AFTER: (u32, u32) = (3, 5);

/// By this share of the TTL after the last renewal, `elect run` has killed
/// its command (4/5), a fifth of the TTL before the server can let another
/// holder in.
pub(crate) const KILL_BY: (u32, u32) = (4, 5);

/// How long one call to etcd may take before it is tried again.
/// etcd itself holds a write whose leader died for several seconds before
/// it gives up; asking another member sooner gets through sooner, and a
/// write that went through after all is recognised on the next try.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the first connection may take before the obtain fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Pauses between attempts after a failed call, while a waiter waits out
/// an etcd outage (a leader election, a restarted member).
const BACKOFF: [Duration; 4] = [
    Duration::from_millis(50),
    Duration::from_millis(200),
    Duration::from_millis(500),
    Duration::from_secs(1),
];

/// Even without an event a waiter reads the keys again this often, in case
/// a watch was silently lost.
const REREAD: Duration = Duration::from_secs(30);

/// The longest prefix accepted.
const MAX_PREFIX: usize = 256;

/// Where an election on etcd lives: the cluster's endpoints, the key prefix
/// and the lease TTL of its participants.
///
/// ```
/// let etcd = elect::Etcd::new("http://10.0.0.1:2379,http://10.0.0.2:2379")?
///     .prefix("ci/")?
///     .ttl(std::time::Duration::from_secs(10))?;
/// assert_eq!(etcd.endpoints().len(), 2);
/// assert_eq!(etcd.key_prefix(), "ci/");
/// let election = elect::Election::builder("load-test").tickets(2).etcd(etcd).build()?;
/// assert_eq!(election.tickets(), 2);
/// # Ok::<(), elect::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Etcd {
    endpoints: Vec<String>,
    prefix: String,
    ttl: Duration,
}

impl Etcd {
    /// The cluster at `endpoints`: comma-separated `http://host:port`, as
    /// `--etcd` and `ELECT_ETCD` take them. Nothing is contacted yet.
    ///
    /// ```
    /// assert!(elect::Etcd::new("http://127.0.0.1:2379").is_ok());
    /// assert!(elect::Etcd::new("127.0.0.1:2379").is_err(), "no scheme");
    /// assert!(elect::Etcd::new("").is_err());
    /// ```
    pub fn new(endpoints: &str) -> Result<Self> {
        let bad = |reason: &'static str| Error::InvalidEtcd {
            value: endpoints.to_string(),
            reason,
        };
        let mut list = Vec::new();
        for e in endpoints.split(',').map(str::trim) {
            if e.is_empty() {
                return Err(bad("an endpoint is empty"));
            }
            if e.starts_with("https://") {
                return Err(bad(
                    "TLS endpoints (https://) are not supported by this build",
                ));
            }
            let Some(rest) = e.strip_prefix("http://") else {
                return Err(bad("each endpoint must start with http://"));
            };
            let hostport = rest.strip_suffix('/').unwrap_or(rest);
            let Some((host, port)) = hostport.rsplit_once(':') else {
                return Err(bad("each endpoint needs a port, as in http://host:2379"));
            };
            if host.is_empty()
                || hostport.contains('/')
                || hostport
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(bad("an endpoint is not of the form http://host:port"));
            }
            if port.parse::<u16>().map_or(true, |p| p == 0) {
                return Err(bad("a port is not a number from 1 to 65535"));
            }
            list.push(format!("http://{hostport}"));
        }
        Ok(Etcd {
            endpoints: list,
            prefix: DEFAULT_PREFIX.to_string(),
            ttl: DEFAULT_TTL,
        })
    }

    /// Puts every key under `prefix` (default `elect/`), so that several
    /// teams or environments can share one cluster. Any text without control
    /// characters, up to 256 bytes; it is used as it is, so end it with `/`.
    ///
    /// ```
    /// let etcd = elect::Etcd::new("http://127.0.0.1:2379")?.prefix("team-a/elect/")?;
    /// assert_eq!(etcd.key_prefix(), "team-a/elect/");
    /// assert!(elect::Etcd::new("http://127.0.0.1:2379")?.prefix("bad\n").is_err());
    /// # Ok::<(), elect::Error>(())
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> Result<Self> {
        let prefix = prefix.into();
        if prefix.len() > MAX_PREFIX || prefix.chars().any(char::is_control) {
            return Err(Error::InvalidEtcd {
                value: prefix,
                reason: "a key prefix must be at most 256 bytes with no control characters",
            });
        }
        self.prefix = prefix;
        Ok(self)
    }

    /// Sets the lease TTL (default 5 s), rounded up to whole seconds, 1 s to
    /// 1 h. After a crash (or a partition) of a holder, its slot is free
    /// again within this long; a longer TTL rides out longer network
    /// trouble. etcd may grant more than asked (its minimum is 1.5 × its
    /// election timeout); the granted TTL is the one that counts.
    ///
    /// ```
    /// use std::time::Duration;
    /// let etcd = elect::Etcd::new("http://127.0.0.1:2379")?.ttl(Duration::from_millis(2500))?;
    /// assert_eq!(etcd.lease_ttl(), Duration::from_secs(3));
    /// assert!(elect::Etcd::new("http://127.0.0.1:2379")?.ttl(Duration::ZERO).is_err());
    /// # Ok::<(), elect::Error>(())
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Result<Self> {
        let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        if !(1..=3600).contains(&secs) {
            return Err(Error::InvalidEtcd {
                value: format!("{ttl:?}"),
                reason: "the lease TTL must be from 1 s to 1 h",
            });
        }
        self.ttl = Duration::from_secs(secs);
        Ok(self)
    }

    /// The endpoints, normalized.
    ///
    /// ```
    /// let etcd = elect::Etcd::new("http://a:1, http://b:2/")?;
    /// assert_eq!(etcd.endpoints(), ["http://a:1", "http://b:2"]);
    /// # Ok::<(), elect::Error>(())
    /// ```
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// The key prefix.
    ///
    /// ```
    /// assert_eq!(elect::Etcd::new("http://a:1")?.key_prefix(), "elect/");
    /// # Ok::<(), elect::Error>(())
    /// ```
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// The lease TTL asked for.
    ///
    /// ```
    /// assert_eq!(elect::Etcd::new("http://a:1")?.lease_ttl(), elect::DEFAULT_TTL);
    /// # Ok::<(), elect::Error>(())
    /// ```
    pub fn lease_ttl(&self) -> Duration {
        self.ttl
    }

    /// How the cluster and prefix are shown where a run directory would be
    /// (`status`'s `dir`, messages): `etcd:ENDPOINTS/PREFIX`.
    ///
    /// ```
    /// let etcd = elect::Etcd::new("http://a:1,http://b:2")?;
    /// assert_eq!(etcd.location(), "etcd:http://a:1,http://b:2/elect/");
    /// # Ok::<(), elect::Error>(())
    /// ```
    pub fn location(&self) -> String {
        format!("etcd:{}/{}", self.endpoints.join(","), self.prefix)
    }

    /// The status of one resource or, without a name, of every resource
    /// under the prefix: what the cluster says now. Never takes a ticket.
    ///
    /// ```no_run
    /// let etcd = elect::Etcd::new("http://127.0.0.1:2379")?;
    /// for r in etcd.status(None)?.resources {
    ///     println!("{}: {} of {} held", r.name, r.slots.iter().filter(|s| s.held).count(), r.tickets);
    /// }
    /// # Ok::<(), elect::Error>(())
    /// ```
    pub fn status(&self, name: Option<&str>) -> Result<crate::status::Status> {
        if let Some(n) = name {
            crate::name::validate_name(n)?;
        }
        let store = EtcdStore::new(self.clone());
        Ok(crate::status::Status {
            dir: PathBuf::from(self.location()),
            resources: store.status(name)?,
        })
    }
}

// ---------------------------------------------------------------------------
// The runtime and the connection.

/// The process's runtime for etcd calls: one worker thread, made on first
/// use.
fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<std::io::Result<tokio::runtime::Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("elect-etcd")
                .enable_all()
                .build()
        })
        .as_ref()
        .map_err(|e| Error::Store(format!("cannot start the etcd client's runtime: {e}")))
}

/// Whether this thread is one of the runtime's own, where blocking on it
/// would deadlock.
fn on_runtime() -> bool {
    std::thread::current().name() == Some("elect-etcd")
}

/// Runs `fut` on the runtime and waits for its answer on this thread,
/// which may be any thread but the runtime's own (even one of another
/// runtime: this blocks, it does not nest runtimes).
fn block<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> Result<T> {
    debug_assert!(!on_runtime(), "blocking on the etcd runtime from itself");
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime()?.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv()
        .map_err(|_| Error::Store("an etcd call was abandoned; this is a bug".into()))
}

/// An etcd error, in words that say where and what to check.
fn etcd_error(cfg: &Etcd, what: &str, e: impl std::fmt::Display) -> Error {
    Error::Store(format!(
        "etcd at {}: {what}: {e}; check --etcd / ELECT_ETCD and that the cluster is up",
        cfg.endpoints.join(",")
    ))
}

/// Whether an error says the member did not serve the call (down,
/// unreachable, without a leader), so another member should be asked,
/// rather than that the call itself was refused.
fn is_unavailable(e: &etcd_client::Error) -> bool {
    // gRPC status codes (tonic::Code, which etcd-client does not
    // re-export): CANCELLED 1, UNKNOWN 2, DEADLINE_EXCEEDED 4, UNAVAILABLE 14.
    match e {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::GRpcStatus(s) => matches!(s.code() as i32, 1 | 2 | 4 | 14),
        _ => false,
    }
}

/// What all clones of one store share: the configuration and a client per
/// endpoint.
///
/// The etcd client balances calls over all endpoints, but leaves it to its
/// user to stop sending them to a member that is down (calls to it hang
/// until they time out). So elect keeps one client per endpoint, as etcd's
/// own Go client does: calls go to one member until it fails to answer,
/// then to the next.
struct Shared {
    cfg: Etcd,
    location: PathBuf,
    clients: Vec<tokio::sync::OnceCell<Client>>,
    /// The endpoint calls go to.
    current: AtomicUsize,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn new(cfg: Etcd) -> Self {
        Shared {
            location: PathBuf::from(cfg.location()),
            clients: cfg
                .endpoints
                .iter()
                .map(|_| tokio::sync::OnceCell::new())
                .collect(),
            current: AtomicUsize::new(0),
            cfg,
        }
    }

    /// The client of the endpoint in use, and which endpoint that is.
    async fn client(&self) -> Result<(usize, Client)> {
        let i = self.current.load(Ordering::Acquire) % self.clients.len();
        let client = self.clients[i]
            .get_or_try_init(|| async {
                let options = ConnectOptions::new()
                    .with_connect_timeout(CONNECT_TIMEOUT)
                    // HTTP/2 pings find a dead member (a killed leader) in a
                    // second or two rather than at the next TCP timeout.
                    .with_keep_alive(Duration::from_secs(1), Duration::from_secs(2))
                    .with_keep_alive_while_idle(true)
                    // A member cut off from the others answers at once that
                    // it has no leader, instead of waiting for one.
                    .with_require_leader(true);
                Client::connect([&self.cfg.endpoints[i]], Some(options))
                    .await
                    .map_err(|e| etcd_error(&self.cfg, "cannot connect", e))
            })
            .await?;
        Ok((i, client.clone()))
    }

    /// Moves calls off endpoint `i`, which failed to answer (unless they
    /// have moved already).
    fn failed(&self, i: usize) {
        let next = (i + 1) % self.clients.len();
        let _ = self
            .current
            .compare_exchange(i, next, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Makes one call with [`CALL_TIMEOUT`], on the endpoint in use; when
    /// that member does not serve it, on the next, each endpoint once.
    async fn call<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let mut last = None;
        for _ in 0..self.clients.len() {
            let (i, client) = match self.client().await {
                Ok(c) => c,
                Err(e) => {
                    last = Some(e);
                    let i = self.current.load(Ordering::Acquire) % self.clients.len();
                    self.failed(i);
                    continue;
                }
            };
            match tokio::time::timeout(CALL_TIMEOUT, f(client)).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) if !is_unavailable(&e) => return Err(etcd_error(&self.cfg, what, e)),
                Ok(Err(e)) => last = Some(etcd_error(&self.cfg, what, e)),
                Err(_) => {
                    last = Some(etcd_error(
                        &self.cfg,
                        what,
                        format!("no answer within {CALL_TIMEOUT:?}"),
                    ))
                }
            }
            self.failed(i);
        }
        Err(last.expect("at least one endpoint"))
    }

    /// A transaction.
    async fn txn(&self, what: &str, txn: Txn) -> Result<etcd_client::TxnResponse> {
        self.call(what, |mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })
        .await
    }
}

/// The keys of one resource.
#[derive(Debug, Clone)]
struct Keys {
    base: String,
}

impl Keys {
    fn new(prefix: &str, name: &str) -> Self {
        Keys {
            base: format!("{prefix}{name}/"),
        }
    }
    fn tickets(&self) -> String {
        format!("{}tickets", self.base)
    }
    fn slots(&self) -> String {
        format!("{}slot/", self.base)
    }
    fn slot(&self, i: u32) -> String {
        format!("{}slot/{i}", self.base)
    }
    fn queue(&self) -> String {
        format!("{}queue/", self.base)
    }
    fn waiter(&self, lease: i64) -> String {
        format!("{}queue/{lease:016x}", self.base)
    }
}

fn revision_of(header: Option<&etcd_client::ResponseHeader>) -> i64 {
    header.map_or(0, |h| h.revision())
}

fn gets(resp: &etcd_client::TxnResponse) -> Vec<etcd_client::GetResponse> {
    resp.op_responses()
        .into_iter()
        .filter_map(|r| match r {
            TxnOpResponse::Get(g) => Some(g),
            _ => None,
        })
        .collect()
}

/// The slot number a key under `NAME/slot/` stands for.
fn slot_number(key: &[u8], slots_prefix: &str) -> Option<u32> {
    let rest = key.strip_prefix(slots_prefix.as_bytes())?;
    let text = std::str::from_utf8(rest).ok()?;
    if text.is_empty() || text.starts_with('0') && text != "0" {
        return None;
    }
    text.parse().ok()
}

/// What the `tickets` key holds: a number from 1 to the maximum, or junk.
fn parse_tickets(kv: &KeyValue) -> Option<u32> {
    std::str::from_utf8(kv.value())
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|n| (1..=crate::election::MAX_TICKETS).contains(n))
}

/// The record a slot key holds, its token taken from etcd, not the value.
fn record_of(kv: &KeyValue) -> Option<HolderRecord> {
    let mut r = HolderRecord::parse(kv.value())?;
    r.token = u64::try_from(kv.create_revision()).unwrap_or(0);
    Some(r)
}

// ---------------------------------------------------------------------------
// Leases.

/// One participant's lease and what its keeper has learnt.
#[derive(Debug)]
struct Lease {
    id: i64,
    /// The TTL the server granted.
    ttl: Duration,
    /// When the last renewal that the server answered was sent, on the
    /// clock that counts suspend ([`since_boot`]).
    renewed: Mutex<Duration>,
    /// The server said the lease is gone, or the slot key was deleted.
    gone: AtomicBool,
    /// Wakes whoever waits for the lease to go.
    gone_notify: Notify,
    /// Tells the keeper to stop.
    stop: Notify,
}

fn share(d: Duration, (num, den): (u32, u32)) -> Duration {
    d * num / den
}

impl Lease {
    fn renewed(&self) -> Duration {
        *self.renewed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// When the ticket counts as lost if no renewal goes through before.
    fn lost_at(&self) -> Duration {
        self.renewed() + share(self.ttl, LOST_AFTER)
    }

    /// By when a holder's work must have stopped.
    fn kill_by(&self) -> Instant {
        let at = self.renewed() + share(self.ttl, KILL_BY);
        Instant::now() + at.saturating_sub(since_boot())
    }

    /// Whether the lease certainly lives on the server. Once false, false
    /// for good: a holder that stopped trusting its ticket must not start
    /// again because a late renewal went through.
    fn is_alive(&self) -> bool {
        if self.gone.load(Ordering::Acquire) {
            return false;
        }
        if since_boot() >= self.lost_at() {
            self.mark_gone();
            return false;
        }
        true
    }

    fn mark_gone(&self) {
        self.gone.store(true, Ordering::Release);
        self.gone_notify.notify_waiters();
        self.gone_notify.notify_one();
    }

    /// Waits until the lease is gone or counts as lost.
    async fn lost(&self) {
        loop {
            if !self.is_alive() {
                return;
            }
            let at = tokio::time::Instant::now() + self.lost_at().saturating_sub(since_boot());
            tokio::select! {
                _ = self.gone_notify.notified() => {}
                _ = tokio::time::sleep_until(at) => {}
            }
        }
    }

    /// Grants a lease and starts its keeper.
    async fn grant(shared: &Arc<Shared>) -> Result<Arc<Lease>> {
        let sent = since_boot();
        let secs = i64::try_from(shared.cfg.ttl.as_secs()).unwrap_or(i64::MAX);
        let resp = shared
            .call("cannot grant a lease", |mut c| async move {
                c.lease_grant(secs, None).await
            })
            .await?;
        let granted = u64::try_from(resp.ttl()).unwrap_or(0).max(1);
        let lease = Arc::new(Lease {
            id: resp.id(),
            ttl: Duration::from_secs(granted),
            renewed: Mutex::new(sent),
            gone: AtomicBool::new(false),
            gone_notify: Notify::new(),
            stop: Notify::new(),
        });
        tokio::spawn(keep(Arc::clone(shared), Arc::clone(&lease)));
        Ok(lease)
    }

    /// Stops the keeper and revokes the lease, deleting every key on it.
    async fn revoke(&self, shared: &Shared) {
        self.stop.notify_one();
        if !self.gone.swap(true, Ordering::AcqRel) {
            self.gone_notify.notify_waiters();
        }
        // Through an etcd outage (a leader election) the revoke is tried
        // again until it goes through or the lease has expired anyway:
        // meanwhile nobody else can take the slot.
        let until = self.renewed() + self.ttl + Duration::from_secs(1);
        let mut pause = Duration::from_millis(20);
        while revoke(shared, self.id).await.is_err() && since_boot() < until {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }
}

/// Revokes lease `id`, deleting every key on it; a lease the server no
/// longer knows counts as revoked.
async fn revoke(shared: &Shared, id: i64) -> Result<()> {
    shared
        .call("cannot revoke a lease", |mut c| async move {
            match c.lease_revoke(id).await {
                // NOT_FOUND: expired or revoked already.
                Err(etcd_client::Error::GRpcStatus(s)) if s.code() as i32 == 5 => Ok(()),
                other => other.map(drop),
            }
        })
        .await
}

/// The keeper of one lease: renews it every TTL/5, retries soon after a
/// failed renewal (on the next member), and marks it gone when the server
/// says it expired.
async fn keep(shared: Arc<Shared>, lease: Arc<Lease>) {
    let every = lease.ttl / RENEW_PER_TTL;
    let mut next = tokio::time::Instant::now() + every;
    // The renewal stream, and the endpoint it goes to.
    let mut stream = None;
    loop {
        tokio::select! {
            _ = lease.stop.notified() => return,
            _ = tokio::time::sleep_until(next) => {}
        }
        if !lease.is_alive() {
            // Lost by the clock (renewals failed for too long): revoke, in
            // case the server still has it, so the slot is free at once.
            // (After a release this repeats its revoke, which is harmless.)
            let _ = revoke(&shared, lease.id).await;
            return;
        }
        let sent = since_boot();
        let sent_here = tokio::time::Instant::now();
        let mut endpoint = None;
        let renewal = tokio::time::timeout(every.max(Duration::from_millis(500)), async {
            if stream.is_none() {
                let (i, mut client) = shared
                    .client()
                    .await
                    .map_err(|e| etcd_client::Error::LeaseKeepAliveError(e.to_string()))?;
                endpoint = Some(i);
                // Opening the stream sends the first renewal and waits for
                // its answer.
                let (keeper, answers) = client.lease_keep_alive(lease.id).await?;
                stream = Some((i, keeper, answers));
                return Ok(Some(lease.ttl.as_secs() as i64));
            }
            let (i, keeper, answers) = stream.as_mut().expect("opened above");
            endpoint = Some(*i);
            keeper.keep_alive().await?;
            Ok::<_, etcd_client::Error>(answers.message().await?.map(|r| r.ttl()))
        })
        .await;
        match renewal {
            // Renewed, and in time: the ticket was never given up.
            Ok(Ok(Some(ttl))) if ttl > 0 && lease.is_alive() => {
                *lease.renewed.lock().unwrap_or_else(|p| p.into_inner()) = sent;
                next = sent_here + every;
            }
            // Renewed too late: the holder has already been told its
            // ticket is lost, so let the others have the slot now.
            Ok(Ok(Some(ttl))) if ttl > 0 => {
                let _ = revoke(&shared, lease.id).await;
                return;
            }
            // The server no longer knows the lease: it expired.
            Ok(Ok(Some(_))) => {
                lease.mark_gone();
                return;
            }
            Ok(Err(etcd_client::Error::LeaseKeepAliveError(m))) if m.contains("not found") => {
                lease.mark_gone();
                return;
            }
            // A broken stream or no answer: open a new one soon, on the
            // next member.
            _ => {
                stream = None;
                if let Some(i) = endpoint {
                    shared.failed(i);
                }
                next = tokio::time::Instant::now() + Duration::from_millis(200).min(every);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The store.

/// A store in an etcd cluster.
#[derive(Debug, Clone)]
pub(crate) struct EtcdStore {
    shared: Arc<Shared>,
}

/// A slot held in etcd.
pub(crate) struct EtcdHeld {
    shared: Arc<Shared>,
    lease: Arc<Lease>,
    slot: u32,
    token: u64,
    key: String,
    path: PathBuf,
    record: HolderRecord,
}

/// The outcome of one attempt to take a free slot.
enum Take {
    Got(EtcdHeld),
    /// Every slot is held, as of this revision.
    Full(i64),
}

/// What one read of a resource says.
struct Snapshot {
    revision: i64,
    tickets: Option<KeyValue>,
    held: Vec<u32>,
    /// Held slots by lease: (slot, lease, create revision).
    holders: Vec<(u32, i64, i64)>,
}

impl EtcdStore {
    /// A store for `cfg`; nothing is contacted until first use.
    pub(crate) fn new(cfg: Etcd) -> Self {
        EtcdStore {
            shared: Arc::new(Shared::new(cfg)),
        }
    }

    pub(crate) fn location(&self) -> &Path {
        &self.shared.location
    }

    pub(crate) fn config(&self) -> &Etcd {
        &self.shared.cfg
    }

    /// Obtains a slot of `req`'s resource; waits if `wait`, until `intr`
    /// is triggered.
    pub(crate) fn obtain(
        &self,
        req: &Request,
        wait: bool,
        intr: &Interrupter,
    ) -> Result<Option<EtcdHeld>> {
        let cancel = Arc::new(Notify::new());
        {
            let cancel = Arc::clone(&cancel);
            intr.on_trigger(move || cancel.notify_one());
        }
        let shared = Arc::clone(&self.shared);
        let req = req.clone();
        let result = block(async move { obtain(shared, req, wait, cancel).await })?;
        intr.on_trigger(|| {});
        match result {
            Err(Error::Cancelled) => match intr.reason() {
                Some(Reason::TimedOut) | None => Ok(None),
                Some(_) => Err(Error::Cancelled),
            },
            other => other,
        }
    }

    /// Status of one resource or all.
    pub(crate) fn status(&self, name: Option<&str>) -> Result<Vec<ResourceStatus>> {
        let shared = Arc::clone(&self.shared);
        let name = name.map(str::to_string);
        block(async move { status(&shared, name.as_deref()).await })?
    }

    /// Starts watching one resource.
    pub(crate) fn watch(&self, name: &str) -> Result<EtcdWatch> {
        EtcdWatch::start(Arc::clone(&self.shared), name)
    }
}

/// The async obtain: see the module's description.
async fn obtain(
    shared: Arc<Shared>,
    req: Request,
    wait: bool,
    cancel: Arc<Notify>,
) -> Result<Option<EtcdHeld>> {
    let keys = Keys::new(&shared.cfg.prefix, &req.name);
    let mut lease = None;
    let outcome = tokio::select! {
        r = async {
            // A try that finds every slot held costs one read and no lease.
            let first = read(&shared, &keys).await?;
            if !wait && first.held.len() >= req.tickets as usize && agreed(&first, req.tickets) {
                return Ok(None);
            }
            let guess = (0..req.tickets)
                .find(|i| !first.held.contains(i))
                .unwrap_or(0);
            let granted = lease.insert(Lease::grant(&shared).await?);
            acquire(&shared, &keys, &req, wait, granted, guess).await
        } => r,
        _ = cancel.notified() => Err(Error::Cancelled),
    };
    match (outcome, lease) {
        (Ok(Some(held)), _) => Ok(Some(held)),
        (other, Some(lease)) => {
            // Nothing taken: the lease (and a place in the line on it) goes.
            let s = Arc::clone(&shared);
            tokio::spawn(async move { lease.revoke(&s).await });
            other
        }
        (other, None) => other,
    }
}

/// Whether a read shows the tickets key equal to `n`.
fn agreed(snap: &Snapshot, n: u32) -> bool {
    snap.tickets.as_ref().and_then(parse_tickets) == Some(n)
}

/// The two reads that tell whether a slot can be taken: the tickets key and
/// the held slots (keys only).
fn snapshot_ops(keys: &Keys) -> [TxnOp; 2] {
    [
        TxnOp::get(keys.tickets(), None),
        TxnOp::get(
            keys.slots(),
            Some(GetOptions::new().with_prefix().with_keys_only()),
        ),
    ]
}

/// What the answers to [`snapshot_ops`] say.
fn snapshot_of(resp: &etcd_client::TxnResponse, keys: &Keys) -> Snapshot {
    let g = gets(resp);
    let slots = keys.slots();
    let holders: Vec<(u32, i64, i64)> = g
        .get(1)
        .map(|g| {
            g.kvs()
                .iter()
                .filter_map(|kv| {
                    let slot = slot_number(kv.key(), &slots)?;
                    Some((slot, kv.lease(), kv.create_revision()))
                })
                .collect()
        })
        .unwrap_or_default();
    Snapshot {
        revision: revision_of(resp.header()),
        tickets: g.first().and_then(|g| g.kvs().first().cloned()),
        held: holders.iter().map(|h| h.0).collect(),
        holders,
    }
}

/// Reads the tickets key and the held slots in one revision.
async fn read(shared: &Shared, keys: &Keys) -> Result<Snapshot> {
    let txn = Txn::new().and_then(snapshot_ops(keys));
    let resp = shared.txn("cannot read", txn).await?;
    Ok(snapshot_of(&resp, keys))
}

/// Makes sure the tickets key says `n`: it does, or nobody is live and it
/// is set to `n` now, or a live participant agreed on another number.
async fn agree(shared: &Shared, keys: &Keys, req: &Request) -> Result<()> {
    loop {
        let txn = Txn::new().and_then([
            TxnOp::get(keys.tickets(), None),
            TxnOp::get(
                keys.queue(),
                Some(GetOptions::new().with_prefix().with_count_only()),
            ),
            TxnOp::get(
                keys.slots(),
                Some(GetOptions::new().with_prefix().with_count_only()),
            ),
        ]);
        let resp = shared.txn("cannot read", txn).await?;
        let g = gets(&resp);
        let tickets = g.first().and_then(|g| g.kvs().first().cloned());
        let live = g.iter().skip(1).map(|g| g.count()).sum::<i64>();
        let value = tickets.as_ref().and_then(parse_tickets);
        if value == Some(req.tickets) {
            return Ok(());
        }
        if live > 0 {
            return Err(match value {
                Some(agreed) => Error::TicketMismatch {
                    name: req.name.clone(),
                    asked: req.tickets,
                    agreed,
                },
                None => Error::Store(format!(
                    "the etcd key {} holds no valid number of tickets while the resource is in use; \
                     wait until its participants have gone, or set it to their N",
                    keys.tickets()
                )),
            });
        }
        // Nobody is live: the number is ours to set, if nobody joins or
        // sets it first.
        let unchanged = match &tickets {
            Some(kv) => Compare::mod_revision(keys.tickets(), CompareOp::Equal, kv.mod_revision()),
            None => Compare::create_revision(keys.tickets(), CompareOp::Equal, 0),
        };
        let txn = Txn::new()
            .when([
                unchanged,
                Compare::create_revision(keys.queue(), CompareOp::Equal, 0).with_prefix(),
                Compare::create_revision(keys.slots(), CompareOp::Equal, 0).with_prefix(),
            ])
            .and_then([TxnOp::put(keys.tickets(), req.tickets.to_string(), None)]);
        shared.txn("cannot write", txn).await?;
    }
}

/// A fresh holder record for this process.
fn new_record(req: &Request) -> HolderRecord {
    HolderRecord {
        pid: std::process::id(),
        since: crate::time::rfc3339(SystemTime::now()),
        label: crate::record::clean_label(&req.label),
        token: 0,
        command_pid: None,
    }
}

/// Takes a free slot on `lease`, also leaving the line if `queued`, or
/// finds them all held. It first tries slot `guess` (one round trip when
/// that slot is free: a release just seen, or the first free slot of a
/// read); a failed try brings back, in the same round trip, what is held.
async fn take(
    shared: &Arc<Shared>,
    keys: &Keys,
    req: &Request,
    lease: &Arc<Lease>,
    queued: bool,
    guess: u32,
) -> Result<Take> {
    let mut slot = guess.min(req.tickets - 1);
    loop {
        let key = keys.slot(slot);
        let record = new_record(req);
        let mut ops = vec![TxnOp::put(
            key.clone(),
            record.to_bytes(),
            Some(PutOptions::new().with_lease(lease.id)),
        )];
        if queued {
            ops.push(TxnOp::delete(keys.waiter(lease.id), None));
        }
        let txn = Txn::new()
            .when([
                Compare::value(keys.tickets(), CompareOp::Equal, req.tickets.to_string()),
                Compare::create_revision(key.clone(), CompareOp::Equal, 0),
            ])
            .and_then(ops)
            .or_else(snapshot_ops(keys));
        let resp = shared.txn("cannot take a slot", txn).await?;
        if !resp.succeeded() {
            // Held, or the tickets key is not ours: see which.
            let snap = snapshot_of(&resp, keys);
            // A take whose answer was lost (a timeout, a member that died
            // after the commit) may have gone through: the slot is ours.
            if let Some(&(mine, _, created)) = snap.holders.iter().find(|h| h.1 == lease.id) {
                return Ok(Take::Got(held(shared, keys, lease, mine, created, record)));
            }
            if !agreed(&snap, req.tickets) {
                agree(shared, keys, req).await?;
                continue;
            }
            match (0..req.tickets).find(|i| !snap.held.contains(i)) {
                Some(free) => slot = free,
                None => return Ok(Take::Full(snap.revision)),
            }
            continue;
        }
        let created = revision_of(resp.header());
        return Ok(Take::Got(held(shared, keys, lease, slot, created, record)));
    }
}

/// The held slot `slot`, created at revision `created` on `lease`, and the
/// watch that tells if anyone else deletes it.
fn held(
    shared: &Arc<Shared>,
    keys: &Keys,
    lease: &Arc<Lease>,
    slot: u32,
    created: i64,
    mut record: HolderRecord,
) -> EtcdHeld {
    let key = keys.slot(slot);
    let token = u64::try_from(created).unwrap_or(0);
    let path = PathBuf::from(format!("etcd:{}/{key}", shared.cfg.endpoints.join(",")));
    record.token = token;
    watch_own_key(shared, &key, token, lease);
    EtcdHeld {
        shared: Arc::clone(shared),
        lease: Arc::clone(lease),
        slot,
        token,
        key,
        path,
        record,
    }
}

/// Marks the lease gone if the slot key is deleted or replaced by anyone
/// but its holder (an operator wiping the prefix: the run directory
/// removed, in the local store's terms).
fn watch_own_key(shared: &Arc<Shared>, key: &str, token: u64, lease: &Arc<Lease>) {
    let (shared, key, lease) = (Arc::clone(shared), key.to_string(), Arc::clone(lease));
    tokio::spawn(async move {
        let created = i64::try_from(token).unwrap_or(i64::MAX);
        let mut from = created + 1;
        loop {
            let options = WatchOptions::new().with_start_revision(from);
            let watched = tokio::select! {
                w = watch(&shared, key.clone().into_bytes(), options) => w,
                _ = lease.lost() => return,
            };
            let Ok((_watcher, mut stream)) = watched else {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
                    _ = lease.lost() => return,
                }
            };
            loop {
                let msg = tokio::select! {
                    m = stream.message() => m,
                    _ = lease.lost() => return,
                };
                match msg {
                    Ok(Some(resp)) => {
                        let replaced = resp.events().iter().any(|e| {
                            e.event_type() == EventType::Delete
                                || e.kv().is_some_and(|kv| kv.create_revision() != created)
                        });
                        if replaced {
                            lease.mark_gone();
                            return;
                        }
                        if resp.canceled() {
                            // History compacted away: look at the key now.
                            match get(&shared, "cannot read", key.clone(), GetOptions::new()).await
                            {
                                Ok(r)
                                    if r.kvs().first().map(|kv| kv.create_revision())
                                        == Some(created) =>
                                {
                                    from = revision_of(r.header()) + 1;
                                }
                                Ok(_) => {
                                    lease.mark_gone();
                                    return;
                                }
                                Err(_) => {}
                            }
                            break;
                        }
                    }
                    _ => break,
                }
            }
        }
    });
}

/// Takes a slot, waiting in line if `wait`; a lease lost while waiting is
/// replaced and the line joined again at its end.
async fn acquire(
    shared: &Arc<Shared>,
    keys: &Keys,
    req: &Request,
    wait: bool,
    lease: &mut Arc<Lease>,
    guess: u32,
) -> Result<Option<EtcdHeld>> {
    match take(shared, keys, req, lease, false, guess).await? {
        Take::Got(held) => return Ok(Some(held)),
        Take::Full(_) if !wait => return Ok(None),
        Take::Full(_) => {}
    }
    let mut failures = 0;
    loop {
        let step = async {
            if !lease.is_alive() {
                let (s, l) = (Arc::clone(shared), Arc::clone(lease));
                tokio::spawn(async move { l.revoke(&s).await });
                *lease = Lease::grant(shared).await?;
            }
            wait_in_line(shared, keys, req, lease).await
        };
        match step.await {
            Ok(Some(held)) => return Ok(Some(held)),
            Ok(None) => failures = 0,
            // Mismatches and bugs end the wait; etcd trouble is waited out.
            Err(e @ (Error::TicketMismatch { .. } | Error::Cancelled)) => return Err(e),
            Err(Error::Store(_)) => {
                let pause = BACKOFF[failures.min(BACKOFF.len() - 1)];
                failures += 1;
                tokio::time::sleep(pause).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Joins the line (if not in it) and waits for one change that concerns
/// this waiter. `Ok(None)`: look again.
async fn wait_in_line(
    shared: &Arc<Shared>,
    keys: &Keys,
    req: &Request,
    lease: &Arc<Lease>,
) -> Result<Option<EtcdHeld>> {
    let me = keys.waiter(lease.id);
    let options = GetOptions::new()
        .with_prefix()
        .with_keys_only()
        .with_sort(SortTarget::Create, SortOrder::Ascend);
    let line = get(shared, "cannot read the line", keys.queue(), options).await?;
    let revision = revision_of(line.header());
    let Some(pos) = line.kvs().iter().position(|kv| kv.key() == me.as_bytes()) else {
        join(shared, keys, req, lease).await?;
        return Ok(None);
    };
    if pos > 0 {
        // Wait for the one before me to leave.
        let before = line.kvs()[pos - 1].key().to_vec();
        let mut watch = open_watch(shared, before, false, revision).await?;
        next_delete(shared, &mut watch, lease).await?;
        return Ok(None);
    }
    // Head of the line (nobody can come before it now): take a free slot,
    // or wait on one watch of the slots for a release and try that slot.
    let mut watch = None;
    let mut guess = 0;
    loop {
        match take(shared, keys, req, lease, true, guess).await? {
            Take::Got(held) => return Ok(Some(held)),
            Take::Full(at) => {
                if watch.is_none() {
                    let slots = keys.slots().into_bytes();
                    watch = Some(open_watch(shared, slots, true, at).await?);
                }
                let w = watch.as_mut().expect("opened above");
                match next_delete(shared, w, lease).await? {
                    Some(key) => guess = slot_number(&key, &keys.slots()).unwrap_or(0),
                    // Lost lease, a watch the server ended, or time to read
                    // everything again: start over.
                    None => return Ok(None),
                }
            }
        }
    }
}

/// Puts this waiter at the end of the line, if the tickets agree.
async fn join(shared: &Arc<Shared>, keys: &Keys, req: &Request, lease: &Arc<Lease>) -> Result<()> {
    loop {
        agree(shared, keys, req).await?;
        let txn = Txn::new()
            .when([Compare::value(
                keys.tickets(),
                CompareOp::Equal,
                req.tickets.to_string(),
            )])
            .and_then([TxnOp::put(
                keys.waiter(lease.id),
                new_record(req).to_bytes(),
                Some(PutOptions::new().with_lease(lease.id)),
            )]);
        let resp = shared.txn("cannot join the line", txn).await?;
        if resp.succeeded() {
            return Ok(());
        }
    }
}

/// A watch and the handle that keeps it open.
type OpenWatch = (
    etcd_client::Watcher,
    etcd_client::WatchStream,
    tokio::time::Instant,
);

/// Watches a key (or, with `prefix`, every key under it) from just after
/// revision `seen`, so that nothing since that read is missed.
async fn open_watch(
    shared: &Arc<Shared>,
    key: Vec<u8>,
    prefix: bool,
    seen: i64,
) -> Result<OpenWatch> {
    let mut options = WatchOptions::new().with_start_revision(seen + 1);
    if prefix {
        options = options.with_prefix();
    }
    let (watcher, stream) = watch(shared, key, options).await?;
    Ok((watcher, stream, tokio::time::Instant::now() + REREAD))
}

/// A watch with these options, on the first member that serves it.
async fn watch(
    shared: &Shared,
    key: Vec<u8>,
    options: WatchOptions,
) -> Result<(etcd_client::Watcher, etcd_client::WatchStream)> {
    shared
        .call("cannot watch", |mut c| {
            let (key, options) = (key.clone(), options.clone());
            async move { c.watch(key, Some(options)).await }
        })
        .await
}

/// A range read with these options.
async fn get(
    shared: &Shared,
    what: &str,
    key: String,
    options: GetOptions,
) -> Result<etcd_client::GetResponse> {
    shared
        .call(what, |mut c| {
            let (key, options) = (key.clone(), options.clone());
            async move { c.get(key, Some(options)).await }
        })
        .await
}

/// Waits for the next deletion the watch reports and returns its key;
/// `None` if the lease is lost, the server ended the watch, or [`REREAD`]
/// has passed since the watch was opened.
async fn next_delete(
    shared: &Arc<Shared>,
    (_, stream, reread): &mut OpenWatch,
    lease: &Arc<Lease>,
) -> Result<Option<Vec<u8>>> {
    loop {
        let msg = tokio::select! {
            m = stream.message() => m,
            _ = lease.lost() => return Ok(None),
            _ = tokio::time::sleep_until(*reread) => return Ok(None),
        };
        match msg {
            Ok(Some(resp)) => {
                if let Some(e) = resp
                    .events()
                    .iter()
                    .find(|e| e.event_type() == EventType::Delete)
                {
                    return Ok(Some(e.kv().map(|kv| kv.key().to_vec()).unwrap_or_default()));
                }
                if resp.canceled() {
                    return Ok(None);
                }
            }
            Ok(None) => return Ok(None),
            Err(e) => return Err(etcd_error(&shared.cfg, "a watch broke", e)),
        }
    }
}

/// The status of one resource or of all under the prefix.
async fn status(shared: &Shared, name: Option<&str>) -> Result<Vec<ResourceStatus>> {
    let prefix = &shared.cfg.prefix;
    let from = match name {
        Some(n) => Keys::new(prefix, n).base,
        None => prefix.clone(),
    };
    let resp = get(shared, "cannot read", from, GetOptions::new().with_prefix()).await?;
    // name → (tickets, slot → record of its holder)
    type Found = BTreeMap<String, (Option<u32>, BTreeMap<u32, Option<HolderRecord>>)>;
    let mut found = Found::new();
    for kv in resp.kvs() {
        let Some(rest) = kv.key().strip_prefix(prefix.as_bytes()) else {
            continue;
        };
        let Ok(rest) = std::str::from_utf8(rest) else {
            continue;
        };
        let Some((name, what)) = rest.split_once('/') else {
            continue;
        };
        if crate::name::validate_name(name).is_err() {
            continue;
        }
        let entry = found.entry(name.to_string()).or_default();
        if what == "tickets" {
            entry.0 = parse_tickets(kv);
        } else if let Some(i) = slot_number(kv.key(), &Keys::new(prefix, name).slots()) {
            entry.1.insert(i, record_of(kv));
        }
    }
    Ok(found
        .into_iter()
        .filter_map(|(name, (tickets, held))| {
            let top = held.keys().next_back().map_or(0, |i| i + 1);
            let tickets = tickets.unwrap_or(top);
            if tickets == 0 {
                return None;
            }
            let slots = (0..tickets.max(top))
                .map(|slot| SlotStatus {
                    slot,
                    held: held.contains_key(&slot),
                    holder: held.get(&slot).cloned().flatten(),
                })
                .collect();
            Some(ResourceStatus {
                name,
                tickets,
                slots,
            })
        })
        .collect())
}

impl std::fmt::Debug for EtcdHeld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdHeld")
            .field("key", &self.key)
            .field("token", &self.token)
            .field("lease", &self.lease.id)
            .finish_non_exhaustive()
    }
}

impl EtcdHeld {
    pub(crate) fn slot(&self) -> u32 {
        self.slot
    }

    pub(crate) fn token(&self) -> u64 {
        self.token
    }

    pub(crate) fn record(&self) -> &HolderRecord {
        &self.record
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the lease is certainly still alive on the server: renewed
    /// within [`LOST_AFTER`] of its TTL and the slot key untouched.
    pub(crate) fn is_intact(&self) -> bool {
        self.lease.is_alive()
    }

    /// By when work done under this ticket must have stopped.
    pub(crate) fn deadline(&self) -> Instant {
        self.lease.kill_by()
    }

    /// Adds the command's pid to the record, if the slot is still ours.
    pub(crate) fn set_command_pid(&mut self, pid: u32) -> Result<()> {
        self.record.command_pid = Some(pid);
        let txn = Txn::new()
            .when([Compare::create_revision(
                self.key.clone(),
                CompareOp::Equal,
                i64::try_from(self.token).unwrap_or(i64::MAX),
            )])
            .and_then([TxnOp::put(
                self.key.clone(),
                self.record.to_bytes(),
                Some(PutOptions::new().with_lease(self.lease.id)),
            )]);
        let shared = Arc::clone(&self.shared);
        block(async move { shared.txn("cannot write the record", txn).await })?.map(drop)
    }
}

impl Drop for EtcdHeld {
    fn drop(&mut self) {
        let (s, l) = (Arc::clone(&self.shared), Arc::clone(&self.lease));
        // A lost ticket's lease is gone or cannot be reached: nothing to
        // wait for, and whoever is told of the loss must be told now.
        let lost = !l.is_alive();
        let revoke = async move { l.revoke(&s).await };
        if on_runtime() {
            tokio::spawn(revoke);
        } else if lost {
            if let Ok(rt) = runtime() {
                rt.spawn(revoke);
            }
        } else {
            // Wait for the revoke, so that the slot is free when drop
            // returns, as it is on one host. Through an etcd outage (a
            // leader election) that takes until the revoke goes through or
            // the lease has expired anyway, at most about the TTL: a
            // process that exited sooner would leave the slot taken until
            // the lease expired, while a new leader could have freed it.
            let _ = block(revoke);
        }
    }
}

// ---------------------------------------------------------------------------
// Watching.

/// A watch on one resource's slots.
pub(crate) struct EtcdWatch {
    shared: Arc<Shared>,
    name: String,
    start: i64,
    changes: std::sync::mpsc::Receiver<()>,
    last: Mutex<ResourceStatus>,
    task: tokio::task::AbortHandle,
}

impl EtcdWatch {
    fn start(shared: Arc<Shared>, name: &str) -> Result<Self> {
        let keys = Keys::new(&shared.cfg.prefix, name);
        let (tx, rx) = std::sync::mpsc::channel();
        let s = Arc::clone(&shared);
        let (start, task) = block(async move {
            let first = read(&s, &keys).await?;
            let task = tokio::spawn(forward(s, keys.slots(), first.revision, tx));
            Ok::<_, Error>((first.revision, task.abort_handle()))
        })??;
        let w = EtcdWatch {
            shared,
            name: name.to_string(),
            start,
            changes: rx,
            last: Mutex::new(ResourceStatus {
                name: name.to_string(),
                tickets: 0,
                slots: Vec::new(),
            }),
            task,
        };
        Ok(w)
    }

    /// The resource now; on an etcd error, what it was at the last look.
    pub(crate) fn snapshot(&self) -> ResourceStatus {
        let shared = Arc::clone(&self.shared);
        let name = self.name.clone();
        let now = block(async move { status(&shared, Some(&name)).await })
            .and_then(|r| r)
            .map(|mut v| v.pop());
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        match now {
            Ok(Some(s)) => *last = s,
            Ok(None) => {
                last.slots.clear();
            }
            Err(_) => {}
        }
        last.clone()
    }

    /// Tokens at or below this were issued before the watch began.
    pub(crate) fn last_token(&self) -> u64 {
        u64::try_from(self.start).unwrap_or(0)
    }

    /// Waits up to `timeout` for a change; whether there was one.
    pub(crate) fn wait(&mut self, _intr: &Interrupter, timeout: Duration) -> Result<bool> {
        match self.changes.recv_timeout(timeout) {
            Ok(()) => {
                while self.changes.try_recv().is_ok() {}
                Ok(true)
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Ok(false),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(Error::Store(format!(
                "the watch on {} ended; this is a bug",
                self.name
            ))),
        }
    }
}

impl Drop for EtcdWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Sends one `()` per batch of changes under `prefix` after `seen`, and
/// watches again from where it left off when a watch breaks.
async fn forward(
    shared: Arc<Shared>,
    prefix: String,
    mut seen: i64,
    tx: std::sync::mpsc::Sender<()>,
) {
    loop {
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(seen + 1);
        if let Ok((_watcher, mut stream)) =
            watch(&shared, prefix.clone().into_bytes(), options).await
        {
            while let Ok(Some(resp)) = stream.message().await {
                if let Some(last) = resp.events().iter().filter_map(|e| e.kv()).next_back() {
                    seen = seen.max(last.mod_revision());
                }
                if resp.canceled() {
                    // Compacted past what we saw: start from now.
                    seen = resp.compact_revision().max(seen);
                }
                if (!resp.events().is_empty() || resp.canceled()) && tx.send(()).is_err() {
                    return;
                }
                if resp.canceled() {
                    break;
                }
            }
        }
        if tx.send(()).is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_checked() {
        assert!(Etcd::new("http://127.0.0.1:2379").is_ok());
        assert!(Etcd::new("http://[::1]:2379").is_ok());
        for bad in [
            "",
            ",",
            "http://",
            "http://host",
            "http://host:0",
            "http://host:99999",
            "http://host:2379/path",
            "https://host:2379",
            "host:2379",
            "http://ho st:1",
        ] {
            assert!(Etcd::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn slot_keys_parse_strictly() {
        let p = "elect/x/slot/";
        assert_eq!(slot_number(b"elect/x/slot/0", p), Some(0));
        assert_eq!(slot_number(b"elect/x/slot/17", p), Some(17));
        for bad in [
            &b"elect/x/slot/"[..],
            b"elect/x/slot/01",
            b"elect/x/slot/-1",
            b"elect/y/slot/1",
        ] {
            assert_eq!(slot_number(bad, p), None);
        }
    }

    #[test]
    fn shares_of_the_ttl_leave_room_before_expiry() {
        let ttl = Duration::from_secs(5);
        assert_eq!(share(ttl, LOST_AFTER), Duration::from_secs(3));
        assert_eq!(share(ttl, KILL_BY), Duration::from_secs(4));
        assert!(
            ttl / RENEW_PER_TTL * 2 < share(ttl, LOST_AFTER),
            "two renewals may fail"
        );
    }
}
