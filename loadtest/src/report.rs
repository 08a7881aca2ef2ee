//! The figures a run produces, their arithmetic, and how they are printed.
//!
//! Field names are a stable interface: the bench harness and `--json` consumers read
//! them. Figures that a scenario cannot measure are `null` rather than absent, so every
//! report has the same shape.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency a histogram records (1 h in ns); a run is bounded well below this.
const MAX_TRACKED_NS: u64 = 3_600_000_000_000;

/// A histogram of nanosecond samples with 3 significant figures (≈ 0.1 % error).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKED_NS, 3).expect("static bounds are valid")
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyUs {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    /// how many samples the percentiles come from
    pub samples: u64,
}

impl LatencyUs {
    /// Summarises a histogram of nanosecond samples.
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Self {
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
            samples: h.len(),
        }
    }
}

/// Everything one scenario run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// `idle`, `fanout`, `presence` or `connect-storm`
    pub scenario: String,
    /// WebSocket connections held open (connect-storm: completed handshakes)
    pub connections: u64,
    pub channels: u64,
    /// events sent: HTTP publishes (fanout) or presence joins (presence)
    pub published: u64,
    /// stamped events received by subscribers
    pub deliveries: u64,
    pub deliveries_per_sec: f64,
    /// expected deliveries that never arrived; must be 0
    pub lost: u64,
    /// deliveries that arrived after a later one of the same stream, or twice; must be 0
    pub out_of_order: u64,
    /// failed connections, subscriptions, server error messages; must be 0
    pub errors: u64,
    /// the first error seen, for a human to start from
    pub first_error: Option<String>,
    /// channels where something was lost or reordered, worst first (empty on a clean run)
    #[serde(default)]
    pub lossy_channels: Vec<ChannelLoss>,
    /// what `latency_us` measures: `publish_to_receive`, `join_to_member_added` or
    /// `connect_to_subscribed`
    pub latency_of: String,
    pub latency_us: LatencyUs,
    /// CPU seconds (user + system) used by this client process during the window
    pub client_cpu_s: f64,
    /// CPU seconds used by the server during the window (needs `--server-pid`)
    pub server_cpu_s: Option<f64>,
    pub client_cpu_us_per_delivery: Option<f64>,
    pub server_cpu_us_per_delivery: Option<f64>,
    /// (server RSS after connecting − before) / connections, KiB (idle, needs `--server-pid`)
    pub server_rss_kib_per_conn: Option<f64>,
    /// the same for this client process (idle): what one connection costs the load generator
    pub client_rss_kib_per_conn: Option<f64>,
    /// handshakes + subscriptions completed per second (idle, connect-storm)
    pub connects_per_sec: Option<f64>,
    /// length of the measurement window, seconds
    pub duration_s: f64,
}

/// Loss and reordering on one channel, summed over its receivers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelLoss {
    pub channel: String,
    pub lost: u64,
    pub out_of_order: u64,
}

/// Adds up loss and reordering per channel while receivers' checks are merged.
pub struct LossTally {
    /// (lost, out of order) per channel index
    per_channel: Vec<(u64, u64)>,
}

impl LossTally {
    pub fn new(channels: usize) -> Self {
        Self {
            per_channel: vec![(0, 0); channels],
        }
    }

    pub fn add(&mut self, channel: usize, lost: u64, out_of_order: u64) {
        let slot = &mut self.per_channel[channel];
        slot.0 += lost;
        slot.1 += out_of_order;
    }

    /// Totals (lost, out of order) and the channels that had either, worst first.
    pub fn finish(self, names: &[String]) -> (u64, u64, Vec<ChannelLoss>) {
        let lost = self.per_channel.iter().map(|c| c.0).sum();
        let out_of_order = self.per_channel.iter().map(|c| c.1).sum();
        let mut bad: Vec<ChannelLoss> = self
            .per_channel
            .iter()
            .enumerate()
            .filter(|(_, c)| c.0 + c.1 > 0)
            .map(|(i, c)| ChannelLoss {
                channel: names[i].clone(),
                lost: c.0,
                out_of_order: c.1,
            })
            .collect();
        bad.sort_by_key(|c| std::cmp::Reverse(c.lost + c.out_of_order));
        (lost, out_of_order, bad)
    }
}

/// `count / secs`, 0 for an empty window.
pub fn per_sec(count: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

/// CPU microseconds per unit of work; `None` when no work was done.
pub fn us_per(cpu_s: f64, count: u64) -> Option<f64> {
    (count > 0).then(|| cpu_s * 1e6 / count as f64)
}

/// Server RSS growth per connection in KiB; `None` without connections.
pub fn kib_per_conn(before_kib: u64, after_kib: u64, conns: u64) -> Option<f64> {
    (conns > 0).then(|| (after_kib as f64 - before_kib as f64) / conns as f64)
}

impl Report {
    /// Reasons this run must not be trusted; empty for a clean run.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.lost > 0 {
            out.push(format!("{} messages lost", self.lost));
        }
        if self.out_of_order > 0 {
            out.push(format!(
                "{} messages out of order or duplicated",
                self.out_of_order
            ));
        }
        if self.errors > 0 {
            let first = self.first_error.as_deref().unwrap_or("unknown");
            out.push(format!("{} errors (first: {first})", self.errors));
        }
        out
    }

    pub fn is_clean(&self) -> bool {
        self.problems().is_empty()
    }

    /// The human summary: one figure per line.
    pub fn to_table(&self) -> String {
        let opt = |v: Option<f64>, unit: &str| match v {
            Some(v) => format!("{v:.2}{unit}"),
            None => "-".to_string(),
        };
        let l = &self.latency_us;
        let rows: Vec<(&str, String)> = vec![
            ("scenario", self.scenario.clone()),
            ("duration", format!("{:.2} s", self.duration_s)),
            ("connections", self.connections.to_string()),
            ("channels", self.channels.to_string()),
            ("published", self.published.to_string()),
            ("deliveries", self.deliveries.to_string()),
            ("deliveries/s", format!("{:.0}", self.deliveries_per_sec)),
            ("connects/s", opt(self.connects_per_sec, "")),
            ("lost", self.lost.to_string()),
            ("out of order", self.out_of_order.to_string()),
            ("errors", self.errors.to_string()),
            (
                "latency (µs)",
                format!(
                    "{}: p50 {:.0}  p90 {:.0}  p99 {:.0}  p99.9 {:.0}  max {:.0}  (n={})",
                    self.latency_of, l.p50, l.p90, l.p99, l.p999, l.max, l.samples
                ),
            ),
            ("client cpu", format!("{:.2} s", self.client_cpu_s)),
            ("server cpu", opt(self.server_cpu_s, " s")),
            (
                "client cpu/delivery",
                opt(self.client_cpu_us_per_delivery, " µs"),
            ),
            (
                "server cpu/delivery",
                opt(self.server_cpu_us_per_delivery, " µs"),
            ),
            ("server rss/conn", opt(self.server_rss_kib_per_conn, " KiB")),
            ("client rss/conn", opt(self.client_rss_kib_per_conn, " KiB")),
        ];
        let mut out = String::new();
        for (k, v) in rows {
            let _ = writeln!(out, "{k:>20}  {v}");
        }
        for c in self.lossy_channels.iter().take(10) {
            let _ = writeln!(
                out,
                "{:>20}  {}: lost {}, out of order {}",
                "lossy channel", c.channel, c.lost, c.out_of_order
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        Report {
            scenario: "fanout".into(),
            connections: 10,
            channels: 2,
            published: 100,
            deliveries: 500,
            deliveries_per_sec: 250.0,
            lost: 0,
            out_of_order: 0,
            errors: 0,
            first_error: None,
            lossy_channels: Vec::new(),
            latency_of: "publish_to_receive".into(),
            latency_us: LatencyUs::default(),
            client_cpu_s: 0.5,
            server_cpu_s: None,
            client_cpu_us_per_delivery: us_per(0.5, 500),
            server_cpu_us_per_delivery: None,
            server_rss_kib_per_conn: None,
            client_rss_kib_per_conn: None,
            connects_per_sec: None,
            duration_s: 2.0,
        }
    }

    #[test]
    fn rates_and_per_unit_costs() {
        assert_eq!(per_sec(500, 2.0), 250.0);
        assert_eq!(per_sec(5, 0.0), 0.0);
        assert_eq!(us_per(0.5, 500), Some(1000.0));
        assert_eq!(us_per(1.0, 0), None);
        assert_eq!(kib_per_conn(1000, 3048, 1024), Some(2.0));
        assert_eq!(kib_per_conn(1000, 900, 100), Some(-1.0));
        assert_eq!(kib_per_conn(1, 2, 0), None);
    }

    #[test]
    fn loss_tally_sums_and_ranks_channels() {
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let mut t = LossTally::new(3);
        t.add(0, 1, 0);
        t.add(2, 3, 1);
        t.add(2, 0, 1);
        t.add(1, 0, 0);
        let (lost, ooo, bad) = t.finish(&names);
        assert_eq!((lost, ooo), (4, 2));
        assert_eq!(bad.len(), 2);
        assert_eq!(
            (bad[0].channel.as_str(), bad[0].lost, bad[0].out_of_order),
            ("c", 3, 2)
        );
        assert_eq!(bad[1].channel, "a");
    }

    #[test]
    fn latency_percentiles_in_microseconds() {
        let mut h = new_histogram();
        for us in 1..=1000u64 {
            h.record(us * 1000).unwrap();
        }
        let l = LatencyUs::from_histogram(&h);
        assert_eq!(l.samples, 1000);
        assert!((l.p50 - 500.0).abs() < 1.0, "{l:?}");
        assert!((l.p99 - 990.0).abs() < 1.0, "{l:?}");
        assert!((l.max - 1000.0).abs() < 1.0, "{l:?}");
        assert_eq!(
            LatencyUs::from_histogram(&new_histogram()),
            LatencyUs::default()
        );
    }

    #[test]
    fn problems_flag_loss_order_and_errors() {
        let mut r = sample();
        assert!(r.is_clean());
        r.lost = 3;
        r.out_of_order = 1;
        r.errors = 2;
        r.first_error = Some("boom".into());
        let p = r.problems();
        assert_eq!(p.len(), 3);
        assert!(p[2].contains("boom"));
    }

    #[test]
    fn json_has_stable_field_names() {
        let v = serde_json::to_value(sample()).unwrap();
        for k in [
            "scenario",
            "connections",
            "channels",
            "deliveries",
            "deliveries_per_sec",
            "lost",
            "out_of_order",
            "latency_us",
            "client_cpu_s",
            "server_cpu_s",
            "client_cpu_us_per_delivery",
            "server_cpu_us_per_delivery",
            "server_rss_kib_per_conn",
            "connects_per_sec",
            "duration_s",
        ] {
            assert!(v.get(k).is_some(), "missing {k}");
        }
        for k in ["p50", "p90", "p99", "p999", "max"] {
            assert!(v["latency_us"].get(k).is_some(), "missing latency_us.{k}");
        }
        assert!(v["server_cpu_s"].is_null());
        let back: Report = serde_json::from_value(v).unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn table_mentions_every_headline() {
        let t = sample().to_table();
        assert!(t.contains("deliveries/s") && t.contains("p99.9") && t.contains("fanout"));
    }
}
