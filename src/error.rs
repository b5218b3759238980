//! The library's one error type.
//!
//! Every variant names the value or path at fault and, where there is one,
//! what to do about it, so that the command line can print it as it is.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in elect.
///
/// The messages are written for a person: each one names the bad value or
/// path and says what to do about it.
///
/// ```
/// let err = elect::Election::new("../etc").unwrap_err();
/// assert!(matches!(err, elect::Error::InvalidName { .. }));
/// assert!(err.to_string().contains("../etc"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The resource name does not match `^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`.
    /// The message names the character at fault (as Rust escapes it, and
    /// its code point) and what a name may contain.
    ///
    /// ```
    /// let err = elect::Election::new("job\u{1F600}").unwrap_err();
    /// assert!(err.to_string().contains("'\u{1F600}' (U+1F600) at character 4"), "{err}");
    /// ```
    #[error(
        "invalid resource name {name:?}: {}",
        crate::name::explain(name, reason)
    )]
    InvalidName {
        /// The name as given (lossily shown).
        name: String,
        /// What exactly is wrong with it, in short.
        reason: &'static str,
    },

    /// The number of tickets is outside 1..=4096.
    #[error("invalid number of tickets {tickets}: it must be from 1 to {max}")]
    InvalidTickets {
        /// The number asked for.
        tickets: u64,
        /// The largest number allowed.
        max: u32,
    },

    /// No run directory could be chosen (no `$HOME`-like fallback applies).
    #[error("cannot choose a run directory: {0}; pass --dir or set ELECT_DIR")]
    NoRunDir(&'static str),

    /// A directory or file that elect uses is not safe to use.
    #[error("refusing {path}: {reason}")]
    Unsafe {
        /// The path refused.
        path: PathBuf,
        /// Why it is refused, and what to do.
        reason: String,
    },

    /// Live participants use another number of tickets for this resource.
    #[error(
        "resource {name:?} is in use with {agreed} ticket(s), but {asked} were asked for; use --tickets {agreed}, or wait until every participant with {agreed} has exited"
    )]
    TicketMismatch {
        /// The resource.
        name: String,
        /// The number this participant asked for.
        asked: u32,
        /// The number the live participants agreed on.
        agreed: u32,
    },

    /// The token file holds something other than a token.
    #[error(
        "the fencing-token file {path} is damaged (it holds {content:?}); elect will not reset it, because tokens must never go back; write into it a number larger than any token ever issued (e.g. `date +%s%6N`), or remove it if nothing relies on the tokens"
    )]
    TokenDamaged {
        /// The token file.
        path: PathBuf,
        /// What it holds: its first 24 bytes, control characters shown as
        /// `?`.
        content: String,
    },

    /// The token counter would overflow.
    #[error("the fencing-token file {path} is exhausted: the next token would overflow u64")]
    TokenExhausted {
        /// The token file.
        path: PathBuf,
    },

    /// An operating-system call failed on a path.
    #[error("{op} {path}: {}", explain(op, .source))]
    Io {
        /// What elect was doing.
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A wait was cancelled before a ticket was obtained.
    #[error("the wait for a ticket was cancelled")]
    Cancelled,

    /// An etcd endpoint list, key prefix or lease TTL that cannot be used.
    #[error("invalid etcd setting {value:?}: {reason}")]
    InvalidEtcd {
        /// The value as given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The resource lives in a store other than this host's run directory
    /// (an etcd cluster) and that store failed. The error's message says
    /// where and what to check; its [`source`](std::error::Error::source)
    /// is the store's own error (an `etcd_client::Error`, say), where there
    /// is one.
    ///
    /// ```
    /// use std::error::Error as _;
    /// let err = elect::Error::Store("etcd at http://db:2379: cannot connect".into());
    /// assert_eq!(err.to_string(), "etcd at http://db:2379: cannot connect");
    /// assert!(err.source().is_none());
    /// ```
    #[error(transparent)]
    Store(Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// Builds an [`Error::Io`] for `op` on `path`.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Builds an [`Error::Store`] that says `message` and keeps `source`,
    /// the store's own error, as its source.
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    pub(crate) fn store(
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Store(Box::new(StoreFailure {
            message: message.into(),
            source: source.into(),
        }))
    }

    /// Builds an [`Error::Unsafe`] for `path`.
    pub(crate) fn unsafe_path(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Unsafe {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// True when the error is the caller's input (name, tickets, etcd setting),
    /// as opposed to a failure of the system; the command line maps these to
    /// exit status 2.
    ///
    /// ```
    /// let err = elect::Election::builder("x").tickets(0).build().unwrap_err();
    /// assert!(err.is_usage());
    /// ```
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Error::InvalidName { .. } | Error::InvalidTickets { .. } | Error::InvalidEtcd { .. }
        )
    }
}

/// A store's failure: what elect says about it, and the store's own error.
#[derive(Debug)]
struct StoreFailure {
    message: String,
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl std::fmt::Display for StoreFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StoreFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// The library's result type.
///
/// ```
/// fn ticket_count(e: &elect::Election) -> elect::Result<usize> {
///     Ok(e.status()?.slots.iter().filter(|s| s.held).count())
/// }
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An operating-system error in words a user can act on: the system's own
/// words without the "(os error N)" suffix, and for the errors a user can
/// fix, what to do.
fn explain(op: &str, err: &io::Error) -> String {
    let Some(code) = err.raw_os_error() else {
        return err.to_string();
    };
    let words = err.to_string();
    let words = match words.rfind(" (os error ") {
        Some(at) => words[..at].to_string(),
        None => words,
    };
    let advice = match code {
        libc::EACCES | libc::EPERM => {
            "; you may not write there: choose a directory you can write (--dir or ELECT_DIR)"
        }
        libc::EROFS => "; choose a run directory on a writable file system (--dir or ELECT_DIR)",
        libc::ENOSPC | libc::EDQUOT => "; free some space, or choose another run directory",
        libc::EMFILE | libc::ENFILE => {
            "; too many files are open: raise the limit (`ulimit -n`) or close some"
        }
        libc::ENAMETOOLONG => "; choose a run directory with a shorter path",
        libc::ENOENT if op == "cannot create directory" => {
            "; the file system there does not let elect make its files (is it /proc or /sys?): choose another run directory (--dir or ELECT_DIR)"
        }
        _ => "",
    };
    format!("{words}{advice}")
}
