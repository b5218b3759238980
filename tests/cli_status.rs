//! `elect status`: the contract's JSON, parsed and checked against the
//! kernel's locks; the table for a person; names never used; that asking
//! never takes a ticket; and that a large run directory is read whole where
//! no thread can be started.

mod cli_support;

use std::path::Path;

use cli_support::*;

fn holder(dir: &Path, name: &str, label: &str, ready: &Path) -> Proc {
    let mut p = Proc::spawn(
        elect(["run", "-t", "3", "--label", label, "-d"])
            .arg(dir)
            .args([name, "sh", "-c", &hold_script(ready)]),
    );
    wait_file(ready);
    let _ = p.exited();
    p
}

/// Checks every slot of `name` in `st` against /proc/locks; returns how
/// many are held.
fn check_against_kernel(dir: &Path, name: &str, st: &serde_json::Value) -> usize {
    let slots = st["resources"][0]["slots"].as_array().expect("slots");
    let mut held = 0;
    for s in slots {
        let i = s["slot"].as_u64().unwrap() as u32;
        let kernel = kernel_holds(&slot_file(dir, name, i));
        assert_eq!(s["held"] == true, kernel, "slot {i}: {st}");
        if kernel {
            held += 1;
            assert!(
                s["pid"].is_u64() && s["token"].is_u64() && s["since"].is_string(),
                "{st}"
            );
        } else {
            assert!(s.get("pid").is_none(), "a free slot has no holder: {st}");
        }
    }
    held
}

/// The resources' names in a status document, in its order.
fn names_in(st: &serde_json::Value) -> Vec<&str> {
    st["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| r["name"].as_str().expect("a name"))
        .collect()
}

/// Whether the kernel says exactly `n` slots of `pool` are held.
fn settled(dir: &Path, n: usize) -> bool {
    (0..3)
        .filter(|&i| kernel_holds(&slot_file(dir, "pool", i)))
        .count()
        == n
}

#[test]
fn status_json_matches_the_kernel() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let a = holder(&dir, "pool", "first holder", &tmp.path().join("a"));
    let b = holder(&dir, "pool", "second holder", &tmp.path().join("b"));

    let st = status_json(&dir, "pool");
    assert_eq!(st["dir"], dir.to_str().unwrap());
    let res = &st["resources"][0];
    assert_eq!(res["name"], "pool");
    assert_eq!(res["tickets"], 3);
    assert_eq!(res["slots"].as_array().unwrap().len(), 3);
    assert_eq!(check_against_kernel(&dir, "pool", &st), 2);
    let mut seen: Vec<(u64, String)> = res["slots"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["held"] == true)
        .map(|s| {
            (
                s["pid"].as_u64().unwrap(),
                s["label"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    seen.sort();
    let mut want = vec![
        (a.pid() as u64, "first holder".to_string()),
        (b.pid() as u64, "second holder".to_string()),
    ];
    want.sort();
    assert_eq!(seen, want);

    // Once a holder's command and its children are gone, both agree again.
    drop(a);
    wait_until("one slot held", || settled(&dir, 1));
    let st = status_json(&dir, "pool");
    assert_eq!(check_against_kernel(&dir, "pool", &st), 1);
    drop(b);
    wait_until("no slot held", || settled(&dir, 0));
    let st = status_json(&dir, "pool");
    assert_eq!(check_against_kernel(&dir, "pool", &st), 0);
    assert_eq!(st["resources"][0]["tickets"], 3, "of the last use");
}

#[test]
fn status_lists_every_resource_and_an_unused_name_is_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    for name in ["alpha", "beta.x"] {
        let out = output(elect(["run", "-d"]).arg(&dir).args([name, "true"]));
        assert!(out.status.success());
    }
    let out = output(elect(["status", "--json", "-d"]).arg(&dir));
    assert!(out.status.success());
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(names_in(&st), ["alpha", "beta.x"]);

    let st = status_json(&dir, "never-used");
    assert_eq!(st["resources"], serde_json::json!([]));
    let out = output(elect(["status", "-d"]).arg(&dir).arg("never-used"));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("never used"));
}

#[test]
fn status_table_for_a_person_and_it_takes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let h = holder(&dir, "pool", "nightly backup", &tmp.path().join("a"));
    for _ in 0..20 {
        let out = output(elect(["status", "-d"]).arg(&dir));
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("RESOURCE") && lines[0].contains("LABEL"),
            "{text}"
        );
        assert_eq!(lines.len(), 4, "header and 3 slots: {text}");
        let held: Vec<&&str> = lines.iter().filter(|l| l.contains(" held ")).collect();
        assert_eq!(held.len(), 1, "{text}");
        assert!(
            held[0].contains("nightly backup") && held[0].contains(&h.pid().to_string()),
            "{text}"
        );
    }
    // Two tickets are still free: status took none.
    let a = output(
        elect(["run", "-n", "-t", "3", "-d"])
            .arg(&dir)
            .args(["pool", "true"]),
    );
    assert_eq!(a.status.code(), Some(0));
    assert!(kernel_holds(&slot_file(&dir, "pool", 0)) || kernel_holds(&slot_file(&dir, "pool", 1)));
}

#[test]
fn status_of_a_large_directory_is_read_even_when_no_thread_can_be_started() {
    // A run directory this large is read by one thread per CPU; where the
    // kernel refuses threads (here a pids cgroup that allows the process
    // itself and nothing more), the command reads it alone instead.
    let cgroups = Path::new("/sys/fs/cgroup/pids");
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cg = cgroups.join(format!("elect-test-{}", std::process::id()));
    if cpus < 2 || std::fs::create_dir(&cg).is_err() {
        println!("SKIPPED: needs 2 CPUs and a writable pids cgroup (v1) at {cgroups:?}");
        return;
    }
    struct Remove<'a>(&'a Path);
    impl Drop for Remove<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(self.0);
        }
    }
    let _remove = Remove(&cg);
    std::fs::write(cg.join("pids.max"), "1").unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let names: Vec<String> = (0..600).map(|i| format!("r{i:03}")).collect();
    let mut held = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let e = elect::Election::builder(n.as_str())
            .dir(&dir)
            .build()
            .unwrap();
        let t = e.try_obtain().unwrap().unwrap();
        if i % 7 == 0 {
            held.push(t);
        }
    }
    let run = |confined: bool| {
        let script = if confined {
            format!(
                "echo $$ > {}/cgroup.procs && exec \"$0\" \"$@\"",
                cg.display()
            )
        } else {
            "exec \"$0\" \"$@\"".to_string()
        };
        let out = output(
            std::process::Command::new("sh")
                .args(["-c", &script, env!("CARGO_BIN_EXE_elect")])
                .args(["status", "--json", "-d"])
                .arg(&dir),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let alone = run(true);
    assert_eq!(names_in(&alone), names);
    for (i, r) in alone["resources"].as_array().unwrap().iter().enumerate() {
        assert_eq!(r["slots"][0]["held"], i % 7 == 0, "{r}");
    }
    // The same as read with threads.
    assert_eq!(alone, run(false));
    drop(held);
}
