//! Rate-limited warnings for refused traffic: a stranger (or a node with the wrong secret)
//! sends gossip ~10 times a second and may open links as fast as it likes, and one warning
//! for each would bury the log.
//!
//! At most one warning per source IP address per window; the next one says how many were
//! suppressed meanwhile. Memory is bounded: the last [`TRACKED`] addresses are remembered
//! (least recently seen forgotten first), and at most [`PER_WINDOW`] warnings are let through
//! per window in all, so a sender cycling through many addresses cannot flood the log either.
//!
//! Written here rather than taken from a crate: the rate-limiting crates (`governor`) limit
//! requests, not log lines with a suppressed count, and their keyed stores grow until pruned;
//! this is a bounded [`lru::LruCache`] plus two numbers.

use lru::LruCache;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

/// Source addresses remembered (about 64 bytes each).
pub const TRACKED: usize = 1024;
/// Warnings let through per window, over every address.
pub const PER_WINDOW: u32 = 20;
/// Default window: one warning per address per 10 s.
pub const WINDOW: Duration = Duration::from_secs(10);

struct Seen {
    /// When a warning for this address was last let through (`None`: never).
    logged: Option<Instant>,
    /// Refusals since then that were not logged.
    suppressed: u64,
}

/// Decides which refusals get a log line.
pub struct WarnLimiter {
    window: Duration,
    recent: LruCache<IpAddr, Seen>,
    window_start: Instant,
    logged_in_window: u32,
}

impl WarnLimiter {
    pub fn new(window: Duration) -> WarnLimiter {
        WarnLimiter {
            window,
            recent: LruCache::new(NonZeroUsize::new(TRACKED).expect("TRACKED > 0")),
            window_start: Instant::now(),
            logged_in_window: 0,
        }
    }

    /// A refusal from `ip` now: `Some(n)` means log it, mentioning `n` suppressed since the
    /// last line for this address; `None` means count it silently.
    pub fn check(&mut self, ip: IpAddr, now: Instant) -> Option<u64> {
        if now.duration_since(self.window_start) >= self.window {
            self.window_start = now;
            self.logged_in_window = 0;
        }
        let window = self.window;
        let seen = self.recent.get_or_insert_mut(ip, || Seen {
            logged: None,
            suppressed: 0,
        });
        let due = seen.logged.is_none_or(|t| now.duration_since(t) >= window);
        if !due || self.logged_in_window >= PER_WINDOW {
            seen.suppressed += 1;
            return None;
        }
        self.logged_in_window += 1;
        seen.logged = Some(now);
        Some(std::mem::take(&mut seen.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_address_per_window_with_the_count() {
        let mut w = WarnLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        assert_eq!(w.check(a, t0), Some(0));
        for i in 1..=50 {
            assert_eq!(w.check(a, t0 + Duration::from_millis(100 * i)), None);
        }
        assert_eq!(w.check(b, t0), Some(0));
        assert_eq!(w.check(a, t0 + Duration::from_secs(10)), Some(50));
        assert_eq!(w.check(a, t0 + Duration::from_secs(11)), None);
    }

    #[test]
    fn many_addresses_are_capped_per_window_and_in_memory() {
        let mut w = WarnLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let logged = (0..10_000u32)
            .filter(|i| w.check(IpAddr::from(i.to_be_bytes()), t0).is_some())
            .count();
        assert_eq!(logged, PER_WINDOW as usize);
        assert_eq!(w.recent.len(), TRACKED);
    }
}
