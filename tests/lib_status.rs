//! Status agrees with the kernel: while a holder in another process is
//! alive, its slot shows held with that process's pid, token and label;
//! after it is SIGKILLed the slot shows free although its file still holds
//! the dead holder's record; with garbage (up to 10 MB) written into a slot
//! file, status still works, `held` still comes from the kernel, and the
//! record is either absent or a real one. Asking for status never takes a
//! ticket. A run directory of 1500 resources, which status reads with a
//! thread per CPU, is listed whole and in order, each resource true to its
//! locks, and an unsafe directory among them is still an error. Where
//! `/proc/locks` is hidden (a mount namespace with an empty /proc), status
//! and watch are an error that names it, and take nothing from a holder.

mod support;

use std::io::Write;
use std::path::Path;

use elect::{Election, SlotStatus};
use support::{Role, Worker, holds};

#[test]
#[ignore = "the body of worker processes; the other tests run it"]
fn worker_process() {
    support::worker_main();
}

fn slots(run: &Path, name: &str) -> Vec<SlotStatus> {
    let mut st = elect::status(Some(run), Some(name)).unwrap();
    assert_eq!(st.resources.len(), 1);
    st.resources.pop().unwrap().slots
}

fn scribble(path: &Path, bytes: &[u8]) {
    // In place, as a stray writer would: same inode, new contents.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

#[test]
fn status_shows_a_live_holder_and_forgets_a_killed_one() {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    let mut w = Worker::spawn_labelled(
        Role::Hold { mode: "obtain" },
        run,
        "shown",
        2,
        Some("nightly job"),
    );
    let (slot, token) = w.expect_held();
    assert_eq!(slot, 0);

    let s = slots(run, "shown");
    assert_eq!(s.len(), 2);
    assert!(s[0].held);
    let rec = s[0].holder.as_ref().expect("the holder's record");
    assert_eq!(
        (rec.pid, rec.token, rec.label.as_str()),
        (w.pid, token, "nightly job")
    );
    let age = std::time::SystemTime::now().duration_since(rec.since);
    assert!(
        age.is_ok_and(|a| a < std::time::Duration::from_secs(60)),
        "{:?}",
        rec.since
    );
    assert!(!s[1].held);
    assert_eq!(s[1].holder, None);
    assert!(
        holds(w.pid, &run.join("shown/slot.0"), true),
        "the kernel disagrees"
    );

    // The contract's JSON.
    let json = serde_json::to_value(elect::status(Some(run), None).unwrap()).unwrap();
    assert_eq!(json["dir"], run.to_str().unwrap());
    let res = &json["resources"][0];
    assert_eq!(
        (res["name"].as_str(), res["tickets"].as_u64()),
        (Some("shown"), Some(2))
    );
    assert_eq!(res["slots"][0]["held"], true);
    assert_eq!(res["slots"][0]["pid"], w.pid);
    assert_eq!(res["slots"][0]["token"], token);
    assert_eq!(res["slots"][0]["label"], "nightly job");
    let since = res["slots"][0]["since"].as_str().unwrap();
    assert!(
        since.len() == 20 && since.ends_with('Z') && since.as_bytes()[10] == b'T',
        "{since}"
    );
    assert_eq!(
        res["slots"][1],
        serde_json::json!({"slot": 1, "held": false})
    );

    // Asking took nothing: the other slot can still be had by another process.
    let mut other = Worker::spawn(Role::Hold { mode: "try" }, run, "shown", 2);
    assert_eq!(other.expect_held().0, 1);
    other.finish();

    w.kill();
    let s = slots(run, "shown");
    assert!(!s[0].held, "a killed holder still shows: {s:?}");
    assert_eq!(s[0].holder, None);
    // Though the file still holds the dead holder's record.
    let stale = std::fs::read(run.join("shown/slot.0")).unwrap();
    let stale: serde_json::Value = serde_json::from_slice(&stale).expect("a JSON record");
    assert_eq!(stale["pid"], w.pid);
}

#[test]
fn status_survives_garbage_in_slot_files() {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    let mut w = Worker::spawn(Role::Hold { mode: "obtain" }, run, "garbage", 2);
    let (_, token) = w.expect_held();
    let slot0 = run.join("garbage/slot.0");
    // Make slot.1 exist, free.
    let e = support::election(run, "garbage", 2);
    drop(e.try_obtain().unwrap().unwrap());
    let slot1 = run.join("garbage/slot.1");

    let big = vec![b'{'; 10 << 20];
    let record_then_junk = {
        let mut v = std::fs::read(&slot0).unwrap();
        v.extend_from_slice(b"\0\0junk");
        v
    };
    let garbage: [&[u8]; 7] = [
        b"",
        b"\0\xff\xfe not a record",
        b"{\"pid\": \"forty-two\"}",
        b"null",
        b"\n\n\n",
        &record_then_junk,
        &big,
    ];
    for g in garbage {
        scribble(&slot0, g);
        scribble(&slot1, g);
        let s = slots(run, "garbage");
        let what = String::from_utf8_lossy(&g[..g.len().min(40)]);
        assert!(s[0].held, "{what}: a live holder shows free");
        assert!(!s[1].held, "{what}: a free slot shows held");
        assert_eq!(s[1].holder, None, "{what}");
        // Garbage is no record; if anything is shown, it is the real one.
        if let Some(r) = &s[0].holder {
            assert_eq!((r.pid, r.token), (w.pid, token), "{what}");
        }
    }
    // The holder is undisturbed and still the holder.
    w.send("intact");
    assert_eq!(w.expect("INTACT"), "true");
    assert!(e.try_obtain().unwrap().is_some_and(|t| t.slot() == 1));

    // After a release, the next holder's record replaces the 10 MB.
    w.send("release");
    w.expect("RELEASED");
    assert!(!slots(run, "garbage")[0].held);
    let t = e.try_obtain().unwrap().expect("slot 0 is free");
    assert_eq!(t.slot(), 0);
    let s = slots(run, "garbage");
    assert_eq!(s[0].holder.as_ref().map(|r| r.token), Some(t.token()));
    assert!(std::fs::metadata(&slot0).unwrap().len() < 4096);
    w.finish();
}

#[test]
fn status_of_a_large_run_directory_is_whole_in_order_and_true_to_the_kernel() {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    // Enough resources that status reads them with a thread per CPU, each
    // taking a run of names; the last one is held by another process, so it
    // falls in the last part.
    let count = 1500;
    let name = |i: usize| format!("r{i:04}");
    let mut held = Vec::new();
    for i in 0..count {
        let e = Election::builder(name(i))
            .tickets(1 + (i % 3) as u32)
            .dir(run)
            .build()
            .unwrap();
        let t = e.try_obtain().unwrap().expect("a fresh resource is free");
        if i % 10 == 0 {
            held.push(t);
        }
    }
    let mut w = Worker::spawn(Role::Hold { mode: "obtain" }, run, "zz-elsewhere", 1);
    let (_, other_token) = w.expect_held();

    let st = elect::status(Some(run), None).unwrap();
    let names: Vec<&str> = st.resources.iter().map(|r| r.name.as_str()).collect();
    let expected: Vec<String> = (0..count).map(name).collect();
    assert_eq!(names.len(), count + 1);
    assert_eq!(names[..count], expected);
    assert_eq!(names[count], "zz-elsewhere");
    let mut held = held.iter();
    for (i, r) in st.resources[..count].iter().enumerate() {
        assert_eq!(r.tickets, 1 + (i % 3) as u32, "{}", r.name);
        assert_eq!(r.slots.len(), r.tickets as usize, "{}", r.name);
        assert!(r.slots[1..].iter().all(|s| !s.held), "{r:?}");
        if i % 10 == 0 {
            let t = held.next().unwrap();
            assert!(r.slots[0].held, "{r:?}");
            assert_eq!(r.slots[0].holder.as_ref().map(|h| h.token), Some(t.token()));
        } else {
            assert!(!r.slots[0].held, "{r:?}");
            assert_eq!(r.slots[0].holder, None);
        }
    }
    let last = &st.resources[count].slots[0];
    assert!(last.held);
    assert_eq!(
        last.holder.as_ref().map(|h| (h.pid, h.token)),
        Some((w.pid, other_token))
    );

    // An unsafe resource directory in a later part is still an error that
    // names it, as it is when read by one thread.
    use std::os::unix::fs::PermissionsExt;
    let bad = run.join(name(count - 1));
    std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = elect::status(Some(run), None).unwrap_err().to_string();
    assert!(err.contains(&*bad.to_string_lossy()), "{err}");
    w.finish();
}

/// Where [`library_without_proc_locks_refuses_to_guess`] tells its body,
/// re-run in a mount namespace without /proc, which run directory to ask.
const NO_PROC_DIR: &str = "ELECT_TEST_NO_PROC_DIR";
/// What begins each answer of that body (the test harness may print its
/// own words before the first on the same line).
const NO_PROC_MARK: &str = "[no-proc] ";

/// Runs `elect::status`, `Election::status` and `Election::watch` against
/// the run directory in [`NO_PROC_DIR`] and prints, for each, `ok` or the
/// error, each after [`NO_PROC_MARK`]; a never-used name prints how many
/// resources it lists. Does nothing without that variable.
#[test]
#[ignore = "the body of library_without_proc_locks_refuses_to_guess; it runs it"]
fn library_without_proc_locks_body() {
    let Some(run) = std::env::var_os(NO_PROC_DIR) else {
        return;
    };
    let run = Path::new(&run);
    fn say<T>(what: &str, r: elect::Result<T>) {
        match r {
            Ok(_) => println!("{NO_PROC_MARK}{what}: ok"),
            Err(e) => {
                let at_proc_locks = matches!(
                    &e,
                    elect::Error::Io { path, .. } if path == Path::new("/proc/locks")
                );
                println!("{NO_PROC_MARK}{what}: error (at /proc/locks: {at_proc_locks}) {e}");
            }
        }
    }
    say("status", elect::status(Some(run), Some("held")));
    say("status of all", elect::status(Some(run), None));
    let e = Election::builder("held")
        .tickets(2)
        .dir(run)
        .build()
        .unwrap();
    say("election status", e.status());
    say("watch", e.watch());
    match elect::status(Some(run), Some("never-used")) {
        Ok(st) => println!("{NO_PROC_MARK}never used: {} resources", st.resources.len()),
        Err(e) => println!("{NO_PROC_MARK}never used: error {e}"),
    }
}

#[test]
fn library_without_proc_locks_refuses_to_guess() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "SKIPPED library_without_proc_locks_refuses_to_guess: needs root to mount over /proc"
        );
        return;
    }
    let hide = "mount -t tmpfs none /proc && ! test -e /proc/locks && exec \"$0\" \"$@\"";
    let probe = std::process::Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            hide,
            "true",
        ])
        .output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!(
            "SKIPPED library_without_proc_locks_refuses_to_guess: unshare --mount cannot hide /proc here ({probe:?})"
        );
        return;
    }
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path();
    let mut w = Worker::spawn(Role::Hold { mode: "obtain" }, run, "held", 2);
    let (slot, token) = w.expect_held();
    let slot_file = run.join("held").join(format!("slot.{slot}"));

    let out = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", hide])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "library_without_proc_locks_body",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(NO_PROC_DIR, run)
        .env_remove("ELECT_DIR")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let answers: Vec<&str> = text
        .split(NO_PROC_MARK)
        .skip(1)
        .map(|a| a.lines().next().unwrap_or(""))
        .collect();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for what in ["status", "status of all", "election status", "watch"] {
        let line = answers
            .iter()
            .find(|l| l.starts_with(&format!("{what}: ")))
            .unwrap_or_else(|| panic!("no {what:?} in {text}"));
        assert!(
            line.starts_with(&format!(
                "{what}: error (at /proc/locks: true) cannot read /proc/locks: "
            )) && line.contains("mount /proc"),
            "{line}"
        );
    }
    assert!(answers.contains(&"never used: 0 resources"), "{text}");

    // Nothing was taken from the holder, and the other slot is still free.
    assert!(holds(w.pid, &slot_file, true));
    let s = slots(run, "held");
    assert!(s[slot as usize].held);
    assert_eq!(
        s[slot as usize].holder.as_ref().map(|h| h.token),
        Some(token)
    );
    let e = support::election(run, "held", 2);
    let t = e.try_obtain().unwrap().expect("the other slot is free");
    assert_ne!(t.slot(), slot);
    drop(t);
    drop(e);
    w.finish();
}
