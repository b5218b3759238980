//! What `status` and the conflict message of `run` take from the kernel
//! rather than from records: the processes waiting in line, the process
//! that holds a lock after the one that took it has exited, and a slot held
//! by a process outside elect over an old record. Also the label's
//! quoting, the age beside the time, and a script whose interpreter is
//! missing. Every holder and waiter is a real process.

mod cli_support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

use cli_support::*;

/// Kills process `.0` with SIGKILL when dropped, however the test ends.
struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.0, libc::SIGKILL) };
    }
}

/// `status` of `job` in `dir` as a table.
fn table(dir: &Path) -> String {
    let out = output(elect(["status", "-d"]).arg(dir).arg("job"));
    assert_eq!(
        code(out.status),
        0,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// The waiters' pids `status --json` shows for `job`.
fn waiters(dir: &Path) -> Vec<u64> {
    status_json(dir, "job")["resources"][0]["waiters"]
        .as_array()
        .map(|w| w.iter().map(|p| p.as_u64().expect("a pid")).collect())
        .unwrap_or_default()
}

/// A waiting `elect run` for `job`, quiet.
fn waiter(dir: &Path) -> Proc {
    Proc::spawn(
        elect(["run", "-q", "-d"])
            .arg(dir)
            .args(["job", "--", "true"]),
    )
}

#[test]
fn waiters_are_shown_with_their_pids_in_the_order_they_came() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let _holder = holder(&dir, "job", &[]);
    assert_eq!(waiters(&dir), Vec::<u64>::new(), "nobody waits yet");
    let first = waiter(&dir);
    wait_until("the first waiter in line", || waiters(&dir).len() == 1);
    let second = waiter(&dir);
    wait_until("the second waiter in line", || waiters(&dir).len() == 2);
    let want = vec![first.pid() as u64, second.pid() as u64];
    assert_eq!(waiters(&dir), want, "pids in arrival order");
    let text = table(&dir);
    let line = format!("job: 2 waiting (pid {}, {})", first.pid(), second.pid());
    assert!(text.lines().any(|l| l == line), "{line:?} in {text}");
    // A waiter that gives up leaves the line at once.
    drop(first);
    wait_until("one waiter left", || waiters(&dir) == [second.pid() as u64]);
}

#[test]
fn a_holder_killed_with_sigkill_is_flagged_and_its_command_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let mut run = holder(&dir, "job", &[]);
    let elect_pid = run.pid();
    let st = status_json(&dir, "job");
    let slot = &st["resources"][0]["slots"][0];
    assert_eq!(slot["pid"], elect_pid, "{st}");
    assert_eq!(slot["lock_pid"], elect_pid, "{st}");
    assert_eq!(slot["pid_alive"], true, "{st}");
    let command = slot["command_pid"].as_u64().expect("a command pid") as i32;
    // The command inherits the ticket and runs on.
    kill(elect_pid, libc::SIGKILL);
    run.wait();
    assert!(held(&dir, "job", 0));
    let st = status_json(&dir, "job");
    let slot = &st["resources"][0]["slots"][0];
    assert_eq!(slot["pid"], elect_pid, "the record stays: {st}");
    assert_eq!(slot["pid_alive"], false, "{st}");
    assert_eq!(
        slot["lock_pid"], command,
        "the kernel names the command: {st}"
    );
    let text = table(&dir);
    let row = text.lines().nth(1).expect("a row");
    assert!(
        row.contains(&format!(" {elect_pid} (exited; held by {command}) ")),
        "{row:?}"
    );
    assert!(row.contains(" s ago)"), "an age beside the time: {row:?}");
    kill(command, libc::SIGTERM);
    wait_until("the slot to be free", || !held(&dir, "job", 0));
}

#[test]
fn a_slot_held_outside_elect_is_named_by_the_kernel_not_by_an_old_record() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    // An elect holder came and went: its record stays in the slot file.
    let out = output(elect(["run", "-d"]).arg(&dir).args(["job", "--", "true"]));
    assert_eq!(code(out.status), 0);
    let slot = slot_file(&dir, "job", 0);
    let old = std::fs::read_to_string(&slot).unwrap();
    assert!(old.contains("\"pid\""), "{old}");
    // Now flock(1) holds the slot.
    let ready = tmp.path().join("ready");
    let flock = Proc::spawn(
        std::process::Command::new("flock")
            .arg(&slot)
            .args([
                "sh",
                "-c",
                r#"echo $$ >"$0.tmp" && mv "$0.tmp" "$0" && exec sleep 1000"#,
            ])
            .arg(&ready)
            .stdin(Stdio::null()),
    );
    // flock(1)'s command outlives a SIGTERM to flock: killed by its pid.
    let _sleep = KillOnDrop(read_when_written(&ready).parse().unwrap());
    let st = status_json(&dir, "job");
    assert_eq!(
        st["resources"][0]["slots"][0],
        serde_json::json!({"slot": 0, "held": true, "lock_pid": flock.pid()}),
        "no record of a former holder, the kernel's pid: {st}"
    );
    let text = table(&dir);
    let row = text.lines().nth(1).expect("a row");
    assert!(
        row.contains(&format!(" held   {} ", flock.pid())),
        "{row:?}"
    );
    assert!(row.contains("no elect record"), "{row:?}");

    let out = output(
        elect(["run", "-n", "-d"])
            .arg(&dir)
            .args(["job", "--", "true"]),
    );
    assert_eq!(code(out.status), 75);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("elect: no ticket of \"job\" is free"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "held by pid {}, which has no elect record of slot 0",
            flock.pid()
        )),
        "{err}"
    );
    assert!(err.contains("flock(1)"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn the_default_label_is_the_command_line_quoted_as_a_shell_would() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let ready = tmp.path().join("ready");
    let script = hold_script(&ready);
    let argv = ["sh", "-c", script.as_str(), "it's", "", "$HOME"];
    let _run = Proc::spawn(elect(["run", "-d"]).arg(&dir).arg("job").args(argv));
    wait_file(&ready);
    let st = status_json(&dir, "job");
    let label = st["resources"][0]["slots"][0]["label"]
        .as_str()
        .expect("a label")
        .to_string();
    assert!(label.starts_with("sh -c 'trap '\\''kill"), "{label}");
    // A shell reads it back as the same words.
    let out = output(
        std::process::Command::new("sh")
            .args(["-c", r#"eval "set -- $1"; printf '%s\n' "$@""#, "sh"])
            .arg(&label),
    );
    let words: Vec<&str> = std::str::from_utf8(&out.stdout)
        .unwrap()
        .strip_suffix('\n')
        .unwrap()
        .split('\n')
        .collect();
    assert_eq!(words, argv, "{label}");
    let text = table(&dir);
    assert!(text.contains(&label), "{text}");
}

#[test]
fn a_script_whose_interpreter_is_missing_is_named_before_any_ticket() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let script = tmp.path().join("job.sh");
    std::fs::write(&script, "#!/nonexistent/interpreter -e\necho hi\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = output(elect(["run", "-d"]).arg(&dir).arg("job").arg(&script));
    assert_eq!(
        code(out.status),
        126,
        "as a shell gives for a bad interpreter"
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("elect: cannot run "), "{err}");
    assert!(
        err.contains(
            "its interpreter \"/nonexistent/interpreter\", named on its #! line, does not exist"
        ),
        "{err}"
    );
    assert!(!err.contains("os error"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!dir.join("job").exists(), "nothing taken, nothing made");

    // DOS line endings are named as the cause.
    std::fs::write(&script, "#!/bin/sh\r\necho hi\r\n").unwrap();
    let out = output(elect(["run", "-d"]).arg(&dir).arg("job").arg(&script));
    assert_eq!(code(out.status), 126);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains(r#""/bin/sh\r""#), "{err}");
    assert!(err.contains("DOS line endings"), "{err}");
}
