//! `fanout`: C channels × S subscribers, events published through the HTTP API, every
//! delivery timed and sequence-checked.
//!
//! Phases: connect and subscribe everyone (publishing before every subscription has
//! succeeded would count as loss) → publish for the duration or count → drain until every
//! expected delivery arrived or the drain timeout passed → close and report.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::clock::now_ns;
use crate::http_publisher::Publisher;
use crate::limits;
use crate::net::Endpoint;
use crate::options::{self, split, Bound, Common};
use crate::payload;
use crate::progress::Progress;
use crate::report::{kib_per_conn, per_sec, us_per, LatencyUs, LossTally, Report};
use crate::run::{self, Shared};
use crate::subscribers::{self, EVENT_NAME};
use crate::target::Target;
use crate::usage::{self, CpuWindow};

/// Options for [`run()`].
#[derive(Debug, Clone)]
pub struct FanoutOpts {
    pub common: Common,
    pub channels: u64,
    /// subscribers per channel; connections = channels × subscribers
    pub subscribers: u64,
    /// publishes per second over all channels; `None` publishes flat out
    pub rate: Option<f64>,
    /// stops publishing after this long or this many publishes
    pub bound: Bound,
    /// size of each event's `data` string
    pub payload_bytes: usize,
    /// HTTP keep-alive connections publishing in parallel. Up to the channel count each owns
    /// a share of the channels; beyond it, publisher `p` publishes to channel `p % C` as
    /// stream `p / C` there, each stream numbered and checked on its own (order holds within
    /// a stream, not between the publishers of one channel). At most [`MAX_PUBLISHERS`].
    pub publishers: usize,
    /// how long to wait for stragglers after the last publish
    pub drain_timeout: Duration,
    /// channel names are `{channel_prefix}{random tag}-{i}` (default `lt-fanout-`; e.g.
    /// `bench/` for URL-shaped names)
    pub channel_prefix: String,
    /// the tag in the channel names (default: random per run); a harness fixes it to
    /// choose which cluster node owns the channels
    pub channel_tag: Option<u32>,
}

impl FanoutOpts {
    pub fn new(common: Common, channels: u64, subscribers: u64, bound: Bound) -> Self {
        Self {
            common,
            channels,
            subscribers,
            rate: None,
            bound,
            payload_bytes: 64,
            publishers: 1,
            drain_timeout: Duration::from_secs(5),
            channel_prefix: "lt-fanout-".into(),
            channel_tag: None,
        }
    }
}

/// Publisher threads one run may start.
pub const MAX_PUBLISHERS: usize = 256;

/// Runs the fanout scenario to completion.
pub fn run(opts: &FanoutOpts) -> anyhow::Result<Report> {
    let c = &opts.common;
    if opts.channels == 0 || opts.subscribers == 0 {
        bail!("need at least one channel and one subscriber per channel");
    }
    if opts.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        bail!("--rate must be a positive number of publishes per second");
    }
    let conns = opts.channels * opts.subscribers;
    if opts.publishers > MAX_PUBLISHERS {
        bail!("--publishers is at most {MAX_PUBLISHERS}");
    }
    let publishers = opts.publishers.max(1);
    limits::ensure_fds(conns + publishers as u64)?;
    let sources = limits::plan_sources(c.target.addr.ip(), conns, c.source_addrs)?;
    let endpoint = Endpoint::new(&c.target, sources)
        .with_extra_ports(&c.extra_ports)
        .with_transport(c.transport, &c.http_path);
    // what the subscribers cost the server once set up, as `idle` measures it
    let rss_before = c
        .server_pid
        .map(usage::process_rss_kib)
        .transpose()
        .context("reading server rss")?;
    let client_rss_before =
        usage::process_rss_kib(std::process::id()).context("reading own rss")?;

    let tag = opts.channel_tag.unwrap_or_else(|| fastrand::u32(..));
    let names: Arc<Vec<String>> = Arc::new(
        (0..opts.channels)
            .map(|i| format!("{}{tag:08x}-{i}", opts.channel_prefix))
            .collect(),
    );
    let plan: Vec<u32> = (0..conns).map(|i| (i % opts.channels) as u32).collect();
    let servers = if c.extra_ports.is_empty() {
        Vec::new()
    } else {
        options::spread(conns, opts.channels, c.servers())
    };
    let shared = Arc::new(Shared::default());
    let workers = subscribers::spawn(
        c.threads,
        &endpoint,
        names.clone(),
        &plan,
        &servers,
        &shared,
        c.connect_concurrency,
    );
    if let Err(e) = run::wait_ready(&shared, conns, c.setup_timeout, c.progress) {
        let _ = run::join_all(workers);
        return Err(e);
    }
    let rss_after = c
        .server_pid
        .map(usage::process_rss_kib)
        .transpose()
        .context("reading server rss")?;
    let client_rss_after = usage::process_rss_kib(std::process::id()).context("reading own rss")?;

    let cpu = CpuWindow::start(c.server_pid).context("reading cpu time")?;
    let started = Instant::now();
    let pubs = spawn_publishers(opts, publishers, &names, &shared, started);
    let published_per_channel = watch_publishing(opts, &shared, started, pubs);
    let published_per_channel = match published_per_channel {
        Ok(p) => p,
        Err(e) => {
            shared.stop.store(true, Relaxed);
            let _ = run::join_all(workers);
            return Err(e);
        }
    };
    let published: u64 = published_per_channel.iter().flatten().sum();
    let ended = run::wait_drained(&shared, published * opts.subscribers, opts.drain_timeout);
    let (client_cpu_s, server_cpu_s) = cpu.stop().context("reading cpu time")?;
    shared.stop.store(true, Relaxed);
    let all = subscribers::merge(run::join_all(workers)?);

    let mut tally = LossTally::new(names.len());
    for (ch, seq) in &all.streams {
        let ch = *ch as usize;
        let sent = published_per_channel[ch].first().copied().unwrap_or(0);
        tally.add(ch, seq.lost(sent), seq.out_of_order());
    }
    // Streams ≥ 1 (publishers sharing a channel): a subscriber that received nothing of a
    // stream has no check for it, so their loss is counted per stream against every
    // subscriber of the channel.
    let mut received = vec![Vec::<u64>::new(); names.len()];
    for (ch, k, seq) in &all.extra {
        let (ch, k) = (*ch as usize, *k as usize);
        if received[ch].len() <= k {
            received[ch].resize(k + 1, 0);
        }
        received[ch][k] += seq.received();
        tally.add(ch, 0, seq.out_of_order());
    }
    for (ch, sent) in published_per_channel.iter().enumerate() {
        for (k, n) in sent.iter().enumerate().skip(1) {
            let got = received[ch].get(k).copied().unwrap_or(0);
            tally.add(ch, (n * opts.subscribers).saturating_sub(got), 0);
        }
    }
    let (lost, out_of_order, lossy_channels) = tally.finish(&names);
    let deliveries = all.latency.len();
    let duration_s = ended.duration_since(started).as_secs_f64();
    Ok(Report {
        scenario: "fanout".into(),
        connections: conns,
        channels: opts.channels,
        published,
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
        server_rss_kib_per_conn: rss_before
            .zip(rss_after)
            .and_then(|(b, a)| kib_per_conn(b, a, conns)),
        client_rss_kib_per_conn: kib_per_conn(client_rss_before, client_rss_after, conns),
        connects_per_sec: None,
        duration_s,
    })
}

type PublisherHandle = thread::JoinHandle<anyhow::Result<Vec<(usize, u64)>>>;

/// What publisher `p` of `publishers` sends to: its channels and its stream on them. With no
/// more publishers than channels, `p` owns channels `p, p + P, p + 2P, …` (stream 0);
/// with more, channel `p % C` as stream `p / C`.
pub fn assignment(p: usize, publishers: usize, channels: usize) -> (Vec<usize>, u32) {
    if publishers <= channels {
        ((p..channels).step_by(publishers).collect(), 0)
    } else {
        (vec![p % channels], (p / channels) as u32)
    }
}

/// Publisher `p` sends to its [`assignment`] round-robin.
fn spawn_publishers(
    opts: &FanoutOpts,
    publishers: usize,
    names: &Arc<Vec<String>>,
    shared: &Arc<Shared>,
    started: Instant,
) -> Vec<PublisherHandle> {
    let counts = opts.bound.count().map(|n| split(n, publishers));
    (0..publishers)
        .map(|p| {
            let (channels, stream) = assignment(p, publishers, names.len());
            let job = PublishJob {
                target: opts.common.target.clone(),
                channels,
                stream,
                names: names.clone(),
                shared: shared.clone(),
                rate: opts.rate.map(|r| r / publishers as f64),
                count: counts.as_ref().map(|c| c[p]),
                deadline: opts.bound.duration().map(|d| started + d),
                payload_bytes: opts.payload_bytes,
            };
            thread::Builder::new()
                .name(format!("publisher-{p}"))
                .spawn(move || job.run())
                .expect("spawning a thread")
        })
        .collect()
}

/// Shows progress until every publisher finished; returns events published per channel and
/// stream (`[channel][stream]`).
fn watch_publishing(
    opts: &FanoutOpts,
    shared: &Shared,
    started: Instant,
    pubs: Vec<PublisherHandle>,
) -> anyhow::Result<Vec<Vec<u64>>> {
    let (len, what) = match (opts.bound.count(), opts.bound.duration()) {
        (Some(n), _) => (n, "publishing"),
        (None, Some(d)) => (d.as_secs().max(1), "publish (s)"),
        (None, None) => unreachable!("Bound is never unbounded"),
    };
    let bar = Progress::new(opts.common.progress, len, what);
    while !pubs.iter().all(|h| h.is_finished()) {
        let pos = match opts.bound.count() {
            Some(_) => shared.published.load(Relaxed),
            None => started.elapsed().as_secs(),
        };
        bar.set(pos);
        thread::sleep(Duration::from_millis(20));
    }
    bar.finish();
    let channels = opts.channels as usize;
    let mut per_channel = vec![Vec::new(); channels];
    for (p, owned) in run::join_all(pubs)?.into_iter().enumerate() {
        let (_, stream) = assignment(p, opts.publishers.max(1), channels);
        for (ch, n) in owned {
            let row: &mut Vec<u64> = &mut per_channel[ch];
            if row.len() <= stream as usize {
                row.resize(stream as usize + 1, 0);
            }
            row[stream as usize] = n;
        }
    }
    Ok(per_channel)
}

/// One publisher thread's work.
struct PublishJob {
    target: Target,
    channels: Vec<usize>,
    /// this publisher's stream number on its channels
    stream: u32,
    names: Arc<Vec<String>>,
    shared: Arc<Shared>,
    /// publishes per second for this thread
    rate: Option<f64>,
    count: Option<u64>,
    deadline: Option<Instant>,
    payload_bytes: usize,
}

impl PublishJob {
    /// Publishes until the bound is reached; returns (channel, events sent) pairs.
    fn run(self) -> anyhow::Result<Vec<(usize, u64)>> {
        let mut publisher = Publisher::new(&self.target);
        let mut sent = vec![0u64; self.channels.len()];
        let start = Instant::now();
        let mut i: u64 = 0;
        loop {
            if self.count.is_some_and(|n| i >= n) || self.shared.stopped() {
                break;
            }
            if let Some(rate) = self.rate {
                // fixed schedule: event i is due at start + i/rate, so a slow response
                // is caught up rather than lowering the rate
                let due = start + Duration::from_secs_f64(i as f64 / rate);
                let now = Instant::now();
                if due > now {
                    thread::sleep(due - now);
                }
            }
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            let slot = (i % self.channels.len() as u64) as usize;
            let channel = &self.names[self.channels[slot]];
            let data =
                payload::encode_stream(self.stream, sent[slot], now_ns(), self.payload_bytes);
            if let Err(e) = publisher.publish(channel, EVENT_NAME, &data) {
                // end the whole run: the other publishers and the receivers stop too
                self.shared.stop.store(true, Relaxed);
                return Err(e).with_context(|| format!("publishing to {channel}"));
            }
            sent[slot] += 1;
            i += 1;
            self.shared.published.fetch_add(1, Relaxed);
        }
        Ok(self.channels.iter().copied().zip(sent).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::assignment;

    #[test]
    fn publishers_up_to_the_channel_count_share_the_channels() {
        assert_eq!(assignment(0, 2, 5), (vec![0, 2, 4], 0));
        assert_eq!(assignment(1, 2, 5), (vec![1, 3], 0));
        assert_eq!(assignment(0, 1, 1), (vec![0], 0));
    }

    #[test]
    fn more_publishers_than_channels_get_streams_of_their_own() {
        let got: Vec<_> = (0..5).map(|p| assignment(p, 5, 2)).collect();
        assert_eq!(
            got,
            vec![
                (vec![0], 0),
                (vec![1], 0),
                (vec![0], 1),
                (vec![1], 1),
                (vec![0], 2)
            ]
        );
        // 16 publishers on one channel: streams 0..16, all on channel 0
        assert!((0..16).all(|p| assignment(p, 16, 1) == (vec![0], p as u32)));
    }
}
