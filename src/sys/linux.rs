//! Linux: inotify to sleep until a slot file is closed, and `/proc/locks` to
//! see who holds a flock without taking it.

use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::{FileId, Look, Seen};

/// An inotify watch on one directory, held by its descriptor so that a
/// rename of the path cannot redirect it.
///
/// When the kernel refuses another inotify instance or watch (the per-user
/// limits, `fs.inotify.max_user_instances` is often only 128), the watch
/// polls instead: it sleeps [`POLL`] at a time and reports a possible
/// release each time, so waiting goes on, only less promptly and less
/// cheaply.
#[derive(Debug)]
pub(crate) struct DirWatch {
    fd: Option<OwnedFd>,
    /// Watching slot files one by one (see [`DirWatch::slot_files`]), not
    /// a directory: events then name no file, and the watch tells which.
    files: bool,
}

/// The events that say a slot may have been released.
const RELEASED: u32 = libc::IN_CLOSE_WRITE | libc::IN_ATTRIB;

/// How often a watch without inotify looks again.
const POLL: Duration = Duration::from_millis(10);

impl DirWatch {
    /// Watches the directory open at `dir` for releases and for the
    /// directory going away: what a waiter needs. A holder that releases
    /// touches its slot file's times (IN_ATTRIB); one that dies closes its
    /// record descriptor (IN_CLOSE_WRITE).
    pub(crate) fn releases(dir: BorrowedFd<'_>) -> io::Result<Self> {
        Self::new(dir, RELEASED)
    }

    /// Watches for releases, and also for slot files written (a holder
    /// recorded itself) and entries created: what an observer needs.
    pub(crate) fn changes(dir: BorrowedFd<'_>) -> io::Result<Self> {
        Self::new(
            dir,
            RELEASED | libc::IN_MODIFY | libc::IN_CREATE | libc::IN_MOVED_TO,
        )
    }

    fn new(dir: BorrowedFd<'_>, interest: u32) -> io::Result<Self> {
        match Self::inotify(dir, interest) {
            Ok(fd) => Ok(DirWatch {
                fd: Some(fd),
                files: false,
            }),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENOSPC)) => {
                Ok(DirWatch {
                    fd: None,
                    files: false,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Watches the files `slot.0` to `slot.<n-1>` in the directory open at
    /// `dir` for releases, and nothing else: what a seated process's helper
    /// needs (it must not wake for the seats, which the head watches). Each
    /// file must exist. Unlike the other watches this one never polls: it
    /// fails when the kernel refuses it.
    pub(crate) fn slot_files(dir: BorrowedFd<'_>, n: u32) -> io::Result<Self> {
        let fd = Self::instance()?;
        for i in 0..n {
            // Through our descriptor of the directory, as in `inotify`; the
            // slot file itself is not followed if it is a symbolic link.
            let path = CString::new(format!("/proc/self/fd/{}/slot.{i}", dir.as_raw_fd()))
                .expect("no NUL");
            // SAFETY: path is a valid C string; fd is an inotify descriptor.
            let wd = unsafe {
                libc::inotify_add_watch(
                    fd.as_raw_fd(),
                    path.as_ptr(),
                    RELEASED | libc::IN_DONT_FOLLOW,
                )
            };
            if wd < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(DirWatch {
            fd: Some(fd),
            files: true,
        })
    }

    /// A new inotify instance, non-blocking and close-on-exec.
    fn instance() -> io::Result<OwnedFd> {
        // SAFETY: plain syscall; the result is checked.
        let raw = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: raw is a fresh descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(raw) })
    }

    fn inotify(dir: BorrowedFd<'_>, interest: u32) -> io::Result<OwnedFd> {
        let fd = Self::instance()?;
        // inotify_add_watch takes a path; naming the directory through our own
        // descriptor watches exactly the inode we opened and checked, even if
        // the path has since been replaced.
        let path = CString::new(format!("/proc/self/fd/{}", dir.as_raw_fd())).expect("no NUL");
        let mask = interest | libc::IN_DELETE_SELF | libc::IN_MOVE_SELF | libc::IN_ONLYDIR;
        // SAFETY: path is a valid C string; fd is an inotify descriptor.
        let wd = unsafe { libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), mask) };
        if wd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(fd)
    }

    /// Whether this watch polls because inotify was refused.
    #[cfg(test)]
    pub(crate) fn is_polling(&self) -> bool {
        self.fd.is_none()
    }

    /// Sleeps until an event arrives or `timeout` passes (`None`: forever),
    /// then drains every queued event. Returns `Err` with `ErrorKind::Interrupted`
    /// when a signal interrupted the sleep.
    pub(crate) fn wait(&self, timeout: Option<Duration>) -> io::Result<Seen> {
        self.wait_or(timeout, None)
    }

    /// Like [`DirWatch::wait`], but also ends the sleep when `also` becomes
    /// readable (the caller reads it).
    pub(crate) fn wait_or(
        &self,
        timeout: Option<Duration>,
        also: Option<BorrowedFd<'_>>,
    ) -> io::Result<Seen> {
        let Some(fd) = &self.fd else {
            return Self::poll(timeout);
        };
        let pollfd = |fd: libc::c_int| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let mut pfd = [
            pollfd(fd.as_raw_fd()),
            pollfd(also.map_or(-1, |a| a.as_raw_fd())),
        ];
        let ts = timeout.map(|t| libc::timespec {
            tv_sec: t.as_secs().min(i32::MAX as u64) as libc::time_t,
            tv_nsec: t.subsec_nanos() as libc::c_long,
        });
        let tsp = ts.as_ref().map_or(std::ptr::null(), |t| t as *const _);
        let count = if also.is_some() { 2 } else { 1 };
        // SAFETY: `count` valid pollfds; tsp is null or points at a live
        // timespec.
        let n = unsafe { libc::ppoll(pfd.as_mut_ptr(), count, tsp, std::ptr::null()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 || pfd[0].revents == 0 {
            return Ok(Seen::default());
        }
        self.drain()
    }

    /// Without inotify: sleep a little (interruptibly: `ppoll` with no
    /// descriptors returns `EINTR` on a signal, where `thread::sleep` would
    /// go on) and report that a slot may have been released.
    fn poll(timeout: Option<Duration>) -> io::Result<Seen> {
        let t = timeout.map_or(POLL, |t| t.min(POLL));
        let ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: t.subsec_nanos() as libc::c_long,
        };
        // SAFETY: no descriptors; ts is a live timespec.
        if unsafe { libc::ppoll(std::ptr::null_mut(), 0, &ts, std::ptr::null()) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Seen {
            slot_closed: true,
            slot_written: true,
            ..Seen::default()
        })
    }

    /// Reads every queued event without sleeping.
    pub(crate) fn drain(&self) -> io::Result<Seen> {
        let Some(fd) = &self.fd else {
            return Ok(Seen::default());
        };
        let mut seen = Seen::default();
        // Aligned for inotify_event; big enough for many events at once. On
        // the stack: the head of the line drains between a release and its
        // ticket.
        let mut buf = [0u64; 4096 / 8];
        loop {
            // SAFETY: buf is writable for its whole length.
            let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len() * 8) };
            if n < 0 {
                let err = io::Error::last_os_error();
                return match err.kind() {
                    io::ErrorKind::WouldBlock => Ok(seen),
                    io::ErrorKind::Interrupted => continue,
                    _ => Err(err),
                };
            }
            let bytes =
                // SAFETY: the kernel wrote n bytes into buf.
                unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n as usize) };
            parse_events(bytes, self.files, &mut seen);
            // A read that did not fill the buffer took every queued event;
            // asking again would only say so (EAGAIN). An event queued
            // meanwhile wakes the next wait at once.
            if (n as usize) < buf.len() * 8 {
                return Ok(seen);
            }
        }
    }
}

/// What the file at `path` (relative to `dir`, or to the working directory)
/// is, not following a final symbolic link (see [`super::look_at`]).
///
/// It asks `statx` for type, links, inode and size, not for times. Asking
/// for a file's times marks them as seen (multigrain timestamps, Linux 6.13
/// and later), and then the next write to the file must store a fresh
/// modification time in its inode: a holder that checks its slot's path and
/// then writes its record paid 2.5 µs for the pair on ext4 instead of
/// 1.6 µs. Kernels without `statx` get `fstatat`.
pub(crate) fn look_at_c(dir: Option<BorrowedFd<'_>>, path: &CStr) -> io::Result<Look> {
    const WANTED: u32 = libc::STATX_TYPE | libc::STATX_NLINK | libc::STATX_INO | libc::STATX_SIZE;
    let dirfd = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: path is a valid C string; stx is written before it is read.
    let (r, stx) = unsafe {
        let mut stx: libc::statx = std::mem::zeroed();
        let r = libc::statx(
            dirfd,
            path.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW | libc::AT_STATX_DONT_SYNC,
            WANTED,
            &mut stx,
        );
        (r, stx)
    };
    if r == 0 && stx.stx_mask & WANTED == WANTED {
        return Ok(Look {
            id: FileId {
                dev: libc::makedev(stx.stx_dev_major, stx.stx_dev_minor),
                ino: stx.stx_ino,
            },
            mode: u32::from(stx.stx_mode),
            links: u64::from(stx.stx_nlink),
            size: stx.stx_size,
        });
    }
    let err = io::Error::last_os_error();
    // A kernel (or a seccomp filter) without statx, or a file system that
    // cannot tell all of it: the old call.
    if r == 0 || matches!(err.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) {
        return super::look_by_stat(dirfd, path);
    }
    Err(err)
}

/// Folds a buffer of `inotify_event` records into `seen`.
fn parse_events(mut bytes: &[u8], files: bool, seen: &mut Seen) {
    let header = size_of::<libc::inotify_event>();
    while bytes.len() >= header {
        // SAFETY: at least one header's worth of bytes; read_unaligned copes
        // with any alignment.
        let ev: libc::inotify_event =
            unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<libc::inotify_event>()) };
        let end = (header + ev.len as usize).min(bytes.len());
        let name = &bytes[header..end];
        let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
        let mask = ev.mask;
        // A watch of slot files names no file: the slots were added in
        // order to a fresh instance, whose watch descriptors the kernel
        // numbers from 1. A directory's names the file.
        let is_slot = files || name.starts_with(b"slot.");
        if mask & RELEASED != 0 && is_slot {
            seen.slot_closed = true;
            if seen.first_closed.is_none() {
                seen.first_closed = if files {
                    u32::try_from(ev.wd - 1).ok()
                } else {
                    std::str::from_utf8(&name[5..])
                        .ok()
                        .and_then(|n| n.parse().ok())
                };
            }
        }
        if mask & RELEASED != 0 && !files && name.starts_with(b"seat.") {
            seen.seat_freed = true;
        }
        if mask & libc::IN_MODIFY != 0 && is_slot {
            seen.slot_written = true;
        }
        if mask & (libc::IN_CREATE | libc::IN_MOVED_TO) != 0 {
            seen.created = true;
        }
        if mask
            & (libc::IN_DELETE_SELF | libc::IN_MOVE_SELF | libc::IN_IGNORED | libc::IN_Q_OVERFLOW)
            != 0
        {
            seen.dir_changed = true;
        }
        bytes = &bytes[end..];
    }
}

/// The files on which some process holds an exclusive flock right now, as
/// the kernel lists them in `/proc/locks`. Waiters (lines with `->`) are
/// left out: they hold nothing.
///
/// The kernel makes each `read` of `/proc/locks` a consistent walk of its
/// lists, but only for one buffer's worth (a page); a longer list is read in
/// several walks, and a lock removed between two walks shifts the rest, so
/// a walk can skip an entry that never changed. A list that fits one read is
/// taken as it is; a longer one is read again until two readings agree, and
/// what any reading saw counts as held.
///
/// Where `/proc/locks` cannot be read (a mount namespace that hides /proc),
/// this is an error, and callers report it: nothing tries a lock instead,
/// because a look that locks makes a concurrent try of a free slot fail.
pub(crate) fn locked_files() -> io::Result<HashSet<FileId>> {
    let mut held = HashSet::new();
    let mut previous: Option<HashSet<FileId>> = None;
    for _ in 0..4 {
        let (text, one_walk) = read_proc_locks()?;
        let now = parse_proc_locks(&text);
        if one_walk {
            return Ok(now);
        }
        held.extend(now.iter().copied());
        if previous.as_ref() == Some(&now) {
            break;
        }
        previous = Some(now);
    }
    Ok(held)
}

/// Reads `/proc/locks` with large reads; says whether the first read
/// returned all of it.
fn read_proc_locks() -> io::Result<(String, bool)> {
    use std::io::Read;
    let mut f = std::fs::File::open("/proc/locks")?;
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0;
    let mut reads = 0;
    loop {
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let n = match f.read(&mut buf[len..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            break;
        }
        len += n;
        reads += 1;
    }
    buf.truncate(len);
    Ok((String::from_utf8_lossy(&buf).into_owned(), reads <= 1))
}

/// Parses `/proc/locks`: `1: FLOCK  ADVISORY  WRITE 4242 fd:01:123456 0 EOF`.
/// The device is `major:minor` in hex, the inode decimal.
pub(crate) fn parse_proc_locks(text: &str) -> HashSet<FileId> {
    let mut held = HashSet::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // `ID: [->] KIND ADVISORY MODE PID MAJ:MIN:INO START END`
        let [_, kind, _advisory, mode, _pid, id, ..] = fields[..] else {
            continue;
        };
        if kind != "FLOCK" {
            continue;
        }
        if mode != "WRITE" {
            continue;
        }
        let mut parts = id.splitn(3, ':');
        let (Some(maj), Some(min), Some(ino)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let (Ok(maj), Ok(min), Ok(ino)) = (
            u32::from_str_radix(maj, 16),
            u32::from_str_radix(min, 16),
            ino.parse::<u64>(),
        ) else {
            continue;
        };
        held.insert(FileId {
            dev: libc::makedev(maj, min) as u64,
            ino,
        });
    }
    held
}

#[cfg(test)]
mod tests {
    use super::super::{look_at, look_by_stat};
    use super::*;
    use std::path::Path;

    #[test]
    fn a_watch_of_slot_files_names_the_slot_released_and_ignores_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["slot.0", "slot.1", "slot.2", "seat.2"] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let d = std::fs::File::open(dir.path()).unwrap();
        let w = DirWatch::slot_files(std::os::fd::AsFd::as_fd(&d), 3).unwrap();
        let touch = |name: &str| {
            std::fs::File::options()
                .write(true)
                .open(dir.path().join(name))
                .unwrap()
                .set_modified(std::time::SystemTime::now())
                .unwrap();
        };
        touch("seat.2");
        assert!(!w.drain().unwrap().any(), "a seat is not a slot");
        touch("slot.2");
        let seen = w.wait(Some(Duration::from_secs(60))).unwrap();
        assert!(seen.slot_closed);
        assert_eq!(seen.first_closed, Some(2));
    }

    #[test]
    fn look_at_agrees_with_stat_and_does_not_follow_links() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "").unwrap();
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let meta = std::fs::metadata(&file).unwrap();
        std::fs::hard_link(&file, dir.path().join("h")).unwrap();
        let look = look_at(None, &file).unwrap();
        assert_eq!((look.id.dev, look.id.ino), (meta.dev(), meta.ino()));
        assert_eq!((look.mode, look.links, look.size), (meta.mode(), 2, 0));
        let lmeta = std::fs::symlink_metadata(&link).unwrap();
        let l = look_at(None, &link).unwrap();
        assert_eq!((l.id.ino, l.mode), (lmeta.ino(), lmeta.mode()));
        let d = std::fs::File::open(dir.path()).unwrap();
        use std::os::fd::AsFd;
        assert_eq!(look_at(Some(d.as_fd()), Path::new("f")).unwrap(), look);
        let stat = look_by_stat(
            libc::AT_FDCWD,
            &CString::new(file.to_str().unwrap()).unwrap(),
        );
        assert_eq!(stat.unwrap(), look);
        assert_eq!(
            look_at(None, &dir.path().join("nope")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn a_watch_polls_when_inotify_is_refused() {
        // Use up this process's inotify instances (the per-user limit), then
        // one more watch must still work, by polling.
        let dir = std::fs::File::open("/").unwrap();
        use std::os::fd::AsFd;
        let mut held = Vec::new();
        let mut polling = None;
        for _ in 0..100_000 {
            let w = DirWatch::releases(dir.as_fd()).unwrap();
            if w.is_polling() {
                polling = Some(w);
                break;
            }
            held.push(w);
        }
        let w = polling.expect("the kernel never refused an inotify instance");
        let seen = w.wait(Some(Duration::from_millis(1))).unwrap();
        assert!(
            seen.slot_closed,
            "a polling watch reports a possible release"
        );
        assert_eq!(w.drain().unwrap(), Seen::default());
    }

    #[test]
    fn proc_locks_lines() {
        let text = "1: FLOCK  ADVISORY  WRITE 4242 fd:01:123456 0 EOF\n\
                    1: -> FLOCK  ADVISORY  WRITE 4343 fd:01:123456 0 EOF\n\
                    2: FLOCK  ADVISORY  READ 11 00:2a:77 0 EOF\n\
                    3: POSIX  ADVISORY  WRITE 12 00:2a:78 0 EOF\n\
                    4: OFDLCK ADVISORY  WRITE -1 00:2a:79 0 EOF\n\
                    garbage\n5: FLOCK ADVISORY WRITE 1 zz:01:5 0 EOF\n";
        let held = parse_proc_locks(text);
        assert_eq!(held.len(), 1);
        assert!(held.contains(&FileId {
            dev: libc::makedev(0xfd, 0x01) as u64,
            ino: 123456
        }));
    }
}
