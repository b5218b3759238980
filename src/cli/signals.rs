//! The signals `elect run` handles (SIGINT, SIGTERM, SIGHUP, SIGQUIT): they
//! are blocked and read from a `signalfd`, so that the main thread waits for
//! them, for the command's end and for the ticket in one `ppoll`, with no
//! thread of its own; each comes with enough of its origin to tell a
//! terminal's keyboard signal from a `kill`, and is forwarded to the command
//! with [`forward`].

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

use libc::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};

/// The signals that stop a wait and are forwarded to a running command.
pub(crate) const HANDLED: [i32; 4] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT];

/// One signal received by elect.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Received {
    /// The signal number.
    pub(crate) signo: i32,
    /// Whether the kernel sent it (a terminal's Ctrl-C, Ctrl-\ or hangup)
    /// rather than a process calling kill(2).
    pub(crate) from_kernel: bool,
}

/// The [`HANDLED`] signals, blocked and waiting to be read.
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

impl Signals {
    /// Starts catching [`HANDLED`] signals: from now on they no longer stop
    /// elect but wait to be read. Must be called before elect starts any
    /// thread, which then inherits the blocked mask; a command started
    /// later gets the usual empty mask (the standard library resets it in
    /// the child).
    pub(crate) fn catch() -> io::Result<Self> {
        // SAFETY: the set is initialised by sigemptyset before use; the
        // calls have no other preconditions.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for sig in HANDLED {
                libc::sigaddset(&mut set, sig);
            }
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
            from_kernel: info.ssi_code == libc::SI_KERNEL,
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
                // EINTR (the library's wake-up signal, say): look again.
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

/// Forwards `sig` to the process `pid`, unless the process already got it:
/// a terminal sends Ctrl-C (SIGINT) and Ctrl-\ (SIGQUIT) to its whole
/// foreground process group, which includes a command still in elect's
/// group, and a second copy would make programs that treat a repeated
/// Ctrl-C as "force quit" skip their clean shutdown.
pub(crate) fn forward(sig: Received, pid: libc::pid_t) {
    let keyboard = matches!(sig.signo, SIGINT | SIGQUIT) && sig.from_kernel;
    // SAFETY: getpgid and getpgrp only read process state.
    let same_group = unsafe { libc::getpgid(pid) == libc::getpgrp() };
    if keyboard && same_group {
        return;
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

/// The conventional name of a signal, e.g. `SIGTERM`.
pub(crate) fn name(signo: i32) -> String {
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
