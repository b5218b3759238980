//! What `status` reports: for each resource, each slot, whether the kernel
//! says it is held and, if so, the holder's own record.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::Result;
use crate::record::HolderRecord;
use crate::store::Store;

/// The status of a run directory: every resource in it, or the one asked
/// for. Serializes to the contract's JSON.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let st = elect::status(Some(dir.path()), Some("never-used"))?;
/// assert!(st.resources.is_empty());
/// assert!(serde_json::to_string(&st)?.contains("\"resources\":[]"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Status {
    /// The run directory, absolute.
    #[serde(serialize_with = "lossy_path")]
    pub dir: PathBuf,
    /// One entry per resource, by name.
    pub resources: Vec<ResourceStatus>,
}

/// The status of one resource.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let e = elect::Election::builder("job").tickets(2).dir(dir.path()).build()?;
/// let t = e.try_obtain()?.unwrap();
/// let st = e.status()?;
/// assert_eq!((st.tickets, st.slots.len()), (2, 2));
/// assert!(st.slots[t.slot() as usize].held);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResourceStatus {
    /// The resource name.
    pub name: String,
    /// The number of tickets of the live participants, or of the last use
    /// when none is live.
    pub tickets: u32,
    /// One entry per slot, in order.
    pub slots: Vec<SlotStatus>,
    /// The processes waiting in line for a ticket, in the order they
    /// arrived, as the kernel's list of locks shows them (a waiter holds a
    /// lock on its place in `DIR/NAME/line/`). `None` where that cannot be
    /// seen (a resource on etcd).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiters: Option<Vec<u32>>,
}

/// The status of one slot.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// let e = elect::Election::builder("x").dir(dir.path()).build()?;
/// let t = e.obtain()?;
/// let slot = &e.status()?.slots[0];
/// assert!(slot.held);
/// assert_eq!(slot.holder.as_ref().map(|h| h.token), Some(t.token()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct SlotStatus {
    /// The slot number, 0-based.
    pub slot: u32,
    /// Whether a process holds the slot's lock, as the kernel's list of
    /// locks (`/proc/locks`) says now.
    pub held: bool,
    /// The holder's record, when the slot is held and the record is
    /// readable and current. Never used to decide `held`. A record is not
    /// current when the kernel says that the lock was taken by another
    /// process than the one the record names, and that process does not
    /// hold it either: the record is then a former holder's, and the slot
    /// is held by a process outside elect (say, `flock(1)`).
    #[serde(flatten)]
    pub holder: Option<HolderRecord>,
    /// For a held slot, the process that holds its lock now, as the kernel
    /// shows it: the one `/proc/locks` names (the process that took the
    /// lock) while it lives, else a live process that inherited the
    /// descriptor, found in `/proc/PID/fdinfo` (the command of an
    /// `elect run` that was killed with SIGKILL), else the one
    /// `/proc/locks` names. `None` for a free slot, on etcd, and where the
    /// kernel names no process (another PID namespace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_pid: Option<u32>,
    /// For a held slot with a record: whether the record's `pid` is still
    /// running. `false` means that the process that took the ticket has
    /// exited while the slot is still held, by a process that inherited it
    /// ([`lock_pid`](Self::lock_pid) names it). `None` otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid_alive: Option<bool>,
}

fn lossy_path<S: serde::Serializer>(p: &Path, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&p.to_string_lossy())
}

/// Reads the status of the run directory `dir` (or the default one, as
/// [`ElectionBuilder::dir`](crate::ElectionBuilder::dir) chooses it): one
/// resource if `name` is given, else every
/// resource in it. A run directory or name never used gives an empty list.
/// Asking never takes a ticket, nor any lock: which slots are held comes
/// from the kernel's list of locks, `/proc/locks`. Where that list cannot be
/// read (a mount namespace that hides /proc, or a system other than Linux)
/// this is an [`Error::Io`](crate::Error::Io) naming `/proc/locks`, not a
/// guess.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let e = elect::Election::builder("a").dir(dir.path()).build()?;
/// let _t = e.try_obtain()?.unwrap();
/// let st = elect::status(Some(dir.path()), None)?;
/// assert_eq!(st.resources[0].name, "a");
/// assert!(st.resources[0].slots[0].held);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn status(dir: Option<&Path>, name: Option<&str>) -> Result<Status> {
    status_in(dir, name, crate::election::DEFAULT_MODE)
}

/// [`status`] of a run directory shared with the caller's group (see
/// [`ElectionBuilder::group_shared`](crate::ElectionBuilder::group_shared)):
/// directories and files of other members of the caller's groups are read
/// too, where [`status`] refuses them.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let e = elect::Election::builder("a").dir(dir.path()).group_shared().build()?;
/// let _t = e.try_obtain()?.unwrap();
/// assert!(elect::status_group_shared(Some(dir.path()), Some("a"))?.resources[0].slots[0].held);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn status_group_shared(dir: Option<&Path>, name: Option<&str>) -> Result<Status> {
    status_in(dir, name, crate::election::SHARED_MODE)
}

fn status_in(dir: Option<&Path>, name: Option<&str>, mode: u32) -> Result<Status> {
    if let Some(n) = name {
        crate::name::validate_name(n)?;
    }
    let dir = crate::rundir::run_dir(dir)?;
    let store = Store::local(dir.clone(), mode);
    Ok(Status {
        resources: store.status(name)?,
        dir,
    })
}
