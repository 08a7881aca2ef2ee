//! `idle`: N connections, each subscribed to a public channel, held open for a while.
//!
//! Answers "how fast does the server accept and subscribe connections" and "what does
//! an idle subscribed connection cost it" (RSS growth / N, from `/proc/PID/status`).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::limits;
use crate::net::Endpoint;
use crate::options::Common;
use crate::progress::Progress;
use crate::report::{kib_per_conn, per_sec, LatencyUs, Report};
use crate::run::{self, Shared};
use crate::subscribers;
use crate::usage::{self, CpuWindow};

/// Options for [`run()`].
#[derive(Debug, Clone)]
pub struct IdleOpts {
    pub common: Common,
    pub connections: u64,
    /// connections are spread over this many public channels
    pub channels: u64,
    /// how long to hold the connections once all are subscribed (the run's bound)
    pub hold: Duration,
}

/// Runs the idle scenario to completion.
pub fn run(opts: &IdleOpts) -> anyhow::Result<Report> {
    let c = &opts.common;
    if opts.connections == 0 || opts.channels == 0 {
        bail!("need at least one connection and one channel");
    }
    if opts.hold.is_zero() || opts.hold > crate::options::MAX_DURATION {
        bail!("hold time must be positive and bounded");
    }
    limits::ensure_fds(opts.connections)?;
    let sources = limits::plan_sources(c.target.addr.ip(), opts.connections, c.source_addrs)?;
    let endpoint = Endpoint::new(&c.target, sources).with_transport(c.transport, &c.http_path);
    let rss_before = c
        .server_pid
        .map(usage::process_rss_kib)
        .transpose()
        .context("reading server rss")?;
    let client_rss_before =
        usage::process_rss_kib(std::process::id()).context("reading own rss")?;

    let tag = fastrand::u32(..);
    let names: Arc<Vec<String>> = Arc::new(
        (0..opts.channels)
            .map(|i| format!("lt-idle-{tag:08x}-{i}"))
            .collect(),
    );
    let plan: Vec<u32> = (0..opts.connections)
        .map(|i| (i % opts.channels) as u32)
        .collect();
    let shared = Arc::new(Shared::default());
    let cpu = CpuWindow::start(c.server_pid).context("reading cpu time")?;
    let workers = subscribers::spawn(
        c.threads,
        &endpoint,
        names,
        &plan,
        &[],
        &shared,
        c.connect_concurrency,
    );
    let connect_time = match run::wait_ready(&shared, opts.connections, c.setup_timeout, c.progress)
    {
        Ok(t) => t,
        Err(e) => {
            let _ = run::join_all(workers);
            return Err(e);
        }
    };

    let held_from = Instant::now();
    let bar = Progress::new(c.progress, opts.hold.as_secs().max(1), "hold (s)");
    while held_from.elapsed() < opts.hold {
        bar.set(held_from.elapsed().as_secs());
        thread::sleep(Duration::from_millis(50).min(opts.hold.saturating_sub(held_from.elapsed())));
    }
    bar.finish();
    let duration_s = held_from.elapsed().as_secs_f64();
    let rss_after = c
        .server_pid
        .map(usage::process_rss_kib)
        .transpose()
        .context("reading server rss")?;
    let client_rss_after = usage::process_rss_kib(std::process::id()).context("reading own rss")?;
    let (client_cpu_s, server_cpu_s) = cpu.stop().context("reading cpu time")?;
    shared.stop.store(true, Relaxed);
    let all = subscribers::merge(run::join_all(workers)?);

    Ok(Report {
        scenario: "idle".into(),
        connections: opts.connections,
        channels: opts.channels,
        published: 0,
        deliveries: 0,
        deliveries_per_sec: 0.0,
        lost: 0,
        out_of_order: all.streams.iter().map(|(_, s)| s.out_of_order()).sum(),
        errors: shared.errors.load(Relaxed),
        first_error: shared.first_error(),
        lossy_channels: Vec::new(),
        latency_of: "connect_to_subscribed".into(),
        latency_us: LatencyUs::from_histogram(&all.setup),
        client_cpu_s,
        server_cpu_s,
        client_cpu_us_per_delivery: None,
        server_cpu_us_per_delivery: None,
        server_rss_kib_per_conn: rss_before
            .zip(rss_after)
            .and_then(|(b, a)| kib_per_conn(b, a, opts.connections)),
        client_rss_kib_per_conn: kib_per_conn(
            client_rss_before,
            client_rss_after,
            opts.connections,
        ),
        connects_per_sec: Some(per_sec(opts.connections, connect_time.as_secs_f64())),
        duration_s,
    })
}
