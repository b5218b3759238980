//! The command line as clap sees it: every subcommand, option and value
//! parser. The man pages and completions are generated from this too, so the
//! help texts here are the reference documentation of each option.

use std::ffi::{OsStr, OsString};
use std::num::IntErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{OsStringValueParser, TypedValueParser};
use clap::error::ErrorKind;
use clap::{Arg, Args, Parser, Subcommand};

use super::duration::parse_duration;

/// Election on one host: at most N processes own a named resource.
#[derive(Debug, Parser)]
#[command(
    name = "elect",
    version,
    propagate_version = true,
    about = "Election on one host: at most N processes own a named resource",
    long_about = "Election on one host: at most N processes own a named resource.\n\n\
        Each of a resource's N tickets is a flock(2) on a slot file in a run \
        directory, so the kernel frees a ticket the instant its holder exits or \
        dies, however it dies: no leases, no heartbeats, no stale locks. \
        `elect run` runs a command while holding a ticket (like flock(1), with \
        N holders, fencing tokens and fail-over to waiters); `elect status` and \
        `elect watch` show who holds what.",
    subcommand_required = true,
    arg_required_else_help = true,
    disable_help_subcommand = true
)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a command while holding a ticket of a resource.
    #[command(long_about = "Run a command while holding a ticket of a resource.\n\n\
            Waits for a free ticket of NAME (or gives up at once with --no-wait, or \
            after --timeout), then runs COMMAND with ELECT_NAME, ELECT_SLOT, \
            ELECT_TICKETS, ELECT_DIR and ELECT_TOKEN in its environment and exits \
            with its status. The command inherits the ticket: the slot stays held \
            until elect, the command and every descendant that kept the inherited \
            descriptor have exited. Every signal elect can catch but SIGCHLD is \
            forwarded to the command while it runs; while waiting, SIGINT, SIGTERM, \
            SIGHUP, SIGQUIT (or any signal that kills a process by default) make \
            elect give up with nothing taken. When the command dies of signal N, or \
            elect gives up because of it, elect ends by signal N itself, so that a \
            shell sees 128+N and a loop stops on Ctrl-C. Run inside the command of \
            an elect run of the same resource, it fails at once (125) instead of \
            waiting for itself. If the ticket is lost while \
            the command runs (its slot file or directory removed), the command gets \
            SIGTERM, then SIGKILL after --kill-after, and elect exits 76.")]
    Run(RunArgs),
    /// Hold a ticket for a section of a shell script, until its input ends.
    #[command(
        long_about = "Hold a ticket for a section of a shell script, until its input ends.\n\n\
            Waits for a free ticket of NAME as elect run does (or gives up at once with \
            --no-wait, or after --timeout), prints one line, SLOT TOKEN, on stdout once \
            it holds it, and holds it while its standard input stays open. It releases \
            the ticket at the end of its input (the script closes the pipe, or exits, \
            or is killed, even with SIGKILL), when the process that started it exits, \
            or on a signal. Run it as a bash coprocess, or in POSIX sh with a fifo: see \
            EXAMPLES. A standard input that is /dev/null or closed is refused (2): the \
            ticket would be released at once."
    )]
    Hold(HoldArgs),
    /// Show who holds the tickets of one resource or of every resource.
    #[command(
        long_about = "Show who holds the tickets of one resource or of every resource.\n\n\
            Prints one line per slot for a person, or with --json one JSON document \
            for scripts. Whether a slot is held is the kernel's answer at the time \
            of the call; asking never takes a ticket away from anyone. A NAME never \
            used gives an empty list, not an error."
    )]
    Status(StatusArgs),
    /// Print one line per change of ownership of a resource, until interrupted.
    #[command(
        long_about = "Print one line per change of ownership of a resource, until interrupted.\n\n\
            Each acquisition and each release of a slot of NAME is printed within \
            100 ms of it, also for a resource nobody has used yet. With --json each \
            line is one JSON object. Stops when interrupted (SIGINT, SIGTERM), with \
            the status a shell reports for that signal, or when its output is closed."
    )]
    Watch(WatchArgs),
    /// Print a shell completion script to stdout.
    #[command(long_about = "Print a shell completion script to stdout.\n\n\
            For bash: `elect completions bash > ~/.local/share/bash-completion/completions/elect`; \
            for zsh: `elect completions zsh > ~/.zfunc/_elect` (with ~/.zfunc in $fpath); \
            for fish: `elect completions fish > ~/.config/fish/completions/elect.fish`.")]
    Completions(CompletionsArgs),
    /// Write the man pages into a directory (for the project's maintainers).
    #[command(name = "generate-man", hide = true)]
    GenerateMan(GenerateManArgs),
}

/// Where the resources live, a run directory or an etcd cluster; shared by
/// every subcommand that needs one.
#[derive(Debug, Args)]
pub(crate) struct DirArg {
    /// Run directory [default: $ELECT_DIR, else $XDG_RUNTIME_DIR/elect, else /tmp/elect-<uid>].
    #[arg(short = 'd', long = "dir", value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,

    /// Share the run directory with your group: directories elect makes are
    /// 2770 and files 0660 whatever the umask, and directories and files of
    /// another member of a group of yours are used; without it, elect uses
    /// only what you or root own and nobody else can write.
    #[arg(
        long,
        env = "ELECT_GROUP_SHARED",
        conflicts_with = "etcd",
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub(crate) group_shared: bool,

    /// Hold the election on the etcd cluster at ENDPOINTS (comma-separated
    /// http://host:port) instead of a run directory, for participants on many
    /// hosts [default: $ELECT_ETCD, unless --dir is given]. Needs an elect
    /// built with the `etcd` feature.
    #[arg(long, value_name = "ENDPOINTS", value_parser = Text(any_text), conflicts_with = "dir")]
    pub(crate) etcd: Option<String>,

    /// With --etcd: the prefix of every key elect writes [default:
    /// $ELECT_ETCD_PREFIX, else elect/].
    #[arg(long, value_name = "PREFIX", value_parser = Text(any_text))]
    pub(crate) etcd_prefix: Option<String>,
}

/// What `elect run` and `elect hold` share: which election, and how long
/// to wait for a ticket of it.
#[derive(Debug, Args)]
pub(crate) struct WaitArgs {
    /// How many holders at once, from 1 to 4096. Every live participant of a
    /// resource must ask for the same number.
    #[arg(
        short = 't',
        long,
        value_name = "N",
        default_value_t = 1,
        value_parser = Text(parse_tickets),
        allow_hyphen_values = true
    )]
    pub(crate) tickets: u32,

    #[command(flatten)]
    pub(crate) dir: DirArg,

    /// Give up at once when no ticket is free (exit 75, or the -E status).
    #[arg(short = 'n', long, conflicts_with = "timeout")]
    pub(crate) no_wait: bool,

    /// Give up when no ticket came within DUR: 250ms, 3s, 2m, 1h, 1d; a bare
    /// number is seconds; 0 is the same as --no-wait.
    #[arg(
        short = 'w',
        long,
        value_name = "DUR",
        value_parser = Text(parse_duration),
        allow_hyphen_values = true
    )]
    pub(crate) timeout: Option<Duration>,

    /// Exit status when no ticket was obtained, from 0 to 255.
    #[arg(
        short = 'E',
        long,
        value_name = "CODE",
        default_value_t = super::exit::NO_TICKET,
        value_parser = Text(parse_exit_code),
        allow_hyphen_values = true
    )]
    pub(crate) conflict_exit_code: u8,
}

impl WaitArgs {
    /// How long to wait: `--no-wait` and `--timeout 0` both give up at once.
    pub(crate) fn wait(&self) -> super::run::Wait {
        use super::run::Wait;
        match (self.no_wait, self.timeout) {
            (true, _) => Wait::No,
            (false, Some(t)) if t.is_zero() => Wait::No,
            (false, Some(t)) => Wait::For(t),
            (false, None) => Wait::Forever,
        }
    }
}

/// `elect run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) wait: WaitArgs,

    /// How `elect status` describes this holder [default: the command line].
    // Display-only, like the default taken from the command line: bytes that
    // are not UTF-8 become U+FFFD rather than a refusal; the library turns
    // control characters into spaces and cuts it to 1024 bytes.
    #[arg(long, value_name = "TEXT", value_parser = OsStringValueParser::new().map(|l| l.to_string_lossy().into_owned()))]
    pub(crate) label: Option<String>,

    /// Nothing on stderr but errors: no progress display while waiting (nor,
    /// off a terminal, the lines when a wait starts and ends), no message
    /// when no ticket was obtained.
    #[arg(short = 'q', long)]
    pub(crate) quiet: bool,

    /// Do not let the command inherit the ticket (like flock's -o): elect
    /// alone holds it, and the command is killed with SIGKILL if elect dies.
    /// For commands that start daemons which must not keep the ticket.
    #[arg(short = 'o', long = "no-inherit", visible_alias = "close")]
    pub(crate) no_inherit: bool,

    /// When the ticket is lost, how long the command has between SIGTERM and
    /// SIGKILL.
    #[arg(
        short = 'k',
        long,
        value_name = "DUR",
        default_value = "5s",
        value_parser = Text(parse_duration),
        allow_hyphen_values = true
    )]
    pub(crate) kill_after: Duration,

    /// With --etcd: the TTL of the lease that keeps the ticket alive
    /// [default: 5s]. After a crash or a network partition of a holder, the
    /// ticket passes on within this long; a holder that cannot renew its
    /// lease stops its command (SIGTERM) after 3/5 of it and kills it
    /// (SIGKILL) by 4/5 of it, before anyone else can take over.
    #[arg(
        long,
        value_name = "DUR",
        value_parser = Text(parse_duration),
        allow_hyphen_values = true
    )]
    pub(crate) ttl: Option<Duration>,

    /// The resource: 1 to 128 of A-Z a-z 0-9 . _ -, starting with a letter
    /// or digit; a scope is written with dots (team.job).
    #[arg(value_name = "NAME", value_parser = Text(any_text))]
    pub(crate) name: String,

    /// The command to run and its arguments.
    #[arg(
        value_name = "COMMAND",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub(crate) command: Vec<OsString>,
}

/// `elect hold`.
#[derive(Debug, Args)]
pub(crate) struct HoldArgs {
    #[command(flatten)]
    pub(crate) wait: WaitArgs,

    /// How `elect status` describes this holder [default: the command line
    /// of the process that started elect hold, such as the script].
    #[arg(long, value_name = "TEXT", value_parser = OsStringValueParser::new().map(|l| l.to_string_lossy().into_owned()))]
    pub(crate) label: Option<String>,

    /// Nothing on stderr but errors: no progress while waiting, no message
    /// when no ticket was obtained.
    #[arg(short = 'q', long)]
    pub(crate) quiet: bool,

    /// With --etcd: the TTL of the lease that keeps the ticket alive
    /// [default: 5s]; elect hold renews it while it holds the ticket.
    #[arg(
        long,
        value_name = "DUR",
        value_parser = Text(parse_duration),
        allow_hyphen_values = true
    )]
    pub(crate) ttl: Option<Duration>,

    /// The resource: 1 to 128 of A-Z a-z 0-9 . _ -, starting with a letter
    /// or digit; a scope is written with dots (team.job).
    #[arg(value_name = "NAME", value_parser = Text(any_text))]
    pub(crate) name: String,
}

/// `elect status`.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    pub(crate) dir: DirArg,

    /// Print the contract's JSON document instead of a table.
    #[arg(long)]
    pub(crate) json: bool,

    /// Only this resource [default: every resource in the run directory].
    #[arg(value_name = "NAME", value_parser = Text(any_text))]
    pub(crate) name: Option<String>,
}

/// `elect watch`.
#[derive(Debug, Args)]
pub(crate) struct WatchArgs {
    #[command(flatten)]
    pub(crate) dir: DirArg,

    /// Print each change as one JSON object per line.
    #[arg(long)]
    pub(crate) json: bool,

    /// Do not say on stderr what is being watched.
    #[arg(short = 'q', long)]
    pub(crate) quiet: bool,

    /// The resource to watch.
    #[arg(value_name = "NAME", value_parser = Text(any_text))]
    pub(crate) name: String,
}

/// `elect completions`.
#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_name = "SHELL")]
    pub(crate) shell: clap_complete::Shell,
}

/// `elect generate-man`.
#[derive(Debug, Args)]
pub(crate) struct GenerateManArgs {
    /// The directory to write elect.1 and elect-*.1 into.
    #[arg(value_name = "DIR")]
    pub(crate) dir: PathBuf,
}

/// A value parser for text: refuses a value that is not UTF-8 naming the
/// option and showing the bytes (clap's own says only "invalid UTF-8 was
/// detected in one or more arguments"), then parses it with the function.
#[derive(Clone)]
struct Text<T>(fn(&str) -> Result<T, String>);

impl<T: Clone + Send + Sync + 'static> TypedValueParser for Text<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        let arg = arg.map_or_else(|| "...".to_string(), ToString::to_string);
        let (kind, shown, why) = match value.to_str() {
            Some(text) => match (self.0)(text) {
                Ok(v) => return Ok(v),
                Err(why) => (ErrorKind::ValueValidation, text.to_string(), why),
            },
            None => (
                ErrorKind::InvalidUtf8,
                value.as_bytes().escape_ascii().to_string(),
                "it is not valid UTF-8".to_string(),
            ),
        };
        Err(cmd
            .clone()
            .error(kind, format!("invalid value '{shown}' for '{arg}': {why}")))
    }
}

/// Any UTF-8 text, checked later (resource names, by the library).
fn any_text(text: &str) -> Result<String, String> {
    Ok(text.to_string())
}

/// Parses `--tickets`: a whole number from 1 to 4096.
fn parse_tickets(text: &str) -> Result<u32, String> {
    let max = elect::MAX_TICKETS;
    let wanted = format!("give a whole number of tickets from 1 to {max}");
    match text.trim().parse::<u64>() {
        Ok(n) if (1..=u64::from(max)).contains(&n) => Ok(n as u32),
        Ok(_) => Err(format!("it is out of range; {wanted}")),
        Err(e) if *e.kind() == IntErrorKind::PosOverflow => {
            Err(format!("it is out of range; {wanted}"))
        }
        Err(_) => Err(format!("it is not a whole number; {wanted}")),
    }
}

/// Parses `-E`: an exit status from 0 to 255.
fn parse_exit_code(text: &str) -> Result<u8, String> {
    text.trim()
        .parse::<u8>()
        .map_err(|_| "give an exit status from 0 to 255".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn value_parsers() {
        assert_eq!(parse_tickets("4096"), Ok(4096));
        assert!(parse_tickets("0").is_err());
        assert!(parse_tickets("4097").is_err());
        assert!(
            parse_tickets("x")
                .unwrap_err()
                .contains("not a whole number")
        );
        let huge = parse_tickets("99999999999999999999999").unwrap_err();
        assert!(huge.contains("out of range"), "{huge}");
        assert_eq!(parse_exit_code("255"), Ok(255));
        assert!(parse_exit_code("256").is_err());
        assert!(parse_exit_code("-1").is_err());
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("soon").is_err());
    }
}
