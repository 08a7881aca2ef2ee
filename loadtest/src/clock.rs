//! One clock for stamping and reading: nanoseconds since the process started.
//!
//! Publisher and receivers live in the same process, so a shared monotonic origin is
//! enough: no wall clock, no NTP steps, no cross-machine skew to worry about. The only
//! wall-clock use is the HTTP API's `auth_timestamp`, which servers check against theirs.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

static ORIGIN: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the first call in this process (monotonic).
pub fn now_ns() -> u64 {
    let origin = ORIGIN.get_or_init(Instant::now);
    // u64 nanoseconds last 584 years; runs are bounded to hours
    origin.elapsed().as_nanos() as u64
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
