//! Rechecks for sleeping waiters: one thread per process looks, once a
//! second, whether what each sleeping waiter waits on still exists, and
//! nudges the waiters whose file is gone so that they start again.
//!
//! A waiter blocked in `flock` on a slot file that was removed (the run
//! directory taken away under a holder that never checks) would otherwise
//! wait for that old holder for ever while a fresh slot stands free. One
//! shared thread, rather than one per wait, keeps a wait as cheap as the
//! kernel's: registering is a push onto a list, and the thread sleeps
//! without waking when nobody waits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

use crate::interrupt::Interrupter;

/// How often the registered waiters are checked.
const PERIOD: Duration = Duration::from_secs(1);

type Check = Box<dyn Fn() -> bool + Send>;

struct Entry {
    id: u64,
    intr: Interrupter,
    still_valid: Check,
}

#[derive(Default)]
struct Registry {
    entries: Mutex<Vec<Entry>>,
    changed: Condvar,
}

static REGISTRY: OnceLock<Registry> = OnceLock::new();
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn registry() -> &'static Registry {
    REGISTRY.get_or_init(|| {
        // If the thread cannot start, waits simply go unchecked, as they
        // would be without this module.
        let _ = std::thread::Builder::new()
            .name("elect-recheck".into())
            .stack_size(64 * 1024)
            .spawn(run);
        Registry::default()
    })
}

/// While this guard lives, `still_valid` is called about once a second and,
/// when it returns false, the sleeper of `intr` is nudged: its wait ends
/// with `Reason::Nudged`.
pub(crate) struct Recheck {
    id: u64,
    intr: Interrupter,
}

/// Registers a check for the wait about to begin on `intr`.
pub(crate) fn register(
    intr: &Interrupter,
    still_valid: impl Fn() -> bool + Send + 'static,
) -> Recheck {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    intr.expect_nudges(id);
    let reg = registry();
    let mut entries = reg.entries.lock().unwrap_or_else(|p| p.into_inner());
    entries.push(Entry {
        id,
        intr: intr.clone(),
        still_valid: Box::new(still_valid),
    });
    // The thread waits on the condition only while the list is empty.
    if entries.len() == 1 {
        reg.changed.notify_all();
    }
    drop(entries);
    Recheck {
        id,
        intr: intr.clone(),
    }
}

impl Recheck {
    /// The id its nudges carry: another thread may nudge the same wait with
    /// it (see [`Interrupter::nudge`]).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for Recheck {
    fn drop(&mut self) {
        let reg = registry();
        reg.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|e| e.id != self.id);
        // A nudge meant for this wait must not end a later one.
        self.intr.stop_nudges(self.id);
    }
}

/// The checking thread.
fn run() {
    let reg = loop {
        // The registry is being initialised by the thread that started us.
        if let Some(r) = REGISTRY.get() {
            break r;
        }
        std::thread::yield_now();
    };
    loop {
        {
            let mut entries = reg.entries.lock().unwrap_or_else(|p| p.into_inner());
            while entries.is_empty() {
                entries = reg.changed.wait(entries).unwrap_or_else(|p| p.into_inner());
            }
        }
        std::thread::sleep(PERIOD);
        let stale: Vec<(u64, Interrupter)> = reg
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|e| !(e.still_valid)())
            .map(|e| (e.id, e.intr.clone()))
            .collect();
        for (id, intr) in stale {
            intr.nudge(id);
        }
    }
}
