//! Obtaining a ticket from async code (tokio), cancel-safely.
//!
//! The wait itself runs on a thread of its own (`elect-waiter`), which
//! sleeps in `poll` as a blocking wait does. Dropping the future cancels
//! that wait (through its interrupter's pipe) and joins the thread before
//! the drop returns, so once the future is gone no slot is held and no
//! thread or descriptor is left behind.

use crate::election::Election;
use crate::error::{Error, Result};
use crate::interrupt::{Interrupter, Reason};
use crate::ticket::Ticket;

/// Stack size of a waiting thread: it only makes a few system calls.
const WAITER_STACK: usize = 128 * 1024;

/// Interrupts and joins the waiting thread when dropped.
struct WaiterThread {
    intr: Interrupter,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for WaiterThread {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.intr.trigger(Reason::Cancelled);
            let _ = t.join();
        }
    }
}

impl Election {
    /// Waits for a ticket without blocking the async runtime. Cancel-safe:
    /// dropping the future (for example when `tokio::time::timeout` or
    /// `select!` gives up on it) leaves no slot held.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// # rt.block_on(async {
    /// use std::time::Duration;
    /// let e = elect::Election::builder("x").dir(dir.path()).build()?;
    /// let held = e.obtain_async().await?;
    /// // A second wait gives up after 50 ms; nothing is left behind.
    /// assert!(tokio::time::timeout(Duration::from_millis(50), e.obtain_async()).await.is_err());
    /// drop(held);
    /// assert!(e.try_obtain()?.is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use = "a future does nothing unless awaited, and the ticket it gives is released when dropped"]
    pub async fn obtain_async(&self) -> Result<Ticket> {
        if let Some(t) = self.try_obtain()? {
            return Ok(t);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let intr = Interrupter::new();
        let me = self.clone();
        let i2 = intr.clone();
        let thread = std::thread::Builder::new()
            .name("elect-waiter".into())
            .stack_size(WAITER_STACK)
            .spawn(move || {
                let got = me.obtain_with(true, &i2);
                // If the future is gone the ticket comes back here and is
                // dropped, releasing it.
                let _ = tx.send(got);
            })
            .map_err(|e| Error::io("cannot start a waiting thread for", self.dir(), e))?;
        let waiter = WaiterThread {
            intr,
            thread: Some(thread),
        };
        let got = rx.await;
        drop(waiter);
        match got {
            Ok(Ok(Some(t))) => Ok(t),
            Ok(Ok(None)) | Ok(Err(Error::Cancelled)) => Err(Error::Cancelled),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Cancelled),
        }
    }
}
