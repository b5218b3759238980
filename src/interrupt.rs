//! Cancellable blocking waits.
//!
//! A waiter sleeps in the kernel (a blocking `flock(2)`, or `ppoll(2)` on an
//! inotify descriptor), because that costs nothing while it waits and lets
//! the kernel hand a lock to one waiter at a time, in arrival order. Neither
//! call takes a timeout or a cancel descriptor, so a timeout, a dropped async
//! future or a resigned campaign interrupts the sleeping thread with a
//! signal: [`WAKE_SIGNAL`], whose handler does nothing and is installed
//! without `SA_RESTART`, so the call returns `EINTR` and the waiter looks at
//! why it was woken.
//!
//! The signal is sent only to a thread that has registered itself as
//! sleeping and only while it is registered, so it never reaches a thread
//! that has moved on. A signal that lands just before the thread enters the
//! kernel is lost, so the canceller sends it again every few hundred
//! microseconds until the waiter says it is awake.
//!
//! If another part of the program already handles [`WAKE_SIGNAL`], elect
//! does not take it over: waits then poll every [`POLL_FALLBACK`] instead.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, Once};
use std::time::{Duration, Instant};

/// The signal that interrupts a sleeping waiter. `SIGURG` is ignored by
/// default, so a stray one is harmless, and programs rarely use it (Go's
/// runtime chose it for the same reasons).
pub(crate) const WAKE_SIGNAL: libc::c_int = libc::SIGURG;

/// How often a wait polls when [`WAKE_SIGNAL`] is taken by someone else.
pub(crate) const POLL_FALLBACK: Duration = Duration::from_millis(10);

/// How long a canceller keeps signalling a waiter that does not wake before
/// it gives up (only possible if someone replaced the handler with one that
/// restarts system calls).
const GIVE_UP: Duration = Duration::from_secs(2);

static INSTALL: Once = Once::new();
static SIGNAL_OURS: AtomicBool = AtomicBool::new(false);

extern "C" fn on_wake_signal(_: libc::c_int) {}

/// Installs the no-op handler once, unless the signal is already handled;
/// says whether waits can be interrupted by [`WAKE_SIGNAL`].
pub(crate) fn signal_available() -> bool {
    INSTALL.call_once(|| {
        // SAFETY: sigaction with a zeroed struct is the documented way to
        // query and set a disposition; the handler is async-signal-safe (it
        // does nothing).
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(WAKE_SIGNAL, std::ptr::null(), &mut old) != 0 {
                return;
            }
            if old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN {
                return;
            }
            let mut new: libc::sigaction = std::mem::zeroed();
            new.sa_sigaction = on_wake_signal as extern "C" fn(libc::c_int) as usize;
            // No SA_RESTART: the whole point is that flock and ppoll return EINTR.
            new.sa_flags = 0;
            libc::sigemptyset(&mut new.sa_mask);
            if libc::sigaction(WAKE_SIGNAL, &new, std::ptr::null_mut()) == 0 {
                SIGNAL_OURS.store(true, Ordering::Release);
            }
        }
    });
    SIGNAL_OURS.load(Ordering::Acquire)
}

/// Why a wait was interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// The deadline passed.
    TimedOut,
    /// The caller gave up (dropped future, resigned campaign).
    Cancelled,
    /// A recheck found that what the sleeper waits on is gone (its file was
    /// removed): it should start again. Unlike the others this does not
    /// stick; it is consumed by the wait it ended.
    Nudged,
}

/// A callback run when the interrupter is triggered.
type Listener = Box<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct State {
    reason: Option<Reason>,
    /// Called on trigger: how a wait that sleeps in an async runtime rather
    /// than in a system call (the etcd store) learns that it must stop.
    listener: Option<Listener>,
    /// The recheck whose nudges the current wait accepts.
    recheck: Option<u64>,
    nudged: bool,
    sleeper: Option<libc::pthread_t>,
    /// Threads waiting on `changed`: when there are none, a sleeper
    /// leaving its system call has nobody to tell (which saves a system
    /// call between a waiter's wake-up and its ticket).
    watchers: usize,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("reason", &self.reason)
            .field("recheck", &self.recheck)
            .field("nudged", &self.nudged)
            .field("sleeper", &self.sleeper)
            .field("watchers", &self.watchers)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct Inner {
    state: Mutex<State>,
    changed: Condvar,
}

/// A handle that can interrupt one waiting thread. Clones share the state.
#[derive(Debug, Clone, Default)]
pub(crate) struct Interrupter {
    inner: Arc<Inner>,
}

impl Interrupter {
    /// A fresh, untriggered interrupter.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Why it was triggered, if it was.
    pub(crate) fn reason(&self) -> Option<Reason> {
        self.lock().reason
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits on `changed` for up to `d`, counted in `watchers`.
    fn wait_changed<'a>(
        &self,
        mut state: std::sync::MutexGuard<'a, State>,
        d: Duration,
    ) -> std::sync::MutexGuard<'a, State> {
        state.watchers += 1;
        let (mut state, _) = self
            .inner
            .changed
            .wait_timeout(state, d)
            .unwrap_or_else(|p| p.into_inner());
        state.watchers -= 1;
        state
    }

    /// Triggers the interrupter and waits until the registered sleeper, if
    /// any, has left its system call. The first reason given sticks.
    pub(crate) fn trigger(&self, reason: Reason) {
        let mut state = self.lock();
        state.reason.get_or_insert(reason);
        if let Some(listener) = &state.listener {
            listener();
        }
        self.inner.changed.notify_all();
        self.wake_sleeper(state, |_| true);
    }

    /// Runs `listener` when the interrupter is triggered (at once if it
    /// already was), in place of any listener set before. The listener runs
    /// under the interrupter's lock: it must only signal, never block.
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    pub(crate) fn on_trigger(&self, listener: impl Fn() + Send + Sync + 'static) {
        let mut state = self.lock();
        if state.reason.is_some() {
            listener();
        }
        state.listener = Some(Box::new(listener));
    }

    /// Accepts nudges from recheck `id` for the wait about to begin.
    pub(crate) fn expect_nudges(&self, id: u64) {
        let mut state = self.lock();
        state.recheck = Some(id);
        state.nudged = false;
    }

    /// Stops accepting nudges from recheck `id`, forgetting one not yet
    /// taken.
    pub(crate) fn stop_nudges(&self, id: u64) {
        let mut state = self.lock();
        if state.recheck == Some(id) {
            state.recheck = None;
            state.nudged = false;
        }
    }

    /// Ends the current wait with [`Reason::Nudged`], once, if it accepts
    /// nudges from recheck `id`; waits until the sleeper has left its
    /// system call (or there is none).
    pub(crate) fn nudge(&self, id: u64) {
        let mut state = self.lock();
        if state.sleeper.is_none() || state.recheck != Some(id) {
            return;
        }
        state.nudged = true;
        self.wake_sleeper(state, |s| s.nudged);
    }

    /// Signals the registered sleeper until it leaves its system call or
    /// `still` turns false.
    fn wake_sleeper(
        &self,
        mut state: std::sync::MutexGuard<'_, State>,
        still: impl Fn(&State) -> bool,
    ) {
        let start = Instant::now();
        let mut pause = Duration::from_micros(50);
        while let Some(thread) = state.sleeper {
            if !still(&state) {
                break;
            }
            // SAFETY: the sleeper is registered, and it unregisters only under
            // this lock, so the thread is alive while we hold it.
            unsafe { libc::pthread_kill(thread, WAKE_SIGNAL) };
            if start.elapsed() > GIVE_UP {
                break;
            }
            state = self.wait_changed(state, pause);
            pause = (pause * 2).min(Duration::from_millis(2));
        }
    }

    /// Triggers with [`Reason::TimedOut`] at `deadline` from a watchdog
    /// thread, unless disarmed first. The watchdog ends when the returned
    /// guard is dropped.
    pub(crate) fn arm(&self, deadline: Instant) -> Watchdog {
        let me = self.clone();
        Watchdog::spawn("elect-deadline", move |disarmed| {
            if !disarmed(deadline.saturating_duration_since(Instant::now())) {
                me.trigger(Reason::TimedOut);
            }
        })
    }

    /// Runs `call` as the registered sleeper: `call` is retried on `EINTR`
    /// until it succeeds, fails otherwise, or the interrupter is triggered.
    fn sleep<T>(&self, mut call: impl FnMut() -> io::Result<T>) -> Result<io::Result<T>, Reason> {
        loop {
            {
                let mut state = self.lock();
                if let Some(reason) = state.reason {
                    return Err(reason);
                }
                // SAFETY: pthread_self cannot fail.
                state.sleeper = Some(unsafe { libc::pthread_self() });
            }
            let result = call();
            let mut state = self.lock();
            state.sleeper = None;
            let nudged = std::mem::take(&mut state.nudged);
            if state.watchers > 0 {
                self.inner.changed.notify_all();
            }
            match result {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    if let Some(reason) = state.reason {
                        return Err(reason);
                    }
                    if nudged {
                        return Err(Reason::Nudged);
                    }
                }
                other => return Ok(other),
            }
        }
    }

    /// Sleeps for up to `d` unless triggered first.
    pub(crate) fn pause(&self, d: Duration) -> Result<(), Reason> {
        let state = self.lock();
        if let Some(r) = state.reason {
            return Err(r);
        }
        let state = self.wait_changed(state, d);
        match state.reason {
            Some(r) => Err(r),
            None => Ok(()),
        }
    }

    /// Takes an exclusive flock on `fd`, sleeping in the kernel until it is
    /// granted or this interrupter is triggered.
    pub(crate) fn lock_exclusive(&self, fd: BorrowedFd<'_>) -> Result<io::Result<()>, Reason> {
        static NEVER: AtomicBool = AtomicBool::new(false);
        self.lock_exclusive_unless(fd, &NEVER)
            .map(|r| r.map(|_| ()))
    }

    /// Takes an exclusive flock on `fd` like [`Interrupter::lock_exclusive`],
    /// but gives up, with `Ok(Ok(false))`, once `stop` is set: whoever sets
    /// it then nudges this wait (see [`Interrupter::nudge`]), and a nudge
    /// that came before the sleep began is seen here, because `stop` is
    /// read after the sleeper registered.
    pub(crate) fn lock_exclusive_unless(
        &self,
        fd: BorrowedFd<'_>,
        stop: &AtomicBool,
    ) -> Result<io::Result<bool>, Reason> {
        let raw = fd.as_raw_fd();
        if !signal_available() {
            return self.lock_by_polling(raw, stop);
        }
        self.sleep(|| {
            if stop.load(Ordering::SeqCst) {
                return Ok(false);
            }
            // SAFETY: raw is a descriptor borrowed for this call.
            if unsafe { libc::flock(raw, libc::LOCK_EX) } == 0 {
                Ok(true)
            } else {
                Err(io::Error::last_os_error())
            }
        })
    }

    /// The fallback when the wake signal belongs to someone else.
    fn lock_by_polling(
        &self,
        raw: libc::c_int,
        stop: &AtomicBool,
    ) -> Result<io::Result<bool>, Reason> {
        loop {
            if stop.load(Ordering::SeqCst) {
                return Ok(Ok(false));
            }
            // SAFETY: raw is a descriptor borrowed for this call.
            if unsafe { libc::flock(raw, libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(Ok(true));
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::WouldBlock && err.kind() != io::ErrorKind::Interrupted {
                return Ok(Err(err));
            }
            self.pause(POLL_FALLBACK)?;
        }
    }

    /// Waits on `watch` for up to `timeout`, unless triggered first.
    pub(crate) fn watch(
        &self,
        watch: &crate::sys::DirWatch,
        timeout: Option<Duration>,
    ) -> Result<io::Result<crate::sys::Seen>, Reason> {
        if !signal_available() {
            let t = timeout.map_or(POLL_FALLBACK, |t| t.min(POLL_FALLBACK));
            self.pause(t)?;
            return Ok(watch.drain().map(|mut s| {
                // Without a signal we cannot sleep in ppoll, so every pause
                // counts as a possible change.
                s.slot_closed = true;
                s
            }));
        }
        self.sleep(|| watch.wait(timeout))
    }
}

/// A watchdog thread: disarmed, and joined, when dropped.
#[derive(Debug)]
pub(crate) struct Watchdog {
    disarm: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    /// Runs `body` on a small thread. `body` gets `disarmed(d)`, which waits
    /// up to `d` and says whether the watchdog was dropped meanwhile.
    fn spawn(name: &str, body: impl FnOnce(&dyn Fn(Duration) -> bool) + Send + 'static) -> Self {
        let disarm = Arc::new((Mutex::new(false), Condvar::new()));
        let d = Arc::clone(&disarm);
        let thread = std::thread::Builder::new()
            .name(name.into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let disarmed = |wait: Duration| {
                    let (lock, cv) = &*d;
                    let deadline = Instant::now() + wait;
                    let mut done = lock.lock().unwrap_or_else(|p| p.into_inner());
                    while !*done {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        done = cv
                            .wait_timeout(done, left)
                            .unwrap_or_else(|p| p.into_inner())
                            .0;
                    }
                    *done
                };
                body(&disarmed);
            })
            .ok();
        Watchdog { disarm, thread }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let (lock, cv) = &*self.disarm;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::os::fd::AsFd;

    #[test]
    fn a_blocked_flock_is_interrupted_by_trigger() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let holder = File::create(&path).unwrap();
        holder.lock().unwrap();
        let intr = Interrupter::new();
        let i2 = intr.clone();
        let waiter = std::thread::spawn(move || {
            let f = File::open(&path).unwrap();
            i2.lock_exclusive(f.as_fd()).map(|r| r.is_ok())
        });
        // The waiter may or may not have entered flock yet; either way the
        // trigger must bring it back with the reason.
        intr.trigger(Reason::Cancelled);
        assert_eq!(waiter.join().unwrap(), Err(Reason::Cancelled));
    }

    #[test]
    fn a_deadline_interrupts_with_timed_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let holder = File::create(&path).unwrap();
        holder.lock().unwrap();
        let intr = Interrupter::new();
        let _dog = intr.arm(Instant::now() + Duration::from_millis(50));
        let f = File::open(&path).unwrap();
        assert_eq!(
            intr.lock_exclusive(f.as_fd()).map(|r| r.is_ok()),
            Err(Reason::TimedOut)
        );
    }
}
