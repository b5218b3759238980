//! The `elect` command line: parses the arguments, dispatches to the
//! subcommand, and turns every failure into an `elect:` message and the
//! contract's exit status.

mod args;
mod command;
mod duration;
mod exit;
mod hold;
mod location;
mod man;
mod output;
mod progress;
mod run;
mod signals;
mod status;
mod watch;

use clap::{CommandFactory, Parser};

use args::{Cli, Command};
use exit::Failure;
/// For the binary's start-up, which runs before the command line is read.
pub(crate) use exit::say;

/// Runs `elect` with this process's arguments and returns its exit status.
pub(crate) fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_failure(&e),
    };
    let result = match cli.command {
        Command::Run(a) => run::run(a),
        Command::Hold(a) => hold::hold(a),
        Command::Status(a) => status::status(a),
        Command::Watch(a) => watch::watch(a),
        Command::Completions(a) => completions(a.shell),
        Command::GenerateMan(a) => man::generate(&a.dir).map(|()| 0).map_err(Failure::from),
    };
    match result {
        Ok(code) => code,
        Err(f) => {
            if !f.message.is_empty() {
                say(&f.message);
            }
            f.code
        }
    }
}

/// Prints a clap error the contract's way: help and version on stdout with
/// status 0; usage errors on stderr, starting `elect:`, with status 2.
fn clap_failure(e: &clap::Error) -> i32 {
    if !e.use_stderr() {
        let _ = output::print(&e.render().to_string());
        return 0;
    }
    let text = e.render().to_string();
    if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        say(format!("a subcommand is needed\n\n{}", text.trim_end()));
        return exit::USAGE;
    }
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    say(text.trim_end());
    exit::USAGE
}

/// Prints the completion script for `shell`.
fn completions(shell: clap_complete::Shell) -> Result<i32, Failure> {
    // The same command line without the hidden maintainer's subcommand,
    // which clap_complete would otherwise offer.
    let full = Cli::command();
    let mut public = clap::Command::new("elect")
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand_required(true)
        .disable_help_subcommand(true)
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut public, "elect", &mut script);
    output::print(&String::from_utf8_lossy(&script))?;
    Ok(0)
}
