//! The `growth` scenario: how Raptor's costs grow with the shape of the load, one fresh
//! server per round running three sweeps (fresh channels and connections at every point):
//!
//! * **subscribers**: 1 channel × S subscribers for each S of the plan;
//! * **channels**: C channels × (total ÷ C) subscribers, the subscriptions fixed;
//! * **presence**: one presence channel of M members (watchers) and one churner that joins
//!   and leaves; each join and leave reaches every member, so it joins
//!   `growth_deliveries ÷ 2M` times a second (at most [`MAX_JOIN_RATE`]): the same member
//!   events per second at every point.
//!
//! Fanout points publish at `growth_deliveries ÷ subscribers per channel` events/s (at least
//! one publisher per 100 publishes/s, up to the channel count), so every point asks for the
//! same deliveries per second and server CPU per delivery compares like with like; p99 is
//! publish→receive. Presence points report server CPU per join+leave and the join→
//! member_added p99.

use super::run::{common_for, raptor};
use crate::doc::fmt_int;
use crate::harness::Plan;
use raptor_loadtest::fanout::{self, FanoutOpts};
use raptor_loadtest::presence::{self, PresenceOpts};
use raptor_loadtest::usage::process_cpu;
use raptor_loadtest::{Bound, Report};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

/// Joins per second one churner is asked for at most (each waits for its success and
/// leaves before the next).
pub const MAX_JOIN_RATE: f64 = 500.0;

/// Joins per second of a presence point of `members` members.
pub fn join_rate(deliveries: f64, members: u64) -> f64 {
    (deliveries / (2.0 * members as f64)).clamp(1.0, MAX_JOIN_RATE)
}

/// Which sweep a point belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sweep {
    Subscribers,
    Channels,
    Presence,
}

impl Sweep {
    pub const ALL: [Sweep; 3] = [Sweep::Subscribers, Sweep::Channels, Sweep::Presence];
}

/// One size of one sweep.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Point {
    pub sweep: Sweep,
    pub channels: u64,
    /// subscribers per channel (presence: members, the churner not counted)
    pub per_channel: u64,
    /// publishes (presence: joins) per second asked for
    pub rate: f64,
    pub report: Option<Report>,
    pub error: Option<String>,
}

impl Point {
    pub fn clean(&self) -> bool {
        self.error.is_none() && self.report.as_ref().is_some_and(Report::is_clean)
    }

    /// e.g. "10 × 1,000".
    pub fn label(&self) -> String {
        match self.sweep {
            Sweep::Presence => format!("{} members", fmt_int(self.per_channel)),
            _ => format!("{} × {}", fmt_int(self.channels), fmt_int(self.per_channel)),
        }
    }

    /// The figure the sweep is about: server CPU µs per delivery (fanout) or per join+leave
    /// (presence).
    pub fn cpu_us(&self) -> Option<f64> {
        let r = self.report.as_ref()?;
        match self.sweep {
            Sweep::Presence => raptor_loadtest::report::us_per(r.server_cpu_s?, r.published),
            _ => r.server_cpu_us_per_delivery,
        }
    }

    pub fn p99_us(&self) -> Option<f64> {
        self.report.as_ref().map(|r| r.latency_us.p99)
    }
}

/// The points of every sweep, in order, before they run.
pub fn points(plan: &Plan) -> Vec<Point> {
    let f = &plan.floors;
    let point = |sweep, channels: u64, per_channel: u64, rate: f64| Point {
        sweep,
        channels,
        per_channel,
        rate,
        report: None,
        error: None,
    };
    let fan = |sweep, channels: u64, per: u64| {
        point(sweep, channels, per, f.growth_deliveries / per as f64)
    };
    let mut v: Vec<Point> = f
        .growth_subscribers
        .iter()
        .map(|s| fan(Sweep::Subscribers, 1, *s))
        .collect();
    v.extend(
        f.growth_channels
            .iter()
            .map(|c| fan(Sweep::Channels, *c, f.growth_total / c)),
    );
    v.extend(
        f.presence_members
            .iter()
            .map(|m| point(Sweep::Presence, 1, *m, join_rate(f.growth_deliveries, *m))),
    );
    v
}

/// Publishers for a fanout point: one per 100 publishes/s (the HTTP publish round trip
/// caps one at a few thousand/s on this machine), at most one per channel and 16.
pub fn publishers_for(rate: f64, channels: u64) -> usize {
    ((rate / 100.0).ceil() as usize).clamp(1, channels.min(16) as usize)
}

/// Runs every point against one fresh server; adds the server's CPU seconds to `server_cpu`.
pub fn run(
    bin: &Path,
    shards: usize,
    plan: &Plan,
    log: &Path,
    server_cpu: &mut f64,
) -> anyhow::Result<Vec<Point>> {
    let srv = raptor(bin, shards, plan, log)?;
    let mut out = points(plan);
    for p in &mut out {
        match one(p, srv.port, srv.pid(), plan) {
            Ok(r) => p.report = Some(r),
            Err(e) => p.error = Some(format!("{e:#}")),
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    *server_cpu += process_cpu(srv.pid()).map_or(0.0, |d| d.as_secs_f64());
    srv.stop();
    Ok(out)
}

fn one(p: &Point, port: u16, pid: u32, plan: &Plan) -> anyhow::Result<Report> {
    let common = common_for(port, pid, plan)?;
    let bound = Bound::new(Some(Duration::from_secs_f64(plan.floors.growth_secs)), None)?;
    match p.sweep {
        Sweep::Presence => {
            let mut o = PresenceOpts::new(common, 1, p.per_channel, bound);
            o.rate = Some(p.rate);
            o.max_members = p.per_channel + 1;
            o.drain_timeout = Duration::from_secs(3);
            presence::run(&o)
        }
        _ => {
            let mut o = FanoutOpts::new(common, p.channels, p.per_channel, bound);
            o.payload_bytes = plan.payload_bytes;
            o.rate = Some(p.rate);
            o.publishers = publishers_for(p.rate, p.channels);
            o.drain_timeout = Duration::from_secs(3);
            fanout::run(&o)
        }
    }
}

/// The equivalent `raptor-loadtest` command lines.
pub fn command(plan: &Plan) -> String {
    points(plan)
        .iter()
        .map(|p| {
            let common = format!(
                "raptor-loadtest --port $PORT --server-pid $SERVER_PID --threads {}",
                plan.client_threads
            );
            match p.sweep {
                Sweep::Presence => format!(
                    "{common} presence --channels 1 --watchers {} --churners 1 --rate {} --duration {} --max-members {}",
                    p.per_channel,
                    p.rate,
                    plan.floors.growth_secs,
                    p.per_channel + 1
                ),
                _ => format!(
                    "{common} fanout --channels {} --subscribers {} --rate {} --publishers {} --payload-bytes {} --duration {}",
                    p.channels,
                    p.per_channel,
                    p.rate,
                    publishers_for(p.rate, p.channels),
                    plan.payload_bytes,
                    plan.floors.growth_secs
                ),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishers_grow_with_the_rate_within_the_channels() {
        assert_eq!(publishers_for(2.0, 1), 1);
        assert_eq!(publishers_for(2000.0, 1), 1, "one channel, one publisher");
        assert_eq!(publishers_for(2000.0, 1000), 16);
        assert_eq!(publishers_for(250.0, 100), 3);
    }

    #[test]
    fn presence_points_ask_for_the_same_member_events() {
        assert_eq!(join_rate(20_000.0, 100), 100.0);
        assert_eq!(join_rate(20_000.0, 1_000), 10.0);
        assert_eq!(join_rate(20_000.0, 10), MAX_JOIN_RATE);
        assert_eq!(join_rate(20_000.0, 100_000), 1.0);
    }
}
