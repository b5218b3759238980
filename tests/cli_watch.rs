//! `elect watch`: one line per change of ownership, as it happens, in JSON
//! and for a person.

mod cli_support;

use std::path::Path;

use cli_support::*;

/// Starts `elect watch NAME` (with `extra` options) and waits until it
/// says it is watching.
fn watcher(dir: &Path, name: &str, extra: &[&str]) -> (Proc, std::sync::mpsc::Receiver<String>) {
    let mut w = Proc::spawn(elect(["watch", "-d"]).arg(dir).args(extra).arg(name));
    let err = w.stderr_lines();
    let line = next_line(&err);
    assert!(line.starts_with("elect: watching \"job\""), "{line}");
    let out = w.stdout_lines();
    (w, out)
}

#[test]
fn watch_json_reports_an_acquire_and_a_release() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let (_w, lines) = watcher(&dir, "job", &["--json"]);

    let tokfile = tmp.path().join("token");
    let mut run = Proc::spawn(
        elect(["run", "-d"])
            .arg(&dir)
            .args(["job", "sh", "-c"])
            .arg(format!("echo $ELECT_TOKEN > {}", tokfile.display())),
    );
    let pid = run.pid();
    assert_eq!(run.wait().code(), Some(0));
    let token: u64 = read_when_written(&tokfile).parse().unwrap();

    let acquired: serde_json::Value =
        serde_json::from_str(&next_line(&lines)).expect("a JSON line");
    let released: serde_json::Value =
        serde_json::from_str(&next_line(&lines)).expect("a JSON line");
    for (ev, kind) in [(&acquired, "acquired"), (&released, "released")] {
        assert_eq!(ev["event"], kind, "{ev}");
        assert_eq!(ev["name"], "job");
        assert_eq!(ev["slot"], 0);
        assert_eq!(ev["pid"], pid, "{ev}");
        assert_eq!(ev["token"], token, "{ev}");
        let at = ev["at"].as_str().unwrap();
        assert!(
            at.len() == 20 && at.ends_with('Z') && at.as_bytes()[10] == b'T',
            "RFC 3339: {at}"
        );
        assert_eq!(
            ev.as_object().unwrap().len(),
            6,
            "exactly the contract's fields: {ev}"
        );
    }
}

#[test]
fn watch_prints_a_line_for_a_person() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let (_w, lines) = watcher(&dir, "job", &[]);
    let out = output(elect(["run", "-d"]).arg(&dir).args(["job", "true"]));
    assert!(out.status.success());
    let a = next_line(&lines);
    let r = next_line(&lines);
    assert!(a.contains(" acquired job slot 0 pid "), "{a}");
    assert!(r.contains(" released job slot 0 pid "), "{r}");
}

/// elect-watch(1)'s idiom as a shell runs it, `elect watch --json NAME |
/// grep -m1 '"released"'`, ends as soon as grep has its line: watch sees
/// that nobody reads its output any more and exits 0 at once, without
/// waiting for another event to write. So does a watch whose reader goes
/// before any event at all.
#[test]
fn watch_ends_at_once_when_its_reader_goes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let pipeline = format!(
        "{ELECT} watch --json -d {} job | grep -m1 '\"released\"'; echo \"statuses ${{PIPESTATUS[*]}}\"",
        dir.display()
    );
    let mut shell = Proc::spawn(
        std::process::Command::new("bash")
            .args(["-c", &pipeline])
            .stdin(std::process::Stdio::null()),
    );
    let err = shell.stderr_lines();
    let line = next_line(&err);
    assert!(line.starts_with("elect: watching \"job\""), "{line}");
    let out = shell.stdout_lines();
    let run = output(elect(["run", "-d"]).arg(&dir).args(["job", "true"]));
    assert_eq!(run.status.code(), Some(0));
    let released: serde_json::Value = serde_json::from_str(&next_line(&out)).unwrap();
    assert_eq!(released["event"], "released", "{released}");
    // No further event: watch must end on its own.
    assert_eq!(next_line(&out), "statuses 0 0");
    assert_eq!(shell.wait().code(), Some(0));

    let mut shell = Proc::spawn(
        std::process::Command::new("bash")
            .args([
                "-c",
                &format!(
                    "{ELECT} watch -q -d {} job | true; echo \"statuses ${{PIPESTATUS[*]}}\"",
                    dir.display()
                ),
            ])
            .stdin(std::process::Stdio::null()),
    );
    let out = shell.stdout_lines();
    assert_eq!(next_line(&out), "statuses 0 0");
    let (st, err) = shell.finish();
    assert_eq!(st.code(), Some(0));
    assert!(err.is_empty(), "{err}");
}
