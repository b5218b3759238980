//! Exit statuses of `elect` (the contract's table) and the one failure type
//! the subcommands return, which carries its status and its message.

use std::fmt::Display;
use std::io::Write;

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
}

impl From<elect::Error> for Failure {
    /// The library's refusals of the caller's input are usage errors (2);
    /// everything else is a failure of elect (125).
    fn from(err: elect::Error) -> Self {
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
