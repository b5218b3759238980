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
use std::path::Path;

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

/// Checks an opened directory: it must be a directory, and not one that
/// others could use to swap files under us.
pub(crate) fn check_dir(fd: BorrowedFd<'_>, path: &Path) -> Result<libc::stat> {
    let st = fstat(fd).map_err(|e| Error::io("cannot inspect", path, e))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return Err(Error::unsafe_path(
            path,
            format!("it is {}, not a directory", file_type_name(st.st_mode)),
        ));
    }
    let others_write = st.st_mode & 0o002 != 0;
    let group_write = st.st_mode & 0o020 != 0;
    let sticky = st.st_mode & libc::S_ISVTX != 0;
    // Asked only when it matters: `status` checks ten thousand private
    // directories, and a system call is a system call.
    // SAFETY: getuid cannot fail.
    if (others_write || group_write) && st.st_uid != unsafe { libc::getuid() } {
        return Err(Error::unsafe_path(
            path,
            format!(
                "it belongs to uid {} and others may write to it, so they could replace elect's files; use a directory of your own (--dir or ELECT_DIR)",
                st.st_uid
            ),
        ));
    }
    if others_write && !sticky {
        return Err(Error::unsafe_path(
            path,
            "anyone may write to it and it has no sticky bit, so others could replace elect's files; `chmod o-w` it or use another directory",
        ));
    }
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

/// Opens the directory `name` inside `parent` (or the absolute path `name`
/// when `parent` is `None`), creating it with `mode` first if `create`, and
/// checks it, giving the `fstat` it checked it with. Returns `Ok(None)` when
/// it does not exist and `create` is false.
pub(crate) fn open_dir(
    parent: Option<BorrowedFd<'_>>,
    name: &Path,
    path: &Path,
    create: bool,
    mode: u32,
) -> Result<Option<(OwnedFd, libc::stat)>> {
    let c = cstr(name)?;
    if create {
        let dirfd = parent.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
        // SAFETY: c is a valid C string.
        if unsafe { libc::mkdirat(dirfd, c.as_ptr(), mode as libc::mode_t) } != 0 {
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EEXIST) => {}
                Some(libc::ENOENT) if parent.is_none() => {
                    // A missing parent of the run directory: make it as
                    // `mkdir -p` would, private to this user.
                    if let Some(up) = path.parent() {
                        use std::os::unix::fs::DirBuilderExt;
                        std::fs::DirBuilder::new()
                            .recursive(true)
                            .mode(0o700)
                            .create(up)
                            .map_err(|e| Error::io("cannot create", up, e))?;
                    }
                    return open_dir(parent, name, path, create, mode);
                }
                _ => return Err(open_error("cannot create directory", path, err)),
            }
        }
    }
    match open_raw(parent, &c, libc::O_RDONLY | libc::O_DIRECTORY, 0) {
        Ok(fd) => {
            let st = check_dir(fd_borrow(&fd), path)?;
            Ok(Some((fd, st)))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound && !create => Ok(None),
        Err(e) => Err(open_error("cannot open directory", path, e)),
    }
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
    /// Read and write; the file must exist.
    ReadWrite,
    /// Write only; the file must exist.
    Write,
    /// Write only, creating it if missing.
    WriteCreate,
    /// Read only; the file must exist.
    Read,
}

/// Opens the regular file `name` in `dir`, refusing links, FIFOs, sockets,
/// devices, directories and files with more than one link (a hard link could
/// point a write at a file elsewhere).
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
            Access::ReadWrite => libc::O_RDWR,
            Access::Write => libc::O_WRONLY,
            Access::WriteCreate => libc::O_WRONLY | libc::O_CREAT,
            Access::Read => libc::O_RDONLY,
        };
    let fd =
        open_raw(Some(dir), &c, flags, mode).map_err(|e| open_error("cannot open", &path, e))?;
    let st = fstat(fd_borrow(&fd)).map_err(|e| Error::io("cannot inspect", &path, e))?;
    refuse_unsafe_file(&path, st.st_mode as u32, st.st_nlink as u64)?;
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
    let c = CString::new(name).expect("internal names have no NUL");
    let fd = open_raw(
        Some(dir),
        &c,
        libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY,
        0,
    )?;
    read_prefix(fd_borrow(&fd), max)
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

/// Asks that reading `fd` not update the file's access time
/// (`O_NOATIME`). Only the file's owner may; for anyone else nothing
/// changes, which is fine: it only saves a write of the inode.
pub(crate) fn set_noatime(fd: BorrowedFd<'_>) {
    // SAFETY: plain syscalls on a borrowed descriptor.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NOATIME);
        }
    }
}
