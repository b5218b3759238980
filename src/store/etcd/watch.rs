//! Watching one resource: [`EtcdWatch`], for `elect watch` and
//! `Election::watch`. A task on the runtime turns etcd watch events on the
//! slot keys into wake-ups ([`forward`]), and watches again from where it
//! left off when a watch breaks or history is compacted. A snapshot reads
//! the resource's [`status`](super::status) anew, or keeps the last one
//! through an etcd error.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::WatchOptions;

use super::client::{Shared, block, watch};
use super::keys::Keys;
use super::obtain::read;
use super::status::status;
use crate::error::{Error, Result};
use crate::interrupt::Interrupter;
use crate::status::ResourceStatus;

/// A watch on one resource's slots.
pub(crate) struct EtcdWatch {
    shared: Arc<Shared>,
    name: String,
    start: i64,
    changes: std::sync::mpsc::Receiver<()>,
    last: Mutex<ResourceStatus>,
    task: tokio::task::AbortHandle,
}

impl EtcdWatch {
    pub(super) fn start(shared: Arc<Shared>, name: &str) -> Result<Self> {
        let keys = Keys::new(&shared.cfg.prefix, name);
        let (tx, rx) = std::sync::mpsc::channel();
        let s = Arc::clone(&shared);
        let (start, task) = block(async move {
            let first = read(&s, &keys).await?;
            let task = tokio::spawn(forward(s, keys.slots(), first.revision, tx));
            Ok::<_, Error>((first.revision, task.abort_handle()))
        })??;
        let w = EtcdWatch {
            shared,
            name: name.to_string(),
            start,
            changes: rx,
            last: Mutex::new(ResourceStatus {
                name: name.to_string(),
                tickets: 0,
                slots: Vec::new(),
                waiters: None,
            }),
            task,
        };
        Ok(w)
    }

    /// The resource now; on an etcd error, what it was at the last look.
    pub(crate) fn snapshot(&self) -> ResourceStatus {
        let shared = Arc::clone(&self.shared);
        let name = self.name.clone();
        let now = block(async move { status(&shared, Some(&name)).await })
            .and_then(|r| r)
            .map(|mut v| v.pop());
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        match now {
            Ok(Some(s)) => *last = s,
            Ok(None) => {
                last.slots.clear();
            }
            Err(_) => {}
        }
        last.clone()
    }

    /// Tokens at or below this were issued before the watch began.
    pub(crate) fn last_token(&self) -> u64 {
        u64::try_from(self.start).unwrap_or(0)
    }

    /// Waits up to `timeout` for a change; whether there was one.
    pub(crate) fn wait(&mut self, _intr: &Interrupter, timeout: Duration) -> Result<bool> {
        match self.changes.recv_timeout(timeout) {
            Ok(()) => {
                while self.changes.try_recv().is_ok() {}
                Ok(true)
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Ok(false),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(Error::Store(
                format!("the watch on {} ended; this is a bug", self.name).into(),
            )),
        }
    }
}

impl Drop for EtcdWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Sends one `()` per batch of changes under `prefix` after `seen`, and
/// watches again from where it left off when a watch breaks.
async fn forward(
    shared: Arc<Shared>,
    prefix: String,
    mut seen: i64,
    tx: std::sync::mpsc::Sender<()>,
) {
    loop {
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(seen + 1);
        if let Ok((_watcher, mut stream)) =
            watch(&shared, prefix.clone().into_bytes(), options).await
        {
            while let Ok(Some(resp)) = stream.message().await {
                if let Some(last) = resp.events().iter().filter_map(|e| e.kv()).next_back() {
                    seen = seen.max(last.mod_revision());
                }
                if resp.canceled() {
                    // Compacted past what we saw: start from now.
                    seen = resp.compact_revision().max(seen);
                }
                if (!resp.events().is_empty() || resp.canceled()) && tx.send(()).is_err() {
                    return;
                }
                if resp.canceled() {
                    break;
                }
            }
        }
        if tx.send(()).is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
