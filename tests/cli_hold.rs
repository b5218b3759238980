//! `elect hold`: a ticket for a section of a shell script, with real
//! shells. A bash coprocess and a POSIX sh fifo hold the ticket for their
//! section and release it when it ends; a script killed with SIGKILL
//! releases it too (through the end of its pipe, and through the kernel's
//! parent-death signal when a child of the script keeps the pipe open);
//! N = 2; giving up with -n; a standard input that would end at once; a
//! lost ticket; signals; nesting inside `elect run`.

mod cli_support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cli_support::*;

/// Kills process `.0` with SIGKILL when dropped, however the test ends.
struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.0, libc::SIGKILL) };
    }
}

/// The directory of the built `elect`, for a script's `PATH`.
fn bin_dir() -> PathBuf {
    Path::new(ELECT).parent().unwrap().to_path_buf()
}

/// A shell (`bash` or `sh`) running `script` with `elect` on its `PATH` and
/// the run directory `dir` in `ELECT_DIR`, stdout and stderr piped.
fn shell(shell: &str, script: &str, dir: &Path) -> Command {
    let path = format!(
        "{}:{}",
        bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new(shell);
    cmd.arg("-c")
        .arg(script)
        .arg(shell)
        .env("PATH", path)
        .env("ELECT_DIR", dir)
        .env_remove("ELECT_NAME")
        .env_remove("XDG_RUNTIME_DIR")
        .stdin(Stdio::null());
    cmd
}

/// `elect hold` started by this test, its stdin a pipe the test keeps.
fn hold(dir: &Path, args: &[&str]) -> Proc {
    Proc::spawn(
        elect(["hold", "-d"])
            .arg(dir)
            .args(args)
            .stdin(Stdio::piped()),
    )
}

/// The line `SLOT TOKEN` of a hold, parsed.
fn ticket_line(line: &str) -> (u64, u64) {
    let (slot, token) = line.split_once(' ').expect("SLOT TOKEN");
    (
        slot.parse().expect("a slot"),
        token.parse().expect("a token"),
    )
}

/// The held slot `slot` of `job`, from `status --json`.
fn slot_of(dir: &Path, slot: usize) -> serde_json::Value {
    status_json(dir, "job")["resources"][0]["slots"][slot].clone()
}

/// The bash coprocess recipe, with the section made visible: it prints
/// the ticket, says it is in the section (a marker file), and waits for
/// the test's word (a second marker) before ending the section.
const BASH_SECTION: &str = r#"
coproc elect hold job
hold=$COPROC_PID
if read -r slot token <&"${COPROC[0]}"; then
    echo "slot $slot token $token hold $hold"
    touch "$IN_SECTION"
    while [ ! -e "$END_SECTION" ]; do sleep 0.01; done
fi
exec {COPROC[1]}>&-
wait "$hold"
echo "hold exited $?"
"#;

/// The POSIX sh recipe with two fifos, the section made visible as above.
const SH_SECTION: &str = r#"
fifos=$(mktemp -d) && mkfifo "$fifos/in" "$fifos/out" || exit 1
elect hold job <"$fifos/in" >"$fifos/out" &
hold=$!
exec 9>"$fifos/in" 8<"$fifos/out"
rm -r "$fifos"
if read -r slot token <&8; then
    echo "slot $slot token $token hold $hold"
    touch "$IN_SECTION"
    while [ ! -e "$END_SECTION" ]; do sleep 0.01; done
fi
exec 8<&- 9>&-
wait "$hold"
echo "hold exited $?"
"#;

/// Runs a section script in `sh_name`: while it is in its section the
/// slot is held by its hold, for the script; after it, free, and the hold
/// exited 0.
fn a_section_holds_the_ticket(sh_name: &str, script: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let (inside, end) = (tmp.path().join("in"), tmp.path().join("end"));
    let mut sh = Proc::spawn(
        shell(sh_name, script, &dir)
            .env("IN_SECTION", &inside)
            .env("END_SECTION", &end),
    );
    let out = sh.stdout_lines();
    let line = next_line(&out);
    let words: Vec<&str> = line.split(' ').collect();
    assert_eq!(words[..2], ["slot", "0"], "{line}");
    let token: u64 = words[3].parse().unwrap();
    let hold_pid: u64 = words[5].parse().unwrap();
    wait_file(&inside);
    let slot = slot_of(&dir, 0);
    assert_eq!(slot["held"], true, "{slot}");
    assert_eq!(slot["pid"], hold_pid, "held by elect hold: {slot}");
    assert_eq!(slot["command_pid"], sh.pid(), "for the script: {slot}");
    assert_eq!(slot["token"], token, "{slot}");
    let label = slot["label"].as_str().unwrap();
    assert!(
        label.starts_with(sh_name),
        "the script's command line: {label}"
    );
    // Nobody else gets it meanwhile.
    let out2 = output(elect(["run", "-n", "-d"]).arg(&dir).args(["job", "true"]));
    assert_eq!(code(out2.status), 75);
    std::fs::write(&end, "").unwrap();
    let last = next_line(&out);
    let (st, err) = sh.finish();
    assert_eq!(last, "hold exited 0", "{err}");
    assert_eq!(code(st), 0, "{err}");
    assert_eq!(err, "", "nothing on stderr");
    assert!(!held(&dir, "job", 0), "released at the end of the section");
}

#[test]
fn a_bash_coprocess_holds_the_ticket_for_its_section() {
    a_section_holds_the_ticket("bash", BASH_SECTION);
}

#[test]
fn a_posix_sh_with_a_fifo_holds_the_ticket_for_its_section() {
    a_section_holds_the_ticket("sh", SH_SECTION);
}

#[test]
fn the_ticket_is_released_at_the_end_of_input() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let mut h = hold(&dir, &["job"]);
    let out = h.stdout_lines();
    let (slot, token) = ticket_line(&next_line(&out));
    assert_eq!(slot, 0);
    assert!(held(&dir, "job", 0));
    assert_eq!(slot_of(&dir, 0)["token"], token);
    // What is written on its input is read and ignored.
    let mut input = h.child.stdin.take().unwrap();
    input.write_all(b"anything\n").unwrap();
    input.flush().unwrap();
    assert!(held(&dir, "job", 0));
    drop(input);
    let (st, err) = h.finish();
    assert_eq!(code(st), 0, "{err}");
    assert!(!held(&dir, "job", 0));
}

/// A script that takes a ticket for a section as the recipe does (without
/// ending it), says so in `$IN_SECTION` with the hold's pid and its own,
/// and sleeps; the test kills it with SIGKILL. `$CHILD` set: a background
/// child of the script (a subshell: bash closes a coprocess's pipe in the
/// commands it executes) keeps its end of the pipe open.
const KILLED_BASH: &str = r#"
coproc elect hold job
read -r slot token <&"${COPROC[0]}" || exit 1
if [ -n "$CHILD" ]; then ( while :; do sleep 1; done ) & child=$!; else child=0; fi
echo "$COPROC_PID $$ $child" > "$IN_SECTION.tmp" && mv "$IN_SECTION.tmp" "$IN_SECTION"
while :; do sleep 1; done
"#;

const KILLED_SH: &str = r#"
fifos=$(mktemp -d) && mkfifo "$fifos/in" "$fifos/out" || exit 1
elect hold job <"$fifos/in" >"$fifos/out" &
hold=$!
exec 9>"$fifos/in" 8<"$fifos/out"
rm -r "$fifos"
read -r slot token <&8 || exit 1
if [ -n "$CHILD" ]; then sleep 1000 & child=$!; else child=0; fi
echo "$hold $$ $child" > "$IN_SECTION.tmp" && mv "$IN_SECTION.tmp" "$IN_SECTION"
while :; do sleep 1; done
"#;

/// Kills a script in its section with SIGKILL: its hold releases the
/// ticket and exits.
fn a_killed_script_releases(sh_name: &str, script: &str, child: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let inside = tmp.path().join("in");
    let mut cmd = shell(sh_name, script, &dir);
    cmd.env("IN_SECTION", &inside);
    if child {
        cmd.env("CHILD", "1");
    }
    // Not piped: a child of the script left behind must not hold the
    // test's pipes.
    let mut sh = Proc {
        child: cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    };
    let pids: Vec<i32> = read_when_written(&inside)
        .split(' ')
        .map(|p| p.parse().unwrap())
        .collect();
    let (hold_pid, left) = (pids[0], pids[2]);
    let _left = (left != 0).then(|| KillOnDrop(left));
    assert!(held(&dir, "job", 0));
    kill(sh.pid(), libc::SIGKILL);
    sh.wait();
    wait_until("the ticket to be released", || !held(&dir, "job", 0));
    wait_until("elect hold to exit", || dead(hold_pid));
    if left != 0 {
        assert!(alive(left), "the child still has the pipe open");
    }
    // Free for the next one at once.
    let out = output(elect(["run", "-n", "-d"]).arg(&dir).args(["job", "true"]));
    assert_eq!(code(out.status), 0);
}

#[test]
fn a_bash_script_killed_with_sigkill_releases_its_ticket() {
    a_killed_script_releases("bash", KILLED_BASH, false);
}

#[test]
fn a_sh_script_killed_with_sigkill_releases_its_ticket() {
    a_killed_script_releases("sh", KILLED_SH, false);
}

#[test]
fn a_killed_script_releases_even_when_its_child_keeps_the_pipe_open() {
    a_killed_script_releases("sh", KILLED_SH, true);
    a_killed_script_releases("bash", KILLED_BASH, true);
}

#[test]
fn two_tickets_two_sections_and_a_third_waits_in_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let mut a = hold(&dir, &["-t", "2", "job"]);
    let mut b = hold(&dir, &["-t", "2", "job"]);
    let (a_out, b_out) = (a.stdout_lines(), b.stdout_lines());
    let (sa, ta) = ticket_line(&next_line(&a_out));
    let (sb, tb) = ticket_line(&next_line(&b_out));
    let mut slots = [sa, sb];
    slots.sort();
    assert_eq!(slots, [0, 1]);
    assert_ne!(ta, tb);
    let mut c = hold(&dir, &["-t", "2", "-q", "job"]);
    let c_out = c.stdout_lines();
    wait_until("the third in line", || {
        status_json(&dir, "job")["resources"][0]["waiters"] == serde_json::json!([c.pid()])
    });
    // A's section ends: C gets A's slot, with a larger token.
    drop(a.child.stdin.take());
    let (sc, tc) = ticket_line(&next_line(&c_out));
    assert_eq!(sc, sa);
    assert!(tc > ta.max(tb));
    assert_eq!(code(a.finish().0), 0);
    for p in [&mut b, &mut c] {
        drop(p.child.stdin.take());
        assert_eq!(code(p.finish().0), 0);
    }
    // A different N while they were live would have been refused.
}

#[test]
fn no_wait_gives_up_with_the_conflict_status_and_prints_nothing_on_stdout() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let mut first = hold(&dir, &["job"]);
    let lines = first.stdout_lines();
    next_line(&lines);
    for (args, want) in [
        (vec!["-n"], 75),
        (vec!["-n", "-E", "3"], 3),
        (vec!["-w", "100ms"], 75),
    ] {
        let out = output(
            elect(["hold", "-d"])
                .arg(&dir)
                .args(&args)
                .arg("job")
                .stdin(Stdio::piped()),
        );
        assert_eq!(code(out.status), want, "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.lines()
                .last()
                .unwrap()
                .starts_with("elect: no ticket of \"job\""),
            "{args:?}: {err}"
        );
        assert!(
            err.contains(&format!("held by pid {}", first.pid())),
            "{err}"
        );
    }
    // -q: nothing at all.
    let out = output(
        elect(["hold", "-nq", "-d"])
            .arg(&dir)
            .arg("job")
            .stdin(Stdio::piped()),
    );
    assert_eq!(code(out.status), 75);
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    // In a script, as the recipe does it: the read fails at once, and the
    // hold's status is there once its input is closed.
    let script = r#"
        coproc elect hold -n job
        hold=$COPROC_PID
        if read -r slot token <&"${COPROC[0]}"; then echo "unreachable"; fi
        exec {COPROC[1]}>&-
        wait "$hold"
    "#;
    let out = output(&mut shell("bash", script, &dir));
    assert_eq!(
        code(out.status),
        75,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn an_input_that_would_end_at_once_is_refused_before_anything_is_made() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let out = output(elect(["hold", "-d"]).arg(&dir).arg("job"));
    assert_eq!(code(out.status), 2);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("elect: the standard input of elect hold is /dev/null"),
        "{err}"
    );
    assert!(err.contains("coproc elect hold NAME"), "{err}");
    assert!(!dir.exists(), "nothing made");
    // The mistake a POSIX script makes: a background job without `<`.
    let out = output(&mut shell("sh", "elect hold job & wait $!", &dir));
    assert_eq!(code(out.status), 2);
    assert!(!dir.exists(), "nothing made");
}

#[test]
fn a_lost_ticket_is_said_and_ends_the_hold_with_76() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let mut h = hold(&dir, &["job"]);
    let out = h.stdout_lines();
    next_line(&out);
    let err = h.stderr_lines();
    std::fs::remove_dir_all(dir.join("job")).unwrap();
    // Said at once; the status is there at the end of the input.
    let said = next_line(&err);
    assert!(
        said.starts_with("elect: lost the ticket of \"job\""),
        "{said}"
    );
    assert!(!h.exited(), "it waits for the end of its input");
    drop(h.child.stdin.take());
    assert_eq!(code(h.wait()), 76);
}

#[test]
fn a_signal_releases_the_ticket_and_ends_the_hold_by_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let mut h = hold(&dir, &["job"]);
    let out = h.stdout_lines();
    next_line(&out);
    kill(h.pid(), libc::SIGTERM);
    let (st, _) = h.finish();
    assert_eq!(code(st), 143);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(libc::SIGTERM), "died of it");
    assert!(!held(&dir, "job", 0));
    // While waiting, a signal gives up with nothing taken.
    let mut first = hold(&dir, &["job"]);
    let lines = first.stdout_lines();
    next_line(&lines);
    let mut waiting = hold(&dir, &["-q", "job"]);
    wait_until("the waiter in line", || {
        status_json(&dir, "job")["resources"][0]["waiters"] == serde_json::json!([waiting.pid()])
    });
    kill(waiting.pid(), libc::SIGINT);
    assert_eq!(code(waiting.finish().0), 130);
    assert_eq!(slot_of(&dir, 0)["pid"], first.pid(), "still the first's");
}

#[test]
fn a_hold_inside_elect_run_of_the_same_resource_fails_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let script = r#"
        coproc elect hold job
        hold=$COPROC_PID
        if read -r slot token <&"${COPROC[0]}"; then echo "unreachable"; fi
        exec {COPROC[1]}>&-
        wait "$hold"
    "#;
    let out = output(
        elect(["run", "-d"])
            .arg(&dir)
            .args(["job", "--", "bash", "-c", script])
            .env("PATH", format!("{}:/usr/bin:/bin", bin_dir().display())),
    );
    assert_eq!(
        code(out.status),
        125,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("already held by this command's caller"),
        "{err}"
    );
}
