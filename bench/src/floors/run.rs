//! Running one round of a floor scenario: Raptor and its floor back to back (the order
//! alternating with the round), each against a fresh server process.

use super::{growth, FloorRun};
use crate::harness::{raw_report, Plan, Scenario};
use crate::machine::{CoresUsed, CpuShare};
use crate::server::ServerProc;
use anyhow::Context;
use raptor_loadtest::connect_storm::{self, ConnectStormOpts};
use raptor_loadtest::fanout::{self, FanoutOpts};
use raptor_loadtest::net::Endpoint;
use raptor_loadtest::report::{per_sec, us_per, LatencyUs, LossTally};
use raptor_loadtest::run::{self as lt_run, Shared};
use raptor_loadtest::usage::{process_cpu, CpuWindow};
use raptor_loadtest::{limits, subscribers, Bound, Common, Report, Target};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which side of a pair.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Raptor,
    Floor,
}

/// Runs one round of `s` (one of the floor scenarios or growth) against `bin`.
pub fn run(
    s: Scenario,
    bin: &Path,
    shards: usize,
    plan: &Plan,
    round: usize,
    log: &Path,
    cores: &mut CoresUsed,
) -> anyhow::Result<FloorRun> {
    let share = CpuShare::start(None);
    let started = Instant::now();
    let mut server_cpu = 0.0;
    let mut out = FloorRun::default();
    if s == Scenario::Growth {
        out.points = growth::run(bin, shards, plan, log, &mut server_cpu)?;
    } else {
        // Odd rounds Raptor first, even rounds the floor first: drift hits both alike.
        let order = if round % 2 == 1 {
            [Side::Raptor, Side::Floor]
        } else {
            [Side::Floor, Side::Raptor]
        };
        for side in order {
            let r = one_side(s, side, bin, shards, plan, log, &mut server_cpu);
            match (side, r) {
                (Side::Raptor, Ok(r)) => out.raptor = Some(r),
                (Side::Floor, Ok(r)) => out.floor = Some(r),
                (side, Err(e)) => {
                    let who = if side == Side::Raptor {
                        "raptor"
                    } else {
                        "floor"
                    };
                    let msg = format!("{who}: {e:#}");
                    out.error = Some(match out.error.take() {
                        Some(prev) => format!("{prev}; {msg}"),
                        None => msg,
                    });
                }
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    let mut c = share.stop();
    c.server = server_cpu / started.elapsed().as_secs_f64().max(1e-9);
    c.others = (c.machine - c.client - c.server).max(0.0);
    *cores = c;
    Ok(out)
}

/// A common block for a server on `port` with pid `pid`.
pub(super) fn common_for(port: u16, pid: u32, plan: &Plan) -> anyhow::Result<Common> {
    let target = Target::new("127.0.0.1", port, "1", "app-key", "app-secret", false)?;
    let mut common = Common::new(target);
    common.server_pid = Some(pid);
    common.threads = plan.client_threads;
    Ok(common)
}

/// The configuration of every Raptor server these scenarios start: the one app, its API rate
/// limit lifted (flat-out publishing is not refused with 429) and presence channels allowed
/// the sweep's largest size plus its churner.
pub(super) fn config(plan: &Plan) -> String {
    let members = plan
        .floors
        .presence_members
        .iter()
        .max()
        .copied()
        .unwrap_or(100)
        + 1;
    format!(
        "[[apps]]\nid = \"1\"\nkey = \"app-key\"\nsecret = \"app-secret\"\n\
         max_api_requests_per_second = 1000000\nmax_presence_members = {}\n",
        members.max(100)
    )
}

/// Starts Raptor with [`config`] (written next to the log).
pub(super) fn raptor(
    bin: &Path,
    shards: usize,
    plan: &Plan,
    log: &Path,
) -> anyhow::Result<ServerProc> {
    let cfg = log.parent().unwrap_or(Path::new(".")).join("floors.toml");
    std::fs::write(&cfg, config(plan))?;
    ServerProc::raptor_config(bin, shards, &cfg, log)
}

fn one_side(
    s: Scenario,
    side: Side,
    bin: &Path,
    shards: usize,
    plan: &Plan,
    log: &Path,
    server_cpu: &mut f64,
) -> anyhow::Result<Report> {
    let f = &plan.floors;
    let secs = Duration::from_secs_f64(f.secs);
    let srv = match (s, side) {
        (_, Side::Raptor) => raptor(bin, shards, plan, log)?,
        (Scenario::LatencyFloor, Side::Floor) => {
            let events = (plan.rate * f.secs).round().max(1.0) as u64;
            let args = raw_floor_args(&[
                ("mode", "latency".into()),
                ("expect", plan.subscribers.to_string()),
                ("threads", shards.to_string()),
                ("rate", plan.rate.to_string()),
                ("events", events.to_string()),
                ("payload-bytes", plan.payload_bytes.to_string()),
                ("secs", (f.secs + 60.0).ceil().to_string()),
            ]);
            ServerProc::bench(&args, log)?
        }
        (Scenario::ConnectFloor, Side::Floor) => {
            let args = raw_floor_args(&[
                ("mode", "connect".into()),
                ("threads", shards.to_string()),
                ("secs", (f.secs + 60.0).ceil().to_string()),
            ]);
            ServerProc::bench(&args, log)?
        }
        (Scenario::Publishers, Side::Floor) => {
            let n = plan.subscribers as usize;
            let srv_secs = (1.0 + f.secs + 10.0f64).ceil();
            let srv = ServerProc::raw(n, shards, plan.raw_batch, srv_secs, log)?;
            let addr = SocketAddr::from(([127, 0, 0, 1], srv.port));
            let r = crate::raw::read(addr, n, Duration::from_secs(1), secs, Some(srv.pid()));
            *server_cpu += process_cpu(srv.pid()).map_or(0.0, |d| d.as_secs_f64());
            srv.stop();
            return r.map(|r| raw_report(&r, n as u64));
        }
        _ => anyhow::bail!("{} is not a floor scenario", s.name()),
    };
    let common = common_for(srv.port, srv.pid(), plan)?;
    let bound = Bound::new(Some(secs), None)?;
    let r = match (s, side) {
        (Scenario::LatencyFloor, Side::Raptor) => {
            let mut o = FanoutOpts::new(common, 1, plan.subscribers, bound);
            o.payload_bytes = plan.payload_bytes;
            o.rate = Some(plan.rate);
            fanout::run(&o)
        }
        (Scenario::LatencyFloor, Side::Floor) => {
            let events = (plan.rate * f.secs).round().max(1.0) as u64;
            floor_latency(&common, plan.subscribers, events, f.secs)
        }
        (Scenario::Publishers, _) => {
            let mut o = FanoutOpts::new(common, 1, plan.subscribers, bound);
            o.payload_bytes = plan.payload_bytes;
            o.publishers = f.publishers;
            o.drain_timeout = Duration::from_secs(3);
            fanout::run(&o)
        }
        (_, side) => {
            let mut common = common;
            common.connect_concurrency = plan.storm_concurrency;
            connect_storm::run(&ConnectStormOpts {
                common,
                channels: 10,
                bound,
                until_upgrade: side == Side::Floor,
            })
        }
    };
    *server_cpu += process_cpu(srv.pid()).map_or(0.0, |d| d.as_secs_f64());
    srv.stop();
    r
}

/// `raw-floor --NAME VALUE …` (argh takes no `--name=value`).
fn raw_floor_args(opts: &[(&str, String)]) -> Vec<String> {
    let mut v = vec!["raw-floor".to_string()];
    for (k, val) in opts {
        v.push(format!("--{k}"));
        v.push(val.clone());
    }
    v
}

/// The latency floor's client: the loadtest's own subscriber workers (the code that times
/// Raptor in `fanout`), on one channel, against the raw floor, which starts sending once all
/// of them subscribed and sends `events` events.
fn floor_latency(c: &Common, subs: u64, events: u64, secs: f64) -> anyhow::Result<Report> {
    limits::ensure_fds(subs)?;
    let sources = limits::plan_sources(c.target.addr.ip(), subs, c.source_addrs)?;
    let endpoint = Endpoint::new(&c.target, sources);
    let names = Arc::new(vec![format!(
        "floor-{:x}",
        raptor_loadtest::clock::now_ns()
    )]);
    let plan = vec![0u32; subs as usize];
    let shared = Arc::new(Shared::default());
    let workers = subscribers::spawn(
        c.threads,
        &endpoint,
        names.clone(),
        &plan,
        &[],
        &shared,
        c.connect_concurrency,
    );
    if let Err(e) = lt_run::wait_ready(&shared, subs, c.setup_timeout, false) {
        let _ = lt_run::join_all(workers);
        return Err(e);
    }
    let cpu = CpuWindow::start(c.server_pid).context("reading cpu time")?;
    let started = Instant::now();
    // the floor sends on its own schedule; give it its duration and a drain allowance
    let limit = Duration::from_secs_f64(secs + 5.0);
    let ended = lt_run::wait_drained(&shared, events * subs, limit);
    let (client_cpu_s, server_cpu_s) = cpu.stop().context("reading cpu time")?;
    shared.stop.store(true, Relaxed);
    let all = subscribers::merge(lt_run::join_all(workers)?);
    let mut tally = LossTally::new(1);
    for (_, seq) in &all.streams {
        tally.add(0, seq.lost(events), seq.out_of_order());
    }
    let (lost, out_of_order, lossy_channels) = tally.finish(&names);
    let deliveries = all.latency.len();
    let duration_s = ended.duration_since(started).as_secs_f64();
    Ok(Report {
        scenario: "latency-floor".into(),
        connections: subs,
        channels: 1,
        published: events,
        deliveries,
        deliveries_per_sec: per_sec(deliveries, duration_s),
        lost,
        out_of_order,
        errors: shared.errors.load(Relaxed),
        first_error: shared.first_error(),
        lossy_channels,
        latency_of: "publish_to_receive".into(),
        latency_us: LatencyUs::from_histogram(&all.latency),
        client_cpu_s,
        server_cpu_s,
        client_cpu_us_per_delivery: us_per(client_cpu_s, deliveries),
        server_cpu_us_per_delivery: server_cpu_s.and_then(|s| us_per(s, deliveries)),
        server_rss_kib_per_conn: None,
        client_rss_kib_per_conn: None,
        connects_per_sec: None,
        duration_s,
    })
}
