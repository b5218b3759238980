//! The man pages: `elect.1` and one page per subcommand, generated from the
//! clap definition with clap_mangen, plus the prose sections a man page
//! needs (EXIT STATUS, ENVIRONMENT, FILES, NOTES, EXAMPLES, SEE ALSO),
//! written here. `elect generate-man DIR` writes them; the committed copies
//! under `man/` are checked against it by `tests/cli_man.rs`.

use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;
use clap_mangen::Man;

use super::args::Cli;

/// A block of prose in a section.
enum Block {
    /// A paragraph.
    P(&'static str),
    /// A tagged paragraph: a term and what it means.
    Tag(&'static str, &'static str),
    /// Lines shown as they are (commands, files).
    Code(&'static str),
}

use Block::{Code, P, Tag};

/// A section of prose: its title and blocks.
type Section = (&'static str, Vec<Block>);

/// Writes every page into `dir`, which must exist.
pub(crate) fn generate(dir: &Path) -> anyhow::Result<()> {
    let mut root = Cli::command();
    root.build();
    let pages: Vec<(clap::Command, Vec<Section>)> = std::iter::once((root.clone(), elect_page()))
        .chain(
            root.get_subcommands()
                .filter(|s| !s.is_hide_set())
                .map(|s| (s.clone(), sub_page(s.get_name()))),
        )
        .collect();
    for (cmd, prose) in pages {
        let man = Man::new(cmd.clone());
        let mut out = Vec::new();
        man.render_title(&mut out)?;
        man.render_name_section(&mut out)?;
        man.render_synopsis_section(&mut out)?;
        man.render_description_section(&mut out)?;
        if cmd.get_arguments().any(|a| !a.is_hide_set()) {
            man.render_options_section(&mut out)?;
        }
        if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
            man.render_subcommands_section(&mut out)?;
        }
        for section in &prose {
            out.extend_from_slice(roff(section).as_bytes());
        }
        if cmd.get_version().is_some() {
            man.render_version_section(&mut out)?;
        }
        let path = dir.join(man.get_filename());
        std::fs::write(&path, out).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Roff for one section, with the text escaped.
fn roff((title, blocks): &Section) -> String {
    let mut out = format!(".SH \"{title}\"\n");
    for block in blocks {
        match block {
            P(text) => {
                out.push_str(".PP\n");
                out.push_str(&escape(text));
                out.push('\n');
            }
            Tag(tag, text) => {
                out.push_str(".TP\n\\fB");
                out.push_str(&escape(tag));
                out.push_str("\\fR\n");
                out.push_str(&escape(text));
                out.push('\n');
            }
            Code(lines) => {
                out.push_str(".PP\n.RS 4\n.nf\n");
                for line in lines.lines() {
                    out.push_str(&escape(line));
                    out.push('\n');
                }
                out.push_str(".fi\n.RE\n");
            }
        }
    }
    out
}

/// Escapes text for roff: backslashes, hyphens, and a leading `.` or `'`.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line.starts_with('.') || line.starts_with('\'') {
            out.push_str("\\&");
        }
        for c in line.chars() {
            match c {
                '\\' => out.push_str("\\e"),
                '-' => out.push_str("\\-"),
                _ => out.push(c),
            }
        }
        out.push('\n');
    }
    out.pop();
    out
}

/// The prose of a subcommand's page.
fn sub_page(name: &str) -> Vec<Section> {
    match name {
        // `elect run` is what the tool is for: its page and elect(1) say
        // the same.
        "run" => elect_page(),
        "status" => vec![
            (
                "OUTPUT",
                vec![
                    P(
                        "Without --json, one line per slot under a header: the resource, the slot, held or free, and for a held slot the pid that took the ticket, the pid of the command elect run started (or of the script an elect hold holds for), the fencing token, since when (and how long ago: 12 s ago) and the label. A pid that took the ticket and has exited while the slot is still held (elect was killed with SIGKILL, and its command inherited the ticket) is shown as 4242 (exited; held by 4243), with the pid the kernel shows holding the lock now. A slot held by a process outside elect (flock(1), say) shows the pid the kernel names and no record, rather than the record of a former holder; so does a holder whose record could not be written (a full disk). After the slots, one line per resource that has processes waiting in line for a ticket: job: 2 waiting (pid 4300, 4301), in the order they came. Without NAME every resource in the run directory is listed. A record is written by whoever holds the slot, so its label is shown with control and bidirectional-formatting characters replaced by spaces; --json gives it exactly, with those characters escaped. A slot file that does not hold a whole record (one whose since is not an RFC 3339 time, for one) shows no holder.",
                    ),
                    P("With --json, one JSON document on one line:"),
                    Code(
                        r#"{"dir": "/abs/dir",
 "resources": [
   {"name": "echo", "tickets": 2,
    "slots": [
      {"slot": 0, "held": true, "pid": 4242, "since": "2026-11-23T10:00:00Z",
       "label": "sh -c ...", "token": 7, "command_pid": 4243,
       "lock_pid": 4242, "pid_alive": true},
      {"slot": 1, "held": false}],
    "waiters": [4300, 4301]}]}"#,
                    ),
                    P(
                        "held is the kernel's truth at the time of the call, whatever stale text a slot file holds: status reads it from /proc/locks and takes no lock on anything, so asking never makes another process miss a ticket. Where /proc/locks cannot be read (a container or mount namespace that hides /proc), status does not guess and does not try the locks itself: it fails with status 125 and says so; mount /proc there, or run it where /proc is mounted. In a PID namespace of its own (a container), /proc/locks lists only the locks of processes visible there, so a slot held from outside it shows as free. pid, since, label, token and command_pid come from the holder's record: pid is the process that took the ticket (for elect run, elect itself), so after elect was killed with SIGKILL a slot can be held while its recorded pid has exited; command_pid is then the command that still holds it. Beside them, from the kernel: lock_pid is the process that holds the slot's lock now (the one that took it while it lives, else one that inherited its descriptor, found in /proc/PID/fdinfo); pid_alive says whether the recorded pid still runs; waiters lists the processes waiting in line for a ticket, in the order they came (the locks on DIR/NAME/line/). A record whose pid neither took the lock nor holds it is a former holder's, and is not shown. tickets is the N of the live participants, or of the last use when none is live. A NAME never used gives an empty resources list.",
                    ),
                ],
            ),
            (
                "EXIT STATUS",
                vec![
                    Tag("0", "The status was printed."),
                    Tag("2", "Bad usage: unknown option or bad resource name."),
                    Tag(
                        "125",
                        "The run directory is unsafe or cannot be read, or /proc/locks cannot be read.",
                    ),
                ],
            ),
            environment(false),
            files(),
            (
                "EXAMPLES",
                vec![
                    P("Who holds the nightly report?"),
                    Code("elect status nightly-report"),
                    P("The pids of the commands holding any slot of ci-heavy, for a script:"),
                    Code(
                        "elect status --json ci-heavy |\n  jq '.resources[].slots[] | select(.held) | .command_pid // .pid'",
                    ),
                ],
            ),
            see_also(),
        ],
        "hold" => hold_page(),
        "watch" => vec![
            (
                "OUTPUT",
                vec![
                    P("Without --json, one line per change:"),
                    Code("2026-11-23T10:00:00Z acquired echo slot 0 pid 4242 token 7"),
                    P("With --json, one JSON object per line:"),
                    Code(
                        r#"{"event":"acquired","name":"echo","slot":0,"pid":4242,"token":7,"at":"2026-11-23T10:00:00Z"}"#,
                    ),
                    P(
                        "event is acquired or released; pid and token are the holder's, from its record; at is when the change was seen, in RFC 3339 UTC. Each line is flushed as it is written. Unless --quiet, a line on stderr says what is watched once the watch is in place. Like status, watch takes no lock: it reads who holds a slot from /proc/locks, and fails with status 125 where that cannot be read.",
                    ),
                ],
            ),
            (
                "EXIT STATUS",
                vec![
                    Tag(
                        "128+N",
                        "Stopped by signal N (SIGINT from Ctrl-C gives 130): watch runs until interrupted.",
                    ),
                    Tag(
                        "0",
                        "Nobody reads its output any more (for example grep -m1 or head -1 exited): watch notices at once, even with no event to write, and exits 0 rather than dying of SIGPIPE, so that a pipeline under set -o pipefail succeeds.",
                    ),
                    Tag("2", "Bad usage: unknown option or bad resource name."),
                    Tag(
                        "125",
                        "The run directory is unsafe or cannot be watched, or /proc/locks cannot be read.",
                    ),
                ],
            ),
            environment(false),
            (
                "EXAMPLES",
                vec![
                    P("Follow a resource:"),
                    Code("elect watch --json nightly-report"),
                    P("Wait until the current holder of deploy gives it up:"),
                    Code("elect watch --json -q deploy | grep -m1 '\"released\"'"),
                ],
            ),
            see_also(),
        ],
        "completions" => vec![
            (
                "EXAMPLES",
                vec![Code(
                    "elect completions bash > ~/.local/share/bash-completion/completions/elect\nelect completions zsh > ~/.zfunc/_elect\nelect completions fish > ~/.config/fish/completions/elect.fish",
                )],
            ),
            see_also(),
        ],
        _ => vec![see_also()],
    }
}

/// The prose of `elect-hold.1`.
fn hold_page() -> Vec<Section> {
    vec![
        (
            "OUTPUT",
            vec![P(
                "Once it holds a ticket, one line on stdout: the slot (0-based) and the fencing token, separated by a space, as read -r slot token reads them; then stdout is closed. Nothing is printed when no ticket was obtained. Messages go to stderr, as for elect run: while waiting on a terminal, who holds the tickets; off a terminal, a line when the wait starts and one when the ticket comes; with --quiet, only errors.",
            )],
        ),
        (
            "HOW LONG IT HOLDS",
            vec![
                P(
                    "The ticket is held by elect hold itself, not by the script: nothing the script starts inherits it, and nothing the script leaves behind keeps it. It is released when any of these happens:",
                ),
                Tag(
                    "the end of its standard input",
                    "the script closes its end of the pipe (exec {COPROC[1]}>&- in bash, exec 9>&- with a fifo), or exits, or dies however it dies, SIGKILL included: the kernel closes a dead process's descriptors. Whatever is written on the pipe is read and ignored.",
                ),
                Tag(
                    "the end of the process that started it",
                    "even while a child of the script keeps the pipe open: the kernel sends elect hold SIGHUP when its parent exits (PR_SET_PDEATHSIG), and it also looks at its parent every 250 ms.",
                ),
                Tag(
                    "a signal",
                    "any signal that ends a process by default (SIGINT, SIGTERM, SIGHUP, ...) releases the ticket, and elect hold ends by that signal. While waiting, such a signal makes it give up with nothing taken.",
                ),
                P(
                    "elect hold always runs until its standard input ends (unless that is a terminal), even when it could not obtain a ticket or lost it: it says why on stderr at once and closes its stdout, so that the script's read fails at once, and its status is there for wait once the script has closed its end. (A bash coprocess that ends by itself takes its pipe and its variables with it.) A standard input that would end at once, /dev/null (what a POSIX shell gives a background job without a redirection) or a closed one, is refused with status 2.",
                ),
                P(
                    "If the ticket is lost while held (its slot file or the resource directory removed or replaced, or with --etcd its lease expired), elect hold says so on stderr at once and exits 76 at the end of its input: the section should stop, and a script that checks the status of wait knows it ran without the ticket from that moment on.",
                ),
            ],
        ),
        (
            "EXIT STATUS",
            vec![
                Tag(
                    "0",
                    "The ticket was held from the line on stdout until the end of the input (or until the process that started elect hold exited).",
                ),
                Tag(
                    "75, or the -E CODE",
                    "No ticket was obtained within --no-wait or --timeout; nothing was printed on stdout.",
                ),
                Tag(
                    "76",
                    "The ticket was lost while held (said on stderr when it happened).",
                ),
                Tag(
                    "128+N",
                    "Ended by signal N (the ticket, if held, was released).",
                ),
                Tag(
                    "2",
                    "Bad usage: unknown option, bad resource name, bad number or duration, or a standard input that would end at once.",
                ),
                Tag(
                    "125",
                    "Any other failure of elect itself: an unsafe or unwritable run directory, participants disagreeing on the number of tickets, a hold inside an elect run of the same resource (which would wait for itself), an I/O error.",
                ),
            ],
        ),
        environment(false),
        (
            "EXAMPLES",
            vec![
                P(
                    "A section of a bash script, as a coprocess. Keep the pid: bash forgets it when the coprocess ends.",
                ),
                Code(HOLD_BASH),
                P(
                    "The same in POSIX sh, with two fifos: one for elect hold's input, which the script keeps open on descriptor 9 for the section, and one for the line it prints. Open them in this order (the input first), on one line:",
                ),
                Code(HOLD_SH),
                P(
                    "With -t N, up to N scripts are in their sections at once, each with its own $slot. To wait at most 30 seconds, give -w 30s; to give up at once, -n: the read then fails, and wait returns 75 (or the -E CODE).",
                ),
                P(
                    "A whole script under one ticket needs no elect hold: let the script run itself under elect run, unless it already does (elect run sets ELECT_NAME in its command's environment):",
                ),
                Code(WHOLE_SCRIPT),
            ],
        ),
        see_also(),
    ]
}

/// elect-hold(1)'s bash recipe; README has the same (tests/readme_recipes.rs
/// runs README's).
const HOLD_BASH: &str = r#"coproc elect hold deploy                # waits for a ticket of "deploy"
hold=$COPROC_PID
if read -r slot token <&"${COPROC[0]}"; then
    echo "slot $slot, token $token"     # the section: the ticket is held
fi
exec {COPROC[1]}>&-                     # ends the section: releases the ticket
wait "$hold" || exit                    # 0: held throughout; 75: none; 76: lost"#;

/// elect-hold(1)'s POSIX sh recipe.
const HOLD_SH: &str = r#"fifos=$(mktemp -d) && mkfifo "$fifos/in" "$fifos/out" || exit
elect hold deploy <"$fifos/in" >"$fifos/out" &
hold=$!
exec 9>"$fifos/in" 8<"$fifos/out"       # in first, then out
rm -r "$fifos"
if read -r slot token <&8; then
    echo "slot $slot, token $token"     # the section: the ticket is held
fi
exec 8<&- 9>&-                          # ends the section: releases the ticket
wait "$hold" || exit                    # 0: held throughout; 75: none; 76: lost"#;

/// The whole-script idiom.
const WHOLE_SCRIPT: &str = r#"#!/bin/sh
[ "$ELECT_NAME" = nightly ] || exec elect run nightly -- "$0" "$@"
echo "the whole script holds slot $ELECT_SLOT, token $ELECT_TOKEN""#;

/// The prose of `elect.1`.
fn elect_page() -> Vec<Section> {
    vec![
        run_exit_status(),
        environment(true),
        files(),
        notes(),
        etcd(),
        run_examples(),
        see_also(),
    ]
}

fn run_exit_status() -> Section {
    (
        "EXIT STATUS",
        vec![
            P("elect run exits with:"),
            Tag("the command's status", "when the command exited."),
            Tag(
                "128+N",
                "when the command was killed by signal N, or when elect run was stopped by signal N (SIGINT, SIGTERM, SIGHUP, SIGQUIT, or another that kills a process by default) while waiting for a ticket; nothing was taken then. elect run then ends by signal N itself (its default disposition restored, re-raised, without a core file of its own), not by exiting 128+N: a shell sees the same status, and reacts as it would to the command itself, so that Ctrl-C stops a loop of elect runs.",
            ),
            Tag(
                "75, or the -E CODE",
                "when no ticket was obtained within --no-wait or --timeout. The command did not run.",
            ),
            Tag(
                "76",
                "when the ticket was lost while the command ran: its slot file or resource directory was removed or replaced, or with --etcd its lease could not be renewed in time or its key was deleted. The command was sent SIGTERM, then SIGKILL after --kill-after (with --etcd, sooner if the lease requires it).",
            ),
            Tag(
                "2",
                "bad usage: unknown option, bad resource name, bad number or duration. Nothing was created on disk.",
            ),
            Tag("126", "the command exists but cannot be executed."),
            Tag("127", "the command was not found."),
            Tag(
                "125",
                "any other failure of elect itself: unsafe or unwritable run directory, participants disagreeing on the number of tickets, an elect run inside the command of an elect run of the same resource (see Nesting under NOTES), I/O error, an etcd cluster that cannot be reached; as env(1), nice(1) and timeout(1) use it.",
            ),
            P(
                "Every error message goes to stderr, begins with \"elect:\", names the bad value or path and says what to do about it.",
            ),
        ],
    )
}

fn environment(run: bool) -> Section {
    let mut blocks = vec![
        Tag("ELECT_DIR", "The run directory when --dir is not given."),
        Tag(
            "ELECT_GROUP_SHARED",
            "Set to 1 (or true) for --group-shared: share the run directory with a group of yours.",
        ),
        Tag(
            "XDG_RUNTIME_DIR",
            "When ELECT_DIR is unset or empty, the run directory is $XDG_RUNTIME_DIR/elect; when both are unset, /tmp/elect-UID.",
        ),
        Tag(
            "ELECT_ETCD",
            "The etcd endpoints when neither --etcd nor --dir is given: the election is then held on that cluster (see ELECTIONS ON ETCD). It wins over ELECT_DIR; --dir on the command line wins over it.",
        ),
        Tag(
            "ELECT_ETCD_PREFIX",
            "The key prefix when --etcd-prefix is not given (default elect/).",
        ),
    ];
    if run {
        blocks.push(Tag(
            "PATH",
            "Where elect run looks for COMMAND when it has no slash, before it takes a ticket.",
        ));
        blocks.push(P("elect run adds these to the command's environment:"));
        blocks.extend([
            Tag("ELECT_NAME", "The resource name."),
            Tag("ELECT_SLOT", "The slot held, 0-based."),
            Tag("ELECT_TICKETS", "N, the number of tickets."),
            Tag(
                "ELECT_DIR",
                "The run directory, absolute. Not set for an election on etcd, which sets ELECT_ETCD and ELECT_ETCD_PREFIX instead, so that an elect the command runs uses the same cluster.",
            ),
            Tag(
                "ELECT_TOKEN",
                "The fencing token: an integer that strictly increases with every acquisition of any slot of this resource. Hand it to a downstream system so it can refuse writes from a holder that was superseded.",
            ),
        ]);
    }
    ("ENVIRONMENT", blocks)
}

fn files() -> Section {
    (
        "FILES",
        vec![
            Tag(
                "DIR/NAME/slot.I",
                "Slot I of resource NAME. Holding slot I means holding an exclusive flock(2) on this file; the file holds the holder's record (pid, since, label, token, command_pid) for status, one JSON line padded with spaces, and is never unlinked by elect. A record that could not be written (a full disk) leaves the file empty: status then shows the slot held with the pid the kernel names and no record.",
            ),
            Tag(
                "DIR/NAME/tickets",
                "The number of tickets the live participants agreed on, as text (N and a newline), written by a participant that finds nobody live; every live participant holds a shared flock on the resource directory. On a file system with no room left, a file that is nothing but a hole, N bytes long, which takes no room.",
            ),
            Tag(
                "DIR/NAME/token",
                "The fencing-token counter: the last token issued, as 20 decimal digits and a newline, rewritten in place under a (tried) exclusive flock. The next token is the larger of the last one plus one and the clock in microseconds, so a new or emptied counter starts above the tokens issued before; to set it by hand, write a decimal number into it. Anything else in it is an error, never a reset. On a full disk, a counter that cannot be written is left as it was and the token is the clock's, given out once the clock has passed it.",
            ),
            Tag(
                "DIR/NAME/line/TIME.PID",
                "A waiter's place in line, named for when it arrived (the monotonic clock in nanoseconds, zero-padded, then its pid): the waiter holds an exclusive flock on it while it waits, and removes it when it stops waiting. status counts these locks as the resource's waiters. A place whose lock can be had is stale (its waiter died), and whoever finds it removes it.",
            ),
            Tag(
                "$XDG_RUNTIME_DIR/elect, /tmp/elect-UID",
                "The default run directories. Directories elect creates are mode 0700 and files 0600 (with --group-shared, 2770 and 0660, whatever the umask). The run directory, every resource directory and every file elect opens in them must be owned by you or root and not be writable by group or others (with --group-shared, a group of yours may own and write them; others never); a sticky directory of root's such as /tmp or /run/lock may be the run directory. A symbolic link is followed only to the run directory, and only when the link and the directory holding it are owned by you or root and others cannot write that directory. Anything else is refused with status 125 and a message that names the path, its owner and mode; remove it, or set ELECT_DIR to a directory you own.",
            ),
        ],
    )
}

fn notes() -> Section {
    (
        "NOTES",
        vec![
            Tag(
                "One host",
                "By default elect elects among the processes of one host, through the kernel's locks. For participants on several hosts, hold the election on an etcd cluster with --etcd (see ELECTIONS ON ETCD).",
            ),
            Tag(
                "NFS",
                "Keep the run directory on a local file system. On NFS, flock(2) is emulated with byte-range locks held by the lock manager: a client that loses contact can lose its lock without being told, and the kernel of another host cannot free a slot the instant its holder dies. elect does not try to detect this.",
            ),
            Tag(
                "tmpfs",
                "The default run directories are usually on tmpfs and emptied at boot. That is harmless for the locks, which never outlive a boot; a new fencing-token counter starts from the clock in microseconds, so tokens still exceed those issued before the reboot unless the clock was set back (for tokens that never depend on the clock, use a --dir on persistent storage). Cleaners such as systemd-tmpfiles may remove old files under /tmp while a slot is held; elect run sees that as a lost ticket (status 76). Exclude the directory from cleaning, or use $XDG_RUNTIME_DIR, or for a service a RuntimeDirectory= under /run (systemd-logind removes $XDG_RUNTIME_DIR when the user's last session ends).",
            ),
            Tag(
                "Forks and inherited descriptors",
                "A ticket is an open file description with a lock on it; every process that has it (through fork, or exec without close-on-exec) keeps the slot held, and the slot is free only when the last one has exited or closed it. By default the command inherits the ticket, and so do its children, including background processes and daemons it starts: the slot stays held until they have all exited, so a command that escapes into the background still counts. With --no-inherit (-o) only elect holds the ticket, the command gets SIGKILL if elect dies (Linux PR_SET_PDEATHSIG), and processes the command started and detached neither hold the ticket nor are killed: use it for commands that start daemons which must not keep the ticket.",
            ),
            Tag(
                "SIGKILL",
                "SIGKILL cannot be caught. If elect run is killed with SIGKILL while the command runs, the command runs on and keeps the slot through its inherited descriptor (status shows the slot held, with the exited pid of elect and the command_pid of the command); the slot is free once the command and its descendants holding it have exited. With --no-inherit the command is killed too and the slot is free at once. If the command is killed with SIGKILL, elect run dies of SIGKILL too (status 137) and the next waiter gets the ticket at once. Killing a waiting elect run with SIGKILL takes nothing. Nothing is ever left to clean up: the kernel frees a lock when its last descriptor is closed.",
            ),
            Tag(
                "Signals",
                "Every signal elect run can catch (all but SIGKILL and SIGSTOP) is forwarded to the command while it runs, SIGUSR1, SIGUSR2, SIGALRM, SIGWINCH and the realtime signals SIGRTMIN to SIGRTMAX included (with the value sigqueue(3) sent along), except SIGCHLD, which tells elect of its own child. elect survives them and exits with the command's status once it has ended. A signal that a terminal sends to its whole foreground process group (Ctrl-C's SIGINT, Ctrl-\\'s SIGQUIT, Ctrl-Z's SIGTSTP, a hangup or a resize) already reaches a command in elect's group, so elect does not send it a second copy: one Ctrl-C stops both. A stop signal (SIGTSTP, SIGTTIN, SIGTTOU) stops elect too once passed on, so that the shell sees the job stopped; SIGCONT continues elect and is passed on. While elect run waits for a ticket, a signal does what it does to a program that does not catch it: SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGALRM and the like make it give up with nothing taken, a stop signal stops it, SIGWINCH and SIGURG change nothing. When the command dies of signal N, or elect run gives up because of it, elect run ends by signal N itself, so that a shell, make or xargs sees what it would see of the command: in for i in 1 2 3; do elect run x -- sleep 2; done, Ctrl-C stops the loop, while running or while waiting.",
            ),
            Tag(
                "Lost tickets",
                "While the command runs, elect run checks about every 250 ms that the slot file it locked is still the one at its path. If the slot file, the resource directory or the run directory was removed or replaced, another process may now hold a fresh slot at the same path: elect says so on stderr, sends the command SIGTERM, then SIGKILL after --kill-after (default 5s), and exits 76.",
            ),
            Tag(
                "Progress",
                "While elect run waits and stderr is a terminal, it shows what it waits for and who holds the tickets (pid, label, since when), updated as that changes and erased once a ticket is obtained. When stderr is not a terminal (a CI log, cron's mail), it writes one line when the wait starts, naming the holders, and one when the ticket came, with how long that took, before the command starts: elect: waiting for a ticket of \"deploy\" (held by pid 4242 \"./deploy.sh\") and elect: got a ticket of \"deploy\" (slot 0, token 7) after 20m05s. A label is shown with control and bidirectional-formatting characters replaced by spaces. With --quiet, none of this.",
            ),
            Tag(
                "Nesting",
                "A command that runs elect run for the resource whose ticket it already holds would wait for itself for ever. elect run sees it in the environment its caller gave the command: ELECT_NAME and ELECT_DIR (or ELECT_ETCD and ELECT_ETCD_PREFIX) name the same resource, and slot ELECT_SLOT is still held with ELECT_TOKEN. It then fails at once with status 125, as a failure of elect's rather than of the command, and runs nothing; with --no-wait, too, so that a cron job's -E 0 cannot hide it. It does not run the command re-entrantly: the inner elect run's options (--tickets, --timeout, -E, --label) would mean nothing, and ELECT_TOKEN would not be a new acquisition. Run the command directly instead; a script that may be started both ways re-runs itself under elect only when it does not hold the ticket yet: [ \"$ELECT_NAME\" = job ] || exec elect run job -- \"$0\" \"$@\". Variables left over from a ticket released since (a daemon started under --no-inherit) do not count.",
            ),
        ],
    )
}

fn etcd() -> Section {
    (
        "ELECTIONS ON ETCD",
        vec![
            P(
                "With --etcd ENDPOINTS (comma-separated http://host:port; or ELECT_ETCD) the resources live in an etcd v3 cluster instead of a run directory, for participants on many hosts. It needs an elect built with the etcd feature (cargo install elect --features cli,etcd). The semantics are those of one host: at most N holders across all hosts, N agreed by every live participant, waiters served in arrival order and each woken only by the release it waits for, fencing tokens that strictly increase (etcd revisions), a lost ticket noticed and acted on. The keys, under --etcd-prefix (default elect/), are PREFIX/NAME/tickets, PREFIX/NAME/slot/I (on the holder's lease; its value is the holder's record) and PREFIX/NAME/queue/LEASE (a waiter).",
            ),
            Tag(
                "Fail-over time",
                "A holder that ends normally (the command exits, elect gets a signal) revokes its lease and the next waiter owns the slot within milliseconds: one etcd round trip and a watch event. A holder that crashes (elect killed with SIGKILL, its host down) or is cut off by a network partition cannot revoke: the slot is free when the server expires the lease, TTL after the last renewal it received (renewals go every TTL/5, so 4/5 TTL to TTL after the crash), plus up to half a second until the etcd leader next looks for expired leases, and a fresh TTL if the etcd leader changes meanwhile. This is longer than on one host, where the kernel frees a lock the instant its holder dies, because a server cannot tell a dead holder from a slow or cut-off one before its lease runs out. A lower --ttl (default 5s) fails over sooner; a higher one rides out longer network or etcd trouble (an etcd leader election takes 1 to 2 s with etcd's default settings). etcd raises a TTL below its minimum, 1.5 times its election timeout.",
            ),
            Tag(
                "Stopping early",
                "If no renewal of the lease went through for 3/5 of the TTL, elect run treats the ticket as lost: it says so, sends the command SIGTERM, sends SIGKILL no later than 4/5 of the TTL after the last successful renewal (sooner than --kill-after if need be), and exits 76. That is a fifth of the TTL before the server can let another holder in, counted from when that renewal was sent, so it holds wherever clocks run at the same rate. It cannot hold for a holder stopped as a whole (SIGSTOP of its process group, a paused VM): resumed, the command may run for a moment before elect looks at the clock. That is what ELECT_TOKEN is for.",
            ),
            Tag(
                "Fencing",
                "ELECT_TOKEN is the etcd revision at which the ticket was taken. Hand it to the system the command writes to and have that system refuse a token lower than the highest it has seen, e.g. UPDATE jobs SET ..., token = $ELECT_TOKEN WHERE id = 1 AND token <= $ELECT_TOKEN; a holder that woke up late then cannot overwrite its successor's work.",
            ),
            Tag(
                "The command",
                "cannot inherit an etcd ticket, because elect renews the lease: it always runs as with --no-inherit and gets SIGKILL if elect dies.",
            ),
        ],
    )
}

fn run_examples() -> Section {
    (
        "EXAMPLES",
        vec![
            P(
                "A cron job that must never overlap: if the previous run is still going, the new one gives up at once and quietly, with a status cron ignores (-E 0):",
            ),
            Code("*/5 * * * *  elect run -n -q -E 0 nightly-report -- /usr/local/bin/report"),
            P(
                "A CI step that allows 2 jobs at once per machine (the runners share the user and the directory); the others wait, showing who holds the tickets when run on a terminal:",
            ),
            Code(
                "elect run --tickets 2 --dir /var/tmp/ci-elect --label \"$CI_JOB_NAME $CI_JOB_ID\" \\\n    ci-heavy -- make integration-test",
            ),
            P(
                "A systemd service with 4 instances where one runs the singleton: every instance waits for the one ticket; the winner runs the scheduler, the others stand by and take over within milliseconds if it dies:",
            ),
            Code(
                "# /etc/systemd/system/scheduler@.service\n[Service]\nRuntimeDirectory=scheduler-elect\nRuntimeDirectoryPreserve=yes\nExecStart=/usr/local/bin/elect run --dir /run/scheduler-elect --label %n \\\n    scheduler -- /usr/local/bin/scheduler\nRestart=always\n\nsystemctl enable --now scheduler@1 scheduler@2 scheduler@3 scheduler@4",
            ),
            P(
                "Forked workers: 8 workers prepare in parallel, at most 2 at a time run the heavy phase, each with its slot and token:",
            ),
            Code(
                "for i in 1 2 3 4 5 6 7 8; do\n  ( prepare \"$i\"\n    elect run -t 2 heavy-phase -- sh -c 'crunch --slot \"$ELECT_SLOT\" --token \"$ELECT_TOKEN\"'\n    upload \"$i\" ) &\ndone\nwait",
            ),
            P("Wait at most 30 seconds for a deploy lock, and say why it failed:"),
            Code(
                "elect run -w 30s deploy -- ./deploy.sh\ncase $? in 75) echo \"another deploy is still running\" ;; esac",
            ),
            P("A command that starts a daemon which must not keep the ticket:"),
            Code("elect run --no-inherit db-setup -- ./start-db-and-migrate.sh"),
            P(
                "At most two load tests at once across all CI runners of a team, on its etcd cluster, with a 10 s lease:",
            ),
            Code(
                "export ELECT_ETCD=http://etcd1:2379,http://etcd2:2379,http://etcd3:2379\nelect run -t 2 --ttl 10s load-test -- ./load-test.sh",
            ),
        ],
    )
}

fn see_also() -> Section {
    (
        "SEE ALSO",
        vec![P(
            "elect(1), elect-run(1), elect-hold(1), elect-status(1), elect-watch(1), elect-completions(1), flock(1), flock(2)",
        )],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_roff() {
        assert_eq!(escape(".x -y \\z"), "\\&.x \\-y \\ez");
        assert_eq!(escape("a\n'b"), "a\n\\&'b");
    }
}
