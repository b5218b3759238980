//! Watching a resource: one event per change of ownership, as it happens.
//!
//! The watcher sleeps on inotify and, when woken, compares what the kernel
//! says is held (and the holders' records) with what it saw before. Because
//! a close event can arrive a moment before the kernel drops the lock, it
//! looks again 1, 5, 20 and 50 ms after each event, so every change is
//! reported within 100 ms; once a second while idle it looks anyway.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::interrupt::Interrupter;
use crate::record::HolderRecord;
use crate::status::ResourceStatus;
use crate::store::Watch;

/// Pauses between looks after an event; the last one is the idle pace.
const LOOK_AGAIN: [Duration; 5] = [
    Duration::from_millis(1),
    Duration::from_millis(5),
    Duration::from_millis(20),
    Duration::from_millis(50),
    Duration::from_secs(1),
];

/// Whether a slot was taken or given up.
///
/// ```
/// assert_eq!(serde_json::to_string(&elect::EventKind::Acquired)?, "\"acquired\"");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum EventKind {
    /// A holder took the slot.
    Acquired,
    /// The holder gave the slot up, exited or was killed.
    Released,
}

impl std::fmt::Display for EventKind {
    /// The kind as in JSON: `acquired` or `released`.
    ///
    /// ```
    /// assert_eq!(elect::EventKind::Released.to_string(), "released");
    /// ```
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EventKind::Acquired => "acquired",
            EventKind::Released => "released",
        })
    }
}

/// One change of ownership of one slot. Serializes to the contract's
/// `watch --json` line.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// let e = elect::Election::builder("x").dir(dir.path()).build()?;
/// let mut w = e.watch()?;
/// drop(e.obtain()?);
/// let acquired = w.next_event()?;
/// let released = w.next_event()?;
/// assert_eq!(acquired.kind, elect::EventKind::Acquired);
/// assert_eq!(released.kind, elect::EventKind::Released);
/// assert_eq!(acquired.token, released.token);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Event {
    /// Acquired or released.
    #[serde(rename = "event")]
    pub kind: EventKind,
    /// The resource.
    pub name: String,
    /// The slot, 0-based.
    pub slot: u32,
    /// The holder's pid, from its record.
    pub pid: u32,
    /// The holder's fencing token, from its record.
    pub token: u64,
    /// When the watcher saw the change (RFC 3339 in UTC, to the second,
    /// in JSON).
    #[serde(with = "crate::time::rfc3339_serde")]
    pub at: SystemTime,
}

/// A stream of ownership changes of one resource; see
/// [`Election::watch`](crate::Election::watch).
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// let e = elect::Election::builder("x").dir(dir.path()).build()?;
/// let mut watcher = e.watch()?;
/// let t = e.obtain()?;
/// let ev = watcher.next_event()?;
/// assert_eq!((ev.kind, ev.pid, ev.token), (elect::EventKind::Acquired, std::process::id(), t.token()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Watcher {
    watch: Watch,
    name: String,
    /// The holder of each slot as last reported.
    known: Vec<Option<HolderRecord>>,
    /// No acquisition after the watcher started can have a token at or below
    /// this: a held slot whose record is not above it still shows the
    /// previous holder's record, not yet rewritten by the new one.
    floor: u64,
    pending: VecDeque<Event>,
    intr: Interrupter,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Watcher {
    pub(crate) fn new(watch: Watch, name: String) -> Result<Self> {
        let floor = watch.last_token();
        let now = watch.snapshot()?;
        let known = now
            .slots
            .iter()
            .map(|s| if s.held { s.holder.clone() } else { None })
            .collect::<Vec<_>>();
        // Records of free slots are their last holders': not news.
        let floor = now
            .slots
            .iter()
            .filter_map(|s| s.holder.as_ref().map(|h| h.token))
            .fold(floor, u64::max);
        Ok(Watcher {
            watch,
            name,
            known,
            floor,
            pending: VecDeque::new(),
            intr: Interrupter::new(),
        })
    }

    /// The slots as the watcher last saw them.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let e = elect::Election::builder("x").dir(dir.path()).build()?;
    /// let _t = e.obtain()?;
    /// let w = e.watch()?;
    /// assert!(w.holders()[0].is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn holders(&self) -> &[Option<HolderRecord>] {
        &self.known
    }

    /// Waits for the next change of ownership.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let e = elect::Election::builder("x").dir(dir.path()).build()?;
    /// let mut w = e.watch()?;
    /// let t = e.obtain()?;
    /// assert_eq!(w.next_event()?.slot, t.slot());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn next_event(&mut self) -> Result<Event> {
        loop {
            if let Some(ev) = self.next_event_timeout(Duration::from_secs(3600))? {
                return Ok(ev);
            }
        }
    }

    /// Waits up to `timeout` for the next change of ownership. A timeout
    /// too long to be a deadline (`Duration::MAX`) waits as long as it takes.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let e = elect::Election::builder("x").dir(dir.path()).build()?;
    /// let mut w = e.watch()?;
    /// assert!(w.next_event_timeout(std::time::Duration::from_millis(20))?.is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn next_event_timeout(&mut self, timeout: Duration) -> Result<Option<Event>> {
        // None: too far to say, no deadline.
        let deadline = Instant::now().checked_add(timeout);
        let mut step = LOOK_AGAIN.len() - 1;
        loop {
            if let Some(ev) = self.pending.pop_front() {
                return Ok(Some(ev));
            }
            let now = self.watch.snapshot()?;
            self.compare(&now);
            if !self.pending.is_empty() {
                continue;
            }
            let left = deadline.map_or(Duration::MAX, |d| {
                d.saturating_duration_since(Instant::now())
            });
            if left.is_zero() {
                return Ok(None);
            }
            match self.watch.wait(&self.intr, LOOK_AGAIN[step].min(left)) {
                Ok(true) => step = 0,
                Ok(false) => step = (step + 1).min(LOOK_AGAIN.len() - 1),
                Err(Error::Cancelled) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    /// Queues an event for each difference between `now` and what was known.
    fn compare(&mut self, now: &ResourceStatus) {
        if self.known.len() < now.slots.len() {
            self.known.resize(now.slots.len(), None);
        }
        let at = SystemTime::now();
        for (i, known) in self.known.iter_mut().enumerate() {
            let Some(slot) = now.slots.get(i) else {
                continue;
            };
            // A record above the floor belongs to an acquisition not yet
            // reported; at or below it, to a holder already known or stale.
            let record = slot.holder.as_ref();
            let is_new = record.is_some_and(|r| r.token > self.floor);
            let mut emit = |kind, r: &HolderRecord| {
                self.pending.push_back(event(kind, &self.name, i, r, &at));
            };
            match (slot.held, is_new) {
                // A new holder: the old one (if any) has gone.
                (true, true) => {
                    let r = record.expect("is_new");
                    if let Some(old) = known.take() {
                        emit(EventKind::Released, &old);
                    }
                    emit(EventKind::Acquired, r);
                    *known = Some(r.clone());
                }
                // Held by whoever we knew, or by a newcomer whose record is
                // not written yet: wait for the record.
                (true, false) => {}
                // Free, but a holder came and went between two looks.
                (false, true) => {
                    let r = record.expect("is_new");
                    if let Some(old) = known.take() {
                        emit(EventKind::Released, &old);
                    }
                    emit(EventKind::Acquired, r);
                    emit(EventKind::Released, r);
                }
                (false, false) => {
                    if let Some(old) = known.take() {
                        emit(EventKind::Released, &old);
                    }
                }
            }
            if let Some(r) = record.filter(|_| is_new) {
                self.floor = self.floor.max(r.token);
            }
        }
    }
}

fn event(kind: EventKind, name: &str, slot: usize, r: &HolderRecord, at: &SystemTime) -> Event {
    Event {
        kind,
        name: name.to_string(),
        slot: slot as u32,
        pid: r.pid,
        token: r.token,
        at: *at,
    }
}
