//! A full file system: a resource never used before can be taken there,
//! its participants still agree on N, tokens still increase, waiters still
//! wait in line, `status` shows the held slot with no record, and nothing
//! left behind is harmful once there is room again. Needs root, to mount
//! a tiny tmpfs; skipped with the reason printed otherwise.

mod cli_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use cli_support::*;

/// A 64 KiB tmpfs filled to the last byte, unmounted when dropped.
struct FullDisk {
    _tmp: tempfile::TempDir,
    mount: PathBuf,
    filler: PathBuf,
}

impl FullDisk {
    /// `None` (and the reason printed) where no tmpfs can be mounted.
    fn new(test: &str) -> Option<FullDisk> {
        // SAFETY: getuid cannot fail.
        if unsafe { libc::getuid() } != 0 {
            eprintln!("SKIPPED {test}: needs root to mount a tiny tmpfs");
            return None;
        }
        let tmp = tempfile::tempdir().unwrap();
        let mount = tmp.path().join("full");
        std::fs::create_dir(&mount).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs"])
            .arg(&mount)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("SKIPPED {test}: cannot mount a tmpfs here (no mount privilege)");
            return None;
        }
        let filler = mount.join("filler");
        let disk = FullDisk {
            _tmp: tmp,
            mount,
            filler,
        };
        // Fills it: the write stops at the last page with "no space".
        let _ = std::fs::write(&disk.filler, vec![1u8; 1 << 20]);
        let probe = std::fs::write(disk.mount.join("probe"), b"x");
        assert!(probe.is_err(), "the file system is full");
        let _ = std::fs::remove_file(disk.mount.join("probe"));
        Some(disk)
    }

    /// The run directory, on the full file system.
    fn run(&self) -> PathBuf {
        self.mount.join("run")
    }
}

impl Drop for FullDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount).status();
    }
}

fn election(dir: &Path, tickets: u32) -> elect::Election {
    elect::Election::builder("job")
        .tickets(tickets)
        .dir(dir)
        .build()
        .unwrap()
}

#[test]
fn a_never_used_resource_is_taken_on_a_full_disk() {
    let Some(disk) = FullDisk::new("a_never_used_resource_is_taken_on_a_full_disk") else {
        return;
    };
    let run = disk.run();
    let e = election(&run, 1);
    let first = e
        .try_obtain()
        .unwrap()
        .expect("a free ticket on a full disk");
    assert_eq!(first.slot(), 0);

    // status: held, by this process, with no record (there was no room).
    let st = status_json(&run, "job");
    let res = &st["resources"][0];
    assert_eq!(res["tickets"], 1, "N recorded without room: {st}");
    assert_eq!(
        res["slots"][0],
        serde_json::json!({"slot": 0, "held": true, "lock_pid": std::process::id()}),
        "{st}"
    );
    let out = output(elect(["status", "-d"]).arg(&run));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("could not be written"), "{text}");

    // The participants still agree on N.
    match election(&run, 2).try_obtain() {
        Err(elect::Error::TicketMismatch { asked, agreed, .. }) => {
            assert_eq!((asked, agreed), (2, 1));
        }
        other => panic!("expected a mismatch, got {other:?}"),
    }

    // A waiter stands in line on the full disk and gets the slot when it
    // is released.
    let mut waiter = Proc::spawn(elect(["run", "-q", "-d"]).arg(&run).args([
        "job",
        "--",
        "sh",
        "-c",
        "echo \"$ELECT_TOKEN\"",
    ]));
    wait_until("the waiter in line", || {
        status_json(&run, "job")["resources"][0]["waiters"]
            .as_array()
            .is_some_and(|w| w.len() == 1)
    });
    let first_token = first.token();
    first.release();
    let lines = waiter.stdout_lines();
    let second: u64 = next_line(&lines).parse().expect("a token");
    let (st, err) = waiter.finish();
    assert_eq!(code(st), 0, "{err}");
    assert!(
        second > first_token,
        "tokens increase: {second} <= {first_token}"
    );
    let third = e.obtain().unwrap().token();
    assert!(third > second, "tokens increase: {third} <= {second}");

    // What is left takes no room and harms nothing.
    let dir = run.join("job");
    let tickets = std::fs::read(dir.join("tickets")).unwrap();
    assert_eq!(tickets, [0], "N = 1 as the length of a hole");
    assert_eq!(std::fs::metadata(dir.join("token")).unwrap().len(), 0);
    assert_eq!(std::fs::metadata(dir.join("slot.0")).unwrap().len(), 0);

    // With room again, everything is written as usual.
    std::fs::remove_file(&disk.filler).unwrap();
    let fourth = e.obtain().unwrap();
    assert!(fourth.token() > third);
    let st = status_json(&run, "job");
    assert_eq!(
        st["resources"][0]["slots"][0]["pid"],
        std::process::id(),
        "{st}"
    );
    drop(fourth);
    drop(e);
    // A new first participant writes N as text.
    let out = output(
        elect(["run", "-t", "3", "-d"])
            .arg(&run)
            .args(["job", "--", "true"]),
    );
    assert_eq!(
        code(out.status),
        0,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(dir.join("tickets")).unwrap(), "3\n");
    let token = std::fs::read_to_string(dir.join("token")).unwrap();
    assert_eq!(token.len(), 21, "{token:?}");
}

#[test]
fn elect_run_on_a_full_disk_runs_its_command() {
    let Some(disk) = FullDisk::new("elect_run_on_a_full_disk_runs_its_command") else {
        return;
    };
    let out = output(elect(["run", "-t", "2", "-d"]).arg(disk.run()).args([
        "job",
        "--",
        "sh",
        "-c",
        "echo slot $ELECT_SLOT",
    ]));
    assert_eq!(
        code(out.status),
        0,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "slot 0\n");
    let st = status_json(&disk.run(), "job");
    assert_eq!(st["resources"][0]["tickets"], 2, "{st}");
}
