//! `presence`: join/leave churn on presence channels, timing `member_added` delivery.
//!
//! Every channel has W *watchers* (members that stay subscribed) and K *churners*
//! (connections that subscribe with a fresh user id, wait for success, unsubscribe, and
//! go again). Each join reaches every watcher as `pusher_internal:member_added`. The
//! churner's user id carries the stamp, `j.{channel}.{churner}.{seq}.{send_ns}`, so a
//! watcher can time the join and check each churner's sequence without shared state.
//! One churner's joins travel over one connection, so the server must deliver them in order.

use std::collections::{HashMap, VecDeque};
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
use crate::report::{new_histogram, per_sec, us_per, LatencyUs, LossTally, Report};
use crate::run::{self, Shared};
use crate::seq_check::SeqCheck;
use crate::signing;
use crate::target::Target;
use crate::usage::CpuWindow;

/// Pusher caps a presence channel at 100 members; servers copy that default
/// ([`PresenceOpts::max_members`] for a server configured higher).
pub const MAX_MEMBERS: u64 = 100;

/// Options for [`run()`].
#[derive(Debug, Clone)]
pub struct PresenceOpts {
    pub common: Common,
    pub channels: u64,
    /// members per channel that stay and receive `member_added`
    pub watchers: u64,
    /// connections per channel that join and leave in a loop
    pub churners: u64,
    /// joins per second over all channels; `None`: each churner rejoins as soon as its
    /// previous join succeeded
    pub rate: Option<f64>,
    /// stops churning after this long or this many joins
    pub bound: Bound,
    pub drain_timeout: Duration,
    /// the server's member limit per presence channel (default [`MAX_MEMBERS`]); watchers +
    /// churners must fit in it, or the server refuses the last ones
    pub max_members: u64,
}

impl PresenceOpts {
    pub fn new(common: Common, channels: u64, watchers: u64, bound: Bound) -> Self {
        Self {
            common,
            channels,
            watchers,
            churners: 1,
            rate: None,
            bound,
            drain_timeout: Duration::from_secs(5),
            max_members: MAX_MEMBERS,
        }
    }
}

/// Runs the presence scenario to completion.
pub fn run(opts: &PresenceOpts) -> anyhow::Result<Report> {
    let c = &opts.common;
    if opts.channels == 0 || opts.watchers == 0 || opts.churners == 0 {
        bail!("need at least one channel, one watcher and one churner");
    }
    if opts.watchers + opts.churners > opts.max_members {
        bail!(
            "watchers + churners per channel must stay within the {}-member presence limit \
             (--max-members, if the server allows more)",
            opts.max_members
        );
    }
    if opts.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        bail!("--rate must be a positive number of joins per second");
    }
    let per_channel = opts.watchers + opts.churners;
    let conns = opts.channels * per_channel;
    limits::ensure_fds(conns)?;
    let sources = limits::plan_sources(c.target.addr.ip(), conns, c.source_addrs)?;
    let endpoint = Endpoint::new(&c.target, sources);
    let tag = fastrand::u32(..);
    let names: Arc<Vec<String>> = Arc::new(
        (0..opts.channels)
            .map(|i| format!("presence-lt-{tag:08x}-{i}"))
            .collect(),
    );
    let shared = Arc::new(Shared::default());

    // channels are partitioned between threads, so a channel's watchers and churners
    // (and the loss accounting between them) stay on one thread
    let threads = c.threads.clamp(1, opts.channels as usize);
    let counts = opts.bound.count().map(|n| split(n, threads));
    let workers: Vec<_> = (0..threads)
        .map(|w| {
            let mine: Vec<u32> = (w as u32..opts.channels as u32).step_by(threads).collect();
            let job = ChurnJob {
                endpoint: endpoint.clone(),
                target: c.target.clone(),
                names: names.clone(),
                shared: shared.clone(),
                rate: opts
                    .rate
                    .map(|r| r * mine.len() as f64 / opts.channels as f64),
                budget: counts.as_ref().map(|n| n[w]),
                max_in_flight: c.connect_concurrency.div_ceil(threads).max(1),
                watchers: opts.watchers as u32,
                churners: opts.churners as u32,
                channels: mine,
            };
            thread::Builder::new()
                .name(format!("presence-{w}"))
                .spawn(move || job.run())
                .expect("spawning a thread")
        })
        .collect();
    if let Err(e) = run::wait_ready(&shared, conns, c.setup_timeout, c.progress) {
        let _ = run::join_all(workers);
        return Err(e);
    }

    let cpu = CpuWindow::start(c.server_pid).context("reading cpu time")?;
    let started = Instant::now();
    shared.go.store(true, Relaxed);
    watch_churn(opts, &shared, started, threads);
    let published = shared.published.load(Relaxed);
    let ended = run::wait_drained(&shared, published * opts.watchers, opts.drain_timeout);
    let (client_cpu_s, server_cpu_s) = cpu.stop().context("reading cpu time")?;
    shared.stop.store(true, Relaxed);
    let outcomes = run::join_all(workers)?;

    let mut latency = new_histogram();
    let mut tally = LossTally::new(names.len());
    for o in &outcomes {
        let _ = latency.add(&o.latency);
        for (ch, streams) in &o.watcher_streams {
            for (k, seq) in streams.iter().enumerate() {
                let joins = o.joins.get(&(*ch, k as u32)).copied().unwrap_or(0);
                tally.add(*ch as usize, seq.lost(joins), seq.out_of_order());
            }
        }
    }
    let (lost, out_of_order, lossy_channels) = tally.finish(&names);
    let deliveries = latency.len();
    let duration_s = ended.duration_since(started).as_secs_f64();
    Ok(Report {
        scenario: "presence".into(),
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
        latency_of: "join_to_member_added".into(),
        latency_us: LatencyUs::from_histogram(&latency),
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

/// Shows progress until every worker stopped churning; ends the churn at the deadline.
fn watch_churn(opts: &PresenceOpts, shared: &Shared, started: Instant, threads: usize) {
    let (len, what) = match (opts.bound.count(), opts.bound.duration()) {
        (Some(n), _) => (n, "joining"),
        (None, Some(d)) => (d.as_secs().max(1), "churn (s)"),
        (None, None) => unreachable!("Bound is never unbounded"),
    };
    let bar = Progress::new(opts.common.progress, len, what);
    while shared.load_done.load(Relaxed) < threads && !shared.stopped() {
        if opts
            .bound
            .duration()
            .is_some_and(|d| started.elapsed() >= d)
        {
            shared.stop_load.store(true, Relaxed);
        }
        bar.set(match opts.bound.count() {
            Some(_) => shared.published.load(Relaxed),
            None => started.elapsed().as_secs(),
        });
        thread::sleep(Duration::from_millis(2));
    }
    bar.finish();
}

/// One worker thread's channels and what it may send.
struct ChurnJob {
    endpoint: Endpoint,
    target: Target,
    names: Arc<Vec<String>>,
    shared: Arc<Shared>,
    /// joins per second for this thread
    rate: Option<f64>,
    /// joins this thread sends; `None` when only the deadline bounds the run
    budget: Option<u64>,
    max_in_flight: usize,
    watchers: u32,
    churners: u32,
    channels: Vec<u32>,
}

/// What one worker measured.
struct ChurnOutcome {
    latency: Histogram<u64>,
    /// (channel, one sequence check per churner of that channel) per watcher
    watcher_streams: Vec<(u32, Box<[SeqCheck]>)>,
    /// joins sent per (channel, churner)
    joins: HashMap<(u32, u32), u64>,
}

enum Role {
    Watcher {
        ch: u32,
        user: u32,
        subscribed: bool,
        streams: Box<[SeqCheck]>,
    },
    Churner {
        ch: u32,
        k: u32,
        socket_id: Option<Box<str>>,
        joins: u64,
        joining: bool,
    },
}

struct PresHandler {
    shared: Arc<Shared>,
    names: Arc<Vec<String>>,
    target: Target,
    latency: Histogram<u64>,
    /// churners waiting for their next join
    idle: VecDeque<usize>,
    in_flight: usize,
    delivered: u64,
    joins_sent: u64,
    watcher_streams: Vec<(u32, Box<[SeqCheck]>)>,
    joins: HashMap<(u32, u32), u64>,
}

/// `user_id` and `channel_data` for a presence member.
fn member(user_id: &str) -> String {
    format!(r#"{{"user_id":"{user_id}","user_info":{{}}}}"#)
}

/// Reads a churner's user id back: (channel, churner, seq, send_ns).
fn parse_join(user_id: &str) -> Option<(u32, u32, u64, u64)> {
    let mut parts = user_id.strip_prefix("j.")?.split('.');
    let ch = parts.next()?.parse().ok()?;
    let k = parts.next()?.parse().ok()?;
    let seq = parts.next()?.parse().ok()?;
    let t = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((ch, k, seq, t))
}

impl PresHandler {
    fn subscribe_text(&self, ch: u32, socket_id: &str, user_id: &str) -> String {
        let channel = &self.names[ch as usize];
        let data = member(user_id);
        let auth = signing::presence_auth(
            &self.target.key,
            &self.target.secret,
            socket_id,
            channel,
            &data,
        );
        pusher::subscribe_presence(channel, &auth, &data)
    }

    fn on_member_added(&mut self, ch: u32, streams: &mut [SeqCheck], msg: &Incoming<'_>) {
        let now = now_ns();
        let Some(user_id) = pusher::member_user_id(msg) else {
            self.shared.error("member_added without user_id");
            return;
        };
        if user_id.starts_with("w.") {
            return; // another watcher arriving during setup
        }
        match parse_join(&user_id) {
            Some((c, k, seq, t)) if c == ch && (k as usize) < streams.len() => {
                self.latency.saturating_record(now.saturating_sub(t));
                streams[k as usize].observe(seq);
                self.delivered += 1;
            }
            _ => self
                .shared
                .error(format!("unexpected member_added for {user_id}")),
        }
    }
}

impl Handler for PresHandler {
    type State = Role;

    fn on_established(&mut self, conn: &mut ConnCtx<'_, Role>, socket_id: &str) {
        match &mut *conn.state {
            Role::Watcher { ch, user, .. } => {
                let text = self.subscribe_text(*ch, socket_id, &format!("w.{ch}.{user}"));
                conn.send(&text);
            }
            Role::Churner { socket_id: sid, .. } => {
                *sid = Some(socket_id.into());
                self.in_flight -= 1;
                self.shared.ready.fetch_add(1, Relaxed);
                self.idle.push_back(conn.id);
            }
        }
    }

    fn on_message(&mut self, conn: &mut ConnCtx<'_, Role>, msg: &Incoming<'_>) {
        let ch = match &*conn.state {
            Role::Watcher { ch, .. } | Role::Churner { ch, .. } => *ch,
        };
        if !msg.is_for(&self.names[ch as usize]) {
            if msg.event == pusher::ERROR {
                self.shared.error(format!(
                    "server error: {}",
                    msg.data_text().unwrap_or_default()
                ));
            }
            return;
        }
        match (&mut *conn.state, &*msg.event) {
            (Role::Watcher { streams, .. }, pusher::MEMBER_ADDED) => {
                self.on_member_added(ch, streams, msg)
            }
            (Role::Watcher { subscribed, .. }, pusher::SUBSCRIPTION_SUCCEEDED) if !*subscribed => {
                *subscribed = true;
                self.in_flight -= 1;
                self.shared.ready.fetch_add(1, Relaxed);
            }
            (Role::Churner { joining, .. }, pusher::SUBSCRIPTION_SUCCEEDED) if *joining => {
                *joining = false;
                conn.send(&pusher::unsubscribe(&self.names[ch as usize]));
                self.idle.push_back(conn.id);
            }
            (_, pusher::SUBSCRIPTION_ERROR | pusher::ERROR) => {
                self.shared.error(format!(
                    "{}: {}",
                    msg.event,
                    msg.data_text().unwrap_or_default()
                ));
            }
            _ => {}
        }
    }

    fn on_closed(&mut self, _id: usize, role: Role, why: Closed) {
        if let Closed::Failed(e) = why {
            self.shared
                .error(format!("presence connection failed: {e}"));
        }
        match role {
            Role::Watcher {
                ch,
                subscribed,
                streams,
                ..
            } => {
                if !subscribed {
                    self.in_flight -= 1;
                }
                self.watcher_streams.push((ch, streams));
            }
            Role::Churner {
                ch,
                k,
                socket_id,
                joins,
                ..
            } => {
                if socket_id.is_none() {
                    self.in_flight -= 1;
                }
                self.joins.insert((ch, k), joins);
            }
        }
    }
}

impl ChurnJob {
    fn run(self) -> anyhow::Result<ChurnOutcome> {
        let mut plan: Vec<Role> = Vec::new();
        for &ch in &self.channels {
            for user in 0..self.watchers {
                let streams = vec![SeqCheck::default(); self.churners as usize].into_boxed_slice();
                plan.push(Role::Watcher {
                    ch,
                    user,
                    subscribed: false,
                    streams,
                });
            }
            for k in 0..self.churners {
                plan.push(Role::Churner {
                    ch,
                    k,
                    socket_id: None,
                    joins: 0,
                    joining: false,
                });
            }
        }
        let handler = PresHandler {
            shared: self.shared.clone(),
            names: self.names.clone(),
            target: self.target.clone(),
            latency: new_histogram(),
            idle: VecDeque::new(),
            in_flight: 0,
            delivered: 0,
            joins_sent: 0,
            watcher_streams: Vec::new(),
            joins: HashMap::new(),
        };
        let mut net =
            Net::new(handler, self.endpoint.clone()).context("creating the event loop")?;
        let mut plan = plan.into_iter();
        let mut go_at: Option<Instant> = None;
        let mut joined: u64 = 0;
        let mut load_done = false;
        let mut last_ping = Instant::now();
        while !self.shared.stopped() {
            while net.handler.in_flight < self.max_in_flight {
                let Some(role) = plan.next() else { break };
                match net.open(role) {
                    Ok(_) => net.handler.in_flight += 1,
                    Err(e) => self.shared.error(format!("connect: {e}")),
                }
            }
            let churning = go_at.is_some() && !load_done;
            net.poll(Duration::from_millis(if churning { 1 } else { 5 }))
                .context("polling sockets")?;
            if go_at.is_none() && self.shared.go.load(Relaxed) {
                go_at = Some(Instant::now());
            }
            if let (Some(go), false) = (go_at, load_done) {
                let out_of_budget = self.budget.is_some_and(|b| joined >= b);
                if self.shared.stop_load.load(Relaxed) || out_of_budget {
                    // count every join before telling the coordinator we are done
                    self.flush(&mut net);
                    load_done = true;
                    self.shared.load_done.fetch_add(1, Relaxed);
                } else {
                    joined += self.join_some(&mut net, go, joined);
                }
            }
            self.flush(&mut net);
            if last_ping.elapsed() > pusher::KEEPALIVE {
                net.send_all(pusher::ping());
                last_ping = Instant::now();
            }
        }
        net.shutdown();
        let h = net.handler;
        Ok(ChurnOutcome {
            latency: h.latency,
            watcher_streams: h.watcher_streams,
            joins: h.joins,
        })
    }

    fn flush(&self, net: &mut Net<PresHandler>) {
        let delivered = std::mem::take(&mut net.handler.delivered);
        let joins = std::mem::take(&mut net.handler.joins_sent);
        self.shared.delivered.fetch_add(delivered, Relaxed);
        self.shared.published.fetch_add(joins, Relaxed);
    }

    /// Sends as many joins as the rate and budget allow now; returns how many.
    fn join_some(&self, net: &mut Net<PresHandler>, go: Instant, joined: u64) -> u64 {
        let mut allowed = match self.rate {
            Some(r) => ((go.elapsed().as_secs_f64() * r) as u64).saturating_sub(joined),
            None => u64::MAX,
        };
        if let Some(b) = self.budget {
            allowed = allowed.min(b.saturating_sub(joined));
        }
        let mut sent = 0;
        while sent < allowed {
            let Some(id) = net.handler.idle.pop_front() else {
                break;
            };
            if join(net, id) {
                sent += 1;
            }
        }
        sent
    }
}

/// Sends churner `id`'s next join; false if it is gone or already joining.
fn join(net: &mut Net<PresHandler>, id: usize) -> bool {
    let Some(Role::Churner {
        ch,
        k,
        socket_id: Some(sid),
        joins,
        joining,
    }) = net.state_mut(id)
    else {
        return false;
    };
    if *joining {
        return false;
    }
    *joining = true;
    let seq = *joins;
    *joins += 1;
    let (ch, k, sid) = (*ch, *k, sid.clone());
    let user_id = format!("j.{ch}.{k}.{seq}.{}", now_ns());
    let text = net.handler.subscribe_text(ch, &sid, &user_id);
    net.handler.joins_sent += 1;
    net.send(id, &text);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_ids_roundtrip() {
        assert_eq!(
            parse_join("j.3.1.42.123456789"),
            Some((3, 1, 42, 123456789))
        );
        assert_eq!(parse_join("w.3.1"), None);
        assert_eq!(parse_join("j.3.1.42"), None);
        assert_eq!(parse_join("j.3.1.42.5.6"), None);
    }

    #[test]
    fn member_data_is_valid_json() {
        let v: serde_json::Value = serde_json::from_str(&member("j.0.0.1.2")).unwrap();
        assert_eq!(v["user_id"], "j.0.0.1.2");
    }
}
