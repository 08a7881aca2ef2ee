//! When to try a failed webhook request again, and when to give up. Pure functions.

use std::time::{Duration, Instant};

/// Exponential backoff: `first`, `2·first`, `4·first` … capped at `max`, for at most
/// `give_up_after` counted from the first attempt.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schedule {
    pub first: Duration,
    pub max: Duration,
    pub give_up_after: Duration,
}

impl Schedule {
    /// Pusher's: retried for 5 minutes. Waits 1, 2, 4, 8, 16, 32, 60, 60 … s, so attempts
    /// start at about 0, 1, 3, 7, 15, 31, 63, 123, 183 and 243 s (plus request times).
    pub const PUSHER: Schedule = Schedule {
        first: Duration::from_secs(1),
        max: Duration::from_secs(60),
        give_up_after: Duration::from_secs(300),
    };

    /// The wait after the `failures`-th failed attempt (1-based).
    pub fn backoff(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.first
            .checked_mul(1u32 << doublings)
            .map_or(self.max, |d| d.min(self.max))
    }

    /// When to try again after the `failures`-th attempt failed at `now`, or `None` to give up
    /// because that would be later than `give_up_after` past `first_attempt`.
    pub fn next_attempt(
        &self,
        first_attempt: Instant,
        failures: u32,
        now: Instant,
    ) -> Option<Instant> {
        let at = now + self.backoff(failures);
        (at.saturating_duration_since(first_attempt) <= self.give_up_after).then_some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        let s = Schedule::PUSHER;
        let waits: Vec<u64> = (1..=10).map(|n| s.backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]);
        assert_eq!(s.backoff(0), Duration::from_secs(1));
        assert_eq!(s.backoff(u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn gives_up_five_minutes_after_the_first_attempt() {
        let s = Schedule::PUSHER;
        let t0 = Instant::now();
        // Instant failures: the attempts the schedule allows.
        let mut now = t0;
        let mut starts = vec![0];
        let mut failures = 0;
        while let Some(at) = s.next_attempt(t0, failures + 1, now) {
            failures += 1;
            now = at;
            starts.push((now - t0).as_secs());
        }
        assert_eq!(starts, [0, 1, 3, 7, 15, 31, 63, 123, 183, 243]);
        // A retry landing exactly at 300 s is still made; one past it is not.
        assert!(s
            .next_attempt(t0, 7, t0 + Duration::from_secs(240))
            .is_some());
        assert!(s
            .next_attempt(t0, 7, t0 + Duration::from_secs(241))
            .is_none());
    }
}
