//! `elect status`: who holds the tickets, as a table for a person or as the
//! contract's JSON for scripts. Never takes a ticket.

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

/// The status as a table, one line per slot. Every text cell goes through
/// [`printable`]: the record's label is whatever the slot file holds,
/// which anyone who can write it may have forged.
fn table(st: &Status, name: Option<&str>) -> String {
    let mut rows: Vec<[String; 8]> = Vec::new();
    for r in &st.resources {
        for s in &r.slots {
            let mut row: [String; 8] = Default::default();
            row[0] = printable(&r.name).into_owned();
            row[1] = s.slot.to_string();
            row[2] = if s.held { "held" } else { "free" }.to_string();
            if s.held
                && let Some(h) = &s.holder
            {
                row[3] = h.pid.to_string();
                row[4] = h.command_pid.map(|p| p.to_string()).unwrap_or_default();
                row[5] = h.token.to_string();
                row[6] = timestamp(h.since);
                row[7] = printable(&h.label).into_owned();
            }
            rows.push(row);
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
    out
}
