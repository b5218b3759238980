//! Messages that name the right cause, with the contract's exit status:
//!
//! - Too low a limit on open files (`ulimit -n`) is elect's own failure
//!   (125) wherever elect runs out, the start of the command included (not
//!   126 "cannot run"), and the message names the limit and says to raise
//!   it; never "Invalid argument" (which `fcntl(F_DUPFD)` gives for a
//!   descriptor number at the limit).
//! - A name with an emoji or any other character outside the alphabet is
//!   refused (2) with the character named and the alphabet spelt out, not
//!   with "must start with a letter", and nothing is created.
//! - A run directory under a file names the component that is a file; one
//!   where nothing can be made (/proc) says so, without a raw os error.

mod cli_support;

use std::path::Path;
use std::process::Command;

use cli_support::*;

/// The lowest limit tried: below it the dynamic loader itself cannot open
/// the C library, and elect never runs.
const LOWEST: u32 = 4;

/// The highest limit tried; elect must run well below it.
const HIGHEST: u32 = 64;

/// `elect ARGS` under `ulimit -n limit` (set by a shell that then becomes
/// elect): its exit code and stderr.
fn under_limit(limit: u32, args: &[&str], dir: &Path) -> (i32, String) {
    let script = format!(r#"ulimit -n {limit} && exec "$0" "$@""#);
    let out = output(
        Command::new("sh")
            .args(["-c", &script, ELECT])
            .args(&args[..1])
            .arg("-d")
            .arg(dir)
            .args(&args[1..])
            .env_remove("ELECT_DIR")
            .env_remove("XDG_RUNTIME_DIR"),
    );
    (
        code(out.status),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Checks the message of a run that failed for want of descriptors.
fn assert_names_the_limit(limit: u32, status: i32, err: &str) {
    assert_eq!(status, 125, "ulimit -n {limit}: {err}");
    assert!(err.starts_with("elect: "), "ulimit -n {limit}: {err}");
    assert_eq!(err.lines().count(), 1, "ulimit -n {limit}: {err}");
    for wanted in [
        format!("only {limit} file descriptors are allowed (ulimit -n {limit})"),
        "raise the limit".to_string(),
    ] {
        assert!(
            err.contains(&wanted),
            "ulimit -n {limit}: {wanted:?} in {err}"
        );
    }
    for wrong in ["Invalid argument", "os error", "cannot run"] {
        assert!(
            !err.contains(wrong),
            "ulimit -n {limit}: {wrong:?} in {err}"
        );
    }
}

#[test]
fn too_low_a_limit_on_open_files_is_elects_failure_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let mut first_ok = None;
    let mut at_start = None;
    for limit in LOWEST..=HIGHEST {
        // A fresh run directory each time, so that every step of a first
        // use (directories, token, tickets, slot) is tried at every limit.
        let dir = tmp.path().join(format!("run{limit}"));
        let (status, err) = under_limit(limit, &["run", "job", "true"], &dir);
        if status == 0 {
            assert_eq!(err, "", "ulimit -n {limit}");
            first_ok = Some(limit);
            break;
        }
        assert_names_the_limit(limit, status, &err);
        if err.starts_with("elect: cannot start \"true\": ") {
            at_start = Some(limit);
        }
    }
    let first_ok = first_ok.unwrap_or_else(|| panic!("elect never ran with up to {HIGHEST}"));
    // The command's start is the last step that needs descriptors of their
    // own (a pipe that reports a failed exec): just below the limit that
    // works, it is what failed.
    let at_start = at_start.expect("a limit at which the command's start failed");
    assert_eq!(at_start, first_ok - 1);
    // And a second use of the directory, with everything already there,
    // also runs at the limit that first worked.
    let dir = tmp.path().join(format!("run{first_ok}"));
    assert_eq!(
        under_limit(first_ok, &["run", "job", "true"], &dir),
        (0, String::new())
    );
}

#[test]
fn too_low_a_limit_while_waiting_is_elects_failure_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let _holder = holder(&dir, "job", &[]);
    let mut waited = false;
    for limit in LOWEST..=HIGHEST {
        let (status, err) = under_limit(limit, &["run", "-w", "100ms", "job", "true"], &dir);
        // Off a terminal, a wait begins with a line that says so.
        let err = match err.split_once('\n') {
            Some((first, rest)) if first.starts_with("elect: waiting up to 100ms for") => {
                rest.to_string()
            }
            _ => err,
        };
        if status == 75 {
            assert!(err.starts_with("elect: no ticket of \"job\""), "{err}");
            waited = true;
            break;
        }
        assert_names_the_limit(limit, status, &err);
    }
    assert!(waited, "elect never waited with up to {HIGHEST}");
    // status and watch too: each runs, or says what the limit is.
    for args in [&["status", "job"][..], &["status", "--json"][..]] {
        for limit in LOWEST..=HIGHEST {
            let (status, err) = under_limit(limit, args, &dir);
            if status == 0 {
                break;
            }
            assert_names_the_limit(limit, status, &err);
        }
    }
}

/// Runs `elect ARGS` with `-d DIR` after the subcommand.
fn refused(args: &[&str], dir: &Path) -> String {
    let out = output(elect(&args[..1]).arg("-d").arg(dir).args(&args[1..]));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(code(out.status), 2, "{args:?}: {err}");
    assert!(out.stdout.is_empty(), "{args:?}");
    assert!(
        err.starts_with("elect: invalid resource name "),
        "{args:?}: {err}"
    );
    err
}

#[test]
fn a_name_with_a_character_outside_the_alphabet_names_that_character() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let alphabet = "a name may only contain ASCII letters, digits, '.', '_' and '-'";
    for (name, shown) in [
        ("\u{1F600}", "'\u{1F600}' (U+1F600) as its first character"),
        (
            "\u{1F600}job",
            "'\u{1F600}' (U+1F600) as its first character",
        ),
        ("job\u{1F600}", "'\u{1F600}' (U+1F600) at character 4"),
        ("\u{e9}t\u{e9}", "'\u{e9}' (U+00E9) as its first character"),
        ("\u{430}bc", "'\u{430}' (U+0430) as its first character"), // Cyrillic a
        ("a+b", "'+' (U+002B) at character 2"),
    ] {
        for sub in [
            &["run", name, "true"][..],
            &["status", name],
            &["watch", name],
        ] {
            let err = refused(sub, &dir);
            assert!(!err.contains("must start with"), "{sub:?}: {err}");
            assert!(err.contains(&format!("{name:?}")), "{sub:?}: {err}");
            assert!(
                err.contains(&format!("it contains {shown}")),
                "{sub:?}: {err}"
            );
            assert!(err.contains(alphabet), "{sub:?}: {err}");
        }
    }
    // A character that would reorder the text on the terminal is named
    // escaped, never printed as it is.
    let err = refused(&["run", "\u{202e}job", "true"], &dir);
    assert!(!err.contains('\u{202e}'), "{err:?}");
    assert!(err.contains("'\\u{202e}' (U+202E)"), "{err:?}");
    // A first character from the alphabet that cannot start a name.
    let err = refused(&["run", "--", "-job", "true"], &dir);
    assert!(
        err.contains("it starts with '-', but a name must start with an ASCII letter or digit"),
        "{err}"
    );
    assert!(!dir.exists(), "a refused name creates nothing");
}

#[test]
fn a_run_directory_that_cannot_be_made_names_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("file");
    std::fs::write(&file, "").unwrap();
    for args in [
        vec!["run", "-d", &format!("{}/sub", file.display()), "x", "true"],
        vec![
            "status",
            "-d",
            &format!("{}/sub/deeper", file.display()),
            "x",
        ],
    ] {
        let out = output(&mut elect(&args));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{args:?}: {err}");
        assert!(
            err.contains(&format!(
                "{} is a regular file, not a directory",
                file.display()
            )),
            "{args:?}: {err}"
        );
    }
    if Path::new("/proc/self").exists() {
        let out = output(&mut elect(["run", "-d", "/proc", "x", "true"]));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{err}");
        assert!(!err.contains("os error"), "{err}");
        assert!(
            err.contains("/proc/x") && err.contains("choose another run directory"),
            "{err}"
        );
    }
}
