//! Obtaining a slot. A try that finds every slot held costs one read and
//! no lease. Otherwise the participant takes a lease and, in one
//! transaction, a free slot on it, provided the `tickets` key says its N
//! (setting it first, with [`agree`], if nobody is live). When every slot
//! is held it joins the line of waiters and watches only the one before it;
//! the head of the line watches the slots and, on a release, tries that
//! slot. Through an etcd outage the wait goes on, with a pause between
//! tries; a lease lost meanwhile is replaced and the line joined again.
//! What a taken slot becomes is in [`held`](super::held).

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Compare, CompareOp, EventType, GetOptions, KeyValue, PutOptions, SortOrder, SortTarget, Txn,
    TxnOp, WatchOptions,
};
use tokio::sync::Notify;

use super::client::{Shared, etcd_error, get, gets, revision_of, watch};
use super::held::{EtcdHeld, held};
use super::keys::{Keys, parse_tickets, slot_number};
use super::lease::Lease;
use crate::error::{Error, Result};
use crate::record::HolderRecord;
use crate::store::Request;

/// Pauses between attempts after a failed call, while a waiter waits out
/// an etcd outage (a leader election, a restarted member).
const BACKOFF: [Duration; 4] = [
    Duration::from_millis(50),
    Duration::from_millis(200),
    Duration::from_millis(500),
    Duration::from_secs(1),
];

/// Even without an event a waiter reads the keys again this often, in case
/// a watch was silently lost.
const REREAD: Duration = Duration::from_secs(30);

/// The outcome of one attempt to take a free slot.
enum Take {
    Got(EtcdHeld),
    /// Every slot is held, as of this revision.
    Full(i64),
}

/// What one read of a resource says.
pub(super) struct Snapshot {
    pub(super) revision: i64,
    tickets: Option<KeyValue>,
    held: Vec<u32>,
    /// Held slots by lease: (slot, lease, create revision).
    holders: Vec<(u32, i64, i64)>,
}

/// The async obtain: see the module's description.
pub(super) async fn obtain(
    shared: Arc<Shared>,
    req: Request,
    wait: bool,
    cancel: Arc<Notify>,
) -> Result<Option<EtcdHeld>> {
    let keys = Keys::new(&shared.cfg.prefix, &req.name);
    let mut lease = None;
    let outcome = tokio::select! {
        r = async {
            // A try that finds every slot held costs one read and no lease.
            let first = patiently(&shared, wait, || read(&shared, &keys)).await?;
            if !wait && first.held.len() >= req.tickets as usize && agreed(&first, req.tickets) {
                return Ok(None);
            }
            let guess = (0..req.tickets)
                .find(|i| !first.held.contains(i))
                .unwrap_or(0);
            let granted = lease.insert(patiently(&shared, wait, || Lease::grant(&shared)).await?);
            acquire(&shared, &keys, &req, wait, granted, guess).await
        } => r,
        _ = cancel.notified() => Err(Error::Cancelled),
    };
    match (outcome, lease) {
        (Ok(Some(held)), _) => Ok(Some(held)),
        (other, Some(lease)) => {
            // Nothing taken: the lease (and a place in the line on it) goes.
            let s = Arc::clone(&shared);
            tokio::spawn(async move { lease.revoke(&s).await });
            other
        }
        (other, None) => other,
    }
}

/// How long a try (not a wait) waits out a cluster that answers but cannot
/// serve (no leader, a member gone) before it reports the failure.
const TRY_PATIENCE: Duration = Duration::from_secs(10);

/// Runs `step` again, with backoff, while it fails with etcd trouble worth
/// waiting out (see [`Shared::worth_retrying`]): for ever when `wait` (the
/// wait is cancellable), for [`TRY_PATIENCE`] otherwise. A cluster that
/// never answered (a wrong endpoint, nothing listening) or a refused call
/// fails at once, so that a mistake is reported at once.
async fn patiently<T, F, Fut>(shared: &Shared, wait: bool, mut step: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let start = tokio::time::Instant::now();
    let mut failures = 0;
    loop {
        match step().await {
            Err(Error::Store(_))
                if shared.worth_retrying() && (wait || start.elapsed() < TRY_PATIENCE) =>
            {
                tokio::time::sleep(BACKOFF[failures.min(BACKOFF.len() - 1)]).await;
                failures += 1;
            }
            other => return other,
        }
    }
}

/// Whether a read shows the tickets key equal to `n`.
fn agreed(snap: &Snapshot, n: u32) -> bool {
    snap.tickets.as_ref().and_then(parse_tickets) == Some(n)
}

/// The two reads that tell whether a slot can be taken: the tickets key and
/// the held slots (keys only).
fn snapshot_ops(keys: &Keys) -> [TxnOp; 2] {
    [
        TxnOp::get(keys.tickets(), None),
        TxnOp::get(
            keys.slots(),
            Some(GetOptions::new().with_prefix().with_keys_only()),
        ),
    ]
}

/// What the answers to [`snapshot_ops`] say.
fn snapshot_of(resp: &etcd_client::TxnResponse, keys: &Keys) -> Snapshot {
    let g = gets(resp);
    let slots = keys.slots();
    let holders: Vec<(u32, i64, i64)> = g
        .get(1)
        .map(|g| {
            g.kvs()
                .iter()
                .filter_map(|kv| {
                    let slot = slot_number(kv.key(), &slots)?;
                    Some((slot, kv.lease(), kv.create_revision()))
                })
                .collect()
        })
        .unwrap_or_default();
    Snapshot {
        revision: revision_of(resp.header()),
        tickets: g.first().and_then(|g| g.kvs().first().cloned()),
        held: holders.iter().map(|h| h.0).collect(),
        holders,
    }
}

/// Reads the tickets key and the held slots in one revision.
pub(super) async fn read(shared: &Shared, keys: &Keys) -> Result<Snapshot> {
    let txn = Txn::new().and_then(snapshot_ops(keys));
    let resp = shared.txn("cannot read", txn).await?;
    Ok(snapshot_of(&resp, keys))
}

/// Makes sure the tickets key says `n`: it does, or nobody is live and it
/// is set to `n` now, or a live participant agreed on another number.
async fn agree(shared: &Shared, keys: &Keys, req: &Request) -> Result<()> {
    loop {
        let txn = Txn::new().and_then([
            TxnOp::get(keys.tickets(), None),
            TxnOp::get(
                keys.queue(),
                Some(GetOptions::new().with_prefix().with_count_only()),
            ),
            TxnOp::get(
                keys.slots(),
                Some(GetOptions::new().with_prefix().with_count_only()),
            ),
        ]);
        let resp = shared.txn("cannot read", txn).await?;
        let g = gets(&resp);
        let tickets = g.first().and_then(|g| g.kvs().first().cloned());
        let live = g.iter().skip(1).map(|g| g.count()).sum::<i64>();
        let value = tickets.as_ref().and_then(parse_tickets);
        if value == Some(req.tickets) {
            return Ok(());
        }
        if live > 0 {
            return Err(match value {
                Some(agreed) => Error::TicketMismatch {
                    name: req.name.clone(),
                    asked: req.tickets,
                    agreed,
                },
                None => Error::Store(
                    format!(
                        "the etcd key {} holds no valid number of tickets while the resource is in use; \
                         wait until its participants have gone, or set it to their N",
                        keys.tickets()
                    )
                    .into(),
                ),
            });
        }
        // Nobody is live: the number is ours to set, if nobody joins or
        // sets it first.
        let unchanged = match &tickets {
            Some(kv) => Compare::mod_revision(keys.tickets(), CompareOp::Equal, kv.mod_revision()),
            None => Compare::create_revision(keys.tickets(), CompareOp::Equal, 0),
        };
        let txn = Txn::new()
            .when([
                unchanged,
                Compare::create_revision(keys.queue(), CompareOp::Equal, 0).with_prefix(),
                Compare::create_revision(keys.slots(), CompareOp::Equal, 0).with_prefix(),
            ])
            .and_then([TxnOp::put(keys.tickets(), req.tickets.to_string(), None)]);
        shared.txn("cannot write", txn).await?;
    }
}

/// A fresh holder record for this process.
fn new_record(req: &Request) -> HolderRecord {
    HolderRecord {
        pid: std::process::id(),
        since: crate::time::rfc3339_now(),
        label: req.label.clone(),
        token: 0,
        command_pid: None,
    }
}

/// Takes a free slot on `lease`, also leaving the line if `queued`, or
/// finds them all held. It first tries slot `guess` (one round trip when
/// that slot is free: a release just seen, or the first free slot of a
/// read); a failed try brings back, in the same round trip, what is held.
async fn take(
    shared: &Arc<Shared>,
    keys: &Keys,
    req: &Request,
    lease: &Arc<Lease>,
    queued: bool,
    guess: u32,
) -> Result<Take> {
    let mut slot = guess.min(req.tickets - 1);
    loop {
        let key = keys.slot(slot);
        let record = new_record(req);
        let mut ops = vec![TxnOp::put(
            key.clone(),
            record.to_bytes(),
            Some(PutOptions::new().with_lease(lease.id)),
        )];
        if queued {
            ops.push(TxnOp::delete(keys.waiter(lease.id), None));
        }
        let txn = Txn::new()
            .when([
                Compare::value(keys.tickets(), CompareOp::Equal, req.tickets.to_string()),
                Compare::create_revision(key.clone(), CompareOp::Equal, 0),
            ])
            .and_then(ops)
            .or_else(snapshot_ops(keys));
        let resp = shared.txn("cannot take a slot", txn).await?;
        if !resp.succeeded() {
            // Held, or the tickets key is not ours: see which.
            let snap = snapshot_of(&resp, keys);
            // A take whose answer was lost (a timeout, a member that died
            // after the commit) may have gone through: the slot is ours.
            if let Some(&(mine, _, created)) = snap.holders.iter().find(|h| h.1 == lease.id) {
                return Ok(Take::Got(held(shared, keys, lease, mine, created, record)));
            }
            if !agreed(&snap, req.tickets) {
                agree(shared, keys, req).await?;
                continue;
            }
            match (0..req.tickets).find(|i| !snap.held.contains(i)) {
                Some(free) => slot = free,
                None => return Ok(Take::Full(snap.revision)),
            }
            continue;
        }
        let created = revision_of(resp.header());
        return Ok(Take::Got(held(shared, keys, lease, slot, created, record)));
    }
}

/// Takes a slot, waiting in line if `wait`; a lease lost while waiting is
/// replaced and the line joined again at its end.
async fn acquire(
    shared: &Arc<Shared>,
    keys: &Keys,
    req: &Request,
    wait: bool,
    lease: &mut Arc<Lease>,
    guess: u32,
) -> Result<Option<EtcdHeld>> {
    let first = patiently(shared, wait, || {
        take(shared, keys, req, lease, false, guess)
    })
    .await?;
    match first {
        Take::Got(held) => return Ok(Some(held)),
        Take::Full(_) if !wait => return Ok(None),
        Take::Full(_) => {}
    }
    let mut failures = 0;
    loop {
        let step = async {
            if !lease.is_alive() {
                let (s, l) = (Arc::clone(shared), Arc::clone(lease));
                tokio::spawn(async move { l.revoke(&s).await });
                *lease = Lease::grant(shared).await?;
            }
            wait_in_line(shared, keys, req, lease).await
        };
        match step.await {
            Ok(Some(held)) => return Ok(Some(held)),
            Ok(None) => failures = 0,
            // Mismatches and bugs end the wait; etcd trouble is waited out.
            Err(e @ (Error::TicketMismatch { .. } | Error::Cancelled)) => return Err(e),
            Err(Error::Store(_)) => {
                let pause = BACKOFF[failures.min(BACKOFF.len() - 1)];
                failures += 1;
                tokio::time::sleep(pause).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Joins the line (if not in it) and waits for one change that concerns
/// this waiter. `Ok(None)`: look again.
async fn wait_in_line(
    shared: &Arc<Shared>,
    keys: &Keys,
    req: &Request,
    lease: &Arc<Lease>,
) -> Result<Option<EtcdHeld>> {
    let me = keys.waiter(lease.id);
    let options = GetOptions::new()
        .with_prefix()
        .with_keys_only()
        .with_sort(SortTarget::Create, SortOrder::Ascend);
    let line = get(shared, "cannot read the line", keys.queue(), options).await?;
    let revision = revision_of(line.header());
    let Some(pos) = line.kvs().iter().position(|kv| kv.key() == me.as_bytes()) else {
        join(shared, keys, req, lease).await?;
        return Ok(None);
    };
    if pos > 0 {
        // Wait for the one before me to leave.
        let before = line.kvs()[pos - 1].key().to_vec();
        let mut watch = open_watch(shared, before, false, revision).await?;
        next_delete(shared, &mut watch, lease).await?;
        return Ok(None);
    }
    // Head of the line (nobody can come before it now): take a free slot,
    // or wait on one watch of the slots for a release and try that slot.
    let mut watch = None;
    let mut guess = 0;
    loop {
        match take(shared, keys, req, lease, true, guess).await? {
            Take::Got(held) => return Ok(Some(held)),
            Take::Full(at) => {
                if watch.is_none() {
                    let slots = keys.slots().into_bytes();
                    watch = Some(open_watch(shared, slots, true, at).await?);
                }
                let w = watch.as_mut().expect("opened above");
                match next_delete(shared, w, lease).await? {
                    Some(key) => guess = slot_number(&key, &keys.slots()).unwrap_or(0),
                    // Lost lease, a watch the server ended, or time to read
                    // everything again: start over.
                    None => return Ok(None),
                }
            }
        }
    }
}

/// Puts this waiter at the end of the line, if the tickets agree.
async fn join(shared: &Arc<Shared>, keys: &Keys, req: &Request, lease: &Arc<Lease>) -> Result<()> {
    loop {
        agree(shared, keys, req).await?;
        let txn = Txn::new()
            .when([Compare::value(
                keys.tickets(),
                CompareOp::Equal,
                req.tickets.to_string(),
            )])
            .and_then([TxnOp::put(
                keys.waiter(lease.id),
                new_record(req).to_bytes(),
                Some(PutOptions::new().with_lease(lease.id)),
            )]);
        let resp = shared.txn("cannot join the line", txn).await?;
        if resp.succeeded() {
            return Ok(());
        }
    }
}

/// A watch and the handle that keeps it open.
type OpenWatch = (
    etcd_client::Watcher,
    etcd_client::WatchStream,
    tokio::time::Instant,
);

/// Watches a key (or, with `prefix`, every key under it) from just after
/// revision `seen`, so that nothing since that read is missed.
async fn open_watch(
    shared: &Arc<Shared>,
    key: Vec<u8>,
    prefix: bool,
    seen: i64,
) -> Result<OpenWatch> {
    let mut options = WatchOptions::new().with_start_revision(seen + 1);
    if prefix {
        options = options.with_prefix();
    }
    let (watcher, stream) = watch(shared, key, options).await?;
    Ok((watcher, stream, tokio::time::Instant::now() + REREAD))
}

/// Waits for the next deletion the watch reports and returns its key;
/// `None` if the lease is lost, the server ended the watch, or [`REREAD`]
/// has passed since the watch was opened.
async fn next_delete(
    shared: &Arc<Shared>,
    (_, stream, reread): &mut OpenWatch,
    lease: &Arc<Lease>,
) -> Result<Option<Vec<u8>>> {
    loop {
        let msg = tokio::select! {
            m = stream.message() => m,
            _ = lease.lost() => return Ok(None),
            _ = tokio::time::sleep_until(*reread) => return Ok(None),
        };
        match msg {
            Ok(Some(resp)) => {
                if let Some(e) = resp
                    .events()
                    .iter()
                    .find(|e| e.event_type() == EventType::Delete)
                {
                    return Ok(Some(e.kv().map(|kv| kv.key().to_vec()).unwrap_or_default()));
                }
                if resp.canceled() {
                    return Ok(None);
                }
            }
            Ok(None) => return Ok(None),
            Err(e) => return Err(etcd_error(&shared.cfg, "a watch broke", e)),
        }
    }
}
