//! What the `elect` binary's start-up guarantees: closed standard
//! descriptors are replaced by /dev/null before any file is opened, a
//! reader that closed the pipe is an error elect handles rather than a
//! SIGPIPE that kills it, and the command still starts with the default
//! SIGPIPE and an empty signal mask.

mod cli_support;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use cli_support::*;

/// Runs `cmd` with the standard descriptors in `closed` closed, as a shell
/// does for `<&- >&- 2>&-`.
fn run_closed(cmd: &mut Command, closed: &'static [i32]) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: the closure calls only close(2), which is async-signal-safe,
    // and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            for &fd in closed {
                libc::close(fd);
            }
            Ok(())
        });
    }
    output(cmd)
}

/// Every regular file under `dir` whose text contains one of `needles`.
fn files_containing(dir: &Path, needles: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                todo.push(path);
            } else if meta.is_file() {
                let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
                for n in needles {
                    if text.contains(n) {
                        found.push(format!("{} has {n:?}: {text:?}", path.display()));
                    }
                }
            }
        }
    }
    found
}

/// Each slot file under `dir/name` holds one holder's record (JSON) and
/// nothing else.
fn assert_only_records(dir: &Path, name: &str) {
    for entry in std::fs::read_dir(dir.join(name)).unwrap().flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if !file.starts_with("slot.") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap();
        if text.is_empty() {
            continue;
        }
        let record: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{file} is not one record ({e}): {text:?}"));
        assert!(record["pid"].is_u64(), "{file}: {text:?}");
    }
}

/// No file under the run directory holds any of `markers` (what was
/// printed with the standard descriptors in `closed` closed), and the slot
/// files of `job` hold records and nothing else.
fn assert_nothing_leaked(dir: &Path, markers: &[&str], closed: &[i32]) {
    let leaked = files_containing(dir, markers);
    assert!(leaked.is_empty(), "closed {closed:?}: {leaked:#?}");
    assert_only_records(dir, "job");
}

#[test]
fn run_with_closed_standard_descriptors_gives_the_command_dev_null() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    // The shell's own descriptors are read by a pipeline, which leaves
    // them as they are (a redirection of a simple command may not). The
    // markers are computed by the shell, so that the command line (which
    // is also the holder's label in its record) does not hold them.
    let script = "readlink /proc/$$/fd/0 /proc/$$/fd/1 /proc/$$/fd/2 | cat > \"$0\"; \
                  echo out-$((6*7)); echo err-$((7*8)) >&2";
    let cases: [&'static [i32]; 4] = [&[0, 1, 2], &[2], &[1], &[0]];
    for closed in cases {
        let fds = tmp.path().join("fds");
        let _ = std::fs::remove_file(&fds);
        let out = run_closed(
            elect(["run", "-d"])
                .arg(&dir)
                .args(["job", "--", "sh", "-c", script])
                .arg(&fds),
            closed,
        );
        assert_eq!(code(out.status), 0, "closed {closed:?}");
        // Each of the command's standard descriptors is open, and one that
        // was closed is /dev/null, not a file or directory elect opened.
        let seen = std::fs::read_to_string(&fds).unwrap();
        let seen: Vec<&str> = seen.lines().collect();
        assert_eq!(
            seen.len(),
            3,
            "closed {closed:?}: the command's fds 0-2: {seen:?}"
        );
        for &fd in closed {
            assert_eq!(
                seen[fd as usize], "/dev/null",
                "closed {closed:?}: {seen:?}"
            );
        }
        assert_nothing_leaked(&dir, &["out-42", "err-56"], closed);
    }
}

#[test]
fn an_error_with_closed_standard_descriptors_goes_to_no_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let _holder = holder(&dir, "job", &[]);
    let cases: [&'static [i32]; 2] = [&[0, 1, 2], &[2]];
    for closed in cases {
        let runs: [(&[&str], i32); 3] = [
            // No ticket is free: elect says so on stderr and exits 75.
            (&["-n", "job", "--", "true"], 75),
            // A wait that times out: the message comes after the waiting
            // thread opened its files.
            (&["-w", "50ms", "job", "--", "true"], 75),
            // A command that cannot run, found out before any ticket.
            (&["other", "--", "/nonexistent/command"], 127),
        ];
        for (args, want) in runs {
            let out = run_closed(elect(["run", "-d"]).arg(&dir).args(args), closed);
            assert_eq!(code(out.status), want, "closed {closed:?}, {args:?}");
        }
        assert_nothing_leaked(&dir, &["elect:", "no ticket", "cannot run"], closed);
    }
}

#[test]
fn status_json_into_a_closed_pipe_is_not_killed_by_sigpipe() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let out = output(elect(["run", "-d"]).arg(&dir).args(["job", "--", "true"]));
    assert_eq!(code(out.status), 0);
    for args in [&["status", "--json"][..], &["status"][..]] {
        let (reader, writer) = std::io::pipe().unwrap();
        // Nobody will ever read: a write gets EPIPE, or SIGPIPE if elect
        // did not ignore it.
        drop(reader);
        let out = output(elect(args).arg("-d").arg(&dir).stdout(writer));
        assert_eq!(
            code(out.status),
            0,
            "{args:?}: a closed stdout ends elect quietly (141 is SIGPIPE): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_command_starts_with_default_sigpipe_and_no_blocked_signal() {
    let tmp = tempfile::tempdir().unwrap();
    let out = output(elect(["run", "-d"]).arg(tmp.path().join("run")).args([
        "job",
        "--",
        "cat",
        "/proc/self/status",
    ]));
    assert_eq!(code(out.status), 0);
    let status = String::from_utf8(out.stdout).unwrap();
    let mask = |field: &str| -> u64 {
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .unwrap_or_else(|| panic!("no {field} in {status}"));
        u64::from_str_radix(line.trim(), 16).unwrap()
    };
    let sigpipe = 1u64 << (libc::SIGPIPE - 1);
    assert_eq!(
        mask("SigIgn:") & sigpipe,
        0,
        "the command must not inherit elect's ignored SIGPIPE"
    );
    assert_eq!(mask("SigBlk:"), 0, "the command's signal mask is empty");
}
