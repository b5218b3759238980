//! The seed's demo: four workers campaign for `demo-student.echo`, which has
//! two tickets. Owners print `Hello World, pid: <pid>` every 2 seconds.
//! After a few seconds the demo SIGKILLs one owner, and a waiting worker
//! takes over at once; at the end every worker is stopped with SIGTERM and
//! resigns cleanly. Each worker campaigns with the blocking API, so the demo
//! builds with no feature at all.
//!
//! ```text
//! cargo run --example echo
//! ```
//!
//! While it runs, `elect status demo-student.echo` in another terminal shows
//! who holds the tickets.
//!
//! The same on an etcd cluster (the take-over then waits for the killed
//! owner's lease to expire, a TTL of 5 s):
//!
//! ```text
//! ELECT_ETCD=http://127.0.0.1:2379 cargo run --features etcd --example echo
//! ```

use std::process::{Child, Command};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use elect::{Election, ElectionBuilder, Ending};

const RESOURCE: &str = "demo-student.echo";
const TICKETS: u32 = 2;
const WORKERS: usize = 4;

/// The demo's election: on the etcd cluster in `ELECT_ETCD` when it is set
/// (and elect was built with the `etcd` feature), else in the default run
/// directory.
fn builder() -> Result<ElectionBuilder, Box<dyn std::error::Error>> {
    let builder = Election::builder(RESOURCE).tickets(TICKETS);
    match std::env::var("ELECT_ETCD") {
        #[cfg(feature = "etcd")]
        Ok(endpoints) if !endpoints.is_empty() => Ok(builder.etcd(elect::Etcd::new(&endpoints)?)),
        #[cfg(not(feature = "etcd"))]
        Ok(endpoints) if !endpoints.is_empty() => {
            Err(format!("ELECT_ETCD={endpoints} needs --features etcd").into())
        }
        _ => Ok(builder),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().nth(1).as_deref() == Some("worker") {
        return worker();
    }
    let me = std::env::current_exe()?;
    println!("demo: starting {WORKERS} workers for {RESOURCE:?} with {TICKETS} tickets");
    let mut workers: Vec<Child> = (0..WORKERS)
        .map(|_| Command::new(&me).arg("worker").spawn())
        .collect::<Result<_, _>>()?;

    std::thread::sleep(Duration::from_secs(5));
    let election = builder()?.build()?;
    // On etcd a killed owner's slot is free when its lease expires.
    let takeover = if election.dir().to_string_lossy().starts_with("etcd:") {
        Duration::from_secs(8)
    } else {
        Duration::from_secs(2)
    };
    let owner = election
        .status()?
        .slots
        .iter()
        .filter(|s| s.held)
        .find_map(|s| s.holder.as_ref().map(|h| h.pid));
    if let Some(pid) = owner {
        // Watching starts before the kill: the kernel hands the slot over
        // within microseconds, before a watcher started afterwards would
        // have looked, and the take-over would go unseen.
        let mut watcher = election.watch()?;
        println!("demo: SIGKILL owner {pid}");
        let killed_at = Instant::now();
        // SAFETY: plain syscall.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        while killed_at.elapsed() < takeover {
            match watcher.next_event_timeout(Duration::from_millis(200))? {
                Some(ev) if ev.kind == elect::EventKind::Acquired => {
                    println!(
                        "demo: pid {} took slot {} {:.1} ms after the kill",
                        ev.pid,
                        ev.slot,
                        killed_at.elapsed().as_secs_f64() * 1000.0
                    );
                    break;
                }
                _ => {}
            }
        }
    }

    std::thread::sleep(Duration::from_secs(5));
    println!("demo: stopping every worker with SIGTERM");
    for w in &workers {
        // SAFETY: plain syscall.
        unsafe { libc::kill(w.id() as libc::pid_t, libc::SIGTERM) };
    }
    for w in &mut workers {
        w.wait()?;
    }
    println!("demo: done");
    Ok(())
}

/// A thread printing for the owner, and the sender whose drop stops it.
type Printer = (Sender<()>, JoinHandle<()>);

/// One worker: campaign until SIGTERM, printing while owner. It needs no
/// async runtime: the campaign competes on a thread of its own, and the
/// owner prints from a thread that the cleanup stops.
fn worker() -> Result<(), Box<dyn std::error::Error>> {
    // SIGTERM is taken by `sigwait` below: blocked before any thread
    // starts, so that every thread inherits the mask and none dies of it.
    let term = block_sigterm();
    let pid = std::process::id();
    let election = builder()?.label(format!("echo worker {pid}")).build()?;
    // The printer of the current ownership, if any: its stop and its thread.
    let printer: Arc<Mutex<Option<Printer>>> = Arc::default();
    let stop_printer = Arc::clone(&printer);
    let campaign = election.campaign().run_blocking(
        move |ticket| {
            println!(
                "pid {pid}: owner of slot {} (token {})",
                ticket.slot(),
                ticket.token()
            );
            let (stop, stopped) = mpsc::channel::<()>();
            let thread = std::thread::spawn(move || {
                while let Err(RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(Duration::from_secs(2))
                {
                    println!("Hello World, pid: {pid}");
                }
            });
            *printer.lock().unwrap() = Some((stop, thread));
        },
        move |ending: Ending| {
            if let Some((stop, thread)) = stop_printer.lock().unwrap().take() {
                drop(stop);
                let _ = thread.join();
            }
            println!("pid {pid}: cleanup ({ending:?})");
        },
    );
    let mut sig = 0;
    // SAFETY: `term` is a valid signal set; `sig` receives the signal.
    unsafe { libc::sigwait(&term, &mut sig) };
    campaign.resign()?;
    Ok(())
}

/// Blocks SIGTERM in the calling thread (and the threads it starts), and
/// returns the set to `sigwait` on.
fn block_sigterm() -> libc::sigset_t {
    // SAFETY: sigemptyset and sigaddset fill a zeroed set on this stack;
    // pthread_sigmask only changes this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}
