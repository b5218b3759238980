//! `elect run`, `status` and `watch` with `--etcd`, against a real etcd
//! server started by the test: the contract's behaviour, plus what only an
//! election on etcd has (a lease that runs out under a stopped holder).

mod cli_support;
mod etcd_support;

use std::os::unix::process::CommandExt;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cli_support::{Proc, code, dead, elect, next_line, output, wait_until};
use etcd_support::{EtcdCluster, require_etcd};

fn node() -> &'static EtcdCluster {
    static NODE: OnceLock<EtcdCluster> = OnceLock::new();
    NODE.get_or_init(|| EtcdCluster::start(1))
}

/// `elect SUB --etcd E --etcd-prefix P` for a prefix of this test's own.
fn on_etcd(sub: &str, test: &str) -> std::process::Command {
    let mut cmd = elect([sub]);
    cmd.arg("--etcd")
        .arg(node().endpoints())
        .arg("--etcd-prefix")
        .arg(format!("{test}-{}/", std::process::id()));
    cmd
}

fn status_json(test: &str, name: &str) -> serde_json::Value {
    let out = output(on_etcd("status", test).args(["--json", name]));
    assert_eq!(
        code(out.status),
        0,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status prints JSON")
}

/// The first slot's holder record, once the slot is held.
fn wait_held(test: &str, name: &str) -> serde_json::Value {
    let mut slot = serde_json::Value::Null;
    wait_until("the slot is held", || {
        let st = status_json(test, name);
        slot = st["resources"][0]["slots"][0].clone();
        slot["held"] == true && slot["command_pid"].is_u64()
    });
    slot
}

#[test]
fn run_gives_the_command_its_environment_and_status_and_watch_see_it() {
    if !require_etcd("run_gives_the_command_its_environment_and_status_and_watch_see_it") {
        return;
    }
    let test = "env";
    let mut watch = Proc::spawn(on_etcd("watch", test).args(["--json", "-q", "job"]));
    let events = watch.stdout_lines();
    let out = output(on_etcd("run", test).args([
        "-t",
        "2",
        "job",
        "--",
        "sh",
        "-c",
        "echo $ELECT_NAME $ELECT_SLOT $ELECT_TICKETS ${ELECT_DIR-none} $ELECT_ETCD_PREFIX $ELECT_TOKEN; echo $ELECT_ETCD",
    ]));
    assert_eq!(
        code(out.status),
        0,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let first: Vec<&str> = lines.next().unwrap().split(' ').collect();
    assert_eq!(
        first[..5],
        [
            "job",
            "0",
            "2",
            "none",
            &format!("{test}-{}/", std::process::id())
        ]
    );
    let token: u64 = first[5].parse().expect("a numeric token");
    assert_eq!(lines.next().unwrap(), node().endpoints());

    let acquired: serde_json::Value = serde_json::from_str(&next_line(&events)).unwrap();
    let released: serde_json::Value = serde_json::from_str(&next_line(&events)).unwrap();
    assert_eq!(acquired["event"], "acquired");
    assert_eq!(released["event"], "released");
    assert_eq!(acquired["token"], token);
    assert_eq!(released["token"], token);

    // While one holds: status shows it, by JSON and by table.
    let mut holder =
        Proc::spawn(on_etcd("run", test).args(["-t", "2", "job", "--", "sleep", "60"]));
    let slot = wait_held(test, "job");
    assert!(slot["token"].as_u64().unwrap() > token);
    assert_eq!(slot["pid"], holder.pid());
    let st = status_json(test, "job");
    assert_eq!(st["resources"][0]["tickets"], 2);
    assert!(st["dir"].as_str().unwrap().starts_with("etcd:http://"));
    let table = output(on_etcd("status", test).arg("job"));
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(
        table.contains("held") && table.contains("sleep 60"),
        "{table}"
    );
    // SIGTERM is forwarded; the command's status is elect's.
    cli_support::kill(holder.pid(), libc::SIGTERM);
    assert_eq!(code(holder.wait()), 128 + libc::SIGTERM);
    wait_until("the slot is free", || {
        status_json(test, "job")["resources"][0]["slots"][0]["held"] == false
    });
}

#[test]
fn a_second_run_waits_or_gives_up_as_asked() {
    if !require_etcd("a_second_run_waits_or_gives_up_as_asked") {
        return;
    }
    let test = "wait";
    let mut holder = Proc::spawn(on_etcd("run", test).args(["one", "--", "sleep", "60"]));
    wait_held(test, "one");
    let out = output(on_etcd("run", test).args(["-n", "one", "--", "true"]));
    assert_eq!(code(out.status), 75);
    let out = output(on_etcd("run", test).args(["-w", "300ms", "-E", "9", "one", "--", "true"]));
    assert_eq!(code(out.status), 9);
    let mut waiter = Proc::spawn(on_etcd("run", test).args(["-q", "one", "--", "true"]));
    cli_support::kill(holder.pid(), libc::SIGTERM);
    holder.wait();
    let (st, err) = waiter.finish();
    assert_eq!(code(st), 0, "{err}");
    // Another N while a participant is live: 125 with the agreed number.
    let holder = Proc::spawn(on_etcd("run", test).args(["one", "--", "sleep", "60"]));
    wait_held(test, "one");
    let out = output(on_etcd("run", test).args(["-t", "2", "-n", "one", "--", "true"]));
    assert_eq!(code(out.status), 125);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--tickets 1"), "{err}");
    drop(holder);
}

#[test]
fn a_killed_elect_takes_its_command_along_and_the_slot_passes_on_after_the_ttl() {
    if !require_etcd("a_killed_elect_takes_its_command_along_and_the_slot_passes_on_after_the_ttl")
    {
        return;
    }
    let test = "kill";
    let mut holder =
        Proc::spawn(on_etcd("run", test).args(["--ttl", "1s", "k", "--", "sleep", "60"]));
    let slot = wait_held(test, "k");
    let command = slot["command_pid"].as_u64().unwrap() as i32;
    let mut waiter = Proc::spawn(on_etcd("run", test).args(["-q", "-w", "60", "k", "--", "true"]));
    cli_support::kill(holder.pid(), libc::SIGKILL);
    holder.wait();
    // The command cannot hold an etcd ticket by itself: it dies with elect.
    wait_until("the command died with elect", || dead(command));
    let (st, err) = waiter.finish();
    assert_eq!(code(st), 0, "{err}");
}

#[test]
fn a_holder_stopped_past_its_ttl_finds_its_ticket_lost_and_stops_its_command() {
    if !require_etcd("a_holder_stopped_past_its_ttl_finds_its_ticket_lost_and_stops_its_command") {
        return;
    }
    let test = "stop";
    let mut cmd = on_etcd("run", test);
    cmd.args([
        "--ttl",
        "1s",
        "s",
        "--",
        "sh",
        "-c",
        "trap 'exit 0' TERM; while :; do sleep 0.05; done",
    ]);
    // Its own process group, so the whole of it can be stopped at once.
    cmd.process_group(0);
    let mut holder = Proc::spawn(&mut cmd);
    let errors = holder.stderr_lines();
    let slot = wait_held(test, "s");
    let token = slot["token"].as_u64().unwrap();
    let command = slot["command_pid"].as_u64().unwrap() as i32;
    cli_support::kill(-holder.pid(), libc::SIGSTOP);
    // The lease runs out while the holder is stopped: another takes over.
    let out =
        output(on_etcd("run", test).args(["-w", "60", "s", "--", "sh", "-c", "echo $ELECT_TOKEN"]));
    assert_eq!(
        code(out.status),
        0,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let next: u64 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        next > token,
        "the new holder's token {next} fences off {token}"
    );
    // Resumed, the old holder finds the ticket lost and stops its command.
    let resumed = Instant::now();
    cli_support::kill(-holder.pid(), libc::SIGCONT);
    let st = code(holder.wait());
    let said: Vec<String> = errors.try_iter().collect();
    assert_eq!(st, 76, "{said:?}");
    assert!(dead(command));
    assert!(
        said.iter()
            .any(|l| l.contains("lost the ticket") && l.contains("lease")),
        "{said:?}"
    );
    eprintln!("stopped after resume in {:?}", resumed.elapsed());
}

#[test]
fn bad_etcd_settings_are_refused_with_a_fix() {
    if !require_etcd("bad_etcd_settings_are_refused_with_a_fix") {
        return;
    }
    let cases: [(&[&str], i32, &str); 5] = [
        (
            &["run", "--etcd", "localhost:2379", "x", "--", "true"],
            2,
            "http://",
        ),
        (&["run", "--ttl", "5s", "x", "--", "true"], 2, "--etcd"),
        (&["status", "--etcd-prefix", "p/"], 2, "--etcd"),
        (
            &[
                "run",
                "--etcd",
                "http://127.0.0.1:2379",
                "--dir",
                "/tmp",
                "x",
                "--",
                "true",
            ],
            2,
            "--dir",
        ),
        (
            &[
                "run",
                "--etcd",
                "http://127.0.0.1:2379",
                "--ttl",
                "0",
                "x",
                "--",
                "true",
            ],
            2,
            "TTL",
        ),
    ];
    for (args, want, says) in cases {
        let out = output(&mut elect(args));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(code(out.status), want, "{args:?}: {err}");
        assert!(
            err.starts_with("elect: ") && err.contains(says),
            "{args:?}: {err}"
        );
    }
    // Nobody listens there: 125, naming the endpoint, and nothing runs.
    let out = output(&mut elect([
        "run",
        "--etcd",
        "http://127.0.0.1:9",
        "x",
        "--",
        "echo",
        "ran",
    ]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(out.status), 125, "{err}");
    assert!(
        err.contains("http://127.0.0.1:9") && err.contains("ELECT_ETCD"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn elect_etcd_in_the_environment_is_used_unless_dir_is_given() {
    if !require_etcd("elect_etcd_in_the_environment_is_used_unless_dir_is_given") {
        return;
    }
    let prefix = format!("envvar-{}/", std::process::id());
    let out = output(
        elect(["run", "e", "--", "sh", "-c", "echo $ELECT_ETCD_PREFIX"])
            .env("ELECT_ETCD", node().endpoints())
            .env("ELECT_ETCD_PREFIX", &prefix),
    );
    assert_eq!(
        code(out.status),
        0,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), prefix);
    // --dir on the command line beats ELECT_ETCD in the environment.
    let dir = tempfile::tempdir().unwrap();
    let out = output(
        elect(["run", "--dir"])
            .arg(dir.path())
            .args(["e", "--", "sh", "-c", "echo $ELECT_DIR"])
            .env("ELECT_ETCD", "http://127.0.0.1:9"),
    );
    assert_eq!(
        code(out.status),
        0,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        dir.path().to_str().unwrap()
    );
}

#[test]
fn a_signal_while_waiting_gives_up_and_leaves_the_line() {
    if !require_etcd("a_signal_while_waiting_gives_up_and_leaves_the_line") {
        return;
    }
    let test = "signal";
    let holder = Proc::spawn(on_etcd("run", test).args(["q", "--", "sleep", "60"]));
    wait_held(test, "q");
    let mut waiter = Proc::spawn(on_etcd("run", test).args(["q", "--", "echo", "ran"]));
    let prefix = format!("{test}-{}/", std::process::id());
    wait_until("the waiter stands in line", || {
        let out = output(on_etcd("status", test).args(["--json", "q"]));
        // The line is not in status; the waiter's lease and key are, in etcd.
        out.status.success() && queue_len(&prefix, "q") == 1
    });
    cli_support::kill(waiter.pid(), libc::SIGTERM);
    let st = waiter.wait();
    assert_eq!(code(st), 128 + libc::SIGTERM);
    wait_until("the waiter left the line", || queue_len(&prefix, "q") == 0);
    let mut out = String::new();
    use std::io::Read;
    waiter
        .child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(out.is_empty(), "the command did not run");
    drop(holder);
}

/// How many waiters stand in the line of `name`, read with our own client.
fn queue_len(prefix: &str, name: &str) -> usize {
    let endpoints: Vec<String> = node().endpoints().split(',').map(str::to_string).collect();
    let key = format!("{prefix}{name}/queue/");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            let mut c = etcd_client::Client::connect(endpoints, None).await.unwrap();
            let opts = etcd_client::GetOptions::new()
                .with_prefix()
                .with_count_only();
            c.get(key, Some(opts)).await.unwrap().count() as usize
        })
}

#[test]
fn a_release_during_a_leader_election_frees_the_slot_before_the_lease_would_expire() {
    if !require_etcd(
        "a_release_during_a_leader_election_frees_the_slot_before_the_lease_would_expire",
    ) {
        return;
    }
    let mut cluster = EtcdCluster::start(3);
    let leader = cluster.leader();
    // The leader's endpoint first, so the holder talks to the member that dies.
    let mut endpoints = vec![cluster.endpoint(leader)];
    endpoints.extend((0..3).filter(|&i| i != leader).map(|i| cluster.endpoint(i)));
    let endpoints = endpoints.join(",");
    let tmp = tempfile::tempdir().unwrap();
    let go = tmp.path().join("go");
    let script = format!("while [ ! -e {} ]; do sleep 0.01; done", go.display());
    let ttl = Duration::from_secs(10);
    let run = |args: &[&str]| {
        let mut cmd = elect([
            "run",
            "--etcd",
            &endpoints,
            "--etcd-prefix",
            "leader-release/",
            "--ttl",
            "10s",
        ]);
        cmd.args(args);
        cmd
    };
    let mut holder = Proc::spawn(&mut run(&["r", "--", "sh", "-c", &script]));
    let status = |c: &EtcdCluster| {
        let out = output(
            elect(["status", "--json", "--etcd"])
                .arg(c.endpoints())
                .args(["--etcd-prefix", "leader-release/", "r"]),
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or_default()
    };
    wait_until("the holder holds", || {
        status(&cluster)["resources"][0]["slots"][0]["held"] == true
    });
    let mut waiter = Proc::spawn(&mut run(&["-q", "r", "--", "true"]));
    cluster.kill(leader);
    // The holder's command ends now: elect releases through the election.
    std::fs::write(&go, "").unwrap();
    let released = Instant::now();
    assert_eq!(code(holder.wait()), 0);
    let (st, err) = waiter.finish();
    assert_eq!(code(st), 0, "{err}");
    let took = released.elapsed();
    eprintln!("hand-off through a leader election: {took:?}");
    // Had the release been lost, the slot would have come free only when
    // the lease expired, a TTL after its last renewal.
    assert!(took < ttl * 4 / 5, "{took:?}");
}
