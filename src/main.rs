//! The `elect` binary; everything lives in the `cli` module.

mod cli;

fn main() {
    let code = cli::main();
    // Every write elect makes is flushed already; a reader that went away
    // is no failure.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    std::process::exit(code);
}
