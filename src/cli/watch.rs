//! `elect watch`: one line per change of ownership of a resource, flushed
//! as it happens, until interrupted or until nobody reads the output.

use elect::Event;

use super::args::WatchArgs;
use super::exit::{Failure, say};
use super::location::Place;
use super::output::{self, Written, printable, timestamp};

/// Runs `elect watch` and returns its exit status (0 when stdout closes;
/// a signal ends it with the signal's default action).
pub(crate) fn watch(args: WatchArgs) -> Result<i32, Failure> {
    let election = Place::of(&args.dir, None)?.builder(&args.name).build()?;
    let mut watcher = election.watch()?;
    exit_when_nobody_reads()?;
    if !args.quiet {
        say(format!(
            "watching {:?} in {}; Ctrl-C to stop",
            election.name(),
            election.dir().display()
        ));
    }
    loop {
        let event = watcher.next_event()?;
        let mut line = if args.json {
            output::json(&event)
                .map_err(|e| Failure::internal(format!("cannot write the event as JSON: {e}")))?
        } else {
            human(&event)
        };
        line.push('\n');
        if output::write(&line)? == Written::Closed {
            return Ok(0);
        }
    }
}

/// Ends elect at once, with status 0, when nobody reads its stdout any
/// more: `elect watch --json deploy | grep -m1 '"released"'` must end when
/// grep does, not at the resource's next event (which may never come),
/// when a write would find the pipe closed. A thread sleeps in poll(2) on
/// stdout asking for nothing, so that it wakes only for POLLERR (a pipe
/// whose reader has gone) or POLLHUP (a socket or terminal hung up); a
/// file or /dev/null never wakes it. Status 0, not death by SIGPIPE, as for
/// a closed stdout found by a write: the watch did what it was asked, and a
/// shell with `set -o pipefail` does not fail the pipeline.
fn exit_when_nobody_reads() -> Result<(), Failure> {
    std::thread::Builder::new()
        .name("elect-stdout".into())
        .spawn(|| {
            loop {
                let mut fd = libc::pollfd {
                    fd: libc::STDOUT_FILENO,
                    events: 0,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                let n = unsafe { libc::poll(&mut fd, 1, -1) };
                if n < 0 {
                    if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                        continue;
                    }
                    return;
                }
                if fd.revents & libc::POLLNVAL != 0 {
                    // No stdout at all: the first write says so.
                    return;
                }
                if fd.revents & (libc::POLLERR | libc::POLLHUP) != 0 {
                    // Nothing is lost: nobody would read it. _exit, because
                    // the main thread may be anywhere, even mid-write.
                    // SAFETY: _exit has no preconditions.
                    unsafe { libc::_exit(0) };
                }
            }
        })
        .map(drop)
        .map_err(|e| Failure::os("cannot start watching stdout", &e))
}

/// An event for a person: `2026-11-23T10:00:00Z acquired echo slot 0 pid 4242 token 7`.
/// The record's fields it shows are numbers; its text goes through
/// [`printable`] all the same, so that no field can reach the terminal raw.
fn human(ev: &Event) -> String {
    format!(
        "{} {} {} slot {} pid {} token {}",
        timestamp(ev.at),
        ev.kind,
        printable(&ev.name),
        ev.slot,
        ev.pid,
        ev.token
    )
}
