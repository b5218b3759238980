//! A cancel for a blocking wait, given from another thread.
//!
//! This is the public face of the crate's interrupter: the way language
//! bindings (and any program with its own event loop) end a wait that sleeps
//! on a thread of its own, without signals and without giving up the
//! waiter's place in line until the cancel comes.

use std::time::Duration;

use crate::election::Election;
use crate::error::Result;
use crate::interrupt::{Interrupter, Reason};
use crate::ticket::Ticket;

/// Ends a wait of [`Election::obtain_cancellable`] from another thread.
/// Clones share one cancel; once given, it stays given, so a cancel that
/// comes before the wait starts ends that wait at once. Give each wait that
/// runs at the same time as another its own `Cancel`.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// let e = elect::Election::builder("x").dir(dir.path()).build()?;
/// let _held = e.obtain()?;
/// let cancel = elect::Cancel::new();
/// let (e2, c2) = (e.clone(), cancel.clone());
/// let waiter = std::thread::spawn(move || e2.obtain_cancellable(&c2, None));
/// cancel.cancel();
/// assert!(matches!(waiter.join().unwrap(), Err(elect::Error::Cancelled)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    intr: Interrupter,
}

impl Cancel {
    /// A cancel not given yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Ends the waits under this cancel, now and later; the sleeper wakes at
    /// once (through a pipe, not a signal) and leaves the line.
    pub fn cancel(&self) {
        self.intr.trigger(Reason::Cancelled);
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.intr.reason() == Some(Reason::Cancelled)
    }
}

impl Election {
    /// Waits for a ticket, like [`obtain_timeout`](Self::obtain_timeout)
    /// (no timeout: as long as it takes), until `cancel` is given from
    /// another thread: `Ok(None)` on timeout, `Err(Error::Cancelled)` on
    /// cancel. A cancel that comes with the ticket already taken does not
    /// take it back: the ticket is returned.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use std::time::Duration;
    /// let e = elect::Election::builder("x").dir(dir.path()).build()?;
    /// let cancel = elect::Cancel::new();
    /// let held = e.obtain_cancellable(&cancel, Some(Duration::from_secs(1)))?.expect("free");
    /// assert!(e.obtain_cancellable(&cancel, Some(Duration::from_millis(20)))?.is_none());
    /// drop(held);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn obtain_cancellable(
        &self,
        cancel: &Cancel,
        timeout: Option<Duration>,
    ) -> Result<Option<Ticket>> {
        // The deadline is this call's own; the cancel is shared.
        let mut intr = cancel.intr.clone();
        if let Some(timeout) = timeout {
            intr.set_timeout(timeout);
        }
        self.obtain_with(true, &intr)
    }
}
