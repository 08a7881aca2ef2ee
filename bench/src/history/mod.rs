//! The `history` scenario: what channel history (docs/history.md) costs and what it buys on
//! one node. Each round answers three questions:
//!
//! 1. **Publish cost and fanout, history on vs off.** Two servers from the same binary and
//!    the same app, one with an `[[apps.history]]` rule matching every channel and one
//!    without, run the same `raptor-loadtest` fanouts ([`shapes`]): 1 channel × S
//!    subscribers at the latency scenario's fixed publish rate (fanout: what each delivery
//!    costs), and C channels × 1 subscriber published flat out by two publishers (one
//!    delivery per publish, so the publish path weighs most: how many publishes/s). Flat
//!    out, the 1 × S fanout flips between batching regimes from run to run (±50 %, either
//!    way), which would drown history's cost; at a fixed rate it does not. Deliveries/s and
//!    server CPU per delivery are measured as in the other scenarios; the order of the two
//!    servers alternates with the round, so drift hits both alike.
//! 2. **Time to recover 300 events.** On a third, fresh server with history, 300 events go
//!    to one channel after a known position; then fresh connections, one after another,
//!    subscribe with `recover` from that position. Timed: sending the subscribe → the 300th
//!    replayed event; every replay is checked complete and in order.
//! 3. **Memory per 1,000 stored events.** On that server, N events with 64-byte data go into
//!    ⌈N / ring size⌉ channels (so no ring drops one) through `batch_events`: the server's RSS
//!    growth and its own accounting (`/stats` `history.bytes`) per 1,000 events.
//!
//! Both servers allow 1,000,000 API requests/s (the default 10,000 would refuse flat-out
//! publishing); nothing else differs from the default configuration.

mod recover;
pub mod report;

use crate::api::{self, Api};
use crate::doc::fmt_int;
use crate::harness::Plan;
use crate::machine::{CoresUsed, CpuShare};
use crate::server::ServerProc;
use anyhow::{bail, ensure, Context};
use raptor_loadtest::fanout::{self, FanoutOpts};
use raptor_loadtest::usage::{process_cpu, process_rss_kib};
use raptor_loadtest::{Bound, Common, Report, Target};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::{Duration, Instant};

/// Events kept per channel by the rule; the memory figure spreads its events so that no
/// channel gets more.
pub const RING_SIZE: u64 = 1000;
/// Events one recovery replays (the rule's `recover_max`, Raptor's default).
pub const RECOVER_EVENTS: u64 = 300;
/// Event name of everything this scenario publishes.
const EVENT: &str = "bench";
/// Events per `batch_events` call (Raptor's default `max_batch_events`).
const BATCH: usize = 10;
/// How long storing the memory figure's events may take.
const STORE_TIMEOUT: Duration = Duration::from_secs(120);

/// The history rule of the "on" server, as written into its configuration.
pub fn rule() -> String {
    format!(
        "[[apps.history]]\nchannels = \"*\"\nsize = {RING_SIZE}\nttl_secs = 600\nrecover_max = {RECOVER_EVENTS}\n"
    )
}

/// The configuration file of either server: the default app, and with `on` the rule.
pub fn config(on: bool) -> String {
    let app = "[[apps]]\nid = \"1\"\nkey = \"app-key\"\nsecret = \"app-secret\"\n\
               max_api_requests_per_second = 1000000\n";
    if on {
        format!("{app}\n{}", rule())
    } else {
        app.to_string()
    }
}

/// One workload run against both servers.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub name: &'static str,
    pub channels: u64,
    pub subscribers: u64,
    pub publishers: usize,
    /// publishes/s over all channels; `None`: flat out
    pub rate: Option<f64>,
}

impl Shape {
    /// e.g. "1 channel × 1,000 subscribers, 100 publishes/s".
    pub fn label(&self) -> String {
        let s = |n: u64, one: &str, many: &str| {
            format!("{} {}", fmt_int(n), if n == 1 { one } else { many })
        };
        let publishing = match self.rate {
            Some(r) => format!("{r} publishes/s"),
            None => format!(
                "{} flat out",
                s(self.publishers as u64, "publisher", "publishers")
            ),
        };
        format!(
            "{} × {}, {publishing}",
            s(self.channels, "channel", "channels"),
            s(self.subscribers, "subscriber", "subscribers"),
        )
    }
}

/// The two workloads: fanout (1 channel × the plan's subscribers at the plan's rate) and
/// publish cost (the plan's history channels × 1 subscriber, two publishers flat out).
pub fn shapes(plan: &Plan) -> [Shape; 2] {
    [
        Shape {
            name: "fanout",
            channels: 1,
            subscribers: plan.subscribers,
            publishers: 1,
            rate: Some(plan.rate),
        },
        Shape {
            name: "publish",
            channels: plan.history_channels,
            subscribers: 1,
            publishers: 2,
            rate: None,
        },
    ]
}

/// One shape run with history off and with history on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OnOff {
    pub shape: String,
    pub label: String,
    pub off: Report,
    pub on: Report,
}

impl OnOff {
    pub fn clean(&self) -> bool {
        self.off.is_clean() && self.on.is_clean()
    }
}

/// Recoveries of [`RECOVER_EVENTS`] events.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Recovery {
    pub events: u64,
    /// ms from sending the subscribe to receiving the last replayed event, one per recovery
    pub ms: Vec<f64>,
}

/// Memory taken by `events` stored events.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Memory {
    pub events: u64,
    pub channels: u64,
    pub data_bytes: usize,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    /// `/stats` `history.bytes` before and after
    pub accounted_before: u64,
    pub accounted_after: u64,
    /// seconds storing them took (`batch_events` of 10, one connection)
    pub store_s: f64,
}

impl Memory {
    /// Server RSS growth per 1,000 stored events, KiB.
    pub fn rss_kib_per_1000(&self) -> f64 {
        (self.rss_after_kib as f64 - self.rss_before_kib as f64) * 1000.0 / self.events as f64
    }

    /// The server's own accounting per 1,000 stored events, KiB.
    pub fn accounted_kib_per_1000(&self) -> f64 {
        (self.accounted_after as f64 - self.accounted_before as f64) / 1024.0 * 1000.0
            / self.events as f64
    }
}

/// Everything one round of the scenario measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryResult {
    pub pairs: Vec<OnOff>,
    pub recovery: Recovery,
    pub memory: Memory,
}

impl HistoryResult {
    /// Every fanout run clean (the recovery and memory parts fail outright instead).
    pub fn clean(&self) -> bool {
        self.pairs.iter().all(OnOff::clean)
    }
}

/// Runs one round: the on/off pairs, then recovery and memory on a fresh server. Server
/// logs go to `log`, the two configuration files beside it. `cores` gets the CPU use of
/// the whole round (the server's summed over the three servers).
pub fn run(
    bin: &Path,
    shards: usize,
    plan: &Plan,
    round: usize,
    log: &Path,
    cores: &mut CoresUsed,
) -> anyhow::Result<HistoryResult> {
    let dir = log.parent().unwrap_or(Path::new("."));
    let (on_cfg, off_cfg) = (dir.join("history-on.toml"), dir.join("history-off.toml"));
    std::fs::write(&on_cfg, config(true))?;
    std::fs::write(&off_cfg, config(false))?;
    let share = CpuShare::start(None);
    let started = Instant::now();
    let mut server_cpu = 0.0;
    let mut stopped = |srv: ServerProc| {
        server_cpu += process_cpu(srv.pid()).map_or(0.0, |d| d.as_secs_f64());
        srv.stop();
    };

    let shapes = shapes(plan);
    let mut reports: [Vec<Report>; 2] = [Vec::new(), Vec::new()];
    // Odd rounds start with history off, even rounds with it on.
    let order = if round % 2 == 1 {
        [false, true]
    } else {
        [true, false]
    };
    for on in order {
        let srv = ServerProc::raptor_config(bin, shards, if on { &on_cfg } else { &off_cfg }, log)?;
        for shape in &shapes {
            let r = fanout_of(&srv, plan, shape).with_context(|| {
                format!(
                    "{} with history {}",
                    shape.name,
                    if on { "on" } else { "off" }
                )
            })?;
            reports[usize::from(on)].push(r);
        }
        stopped(srv);
    }
    let [off, on] = reports;
    let pairs = shapes
        .iter()
        .zip(off.into_iter().zip(on))
        .map(|(s, (off, on))| OnOff {
            shape: s.name.into(),
            label: s.label(),
            off,
            on,
        })
        .collect();

    let srv = ServerProc::raptor_config(bin, shards, &on_cfg, log)?;
    let parts = recovery(&srv, plan).context("recovery").and_then(|rec| {
        let mem = memory(&srv, plan).context("memory")?;
        Ok((rec, mem))
    });
    stopped(srv);
    let (recovery, memory) = parts?;
    let mut c = share.stop();
    c.server = server_cpu / started.elapsed().as_secs_f64().max(1e-9);
    c.others = (c.machine - c.client - c.server).max(0.0);
    *cores = c;
    Ok(HistoryResult {
        pairs,
        recovery,
        memory,
    })
}

fn target(srv: &ServerProc) -> anyhow::Result<Target> {
    Ok(Target::new(
        "127.0.0.1",
        srv.port,
        "1",
        "app-key",
        "app-secret",
        false,
    )?)
}

/// One fanout of `shape` for the plan's history seconds.
fn fanout_of(srv: &ServerProc, plan: &Plan, shape: &Shape) -> anyhow::Result<Report> {
    let mut common = Common::new(target(srv)?);
    common.server_pid = Some(srv.pid());
    common.threads = plan.client_threads;
    let bound = Bound::new(Some(Duration::from_secs_f64(plan.history_secs)), None)?;
    let mut o = FanoutOpts::new(common, shape.channels, shape.subscribers, bound);
    o.payload_bytes = plan.payload_bytes;
    o.publishers = shape.publishers;
    o.rate = shape.rate;
    o.drain_timeout = Duration::from_secs(2);
    fanout::run(&o)
}

/// Event data of `size` bytes (at least 16) carrying `seq`: its 16 hex digits, then dots
/// (nothing JSON escapes).
pub fn data(seq: u64, size: usize) -> String {
    let mut s = format!("{seq:016x}");
    s.extend(std::iter::repeat_n('.', size.saturating_sub(16)));
    s
}

/// The sequence number [`data`] put in.
fn seq_of(data: &str) -> Option<u64> {
    u64::from_str_radix(data.get(..16)?, 16).ok()
}

/// Publishes events `seqs` through `batch_events`, event `k` to `channel_of(k)`.
fn store(
    api: &mut Api,
    seqs: std::ops::Range<u64>,
    size: usize,
    channel_of: impl Fn(u64) -> String,
    deadline: Instant,
) -> anyhow::Result<()> {
    let mut k = seqs.start;
    while k < seqs.end {
        if Instant::now() > deadline {
            bail!("storing events took longer than allowed; stopped at {k}");
        }
        let end = (k + BATCH as u64).min(seqs.end);
        let events: Vec<(String, String)> =
            (k..end).map(|i| (channel_of(i), data(i, size))).collect();
        let refs: Vec<(&str, &str, &str)> = events
            .iter()
            .map(|(c, d)| (c.as_str(), EVENT, d.as_str()))
            .collect();
        api.batch(&refs)?;
        k = end;
    }
    Ok(())
}

/// A random tag keeping one run's channel names apart from another's (std's per-process
/// random hash keys; no rng crate needed).
fn tag() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() as u32
}

/// Publishes one event (the position to recover from is after it) and [`RECOVER_EVENTS`]
/// more, then times the plan's number of recoveries from that position.
fn recovery(srv: &ServerProc, plan: &Plan) -> anyhow::Result<Recovery> {
    let target = target(srv)?;
    let mut api = Api::new(&target);
    let channel = format!("hist-rec-{:08x}", tag());
    let size = plan.payload_bytes;
    let deadline = Instant::now() + STORE_TIMEOUT;
    store(&mut api, 0..1, size, |_| channel.clone(), deadline)?;
    let (epoch, from) = api.position(&channel)?;
    store(
        &mut api,
        1..RECOVER_EVENTS + 1,
        size,
        |_| channel.clone(),
        deadline,
    )?;
    let (e, top) = api.position(&channel)?;
    ensure!(
        e == epoch && top == from + RECOVER_EVENTS,
        "after {RECOVER_EVENTS} publishes the position is {e}:{top}, expected {epoch}:{}",
        from + RECOVER_EVENTS
    );
    let mut ms = Vec::with_capacity(plan.history_recoveries);
    for i in 0..plan.history_recoveries {
        let d = recover::once(&target, &channel, &epoch, from)
            .with_context(|| format!("recovery {}", i + 1))?;
        ms.push(d.as_secs_f64() * 1e3);
    }
    Ok(Recovery {
        events: RECOVER_EVENTS,
        ms,
    })
}

/// `history.bytes` once two reads 100 ms apart agree (stored events are accounted when the
/// owner shard orders them, before the publish is answered; this only makes sure).
fn settled_bytes(metrics_port: u16) -> anyhow::Result<u64> {
    let read = || -> anyhow::Result<u64> {
        let v = api::stats(metrics_port)?;
        v["history"]["bytes"]
            .as_u64()
            .context("/stats has no history.bytes")
    };
    let mut last = read()?;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(100));
        let now = read()?;
        if now == last {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

/// Stores the plan's events, `payload_bytes` of data each, over ⌈events / ring⌉ channels.
fn memory(srv: &ServerProc, plan: &Plan) -> anyhow::Result<Memory> {
    let metrics = srv
        .metrics_port
        .context("the server has no metrics listener")?;
    let events = plan.history_events.max(1);
    let channels = events.div_ceil(RING_SIZE);
    let tag = tag();
    let names: Vec<String> = (0..channels)
        .map(|i| format!("hist-mem-{tag:08x}-{i}"))
        .collect();
    let mut api = Api::new(&target(srv)?);
    let accounted_before = settled_bytes(metrics)?;
    let rss_before_kib = process_rss_kib(srv.pid())?;
    let t = Instant::now();
    store(
        &mut api,
        0..events,
        plan.payload_bytes,
        |k| names[(k % channels) as usize].clone(),
        t + STORE_TIMEOUT,
    )?;
    let store_s = t.elapsed().as_secs_f64();
    let accounted_after = settled_bytes(metrics)?;
    let rss_after_kib = process_rss_kib(srv.pid())?;
    let (_, top) = api.position(&names[0])?;
    ensure!(
        top == events.div_ceil(channels),
        "{} holds {top} events, expected {}",
        names[0],
        events.div_ceil(channels)
    );
    // At the shard's byte bound the least recently appended channel loses its events first:
    // that is the first one, whose last event is the oldest of the last sweep.
    ensure!(
        api.oldest(&names[0])? == Some(1),
        "{} lost events: history.max_bytes_per_shard was reached; store fewer events",
        names[0]
    );
    ensure!(
        accounted_after > accounted_before,
        "/stats history.bytes did not grow ({accounted_before} → {accounted_after})"
    );
    Ok(Memory {
        events,
        channels,
        data_bytes: plan.payload_bytes,
        rss_before_kib,
        rss_after_kib,
        accounted_before,
        accounted_after,
        store_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_carries_its_sequence() {
        let d = data(300, 64);
        assert_eq!(d.len(), 64);
        assert_eq!(seq_of(&d), Some(300));
        assert_eq!(data(7, 8).len(), 16);
    }

    #[test]
    fn configs_differ_only_by_the_rule() {
        let (on, off) = (config(true), config(false));
        assert!(on.starts_with(&off) && on.contains("[[apps.history]]"));
        assert!(!off.contains("history"));
    }

    #[test]
    fn memory_per_thousand() {
        let m = Memory {
            events: 100_000,
            rss_before_kib: 10_000,
            rss_after_kib: 30_000,
            accounted_before: 0,
            accounted_after: 20_480_000,
            ..Memory::default()
        };
        assert_eq!(m.rss_kib_per_1000(), 200.0);
        assert_eq!(m.accounted_kib_per_1000(), 200.0);
    }
}
