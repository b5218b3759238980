//! The slot store: the one seam between the election logic and where slots
//! live. Everything that touches files and flock is behind it, in
//! [`local`]; the rest of the crate sees only obtain, a held slot, status
//! and watch. A store on another engine becomes another variant here.

#[cfg(feature = "etcd")]
pub(crate) mod etcd;
pub(crate) mod local;
pub(crate) mod ownership;
pub(crate) mod safe_open;

use std::path::Path;
use std::time::Duration;

use crate::error::Result;
use crate::interrupt::Interrupter;
use crate::record::HolderRecord;
use crate::status::ResourceStatus;

pub(crate) use local::Request;

/// Where a resource's slots live.
#[derive(Debug, Clone)]
pub(crate) enum Store {
    /// A run directory on this host.
    Local(local::LocalStore),
    /// An etcd cluster.
    #[cfg(feature = "etcd")]
    Etcd(etcd::EtcdStore),
}

/// A slot held in some store.
#[derive(Debug)]
pub(crate) enum Held {
    /// A flock on a slot file.
    Local(local::LocalHeld),
    /// A key on a lease in etcd.
    #[cfg(feature = "etcd")]
    Etcd(etcd::EtcdHeld),
}

/// A watch on one resource in some store.
pub(crate) enum Watch {
    /// inotify on a resource directory.
    Local(local::LocalWatch),
    /// An etcd watch on the resource's slot keys.
    #[cfg(feature = "etcd")]
    Etcd(etcd::EtcdWatch),
}

impl Store {
    /// A store in the run directory `dir`.
    pub(crate) fn local(dir: std::path::PathBuf, mode: u32) -> Self {
        Store::Local(local::LocalStore::new(dir, mode))
    }

    /// A store in an etcd cluster.
    #[cfg(feature = "etcd")]
    pub(crate) fn etcd(cfg: etcd::Etcd) -> Self {
        Store::Etcd(etcd::EtcdStore::new(cfg))
    }

    /// The etcd cluster of the store, if it is one.
    #[cfg(feature = "etcd")]
    pub(crate) fn etcd_config(&self) -> Option<&etcd::Etcd> {
        match self {
            Store::Etcd(s) => Some(s.config()),
            Store::Local(_) => None,
        }
    }

    /// Where the store lives, for messages and the environment.
    pub(crate) fn location(&self) -> &Path {
        match self {
            Store::Local(s) => s.run_dir(),
            #[cfg(feature = "etcd")]
            Store::Etcd(s) => s.location(),
        }
    }

    /// Obtains a slot; see [`local::LocalStore::obtain`].
    pub(crate) fn obtain(
        &self,
        req: &Request,
        wait: bool,
        intr: &Interrupter,
    ) -> Result<Option<Held>> {
        match self {
            Store::Local(s) => Ok(s.obtain(req, wait, intr)?.map(Held::Local)),
            #[cfg(feature = "etcd")]
            Store::Etcd(s) => Ok(s.obtain(req, wait, intr)?.map(Held::Etcd)),
        }
    }

    /// Status of one resource or all.
    pub(crate) fn status(&self, name: Option<&str>) -> Result<Vec<ResourceStatus>> {
        match self {
            Store::Local(s) => s.status(name),
            #[cfg(feature = "etcd")]
            Store::Etcd(s) => s.status(name),
        }
    }

    /// Starts watching one resource.
    pub(crate) fn watch(&self, name: &str) -> Result<Watch> {
        match self {
            Store::Local(s) => Ok(Watch::Local(s.watch(name)?)),
            #[cfg(feature = "etcd")]
            Store::Etcd(s) => Ok(Watch::Etcd(s.watch(name)?)),
        }
    }
}

impl Held {
    pub(crate) fn slot(&self) -> u32 {
        match self {
            Held::Local(h) => h.slot(),
            #[cfg(feature = "etcd")]
            Held::Etcd(h) => h.slot(),
        }
    }

    pub(crate) fn token(&self) -> u64 {
        match self {
            Held::Local(h) => h.token(),
            #[cfg(feature = "etcd")]
            Held::Etcd(h) => h.token(),
        }
    }

    pub(crate) fn is_intact(&self) -> bool {
        match self {
            Held::Local(h) => h.is_intact(),
            #[cfg(feature = "etcd")]
            Held::Etcd(h) => h.is_intact(),
        }
    }

    pub(crate) fn record(&self) -> &HolderRecord {
        match self {
            Held::Local(h) => h.record(),
            #[cfg(feature = "etcd")]
            Held::Etcd(h) => h.record(),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        match self {
            Held::Local(h) => h.path(),
            #[cfg(feature = "etcd")]
            Held::Etcd(h) => h.path(),
        }
    }

    pub(crate) fn set_command_pid(&mut self, pid: u32) -> Result<()> {
        match self {
            Held::Local(h) => h.set_command_pid(pid),
            #[cfg(feature = "etcd")]
            Held::Etcd(h) => h.set_command_pid(pid),
        }
    }

    pub(crate) fn set_inherited(&mut self) {
        match self {
            Held::Local(h) => h.set_inherited(),
            #[cfg(feature = "etcd")]
            Held::Etcd(_) => {}
        }
    }

    /// By when work under this ticket must stop, if the store has such a
    /// limit (an etcd lease that can no longer be renewed).
    pub(crate) fn deadline(&self) -> Option<std::time::Instant> {
        match self {
            Held::Local(_) => None,
            #[cfg(feature = "etcd")]
            Held::Etcd(h) => Some(h.deadline()),
        }
    }

    pub(crate) fn descriptors(&self) -> Vec<std::os::fd::RawFd> {
        match self {
            Held::Local(h) => h.descriptors().to_vec(),
            #[cfg(feature = "etcd")]
            Held::Etcd(_) => Vec::new(),
        }
    }
}

impl Watch {
    /// The resource's state now, taking no lock.
    pub(crate) fn snapshot(&self) -> Result<ResourceStatus> {
        match self {
            Watch::Local(w) => w.snapshot(),
            #[cfg(feature = "etcd")]
            Watch::Etcd(w) => Ok(w.snapshot()),
        }
    }

    pub(crate) fn last_token(&self) -> u64 {
        match self {
            Watch::Local(w) => w.last_token(),
            #[cfg(feature = "etcd")]
            Watch::Etcd(w) => w.last_token(),
        }
    }

    pub(crate) fn wait(&mut self, intr: &Interrupter, timeout: Duration) -> Result<bool> {
        match self {
            Watch::Local(w) => w.wait(intr, timeout),
            #[cfg(feature = "etcd")]
            Watch::Etcd(w) => w.wait(intr, timeout),
        }
    }
}
