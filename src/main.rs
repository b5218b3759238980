//! The `elect` binary; everything lives in the `cli` module.

mod cli;

fn main() {
    let code = cli::main();
    std::process::exit(code);
}
