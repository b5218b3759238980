//! The holder record: what a holder writes into its slot file so that others
//! can see who holds the slot.
//!
//! The record is for display only. Whether a slot is held is always the
//! kernel's answer, never the record's: a record can be stale (its writer
//! released or was killed), torn (read while being rewritten) or garbage
//! (anyone who can write the file can write anything), and every reader
//! copes with all three.
//!
//! Its text is kept as written, so that `status --json` shows it exactly;
//! whatever shows it to a person must clean it first, as a forged record
//! can hold terminal escape sequences. Labels that elect writes itself are
//! cleaned here, when an election is built.

use std::borrow::Cow;
use std::time::SystemTime;

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
/// The fields are as read from the slot file, which anyone who can write
/// it may have forged: the label may hold control characters and terminal
/// escape sequences, so replace those before showing it on a terminal. A
/// slot file that does not hold a whole record (a `since` that is not an
/// RFC 3339 time among them) gives no record at all. Serializes to the
/// contract's JSON fields (`pid`, `since` as RFC 3339 in UTC to the second,
/// `label`, `token`, `command_pid`).
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// let e = elect::Election::builder("job").label("nightly").dir(dir.path()).build()?;
/// let t = e.obtain()?;
/// let r = t.record();
/// assert_eq!((r.pid, r.token, r.label.as_str()), (std::process::id(), t.token(), "nightly"));
/// assert_eq!(e.status()?.slots[0].holder.as_ref(), Some(&r));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HolderRecord {
    /// The process that took the ticket.
    pub pid: u32,
    /// When it took the ticket, to the second.
    #[serde(with = "crate::time::rfc3339_serde")]
    pub since: SystemTime,
    /// How the holder describes itself (the command line, by default).
    pub label: String,
    /// The fencing token of this acquisition.
    pub token: u64,
    /// The process that does the work of the ticket, if the holder named
    /// one (see [`Ticket::set_command_pid`](crate::Ticket::set_command_pid)):
    /// for `elect run`, its command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_pid: Option<u32>,
}

impl HolderRecord {
    /// Parses a slot file's contents. Anything that is not a record elect
    /// wrote (empty, torn, garbage, too long) gives `None`, never an error:
    /// the record is only for display. Its text is kept exactly as written.
    pub(crate) fn parse(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > MAX_RECORD {
            return None;
        }
        let text = std::str::from_utf8(bytes).ok()?.trim_end_matches('\n');
        serde_json::from_str(text).ok()
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

/// Whether `c` must not reach a terminal as it is: a control character
/// (C0, DEL, C1: escape sequences, carriage return, new lines, the 8-bit
/// CSI), or an invisible Unicode format character that reorders or hides
/// text (bidirectional overrides, isolates and marks, zero-width space,
/// word joiner and invisible operators, byte order mark, line and
/// paragraph separators, interlinear annotation marks). The zero-width
/// joiner and non-joiner stay: emoji sequences and some scripts need them.
/// (The command line has the same rule for what it shows.)
fn unsafe_on_terminal(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200B}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
        )
}

/// `text` safe to show on a terminal: every character that
/// [`unsafe_on_terminal`] names becomes a space. Borrows when nothing
/// needed replacing.
fn printable(text: &str) -> Cow<'_, str> {
    if text.chars().any(unsafe_on_terminal) {
        Cow::Owned(
            text.chars()
                .map(|c| if unsafe_on_terminal(c) { ' ' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(text)
    }
}

/// Makes a label safe to show on a terminal: cleaned as by [`printable`]
/// and cut to [`MAX_LABEL`] bytes on a character boundary.
pub(crate) fn clean_label(label: &str) -> String {
    let clean = printable(label);
    let mut end = clean.len().min(MAX_LABEL);
    while !clean.is_char_boundary(end) {
        end -= 1;
    }
    clean[..end].to_string()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    /// 2026-11-23T10:00:00Z.
    fn since() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_428_000)
    }

    #[test]
    fn round_trip() {
        let r = HolderRecord {
            pid: 1,
            since: since(),
            label: "sh -c 'echo \"hi\"'".into(),
            token: u64::MAX,
            command_pid: Some(2),
        };
        assert_eq!(HolderRecord::parse(&r.to_bytes()), Some(r));
    }

    #[test]
    fn the_contract_json_is_as_before() {
        let text = br#"{"pid":42,"since":"2026-11-23T10:00:00Z","label":"job","token":7}"#;
        let r = HolderRecord::parse(text).unwrap();
        assert_eq!(
            (r.pid, r.since, r.label.as_str(), r.token),
            (42, since(), "job", 7)
        );
        assert_eq!(serde_json::to_string(&r).unwrap().as_bytes(), text);
        let bytes = r.to_bytes();
        assert!(
            bytes.starts_with(text),
            "{}",
            String::from_utf8_lossy(&bytes)
        );
    }

    #[test]
    fn every_record_is_padded_to_the_same_length() {
        let short = HolderRecord {
            pid: 1,
            since: UNIX_EPOCH,
            label: String::new(),
            token: 1,
            command_pid: None,
        };
        // The longest record elect can write: every label byte escaped.
        let long = HolderRecord {
            pid: u32::MAX,
            since: crate::time::parse_rfc3339("9999-12-31T23:59:59Z").unwrap(),
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
    fn hostile_text_is_kept_exactly_and_labels_elect_writes_are_clean() {
        let r = HolderRecord::parse(
            br#"{"pid":1,"since":"2026-11-23T10:00:00Z","label":"\u001b[2Jboom\nline\u007f","token":1}"#,
        )
        .unwrap();
        assert_eq!(r.label, "\x1b[2Jboom\nline\x7f");
        assert_eq!(clean_label(&r.label), " [2Jboom line ");
        assert_eq!(clean_label("rtl \u{202E}txt.exe"), "rtl  txt.exe");
        assert_eq!(clean_label(&"é".repeat(2000)).len(), MAX_LABEL);
        for ok in [
            "sh -c 'echo \"hi\"'",
            "Привет мир",
            "👩‍👩‍👧 family",
            "a\u{200D}b",
        ] {
            assert_eq!(clean_label(ok), ok);
        }
    }

    #[test]
    fn a_since_that_is_no_time_makes_no_record() {
        for since in [r"\u009b2J\u2067", "yesterday", "2026-11-23", "1795428000"] {
            let text = format!(r#"{{"pid":1,"since":"{since}","label":"x","token":1}}"#);
            assert_eq!(HolderRecord::parse(text.as_bytes()), None, "{since}");
        }
        let text = br#"{"pid":1,"since":1795428000,"label":"x","token":1}"#;
        assert_eq!(HolderRecord::parse(text), None);
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
