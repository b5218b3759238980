//! How a wait ends early: a deadline, and a cancel that another thread (a
//! dropped async wait, a resigned campaign) can give — without signals.
//!
//! A waiter never sleeps where it cannot be woken: it sleeps in `poll(2)`
//! on its inotify descriptor and on this interrupter's pipe, with a
//! timeout no later than the deadline. Cancelling writes to the pipe, so
//! the sleeper returns at once; a deadline needs no helper thread, since the
//! sleeper's own timeout ends the sleep. Locks are only ever tried without
//! blocking, so no other process, however it holds them, can keep a waiter
//! from looking at its deadline.
//!
//! Nothing here is global: no signal handler, no thread. The pipe is made
//! at the first sleep and closed with the last clone; it is written once,
//! at the first trigger, and never read, so it stays readable: a trigger
//! is for good.

use std::io::{self, PipeReader, PipeWriter, Write};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Why a wait was interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// The deadline passed.
    TimedOut,
    /// The caller gave up (dropped future, resigned campaign).
    Cancelled,
}

/// The pipe a sleeper polls, and the process it belongs to. A fork child
/// inherits the descriptors, but a trigger there must not make the
/// parent's sleeps return at once (forever: the pipe is never read), and a
/// sleep there must not wake for the parent's trigger, which the child's
/// memory knows nothing of: a fork child makes a pipe of its own.
struct Wake {
    reader: Arc<PipeReader>,
    writer: PipeWriter,
    pid: u32,
}

/// A callback run when the interrupter is triggered.
type Listener = Box<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct State {
    reason: Option<Reason>,
    /// Readable once triggered; made at the first sleep.
    wake: Option<Wake>,
    /// Called on trigger: how a wait that sleeps in an async runtime rather
    /// than in `poll` (the etcd store) learns that it must stop.
    listener: Option<Listener>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("reason", &self.reason)
            .finish_non_exhaustive()
    }
}

/// A wait's deadline and cancel. Clones share the cancel; the deadline is
/// each handle's own, set before the wait starts.
#[derive(Debug, Clone, Default)]
pub(crate) struct Interrupter {
    inner: Arc<Mutex<State>>,
    deadline: Option<Instant>,
}

/// What [`Interrupter::sleep`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Woken {
    /// The descriptor slept on became readable.
    Ready,
    /// The timeout given passed (not the deadline: that is `Err`).
    Timeout,
}

impl Interrupter {
    /// A fresh interrupter: no deadline, not triggered.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends the waits under this handle (and clones made after) once
    /// `timeout` from now has passed. A timeout too large to add to the
    /// clock is no deadline at all.
    pub(crate) fn set_timeout(&mut self, timeout: Duration) {
        self.deadline = Instant::now().checked_add(timeout);
    }

    /// The deadline, if one was set.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Why the wait must end, if it must: triggered, or past the deadline.
    pub(crate) fn reason(&self) -> Option<Reason> {
        self.state().reason.or_else(|| {
            self.deadline
                .filter(|&d| Instant::now() >= d)
                .map(|_| Reason::TimedOut)
        })
    }

    /// `Err` with the reason if the wait must end.
    pub(crate) fn check(&self) -> Result<(), Reason> {
        self.reason().map_or(Ok(()), Err)
    }

    /// Ends the wait (now and any later one) for `reason`, waking a sleeper.
    pub(crate) fn trigger(&self, reason: Reason) {
        let mut st = self.state();
        if st.reason.is_some() {
            return;
        }
        st.reason = Some(reason);
        if let Some(wake) = &mut st.wake
            && wake.pid == std::process::id()
        {
            // One byte, once: it cannot fill the pipe.
            let _ = wake.writer.write_all(b"!");
        }
        if let Some(listener) = &st.listener {
            listener();
        }
    }

    /// Runs `listener` when triggered (at once if triggered already).
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))] // only etcd waits elsewhere
    pub(crate) fn on_trigger(&self, listener: impl Fn() + Send + Sync + 'static) {
        let mut st = self.state();
        if st.reason.is_some() {
            listener();
        }
        st.listener = Some(Box::new(listener));
    }

    /// The pipe end that becomes readable on trigger, made now if need be.
    fn wake_fd(&self) -> io::Result<Arc<PipeReader>> {
        let mut st = self.state();
        let pid = std::process::id();
        if let Some(wake) = &st.wake
            && wake.pid == pid
        {
            return Ok(Arc::clone(&wake.reader));
        }
        // None yet, or a parent's (closed here, in this process only).
        let (reader, mut writer) = io::pipe()?;
        if st.reason.is_some() {
            let _ = writer.write_all(b"!");
        }
        let reader = Arc::new(reader);
        st.wake = Some(Wake {
            reader: Arc::clone(&reader),
            writer,
            pid,
        });
        Ok(reader)
    }

    /// Sleeps until `fd` (if any) is readable, `timeout` (if any) passes,
    /// or the wait must end (`Err`). Never sleeps past the deadline.
    pub(crate) fn sleep(
        &self,
        fd: Option<std::os::fd::BorrowedFd<'_>>,
        timeout: Option<Duration>,
    ) -> io::Result<Result<Woken, Reason>> {
        if let Err(reason) = self.check() {
            return Ok(Err(reason));
        }
        let wake = self.wake_fd()?;
        let until_deadline = self
            .deadline()
            .map(|d| d.saturating_duration_since(Instant::now()));
        let limit = match (timeout, until_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let pollfd = |fd: libc::c_int| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let mut pfd = [
            pollfd(wake.as_raw_fd()),
            pollfd(fd.map_or(-1, |f| f.as_raw_fd())),
        ];
        let ts = limit.map(|t| libc::timespec {
            tv_sec: t.as_secs().min(i32::MAX as u64) as libc::time_t,
            tv_nsec: t.subsec_nanos() as libc::c_long,
        });
        let tsp = ts.as_ref().map_or(std::ptr::null(), |t| t as *const _);
        // SAFETY: two valid pollfds (a negative fd is ignored); tsp is null
        // or points at a live timespec.
        let n = unsafe { libc::ppoll(pfd.as_mut_ptr(), 2, tsp, std::ptr::null()) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
        if let Err(reason) = self.check() {
            return Ok(Err(reason));
        }
        Ok(Ok(if n > 0 && pfd[1].revents != 0 {
            Woken::Ready
        } else {
            Woken::Timeout
        }))
    }

    /// Sleeps `d`, or less if the wait must end (`Err`).
    pub(crate) fn pause(&self, d: Duration) -> Result<(), Reason> {
        match self.sleep(None, Some(d)) {
            Ok(Err(reason)) => Err(reason),
            // A pipe or poll that fails leaves a short sleep.
            Ok(Ok(_)) => Ok(()),
            Err(_) => {
                std::thread::sleep(d.min(Duration::from_millis(10)));
                self.check()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trigger_from_another_thread_ends_a_sleep_at_once() {
        let intr = Interrupter::new();
        let other = intr.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            other.trigger(Reason::Cancelled);
        });
        let start = Instant::now();
        let got = intr.sleep(None, Some(Duration::from_secs(30))).unwrap();
        assert_eq!(got, Err(Reason::Cancelled));
        assert!(start.elapsed() < Duration::from_secs(10));
        t.join().unwrap();
        // Sticks: a later wait ends at once.
        assert_eq!(intr.pause(Duration::from_secs(30)), Err(Reason::Cancelled));
    }

    #[test]
    fn a_trigger_in_a_fork_child_does_not_wake_the_parent() {
        let intr = Interrupter::new();
        // The pipe exists before the fork, as for a wait under way.
        let first = intr.sleep(None, Some(Duration::from_millis(1))).unwrap();
        assert_eq!(first, Ok(Woken::Timeout));
        let copy = intr.clone();
        // SAFETY: the child only triggers its copy (a mutex no other
        // thread of the child holds) and ends with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            copy.trigger(Reason::Cancelled);
            // SAFETY: ends the child at once.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(intr.check(), Ok(()));
        let start = Instant::now();
        let got = intr.sleep(None, Some(Duration::from_millis(200))).unwrap();
        assert_eq!(got, Ok(Woken::Timeout));
        assert!(
            start.elapsed() >= Duration::from_millis(150),
            "the child's trigger ended the parent's sleep at once"
        );
    }

    #[test]
    fn a_deadline_ends_a_sleep_with_timed_out() {
        let mut intr = Interrupter::new();
        intr.set_timeout(Duration::from_millis(20));
        let got = intr.sleep(None, None).unwrap();
        assert_eq!(got, Err(Reason::TimedOut));
    }

    #[test]
    fn a_trigger_before_the_first_sleep_is_not_lost() {
        let intr = Interrupter::new();
        intr.trigger(Reason::Cancelled);
        assert_eq!(intr.sleep(None, None).unwrap(), Err(Reason::Cancelled));
    }
}
