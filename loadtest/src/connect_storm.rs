//! `connect-storm`: open, handshake, subscribe, close, repeat — for a count or a duration.
//!
//! Keeps `connect_concurrency` connections in flight and measures completed
//! handshake+subscribe cycles per second and each cycle's latency. Connections close
//! with RST (see `net::dial::abort`), so a long storm does not run out of source ports.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;

use crate::clock::now_ns;
use crate::limits;
use crate::net::{Closed, ConnCtx, Endpoint, Handler, Net};
use crate::options::{split, Bound, Common};
use crate::progress::Progress;
use crate::pusher::{self, Incoming};
use crate::report::{new_histogram, per_sec, LatencyUs, Report};
use crate::run::{self, Shared};
use crate::usage::CpuWindow;

/// Options for [`run()`].
#[derive(Debug, Clone)]
pub struct ConnectStormOpts {
    pub common: Common,
    /// connections subscribe to one of this many public channels, round-robin
    pub channels: u64,
    /// stops opening connections after this long or this many
    pub bound: Bound,
    /// a cycle ends at the server's 101 (connect, upgrade, close: no Pusher frames at all),
    /// for servers that speak only the handshake, such as `raptor-bench`'s connection cost
    /// floor; `channels` is then unused
    pub until_upgrade: bool,
}

/// Runs the connect-storm scenario to completion.
pub fn run(opts: &ConnectStormOpts) -> anyhow::Result<Report> {
    let c = &opts.common;
    if opts.channels == 0 {
        bail!("need at least one channel");
    }
    let threads = c.threads.max(1);
    let in_flight = c.connect_concurrency.max(1) as u64;
    limits::ensure_fds(in_flight)?;
    let sources = limits::plan_sources(c.target.addr.ip(), in_flight, c.source_addrs)?;
    let endpoint = Endpoint::new(&c.target, sources);
    let tag = fastrand::u32(..);
    let names: Arc<Vec<String>> = Arc::new(
        (0..opts.channels)
            .map(|i| format!("lt-storm-{tag:08x}-{i}"))
            .collect(),
    );
    let shared = Arc::new(Shared::default());
    let counts = opts.bound.count().map(|n| split(n, threads));
    let per_thread = in_flight.div_ceil(threads as u64) as usize;

    let cpu = CpuWindow::start(c.server_pid).context("reading cpu time")?;
    let started = Instant::now();
    let deadline = opts.bound.duration().map(|d| started + d);
    let workers: Vec<_> = (0..threads)
        .map(|w| {
            let job = StormJob {
                endpoint: endpoint.clone(),
                names: names.clone(),
                shared: shared.clone(),
                budget: counts.as_ref().map(|n| n[w]),
                deadline,
                max_in_flight: per_thread,
                first_channel: w,
                until_upgrade: opts.until_upgrade,
                // a cycle that has not completed this long after the end is a failure
                give_up: deadline.unwrap_or(started) + c.setup_timeout,
            };
            thread::Builder::new()
                .name(format!("storm-{w}"))
                .spawn(move || job.run())
                .expect("spawning a thread")
        })
        .collect();

    let (len, what) = match (opts.bound.count(), opts.bound.duration()) {
        (Some(n), _) => (n, "connecting"),
        (None, Some(d)) => (d.as_secs().max(1), "storm (s)"),
        (None, None) => unreachable!("Bound is never unbounded"),
    };
    let bar = Progress::new(c.progress, len, what);
    while !workers.iter().all(|h| h.is_finished()) {
        bar.set(match opts.bound.count() {
            Some(_) => shared.published.load(Relaxed),
            None => started.elapsed().as_secs(),
        });
        thread::sleep(Duration::from_millis(20));
    }
    bar.finish();
    let outcomes = run::join_all(workers)?;
    let duration_s = started.elapsed().as_secs_f64();
    let (client_cpu_s, server_cpu_s) = cpu.stop().context("reading cpu time")?;
    let mut setup = new_histogram();
    for h in &outcomes {
        let _ = setup.add(h);
    }
    let completed = setup.len();
    Ok(Report {
        scenario: "connect-storm".into(),
        connections: completed,
        channels: opts.channels,
        published: 0,
        deliveries: 0,
        deliveries_per_sec: 0.0,
        lost: 0,
        out_of_order: 0,
        errors: shared.errors.load(Relaxed),
        first_error: shared.first_error(),
        lossy_channels: Vec::new(),
        latency_of: if opts.until_upgrade {
            "connect_to_upgraded"
        } else {
            "connect_to_subscribed"
        }
        .into(),
        latency_us: LatencyUs::from_histogram(&setup),
        client_cpu_s,
        server_cpu_s,
        client_cpu_us_per_delivery: None,
        server_cpu_us_per_delivery: None,
        server_rss_kib_per_conn: None,
        client_rss_kib_per_conn: None,
        connects_per_sec: Some(per_sec(completed, duration_s)),
        duration_s,
    })
}

/// A storm stops opening connections after this many failures: the server is down or
/// refusing, and hammering it further measures nothing.
const MAX_ERRORS: u64 = 100;

struct StormJob {
    endpoint: Endpoint,
    names: Arc<Vec<String>>,
    shared: Arc<Shared>,
    /// connections this thread opens; `None` when only the deadline bounds the run
    budget: Option<u64>,
    deadline: Option<Instant>,
    max_in_flight: usize,
    first_channel: usize,
    until_upgrade: bool,
    give_up: Instant,
}

/// Per connection: which channel, and when the connect started.
struct StormState {
    channel: u32,
    opened_ns: u64,
}

struct StormHandler {
    shared: Arc<Shared>,
    names: Arc<Vec<String>>,
    setup: Histogram<u64>,
    in_flight: usize,
    until_upgrade: bool,
}

impl StormHandler {
    /// One cycle completed: time it and close (with RST).
    fn completed(&mut self, conn: &mut ConnCtx<'_, StormState>) {
        self.setup
            .saturating_record(now_ns().saturating_sub(conn.state.opened_ns));
        self.shared.published.fetch_add(1, Relaxed);
        conn.close();
    }
}

impl Handler for StormHandler {
    type State = StormState;

    fn on_upgraded(&mut self, conn: &mut ConnCtx<'_, StormState>) {
        if self.until_upgrade {
            self.completed(conn);
        }
    }

    fn on_established(&mut self, conn: &mut ConnCtx<'_, StormState>, _socket_id: &str) {
        conn.send(&pusher::subscribe_public(
            &self.names[conn.state.channel as usize],
        ));
    }

    fn on_message(&mut self, conn: &mut ConnCtx<'_, StormState>, msg: &Incoming<'_>) {
        let channel = &self.names[conn.state.channel as usize];
        match &*msg.event {
            pusher::SUBSCRIPTION_SUCCEEDED if msg.is_for(channel) => self.completed(conn),
            pusher::SUBSCRIPTION_ERROR | pusher::ERROR => {
                self.shared.error(format!(
                    "{}: {}",
                    msg.event,
                    msg.data_text().unwrap_or_default()
                ));
                conn.close();
            }
            _ => {}
        }
    }

    fn on_closed(&mut self, _id: usize, _state: StormState, why: Closed) {
        self.in_flight -= 1;
        if let Closed::Failed(e) = why {
            self.shared.error(format!("connection failed: {e}"));
        }
    }
}

impl StormJob {
    /// Returns the histogram of completed cycles.
    fn run(self) -> anyhow::Result<Histogram<u64>> {
        let handler = StormHandler {
            shared: self.shared.clone(),
            names: self.names.clone(),
            setup: new_histogram(),
            in_flight: 0,
            until_upgrade: self.until_upgrade,
        };
        let mut net =
            Net::new(handler, self.endpoint.clone()).context("creating the event loop")?;
        let mut opened: u64 = 0;
        let mut channel = self.first_channel;
        loop {
            let now = Instant::now();
            let may_open = self.budget.is_none_or(|b| opened < b)
                && self.deadline.is_none_or(|d| now < d)
                && self.shared.errors.load(Relaxed) < MAX_ERRORS;
            if !may_open && net.handler.in_flight == 0 {
                break;
            }
            if now > self.give_up {
                self.shared.error(format!(
                    "{} connections still unfinished at the end",
                    net.handler.in_flight
                ));
                break;
            }
            while may_open
                && net.handler.in_flight < self.max_in_flight
                && self.budget.is_none_or(|b| opened < b)
            {
                let state = StormState {
                    channel: (channel % self.names.len()) as u32,
                    opened_ns: now_ns(),
                };
                channel += 1;
                opened += 1;
                match net.open(state) {
                    Ok(_) => net.handler.in_flight += 1,
                    Err(e) => self.shared.error(format!("connect: {e}")),
                }
            }
            net.poll(Duration::from_millis(5))
                .context("polling sockets")?;
        }
        net.shutdown();
        Ok(net.handler.setup)
    }
}
