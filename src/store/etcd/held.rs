//! A held slot: [`EtcdHeld`], what the rest of the crate sees of a ticket
//! taken in etcd. It stays intact while its lease lives and nobody else
//! deletes or replaces its key (watched by [`watch_own_key`]), and dropping
//! it revokes the lease, which frees the slot and wakes the next waiter.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{
    Compare, CompareOp, EventType, GetOptions, PutOptions, Txn, TxnOp, WatchOptions,
};

use super::client::{Shared, block, get, on_runtime, revision_of, runtime, watch};
use super::keys::Keys;
use super::lease::Lease;
use crate::error::Result;
use crate::record::HolderRecord;

/// A slot held in etcd.
pub(crate) struct EtcdHeld {
    shared: Arc<Shared>,
    lease: Arc<Lease>,
    slot: u32,
    token: u64,
    key: String,
    path: PathBuf,
    record: HolderRecord,
}

/// The held slot `slot`, created at revision `created` on `lease`, and the
/// watch that tells if anyone else deletes it.
pub(super) fn held(
    shared: &Arc<Shared>,
    keys: &Keys,
    lease: &Arc<Lease>,
    slot: u32,
    created: i64,
    mut record: HolderRecord,
) -> EtcdHeld {
    let key = keys.slot(slot);
    let token = u64::try_from(created).unwrap_or(0);
    let path = PathBuf::from(format!("etcd:{}/{key}", shared.cfg.endpoints.join(",")));
    record.token = token;
    watch_own_key(shared, &key, token, lease);
    EtcdHeld {
        shared: Arc::clone(shared),
        lease: Arc::clone(lease),
        slot,
        token,
        key,
        path,
        record,
    }
}

/// Marks the lease gone if the slot key is deleted or replaced by anyone
/// but its holder (an operator wiping the prefix: the run directory
/// removed, in the local store's terms).
fn watch_own_key(shared: &Arc<Shared>, key: &str, token: u64, lease: &Arc<Lease>) {
    let (shared, key, lease) = (Arc::clone(shared), key.to_string(), Arc::clone(lease));
    tokio::spawn(async move {
        let created = i64::try_from(token).unwrap_or(i64::MAX);
        let mut from = created + 1;
        loop {
            let options = WatchOptions::new().with_start_revision(from);
            let watched = tokio::select! {
                w = watch(&shared, key.clone().into_bytes(), options) => w,
                _ = lease.lost() => return,
            };
            let Ok((_watcher, mut stream)) = watched else {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
                    _ = lease.lost() => return,
                }
            };
            loop {
                let msg = tokio::select! {
                    m = stream.message() => m,
                    _ = lease.lost() => return,
                };
                match msg {
                    Ok(Some(resp)) => {
                        let replaced = resp.events().iter().any(|e| {
                            e.event_type() == EventType::Delete
                                || e.kv().is_some_and(|kv| kv.create_revision() != created)
                        });
                        if replaced {
                            lease.mark_gone();
                            return;
                        }
                        if resp.canceled() {
                            // History compacted away: look at the key now.
                            match get(&shared, "cannot read", key.clone(), GetOptions::new()).await
                            {
                                Ok(r)
                                    if r.kvs().first().map(|kv| kv.create_revision())
                                        == Some(created) =>
                                {
                                    from = revision_of(r.header()) + 1;
                                }
                                Ok(_) => {
                                    lease.mark_gone();
                                    return;
                                }
                                Err(_) => {}
                            }
                            break;
                        }
                    }
                    _ => break,
                }
            }
        }
    });
}

impl std::fmt::Debug for EtcdHeld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdHeld")
            .field("key", &self.key)
            .field("token", &self.token)
            .field("lease", &self.lease.id)
            .finish_non_exhaustive()
    }
}

impl EtcdHeld {
    pub(crate) fn slot(&self) -> u32 {
        self.slot
    }

    pub(crate) fn token(&self) -> u64 {
        self.token
    }

    pub(crate) fn record(&self) -> &HolderRecord {
        &self.record
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the lease is certainly still alive on the server: renewed
    /// within [`LOST_AFTER`] of its TTL and the slot key untouched.
    ///
    /// [`LOST_AFTER`]: super::lease::LOST_AFTER
    pub(crate) fn is_intact(&self) -> bool {
        self.lease.is_alive()
    }

    /// By when work done under this ticket must have stopped.
    pub(crate) fn deadline(&self) -> Instant {
        self.lease.kill_by()
    }

    /// Adds the command's pid to the record, if the slot is still ours.
    pub(crate) fn set_command_pid(&mut self, pid: u32) -> Result<()> {
        self.record.command_pid = Some(pid);
        let txn = Txn::new()
            .when([Compare::create_revision(
                self.key.clone(),
                CompareOp::Equal,
                i64::try_from(self.token).unwrap_or(i64::MAX),
            )])
            .and_then([TxnOp::put(
                self.key.clone(),
                self.record.to_bytes(),
                Some(PutOptions::new().with_lease(self.lease.id)),
            )]);
        let shared = Arc::clone(&self.shared);
        block(async move { shared.txn("cannot write the record", txn).await })?.map(drop)
    }
}

impl Drop for EtcdHeld {
    /// Revokes the lease, which frees the slot; not in a fork child, whose
    /// copy of the ticket is its parent's: the parent still holds it.
    fn drop(&mut self) {
        if self.shared.check_process().is_err() {
            return;
        }
        let (s, l) = (Arc::clone(&self.shared), Arc::clone(&self.lease));
        // A lost ticket's lease is gone or cannot be reached: nothing to
        // wait for, and whoever is told of the loss must be told now.
        let lost = !l.is_alive();
        let revoke = async move { l.revoke(&s).await };
        if on_runtime() {
            tokio::spawn(revoke);
        } else if lost {
            if let Ok(rt) = runtime() {
                rt.spawn(revoke);
            }
        } else {
            // Wait for the revoke, so that the slot is free when drop
            // returns, as it is on one host. Through an etcd outage (a
            // leader election) that takes until the revoke goes through or
            // the lease has expired anyway, at most about the TTL: a
            // process that exited sooner would leave the slot taken until
            // the lease expired, while a new leader could have freed it.
            let _ = block(revoke);
        }
    }
}
