//! Exit statuses of `elect` (the contract's table) and the one failure type
//! the subcommands return, which carries its status and its message.

use std::fmt::Display;
use std::io::{self, Write};

/// Bad usage: unknown option, bad name, bad number or duration.
pub(crate) const USAGE: i32 = 2;
/// No ticket within `--no-wait` / `--timeout` (unless `-E` says otherwise).
pub(crate) const NO_TICKET: u8 = 75;
/// The ticket was lost while the command ran.
pub(crate) const LOST: i32 = 76;
/// Any other failure of elect itself, as `env`, `nice` and `timeout` use it.
pub(crate) const FAILURE: i32 = 125;
/// The command exists but cannot be executed.
pub(crate) const CANNOT_EXECUTE: i32 = 126;
/// The command was not found.
pub(crate) const NOT_FOUND: i32 = 127;

/// The status of a process stopped by signal `signo`, as shells report it.
pub(crate) fn by_signal(signo: i32) -> i32 {
    128 + signo
}

/// A failure of a subcommand: what to print after `elect: ` and the exit
/// status that goes with it.
#[derive(Debug)]
pub(crate) struct Failure {
    /// The exit status.
    pub(crate) code: i32,
    /// The message, without the `elect: ` prefix.
    pub(crate) message: String,
}

impl Failure {
    /// A failure with status `code`.
    pub(crate) fn new(code: i32, message: impl Display) -> Self {
        Failure {
            code,
            message: message.to_string(),
        }
    }

    /// A failure of elect itself (status 125).
    pub(crate) fn internal(message: impl Display) -> Self {
        Failure::new(FAILURE, message)
    }

    /// A failure of elect itself (status 125) while `doing` something that
    /// failed with `err`: the message says what to do about a limit on open
    /// files (see [`fd_advice`]), or else gives the system's message.
    pub(crate) fn os(doing: impl Display, err: &io::Error) -> Self {
        match fd_advice(err) {
            Some(advice) => Failure::internal(format!("{doing}: {advice}")),
            None => Failure::internal(format!("{doing}: {err}")),
        }
    }
}

/// What to say about `err` when it means that no more files can be opened:
/// this process reached its limit (EMFILE), named with its value and how to
/// raise it, or the whole system did (ENFILE). `None` for any other error.
pub(crate) fn fd_advice(err: &io::Error) -> Option<String> {
    match err.raw_os_error()? {
        libc::EMFILE => Some(too_few_descriptors()),
        libc::ENFILE => Some(
            "the system has too many files open (ENFILE): close some, or raise the kernel's \
             limit (sysctl fs.file-max), and try again"
                .to_string(),
        ),
        _ => None,
    }
}

/// The message for a process that may not open enough files: the soft
/// limit (`ulimit -n`), and how to raise it.
fn too_few_descriptors() -> String {
    // SAFETY: getrlimit writes one rlimit into the struct we pass.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return "too many open files: too few file descriptors are allowed; raise the limit \
                with ulimit -n and try again"
            .to_string();
    }
    let (soft, hard) = (lim.rlim_cur, lim.rlim_max);
    let raise = if hard > soft {
        let want = soft.saturating_mul(4).max(1024).min(hard);
        format!("raise the limit, e.g. ulimit -n {want} (the hard limit is {hard}), and try again")
    } else {
        format!(
            "raise the limit with ulimit -n and try again (the hard limit is {hard} too, so \
             raising it needs root, e.g. in limits.conf)"
        )
    };
    format!(
        "too many open files: only {soft} file descriptors are allowed (ulimit -n {soft}), too \
         few for elect; {raise}"
    )
}

impl From<elect::Error> for Failure {
    /// The library's refusals of the caller's input are usage errors (2);
    /// everything else is a failure of elect (125). An error that comes of
    /// the limit on open files says so.
    fn from(err: elect::Error) -> Self {
        if let elect::Error::Io { op, path, source } = &err {
            // F_DUPFD asked for a descriptor number at or above the limit
            // gives EINVAL, not EMFILE: with so low a limit, the descriptor
            // that moves the lock above the record's.
            let advice = match source.raw_os_error() {
                Some(libc::EINVAL) if *op == "cannot duplicate" => Some(too_few_descriptors()),
                _ => fd_advice(source),
            };
            if let Some(advice) = advice {
                return Failure::internal(format!("{op} {}: {advice}", path.display()));
            }
        }
        let code = if err.is_usage() { USAGE } else { FAILURE };
        Failure::new(code, err)
    }
}

impl From<anyhow::Error> for Failure {
    fn from(err: anyhow::Error) -> Self {
        Failure::internal(format!("{err:#}"))
    }
}

/// Writes `elect: <message>` on stderr. A failing stderr is ignored: there
/// is nowhere left to report it.
pub(crate) fn say(message: impl Display) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "elect: {message}");
}
