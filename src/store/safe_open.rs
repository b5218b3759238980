//! Safe opening of the run directory, resource directories and the files in
//! them, for directories that may sit in world-writable places like /tmp.
//!
//! Every open is relative to an already-checked directory descriptor
//! (`openat`), with `O_NOFOLLOW` and `O_CLOEXEC`, and every check is made on
//! the opened descriptor (`fstat`), never on the path, so that nothing can be
//! swapped in between the check and the use. Directories are created with
//! `mkdirat` and then opened and checked like any other: creating never
//! relies on "it did not exist a moment ago".

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::ownership::{self, Sharing};
use crate::error::{Error, Result};
use crate::sys::FileId;

/// Converts a path or name to a C string, refusing interior NUL bytes.
pub(crate) fn cstr(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::unsafe_path(path, "the path contains a NUL byte"))
}

/// `fstat` on a descriptor.
pub(crate) fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    // SAFETY: st is written by the kernel before it is read.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd.as_raw_fd(), &mut st) == 0 {
            Ok(st)
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

fn file_type_name(mode: libc::mode_t) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => "a directory",
        libc::S_IFIFO => "a FIFO",
        libc::S_IFSOCK => "a socket",
        libc::S_IFLNK => "a symbolic link",
        libc::S_IFCHR => "a character device",
        libc::S_IFBLK => "a block device",
        libc::S_IFREG => "a regular file",
        _ => "not a regular file",
    }
}

/// Checks an opened directory: it must be a directory, and pass the
/// ownership rule (see [`ownership`]) for `sharing`.
pub(crate) fn check_dir(fd: BorrowedFd<'_>, path: &Path, sharing: Sharing) -> Result<libc::stat> {
    let st = fstat(fd).map_err(|e| Error::io("cannot inspect", path, e))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return Err(Error::unsafe_path(
            path,
            format!("it is {}, not a directory", file_type_name(st.st_mode)),
        ));
    }
    ownership::check(&st, path, sharing)?;
    Ok(st)
}

fn open_raw(
    dir: Option<BorrowedFd<'_>>,
    name: &CString,
    flags: libc::c_int,
    mode: u32,
) -> io::Result<OwnedFd> {
    let dirfd = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    loop {
        // SAFETY: name is a valid C string; the result is checked.
        let fd = unsafe {
            libc::openat(
                dirfd,
                name.as_ptr(),
                flags | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                mode as libc::c_uint,
            )
        };
        if fd >= 0 {
            // SAFETY: fd is fresh and owned by nobody else.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Explains an `open` failure on `path` in words a user can act on.
fn open_error(op: &'static str, path: &Path, err: io::Error) -> Error {
    match err.raw_os_error() {
        Some(libc::ELOOP) | Some(libc::EMLINK) => Error::unsafe_path(
            path,
            "it is a symbolic link; elect never follows links in its run directory, remove the link",
        ),
        // O_DIRECTORY reports a symbolic link as "not a directory".
        Some(libc::ENOTDIR)
            if crate::sys::look_at(None, path)
                .is_ok_and(|l| l.mode & libc::S_IFMT == libc::S_IFLNK) =>
        {
            Error::unsafe_path(
                path,
                "it is a symbolic link; elect never follows links in its run directory, remove the link",
            )
        }
        Some(libc::ENOTDIR) => Error::unsafe_path(
            path,
            "it is not a directory; remove it or choose another --dir",
        ),
        Some(libc::EISDIR) => Error::unsafe_path(
            path,
            "it is a directory where elect keeps a file; remove it",
        ),
        Some(libc::ENXIO) => Error::unsafe_path(
            path,
            "it is a socket or device where elect keeps a file; remove it",
        ),
        _ => Error::io(op, path, err),
    }
}

/// Makes the directory `name` in `dir`. `Ok(true)`: made now; `Ok(false)`:
/// something by that name was already there.
fn make_dir(dir: BorrowedFd<'_>, name: &CString, mode: u32, path: &Path) -> Result<bool> {
    // SAFETY: name is a valid C string.
    if unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) } == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EEXIST) => Ok(false),
        _ => Err(open_error("cannot create directory", path, err)),
    }
}

/// Gives a directory elect just made exactly `mode`, whatever the umask
/// took away from it at `mkdir`.
fn set_mode(fd: BorrowedFd<'_>, mode: u32, path: &Path) -> Result<()> {
    // SAFETY: plain syscall on a borrowed descriptor.
    if unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) } != 0 {
        return Err(Error::io(
            "cannot set the mode of",
            path,
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Opens the directory `name` inside the checked directory `parent`,
/// creating it first if `create` (mode as `sharing` says, whatever the
/// umask), and checks it, giving the `fstat` it checked it with. Returns
/// `Ok(None)` when it does not exist and `create` is false.
pub(crate) fn open_dir(
    parent: BorrowedFd<'_>,
    name: &Path,
    path: &Path,
    create: bool,
    sharing: Sharing,
) -> Result<Option<(OwnedFd, libc::stat)>> {
    let c = cstr(name)?;
    let made = create && make_dir(parent, &c, sharing.dir_mode(), path)?;
    match open_raw(Some(parent), &c, libc::O_RDONLY | libc::O_DIRECTORY, 0) {
        Ok(fd) => {
            if made {
                set_mode(fd_borrow(&fd), sharing.dir_mode(), path)?;
            }
            let st = check_dir(fd_borrow(&fd), path, sharing)?;
            Ok(Some((fd, st)))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound && !create => Ok(None),
        Err(e) => Err(open_error("cannot open directory", path, e)),
    }
}

/// How many symbolic links opening a run directory may follow, as the
/// kernel allows in one path.
const MAX_LINKS: u32 = 40;

/// Opens the run directory at the absolute `path`, component by component
/// from `/`, each with `O_NOFOLLOW`: a symbolic link on the way is followed
/// only once [`ownership::vet_link`] finds that nobody but root or the caller
/// could have put it there. Missing directories are made if `create` (the
/// parents private, as `mkdir -p` under umask 077 would, the run directory
/// as `sharing` says). The run directory is checked as [`open_dir`] checks;
/// the directories above it are not, except as holders of links.
/// `Ok(None)`: it does not exist and `create` is false.
pub(crate) fn open_run_dir(
    path: &Path,
    create: bool,
    sharing: Sharing,
) -> Result<Option<(OwnedFd, libc::stat)>> {
    use std::collections::VecDeque;
    use std::path::Component;

    // What is left to walk, with the links' targets spliced in.
    fn queue(into: &mut VecDeque<std::ffi::OsString>, path: &Path) {
        for c in path.components().rev() {
            match c {
                Component::Normal(n) => into.push_front(n.to_os_string()),
                Component::ParentDir => into.push_front("..".into()),
                Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            }
        }
    }
    let root = || {
        open_raw(
            None,
            &CString::from(c"/"),
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
        )
        .map_err(|e| Error::io("cannot open directory", "/", e))
    };
    let mut todo = VecDeque::new();
    queue(&mut todo, path);
    let mut cur = root()?;
    let mut cur_path = PathBuf::from("/");
    let mut links = 0;
    let mut made = false;
    while let Some(name) = todo.pop_front() {
        let last = todo.is_empty();
        let next_path = if name == ".." {
            cur_path.parent().unwrap_or(Path::new("/")).to_path_buf()
        } else {
            cur_path.join(&name)
        };
        let c = cstr(Path::new(&name))?;
        // The directories above only lead the way: O_PATH needs no read
        // permission on them (a home directory may be 0711).
        let flags = if last {
            libc::O_RDONLY
        } else {
            crate::sys::O_PATH
        } | libc::O_DIRECTORY;
        match open_raw(Some(fd_borrow(&cur)), &c, flags, 0) {
            Ok(fd) => {
                cur = fd;
                cur_path = next_path;
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                let mode = if last { sharing.dir_mode() } else { 0o700 };
                made = make_dir(fd_borrow(&cur), &c, mode, &next_path)? && last;
                todo.push_front(name);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                let look = fstat_at(fd_borrow(&cur), &c)
                    .map_err(|e| Error::io("cannot inspect", &next_path, e))?;
                if look.st_mode & libc::S_IFMT != libc::S_IFLNK {
                    return Err(Error::unsafe_path(
                        path,
                        format!(
                            "{} is {}, not a directory; choose another --dir or ELECT_DIR",
                            next_path.display(),
                            file_type_name(look.st_mode)
                        ),
                    ));
                }
                links += 1;
                if links > MAX_LINKS {
                    return Err(Error::unsafe_path(
                        path,
                        "it leads through more than 40 symbolic links; give the directory itself",
                    ));
                }
                let holder = fstat(fd_borrow(&cur))
                    .map_err(|e| Error::io("cannot inspect", &cur_path, e))?;
                ownership::vet_link(&look, &next_path, &holder, &cur_path)?;
                let target = read_link_at(fd_borrow(&cur), &c)
                    .map_err(|e| Error::io("cannot read the link", &next_path, e))?;
                if target.is_absolute() {
                    cur = root()?;
                    cur_path = PathBuf::from("/");
                }
                queue(&mut todo, &target);
            }
            Err(e) => return Err(open_error("cannot open directory", &next_path, e)),
        }
    }
    if made {
        set_mode(fd_borrow(&cur), sharing.dir_mode(), path)?;
    }
    let st = check_dir(fd_borrow(&cur), path, sharing)?;
    Ok(Some((cur, st)))
}

/// `fstatat` of `name` in `dir`, not following a link.
fn fstat_at(dir: BorrowedFd<'_>, name: &CString) -> io::Result<libc::stat> {
    // SAFETY: name is a valid C string; st is written before it is read.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        ) == 0
        {
            Ok(st)
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

/// The target of the symbolic link `name` in `dir`.
fn read_link_at(dir: BorrowedFd<'_>, name: &CString) -> io::Result<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: buf is writable for its length.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(PathBuf::from(std::ffi::OsString::from_vec(buf)))
}

/// Borrows an owned descriptor (shorthand).
pub(crate) fn fd_borrow(fd: &OwnedFd) -> BorrowedFd<'_> {
    use std::os::fd::AsFd;
    fd.as_fd()
}

/// How to open a file inside a resource directory.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Access {
    /// Read only, creating it if missing.
    ReadCreate,
    /// Read and write, creating it if missing.
    ReadWriteCreate,
    /// Write only; the file must exist.
    Write,
    /// Read only; the file must exist.
    Read,
}

/// Opens the regular file `name` in `dir`, refusing links, FIFOs, sockets,
/// devices, directories, files with more than one link (a hard link could
/// point a write at a file elsewhere) and files that fail the ownership rule.
/// `mode` is the mode of the files elect makes in `dir`, `0o600` or, with
/// group sharing, `0o660`: it says which owners are trusted too (see
/// [`Sharing::of_mode`]).
pub(crate) fn open_file(
    dir: BorrowedFd<'_>,
    dir_path: &Path,
    name: &str,
    access: Access,
    mode: u32,
) -> Result<(OwnedFd, FileId)> {
    open_file_sized(dir, dir_path, name, access, mode).map(|(fd, id, _)| (fd, id))
}

/// [`open_file`], also telling the file's size when it was opened.
pub(crate) fn open_file_sized(
    dir: BorrowedFd<'_>,
    dir_path: &Path,
    name: &str,
    access: Access,
    mode: u32,
) -> Result<(OwnedFd, FileId, u64)> {
    let path = dir_path.join(name);
    let c = CString::new(name).expect("internal names have no NUL");
    // O_NONBLOCK: opening a FIFO must not hang; it is refused below.
    let flags = libc::O_NONBLOCK
        | match access {
            Access::ReadCreate => libc::O_RDONLY | libc::O_CREAT,
            Access::ReadWriteCreate => libc::O_RDWR | libc::O_CREAT,
            Access::Write => libc::O_WRONLY,
            Access::Read => libc::O_RDONLY,
        };
    let sharing = Sharing::of_mode(mode);
    let wanted = sharing.file_mode();
    let fd =
        open_raw(Some(dir), &c, flags, wanted).map_err(|e| open_error("cannot open", &path, e))?;
    let st = fstat(fd_borrow(&fd)).map_err(|e| Error::io("cannot inspect", &path, e))?;
    refuse_unsafe_file(&path, st.st_mode as u32, st.st_nlink as u64)?;
    ownership::check(&st, &path, sharing)?;
    // A file made under a umask that took bits elect needs (the group's,
    // when sharing) gets them now; only its owner can, and only adds.
    let perms = st.st_mode as u32 & 0o7777;
    if perms & wanted != wanted && st.st_uid == ownership::euid() {
        // SAFETY: plain syscall on a borrowed descriptor.
        if unsafe { libc::fchmod(fd.as_raw_fd(), (perms | wanted) as libc::mode_t) } != 0 {
            return Err(Error::io(
                "cannot set the mode of",
                &path,
                io::Error::last_os_error(),
            ));
        }
    }
    Ok((fd, FileId::of(&st), st.st_size as u64))
}

/// Refuses a file elect would write that is not a regular file with one
/// name: a hard link could point a write at a file elsewhere.
// The casts are no-ops on Linux but not on every Unix.
#[allow(clippy::unnecessary_cast)]
pub(crate) fn refuse_unsafe_file(path: &Path, mode: u32, links: u64) -> Result<()> {
    if mode & libc::S_IFMT as u32 != libc::S_IFREG as u32 {
        return Err(Error::unsafe_path(
            path,
            format!(
                "it is {}, not a regular file; remove it",
                file_type_name(mode as libc::mode_t)
            ),
        ));
    }
    if links > 1 {
        return Err(Error::unsafe_path(
            path,
            "it has more than one hard link, so writing it could change a file elsewhere; remove it",
        ));
    }
    Ok(())
}

/// Writes `bytes` at offset 0 and cuts the file to that length. A single
/// `pwrite` of a small buffer to a regular file is not torn by the writer
/// being killed, so the file holds either the old text or the new.
pub(crate) fn overwrite(fd: BorrowedFd<'_>, path: &Path, bytes: &[u8]) -> Result<()> {
    overwrite_from(fd, path, bytes, u64::MAX)
}

/// [`overwrite`] for a file known to be `old_len` bytes long (`u64::MAX`:
/// unknown): the cut is skipped when nothing would be left over.
pub(crate) fn overwrite_from(
    fd: BorrowedFd<'_>,
    path: &Path,
    bytes: &[u8],
    old_len: u64,
) -> Result<()> {
    write_at(fd, bytes, 0).map_err(|e| Error::io("cannot write", path, e))?;
    // An unknown length is looked up: fstat is much cheaper than a
    // truncation to the same length, which on ext4 opens a journal handle.
    let old_len = match old_len {
        u64::MAX => fstat(fd).map_or(u64::MAX, |st| st.st_size as u64),
        known => known,
    };
    if old_len <= bytes.len() as u64 {
        return Ok(());
    }
    // SAFETY: plain syscall on a borrowed descriptor.
    if unsafe { libc::ftruncate(fd.as_raw_fd(), bytes.len() as libc::off_t) } != 0 {
        return Err(Error::io(
            "cannot truncate",
            path,
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Writes all of `bytes` at `offset` with one `pwrite`, which is short only
/// on a full disk (said so in the error).
pub(crate) fn write_at(fd: BorrowedFd<'_>, bytes: &[u8], offset: u64) -> io::Result<()> {
    // SAFETY: bytes is valid for its length.
    let n = unsafe {
        libc::pwrite(
            fd.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            offset as libc::off_t,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != bytes.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short write (is the disk full?)",
        ));
    }
    Ok(())
}

/// Reads at most `max` bytes of the file `name` in `dir`, to show them and
/// nothing else: `status` reads the `tickets` file and every held slot's
/// record this way.
///
/// Unlike [`open_file`] it makes no `fstat` (one of the four system calls
/// of such a read), because nothing it could find would change what is done:
/// the open refuses a symbolic link (`O_NOFOLLOW`), a socket (`ENXIO`) and
/// a FIFO without a writer cannot block it (`O_NONBLOCK`); the read fails
/// on a FIFO (`ESPIPE`) and a directory (`EISDIR`); a device node takes
/// privilege to make; and what a regular file with other names holds is
/// parsed, never written or believed.
pub(crate) fn read_to_show(dir: BorrowedFd<'_>, name: &str, max: usize) -> io::Result<Vec<u8>> {
    read_prefix(fd_borrow(&open_to_show(dir, name)?), max)
}

/// Opens the file `name` in `dir` read-only, to show what it holds, as
/// [`read_to_show`] does.
pub(crate) fn open_to_show(dir: BorrowedFd<'_>, name: &str) -> io::Result<OwnedFd> {
    let c = CString::new(name).expect("internal names have no NUL");
    open_raw(
        Some(dir),
        &c,
        libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY,
        0,
    )
}

/// Whether `err` says that the file system has no room left for the
/// bytes written (full, or the user's quota reached).
pub(crate) fn is_no_space(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
        || err.kind() == io::ErrorKind::WriteZero
}

/// Reads at most `max` bytes from offset 0 of a regular file: one `pread`
/// unless the file is longer than the first read returned.
pub(crate) fn read_prefix(fd: BorrowedFd<'_>, max: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; max];
    let got = read_into(fd, &mut buf)?.len();
    buf.truncate(got);
    Ok(buf)
}

/// [`read_prefix`] into `buf`, for the small files read on every
/// acquisition (`tickets`, `token`): no allocation.
pub(crate) fn read_into<'a>(fd: BorrowedFd<'_>, buf: &'a mut [u8]) -> io::Result<&'a [u8]> {
    let max = buf.len();
    let mut got = 0;
    while got < max {
        // SAFETY: buf[got..] is writable.
        let n = unsafe {
            libc::pread(
                fd.as_raw_fd(),
                buf[got..].as_mut_ptr().cast(),
                max - got,
                got as libc::off_t,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        let asked = max - got;
        got += n as usize;
        // Every file read here is a regular file, for which a short read
        // (or none) means the end of the file: asking again would only
        // return 0.
        if (n as usize) < asked {
            break;
        }
    }
    Ok(&buf[..got])
}

/// Tries to take an exclusive (or shared) flock without waiting. `Ok(false)`
/// means someone else holds a conflicting lock.
pub(crate) fn try_flock(fd: BorrowedFd<'_>, exclusive: bool) -> io::Result<bool> {
    let op = if exclusive {
        libc::LOCK_EX
    } else {
        libc::LOCK_SH
    } | libc::LOCK_NB;
    loop {
        // SAFETY: plain syscall on a borrowed descriptor.
        if unsafe { libc::flock(fd.as_raw_fd(), op) } == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::WouldBlock => return Ok(false),
            io::ErrorKind::Interrupted => continue,
            _ => return Err(err),
        }
    }
}
