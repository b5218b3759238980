//! Waiting for a slot, in arrival order, without a signal and without a
//! lock that anyone else could hold against us.
//!
//! Waiters stand in a line: the directory `line/` beside the slots, where
//! each waiter makes a file named for when it arrived (`<ns>.<pid>`, the
//! monotonic clock in nanoseconds, zero-padded, so that names sort by
//! arrival) and holds an exclusive flock on it while it waits. The kernel
//! drops that lock the instant the waiter dies, so a file whose lock can be
//! had is stale, and whoever finds it removes it.
//!
//! * The **head** of the line (no live waiter before it) is the only one
//!   that looks at the slots. It tries them, and sleeps on an inotify watch
//!   of the resource directory for a slot file closed after writing: the
//!   close of a holder's record descriptor, after its lock is gone. A
//!   release wakes one process. Because the close event of a dying holder
//!   can be queued before the kernel drops its lock, a head that finds
//!   every slot still locked after an event tries again after 0.1, 0.5, 2,
//!   10 and 50 ms, and then once a second, which also covers anything
//!   inotify cannot see.
//! * Every other waiter watches the file of the waiter just before it, and
//!   wakes only when that one leaves (it removes its file) or dies (its
//!   file is closed): one process per hand-off, however long the line.
//! * A waiter that is **stopped** (SIGSTOP, Ctrl-Z, a frozen cgroup) would
//!   hold up everyone behind it. Each waiter looks at the one before it once
//!   a second, and steps past a stopped one as if it were not there, so a
//!   free slot waits for a running waiter at most about a second. Once it
//!   runs again it is back in its place.
//! * Sleeping is `poll` on the inotify descriptor and the interrupter's
//!   pipe, with a timeout no later than the deadline: a timeout, a
//!   cancel or a dropped async wait ends a wait at once, whatever other
//!   processes hold.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::agree::Joined;
use super::slot::{self, LocalHeld, Tried};
use super::{Request, ResourceDir};
use crate::error::{Error, Result};
use crate::interrupt::{Interrupter, Woken};
use crate::store::ownership::Sharing;
use crate::store::safe_open::{self, Access};
use crate::sys::events::*;
use crate::sys::{FileId, Inotify};

/// The directory of the line, beside the slots.
pub(super) const LINE_DIR: &str = "line";

/// How long the head sleeps before trying again after an event that did not
/// yield a slot; then [`TICK`].
const RETRY: [Duration; 5] = [
    Duration::from_micros(100),
    Duration::from_micros(500),
    Duration::from_millis(2),
    Duration::from_millis(10),
    Duration::from_millis(50),
];

/// How often a waiter looks on its own: at the slots (the head), at the one
/// before it (the others).
const TICK: Duration = Duration::from_secs(1);

/// How often a waiter looks when the kernel refuses an inotify instance.
const POLL: Duration = Duration::from_millis(10);

/// The events that say a slot may have been released, or that the
/// directory went away.
const HEAD_EVENTS: u32 = IN_CLOSE_WRITE | IN_DELETE_SELF | IN_MOVE_SELF;

/// The events that say the waiter before us left or died. Not
/// IN_CLOSE_NOWRITE: looking at whether it is alive opens its file
/// read-only, and would wake us.
const AHEAD_EVENTS: u32 = IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF;

/// One place in the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Place {
    arrived: u64,
    pid: u32,
}

impl Place {
    fn name(self) -> String {
        format!("{:020}.{}", self.arrived, self.pid)
    }

    fn parse(name: &str) -> Option<Place> {
        let (arrived, pid) = name.split_once('.')?;
        if arrived.len() != 20 {
            return None;
        }
        Some(Place {
            arrived: arrived.parse().ok()?,
            pid: pid.parse().ok()?,
        })
    }
}

/// The monotonic clock in nanoseconds: the same for every process of the
/// host, so it orders arrivals.
fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64
}

/// The places in the line's directory (stale ones too), in no order.
fn places(dir: &Path) -> std::io::Result<Vec<Place>> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        if let Some(place) = entry?.file_name().to_str().and_then(Place::parse) {
            all.push(place);
        }
    }
    Ok(all)
}

/// What a newcomer saw of the line before it joined: when it came, and
/// who stood there then.
pub(super) struct Seen {
    /// The moment of arrival, read before the line was listed: anyone who
    /// came earlier and had made its place by then is in `before`.
    arrived: u64,
    /// The places listed (stale ones too, less those found gone), in
    /// arrival order.
    before: Vec<Place>,
}

/// Whether no running waiter stands in the line of `res`: only then may a
/// newcomer, or a try that does not wait, take a free slot without joining
/// the line, so that nobody overtakes those who came first. Also what was
/// seen, for a newcomer that goes on to join the line: it starts from that
/// instead of listing the line again.
///
/// A newcomer that will wait anyway (`waiting`) counts a stopped waiter as
/// one: it joins the line, and steps past the stopped one there. That
/// spares it reading `/proc` for the waiter at the end of the line, at
/// every obtain while anyone waits. A try must know: a stopped waiter keeps
/// a free slot from it for no longer than from anyone else.
pub(super) fn nobody_waits(
    res: &ResourceDir,
    sharing: Sharing,
    waiting: bool,
) -> Result<(bool, Seen)> {
    let mut seen = Seen {
        arrived: now_ns(),
        before: Vec::new(),
    };
    let Some(line) = LineDir::open(res, sharing, false)? else {
        return Ok((true, seen));
    };
    seen.before = match places(&line.path) {
        Ok(all) => all,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((true, seen)),
        Err(e) => return Err(Error::io("cannot list", &line.path, e)),
    };
    seen.before.sort_unstable();
    let nearest = line.nearest_waiter(&mut seen.before, !waiting, usize::MAX)?;
    Ok((matches!(nearest, Nearest::Nobody), seen))
}

/// What a walk back along the line found.
enum Nearest {
    /// The nearest live (and, if asked, running) waiter.
    Waiter(Place),
    /// Nobody: every place before was gone, stale or stopped.
    Nobody,
    /// More places were gone than the walk was allowed to find: list the
    /// directory instead.
    Unsure,
}

/// How many gone places a quick look (see [`Line::ahead`]) finds before it
/// lists the directory instead. A waiter woken because the one before it
/// left usually finds every place before that one gone too (that one was
/// the head, served after them all): looking at each costs a failed open,
/// as many as the line was long when it came, which made the CPU of a
/// hand-off grow with the line. One listing costs about as much as two.
const QUICK_GONE: usize = 2;

/// The line's directory, opened and checked.
struct LineDir {
    dir: OwnedFd,
    path: PathBuf,
    /// The mode of the files elect makes here (see `safe_open::open_file`).
    mode: u32,
}

impl LineDir {
    /// Opens (or, with `create`, makes) the line's directory.
    fn open(res: &ResourceDir, sharing: Sharing, create: bool) -> Result<Option<LineDir>> {
        let path = res.path.join(LINE_DIR);
        Ok(
            safe_open::open_dir(res.fd.as_fd(), Path::new(LINE_DIR), &path, create, sharing)?.map(
                |(dir, _)| LineDir {
                    dir,
                    path,
                    mode: sharing.file_mode(),
                },
            ),
        )
    }

    /// The last of `places` (sorted, in arrival order) whose waiter is
    /// alive and (if `running`) running, removing stale places on the way
    /// (from the directory and from `places`) and stepping past stopped
    /// waiters. Gives up with [`Nearest::Unsure`] once `gone` places were
    /// found gone or stale while more remain to be looked at.
    fn nearest_waiter(
        &self,
        places: &mut Vec<Place>,
        running: bool,
        gone: usize,
    ) -> Result<Nearest> {
        let mut found_gone = 0;
        let mut i = places.len();
        while i > 0 {
            i -= 1;
            let place = places[i];
            match self.is_alive(place)? {
                Some(true) if !running || !crate::sys::is_stopped(place.pid) => {
                    return Ok(Nearest::Waiter(place));
                }
                Some(true) => continue,
                Some(false) => self.remove(place),
                None => {}
            }
            places.remove(i);
            found_gone += 1;
            if found_gone >= gone && i > 0 {
                return Ok(Nearest::Unsure);
            }
        }
        Ok(Nearest::Nobody)
    }

    /// Whether the waiter at `place` still waits: its file's lock is held.
    /// `None`: its file is gone already, or is not a waiter's.
    fn is_alive(&self, place: Place) -> Result<Option<bool>> {
        let name = place.name();
        match safe_open::open_file(self.dir.as_fd(), &self.path, &name, Access::Read, self.mode) {
            Ok((fd, _)) => {
                let free = safe_open::try_flock(fd.as_fd(), false)
                    .map_err(|e| Error::io("cannot lock", self.path.join(&name), e))?;
                Ok(Some(!free))
            }
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Ok(None)
            }
            // Not a place a waiter made (a link, a FIFO, a directory, a file
            // of a stranger's): nobody waits there. It is neither followed
            // nor removed, and holds up nobody.
            Err(Error::Unsafe { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes a stale place (its waiter died without leaving).
    fn remove(&self, place: Place) {
        if let Ok(c) = CString::new(place.name()) {
            // SAFETY: c is a valid C string. Gone already is fine.
            unsafe { libc::unlinkat(std::os::fd::AsRawFd::as_raw_fd(&self.dir), c.as_ptr(), 0) };
        }
    }
}

/// The pids of the processes waiting in the line of `res`, in the order
/// they arrived, as the kernel's list of locks (`locked`, see
/// `sys::locked_files`) shows them: a place whose file is locked. Takes no
/// lock and removes nothing; for display only.
pub(super) fn waiters(res: &ResourceDir, locked: &HashMap<FileId, u32>) -> Vec<u32> {
    let Ok(mut all) = places(&res.path.join(LINE_DIR)) else {
        return Vec::new();
    };
    all.sort_unstable();
    all.into_iter()
        .filter_map(|place| {
            let name = Path::new(LINE_DIR).join(place.name());
            let look = crate::sys::look_at(Some(res.fd.as_fd()), &name).ok()?;
            // Only a regular file is a place (a link, FIFO or directory
            // there is nobody's).
            if look.mode & libc::S_IFMT != libc::S_IFREG {
                return None;
            }
            let pid = *locked.get(&look.id)?;
            // A pid the kernel cannot name here: the one in the file name.
            Some(if pid == 0 { place.pid } else { pid })
        })
        .collect()
}

/// This process's place in the line, held by a flock on its file.
struct Line {
    dir: LineDir,
    me: Place,
    /// Holds the exclusive lock; opened read-write, so that its close (our
    /// leaving, or our death) wakes the waiter behind us.
    _file: OwnedFd,
    /// The places before ours at the last full look, in arrival order,
    /// less those found gone since: where the next look starts, so that a
    /// wake when the one before us leaves reads no directory.
    older: Vec<Place>,
}

/// Who stands before us.
enum Ahead {
    /// Nobody: we are the head.
    Nobody,
    /// The nearest live, running waiter.
    Waiter(Place),
    /// Our own file is gone from the line (the directory was removed or
    /// replaced): start again.
    Lost,
}

impl Line {
    /// Joins the line as the newcomer that saw `seen`.
    fn enter(res: &ResourceDir, sharing: Sharing, seen: Seen) -> Result<Line> {
        let line = LineDir::open(res, sharing, true)?.expect("created");
        let (dir, path, mode) = (&line.dir, &line.path, line.mode);
        let mut arrived = seen.arrived;
        loop {
            let me = Place {
                arrived,
                pid: std::process::id(),
            };
            let name = me.name();
            let c = CString::new(name.as_str()).expect("digits and a dot");
            // O_EXCL: a name is one waiter's; two arriving in the same
            // nanosecond take the next.
            // SAFETY: c is a valid C string; the result is checked.
            let raw = unsafe {
                libc::openat(
                    std::os::fd::AsRawFd::as_raw_fd(dir),
                    c.as_ptr(),
                    libc::O_RDWR
                        | libc::O_CREAT
                        | libc::O_EXCL
                        | libc::O_CLOEXEC
                        | libc::O_NOFOLLOW,
                    mode as libc::c_uint,
                )
            };
            if raw < 0 {
                let err = std::io::Error::last_os_error();
                if err.kind() == std::io::ErrorKind::AlreadyExists {
                    arrived += 1;
                    continue;
                }
                return Err(Error::io("cannot join the line in", path, err));
            }
            // SAFETY: raw is a fresh descriptor that nothing else owns.
            let file = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
            // Someone cleaning stale files may have taken it for one between
            // the create and the lock, and removed it: then take another.
            let locked = safe_open::try_flock(file.as_fd(), true)
                .map_err(|e| Error::io("cannot lock", path.join(&name), e))?;
            let still = crate::sys::look_at(Some(dir.as_fd()), Path::new(&name)).is_ok_and(|l| {
                Some(l.id)
                    == safe_open::fstat(file.as_fd())
                        .ok()
                        .map(|st| crate::sys::FileId::of(&st))
            });
            if locked && still {
                let mut older = seen.before;
                older.retain(|p| *p < me);
                return Ok(Line {
                    dir: line,
                    me,
                    _file: file,
                    older,
                });
            }
            arrived += 1;
        }
    }

    /// Finds who stands before us, removing stale places on the way and
    /// stepping past stopped waiters. A `full` look lists the line's
    /// directory; otherwise only the places before us at the last full look
    /// are looked at again: nobody who arrives later stands before us,
    /// except one that read the clock before us and made its place after (a
    /// moment's preemption), which the next full look, within a second,
    /// finds. A quick look that finds more than [`QUICK_GONE`] places gone
    /// turns into a full one.
    fn ahead(&mut self, mut full: bool) -> Result<Ahead> {
        loop {
            if full {
                let path = &self.dir.path;
                let mut all = match places(path) {
                    Ok(all) => all,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Ahead::Lost),
                    Err(e) => return Err(Error::io("cannot list", path, e)),
                };
                if !all.contains(&self.me) {
                    return Ok(Ahead::Lost);
                }
                all.retain(|p| *p < self.me);
                all.sort_unstable();
                self.older = all;
            }
            let gone = if full { usize::MAX } else { QUICK_GONE };
            match self.dir.nearest_waiter(&mut self.older, true, gone)? {
                Nearest::Waiter(place) => return Ok(Ahead::Waiter(place)),
                Nearest::Nobody => return Ok(Ahead::Nobody),
                Nearest::Unsure => full = true,
            }
        }
    }
}

impl Drop for Line {
    /// Leaves the line: removes our file, then closes it (in a fork child,
    /// only closes: the place is the parent's).
    fn drop(&mut self) {
        if self.me.pid == std::process::id() {
            self.dir.remove(self.me);
        }
    }
}

/// How a wait ended.
pub(super) enum Waited {
    Got(LocalHeld),
    /// The directory changed under the wait: start again.
    Restart,
}

/// Waits in line for a slot of `req`'s resource, until `intr` says stop
/// (`Err(Error::Cancelled)`).
pub(super) fn wait(
    joined: &Arc<Joined>,
    req: &Request,
    sharing: Sharing,
    intr: &Interrupter,
    seen: Seen,
) -> Result<Waited> {
    let res = &joined.res;
    let mode = sharing.file_mode();
    let mut line = Line::enter(res, sharing, seen)?;
    let inotify = joined.inotify();
    // Back to the membership however the wait ends without a ticket.
    struct Spare<'a>(&'a Joined, Option<Inotify>);
    impl Drop for Spare<'_> {
        fn drop(&mut self) {
            if let Some(ino) = self.1.take() {
                self.0.keep_inotify(ino);
            }
        }
    }
    let mut inotify = Spare(joined, inotify);
    // A reused instance may still watch the directory for releases (it was
    // a head's): only the head may wake for those. Replacing the watch's
    // mask costs nothing, unlike removing it.
    if let Some(ino) = &inotify.1 {
        let _ = ino.add(res.fd.as_fd(), None, IN_DELETE_SELF | IN_MOVE_SELF);
    }
    // The watch of the directory (as the head), or of the file of the
    // waiter before us.
    let mut head_watch: Option<i32> = None;
    let mut ahead_watch: Option<(i32, Place)> = None;
    // Where in RETRY the next sleep is: reset by an event that may not have
    // shown yet (a close is queued before the kernel drops the lock), for
    // the head (a holder's record) and for the others (the waiter before
    // them dying) alike.
    let mut retry = 0;
    let mut first = 0;
    // When the next full look at the line is due. Between full looks the
    // head stays the head: only an arrival that read the clock before us
    // and made its place after (a moment's preemption), or a stopped
    // waiter continued, can stand before it, and for those a second's wait
    // is fair. So a release wakes the head straight to the slots, and the
    // one behind a leaver looks only at those it knew were before it. The
    // first look, too, starts from what the newcomer saw before it joined.
    let mut look_again = std::time::Instant::now() + TICK;
    loop {
        intr.check().map_err(|_| Error::Cancelled)?;
        let now = std::time::Instant::now();
        let full = now >= look_again;
        if full {
            look_again = now + TICK;
        }
        let ahead = if head_watch.is_some() && !full {
            Ahead::Nobody
        } else {
            line.ahead(full)?
        };
        let timeout = match ahead {
            Ahead::Lost => return Ok(Waited::Restart),
            Ahead::Nobody => {
                // The watch of the waiter before us is not removed: its file
                // is gone (the kernel drops a watch of a deleted file by
                // itself), and inotify_rm_watch waits for an RCU grace
                // period, milliseconds that would fall between the release
                // we are about to wait for and our ticket.
                ahead_watch = None;
                if let (Some(ino), None) = (&inotify.1, head_watch) {
                    head_watch = ino.add(res.fd.as_fd(), None, HEAD_EVENTS).ok();
                    // A new head saw no release yet: any from now on is an
                    // event. Only a holder that died as the watch was made
                    // (its event queued before its lock was dropped) could
                    // be missed; one look after the last retry finds it.
                    retry = RETRY.len() - 1;
                }
                match slot::try_slots(joined, req.tickets, first, mode)? {
                    Tried::Got { slot, lock, id } => {
                        let got = slot::finish(
                            joined,
                            req,
                            (slot, lock, id),
                            mode,
                            intr,
                            &mut inotify.1,
                        )?;
                        let Some(held) = got else {
                            // Its file was replaced between the lock and the
                            // record: still the head, try again.
                            continue;
                        };
                        // Only now the next in line may go: the ticket is
                        // complete.
                        drop(line);
                        return Ok(Waited::Got(held));
                    }
                    Tried::Changed => return Ok(Waited::Restart),
                    Tried::None => {}
                }
                if !res.is_at_path() {
                    return Ok(Waited::Restart);
                }
                let t = RETRY.get(retry).copied().unwrap_or(TICK);
                retry += 1;
                // Without a watch (no inotify to be had), look often.
                if head_watch.is_some() { t } else { t.min(POLL) }
            }
            Ahead::Waiter(place) => {
                // Retries are for a look that still found alive the one
                // whose close woke us; a new one before us is watched.
                if ahead_watch.is_none_or(|(_, p)| p != place) {
                    retry = RETRY.len();
                }
                // No longer the head: the directory's watch stops waking us
                // for releases (its mask replaced; see above).
                if let (Some(ino), Some(_)) = (&inotify.1, head_watch.take()) {
                    let _ = ino.add(res.fd.as_fd(), None, IN_DELETE_SELF | IN_MOVE_SELF);
                }
                if let Some(ino) = &inotify.1
                    && ahead_watch.is_none_or(|(_, p)| p != place)
                {
                    // Not removed either (see above): the one before us
                    // usually left, and a watch of one stepped past costs
                    // at most a spurious look when it leaves.
                    match ino.add(line.dir.dir.as_fd(), Some(&place.name()), AHEAD_EVENTS) {
                        Ok(wd) => ahead_watch = Some((wd, place)),
                        // Gone already: look again at once.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        // No watch to be had (the per-user limit): look
                        // often instead.
                        Err(_) => {}
                    }
                    // It may have left between the look and the watch.
                    if ahead_watch.is_some() && line.dir.is_alive(place)? != Some(true) {
                        continue;
                    }
                }
                // Woken at the next full look at the latest.
                let until_full = look_again.saturating_duration_since(std::time::Instant::now());
                let t = RETRY.get(retry).copied();
                retry += 1;
                match t {
                    Some(t) => t,
                    None if ahead_watch.is_some() => until_full.max(Duration::from_millis(1)),
                    None => POLL,
                }
            }
        };
        let woken = match &inotify.1 {
            Some(ino) => intr.sleep(Some(ino.as_fd()), Some(timeout)),
            None => intr.sleep(None, Some(timeout.min(POLL))),
        }
        .map_err(|e| Error::io("cannot wait on", &res.path, e))?;
        match woken {
            Err(_) => return Err(Error::Cancelled),
            Ok(Woken::Timeout) => {}
            Ok(Woken::Ready) => {
                let events = inotify
                    .1
                    .as_ref()
                    .map(|ino| ino.read())
                    .transpose()
                    .map_err(|e| Error::io("cannot wait on", &res.path, e))?
                    .unwrap_or_default();
                for ev in events {
                    if Some(ev.wd) == head_watch {
                        if ev.mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED) != 0 {
                            return Ok(Waited::Restart);
                        }
                        if let Some(slot) = std::str::from_utf8(&ev.name)
                            .ok()
                            .and_then(|n| n.strip_prefix("slot."))
                            .and_then(|n| n.parse().ok())
                        {
                            first = slot;
                            retry = 0;
                        }
                    }
                    if ahead_watch.is_some_and(|(wd, _)| wd == ev.wd)
                        || ev.mask & IN_Q_OVERFLOW != 0
                    {
                        retry = 0;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::OpenOptionsExt;

    /// A line's directory in a fresh temporary directory, with `n` places
    /// whose files are gone (their waiters left).
    fn line_with_gone(n: u64) -> (tempfile::TempDir, LineDir, Vec<Place>) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = OwnedFd::from(std::fs::File::open(tmp.path()).unwrap());
        let line = LineDir {
            dir,
            path: tmp.path().to_path_buf(),
            mode: 0o600,
        };
        let places = (0..n)
            .map(|arrived| Place {
                arrived,
                pid: std::process::id(),
            })
            .collect();
        (tmp, line, places)
    }

    #[test]
    fn a_quick_look_gives_up_after_a_few_gone_places() {
        let (_tmp, line, mut places) = line_with_gone(50);
        assert!(matches!(
            line.nearest_waiter(&mut places, true, QUICK_GONE).unwrap(),
            Nearest::Unsure
        ));
        // It looked at QUICK_GONE places only, from the end.
        assert_eq!(places.len(), 50 - QUICK_GONE);
        assert_eq!(places.last().unwrap().arrived, 49 - QUICK_GONE as u64);
    }

    #[test]
    fn a_full_walk_finds_nobody_among_gone_places() {
        let (_tmp, line, mut places) = line_with_gone(50);
        assert!(matches!(
            line.nearest_waiter(&mut places, true, usize::MAX).unwrap(),
            Nearest::Nobody
        ));
        assert!(places.is_empty());
        // With as many gone as the budget and nothing left, nobody is
        // there: no listing needed.
        let (_tmp, line, mut places) = line_with_gone(QUICK_GONE as u64);
        assert!(matches!(
            line.nearest_waiter(&mut places, true, QUICK_GONE).unwrap(),
            Nearest::Nobody
        ));
    }

    #[test]
    fn a_walk_stops_at_the_nearest_live_waiter() {
        let (tmp, line, mut places) = line_with_gone(10);
        // The waiter at place 3 is alive: its file exists and is locked.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(tmp.path().join(places[3].name()))
            .unwrap();
        file.lock().unwrap();
        assert!(matches!(
            line.nearest_waiter(&mut places, true, usize::MAX).unwrap(),
            Nearest::Waiter(p) if p == places[3]
        ));
        assert_eq!(places.len(), 4);
    }
}
