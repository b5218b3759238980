//! Stepping back on the CPU: the calling thread under `SCHED_BATCH` for a
//! wait whose wake-up should not preempt whoever runs, and back under
//! `SCHED_OTHER` once it runs.
//!
//! A `SCHED_OTHER` thread that wakes preempts the thread running on its
//! CPU. That is right for the wake-ups elect exists for (a waiter given its
//! ticket) and wrong for two that come at the very moment someone else
//! has work that matters more:
//!
//! * `elect run` waking when its command has just executed its program
//!   (std's spawn returns then): the command's start waited for elect's
//!   bookkeeping, about 60 us of every call (ftrace: the command's first
//!   system call 80 us after its exec, against 25 us under flock(1)).
//! * A waiter in line for a resource with several tickets, woken to become
//!   the head of the line by the head that just got a slot: it preempted
//!   that new holder before its `obtain` returned (the closing of the line
//!   took 19 us at the median, 3 us without the preemption; 4 holders and
//!   16 waiters on 2 CPUs).
//!
//! A `SCHED_BATCH` thread does not preempt on waking; it runs when the CPU
//! is free, on another CPU, or at the next scheduler tick. Once it runs the
//! policy no longer matters until it sleeps again, so it goes back to
//! `SCHED_OTHER` at once: its next wake-up must be answered at once.
//!
//! Only a thread under `SCHED_OTHER` (the default) steps back: one that the
//! user put under another policy (chrt) keeps it.
//!
//! `elect run` steps back while it spawns the command (the first case).

/// The calling thread under `SCHED_BATCH` until dropped, then back under
/// `SCHED_OTHER`; nothing if it was under another policy.
///
#[derive(Debug)]
pub(crate) struct StepBack {
    active: bool,
}

impl StepBack {
    /// Puts the calling thread under `SCHED_BATCH` if it is under
    /// `SCHED_OTHER` (and where there is no `SCHED_BATCH`, does nothing).
    pub(crate) fn begin() -> StepBack {
        #[cfg(target_os = "linux")]
        {
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: plain system calls on the calling thread (0), with a
            // live sched_param; a failure leaves the policy as it was.
            let active = unsafe {
                libc::sched_getscheduler(0) == libc::SCHED_OTHER
                    && libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) == 0
            };
            StepBack { active }
        }
        #[cfg(not(target_os = "linux"))]
        StepBack { active: false }
    }

    /// True when the thread did step back (and is under `SCHED_BATCH` until
    /// this is dropped).
    pub(crate) fn active(&self) -> bool {
        self.active
    }
}

impl Drop for StepBack {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        if self.active {
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: as in `begin`.
            unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &param) };
        }
    }
}
