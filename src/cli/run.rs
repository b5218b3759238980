//! `elect run`: obtain a ticket (waiting, or not, or for a while), run the
//! command under it, forward signals to it, stop it if the ticket is lost,
//! and exit with its status.
//!
//! Everything that can happen is a message on one channel: a caught signal,
//! the end of the wait for a ticket (which blocks in the kernel on its own
//! thread), and the end of the command (seen by a thread in `waitid` with
//! `WNOWAIT`, so the child stays unreaped, and its pid cannot be reused,
//! until the main thread reaps it). The main thread handles them in order.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use elect::{Election, ResourceStatus, Ticket};

use super::args::RunArgs;
use super::command;
use super::exit::{self, Failure, say};
use super::progress::Progress;
use super::signals::{self, Received};

/// How often the ticket is checked while the command runs, and the waiting
/// display refreshed.
const TICK: Duration = Duration::from_millis(250);

/// What the main thread waits for.
enum Msg {
    /// elect caught a signal.
    Signal(Received),
    /// The wait for a ticket ended.
    Obtained(elect::Result<Option<Ticket>>),
    /// The command exited (not yet reaped).
    Exited,
}

/// How long to wait for a ticket.
#[derive(Debug, Clone, Copy)]
enum Wait {
    No,
    For(Duration),
    Forever,
}

/// Runs `elect run` and returns its exit status.
pub(crate) fn run(args: RunArgs) -> Result<i32, Failure> {
    let mut builder = Election::builder(&args.name).tickets(args.tickets).label(
        args.label
            .clone()
            .unwrap_or_else(|| command::command_line(&args.command)),
    );
    if let Some(dir) = &args.dir.dir {
        builder = builder.dir(dir);
    }
    // Refuses a bad name before anything is touched (status 2).
    let election = builder.build()?;
    command::check(&args.command[0])?;

    let (tx, rx) = mpsc::channel();
    signals::catch(tx.clone(), Msg::Signal)
        .map_err(|e| Failure::internal(format!("cannot catch signals: {e}")))?;

    let wait = match (args.no_wait, args.timeout) {
        (true, _) => Wait::No,
        (false, Some(t)) if t.is_zero() => Wait::No,
        (false, Some(t)) => Wait::For(t),
        (false, None) => Wait::Forever,
    };
    let ticket = match obtain(&election, wait, args.quiet, &tx, &rx)? {
        Ok(ticket) => ticket,
        Err(()) => {
            if !args.quiet {
                say(no_ticket(&election, wait));
            }
            return Ok(i32::from(args.conflict_exit_code));
        }
    };

    let mut child = command::spawn(&args.command, &election, &ticket, !args.no_inherit)?;
    let pid = child.id() as libc::pid_t;
    if let Err(e) = ticket.set_command_pid(child.id())
        && !args.quiet
    {
        say(format!(
            "warning: cannot record the command's pid in {}: {e}",
            ticket.path().display()
        ));
    }
    notify_exit(pid, tx)?;

    let mut lost: Option<Instant> = None;
    let mut killed = false;
    loop {
        let timeout = match lost {
            Some(at) if !killed => {
                TICK.min((at + args.kill_after).saturating_duration_since(Instant::now()))
            }
            _ => TICK,
        };
        match rx.recv_timeout(timeout) {
            Ok(Msg::Signal(sig)) => signals::forward(sig, pid),
            Ok(Msg::Exited) => break,
            Ok(Msg::Obtained(_)) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err(Failure::internal(
                    "lost track of the command; this is a bug",
                ));
            }
        }
        if lost.is_none() && !ticket.is_held() {
            say(format!(
                "lost the ticket of {:?} (slot {}, token {}): {} was removed or replaced, so another process may hold it now; stopping the command (pid {pid}) with SIGTERM, SIGKILL in {}",
                election.name(),
                ticket.slot(),
                ticket.token(),
                ticket.path().display(),
                humantime(args.kill_after),
            ));
            signals::send(pid, libc::SIGTERM);
            lost = Some(Instant::now());
        }
        if let Some(at) = lost
            && !killed
            && at.elapsed() >= args.kill_after
        {
            say(format!(
                "the command (pid {pid}) did not stop within {} of SIGTERM; sent SIGKILL",
                humantime(args.kill_after)
            ));
            signals::send(pid, libc::SIGKILL);
            killed = true;
        }
    }
    let status = child
        .wait()
        .map_err(|e| Failure::internal(format!("cannot reap the command (pid {pid}): {e}")))?;
    ticket.release();
    if lost.is_some() {
        return Ok(exit::LOST);
    }
    Ok(command::exit_code(status))
}

/// Waits for a ticket as `wait` says, showing progress, and gives up on a
/// signal. `Ok(Err(()))` means no ticket came in time.
fn obtain(
    election: &Election,
    wait: Wait,
    quiet: bool,
    tx: &Sender<Msg>,
    rx: &Receiver<Msg>,
) -> Result<Result<Ticket, ()>, Failure> {
    // The common case first, on this thread: a free ticket needs no waiting
    // thread and no display.
    if let Some(ticket) = election.try_obtain()? {
        return Ok(Ok(ticket));
    }
    if let Wait::No = wait {
        return Ok(Err(()));
    }
    let e = election.clone();
    let done = tx.clone();
    std::thread::Builder::new()
        .name("elect-obtain".into())
        .spawn(move || {
            let result = match wait {
                Wait::No => e.try_obtain(),
                Wait::For(t) => e.obtain_timeout(t),
                Wait::Forever => e.obtain().map(Some),
            };
            let _ = done.send(Msg::Obtained(result));
        })
        .map_err(|e| Failure::internal(format!("cannot start waiting: {e}")))?;

    let mut progress = Progress::new(election, quiet);
    // Without a display there is nothing to redraw: sleep until something
    // happens, so that an idle `elect run` costs nothing while it waits.
    let tick = if progress.is_enabled() {
        TICK
    } else {
        Duration::from_secs(3600)
    };
    loop {
        match rx.recv_timeout(tick) {
            Ok(Msg::Obtained(result)) => {
                progress.clear();
                return match result? {
                    Some(ticket) => Ok(Ok(ticket)),
                    None => Ok(Err(())),
                };
            }
            Ok(Msg::Signal(sig)) => {
                progress.clear();
                if !quiet {
                    say(format!(
                        "stopped by {} while waiting for a ticket of {:?}; nothing was taken",
                        signals::name(sig.signo),
                        election.name()
                    ));
                }
                // Exiting drops everything, including a ticket the waiting
                // thread might be obtaining at this very moment.
                return Err(Failure {
                    code: exit::by_signal(sig.signo),
                    message: String::new(),
                });
            }
            Ok(Msg::Exited) | Err(RecvTimeoutError::Timeout) => progress.update(),
            Err(RecvTimeoutError::Disconnected) => {
                progress.clear();
                return Err(Failure::internal(
                    "the wait for a ticket ended without an answer; this is a bug",
                ));
            }
        }
    }
}

/// Starts a thread that sends [`Msg::Exited`] when the command `pid` exits,
/// leaving it unreaped.
fn notify_exit(pid: libc::pid_t, tx: Sender<Msg>) -> Result<(), Failure> {
    std::thread::Builder::new()
        .name("elect-child".into())
        .spawn(move || {
            loop {
                // SAFETY: waitid writes one siginfo_t into `info`.
                let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
                let r = unsafe {
                    libc::waitid(
                        libc::P_PID,
                        pid as libc::id_t,
                        &mut info,
                        libc::WEXITED | libc::WNOWAIT,
                    )
                };
                if r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                    break;
                }
            }
            let _ = tx.send(Msg::Exited);
        })
        .map(drop)
        .map_err(|e| Failure::internal(format!("cannot watch the command (pid {pid}): {e}")))
}

/// The message when no ticket was obtained: what was asked and who holds
/// the tickets.
fn no_ticket(election: &Election, wait: Wait) -> String {
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

/// ` (held by pid 42 "label", ...)` for the held slots of `status`.
fn holders(status: &ResourceStatus) -> String {
    let list: Vec<String> = status
        .slots
        .iter()
        .filter(|s| s.held)
        .take(4)
        .map(|s| match &s.holder {
            Some(h) => format!("pid {} {:?}", h.pid, h.label),
            None => format!("slot {}", s.slot),
        })
        .collect();
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
