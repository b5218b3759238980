//! Campaigns: compete for a resource in the background, run the caller's
//! code on winning and the caller's cleanup when ownership ends.
//!
//! This is the seed's `election.obtain(name, owned, cleanup, { tickets })`
//! in Rust. The ticket handed to the owned code, a [`CampaignTicket`],
//! belongs to the campaign: dropping it does not end ownership. Ownership
//! ends when the owned code calls [`CampaignTicket::release`], when the
//! owned future (async form) finishes,
//! when the ticket is lost (its slot file or directory was removed or
//! replaced; checked every [`CampaignBuilder::check_every`], 250 ms by
//! default), or when the campaign is resigned. Then the cleanup runs with the [`Ending`], and the
//! campaign ends, unless it was asked to [`requeue`](CampaignBuilder::requeue),
//! in which case it competes again (resigning always ends it).
//!
//! The slot stays held until the cleanup has returned: the next owner
//! starts only once this one has stopped its work, so the work of two
//! owners never overlaps on one slot. Only a ticket the owned code released
//! itself, or one that was lost, is free before the cleanup runs. A cleanup
//! that hangs keeps the slot, as the owned work would; one that panics
//! frees it.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::election::Election;
use crate::error::{Error, Result};
use crate::interrupt::{Interrupter, Reason};
use crate::ticket::{CampaignTicket, Shared};

/// Why ownership ended; handed to the cleanup.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// let e = elect::Election::builder("x").dir(dir.path()).build()?;
/// let (tx, rx) = std::sync::mpsc::channel();
/// e.campaign().run_blocking(|t| t.release(), move |ending| tx.send(ending).unwrap()).join()?;
/// assert_eq!(rx.recv().unwrap(), elect::Ending::Released);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ending {
    /// The owned code released the ticket, or (async form) its future
    /// finished.
    Released,
    /// The slot was lost: its file or directory was removed or replaced, so
    /// another process may own the resource now. Stop acting as owner.
    Lost,
    /// The campaign was resigned (stopped) from outside.
    Resigned,
}

/// Options of a campaign; from [`Election::campaign`].
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// use std::time::Duration;
/// let e = elect::Election::builder("x").dir(dir.path()).build()?;
/// let builder = e.campaign().requeue(true).check_every(Duration::from_millis(100));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a campaign starts with .run() or .run_blocking()"]
pub struct CampaignBuilder {
    election: Election,
    requeue: bool,
    check_every: Duration,
}

impl Election {
    /// Prepares a campaign for this resource: see [`CampaignBuilder`].
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use std::sync::mpsc;
    /// let e = elect::Election::builder("x").dir(dir.path()).build()?;
    /// let (tx, rx) = mpsc::channel();
    /// let c = e.campaign().run_blocking(
    ///     move |ticket| tx.send(ticket).unwrap(), // keep the ticket elsewhere
    ///     |ending| println!("no longer owner: {ending:?}"),
    /// );
    /// let ticket = rx.recv().unwrap(); // we won
    /// assert!(ticket.is_held());
    /// c.resign()?; // cleanup runs, the slot is free again
    /// assert!(!ticket.is_held());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn campaign(&self) -> CampaignBuilder {
        CampaignBuilder {
            election: self.clone(),
            requeue: false,
            check_every: Duration::from_millis(250),
        }
    }
}

impl CampaignBuilder {
    /// After ownership ends by release or loss, compete again instead of
    /// ending the campaign (like Curator's `autoRequeue`). Default false.
    ///
    /// ```
    /// # let e = elect::Election::new("x")?;
    /// let b = e.campaign().requeue(true);
    /// # Ok::<(), elect::Error>(())
    /// ```
    pub fn requeue(mut self, requeue: bool) -> Self {
        self.requeue = requeue;
        self
    }

    /// How often an owner checks that its slot was not lost (default
    /// 250 ms, so a loss is acted on within a second); at least every
    /// millisecond. A longer period is taken as it is: with
    /// `Duration::MAX` a loss goes unnoticed, and ownership ends only by
    /// release or resignation.
    ///
    /// ```
    /// # let e = elect::Election::new("x")?;
    /// let b = e.campaign().check_every(std::time::Duration::from_millis(50));
    /// # Ok::<(), elect::Error>(())
    /// ```
    pub fn check_every(mut self, every: Duration) -> Self {
        self.check_every = every.max(Duration::from_millis(1));
        self
    }

    /// Starts the campaign on a thread of its own, for programs without an
    /// async runtime. `owned` runs on that thread when the campaign wins and
    /// receives the ticket, like the seed's callback: it starts the owned
    /// work and returns promptly, and ownership lasts until the work calls
    /// [`CampaignTicket::release`], the ticket is lost, or the campaign is
    /// resigned; then `cleanup` runs and should stop that work, and the
    /// slot is freed once it returns, so that the next owner starts only
    /// after this one stopped (a ticket the owned code released itself, or
    /// one that was lost, is free before). A cleanup that hangs keeps the
    /// slot; one that panics frees it. Long work
    /// belongs on a thread of its own that stops when `cleanup` tells it to
    /// or when [`CampaignTicket::is_held`] turns false.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let e = elect::Election::builder("x").dir(dir.path()).build()?;
    /// // Owned code that gives the ticket up at once: the campaign ends.
    /// let c = e.campaign().run_blocking(|ticket| ticket.release(), |ending| {
    ///     assert_eq!(ending, elect::Ending::Released);
    /// });
    /// c.join()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn run_blocking<F, C>(self, mut owned: F, mut cleanup: C) -> BlockingCampaign
    where
        F: FnMut(CampaignTicket) + Send + 'static,
        C: FnMut(Ending) + Send + 'static,
    {
        let intr = Interrupter::new();
        let state = Arc::new(Signal::default());
        let (i2, s2) = (intr.clone(), Arc::clone(&state));
        let thread = std::thread::Builder::new()
            .name(format!("elect-campaign-{}", self.election.name()))
            .spawn(move || -> Result<()> {
                loop {
                    let ticket = match self.election.obtain_with(true, &i2) {
                        Ok(Some(t)) => t,
                        Ok(None) | Err(Error::Cancelled) => return Ok(()),
                        Err(e) => return Err(e),
                    };
                    let shared = ticket.shared();
                    let s3 = Arc::clone(&s2);
                    shared.on_release(Box::new(move || s3.raise(|f| f.released = true)));
                    owned(ticket.for_campaign());
                    let ending = s2.wait_for_end(&shared, self.check_every);
                    let held = ReleaseAfter(&shared);
                    cleanup(ending);
                    drop(held);
                    if ending == Ending::Resigned || !self.requeue {
                        return Ok(());
                    }
                    s2.raise(|f| f.released = false);
                }
            })
            .expect("cannot start a campaign thread");
        BlockingCampaign {
            intr,
            state,
            thread: Some(thread),
            pid: std::process::id(),
        }
    }
}

#[derive(Debug, Default)]
struct Flags {
    released: bool,
    resigned: bool,
}

/// Frees a campaign's slot when dropped: after the cleanup has run, so that
/// the next owner starts only once this one has stopped its work, and also
/// when the cleanup panics or (async) its future is dropped part-way, so
/// that a clone of the [`CampaignTicket`] kept somewhere cannot keep the
/// slot. A ticket lost or released by the owned code is free already.
struct ReleaseAfter<'a>(&'a Shared);

impl Drop for ReleaseAfter<'_> {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// What a blocking campaign's thread waits on.
#[derive(Debug, Default)]
struct Signal {
    flags: Mutex<Flags>,
    changed: Condvar,
}

impl Signal {
    fn raise(&self, f: impl FnOnce(&mut Flags)) {
        f(&mut self.flags.lock().unwrap_or_else(|p| p.into_inner()));
        self.changed.notify_all();
    }

    fn wait_for_end(&self, shared: &Shared, every: Duration) -> Ending {
        let mut flags = self.flags.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if flags.resigned {
                return Ending::Resigned;
            }
            if flags.released || shared.is_released() {
                return Ending::Released;
            }
            if !shared.is_held() {
                return Ending::Lost;
            }
            flags = self
                .changed
                .wait_timeout(flags, every)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// A campaign running on a thread; see [`CampaignBuilder::run_blocking`].
/// Dropping it resigns; [`join`](Self::join) waits for it instead.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// let e = elect::Election::builder("x").dir(dir.path()).build()?;
/// let campaign: elect::BlockingCampaign = e.campaign().run_blocking(|_| {}, |_| {});
/// drop(campaign); // resigns: the slot is free again
/// assert!(e.try_obtain()?.is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[must_use = "dropping a campaign resigns it at once; keep it, or .join() it"]
pub struct BlockingCampaign {
    intr: Interrupter,
    state: Arc<Signal>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
    /// The process whose thread runs the campaign: a fork child inherits
    /// this handle but not the thread.
    pid: u32,
}

impl BlockingCampaign {
    /// Stops competing: ends a wait, or ends ownership and runs the cleanup
    /// with [`Ending::Resigned`]; returns when the campaign has ended, with
    /// the error that ended it earlier, if any. Called from the campaign's
    /// own thread (its owned code or cleanup), it returns at once, and the
    /// campaign ends when that code returns. In a fork child, where the
    /// campaign's thread does not run, resigning or dropping the handle
    /// does nothing: the campaign is the parent's.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let e = elect::Election::builder("x").dir(dir.path()).build()?;
    /// let _held = e.obtain()?; // the campaign below can only wait
    /// let c = e.campaign().run_blocking(|_| unreachable!(), |_| unreachable!());
    /// c.resign()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn resign(mut self) -> Result<()> {
        self.stop()
    }

    /// Waits until the campaign ends by itself (ownership released or lost
    /// without requeue, or an error). Not from the campaign's own code,
    /// which would wait for itself. In a fork child it returns at once.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let e = elect::Election::builder("x").dir(dir.path()).build()?;
    /// e.campaign().run_blocking(|t| t.release(), |_| {}).join()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn join(mut self) -> Result<()> {
        match self.thread.take() {
            Some(t) if self.pid == std::process::id() => {
                t.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
            }
            // A fork child: no thread of its own to wait for.
            Some(t) => {
                std::mem::forget(t);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Whether the campaign has ended.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let e = elect::Election::builder("x").dir(dir.path()).build()?;
    /// // The owned code gives the ticket up at once: the campaign ends by itself.
    /// let c = e.campaign().run_blocking(|t| t.release(), |_| {});
    /// while !c.is_finished() {
    ///     std::thread::yield_now();
    /// }
    /// c.join()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_finished(&self) -> bool {
        self.pid != std::process::id() || self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    fn stop(&mut self) -> Result<()> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        if self.pid != std::process::id() {
            // A fork child: the thread is the parent's, and so is the
            // campaign (the handle's copy of the JoinHandle names a thread
            // that does not exist here, so it is not even dropped).
            std::mem::forget(thread);
            return Ok(());
        }
        self.state.raise(|f| f.resigned = true);
        self.intr.trigger(Reason::Cancelled);
        if thread.thread().id() == std::thread::current().id() {
            // From the campaign's own code: it ends once that code returns;
            // joining itself would deadlock.
            return Ok(());
        }
        thread
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    }
}

impl Drop for BlockingCampaign {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

#[cfg(feature = "tokio")]
pub use self::asynchronous::Campaign;

#[cfg(feature = "tokio")]
mod asynchronous {
    use std::future::Future;

    use tokio::sync::oneshot;

    use super::{CampaignBuilder, Ending, ReleaseAfter};
    use crate::error::Result;
    use crate::ticket::CampaignTicket;

    impl CampaignBuilder {
        /// Starts the campaign as a tokio task (call it inside a runtime).
        /// When the campaign wins, the future `owned(ticket)` runs, and
        /// ownership lasts until it finishes or calls [`CampaignTicket::release`]
        /// (or the ticket is lost, or the campaign resigned); then the
        /// future is dropped, `cleanup(ending)` runs, and the slot is freed
        /// once it has finished, as with [`run_blocking`](Self::run_blocking).
        /// Dropping the ticket
        /// handle does not end ownership.
        ///
        /// ```
        /// # let dir = tempfile::tempdir()?;
        /// # let rt = tokio::runtime::Runtime::new()?;
        /// # rt.block_on(async {
        /// let e = elect::Election::builder("demo-student.echo").tickets(2).dir(dir.path()).build()?;
        /// let campaign = e.campaign().run(
        ///     |ticket| async move {
        ///         println!("Hello World from slot {}", ticket.slot());
        ///         std::future::pending::<()>().await; // own until stopped
        ///     },
        ///     |ending| async move { println!("cleanup after {ending:?}") },
        /// );
        /// tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        /// campaign.resign().await?;
        /// # Ok::<(), elect::Error>(())
        /// # })?;
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        pub fn run<F, Fut, C, CFut>(self, owned: F, cleanup: C) -> Campaign
        where
            F: FnMut(CampaignTicket) -> Fut + Send + 'static,
            Fut: Future<Output = ()> + Send + 'static,
            C: FnMut(Ending) -> CFut + Send + 'static,
            CFut: Future<Output = ()> + Send + 'static,
        {
            let (stop_tx, stop_rx) = oneshot::channel();
            let task = tokio::spawn(self.compete(owned, cleanup, stop_rx));
            Campaign {
                stop: Some(stop_tx),
                task: Some(task),
            }
        }

        async fn compete<F, Fut, C, CFut>(
            self,
            mut owned: F,
            mut cleanup: C,
            mut stop: oneshot::Receiver<()>,
        ) -> Result<()>
        where
            F: FnMut(CampaignTicket) -> Fut + Send + 'static,
            Fut: Future<Output = ()> + Send + 'static,
            C: FnMut(Ending) -> CFut + Send + 'static,
            CFut: Future<Output = ()> + Send + 'static,
        {
            loop {
                // A dropped handle counts as a resignation, like a guard.
                let ticket = tokio::select! {
                    biased;
                    _ = &mut stop => return Ok(()),
                    t = self.election.obtain_async() => t?,
                };
                let shared = ticket.shared();
                let (released_tx, mut released) = oneshot::channel::<()>();
                shared.on_release(Box::new(move || {
                    let _ = released_tx.send(());
                }));
                let mut work = Box::pin(owned(ticket.for_campaign()));
                let mut check = tokio::time::interval(self.check_every);
                check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                let ending = loop {
                    tokio::select! {
                        biased;
                        _ = &mut stop => break Ending::Resigned,
                        _ = &mut released => break Ending::Released,
                        _ = &mut work => break Ending::Released,
                        _ = check.tick() => {
                            if shared.is_released() {
                                break Ending::Released;
                            }
                            if !shared.is_held() {
                                break Ending::Lost;
                            }
                        }
                    }
                };
                // Ownership is over: stop the owned code and run the
                // cleanup, then free the slot (see `ReleaseAfter`).
                drop(work);
                let held = ReleaseAfter(&shared);
                cleanup(ending).await;
                drop(held);
                if ending == Ending::Resigned || !self.requeue {
                    return Ok(());
                }
            }
        }
    }

    /// A campaign running as a tokio task; see [`CampaignBuilder::run`].
    /// Dropping it resigns (the cleanup still runs, in the background);
    /// [`join`](Self::join) waits for it instead.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let rt = tokio::runtime::Runtime::new()?;
    /// # rt.block_on(async {
    /// let e = elect::Election::builder("x").dir(dir.path()).build()?;
    /// let campaign: elect::Campaign = e.campaign().run(|_t| std::future::pending(), |_| async {});
    /// campaign.resign().await?;
    /// # Ok::<(), elect::Error>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[derive(Debug)]
    #[must_use = "dropping a campaign resigns it; keep it, or .join().await it"]
    pub struct Campaign {
        stop: Option<oneshot::Sender<()>>,
        task: Option<tokio::task::JoinHandle<Result<()>>>,
    }

    impl Campaign {
        /// Stops competing: ends a wait, or ends ownership and runs the
        /// cleanup with [`Ending::Resigned`]; returns when the campaign has
        /// ended, with the error that ended it earlier, if any.
        ///
        /// ```
        /// # let dir = tempfile::tempdir()?;
        /// # let rt = tokio::runtime::Runtime::new()?;
        /// # rt.block_on(async {
        /// let e = elect::Election::builder("x").dir(dir.path()).build()?;
        /// let c = e.campaign().run(|_t| std::future::pending(), |_| async {});
        /// c.resign().await?;
        /// assert!(e.try_obtain()?.is_some());
        /// # Ok::<(), elect::Error>(())
        /// # })?;
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        pub async fn resign(mut self) -> Result<()> {
            if let Some(stop) = self.stop.take() {
                let _ = stop.send(());
            }
            self.finish().await
        }

        /// Waits until the campaign ends by itself (ownership released or
        /// lost without requeue, or an error).
        ///
        /// ```
        /// # let dir = tempfile::tempdir()?;
        /// # let rt = tokio::runtime::Runtime::new()?;
        /// # rt.block_on(async {
        /// let e = elect::Election::builder("x").dir(dir.path()).build()?;
        /// // The owned future finishes at once: ownership ends.
        /// e.campaign().run(|_t| async {}, |_| async {}).join().await?;
        /// # Ok::<(), elect::Error>(())
        /// # })?;
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        pub async fn join(mut self) -> Result<()> {
            self.finish().await
        }

        /// Whether the campaign has ended.
        ///
        /// ```
        /// # let rt = tokio::runtime::Runtime::new()?;
        /// # rt.block_on(async {
        /// # let dir = tempfile::tempdir()?;
        /// let e = elect::Election::builder("x").dir(dir.path()).build()?;
        /// let c = e.campaign().run(|_t| std::future::pending(), |_| async {});
        /// assert!(!c.is_finished());
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// # })?;
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        pub fn is_finished(&self) -> bool {
            self.task.as_ref().is_none_or(|t| t.is_finished())
        }

        async fn finish(&mut self) -> Result<()> {
            match self.task.take() {
                Some(task) => match task.await {
                    Ok(r) => r,
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Err(_) => Ok(()),
                },
                None => Ok(()),
            }
        }
    }
}
