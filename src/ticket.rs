//! The guard of an obtained ticket: it tells its slot and fencing token,
//! can say whether it still truly holds its slot, and releases on drop; and
//! the handle of a campaign's ticket, which does not.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::Result;
use crate::record::HolderRecord;
use crate::store::Held;

/// An obtained ticket: while it lives (and is not released), this process
/// holds one slot of the resource.
///
/// Releasing closes the slot's descriptors, which is what frees the slot;
/// the kernel does the same if the process dies, however it dies.
///
/// A campaign hands its owned code a [`CampaignTicket`] instead, which the
/// campaign releases.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let e = elect::Election::builder("job").dir(dir.path()).build()?;
/// let t = e.try_obtain()?.expect("free");
/// assert_eq!(t.slot(), 0);
/// assert!(t.is_held());
/// assert!(e.try_obtain()?.is_none(), "one ticket, already taken");
/// t.release();
/// assert!(e.try_obtain()?.is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[must_use = "dropping a Ticket releases it at once; keep it (`let _ticket = ...`) while you own the resource"]
pub struct Ticket {
    shared: Arc<Shared>,
    /// False once the ticket became a campaign's ([`Ticket::for_campaign`]):
    /// the campaign releases it.
    release_on_drop: bool,
}

type Hook = Box<dyn FnOnce() + Send>;

/// The state a ticket shares with a campaign watching over it.
pub(crate) struct Shared {
    held: Mutex<Option<Held>>,
    on_release: Mutex<Option<Hook>>,
    name: String,
    slot: u32,
    token: u64,
    path: PathBuf,
    /// What this holder wrote into its slot file, kept in step with it.
    record: Mutex<HolderRecord>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket")
            .field("name", &self.name)
            .field("slot", &self.slot)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn held(&self) -> MutexGuard<'_, Option<Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Releases the slot if still held, then runs the release hook once.
    pub(crate) fn release(&self) {
        let held = self.held().take();
        drop(held);
        let hook = self
            .on_release
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(hook) = hook {
            hook();
        }
    }

    /// Whether the slot was released (by anyone).
    pub(crate) fn is_released(&self) -> bool {
        self.held().is_none()
    }

    /// Whether the slot is held and still the file at its path.
    pub(crate) fn is_held(&self) -> bool {
        self.held().as_ref().is_some_and(Held::is_intact)
    }

    /// Sets what to run when the ticket is released; runs it at once if it
    /// already was.
    pub(crate) fn on_release(&self, hook: Hook) {
        let released = {
            let held = self.held();
            let mut slot = self.on_release.lock().unwrap_or_else(|p| p.into_inner());
            if held.is_some() {
                *slot = Some(hook);
                None
            } else {
                Some(hook)
            }
        };
        if let Some(hook) = released {
            hook();
        }
    }
}

impl Ticket {
    pub(crate) fn new(name: &str, held: Held) -> Self {
        Ticket {
            shared: Arc::new(Shared {
                name: name.to_string(),
                slot: held.slot(),
                token: held.token(),
                path: held.path().to_path_buf(),
                record: Mutex::new(held.record().clone()),
                held: Mutex::new(Some(held)),
                on_release: Mutex::new(None),
            }),
            release_on_drop: true,
        }
    }

    /// The same ticket, for a campaign's owned code: dropping it does not
    /// release it.
    pub(crate) fn for_campaign(mut self) -> CampaignTicket {
        self.release_on_drop = false;
        CampaignTicket {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The state shared with a campaign.
    pub(crate) fn shared(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }

    /// The resource name.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let t = elect::Election::builder("job").dir(dir.path()).build()?.obtain()?;
    /// assert_eq!(t.name(), "job");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The slot held, 0-based: `ELECT_SLOT`.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let e = elect::Election::builder("job").tickets(3).dir(dir.path()).build()?;
    /// let (a, b) = (e.obtain()?, e.obtain()?);
    /// assert_ne!(a.slot(), b.slot());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn slot(&self) -> u32 {
        self.shared.slot
    }

    /// The fencing token of this acquisition: greater than the token of
    /// every earlier acquisition of any slot of the resource. Hand it to a
    /// downstream system so that it can refuse a holder that was superseded.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let e = elect::Election::builder("job").dir(dir.path()).build()?;
    /// let first = e.obtain()?.token();
    /// let second = e.obtain()?.token();
    /// assert!(second > first);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn token(&self) -> u64 {
        self.shared.token
    }

    /// The slot file.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let t = elect::Election::builder("job").dir(dir.path()).build()?.obtain()?;
    /// assert!(t.path().ends_with("job/slot.0"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The record this holder wrote into its slot file.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let t = elect::Election::builder("job").label("nightly").dir(dir.path()).build()?.obtain()?;
    /// assert_eq!(t.record().label, "nightly");
    /// assert_eq!(t.record().pid, std::process::id());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn record(&self) -> HolderRecord {
        self.shared
            .record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether this ticket still truly holds its slot: false after release,
    /// and false once the slot file, the resource directory or the run
    /// directory was removed or replaced (by a /tmp cleaner or an operator's
    /// `rm -rf`), after which a newcomer may hold a fresh slot at the same
    /// path. Costs one `stat`. A holder that finds this false must stop
    /// acting as owner.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let t = elect::Election::builder("job").dir(dir.path()).build()?.obtain()?;
    /// assert!(t.is_held());
    /// std::fs::remove_dir_all(dir.path().join("job"))?;
    /// assert!(!t.is_held());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_held(&self) -> bool {
        self.shared.is_held()
    }

    /// By when work done under this ticket must stop even if it still
    /// looks held: for a ticket on etcd whose lease can no longer be
    /// renewed, a fifth of the TTL before the server may let another
    /// holder in. `None` for a ticket on this host, whose kernel lock
    /// cannot expire.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let e = elect::Election::builder("x").dir(dir.path()).build()?;
    /// assert!(e.obtain()?.deadline().is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn deadline(&self) -> Option<std::time::Instant> {
        self.shared.held().as_ref().and_then(Held::deadline)
    }

    /// Releases the ticket now. Dropping the ticket does the same; this
    /// says so where it happens.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let e = elect::Election::builder("job").dir(dir.path()).build()?;
    /// let t = e.obtain()?;
    /// t.release();
    /// assert!(e.try_obtain()?.is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn release(self) {
        self.shared.release();
    }

    /// Names, in this holder's record, the process that does the work of
    /// this ticket: typically a child it was handed to with
    /// [`share_with`](Self::share_with), or any process started to work
    /// under it. Readers of the record see it as
    /// [`HolderRecord::command_pid`] (`command_pid` in `elect status
    /// --json`) beside [`pid`](HolderRecord::pid), the process that took the
    /// ticket, so that after the taker was killed a reader can tell which
    /// process still holds the slot. Does nothing on a released ticket.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let e = elect::Election::builder("job").dir(dir.path()).build()?;
    /// let t = e.obtain()?;
    /// let mut cmd = std::process::Command::new("true");
    /// t.share_with(&mut cmd);
    /// let mut child = cmd.spawn()?;
    /// t.set_command_pid(child.id())?;
    /// assert_eq!(e.status()?.slots[0].holder.as_ref().unwrap().command_pid, Some(child.id()));
    /// assert_eq!(t.record().command_pid, Some(child.id()));
    /// child.wait()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_command_pid(&self, pid: u32) -> Result<()> {
        let mut held = self.shared.held();
        let Some(h) = held.as_mut() else {
            return Ok(());
        };
        h.set_command_pid(pid)?;
        *self.shared.record.lock().unwrap_or_else(|p| p.into_inner()) = h.record().clone();
        Ok(())
    }

    /// Lets a child process inherit this ticket: the descriptors that hold
    /// the slot are kept open across `exec` in `command`, so the slot stays
    /// held until this process, the child and every descendant that keeps
    /// them have all exited or released. Without this, `exec` closes them.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let e = elect::Election::builder("job").dir(dir.path()).build()?;
    /// let t = e.obtain()?;
    /// let mut cmd = std::process::Command::new("sleep");
    /// cmd.arg("0.2");
    /// t.share_with(&mut cmd);
    /// let mut child = cmd.spawn()?;
    /// t.release();
    /// assert!(e.try_obtain()?.is_none(), "the child still holds it");
    /// child.wait()?;
    /// assert!(e.try_obtain()?.is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn share_with(&self, command: &mut std::process::Command) {
        use std::os::unix::process::CommandExt;
        let fds = match self.shared.held().as_mut() {
            Some(h) => {
                h.set_inherited();
                h.descriptors()
            }
            None => Vec::new(),
        };
        // SAFETY: the closure only calls fcntl, which is async-signal-safe,
        // on descriptors that stay open in the parent until spawn returns.
        unsafe {
            command.pre_exec(move || {
                for &fd in &fds {
                    if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.release_on_drop {
            self.shared.release();
        }
    }
}

/// The ticket a campaign hands to its owned code: it tells the slot and
/// token like a [`Ticket`], but the campaign, not this handle, owns the
/// slot. Dropping it (or any clone of it) changes nothing, so owned code
/// that lets its handle go, or keeps a clone on another thread, does not
/// end ownership by accident; [`release`](Self::release) ends it, and
/// the campaign then runs its cleanup. Once ownership has ended (released,
/// lost or resigned), [`is_held`](Self::is_held) is false.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// use std::sync::mpsc;
/// let e = elect::Election::builder("x").dir(dir.path()).build()?;
/// let (tx, rx) = mpsc::channel();
/// let campaign = e.campaign().run_blocking(move |ticket| tx.send(ticket).unwrap(), |_| {});
/// let ticket: elect::CampaignTicket = rx.recv()?;
/// assert!(ticket.is_held());
/// ticket.release(); // the campaign lets go and ends (no requeue)
/// campaign.join()?;
/// assert!(e.try_obtain()?.is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct CampaignTicket {
    shared: Arc<Shared>,
}

impl CampaignTicket {
    /// The resource name.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let e = elect::Election::builder("job").dir(dir.path()).build()?;
    /// # let (tx, rx) = std::sync::mpsc::channel();
    /// # let _c = e.campaign().run_blocking(move |t| tx.send(t).unwrap(), |_| {});
    /// let ticket: elect::CampaignTicket = rx.recv()?;
    /// assert_eq!(ticket.name(), "job");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The slot held, 0-based.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let e = elect::Election::builder("job").dir(dir.path()).build()?;
    /// # let (tx, rx) = std::sync::mpsc::channel();
    /// # let _c = e.campaign().run_blocking(move |t| tx.send(t).unwrap(), |_| {});
    /// let ticket: elect::CampaignTicket = rx.recv()?;
    /// assert_eq!(ticket.slot(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn slot(&self) -> u32 {
        self.shared.slot
    }

    /// The fencing token of this acquisition (see [`Ticket::token`]).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let e = elect::Election::builder("job").dir(dir.path()).build()?;
    /// let before = e.obtain()?.token();
    /// # let (tx, rx) = std::sync::mpsc::channel();
    /// # let _c = e.campaign().run_blocking(move |t| tx.send(t).unwrap(), |_| {});
    /// let ticket: elect::CampaignTicket = rx.recv()?;
    /// assert!(ticket.token() > before);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn token(&self) -> u64 {
        self.shared.token
    }

    /// The slot file.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let e = elect::Election::builder("job").dir(dir.path()).build()?;
    /// # let (tx, rx) = std::sync::mpsc::channel();
    /// # let _c = e.campaign().run_blocking(move |t| tx.send(t).unwrap(), |_| {});
    /// let ticket: elect::CampaignTicket = rx.recv()?;
    /// assert!(ticket.path().ends_with("job/slot.0"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The record this holder wrote into its slot file.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let e = elect::Election::builder("job").label("nightly").dir(dir.path()).build()?;
    /// # let (tx, rx) = std::sync::mpsc::channel();
    /// # let _c = e.campaign().run_blocking(move |t| tx.send(t).unwrap(), |_| {});
    /// let ticket: elect::CampaignTicket = rx.recv()?;
    /// assert_eq!(ticket.record().label, "nightly");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn record(&self) -> HolderRecord {
        self.shared
            .record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether the campaign still truly holds the slot: false once
    /// ownership ended, and false once the slot file or a directory above
    /// it was removed or replaced (see [`Ticket::is_held`]).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let e = elect::Election::builder("job").dir(dir.path()).build()?;
    /// # let (tx, rx) = std::sync::mpsc::channel();
    /// let campaign = e.campaign().run_blocking(move |t| tx.send(t).unwrap(), |_| {});
    /// let ticket: elect::CampaignTicket = rx.recv()?;
    /// assert!(ticket.is_held());
    /// campaign.resign()?;
    /// assert!(!ticket.is_held());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_held(&self) -> bool {
        self.shared.is_held()
    }

    /// By when work done under this ticket must stop even if it still
    /// looks held (see [`Ticket::deadline`]); `None` on this host.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let e = elect::Election::builder("job").dir(dir.path()).build()?;
    /// # let (tx, rx) = std::sync::mpsc::channel();
    /// # let _c = e.campaign().run_blocking(move |t| tx.send(t).unwrap(), |_| {});
    /// let ticket: elect::CampaignTicket = rx.recv()?;
    /// assert!(ticket.deadline().is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn deadline(&self) -> Option<std::time::Instant> {
        self.shared.held().as_ref().and_then(Held::deadline)
    }

    /// Asks the campaign to let go: the slot is released at once, the
    /// campaign's cleanup runs with [`Ending::Released`](crate::Ending::Released),
    /// and the campaign ends or, with requeue, competes again. Does nothing
    /// once ownership has ended.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let e = elect::Election::builder("job").dir(dir.path()).build()?;
    /// let campaign = e.campaign().run_blocking(|ticket| ticket.release(), |ending| {
    ///     assert_eq!(ending, elect::Ending::Released);
    /// });
    /// campaign.join()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn release(self) {
        self.shared.release();
    }
}
