//! Status agrees with the kernel: while a holder in another process is
//! alive, its slot shows held with that process's pid, token and label;
//! after it is SIGKILLed the slot shows free although its file still holds
//! the dead holder's record; with garbage (up to 10 MB) written into a slot
//! file, status still works, `held` still comes from the kernel, and the
//! record is either absent or a real one. Asking for status never takes a
//! ticket.

mod support;

use std::io::Write;
use std::path::Path;

use elect::{Election, HolderRecord, SlotStatus};
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
    assert!(
        rec.since.ends_with('Z') && rec.since.contains('T'),
        "{}",
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
    assert_eq!(HolderRecord::parse(&stale).map(|r| r.pid), Some(w.pid));
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
    let e = Election::builder("garbage")
        .tickets(2)
        .dir(run)
        .build()
        .unwrap();
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
