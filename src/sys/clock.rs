//! A clock that keeps counting while the machine is suspended.
//!
//! Lease deadlines are measured against an etcd server whose clock runs on
//! while this host sleeps. `Instant` (CLOCK_MONOTONIC) stops during suspend
//! on Linux, so a holder waking from suspend would believe a lease the
//! server has long expired still lives; CLOCK_BOOTTIME counts the suspend.

use std::time::Duration;

/// Time since boot, suspend included where the system can tell
/// (CLOCK_BOOTTIME on Linux; CLOCK_MONOTONIC elsewhere).
#[cfg_attr(not(feature = "etcd"), allow(dead_code))] // only leases need it
pub(crate) fn since_boot() -> Duration {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    const CLOCK: libc::clockid_t = libc::CLOCK_BOOTTIME;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    const CLOCK: libc::clockid_t = libc::CLOCK_MONOTONIC;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write into; CLOCK exists on the
    // systems it is chosen for, so the call cannot fail.
    let rc = unsafe { libc::clock_gettime(CLOCK, &mut ts) };
    debug_assert_eq!(rc, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    #[test]
    fn it_moves_forward() {
        let a = super::since_boot();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(super::since_boot() > a);
    }
}
