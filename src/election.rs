//! One named resource with N tickets, and the ways to obtain one: try,
//! wait, wait with a timeout (and, with the `tokio` feature, wait in async
//! code; see `obtain_async`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::interrupt::Interrupter;
use crate::status::ResourceStatus;
use crate::store::{Request, Store};
use crate::ticket::Ticket;
use crate::watch::Watcher;

/// The most tickets a resource may have.
///
/// ```
/// assert!(elect::Election::builder("x").tickets(elect::MAX_TICKETS).build().is_ok());
/// assert!(elect::Election::builder("x").tickets(elect::MAX_TICKETS + 1).build().is_err());
/// ```
pub const MAX_TICKETS: u32 = 4096;

/// How long [`Election::try_obtain`] waits for locks that others hold for a
/// moment on a resource's bookkeeping before it gives up (it never waits
/// for a ticket).
///
/// ```
/// assert!(elect::TRY_PATIENCE.as_millis() <= 100);
/// ```
pub const TRY_PATIENCE: Duration = Duration::from_millis(100);

/// Mode of the directories elect creates, unless asked otherwise.
pub(crate) const DEFAULT_MODE: u32 = 0o700;
/// Mode of the directories elect creates with group sharing.
pub(crate) const SHARED_MODE: u32 = 0o2770;

/// A named resource of which at most `tickets` participants, in any number
/// of processes of this host, hold a ticket at once.
///
/// An `Election` is cheap to clone and holds nothing open: each obtain
/// opens what it needs, and the [`Ticket`] it returns holds it.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let election = elect::Election::builder("nightly-report").tickets(2).dir(dir.path()).build()?;
/// let a = election.obtain()?;
/// let b = election.obtain()?;
/// assert!(election.try_obtain()?.is_none(), "both tickets are out");
/// drop(a);
/// assert!(election.try_obtain()?.is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Election {
    store: Store,
    req: Request,
}

/// Options for an [`Election`]; see [`Election::builder`].
///
/// ```
/// let builder: elect::ElectionBuilder = elect::Election::builder("x").tickets(2);
/// assert_eq!(builder.build()?.tickets(), 2);
/// # Ok::<(), elect::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "call .build() to get an Election"]
pub struct ElectionBuilder {
    name: String,
    tickets: u32,
    dir: Option<PathBuf>,
    label: Option<String>,
    mode: u32,
    #[cfg(feature = "etcd")]
    etcd: Option<crate::store::etcd::Etcd>,
}

impl ElectionBuilder {
    /// How many holders at once, 1 to 4096 (default 1). All live
    /// participants of a resource must agree on it. An election is live
    /// from its first obtain until it and every ticket it gave are dropped,
    /// holding or not: another number is refused with
    /// [`Error::TicketMismatch`](crate::Error::TicketMismatch) meanwhile.
    ///
    /// ```
    /// let e = elect::Election::builder("pool").tickets(4).build()?;
    /// assert_eq!(e.tickets(), 4);
    /// assert!(elect::Election::builder("pool").tickets(4097).build().is_err());
    /// # Ok::<(), elect::Error>(())
    /// ```
    pub fn tickets(mut self, tickets: u32) -> Self {
        self.tickets = tickets;
        self
    }

    /// The run directory. The default is the contract's: `$ELECT_DIR` (see
    /// [`ENV_DIR`](crate::ENV_DIR)) if set, else `$XDG_RUNTIME_DIR/elect`,
    /// else `/tmp/elect-<uid>`; empty variables count as unset, and a
    /// relative path is made absolute against the current directory.
    ///
    /// ```
    /// let e = elect::Election::builder("x").dir("/tmp/somewhere").build()?;
    /// assert_eq!(e.dir(), std::path::Path::new("/tmp/somewhere"));
    /// # Ok::<(), elect::Error>(())
    /// ```
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// How `status` describes this holder (default: the command line).
    ///
    /// ```
    /// let e = elect::Election::builder("x").label("backup of /srv").build()?;
    /// # Ok::<(), elect::Error>(())
    /// ```
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Shares the run directory with the caller's groups, for participants
    /// of several users in one group. Directories elect creates get mode
    /// 2770 (set-group-ID, so that what is made inside keeps the
    /// directory's group) and files 0660, whatever the umask; directories
    /// and files owned by another user, or writable by their group, are
    /// used when their group is one of the caller's, and never when others
    /// may write to them.
    ///
    /// Without it (the default) elect uses only what the caller or root
    /// owns and nobody else may write, and refuses the rest with
    /// [`Error::Unsafe`](crate::Error::Unsafe). Members of the group can
    /// disturb each other's tickets (RELIABILITY.md says what elect still
    /// guarantees then); give the run directory a group of its own
    /// (`chgrp`) rather than a large one like `users`.
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let e = elect::Election::builder("x").dir(dir.path().join("shared")).group_shared().build()?;
    /// drop(e.obtain()?);
    /// use std::os::unix::fs::PermissionsExt;
    /// let mode = std::fs::metadata(dir.path().join("shared/x"))?.permissions().mode();
    /// assert_eq!(mode & 0o7777, 0o2770);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn group_shared(mut self) -> Self {
        self.mode = SHARED_MODE;
        self
    }

    /// Holds the election on an etcd cluster instead of a run directory, so
    /// that participants on many hosts share it (feature `etcd`). Everything
    /// else is unchanged: at most N holders across all hosts, waiters woken
    /// in arrival order, tokens that strictly increase (etcd revisions).
    /// A holder's slot is freed the moment it releases; after a crash or a
    /// partition, when its lease's TTL runs out (see [`Etcd::ttl`](crate::Etcd::ttl)).
    ///
    /// ```
    /// let etcd = elect::Etcd::new("http://127.0.0.1:2379")?;
    /// let e = elect::Election::builder("scheduler").etcd(etcd).build()?;
    /// assert!(e.dir().to_string_lossy().starts_with("etcd:"));
    /// # Ok::<(), elect::Error>(())
    /// ```
    #[cfg(feature = "etcd")]
    pub fn etcd(mut self, etcd: crate::store::etcd::Etcd) -> Self {
        self.etcd = Some(etcd);
        self
    }

    /// Checks the options and makes the [`Election`]. Nothing on disk is
    /// touched until a ticket is asked for.
    ///
    /// ```
    /// assert!(elect::Election::builder("ok").build().is_ok());
    /// assert!(elect::Election::builder("not ok").build().is_err());
    /// assert!(elect::Election::builder("ok").tickets(0).build().is_err());
    /// ```
    pub fn build(self) -> Result<Election> {
        crate::name::validate_name(&self.name)?;
        if !(1..=MAX_TICKETS).contains(&self.tickets) {
            return Err(Error::InvalidTickets {
                tickets: self.tickets.into(),
                max: MAX_TICKETS,
            });
        }
        // Cleaned once here rather than on every acquisition.
        let label = crate::record::clean_label(&self.label.unwrap_or_else(default_label));
        #[cfg(feature = "etcd")]
        let etcd = self.etcd;
        #[cfg(not(feature = "etcd"))]
        let etcd: Option<std::convert::Infallible> = None;
        let store = match etcd {
            #[cfg(feature = "etcd")]
            Some(etcd) => Store::etcd(etcd),
            #[cfg(not(feature = "etcd"))]
            Some(never) => match never {},
            None => Store::local(crate::rundir::run_dir(self.dir.as_deref())?, self.mode),
        };
        Ok(Election {
            store,
            req: Request {
                name: self.name,
                tickets: self.tickets,
                label,
            },
        })
    }
}

/// The command line of this process.
fn default_label() -> String {
    std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

impl Election {
    /// An election for `resource` with one ticket in the default run
    /// directory. The resource may be anything string-like, such as your own
    /// enum of resource names implementing `AsRef<str>`.
    ///
    /// ```
    /// enum Resource { Echo, Reports }
    /// impl AsRef<str> for Resource {
    ///     fn as_ref(&self) -> &str {
    ///         match self { Resource::Echo => "demo-student.echo", Resource::Reports => "reports" }
    ///     }
    /// }
    /// let e = elect::Election::new(Resource::Echo)?;
    /// assert_eq!(e.name(), "demo-student.echo");
    /// # Ok::<(), elect::Error>(())
    /// ```
    pub fn new(resource: impl AsRef<str>) -> Result<Self> {
        Self::builder(resource).build()
    }

    /// Starts building an election for `resource`.
    ///
    /// ```
    /// let e = elect::Election::builder("db-migrations").tickets(1).label("migrate").build()?;
    /// # Ok::<(), elect::Error>(())
    /// ```
    pub fn builder(resource: impl AsRef<str>) -> ElectionBuilder {
        ElectionBuilder {
            name: resource.as_ref().to_string(),
            tickets: 1,
            dir: None,
            label: None,
            mode: DEFAULT_MODE,
            #[cfg(feature = "etcd")]
            etcd: None,
        }
    }

    /// The resource name.
    ///
    /// ```
    /// assert_eq!(elect::Election::new("x")?.name(), "x");
    /// # Ok::<(), elect::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.req.name
    }

    /// The number of tickets.
    ///
    /// ```
    /// assert_eq!(elect::Election::new("x")?.tickets(), 1);
    /// # Ok::<(), elect::Error>(())
    /// ```
    pub fn tickets(&self) -> u32 {
        self.req.tickets
    }

    /// The etcd cluster the election is held on, if it is (feature `etcd`).
    ///
    /// ```
    /// assert!(elect::Election::new("x")?.etcd().is_none());
    /// # Ok::<(), elect::Error>(())
    /// ```
    #[cfg(feature = "etcd")]
    pub fn etcd(&self) -> Option<&crate::store::etcd::Etcd> {
        self.store.etcd_config()
    }

    /// The run directory, absolute; for an election on etcd, its
    /// location (`Etcd::location`, feature `etcd`).
    ///
    /// ```
    /// assert!(elect::Election::new("x")?.dir().is_absolute());
    /// # Ok::<(), elect::Error>(())
    /// ```
    pub fn dir(&self) -> &Path {
        self.store.location()
    }

    /// Takes a free ticket if there is one and no running waiter stands in
    /// line for one (it never overtakes those who came first), without
    /// waiting for one.
    ///
    /// It does wait, up to [`TRY_PATIENCE`], for locks that someone else
    /// holds for a moment on the resource's bookkeeping (systemd-tmpfiles
    /// ageing the directory, another participant agreeing on N or taking a
    /// token); past that it gives up as if no ticket were free.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let e = elect::Election::builder("x").dir(dir.path()).build()?;
    /// let t = e.try_obtain()?;
    /// assert!(t.is_some());
    /// assert!(e.try_obtain()?.is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_obtain(&self) -> Result<Option<Ticket>> {
        let mut intr = Interrupter::new();
        intr.set_timeout(TRY_PATIENCE);
        self.obtain_with(false, &intr)
    }

    /// Waits as long as it takes for a ticket, in line behind those who came
    /// first. The wait sleeps (in `poll`, woken by inotify) and costs no
    /// CPU but a look once a second; the first in line takes a ticket the
    /// moment a holder releases, exits or is killed.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let e = elect::Election::builder("x").dir(dir.path()).build()?;
    /// let t = e.obtain()?;
    /// let e2 = e.clone();
    /// let waiter = std::thread::spawn(move || e2.obtain().map(|t| t.slot()));
    /// drop(t); // the waiter gets it now
    /// assert_eq!(waiter.join().unwrap()?, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn obtain(&self) -> Result<Ticket> {
        match self.obtain_with(true, &Interrupter::new())? {
            Some(t) => Ok(t),
            None => unreachable!("an untriggered wait ends only with a ticket"),
        }
    }

    /// Waits up to `timeout` for a ticket; `Ok(None)` if none came in time.
    /// A zero timeout is the same as [`try_obtain`](Self::try_obtain), and
    /// one too long to be a deadline (`Duration::MAX`) the same as
    /// [`obtain`](Self::obtain).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use std::time::Duration;
    /// let e = elect::Election::builder("x").dir(dir.path()).build()?;
    /// let _held = e.obtain()?;
    /// assert!(e.obtain_timeout(Duration::from_millis(50))?.is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn obtain_timeout(&self, timeout: Duration) -> Result<Option<Ticket>> {
        if timeout.is_zero() {
            return self.try_obtain();
        }
        let mut intr = Interrupter::new();
        intr.set_timeout(timeout);
        self.obtain_with(true, &intr)
    }

    /// The common path: obtain, waiting if `wait`, until `intr` says stop.
    pub(crate) fn obtain_with(&self, wait: bool, intr: &Interrupter) -> Result<Option<Ticket>> {
        Ok(self
            .store
            .obtain(&self.req, wait, intr)?
            .map(|held| Ticket::new(&self.req.name, held)))
    }

    /// The status of this resource, as the kernel sees it now. Never takes
    /// a ticket.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let e = elect::Election::builder("x").dir(dir.path()).build()?;
    /// assert!(e.status()?.slots.is_empty(), "never used");
    /// let _t = e.obtain()?;
    /// assert!(e.status()?.slots[0].held);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn status(&self) -> Result<ResourceStatus> {
        Ok(self
            .store
            .status(Some(&self.req.name))?
            .pop()
            .unwrap_or_else(|| ResourceStatus {
                name: self.req.name.clone(),
                tickets: self.req.tickets,
                slots: Vec::new(),
                waiters: None,
            }))
    }

    /// Starts watching changes of ownership of this resource; see
    /// [`Watcher`].
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let e = elect::Election::builder("x").dir(dir.path()).build()?;
    /// let mut w = e.watch()?;
    /// let t = e.obtain()?;
    /// let ev = w.next_event()?;
    /// assert_eq!((ev.kind, ev.token), (elect::EventKind::Acquired, t.token()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn watch(&self) -> Result<Watcher> {
        Watcher::new(self.store.watch(&self.req.name)?, self.req.name.clone())
    }
}
