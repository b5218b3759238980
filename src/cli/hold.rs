//! `elect hold`: a ticket for a section of a shell script. It obtains the
//! ticket as `elect run` does, prints `SLOT TOKEN` on stdout, and holds the
//! ticket while its standard input stays open: the script ends the section
//! by closing the pipe (or by exiting, or by dying, however it dies, since
//! the kernel closes its end of the pipe then). It also lets go when the
//! process that started it exits (`PR_SET_PDEATHSIG`, and a look at
//! `getppid` on every tick), or on a signal, and says so if the ticket is
//! lost (exit 76).
//!
//! The ticket is held by this process alone, not by the script: nothing the
//! script starts inherits it, and nothing it leaves running keeps it held.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use elect::Election;

use super::args::HoldArgs;
use super::command;
use super::exit::{self, Failure, say};
use super::location::Place;
use super::output::{self, Written};
use super::run;
use super::signals::{self, Action, Signals, Woke};

/// How often the ticket and the parent are looked at while holding.
const TICK: Duration = Duration::from_millis(250);

/// The signal the kernel sends when the process that started elect hold
/// exits (`PR_SET_PDEATHSIG`): a hangup, as of a terminal that went away.
/// While waiting it makes elect give up, and while holding it releases the
/// ticket, as any signal that ends a process by default does.
const PARENT_DEATH_SIGNAL: i32 = libc::SIGHUP;

/// Runs `elect hold` and returns its exit status.
///
/// However it ends, it ends at the end of its input (unless that is a
/// terminal): after a failure it says why at once, closes its standard
/// output (so that the script's `read` fails at once) and waits for the
/// script to close its end, so that the script finds it still running, its
/// pipe still open, and its status to be had with `wait`. A bash coprocess
/// that ended by itself would take its pipe and its variables with it.
pub(crate) fn hold(args: HoldArgs) -> Result<i32, Failure> {
    // SAFETY: getppid cannot fail.
    let parent = unsafe { libc::getppid() };
    let place = Place::of(&args.wait.dir, args.ttl)?;
    let label = args.label.clone().unwrap_or_else(|| label_of(parent));
    // Refuses a bad name before anything is touched (status 2).
    let election = place
        .builder(&args.name)
        .tickets(args.wait.tickets)
        .label(label)
        .build()?;
    check_input()?;
    let signals = Signals::catch().map_err(|e| Failure::os("cannot catch signals", &e))?;
    let holding = Holding {
        election: &election,
        parent,
        quiet: args.quiet,
        signals: &signals,
    };
    match holding.section(&args) {
        Ok(code) => Ok(code),
        Err(f) => {
            if !f.message.is_empty() {
                say(&f.message);
            }
            end_output();
            holding.until_end_of_input();
            Ok(f.code)
        }
    }
}

/// What [`Holding::wait_for_input`] found.
enum Input {
    /// Something, or nothing yet: the input is still open.
    More,
    /// The end of the input.
    End,
    /// A signal that ends a process.
    Signal(i32),
}

/// What a hold needs while it runs.
struct Holding<'a> {
    election: &'a Election,
    /// The process that started elect hold.
    parent: libc::pid_t,
    quiet: bool,
    signals: &'a Signals,
}

impl Holding<'_> {
    /// Takes the ticket, says so, and holds it to the end of the input.
    fn section(&self, args: &HoldArgs) -> Result<i32, Failure> {
        run::refuse_nested(self.election)?;
        if watch_parent(self.parent) {
            // Nobody is left to hold it for.
            return Ok(self.gone());
        }
        let wait = args.wait.wait();
        let ticket = match run::obtain(self.election, wait, self.quiet, self.signals, None)? {
            Ok((ticket, _)) => ticket,
            Err(()) => {
                let message = if self.quiet {
                    String::new()
                } else {
                    run::no_ticket(self.election, wait)
                };
                return Err(Failure::new(
                    i32::from(args.wait.conflict_exit_code),
                    message,
                ));
            }
        };
        // The script does the work of the ticket: status shows its pid as
        // the command's.
        if self.parent > 1
            && let Err(e) = ticket.set_command_pid(self.parent as u32)
            && !self.quiet
        {
            say(format!(
                "warning: cannot record the pid of the script in {}: {e}",
                ticket.path().display()
            ));
        }
        if parent_gone(self.parent) {
            return Ok(self.gone());
        }
        let line = format!("{} {}\n", ticket.slot(), ticket.token());
        if output::write(&line)? == Written::Closed {
            return Err(Failure::internal(format!(
                "nobody reads the standard output of elect hold, so the ticket of {:?} could not be reported, and was released; read the line SLOT TOKEN from it (see elect-hold(1))",
                self.election.name()
            )));
        }
        // One line, and nothing more: the reader may go.
        end_output();
        loop {
            match self.wait_for_input() {
                Input::More => {}
                Input::End => break,
                Input::Signal(signo) => {
                    // The caller sees elect killed by the signal.
                    ticket.release();
                    self.die_of(signo);
                }
            }
            if !ticket.is_held() {
                let lost = format!(
                    "lost the ticket of {:?} (slot {}, token {}): {} was removed or replaced (or its lease expired), so another process may hold it soon; stop the section that holds it",
                    self.election.name(),
                    ticket.slot(),
                    ticket.token(),
                    ticket.path().display(),
                );
                drop(ticket);
                return Err(Failure::new(exit::LOST, lost));
            }
            if parent_gone(self.parent) {
                return Ok(self.gone());
            }
        }
        ticket.release();
        Ok(0)
    }

    /// Sleeps until the input has something (read and thrown away), a
    /// signal comes, or a tick passes. A signal that stops a process stops
    /// elect; one that ends a process is returned, for the caller to end by
    /// it once it has let go of its ticket.
    fn wait_for_input(&self) -> Input {
        // SAFETY: descriptor 0 stays open for the life of the process (it
        // was checked, and nothing here closes it).
        let input = unsafe { BorrowedFd::borrow_raw(libc::STDIN_FILENO) };
        match self.signals.wait(Some(input), TICK) {
            Woke::Signal(sig) => match signals::default_action(sig.signo) {
                Action::Ignore => Input::More,
                Action::Stop => {
                    signals::stop_self(sig.signo);
                    Input::More
                }
                Action::Terminate => Input::Signal(sig.signo),
            },
            Woke::Other if at_end(input) => Input::End,
            Woke::Other | Woke::Timeout => Input::More,
        }
    }

    /// Ends elect by signal `signo` (the ticket, if any, released first),
    /// saying so when it came because the process that started elect hold
    /// has exited.
    fn die_of(&self, signo: i32) -> ! {
        if parent_gone(self.parent) {
            self.gone();
        }
        signals::die_of(signo)
    }

    /// After a failure: waits for the end of the input (or the end of the
    /// process that started elect hold, or a signal), unless the input is
    /// a terminal, where nobody would know to end it.
    fn until_end_of_input(&self) {
        // SAFETY: isatty only looks at the descriptor.
        if unsafe { libc::isatty(libc::STDIN_FILENO) } == 1 {
            return;
        }
        while !parent_gone(self.parent) {
            match self.wait_for_input() {
                Input::More => {}
                Input::End => return,
                Input::Signal(signo) => self.die_of(signo),
            }
        }
    }

    /// Says (unless quiet) that the process that started elect hold has
    /// exited, and returns the status to exit with (0) once the ticket,
    /// if any, is dropped.
    fn gone(&self) -> i32 {
        if !self.quiet {
            say(format!(
                "the process that started elect hold (pid {}) has exited; let go of {:?}",
                self.parent,
                self.election.name()
            ));
        }
        0
    }
}

/// Replaces standard output with /dev/null: a script reading it sees its
/// end, and nothing written later can fail on a closed pipe.
fn end_output() {
    // SAFETY: open and dup2 with valid arguments; the result of open is
    // checked and its descriptor closed after the copy.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if null >= 0 {
            libc::dup2(null, libc::STDOUT_FILENO);
            libc::close(null);
        }
    }
}

/// Refuses (status 2) a standard input that would end at once, releasing
/// the ticket as soon as it is taken: /dev/null (what a POSIX shell gives a
/// background job without a redirection) or a closed descriptor.
fn check_input() -> Result<(), Failure> {
    // SAFETY: fstat writes one stat into `st`.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let what = if unsafe { libc::fstat(libc::STDIN_FILENO, &mut st) } != 0 {
        "closed"
    } else if st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == libc::makedev(1, 3) {
        "/dev/null (or was closed)"
    } else {
        return Ok(());
    };
    Err(Failure::new(
        exit::USAGE,
        format!(
            "the standard input of elect hold is {what}, so the ticket would be released as soon as it was taken; elect hold holds it while its standard input stays open: start it as a bash coprocess (coproc elect hold NAME) or with a fifo on its standard input (elect hold NAME <FIFO), see elect-hold(1)"
        ),
    ))
}

/// Asks the kernel to send [`parent_death_signal`] when the process that
/// started elect hold exits. Returns true when it has exited already.
fn watch_parent(parent: libc::pid_t) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    // SAFETY: prctl with these arguments has no memory-safety preconditions.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            PARENT_DEATH_SIGNAL as libc::c_ulong,
            0,
            0,
            0,
        );
    }
    parent_gone(parent)
}

/// Whether the process that started elect hold has exited: elect has a
/// new parent (a subreaper, or init).
fn parent_gone(parent: libc::pid_t) -> bool {
    // SAFETY: getppid cannot fail.
    parent > 1 && unsafe { libc::getppid() } != parent
}

/// Reads what is waiting on standard input and throws it away; true at its
/// end (or when it cannot be read any more).
fn at_end(input: BorrowedFd<'_>) -> bool {
    let mut buf = [0u8; 4096];
    // SAFETY: buf is writable for its length. Standard input may block: it
    // was reported readable, so one read returns at once.
    let n = unsafe { libc::read(input.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        let err = std::io::Error::last_os_error();
        return !matches!(
            err.kind(),
            std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock
        );
    }
    n == 0
}

/// The default label: the command line of the process that started elect
/// hold (the script), quoted as `elect run` quotes its command's.
fn label_of(parent: libc::pid_t) -> String {
    use std::os::unix::ffi::OsStrExt;
    let line = std::fs::read(format!("/proc/{parent}/cmdline")).unwrap_or_default();
    // NUL-terminated words.
    let words: Vec<std::ffi::OsString> = line
        .strip_suffix(b"\0")
        .unwrap_or(&line)
        .split(|&b| b == 0)
        .map(|w| std::ffi::OsStr::from_bytes(w).to_os_string())
        .collect();
    let words = if line.is_empty() { Vec::new() } else { words };
    if words.is_empty() {
        return format!("elect hold (pid {parent})");
    }
    command::command_line(&words)
}
