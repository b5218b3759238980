//! The library on etcd: the same semantics as on one host, against real
//! etcd servers started by the tests (a single node, and a three-member
//! cluster whose leader is killed mid-run).

mod etcd_support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use elect::{Election, Error, Etcd};
use etcd_support::{EtcdCluster, require_etcd, wait_until};

const DEADLINE: Duration = Duration::from_secs(60);

/// One single-node cluster shared by the tests of this file that do not
/// hurt it; each test has its own key prefix.
fn shared_node() -> &'static EtcdCluster {
    static NODE: OnceLock<EtcdCluster> = OnceLock::new();
    NODE.get_or_init(|| EtcdCluster::start(1))
}

fn config(cluster: &EtcdCluster, test: &str, ttl_secs: u64) -> Etcd {
    Etcd::new(&cluster.endpoints())
        .unwrap()
        .prefix(format!("{test}-{}/", std::process::id()))
        .unwrap()
        .ttl(Duration::from_secs(ttl_secs))
        .unwrap()
}

fn election(etcd: &Etcd, name: &str, tickets: u32) -> Election {
    Election::builder(name)
        .tickets(tickets)
        .label(format!("test {name}"))
        .etcd(etcd.clone())
        .build()
        .unwrap()
}

/// Keys under `prefix`, read with our own client (not elect's).
fn keys_under(endpoints: &str, prefix: &str) -> Vec<String> {
    let endpoints: Vec<String> = endpoints.split(',').map(str::to_string).collect();
    let prefix = prefix.to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut c = etcd_client::Client::connect(endpoints, None).await.unwrap();
        let r = c
            .get(
                prefix,
                Some(
                    etcd_client::GetOptions::new()
                        .with_prefix()
                        .with_keys_only(),
                ),
            )
            .await
            .unwrap();
        r.kvs()
            .iter()
            .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
            .collect()
    })
}

#[test]
fn try_obtain_status_tokens_and_agreement() {
    if !require_etcd("try_obtain_status_tokens_and_agreement") {
        return;
    }
    let node = shared_node();
    let etcd = config(node, "basic", 5);
    let e = election(&etcd, "pool", 2);
    assert!(e.status().unwrap().slots.is_empty(), "never used");

    let a = e.try_obtain().unwrap().expect("a free ticket");
    let b = e.obtain().unwrap();
    assert_ne!(a.slot(), b.slot());
    assert!(b.token() > a.token(), "tokens increase");
    assert!(e.try_obtain().unwrap().is_none(), "both tickets are out");
    assert!(
        e.obtain_timeout(Duration::from_millis(200))
            .unwrap()
            .is_none()
    );
    assert!(a.is_held() && b.is_held());
    assert!(a.deadline().is_some(), "an etcd ticket can expire");

    let st = e.status().unwrap();
    assert_eq!(st.tickets, 2);
    assert_eq!(st.slots.len(), 2);
    for s in &st.slots {
        assert!(s.held);
        let h = s.holder.as_ref().expect("a record");
        assert_eq!(h.pid, std::process::id());
        assert_eq!(h.label, "test pool");
    }
    let all = etcd.status(None).unwrap();
    assert!(
        all.dir
            .to_string_lossy()
            .starts_with("etcd:http://127.0.0.1:")
    );
    assert_eq!(all.resources.len(), 1);

    // Another N while live: refused with the agreed number.
    match election(&etcd, "pool", 3).try_obtain() {
        Err(Error::TicketMismatch { asked, agreed, .. }) => assert_eq!((asked, agreed), (3, 2)),
        other => panic!("expected a mismatch, got {other:?}"),
    }

    let last = b.token();
    drop(a);
    let c = e.try_obtain().unwrap().expect("a's slot is free again");
    assert!(c.token() > last);
    drop((b, c));
    assert!(e.status().unwrap().slots.iter().all(|s| !s.held));

    // Nobody live: a new N may be agreed.
    let three = election(&etcd, "pool", 3);
    let held: Vec<_> = (0..3).map(|_| three.obtain().unwrap()).collect();
    assert_eq!(three.status().unwrap().tickets, 3);
    drop(held);
    // No lease or queue key is left behind.
    wait_until(
        "every key of the resource but tickets is gone",
        DEADLINE,
        || {
            keys_under(&node.endpoints(), etcd.key_prefix())
                == [format!("{}pool/tickets", etcd.key_prefix())]
        },
    );
}

#[test]
fn waiters_take_over_one_at_a_time_in_arrival_order() {
    if !require_etcd("waiters_take_over_one_at_a_time_in_arrival_order") {
        return;
    }
    let node = shared_node();
    let etcd = config(node, "order", 5);
    let e = election(&etcd, "line", 1);
    let first = e.obtain().unwrap();
    let queue = format!("{}line/queue/", etcd.key_prefix());
    let order = Arc::new(Mutex::new(Vec::new()));
    let holders = Arc::new(AtomicU32::new(0));
    let mut threads = Vec::new();
    for i in 0..5 {
        // Each waiter is its own participant (own client and connection),
        // as on another host.
        let e = election(&etcd, "line", 1);
        let (order, holders) = (Arc::clone(&order), Arc::clone(&holders));
        threads.push(std::thread::spawn(move || {
            let t = e.obtain().unwrap();
            assert_eq!(
                holders.fetch_add(1, Ordering::SeqCst),
                0,
                "two holders at once"
            );
            order.lock().unwrap().push((i, t.token()));
            std::thread::sleep(Duration::from_millis(20));
            holders.fetch_sub(1, Ordering::SeqCst);
        }));
        // The next one arrives after this one stands in line.
        wait_until("the waiter stands in line", DEADLINE, || {
            keys_under(&node.endpoints(), &queue).len() == i + 1
        });
    }
    drop(first);
    for t in threads {
        t.join().unwrap();
    }
    let order = order.lock().unwrap().clone();
    let ids: Vec<_> = order.iter().map(|(i, _)| *i).collect();
    assert_eq!(ids, [0, 1, 2, 3, 4], "arrival order");
    assert!(
        order.windows(2).all(|w| w[0].1 < w[1].1),
        "tokens increase: {order:?}"
    );
    assert!(
        keys_under(&node.endpoints(), &queue).is_empty(),
        "the line is empty"
    );
}

#[test]
fn a_cancelled_wait_leaves_nothing_behind() {
    if !require_etcd("a_cancelled_wait_leaves_nothing_behind") {
        return;
    }
    let node = shared_node();
    let etcd = config(node, "cancel", 5);
    let e = election(&etcd, "busy", 1);
    let held = e.obtain().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let e2 = e.clone();
    let timed_out = rt.block_on(async move {
        tokio::time::timeout(Duration::from_millis(300), e2.obtain_async())
            .await
            .is_err()
    });
    assert!(timed_out, "the ticket is held, the async wait cannot end");
    let queue = format!("{}busy/queue/", etcd.key_prefix());
    wait_until("the cancelled waiter left the line", DEADLINE, || {
        keys_under(&node.endpoints(), &queue).is_empty()
    });
    // The async obtain works when the ticket comes.
    let e3 = e.clone();
    let waiter = rt.spawn(async move { e3.obtain_async().await.map(|t| t.token()) });
    wait_until("the async waiter stands in line", DEADLINE, || {
        keys_under(&node.endpoints(), &queue).len() == 1
    });
    let old = held.token();
    drop(held);
    let token = rt.block_on(waiter).unwrap().unwrap();
    assert!(token > old);
}

#[test]
fn a_campaign_runs_owned_code_on_etcd() {
    if !require_etcd("a_campaign_runs_owned_code_on_etcd") {
        return;
    }
    let node = shared_node();
    let etcd = config(node, "campaign", 5);
    let e = election(&etcd, "duty", 1);
    let blocker = e.obtain().unwrap();
    let ran = Arc::new(AtomicU64::new(0));
    let cleaned = Arc::new(AtomicU32::new(0));
    let (r, c) = (Arc::clone(&ran), Arc::clone(&cleaned));
    let campaign = e.campaign().run_blocking(
        move |ticket| {
            r.store(ticket.token(), Ordering::SeqCst);
        },
        move |_ending| {
            c.fetch_add(1, Ordering::SeqCst);
        },
    );
    // The campaign stands in line: it saw the ticket held and waits.
    let queue = format!("{}duty/queue/", etcd.key_prefix());
    wait_until("the campaign stands in line", DEADLINE, || {
        keys_under(&node.endpoints(), &queue).len() == 1
    });
    assert_eq!(
        ran.load(Ordering::SeqCst),
        0,
        "the ticket is held by another"
    );
    let old = blocker.token();
    drop(blocker);
    wait_until("the campaign won", DEADLINE, || {
        ran.load(Ordering::SeqCst) != 0
    });
    assert!(ran.load(Ordering::SeqCst) > old);
    assert!(
        e.try_obtain().unwrap().is_none(),
        "the campaign owns the ticket"
    );
    assert_eq!(cleaned.load(Ordering::SeqCst), 0);
    // Dropping the campaign resigns: cleanup runs, the ticket is free.
    drop(campaign);
    assert_eq!(cleaned.load(Ordering::SeqCst), 1);
    assert!(e.try_obtain().unwrap().is_some());
}

#[test]
fn a_holder_that_cannot_renew_gives_up_before_the_server_expires_it() {
    if !require_etcd("a_holder_that_cannot_renew_gives_up_before_the_server_expires_it") {
        return;
    }
    // Its own node: the test freezes it.
    let mut cluster = EtcdCluster::start(1);
    let ttl = Duration::from_secs(10);
    let etcd = config(&cluster, "partition", ttl.as_secs());
    let e = election(&etcd, "job", 1);
    let t = e.obtain().unwrap();
    assert!(t.is_held());
    // The holder's renewals stop reaching a server from here on: the last
    // one that went through was sent before this instant.
    cluster.stop(0);
    let stopped = Instant::now();
    let deadline = t.deadline().expect("an etcd ticket has a deadline");
    // The server lets the lease expire no earlier than TTL after the last
    // renewal it received; renewals go every TTL/5, so no earlier than
    // stopped + 4/5 TTL. The holder must have given up before that.
    let expiry_floor = stopped + ttl * 4 / 5;
    assert!(
        deadline <= expiry_floor,
        "deadline {deadline:?} after the expiry floor"
    );
    wait_until("the holder finds its ticket lost", DEADLINE, || {
        !t.is_held()
    });
    let noticed = Instant::now();
    assert!(
        noticed < expiry_floor,
        "noticed {:?} after the stop, the server may expire the lease {:?} after it",
        noticed - stopped,
        expiry_floor - stopped
    );
    // Lost stays lost, even once renewals could go through again.
    cluster.cont(0);
    let e2 = election(&etcd, "job", 1);
    let next = e2.obtain().unwrap();
    assert!(next.token() > t.token());
    assert!(!t.is_held());
}

#[test]
fn the_election_carries_on_when_the_etcd_leader_is_killed() {
    if !require_etcd("the_election_carries_on_when_the_etcd_leader_is_killed") {
        return;
    }
    let mut cluster = EtcdCluster::start(3);
    let etcd = config(&cluster, "leader", 5);
    let holders = Arc::new(AtomicU32::new(0));
    let acquisitions = Arc::new(AtomicU64::new(0));
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut threads = Vec::new();
    for _ in 0..3 {
        // Own client each, as participants on three hosts.
        let e = election(&etcd, "scheduler", 1);
        let (holders, acq, tokens, stop) = (
            Arc::clone(&holders),
            Arc::clone(&acquisitions),
            Arc::clone(&tokens),
            Arc::clone(&stop),
        );
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let t = match e.obtain_timeout(Duration::from_secs(1)) {
                    Ok(Some(t)) => t,
                    Ok(None) => continue,
                    // An outage longer than the wait: try again.
                    Err(Error::Store(_)) => continue,
                    Err(e) => panic!("{e}"),
                };
                assert_eq!(
                    holders.fetch_add(1, Ordering::SeqCst),
                    0,
                    "two holders at once"
                );
                tokens.lock().unwrap().push(t.token());
                std::thread::sleep(Duration::from_millis(5));
                holders.fetch_sub(1, Ordering::SeqCst);
                acq.fetch_add(1, Ordering::SeqCst);
                drop(t);
            }
        }));
    }
    wait_until("hand-offs before the kill", DEADLINE, || {
        acquisitions.load(Ordering::SeqCst) >= 30
    });
    let leader = cluster.leader();
    cluster.kill(leader);
    let at_kill = acquisitions.load(Ordering::SeqCst);
    let killed = Instant::now();
    wait_until(
        "hand-offs go on after the leader was killed",
        DEADLINE,
        || acquisitions.load(Ordering::SeqCst) >= at_kill + 30,
    );
    eprintln!("30 hand-offs within {:?} after the kill", killed.elapsed());
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    let tokens = tokens.lock().unwrap().clone();
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "tokens in the order of the holdings strictly increase"
    );
    assert_eq!(tokens.iter().collect::<HashSet<_>>().len(), tokens.len());
}

/// A counter or gauge from a member's `/metrics`.
fn metric(endpoint: &str, name: &str) -> f64 {
    use std::io::{Read, Write};
    let addr = endpoint.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} at {endpoint}"))
}

#[test]
fn one_release_wakes_one_waiter() {
    if !require_etcd("one_release_wakes_one_waiter") {
        return;
    }
    // Its own node: the test counts the events the server sends.
    let cluster = EtcdCluster::start(1);
    let etcd = config(&cluster, "herd", 5);
    let e = election(&etcd, "herd", 1);
    let holder = e.obtain().unwrap();
    let queue = format!("{}herd/queue/", etcd.key_prefix());
    let (got_tx, got_rx) = std::sync::mpsc::channel();
    let mut releases = Vec::new();
    let mut threads = Vec::new();
    const WAITERS: usize = 10;
    for i in 0..WAITERS {
        let e = election(&etcd, "herd", 1);
        let got = got_tx.clone();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        releases.push(release_tx);
        threads.push(std::thread::spawn(move || {
            let t = e.obtain().unwrap();
            got.send(i).unwrap();
            let _ = release_rx.recv();
            drop(t);
        }));
        wait_until("the waiter stands in line", DEADLINE, || {
            keys_under(&cluster.endpoints(), &queue).len() == i + 1
        });
    }
    // Watches: the holder's own key, the head's on the slots, and one per
    // other waiter on the key before its own.
    let endpoint = cluster.endpoint(0);
    let watchers = |n: usize| {
        let endpoint = endpoint.clone();
        move || metric(&endpoint, "etcd_debugging_mvcc_watcher_total") as usize == n
    };
    wait_until("every watch is in place", DEADLINE, watchers(1 + WAITERS));
    let before = metric(&cluster.endpoint(0), "etcd_debugging_mvcc_events_total");
    drop(holder);
    let first = got_rx.recv_timeout(DEADLINE).expect("a waiter takes over");
    assert_eq!(first, 0, "the first in line");
    wait_until("the watches settle", DEADLINE, watchers(WAITERS));
    let sent = metric(&cluster.endpoint(0), "etcd_debugging_mvcc_events_total") - before;
    assert!(
        got_rx.try_recv().is_err(),
        "only one waiter owns the ticket"
    );
    eprintln!("{sent} events for one release to {WAITERS} waiters");
    // The holder's own watch sees its key go, the head sees the slot free,
    // the next in line sees the head leave the line: 3. A herd would be at
    // least one event per waiter.
    assert!(
        sent <= 4.0,
        "{sent} events sent for one release to {WAITERS} waiters"
    );
    for (i, r) in releases.iter().enumerate() {
        let _ = r.send(());
        if i + 1 < WAITERS {
            assert_eq!(
                got_rx.recv_timeout(DEADLINE).unwrap(),
                i + 1,
                "arrival order"
            );
        }
    }
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn a_campaign_ends_with_lost_when_its_lease_cannot_be_renewed() {
    if !require_etcd("a_campaign_ends_with_lost_when_its_lease_cannot_be_renewed") {
        return;
    }
    let mut cluster = EtcdCluster::start(1);
    let etcd = config(&cluster, "campaign-lost", 3);
    let e = election(&etcd, "duty", 1);
    let (won_tx, won_rx) = std::sync::mpsc::channel();
    let (end_tx, end_rx) = std::sync::mpsc::channel();
    let campaign = e.campaign().run_blocking(
        move |t| won_tx.send(t.token()).unwrap(),
        move |ending| end_tx.send((ending, Instant::now())).unwrap(),
    );
    won_rx.recv_timeout(DEADLINE).expect("the campaign wins");
    cluster.stop(0);
    let stopped = Instant::now();
    let (ending, at) = end_rx.recv_timeout(DEADLINE).expect("the campaign ends");
    assert_eq!(ending, elect::Ending::Lost);
    // Before the server could let anyone else in (see the partition test).
    assert!(
        at < stopped + Duration::from_secs(3) * 4 / 5,
        "{:?}",
        at - stopped
    );
    cluster.cont(0);
    drop(campaign);
}

#[test]
fn a_member_down_does_not_fail_obtains() {
    if !require_etcd("a_member_down_does_not_fail_obtains") {
        return;
    }
    let mut cluster = EtcdCluster::start(3);
    // Every endpoint in the list, the dead one first: each new participant
    // starts there and must move on.
    let endpoints = cluster.all_endpoints();
    cluster.kill(0);
    let etcd = Etcd::new(&endpoints)
        .unwrap()
        .prefix(format!("member-down-{}/", std::process::id()))
        .unwrap();
    let mut last = 0;
    for _ in 0..20 {
        let e = election(&etcd, "job", 1);
        let t = e.obtain_timeout(DEADLINE).unwrap().expect("a free ticket");
        assert!(t.token() > last);
        last = t.token();
        assert_eq!(
            e.status().unwrap().slots.iter().filter(|s| s.held).count(),
            1
        );
        drop(t);
        assert!(e.try_obtain().unwrap().is_some(), "released at once");
    }
}

#[test]
fn an_async_campaign_with_requeue_takes_turns_on_etcd() {
    if !require_etcd("an_async_campaign_with_requeue_takes_turns_on_etcd") {
        return;
    }
    let node = shared_node();
    let etcd = config(node, "async-campaign", 5);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    rt.block_on(async {
        // Two campaigners (own clients), each owning for 50 ms at a time.
        let campaigns: Vec<_> = (0..2)
            .map(|i| {
                let tx = tx.clone();
                election(&etcd, "turns", 1).campaign().requeue(true).run(
                    move |t| {
                        let tx = tx.clone();
                        async move {
                            tx.send((i, t.token())).unwrap();
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    },
                    |_| async {},
                )
            })
            .collect();
        let mut seen = Vec::new();
        while seen.len() < 10 {
            let got = tokio::time::timeout(DEADLINE, rx.recv())
                .await
                .unwrap()
                .unwrap();
            seen.push(got);
        }
        for c in campaigns {
            c.resign().await.unwrap();
        }
        assert!(
            seen.windows(2).all(|w| w[0].1 < w[1].1),
            "tokens increase: {seen:?}"
        );
        assert!(
            seen.iter().any(|s| s.0 == 0) && seen.iter().any(|s| s.0 == 1),
            "both won: {seen:?}"
        );
    });
    assert!(
        election(&etcd, "turns", 1).try_obtain().unwrap().is_some(),
        "all resigned"
    );
}

#[test]
fn a_participant_waits_out_a_cluster_without_quorum_but_not_a_wrong_endpoint() {
    if !require_etcd("a_participant_waits_out_a_cluster_without_quorum_but_not_a_wrong_endpoint") {
        return;
    }
    let mut cluster = EtcdCluster::start(3);
    let etcd = Etcd::new(&cluster.all_endpoints())
        .unwrap()
        .prefix(format!("quorum-{}/", std::process::id()))
        .unwrap();
    // Two of three gone: the last member answers, but has no leader.
    cluster.kill(1);
    cluster.kill(2);
    wait_until("the last member knows it has no leader", DEADLINE, || {
        !cluster.is_healthy(0)
    });
    let e = election(&etcd, "job", 1);
    let waiter = std::thread::spawn(move || e.obtain().map(|t| t.token()));
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !waiter.is_finished(),
        "a wait on a cluster that answers \"no leader\" goes on, it does not fail"
    );
    // Quorum again: the wait ends with a ticket.
    cluster.restart(1);
    let token = waiter
        .join()
        .unwrap()
        .expect("a ticket once there is a leader");
    assert!(token > 0);
    // A cluster that never answers is reported at once.
    let nobody = Etcd::new("http://127.0.0.1:9").unwrap();
    let started = Instant::now();
    assert!(election(&nobody, "job", 1).obtain().is_err());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// A store's failure keeps the store's own error as its source, beside a
/// message that says where and what to check. Needs no etcd: nothing
/// listens on the endpoint.
#[test]
fn a_store_error_keeps_the_etcd_clients_error_as_its_source() {
    use std::error::Error as _;
    let nobody = Etcd::new("http://127.0.0.1:9").unwrap();
    let err = match election(&nobody, "job", 1).try_obtain() {
        Err(err) => err,
        Ok(t) => panic!("a ticket from nobody: {t:?}"),
    };
    assert!(matches!(err, Error::Store(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.starts_with("etcd at http://127.0.0.1:9: "),
        "{message}"
    );
    let source = err.source().expect("the etcd client's error");
    assert!(
        source.downcast_ref::<etcd_client::Error>().is_some(),
        "{source:?}"
    );
    assert!(message.contains(&source.to_string()), "{message}");
}

const FORK_ENDPOINTS: &str = "ELECT_TEST_FORK_ETCD";

/// The forking process of the test below: it holds an etcd ticket and
/// forks; the child drops its copy, finds the parent's election refuses
/// clearly, and a fresh election of its own sees the slot taken.
#[test]
#[ignore = "the body of a forking process; the test below runs it"]
fn etcd_fork_scenario() {
    let Ok(endpoints) = std::env::var(FORK_ENDPOINTS) else {
        return;
    };
    let etcd = Etcd::new(&endpoints)
        .unwrap()
        .prefix(format!("fork-{}/", std::process::id()))
        .unwrap();
    let e = election(&etcd, "forked", 1);
    let ticket = e.obtain().unwrap();
    // SAFETY: fork; the child ends with _exit and touches nothing of the
    // parent's but what the scenario names.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: the child's only owner of its copy of the ticket.
            drop(unsafe { std::ptr::read(&ticket) });
            let refused = matches!(e.try_obtain(), Err(Error::Store { .. }));
            let fresh = election(&etcd, "forked", 1);
            let taken = matches!(fresh.try_obtain(), Ok(None));
            refused && taken
        }))
        .unwrap_or(false);
        // SAFETY: ends the child at once.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    println!("CHILD {}", libc::WEXITSTATUS(status));
    let other = election(&etcd, "forked", 1);
    println!("OTHER-GOT {}", other.try_obtain().unwrap().is_some());
    drop(ticket);
    println!("AFTER-RELEASE {}", other.try_obtain().unwrap().is_some());
}

#[test]
fn a_fork_child_neither_releases_the_parents_etcd_ticket_nor_uses_its_connections() {
    if !require_etcd(
        "a_fork_child_neither_releases_the_parents_etcd_ticket_nor_uses_its_connections",
    ) {
        return;
    }
    let node = shared_node();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "etcd_fork_scenario",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(FORK_ENDPOINTS, node.endpoints())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for want in ["CHILD 0", "OTHER-GOT false", "AFTER-RELEASE true"] {
        assert!(
            text.contains(want),
            "no {want:?} in:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
