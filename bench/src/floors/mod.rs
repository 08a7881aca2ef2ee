//! Issue 17, "Performance near the machine's limit": Raptor against floors measured in the
//! same round, and how its costs grow (Raptor only; each round pairs Raptor with its floor
//! back to back, the order alternating with the round, so drift between rounds cancels).
//!
//! * `latency-floor`: the `latency` load (rate × 1 channel × S subscribers, 64 B) against
//!   Raptor and against [`raw`]'s latency mode, which sends the same stamped frames to the
//!   same receivers with one `send()` per frame and no protocol work: Raptor's p50, p99 and
//!   p99.9 as multiples of the floor's.
//! * `fanout-publishers`: 1 channel × S subscribers with N publishers flat out: deliveries/s
//!   as a fraction of the batched raw ceiling ([`crate::raw`]) measured in the same round, and
//!   p99.
//! * `connect-floor`: the connect-storm against Raptor and against [`raw`]'s connect mode
//!   (accept, read the upgrade, write the 101, close): Raptor's server CPU per cycle as a
//!   multiple of the floor's, and Raptor's cycles/s.
//! * `growth` ([`growth`]): server CPU per delivery and p99 as subscribers per channel grow,
//!   as channels grow at a fixed number of subscriptions, and presence join+leave cost as
//!   members grow.

pub mod growth;
pub mod raw;
pub mod report;
mod run;

pub use run::run;

use raptor_loadtest::Report;
use serde::{Deserialize, Serialize};

/// Sizes of the floor and growth scenarios (part of [`crate::harness::Plan`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct FloorPlan {
    /// measurement seconds of each side of latency-floor, fanout-publishers, connect-floor
    pub secs: f64,
    /// publishers of fanout-publishers
    pub publishers: usize,
    /// publishing seconds of each growth point
    pub growth_secs: f64,
    /// deliveries per second every fanout growth point is run at (publish rate = this ÷
    /// subscribers per channel), so CPU per delivery compares like with like
    pub growth_deliveries: f64,
    /// subscribers of the one channel, per point of the subscriber sweep
    pub growth_subscribers: Vec<u64>,
    /// channels, per point of the channel sweep (subscriptions fixed at `growth_total`)
    pub growth_channels: Vec<u64>,
    pub growth_total: u64,
    /// members of the one presence channel, per point of the presence sweep
    pub presence_members: Vec<u64>,
}

impl Default for FloorPlan {
    fn default() -> Self {
        Self {
            secs: 4.0,
            publishers: 16,
            growth_secs: 2.0,
            growth_deliveries: 20_000.0,
            growth_subscribers: vec![100, 1_000, 10_000],
            growth_channels: vec![1, 10, 100, 1_000],
            growth_total: 10_000,
            presence_members: vec![100, 1_000],
        }
    }
}

impl FloorPlan {
    /// Why the plan cannot run, if it cannot.
    pub fn problem(&self) -> Option<String> {
        let secs_ok = |s: f64| s > 0.0 && s <= 60.0;
        if !secs_ok(self.secs) || !secs_ok(self.growth_secs) {
            return Some("--floor-secs and --growth-secs in (0, 60]".into());
        }
        if !(1..=raptor_loadtest::fanout::MAX_PUBLISHERS).contains(&self.publishers) {
            return Some("--publishers in 1..=256".into());
        }
        if !(self.growth_deliveries.is_finite() && self.growth_deliveries > 0.0) {
            return Some("--growth-deliveries positive".into());
        }
        // One process holds every subscriber; the open-file cap is 20,000 per process.
        let too_big = |v: &[u64]| v.is_empty() || v.iter().any(|n| !(1..=15_000).contains(n));
        if too_big(&self.growth_subscribers) || too_big(&self.presence_members) {
            return Some("--growth-subscribers and --presence-members: sizes in 1..=15000".into());
        }
        if !(1..=15_000).contains(&self.growth_total)
            || self.growth_channels.is_empty()
            || self
                .growth_channels
                .iter()
                .any(|c| *c == 0 || !self.growth_total.is_multiple_of(*c))
        {
            return Some(
                "--growth-total in 1..=15000, and every --growth-channels size divides it".into(),
            );
        }
        None
    }
}

/// `100,1000,10000` → sizes.
pub fn parse_sizes(s: &str) -> Result<Vec<u64>, String> {
    s.split(',')
        .map(|x| {
            x.trim()
                .replace('_', "")
                .parse::<u64>()
                .map_err(|_| format!("{x:?} is not a size (give e.g. 100,1000,10000)"))
        })
        .collect()
}

/// One round of latency-floor, fanout-publishers or connect-floor: Raptor and its floor, or
/// of growth: its points.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FloorRun {
    /// Raptor's side
    pub raptor: Option<Report>,
    /// the floor's side, measured in the same round
    pub floor: Option<Report>,
    /// growth: one entry per size of each sweep
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub points: Vec<growth::Point>,
    /// what failed, if something did (the other side may still have run)
    pub error: Option<String>,
}

impl FloorRun {
    /// Both sides ran to the end (clean or not) and nothing failed.
    pub fn ran(&self) -> bool {
        self.error.is_none() && self.raptor.is_some() && self.floor.is_some()
    }

    /// Both sides (or every growth point) ran cleanly.
    pub fn clean(&self) -> bool {
        self.error.is_none()
            && if self.points.is_empty() {
                [&self.raptor, &self.floor]
                    .iter()
                    .all(|r| r.as_ref().is_some_and(Report::is_clean))
            } else {
                self.points.iter().all(growth::Point::clean)
            }
    }
}

/// `a ÷ b` when both are there and `b` is not zero: a per-round ratio.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 && a.is_finite() && b.is_finite() => Some(a / b),
        _ => None,
    }
}

/// Server CPU µs per cycle of a connect-storm report.
pub fn cpu_us_per_cycle(r: &Report) -> Option<f64> {
    raptor_loadtest::report::us_per(r.server_cpu_s?, r.connections)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_plan_runs_and_bad_sizes_are_refused() {
        assert_eq!(FloorPlan::default().problem(), None);
        let bad = FloorPlan {
            growth_channels: vec![3],
            ..FloorPlan::default()
        };
        assert!(bad.problem().is_some(), "3 does not divide 10,000");
        let bad = FloorPlan {
            growth_subscribers: vec![30_000],
            ..FloorPlan::default()
        };
        assert!(bad.problem().is_some(), "above the open-file cap");
        let bad = FloorPlan {
            publishers: 0,
            ..FloorPlan::default()
        };
        assert!(bad.problem().is_some());
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_sizes("100, 1_000,10000"), Ok(vec![100, 1000, 10000]));
        assert!(parse_sizes("100,x").is_err());
    }

    #[test]
    fn ratios_need_both_sides() {
        assert_eq!(ratio(Some(3.0), Some(2.0)), Some(1.5));
        assert_eq!(ratio(Some(3.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(2.0)), None);
        assert_eq!(ratio(Some(f64::NAN), Some(2.0)), None);
    }
}
