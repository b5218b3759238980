//! Liveness: a lease per participant, granted with the TTL asked for,
//! renewed in the background by its keeper every TTL/5 (on the next member
//! when one does not answer), revoked on release. The keeper also decides
//! when a ticket counts as lost: [`LOST_AFTER`] of the TTL after the last
//! renewal that went through, before the server can let the lease expire,
//! and [`KILL_BY`], when `elect run` must have stopped its command.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::client::Shared;
use crate::error::Result;
use crate::sys::since_boot;

/// Renewals are sent every TTL / `RENEW_PER_TTL`.
const RENEW_PER_TTL: u32 = 5;

/// A ticket whose lease was not renewed for this share of the TTL is lost
/// (in fifths of the TTL: 3/5).
pub(super) const LOST_AFTER: (u32, u32) = (3, 5);

/// By this share of the TTL after the last renewal, `elect run` has killed
/// its command (4/5), a fifth of the TTL before the server can let another
/// holder in.
pub(super) const KILL_BY: (u32, u32) = (4, 5);

/// One participant's lease and what its keeper has learnt.
#[derive(Debug)]
pub(super) struct Lease {
    pub(super) id: i64,
    /// The TTL the server granted.
    ttl: Duration,
    /// When the last renewal that the server answered was sent, on the
    /// clock that counts suspend ([`since_boot`]).
    renewed: Mutex<Duration>,
    /// The server said the lease is gone, or the slot key was deleted.
    gone: AtomicBool,
    /// Wakes whoever waits for the lease to go.
    gone_notify: Notify,
    /// Tells the keeper to stop.
    stop: Notify,
}

fn share(d: Duration, (num, den): (u32, u32)) -> Duration {
    d * num / den
}

impl Lease {
    fn renewed(&self) -> Duration {
        *self.renewed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// When the ticket counts as lost if no renewal goes through before.
    fn lost_at(&self) -> Duration {
        self.renewed() + share(self.ttl, LOST_AFTER)
    }

    /// By when a holder's work must have stopped.
    pub(super) fn kill_by(&self) -> Instant {
        let at = self.renewed() + share(self.ttl, KILL_BY);
        Instant::now() + at.saturating_sub(since_boot())
    }

    /// Whether the lease certainly lives on the server. Once false, false
    /// for good: a holder that stopped trusting its ticket must not start
    /// again because a late renewal went through.
    pub(super) fn is_alive(&self) -> bool {
        if self.gone.load(Ordering::Acquire) {
            return false;
        }
        if since_boot() >= self.lost_at() {
            self.mark_gone();
            return false;
        }
        true
    }

    pub(super) fn mark_gone(&self) {
        self.gone.store(true, Ordering::Release);
        self.gone_notify.notify_waiters();
    }

    /// Waits until the lease is gone or counts as lost.
    pub(super) async fn lost(&self) {
        loop {
            // Registered before the look, so that a mark_gone between the
            // two still wakes this waiter (notify_waiters keeps no permit).
            let notified = self.gone_notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.is_alive() {
                return;
            }
            let at = tokio::time::Instant::now() + self.lost_at().saturating_sub(since_boot());
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(at) => {}
            }
        }
    }

    /// Grants a lease and starts its keeper.
    pub(super) async fn grant(shared: &Arc<Shared>) -> Result<Arc<Lease>> {
        let sent = since_boot();
        let secs = i64::try_from(shared.cfg.ttl.as_secs()).unwrap_or(i64::MAX);
        let resp = shared
            .call("cannot grant a lease", |mut c| async move {
                c.lease_grant(secs, None).await
            })
            .await?;
        let granted = u64::try_from(resp.ttl()).unwrap_or(0).max(1);
        let lease = Arc::new(Lease {
            id: resp.id(),
            ttl: Duration::from_secs(granted),
            renewed: Mutex::new(sent),
            gone: AtomicBool::new(false),
            gone_notify: Notify::new(),
            stop: Notify::new(),
        });
        tokio::spawn(keep(Arc::clone(shared), Arc::clone(&lease)));
        Ok(lease)
    }

    /// Stops the keeper and revokes the lease, deleting every key on it.
    pub(super) async fn revoke(&self, shared: &Shared) {
        self.stop.notify_one();
        self.mark_gone();
        // Through an etcd outage (a leader election) the revoke is tried
        // again until it goes through or the lease has expired anyway:
        // meanwhile nobody else can take the slot.
        let until = self.renewed() + self.ttl + Duration::from_secs(1);
        let mut pause = Duration::from_millis(20);
        while revoke(shared, self.id).await.is_err() && since_boot() < until {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }
}

/// Revokes lease `id`, deleting every key on it; a lease the server no
/// longer knows counts as revoked.
async fn revoke(shared: &Shared, id: i64) -> Result<()> {
    shared
        .call("cannot revoke a lease", |mut c| async move {
            match c.lease_revoke(id).await {
                // NOT_FOUND: expired or revoked already.
                Err(etcd_client::Error::GRpcStatus(s)) if s.code() as i32 == 5 => Ok(()),
                other => other.map(drop),
            }
        })
        .await
}

/// The keeper of one lease: renews it every TTL/5, retries soon after a
/// failed renewal (on the next member), and marks it gone when the server
/// says it expired.
async fn keep(shared: Arc<Shared>, lease: Arc<Lease>) {
    let every = lease.ttl / RENEW_PER_TTL;
    let mut next = tokio::time::Instant::now() + every;
    // The renewal stream, and the endpoint it goes to.
    let mut stream = None;
    loop {
        tokio::select! {
            _ = lease.stop.notified() => return,
            _ = tokio::time::sleep_until(next) => {}
        }
        if !lease.is_alive() {
            // Lost by the clock (renewals failed for too long): revoke, in
            // case the server still has it, so the slot is free at once.
            // (After a release this repeats its revoke, which is harmless.)
            let _ = revoke(&shared, lease.id).await;
            return;
        }
        let sent = since_boot();
        let sent_here = tokio::time::Instant::now();
        let mut endpoint = None;
        let renewal = tokio::time::timeout(every.max(Duration::from_millis(500)), async {
            if stream.is_none() {
                let (i, mut client) = shared
                    .client()
                    .await
                    .map_err(|e| etcd_client::Error::LeaseKeepAliveError(e.to_string()))?;
                endpoint = Some(i);
                // Opening the stream sends the first renewal and waits for
                // its answer.
                let (keeper, answers) = client.lease_keep_alive(lease.id).await?;
                stream = Some((i, keeper, answers));
                return Ok(Some(lease.ttl.as_secs() as i64));
            }
            let (i, keeper, answers) = stream.as_mut().expect("opened above");
            endpoint = Some(*i);
            keeper.keep_alive().await?;
            Ok::<_, etcd_client::Error>(answers.message().await?.map(|r| r.ttl()))
        })
        .await;
        match renewal {
            // Renewed, and in time: the ticket was never given up.
            Ok(Ok(Some(ttl))) if ttl > 0 && lease.is_alive() => {
                *lease.renewed.lock().unwrap_or_else(|p| p.into_inner()) = sent;
                next = sent_here + every;
            }
            // Renewed too late: the holder has already been told its
            // ticket is lost, so let the others have the slot now.
            Ok(Ok(Some(ttl))) if ttl > 0 => {
                let _ = revoke(&shared, lease.id).await;
                return;
            }
            // The server no longer knows the lease: it expired.
            Ok(Ok(Some(_))) => {
                lease.mark_gone();
                return;
            }
            Ok(Err(etcd_client::Error::LeaseKeepAliveError(m))) if m.contains("not found") => {
                lease.mark_gone();
                return;
            }
            // A broken stream or no answer: open a new one soon, on the
            // next member.
            _ => {
                stream = None;
                if let Some(i) = endpoint {
                    shared.failed(i);
                }
                next = tokio::time::Instant::now() + Duration::from_millis(200).min(every);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_of_the_ttl_leave_room_before_expiry() {
        let ttl = Duration::from_secs(5);
        assert_eq!(share(ttl, LOST_AFTER), Duration::from_secs(3));
        assert_eq!(share(ttl, KILL_BY), Duration::from_secs(4));
        assert!(
            ttl / RENEW_PER_TTL * 2 < share(ttl, LOST_AFTER),
            "two renewals may fail"
        );
    }
}
