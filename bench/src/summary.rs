//! Turning samples into the figures the report states: median and spread over rounds, ratios
//! within one invocation, and the targets with met/missed and by how much.

use crate::harness::{Sample, Scenario};
use raptor_loadtest::Report;

/// Median and spread of one figure over the clean rounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Stat {
    pub fn of(values: &[f64]) -> Option<Stat> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Stat {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        })
    }

    /// Spread as ± percent of the median (half the min–max range).
    pub fn spread_pct(&self) -> f64 {
        if self.median == 0.0 {
            0.0
        } else {
            (self.max - self.min) / 2.0 / self.median.abs() * 100.0
        }
    }
}

/// A figure read from a report.
pub type Metric = fn(&Report) -> Option<f64>;

pub fn deliveries_per_sec(r: &Report) -> Option<f64> {
    Some(r.deliveries_per_sec)
}
pub fn server_us_per_delivery(r: &Report) -> Option<f64> {
    r.server_cpu_us_per_delivery
}
pub fn client_us_per_delivery(r: &Report) -> Option<f64> {
    r.client_cpu_us_per_delivery
}
pub fn p50(r: &Report) -> Option<f64> {
    (r.latency_us.samples > 0).then_some(r.latency_us.p50)
}
pub fn p90(r: &Report) -> Option<f64> {
    (r.latency_us.samples > 0).then_some(r.latency_us.p90)
}
pub fn p99(r: &Report) -> Option<f64> {
    (r.latency_us.samples > 0).then_some(r.latency_us.p99)
}
pub fn p999(r: &Report) -> Option<f64> {
    (r.latency_us.samples > 0).then_some(r.latency_us.p999)
}
pub fn max_latency(r: &Report) -> Option<f64> {
    (r.latency_us.samples > 0).then_some(r.latency_us.max)
}
pub fn rss_kib_per_conn(r: &Report) -> Option<f64> {
    r.server_rss_kib_per_conn
}
pub fn client_rss_kib_per_conn(r: &Report) -> Option<f64> {
    r.client_rss_kib_per_conn
}
pub fn lost(r: &Report) -> Option<f64> {
    Some(r.lost as f64)
}
pub fn connects_per_sec(r: &Report) -> Option<f64> {
    r.connects_per_sec
}
pub fn server_cores(r: &Report) -> Option<f64> {
    r.server_cpu_s.map(|s| s / r.duration_s.max(1e-9))
}
pub fn client_cores(r: &Report) -> Option<f64> {
    Some(r.client_cpu_s / r.duration_s.max(1e-9))
}

/// `metric` over the runs of `contender` in `scenario` that count (clean ones; flat out: all
/// that finished).
pub fn stat(
    samples: &[Sample],
    scenario: Scenario,
    contender: &str,
    metric: Metric,
) -> Option<Stat> {
    let v: Vec<f64> = samples
        .iter()
        .filter(|s| s.scenario == scenario && s.contender == contender && s.counts())
        .filter_map(|s| s.report.as_ref().and_then(metric))
        .collect();
    Stat::of(&v)
}

/// A goal from the issue.
pub struct Goal {
    pub what: &'static str,
    pub scenario: Scenario,
    pub metric: Metric,
    pub goal: f64,
    pub higher_is_better: bool,
    pub unit: &'static str,
}

pub const GOALS: [Goal; 6] = [
    Goal {
        what: "fanout deliveries/s",
        scenario: Scenario::Fanout,
        metric: deliveries_per_sec,
        goal: 1_000_000.0,
        higher_is_better: true,
        unit: "/s",
    },
    Goal {
        what: "fanout server CPU per delivery",
        scenario: Scenario::Fanout,
        metric: server_us_per_delivery,
        goal: 1.0,
        higher_is_better: false,
        unit: " µs",
    },
    Goal {
        what: "100/s to 1,000 subscribers, p50",
        scenario: Scenario::Latency,
        metric: p50,
        goal: 1000.0,
        higher_is_better: false,
        unit: " µs",
    },
    Goal {
        what: "100/s to 1,000 subscribers, p99",
        scenario: Scenario::Latency,
        metric: p99,
        goal: 3000.0,
        higher_is_better: false,
        unit: " µs",
    },
    Goal {
        what: "server RSS per idle connection",
        scenario: Scenario::Idle,
        metric: rss_kib_per_conn,
        goal: 4.0,
        higher_is_better: false,
        unit: " KiB",
    },
    Goal {
        what: "connect-storm",
        scenario: Scenario::Storm,
        metric: connects_per_sec,
        goal: 20_000.0,
        higher_is_better: true,
        unit: "/s",
    },
];

/// Verdict on a goal: met or missed, and the factor from the measured value to the goal.
pub struct Verdict {
    pub met: bool,
    /// how many times better than the goal (≥ 1 when met); < 1 says how far off
    pub factor: f64,
}

impl Goal {
    pub fn judge(&self, value: f64) -> Verdict {
        let factor = if self.higher_is_better {
            value / self.goal
        } else if value > 0.0 {
            self.goal / value
        } else {
            f64::INFINITY
        };
        Verdict {
            met: factor >= 1.0,
            factor,
        }
    }

    /// e.g. "missed: 412,000/s is 41 % of the goal (needs 2.4× more)".
    pub fn describe(&self, value: f64) -> String {
        let v = self.judge(value);
        if v.met {
            format!("**met** ({:.2}× margin)", v.factor)
        } else if self.higher_is_better {
            format!(
                "**missed**: {:.0} % of the goal (short by {}{})",
                v.factor * 100.0,
                fmt_num(self.goal - value),
                self.unit
            )
        } else {
            format!(
                "**missed**: {:.2}× over the goal (over by {}{})",
                1.0 / v.factor,
                fmt_num(value - self.goal),
                self.unit
            )
        }
    }
}

/// A number with thousands separators for large values, 2 decimals for small ones.
pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    if v == 0.0 {
        return "0".into();
    }
    if v.abs() >= 1000.0 {
        let s = format!("{:.0}", v.abs());
        let mut out = String::new();
        for (i, ch) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(ch);
        }
        if v < 0.0 {
            format!("-{out}")
        } else {
            out
        }
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_spread() {
        let s = Stat::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        assert_eq!(Stat::of(&[1.0, 2.0, 3.0, 10.0]).unwrap().median, 2.5);
        assert!((s.spread_pct() - 50.0).abs() < 1e-9);
        assert_eq!(Stat::of(&[]), None);
    }

    #[test]
    fn goals_judge_both_directions() {
        let fan = &GOALS[0];
        assert!(fan.judge(1_500_000.0).met);
        assert!(!fan.judge(500_000.0).met);
        assert!(fan.describe(500_000.0).contains("50 %"));
        let rss = &GOALS[4];
        assert!(rss.judge(3.0).met);
        let v = rss.judge(8.0);
        assert!(!v.met && (v.factor - 0.5).abs() < 1e-9);
        assert!(rss.describe(8.0).contains("2.00×"));
    }

    #[test]
    fn numbers() {
        assert_eq!(fmt_num(1234567.0), "1,234,567");
        assert_eq!(fmt_num(999.0), "999");
        assert_eq!(fmt_num(0.456), "0.46");
    }
}
