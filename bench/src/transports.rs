//! The `transports` scenario (Raptor only): the same fanout with its subscribers on each
//! transport a Pusher client can use — WebSocket, pusher-js's HTTP fallback (xhr_streaming,
//! xhr_polling) and Server-Sent Events — side by side in one run.
//!
//! Each round runs, per transport, a fresh server from the same binary and one
//! `raptor-loadtest` fanout against it: 1 channel × the plan's transport subscribers, all on
//! that transport, published through the HTTP API at a fixed modest rate (every transport
//! must keep up, so deliveries/s says whether it did, and latency and cost are comparable).
//! Figures: deliveries/s, publish→receive p50 and p99 (the stamped payloads, timed exactly as
//! for the WebSocket), server RSS per session (RSS after every session subscribed minus before
//! the first opened, ÷ sessions: how `idle` measures a connection) and server CPU per
//! delivery. The order of the transports rotates with the round, so drift hits all alike.

use crate::doc::{cell, fmt_int, RunInfo};
use crate::harness::{Plan, Scenario};
use crate::machine::{CoresUsed, CpuShare};
use crate::server::ServerProc;
use crate::summary::{fmt_num, Stat};
use anyhow::Context;
use raptor_loadtest::fallback::Transport;
use raptor_loadtest::fanout::{self, FanoutOpts};
use raptor_loadtest::usage::process_cpu;
use raptor_loadtest::{Bound, Common, Report, Target};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

/// One transport's run in a round.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransportRun {
    pub transport: Transport,
    pub report: Option<Report>,
    pub error: Option<String>,
}

impl TransportRun {
    pub fn clean(&self) -> bool {
        self.report.as_ref().is_some_and(Report::is_clean)
    }
}

/// Everything one round measured, in the order the transports ran.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransportsResult {
    pub runs: Vec<TransportRun>,
}

impl TransportsResult {
    pub fn clean(&self) -> bool {
        self.runs.iter().all(TransportRun::clean)
    }
}

/// The transports in the order round `round` runs them (rotated by one each round).
pub fn order(round: usize) -> Vec<Transport> {
    let mut all = Transport::ALL.to_vec();
    let n = all.len();
    all.rotate_left(round.saturating_sub(1) % n);
    all
}

/// Runs one round: every transport against its own fresh server. A transport that fails is
/// recorded and the others still run. `cores` gets the CPU use of the whole round.
pub fn run(
    bin: &Path,
    shards: usize,
    plan: &Plan,
    round: usize,
    log: &Path,
    cores: &mut CoresUsed,
) -> anyhow::Result<TransportsResult> {
    let share = CpuShare::start(None);
    let started = Instant::now();
    let mut server_cpu = 0.0;
    let mut runs = Vec::new();
    for t in order(round) {
        let srv = ServerProc::raptor(bin, shards, log)?;
        let r = fanout_on(&srv, plan, t).with_context(|| format!("fanout over {t}"));
        server_cpu += process_cpu(srv.pid()).map_or(0.0, |d| d.as_secs_f64());
        srv.stop();
        let (report, error) = match r {
            Ok(r) => (Some(r), None),
            Err(e) => (None, Some(format!("{e:#}"))),
        };
        runs.push(TransportRun {
            transport: t,
            report,
            error,
        });
        std::thread::sleep(Duration::from_millis(300));
    }
    let mut c = share.stop();
    c.server = server_cpu / started.elapsed().as_secs_f64().max(1e-9);
    c.others = (c.machine - c.client - c.server).max(0.0);
    *cores = c;
    Ok(TransportsResult { runs })
}

fn fanout_on(srv: &ServerProc, plan: &Plan, t: Transport) -> anyhow::Result<Report> {
    let target = Target::new("127.0.0.1", srv.port, "1", "app-key", "app-secret", false)?;
    let mut common = Common::new(target);
    common.server_pid = Some(srv.pid());
    common.threads = plan.client_threads;
    common.transport = t;
    let bound = Bound::new(Some(Duration::from_secs_f64(plan.transport_secs)), None)?;
    let mut o = FanoutOpts::new(common, 1, plan.transport_subscribers, bound);
    o.payload_bytes = plan.payload_bytes;
    o.rate = Some(plan.transport_rate);
    o.drain_timeout = Duration::from_secs(2);
    fanout::run(&o)
}

/// The equivalent `raptor-loadtest` command line.
pub fn command(plan: &Plan) -> String {
    format!(
        "raptor-loadtest --port $PORT --server-pid $SERVER_PID --threads {} --transport $T fanout --channels 1 --subscribers {} --rate {} --payload-bytes {} --duration {}   # $T: ws, xhr_streaming, xhr_polling, sse; a fresh server each",
        plan.client_threads,
        plan.transport_subscribers,
        plan.transport_rate,
        plan.payload_bytes,
        plan.transport_secs
    )
}

pub fn title(p: &Plan) -> String {
    format!(
        "Transports: 1 channel × {} subscribers at {} publishes/s over WebSocket, xhr_streaming, xhr_polling and SSE",
        fmt_int(p.transport_subscribers),
        p.transport_rate
    )
}

type Figure = (&'static str, fn(&Report) -> Option<f64>, &'static str);

const FIGURES: [Figure; 5] = [
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
        "server RSS per session",
        |r| r.server_rss_kib_per_conn,
        " KiB",
    ),
    (
        "server CPU per delivery",
        |r| r.server_cpu_us_per_delivery,
        " µs",
    ),
];

/// Clean reports of transport `t` over the rounds.
fn reports(info: &RunInfo, t: Transport) -> Vec<&Report> {
    info.samples
        .iter()
        .filter(|s| s.scenario == Scenario::Transports && s.contender == info.raptor)
        .filter_map(|s| s.transports.as_ref())
        .flat_map(|r| r.runs.iter())
        .filter(|r| r.transport == t && r.clean())
        .filter_map(|r| r.report.as_ref())
        .collect()
}

fn stat(info: &RunInfo, t: Transport, f: fn(&Report) -> Option<f64>) -> Option<Stat> {
    Stat::of(
        &reports(info, t)
            .iter()
            .filter_map(|r| f(r))
            .collect::<Vec<_>>(),
    )
}

/// The subsection of "Results by scenario": one table of figures per transport, one of ratios
/// against the WebSocket.
pub fn section(info: &RunInfo) -> String {
    let p = &info.plan;
    let mut o = String::new();
    let w = &mut o;
    let _ = writeln!(
        w,
        "Per transport, each round starts a fresh server from the same binary and runs one \
         fanout for {} s ({}-byte payloads): 1 channel × {} subscribers all on that transport, \
         {} publishes/s through the HTTP API (so {} deliveries/s when every subscriber keeps \
         up). Latency is publish→receive of the stamped payloads, timed as for the WebSocket. \
         Server RSS per session: the server's RSS once every subscriber is subscribed minus \
         before the first connected, ÷ subscribers (the `idle` scenario's measure; RSS moves \
         in pages, so with {} sessions it is coarse). Only clean runs count. \
         The xhr clients do what pusher-js 8.6 does (an `xhr_send` per message on its own \
         connection, `[]` on every `h` of a stream, the stream re-opened past 256 KiB); a poll \
         answered with keep-alive is followed by the next on the same connection, as in a \
         browser. SSE subscribers name the channel in the URL.\n",
        p.transport_secs,
        p.payload_bytes,
        fmt_int(p.transport_subscribers),
        p.transport_rate,
        fmt_num(p.transport_rate * p.transport_subscribers as f64),
        fmt_int(p.transport_subscribers),
    );
    let mut header = String::from("| transport |");
    let mut line = String::from("|---|");
    for (label, _, _) in FIGURES {
        let _ = write!(header, " {label} |");
        line.push_str("---:|");
    }
    let _ = writeln!(w, "{header}\n{line}");
    for t in Transport::ALL {
        let mut row = format!("| {t} |");
        for (_, f, unit) in FIGURES {
            let _ = write!(row, " {} |", cell(stat(info, t, f), unit));
        }
        let _ = writeln!(w, "{row}");
    }
    let _ = writeln!(
        w,
        "\nThe same medians as ratios against the WebSocket row of this run (below 1 is fewer \
         deliveries, lower latency, less memory, less CPU):\n"
    );
    let mut header = String::from("| transport |");
    let mut line = String::from("|---|");
    for (label, _, _) in FIGURES {
        let _ = write!(header, " {label} ÷ ws |");
        line.push_str("---:|");
    }
    let _ = writeln!(w, "{header}\n{line}");
    for t in Transport::ALL.into_iter().filter(|t| *t != Transport::Ws) {
        let mut row = format!("| {t} |");
        for (_, f, _) in FIGURES {
            let r = match (stat(info, t, f), stat(info, Transport::Ws, f)) {
                (Some(a), Some(b)) if b.median != 0.0 => format!("{:.2}×", a.median / b.median),
                _ => "–".into(),
            };
            let _ = write!(row, " {r} |");
        }
        let _ = writeln!(w, "{row}");
    }
    let failed: Vec<String> = info
        .samples
        .iter()
        .filter_map(|s| Some((s.round, s.transports.as_ref()?)))
        .flat_map(|(round, r)| {
            r.runs.iter().filter(|x| !x.clean()).map(move |x| {
                let why = match (&x.report, &x.error) {
                    (Some(rep), _) => rep.problems().join("; "),
                    (None, e) => e.clone().unwrap_or_default(),
                };
                format!(
                    "* round {round}, {}: {}",
                    x.transport,
                    why.replace('|', "/").replace('\n', " ")
                )
            })
        })
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(w, "\nRuns left out (unclean or failed):\n");
        for f in failed {
            let _ = writeln!(w, "{f}");
        }
    }
    let _ = writeln!(w);
    o
}

/// One round in a line.
pub fn headline(r: &TransportsResult) -> String {
    r.runs
        .iter()
        .map(|x| match &x.report {
            Some(rep) => format!(
                "{}: {}/s, p50 {} µs, p99 {} µs, {} KiB/session",
                x.transport,
                fmt_num(rep.deliveries_per_sec),
                fmt_num(rep.latency_us.p50),
                fmt_num(rep.latency_us.p99),
                rep.server_rss_kib_per_conn.map_or("–".into(), fmt_num)
            ),
            None => format!("{}: failed", x.transport),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// (lost, out of order, errors) over the round's runs.
pub fn tallies(r: &TransportsResult) -> (u64, u64, u64) {
    r.runs
        .iter()
        .filter_map(|x| x.report.as_ref())
        .fold((0, 0, 0), |(l, o, e), r| {
            (l + r.lost, o + r.out_of_order, e + r.errors)
        })
}

/// What was wrong with the round's runs, if anything.
pub fn problems(r: &TransportsResult) -> Vec<String> {
    r.runs
        .iter()
        .flat_map(|x| match (&x.report, &x.error) {
            (Some(rep), _) => rep
                .problems()
                .into_iter()
                .map(|p| format!("{}: {p}", x.transport))
                .collect::<Vec<_>>(),
            (None, e) => vec![format!(
                "{}: failed: {}",
                x.transport,
                e.as_deref().unwrap_or("?")
            )],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_rotates_with_the_round() {
        assert_eq!(order(1), Transport::ALL.to_vec());
        assert_eq!(order(2)[0], Transport::XhrStreaming);
        assert_eq!(order(5), Transport::ALL.to_vec());
    }
}
