//! The sampler: once a second, on shard 0, this node's figures from every shard, turned into
//! rates and interval percentiles, pushed into the [`History`], gossiped to the other nodes
//! (a cluster), and published as one immutable [`Board`] that every handler reads.

use super::history::{History, Point};
use super::Dashboard;
use crate::app::AppIdx;
use crate::shard::Shard;
use crate::stats::Snapshot;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TICK: Duration = Duration::from_secs(1);

/// What the handlers serve, made once a second.
pub struct Board {
    /// Counts the boards made (a stream sends each once).
    pub seq: u64,
    /// `GET /admin/api/overview`, encoded.
    pub overview: Vec<u8>,
    pub seconds: Vec<Point>,
    pub minutes: Vec<Point>,
}

/// One node as the overview lists it.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct NodeFigures {
    pub id: String,
    #[serde(rename = "self")]
    pub is_self: bool,
    pub state: String,
    pub address: String,
    pub version: String,
    pub uptime_secs: u64,
    pub shards: usize,
    pub connections: u64,
    pub channels: u64,
    pub messages_in_per_sec: f64,
    pub messages_out_per_sec: f64,
    pub cpu_percent: f64,
    pub rss_bytes: u64,
}

#[derive(Serialize, Debug, Default)]
struct Totals {
    connections: u64,
    channels: u64,
    messages_in_per_sec: f64,
    messages_out_per_sec: f64,
}

#[derive(Serialize, Debug)]
struct AppFigures {
    id: String,
    key: String,
    connections: u64,
    channels: u64,
    subscriptions: u64,
    presence_channels: u64,
    presence_members: u64,
    messages_in_per_sec: f64,
    messages_out_per_sec: f64,
    /// Client events since start (they are part of `messages_in`).
    client_events: u64,
}

#[derive(Serialize, Debug)]
struct Latency {
    p50: f64,
    p99: f64,
    p999: f64,
}

#[derive(Serialize, Debug)]
struct Overview<'a> {
    node: &'a str,
    cluster: bool,
    nodes: Vec<NodeFigures>,
    totals: Totals,
    apps: Vec<AppFigures>,
    webhooks: crate::webhook::WebhookStats,
    latency_ms: Latency,
    /// Slow readers cut with 4100 on this node since start.
    slow_consumers_cut: u64,
    /// Connections this node closed since start, by close code ("other" for the rest).
    closes_by_code: std::collections::BTreeMap<String, u64>,
    time_ms: u64,
}

/// What the sampler remembers between ticks.
struct Previous {
    at: Instant,
    snap: Snapshot,
    published_by_app: HashMap<AppIdx, u64>,
    delivered_by_app: HashMap<AppIdx, u64>,
    cpu_ticks: u64,
}

/// Runs on shard 0 for the life of the process.
pub async fn run(shard: Rc<Shard>, dash: Arc<Dashboard>) {
    let mut history = History::new();
    let mut prev: Option<Previous> = None;
    loop {
        glommio::timer::sleep(TICK).await;
        if let Some(p) = sample(&shard, &dash, &mut history, prev.take()).await {
            prev = Some(p);
        }
    }
}

async fn sample(
    shard: &Rc<Shard>,
    dash: &Dashboard,
    history: &mut History,
    prev: Option<Previous>,
) -> Option<Previous> {
    let snap = shard.node_stats().await.ok()?;
    let by_app = shard.node_app_figures().await.ok()?;
    let now = Instant::now();
    let time_ms = crate::stats::unix_ms();
    let cpu_ticks = proc_cpu_ticks();
    let secs = prev
        .as_ref()
        .map_or(1.0, |p| now.duration_since(p.at).as_secs_f64().max(0.001));
    let rate = |cur: u64, old: u64| cur.saturating_sub(old) as f64 / secs;
    let (messages_in, messages_out) = match &prev {
        Some(p) => (
            rate(snap.published, p.snap.published),
            rate(snap.delivered, p.snap.delivered),
        ),
        None => (0.0, 0.0),
    };
    let interval = interval_histogram(&snap.publish_to_write_us, prev.as_ref());
    let ms = |q: f64| {
        if interval.is_empty() {
            0.0
        } else {
            interval.value_at_quantile(q) as f64 / 1000.0
        }
    };
    let latency = Latency {
        p50: ms(0.5),
        p99: ms(0.99),
        p999: ms(0.999),
    };
    let cpu_percent = prev.as_ref().map_or(0.0, |p| {
        cpu_ticks.saturating_sub(p.cpu_ticks) as f64 / ticks_per_sec() / secs * 100.0
    });
    let apps = shard.apps();
    let mut published_by_app = HashMap::new();
    let mut delivered_by_app = HashMap::new();
    let app_figures: Vec<AppFigures> = apps
        .list
        .iter()
        .filter(|a| !a.removed)
        .map(|a| {
            let published = a.counters.published.load(Relaxed);
            published_by_app.insert(a.idx, published);
            let f = by_app.get(&a.idx).copied().unwrap_or_default();
            delivered_by_app.insert(a.idx, f.delivered);
            let old = |m: fn(&Previous) -> &HashMap<AppIdx, u64>| {
                prev.as_ref().and_then(|p| m(p).get(&a.idx).copied())
            };
            let old_in = old(|p| &p.published_by_app);
            let old_out = old(|p| &p.delivered_by_app);
            AppFigures {
                id: a.id.clone(),
                key: a.key.clone(),
                connections: a.counters.connections.load(Relaxed) as u64,
                channels: a.counters.channels.load(Relaxed) as u64,
                subscriptions: f.subscriptions,
                presence_channels: f.presence_channels,
                presence_members: f.members,
                messages_in_per_sec: round2(old_in.map_or(0.0, |o| rate(published, o))),
                messages_out_per_sec: round2(old_out.map_or(0.0, |o| rate(f.delivered, o))),
                client_events: a.counters.client_events.load(Relaxed),
            }
        })
        .collect();
    drop(apps);
    let mine = NodeFigures {
        id: String::new(),
        is_self: true,
        state: "ready".into(),
        address: String::new(),
        version: crate::VERSION.to_owned(),
        uptime_secs: dash.started.elapsed().as_secs(),
        shards: shard.nr_shards,
        connections: snap.connections,
        channels: snap.channels,
        messages_in_per_sec: round2(messages_in),
        messages_out_per_sec: round2(messages_out),
        cpu_percent: round2(cpu_percent),
        rss_bytes: proc_rss_bytes(),
    };
    let (node, nodes) = nodes(shard, &mine);
    let totals = nodes.iter().fold(Totals::default(), |mut t, n| {
        t.connections += n.connections;
        t.channels += n.channels;
        t.messages_in_per_sec = round2(t.messages_in_per_sec + n.messages_in_per_sec);
        t.messages_out_per_sec = round2(t.messages_out_per_sec + n.messages_out_per_sec);
        t
    });
    let overview = Overview {
        node: &node,
        cluster: shard.clustered,
        nodes,
        totals,
        apps: app_figures,
        webhooks: shard.webhooks.stats(),
        latency_ms: latency,
        slow_consumers_cut: snap.slow_consumers,
        closes_by_code: crate::stats::closes()
            .into_iter()
            .map(|(c, n)| {
                (
                    if c == 0 {
                        "other".into()
                    } else {
                        c.to_string()
                    },
                    n,
                )
            })
            .collect(),
        time_ms,
    };
    let encoded = simd_json::to_vec(&overview).ok()?;
    history.push(Point {
        t: time_ms,
        connections: snap.connections,
        channels: snap.channels,
        messages_in: round2(messages_in),
        messages_out: round2(messages_out),
        p50_ms: overview.latency_ms.p50,
        p99_ms: overview.latency_ms.p99,
    });
    dash.set_board(Board {
        seq: dash.board().map_or(0, |b| b.seq + 1),
        overview: encoded,
        seconds: history.seconds(),
        minutes: history.minutes(),
    });
    Some(Previous {
        at: now,
        snap,
        published_by_app,
        delivered_by_app,
        cpu_ticks,
    })
}

/// This node's id and every node's figures: this node's from `mine`, the others' from the
/// summaries they gossip (a cluster). Gossips `mine` for the others.
fn nodes(shard: &Shard, mine: &NodeFigures) -> (String, Vec<NodeFigures>) {
    let gateway = shard.gateway.borrow().clone();
    let Some(gw) = gateway else {
        let me = NodeFigures {
            id: "single".into(),
            ..mine.clone()
        };
        return ("single".into(), vec![me]);
    };
    let entries = gw.nodes();
    if let Ok(json) = serde_json_compact(mine) {
        gw.publish_summary(json);
    }
    let mut me_id = String::new();
    let nodes = entries
        .into_iter()
        .map(|e| {
            if e.is_self {
                me_id = e.id.clone();
                return NodeFigures {
                    id: e.id,
                    state: e.state.into(),
                    address: e.address,
                    ..mine.clone()
                };
            }
            let theirs: NodeFigures = e
                .summary
                .as_deref()
                .and_then(|s| simd_json::from_slice(&mut s.as_bytes().to_vec()).ok())
                .unwrap_or_default();
            NodeFigures {
                id: e.id,
                is_self: false,
                state: e.state.into(),
                address: e.address,
                ..theirs
            }
        })
        .collect();
    (me_id, nodes)
}

fn serde_json_compact(n: &NodeFigures) -> Result<String, simd_json::Error> {
    simd_json::to_string(n)
}

/// The histogram of the last interval: the cumulative one minus the previous tick's.
fn interval_histogram(cur: &Histogram<u64>, prev: Option<&Previous>) -> Histogram<u64> {
    let mut h = cur.clone();
    if let Some(p) = prev {
        if h.subtract(&p.snap.publish_to_write_us).is_err() {
            // The shards' histograms never lose counts; if they did, show the total.
            return cur.clone();
        }
    }
    h
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// This process's user + system CPU time in clock ticks (`/proc/self/stat`, fields 14 and
/// 15), 0 if unreadable.
fn proc_cpu_ticks() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0;
    };
    // The command name (field 2) may hold spaces; fields after its ')' are plain.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ')': field 3 is f[0], so utime (14) is f[11] and stime (15) f[12].
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    n(11) + n(12)
}

fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf reads a constant of the system; no memory is involved.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Resident memory (`/proc/self/statm`, field 2, in pages).
fn proc_rss_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    // SAFETY: as above.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page.max(4096) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_figures_are_read() {
        assert!(proc_rss_bytes() > 1 << 20);
        let a = proc_cpu_ticks();
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(50) {
            std::hint::black_box(0u64);
        }
        assert!(proc_cpu_ticks() >= a);
        assert!(ticks_per_sec() >= 100.0);
    }
}
