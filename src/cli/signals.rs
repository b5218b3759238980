//! The signals `elect run` handles (SIGINT, SIGTERM, SIGHUP, SIGQUIT): they
//! are caught with signal-hook and delivered as messages on a channel, with
//! enough of their origin to tell a terminal's keyboard signal from a
//! `kill`, and forwarded to the command with [`forward`].

use std::sync::mpsc::Sender;

use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook::iterator::SignalsInfo;
use signal_hook::iterator::exfiltrator::WithRawSiginfo;

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

/// Starts catching [`HANDLED`] signals: from now on they no longer stop
/// elect, and each one is sent on `tx` wrapped by `wrap`, in order.
pub(crate) fn catch<T: Send + 'static>(
    tx: Sender<T>,
    wrap: fn(Received) -> T,
) -> std::io::Result<()> {
    let mut signals = SignalsInfo::<WithRawSiginfo>::new(HANDLED)?;
    std::thread::Builder::new()
        .name("elect-signals".into())
        .spawn(move || {
            for info in signals.forever() {
                let received = Received {
                    signo: info.si_signo,
                    from_kernel: info.si_code == libc::SI_KERNEL,
                };
                if tx.send(wrap(received)).is_err() {
                    break;
                }
            }
        })?;
    Ok(())
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
