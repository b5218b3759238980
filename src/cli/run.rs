//! `elect run`: obtain a ticket (waiting, or not, or for a while), run the
//! command under it, forward signals to it, stop it if the ticket is lost,
//! and exit with its status.
//!
//! The main thread waits for everything that can happen in one `ppoll`: a
//! signal (blocked, and read from a signalfd), the end of the wait for a
//! ticket (which blocks in the kernel on a thread of its own, started only
//! when no ticket is free), and the end of the command (a pidfd, which
//! leaves the child unreaped, so its pid cannot be reused, until the main
//! thread reaps it). The common case, a free ticket, starts no thread.
//!
//! When elect waits and nothing needs the main thread between the ticket
//! and the command (no display to clear, a command that inherits the
//! ticket), the waiting thread starts the command itself the moment it has
//! the ticket: handing over to the main thread first meant waking another
//! (often idle) CPU between the release and the command.

use std::ffi::OsString;
use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Child;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use elect::{Election, ResourceStatus, Ticket};

use super::args::RunArgs;
use super::command;
use super::exit::{self, Failure, say};
use super::location::Place;
use super::output::printable;
use super::progress::Progress;
use super::signals::{self, Action, Bell, Received, Signals, Woke};

/// How often the ticket is checked while the command runs, and the waiting
/// display refreshed.
const TICK: Duration = Duration::from_millis(250);

/// How long to wait for a ticket.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wait {
    No,
    For(Duration),
    Forever,
}

/// Runs `elect run` and returns its exit status.
pub(crate) fn run(args: RunArgs) -> Result<i32, Failure> {
    let place = Place::of(&args.wait.dir, args.ttl)?;
    let builder = place.builder(&args.name).tickets(args.wait.tickets).label(
        args.label
            .clone()
            .unwrap_or_else(|| command::command_line(&args.command)),
    );
    // Refuses a bad name before anything is touched (status 2).
    let election = builder.build()?;
    let found = command::check(&args.command[0])?;
    refuse_nested(&election)?;

    let signals = Signals::catch().map_err(|e| Failure::os("cannot catch signals", &e))?;

    let wait = args.wait.wait();
    let launch = Launch {
        argv: &args.command,
        found: found.as_deref(),
    };
    let (ticket, started) = match obtain(
        &election,
        wait,
        args.quiet,
        &signals,
        (!args.no_inherit).then_some(launch),
    )? {
        Ok(obtained) => obtained,
        Err(()) => {
            if !args.quiet {
                say(no_ticket(&election, wait));
            }
            return Ok(i32::from(args.wait.conflict_exit_code));
        }
    };

    // A ticket that can expire (an etcd lease, renewed by elect alone)
    // cannot be inherited: the command dies with elect instead.
    let expires = ticket.deadline().is_some();
    let mut child = match started {
        Some(child) => child,
        None => command::spawn(
            &args.command,
            found.as_deref(),
            &election,
            &ticket,
            !args.no_inherit && !expires,
        )?,
    };
    let pid = child.id() as libc::pid_t;
    if let Err(e) = ticket.set_command_pid(child.id())
        && !args.quiet
    {
        say(format!(
            "warning: cannot record the command's pid in {}: {e}",
            ticket.path().display()
        ));
    }
    let exited = command::exit_watch(pid)?;

    // When the ticket was found lost, and when SIGKILL is due.
    let mut lost: Option<Instant> = None;
    let mut kill_at: Option<Instant> = None;
    let mut killed = false;
    loop {
        let timeout = match kill_at {
            Some(at) if !killed => TICK.min(at.saturating_duration_since(Instant::now())),
            _ => TICK,
        };
        match signals.wait(Some(exited.as_fd()), timeout) {
            Woke::Signal(sig) => pass_on(sig, pid),
            Woke::Other => break,
            Woke::Timeout => {}
        }
        if lost.is_none() && !ticket.is_held() {
            let now = Instant::now();
            // An expiring ticket must be dead before the server can let
            // another holder in, whatever -k says.
            let at = match ticket.deadline() {
                Some(deadline) => (now + args.kill_after).min(deadline),
                None => now + args.kill_after,
            };
            let why = if expires {
                "its lease could not be renewed in time or its key was deleted"
            } else {
                "it was removed or replaced"
            };
            say(format!(
                "lost the ticket of {:?} (slot {}, token {}): {}: {why}, so another process may hold it soon; stopping the command (pid {pid}) with SIGTERM, SIGKILL in {}",
                election.name(),
                ticket.slot(),
                ticket.token(),
                ticket.path().display(),
                humantime(at.saturating_duration_since(now)),
            ));
            signals::send(pid, libc::SIGTERM);
            lost = Some(now);
            kill_at = Some(at);
        }
        if let (Some(since), Some(at)) = (lost, kill_at)
            && !killed
            && Instant::now() >= at
        {
            say(format!(
                "the command (pid {pid}) did not stop within {} of SIGTERM; sent SIGKILL",
                humantime(since.elapsed())
            ));
            signals::send(pid, libc::SIGKILL);
            killed = true;
        }
    }
    // The ticket may have gone in the moment before the command ended,
    // before elect looked (a process group continued after a stop past an
    // etcd lease runs both at once): the command's end was not under it.
    if lost.is_none() && !ticket.is_held() {
        say(format!(
            "lost the ticket of {:?} (slot {}, token {}) before the command (pid {pid}) ended: {} is no longer held",
            election.name(),
            ticket.slot(),
            ticket.token(),
            ticket.path().display(),
        ));
        lost = Some(Instant::now());
    }
    let status = child
        .wait()
        .map_err(|e| Failure::internal(format!("cannot reap the command (pid {pid}): {e}")))?;
    ticket.release();
    if lost.is_some() {
        return Ok(exit::LOST);
    }
    if let Some(sig) = status.signal() {
        // As the command ended: a shell sees elect killed by the signal.
        signals::die_of(sig);
    }
    Ok(command::exit_code(status))
}

/// Passes a signal received while the command runs on to it (see
/// [`signals::forward`]). A stop signal (Ctrl-Z, or SIGTSTP from kill)
/// stops elect too, so that its shell sees the job stopped and can
/// continue it; SIGCONT continues elect and is passed on.
fn pass_on(sig: Received, pid: libc::pid_t) {
    signals::forward(sig, pid);
    if signals::default_action(sig.signo) == Action::Stop {
        signals::stop_self(sig.signo);
    }
}

/// Refuses, with status 125, to wait for a ticket that this process's
/// caller holds: a command of `elect run NAME` that runs `elect run NAME`
/// again would wait for its own ancestor for ever (or, with N tickets, take
/// a second one for the same job). The environment that `elect run` gives
/// its command says which ticket the caller holds (`ELECT_NAME`,
/// `ELECT_DIR` or `ELECT_ETCD` and `ELECT_ETCD_PREFIX`, `ELECT_SLOT`,
/// `ELECT_TOKEN`); it counts while that slot is still held with that token,
/// so that variables left over from a ticket released long ago (a daemon
/// started under `elect run -o`) do not.
pub(crate) fn refuse_nested(election: &Election) -> Result<(), Failure> {
    let var = |name| std::env::var(name).ok();
    if var("ELECT_NAME").as_deref() != Some(election.name()) || !same_place(election) {
        return Ok(());
    }
    let (Some(slot), Some(token)) = (
        var("ELECT_SLOT").and_then(|s| s.parse::<u32>().ok()),
        var("ELECT_TOKEN").and_then(|t| t.parse::<u64>().ok()),
    ) else {
        return Ok(());
    };
    // Where status cannot tell (no /proc/locks), the environment is taken
    // at its word; a held slot whose record is missing counts too.
    let in_force = election.status().map_or(true, |s| {
        s.slots
            .iter()
            .any(|s| s.slot == slot && s.held && s.holder.as_ref().is_none_or(|h| h.token == token))
    });
    if !in_force {
        return Ok(());
    }
    let name = election.name();
    Err(Failure::internal(format!(
        "{name:?} is already held by this command's caller (elect run {name}, slot {slot}, token {token}, say ELECT_NAME, ELECT_SLOT and ELECT_TOKEN), so waiting for it would wait for ever; run the command directly (in a script: [ \"$ELECT_NAME\" = {name} ] || exec elect run {name} -- \"$0\" \"$@\"), or use another resource name",
    )))
}

/// Whether the caller's `ELECT_DIR` (or `ELECT_ETCD` and
/// `ELECT_ETCD_PREFIX`, for an election on etcd) names where `election`
/// lives.
fn same_place(election: &Election) -> bool {
    #[cfg(feature = "etcd")]
    if let Some(etcd) = election.etcd() {
        let var = |name| std::env::var(name).ok();
        return var("ELECT_ETCD").is_some_and(|e| e == etcd.endpoints().join(","))
            && var("ELECT_ETCD_PREFIX").is_some_and(|p| p == etcd.key_prefix());
    }
    use std::os::unix::fs::MetadataExt;
    let Some(theirs) = std::env::var_os("ELECT_DIR") else {
        return false;
    };
    match (std::fs::metadata(theirs), std::fs::metadata(election.dir())) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// The command, for a waiting thread to start the moment it has a ticket.
pub(crate) struct Launch<'a> {
    argv: &'a [OsString],
    found: Option<&'a Path>,
}

/// A ticket, and the command if the waiting thread already started it.
type Obtained = (Ticket, Option<Child>);

/// Where the wait stands, between the waiting thread and a signal: once
/// the main thread gives up, the waiting thread starts nothing; once the
/// command is started, a signal is the command's to handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Waiting,
    GaveUp,
    Started,
}

/// Waits for a ticket as `wait` says, showing progress, and gives up on a
/// signal. `Ok(Err(()))` means no ticket came in time. With `launch`, a
/// command that inherits the ticket, the waiting thread starts it as soon
/// as it has the ticket, unless a display must be cleared first.
pub(crate) fn obtain(
    election: &Election,
    wait: Wait,
    quiet: bool,
    signals: &Signals,
    launch: Option<Launch<'_>>,
) -> Result<Result<Obtained, ()>, Failure> {
    // The common case first, on this thread: a free ticket needs no waiting
    // thread and no display.
    if let Some(ticket) = election.try_obtain()? {
        return Ok(Ok((ticket, None)));
    }
    if let Wait::No = wait {
        return Ok(Err(()));
    }
    let mut progress = Progress::new(election, quiet);
    // Off a terminal (a CI log, cron's mail) a line when the wait starts
    // and one when it ends, instead of the display.
    let log = !quiet && !progress.is_enabled();
    let since = Instant::now();
    if log {
        say(waiting(election, wait));
    }
    // Copied for the waiting thread only when it will start the command.
    let launch = launch
        .filter(|_| !progress.is_enabled())
        .map(|l| (l.argv.to_vec(), l.found.map(Path::to_path_buf)));
    let phase = Arc::new(Mutex::new(Phase::Waiting));
    let e = election.clone();
    let (done, rx) = mpsc::channel::<Result<Option<Obtained>, Failure>>();
    let bell = Arc::new(Bell::new().map_err(|e| Failure::os("cannot start waiting", &e))?);
    let ring = Arc::clone(&bell);
    let their_phase = Arc::clone(&phase);
    std::thread::Builder::new()
        .name("elect-obtain".into())
        .spawn(move || {
            // Rung however the thread ends, a panic included.
            let _ring = signals::RingOnDrop(ring);
            let result = match wait {
                Wait::No => e.try_obtain(),
                Wait::For(t) => e.obtain_timeout(t),
                Wait::Forever => e.obtain().map(Some),
            };
            let result = match result {
                Err(err) => Err(err.into()),
                Ok(None) => Ok(None),
                Ok(Some(ticket)) => {
                    let mut phase = their_phase.lock().unwrap_or_else(|p| p.into_inner());
                    if *phase == Phase::GaveUp {
                        // elect is exiting on a signal: dropping the ticket
                        // releases it, and no command starts.
                        Ok(None)
                    } else {
                        // Said before the command starts, so that the log
                        // shows it before the command's own lines.
                        if log {
                            say(got(&e, &ticket, since.elapsed()));
                        }
                        match &launch {
                            // An expiring ticket (etcd) is never inherited:
                            // its command must be started by the thread
                            // that outlives it.
                            Some((argv, found)) if ticket.deadline().is_none() => {
                                *phase = Phase::Started;
                                command::spawn(argv, found.as_deref(), &e, &ticket, true)
                                    .map(|child| Some((ticket, Some(child))))
                            }
                            _ => Ok(Some((ticket, None))),
                        }
                    }
                }
            };
            let _ = done.send(result);
        })
        .map_err(|e| Failure::os("cannot start waiting", &e))?;
    let answer = || {
        rx.recv().unwrap_or_else(|_| {
            Err(Failure::internal(
                "the wait for a ticket ended without an answer; this is a bug",
            ))
        })
    };

    // Without a display there is nothing to redraw: sleep until something
    // happens, so that an idle `elect run` costs nothing while it waits.
    let tick = if progress.is_enabled() {
        TICK
    } else {
        Duration::from_secs(3600)
    };
    loop {
        match signals.wait(Some(bell.as_fd()), tick) {
            Woke::Other => {
                progress.clear();
                return Ok(answer()?.ok_or(()));
            }
            Woke::Signal(sig) => {
                // While waiting, a signal does to elect what it does to a
                // process that does not catch it: one that terminates makes
                // elect give up, one that stops stops it.
                let action = signals::default_action(sig.signo);
                let started = {
                    let mut phase = phase.lock().unwrap_or_else(|p| p.into_inner());
                    if *phase == Phase::Waiting && action == Action::Terminate {
                        *phase = Phase::GaveUp;
                    }
                    *phase == Phase::Started
                };
                if started {
                    // The command started in the same moment: it runs under
                    // the ticket, and the signal is its to handle.
                    let obtained = answer()?;
                    if let Some((_, Some(child))) = &obtained {
                        pass_on(sig, child.id() as libc::pid_t);
                    }
                    return Ok(obtained.ok_or(()));
                }
                match action {
                    Action::Ignore => {}
                    Action::Stop => signals::stop_self(sig.signo),
                    Action::Terminate => {
                        progress.clear();
                        if !quiet {
                            say(format!(
                                "stopped by {} while waiting for a ticket of {:?}; nothing was taken",
                                signals::name(sig.signo),
                                election.name()
                            ));
                        }
                        // Dying drops everything, including a ticket the
                        // waiting thread might be obtaining at this very
                        // moment; the shell sees elect killed by the signal.
                        signals::die_of(sig.signo);
                    }
                }
            }
            Woke::Timeout => progress.update(),
        }
    }
}

/// The line that starts a wait off a terminal: what elect waits for, and
/// who holds the tickets.
fn waiting(election: &Election, wait: Wait) -> String {
    let limit = match wait {
        Wait::For(t) => format!(" up to {}", humantime(t)),
        Wait::No | Wait::Forever => String::new(),
    };
    let holders = election.status().map(|s| holders(&s)).unwrap_or_default();
    format!(
        "waiting{limit} for a ticket of {:?}{holders}",
        election.name()
    )
}

/// The line that ends a wait off a terminal: the ticket, and how long it
/// took.
fn got(election: &Election, ticket: &Ticket, waited: Duration) -> String {
    format!(
        "got a ticket of {:?} (slot {}, token {}) after {}",
        election.name(),
        ticket.slot(),
        ticket.token(),
        elapsed(waited)
    )
}

/// How long a wait took, for a log: `250ms`, `3.2s`, `20m05s`, `1h02m03s`.
fn elapsed(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        1..60 => format!("{:.1}s", d.as_secs_f64()),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60),
    }
}

/// The message when no ticket was obtained: what was asked and who holds
/// the tickets.
pub(crate) fn no_ticket(election: &Election, wait: Wait) -> String {
    let when = match wait {
        Wait::No => "is free".to_string(),
        Wait::For(t) => format!("came free within {}", humantime(t)),
        Wait::Forever => "came free".to_string(),
    };
    let holders = election.status().map(|s| holders(&s)).unwrap_or_default();
    let retry = match wait {
        Wait::No => "try again later, or wait with --timeout DUR",
        _ => "try again later, or wait longer with a larger --timeout",
    };
    format!(
        "no ticket of {:?} {when}{holders}; {retry}",
        election.name()
    )
}

/// ` (held by pid 42 "label", ...)` for the held slots of `status`, each
/// label (from a record anyone who can write its slot file may have
/// forged) made [`printable`].
fn holders(status: &ResourceStatus) -> String {
    const LISTED: usize = 4;
    let held = status.slots.iter().filter(|s| s.held).count();
    let mut list: Vec<String> = status
        .slots
        .iter()
        .filter(|s| s.held)
        .take(LISTED)
        .map(|s| match &s.holder {
            Some(h) => format!("pid {} {:?}", h.pid, printable(&h.label)),
            // No record of elect's: name what the kernel says.
            None => match s.lock_pid {
                Some(pid) => format!(
                    "pid {pid}, which has no elect record of slot {}: a process outside elect such as flock(1), or a holder whose record could not be written",
                    s.slot
                ),
                None => format!("slot {}", s.slot),
            },
        })
        .collect();
    if held > LISTED {
        list.push(format!("{} more", held - LISTED));
    }
    if list.is_empty() {
        String::new()
    } else {
        format!(" (held by {})", list.join(", "))
    }
}

/// A duration as the user would write it: `250ms`, `5s`, `1.5s`.
fn humantime(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn how_long_a_wait_took() {
        assert_eq!(elapsed(Duration::from_millis(250)), "250ms");
        assert_eq!(elapsed(Duration::from_millis(3240)), "3.2s");
        assert_eq!(elapsed(Duration::from_secs(1205)), "20m05s");
        assert_eq!(elapsed(Duration::from_secs(3723)), "1h02m03s");
    }
}
