//! A holder's record is a file that other processes can write: whatever it
//! holds must reach a person's terminal as plain text. A slot is held by a
//! real process (a shell that took the flock with flock(1), then became
//! `sleep`) and a forged record, with escape sequences (window title, clear
//! screen, colour, the 8-bit CSI), carriage return, new line, DEL and a
//! right-to-left override in its `label`, is written into the slot file.
//! (Its `since` is a time, or the record is not read at all: see the last
//! test.) Then:
//!
//! - the `elect status` table has no control character but its line ends,
//!   and the forged new lines start no line of their own;
//! - `elect status --json` gives the label back exactly, every character a
//!   terminal would act on written as a `\uXXXX` escape;
//! - the conflict message of `elect run -n` and the waiting display of
//!   `elect run` on a pseudo-terminal show them defanged;
//! - `elect watch` prints its lines without control characters, and its
//!   `--json` lines carry the forged record's pid and token.

mod cli_support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use cli_support::*;

/// The forged record's `since`.
const SINCE: &str = "2026-11-23T10:00:00Z";

/// The forged `label`: sets the window title, clears the screen, starts a
/// fake table line, then a colour, the 8-bit CSI (U+009B), a right-to-left
/// override, DEL, a tab and a new line.
const LABEL: &str = "\x1b]0;pwned\x07\x1b[2J\r\nFAKE \x1b[31mred\u{9b}2J\u{202e}exe\x7f\t\nx";

/// The label as a terminal must be shown it: every character it would act
/// on a space.
const SHOWN: &str = " ]0;pwned  [2J  FAKE  [31mred 2J exe   x";

/// A run directory with resource `job` used once, its slot 0 held by a
/// real process that is not elect, and a forged record in the slot file.
struct Forged {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    holder: Proc,
    /// The forged record's token.
    token: u64,
}

impl Forged {
    /// Creates `job`, holds its slot 0, and writes the forged record.
    fn new() -> Forged {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        let token = first_use(&dir) + 1;
        let holder = hold(&slot_file(&dir, "job", 0), &tmp.path().join("held"));
        forge(&dir, holder.pid(), token);
        Forged {
            _tmp: tmp,
            dir,
            holder,
            token,
        }
    }
}

/// Uses `job` in `dir` once, with elect; returns the token it got.
fn first_use(dir: &Path) -> u64 {
    let out = output(
        elect(["run", "-d"])
            .arg(dir)
            .args(["job", "sh", "-c", "echo $ELECT_TOKEN"]),
    );
    assert_eq!(
        code(out.status),
        0,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .expect("a token")
}

/// Starts a process that takes an exclusive flock on `slot` with flock(1)
/// and keeps it (as `sleep`, the same process) until killed; returns once
/// it holds the lock and has touched `ready`.
fn hold(slot: &Path, ready: &Path) -> Proc {
    let p = Proc::spawn(
        Command::new("sh")
            .args([
                "-c",
                r#"exec 9<"$1" && flock -x 9 && touch "$2" && exec sleep 1000"#,
                "sh",
            ])
            .arg(slot)
            .arg(ready)
            .stdin(Stdio::null()),
    );
    wait_file(ready);
    assert!(kernel_holds(slot), "{} is held", slot.display());
    p
}

/// Writes the forged record, naming `pid` as the holder and with `token`
/// (above the last one elect issued, as a new holder's is), into slot 0.
fn forge(dir: &Path, pid: i32, token: u64) {
    let record = serde_json::json!({
        "pid": pid, "since": SINCE, "label": LABEL, "token": token,
    });
    std::fs::write(slot_file(dir, "job", 0), format!("{record}\n")).unwrap();
}

/// The characters of `text` that must not reach a terminal: C0 controls
/// other than new line, DEL, C1 controls, and bidirectional overrides,
/// isolates and marks.
fn unsafe_chars(text: &str) -> Vec<char> {
    text.chars()
        .filter(|&c| {
            (c.is_control() && c != '\n')
                || matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
        })
        .collect()
}

#[test]
fn the_status_table_shows_a_forged_record_without_control_characters() {
    let f = Forged::new();
    for args in [vec!["status", "job"], vec!["status"]] {
        let out = output(elect(["status", "-d"]).arg(&f.dir).args(&args[1..]));
        assert_eq!(code(out.status), 0, "{args:?}");
        let text = String::from_utf8(out.stdout).expect("UTF-8");
        assert_eq!(unsafe_chars(&text), [], "{args:?}: {text:?}");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "a header and one slot: {text:?}");
        let row = lines[1];
        assert!(row.starts_with("job "), "{row:?}");
        assert!(row.contains(" held "), "{row:?}");
        assert!(row.contains(&f.holder.pid().to_string()), "{row:?}");
        assert!(row.contains(&f.token.to_string()), "{row:?}");
        // The forged line breaks start no line: what follows them is on the
        // slot's own line.
        assert!(row.contains(&format!(" {SINCE} ")), "{row:?}");
        assert!(row.ends_with(SHOWN), "{row:?}");
    }
}

#[test]
fn status_json_gives_the_forged_text_back_exactly() {
    let f = Forged::new();
    let out = output(elect(["status", "--json", "-d"]).arg(&f.dir).arg("job"));
    assert_eq!(code(out.status), 0);
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    // Every character a terminal acts on is escaped: the only raw control
    // character is the line's end.
    assert!(text.ends_with('\n'), "{text:?}");
    assert_eq!(unsafe_chars(&text), [], "{text:?}");
    assert_eq!(text.lines().count(), 1, "{text:?}");
    for escaped in [
        r"\u001b]0;pwned\u0007",
        r"\u009b",
        r"\u202e",
        r"\u007f",
        r"\r\n",
    ] {
        assert!(text.contains(escaped), "{escaped} in {text:?}");
    }
    let st: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let slot = &st["resources"][0]["slots"][0];
    assert_eq!(slot["held"], true, "{st}");
    assert_eq!(slot["since"], SINCE, "{st}");
    assert_eq!(slot["label"], LABEL, "{st}");
    assert_eq!(slot["pid"], f.holder.pid(), "{st}");
    assert_eq!(slot["token"], f.token, "{st}");
}

#[test]
fn the_conflict_message_names_a_forged_holder_without_control_characters() {
    let f = Forged::new();
    for wait in [["-n"], ["-w200ms"]] {
        let out = output(
            elect(["run", "-d"])
                .arg(&f.dir)
                .args(wait)
                .args(["job", "true"]),
        );
        assert_eq!(code(out.status), 75, "{wait:?}");
        let err = String::from_utf8(out.stderr).expect("UTF-8");
        assert_eq!(unsafe_chars(&err), [], "{wait:?}: {err:?}");
        // With -w, off a terminal, the line that starts the wait first.
        let lines: Vec<&str> = err.lines().collect();
        let (waiting, last) = match lines[..] {
            [last] if wait == ["-n"] => (None, last),
            [waiting, last] if wait != ["-n"] => (Some(waiting), last),
            _ => panic!("{wait:?}: {err:?}"),
        };
        assert!(last.starts_with("elect: no ticket of \"job\""), "{err:?}");
        if let Some(waiting) = waiting {
            assert!(waiting.starts_with("elect: waiting "), "{err:?}");
        }
        for line in waiting.into_iter().chain([last]) {
            assert!(
                line.contains(&format!("held by pid {} \"{SHOWN}\"", f.holder.pid())),
                "{err:?}"
            );
        }
    }
}

/// Removes from `text`, as a pseudo-terminal gives back what `elect run`
/// wrote, the terminal's line ends (`\r\n`) and the waiting display's own
/// escape sequences: the erase (`\r`, ESC `[` N `A`, ESC `[J`).
fn without_the_displays_own_sequences(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("\r\x1b[") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 3..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        match after[digits..].strip_prefix("A\x1b[J") {
            Some(tail) if digits > 0 => rest = tail,
            _ => {
                // Not the display's: keep it, for the check to find.
                out.push_str("\r\x1b[");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out.replace("\r\n", "\n")
}

#[test]
fn the_waiting_display_shows_a_forged_record_defanged() {
    let f = Forged::new();
    let shell = format!(
        // Wide enough that the holder's line, cut to the width, is whole.
        "stty cols 200 && exec {ELECT} run -d {} job echo got-the-ticket",
        f.dir.display()
    );
    let mut term = Proc::spawn(
        Command::new("script")
            .args(["-qfec", &shell, "/dev/null"])
            .env("SHELL", "/bin/sh")
            .env_remove("ELECT_DIR")
            .stdin(Stdio::piped()),
    );
    let seen = Arc::new(Mutex::new(Vec::<u8>::new()));
    let mut out = term.child.stdout.take().unwrap();
    let sink = Arc::clone(&seen);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let text = || String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
    wait_until("the waiting display", || text().contains("exe   x"));

    // The holder goes: elect takes the ticket, erases the display and runs
    // the command.
    let Forged {
        holder, _tmp: tmp, ..
    } = f;
    drop(holder);
    assert_eq!(code(term.wait()), 0, "{:?}", text());
    wait_until("the command's output", || text().contains("got-the-ticket"));
    let all = text();
    let plain = without_the_displays_own_sequences(&all);
    assert_eq!(unsafe_chars(&plain), [], "{all:?}");
    let line = plain
        .lines()
        .find(|l| l.contains("]0;pwned"))
        .unwrap_or_else(|| panic!("the holder's line: {all:?}"));
    assert!(
        line.contains(&format!(" since {SINCE}: {SHOWN}")),
        "the forged line breaks start no line: {line:?}"
    );
    drop(tmp);
}

#[test]
fn watch_shows_a_forged_holder_without_control_characters() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let token = first_use(&dir) + 1;

    let mut watchers = Vec::new();
    for extra in [&[][..], &["--json"][..]] {
        let mut w = Proc::spawn(elect(["watch", "-d"]).arg(&dir).args(extra).arg("job"));
        let err = w.stderr_lines();
        let line = next_line(&err);
        assert!(line.starts_with("elect: watching \"job\""), "{line}");
        let lines = w.stdout_lines();
        watchers.push((w, lines));
    }

    let holder = hold(&slot_file(&dir, "job", 0), &tmp.path().join("held"));
    let pid = holder.pid();
    forge(&dir, pid, token);
    let acquired: Vec<String> = watchers.iter().map(|(_, l)| next_line(l)).collect();
    drop(holder);
    let released: Vec<String> = watchers.iter().map(|(_, l)| next_line(l)).collect();

    for (line, kind) in [(&acquired[0], "acquired"), (&released[0], "released")] {
        assert_eq!(unsafe_chars(line), [], "{line:?}");
        assert!(
            line.ends_with(&format!(" {kind} job slot 0 pid {pid} token {token}")),
            "{line:?}"
        );
    }
    for (line, kind) in [(&acquired[1], "acquired"), (&released[1], "released")] {
        assert_eq!(unsafe_chars(line), [], "{line:?}");
        let ev: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        assert_eq!(ev["event"], kind, "{ev}");
        assert_eq!(ev["pid"], pid, "{ev}");
        assert_eq!(ev["token"], token, "{ev}");
    }
}

/// A record whose `since` is not an RFC 3339 time (here, escape sequences
/// and a line break) is not a record at all: the slot shows as held, by
/// nobody named, in the table and in JSON alike.
#[test]
fn a_record_whose_since_is_no_time_is_not_read() {
    let f = Forged::new();
    let record = serde_json::json!({
        "pid": f.holder.pid(), "since": "\x1b]0;pwned\x07\r\nFAKE", "label": "job", "token": f.token,
    });
    std::fs::write(slot_file(&f.dir, "job", 0), format!("{record}\n")).unwrap();
    let out = output(elect(["status", "--json", "-d"]).arg(&f.dir).arg("job"));
    assert_eq!(code(out.status), 0);
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    // The kernel's own word stays: who holds the lock (the shell, whose
    // flock(1) child took it on the shell's descriptor and exited).
    assert_eq!(
        st["resources"][0]["slots"][0],
        serde_json::json!({"slot": 0, "held": true, "lock_pid": f.holder.pid()}),
        "{st}"
    );
    let out = output(elect(["status", "-d"]).arg(&f.dir).arg("job"));
    assert_eq!(code(out.status), 0);
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    assert_eq!(unsafe_chars(&text), [], "{text:?}");
    assert!(
        !text.contains("pwned") && !text.contains("FAKE"),
        "{text:?}"
    );
    assert!(
        text.lines().nth(1).is_some_and(|row| row.contains(" held")),
        "{text:?}"
    );
}
