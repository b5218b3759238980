//! What `elect run` shows on an interactive stderr while it waits: the
//! resource it waits for, for how long, and who holds its tickets (pid,
//! label, since when), redrawn in place when it changes and erased once a
//! ticket is obtained. Shows nothing when stderr is not a terminal or with
//! `--quiet`.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use elect::{Election, ResourceStatus};

use super::output::{printable, timestamp};

/// The most holders listed; the rest are counted.
const MAX_LISTED: usize = 8;

/// The waiting display on stderr.
#[derive(Debug)]
pub(crate) struct Progress {
    election: Election,
    enabled: bool,
    started: Instant,
    /// The lines on screen now.
    shown: Vec<String>,
}

impl Progress {
    /// A display for a wait on `election`; inactive with `quiet` or when
    /// stderr is not a terminal.
    pub(crate) fn new(election: &Election, quiet: bool) -> Self {
        Progress {
            election: election.clone(),
            enabled: !quiet && std::io::stderr().is_terminal(),
            started: Instant::now(),
            shown: Vec::new(),
        }
    }

    /// Whether anything is shown: only then does waiting need to wake up to
    /// redraw.
    pub(crate) fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Reads who holds the tickets now and redraws if anything changed.
    pub(crate) fn update(&mut self) {
        if !self.enabled {
            return;
        }
        let status = self.election.status().ok();
        let lines = render(
            &self.election,
            status.as_ref(),
            self.started.elapsed(),
            width(),
        );
        if lines != self.shown {
            let mut out = erase(self.shown.len());
            for line in &lines {
                out.push_str(line);
                out.push('\n');
            }
            write_stderr(&out);
            self.shown = lines;
        }
    }

    /// Erases the display.
    pub(crate) fn clear(&mut self) {
        if !self.shown.is_empty() {
            write_stderr(&erase(self.shown.len()));
            self.shown.clear();
        }
    }
}

/// The escape sequence that moves up `lines` lines and erases to the end of
/// the screen.
fn erase(lines: usize) -> String {
    if lines == 0 {
        String::new()
    } else {
        format!("\r\x1b[{lines}A\x1b[J")
    }
}

fn write_stderr(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

/// The terminal's width in columns (80 if unknown).
fn width() -> usize {
    // SAFETY: TIOCGWINSZ writes one winsize into the struct we pass.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    if ok && ws.ws_col > 0 {
        usize::from(ws.ws_col)
    } else {
        80
    }
}

/// The lines to show, each cut to fit `width` columns so that none wraps
/// (which would break the redraw). The holders' `since` and `label` come
/// from their records, which anyone who can write a slot file may have
/// forged: they go through [`printable`], so that they cannot move the
/// cursor, start lines or send escape sequences to the terminal.
fn render(
    election: &Election,
    status: Option<&ResourceStatus>,
    waited: Duration,
    width: usize,
) -> Vec<String> {
    let tickets = status.map_or(election.tickets(), |s| s.tickets);
    let held: Vec<_> = status
        .map(|s| s.slots.iter().filter(|s| s.held).collect())
        .unwrap_or_default();
    let mut lines = vec![format!(
        "elect: waiting {} for a ticket of {:?} ({} of {} held)",
        human(waited),
        election.name(),
        held.len(),
        tickets
    )];
    for slot in held.iter().take(MAX_LISTED) {
        let line = match &slot.holder {
            Some(h) => {
                let command = h
                    .command_pid
                    .map(|p| format!(", command {p}"))
                    .unwrap_or_default();
                format!(
                    "  slot {}: pid {}{} since {}: {}",
                    slot.slot,
                    h.pid,
                    command,
                    timestamp(h.since),
                    printable(&h.label)
                )
            }
            None => format!("  slot {}: held (no record yet)", slot.slot),
        };
        lines.push(line);
    }
    if held.len() > MAX_LISTED {
        lines.push(format!("  ... and {} more", held.len() - MAX_LISTED));
    }
    lines
        .into_iter()
        .map(|l| l.chars().take(width.saturating_sub(1).max(10)).collect())
        .collect()
}

/// A short human duration: `7s`, `3m12s`, `2h05m`.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s / 60 % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_secs(7)), "7s");
        assert_eq!(human(Duration::from_secs(192)), "3m12s");
        assert_eq!(human(Duration::from_secs(7500)), "2h05m");
    }

    #[test]
    fn lines_fit_the_width() {
        let e = Election::builder("x").dir("/nonexistent").build().unwrap();
        let lines = render(&e, None, Duration::from_secs(1), 20);
        assert!(lines.iter().all(|l| l.chars().count() <= 19));
    }
}
