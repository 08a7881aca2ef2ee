//! The `patterns` scenario (Raptor only): what 1,000 registered wildcard patterns that match
//! nothing cost a publish (issue 16: "publishing to a channel that no pattern matches must
//! cost nothing measurable extra"; ADR 0012).
//!
//! Each round starts a fresh server three times from the same binary: (A) with no patterns,
//! (C, the control) with as many plain channels held one connection each, (B) with the plan's
//! patterns held by one WebSocket connection each ([`hold`]) — a tenth under
//! `bench`, the first segment of every published channel (`bench/*/never{i}`, `bench/n{i}/*`:
//! three segments, the channels have two, so the order point finds the list and checks each),
//! the rest under first segments of their own (`ns{i}/*/x`). Then the same two loads against
//! each: a fanout at a fixed rate (1 channel × the plan's subscribers) and flat-out publishing
//! (a few channels × 1 subscriber, two publishers), all on `bench/…` channels. Figures:
//! deliveries/s, publish→receive p50 and p99, server CPU per delivery, side by side, and B ÷
//! A and B ÷ C (per round, so drift between rounds cancels). The order of the sides rotates
//! with the round. B's held patterns must receive nothing (a pattern that matched would be a
//! bug, and the run unclean).

use crate::doc::{cell, fmt_int, RunInfo};
use crate::harness::{Plan, Scenario};
use crate::machine::{CoresUsed, CpuShare};
use crate::server::ServerProc;
use crate::summary::{fmt_num, Stat};
use anyhow::Context;
use raptor_loadtest::fanout::{self, FanoutOpts};
use raptor_loadtest::hold::{hold, HeldOutcome};
use raptor_loadtest::usage::process_cpu;
use raptor_loadtest::{Bound, Common, Report, Target};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

/// Channels of the flat-out load (1 subscriber each) and its publishers.
pub const FLAT_CHANNELS: u64 = 4;
pub const FLAT_PUBLISHERS: usize = 2;
/// First segment of every published channel.
pub const PREFIX: &str = "bench/";

/// One side (with or without patterns) of one round.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Side {
    /// patterns registered (0: side A or C)
    pub patterns: u64,
    /// side C, the control: plain channels (no `/`) held the way B holds its patterns, one
    /// connection each, so B ÷ C is the patterns' own cost without the extra connections'
    #[serde(default)]
    pub plain_channels: u64,
    /// the fanout at a fixed rate
    pub fixed: Option<Report>,
    /// flat-out publishing
    pub flat: Option<Report>,
    /// stamped events the held patterns received (must be 0)
    pub held_received: u64,
    pub error: Option<String>,
}

impl Side {
    pub fn clean(&self) -> bool {
        self.error.is_none()
            && self.held_received == 0
            && [&self.fixed, &self.flat]
                .iter()
                .all(|r| r.as_ref().is_some_and(Report::is_clean))
    }

    fn label(&self) -> String {
        match self.which() {
            Which::A => "A (no patterns)".into(),
            Which::B => format!("B ({} patterns)", fmt_int(self.patterns)),
            Which::C => format!("C ({} plain channels)", fmt_int(self.plain_channels)),
        }
    }

    fn which(&self) -> Which {
        match (self.patterns, self.plain_channels) {
            (0, 0) => Which::A,
            (0, _) => Which::C,
            _ => Which::B,
        }
    }
}

/// The three sides of a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// nothing held
    A,
    /// the patterns held
    B,
    /// as many plain channels held (the control)
    C,
}

/// The sides of one round, in the order they ran.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PatternsResult {
    pub runs: Vec<Side>,
}

impl PatternsResult {
    pub fn clean(&self) -> bool {
        self.runs.iter().all(Side::clean)
    }
}

/// The patterns side B registers: a tenth under the published channels' first segment (not
/// matching them), the rest under other first segments.
pub fn pattern_names(n: u64) -> Vec<String> {
    let same = n / 10;
    (0..n)
        .map(|i| match i {
            i if i < same / 2 => format!("{PREFIX}*/never{i}"),
            i if i < same => format!("{PREFIX}n{i}/*"),
            i => format!("ns{i}/*/x"),
        })
        .collect()
}

/// Runs one round: A, B and C each against a fresh server (the order rotating), started with
/// `--config patterns.toml` (next to the log).
pub fn run(
    bin: &Path,
    shards: usize,
    plan: &Plan,
    round: usize,
    log: &Path,
    cores: &mut CoresUsed,
) -> anyhow::Result<PatternsResult> {
    let share = CpuShare::start(None);
    let started = Instant::now();
    let mut server_cpu = 0.0;
    // The order rotates with the round, so drift hits every side alike.
    let mut order = [Which::A, Which::B, Which::C];
    order.rotate_left((round.saturating_sub(1)) % 3);
    // Both sides: the one app, its API rate limit lifted so flat-out publishing is not refused
    // with 429 (the history scenario's history-off configuration).
    let cfg = log.parent().unwrap_or(Path::new(".")).join("patterns.toml");
    std::fs::write(&cfg, crate::history::config(false))?;
    let mut runs = Vec::new();
    for which in order {
        let srv = ServerProc::raptor_config(bin, shards, &cfg, log)?;
        let side = side(&srv, plan, which);
        server_cpu += process_cpu(srv.pid()).map_or(0.0, |d| d.as_secs_f64());
        srv.stop();
        runs.push(side);
        std::thread::sleep(Duration::from_millis(300));
    }
    let mut c = share.stop();
    c.server = server_cpu / started.elapsed().as_secs_f64().max(1e-9);
    c.others = (c.machine - c.client - c.server).max(0.0);
    *cores = c;
    Ok(PatternsResult { runs })
}

fn side(srv: &ServerProc, plan: &Plan, which: Which) -> Side {
    let mut s = Side {
        patterns: if which == Which::B { plan.patterns } else { 0 },
        plain_channels: if which == Which::C { plan.patterns } else { 0 },
        fixed: None,
        flat: None,
        held_received: 0,
        error: None,
    };
    if let Err(e) = side_inner(srv, plan, &mut s) {
        s.error = Some(format!("{e:#}"));
    }
    s
}

fn side_inner(srv: &ServerProc, plan: &Plan, s: &mut Side) -> anyhow::Result<()> {
    let target = Target::new("127.0.0.1", srv.port, "1", "app-key", "app-secret", false)?;
    let mut common = Common::new(target);
    common.server_pid = Some(srv.pid());
    common.threads = plan.client_threads;
    let held = match s.which() {
        Which::A => None,
        Which::B => Some(hold(&common, pattern_names(s.patterns)).context("holding the patterns")?),
        Which::C => {
            let names = (0..s.plain_channels).map(|i| format!("idle-{i}")).collect();
            Some(hold(&common, names).context("holding the plain channels")?)
        }
    };
    let bound = Bound::new(Some(Duration::from_secs_f64(plan.pattern_secs)), None)?;
    let mut o = FanoutOpts::new(common.clone(), 1, plan.pattern_subscribers, bound);
    o.payload_bytes = plan.payload_bytes;
    o.rate = Some(plan.pattern_rate);
    o.drain_timeout = Duration::from_secs(2);
    o.channel_prefix = PREFIX.into();
    s.fixed = Some(fanout::run(&o).context("fanout at a fixed rate")?);
    let mut o = FanoutOpts::new(common, FLAT_CHANNELS, 1, bound);
    o.payload_bytes = plan.payload_bytes;
    o.publishers = FLAT_PUBLISHERS;
    o.drain_timeout = Duration::from_secs(2);
    o.channel_prefix = PREFIX.into();
    s.flat = Some(fanout::run(&o).context("publishing flat out")?);
    if let Some(h) = held {
        let out: HeldOutcome = h.release()?;
        s.held_received = out.received;
        if let Some(e) = out.first_error.filter(|_| out.errors > 0) {
            anyhow::bail!("held patterns: {} errors, first: {e}", out.errors);
        }
    }
    Ok(())
}

/// The equivalent `raptor-loadtest` command lines.
pub fn command(plan: &Plan) -> String {
    format!(
        "raptor-loadtest --port $PORT --server-pid $SERVER_PID --threads {t} fanout --channels 1 --subscribers {} --rate {} --payload-bytes {p} --duration {d}   # channels bench/…; against a fresh `raptor serve --config patterns.toml` (max_api_requests_per_second lifted) with no patterns (A) and one holding {} (B)\n\
         raptor-loadtest --port $PORT --server-pid $SERVER_PID --threads {t} fanout --channels {FLAT_CHANNELS} --subscribers 1 --publishers {FLAT_PUBLISHERS} --payload-bytes {p} --duration {d}   # the same servers, flat out",
        plan.pattern_subscribers,
        plan.pattern_rate,
        fmt_int(plan.patterns),
        t = plan.client_threads,
        p = plan.payload_bytes,
        d = plan.pattern_secs,
    )
}

pub fn title(p: &Plan) -> String {
    format!(
        "Wildcard patterns: the same publishing with no patterns (A) and with {} registered that match nothing (B)",
        fmt_int(p.patterns)
    )
}

type Figure = (&'static str, fn(&Report) -> Option<f64>, &'static str);

const FIGURES: [Figure; 5] = [
    (
        "publishes/s",
        |r| Some(r.published as f64 / r.duration_s.max(1e-9)),
        "",
    ),
    ("deliveries/s", |r| Some(r.deliveries_per_sec), ""),
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
    (
        "server CPU per delivery",
        |r| r.server_cpu_us_per_delivery,
        " µs",
    ),
];

/// Clean sides `which` over the rounds.
fn sides(info: &RunInfo, which: Which) -> Vec<&Side> {
    info.samples
        .iter()
        .filter(|s| s.scenario == Scenario::Patterns && s.contender == info.raptor)
        .filter_map(|s| s.patterns.as_ref())
        .flat_map(|r| r.runs.iter())
        .filter(|x| x.which() == which && x.clean())
        .collect()
}

fn stat(
    info: &RunInfo,
    which: Which,
    load: fn(&Side) -> Option<&Report>,
    f: fn(&Report) -> Option<f64>,
) -> Option<Stat> {
    let v: Vec<f64> = sides(info, which)
        .into_iter()
        .filter_map(load)
        .filter_map(f)
        .collect();
    Stat::of(&v)
}

/// f(`num`) ÷ f(`den`) of each round where both sides were clean: they ran back to back, so
/// drift between rounds cancels.
fn paired(
    info: &RunInfo,
    (num, den): (Which, Which),
    load: fn(&Side) -> Option<&Report>,
    f: fn(&Report) -> Option<f64>,
) -> Option<Stat> {
    let v: Vec<f64> = info
        .samples
        .iter()
        .filter(|s| s.scenario == Scenario::Patterns && s.contender == info.raptor)
        .filter_map(|s| s.patterns.as_ref())
        .filter_map(|r| {
            let side = |which: Which| {
                r.runs
                    .iter()
                    .find(|x| x.which() == which && x.clean())
                    .and_then(load)
                    .and_then(f)
            };
            let (a, b) = (side(den)?, side(num)?);
            (a != 0.0).then(|| b / a)
        })
        .collect();
    Stat::of(&v)
}

fn paired_cell(st: Option<Stat>) -> String {
    match st {
        Some(s) if s.n > 1 => format!("{:.3}× ({:.3}–{:.3}, n={})", s.median, s.min, s.max, s.n),
        Some(s) => format!("{:.3}× (n=1)", s.median),
        None => "–".into(),
    }
}

fn ratio(a: Option<Stat>, b: Option<Stat>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b.median != 0.0 => format!("{:.3}×", a.median / b.median),
        _ => "–".into(),
    }
}

/// The subsection of "Results by scenario": per load, A and B side by side and B ÷ A.
pub fn section(info: &RunInfo) -> String {
    let p = &info.plan;
    let mut o = String::new();
    let w = &mut o;
    let names = pattern_names(p.patterns);
    let _ = writeln!(
        w,
        "Each round starts a fresh server three times from the same binary: **A** with no \
         patterns, **B** with {} patterns registered, each held by its own WebSocket connection, \
         and **C**, the control, with {} plain channels (`idle-<i>`, no `/`) held the same way: \
         B ÷ C is what the patterns cost without what B's extra idle connections cost. B's \
         patterns: {} under `bench`, the first segment of \
         every published channel (`{}`, `{}`, …: three segments, the published channels \
         `bench/<tag>-<i>` have two, so the order point finds them by the first segment and \
         checks each), and {} under first segments of their own (`{}`, …). The order of the \
         sides rotates with the round. Against each server the same two loads, {} s of \
         publishing each ({}-byte payloads): a **fanout** of 1 channel × {} subscribers at \
         {} publishes/s, then **flat out**: {} channels × 1 subscriber, {} publishers sending \
         as fast as the HTTP API answers (the app's API rate limit lifted, on both sides). \
         Server CPU per delivery is the server's CPU time \
         over the publishing window ÷ deliveries. B's patterns must receive nothing (none \
         did in a clean run). Only clean runs count. The \"per round\" columns divide B by A \
         (or C) within each round (they ran back to back) and give the median of those ratios \
         (min–max).\n",
        fmt_int(p.patterns),
        fmt_int(p.patterns),
        p.patterns / 10,
        names.first().map_or("", String::as_str),
        names
            .get((p.patterns / 20) as usize)
            .map_or("", String::as_str),
        p.patterns - p.patterns / 10,
        names.last().map_or("", String::as_str),
        p.pattern_secs,
        p.payload_bytes,
        fmt_int(p.pattern_subscribers),
        p.pattern_rate,
        FLAT_CHANNELS,
        FLAT_PUBLISHERS,
    );
    type Load = (&'static str, fn(&Side) -> Option<&Report>);
    let loads: [Load; 2] = [
        ("Fanout at a fixed rate", |s| s.fixed.as_ref()),
        ("Flat out", |s| s.flat.as_ref()),
    ];
    for (name, load) in loads {
        let _ = writeln!(w, "**{name}**\n");
        let _ = writeln!(
            w,
            "| figure | A: no patterns | B: {n} patterns | C: {n} plain channels | B ÷ A (medians) | B ÷ A per round | B ÷ C per round |\n|---|---:|---:|---:|---:|---:|---:|",
            n = fmt_int(p.patterns)
        );
        for (label, f, unit) in FIGURES {
            let a = stat(info, Which::A, load, f);
            let b = stat(info, Which::B, load, f);
            let c = stat(info, Which::C, load, f);
            let _ = writeln!(
                w,
                "| {label} | {} | {} | {} | {} | {} | {} |",
                cell(a, unit),
                cell(b, unit),
                cell(c, unit),
                ratio(b, a),
                paired_cell(paired(info, (Which::B, Which::A), load, f)),
                paired_cell(paired(info, (Which::B, Which::C), load, f))
            );
        }
        let _ = writeln!(w);
    }
    let failed: Vec<String> = info
        .samples
        .iter()
        .filter_map(|s| Some((s.round, s.patterns.as_ref()?)))
        .flat_map(|(round, r)| {
            r.runs.iter().filter(|x| !x.clean()).map(move |x| {
                format!(
                    "* round {round}, {}: {}",
                    x.label(),
                    side_problems(x).join("; ").replace('|', "/")
                )
            })
        })
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(w, "Runs left out (unclean or failed):\n");
        for f in failed {
            let _ = writeln!(w, "{f}");
        }
        let _ = writeln!(w);
    }
    o
}

fn side_problems(x: &Side) -> Vec<String> {
    let mut v = Vec::new();
    if let Some(e) = &x.error {
        v.push(format!("failed: {}", e.replace('\n', " ")));
    }
    if x.held_received > 0 {
        v.push(format!(
            "the held patterns received {} events",
            x.held_received
        ));
    }
    for (what, r) in [("fanout", &x.fixed), ("flat out", &x.flat)] {
        if let Some(r) = r {
            v.extend(r.problems().into_iter().map(|p| format!("{what}: {p}")));
        }
    }
    v
}

/// One round in a line.
pub fn headline(r: &PatternsResult) -> String {
    r.runs
        .iter()
        .map(|x| {
            let part = |r: &Option<Report>| match r {
                Some(rep) => format!(
                    "{}/s p50 {} p99 {} µs, {} µs/del",
                    fmt_num(rep.deliveries_per_sec),
                    fmt_num(rep.latency_us.p50),
                    fmt_num(rep.latency_us.p99),
                    rep.server_cpu_us_per_delivery.map_or("–".into(), fmt_num)
                ),
                None => "failed".into(),
            };
            format!(
                "{}: fanout {}; flat out {}",
                x.label(),
                part(&x.fixed),
                part(&x.flat)
            )
        })
        .collect::<Vec<_>>()
        .join(" — ")
}

/// (lost, out of order, errors) over the round's runs.
pub fn tallies(r: &PatternsResult) -> (u64, u64, u64) {
    r.runs
        .iter()
        .flat_map(|x| [&x.fixed, &x.flat])
        .filter_map(Option::as_ref)
        .fold((0, 0, 0), |(l, o, e), r| {
            (l + r.lost, o + r.out_of_order, e + r.errors)
        })
}

/// What was wrong with the round's runs, if anything.
pub fn problems(r: &PatternsResult) -> Vec<String> {
    r.runs
        .iter()
        .flat_map(|x| {
            side_problems(x)
                .into_iter()
                .map(move |p| format!("{}: {p}", x.label()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_pattern_matches_a_published_channel() {
        let names = pattern_names(1000);
        assert_eq!(names.len(), 1000);
        assert_eq!(names.iter().filter(|n| n.starts_with(PREFIX)).count(), 100);
        let distinct: std::collections::HashSet<&String> = names.iter().collect();
        assert_eq!(distinct.len(), 1000);
        for n in &names {
            let p = raptor_engine::channel::pattern::Pattern::parse(n, 200).expect(n);
            for ch in ["bench/0a1b2c3d-0", "bench/0a1b2c3d-3"] {
                assert!(!p.matches(ch), "{n} matches {ch}");
            }
        }
    }
}
