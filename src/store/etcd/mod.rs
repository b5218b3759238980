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
//!
//! This module owns the public configuration ([`Etcd`]) and the store the
//! rest of the crate sees ([`EtcdStore`]); the work is in its parts:
//!
//! - [`client`]: the runtime, the connection to the cluster (a client per
//!   endpoint, fail-over between them) and the calls made through it;
//! - [`keys`]: the key layout above, and reading keys and values back;
//! - [`lease`]: a participant's lease, its keeper, and when a ticket counts
//!   as lost;
//! - [`obtain`]: taking a slot, and the line of waiters;
//! - [`held`]: a held slot, until it is released;
//! - [`status`] and [`watch`]: looking at a resource without taking a
//!   ticket, once or as it changes.
//!
//! [`LOST_AFTER`]: lease::LOST_AFTER
//! [`KILL_BY`]: lease::KILL_BY

mod client;
mod held;
mod keys;
mod lease;
mod obtain;
mod status;
mod watch;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::error::{Error, Result};
use crate::interrupt::{Interrupter, Reason};
use crate::status::ResourceStatus;
use crate::store::Request;

use client::{Shared, block};

pub(crate) use held::EtcdHeld;
pub(crate) use watch::EtcdWatch;

/// The lease TTL when none is asked for.
pub const DEFAULT_TTL: Duration = Duration::from_secs(5);

/// The key prefix when none is asked for.
pub const DEFAULT_PREFIX: &str = "elect/";

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
    /// assert!(elect::Etcd::new("http://127.0.0.1:2379")?.ttl(Duration::MAX).is_err());
    /// # Ok::<(), elect::Error>(())
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Result<Self> {
        let secs = ttl
            .as_secs()
            .saturating_add(u64::from(ttl.subsec_nanos() > 0));
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

/// A store in an etcd cluster.
#[derive(Debug, Clone)]
pub(crate) struct EtcdStore {
    shared: Arc<Shared>,
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
        self.shared.check_process()?;
        let cancel = Arc::new(Notify::new());
        {
            let cancel = Arc::clone(&cancel);
            intr.on_trigger(move || cancel.notify_one());
        }
        let shared = Arc::clone(&self.shared);
        let req = req.clone();
        let deadline = intr.deadline();
        let result = block(async move {
            // The deadline ends the wait as a cancel would: waits here sleep
            // in the runtime, not in the interrupter's poll.
            let timer = deadline.map(|d| {
                let cancel = Arc::clone(&cancel);
                tokio::spawn(async move {
                    tokio::time::sleep_until(d.into()).await;
                    cancel.notify_one();
                })
            });
            let result = obtain::obtain(shared, req, wait, cancel).await;
            if let Some(timer) = timer {
                timer.abort();
            }
            result
        })?;
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
        self.shared.check_process()?;
        let shared = Arc::clone(&self.shared);
        let name = name.map(str::to_string);
        block(async move { status::status(&shared, name.as_deref()).await })?
    }

    /// Starts watching one resource.
    pub(crate) fn watch(&self, name: &str) -> Result<EtcdWatch> {
        self.shared.check_process()?;
        EtcdWatch::start(Arc::clone(&self.shared), name)
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
}
