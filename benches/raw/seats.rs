//! Seats, the way elect waits for one of 2 to 8 tickets, made with raw
//! system calls and nothing else (no path check, token, record or
//! cancellation): the floor of the mechanism, measured beside elect at N=4.
//! It was written first, to measure what seats would give before they were
//! built into the library (`src/store/seats.rs`).
//!
//! Without seats, elect's waiters for several tickets stand in one line,
//! and only its head watches (inotify) for a release; so every hand-off
//! costs the releaser's touch of the slot file, the head's wake-up, and its
//! lock of the slot.
//! The kernel's own hand-off (a waiter blocked in `flock(LOCK_EX)` on the
//! very file released) is not used at all.
//!
//! With seats, slot `j` has a seat, the file `seat.j`, and a waiter that
//! holds its exclusive lock sits in the kernel's own queue of slot `j`
//! (blocked in `flock(slot.j, LOCK_EX)`), so a release of a covered slot is
//! handed over inside the unlock, as for one ticket. Nobody watches those
//! releases: a releaser touches the slot file (the event watchers wake on)
//! only if its seat is empty.
//!
//! What keeps a free slot from waiting while someone waits elsewhere:
//!
//! * The head of the line takes an empty seat and leaves the line, or, with
//!   every seat taken, watches as elect's head does. A seat emptied is
//!   touched, so the head hears of it.
//! * A seated waiter cannot watch while it sleeps in flock(2), and the line
//!   may be empty, so each process has a helper thread that watches like a
//!   head while the process is seated. Whichever of the two gets a slot
//!   first wins; the helper gives back what it got too late, and a sleeper
//!   is woken with a no-op signal.
//! * A seated waiter that leaves its seat (its helper won) empties the seat
//!   *then* tries its slot once: a releaser that saw the seat taken
//!   unlocked the slot before it looked, so the leaver finds it free. The
//!   kernel's lock of each file orders the two, as in Dekker's algorithm.
//! * The winner in the slot's queue leaves the rest to the helper: empty
//!   the seat and touch it (the head hears and sits down). The helper runs
//!   under SCHED_BATCH, so waking it does not preempt the new owner. A
//!   first try in which the winner did that work itself, and woke a helper
//!   of normal policy, measured p50 55 µs in a quick run where raw 4 files
//!   took 8 µs.
//! * As in the library, the head sits only if someone waits behind it (a
//!   shared lock on the file `waiting`, taken before standing in line).
//!
//! Not here, as in [`super::RawLine`]: no path check, token or record, no
//! cancellation, and nothing for a process killed while seated beyond what
//! the kernel does (its seat's lock goes with it).

use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// No seat, or no winner yet.
const NONE: usize = usize::MAX;
/// `won` when the main thread won in the slot's own queue.
const MAIN: usize = usize::MAX - 1;

/// The files of one resource, and what a process's main thread and its
/// helper share about the current wait.
struct Shared {
    slots: Vec<File>,
    /// The helper's own descriptors of the slots: a lock taken through the
    /// main thread's would be the main thread's too (flock locks belong to
    /// the open file description), and either could release it for both.
    helper_slots: Vec<File>,
    seats: Vec<File>,
    slot_paths: Vec<std::ffi::CString>,
    /// The seat the main thread sits on, or `NONE`.
    seat: AtomicUsize,
    /// `NONE` while nobody won this wait; `MAIN`; or the slot the helper won.
    won: AtomicUsize,
    /// Set by the main thread once it no longer sleeps in flock(2).
    awake: AtomicBool,
    /// A seat the helper is to empty and touch, or `NONE`.
    vacate: AtomicUsize,
    /// The main thread, for the wake-up signal.
    main: Mutex<Option<libc::pthread_t>>,
    /// Written to wake the helper (an eventfd).
    cmd: OwnedFd,
}

/// See the module's documentation.
pub(crate) struct RawSeats {
    shared: Arc<Shared>,
    queue: PathBuf,
    /// `waiting`: every waiter in line behind the head holds it shared;
    /// this descriptor is only tried (is anyone behind?).
    waiting: File,
    /// The head's watch (IN_ATTRIB on the directory: slots and seats).
    inotify: OwnedFd,
}

/// An inotify descriptor watching `paths` for IN_ATTRIB (a touch).
fn watch<'a>(paths: impl IntoIterator<Item = &'a std::ffi::CString>) -> OwnedFd {
    // SAFETY: plain system calls; the results are checked.
    unsafe {
        let fd = libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC);
        assert!(fd >= 0);
        for p in paths {
            assert!(libc::inotify_add_watch(fd, p.as_ptr(), libc::IN_ATTRIB) >= 0);
        }
        OwnedFd::from_raw_fd(fd)
    }
}

/// Sleeps until the watch has an event, `also` is readable or a second
/// passes; reads the events and returns the slot the first names, if any
/// (a watch on the directory names the file; a watch on a slot file names
/// nothing, and its watch descriptor, 1 + the slot, tells).
fn sleep_on(inotify: &OwnedFd, also: Option<&OwnedFd>) -> Option<usize> {
    let fd = inotify.as_raw_fd();
    let mut pfd = [inotify, also.unwrap_or(inotify)].map(|f| libc::pollfd {
        fd: f.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    });
    let limit = libc::timespec {
        tv_sec: 1,
        tv_nsec: 0,
    };
    let mut buf = [0u64; 512];
    // SAFETY: two pollfds; a buffer of its length.
    let n = unsafe {
        libc::ppoll(pfd.as_mut_ptr(), 2, &limit, std::ptr::null());
        libc::read(fd, buf.as_mut_ptr().cast(), 4096)
    };
    if n <= 0 {
        return None;
    }
    let bytes = super::prefix_bytes(&buf, n as usize);
    let wd = i32::from_ne_bytes(bytes[..4].try_into().unwrap());
    let len = u32::from_ne_bytes(bytes[12..16].try_into().unwrap()) as usize;
    if len == 0 {
        return usize::try_from(wd - 1).ok();
    }
    bytes[16..16 + len]
        .strip_prefix(b"slot.")
        .and_then(|d| std::str::from_utf8(d).ok())
        .and_then(|d| d.trim_end_matches('\0').parse().ok())
}

/// Consumes what was written to the eventfd `cmd`, if anything.
fn read_cmd(cmd: &OwnedFd) {
    let mut v = 0u64;
    // SAFETY: reads 8 bytes from a non-blocking eventfd into `v`.
    unsafe { libc::read(cmd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
}

/// Writes to the eventfd `cmd`.
fn poke(cmd: &OwnedFd) {
    // SAFETY: writes 8 bytes to an eventfd.
    unsafe { libc::eventfd_write(cmd.as_raw_fd(), 1) };
}

fn touch(f: &File) {
    // SAFETY: plain system call on an open descriptor.
    unsafe { libc::futimens(f.as_raw_fd(), std::ptr::null()) };
}

extern "C" fn on_wake(_: libc::c_int) {}

impl Shared {
    /// The first free slot from `first` on but `skip`, locked through
    /// `fds`.
    fn probe_with(fds: &[File], first: usize, skip: usize) -> Option<usize> {
        let n = fds.len();
        (0..n)
            .map(|k| (first + k) % n)
            .find(|&i| i != skip && fds[i].try_lock().is_ok())
    }

    /// The first free slot from `first` on, locked.
    fn probe(&self, first: usize) -> Option<usize> {
        Self::probe_with(&self.slots, first, NONE)
    }

    /// Releases slot `i`, locked through `fds`: unlock, then touch it
    /// unless a seated waiter sits in its queue (which the unlock has woken).
    fn release_from(&self, fds: &[File], i: usize) {
        fds[i].unlock().unwrap();
        self.touch_unless_seated(i);
    }

    fn release(&self, i: usize) {
        self.release_from(&self.slots, i);
    }

    fn touch_unless_seated(&self, i: usize) {
        if self.seats[i].try_lock().is_ok() {
            self.seats[i].unlock().unwrap();
            touch(&self.slots[i]);
        }
    }

    /// Gives up seat `j`: empty it, say so (the head hears), then try the
    /// slot once, for a release that saw the seat taken and so told nobody.
    fn leave_seat(&self, j: usize) {
        self.seats[j].unlock().unwrap();
        touch(&self.seats[j]);
        if self.slots[j].try_lock().is_ok() {
            self.release(j);
        }
    }

    /// Empties the seat the main thread won from, if that is still to do.
    fn empty_left_seat(&self) {
        let v = self.vacate.swap(NONE, Ordering::AcqRel);
        if v != NONE {
            self.seats[v].unlock().unwrap();
            touch(&self.seats[v]);
        }
    }

    /// The helper thread: asleep until the main thread sits down, then
    /// watching every slot like a head until one of the two wins.
    fn helper(&self) {
        let _batch = super::StepBack::begin();
        let inotify = watch(&self.slot_paths);
        let mut pfd = libc::pollfd {
            fd: self.cmd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        loop {
            // SAFETY: one pollfd.
            unsafe { libc::poll(&mut pfd, 1, -1) };
            read_cmd(&self.cmd);
            self.empty_left_seat();
            let mut first = 0;
            loop {
                let seat = self.seat.load(Ordering::Acquire);
                if seat == NONE || self.won.load(Ordering::Acquire) != NONE {
                    break;
                }
                // Not the main thread's own slot: the kernel hands that one
                // to the main thread.
                if let Some(k) = Self::probe_with(&self.helper_slots, first, seat) {
                    if self
                        .won
                        .compare_exchange(NONE, k, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        let me = self.main.lock().unwrap().unwrap();
                        // Wake the sleeper until it says it is awake: a
                        // signal just before it sleeps is lost.
                        while !self.awake.load(Ordering::Acquire) {
                            // SAFETY: the main thread waits for `won` before
                            // it sets `awake`, so it is alive.
                            unsafe { libc::pthread_kill(me, libc::SIGURG) };
                            std::thread::sleep(Duration::from_micros(200));
                        }
                    } else {
                        self.release_from(&self.helper_slots, k);
                    }
                    break;
                }
                first = sleep_on(&inotify, Some(&self.cmd)).unwrap_or(0);
                read_cmd(&self.cmd);
                self.empty_left_seat();
            }
        }
    }
}

impl RawSeats {
    pub(crate) fn open(dir: &Path, n: u32) -> Self {
        let res = dir.join("seats");
        std::fs::create_dir_all(&res).unwrap();
        let open = |name: String| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(res.join(name))
                .unwrap()
        };
        let cstr = |p: &Path| std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: installs a handler that does nothing, without SA_RESTART,
        // so that a blocked flock(2) returns EINTR.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_wake as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            assert_eq!(libc::sigaction(libc::SIGURG, &sa, std::ptr::null_mut()), 0);
        }
        let shared = Arc::new(Shared {
            slots: (0..n).map(|i| open(format!("slot.{i}"))).collect(),
            helper_slots: (0..n).map(|i| open(format!("slot.{i}"))).collect(),
            seats: (0..n).map(|i| open(format!("seat.{i}"))).collect(),
            slot_paths: (0..n)
                .map(|i| cstr(&res.join(format!("slot.{i}"))))
                .collect(),
            seat: AtomicUsize::new(NONE),
            won: AtomicUsize::new(NONE),
            awake: AtomicBool::new(true),
            vacate: AtomicUsize::new(NONE),
            main: Mutex::new(None),
            // SAFETY: plain system call; the result is checked.
            cmd: unsafe {
                let fd = libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK);
                assert!(fd >= 0);
                OwnedFd::from_raw_fd(fd)
            },
        });
        let helper = Arc::clone(&shared);
        std::thread::spawn(move || helper.helper());
        RawSeats {
            inotify: watch([&cstr(&res)]),
            shared,
            queue: res.join("queue"),
            waiting: open("waiting".into()),
        }
    }

    /// Owns a slot; true if the lock was taken through the helper's
    /// descriptor.
    pub(crate) fn obtain(&self) -> (usize, bool) {
        let f = &self.shared;
        // A seat won from last time that the helper has not emptied yet.
        f.empty_left_seat();
        if let Some(i) = f.probe(0) {
            return (i, false);
        }
        let behind = OpenOptions::new()
            .read(true)
            .open(self.queue.with_file_name("waiting"))
            .unwrap();
        // Retried: a stray wake-up signal may interrupt it (see `seated`).
        while let Err(e) = behind.lock_shared() {
            assert_eq!(e.kind(), std::io::ErrorKind::Interrupted, "{e}");
        }
        let queue = super::stand_in_line(&self.queue);
        drop(behind);
        let mut buf = [0u64; 512];
        // SAFETY: reads into a buffer of its length (forgetting what came
        // while this process was not the head).
        while unsafe { libc::read(self.inotify.as_raw_fd(), buf.as_mut_ptr().cast(), 4096) } > 0 {}
        let mut first = 0;
        loop {
            // Watch first (above), then look: a seat emptied or a slot
            // released after this look is an event.
            let someone_behind = match self.waiting.try_lock() {
                Ok(()) => {
                    self.waiting.unlock().unwrap();
                    false
                }
                Err(_) => true,
            };
            if let Some(j) = (0..f.seats.len())
                .filter(|_| someone_behind)
                .find(|&j| f.seats[j].try_lock().is_ok())
            {
                drop(queue);
                return self.seated(j);
            }
            if let Some(i) = f.probe(first) {
                drop(queue);
                return (i, false);
            }
            first = sleep_on(&self.inotify, None).unwrap_or(0);
        }
    }

    /// Waits on seat `j`: blocked in the slot's own queue, while the
    /// helper thread watches every slot.
    fn seated(&self, j: usize) -> (usize, bool) {
        let f = &self.shared;
        // SAFETY: pthread_self cannot fail.
        *f.main.lock().unwrap() = Some(unsafe { libc::pthread_self() });
        f.won.store(NONE, Ordering::Release);
        f.awake.store(false, Ordering::Release);
        f.seat.store(j, Ordering::Release);
        poke(&f.cmd);
        // EINTR with nobody the winner is a stray signal: a helper of an
        // earlier wait, under SCHED_BATCH, can be held up between seeing
        // this thread still asleep and signalling it, and the signal then
        // lands in this wait. (The first full run of this code took it for
        // the helper's win and returned no slot at all.)
        let got_own = loop {
            if f.won.load(Ordering::Acquire) != NONE {
                break false;
            }
            // SAFETY: plain system call on an open descriptor.
            if unsafe { libc::flock(f.slots[j].as_raw_fd(), libc::LOCK_EX) } == 0 {
                break true;
            }
        };
        if got_own
            && f.won
                .compare_exchange(NONE, MAIN, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            f.awake.store(true, Ordering::Release);
            f.seat.store(NONE, Ordering::Release);
            // Won in the kernel's queue: the helper stops watching and
            // empties the seat; under SCHED_BATCH it waits for a free CPU
            // instead of taking this one.
            f.vacate.store(j, Ordering::Release);
            poke(&f.cmd);
            return (j, false);
        }
        // The helper won (and may still be signalling this thread).
        f.seat.store(NONE, Ordering::Release);
        if got_own {
            // This one too: give it back, seat first.
            f.seats[j].unlock().unwrap();
            touch(&f.seats[j]);
            f.release(j);
        } else {
            f.leave_seat(j);
        }
        let w = f.won.load(Ordering::Acquire);
        f.awake.store(true, Ordering::Release);
        (w, true)
    }

    /// Panics unless slot `i` is locked (by this owner, the only one that
    /// can): a lock given back through a descriptor that two owners
    /// shared would show here.
    pub(crate) fn check_held(&self, i: usize) {
        let f = OpenOptions::new()
            .read(true)
            .open(self.queue.with_file_name(format!("slot.{i}")))
            .unwrap();
        assert!(f.try_lock().is_err(), "slot {i} is owned but not locked");
    }

    /// Releases slot `i`, taken as [`RawSeats::obtain`] said.
    pub(crate) fn release(&self, (i, by_helper): (usize, bool)) {
        let f = &self.shared;
        f.release_from(if by_helper { &f.helper_slots } else { &f.slots }, i);
    }
}
