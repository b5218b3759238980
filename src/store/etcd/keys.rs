//! The key layout of a resource (see the parent module): where its
//! `tickets`, `slot/I` and `queue/LEASE` keys are under the prefix, and
//! reading keys and values back strictly, so that a stray or damaged key is
//! ignored rather than taken for a slot or a number of tickets.

use etcd_client::KeyValue;

use crate::record::HolderRecord;

/// The keys of one resource.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    /// `PREFIXNAME/`, with which every key of the resource starts.
    pub(super) base: String,
}

impl Keys {
    pub(super) fn new(prefix: &str, name: &str) -> Self {
        Keys {
            base: format!("{prefix}{name}/"),
        }
    }
    pub(super) fn tickets(&self) -> String {
        format!("{}tickets", self.base)
    }
    pub(super) fn slots(&self) -> String {
        format!("{}slot/", self.base)
    }
    pub(super) fn slot(&self, i: u32) -> String {
        format!("{}slot/{i}", self.base)
    }
    pub(super) fn queue(&self) -> String {
        format!("{}queue/", self.base)
    }
    pub(super) fn waiter(&self, lease: i64) -> String {
        format!("{}queue/{lease:016x}", self.base)
    }
}

/// The slot number a key under `NAME/slot/` stands for.
pub(super) fn slot_number(key: &[u8], slots_prefix: &str) -> Option<u32> {
    let rest = key.strip_prefix(slots_prefix.as_bytes())?;
    let text = std::str::from_utf8(rest).ok()?;
    if text.is_empty() || text.starts_with('0') && text != "0" {
        return None;
    }
    text.parse().ok()
}

/// What the `tickets` key holds: a number from 1 to the maximum, or junk.
pub(super) fn parse_tickets(kv: &KeyValue) -> Option<u32> {
    // The same format as the `tickets` file of a run directory.
    crate::store::local::parse_tickets(kv.value())
}

/// The record a slot key holds, its token taken from etcd, not the value.
pub(super) fn record_of(kv: &KeyValue) -> Option<HolderRecord> {
    let mut r = HolderRecord::parse(kv.value())?;
    r.token = u64::try_from(kv.create_revision()).unwrap_or(0);
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_keys_parse_strictly() {
        let p = "elect/x/slot/";
        assert_eq!(slot_number(b"elect/x/slot/0", p), Some(0));
        assert_eq!(slot_number(b"elect/x/slot/17", p), Some(17));
        for bad in [
            &b"elect/x/slot/"[..],
            b"elect/x/slot/01",
            b"elect/x/slot/-1",
            b"elect/y/slot/1",
        ] {
            assert_eq!(slot_number(bad, p), None);
        }
    }
}
