//! One clock for stamping and reading: the system-wide monotonic clock, in nanoseconds.
//!
//! Publisher and receivers live in the same process, so a monotonic clock is enough: no
//! wall clock, no NTP steps, no cross-machine skew to worry about. It is read as raw
//! `CLOCK_MONOTONIC` (not an `Instant` relative to this process's start) so that another
//! process on the same machine stamps in the same domain: `raptor-bench`'s raw latency
//! floor is a separate server process that stamps its frames with this function and is
//! timed by the same receiver code as a real server. The only wall-clock use is the HTTP
//! API's `auth_timestamp`, which servers check against theirs.

use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds on `CLOCK_MONOTONIC` (since boot, the same in every process of the machine).
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we pass; CLOCK_MONOTONIC always exists
    // on Linux, so it cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    // u64 nanoseconds last 584 years of uptime
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Wall-clock seconds since the Unix epoch, for `auth_timestamp`.
pub fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_ns_is_monotonic() {
        let a = now_ns();
        let b = now_ns();
        assert!(b >= a);
    }
}
