//! Hostile run directories: symbolic links, foreign owners, world-writable
//! directories, read-only and full file systems, FIFOs, sockets and
//! directories where slot files belong, garbage and damaged files. Each case
//! gets a clear error or is handled safely, and nothing outside the run
//! directory is ever written.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

use elect::{Election, Error};

mod support;

fn election(dir: &Path, name: &str) -> Election {
    Election::builder(name).dir(dir).build().unwrap()
}

fn is_root() -> bool {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() == 0 }
}

fn unsafe_reason(err: Error) -> String {
    match err {
        Error::Unsafe { reason, .. } => reason,
        other => panic!("expected Error::Unsafe, got {other:?}"),
    }
}

#[test]
fn run_dir_that_is_a_symlink_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let elsewhere = tmp.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let link = tmp.path().join("run");
    symlink(&elsewhere, &link).unwrap();
    let err = election(&link, "job").try_obtain().unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("symbolic link"), "{msg}");
    assert!(msg.contains(link.to_str().unwrap()), "{msg}");
    assert_eq!(
        fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "nothing written through the link"
    );
}

#[test]
fn resource_dir_that_is_a_symlink_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let elsewhere = tmp.path().join("elsewhere");
    fs::create_dir(&run).unwrap();
    fs::create_dir(&elsewhere).unwrap();
    symlink(&elsewhere, run.join("job")).unwrap();
    let reason = unsafe_reason(election(&run, "job").try_obtain().unwrap_err());
    assert!(reason.contains("symbolic link"), "{reason}");
    assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
}

#[test]
fn slot_file_replaced_by_a_symlink_is_neither_followed_nor_written() {
    let tmp = tempfile::tempdir().unwrap();
    let e = election(tmp.path(), "job");
    drop(e.obtain().unwrap()); // creates the resource directory and slot.0
    let precious = tmp.path().join("precious.txt");
    fs::write(&precious, "keep me").unwrap();
    let slot = tmp.path().join("job/slot.0");
    fs::remove_file(&slot).unwrap();
    symlink(&precious, &slot).unwrap();
    let reason = unsafe_reason(e.try_obtain().unwrap_err());
    assert!(reason.contains("symbolic link"), "{reason}");
    assert_eq!(fs::read_to_string(&precious).unwrap(), "keep me");
    // A dangling link is refused too, and nothing is created at its target.
    let target = tmp.path().join("would-be-created");
    fs::remove_file(&slot).unwrap();
    symlink(&target, &slot).unwrap();
    assert!(e.try_obtain().is_err());
    assert!(!target.exists());
}

#[test]
fn slot_file_with_a_second_hard_link_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let e = election(tmp.path(), "job");
    drop(e.obtain().unwrap());
    let other = tmp.path().join("other-name");
    fs::hard_link(tmp.path().join("job/slot.0"), &other).unwrap();
    let reason = unsafe_reason(e.try_obtain().unwrap_err());
    assert!(reason.contains("hard link"), "{reason}");
}

#[test]
fn fifo_socket_or_directory_where_a_slot_belongs_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("job");
    fs::create_dir_all(&res).unwrap();
    let slot = res.join("slot.0");
    let e = election(tmp.path(), "job");

    let c = std::ffi::CString::new(slot.to_str().unwrap()).unwrap();
    // SAFETY: valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let reason = unsafe_reason(e.try_obtain().unwrap_err());
    assert!(reason.contains("FIFO"), "{reason}");
    fs::remove_file(&slot).unwrap();

    let _sock = std::os::unix::net::UnixListener::bind(&slot).unwrap();
    let reason = unsafe_reason(e.try_obtain().unwrap_err());
    assert!(reason.contains("socket"), "{reason}");
    fs::remove_file(&slot).unwrap();

    fs::create_dir(&slot).unwrap();
    let reason = unsafe_reason(e.try_obtain().unwrap_err());
    assert!(reason.contains("directory"), "{reason}");
    fs::remove_dir(&slot).unwrap();

    assert!(
        e.try_obtain().unwrap().is_some(),
        "usable once the intruder is gone"
    );
}

#[test]
fn world_writable_run_dir_without_sticky_bit_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    fs::create_dir(&run).unwrap();
    fs::set_permissions(&run, fs::Permissions::from_mode(0o777)).unwrap();
    let reason = unsafe_reason(election(&run, "job").try_obtain().unwrap_err());
    assert!(reason.contains("sticky"), "{reason}");
    assert_eq!(fs::read_dir(&run).unwrap().count(), 0, "nothing created");
    // With the sticky bit (like /tmp) it is safe to use.
    fs::set_permissions(&run, fs::Permissions::from_mode(0o1777)).unwrap();
    assert!(election(&run, "job").try_obtain().unwrap().is_some());
}

#[test]
fn run_dir_of_another_user_that_others_may_write_is_refused() {
    if !is_root() {
        eprintln!("skipped: needs root to give a directory to a second uid");
        return;
    }
    // A real second uid: the kernel needs no passwd entry for it.
    let other_uid = 4242;
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    fs::create_dir(&run).unwrap();
    fs::set_permissions(&run, fs::Permissions::from_mode(0o1777)).unwrap();
    std::os::unix::fs::chown(&run, Some(other_uid), Some(other_uid)).unwrap();
    let reason = unsafe_reason(election(&run, "job").try_obtain().unwrap_err());
    assert!(reason.contains("4242"), "{reason}");
    assert_eq!(fs::read_dir(&run).unwrap().count(), 0, "nothing created");
    // A resource directory planted by that user inside our own run dir too.
    let mine = tmp.path().join("mine");
    fs::create_dir(&mine).unwrap();
    fs::create_dir(mine.join("job")).unwrap();
    fs::set_permissions(mine.join("job"), fs::Permissions::from_mode(0o777)).unwrap();
    std::os::unix::fs::chown(mine.join("job"), Some(other_uid), None).unwrap();
    assert!(matches!(
        election(&mine, "job").try_obtain(),
        Err(Error::Unsafe { .. })
    ));
}

#[test]
fn unwritable_run_dir_gives_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    fs::create_dir(&run).unwrap();
    if is_root() {
        // Permission bits do not stop root; a read-only mount does.
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "ro,size=64k", "tmpfs"])
            .arg(&run)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("skipped: cannot mount a read-only tmpfs here (no mount privilege)");
            return;
        }
        let result = election(&run, "job").try_obtain();
        let _ = Command::new("umount").arg(&run).status();
        let msg = result.unwrap_err().to_string();
        assert!(msg.contains("Read-only"), "{msg}");
        assert!(msg.contains(run.to_str().unwrap()), "{msg}");
    } else {
        fs::set_permissions(&run, fs::Permissions::from_mode(0o500)).unwrap();
        let msg = election(&run, "job").try_obtain().unwrap_err().to_string();
        assert!(msg.contains("ermission denied"), "{msg}");
    }
}

#[test]
fn full_disk_fails_cleanly_and_keeps_the_token() {
    if !is_root() {
        eprintln!("skipped: needs root to mount a tiny tmpfs");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    fs::create_dir(&run).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs"])
        .arg(&run)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here (no mount privilege)");
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&run);
    let e = election(&run, "job");
    let first = e.obtain().unwrap().token();
    // Fill the file system to the last block.
    let filler = run.join("filler");
    let _ = fs::write(&filler, vec![0u8; 1 << 20]);
    let result = e.try_obtain();
    match result {
        Err(err) => {
            let msg = err.to_string();
            assert!(
                msg.contains("No space left") || msg.contains("disk full"),
                "{msg}"
            );
        }
        // The record of a slot file may still fit in a page tmpfs already
        // has; then the acquisition is simply fine.
        Ok(t) => assert!(t.is_some()),
    }
    fs::remove_file(&filler).unwrap();
    let after = e.obtain().unwrap().token();
    assert!(
        after > first,
        "the token never goes back: {after} <= {first}"
    );
}

#[test]
fn ten_megabytes_of_garbage_in_a_slot_file_is_survived() {
    let tmp = tempfile::tempdir().unwrap();
    let e = election(tmp.path(), "job");
    drop(e.obtain().unwrap());
    let slot = tmp.path().join("job/slot.0");
    let garbage: Vec<u8> = (0..10 << 20)
        .map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    fs::write(&slot, &garbage).unwrap();
    let st = e.status().unwrap();
    assert!(!st.slots[0].held);
    let t = e.obtain().unwrap();
    let st = e.status().unwrap();
    assert!(st.slots[0].held);
    assert_eq!(st.slots[0].holder.as_ref().unwrap().token, t.token());
    assert!(
        fs::metadata(&slot).unwrap().len() < 4096,
        "the garbage was replaced by the record"
    );
}

#[test]
fn damaged_token_file_is_an_error_not_a_reset() {
    let tmp = tempfile::tempdir().unwrap();
    let e = election(tmp.path(), "job");
    drop(e.obtain().unwrap());
    let token = tmp.path().join("job/token");
    fs::write(&token, "12x\n").unwrap();
    match e.try_obtain() {
        Err(Error::TokenDamaged { path, content }) => {
            assert_eq!(path, token);
            assert_eq!(content, "12x\n");
        }
        other => panic!("expected TokenDamaged, got {other:?}"),
    }
    assert_eq!(
        fs::read_to_string(&token).unwrap(),
        "12x\n",
        "left as it was"
    );
    assert!(
        e.status().unwrap().slots.iter().all(|s| !s.held),
        "no slot kept"
    );
    fs::write(&token, "41").unwrap();
    assert_eq!(
        e.obtain().unwrap().token(),
        42,
        "a repaired counter goes on from its number"
    );
}

#[test]
fn damaged_tickets_file_while_nobody_is_live_is_rewritten() {
    let tmp = tempfile::tempdir().unwrap();
    let e = Election::builder("job")
        .tickets(2)
        .dir(tmp.path())
        .build()
        .unwrap();
    drop(e.obtain().unwrap());
    // An election stays a live participant until it is dropped.
    drop(e);
    fs::write(tmp.path().join("job/tickets"), "banana").unwrap();
    let e = Election::builder("job")
        .tickets(2)
        .dir(tmp.path())
        .build()
        .unwrap();
    let _t = e.obtain().unwrap();
    assert_eq!(
        fs::read_to_string(tmp.path().join("job/tickets")).unwrap(),
        "2\n"
    );
}

#[test]
fn status_of_a_run_dir_with_strangers_in_it() {
    let tmp = tempfile::tempdir().unwrap();
    let _t = election(tmp.path(), "real").obtain().unwrap();
    fs::write(tmp.path().join("stray-file"), "x").unwrap();
    fs::create_dir(tmp.path().join(".hidden")).unwrap();
    let st = elect::status(Some(tmp.path()), None).unwrap();
    let names: Vec<_> = st.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["real"]);
}

#[test]
fn status_and_watch_read_past_a_fifo_or_directory_in_place_of_their_files() {
    // They read `tickets` and records only to show them, without the check
    // an acquisition makes: a FIFO (even one with no writer) or a directory
    // there must neither hang them nor turn into a record.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let res = dir.join("odd");
    fs::create_dir_all(&res).unwrap();
    for name in ["tickets", "slot.0"] {
        let c = std::ffi::CString::new(res.join(name).to_str().unwrap()).unwrap();
        // SAFETY: valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }
    fs::create_dir(res.join("slot.1")).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let st = elect::status(Some(&dir), None).unwrap();
        let mut w = election(&dir, "odd").watch().unwrap();
        let event = w
            .next_event_timeout(std::time::Duration::from_millis(50))
            .unwrap();
        tx.send((st, event)).unwrap();
    });
    let (st, event) = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("status and watch returned");
    assert_eq!(st.resources.len(), 1);
    let slots = &st.resources[0].slots;
    // No tickets file to read: as many slots as slot files.
    assert_eq!(slots.len(), 2);
    assert!(
        slots.iter().all(|s| !s.held && s.holder.is_none()),
        "{slots:?}"
    );
    assert!(event.is_none(), "{event:?}");
}

/// Whether a thread of this process is named `name`.
fn has_thread(name: &str) -> bool {
    fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .any(|t| fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
}

#[test]
fn seats_and_waiting_that_are_links_fifos_or_directories_cost_only_the_seats() {
    let _serial = support::serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let victim = tmp.path().join("victim");
    fs::write(&victim, "not elect's").unwrap();
    let modified = fs::metadata(&victim).unwrap().modified().unwrap();
    let me = std::process::id();
    for (name, waiting_is_a_dir) in [("seats", false), ("nowait", true)] {
        let e = Election::builder(name)
            .tickets(2)
            .dir(&run)
            .build()
            .unwrap();
        let held = [e.obtain().unwrap(), e.obtain().unwrap()];
        let res = run.join(name);
        symlink(&victim, res.join("seat.0")).unwrap();
        let c = std::ffi::CString::new(res.join("seat.1").to_str().unwrap()).unwrap();
        // SAFETY: valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        if waiting_is_a_dir {
            fs::create_dir(res.join("waiting")).unwrap();
        }
        let wait = || {
            let e = e.clone();
            std::thread::spawn(move || e.obtain_timeout(std::time::Duration::from_secs(60)))
        };
        let head = wait();
        support::wait_holds(me, &res.join("queue"), true);
        let behind = wait();
        support::wait_blocked_on(me, &res.join("queue"));
        // Woken with nothing free, the head tries to sit (it starts the
        // seats' helper first), but no seat file is one it may lock.
        fs::File::options()
            .write(true)
            .open(res.join("slot.0"))
            .unwrap()
            .set_modified(std::time::SystemTime::now())
            .unwrap();
        if !waiting_is_a_dir {
            support::wait_until("the head tries to sit", || has_thread("elect-seat"));
        }
        drop(held);
        // Both held at once (a ticket dropped early would free its slot
        // for the other).
        let got = [head, behind].map(|t| t.join().unwrap().unwrap().expect("a slot"));
        assert_ne!(got[0].slot(), got[1].slot(), "{name}");
        drop(got);
        assert_eq!(fs::read_to_string(&victim).unwrap(), "not elect's");
        assert_eq!(
            fs::metadata(&victim).unwrap().modified().unwrap(),
            modified,
            "the link's target was touched"
        );
        fs::File::open(&victim)
            .unwrap()
            .try_lock()
            .expect("the link's target is not locked");
        assert!(
            fs::symlink_metadata(res.join("seat.0"))
                .unwrap()
                .is_symlink()
        );
        drop(e);
    }
}
