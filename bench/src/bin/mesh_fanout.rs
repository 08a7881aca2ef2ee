//! `mesh_fanout`: what does the in-process fanout path cost, with no sockets?
//!
//! One glommio executor per core, joined in a full [`MeshBuilder`] mesh like Raptor's shards.
//! Shard 0 encodes a 64-byte-payload channel event once per publish (as the edge does) and
//! routes the same [`Bytes`] through the mesh to every other shard; every shard, the publisher
//! included, pushes a refcount clone into each of its S local subscriber queues
//! (`VecDeque<Bytes>`), drained every [`DRAIN_EVERY`] frames the way a flusher empties outboxes.
//! Reported: deliveries/s, wall ns and CPU ns per delivery.
//!
//! A second case measures one cross-shard hop: shard 0 sends a timestamp to shard 1, which
//! sends it straight back; the round trip goes into an HDR histogram (p50/p99/p99.9), once with
//! unpinned executors that park (Raptor on a machine with fewer cores than shards) and once
//! pinned with `spin_before_park` (the only way glommio spins).
//!
//! Every case is bounded by `--secs` (at most 5). Output is a markdown table on stdout.

use argh::FromArgs;
use bytes::Bytes;
use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{LocalExecutorPoolBuilder, PoolPlacement};
use hdrhistogram::Histogram;
use raptor_engine::protocol::server::channel_event;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Frames a subscriber queue holds before the simulated flusher empties it.
const DRAIN_EVERY: usize = 64;
/// Ring capacity between two shards (Raptor's default `limits.mesh_queue_capacity`).
const RING: usize = 1024;

/// Multi-core in-process fanout and cross-shard hop latency over a glommio mesh.
#[derive(FromArgs)]
struct Args {
    /// seconds per case (default 2, at most 5)
    #[argh(option, default = "2.0")]
    secs: f64,
    /// executors (default: one per core)
    #[argh(option)]
    shards: Option<usize>,
    /// subscriber queues per shard; repeat for several cases (default 1, 100, 1000)
    #[argh(option)]
    subs: Vec<usize>,
}

#[derive(Debug)]
enum Msg {
    Frame(Bytes),
    Done,
    Ping(Instant),
}

/// One shard's share of a fanout case.
struct ShardResult {
    deliveries: u64,
    first: Option<Instant>,
    last: Instant,
}

/// The simulated subscribers of one shard.
struct Subscribers {
    queues: Vec<VecDeque<Bytes>>,
    pending: usize,
    deliveries: u64,
}

impl Subscribers {
    fn new(n: usize) -> Self {
        Self {
            queues: (0..n)
                .map(|_| VecDeque::with_capacity(DRAIN_EVERY))
                .collect(),
            pending: 0,
            deliveries: 0,
        }
    }

    fn deliver(&mut self, frame: &Bytes) {
        for q in &mut self.queues {
            q.push_back(frame.clone());
        }
        self.deliveries += self.queues.len() as u64;
        self.pending += 1;
        if self.pending == DRAIN_EVERY {
            self.drain();
        }
    }

    /// What the flusher does after a write: the frames leave the queues (refcounts drop).
    fn drain(&mut self) {
        for q in &mut self.queues {
            q.clear();
        }
        self.pending = 0;
    }
}

fn payload() -> String {
    let mut s = String::from(r#"{"text":""#);
    s.push_str(&"x".repeat(64 - 12));
    s.push_str(r#""}"#);
    s
}

fn fanout_case(shards: usize, subs: usize, secs: f64) -> anyhow::Result<(u64, Duration, f64)> {
    let mesh = MeshBuilder::<Msg, _>::full(shards, RING);
    let run_for = Duration::from_secs_f64(secs);
    let cpu0 = raptor_loadtest::usage::self_cpu();
    let handles = LocalExecutorPoolBuilder::new(PoolPlacement::Unbound(shards))
        .io_memory(64 << 10)
        .on_all_shards(move || {
            let mesh = mesh.clone();
            async move {
                let (tx, mut rx) = mesh.join().await.expect("mesh join");
                let me = tx.peer_id();
                let mut local = Subscribers::new(subs);
                let mut first = None;
                if me == 0 {
                    let data = payload();
                    let start = Instant::now();
                    first = Some(start);
                    let mut n = 0u64;
                    loop {
                        // Encode once per publish, like the HTTP edge.
                        let frame = channel_event("bench", "mesh-fanout", &data, None).into_ws();
                        for dst in 1..shards {
                            if let Err(glommio::GlommioError::WouldBlock(
                                glommio::ResourceType::Channel(m),
                            )) = tx.try_send_to(dst, Msg::Frame(frame.clone()))
                            {
                                tx.send_to(dst, m).await.expect("peer alive");
                            }
                        }
                        local.deliver(&frame);
                        n += 1;
                        if n.is_multiple_of(64) {
                            if start.elapsed() >= run_for {
                                break;
                            }
                            glommio::yield_if_needed().await;
                        }
                    }
                    for dst in 1..shards {
                        tx.send_to(dst, Msg::Done).await.expect("peer alive");
                    }
                } else {
                    let streams = rx.streams();
                    let (_, from_publisher) = streams
                        .into_iter()
                        .find(|(src, _)| *src == 0)
                        .expect("stream from shard 0");
                    while let Some(m) = from_publisher.recv().await {
                        match m {
                            Msg::Frame(f) => {
                                first.get_or_insert_with(Instant::now);
                                local.deliver(&f);
                            }
                            Msg::Done => break,
                            Msg::Ping(_) => unreachable!("no pings in a fanout case"),
                        }
                    }
                }
                local.drain();
                ShardResult {
                    deliveries: local.deliveries,
                    first,
                    last: Instant::now(),
                }
            }
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut results = Vec::new();
    for r in handles.join_all() {
        results.push(r.map_err(|e| anyhow::anyhow!("{e}"))?);
    }
    let cpu = (raptor_loadtest::usage::self_cpu() - cpu0).as_secs_f64();
    let deliveries = results.iter().map(|r| r.deliveries).sum();
    let start = results
        .iter()
        .filter_map(|r| r.first)
        .min()
        .expect("publisher ran");
    let end = results.iter().map(|r| r.last).max().expect("shards ran");
    Ok((deliveries, end - start, cpu))
}

fn ping_pong_case(pinned: bool, secs: f64) -> anyhow::Result<Histogram<u64>> {
    let mesh = MeshBuilder::<Msg, _>::full(2, RING);
    let run_for = Duration::from_secs_f64(secs);
    let builder = if pinned {
        LocalExecutorPoolBuilder::new(PoolPlacement::MaxSpread(2, None))
            .spin_before_park(Duration::from_micros(50))
    } else {
        LocalExecutorPoolBuilder::new(PoolPlacement::Unbound(2))
    };
    let handles = builder
        .io_memory(64 << 10)
        .on_all_shards(move || {
            let mesh = mesh.clone();
            async move {
                let (tx, mut rx) = mesh.join().await.expect("mesh join");
                let me = tx.peer_id();
                let other = 1 - me;
                let (_, inbox) = rx
                    .streams()
                    .into_iter()
                    .find(|(src, _)| *src == other)
                    .expect("stream from the other shard");
                let mut hist = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3)
                    .expect("static bounds are valid");
                if me == 0 {
                    let start = Instant::now();
                    while start.elapsed() < run_for {
                        tx.send_to(1, Msg::Ping(Instant::now()))
                            .await
                            .expect("peer alive");
                        match inbox.recv().await {
                            Some(Msg::Ping(t)) => {
                                let _ = hist.record(t.elapsed().as_nanos() as u64);
                            }
                            other => unreachable!("expected the ping back, got {other:?}"),
                        }
                    }
                    tx.send_to(1, Msg::Done).await.expect("peer alive");
                } else {
                    while let Some(m) = inbox.recv().await {
                        match m {
                            Msg::Ping(t) => tx.send_to(0, Msg::Ping(t)).await.expect("peer alive"),
                            Msg::Done => break,
                            Msg::Frame(_) => unreachable!("no frames in a ping-pong case"),
                        }
                    }
                }
                hist
            }
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut merged = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3)?;
    for h in handles.join_all() {
        merged.add(h.map_err(|e| anyhow::anyhow!("{e}"))?)?;
    }
    Ok(merged)
}

fn main() -> anyhow::Result<()> {
    let args: Args = raptor_loadtest::cli::args_from_env();
    if !(args.secs.is_finite() && args.secs > 0.0 && args.secs <= 5.0) {
        anyhow::bail!("--secs must be in (0, 5]");
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let shards = args.shards.unwrap_or(cores).max(2);
    let subs = if args.subs.is_empty() {
        vec![1, 100, 1000]
    } else {
        args.subs.clone()
    };

    println!("### In-process fanout over the mesh ({shards} shards, {cores} cores, 64-byte payload, {} s per case)\n", args.secs);
    println!("| subscribers per shard | deliveries | deliveries/s | wall ns/delivery | CPU ns/delivery | CPU cores used |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for s in subs {
        let (deliveries, wall, cpu) = fanout_case(shards, s, args.secs)?;
        let w = wall.as_secs_f64();
        println!(
            "| {s} | {deliveries} | {:.0} | {:.1} | {:.1} | {:.2} |",
            deliveries as f64 / w,
            w * 1e9 / deliveries as f64,
            cpu * 1e9 / deliveries as f64,
            cpu / w
        );
    }

    println!(
        "\n### One cross-shard hop: ping-pong round trip (2 shards, {} s per case)\n",
        args.secs
    );
    println!("| executors | round trips | p50 µs | p99 µs | p99.9 µs | max µs |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, pinned) in [
        ("unpinned, park when idle", false),
        ("pinned, spin_before_park 50 µs", true),
    ] {
        let h = ping_pong_case(pinned, args.secs)?;
        let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "| {name} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            h.len(),
            us(0.5),
            us(0.99),
            us(0.999),
            h.max() as f64 / 1000.0
        );
    }
    Ok(())
}
