//! `elect status`: who holds the tickets, as a table for a person or as the
//! contract's JSON for scripts. Never takes a ticket.

use std::time::SystemTime;

use elect::Status;

use super::args::StatusArgs;
use super::exit::Failure;
use super::location::Place;
use super::output::{self, printable, timestamp};

/// Runs `elect status` and returns its exit status.
pub(crate) fn status(args: StatusArgs) -> Result<i32, Failure> {
    let st = Place::of(&args.dir, None)?.status(args.name.as_deref())?;
    let text = if args.json {
        let mut json = output::json(&st)
            .map_err(|e| Failure::internal(format!("cannot write the status as JSON: {e}")))?;
        json.push('\n');
        json
    } else {
        table(&st, args.name.as_deref())
    };
    output::print(&text)?;
    Ok(0)
}

/// The status as a table, one line per slot, then one line per resource
/// that has processes waiting in line. Every text cell goes through
/// [`printable`]: the record's label is whatever the slot file holds,
/// which anyone who can write it may have forged.
fn table(st: &Status, name: Option<&str>) -> String {
    let now = SystemTime::now();
    let mut rows: Vec<[String; 8]> = Vec::new();
    let mut waiting = Vec::new();
    for r in &st.resources {
        for s in &r.slots {
            let mut row: [String; 8] = Default::default();
            row[0] = printable(&r.name).into_owned();
            row[1] = s.slot.to_string();
            row[2] = if s.held { "held" } else { "free" }.to_string();
            if s.held {
                match &s.holder {
                    Some(h) => {
                        row[3] = match (s.pid_alive, s.lock_pid) {
                            (Some(false), Some(l)) if l != h.pid => {
                                format!("{} (exited; held by {l})", h.pid)
                            }
                            (Some(false), _) => format!("{} (exited)", h.pid),
                            _ => h.pid.to_string(),
                        };
                        row[4] = h.command_pid.map(|p| p.to_string()).unwrap_or_default();
                        row[5] = h.token.to_string();
                        row[6] = format!("{} ({})", timestamp(h.since), age(h.since, now));
                        row[7] = printable(&h.label).into_owned();
                    }
                    None => {
                        row[3] = s.lock_pid.map(|p| p.to_string()).unwrap_or_default();
                        row[7] = NO_RECORD.to_string();
                    }
                }
            }
            rows.push(row);
        }
        if let Some(w) = r.waiters.as_ref().filter(|w| !w.is_empty()) {
            let pids: Vec<String> = w.iter().map(u32::to_string).collect();
            waiting.push(format!(
                "{}: {} waiting (pid {})\n",
                printable(&r.name),
                w.len(),
                pids.join(", ")
            ));
        }
    }
    let mut out = String::new();
    if rows.is_empty() {
        out.push_str(&match name {
            Some(n) => format!(
                "{n:?} was never used in {}\n",
                printable(&st.dir.to_string_lossy())
            ),
            None => format!("no resources in {}\n", printable(&st.dir.to_string_lossy())),
        });
        return out;
    }
    let header = [
        "RESOURCE", "SLOT", "STATE", "PID", "COMMAND", "TOKEN", "SINCE", "LABEL",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                l.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    for w in waiting {
        out.push_str(&w);
    }
    out
}

/// The label of a held slot without a current record of elect's: the
/// process the kernel names (in the PID column) took it some other way,
/// or its record could not be written (a full disk).
const NO_RECORD: &str =
    "(no elect record: held outside elect, e.g. by flock(1), or its record could not be written)";

/// How long ago `since` was, as `12 s ago`, `4 min ago`, `2 h 5 min ago`,
/// `3 d 4 h ago`; a time after `now` (a clock set back, a forged record)
/// is `in the future`.
fn age(since: SystemTime, now: SystemTime) -> String {
    let Ok(d) = now.duration_since(since) else {
        return "in the future".to_string();
    };
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s ago"),
        60..3600 => format!("{} min ago", s / 60),
        3600..86400 => match s / 60 % 60 {
            0 => format!("{} h ago", s / 3600),
            m => format!("{} h {m} min ago", s / 3600),
        },
        _ => match s / 3600 % 24 {
            0 => format!("{} d ago", s / 86400),
            h => format!("{} d {h} h ago", s / 86400),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ages() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let ago = |s: u64| age(now - Duration::from_secs(s), now);
        assert_eq!(ago(0), "0 s ago");
        assert_eq!(ago(12), "12 s ago");
        assert_eq!(ago(59), "59 s ago");
        assert_eq!(ago(60), "1 min ago");
        assert_eq!(ago(3599), "59 min ago");
        assert_eq!(ago(3600), "1 h ago");
        assert_eq!(ago(2 * 3600 + 5 * 60 + 7), "2 h 5 min ago");
        assert_eq!(ago(86400), "1 d ago");
        assert_eq!(ago(3 * 86400 + 4 * 3600), "3 d 4 h ago");
        assert_eq!(age(now + Duration::from_secs(5), now), "in the future");
    }
}
