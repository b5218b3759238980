//! Talking to the cluster: the process's one runtime for etcd calls and
//! [`block`], which lets blocking code wait on it; [`Shared`], the
//! connection every clone of a store shares, with one client per endpoint
//! and fail-over from a member that does not answer to the next; the calls
//! made through it ([`Shared::call`], [`Shared::txn`], [`get`], [`watch`]),
//! each with a timeout; and etcd's errors put in words that say what to
//! check.
//!
//! Everything else in the store builds its requests and reads the answers;
//! this module alone decides which member they go to and when to give up on
//! one.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, GetOptions, Txn, TxnOpResponse, WatchOptions};

use super::Etcd;
use crate::error::{Error, Result};

/// How long one call to etcd may take before it is tried again.
/// etcd itself holds a write whose leader died for several seconds before
/// it gives up; asking another member sooner gets through sooner, and a
/// write that went through after all is recognised on the next try.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the first connection may take before the obtain fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The process's runtime for etcd calls: one worker thread, made on first
/// use, and made anew in a fork child (whose copy of the parent's runtime
/// has no thread: the kernel copies only the thread that forked). The
/// parent's is leaked there, not dropped: dropping it would wait for
/// threads that do not exist in the child.
pub(super) fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    type Made = Option<(u32, &'static tokio::runtime::Runtime)>;
    static RUNTIME: std::sync::Mutex<Made> = std::sync::Mutex::new(None);
    let pid = std::process::id();
    // try_lock: another thread of the parent may have held it at the fork,
    // and then it stays held in the child for good.
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    let mut made = loop {
        match RUNTIME.try_lock() {
            Ok(guard) => break guard,
            Err(std::sync::TryLockError::Poisoned(p)) => break p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::yield_now();
            }
            Err(std::sync::TryLockError::WouldBlock) => {
                return Err(Error::Store(
                    "the etcd client's runtime is being made by a thread that no longer exists (this process forked meanwhile); make the etcd election in the process that uses it".into(),
                ));
            }
        }
    };
    if let Some((made_by, rt)) = *made
        && made_by == pid
    {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("elect-etcd")
        .enable_all()
        .build()
        .map_err(|e| Error::store(format!("cannot start the etcd client's runtime: {e}"), e))?;
    let rt: &'static tokio::runtime::Runtime = Box::leak(Box::new(rt));
    *made = Some((pid, rt));
    Ok(rt)
}

/// Whether this thread is one of the runtime's own, where blocking on it
/// would deadlock.
pub(super) fn on_runtime() -> bool {
    std::thread::current().name() == Some("elect-etcd")
}

/// Runs `fut` on the runtime and waits for its answer on this thread,
/// which may be any thread but the runtime's own (even one of another
/// runtime: this blocks, it does not nest runtimes).
pub(super) fn block<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> Result<T> {
    debug_assert!(!on_runtime(), "blocking on the etcd runtime from itself");
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime()?.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv()
        .map_err(|_| Error::Store("an etcd call was abandoned; this is a bug".into()))
}

/// An etcd error, in words that say where and what to check.
pub(super) fn etcd_error(
    cfg: &Etcd,
    what: &str,
    e: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> Error {
    let e = e.into();
    let message = format!(
        "etcd at {}: {what}: {e}; check --etcd / ELECT_ETCD and that the cluster is up",
        cfg.endpoints.join(",")
    );
    Error::store(message, e)
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
pub(super) struct Shared {
    /// The process that made it: its connections run on that process's
    /// runtime, which a fork child does not have.
    pid: u32,
    pub(super) cfg: Etcd,
    pub(super) location: PathBuf,
    clients: Vec<tokio::sync::OnceCell<Client>>,
    /// The endpoint calls go to.
    current: AtomicUsize,
    /// Some member has answered, if only to say it has no leader: the
    /// endpoints are right and the cluster is there, so a failure is worth
    /// waiting out rather than reporting at once.
    answered: AtomicBool,
    /// The last call failed because no member could serve it (down, no
    /// leader, no answer), not because it was refused: worth trying again.
    unavailable: AtomicBool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub(super) fn new(cfg: Etcd) -> Self {
        Shared {
            pid: std::process::id(),
            location: PathBuf::from(cfg.location()),
            clients: cfg
                .endpoints
                .iter()
                .map(|_| tokio::sync::OnceCell::new())
                .collect(),
            current: AtomicUsize::new(0),
            answered: AtomicBool::new(false),
            unavailable: AtomicBool::new(false),
            cfg,
        }
    }

    /// The client of the endpoint in use, and which endpoint that is.
    /// An error in a fork child of the process that made this: its
    /// connections are the parent's.
    pub(super) fn check_process(&self) -> Result<()> {
        if std::process::id() == self.pid {
            return Ok(());
        }
        Err(Error::Store(
            format!(
                "this etcd election was made by process {} before it forked, and its connections to the cluster stay there; in a fork child, make a new Election (Election::builder(..).etcd(..)), which connects anew",
                self.pid
            )
            .into(),
        ))
    }

    pub(super) async fn client(&self) -> Result<(usize, Client)> {
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
    pub(super) fn failed(&self, i: usize) {
        let next = (i + 1) % self.clients.len();
        let _ = self
            .current
            .compare_exchange(i, next, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Makes one call with [`CALL_TIMEOUT`], on the endpoint in use; when
    /// that member does not serve it, on the next, each endpoint once.
    pub(super) async fn call<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
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
            let answer = tokio::time::timeout(CALL_TIMEOUT, f(client)).await;
            if let Ok(Ok(_)) = &answer {
                self.answered.store(true, Ordering::Release);
            }
            // A status the server sent (etcd's all begin "etcdserver:"),
            // not one the client made of a failed connection.
            if let Ok(Err(etcd_client::Error::GRpcStatus(st))) = &answer
                && st.message().starts_with("etcdserver:")
            {
                self.answered.store(true, Ordering::Release);
            }
            match answer {
                Ok(Ok(v)) => {
                    self.unavailable.store(false, Ordering::Release);
                    return Ok(v);
                }
                Ok(Err(e)) if !is_unavailable(&e) => {
                    self.unavailable.store(false, Ordering::Release);
                    return Err(etcd_error(&self.cfg, what, e));
                }
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
        self.unavailable.store(true, Ordering::Release);
        Err(last.expect("at least one endpoint"))
    }

    /// Whether the last failure is worth waiting out: the cluster has
    /// answered before (the endpoints are right), and the call failed for
    /// want of a member that could serve it, not because it was refused.
    pub(super) fn worth_retrying(&self) -> bool {
        self.answered.load(Ordering::Acquire) && self.unavailable.load(Ordering::Acquire)
    }

    /// A transaction.
    pub(super) async fn txn(&self, what: &str, txn: Txn) -> Result<etcd_client::TxnResponse> {
        self.call(what, |mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })
        .await
    }
}

/// The revision an answer was given at (0 if it came without a header).
pub(super) fn revision_of(header: Option<&etcd_client::ResponseHeader>) -> i64 {
    header.map_or(0, |h| h.revision())
}

/// The answers to a transaction's reads, in order.
pub(super) fn gets(resp: &etcd_client::TxnResponse) -> Vec<etcd_client::GetResponse> {
    resp.op_responses()
        .into_iter()
        .filter_map(|r| match r {
            TxnOpResponse::Get(g) => Some(g),
            _ => None,
        })
        .collect()
}

/// A watch with these options, on the first member that serves it.
pub(super) async fn watch(
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
pub(super) async fn get(
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
