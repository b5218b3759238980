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
