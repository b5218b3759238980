//! The command `elect run` starts: finding it before a ticket is taken,
//! starting it with the contract's environment and with or without the
//! ticket, and turning how it ended into an exit status.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};

use elect::{Election, Ticket};

use super::exit::{self, Failure};

/// The search path `execvp` uses when `PATH` is unset.
const DEFAULT_PATH: &str = "/bin:/usr/bin";

/// The label `status` shows for a command by default: its command line,
/// each word quoted as a shell would need it (`sh -c 'sleep 2'`), so that
/// it reads as the command that was run and can be pasted back.
pub(crate) fn command_line(argv: &[OsString]) -> String {
    argv.iter()
        .map(|a| shell_quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `word` as a POSIX shell would need it written to read it back as one
/// word: as it is when it has only characters no shell treats specially,
/// else in single quotes (a single quote inside written `'\''`).
fn shell_quote(word: &str) -> String {
    let plain = |c: char| c.is_alphanumeric() || "_-+=,./:@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Checks, before any ticket is taken, that `program` can be run, so that a
/// typo fails at once (127 or 126) instead of after a long wait. Returns
/// the file found in `PATH` for a bare name, for [`spawn`] to execute
/// without searching again (`None` for a path).
pub(crate) fn check(program: &OsStr) -> Result<Option<PathBuf>, Failure> {
    let shown = program.to_string_lossy();
    if program.is_empty() {
        return Err(Failure::new(
            exit::NOT_FOUND,
            "cannot run an empty command name; give the command after NAME",
        ));
    }
    if program.as_bytes().contains(&b'/') {
        let path = Path::new(program);
        return match path.metadata() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Failure::new(
                exit::NOT_FOUND,
                format!("cannot run {shown:?}: no such file; check the path"),
            )),
            Err(e) => Err(Failure::new(
                exit::CANNOT_EXECUTE,
                format!("cannot run {shown:?}: {e}"),
            )),
            Ok(m) if m.is_dir() => Err(Failure::new(
                exit::CANNOT_EXECUTE,
                format!("cannot run {shown:?}: it is a directory; give a program"),
            )),
            Ok(_) if !executable(path) => Err(Failure::new(
                exit::CANNOT_EXECUTE,
                format!("cannot run {shown:?}: permission denied; make it executable (chmod +x)"),
            )),
            Ok(_) => check_interpreter(path, &shown).map(|()| None),
        };
    }
    let search = std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into());
    let mut not_executable: Option<PathBuf> = None;
    for dir in std::env::split_paths(&search) {
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let candidate = dir.join(program);
        if candidate.metadata().is_ok_and(|m| m.is_file()) {
            if executable(&candidate) {
                check_interpreter(&candidate, &shown)?;
                return Ok(Some(candidate));
            }
            not_executable.get_or_insert(candidate);
        }
    }
    match not_executable {
        Some(found) => Err(Failure::new(
            exit::CANNOT_EXECUTE,
            format!(
                "cannot run {shown:?}: {} is not executable; make it executable (chmod +x) or fix PATH",
                found.display()
            ),
        )),
        None => Err(Failure::new(
            exit::NOT_FOUND,
            format!(
                "cannot run {shown:?}: command not found in PATH; check the name, or give its path"
            ),
        )),
    }
}

/// Checks the interpreter a script names on its first line (`#!/bin/sh`):
/// the system reports a missing one as if the script itself were missing
/// ("No such file or directory"), so it is named here, before a ticket is
/// taken. Status 126, as a shell gives for a bad interpreter.
fn check_interpreter(script: &Path, shown: &str) -> Result<(), Failure> {
    let Some(interpreter) = interpreter_of(script) else {
        return Ok(());
    };
    let named = interpreter.to_string_lossy();
    let crlf = if named.ends_with('\r') {
        " (the line ends in a carriage return: the file has DOS line endings; convert it with dos2unix or sed -i 's/\\r$//')"
    } else {
        ""
    };
    let problem = match interpreter.metadata() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "does not exist",
        Ok(m) if m.is_dir() => "is a directory",
        Ok(_) if !executable(&interpreter) => "is not executable",
        _ => return Ok(()),
    };
    Err(Failure::new(
        exit::CANNOT_EXECUTE,
        format!(
            "cannot run {shown:?}: its interpreter {named:?}, named on its #! line, {problem}{crlf}; fix that line or install the interpreter"
        ),
    ))
}

/// The interpreter a script names on its first line (`#!/bin/sh -e` names
/// `/bin/sh`), if it starts with `#!`.
fn interpreter_of(script: &Path) -> Option<PathBuf> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let mut file = std::fs::File::open(script).ok()?;
    let n = file.read(&mut head).ok()?;
    let line = head[..n].strip_prefix(b"#!")?;
    let line = &line[..line.iter().position(|&b| b == b'\n').unwrap_or(line.len())];
    let start = line.iter().position(|&b| b != b' ' && b != b'\t')?;
    let rest = &line[start..];
    let end = rest
        .iter()
        .position(|&b| b == b' ' || b == b'\t')
        .unwrap_or(rest.len());
    Some(PathBuf::from(OsStr::from_bytes(&rest[..end])))
}

/// Whether this process may execute `path`.
fn executable(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated string.
    unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 }
}

/// Starts `argv` under `ticket`, with the contract's environment, from
/// `found` (what [`check`] found in `PATH`, if it searched) with `argv[0]`
/// as given. With `inherit`, the command inherits the ticket's descriptors;
/// without, elect alone holds the ticket and the command gets SIGKILL if
/// elect dies.
///
/// Must be called on the thread that stays alive until the command is
/// reaped: on Linux the parent-death signal fires when the parent *thread*
/// exits.
pub(crate) fn spawn(
    argv: &[OsString],
    found: Option<&Path>,
    election: &Election,
    ticket: &Ticket,
    inherit: bool,
) -> Result<Child, Failure> {
    // Executing the file found saves the child a second search of PATH, one
    // failed execve per directory before it.
    let mut cmd = match found {
        Some(file) => {
            let mut cmd = Command::new(file);
            cmd.arg0(&argv[0]);
            cmd
        }
        None => Command::new(&argv[0]),
    };
    cmd.args(&argv[1..])
        .env("ELECT_NAME", election.name())
        .env("ELECT_SLOT", ticket.slot().to_string())
        .env("ELECT_TICKETS", election.tickets().to_string())
        .env("ELECT_TOKEN", ticket.token().to_string());
    set_location(&mut cmd, election);
    if inherit {
        ticket.share_with(&mut cmd);
    } else {
        die_with_parent(&mut cmd);
    }
    unblock_signals(&mut cmd);
    let started = cmd.spawn();
    started.map_err(|e| {
        let shown = argv[0].to_string_lossy();
        match e.raw_os_error() {
            // The file is there (it was found before the ticket was taken):
            // what is missing is its interpreter, or the dynamic loader of
            // a program built for another system.
            Some(libc::ENOENT) => {
                let file = found.unwrap_or_else(|| Path::new(&argv[0]));
                if !file.exists() {
                    return Failure::new(
                        exit::NOT_FOUND,
                        format!("cannot run {shown:?}: it no longer exists; check the path"),
                    );
                }
                if let Err(f) = check_interpreter(file, &shown) {
                    return f;
                }
                Failure::new(
                    exit::CANNOT_EXECUTE,
                    format!(
                        "cannot run {shown:?}: the file exists, but what it needs to run does not ({e}): a script's interpreter (its #! line) or a program's dynamic loader (a program built for another system); check with `file {shown}`"
                    ),
                )
            }
            // elect's own failures, not the command's: no process (EAGAIN,
            // ENOMEM), or no descriptor for the pipe that reports a failed
            // exec (EMFILE, ENFILE).
            Some(libc::EAGAIN | libc::ENOMEM | libc::EMFILE | libc::ENFILE) => {
                Failure::os(format!("cannot start {shown:?}"), &e)
            }
            _ => Failure::new(exit::CANNOT_EXECUTE, format!("cannot run {shown:?}: {e}")),
        }
    })
}

/// Gives the command the empty signal mask a program expects: elect blocks
/// the signals it forwards (see `signals::Signals`), a child inherits the
/// mask, and the standard library leaves it as it is.
fn unblock_signals(cmd: &mut Command) {
    // SAFETY: the closure calls only sigemptyset and pthread_sigmask, which
    // are async-signal-safe, on a set on its own stack.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            let r = libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            if r != 0 {
                return Err(std::io::Error::from_raw_os_error(r));
            }
            Ok(())
        });
    }
}

/// Tells the command where the resource lives: `ELECT_DIR`, or for an
/// election on etcd `ELECT_ETCD` and `ELECT_ETCD_PREFIX` (and no
/// `ELECT_DIR`, so that an `elect` the command runs uses the same cluster).
fn set_location(cmd: &mut Command, election: &Election) {
    #[cfg(feature = "etcd")]
    if let Some(etcd) = election.etcd() {
        cmd.env_remove("ELECT_DIR")
            .env("ELECT_ETCD", etcd.endpoints().join(","))
            .env("ELECT_ETCD_PREFIX", etcd.key_prefix());
        return;
    }
    cmd.env("ELECT_DIR", election.dir());
}

/// Makes the command receive SIGKILL when elect dies (Linux's
/// `PR_SET_PDEATHSIG`), so that a command that does not hold the ticket
/// never runs on without an owner of it.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure calls only prctl, getppid and raise, which are
    // async-signal-safe, and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // elect died between fork and prctl: nobody holds the ticket.
            if libc::getppid() != parent {
                libc::raise(libc::SIGKILL);
            }
            Ok(())
        });
    }
}

/// Without `PR_SET_PDEATHSIG`, nothing kills the command when elect dies.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn die_with_parent(_cmd: &mut Command) {}

/// The exit status of elect for a command that ended with `status`: its
/// own, or 128 + N when killed by signal N.
pub(crate) fn exit_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => exit::by_signal(sig),
        (None, None) => exit::FAILURE,
    }
}

/// A descriptor that becomes readable when the command `pid` exits, leaving
/// it unreaped (so its pid cannot be reused until elect reaps it): a pidfd,
/// or, on kernels without pidfd_open (before 5.3), a pipe written by a
/// thread waiting in `waitid` with `WNOWAIT`.
pub(crate) fn exit_watch(pid: libc::pid_t) -> Result<OwnedFd, Failure> {
    // SAFETY: plain syscall; the result is checked.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd >= 0 {
        // SAFETY: fd is fresh and owned by nobody else (pidfds are
        // close-on-exec).
        return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
    }
    let mut ends = [0; 2];
    // SAFETY: ends has room for the two descriptors.
    if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Failure::os(
            format!("cannot watch the command (pid {pid})"),
            &std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: both are fresh and owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1])) };
    std::thread::Builder::new()
        .name("elect-child".into())
        .spawn(move || {
            loop {
                // SAFETY: waitid writes one siginfo_t into `info`.
                let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
                let r = unsafe {
                    libc::waitid(
                        libc::P_PID,
                        pid as libc::id_t,
                        &mut info,
                        libc::WEXITED | libc::WNOWAIT,
                    )
                };
                if r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                    break;
                }
            }
            // Closing the write end makes the read end readable (EOF).
            drop(write);
        })
        .map_err(|e| Failure::os(format!("cannot watch the command (pid {pid})"), &e))?;
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_label_quotes_words_as_a_shell_would() {
        let line =
            |words: &[&str]| command_line(&words.iter().map(OsString::from).collect::<Vec<_>>());
        assert_eq!(line(&["sh", "-c", "sleep 2"]), "sh -c 'sleep 2'");
        assert_eq!(
            line(&["make", "-j4", "CC=gcc", "a/b.o"]),
            "make -j4 CC=gcc a/b.o"
        );
        assert_eq!(line(&["echo", "it's", ""]), r"echo 'it'\''s' ''");
        assert_eq!(
            line(&["x", "$HOME", "*", "a;b", "~"]),
            "x '$HOME' '*' 'a;b' '~'"
        );
        assert_eq!(line(&["café"]), "café");
    }

    #[test]
    fn the_interpreter_is_read_from_the_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let script = |text: &str| {
            let p = dir.path().join("s");
            std::fs::write(&p, text).unwrap();
            interpreter_of(&p)
        };
        assert_eq!(script("#!/bin/sh\necho\n"), Some("/bin/sh".into()));
        assert_eq!(
            script("#! /usr/bin/env python3 -u\n"),
            Some("/usr/bin/env".into())
        );
        assert_eq!(script("#!/bin/sh\r\n"), Some("/bin/sh\r".into()));
        assert_eq!(script("echo\n"), None);
        assert_eq!(script("#!\n"), None);
        let p = dir.path().join("s");
        std::fs::write(&p, "#!/nonexistent/sh\n").unwrap();
        let f = check_interpreter(&p, "s").unwrap_err();
        assert_eq!(f.code, exit::CANNOT_EXECUTE);
        assert!(f.message.contains("\"/nonexistent/sh\""), "{}", f.message);
        assert!(f.message.contains("does not exist"), "{}", f.message);
    }
}
