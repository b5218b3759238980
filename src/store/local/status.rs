//! Looking without touching: `status` and `watch` read the slot files'
//! records and the kernel's list of locks (`/proc/locks`), and take no lock
//! on anything, so asking never makes another process miss a ticket.

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use super::{
    LocalStore, ResourceDir, TICKETS_FILE, TICKETS_READ, parse_tickets_file, slot_name, token, wait,
};
use crate::error::{Error, Result};
use crate::interrupt::{Interrupter, Woken};
use crate::record::HolderRecord;
use crate::status::{ResourceStatus, SlotStatus};
use crate::store::safe_open;
use crate::sys::events::*;
use crate::sys::{self, FileId, Inotify};

/// `status` reads a run directory with one thread per CPU, up to this many,
/// once there are this many names for each.
const STATUS_THREADS_MAX: usize = 8;
/// See [`STATUS_THREADS_MAX`].
const STATUS_NAMES_PER_THREAD: usize = 256;

/// How often a watcher without inotify looks.
const POLL: Duration = Duration::from_millis(50);

/// What a watcher wakes for: releases (a record descriptor closed), records
/// written, slot files made, and the directory going away.
const WATCH_EVENTS: u32 = IN_CLOSE_WRITE
    | IN_MODIFY
    | IN_CREATE
    | IN_MOVED_TO
    | IN_ATTRIB
    | IN_DELETE_SELF
    | IN_MOVE_SELF;

impl LocalStore {
    /// The status of the named resource, or of every resource. A run
    /// directory or resource that does not exist yet is an empty list.
    pub(crate) fn status(&self, name: Option<&str>) -> Result<Vec<ResourceStatus>> {
        self.check_path_length()?;
        let Some(run) = self.open_run_dir(false)? else {
            return Ok(Vec::new());
        };
        let names = match name {
            // A name never used needs no list of locks to be reported.
            Some(n) => match sys::look_at(Some(run.as_fd()), Path::new(n)) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                _ => vec![n.to_string()],
            },
            None => {
                let mut names = Vec::new();
                let entries = std::fs::read_dir(self.run_dir())
                    .map_err(|e| Error::io("cannot list", self.run_dir(), e))?;
                for entry in entries {
                    let entry = entry.map_err(|e| Error::io("cannot list", self.run_dir(), e))?;
                    if let Some(n) = entry.file_name().to_str()
                        && crate::name::validate_name(n).is_ok()
                        && entry.file_type().is_ok_and(|t| t.is_dir())
                    {
                        names.push(n.to_string());
                    }
                }
                names.sort();
                names
            }
        };
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let locked = kernel_locks()?;
        let read_part = |part: &[String]| -> Result<Vec<ResourceStatus>> {
            let mut out = Vec::with_capacity(part.len());
            for n in part {
                if let Some(res) = self.open_resource(&run, n, false)? {
                    out.push(resource_status(&res, n, &locked, false));
                }
            }
            Ok(out)
        };
        // A resource costs 7 to 10 system calls and nothing else, so a
        // large run directory is read by one thread per CPU, each taking a
        // run of names; the parts are joined in order. The threads are
        // scoped: none outlives the call.
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(names.len() / STATUS_NAMES_PER_THREAD)
            .clamp(1, STATUS_THREADS_MAX);
        if threads == 1 {
            return read_part(&names);
        }
        let per_thread = names.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let parts: Vec<_> = names
                .chunks(per_thread)
                .map(|part| {
                    // No thread to be had (a process or memory limit): this
                    // thread reads the part itself.
                    std::thread::Builder::new()
                        .name("elect-status".into())
                        .spawn_scoped(scope, move || read_part(part))
                        .map_err(|_| read_part(part))
                })
                .collect();
            let mut out = Vec::with_capacity(names.len());
            for part in parts {
                let part = match part {
                    // A panic in a part is a bug; it goes on in this thread.
                    Ok(t) => t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
                    Err(read_here) => read_here,
                };
                out.extend(part?);
            }
            Ok(out)
        })
    }

    /// Opens (creating if need be) the resource directory for watching, and
    /// a watch on it. Watching does not join: it takes no lock. Where the
    /// kernel's list of locks cannot be read, it fails before creating
    /// anything (see [`kernel_locks`]).
    pub(crate) fn watch(&self, name: &str) -> Result<LocalWatch> {
        self.check_path_length()?;
        kernel_locks()?;
        let run = self.open_run_dir(true)?.expect("created");
        let res = self.open_resource(&run, name, true)?.expect("created");
        let inotify = Inotify::new().ok();
        let watching = inotify
            .as_ref()
            .is_some_and(|ino| ino.add(res.fd.as_fd(), None, WATCH_EVENTS).is_ok());
        Ok(LocalWatch {
            store: self.clone(),
            name: name.to_string(),
            res,
            inotify: inotify.filter(|_| watching),
        })
    }
}

/// Reads one resource's slots, taking no lock: a slot is held when the
/// kernel's list of locked files, `locked` (see [`kernel_locks`]), has it.
/// With `every_record`, the record of a free slot (its last holder's) is
/// read too, for a watcher that must notice a holder that came and went
/// between two looks; without it (for `status`), a held slot's record is
/// checked against the kernel's list, and the slot gets the pid that holds
/// its lock now, and the resource its waiters.
fn resource_status(
    res: &ResourceDir,
    name: &str,
    locked: &HashMap<FileId, u32>,
    every_record: bool,
) -> ResourceStatus {
    let recorded = tickets_to_show(res);
    let tickets = recorded.unwrap_or_else(|| count_slots(&res.path));
    let mut slots = Vec::with_capacity(tickets as usize);
    for i in 0..tickets {
        let name_i = slot_name(i);
        let lock = match sys::look_at(Some(res.fd.as_fd()), Path::new(&name_i)) {
            Ok(look) if look.mode & libc::S_IFMT == libc::S_IFREG => {
                locked.get(&look.id).map(|&pid| (look.id, pid))
            }
            _ => None,
        };
        let held = lock.is_some();
        let holder = if held || every_record {
            safe_open::read_to_show(res.fd.as_fd(), &name_i, crate::record::MAX_RECORD + 1)
                .ok()
                .and_then(|b| HolderRecord::parse(&b))
        } else {
            None
        };
        let mut slot = SlotStatus {
            slot: i,
            held,
            holder,
            lock_pid: None,
            pid_alive: None,
        };
        if let Some((id, pid)) = lock
            && !every_record
        {
            check_holder(&mut slot, id, pid);
        }
        slots.push(slot);
    }
    ResourceStatus {
        name: name.to_string(),
        tickets,
        slots,
        waiters: (!every_record).then(|| wait::waiters(res, locked)),
    }
}

/// Checks a held slot's record against what the kernel says of its lock
/// (the file `id`, whose lock `/proc/locks` says process `locker` took),
/// and names the process that holds the lock now.
///
/// The record is a former holder's, and is dropped, when neither its pid
/// took the lock nor its pid or command holds the locked descriptor: the
/// slot is held by something outside elect (`flock(1)`, say), over the
/// record of the last elect holder. The record's pid has exited while the
/// slot is held when a process that inherited the descriptor holds it (the
/// command of an `elect run` killed with SIGKILL, or a fork child).
fn check_holder(slot: &mut SlotStatus, id: FileId, locker: u32) {
    // 0: the kernel cannot name it here (another PID namespace).
    let locker = (locker != 0).then_some(locker);
    let locker_alive = locker.is_some_and(|p| !sys::process_gone(p));
    let candidates: Vec<u32> = slot
        .holder
        .iter()
        .flat_map(|h| h.command_pid.into_iter().chain([h.pid]))
        .collect();
    // Looked for once, and only when needed: reading descriptors costs.
    let mut holding: Option<Option<u32>> = None;
    let mut candidate_holding = || {
        *holding.get_or_insert_with(|| {
            candidates
                .iter()
                .copied()
                .find(|&p| !sys::process_gone(p) && sys::holds_lock(p, id))
        })
    };
    if let (Some(h), Some(l)) = (&slot.holder, locker)
        && !sys::same_process(l, h.pid)
        && candidate_holding().is_none()
    {
        slot.holder = None;
    }
    slot.lock_pid = match locker {
        Some(l) if locker_alive => Some(l),
        _ => candidate_holding()
            .or_else(|| sys::lock_holder(id))
            .or(locker),
    };
    slot.pid_alive = slot.holder.as_ref().map(|h| match locker {
        Some(l) if sys::same_process(l, h.pid) => locker_alive,
        _ => !sys::process_gone(h.pid),
    });
}

/// The number of tickets the `tickets` file of `res` holds, read to show
/// it (see `parse_tickets_file`): its length is asked only of a file that
/// reads as NUL bytes.
fn tickets_to_show(res: &ResourceDir) -> Option<u32> {
    let fd = safe_open::open_to_show(res.fd.as_fd(), TICKETS_FILE).ok()?;
    let mut buf = [0u8; TICKETS_READ];
    let prefix = safe_open::read_into(fd.as_fd(), &mut buf).ok()?;
    parse_tickets_file(prefix, || {
        safe_open::fstat(fd.as_fd())
            .ok()
            .filter(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG)
            .map(|st| st.st_size as u64)
    })
}

/// Without a `tickets` file, the number of slots is one past the highest
/// slot file present.
fn count_slots(dir: &Path) -> u32 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_prefix("slot.")?
                .parse::<u32>()
                .ok()
        })
        .filter(|&i| i < crate::election::MAX_TICKETS)
        .map(|i| i + 1)
        .max()
        .unwrap_or(0)
}

/// A watch on one resource directory.
pub(crate) struct LocalWatch {
    store: LocalStore,
    name: String,
    res: ResourceDir,
    /// `None` where the kernel refused one: the watcher then looks every
    /// [`POLL`].
    inotify: Option<Inotify>,
}

impl LocalWatch {
    /// The resource's state now, with the last record of free slots too.
    /// Takes no lock; fails where the kernel's list of locks cannot be read.
    pub(crate) fn snapshot(&self) -> Result<ResourceStatus> {
        let locked = kernel_locks()?;
        Ok(resource_status(&self.res, &self.name, &locked, true))
    }

    /// The last fencing token issued for the resource (0 if none yet).
    pub(crate) fn last_token(&self) -> u64 {
        token::last_issued(&self.res)
    }

    /// Sleeps until something may have changed or `timeout` passes; if the
    /// directory was removed, opens the new one. Returns true when an event
    /// was seen.
    pub(crate) fn wait(&mut self, intr: &Interrupter, timeout: Duration) -> Result<bool> {
        let woken = match &self.inotify {
            Some(ino) => intr.sleep(Some(ino.as_fd()), Some(timeout)),
            None => intr.sleep(None, Some(timeout.min(POLL))),
        }
        .map_err(|e| Error::io("cannot watch", &self.res.path, e))?
        .map_err(|_| Error::Cancelled)?;
        let mut gone = false;
        let mut seen = self.inotify.is_none();
        if woken == Woken::Ready
            && let Some(ino) = &self.inotify
        {
            let events = ino
                .read()
                .map_err(|e| Error::io("cannot watch", &self.res.path, e))?;
            seen = !events.is_empty();
            gone = events.iter().any(|e| {
                e.mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_Q_OVERFLOW) != 0
            });
        }
        if gone || !self.res.is_at_path() {
            *self = self.store.watch(&self.name)?;
            return Ok(true);
        }
        Ok(seen)
    }
}

/// The files on which some process holds an exclusive flock, from the
/// kernel's list (`/proc/locks`): how `status` and `watch` tell a held slot
/// from a free one.
///
/// There is deliberately no fallback that tries a lock to see: even a brief
/// shared lock on a free slot makes a concurrent non-blocking obtain of that
/// slot fail (`elect run -n` exited 75 with a ticket free). Without the list,
/// holders cannot be seen, and that is an error that says so.
fn kernel_locks() -> Result<HashMap<FileId, u32>> {
    sys::locked_files().map_err(locks_unseen)
}

/// The error for a kernel list of locks that cannot be read: names the
/// list, why it is needed, and the fix.
fn locks_unseen(e: std::io::Error) -> Error {
    #[cfg(target_os = "linux")]
    const FIX: &str =
        "mount /proc (e.g. `mount -t proc proc /proc`), or run elect where /proc is mounted";
    #[cfg(not(target_os = "linux"))]
    const FIX: &str = "status and watch of a run directory are available on Linux only";
    let why = format!(
        "{e}; elect needs the kernel's list of locks to tell held slots from free ones \
         without locking them itself (a look that locks could make another process miss a \
         free ticket); {FIX}"
    );
    Error::io(
        "cannot read",
        "/proc/locks",
        std::io::Error::new(e.kind(), why),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_lock_list_is_an_error_naming_it_why_and_the_fix() {
        let err = locks_unseen(std::io::Error::from(std::io::ErrorKind::NotFound));
        let text = err.to_string();
        assert!(text.starts_with("cannot read /proc/locks: "), "{text}");
        assert!(text.contains("without locking them itself"), "{text}");
        #[cfg(target_os = "linux")]
        assert!(text.contains("mount /proc"), "{text}");
        assert!(
            matches!(&err, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
            "{err:?}"
        );
        assert!(!err.is_usage(), "a failure of elect (125), not bad usage");
    }
}
