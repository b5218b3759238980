//! The holder record: what a holder writes into its slot file so that others
//! can see who holds the slot.
//!
//! The record is for display only. Whether a slot is held is always the
//! kernel's answer, never the record's: a record can be stale (its writer
//! released or was killed), torn (read while being rewritten) or garbage
//! (anyone who can write the file can write anything), and every reader
//! copes with all three.

use serde::{Deserialize, Serialize};

/// The most of a slot file a reader looks at; anything longer is not a
/// record elect wrote.
pub(crate) const MAX_RECORD: usize = 16 * 1024;

/// The length of every record elect writes: its JSON line padded with
/// spaces (which JSON allows) before the newline.
///
/// A slot file then always has this length, so a holder rewrites it with one
/// `pwrite` through a descriptor kept from an earlier acquisition, without
/// asking how long the file is and cutting off what an earlier, longer
/// record left behind: two system calls fewer on every acquisition. The
/// longest record elect writes (a label of [`MAX_LABEL`] bytes that all
/// need escaping, and the largest numbers) fits.
pub(crate) const RECORD_LEN: usize = 2304;

/// The longest label kept in a record, in bytes.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// let e = elect::Election::builder("x").label("y".repeat(5000)).dir(dir.path()).build()?;
/// assert_eq!(e.obtain()?.record().label.len(), elect::MAX_LABEL);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const MAX_LABEL: usize = 1024;

/// Who holds a slot, as the holder described itself.
///
/// ```
/// let r = elect::HolderRecord::parse(br#"{"pid":42,"since":"2026-11-23T10:00:00Z","label":"job","token":7}"#).unwrap();
/// assert_eq!((r.pid, r.token, r.label.as_str()), (42, 7, "job"));
/// assert!(elect::HolderRecord::parse(b"\0garbage").is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderRecord {
    /// The process that took the ticket.
    pub pid: u32,
    /// When it took the ticket, RFC 3339 UTC.
    pub since: String,
    /// How the holder describes itself (the command line, by default).
    pub label: String,
    /// The fencing token of this acquisition.
    pub token: u64,
    /// The command `elect run` started while holding the ticket, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_pid: Option<u32>,
}

impl HolderRecord {
    /// Parses a slot file's contents. Anything that is not a record elect
    /// wrote (empty, torn, garbage, too long) gives `None`, never an error:
    /// the record is only for display.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > MAX_RECORD {
            return None;
        }
        let text = std::str::from_utf8(bytes).ok()?.trim_end_matches('\n');
        let mut record: HolderRecord = serde_json::from_str(text).ok()?;
        record.label = clean_label(&record.label);
        Some(record)
    }

    /// The bytes written into the slot file: one JSON line, padded with
    /// spaces before its newline to [`RECORD_LEN`] bytes.
    #[cfg(any(test, feature = "etcd"))]
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut buf = [0u8; RECORD_LEN];
        self.padded_in(&mut buf).to_vec()
    }

    /// The record's bytes (one JSON line padded with spaces before its
    /// newline to [`RECORD_LEN`] bytes) in `buf`, on the caller's stack:
    /// every acquisition writes one, between the kernel's hand-off and the
    /// holder's ticket, where an allocation (and its free, which for a
    /// buffer this size consolidates the heap) is time taken from the
    /// hand-off.
    pub(crate) fn padded_in<'a>(&self, buf: &'a mut [u8; RECORD_LEN]) -> &'a [u8] {
        let mut rest = &mut buf[..RECORD_LEN - 1];
        if serde_json::to_writer(&mut rest, self).is_err() {
            // Longer than any record elect makes (see RECORD_LEN): never
            // cut a line short, so the reader's parse fails as for
            // garbage, rather than showing half a record.
            return b"{}\n";
        }
        let end = RECORD_LEN - 1 - rest.len();
        buf[end..RECORD_LEN - 1].fill(b' ');
        buf[RECORD_LEN - 1] = b'\n';
        &buf[..]
    }
}

/// Makes a label safe to show on a terminal: control characters become
/// spaces and it is cut to [`MAX_LABEL`] bytes on a character boundary.
pub(crate) fn clean_label(label: &str) -> String {
    let mut out = String::with_capacity(label.len().min(MAX_LABEL));
    for c in label.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if out.len() + c.len_utf8() > MAX_LABEL {
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let r = HolderRecord {
            pid: 1,
            since: "2026-11-23T10:00:00Z".into(),
            label: "sh -c 'echo \"hi\"'".into(),
            token: u64::MAX,
            command_pid: Some(2),
        };
        assert_eq!(HolderRecord::parse(&r.to_bytes()), Some(r));
    }

    #[test]
    fn every_record_is_padded_to_the_same_length() {
        let short = HolderRecord {
            pid: 1,
            since: "2026-11-23T10:00:00Z".into(),
            label: String::new(),
            token: 1,
            command_pid: None,
        };
        // The longest record elect can write: every label byte escaped.
        let long = HolderRecord {
            pid: u32::MAX,
            since: "+99999-12-31T23:59:59Z".into(),
            label: clean_label(&"\"\\".repeat(MAX_LABEL)),
            token: u64::MAX,
            command_pid: Some(u32::MAX),
        };
        assert_eq!(long.label.len(), MAX_LABEL);
        for r in [short, long] {
            let bytes = r.to_bytes();
            assert_eq!(bytes.len(), RECORD_LEN);
            assert_eq!(bytes.last(), Some(&b'\n'));
            assert_eq!(HolderRecord::parse(&bytes), Some(r));
        }
    }

    #[test]
    fn hostile_labels_are_defanged() {
        let r = HolderRecord::parse(
            br#"{"pid":1,"since":"x","label":"\u001b[2Jboom\nline","token":1}"#,
        )
        .unwrap();
        assert_eq!(r.label, " [2Jboom line");
        assert_eq!(clean_label(&"é".repeat(2000)).len(), MAX_LABEL);
    }

    #[test]
    fn garbage_is_none() {
        for g in [
            &b""[..],
            b"{",
            b"null",
            b"{\"pid\":-1}",
            &[0xff; 10],
            &vec![b' '; MAX_RECORD + 1],
        ] {
            assert!(HolderRecord::parse(g).is_none());
        }
    }
}
