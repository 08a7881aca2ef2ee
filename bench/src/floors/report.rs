//! The floor and growth scenarios in docs/benchmarks.md: their sections, progress lines and
//! charts. Ratios are taken per round (Raptor and its floor ran back to back) and then
//! summarised as median and min–max over the clean rounds.

use super::growth::{Point, Sweep};
use super::{cpu_us_per_cycle, ratio, FloorRun};
use crate::doc::{cell, fmt_int, RunInfo};
use crate::harness::Scenario;
use crate::summary::{fmt_num, Stat};
use raptor_loadtest::Report;
use std::fmt::Write as _;
use std::path::Path;

/// The targets.
pub const LATENCY_MAX_RATIO: f64 = 1.3;
pub const PUBLISHERS_MIN_FRACTION: f64 = 0.75;
pub const PUBLISHERS_MAX_P99_US: f64 = 30_000.0;
pub const CONNECT_MAX_RATIO: f64 = 2.0;
pub const CONNECT_MIN_PER_SEC: f64 = 20_000.0;

/// Raptor's rounds of `s` that count: both sides clean, or every growth point; for
/// fanout-publishers, flat out like `fanout-flat-out`, every round where both sides ran,
/// since there loss (slow consumers cut with 4100) is the finding and is reported beside.
fn runs(info: &RunInfo, s: Scenario) -> Vec<&FloorRun> {
    info.samples
        .iter()
        .filter(|x| x.scenario == s && x.contender == info.raptor)
        .filter_map(|x| x.floors.as_ref())
        .filter(|r| r.clean() || (s == Scenario::Publishers && r.ran()))
        .collect()
}

type Metric = fn(&Report) -> Option<f64>;

fn side(runs: &[&FloorRun], floor: bool, m: Metric) -> Option<Stat> {
    let v: Vec<f64> = runs
        .iter()
        .filter_map(|r| if floor { &r.floor } else { &r.raptor }.as_ref())
        .filter_map(m)
        .collect();
    Stat::of(&v)
}

/// Raptor ÷ floor per round.
pub fn paired(runs: &[&FloorRun], m: Metric) -> Option<Stat> {
    let v: Vec<f64> = runs
        .iter()
        .filter_map(|r| ratio(r.raptor.as_ref().and_then(m), r.floor.as_ref().and_then(m)))
        .collect();
    Stat::of(&v)
}

fn pct_cell(st: Option<Stat>) -> String {
    match st {
        Some(s) if s.n > 1 => format!(
            "{:.0} % ({:.0}–{:.0} %, n={})",
            s.median * 100.0,
            s.min * 100.0,
            s.max * 100.0,
            s.n
        ),
        Some(s) => format!("{:.0} % (n=1)", s.median * 100.0),
        None => "–".into(),
    }
}

fn ratio_cell(st: Option<Stat>) -> String {
    match st {
        Some(s) if s.n > 1 => format!("{:.2}× ({:.2}–{:.2}, n={})", s.median, s.min, s.max, s.n),
        Some(s) => format!("{:.2}× (n=1)", s.median),
        None => "–".into(),
    }
}

/// "met" or "missed" for a median against a bound.
fn verdict(st: Option<Stat>, ok: impl Fn(f64) -> bool) -> &'static str {
    match st {
        Some(s) if ok(s.median) => "met",
        Some(_) => "**missed**",
        None => "–",
    }
}

fn p50(r: &Report) -> Option<f64> {
    Some(r.latency_us.p50)
}
fn p99(r: &Report) -> Option<f64> {
    Some(r.latency_us.p99)
}
fn p999(r: &Report) -> Option<f64> {
    Some(r.latency_us.p999)
}
fn per_sec(r: &Report) -> Option<f64> {
    Some(r.deliveries_per_sec)
}
fn lost(r: &Report) -> Option<f64> {
    Some(r.lost as f64)
}
fn cycles(r: &Report) -> Option<f64> {
    r.connects_per_sec
}

/// The title of a floor scenario's subsection.
pub fn title(s: Scenario, p: &crate::harness::Plan) -> String {
    match s {
        Scenario::LatencyFloor => format!(
            "Latency floor: {}/s × {} subscribers × {} B against raw frames, one per send()",
            p.rate,
            fmt_int(p.subscribers),
            p.payload_bytes
        ),
        Scenario::Publishers => format!(
            "Publishers in parallel: {} publishers flat out to 1 channel × {} subscribers",
            p.floors.publishers,
            fmt_int(p.subscribers)
        ),
        Scenario::ConnectFloor => {
            "Connection cost floor: connect-storm against accept, 101, close".into()
        }
        _ => "Growth: CPU per delivery and p99 as subscribers, channels and presence members grow"
            .into(),
    }
}

/// The subsection of "Results by scenario" for `s`.
pub fn section(s: Scenario, info: &RunInfo) -> String {
    let mut o = String::new();
    let w = &mut o;
    let p = &info.plan;
    let f = &p.floors;
    let r = runs(info, s);
    let row = |w: &mut String, name: &str, m: Metric, unit: &str, target: String| {
        let _ = writeln!(
            w,
            "| {name} | {} | {} | {} | {target} |",
            cell(side(&r, false, m), unit),
            cell(side(&r, true, m), unit),
            ratio_cell(paired(&r, m)),
        );
    };
    match s {
        Scenario::LatencyFloor => {
            let _ = writeln!(
                w,
                "Each round runs the `latency` load against Raptor and against the raw latency \
                 floor (`raptor-bench raw-floor --mode latency`) for {} s each, back to back, \
                 the order alternating. The floor does the Pusher handshake and subscribe for \
                 the same {} loadtest receivers, then sends each event as one pre-encoded frame \
                 carrying the loadtest's own stamp (send time on the machine's monotonic clock, \
                 taken once per event just before the sweep, as the loadtest stamps a publish \
                 just before sending it), one blocking send() per subscriber, on as many \
                 writer threads as Raptor has shards. The same receiver code times both.\n",
                f.secs,
                fmt_int(p.subscribers),
            );
            let _ = writeln!(
                w,
                "| figure | raptor | floor | raptor ÷ floor (per round) | target |"
            );
            let _ = writeln!(w, "|---|---:|---:|---:|---|");
            for (name, m, t) in [
                ("p50", p50 as Metric, true),
                ("p99", p99 as Metric, true),
                ("p99.9", p999 as Metric, false),
            ] {
                let target = if t {
                    format!(
                        "≤ {LATENCY_MAX_RATIO}×: {}",
                        verdict(paired(&r, m), |v| v <= LATENCY_MAX_RATIO)
                    )
                } else {
                    "–".into()
                };
                row(w, &format!("publish→receive {name}"), m, " µs", target);
            }
        }
        Scenario::Publishers => {
            let _ = writeln!(
                w,
                "Raptor: {} publishers, each its own sequence stream on the one channel, \
                 publishing as fast as the HTTP API answers for {} s. Floor: the batched raw \
                 ceiling ({} frames per send(), `raptor-bench raw-server`) against as many \
                 sockets, in the same round.\n",
                f.publishers, f.secs, p.raw_batch
            );
            let _ = writeln!(
                w,
                "| figure | raptor | raw ceiling | raptor ÷ ceiling (per round) | target |"
            );
            let _ = writeln!(w, "|---|---:|---:|---:|---|");
            let frac = paired(&r, per_sec);
            let lost_st = side(&r, false, lost);
            let lossless = lost_st.is_some_and(|s| s.max == 0.0);
            let _ = writeln!(
                w,
                "| deliveries/s | {} | {} | {} | ≥ {:.0} % without loss: {} |",
                cell(side(&r, false, per_sec), ""),
                cell(side(&r, true, per_sec), ""),
                pct_cell(frac),
                PUBLISHERS_MIN_FRACTION * 100.0,
                verdict(frac, |v| v >= PUBLISHERS_MIN_FRACTION && lossless)
            );
            let _ = writeln!(
                w,
                "| deliveries lost (subscribers cut with 4100) | {} | – | – | 0 |",
                cell(lost_st, "")
            );
            let p99s = side(&r, false, p99);
            let _ = writeln!(
                w,
                "| publish→receive p99 | {} | – | – | < {} ms: {} |",
                cell(p99s, " µs"),
                PUBLISHERS_MAX_P99_US / 1000.0,
                verdict(p99s, |v| v < PUBLISHERS_MAX_P99_US)
            );
        }
        Scenario::ConnectFloor => {
            let _ = writeln!(
                w,
                "The connect-storm client ({} handshakes in flight, {} s) against Raptor (connect, \
                 upgrade, `connection_established`, subscribe, `subscription_succeeded`, RST \
                 close) and against the raw connection floor (`raptor-bench raw-floor --mode \
                 connect`: accept, read the upgrade request, write the 101, close; the client \
                 counts the cycle at the 101). Server CPU per cycle is the server process's CPU \
                 time over the storm ÷ completed cycles.\n",
                p.storm_concurrency, f.secs
            );
            let _ = writeln!(
                w,
                "| figure | raptor | floor | raptor ÷ floor (per round) | target |"
            );
            let _ = writeln!(w, "|---|---:|---:|---:|---|");
            let cpu = paired(&r, cpu_us_per_cycle);
            row(
                w,
                "server CPU per cycle",
                cpu_us_per_cycle,
                " µs",
                format!(
                    "≤ {CONNECT_MAX_RATIO}×: {}",
                    verdict(cpu, |v| v <= CONNECT_MAX_RATIO)
                ),
            );
            let rate = side(&r, false, cycles);
            row(
                w,
                "cycles/s",
                cycles,
                "",
                format!(
                    "raptor ≥ {}: {}",
                    fmt_int(CONNECT_MIN_PER_SEC as u64),
                    verdict(rate, |v| v >= CONNECT_MIN_PER_SEC)
                ),
            );
        }
        _ => growth_section(w, info, &r),
    }
    let failed = info
        .samples
        .iter()
        .filter(|x| x.scenario == s && x.contender == info.raptor)
        .filter(|x| !x.clean())
        .count();
    if failed > 0 {
        let _ = writeln!(
            w,
            "\n{failed} round(s) were unclean or failed and are left out (see Runs)."
        );
    }
    o
}

/// Clean points of `sweep` at `label` over the rounds.
fn point_stat(
    runs: &[&FloorRun],
    sweep: Sweep,
    label: &str,
    m: fn(&Point) -> Option<f64>,
) -> Option<Stat> {
    let v: Vec<f64> = runs
        .iter()
        .flat_map(|r| r.points.iter())
        .filter(|x| x.sweep == sweep && x.label() == label && x.clean())
        .filter_map(m)
        .collect();
    Stat::of(&v)
}

fn labels(info: &RunInfo, sweep: Sweep) -> Vec<String> {
    super::growth::points(&info.plan)
        .into_iter()
        .filter(|p| p.sweep == sweep)
        .map(|p| p.label())
        .collect()
}

fn growth_section(w: &mut String, info: &RunInfo, r: &[&FloorRun]) {
    let f = &info.plan.floors;
    let _ = writeln!(
        w,
        "One fresh server per round; fresh channels and connections at every point, {} s of \
         publishing each. Fanout points publish at {} deliveries/s ÷ subscribers per channel \
         (the same deliveries per second at every point, so CPU per delivery compares like with \
         like; one publisher per 100 publishes/s up to the channel count and 16). Presence \
         points: one channel of M members and one churner joining and leaving {} ÷ 2M times/s \
         (every join and leave reaches every member; at most {} joins/s); CPU per join+leave \
         is the server's CPU over the run ÷ joins, p99 is join→member_added. Server CPU is \
         read from /proc in 10 ms ticks, so short runs with little CPU are coarse.\n",
        f.growth_secs,
        fmt_int(f.growth_deliveries as u64),
        fmt_int(f.growth_deliveries as u64),
        super::growth::MAX_JOIN_RATE
    );
    for sweep in Sweep::ALL {
        let (what, cpu, rate) = match sweep {
            Sweep::Subscribers => (
                "channels × subscribers (one channel)",
                "server CPU per delivery",
                "deliveries/s",
            ),
            Sweep::Channels => (
                "channels × subscribers (fixed total)",
                "server CPU per delivery",
                "deliveries/s",
            ),
            // the loadtest times member_added only; each leave's member_removed is not counted
            Sweep::Presence => (
                "presence members",
                "server CPU per join+leave",
                "member_added/s",
            ),
        };
        let _ = writeln!(w, "| {what} | {cpu} | p99 | {rate} |");
        let _ = writeln!(w, "|---|---:|---:|---:|");
        for l in labels(info, sweep) {
            let _ = writeln!(
                w,
                "| {l} | {} | {} | {} |",
                cell(point_stat(r, sweep, &l, Point::cpu_us), " µs"),
                cell(point_stat(r, sweep, &l, Point::p99_us), " µs"),
                cell(
                    point_stat(r, sweep, &l, |p| p
                        .report
                        .as_ref()
                        .map(|r| r.deliveries_per_sec)),
                    ""
                ),
            );
        }
        let _ = writeln!(w);
    }
}

/// Draws the floors' charts into `dir`; returns (title, file name) of each chart drawn.
pub fn charts(info: &RunInfo, dir: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let mut made = Vec::new();
    let lat = runs(info, Scenario::LatencyFloor);
    if !lat.is_empty() {
        let x: Vec<String> = ["p50", "p99", "p99.9"].map(String::from).to_vec();
        let med = |floor: bool| -> Vec<f64> {
            [p50 as Metric, p99, p999]
                .iter()
                .map(|m| side(&lat, floor, *m).map_or(f64::NAN, |s| s.median))
                .collect()
        };
        let file = "latency-floor.svg";
        if crate::charts::lines(
            &dir.join(file),
            "Latency: Raptor against the raw floor (median over rounds)",
            "µs",
            &x,
            &[
                ("raptor".into(), med(false)),
                ("raw floor".into(), med(true)),
            ],
        )? {
            made.push(("Latency against the raw floor".into(), file.into()));
        }
    }
    let g = runs(info, Scenario::Growth);
    if !g.is_empty() {
        for (sweep, file, caption, cpu) in [
            (
                Sweep::Subscribers,
                "growth-subscribers.svg",
                "Subscribers of one channel",
                "CPU µs/delivery",
            ),
            (
                Sweep::Channels,
                "growth-channels.svg",
                "Channels at a fixed total of subscriptions",
                "CPU µs/delivery",
            ),
            (
                Sweep::Presence,
                "growth-presence.svg",
                "Presence members",
                "CPU µs/join+leave",
            ),
        ] {
            let x = labels(info, sweep);
            let series = |m: fn(&Point) -> Option<f64>, scale: f64| -> Vec<f64> {
                x.iter()
                    .map(|l| point_stat(&g, sweep, l, m).map_or(f64::NAN, |s| s.median * scale))
                    .collect()
            };
            // p99 in ms so both lines share one axis at a readable scale
            let lines = [
                (format!("server {cpu}"), series(Point::cpu_us, 1.0)),
                ("p99 (ms)".into(), series(Point::p99_us, 1e-3)),
            ];
            if crate::charts::lines(
                &dir.join(file),
                &format!("Growth: {caption}"),
                "µs / ms",
                &x,
                &lines,
            )? {
                made.push((format!("Growth: {caption}"), file.into()));
            }
        }
    }
    Ok(made)
}

/// One line for the progress output.
pub fn headline(r: &FloorRun) -> String {
    if !r.points.is_empty() {
        return r
            .points
            .iter()
            .map(|p| match (p.cpu_us(), p.p99_us(), &p.error) {
                (_, _, Some(e)) => format!("{}: FAILED {e}", p.label()),
                (Some(c), Some(l), _) => format!("{}: {c:.2} µs, p99 {} µs", p.label(), fmt_num(l)),
                _ => format!("{}: –", p.label()),
            })
            .collect::<Vec<_>>()
            .join("; ");
    }
    let one = |x: &Option<Report>| match x {
        Some(r) if r.connects_per_sec.is_some() => format!(
            "{} cycles/s, {} µs CPU/cycle",
            fmt_num(r.connects_per_sec.unwrap_or(0.0)),
            cpu_us_per_cycle(r).map_or("–".into(), fmt_num)
        ),
        // the raw ceiling times nothing
        Some(r) if r.latency_of == "none" => {
            format!("{} deliveries/s", fmt_num(r.deliveries_per_sec))
        }
        Some(r) => format!(
            "{} deliveries/s, p50 {} p99 {} p99.9 {} µs",
            fmt_num(r.deliveries_per_sec),
            fmt_num(r.latency_us.p50),
            fmt_num(r.latency_us.p99),
            fmt_num(r.latency_us.p999)
        ),
        None => "–".into(),
    };
    // no `|`: the headline goes into a markdown table
    let mut s = format!("raptor {}; floor {}", one(&r.raptor), one(&r.floor));
    if let Some(e) = &r.error {
        let _ = write!(s, "; FAILED {e}");
    }
    s
}

/// Lost, out of order and errors over every report of the round.
pub fn tallies(r: &FloorRun) -> (u64, u64, u64) {
    reports(r).fold((0, 0, 0), |(l, o, e), x| {
        (l + x.lost, o + x.out_of_order, e + x.errors)
    })
}

fn reports(r: &FloorRun) -> impl Iterator<Item = &Report> {
    r.raptor
        .iter()
        .chain(r.floor.iter())
        .chain(r.points.iter().filter_map(|p| p.report.as_ref()))
}

/// What made the round unclean.
pub fn problems(r: &FloorRun) -> Vec<String> {
    let mut v: Vec<String> = r.error.iter().cloned().collect();
    for p in &r.points {
        if let Some(e) = &p.error {
            v.push(format!("{}: {e}", p.label()));
        }
    }
    for x in reports(r) {
        v.extend(x.problems());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(p50: f64, p99: f64) -> Report {
        let mut r: Report = serde_json::from_value(serde_json::json!({
            "scenario": "fanout", "connections": 1, "channels": 1, "published": 1,
            "deliveries": 1, "deliveries_per_sec": 1000.0, "lost": 0, "out_of_order": 0,
            "errors": 0, "first_error": null, "lossy_channels": [], "latency_of": "x",
            "latency_us": serde_json::to_value(raptor_loadtest::LatencyUs::default()).unwrap(),
            "client_cpu_s": 0.0, "server_cpu_s": null,
            "client_cpu_us_per_delivery": null, "server_cpu_us_per_delivery": null,
            "server_rss_kib_per_conn": null, "client_rss_kib_per_conn": null,
            "connects_per_sec": null, "duration_s": 1.0
        }))
        .expect("a report");
        r.latency_us.p50 = p50;
        r.latency_us.p99 = p99;
        r
    }

    #[test]
    fn ratios_are_per_round_then_median() {
        let a = FloorRun {
            raptor: Some(report(200.0, 400.0)),
            floor: Some(report(100.0, 100.0)),
            ..FloorRun::default()
        };
        let b = FloorRun {
            raptor: Some(report(300.0, 300.0)),
            floor: Some(report(300.0, 100.0)),
            ..FloorRun::default()
        };
        let c = FloorRun {
            raptor: Some(report(150.0, 500.0)),
            floor: Some(report(100.0, 100.0)),
            ..FloorRun::default()
        };
        let st = paired(&[&a, &b, &c], p50).expect("three rounds");
        assert_eq!((st.median, st.min, st.max, st.n), (1.5, 1.0, 2.0, 3));
        assert_eq!(paired(&[&a, &b, &c], p99).map(|s| s.median), Some(4.0));
        assert_eq!(verdict(Some(st), |v| v <= LATENCY_MAX_RATIO), "**missed**");
        assert_eq!(verdict(None, |_| true), "–");
        assert!(headline(&a).contains("floor"));
    }
}
