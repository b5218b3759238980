//! Linux: inotify to sleep until a slot file is closed, and `/proc/locks` to
//! see who holds a flock without taking it.

use super::{Event, FileId, Look};
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// An inotify instance, non-blocking and close-on-exec, and the watches
/// added to it.
///
/// Closing an inotify descriptor waits for an RCU grace period (a few
/// milliseconds), so a waiter hands its instance to the ticket it obtains,
/// which closes it on release, away from the hand-off.
#[derive(Debug)]
pub(crate) struct Inotify {
    fd: OwnedFd,
}

impl Inotify {
    /// A new instance; `Err` when the kernel refuses one (the per-user
    /// limit `fs.inotify.max_user_instances`), and the caller then polls.
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: plain syscall; the result is checked.
        let raw = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: raw is a fresh descriptor that nothing else owns.
        Ok(Inotify {
            fd: unsafe { OwnedFd::from_raw_fd(raw) },
        })
    }

    /// The descriptor to sleep on.
    pub(crate) fn as_fd(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.fd.as_fd()
    }

    /// Watches `name` in the directory open at `dir` (or the directory
    /// itself when `name` is `None`) for `mask`, not following a link.
    /// Naming it through our own descriptor of the directory watches the
    /// directory we opened and checked, even if its path was replaced since.
    pub(crate) fn add(
        &self,
        dir: BorrowedFd<'_>,
        name: Option<&str>,
        mask: u32,
    ) -> io::Result<i32> {
        let path = match name {
            Some(n) => format!("/proc/self/fd/{}/{n}", dir.as_raw_fd()),
            None => format!("/proc/self/fd/{}", dir.as_raw_fd()),
        };
        let path = CString::new(path).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let mask = mask
            | if name.is_some() {
                libc::IN_DONT_FOLLOW
            } else {
                libc::IN_ONLYDIR
            };
        // SAFETY: path is a valid C string; fd is an inotify descriptor.
        let wd = unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), path.as_ptr(), mask) };
        if wd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(wd)
    }

    /// Every queued event, without sleeping.
    pub(crate) fn read(&self) -> io::Result<Vec<Event>> {
        let mut events = Vec::new();
        // Aligned for inotify_event; big enough for many events at once.
        let mut buf = [0u64; 4096 / 8];
        loop {
            // SAFETY: buf is writable for its whole length.
            let n =
                unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len() * 8) };
            if n < 0 {
                let err = io::Error::last_os_error();
                return match err.kind() {
                    io::ErrorKind::WouldBlock => Ok(events),
                    io::ErrorKind::Interrupted => continue,
                    _ => Err(err),
                };
            }
            // SAFETY: the kernel wrote n bytes into buf.
            let bytes =
                unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n as usize) };
            parse_events(bytes, &mut events);
            if (n as usize) < buf.len() * 8 {
                return Ok(events);
            }
        }
    }
}

/// Splits a buffer of `inotify_event` records.
fn parse_events(mut bytes: &[u8], into: &mut Vec<Event>) {
    let header = size_of::<libc::inotify_event>();
    while bytes.len() >= header {
        // SAFETY: at least one header's worth of bytes; read_unaligned copes
        // with any alignment.
        let ev: libc::inotify_event =
            unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<libc::inotify_event>()) };
        let end = (header + ev.len as usize).min(bytes.len());
        let name = &bytes[header..end];
        let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
        into.push(Event {
            wd: ev.wd,
            mask: ev.mask,
            name: name.to_vec(),
        });
        bytes = &bytes[end..];
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

/// The files on which some process holds an exclusive flock right now, as
/// the kernel lists them in `/proc/locks`, each with the pid the list names
/// for it: the process that took the lock (which may have exited since, if
/// a process that inherited the descriptor holds it now; see
/// [`lock_holder`]), or 0 where the kernel cannot name it (a process of
/// another PID namespace). Waiters (lines with `->`) are left out: they hold
/// nothing.
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
pub(crate) fn locked_files() -> io::Result<HashMap<FileId, u32>> {
    let mut held = HashMap::new();
    let mut previous: Option<HashMap<FileId, u32>> = None;
    for _ in 0..4 {
        let (text, one_walk) = read_proc_locks()?;
        let now = parse_proc_locks(&text);
        if one_walk {
            return Ok(now);
        }
        for (id, pid) in &now {
            held.entry(*id).or_insert(*pid);
        }
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
pub(crate) fn parse_proc_locks(text: &str) -> HashMap<FileId, u32> {
    let mut held = HashMap::new();
    for line in text.lines() {
        if let Some((id, pid)) = parse_lock_line(line) {
            held.entry(id).or_insert(pid);
        }
    }
    held
}

/// One line of `/proc/locks` (or of a `lock:` line of
/// `/proc/PID/fdinfo/FD`, without its prefix): the file and the pid, when it
/// is an exclusive flock that is held (not waited for).
fn parse_lock_line(line: &str) -> Option<(FileId, u32)> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    // `ID: [->] KIND ADVISORY MODE PID MAJ:MIN:INO START END`
    let [_, kind, _advisory, mode, pid, id, ..] = fields[..] else {
        return None;
    };
    if kind != "FLOCK" || mode != "WRITE" {
        return None;
    }
    let mut parts = id.splitn(3, ':');
    let (maj, min, ino) = (parts.next()?, parts.next()?, parts.next()?);
    let (Ok(maj), Ok(min), Ok(ino)) = (
        u32::from_str_radix(maj, 16),
        u32::from_str_radix(min, 16),
        ino.parse::<u64>(),
    ) else {
        return None;
    };
    // A pid the kernel cannot name in our namespace is shown as 0 or -1.
    let pid = pid.parse::<u32>().unwrap_or(0);
    Some((
        FileId {
            dev: libc::makedev(maj, min) as u64,
            ino,
        },
        pid,
    ))
}

/// Whether process `pid` has ended: it is gone, or a zombie nobody reaped
/// yet (which holds no descriptor any more). A process that cannot be
/// looked at for another reason counts as alive: only a sighting of its
/// end says it ended.
pub(crate) fn process_gone(pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    match std::fs::read(format!("/proc/{pid}/stat")) {
        Err(e) => e.kind() == io::ErrorKind::NotFound,
        // `pid (comm) S ...`: the state follows the last ')'.
        Ok(stat) => {
            let state = stat
                .iter()
                .rposition(|&b| b == b')')
                .and_then(|i| stat.get(i + 2).copied());
            matches!(state, Some(b'Z' | b'X'))
        }
    }
}

/// Whether `a` (a pid as `/proc/locks` names it, in our PID namespace) and
/// `b` (a pid as a process wrote it about itself, maybe in a namespace of
/// its own, such as a container's) are the same process: equal, or `b` is
/// among the pids `/proc/a/status` lists for `a` in nested namespaces.
pub(crate) fn same_process(a: u32, b: u32) -> bool {
    if a == b {
        return true;
    }
    let Ok(status) = std::fs::read_to_string(format!("/proc/{a}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .is_some_and(|pids| pids.split_whitespace().skip(1).any(|p| p == b.to_string()))
}

/// Whether process `pid` has a descriptor that carries the exclusive flock
/// on the file `id`, as `/proc/PID/fdinfo` shows it. Reads the fdinfo only
/// of descriptors that name the file.
pub(crate) fn holds_lock(pid: u32, id: FileId) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    for fd in fds.flatten() {
        // Following the link costs one stat; only a descriptor of the file
        // itself has its fdinfo read.
        let Ok(meta) = std::fs::metadata(fd.path()) else {
            continue;
        };
        if meta.ino() != id.ino || meta.dev() != id.dev {
            continue;
        }
        let info = format!("/proc/{pid}/fdinfo/{}", fd.file_name().to_string_lossy());
        let Ok(text) = std::fs::read_to_string(info) else {
            continue;
        };
        if text
            .lines()
            .filter_map(|l| l.strip_prefix("lock:"))
            .filter_map(parse_lock_line)
            .any(|(locked, _)| locked == id)
        {
            return true;
        }
    }
    false
}

/// A live process that holds the exclusive flock on the file `id` through
/// a descriptor of its own, as `/proc/PID/fdinfo` shows it: the lowest pid
/// of every process this one may look at that does. `None` when none can be
/// seen (the holder is another user's and this process may not look at its
/// descriptors, or it lives in another PID namespace).
///
/// This is how a holder is found after the process that took the lock has
/// exited: a process that inherited the descriptor holds it now (a shell
/// whose `flock` child took the lock on the shell's descriptor, a fork
/// child), and `/proc/locks` still names the process that took it. It reads
/// the descriptors of every process: callers look at the likely ones first
/// with [`holds_lock`].
pub(crate) fn lock_holder(id: FileId) -> Option<u32> {
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids.into_iter().find(|&p| holds_lock(p, id))
}

#[cfg(test)]
mod tests {
    use super::super::{look_at, look_by_stat};
    use super::*;
    use std::path::Path;

    #[test]
    fn an_instance_reports_a_close_after_writing_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let d = std::fs::File::open(dir.path()).unwrap();
        use std::os::fd::AsFd;
        let ino = Inotify::new().unwrap();
        let wd = ino.add(d.as_fd(), None, libc::IN_CLOSE_WRITE).unwrap();
        assert!(ino.read().unwrap().is_empty());
        std::fs::write(dir.path().join("slot.3"), "x").unwrap();
        let events = ino.read().unwrap();
        assert!(
            events
                .iter()
                .any(|e| e.wd == wd && e.name == b"slot.3" && e.mask & libc::IN_CLOSE_WRITE != 0),
            "{events:?}"
        );
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
    fn the_holder_of_a_lock_is_found_through_its_descriptors() {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slot.0");
        let f = std::fs::File::create(&path).unwrap();
        let meta = f.metadata().unwrap();
        let id = FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        };
        let me = std::process::id();
        assert!(!holds_lock(me, id), "nothing locked yet");
        // SAFETY: plain syscall on an open descriptor.
        assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
        assert!(holds_lock(me, id));
        assert_eq!(locked_files().unwrap().get(&id), Some(&me));
        assert!(lock_holder(id).is_some_and(|p| p == me || holds_lock(p, id)));
        assert!(!process_gone(me));
        assert!(same_process(me, me));
        // A process that exited and was reaped is gone.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(process_gone(pid));
        assert!(!process_gone(0), "0 is no sighting");
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
        let id = FileId {
            dev: libc::makedev(0xfd, 0x01) as u64,
            ino: 123456,
        };
        assert_eq!(held.get(&id), Some(&4242));
    }
}
