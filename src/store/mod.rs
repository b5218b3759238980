//! The slot store: the one seam between the election logic and where slots
//! live. Everything that touches files and flock is behind it, in
//! [`local`]; the rest of the crate sees only obtain, a held slot, status
//! and watch. A store on another engine becomes another variant here.

pub(crate) mod fsx;
pub(crate) mod local;
pub(crate) mod token;

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
}

/// A slot held in some store.
#[derive(Debug)]
pub(crate) enum Held {
    /// A flock on a slot file.
    Local(local::LocalHeld),
}

/// A watch on one resource in some store.
pub(crate) enum Watch {
    /// inotify on a resource directory.
    Local(local::LocalWatch),
}

impl Store {
    /// A store in the run directory `dir`.
    pub(crate) fn local(dir: std::path::PathBuf, mode: u32) -> Self {
        Store::Local(local::LocalStore::new(dir, mode))
    }

    /// Where the store lives, for messages and the environment.
    pub(crate) fn location(&self) -> &Path {
        match self {
            Store::Local(s) => s.run_dir(),
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
        }
    }

    /// Status of one resource or all.
    pub(crate) fn status(&self, name: Option<&str>) -> Result<Vec<ResourceStatus>> {
        match self {
            Store::Local(s) => s.status(name),
        }
    }

    /// Starts watching one resource.
    pub(crate) fn watch(&self, name: &str) -> Result<Watch> {
        match self {
            Store::Local(s) => Ok(Watch::Local(s.watch(name)?)),
        }
    }
}

impl Held {
    pub(crate) fn slot(&self) -> u32 {
        match self {
            Held::Local(h) => h.slot(),
        }
    }

    pub(crate) fn token(&self) -> u64 {
        match self {
            Held::Local(h) => h.token(),
        }
    }

    pub(crate) fn is_intact(&self) -> bool {
        match self {
            Held::Local(h) => h.is_intact(),
        }
    }

    pub(crate) fn record(&self) -> &HolderRecord {
        match self {
            Held::Local(h) => h.record(),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        match self {
            Held::Local(h) => h.path(),
        }
    }

    pub(crate) fn set_command_pid(&mut self, pid: u32) -> Result<()> {
        match self {
            Held::Local(h) => h.set_command_pid(pid),
        }
    }

    pub(crate) fn set_inherited(&mut self) {
        match self {
            Held::Local(h) => h.set_inherited(),
        }
    }

    pub(crate) fn descriptors(&self) -> Vec<std::os::fd::RawFd> {
        match self {
            Held::Local(h) => h.descriptors().to_vec(),
        }
    }
}

impl Watch {
    pub(crate) fn snapshot(&self) -> ResourceStatus {
        match self {
            Watch::Local(w) => w.snapshot(),
        }
    }

    pub(crate) fn last_token(&self) -> u64 {
        match self {
            Watch::Local(w) => w.last_token(),
        }
    }

    pub(crate) fn wait(&mut self, intr: &Interrupter, timeout: Duration) -> Result<bool> {
        match self {
            Watch::Local(w) => w.wait(intr, timeout),
        }
    }
}
