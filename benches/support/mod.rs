//! What the multi-process benchmarks share: a clock that means the same in
//! every process, fresh work directories, waiting for a file a worker
//! writes, and keeping raw samples for the plot.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// CLOCK_MONOTONIC in nanoseconds: one clock for all processes of a run,
/// so a stamp taken by one process can be compared with another's.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// `base/name`, emptied and created.
pub fn fresh(base: &Path, name: &str) -> PathBuf {
    let d = base.join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Waits until `path` exists; false if `limit` passed first. Polling is
/// fine here: it runs between measurements, never during one.
pub fn wait_for(path: &Path, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while !path.exists() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    true
}

/// When `ELECT_BENCH_SAMPLES` names a directory, writes every sample
/// (nanoseconds, little-endian u64) to `<dir>/<prefix><what>.u64` for
/// report.py's plot. A number in the variable is a sample count, not a
/// directory, and keeps nothing.
pub fn keep_samples(prefix: &str, what: &str, samples: &[u64]) {
    let Some(dir) = std::env::var_os("ELECT_BENCH_SAMPLES") else {
        return;
    };
    if dir.to_string_lossy().parse::<usize>().is_ok() {
        return;
    }
    let name: String = what
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let bytes: Vec<u8> = samples.iter().flat_map(|v| v.to_le_bytes()).collect();
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(Path::new(&dir).join(format!("{prefix}{name}.u64")), bytes);
}
