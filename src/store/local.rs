//! The single-host slot store: a resource is a directory of slot files, and
//! holding slot `i` is holding an exclusive flock(2) on `slot.<i>`.
//!
//! Beside the slots live four small files: `tickets` (the agreed number of
//! tickets, and the mutex under which participants agree on it), `token`
//! (the fencing-token counter), `queue` (the waiting line) and `watched`
//! (whether anyone listens for releases); with 2 to 8 tickets also the
//! seats (`seat.<i>`) and `waiting` (see `seats`). Every live
//! participant keeps a shared flock on the resource directory itself: that
//! is how others tell whether anyone is live, and it makes systemd-tmpfiles
//! leave the directory alone. A process joins at its first obtain and stays
//! a member while its election or any of its tickets lives, so that its
//! later acquisitions need not agree on N again (four system calls each).
//!
//! How waiting works, and why:
//!
//! * With one ticket, waiters block in `flock(slot.0, LOCK_EX)`. The kernel
//!   hands the lock to one waiter at a time, in arrival order, the instant
//!   the holder closes it or dies. Nothing is faster or cheaper.
//! * With more tickets no single lock can be waited on, so waiters line up
//!   in `flock(queue, LOCK_EX)`, and only the head of the line watches the
//!   directory with inotify for a slot file being released. A release wakes
//!   one process, not every waiter: no thundering herd. When the head gets a
//!   slot it closes `queue`, and the kernel wakes the next in line.
//! * With 2 to 8 tickets, a head with someone behind it (a shared lock on
//!   `waiting`) takes an empty seat (`seat.<i>`) and leaves the line to
//!   sleep in the kernel's own queue of `slot.<i>`, as with one ticket; a
//!   helper thread watches the other slots for it (see `seats`).
//! * A holder keeps two descriptors on its slot: the lock is on a read-only
//!   one, and the record is written through a write-only one. Releasing
//!   unlocks, then, if the head of a line or a watcher listens (see
//!   `watched`), touches the file's times through the record descriptor
//!   (an IN_ATTRIB event, after the lock is gone); both descriptors are kept
//!   for this process's next acquisition, which then opens nothing. A
//!   holder that dies wakes the head by the close of its record descriptor
//!   (IN_CLOSE_WRITE). Probing a slot uses read-only descriptors, whose
//!   closing wakes nobody.
//! * The inotify close event is queued before the kernel drops the closed
//!   file's lock, so a head that finds every slot still locked after an
//!   event tries again after 0.1, 0.5, 2, 10 and 50 ms, and once a second
//!   while idle, which also covers anything inotify cannot see.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use super::fsx::{self, Access};
use super::ownership::Sharing;
use super::record_page::RecordPage;
use super::seats::{SEATS_MAX, Seats};
use super::token;
use super::watched::Watched;
use crate::error::{Error, Result};
use crate::interrupt::{Interrupter, Reason};
use crate::record::{HolderRecord, RECORD_LEN};
use crate::status::{ResourceStatus, SlotStatus};
use crate::sys::{self, DirWatch, FileId};
use std::os::fd::BorrowedFd;

/// The agreed number of tickets, and the mutex for agreeing on it.
const TICKETS_FILE: &str = "tickets";
/// The line that waiters for a resource with several tickets stand in.
pub(super) const QUEUE_FILE: &str = "queue";
/// The key of a kept `queue` descriptor in `Opened::lines`.
const LINE_QUEUE: u32 = 0;
/// The key of a kept `waiting` descriptor in `Opened::lines`.
const LINE_WAITING: u32 = 1;
/// How long the head of the line sleeps before looking again, after an event
/// that did not yield a slot; the last step is the idle safety net.
pub(super) const RETRY: [Duration; 6] = [
    Duration::from_micros(100),
    Duration::from_micros(500),
    Duration::from_millis(2),
    Duration::from_millis(10),
    Duration::from_millis(50),
    Duration::from_secs(1),
];
/// How often a watcher that cannot say it listens (see `watched`) looks on
/// its own.
const UNHEARD_LOOK: Duration = Duration::from_millis(50);
/// The head keeps at most this many slot descriptors open between probes.
const PROBE_CACHE: usize = 256;

/// The file name of slot `i`.
pub(crate) fn slot_name(i: u32) -> String {
    format!("slot.{i}")
}

/// A slot file's name and absolute path, made once per resource and slot:
/// every acquisition needs both between the hand-off and the ticket, where
/// building them (a format, a join and a C string) cost 0.7 µs. And its
/// first page, once a wait for the slot mapped it (see `record_page`).
#[derive(Debug)]
struct SlotPath {
    name: String,
    path: PathBuf,
    /// `path` for the system call; `None` if it holds a NUL byte, and
    /// then it names no file.
    c_path: Option<CString>,
    page: RecordPage,
}

impl SlotPath {
    fn new(dir: &Path, slot: u32) -> SlotPath {
        let name = slot_name(slot);
        let path = dir.join(&name);
        let c_path = CString::new(path.as_os_str().as_bytes()).ok();
        SlotPath {
            name,
            path,
            c_path,
            page: RecordPage::default(),
        }
    }

    /// What is at the path now (see `sys::look_at`).
    fn look(&self) -> std::io::Result<sys::Look> {
        match &self.c_path {
            Some(c) => sys::look_at_c(None, c),
            None => Err(std::io::ErrorKind::InvalidInput.into()),
        }
    }

    /// Whether the file `id` is still the one at the path.
    fn is(&self, id: FileId) -> bool {
        self.look().is_ok_and(|look| look.id == id)
    }
}

/// A run directory on this host.
#[derive(Debug, Clone)]
pub(crate) struct LocalStore {
    run_dir: PathBuf,
    dir_mode: u32,
    /// The resource last obtained through this store (and its clones), kept
    /// open so that the next obtain costs one `stat` to revalidate instead of
    /// opening and checking the directories again.
    cache: Arc<Mutex<Option<Arc<Opened>>>>,
}

/// A resource directory opened and checked, with its small files.
#[derive(Debug)]
struct Opened {
    name: String,
    res: ResourceDir,
    /// `tickets`: the agreed number, and the mutex for agreeing on it.
    tickets: OwnedFd,
    /// `token`: the fencing-token counter.
    token: token::Counter,
    /// `watched`: whether a release must make an event for anyone; `None`
    /// when this process cannot tell (then it always does). Shared with
    /// the seats' helper, which listens too.
    watched: Option<Arc<Watched>>,
    /// The seats of a resource of 2 to `SEATS_MAX` tickets (see
    /// `seats`), once this process used it with that many; `None` inside
    /// when it has none.
    seats: OnceLock<Option<Seats>>,
    /// flock is per open file description, so threads sharing `tickets`
    /// would not exclude each other: they take this too.
    in_process: Mutex<()>,
    /// The inotify watch of the last head of the line in this process, kept
    /// for the next: closing an inotify descriptor waits for an RCU grace
    /// period (milliseconds), which must not stand between a waiter and its
    /// ticket, nor hold up the next in line.
    watch: Mutex<Option<DirWatch>>,
    /// Read-only slot descriptors this process opened and does not hold a
    /// lock through, for the next probe: opening and checking a slot file
    /// costs three system calls. A descriptor is taken out while it is used,
    /// so that two threads never lock through the same open file
    /// description (flock would let both have it).
    locks: SlotPool,
    /// Write-only slot descriptors of released tickets, for the next
    /// holder's record.
    records: SlotPool,
    /// Descriptors of `queue` (key [`LINE_QUEUE`]) and `waiting`
    /// ([`LINE_WAITING`]) for the next wait: opening and checking one costs
    /// three system calls.
    lines: SlotPool,
    /// This process's membership of the live participants, once it joined:
    /// kept for the next obtain, which then need not agree on N again.
    member: Mutex<Option<Arc<Membership>>>,
    /// The [`sys::fork_generation`] that opened all this: a fork child
    /// shares these open file descriptions with its parent and must open
    /// its own.
    generation: u64,
    /// Each slot's name, path and record page, made at its first use.
    paths: Mutex<Vec<Option<Arc<SlotPath>>>>,
}

impl Opened {
    /// Leaves the line: unlocks `queue` (the kernel wakes the next in line)
    /// and keeps the descriptor for the next wait.
    fn leave_line(&self, (fd, id): Line) {
        unlock(fd.as_fd());
        self.lines.put(LINE_QUEUE, fd, id);
    }

    /// Slot `slot`'s name and path.
    fn slot_path(&self, slot: u32) -> Arc<SlotPath> {
        let mut paths = self.paths.lock().unwrap_or_else(|p| p.into_inner());
        let i = slot as usize;
        if paths.len() <= i {
            paths.resize(i + 1, None);
        }
        Arc::clone(paths[i].get_or_insert_with(|| Arc::new(SlotPath::new(&self.res.path, slot))))
    }

    /// Whether someone sits on slot `slot`'s seat (see `seats`).
    fn seat_taken(&self, slot: u32) -> bool {
        self.seats
            .get()
            .and_then(Option::as_ref)
            .is_some_and(|s| s.taken(slot))
    }
}

/// Descriptors of slot files kept for reuse, at most one per slot, by the
/// process of fork generation `generation`.
#[derive(Debug)]
struct SlotPool {
    generation: u64,
    kept: Mutex<Vec<(u32, OwnedFd, FileId)>>,
}

impl SlotPool {
    fn new(generation: u64) -> Self {
        SlotPool {
            generation,
            kept: Mutex::new(Vec::new()),
        }
    }

    /// The kept descriptor of slot `slot`, if there is one, taken out.
    fn take(&self, slot: u32) -> Option<(OwnedFd, FileId)> {
        let mut pool = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let i = pool.iter().position(|e| e.0 == slot)?;
        let (_, fd, id) = pool.swap_remove(i);
        Some((fd, id))
    }

    /// Keeps descriptor `fd` of slot `slot` (or closes it, if one is kept
    /// already, the slot number is large or this process is a fork child of
    /// the one that opened it).
    fn put(&self, slot: u32, fd: OwnedFd, id: FileId) {
        if self.generation != sys::fork_generation() || slot as usize >= PROBE_CACHE {
            return;
        }
        let mut pool = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if !pool.iter().any(|e| e.0 == slot) {
            pool.push((slot, fd, id));
        }
    }
}

/// A process's membership of a resource's live participants: a descriptor
/// of the resource directory with a shared flock on it, taken when the
/// process agreed on `tickets`. While it is locked nobody can change the
/// agreed number (a change needs the directory's exclusive lock), so a
/// member that obtains again needs no new agreement. Shared by the
/// resource's cache and every ticket obtained through it: it is unlocked
/// when the last of them goes.
#[derive(Debug)]
struct Membership {
    fd: OwnedFd,
    tickets: u32,
    /// Set when a child process was given the descriptor with a ticket:
    /// the lock is then the child's too, and only closing ours is right.
    inherited: AtomicBool,
    /// The [`sys::fork_generation`] that took the lock: a fork child shares
    /// the open file description, and unlocking it there would unlock it
    /// for the parent.
    generation: u64,
}

impl Drop for Membership {
    /// Unlocks before closing: a child forked by another thread holds a
    /// copy of the descriptor until it execs, and would keep the resource
    /// live until then.
    fn drop(&mut self) {
        if !self.inherited.load(Ordering::Relaxed) && self.generation == sys::fork_generation() {
            unlock(self.fd.as_fd());
        }
    }
}

/// What a participant asks for.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) name: String,
    pub(crate) tickets: u32,
    /// Already cleaned (see `record::clean_label`).
    pub(crate) label: String,
}

/// A held slot. Field order is release order: the lock goes first, then the
/// record descriptor (whose touch, or close, wakes the head of the line),
/// then this ticket's share of the membership. Releasing unlocks the slot
/// first (see `Drop`); the descriptors are kept for this process's next
/// obtain unless a child was given them.
#[derive(Debug)]
pub(crate) struct LocalHeld {
    /// Set when a child process was given the descriptors: then only
    /// closing ours is right, the child keeps the slot.
    inherited: bool,
    /// Always present; taken out only by `Drop`.
    lock: Option<OwnedFd>,
    /// Always present; taken out only by `Drop`.
    record_fd: Option<OwnedFd>,
    /// Keeps the process a live participant while the ticket is held, even
    /// if the election that obtained it is gone.
    member: Arc<Membership>,
    /// Where to keep the descriptors for reuse once released, if the
    /// resource is still open in this process then: a held ticket does not
    /// keep it open (a process may hold thousands of tickets).
    home: Weak<Opened>,
    id: FileId,
    slot_path: Arc<SlotPath>,
    slot: u32,
    token: u64,
    record: HolderRecord,
}

/// An open, checked resource directory.
#[derive(Debug)]
struct ResourceDir {
    fd: OwnedFd,
    path: PathBuf,
    id: FileId,
}

/// How one attempt to obtain ended.
enum Attempt {
    /// With a slot, or with none free (when not waiting).
    Done(Option<LocalHeld>),
    /// The directory or slot file changed under us: start again.
    Restart,
}

/// A place in the line: a descriptor of `queue` locked through it, and the
/// file.
type Line = (OwnedFd, FileId);

/// How a wait ended.
enum Waited {
    /// A slot, its lock descriptor and file, if already open a write-only
    /// descriptor to write its record through, and the place in line to
    /// give up once the ticket is complete.
    Got(u32, OwnedFd, FileId, Option<OwnedFd>, Option<Line>),
    Restart,
}

impl LocalStore {
    /// A store in `run_dir`; directories it creates get `dir_mode`.
    pub(crate) fn new(run_dir: PathBuf, dir_mode: u32) -> Self {
        LocalStore {
            run_dir,
            dir_mode,
            cache: Arc::default(),
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

    /// The mode of the files this store makes, which also tells `fsx` whom
    /// it trusts (see `Sharing::of_mode`).
    fn file_mode(&self) -> u32 {
        self.sharing().file_mode()
    }

    fn open_run_dir(&self, create: bool) -> Result<Option<OwnedFd>> {
        Ok(fsx::open_run_dir(&self.run_dir, create, self.sharing())?.map(|(fd, _)| fd))
    }

    fn open_resource(
        &self,
        run: &OwnedFd,
        name: &str,
        create: bool,
    ) -> Result<Option<ResourceDir>> {
        let path = self.run_dir.join(name);
        let Some((fd, st)) =
            fsx::open_dir(run.as_fd(), Path::new(name), &path, create, self.sharing())?
        else {
            return Ok(None);
        };
        Ok(Some(ResourceDir {
            fd,
            path,
            id: FileId::of(&st),
        }))
    }

    /// Obtains a slot: tries every slot, then, if `wait`, waits until one is
    /// free or `intr` is triggered. `Ok(None)`: none free without waiting, or
    /// the deadline passed.
    pub(crate) fn obtain(
        &self,
        req: &Request,
        wait: bool,
        intr: &Interrupter,
    ) -> Result<Option<LocalHeld>> {
        match self.obtain_inner(req, wait, intr) {
            Err(Error::Cancelled) if intr.reason() == Some(Reason::TimedOut) => Ok(None),
            other => other,
        }
    }

    fn obtain_inner(
        &self,
        req: &Request,
        wait: bool,
        intr: &Interrupter,
    ) -> Result<Option<LocalHeld>> {
        // A run directory removed under us (a /tmp cleaner, an operator) makes
        // opens and creates fail with ENOENT part-way; that is no error of
        // the caller's, so start again on the new directory. The bound only
        // stops a loop that something else keeps failing.
        //
        // The first attempt trusts the resource directory kept open from the
        // last obtain without looking at its path: a slot is only ever
        // granted after `finish` has found the locked file at the slot's
        // path, which proves the directory too, and finding no slot free is
        // only believed once the directory is found still at its path. Every
        // attempt after a restart, or after an error that a replaced
        // directory may have caused, opens the directory afresh.
        let mut vanished = 0;
        loop {
            match self.attempt(req, wait, intr) {
                Ok(Attempt::Done(held)) => return Ok(held),
                Ok(Attempt::Restart) => self.forget(),
                Err(Error::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound && vanished < 1000 =>
                {
                    vanished += 1;
                    self.forget();
                }
                Err(Error::Cancelled) => return Err(Error::Cancelled),
                Err(e) => {
                    if vanished < 1000 && self.forget_if_replaced() {
                        vanished += 1;
                        continue;
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Drops the kept resource directory, so that the next attempt opens
    /// and checks it afresh.
    fn forget(&self) {
        let old = self.cache.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(old);
    }

    /// Drops the kept resource directory if it is no longer the one at its
    /// path; says whether it did.
    fn forget_if_replaced(&self) -> bool {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let replaced = cache
            .as_ref()
            .is_some_and(|o| !same_file(&o.res.path, o.res.id));
        if replaced {
            *cache = None;
        }
        replaced
    }

    /// One try at obtaining, from opening the directory to the ticket.
    fn attempt(&self, req: &Request, wait: bool, intr: &Interrupter) -> Result<Attempt> {
        let opened = self.opened(&req.name)?;
        let res = &opened.res;
        let member = self.join(&opened, req, intr)?;
        if (2..=SEATS_MAX).contains(&req.tickets) {
            // Before the first release, which must look at the seats.
            opened.seats.get_or_init(|| {
                Seats::new(
                    res.fd.as_fd(),
                    &res.path,
                    self.file_mode(),
                    req.tickets,
                    opened.watched.clone(),
                )
            });
        }
        if let Some((slot, lock, id)) = self.probe(&opened, req.tickets, 0, None)? {
            let held = self.finish(&opened, member, slot, lock, id, None, req, intr)?;
            return Ok(held.map_or(Attempt::Restart, |h| Attempt::Done(Some(h))));
        }
        // The directory may have come from the cache unchecked: before
        // saying that nothing is free, or waiting, make sure it is still the
        // one at its path.
        if !same_file(&res.path, res.id) {
            return Ok(Attempt::Restart);
        }
        if !wait {
            return Ok(Attempt::Done(None));
        }
        warm_up(&opened, req);
        let waited = if req.tickets == 1 {
            self.wait_single(&opened, intr)?
        } else {
            self.wait_in_line(&opened, req.tickets, intr)?
        };
        match waited {
            Waited::Got(slot, lock, id, record, line) => {
                let held = self.finish(&opened, member, slot, lock, id, record, req, intr);
                // Only now the next in line may go: the ticket is complete,
                // and leaving the line cost no time between the release
                // and this owner.
                if let Some(line) = line {
                    opened.leave_line(line);
                }
                Ok(held?.map_or(Attempt::Restart, |h| Attempt::Done(Some(h))))
            }
            Waited::Restart => Ok(Attempt::Restart),
        }
    }

    /// The resource directory `name`, from the cache (unchecked: see
    /// `obtain_inner`) if this process opened it, else opened (and created)
    /// afresh.
    fn opened(&self, name: &str) -> Result<Arc<Opened>> {
        let generation = sys::fork_generation();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(o) = cache.as_ref()
            && o.name == name
            && o.generation == generation
        {
            return Ok(Arc::clone(o));
        }
        let run = self.open_run_dir(true)?.expect("created");
        let res = self.open_resource(&run, name, true)?.expect("created");
        let mode = self.file_mode();
        let (tickets, _) = fsx::open_file(
            res.fd.as_fd(),
            &res.path,
            TICKETS_FILE,
            Access::ReadWriteCreate,
            mode,
        )?;
        // Its length, known from opening, tells whether it can be mapped
        // and trusted at once (see `token::Counter`).
        let (token, _, token_len) = fsx::open_file_sized(
            res.fd.as_fd(),
            &res.path,
            token::TOKEN_FILE,
            Access::ReadWriteCreate,
            mode,
        )?;
        let token = token::Counter::new(token, res.path.join(token::TOKEN_FILE), token_len)?;
        let watched = Watched::open(res.fd.as_fd(), &res.path, mode).map(Arc::new);
        let o = Arc::new(Opened {
            name: name.to_string(),
            res,
            tickets,
            token,
            watched,
            seats: OnceLock::new(),
            in_process: Mutex::new(()),
            watch: Mutex::new(None),
            locks: SlotPool::new(generation),
            records: SlotPool::new(generation),
            lines: SlotPool::new(generation),
            member: Mutex::new(None),
            generation,
            paths: Mutex::new(Vec::new()),
        });
        *cache = Some(Arc::clone(&o));
        Ok(o)
    }

    /// Joins the participants of the resource, or finds this process a
    /// member already, and returns the membership.
    ///
    /// A new member takes the fast way when the file holds our number: take
    /// the shared lock, then read the number again. Once we hold the lock
    /// nobody can find the resource idle, so the number cannot change under
    /// us; if it is still ours, we are in. Otherwise (or if someone holds the
    /// directory exclusively for a moment) the full way, under an exclusive
    /// lock on `tickets`: if nobody is live (an exclusive lock on the
    /// directory can be had) the number is ours to write; else it must be
    /// ours, or the caller gets an error naming both.
    fn join(&self, o: &Arc<Opened>, req: &Request, intr: &Interrupter) -> Result<Arc<Membership>> {
        let kept = || o.member.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = kept().as_ref()
            && m.tickets == req.tickets
        {
            return Ok(Arc::clone(m));
        }
        // Not under the lock above: joining may wait, and another thread's
        // obtain must stay interruptible meanwhile. Two threads joining at
        // once make two members; one is kept.
        let member = Arc::new(Membership {
            fd: self.join_anew(o, req, intr)?,
            tickets: req.tickets,
            inherited: AtomicBool::new(false),
            generation: o.generation,
        });
        let mut kept = kept();
        if kept.is_none() && o.generation == sys::fork_generation() {
            *kept = Some(Arc::clone(&member));
        }
        Ok(member)
    }

    /// Agrees on N and returns a new descriptor of the directory with the
    /// shared lock that makes the caller a live participant.
    fn join_anew(&self, o: &Opened, req: &Request, intr: &Interrupter) -> Result<OwnedFd> {
        let res = &o.res;
        let fd = reopen_dir(res)?;
        let dir = fd.as_fd();
        let lock_err = |e| Error::io("cannot lock", &res.path, e);
        // Only when the file already holds our number: a shared lock taken
        // and dropped again would look "live" to a full joiner that finds
        // the file empty or different and would refuse it for nothing.
        if self.agreed(o)? == Some(req.tickets) && fsx::try_flock(dir, false).map_err(lock_err)? {
            if self.agreed(o)? == Some(req.tickets) {
                return Ok(fd);
            }
            unlock(dir);
        }
        let path = res.path.join(TICKETS_FILE);
        let _one_thread = o.in_process.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match intr.lock_exclusive(o.tickets.as_fd()) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(Error::io("cannot lock", &path, e)),
                Err(_) => return Err(Error::Cancelled),
            }
            let joined = self.join_locked(o, dir, req);
            unlock(o.tickets.as_fd());
            match joined? {
                true => return Ok(fd),
                // Someone outside elect (systemd-tmpfiles ageing the
                // directory) holds an exclusive lock on it for a moment.
                false => {
                    if intr.pause(Duration::from_millis(10)).is_err() {
                        return Err(Error::Cancelled);
                    }
                }
            }
        }
    }

    /// The full join, under the `tickets` lock. `Ok(false)`: try again.
    fn join_locked(&self, o: &Opened, dir: BorrowedFd<'_>, req: &Request) -> Result<bool> {
        let res = &o.res;
        let path = res.path.join(TICKETS_FILE);
        let lock_err = |e| Error::io("cannot lock", &res.path, e);
        if fsx::try_flock(dir, true).map_err(lock_err)? {
            // Nobody is live: the number is ours to set.
            fsx::overwrite(
                o.tickets.as_fd(),
                &path,
                format!("{}\n", req.tickets).as_bytes(),
            )?;
            // Converting exclusive to shared is not atomic in flock(2);
            // a fast joiner slipping in between reads the number just
            // written, so it cannot disagree unnoticed.
            return fsx::try_flock(dir, false).map_err(lock_err);
        }
        match self.agreed(o)? {
            Some(agreed) if agreed != req.tickets => Err(Error::TicketMismatch {
                name: req.name.clone(),
                asked: req.tickets,
                agreed,
            }),
            Some(_) => fsx::try_flock(dir, false).map_err(lock_err),
            // Not live participants but someone outside elect holding the
            // directory exclusively for a moment: try again.
            None if !fsx::try_flock(dir, false).map_err(lock_err)? => Ok(false),
            None => {
                unlock(dir);
                let bytes = fsx::read_prefix(o.tickets.as_fd(), 32).unwrap_or_default();
                Err(Error::unsafe_path(
                    &path,
                    format!(
                        "it holds {:?}, not a number of tickets, while the resource is in use; stop its participants and remove the file",
                        String::from_utf8_lossy(&bytes)
                    ),
                ))
            }
        }
    }

    /// The number in `tickets`, if it holds one.
    fn agreed(&self, o: &Opened) -> Result<Option<u32>> {
        let mut buf = [0u8; 32];
        let bytes = fsx::read_into(o.tickets.as_fd(), &mut buf)
            .map_err(|e| Error::io("cannot read", o.res.path.join(TICKETS_FILE), e))?;
        Ok(parse_tickets(bytes))
    }

    /// Tries each slot once without waiting, from slot `first` on and round
    /// to it. With a `cache`, descriptors of
    /// busy slots are kept open for the next probe of this wait; without,
    /// in the resource's pool for the next obtain.
    fn probe(
        &self,
        o: &Opened,
        tickets: u32,
        first: u32,
        mut cache: Option<&mut Vec<Option<(OwnedFd, FileId)>>>,
    ) -> Result<Option<(u32, OwnedFd, FileId)>> {
        let res = &o.res;
        for i in (first..tickets).chain(0..first) {
            let cached = cache
                .as_deref_mut()
                .and_then(|c| c.get_mut(i as usize))
                .and_then(Option::take)
                .or_else(|| o.locks.take(i));
            let (fd, id) = match cached {
                Some(entry) => entry,
                None => fsx::open_file(
                    res.fd.as_fd(),
                    &res.path,
                    &slot_name(i),
                    Access::ReadCreate,
                    self.file_mode(),
                )?,
            };
            let path = || res.path.join(slot_name(i));
            if fsx::try_flock(fd.as_fd(), true).map_err(|e| Error::io("cannot lock", path(), e))? {
                return Ok(Some((i, fd, id)));
            }
            match cache.as_deref_mut() {
                Some(c) if (i as usize) < PROBE_CACHE => {
                    if c.len() <= i as usize {
                        c.resize_with(i as usize + 1, || None);
                    }
                    c[i as usize] = Some((fd, id));
                }
                Some(_) => {}
                None => o.locks.put(i, fd, id),
            }
        }
        Ok(None)
    }

    /// One ticket: sleep in the kernel's own line for slot 0. The record
    /// descriptor is opened before sleeping, so that less work stands
    /// between the kernel's hand-off and the caller owning the ticket.
    fn wait_single(&self, o: &Opened, intr: &Interrupter) -> Result<Waited> {
        let res = &o.res;
        let slot_path = o.slot_path(0);
        let name = &slot_path.name;
        let mode = self.file_mode();
        // The record descriptor first, so that a freshly opened lock
        // descriptor is numbered above it (see `lock_above`) without a
        // duplicate.
        let (record, rid) = match o.records.take(0) {
            Some(kept) => kept,
            None => fsx::open_file(res.fd.as_fd(), &res.path, name, Access::WriteCreate, mode)?,
        };
        let (lock, id) = match o.locks.take(0) {
            Some(kept) => kept,
            None => fsx::open_file(res.fd.as_fd(), &res.path, name, Access::ReadCreate, mode)?,
        };
        if rid != id {
            return Ok(Waited::Restart);
        }
        slot_path.page.prepare(res.fd.as_fd(), &res.path, name, id);
        // If the slot file is removed while we sleep (the run directory
        // removed under a holder that does not check), its old holder could
        // keep us from a fresh, free slot for ever: look once a second.
        let path = Arc::clone(&slot_path);
        let recheck = crate::recheck::register(intr, move || path.is(id));
        let locked = intr.lock_exclusive(lock.as_fd());
        drop(recheck);
        match locked {
            Ok(Ok(())) => Ok(Waited::Got(0, lock, id, Some(record), None)),
            Ok(Err(e)) => Err(Error::io("cannot lock", &slot_path.path, e)),
            Err(Reason::Nudged) => Ok(Waited::Restart),
            Err(_) => Err(Error::Cancelled),
        }
    }

    /// Several tickets: stand in line, then, at its head, watch the
    /// directory until a slot is free.
    fn wait_in_line(&self, o: &Opened, tickets: u32, intr: &Interrupter) -> Result<Waited> {
        let res = &o.res;
        let qpath = res.path.join(QUEUE_FILE);
        let queue = match o.lines.take(LINE_QUEUE) {
            Some(kept) => kept,
            None => fsx::open_file(
                res.fd.as_fd(),
                &res.path,
                QUEUE_FILE,
                Access::ReadCreate,
                self.file_mode(),
            )?,
        };
        // The line of a directory that was removed leads nowhere: look once
        // a second (the head of the line does the same between probes).
        let (dir_path, dir_id) = (res.path.clone(), res.id);
        let recheck = crate::recheck::register(intr, move || same_file(&dir_path, dir_id));
        // Woken to become the head by the head that just got a slot, this
        // waiter must not preempt that new holder before its obtain returns
        // (see `StepBack`); as head it waits under its own policy again.
        let seats = o.seats.get().and_then(Option::as_ref);
        let behind = seats.and_then(|s| s.stand_behind(o.lines.take(LINE_WAITING)));
        let step_back = sys::StepBack::begin();
        let in_line = intr.lock_exclusive(queue.0.as_fd());
        drop(step_back);
        drop(recheck);
        match in_line {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Error::io("cannot lock", &qpath, e)),
            Err(Reason::Nudged) => return Ok(Waited::Restart),
            Err(_) => return Err(Error::Cancelled),
        }
        // At the head: no longer behind it.
        if let Some((fd, id)) = behind {
            unlock(fd.as_fd());
            o.lines.put(LINE_WAITING, fd, id);
        }
        // Only the head of the line gets here, so one watch per process is
        // enough; reuse it, forgetting what it saw while nobody was head.
        let mut kept = o.watch.lock().unwrap_or_else(|p| p.into_inner());
        let watch = match kept.take() {
            Some(w) => {
                w.drain()
                    .map_err(|e| Error::io("cannot watch", &res.path, e))?;
                w
            }
            None => DirWatch::releases(res.fd.as_fd())
                .map_err(|e| Error::io("cannot watch", &res.path, e))?,
        };
        // Watch first, then probe: a release after the watch starts is an
        // event, and one before it is found by the probe.
        let mut cache = Vec::new();
        let mut step = RETRY.len() - 1;
        // The slot to try first: the one whose release woke us.
        let mut first = 0;
        let got = loop {
            // Before looking: a release the look misses must see that the
            // head listens (see `watched`).
            if let Some(w) = &o.watched {
                w.announce(RETRY[step]);
            }
            if let Some(got) = self.probe(o, tickets, first, Some(&mut cache))? {
                break Ok(got);
            }
            if !same_file(&res.path, res.id) {
                break Err(None);
            }
            // After the look, which the head's watch covers: a seat left
            // empty since is an event.
            if let Some(seat) = seats.and_then(|s| s.try_sit(first)) {
                break Err(Some(seat));
            }
            match intr.watch(&watch, Some(RETRY[step])) {
                Ok(Ok(seen)) if seen.dir_changed => break Err(None),
                Ok(Ok(seen)) if seen.slot_closed => {
                    step = 0;
                    first = seen.first_closed.filter(|&i| i < tickets).unwrap_or(0);
                }
                // A seat left by a process that died is unlocked only
                // after the event: look again soon.
                Ok(Ok(seen)) if seen.seat_freed => step = 0,
                Ok(Ok(_)) => step = (step + 1).min(RETRY.len() - 1),
                Ok(Err(e)) => return Err(Error::io("cannot watch", &res.path, e)),
                Err(_) => {
                    *kept = Some(watch);
                    drop(kept);
                    if let Some(seats) = seats {
                        // Helpers leave a release to the head while there is
                        // one (see `seats`): one that came as this head gave
                        // up must not wait for their next look.
                        o.leave_line(queue);
                        if let Some(free) = self.probe(o, tickets, 0, Some(&mut cache))? {
                            seats.give_back(free);
                        }
                    }
                    return Err(Error::Cancelled);
                }
            }
        };
        *kept = Some(watch);
        // Another thread of this process may be the next head: a seated
        // wait must not keep the watch from it.
        drop(kept);
        let seated = match &got {
            Err(Some(seat)) => cache.get_mut(*seat as usize).and_then(Option::take),
            _ => None,
        };
        // The descriptors of slots still busy go back to the pool for the
        // next probe: closing them here would put system calls between the
        // release that woke us and our ticket.
        for (i, entry) in cache.into_iter().enumerate() {
            if let Some((fd, id)) = entry {
                o.locks.put(i as u32, fd, id);
            }
        }
        match got {
            // The caller lets the next in line go once it owns the slot.
            Ok((slot, lock, id)) => Ok(Waited::Got(slot, lock, id, None, Some(queue))),
            Err(Some(seat)) => {
                let seats = seats.expect("sat on one");
                self.wait_seated(o, seats, (seat, step), seated, queue, intr)
            }
            Err(None) => Ok(Waited::Restart),
        }
    }

    /// Sits on seat `seat` (taken by this process): leaves the line and
    /// sleeps in the slot's own kernel queue until the kernel hands it the
    /// slot or the helper wins another (see `seats`), which goes on from
    /// the head's retry step `step`. `lock`: this process's descriptor of
    /// the slot, if the probe kept one.
    fn wait_seated(
        &self,
        o: &Opened,
        seats: &Seats,
        (seat, step): (u32, usize),
        lock: Option<(OwnedFd, FileId)>,
        queue: Line,
        intr: &Interrupter,
    ) -> Result<Waited> {
        let res = &o.res;
        let slot_path = o.slot_path(seat);
        let mode = self.file_mode();
        let open =
            |access| fsx::open_file(res.fd.as_fd(), &res.path, &slot_path.name, access, mode);
        // Both descriptors before sleeping, the lock's numbered above the
        // record's (see `lock_above`), as for one ticket: nothing but the
        // path check, token and record stands between hand-off and owner.
        let descriptors = (|| {
            let (lock, id) = match lock.or_else(|| o.locks.take(seat)) {
                Some(kept) => kept,
                None => open(Access::ReadCreate)?,
            };
            let (record, rid) = match o.records.take(seat).filter(|&(_, rid)| rid == id) {
                Some(kept) => kept,
                None => open(Access::WriteCreate)?,
            };
            let lock = lock_above(lock, &record)
                .map_err(|e| Error::io("cannot duplicate", &slot_path.path, e))?;
            Ok::<_, Error>((lock, id, record, rid))
        })();
        let (lock, id, record, rid) = match descriptors {
            Ok(d) => d,
            Err(e) => {
                // No descriptor to try the slot with: the seat's touch
                // tells the head to look.
                seats.end(seat, false);
                seats.leave_untried(seat);
                return Err(e);
            }
        };
        if rid != id {
            seats.end(seat, false);
            seats.leave(seat, lock.as_fd());
            return Ok(Waited::Restart);
        }
        slot_path
            .page
            .prepare(res.fd.as_fd(), &res.path, &slot_path.name, id);
        // If the slot file is removed while we sleep, its old holder could
        // keep us from a fresh, free slot for ever: look once a second.
        let net = seats.safety_net(seat);
        let path = Arc::clone(&slot_path);
        let recheck = crate::recheck::register(intr, move || path.is(id) && net());
        seats.begin(seat, intr, recheck.id(), step);
        // Seated: the next in line becomes the head.
        o.leave_line(queue);
        let slept = intr.lock_exclusive_unless(lock.as_fd(), seats.stop());
        drop(recheck);
        let got_own = matches!(slept, Ok(Ok(true)));
        let prize = seats.end(seat, got_own);
        if got_own {
            if let Some(late) = prize {
                seats.give_back(late);
            }
            return Ok(Waited::Got(seat, lock, id, Some(record), None));
        }
        seats.leave(seat, lock.as_fd());
        o.locks.put(seat, lock, id);
        o.records.put(seat, record, id);
        match (prize, slept) {
            // Given up (a deadline, a dropped future) while the helper won:
            // nobody will own it.
            (Some(won), Err(Reason::TimedOut | Reason::Cancelled)) => {
                seats.give_back(won);
                Err(Error::Cancelled)
            }
            (Some((slot, lock, id)), _) => Ok(Waited::Got(slot, lock, id, None, None)),
            (None, Ok(Err(e))) => Err(Error::io("cannot lock", &slot_path.path, e)),
            (None, Err(Reason::TimedOut | Reason::Cancelled)) => Err(Error::Cancelled),
            // Nudged because the slot file went, or stopped without a
            // prize (cannot happen): start again.
            (None, _) => Ok(Waited::Restart),
        }
    }

    /// Completes an acquisition: checks the slot is still the one at its
    /// path, takes a token and writes the record. `Ok(None)`: the slot file
    /// was removed or replaced meanwhile, so start again.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        o: &Arc<Opened>,
        member: Arc<Membership>,
        slot: u32,
        lock: OwnedFd,
        id: FileId,
        record_fd: Option<OwnedFd>,
        req: &Request,
        intr: &Interrupter,
    ) -> Result<Option<LocalHeld>> {
        let res = &o.res;
        let slot_path = o.slot_path(slot);
        // The file locked must still be the one at the slot's path, and may
        // have changed since its descriptors were opened: a second name
        // given to it, garbage written into it.
        let look = match slot_path.look() {
            Ok(look) if look.id == id => look,
            _ => return Ok(None),
        };
        fsx::refuse_unsafe_file(&slot_path.path, look.mode, look.links)?;
        let token = o.token.next(intr)?;
        let kept = || {
            o.records
                .take(slot)
                .filter(|(_, rid)| *rid == id)
                .map(|(fd, _)| fd)
        };
        let record_fd = match record_fd.or_else(kept) {
            Some(fd) => fd,
            None => {
                // Gone since the path check, or replaced: the slot file was
                // removed meanwhile, which is a restart like any other, not
                // an error (counting it as one let a remover that keeps
                // winning this race turn an obtain into an error).
                match fsx::open_file(
                    res.fd.as_fd(),
                    &res.path,
                    &slot_path.name,
                    Access::Write,
                    self.file_mode(),
                ) {
                    Ok((fd, rid)) if rid == id => fd,
                    Ok(_) => return Ok(None),
                    Err(Error::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        return Ok(None);
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        let lock = lock_above(lock, &record_fd)
            .map_err(|e| Error::io("cannot duplicate", &slot_path.path, e))?;
        let record = new_record(req, token);
        let mut buf = [0u8; RECORD_LEN];
        let bytes = record.padded_in(&mut buf);
        // Through the slot file's mapped page if this process has one, which
        // makes no event; then with a system call too if a watcher listens,
        // for the event it waits for. Stores before the look at the
        // watchers' deadline, as a watcher raises it before it reads: either
        // it reads this record, or this sees its deadline.
        let quiet = o.watched.as_ref().is_some_and(|w| {
            look.size == RECORD_LEN as u64 && slot_path.page.write(id, bytes) && {
                std::sync::atomic::fence(Ordering::SeqCst);
                !w.owners_wanted()
            }
        });
        if !quiet {
            // Records all have the same length: the file needs cutting only
            // if something else made it longer.
            fsx::overwrite_from(record_fd.as_fd(), &slot_path.path, bytes, look.size)?;
        }
        Ok(Some(LocalHeld {
            inherited: false,
            lock: Some(lock),
            record_fd: Some(record_fd),
            member,
            home: Arc::downgrade(o),
            id,
            slot_path,
            slot,
            token,
            record,
        }))
    }

    /// The status of the named resource, or of every resource. A run
    /// directory or resource that does not exist yet is an empty list.
    pub(crate) fn status(&self, name: Option<&str>) -> Result<Vec<ResourceStatus>> {
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
                let entries = std::fs::read_dir(&self.run_dir)
                    .map_err(|e| Error::io("cannot list", &self.run_dir, e))?;
                for entry in entries {
                    let entry = entry.map_err(|e| Error::io("cannot list", &self.run_dir, e))?;
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
                    out.push(self.resource_status(&res, n, &locked, false));
                }
            }
            Ok(out)
        };
        // A resource costs 7 to 10 system calls and nothing else, so a
        // large run directory is read by one thread per CPU, each taking a
        // run of names; the parts are joined in order.
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

    /// Reads one resource's slots, taking no lock: a slot is held when the
    /// kernel's list of locked files, `locked` (see [`kernel_locks`]), has
    /// it. With `every_record`, the record of a free slot (its last
    /// holder's) is read too, for a watcher that must notice a holder that
    /// came and went between two looks.
    fn resource_status(
        &self,
        res: &ResourceDir,
        name: &str,
        locked: &std::collections::HashSet<FileId>,
        every_record: bool,
    ) -> ResourceStatus {
        let recorded = fsx::read_to_show(res.fd.as_fd(), TICKETS_FILE, 32)
            .ok()
            .and_then(|b| parse_tickets(&b));
        let tickets = recorded.unwrap_or_else(|| count_slots(&res.path));
        let mut slots = Vec::with_capacity(tickets as usize);
        for i in 0..tickets {
            let name_i = slot_name(i);
            // Not asking for times: a watcher looking again and again must
            // not make every holder's record write update the inode (see
            // `sys::look_at`).
            let held = match sys::look_at(Some(res.fd.as_fd()), Path::new(&name_i)) {
                Ok(look) if look.mode & libc::S_IFMT == libc::S_IFREG => locked.contains(&look.id),
                _ => false,
            };
            let holder = if held || every_record {
                fsx::read_to_show(res.fd.as_fd(), &name_i, crate::record::MAX_RECORD + 1)
                    .ok()
                    .and_then(|b| HolderRecord::parse(&b))
            } else {
                None
            };
            slots.push(SlotStatus {
                slot: i,
                held,
                holder,
            });
        }
        ResourceStatus {
            name: name.to_string(),
            tickets,
            slots,
        }
    }

    /// Opens (creating if need be) the resource directory for watching, and
    /// a watch on it. Watching does not join: it takes no lock. Where the
    /// kernel's list of locks cannot be read, it fails before creating
    /// anything (see [`kernel_locks`]).
    pub(crate) fn watch(&self, name: &str) -> Result<LocalWatch> {
        kernel_locks()?;
        let run = self.open_run_dir(true)?.expect("created");
        let res = self.open_resource(&run, name, true)?.expect("created");
        let watch = DirWatch::changes(res.fd.as_fd())
            .map_err(|e| Error::io("cannot watch", &res.path, e))?;
        // Listening from the start: the first look comes before any wait.
        let watched = Watched::open(res.fd.as_fd(), &res.path, self.file_mode());
        if let Some(w) = &watched {
            w.announce_watching(Duration::ZERO);
        }
        Ok(LocalWatch {
            store: self.clone(),
            name: name.to_string(),
            res,
            watch,
            watched,
        })
    }
}

/// `status` reads a run directory with one thread per CPU, up to this many,
/// once there are this many names for each.
const STATUS_THREADS_MAX: usize = 8;
/// See [`STATUS_THREADS_MAX`].
const STATUS_NAMES_PER_THREAD: usize = 256;

/// A watch on one resource directory.
pub(crate) struct LocalWatch {
    store: LocalStore,
    name: String,
    res: ResourceDir,
    watch: DirWatch,
    /// Where this watcher says it listens; `None` (it cannot write the
    /// file) means releases may make no event for it.
    watched: Option<Watched>,
}

impl LocalWatch {
    /// The resource's state now, with the last record of free slots too.
    /// Takes no lock; fails where the kernel's list of locks cannot be read.
    pub(crate) fn snapshot(&self) -> Result<ResourceStatus> {
        let locked = kernel_locks()?;
        Ok(self
            .store
            .resource_status(&self.res, &self.name, &locked, true))
    }

    /// The last fencing token issued for the resource (0 if none yet).
    pub(crate) fn last_token(&self) -> u64 {
        token::last_issued(self.res.fd.as_fd(), &self.res.path, self.store.file_mode())
    }

    /// Sleeps until something may have changed or `timeout` passes; if the
    /// directory was removed, opens the new one. Returns true when an event
    /// was seen.
    pub(crate) fn wait(&mut self, intr: &Interrupter, timeout: Duration) -> Result<bool> {
        let timeout = match &self.watched {
            Some(w) => {
                w.announce_watching(timeout);
                timeout
            }
            // Releases with nobody else listening make no event, so look
            // often enough to report one within 100 ms anyway.
            None => timeout.min(UNHEARD_LOOK),
        };
        let seen = match intr.watch(&self.watch, Some(timeout)) {
            Ok(r) => r.map_err(|e| Error::io("cannot watch", &self.res.path, e))?,
            Err(_) => return Err(Error::Cancelled),
        };
        if seen.dir_changed || !same_file(&self.res.path, self.res.id) {
            *self = self.store.watch(&self.name)?;
            return Ok(true);
        }
        Ok(seen.any())
    }
}

impl Drop for LocalHeld {
    /// Unlocks before the fields close the descriptors: a child forked by
    /// another thread of this process holds copies of them until it execs,
    /// and closing ours alone would leave the slot held (and the resource
    /// live) until then. Not when the ticket was handed to a child on
    /// purpose: then the child keeps it.
    fn drop(&mut self) {
        if self.inherited {
            return;
        }
        let home = self.home.upgrade();
        if let Some(lock) = self.lock.take() {
            unlock(lock.as_fd());
            if let Some(home) = &home {
                home.locks.put(self.slot, lock, self.id);
            }
        }
        if let Some(record) = self.record_fd.take() {
            match &home {
                Some(home) => {
                    // The record descriptor is kept, so no close tells the
                    // head of the line and watchers that the slot is free:
                    // touching the file's times does (IN_ATTRIB), and,
                    // unlike a close event, only after the lock is gone.
                    // Unless nobody listens: waiters for one ticket sleep on
                    // the lock itself.
                    // Nor when someone sits in the slot's own queue: the
                    // unlock handed the slot over already (see `seats`).
                    if home.watched.as_ref().is_none_or(|w| w.wanted())
                        && !home.seat_taken(self.slot)
                    {
                        touch(record.as_fd());
                    }
                    home.records.put(self.slot, record, self.id);
                }
                // Closing it tells them (IN_CLOSE_WRITE).
                None => drop(record),
            }
        }
    }
}

impl LocalHeld {
    /// Marks the ticket as shared with a child process: releasing it here
    /// then only closes this process's descriptors.
    pub(crate) fn set_inherited(&mut self) {
        self.inherited = true;
        self.member.inherited.store(true, Ordering::Relaxed);
    }

    /// The slot held.
    pub(crate) fn slot(&self) -> u32 {
        self.slot
    }

    /// The fencing token of this acquisition.
    pub(crate) fn token(&self) -> u64 {
        self.token
    }

    /// The slot file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.slot_path.path
    }

    /// True while the locked file is still the one at the slot's path: false
    /// once the file, its directory or the run directory was removed or
    /// replaced, after which someone else may hold a fresh slot there.
    pub(crate) fn is_intact(&self) -> bool {
        self.slot_path.is(self.id)
    }

    /// Adds the pid of the command run under the ticket to the record.
    pub(crate) fn set_command_pid(&mut self, pid: u32) -> Result<()> {
        self.record.command_pid = Some(pid);
        let fd = self.record_fd.as_ref().expect("present until dropped");
        // All records have the same length: nothing is left to cut off.
        let mut buf = [0u8; crate::record::RECORD_LEN];
        fsx::overwrite_from(
            fd.as_fd(),
            &self.slot_path.path,
            self.record.padded_in(&mut buf),
            0,
        )
    }

    /// The descriptors that carry the ticket: a process that inherits all
    /// of them keeps the slot held (and the resource live) while it runs.
    pub(crate) fn descriptors(&self) -> [std::os::fd::RawFd; 3] {
        let raw = |fd: &Option<OwnedFd>| fd.as_ref().map_or(-1, AsRawFd::as_raw_fd);
        [
            raw(&self.lock),
            raw(&self.record_fd),
            self.member.fd.as_raw_fd(),
        ]
    }

    /// The record written for this holder.
    pub(crate) fn record(&self) -> &HolderRecord {
        &self.record
    }
}

/// A second open file description of a resource directory: each
/// participant needs its own, because the shared lock that says "live"
/// belongs to the description.
fn reopen_dir(res: &ResourceDir) -> Result<OwnedFd> {
    // SAFETY: "." is a valid C string; the result is checked.
    let fd = unsafe {
        libc::openat(
            res.fd.as_raw_fd(),
            c".".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(Error::io(
            "cannot open",
            &res.path,
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: fd is fresh and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Runs, before a wait, the parts of `finish` that have no effect, so that
/// a process which has not obtained before does not pay after the hand-off
/// for first use: the page faults that map their code and data, and the
/// first write to the mapped token counter (a write-protect fault, which
/// also updates the file's times). Measured on a fail-over to a fresh
/// waiter (SIGKILLed holder, `cargo bench --bench multiproc failover`),
/// that first use was tens of microseconds between the kernel's hand-off
/// and the ticket.
fn warm_up(o: &Opened, req: &Request) {
    o.token.warm_up();
    let mut buf = [0u8; crate::record::RECORD_LEN];
    std::hint::black_box(new_record(req, 0).padded_in(&mut buf));
}

/// The record of this process holding a ticket with `token`, as of now.
fn new_record(req: &Request, token: u64) -> HolderRecord {
    HolderRecord {
        pid: sys::pid(),
        since: crate::time::rfc3339_now(),
        label: req.label.clone(),
        token,
        command_pid: None,
    }
}

/// Sets a slot file's times to now through its write descriptor `fd`: an
/// inotify IN_ATTRIB event for those watching the directory. A failure only
/// costs them a moment (they look again on their own), so it is ignored.
pub(super) fn touch(fd: BorrowedFd<'_>) {
    // SAFETY: plain syscall on a borrowed descriptor; a null `times` means
    // "now".
    unsafe { libc::futimens(fd.as_raw_fd(), std::ptr::null()) };
}

/// Releases a flock held through `fd`.
pub(super) fn unlock(fd: BorrowedFd<'_>) {
    // SAFETY: plain syscall on a borrowed descriptor.
    unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_UN) };
}

/// Moves the lock descriptor above the record descriptor.
///
/// When a holder is killed, the kernel closes its descriptors in ascending
/// order but runs the final closes (`__fput`, which queues the inotify event
/// and then drops the flock) in reverse order. With the lock descriptor
/// numbered above the record descriptor, the lock is dropped before the
/// close-after-write event that wakes the head of the line, so the head finds
/// the slot free at its first look instead of after a retry. The duplicate
/// shares the open file description, so it carries the same lock.
fn lock_above(lock: OwnedFd, record: &OwnedFd) -> std::io::Result<OwnedFd> {
    if lock.as_raw_fd() > record.as_raw_fd() {
        return Ok(lock);
    }
    // SAFETY: plain syscall; the result is checked.
    let fd = unsafe {
        libc::fcntl(
            lock.as_raw_fd(),
            libc::F_DUPFD_CLOEXEC,
            record.as_raw_fd() + 1,
        )
    };
    if fd < 0 {
        let err = std::io::Error::last_os_error();
        // EINVAL: the lowest number asked for is past RLIMIT_NOFILE, which
        // is "too many open files" in the words a user can act on.
        if err.raw_os_error() == Some(libc::EINVAL) {
            return Err(std::io::Error::from_raw_os_error(libc::EMFILE));
        }
        return Err(err);
    }
    // SAFETY: fd is fresh and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// True when `path` (not following a final symbolic link) is the file `id`.
fn same_file(path: &Path, id: FileId) -> bool {
    sys::look_at(None, path).is_ok_and(|look| look.id == id)
}

/// Parses the `tickets` file: a number from 1 to 4096 and a newline.
pub(crate) fn parse_tickets(bytes: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(bytes).ok()?;
    let n: u32 = text.trim_end_matches('\n').parse().ok()?;
    (1..=crate::election::MAX_TICKETS).contains(&n).then_some(n)
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

/// The files on which some process holds an exclusive flock, from the
/// kernel's list (`/proc/locks`): how `status` and `watch` tell a held slot
/// from a free one.
///
/// There is deliberately no fallback that tries a lock to see: even a brief
/// shared lock on a free slot makes a concurrent non-blocking obtain of that
/// slot fail (`elect run -n` exited 75 with a ticket free). Without the list,
/// holders cannot be seen, and that is an error that says so.
fn kernel_locks() -> Result<std::collections::HashSet<FileId>> {
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
mod status_tests {
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
