//! The status of resources as the cluster has it now, for `elect status`
//! and for a watch's snapshots: read in one range read of the prefix, never
//! taking a ticket. Keys that are not a resource's `tickets` or `slot/I`
//! are ignored; a resource without a valid `tickets` key shows as many
//! slots as its highest held one needs.

use std::collections::BTreeMap;

use etcd_client::GetOptions;

use super::client::{Shared, get};
use super::keys::{Keys, parse_tickets, record_of, slot_number};
use crate::error::Result;
use crate::record::HolderRecord;
use crate::status::{ResourceStatus, SlotStatus};

/// The status of one resource or of all under the prefix.
pub(super) async fn status(shared: &Shared, name: Option<&str>) -> Result<Vec<ResourceStatus>> {
    let prefix = &shared.cfg.prefix;
    let from = match name {
        Some(n) => Keys::new(prefix, n).base,
        None => prefix.clone(),
    };
    let resp = get(shared, "cannot read", from, GetOptions::new().with_prefix()).await?;
    // name → (tickets, slot → record of its holder)
    type Found = BTreeMap<String, (Option<u32>, BTreeMap<u32, Option<HolderRecord>>)>;
    let mut found = Found::new();
    for kv in resp.kvs() {
        let Some(rest) = kv.key().strip_prefix(prefix.as_bytes()) else {
            continue;
        };
        let Ok(rest) = std::str::from_utf8(rest) else {
            continue;
        };
        let Some((name, what)) = rest.split_once('/') else {
            continue;
        };
        if crate::name::validate_name(name).is_err() {
            continue;
        }
        let entry = found.entry(name.to_string()).or_default();
        if what == "tickets" {
            entry.0 = parse_tickets(kv);
        } else if let Some(i) = slot_number(kv.key(), &Keys::new(prefix, name).slots()) {
            entry.1.insert(i, record_of(kv));
        }
    }
    Ok(found
        .into_iter()
        .filter_map(|(name, (tickets, held))| {
            let top = held.keys().next_back().map_or(0, |i| i + 1);
            let tickets = tickets.unwrap_or(top);
            if tickets == 0 {
                return None;
            }
            let slots = (0..tickets.max(top))
                .map(|slot| SlotStatus {
                    slot,
                    held: held.contains_key(&slot),
                    holder: held.get(&slot).cloned().flatten(),
                    lock_pid: None,
                    pid_alive: None,
                })
                .collect();
            Some(ResourceStatus {
                name,
                tickets,
                slots,
                waiters: None,
            })
        })
        .collect())
}
