//! The `elect` binary; everything lives in the `cli` module.
//!
//! A call of `elect run NAME -- CMD` is mostly process start-up, and it
//! should cost about what `flock FILE CMD` costs. std's runtime start-up
//! (the wrapper around a Rust `fn main`) took about 150 us of it: a poll
//! of fds 0-2, SIGPIPE set to SIG_IGN, three reads of /proc/self/maps to
//! find the main thread's stack guard, and an alternate signal stack with
//! SIGSEGV and SIGBUS handlers to report a stack overflow. So the binary
//! has no Rust `main`: the C `main` below does only the parts elect needs.
//!
//! What is lost: a stack overflow is a plain SIGSEGV, without std's
//! "thread 'main' has overflowed its stack" message, and a panic message
//! calls the main thread `<unnamed>` instead of `main`. A panic still
//! prints its message and ends elect with status 101. Arguments and the
//! environment still work: on Linux with glibc, std takes them from its
//! own `.init_array` entry, not from the `main` wrapper.

// The unit tests of `cli` are built with the test harness's own `main`.
#![cfg_attr(not(test), no_main)]

mod cli;

use std::ffi::{c_char, c_int};
use std::io::Write;

/// The entry point the C runtime calls (instead of std's, which would call
/// a Rust `fn main`).
#[cfg_attr(not(test), unsafe(no_mangle))]
#[cfg_attr(test, allow(dead_code))]
extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    if let Err(e) = open_standard_fds() {
        cli::say(format!(
            "cannot open /dev/null in place of a closed standard descriptor: {e}"
        ));
        return cli::FAILURE;
    }
    ignore_sigpipe();
    // A panic must not unwind out of an `extern "C"` function (that aborts
    // the process): it ends elect with status 101, as under std's `main`.
    // The panic hook has already printed the message by then.
    let code = std::panic::catch_unwind(cli::main).unwrap_or(101);
    // std's `main` flushed stdout on the way out; returning from this one
    // goes straight to the C library's exit, which does not know about
    // Rust's buffer. Every write elect makes is flushed already, so this is
    // a guard for the next one; a reader that went away is no failure.
    let _ = std::io::stdout().flush();
    code
}

/// Makes sure fds 0, 1 and 2 are open, opening /dev/null on a closed one,
/// as std's start-up did. Otherwise the first descriptors elect opens (the
/// signalfd, the run directory, the resource directory, lock and slot
/// files) would take those numbers: a message for stderr would go into
/// whatever holds fd 2, and the command would inherit as its stdin, stdout
/// or stderr either nothing or one of elect's own descriptors (the
/// resource directory, which it shares for the lock).
///
/// One fcntl per descriptor: an open one answers at once. The descriptors
/// are looked at in order and open(2) returns the lowest free one, so the
/// /dev/null opened for a closed descriptor takes exactly its number.
fn open_standard_fds() -> std::io::Result<()> {
    for fd in 0..3 {
        // SAFETY: F_GETFD only reads the descriptor's flags.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1
            || std::io::Error::last_os_error().raw_os_error() != Some(libc::EBADF)
        {
            continue;
        }
        // Not close-on-exec: the command inherits it in place of the
        // closed descriptor, as it did under std.
        // SAFETY: a valid NUL-terminated path.
        let opened = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        if opened == -1 {
            return Err(std::io::Error::last_os_error());
        }
        debug_assert_eq!(opened, fd, "open(2) returns the lowest free descriptor");
    }
    Ok(())
}

/// Ignores SIGPIPE, as std's start-up did: writing to a closed pipe
/// (`elect status --json | head -c1`, `elect watch | head -1`) is then an
/// EPIPE error, which `cli::output` handles, instead of a signal that kills
/// elect. The command does not inherit this: std's `Command` sets SIGPIPE
/// back to its default in the child before exec.
fn ignore_sigpipe() {
    // SAFETY: installs SIG_IGN, no handler code; nothing else in elect
    // sets a SIGPIPE disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

// The unwinder (`_Unwind_*`, which std's panics and backtraces use) linked
// into the binary from libgcc_eh.a instead of loaded from libgcc_s.so.1.
// Loading libgcc_s cost every call about 180 us here (1.99 -> 1.81 ms per
// `elect run -- true`, interleaved runs), for a library used
// only by a panic: one more object to open, map and relocate, and its
// constructor (`__cpu_indicator_init`) executes cpuid several times, which
// traps to the hypervisor on a virtual machine. The binary's own code
// (with fat LTO, the whole program) already needs the unwinder when the
// linker reaches this archive, so the linker takes all of it from here,
// and `--as-needed` (which rustc passes) then drops libgcc_s, in release
// and debug builds alike (tests/cli_startup.rs checks). libgcc_eh.a comes
// with gcc, the linker rustc uses on this target; a static (crt-static)
// build links it anyway.
#[cfg(all(
    target_os = "linux",
    target_env = "gnu",
    not(target_feature = "crt-static")
))]
#[link(name = "gcc_eh", kind = "static")]
unsafe extern "C" {}
