//! The signals `elect run` handles: every signal a process can catch but
//! SIGCHLD (the news of elect's own child) and the realtime signals the C
//! library keeps for itself. They are blocked and read from a `signalfd`,
//! so that the main thread waits for them, for the command's end and for
//! the ticket in one `ppoll`, with no thread of its own; each comes with
//! enough of its origin to tell a terminal's signal (which the command
//! already got) from a `kill`, and is passed on to the command with
//! [`forward`].
//!
//! elect ends the way the command did: [`die_of`] re-raises a signal with
//! its default disposition, so that a shell sees elect killed by it (a
//! loop stops on Ctrl-C), not an exit status of 128 + N (which tells a
//! shell that the child handled the signal and the script goes on).

use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

use libc::{SIGCHLD, SIGCONT, SIGHUP, SIGINT, SIGKILL, SIGQUIT, SIGSTOP, SIGTSTP, SIGTTIN};
use libc::{SIGTTOU, SIGURG, SIGWINCH};

/// The highest signal number elect catches: the last realtime one.
fn last() -> i32 {
    libc::SIGRTMAX()
}

/// Whether elect catches (and so forwards) signal `signo`: every signal but
/// SIGKILL and SIGSTOP, which cannot be caught; SIGCHLD, which tells elect
/// of its own child; and the numbers between the classic signals and
/// SIGRTMIN, which the C library uses itself (thread cancellation, setuid).
pub(crate) fn caught(signo: i32) -> bool {
    let classic = (1..libc::SIGRTMIN().min(32)).contains(&signo)
        && !matches!(signo, SIGKILL | SIGSTOP | SIGCHLD);
    classic || (libc::SIGRTMIN()..=last()).contains(&signo)
}

/// What a signal does to a process that does not catch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// It ends the process (with or without a core file).
    Terminate,
    /// It stops the process (job control).
    Stop,
    /// Nothing (SIGCONT continues a stopped process, and is otherwise
    /// ignored, as are SIGURG and SIGWINCH).
    Ignore,
}

/// The default action of `signo`.
pub(crate) fn default_action(signo: i32) -> Action {
    match signo {
        SIGTSTP | SIGTTIN | SIGTTOU | SIGSTOP => Action::Stop,
        SIGCONT | SIGURG | SIGWINCH | SIGCHLD => Action::Ignore,
        _ => Action::Terminate,
    }
}

/// One signal received by elect.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Received {
    /// The signal number.
    pub(crate) signo: i32,
    /// How it was sent (`si_code`): `SI_KERNEL` for a terminal's Ctrl-C,
    /// `SI_USER` for kill(2), `SI_QUEUE` for sigqueue(3).
    code: i32,
    /// Who sent it (0 for the kernel).
    pid: u32,
    /// The value sigqueue(3) sent with it.
    value: u64,
}

impl Received {
    /// Whether the kernel sent it itself (a terminal's Ctrl-C, Ctrl-\,
    /// Ctrl-Z, hangup or resize) rather than a process calling kill(2).
    pub(crate) fn sent_by_kernel(&self) -> bool {
        self.code == libc::SI_KERNEL
    }

    /// Whether elect sent it to itself: writing to a pipe nobody reads
    /// raises SIGPIPE that way. Not the command's business.
    fn sent_by_elect(&self) -> bool {
        matches!(self.code, libc::SI_USER | libc::SI_TKILL) && self.pid == std::process::id()
    }
}

/// The caught signals, blocked and waiting to be read.
#[derive(Debug)]
pub(crate) struct Signals {
    fd: OwnedFd,
}

/// What [`Signals::wait`] woke for.
#[derive(Debug)]
pub(crate) enum Woke {
    /// elect received a signal.
    Signal(Received),
    /// The other descriptor became readable.
    Other,
    /// The timeout passed.
    Timeout,
}

/// The set of the signals elect catches.
fn caught_set() -> libc::sigset_t {
    // SAFETY: the set is initialised by sigemptyset before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in (1..=last()).filter(|s| caught(*s)) {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

impl Signals {
    /// Starts catching signals (see [`caught`]): from now on they no longer
    /// act on elect but wait to be read. Must be called before elect starts
    /// any thread, which then inherits the blocked mask; a command started
    /// later gets the usual empty mask (see `command::spawn`).
    pub(crate) fn catch() -> io::Result<Self> {
        let set = caught_set();
        // SAFETY: a valid set; the calls have no other preconditions.
        unsafe {
            let r = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            if r != 0 {
                return Err(io::Error::from_raw_os_error(r));
            }
            let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(Signals {
                fd: OwnedFd::from_raw_fd(fd),
            })
        }
    }

    /// A signal received and not yet read, if there is one.
    fn read(&self) -> Option<Received> {
        // SAFETY: info is plain data the kernel fills in; the size passed is
        // its size.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        let n = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                size,
            )
        };
        (n == size as isize).then_some(Received {
            signo: info.ssi_signo as i32,
            code: info.ssi_code,
            pid: info.ssi_pid,
            value: info.ssi_ptr,
        })
    }

    /// Sleeps until a signal arrives, `other` (if given) becomes readable,
    /// or `timeout` passes, whichever is first. A signal already pending
    /// is returned at once.
    pub(crate) fn wait(&self, other: Option<BorrowedFd<'_>>, timeout: Duration) -> Woke {
        loop {
            if let Some(sig) = self.read() {
                return Woke::Signal(sig);
            }
            let mut fds = [
                libc::pollfd {
                    fd: self.fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: other.map_or(-1, |o| o.as_raw_fd()),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            let ts = libc::timespec {
                tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
                tv_nsec: timeout.subsec_nanos() as libc::c_long,
            };
            // SAFETY: two valid pollfds (a negative fd is ignored) and a live
            // timespec.
            let n = unsafe { libc::ppoll(fds.as_mut_ptr(), 2, &ts, std::ptr::null()) };
            if n == 0 {
                return Woke::Timeout;
            }
            if n < 0 {
                // EINTR (a stop and continue, say): look again.
                continue;
            }
            if fds[0].revents != 0 {
                continue;
            }
            if fds[1].revents != 0 {
                return Woke::Other;
            }
        }
    }
}

impl AsFd for Signals {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Forwards `sig` to the process `pid`, unless the process already got it
/// or it was not meant for it. A terminal sends its signals (Ctrl-C,
/// Ctrl-\, Ctrl-Z, a hangup, a resize, a background read or write) to its
/// whole foreground process group, which includes a command still in
/// elect's group, and a second copy would make programs that treat a
/// repeated Ctrl-C as "force quit" skip their clean shutdown. A signal
/// elect raised itself (SIGPIPE from a write to a closed pipe) is elect's
/// own. A signal sent with a value (sigqueue(3)) is passed on with it.
pub(crate) fn forward(sig: Received, pid: libc::pid_t) {
    if sig.sent_by_elect() {
        return;
    }
    let terminal = matches!(
        sig.signo,
        SIGINT | SIGQUIT | SIGTSTP | SIGTTIN | SIGTTOU | SIGHUP | SIGCONT | SIGWINCH
    ) && sig.sent_by_kernel();
    // SAFETY: getpgid and getpgrp only read process state.
    let same_group = unsafe { libc::getpgid(pid) == libc::getpgrp() };
    if terminal && same_group {
        return;
    }
    if sig.code == libc::SI_QUEUE {
        let value = libc::sigval {
            sival_ptr: sig.value as usize as *mut libc::c_void,
        };
        // SAFETY: sigqueue has no memory-safety preconditions.
        if unsafe { libc::sigqueue(pid, sig.signo, value) } == 0 {
            return;
        }
    }
    send(pid, sig.signo);
}

/// Sends `signo` to `pid`. The process is elect's unreaped child, so the pid
/// cannot have been reused; an error (it already exited) is harmless.
pub(crate) fn send(pid: libc::pid_t, signo: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, signo);
    }
}

/// Unblocks `signo` on this thread (which the kernel then picks for a
/// signal raised on it) with its default disposition.
fn unblock(signo: i32) {
    // SAFETY: a set initialised by sigemptyset; signal and pthread_sigmask
    // have no other preconditions.
    unsafe {
        libc::signal(signo, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signo);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

/// Stops elect as stop signal `signo` (Ctrl-Z's SIGTSTP, say) would have,
/// so that its shell sees the job stopped; returns once elect is continued
/// (SIGCONT), with the signal caught again.
pub(crate) fn stop_self(signo: i32) {
    let _ = io::stderr().flush();
    unblock(signo);
    // SAFETY: raise has no preconditions. With the default disposition and
    // unblocked on this thread, the signal stops the whole process before
    // raise returns.
    unsafe { libc::raise(signo) };
    // SAFETY: as in `unblock`.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signo);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Ends elect by signal `signo`, as the command ended or as the signal
/// would have ended elect had it not been caught: its default disposition
/// restored, unblocked, and raised. A shell then sees what it would see of
/// the command (status 128 + N, and a loop that stops on Ctrl-C). No core
/// file is written for elect (a SIGQUIT or a SIGSEGV of the command is
/// about the command, which wrote its own). Flushes stdout and stderr
/// first. Exits 128 + N in the unlikely case that the signal does not end
/// the process.
pub(crate) fn die_of(signo: i32) -> ! {
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    // SAFETY: setrlimit reads a live rlimit; prctl has no memory-safety
    // preconditions.
    unsafe {
        let none = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &none);
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    unblock(signo);
    // SAFETY: raise has no preconditions; the signal is delivered to this
    // thread before raise returns.
    unsafe { libc::raise(signo) };
    std::process::exit(128 + signo)
}

/// The conventional name of a signal: `SIGTERM`, `SIGRTMIN+2`.
pub(crate) fn name(signo: i32) -> String {
    let (min, max) = (libc::SIGRTMIN(), last());
    if (min..=max).contains(&signo) {
        return if signo == min {
            "SIGRTMIN".to_string()
        } else {
            format!("SIGRTMIN+{}", signo - min)
        };
    }
    signal_hook::low_level::signal_name(signo)
        .map(str::to_string)
        .unwrap_or_else(|| format!("signal {signo}"))
}

/// A descriptor that another thread makes readable to wake the main
/// thread's [`Signals::wait`] (an eventfd).
#[derive(Debug)]
pub(crate) struct Bell {
    fd: OwnedFd,
}

impl Bell {
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: plain syscall; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is fresh and owned by nobody else.
        Ok(Bell {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Makes the bell readable (it stays so).
    pub(crate) fn ring(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64.
        unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }
}

impl AsFd for Bell {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Rings the bell when dropped.
pub(crate) struct RingOnDrop(pub(crate) std::sync::Arc<Bell>);

impl Drop for RingOnDrop {
    fn drop(&mut self) {
        self.0.ring();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_caught() {
        for sig in [
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGUSR1,
            libc::SIGALRM,
            libc::SIGTSTP,
        ] {
            assert!(caught(sig), "{sig}");
        }
        assert!(caught(libc::SIGRTMIN()) && caught(libc::SIGRTMAX()));
        for sig in [
            0,
            libc::SIGKILL,
            libc::SIGSTOP,
            libc::SIGCHLD,
            32,
            libc::SIGRTMAX() + 1,
        ] {
            assert!(!caught(sig), "{sig}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(name(libc::SIGUSR1), "SIGUSR1");
        assert_eq!(name(libc::SIGRTMIN()), "SIGRTMIN");
        assert_eq!(name(libc::SIGRTMIN() + 2), "SIGRTMIN+2");
    }
}
