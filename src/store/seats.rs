//! Seats: how a waiter for one of several tickets sleeps in one slot's own
//! kernel queue, so that a release of that slot is handed over inside the
//! unlock, as with one ticket, rather than through the head of the line.
//!
//! Without seats every hand-off of a resource with several tickets goes
//! through the head of the line: the releaser touches the slot file, the
//! head wakes from inotify, tries the slots, and only then owns one. With
//! seats, slot `i` has a seat, the file `seat.<i>`, and a process that holds
//! the seat's exclusive lock sleeps in `flock(slot.<i>, LOCK_EX)`: the
//! kernel wakes it the instant the slot is unlocked or its holder dies.
//!
//! The rules, and why each is needed:
//!
//! * The head of the line, finding no slot free, takes an empty seat and
//!   leaves the line if someone waits behind it (a shared lock on the
//!   [`WAITING_FILE`]), who then becomes the head; with every seat taken,
//!   or nobody behind, it watches, as before. A lone waiter that sat would
//!   have to win every other slot through its helper, one wake-up later
//!   than a head watching. A seat left empty is touched, so the head hears
//!   of it and sits down.
//! * A releaser touches its slot (the event that wakes the head) only if
//!   the slot's seat is empty: a seated waiter was just handed the slot by
//!   the unlock, and a head woken too could only race it for the lock.
//! * A seated process cannot watch while it sleeps in flock(2), and the line
//!   behind it may be empty, so every seated process has a helper thread
//!   that watches the other slots like a head. Whichever of the two gets a
//!   slot first wins; the helper gives back what it got too late, and wakes
//!   the sleeper with a nudge (see `Interrupter::nudge`) when it wins. It
//!   runs under SCHED_BATCH, so its work never preempts the new owner.
//!   While the line has a head, releases are the head's: the helper takes
//!   none and sleeps without a timer (a release after the head left
//!   touches its slot, which wakes it), so that a sitting costs no timed
//!   wake-ups.
//! * Whoever leaves a seat without the slot empties the seat *then* tries
//!   the slot once: a releaser that saw the seat taken unlocked the slot
//!   before it looked, so the leaver finds the slot free and releases it
//!   as any releaser would. The kernel's locks on the two files order the
//!   two sides, as in Dekker's algorithm.
//! * One seat per process: flock locks belong to the open file
//!   description, which the threads of a process share, so a second thread
//!   could not tell a seat of its own process from an empty one.
//! * Seats are kept only for up to [`SEATS_MAX`] tickets: a release nobody
//!   sits for wakes every seated process's helper, and that number must
//!   stay small. Beyond it the line alone serves, as before.
//!
//! A seat's lock is taken through a write-only descriptor: when a seated
//! process dies, the kernel closes it, which is an event (IN_CLOSE_WRITE)
//! the head hears, and drops the lock. Nothing is ever read from a seat
//! file; only its lock means anything, so a hostile file there (a FIFO, a
//! link) is refused on opening and costs only the seat.
//!
//! Known limits, both slower hand-offs, never a lost slot:
//!
//! * A seated process that is stopped (SIGSTOP, a terminal's ^Z) cannot
//!   take the slot the kernel offers it, and nobody else is told of that
//!   release: the head of the line, or another seated process's helper,
//!   finds the slot free by its own look, within a second.
//! * A process forked while one of its threads sits shares that seat's
//!   lock (it belongs to the open file description) until the child execs
//!   or exits. If the parent leaves meanwhile, the seat stays taken with
//!   nobody in the slot's queue, and releases of that slot are found the
//!   same way.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use super::fsx::{self, Access};
use super::local::{QUEUE_FILE, RETRY, slot_name, touch, unlock};
use super::watched::Watched;
use crate::interrupt::Interrupter;
use crate::sys::{self, DirWatch, FileId};

/// The most tickets a resource may have for its waiters to take seats.
pub(crate) const SEATS_MAX: u32 = 8;

/// The file on which every waiter in line behind the head holds a shared
/// lock: the head sits only if someone is behind it, who then becomes the
/// head. A lone waiter stays at the head and watches, as without seats:
/// seated with nobody behind, it would win every slot but its own through
/// its helper, one wake-up later than a head.
pub(crate) const WAITING_FILE: &str = "waiting";

/// The file name of seat `i`.
fn seat_name(i: u32) -> String {
    format!("seat.{i}")
}

/// A slot locked through a descriptor of its own: number, descriptor, file.
pub(crate) type Locked = (u32, OwnedFd, FileId);

/// The seats of one resource, as this process uses them.
#[derive(Debug)]
pub(crate) struct Seats {
    shared: Arc<Shared>,
    /// Set while a thread of this process sits (one seat per process).
    sitting: AtomicBool,
    /// The helper thread, started at the first sitting (`None`: it could
    /// not be).
    helper: OnceLock<Option<std::thread::JoinHandle<()>>>,
    /// The [`sys::fork_generation`] that opened all this: a fork child must
    /// not wake or stop the parent's helper through the shared eventfd.
    generation: u64,
}

/// What a seated process's main thread and its helper share.
#[derive(Debug)]
struct Shared {
    n: u32,
    /// The resource directory (a descriptor of its own: the helper may
    /// outlive the resource's other descriptors by a moment).
    dir: OwnedFd,
    path: PathBuf,
    mode: u32,
    watched: Option<Arc<Watched>>,
    /// Write-only descriptors of the seats, through which this process
    /// sits; all opened at the first sitting (`None`: could not be).
    sit: OnceLock<Vec<Option<OwnedFd>>>,
    /// A descriptor of `queue` through which helpers look whether the line
    /// has a head.
    queue: OnceLock<Option<OwnedFd>>,
    /// Read-only descriptors of the slots, through which the safety net
    /// looks for a free one; all opened at its first look.
    slots: OnceLock<Vec<Option<OwnedFd>>>,
    /// A descriptor of the [`WAITING_FILE`] through which the head looks
    /// whether anyone is behind it (never locked by a waiter in line).
    waiting: OnceLock<Option<OwnedFd>>,
    /// Read-only descriptors of the seats, through which a releaser looks
    /// whether someone sits; a different open file description from `sit`,
    /// so that this process's own seat looks taken. All opened at the first
    /// look.
    look: OnceLock<Vec<Option<OwnedFd>>>,
    state: Mutex<State>,
    /// Set when the helper won: the sitter's wait stops.
    stop: AtomicBool,
    /// An eventfd that wakes the helper.
    wake: OwnedFd,
}

/// The current sitting, under `Shared::state`.
#[derive(Debug, Default)]
struct State {
    /// The seat the main thread sits on, until its wait ends.
    seat: Option<u32>,
    /// The sitter's interrupter and the nudge id its wait accepts.
    sitter: Option<(Interrupter, u64)>,
    /// A slot the helper won for the sitter.
    prize: Option<Locked>,
    /// A seat whose sitter won in the slot's queue, for the helper to empty
    /// (so that the winner makes no system call for it).
    vacate: Option<u32>,
    /// The retry step the helper starts the sitting at.
    step: usize,
    /// The resource was dropped: the helper ends.
    exit: bool,
}

impl Seats {
    /// Seats for a resource of `n` tickets open at `dir`, or `None` where
    /// seats are not kept (see [`SEATS_MAX`]) or cannot be.
    pub(crate) fn new(
        dir: BorrowedFd<'_>,
        path: &Path,
        mode: u32,
        n: u32,
        watched: Option<Arc<Watched>>,
    ) -> Option<Seats> {
        if !(2..=SEATS_MAX).contains(&n) {
            return None;
        }
        let dir = dir.try_clone_to_owned().ok()?;
        // SAFETY: plain system call; the result is checked.
        let wake = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if wake < 0 {
            return None;
        }
        let shared = Shared {
            n,
            dir,
            path: path.to_path_buf(),
            mode,
            watched,
            sit: OnceLock::new(),
            look: OnceLock::new(),
            waiting: OnceLock::new(),
            queue: OnceLock::new(),
            slots: OnceLock::new(),
            state: Mutex::default(),
            stop: AtomicBool::new(false),
            // SAFETY: wake is a fresh descriptor that nothing else owns.
            wake: unsafe { OwnedFd::from_raw_fd(wake) },
        };
        Some(Seats {
            shared: Arc::new(shared),
            sitting: AtomicBool::new(false),
            helper: OnceLock::new(),
            generation: sys::fork_generation(),
        })
    }

    /// Whether someone sits on the seat of slot `slot` (this process's own
    /// sitter included). Call it after unlocking the slot.
    pub(crate) fn taken(&self, slot: u32) -> bool {
        self.shared.taken(slot)
    }

    /// Stands behind the head of the line: a shared lock on the
    /// [`WAITING_FILE`], through `kept` (a descriptor of it kept from an
    /// earlier wait) or one opened now, to be unlocked at the head.
    pub(crate) fn stand_behind(
        &self,
        kept: Option<(OwnedFd, FileId)>,
    ) -> Option<(OwnedFd, FileId)> {
        let (fd, id) = match kept {
            Some(kept) => kept,
            None => self.shared.open_with_id(WAITING_FILE, Access::ReadCreate)?,
        };
        // Blocks only while a head tries the exclusive lock, for a moment;
        // a stray wake-up signal (a helper's late nudge) is no reason to
        // give up.
        loop {
            // SAFETY: plain system call on a descriptor we own.
            if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_SH) } == 0 {
                return Some((fd, id));
            }
            if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                return None;
            }
        }
    }

    /// Takes an empty seat for this process, at the head of the line, if
    /// someone waits behind it, its helper runs and no other thread of this
    /// process sits. Slot `first`'s seat is tried first: the head was just
    /// told of its release and found it still locked, and in its queue the
    /// kernel hands it over the moment it is free.
    pub(crate) fn try_sit(&self, first: u32) -> Option<u32> {
        // The checks that cost no system call first.
        if self.generation != sys::fork_generation()
            || !crate::interrupt::signal_available()
            || !self.shared.someone_behind()
            || self.sitting.swap(true, Ordering::AcqRel)
        {
            return None;
        }
        let sat = self
            .helper_runs()
            .then(|| self.shared.take_seat(first))
            .flatten();
        if sat.is_none() {
            self.sitting.store(false, Ordering::Release);
        }
        sat
    }

    /// The flag the sitter's wait stops at (see
    /// `Interrupter::lock_exclusive_unless`).
    pub(crate) fn stop(&self) -> &AtomicBool {
        &self.shared.stop
    }

    /// What the sitter on seat `seat` has the recheck thread do once a
    /// second (see `recheck`), in place of a timer in the helper: say again
    /// that the helper listens, and say `false` (which nudges the sitter,
    /// which then starts again and takes it) if the line has no head and a
    /// slot other than the seat's is free, a release the helper did not
    /// hear. That costs the seated process no wake-up of its own.
    pub(crate) fn safety_net(&self, seat: u32) -> impl Fn() -> bool + Send + 'static {
        let shared = Arc::clone(&self.shared);
        move || {
            if let Some(w) = &shared.watched {
                w.announce(RETRY[RETRY.len() - 1]);
            }
            !shared.free_elsewhere(seat)
        }
    }

    /// Starts the sitting on seat `seat`: the helper watches from now on,
    /// and nudges the wait of `intr` that accepts `nudge` when it wins. It
    /// looks again on its own at the head's retry step `step` (see
    /// `RETRY`): a head just told of a release it could not yet take
    /// passes on its short retries.
    pub(crate) fn begin(&self, seat: u32, intr: &Interrupter, nudge: u64, step: usize) {
        {
            let mut st = self.shared.lock();
            st.seat = Some(seat);
            st.step = step;
            st.sitter = Some((intr.clone(), nudge));
            st.prize = None;
        }
        self.shared.stop.store(false, Ordering::SeqCst);
        self.shared.poke();
    }

    /// Ends the sitting on seat `seat`, and returns the slot the helper won,
    /// if it did. `got_own`: the sitter got its own slot; the helper then
    /// empties the seat. Otherwise the caller must [`Seats::leave`] it.
    pub(crate) fn end(&self, seat: u32, got_own: bool) -> Option<Locked> {
        let prize = {
            let mut st = self.shared.lock();
            st.seat = None;
            st.sitter = None;
            if got_own {
                st.vacate = Some(seat);
            }
            st.prize.take()
        };
        self.shared.stop.store(false, Ordering::SeqCst);
        if got_own {
            self.sitting.store(false, Ordering::Release);
            self.shared.poke();
        }
        prize
    }

    /// Leaves seat `seat` without its slot: empties it, then tries the slot
    /// once through `slot` (this sitter's descriptor of it) for a release
    /// that saw the seat taken, and releases it again if found free.
    pub(crate) fn leave(&self, seat: u32, slot: BorrowedFd<'_>) {
        self.leave_untried(seat);
        if fsx::try_flock(slot, true).unwrap_or(false) {
            self.shared.release_bare(seat, slot);
        }
    }

    /// Leaves seat `seat` without trying its slot (no descriptor of it
    /// could be had): empties it and touches it, so that the head looks.
    pub(crate) fn leave_untried(&self, seat: u32) {
        {
            let _st = self.shared.lock();
            self.shared.empty_seat(seat);
        }
        self.sitting.store(false, Ordering::Release);
    }

    /// Gives back slot `k`, locked through `fd`, that nobody will own.
    pub(crate) fn give_back(&self, (k, fd, _): Locked) {
        self.shared.release_bare(k, fd.as_fd());
    }

    /// Starts the helper thread if it is not running; says whether it runs.
    fn helper_runs(&self) -> bool {
        self.helper
            .get_or_init(|| {
                let shared = &self.shared;
                // The watch is made here, so that a refusal means no seats
                // rather than a helper that cannot hear.
                let watch = DirWatch::slot_files(shared.dir.as_fd(), shared.n).ok()?;
                let shared = Arc::clone(shared);
                std::thread::Builder::new()
                    .name("elect-seat".into())
                    .stack_size(128 * 1024)
                    .spawn(move || shared.help(&watch))
                    .ok()
            })
            .is_some()
    }
}

impl Drop for Seats {
    /// Ends the helper and waits for it, so that its descriptors are closed
    /// when the resource is (not in a fork child, where it does not run and
    /// the eventfd is the parent's). Nobody sits now (a sitter keeps the
    /// resource open), so the helper is idle and ends at once.
    fn drop(&mut self) {
        if self.generation == sys::fork_generation() {
            self.shared.lock().exit = true;
            self.shared.poke();
            if let Some(Some(helper)) = self.helper.take() {
                let _ = helper.join();
            }
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes the helper.
    fn poke(&self) {
        // SAFETY: writes 8 bytes to an eventfd we own.
        unsafe { libc::eventfd_write(self.wake.as_raw_fd(), 1) };
    }

    /// Consumes what was written to the eventfd.
    fn read_wake(&self) {
        let mut v: libc::eventfd_t = 0;
        // SAFETY: reads 8 bytes from a non-blocking eventfd into `v`.
        unsafe { libc::eventfd_read(self.wake.as_raw_fd(), &mut v) };
    }

    /// The descriptor of seat `i` of `kind`, all of which are opened at the
    /// first use: how many descriptors a process keeps then does not depend
    /// on which seats it happened to use.
    fn seat_fd<'a>(
        &self,
        kind: &'a OnceLock<Vec<Option<OwnedFd>>>,
        i: u32,
        access: Access,
    ) -> Option<&'a OwnedFd> {
        kind.get_or_init(|| {
            (0..self.n)
                .map(|i| self.open(&seat_name(i), access))
                .collect()
        })
        .get(i as usize)?
        .as_ref()
    }

    /// The file `name` of the resource, opened for `access`, if it can be.
    fn open(&self, name: &str, access: Access) -> Option<OwnedFd> {
        self.open_with_id(name, access).map(|(fd, _)| fd)
    }

    fn open_with_id(&self, name: &str, access: Access) -> Option<(OwnedFd, FileId)> {
        fsx::open_file(self.dir.as_fd(), &self.path, name, access, self.mode).ok()
    }

    /// Whether a waiter stands behind the head: a shared lock on the
    /// [`WAITING_FILE`] keeps the exclusive one from us.
    fn someone_behind(&self) -> bool {
        let fd = self
            .waiting
            .get_or_init(|| self.open(WAITING_FILE, Access::ReadCreate));
        fd.as_ref().is_some_and(|fd| locked_elsewhere(fd.as_fd()))
    }

    /// Whether the line has no head now (nobody holds `queue`).
    fn headless(&self) -> bool {
        self.queue
            .get_or_init(|| self.open(QUEUE_FILE, Access::ReadCreate))
            .as_ref()
            .is_none_or(|q| !locked_elsewhere(q.as_fd()))
    }

    /// Whether, with no head in line, a slot other than `seat` is free.
    fn free_elsewhere(&self, seat: u32) -> bool {
        if !self.headless() {
            return false;
        }
        let slots = self.slots.get_or_init(|| {
            (0..self.n)
                .map(|i| self.open(&slot_name(i), Access::ReadCreate))
                .collect()
        });
        (0..self.n)
            .filter(|&i| i != seat)
            .filter_map(|i| slots[i as usize].as_ref())
            .any(|fd| !locked_elsewhere(fd.as_fd()))
    }

    fn taken(&self, slot: u32) -> bool {
        self.seat_fd(&self.look, slot, Access::ReadCreate)
            .is_some_and(|fd| locked_elsewhere(fd.as_fd()))
    }

    /// Takes the first empty seat. Under the state lock, after emptying a
    /// seat still waiting for the helper: that seat is locked through the
    /// same descriptor, so taking it would seem to succeed.
    fn take_seat(&self, first: u32) -> Option<u32> {
        let mut st = self.lock();
        if let Some(v) = st.vacate.take() {
            self.empty_seat(v);
        }
        (first..self.n).chain(0..first).find(|&i| {
            self.seat_fd(&self.sit, i, Access::WriteCreate)
                .is_some_and(|fd| fsx::try_flock(fd.as_fd(), true).unwrap_or(false))
        })
    }

    /// Empties seat `i` and tells the head (IN_ATTRIB). Under the state
    /// lock (see `take_seat`).
    fn empty_seat(&self, i: u32) {
        if let Some(fd) = self.seat_fd(&self.sit, i, Access::WriteCreate) {
            unlock(fd.as_fd());
            touch(fd.as_fd());
        }
    }

    /// Releases slot `k`, locked through `fd` with no record written: as a
    /// holder releases (see `LocalHeld`'s `Drop`).
    fn release_bare(&self, k: u32, fd: BorrowedFd<'_>) {
        unlock(fd);
        if self.watched.as_ref().is_none_or(|w| w.wanted()) && !self.taken(k) {
            touch(fd);
        }
    }

    /// The helper thread: asleep while nobody sits, else watching every
    /// slot but the seated one, like the head of the line, until a slot is
    /// won or the sitting ends.
    fn help(&self, watch: &DirWatch) {
        let _batch = sys::StepBack::begin();
        // All at once, for the same reason as the seats' (see `seat_fd`).
        let mut fds: Vec<Option<(OwnedFd, FileId)>> = (0..self.n)
            .map(|i| self.open_with_id(&slot_name(i), Access::ReadCreate))
            .collect();
        let last = RETRY.len() - 1;
        let mut step = last;
        let mut first = 0;
        let mut idle = true;
        loop {
            let (seat, vacated, exit, from) = {
                let mut st = self.lock();
                let vacated = st.vacate.take();
                if let Some(v) = vacated {
                    self.empty_seat(v);
                }
                let seat = st.seat.filter(|_| st.prize.is_none());
                (seat, vacated, st.exit, st.step.min(last))
            };
            if let Some(v) = vacated {
                // The winner may already have released: a release that saw
                // the seat taken told nobody.
                if let Some((fd, id)) = self.probe_one(&mut fds, v) {
                    self.release_bare(v, fd.as_fd());
                    fds[v as usize] = Some((fd, id));
                }
            }
            if exit {
                return;
            }
            let Some(seat) = seat else {
                idle = true;
                self.sleep_idle();
                continue;
            };
            if idle {
                // Forget what was heard while nobody sat.
                let _ = watch.drain();
                idle = false;
                step = from;
            }
            if let Some(w) = &self.watched {
                w.announce(RETRY[step]);
            }
            // While the line has a head, a release is the head's: a helper
            // that won it would wake its sleeper, a second wake-up before
            // the slot has an owner. A head that gives up tries the slots
            // once it has left the line, for a release that came meanwhile.
            let headless = self.headless();
            let found = (first..self.n)
                .chain(0..first)
                .filter(|&i| i != seat && headless)
                .find_map(|i| self.probe_one(&mut fds, i).map(|(fd, id)| (i, fd, id)));
            if let Some(won) = found {
                self.claim(seat, won, &mut fds);
                continue;
            }
            // The idle step has no timeout: the sitter's once-a-second
            // recheck keeps saying that the helper listens, and looks for a
            // slot it missed (see `Seats::safety_net`), so that a seated
            // process wakes no more often than one in line. Nor does any
            // step while the line has a head: the short retries are for a
            // release this helper could take, and one made after the head
            // left touches its slot, which the helper hears.
            let timeout = (headless && step < last).then(|| RETRY[step]);
            match watch.wait_or(timeout, Some(self.wake.as_fd())) {
                Ok(seen) if seen.slot_closed => {
                    step = 0;
                    first = seen.first_closed.filter(|&i| i < self.n).unwrap_or(0);
                }
                Ok(seen) if !seen.any() => step = (step + 1).min(last),
                _ => {}
            }
            self.read_wake();
        }
    }

    /// Slot `i` locked through the helper's own descriptor, if it is free:
    /// a lock taken through the main thread's would be the main thread's
    /// too, and either could give it back for both.
    fn probe_one(
        &self,
        fds: &mut [Option<(OwnedFd, FileId)>],
        i: u32,
    ) -> Option<(OwnedFd, FileId)> {
        let (fd, id) = match fds[i as usize].take() {
            Some(kept) => kept,
            None => self.open_with_id(&slot_name(i), Access::ReadCreate)?,
        };
        if fsx::try_flock(fd.as_fd(), true).unwrap_or(false) {
            return Some((fd, id));
        }
        fds[i as usize] = Some((fd, id));
        None
    }

    /// Hands slot `won` to the sitter on seat `seat` and wakes it, or, if
    /// the sitting ended or won meanwhile, gives the slot back.
    fn claim(&self, seat: u32, won: Locked, fds: &mut [Option<(OwnedFd, FileId)>]) {
        let mut st = self.lock();
        if st.seat == Some(seat) && st.prize.is_none() {
            st.prize = Some(won);
            self.stop.store(true, Ordering::SeqCst);
            let sitter = st.sitter.clone();
            drop(st);
            if let Some((intr, nudge)) = sitter {
                intr.nudge(nudge);
            }
        } else {
            drop(st);
            let (k, fd, id) = won;
            self.release_bare(k, fd.as_fd());
            fds[k as usize] = Some((fd, id));
        }
    }

    /// Sleeps until poked.
    fn sleep_idle(&self) {
        let mut pfd = libc::pollfd {
            fd: self.wake.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; no timeout.
        unsafe { libc::ppoll(&mut pfd, 1, std::ptr::null(), std::ptr::null()) };
        self.read_wake();
    }
}

/// Whether another open file description holds a lock on the file of `fd`
/// (through which nobody locks for long): tried, and let go at once.
fn locked_elsewhere(fd: BorrowedFd<'_>) -> bool {
    match fsx::try_flock(fd, true) {
        Ok(true) => {
            unlock(fd);
            false
        }
        Ok(false) => true,
        Err(_) => false,
    }
}
