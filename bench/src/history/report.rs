//! The history scenario in `docs/benchmarks.md`: its subsection of "Results by scenario"
//! (on vs off per workload with the ratio, recovery time, memory per 1,000 events) and its
//! headline in "Every run".

use super::{config, shapes, HistoryResult, RECOVER_EVENTS, RING_SIZE};
use crate::doc::{cell, fmt_int, RunInfo};
use crate::harness::Scenario;
use crate::summary::{fmt_num, Stat};
use raptor_loadtest::Report;
use std::fmt::Write as _;

/// The rounds' results of Raptor's history runs that finished.
fn results(info: &RunInfo) -> Vec<&HistoryResult> {
    info.samples
        .iter()
        .filter(|s| s.scenario == Scenario::History && s.contender == info.raptor)
        .filter_map(|s| s.history.as_ref())
        .collect()
}

/// Nearest-rank percentile `p` (0..=100) of `v`.
pub fn percentile(v: &[f64], p: f64) -> Option<f64> {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    Some(v[rank.min(v.len()) - 1])
}

fn ratio(on: Option<Stat>, off: Option<Stat>) -> String {
    match (on, off) {
        (Some(a), Some(b)) if b.median != 0.0 => format!("{:.2}×", a.median / b.median),
        _ => "–".into(),
    }
}

/// The subsection: the two tables and what ran.
pub fn section(info: &RunInfo) -> String {
    let p = &info.plan;
    let res = results(info);
    let mut o = String::new();
    let w = &mut o;
    let _ = writeln!(
        w,
        "Two servers from the same binary and app, one with the history rule below and one \
         without, each run the same `raptor-loadtest` fanouts ({} s each, {}-byte payloads; \
         the order alternates with the round): the fanout at a fixed rate, so deliveries/s \
         only says both kept up and the cost is in CPU per delivery; the publish workload flat \
         out, so deliveries/s is publishes/s. Only rounds where both runs of a workload were \
         clean count. \"on ÷ off\" divides medians; in brackets the lowest and highest \
         ratio within one round.\n",
        p.history_secs, p.payload_bytes
    );
    let _ = writeln!(
        w,
        "| workload | figure | history off | history on | on ÷ off |\n|---|---|---:|---:|---:|"
    );
    type Fig = (&'static str, fn(&Report) -> Option<f64>, &'static str);
    let figures: [Fig; 4] = [
        ("deliveries/s", |r| Some(r.deliveries_per_sec), ""),
        (
            "server CPU per delivery",
            |r| r.server_cpu_us_per_delivery,
            " µs",
        ),
        (
            "publish→receive p50",
            |r| (r.latency_us.samples > 0).then_some(r.latency_us.p50),
            " µs",
        ),
        (
            "publish→receive p99",
            |r| (r.latency_us.samples > 0).then_some(r.latency_us.p99),
            " µs",
        ),
    ];
    for (i, shape) in shapes(p).iter().enumerate() {
        let pairs: Vec<_> = res
            .iter()
            .filter_map(|h| h.pairs.get(i))
            .filter(|x| x.clean())
            .collect();
        for (k, (label, f, unit)) in figures.iter().enumerate() {
            let off = Stat::of(&pairs.iter().filter_map(|x| f(&x.off)).collect::<Vec<_>>());
            let on = Stat::of(&pairs.iter().filter_map(|x| f(&x.on)).collect::<Vec<_>>());
            // the same round's on ÷ off: how far the ratio itself moves between rounds
            let per_round: Vec<f64> = pairs
                .iter()
                .filter_map(|x| Some(f(&x.on)? / f(&x.off)?))
                .collect();
            let spread = match Stat::of(&per_round) {
                Some(r) if r.n > 1 => format!(" (rounds {:.2}–{:.2})", r.min, r.max),
                _ => String::new(),
            };
            let what = if k == 0 {
                format!("{} ({})", shape.name, shape.label())
            } else {
                String::new()
            };
            let _ = writeln!(
                w,
                "| {what} | {label} | {} | {} | **{}**{spread} |",
                cell(off, unit),
                cell(on, unit),
                ratio(on, off)
            );
        }
    }

    let ms: Vec<f64> = res
        .iter()
        .flat_map(|h| h.recovery.ms.iter().copied())
        .collect();
    let rss = Stat::of(
        &res.iter()
            .map(|h| h.memory.rss_kib_per_1000())
            .collect::<Vec<_>>(),
    );
    let acc = Stat::of(
        &res.iter()
            .map(|h| h.memory.accounted_kib_per_1000())
            .collect::<Vec<_>>(),
    );
    let store = Stat::of(
        &res.iter()
            .map(|h| h.memory.events as f64 / h.memory.store_s.max(1e-9))
            .collect::<Vec<_>>(),
    );
    let events = res.first().map_or(p.history_events, |h| h.memory.events);
    let _ = writeln!(w, "\n| figure | Raptor |\n|---|---:|");
    let recover = match Stat::of(&ms) {
        Some(s) => format!(
            "median {} ms, p99 {} ms (min {} ms, max {} ms; n={} over {} round(s))",
            fmt_num(s.median),
            fmt_num(percentile(&ms, 99.0).unwrap_or(f64::NAN)),
            fmt_num(s.min),
            fmt_num(s.max),
            s.n,
            res.len()
        ),
        None => "–".into(),
    };
    let _ = writeln!(
        w,
        "| recover {RECOVER_EVENTS} events: subscribe sent → {RECOVER_EVENTS}th replayed event received | {recover} |"
    );
    let _ = writeln!(
        w,
        "| server RSS growth per 1,000 stored {}-byte events | {} |",
        p.payload_bytes,
        cell(rss, " KiB")
    );
    let _ = writeln!(
        w,
        "| server's own accounting (`/stats` `history.bytes`) per 1,000 events | {} |",
        cell(acc, " KiB")
    );
    let _ = writeln!(w, "| RSS growth ÷ accounting | {} |", ratio(rss, acc));
    let _ = writeln!(
        w,
        "| storing rate (`batch_events` of 10, one connection) | {} |",
        cell(store, " events/s")
    );
    let _ = writeln!(
        w,
        "\nRecovery: on a fresh server with history, one event, then {RECOVER_EVENTS} more go to \
         one channel; {} fresh connections per round, one after another, subscribe with \
         `recover` from the position before the {RECOVER_EVENTS} (each replay checked complete \
         and in order). Memory: on the same server, {} events with {}-byte data go into {} \
         channels of {RING_SIZE} through `batch_events`; RSS (`/proc/PID/status`) and \
         `/stats` are read before and after.\n",
        p.history_recoveries,
        fmt_int(events),
        p.payload_bytes,
        fmt_int(events.div_ceil(RING_SIZE)),
    );
    let _ = writeln!(
        w,
        "Both servers: `raptor serve --bind 127.0.0.1:0 --shards N --metrics-bind 127.0.0.1:0 \
         --config FILE`, where `history-off.toml` is the first part and `history-on.toml` \
         all of:\n\n```toml\n{}```\n",
        config(true)
    );
    o
}

/// One round in a line: per workload deliveries/s and CPU per delivery on ÷ off, the median
/// recovery, memory per 1,000 events.
pub fn headline(h: &HistoryResult) -> String {
    let mut parts: Vec<String> = h
        .pairs
        .iter()
        .map(|x| {
            let dps = x.on.deliveries_per_sec / x.off.deliveries_per_sec.max(1e-9);
            let cpu = match (
                x.on.server_cpu_us_per_delivery,
                x.off.server_cpu_us_per_delivery,
            ) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
                _ => "–".into(),
            };
            format!(
                "{}: {}/s off, {}/s on ({dps:.2}×), CPU/delivery {} µs off, {} µs on ({cpu})",
                x.shape,
                fmt_num(x.off.deliveries_per_sec),
                fmt_num(x.on.deliveries_per_sec),
                x.off.server_cpu_us_per_delivery.map_or("–".into(), fmt_num),
                x.on.server_cpu_us_per_delivery.map_or("–".into(), fmt_num),
            )
        })
        .collect();
    if let Some(s) = Stat::of(&h.recovery.ms) {
        parts.push(format!(
            "recover {}: median {} ms, max {} ms",
            h.recovery.events,
            fmt_num(s.median),
            fmt_num(s.max)
        ));
    }
    let m = &h.memory;
    parts.push(format!(
        "per 1,000 events: RSS +{} KiB, accounted {} KiB",
        fmt_num(m.rss_kib_per_1000()),
        fmt_num(m.accounted_kib_per_1000())
    ));
    parts.join("; ")
}

/// (lost, out of order, errors) over the round's fanout runs.
pub fn tallies(h: &HistoryResult) -> (u64, u64, u64) {
    h.pairs
        .iter()
        .flat_map(|x| [&x.off, &x.on])
        .fold((0, 0, 0), |(l, o, e), r| {
            (l + r.lost, o + r.out_of_order, e + r.errors)
        })
}

/// What was wrong with the round's fanout runs, if anything.
pub fn problems(h: &HistoryResult) -> Vec<String> {
    h.pairs
        .iter()
        .flat_map(|x| {
            [("off", &x.off), ("on", &x.on)]
                .into_iter()
                .flat_map(move |(which, r)| {
                    r.problems()
                        .into_iter()
                        .map(move |p| format!("{} {which}: {p}", x.shape))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v[..20], 99.0), Some(20.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
