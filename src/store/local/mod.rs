//! The single-host slot store: a resource is a directory of slot files, and
//! holding slot `i` is holding an exclusive flock(2) on `slot.<i>`.
//!
//! One module per idea:
//!
//! * opening safely is `safe_open` and `ownership` (shared with nothing else);
//! * [`agree`]: agreeing on N, and being a live participant;
//! * [`wait`]: the line waiters stand in, and how they sleep;
//! * [`slot`]: trying the slots, the holder's record, and the release;
//! * [`token`]: the fencing-token counter;
//! * [`status`]: looking without touching (`status`, `watch`).
//!
//! Beside the slots live `tickets` (the agreed number), `token` (the
//! counter) and the directory `line/` (the waiters' places). Nothing is
//! mapped into memory, nothing blocks in the kernel on a lock, and no
//! signal or thread is needed: every lock is tried, and a waiter sleeps in
//! `poll` on inotify and its interrupter's pipe.

mod agree;
mod slot;
mod status;
pub(crate) mod token;
mod wait;

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::ownership::Sharing;
use super::safe_open;
use crate::error::{Error, Result};
use crate::interrupt::{Interrupter, Reason};
use crate::sys::{self, FileId};

pub(crate) use agree::Joined;
pub(crate) use slot::LocalHeld;
pub(crate) use status::LocalWatch;

/// The agreed number of tickets, and the mutex for agreeing on it.
const TICKETS_FILE: &str = "tickets";

/// How many times in a row an obtain may find its directory or slot file
/// changed under it before it gives up: only something that keeps removing
/// the directory (which is then an error worth reporting) gets there.
const MAX_RESTARTS: u32 = 1000;

/// The longest path the kernel takes in one system call: a run directory
/// whose slot paths would be longer is refused up front, not found out
/// part-way.
const PATH_MAX: usize = libc::PATH_MAX as usize;

/// The file name of slot `i`.
pub(crate) fn slot_name(i: u32) -> String {
    format!("slot.{i}")
}

/// Parses the `tickets` file: a number from 1 to 4096 and a newline.
pub(crate) fn parse_tickets(bytes: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(bytes).ok()?;
    let n: u32 = text.trim_end_matches('\n').parse().ok()?;
    (1..=crate::election::MAX_TICKETS).contains(&n).then_some(n)
}

/// How many bytes of the `tickets` file are read: enough for any number
/// elect writes, and to tell a hole from text.
pub(crate) const TICKETS_READ: usize = 32;

/// Parses the `tickets` file from the first [`TICKETS_READ`] bytes of it,
/// `prefix`, and its length, `len` (asked only when needed): the text
/// [`parse_tickets`] reads, or the form written on a full file system,
/// where not even those few bytes could be written: a file of nothing but
/// a hole (which takes no space, and reads as NUL bytes) whose length is
/// the number (see `agree::record_tickets`).
pub(crate) fn parse_tickets_file(prefix: &[u8], len: impl FnOnce() -> Option<u64>) -> Option<u32> {
    if !prefix.is_empty() && prefix.iter().all(|&b| b == 0) {
        let n = u32::try_from(len()?).ok()?;
        return (1..=crate::election::MAX_TICKETS).contains(&n).then_some(n);
    }
    parse_tickets(prefix)
}

/// What a participant asks for.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) name: String,
    pub(crate) tickets: u32,
    /// Already cleaned (see `record::clean_label`).
    pub(crate) label: String,
}

/// A run directory on this host.
#[derive(Debug, Clone)]
pub(crate) struct LocalStore {
    run_dir: PathBuf,
    dir_mode: u32,
    /// This process's membership of the resource last obtained through
    /// this store (and its clones): the election is a live participant
    /// from its first obtain until it and its tickets are gone.
    joined: Arc<Mutex<Option<Arc<Joined>>>>,
}

/// An open, checked resource directory.
#[derive(Debug)]
pub(crate) struct ResourceDir {
    fd: OwnedFd,
    path: PathBuf,
    id: FileId,
}

impl ResourceDir {
    /// Whether the directory is still the one at its path.
    fn is_at_path(&self) -> bool {
        sys::look_at(None, &self.path).is_ok_and(|look| look.id == self.id)
    }
}

impl LocalStore {
    /// A store in `run_dir`; directories it creates get `dir_mode`.
    pub(crate) fn new(run_dir: PathBuf, dir_mode: u32) -> Self {
        LocalStore {
            run_dir,
            dir_mode,
            joined: Arc::default(),
        }
    }

    /// The run directory.
    pub(crate) fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// What this store trusts besides the caller's own private files.
    fn sharing(&self) -> Sharing {
        Sharing::of_mode(self.dir_mode)
    }

    /// The mode of the files this store makes, which also tells `safe_open` whom
    /// it trusts (see `Sharing::of_mode`).
    fn file_mode(&self) -> u32 {
        self.sharing().file_mode()
    }

    /// Refuses a run directory whose slot paths could not be named in one
    /// system call: checking that a held slot is still at its path would
    /// fail on every look.
    fn check_path_length(&self) -> Result<()> {
        // The longest slot name: "slot." and the digits of the last slot.
        const LONGEST_SLOT_NAME: usize =
            "slot.".len() + (crate::election::MAX_TICKETS - 1).ilog10() as usize + 1;
        let longest =
            self.run_dir.as_os_str().len() + 1 + crate::name::MAX_NAME_LEN + 1 + LONGEST_SLOT_NAME;
        if longest >= PATH_MAX {
            return Err(Error::unsafe_path(
                &self.run_dir,
                format!(
                    "the path is {} bytes long, and with a resource name and slot file inside it would pass the system's limit of {PATH_MAX} bytes; choose a shorter run directory (--dir or ELECT_DIR)",
                    self.run_dir.as_os_str().len()
                ),
            ));
        }
        Ok(())
    }

    fn open_run_dir(&self, create: bool) -> Result<Option<OwnedFd>> {
        Ok(safe_open::open_run_dir(&self.run_dir, create, self.sharing())?.map(|(fd, _)| fd))
    }

    fn open_resource(
        &self,
        run: &OwnedFd,
        name: &str,
        create: bool,
    ) -> Result<Option<ResourceDir>> {
        let path = self.run_dir.join(name);
        let Some((fd, st)) =
            safe_open::open_dir(run.as_fd(), Path::new(name), &path, create, self.sharing())?
        else {
            return Ok(None);
        };
        Ok(Some(ResourceDir {
            fd,
            path,
            id: FileId::of(&st),
        }))
    }

    /// Obtains a slot: tries every slot, then, if `wait`, waits in line
    /// until one is free or `intr` says stop. `Ok(None)`: none free without
    /// waiting, or the deadline passed.
    pub(crate) fn obtain(
        &self,
        req: &Request,
        wait: bool,
        intr: &Interrupter,
    ) -> Result<Option<LocalHeld>> {
        self.check_path_length()?;
        let mut restarts = 0;
        loop {
            let result = self.attempt(req, wait, intr);
            match result {
                Ok(Some(outcome)) => return Ok(outcome),
                Err(Error::Cancelled) if intr.reason() == Some(Reason::TimedOut) => {
                    return Ok(None);
                }
                Err(Error::Cancelled) => return Err(Error::Cancelled),
                // A directory removed under us (a /tmp cleaner, an
                // operator) makes opens fail part-way: start again on the
                // new one.
                Err(Error::Io { ref source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound && restarts < MAX_RESTARTS => {
                }
                Err(e) => return Err(e),
                Ok(None) if restarts < MAX_RESTARTS => {}
                Ok(None) => {
                    return Err(Error::io(
                        "the run directory keeps changing under elect at",
                        &self.run_dir,
                        std::io::Error::from(std::io::ErrorKind::Interrupted),
                    ));
                }
            }
            restarts += 1;
            self.forget();
            // From the second restart on, a short pause: something keeps
            // changing the directory, and a spin would not help it settle.
            if restarts > 1 && intr.pause(Duration::from_millis(1)).is_err() {
                return if intr.reason() == Some(Reason::TimedOut) {
                    Ok(None)
                } else {
                    Err(Error::Cancelled)
                };
            }
        }
    }

    /// One try at obtaining. `Ok(None)`: something changed under it, start
    /// again; `Ok(Some(None))`: nothing free (not waiting).
    fn attempt(
        &self,
        req: &Request,
        wait: bool,
        intr: &Interrupter,
    ) -> Result<Option<Option<LocalHeld>>> {
        let joined = self.join(req, intr)?;
        let mode = self.file_mode();
        // A newcomer, or a try, takes a free slot without joining the line
        // only when no running waiter stands in it: nobody overtakes those
        // who came first.
        let (nobody, seen) = wait::nobody_waits(&joined.res, self.sharing(), wait)?;
        if nobody {
            match slot::try_slots(&joined, req.tickets, 0, mode)? {
                slot::Tried::Got { slot, lock, id } => {
                    return Ok(slot::finish(
                        &joined,
                        req,
                        (slot, lock, id),
                        mode,
                        intr,
                        &mut None,
                    )?
                    .map(Some));
                }
                slot::Tried::Changed => return Ok(None),
                slot::Tried::None => {}
            }
        }
        if !wait {
            return Ok(Some(None));
        }
        match wait::wait(&joined, req, self.sharing(), intr, seen)? {
            wait::Waited::Got(held) => Ok(Some(Some(held))),
            wait::Waited::Restart => Ok(None),
        }
    }

    /// This process's membership of `req`'s resource: kept from an earlier
    /// obtain if it is still good (same process, same directory at its
    /// path), else joined anew.
    fn join(&self, req: &Request, intr: &Interrupter) -> Result<Arc<Joined>> {
        let pid = std::process::id();
        // try_lock: the mutex may have been held by another thread at a
        // fork, and a fork child must never wait for it.
        if let Ok(kept) = self.joined.try_lock()
            && let Some(j) = kept.as_ref()
            && j.pid == pid
            && j.tickets == req.tickets
            && j.res.is_at_path()
        {
            return Ok(Arc::clone(j));
        }
        let run = self.open_run_dir(true)?.expect("created");
        let res = self.open_resource(&run, &req.name, true)?.expect("created");
        let joined = Arc::new(agree::join(
            res,
            &req.name,
            req.tickets,
            self.file_mode(),
            intr,
        )?);
        if let Ok(mut kept) = self.joined.try_lock() {
            *kept = Some(Arc::clone(&joined));
        }
        Ok(joined)
    }

    /// Forgets the kept membership (its directory changed).
    fn forget(&self) {
        if let Ok(mut kept) = self.joined.try_lock() {
            *kept = None;
        }
    }
}
