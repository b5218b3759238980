//! Bad input to `elect run`, `elect status` and `elect watch`: every option
//! and the NAME argument, given empty, negative, huge, non-numeric and
//! non-UTF-8 values, names with `..`, `/`, newlines, 129 characters and
//! Unicode look-alikes, `--tickets 0` and `4097`, durations like `-1s`,
//! `1e9h`, `abc` and `1.5.5s`.
//!
//! Each refusal is proved to exit 2 with a message on stderr that starts
//! with `elect:` and names the bad value (for a value that is not UTF-8,
//! the option, and the bytes escaped), to print nothing on stdout, not to
//! panic, and to create nothing on disk: neither in the `--dir` given (an
//! existing empty directory, which must stay empty, and a missing one,
//! which must not appear) nor in the working directory.
//!
//! A NUL byte cannot be passed in an argument vector (execve(2) takes
//! NUL-terminated strings), so names with NUL are proved refused at the
//! library level, by `Election::build`.
//!
//! What is accepted on purpose is proved too: `--label` is display-only, so
//! a label that is not UTF-8, has control characters or is huge is accepted
//! and cleaned (U+FFFD, spaces, cut to 1024 bytes); `--dir` is a path, and a
//! Unix path may be any bytes; the command's own arguments are passed on
//! byte for byte.

mod cli_support;

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use cli_support::*;

/// Bytes that are not UTF-8, as an argument.
fn bytes(b: &[u8]) -> OsString {
    OsString::from_vec(b.to_vec())
}

/// One invocation that must be refused with status 2.
struct Case {
    /// The subcommand and its arguments; `-d DIR` is put after the
    /// subcommand unless `own_dir`.
    args: Vec<OsString>,
    /// The message must contain one of these (the value as typed, or as
    /// elect escapes it).
    names: Vec<String>,
    /// The case gives its own `--dir`.
    own_dir: bool,
}

impl Case {
    fn describe(&self) -> String {
        format!("{:?}", self.args)
    }
}

/// A case of `sub` with `args`, whose message must name `named`.
fn case<S: AsRef<OsStr>>(sub: &str, args: &[S], named: &str) -> Case {
    let mut all = vec![OsString::from(sub)];
    all.extend(args.iter().map(|a| a.as_ref().to_os_string()));
    Case {
        args: all,
        names: vec![named.to_string()],
        own_dir: false,
    }
}

/// A `run` case for a bad NAME: the message names it as typed or escaped.
fn name_case(sub: &str, name: &str) -> Case {
    let mut args: Vec<&str> = vec![name];
    if sub == "run" {
        args.push("true");
    }
    let mut c = case(sub, &args, name);
    c.names.push(format!("{name:?}"));
    c.names.push(name.escape_default().to_string());
    c
}

/// The entries of `dir`, or a note that it is not readable.
fn entries(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) => vec![format!("<cannot read {}: {e}>", dir.display())],
    }
}

/// Runs every case twice (with `--dir` an existing empty directory, then a
/// missing one) in a working directory of its own; returns one line per
/// broken promise, each naming its case.
fn check(cases: &[Case]) -> Vec<String> {
    let mut failures = Vec::new();
    for c in cases {
        for existing in [true, false] {
            let tmp = tempfile::tempdir().unwrap();
            let cwd = tmp.path().join("cwd");
            let parent = tmp.path().join("parent");
            std::fs::create_dir(&cwd).unwrap();
            std::fs::create_dir(&parent).unwrap();
            let dir = if existing {
                parent.clone()
            } else {
                parent.join("run")
            };
            let mut cmd = elect(&c.args[..1]);
            if !c.own_dir {
                cmd.arg("-d").arg(&dir);
            }
            cmd.args(&c.args[1..]).current_dir(&cwd);
            let out = output(&mut cmd);
            let err = String::from_utf8_lossy(&out.stderr);
            let what = format!(
                "{} with {} --dir",
                c.describe(),
                if existing { "an existing" } else { "a missing" }
            );
            let mut fail = |why: String| failures.push(format!("{what}: {why}\n  stderr: {err}"));
            if out.status.code() != Some(2) {
                fail(format!("status {:?}, not 2", out.status));
            }
            if !err.starts_with("elect:") {
                fail("stderr does not start with \"elect:\"".into());
            }
            if !c.names.iter().any(|n| err.contains(n.as_str())) {
                fail(format!("the message names none of {:?}", c.names));
            }
            if err.contains("panicked") || err.contains("RUST_BACKTRACE") {
                fail("it panicked".into());
            }
            if !out.stdout.is_empty() {
                fail(format!(
                    "stdout is not empty: {}",
                    String::from_utf8_lossy(&out.stdout)
                ));
            }
            for (place, path) in [("--dir", &parent), ("the working directory", &cwd)] {
                let left = entries(path);
                if !left.is_empty() {
                    fail(format!("created {left:?} in {place} {}", path.display()));
                }
            }
        }
    }
    failures
}

/// Panics listing every failure, if any.
fn assert_all_refused(cases: &[Case]) {
    let failures = check(cases);
    assert!(
        failures.is_empty(),
        "{} of {} cases broke a promise:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

const HUGE: &str = "99999999999999999999999";

#[test]
fn bad_numbers_and_durations_exit_2_naming_the_value() {
    let mut cases = Vec::new();
    // --tickets: empty, negative, zero, over the limit, huge, not numbers.
    for v in [
        "", "-1", "0", "4097", "65536", HUGE, "-0", "1.5", "1e3", "0x10", "abc", "4 2", "+",
    ] {
        for form in [vec!["-t", v], vec!["--tickets", v]] {
            let mut args = form;
            args.extend(["job", "true"]);
            cases.push(case("run", &args, &format!("'{v}'")));
        }
    }
    // Attached forms.
    cases.push(case("run", &["--tickets=0", "job", "true"], "'0'"));
    cases.push(case("run", &["-t4097", "job", "true"], "'4097'"));
    // --conflict-exit-code: empty, negative, 256, huge, not numbers.
    for v in ["", "-1", "256", HUGE, "abc", "1.0", "0x4b"] {
        for opt in ["-E", "--conflict-exit-code"] {
            cases.push(case("run", &[opt, v, "job", "true"], &format!("'{v}'")));
        }
    }
    // --timeout and --kill-after: empty, negative, huge, exponents, no unit
    // we know, two decimal points, no number at all.
    for v in [
        "",
        " ",
        "-1s",
        "-0",
        "-1",
        HUGE,
        "99999999999999999999999h",
        "1000000001",
        "1e9h",
        "1e3",
        "abc",
        "1.5.5s",
        "1..5s",
        ".",
        "s",
        "1 s",
        "1ss",
        "1S",
        "1w",
        "1y",
        "1µs",
        "1ns",
        "inf",
        "NaN",
        "0x10s",
        "１s",
    ] {
        for opt in ["-w", "--timeout", "-k", "--kill-after"] {
            cases.push(case("run", &[opt, v, "job", "true"], &format!("'{v}'")));
        }
    }
    assert_all_refused(&cases);
}

#[test]
fn bad_names_exit_2_naming_the_name_in_every_subcommand() {
    let long = "a".repeat(129);
    let scoped_long = format!("team.{}", "b".repeat(124));
    let names: Vec<&str> = vec![
        "..",
        ".",
        "../x",
        "a/..",
        "a/../b",
        "/",
        "/etc",
        "a/b",
        "a/",
        "a\nb",
        "job\n",
        "a\rb",
        "a\tb",
        "a\u{1b}[31mb",
        "a\u{7f}",
        " job",
        "job ",
        &long,
        &scoped_long,
        "-",
        "_x",
        "~",
        "a*",
        "a?b",
        "$HOME",
        "a:b",
        "a\\b",
        // Unicode look-alikes: Cyrillic а (U+0430) and о, fullwidth
        // letters, a zero-width space, a Greek omicron, a non-breaking
        // space, a combining accent, a fraction slash, a one-dot leader.
        "\u{430}",
        "j\u{43e}b",
        "\u{ff4a}\u{ff4f}\u{ff42}",
        "job\u{200b}",
        "j\u{3bf}b",
        "a\u{a0}b",
        "jo\u{301}b",
        "a\u{2044}b",
        "a\u{2024}b",
        "é",
    ];
    let mut cases = Vec::new();
    for name in &names {
        for sub in ["run", "status", "watch"] {
            cases.push(name_case(sub, name));
        }
    }
    // An empty name: run and watch need one; status takes "" as given.
    for sub in ["run", "status", "watch"] {
        cases.push(name_case(sub, ""));
    }
    // The 129 characters are what is wrong, and the message says so.
    let mut c = name_case("run", &long);
    c.names = vec!["longer than 128".into()];
    cases.push(c);
    assert_all_refused(&cases);
}

#[test]
fn values_that_are_not_utf8_exit_2_naming_the_option() {
    let mut cases = Vec::new();
    let bad = [
        &b"\xff"[..],
        b"a\xffb",
        b"\xc3\x28",
        b"1\xe2\x82s",
        b"\xed\xa0\x80",
    ];
    for b in bad {
        let escaped = b.escape_ascii().to_string();
        for (opt, shown) in [
            ("-t", "--tickets"),
            ("--tickets", "--tickets"),
            ("-w", "--timeout"),
            ("--timeout", "--timeout"),
            ("-E", "--conflict-exit-code"),
            ("--conflict-exit-code", "--conflict-exit-code"),
            ("-k", "--kill-after"),
            ("--kill-after", "--kill-after"),
        ] {
            let mut c = case(
                "run",
                &[OsString::from(opt), bytes(b), "job".into(), "true".into()],
                shown,
            );
            c.names = vec![format!("'{escaped}' for '{shown}")];
            cases.push(c);
        }
        // The NAME argument, in each subcommand.
        for (sub, shown) in [("run", "<NAME>"), ("status", "[NAME]"), ("watch", "<NAME>")] {
            let mut args = vec![bytes(b)];
            if sub == "run" {
                args.push("true".into());
            }
            let mut c = case(sub, &args, shown);
            c.names = vec![format!("'{escaped}' for '{shown}'")];
            cases.push(c);
        }
    }
    assert_all_refused(&cases);
}

#[test]
fn empty_huge_and_unknown_options_of_every_subcommand() {
    let mut cases = vec![
        // An empty --dir is no directory; clap says the value is missing.
        case("run", &["-d", "", "job", "true"], "--dir"),
        case("run", &["--dir=", "job", "true"], "--dir"),
        case("status", &["-d", "", "job"], "--dir"),
        case("watch", &["--dir", "", "job"], "--dir"),
        // --dir without a value at all.
        case("status", &["job", "--dir"], "--dir"),
        // Options of one subcommand given to another.
        case("status", &["-t", "2", "job"], "'-t'"),
        case("watch", &["-w", "1s", "job"], "'-w'"),
        case("status", &["--label", "x"], "--label"),
        case("watch", &["-k", "1s", "job"], "'-k'"),
        // Unknown options, before and after NAME.
        case("status", &["--bogus"], "--bogus"),
        case("watch", &["job", "--bogus"], "--bogus"),
        case("run", &["--tickets"], "--tickets"),
        // A huge option name.
        case(
            "run",
            &[&format!("--{}", "x".repeat(10_000)), "job", "true"],
            "--xxxx",
        ),
        // watch needs a NAME.
        case("watch", &[] as &[&str], "<NAME>"),
        // Two NAMEs for status and watch.
        case("status", &["a", "b"], "'b'"),
        case("watch", &["a", "b"], "'b'"),
    ];
    for c in &mut cases {
        // These give their own -d (or must not get one: status and watch
        // refuse a second --dir, which would hide the case).
        c.own_dir = c
            .args
            .iter()
            .any(|a| a == "-d" || a == "--dir" || a == "--dir=");
    }
    assert_all_refused(&cases);
}

/// The cases that were first written in cli_run.rs, moved here unchanged
/// so that they get this file's stronger checks too.
#[test]
fn bad_usage_exits_2_names_the_value_and_creates_nothing() {
    let long = "a".repeat(129);
    let table: Vec<(Vec<&str>, &str)> = vec![
        (vec!["bad name", "true"], "bad name"),
        (vec!["..", "true"], ".."),
        (vec!["a/b", "true"], "a/b"),
        (vec!["", "true"], "\"\""),
        (vec![".hidden", "true"], ".hidden"),
        (vec![&long, "true"], &long),
        (vec!["-t", "0", "job", "true"], "'0'"),
        (vec!["-t", "4097", "job", "true"], "4097"),
        (vec!["-t", "many", "job", "true"], "many"),
        (vec!["-t", "-1", "job", "true"], "-1"),
        (vec!["-w", "soon", "job", "true"], "soon"),
        (vec!["-w", "-1s", "job", "true"], "-1s"),
        (vec!["-k", "1x", "job", "true"], "1x"),
        (vec!["-E", "256", "job", "true"], "256"),
        (vec!["--bogus", "job", "true"], "--bogus"),
        (vec!["job"], "COMMAND"),
        (vec!["-n", "-w", "1s", "job", "true"], "--no-wait"),
    ];
    let cases: Vec<Case> = table
        .iter()
        .map(|(args, named)| case("run", args, named))
        .collect();
    assert_all_refused(&cases);

    // Also with the run directory from the environment.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let out = output(elect(["run", "no way", "true"]).env("ELECT_DIR", &dir));
    assert_eq!(out.status.code(), Some(2));
    assert!(!dir.exists());
    let out = output(elect(["status", "-d"]).arg(&dir).arg("a/b"));
    assert_eq!(out.status.code(), Some(2));
    let out = output(elect(["watch", "-d"]).arg(&dir).arg("a b"));
    assert_eq!(out.status.code(), Some(2));
    assert!(!dir.exists());
    assert!(entries(tmp.path()).is_empty(), "{:?}", entries(tmp.path()));
}

#[test]
fn the_checker_notices_a_broken_promise() {
    // A valid invocation breaks every promise of a refusal: status 0, no
    // message, the resource created. If check() let it pass, the tests
    // above would prove nothing.
    let failures = check(&[case("run", &["job", "true"], "job")]);
    let all = failures.join("\n");
    for broken in ["not 2", "does not start", "names none", "created [\"job\"]"] {
        assert!(all.contains(broken), "missed {broken:?} in:\n{all}");
    }
    assert_eq!(failures.len(), 2 * 4, "{all}");
}

#[test]
fn a_nul_in_a_name_is_refused_by_the_library() {
    // execve(2) cannot pass a NUL inside an argument, so `elect run` never
    // sees one; a program using the library can, and is refused before
    // any file is touched.
    let tmp = tempfile::tempdir().unwrap();
    for name in ["\0", "a\0b", "job\0", "\0job", "a\0/../b"] {
        let built = elect::Election::builder(name).dir(tmp.path()).build();
        let err = built.expect_err(&format!("{name:?} is refused by build"));
        assert!(err.is_usage(), "{name:?}: {err}");
        assert!(err.to_string().contains(&format!("{name:?}")), "{err}");
    }
    assert!(entries(tmp.path()).is_empty(), "{:?}", entries(tmp.path()));
    // The control: the same directory takes a good name.
    let _ticket = elect::Election::builder("job")
        .dir(tmp.path())
        .build()
        .unwrap()
        .try_obtain()
        .unwrap()
        .expect("a free ticket");
    assert_eq!(entries(tmp.path()), ["job"]);
}

/// The label `status --json` shows for slot 0 of `name` in `dir`.
fn label_of(dir: &Path, name: &str) -> String {
    let st = status_json(dir, name);
    st["resources"][0]["slots"][0]["label"]
        .as_str()
        .unwrap_or_else(|| panic!("a label: {st}"))
        .to_string()
}

#[test]
fn labels_are_display_only_so_any_bytes_are_accepted_and_cleaned() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let huge = "é".repeat(50_000); // 100,000 bytes, under one argument's limit
    let cases: Vec<(OsString, String)> = vec![
        (
            bytes(b"db \xff\xfe backup"),
            "db \u{fffd}\u{fffd} backup".into(),
        ),
        (
            "line1\nline2\ttab\u{1b}[31m".into(),
            "line1 line2 tab [31m".into(),
        ),
        ("".into(), "".into()),
        (huge.clone().into(), "é".repeat(512)),
    ];
    for (i, (label, shown)) in cases.into_iter().enumerate() {
        let ready = tmp.path().join(format!("ready{i}"));
        let mut p = Proc::spawn(
            elect(["run", "-d"])
                .arg(&dir)
                .arg("--label")
                .arg(&label)
                .args(["job", "--", "sh", "-c"])
                .arg(hold_script(&ready)),
        );
        wait_file(&ready);
        let got = label_of(&dir, "job");
        assert_eq!(got, shown, "label {label:?}");
        assert!(got.len() <= elect::MAX_LABEL, "{}", got.len());
        kill(p.pid(), libc::SIGTERM);
        let (st, err) = p.finish();
        assert_eq!(code(st), 143, "label {label:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn a_dir_and_command_arguments_that_are_not_utf8_are_used_as_given() {
    let tmp = tempfile::tempdir().unwrap();
    // --dir is a path: any bytes but NUL are a Unix path.
    let dir = tmp.path().join(OsStr::from_bytes(b"run-\xff"));
    let out_file = tmp.path().join("arg");
    let out = output(
        elect(["run", "-d"])
            .arg(&dir)
            .args(["job", "--", "sh", "-c", "printf %s \"$1\" > \"$2\"", "sh"])
            .arg(bytes(b"x\xffy"))
            .arg(&out_file),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dir.join("job").join("slot.0").exists(),
        "uses the dir as given"
    );
    assert_eq!(std::fs::read(&out_file).unwrap(), b"x\xffy");
    let st = status_json(&dir, "job");
    assert_eq!(st["resources"][0]["name"], "job", "{st}");
}
