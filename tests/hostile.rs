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
fn run_dir_that_is_a_symlink_of_a_stranger_is_refused() {
    // A link that someone else could have put there: here, in a directory
    // anyone may write (see also the tests with real users below).
    let tmp = tempfile::tempdir().unwrap();
    let elsewhere = tmp.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let open = tmp.path().join("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let link = open.join("run");
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
    // The caller's own link in the caller's own directory is followed.
    let mine = tmp.path().join("mine");
    symlink(&elsewhere, &mine).unwrap();
    assert!(election(&mine, "job").try_obtain().unwrap().is_some());
    assert!(elsewhere.join("job").is_dir());
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
            // What it holds, for a person to see (a control character may
            // be shown as something printable).
            assert!(content.starts_with("12x"), "{content:?}");
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
    // A repair ahead of the clock (the counter's start) goes on from its
    // number.
    let ahead = u64::MAX / 2;
    fs::write(&token, ahead.to_string()).unwrap();
    assert_eq!(
        e.obtain().unwrap().token(),
        ahead + 1,
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

#[test]
fn a_link_fifo_or_directory_in_the_line_holds_up_nobody_and_is_never_followed() {
    // A place in the line is a regular file a waiter made. Anything else
    // named like a place (here, as the first of all) is no waiter: a wait
    // goes past it; what a link points to is never opened, written or
    // locked, and the odd entry is left where it is.
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let victim = tmp.path().join("victim");
    fs::write(&victim, "not elect's").unwrap();
    let modified = fs::metadata(&victim).unwrap().modified().unwrap();
    for kind in ["link", "fifo", "dir"] {
        let e = Election::builder(kind)
            .tickets(2)
            .dir(&run)
            .build()
            .unwrap();
        drop(e.obtain().unwrap());
        let line = run.join(kind).join("line");
        fs::create_dir_all(&line).unwrap();
        let odd = line.join("00000000000000000001.1");
        match kind {
            "link" => symlink(&victim, &odd).unwrap(),
            "fifo" => {
                let c = std::ffi::CString::new(odd.to_str().unwrap()).unwrap();
                // SAFETY: valid C string.
                assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
            }
            _ => fs::create_dir(&odd).unwrap(),
        }
        // Both slots held: a wait stands in line behind the odd entry and
        // must still be served when a slot is freed.
        let (a, b) = (e.obtain().unwrap(), e.obtain().unwrap());
        let e2 = e.clone();
        let waiter = std::thread::spawn(move || {
            e2.obtain_timeout(std::time::Duration::from_secs(60))
                .map(|t| t.map(|t| t.slot()))
        });
        let places = line.clone();
        support::wait_until("the waiter stands in line", move || {
            fs::read_dir(&places).map_or(0, |d| d.count()) == 2
        });
        let freed = a.slot();
        drop(a);
        let got = waiter.join().unwrap().unwrap();
        assert_eq!(got, Some(freed), "{kind}: the odd entry held the line up");
        drop(b);
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
            fs::symlink_metadata(&odd).is_ok(),
            "{kind}: removed, though it is no place elect made"
        );
    }
}

// ---------------------------------------------------------------------------
// Other users. These make real users with useradd when run as root (as CI
// runs them) and run `elect` as them with setpriv; elsewhere they print why
// they are skipped.

/// The users of these tests: `a` and `b` share the group `team`; `c` does
/// not. Each also has a group of its own.
struct Users {
    a: &'static str,
    b: &'static str,
    c: &'static str,
    team: &'static str,
}

/// Makes the users once per test binary; `None` (with the reason printed)
/// where that cannot be done.
fn users(test: &str) -> Option<&'static Users> {
    static MADE: std::sync::OnceLock<Result<Users, String>> = std::sync::OnceLock::new();
    let made = MADE.get_or_init(|| {
        if !is_root() {
            return Err("needs root to make users with useradd".into());
        }
        let users = Users {
            a: "elect-ha",
            b: "elect-hb",
            c: "elect-hc",
            team: "elect-hteam",
        };
        let ok = |cmd: &mut Command| cmd.status().is_ok_and(|s| s.success());
        let quiet = |c: &mut Command| {
            c.stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
        };
        let mut probe = Command::new("getent");
        quiet(probe.args(["group", users.team]));
        if !ok(&mut probe) && !ok(Command::new("groupadd").arg(users.team)) {
            return Err("groupadd failed".into());
        }
        for (name, in_team) in [(users.a, true), (users.b, true), (users.c, false)] {
            let mut probe = Command::new("id");
            quiet(probe.arg(name));
            if ok(&mut probe) {
                continue;
            }
            let mut add = Command::new("useradd");
            add.args(["-M", "-U", "-s", "/usr/sbin/nologin"]);
            if in_team {
                add.args(["-G", users.team]);
            }
            if !ok(add.arg(name)) {
                return Err(format!("useradd {name} failed"));
            }
        }
        let mut setpriv = Command::new("setpriv");
        quiet(setpriv.arg("--version"));
        if !ok(&mut setpriv) {
            return Err("setpriv (util-linux) is missing".into());
        }
        Ok(users)
    });
    match made {
        Ok(u) => Some(u),
        Err(why) => {
            eprintln!("SKIPPED {test}: {why}");
            None
        }
    }
}

fn uid_of(user: &str) -> u32 {
    let out = Command::new("id").args(["-u", user]).output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// A shell command run as `user` (with its groups) under umask 022, with no
/// run directory in its environment.
fn as_user(user: &str, script: &str) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={user}"))
        .arg(format!("--regid={user}"))
        .args(["--init-groups", "--", "sh", "-c"])
        .arg(format!("umask 022; {script}"))
        .env("ELECT", env!("CARGO_BIN_EXE_elect"))
        .env_remove("ELECT_DIR")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("ELECT_GROUP_SHARED")
        .stdin(std::process::Stdio::null());
    cmd
}

/// Runs `script` as `user`: exit code, stdout, stderr.
fn run_as(user: &str, script: &str) -> (i32, String, String) {
    let out = as_user(user, script).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A directory like /tmp (root's, 1777) that every test user can use, and
/// that the binary under test is reachable from.
fn common_ground() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o1777)).unwrap();
    tmp
}

/// Every file under `dir` with its length, to show nothing was written.
fn snapshot(dir: &Path) -> Vec<(String, u64)> {
    let mut all: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let meta = e.metadata().unwrap();
            (e.file_name().to_string_lossy().into_owned(), meta.len())
        })
        .collect();
    all.sort();
    all
}

/// A planted resource: `run/job` with 0666 files, made by `user`.
fn plant(user: &str, run: &Path, run_mode: &str) {
    let script = format!(
        "mkdir -p -m {run_mode} {r} && chmod {run_mode} {r} && mkdir -m 0777 {r}/job && \
         for f in slot.0 tickets token; do : > {r}/job/$f; chmod 0666 {r}/job/$f; done",
        r = run.display()
    );
    let (code, _, err) = run_as(user, &script);
    assert_eq!(code, 0, "planting as {user}: {err}");
}

#[test]
fn default_run_dir_planted_by_another_user_is_refused() {
    let Some(u) = users("default_run_dir_planted_by_another_user_is_refused") else {
        return;
    };
    // The victim's default run directory, made before the victim ever ran.
    let victim_dir = Path::new("/tmp").join(format!("elect-{}", uid_of(u.a)));
    let _ = fs::remove_dir_all(&victim_dir);
    plant(u.b, &victim_dir, "0755");
    let before = snapshot(&victim_dir.join("job"));
    let (code, out, err) = run_as(u.a, "\"$ELECT\" run job -- echo ran");
    let _ = fs::remove_dir_all(&victim_dir);
    assert_eq!(code, 125, "{err}");
    assert!(!out.contains("ran"), "the command must not run: {out}");
    for part in [victim_dir.to_str().unwrap(), u.b, "0755", "ELECT_DIR"] {
        assert!(err.contains(part), "the message names {part:?}: {err}");
    }
    assert!(err.starts_with("elect: "), "{err}");
    assert_eq!(before.len(), 3);
    assert!(before.iter().all(|(_, len)| *len == 0));
}

#[test]
fn run_dir_planted_for_root_is_refused_and_left_as_it_was() {
    let Some(u) = users("run_dir_planted_for_root_is_refused_and_left_as_it_was") else {
        return;
    };
    // A root cron job's run directory made by a user first: the same rule.
    let ground = common_ground();
    let run = ground.path().join("elect-0");
    plant(u.b, &run, "0755");
    let before = snapshot(&run.join("job"));
    let e = election(&run, "job");
    let reason = unsafe_reason(e.try_obtain().unwrap_err());
    assert!(reason.contains(u.b) && reason.contains("0755"), "{reason}");
    assert_eq!(snapshot(&run.join("job")), before, "nothing written");
    // Planted files in a run directory of root's own: refused too, file by
    // file, since 0666 lets anyone rewrite tokens or records.
    let mine = ground.path().join("mine");
    fs::create_dir(&mine).unwrap();
    fs::set_permissions(&mine, fs::Permissions::from_mode(0o700)).unwrap();
    fs::create_dir(mine.join("job")).unwrap();
    fs::set_permissions(mine.join("job"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(mine.join("job/token"), "").unwrap();
    fs::set_permissions(mine.join("job/token"), fs::Permissions::from_mode(0o666)).unwrap();
    let reason = unsafe_reason(election(&mine, "job").try_obtain().unwrap_err());
    assert!(
        reason.contains("0666") && reason.contains("chmod"),
        "{reason}"
    );
}

#[test]
fn group_writable_run_dir_is_refused_without_group_sharing() {
    let Some(u) = users("group_writable_run_dir_is_refused_without_group_sharing") else {
        return;
    };
    let ground = common_ground();
    let run = ground.path().join("team-run");
    let r = run.display();
    let (code, _, err) = run_as(
        u.a,
        &format!(
            "mkdir -m 2770 {r} && chgrp {} {r} && chmod 2770 {r}",
            u.team
        ),
    );
    assert_eq!(code, 0, "{err}");
    // A member of the group plants a resource directory; the owner's run
    // refuses the group-writable run directory before looking inside.
    let (code, _, err) = run_as(u.b, &format!("mkdir -m 0777 {r}/job"));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run_as(u.a, &format!("\"$ELECT\" run -d {r} job -- true"));
    assert_eq!(code, 125, "{err}");
    assert!(
        err.contains("2770") && err.contains("--group-shared"),
        "{err}"
    );
    assert_eq!(
        fs::read_dir(run.join("job")).unwrap().count(),
        0,
        "nothing made in the planted directory"
    );
    // Even with group sharing, a directory anyone may write is refused.
    let (code, _, err) = run_as(
        u.a,
        &format!("\"$ELECT\" run --group-shared -d {r} job -- true"),
    );
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("anyone may write"), "{err}");
}

#[test]
fn group_sharing_lets_two_members_take_turns_and_keeps_a_third_user_out() {
    let Some(u) = users("group_sharing_lets_two_members_take_turns_and_keeps_a_third_user_out")
    else {
        return;
    };
    let ground = common_ground();
    let run = ground.path().join("shared");
    let r = run.display();
    let (code, _, err) = run_as(
        u.a,
        &format!(
            "mkdir -m 2770 {r} && chgrp {} {r} && chmod 2770 {r}",
            u.team
        ),
    );
    assert_eq!(code, 0, "{err}");
    // `a` holds the ticket (under umask 022) until its stdin closes.
    let hold = |user: &str| {
        let mut child = as_user(
            user,
            &format!(
                "exec \"$ELECT\" run --group-shared -d {r} job -- sh -c 'echo held; read x; true'"
            ),
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
        let mut line = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "held\n", "{user} holds");
        child
    };
    let release = |mut child: std::process::Child| {
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success());
    };
    let a = hold(u.a);
    // Modes as documented whatever the umask, in the run directory's group.
    use std::os::unix::fs::MetadataExt;
    let team_gid = fs::metadata(&run).unwrap().gid();
    let job = run.join("job");
    let meta = fs::metadata(&job).unwrap();
    assert_eq!((meta.mode() & 0o7777, meta.gid()), (0o2770, team_gid));
    for f in ["slot.0", "tickets", "token"] {
        let meta = fs::metadata(job.join(f)).unwrap();
        assert_eq!((meta.mode() & 0o7777, meta.gid()), (0o660, team_gid), "{f}");
    }
    // `b` sees `a` hold it, and cannot take it meanwhile.
    let status = |user: &str| {
        let (code, out, err) = run_as(
            user,
            &format!("\"$ELECT\" status --group-shared -d {r} job --json"),
        );
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["resources"][0]["slots"][0].clone()
    };
    let seen = status(u.b);
    assert_eq!(seen["held"], true, "{seen}");
    let a_pid = seen["pid"].as_u64().unwrap();
    assert_eq!(a_pid, a.id() as u64, "{seen}");
    let (code, _, err) = run_as(
        u.b,
        &format!("\"$ELECT\" run --group-shared -n -d {r} job -- true"),
    );
    assert_eq!(code, 75, "{err}");
    // Turns: `a` lets go, `b` takes it, `a` sees `b`.
    release(a);
    let b = hold(u.b);
    let seen = status(u.a);
    assert_eq!(
        (seen["held"].clone(), seen["pid"].as_u64()),
        (serde_json::Value::Bool(true), Some(b.id() as u64)),
        "{seen}"
    );
    release(b);
    // `c` is in no group of the directory: refused, with or without sharing.
    for flag in ["--group-shared", ""] {
        let (code, _, err) = run_as(u.c, &format!("\"$ELECT\" run {flag} -n -d {r} job -- true"));
        assert_eq!(code, 125, "{flag}: {err}");
        assert!(err.contains(&*r.to_string()), "{err}");
    }
    // Without asking for sharing, a member is refused (and told about it).
    let (code, _, err) = run_as(u.b, &format!("\"$ELECT\" run -n -d {r} job -- true"));
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("--group-shared"), "{err}");
}

#[test]
fn links_are_followed_only_where_nobody_else_could_have_made_them() {
    let Some(u) = users("links_are_followed_only_where_nobody_else_could_have_made_them") else {
        return;
    };
    let ground = common_ground();
    let g = ground.path();
    // /var/lock is root's link to /run/lock on Debian: a natural --dir.
    let var_lock = Path::new("/var/lock");
    if fs::symlink_metadata(var_lock).is_ok_and(|m| m.file_type().is_symlink()) {
        let name = format!("elect-hostile-test-{}", std::process::id());
        let t = election(var_lock, &name).try_obtain().unwrap();
        assert!(t.is_some(), "/var/lock is usable");
        drop(t);
        fs::remove_dir_all(Path::new("/run/lock").join(&name)).unwrap();
    } else {
        eprintln!("note: /var/lock is not a link here; its case is not tried");
    }
    // Root's own link in a sticky directory: followed.
    fs::create_dir(g.join("real")).unwrap();
    fs::set_permissions(g.join("real"), fs::Permissions::from_mode(0o700)).unwrap();
    symlink(g.join("real"), g.join("roots-link")).unwrap();
    assert!(
        election(&g.join("roots-link"), "job")
            .try_obtain()
            .unwrap()
            .is_some()
    );
    // A link another user made (in a sticky directory anyone can add to)
    // pointing at the victim's own directory: not followed.
    let (code, _, err) = run_as(u.b, &format!("ln -s {0}/real {0}/planted", g.display()));
    assert_eq!(code, 0, "{err}");
    let reason = unsafe_reason(
        election(&g.join("planted"), "job")
            .try_obtain()
            .unwrap_err(),
    );
    assert!(
        reason.contains("symbolic link") && reason.contains(u.b),
        "{reason}"
    );
    // The caller's own link in a directory others may write (no sticky
    // bit): they could swap it, so it is not followed either.
    let open = g.join("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    symlink(g.join("real"), open.join("link")).unwrap();
    let reason = unsafe_reason(
        election(&open.join("link"), "job")
            .try_obtain()
            .unwrap_err(),
    );
    assert!(reason.contains("replace the link"), "{reason}");
    // Followed links are vetted along the whole way: a root link leading
    // through a planted one is refused.
    symlink(g.join("planted"), g.join("chain")).unwrap();
    let reason = unsafe_reason(election(&g.join("chain"), "job").try_obtain().unwrap_err());
    assert!(reason.contains(u.b), "{reason}");
}

#[test]
fn group_sharing_from_the_environment_makes_its_modes_whatever_the_umask() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("shared");
    let elect = |value: &str| {
        Command::new("sh")
            .args(["-c", "umask 077; exec \"$0\" \"$@\""])
            .arg(env!("CARGO_BIN_EXE_elect"))
            .args(["run", "-n", "-d"])
            .arg(&run)
            .args(["job", "--", "true"])
            .env("ELECT_GROUP_SHARED", value)
            .output()
            .unwrap()
    };
    let out = elect("1");
    assert!(out.status.success(), "{out:?}");
    use std::os::unix::fs::MetadataExt;
    let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o7777;
    assert_eq!(mode(&run), 0o2770);
    assert_eq!(mode(&run.join("job")), 0o2770);
    assert_eq!(mode(&run.join("job/slot.0")), 0o660);
    // Unset (or 0), the same directory is refused: it is group-writable.
    let out = elect("0");
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--group-shared"), "{err}");
}
