//! # elect: election on one host
//!
//! Several processes compete for a named resource; at most N of them (its
//! *tickets*) own it at once; when an owner exits or crashes, a waiting
//! process takes over at once. Each ticket is an advisory `flock(2)` on a
//! slot file in a run directory, so the kernel frees a slot the instant its
//! holder dies: no leases, no heartbeats, no stale locks.
//!
//! ```
//! # let dir = tempfile::tempdir()?;
//! use elect::Election;
//!
//! let election = Election::builder("nightly-report").tickets(1).dir(dir.path()).build()?;
//! if let Some(ticket) = election.try_obtain()? {
//!     // Only one process on this host gets here at a time.
//!     println!("slot {} with fencing token {}", ticket.slot(), ticket.token());
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! * [`Election`]: one resource; [`try_obtain`](Election::try_obtain),
//!   [`obtain`](Election::obtain), [`obtain_timeout`](Election::obtain_timeout)
//!   and, with the `tokio` feature, `obtain_async`;
//!   [`obtain_cancellable`](Election::obtain_cancellable) ends a blocking
//!   wait from another thread (a [`Cancel`]), as event loops and language
//!   bindings need.
//! * [`Ticket`]: the guard; tells its slot and token, releases on drop.
//! * [`Election::campaign`]: competes in the background, runs your code on winning
//!   (with a [`CampaignTicket`], which the campaign releases) and your
//!   cleanup when ownership ends.
//! * [`status`] and [`Watcher`]: who holds what, from the kernel's truth.
//!
//! The interface (names, run directory, command line, exit codes,
//! environment, JSON) is fixed by the project's contract; the README says
//! how each part works and why.

#![deny(missing_docs, unreachable_pub)]
#![warn(rust_2018_idioms)]

#[cfg(not(unix))]
compile_error!("elect needs a Unix system: it is built on flock(2)");

mod campaign;
mod cancel;
mod election;
mod error;
mod interrupt;
mod name;
mod record;
mod rundir;
mod status;
mod store;
mod sys;
mod ticket;
mod time;
mod watch;

#[cfg(feature = "tokio")]
mod asynchronous;

pub use campaign::{BlockingCampaign, CampaignBuilder, Ending};
pub use cancel::Cancel;
pub use election::{Election, ElectionBuilder, MAX_TICKETS, TRY_PATIENCE};
pub use error::{Error, Result};
pub use name::MAX_NAME_LEN;
pub use record::{HolderRecord, MAX_LABEL};
pub use rundir::ENV_DIR;
pub use status::{ResourceStatus, SlotStatus, Status, status, status_group_shared};
pub use ticket::{CampaignTicket, Ticket};
pub use watch::{Event, EventKind, Watcher};

#[cfg(feature = "tokio")]
pub use campaign::Campaign;

#[cfg(feature = "etcd")]
pub use store::etcd::{DEFAULT_PREFIX, DEFAULT_TTL, Etcd};

// What may cross threads: every public type may be sent to and shared
// with other threads, except a Watcher, which one thread at a time reads
// (it can be sent). A change that breaks this fails to compile here.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    const fn send<T: Send>() {}
    send_sync::<Election>();
    send_sync::<ElectionBuilder>();
    send_sync::<Ticket>();
    send_sync::<CampaignTicket>();
    send_sync::<CampaignBuilder>();
    send_sync::<BlockingCampaign>();
    #[cfg(feature = "tokio")]
    send_sync::<Campaign>();
    send_sync::<Ending>();
    send_sync::<Status>();
    send_sync::<ResourceStatus>();
    send_sync::<SlotStatus>();
    send_sync::<HolderRecord>();
    send_sync::<Event>();
    send_sync::<EventKind>();
    send_sync::<Error>();
    send::<Watcher>();
    #[cfg(feature = "etcd")]
    send_sync::<Etcd>();
};

/// Parsers of outside data, exposed for the fuzz targets. Not part of the
/// stable API.
#[doc(hidden)]
pub mod __fuzz {
    pub use crate::store::local::token::parse_token_file;

    /// How many files `/proc/locks` text says are exclusively flocked.
    #[cfg(target_os = "linux")]
    pub fn count_proc_locks(text: &str) -> usize {
        crate::sys::parse_proc_locks(text).len()
    }

    /// The number of tickets a `tickets` file holds, if it is valid.
    pub fn parse_tickets_file(bytes: &[u8]) -> Option<u32> {
        crate::store::local::parse_tickets(bytes)
    }

    /// A holder record, if `bytes` (a slot file's contents) is one.
    pub fn parse_record(bytes: &[u8]) -> Option<crate::HolderRecord> {
        crate::record::HolderRecord::parse(bytes)
    }

    /// Whether `name` is a valid resource name.
    pub fn is_valid_name(name: &str) -> bool {
        crate::name::validate_name(name).is_ok()
    }
}

/// The README's examples, compiled as doctests so that they stay true (with
/// the `etcd` feature, which one of them uses: `cargo test --features cli,etcd`).
#[cfg(all(doctest, feature = "etcd"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
