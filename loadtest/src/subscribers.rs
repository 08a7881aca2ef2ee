//! Worker threads holding public-channel subscribers: the receiving side of `idle` and
//! `fanout`.
//!
//! Each connection subscribes to one channel. Setup latency (connect → subscribed) and
//! delivery latency (publish → receive) go into separate histograms; every stamped event
//! is checked against its channel's sequence.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;

use crate::clock::now_ns;
use crate::fallback::{self, Transport};
use crate::net::{Closed, ConnCtx, Endpoint, Handler, Net};
use crate::payload;
use crate::pusher::{self, Incoming};
use crate::report::new_histogram;
use crate::run::Shared;
use crate::seq_check::SeqCheck;

/// Event name the fanout publisher uses; anything else on the channel is not ours.
pub const EVENT_NAME: &str = "raptor-loadtest";

/// Streams per channel a receiver accepts (publishers sharing one channel); a stamp naming
/// a higher stream is an error, not an allocation.
pub const MAX_STREAMS: u32 = 1024;

/// Per-connection state: ~72 bytes.
pub struct SubState {
    channel: u32,
    opened_ns: u64,
    subscribed: bool,
    /// stream 0: the only one unless several publishers share the channel
    seq: SeqCheck,
    /// streams 1, 2, …: empty (no allocation) with one publisher per channel
    more: Vec<SeqCheck>,
}

/// What one worker measured.
pub struct SubOutcome {
    /// publish → receive, ns
    pub latency: Histogram<u64>,
    /// connect → subscription_succeeded, ns
    pub setup: Histogram<u64>,
    /// (channel, receiver's sequence check of stream 0) for every subscriber this worker had
    pub streams: Vec<(u32, SeqCheck)>,
    /// (channel, stream ≥ 1, check) for every further stream a subscriber received
    pub extra: Vec<(u32, u32, SeqCheck)>,
}

pub(crate) struct SubHandler {
    shared: Arc<Shared>,
    channels: Arc<Vec<String>>,
    latency: Histogram<u64>,
    setup: Histogram<u64>,
    streams: Vec<(u32, SeqCheck)>,
    extra: Vec<(u32, u32, SeqCheck)>,
    /// connections opened but not yet subscribed (or failed)
    in_flight: usize,
    /// deliveries not yet added to `shared.delivered`
    delivered: u64,
}

impl SubState {
    /// A connection (or HTTP session) about to subscribe to channel index `channel`.
    pub(crate) fn new(channel: u32) -> Self {
        Self {
            channel,
            opened_ns: now_ns(),
            subscribed: false,
            seq: SeqCheck::default(),
            more: Vec::new(),
        }
    }
}

impl SubHandler {
    pub(crate) fn new(shared: Arc<Shared>, channels: Arc<Vec<String>>, conns: usize) -> Self {
        Self {
            shared,
            channels,
            latency: new_histogram(),
            setup: new_histogram(),
            streams: Vec::with_capacity(conns),
            extra: Vec::new(),
            in_flight: 0,
            delivered: 0,
        }
    }

    pub(crate) fn channel_name(&self, st: &SubState) -> &str {
        &self.channels[st.channel as usize]
    }

    /// One Pusher message for a subscriber (whatever transport carried it).
    pub(crate) fn observe(&mut self, st: &mut SubState, msg: &Incoming<'_>) {
        let channel = &self.channels[st.channel as usize];
        if !msg.is_for(channel) {
            if msg.event == pusher::ERROR {
                self.shared.error(format!(
                    "server error: {}",
                    msg.data_text().unwrap_or_default()
                ));
            }
            return;
        }
        match &*msg.event {
            EVENT_NAME => {
                let now = now_ns();
                let Some(stamp) = msg.data_text().and_then(|d| payload::decode(&d)) else {
                    self.shared.error("event without a loadtest stamp");
                    return;
                };
                self.latency.saturating_record(now.saturating_sub(stamp.t));
                match stamp.s {
                    0 => st.seq.observe(stamp.seq),
                    k if k < MAX_STREAMS => {
                        let k = k as usize;
                        if st.more.len() < k {
                            st.more.resize(k, SeqCheck::default());
                        }
                        st.more[k - 1].observe(stamp.seq);
                    }
                    k => self
                        .shared
                        .error(format!("stamp of stream {k}, above {MAX_STREAMS}")),
                }
                self.delivered += 1;
            }
            pusher::SUBSCRIPTION_SUCCEEDED if !st.subscribed => {
                st.subscribed = true;
                self.setup
                    .saturating_record(now_ns().saturating_sub(st.opened_ns));
                self.in_flight -= 1;
                self.shared.ready.fetch_add(1, Relaxed);
            }
            pusher::SUBSCRIPTION_ERROR | pusher::ERROR => {
                self.shared.error(format!(
                    "{} on {channel}: {}",
                    msg.event,
                    msg.data_text().unwrap_or_default()
                ));
            }
            _ => {}
        }
    }

    /// A subscriber is gone; `failure` says why if it was not us who ended it.
    pub(crate) fn closed(&mut self, state: SubState, failure: Option<String>) {
        if !state.subscribed {
            self.in_flight -= 1;
        }
        if let Some(e) = failure {
            self.shared
                .error(format!("subscriber connection failed: {e}"));
        }
        self.streams.push((state.channel, state.seq));
        for (k, seq) in state.more.into_iter().enumerate() {
            self.extra.push((state.channel, k as u32 + 1, seq));
        }
    }

    /// Deliveries since the last call, for the shared counter.
    pub(crate) fn take_delivered(&mut self) -> u64 {
        std::mem::take(&mut self.delivered)
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub(crate) fn started(&mut self) {
        self.in_flight += 1;
    }

    pub(crate) fn into_outcome(self) -> SubOutcome {
        SubOutcome {
            latency: self.latency,
            setup: self.setup,
            streams: self.streams,
            extra: self.extra,
        }
    }
}

impl Handler for SubHandler {
    type State = SubState;

    fn on_established(&mut self, conn: &mut ConnCtx<'_, SubState>, _socket_id: &str) {
        conn.send(&pusher::subscribe_public(
            &self.channels[conn.state.channel as usize],
        ));
    }

    fn on_message(&mut self, conn: &mut ConnCtx<'_, SubState>, msg: &Incoming<'_>) {
        self.observe(conn.state, msg);
    }

    fn on_closed(&mut self, _id: usize, state: SubState, why: Closed) {
        let failure = match why {
            Closed::Failed(e) => Some(e.to_string()),
            Closed::ByUs => None,
        };
        self.closed(state, failure);
    }
}

/// Starts worker threads for `plan` (one entry per connection: its channel index),
/// dealing connections round-robin so every worker gets a slice of every channel. The
/// endpoint's transport picks the loop: WebSocket ([`Net`]) or HTTP ([`fallback`]).
/// `servers` gives each connection's server ([`Endpoint::server_at`]); empty means all
/// go to the endpoint's main server.
pub fn spawn(
    threads: usize,
    endpoint: &Endpoint,
    channels: Arc<Vec<String>>,
    plan: &[u32],
    servers: &[u16],
    shared: &Arc<Shared>,
    connect_concurrency: usize,
) -> Vec<thread::JoinHandle<anyhow::Result<SubOutcome>>> {
    let threads = threads.max(1);
    let per_thread_concurrency = connect_concurrency.div_ceil(threads).max(1);
    (0..threads)
        .map(|w| {
            let mine: Vec<(u32, u16)> = (w..plan.len())
                .step_by(threads)
                .map(|i| (plan[i], servers.get(i).copied().unwrap_or(0)))
                .collect();
            let (endpoint, channels, shared) = (endpoint.clone(), channels.clone(), shared.clone());
            thread::Builder::new()
                .name(format!("subscribers-{w}"))
                .spawn(move || match endpoint.transport {
                    Transport::Ws => {
                        run_worker(endpoint, channels, mine, shared, per_thread_concurrency)
                    }
                    _ => fallback::run_worker(
                        endpoint,
                        channels,
                        mine,
                        shared,
                        per_thread_concurrency,
                    ),
                })
                .expect("spawning a thread")
        })
        .collect()
}

fn run_worker(
    endpoint: Endpoint,
    channels: Arc<Vec<String>>,
    plan: Vec<(u32, u16)>,
    shared: Arc<Shared>,
    max_in_flight: usize,
) -> anyhow::Result<SubOutcome> {
    let handler = SubHandler::new(shared.clone(), channels, plan.len());
    let mut net = Net::new(handler, endpoint).context("creating the event loop")?;
    let mut next = 0;
    let mut last_ping = Instant::now();
    while !shared.stopped() {
        while next < plan.len() && net.handler.in_flight() < max_in_flight {
            let (channel, server) = plan[next];
            let state = SubState::new(channel);
            next += 1;
            match net.open_to(usize::from(server), state) {
                Ok(_) => net.handler.started(),
                Err(e) => shared.error(format!("connect: {e}")),
            }
        }
        net.poll(Duration::from_millis(5))
            .context("polling sockets")?;
        let delivered = net.handler.take_delivered();
        if delivered > 0 {
            shared.delivered.fetch_add(delivered, Relaxed);
        }
        if last_ping.elapsed() > pusher::KEEPALIVE {
            net.send_all(pusher::ping());
            last_ping = Instant::now();
        }
    }
    net.shutdown();
    Ok(net.handler.into_outcome())
}

/// Merges worker outcomes into one.
pub fn merge(outcomes: Vec<SubOutcome>) -> SubOutcome {
    let mut all = SubOutcome {
        latency: new_histogram(),
        setup: new_histogram(),
        streams: Vec::new(),
        extra: Vec::new(),
    };
    for o in outcomes {
        // same bounds everywhere, so adding cannot fail
        let _ = all.latency.add(&o.latency);
        let _ = all.setup.add(&o.setup);
        all.streams.extend(o.streams);
        all.extra.extend(o.extra);
    }
    all
}
