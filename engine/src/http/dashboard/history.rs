//! A node's figures over time, for the dashboard's charts: one point per second for
//! [`SECONDS`] seconds, and one per minute (made from that minute's seconds) for [`MINUTES`]
//! minutes. Fixed-size rings, so memory is bounded whatever the uptime (docs/limits.md).

use serde::Serialize;
use std::collections::VecDeque;

/// Points kept at 1 s resolution (15 min).
pub const SECONDS: usize = 900;
/// Points kept at 1 min resolution (24 h).
pub const MINUTES: usize = 1440;

/// The node's figures at one moment (or over one minute).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Point {
    /// Unix time in milliseconds.
    pub t: u64,
    pub connections: u64,
    pub channels: u64,
    /// Events published per second.
    pub messages_in: f64,
    /// Frames delivered to subscribers per second.
    pub messages_out: f64,
    /// Publish→write latency percentiles over the point's interval.
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// The two rings. Pushed once a second by the sampler.
#[derive(Debug, Default)]
pub struct History {
    seconds: VecDeque<Point>,
    minutes: VecDeque<Point>,
    /// The seconds of the minute being filled.
    minute: Vec<Point>,
}

impl History {
    pub fn new() -> History {
        History {
            seconds: VecDeque::with_capacity(SECONDS),
            minutes: VecDeque::with_capacity(MINUTES),
            minute: Vec::with_capacity(60),
        }
    }

    pub fn push(&mut self, p: Point) {
        if self.seconds.len() == SECONDS {
            self.seconds.pop_front();
        }
        self.seconds.push_back(p);
        // A new minute starts when the wall clock's minute changes.
        if let Some(first) = self.minute.first() {
            if first.t / 60_000 != p.t / 60_000 {
                let m = mean(&self.minute);
                if self.minutes.len() == MINUTES {
                    self.minutes.pop_front();
                }
                self.minutes.push_back(m);
                self.minute.clear();
            }
        }
        self.minute.push(p);
    }

    /// Oldest first.
    pub fn seconds(&self) -> Vec<Point> {
        self.seconds.iter().copied().collect()
    }

    /// Oldest first.
    pub fn minutes(&self) -> Vec<Point> {
        self.minutes.iter().copied().collect()
    }

    /// Bytes the rings can hold at most (their fixed capacities).
    pub fn max_bytes() -> usize {
        (SECONDS + MINUTES + 60) * std::mem::size_of::<Point>()
    }
}

/// One minute's point: counts and rates averaged, p50 averaged, p99 the worst second's, time
/// the minute's start.
fn mean(points: &[Point]) -> Point {
    let n = points.len().max(1) as f64;
    let avg = |f: fn(&Point) -> f64| points.iter().map(f).sum::<f64>() / n;
    Point {
        t: points.first().map_or(0, |p| p.t / 60_000 * 60_000),
        connections: avg(|p| p.connections as f64).round() as u64,
        channels: avg(|p| p.channels as f64).round() as u64,
        messages_in: avg(|p| p.messages_in),
        messages_out: avg(|p| p.messages_out),
        p50_ms: avg(|p| p.p50_ms),
        p99_ms: points.iter().map(|p| p.p99_ms).fold(0.0, f64::max),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(t: u64, n: u64) -> Point {
        Point {
            t,
            connections: n,
            channels: 1,
            messages_in: n as f64,
            messages_out: 2.0 * n as f64,
            p50_ms: 1.0,
            p99_ms: n as f64,
        }
    }

    /// 24 hours and a bit of one-second samples: both rings stay at their capacity, hold
    /// the newest points in order, and their size is what docs/limits.md says.
    #[test]
    fn a_day_of_samples_stays_bounded() {
        let mut h = History::new();
        let start = 1_764_892_800_000; // a minute boundary
        let secs = 24 * 3600 + 125;
        for s in 0..secs {
            h.push(point(start + s * 1000, s));
        }
        let seconds = h.seconds();
        assert_eq!(seconds.len(), SECONDS);
        assert_eq!(seconds.last().unwrap().t, start + (secs - 1) * 1000);
        assert!(seconds.windows(2).all(|w| w[1].t - w[0].t == 1000));
        let minutes = h.minutes();
        assert_eq!(minutes.len(), MINUTES);
        assert!(minutes.windows(2).all(|w| w[1].t - w[0].t == 60_000));
        // The last finished minute: seconds 86,340..86,400 after 24 h are minute 1,439... the
        // newest complete minute is the one before the running one.
        let last = minutes.last().unwrap();
        let first_sec = (last.t - start) / 1000;
        assert_eq!(
            last.p99_ms,
            (first_sec + 59) as f64,
            "p99 is the minute's worst"
        );
        assert_eq!(
            last.messages_in,
            first_sec as f64 + 29.5,
            "rates are the mean"
        );
        assert_eq!(std::mem::size_of::<Point>(), 56);
        // docs/dashboard.md and docs/limits.md: 134,400 bytes (131 KiB) at most.
        assert_eq!(History::max_bytes(), 134_400);
        assert!(h.seconds.capacity() <= SECONDS + 1 && h.minutes.capacity() <= MINUTES + 1);
    }

    #[test]
    fn a_gap_in_the_clock_starts_a_new_minute() {
        let mut h = History::new();
        h.push(point(60_000, 1));
        h.push(point(60_000 * 5, 2));
        h.push(point(60_000 * 5 + 1000, 3));
        assert_eq!(h.minutes(), vec![point(60_000, 1)]);
    }
}
