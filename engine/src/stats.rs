//! Per-shard counters and HDR latency histograms, merged on demand for `/metrics` and
//! `/stats`. The bottom layer: anything may record here; this module calls nothing.
//!
//! Recording is cheap on purpose: counters are `Cell`s, and histograms are touched once per
//! delivered batch or drained socket, never once per recipient frame.

use hdrhistogram::Histogram;
use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

/// Highest latency recorded, in microseconds (values above are clamped): 60 s.
const MAX_US: u64 = 60_000_000;

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3).expect("static bounds")
}

/// What one shard counts.
pub struct ShardStats {
    /// Events accepted for publishing at this shard (API and client events).
    pub published: Cell<u64>,
    /// Frames queued to recipients on this shard.
    pub delivered: Cell<u64>,
    /// Bytes written to sockets.
    pub bytes_out: Cell<u64>,
    /// Sockets cut with 4100.
    pub slow_consumers: Cell<u64>,
    /// Earliest publish time among deliveries queued since the flusher last went idle.
    pub batch_oldest: Cell<Option<Instant>>,
    /// Publish (API call or client event arriving) → the flusher finished writing the batch
    /// holding it; recorded once per flush pass for its oldest event (an upper bound).
    pub publish_to_write_us: RefCell<Histogram<u64>>,
    /// Recipients per delivered event on this shard.
    pub fanout: RefCell<Histogram<u64>>,
    /// Time a socket's queue stayed non-empty before the flusher drained it.
    pub queue_delay_us: RefCell<Histogram<u64>>,
    /// Recovery requests answered "recovered" and "not recovered" (docs/history.md).
    pub recovered: Cell<u64>,
    pub not_recovered: Cell<u64>,
}

impl Default for ShardStats {
    fn default() -> Self {
        ShardStats {
            published: Cell::new(0),
            delivered: Cell::new(0),
            bytes_out: Cell::new(0),
            slow_consumers: Cell::new(0),
            batch_oldest: Cell::new(None),
            publish_to_write_us: RefCell::new(hist()),
            fanout: RefCell::new(hist()),
            queue_delay_us: RefCell::new(hist()),
            recovered: Cell::new(0),
            not_recovered: Cell::new(0),
        }
    }
}

/// Close codes counted by [`note_close`]: the ones Raptor sends (docs/protocol.md), and
/// "other" last.
pub const CLOSE_CODES: [u16; 18] = [
    1000, 1002, 1003, 1007, 1009, 4000, 4001, 4005, 4007, 4008, 4009, 4100, 4102, 4200, 4201, 4300,
    4301, 0,
];

/// Connections closed by the server, per code in [`CLOSE_CODES`], node-wide since start.
/// Atomics: closes are rare next to deliveries, and the dashboard reads them from any shard.
static CLOSES: [std::sync::atomic::AtomicU64; CLOSE_CODES.len()] =
    [const { std::sync::atomic::AtomicU64::new(0) }; CLOSE_CODES.len()];

/// Counts one close frame the server sends.
pub fn note_close(code: u16) {
    let i = CLOSE_CODES
        .iter()
        .position(|&c| c == code)
        .unwrap_or(CLOSE_CODES.len() - 1);
    CLOSES[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// `(code, closes)` for every code seen at least once; code 0 is "any other".
pub fn closes() -> Vec<(u16, u64)> {
    CLOSE_CODES
        .iter()
        .zip(&CLOSES)
        .map(|(&c, n)| (c, n.load(std::sync::atomic::Ordering::Relaxed)))
        .filter(|&(_, n)| n > 0)
        .collect()
}

/// The wall clock in unix milliseconds (0 before 1970).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub fn add(c: &Cell<u64>, n: u64) {
    c.set(c.get().wrapping_add(n));
}

pub fn record_duration(h: &RefCell<Histogram<u64>>, d: Duration) {
    let us = (d.as_micros() as u64).clamp(1, MAX_US);
    let _ = h.borrow_mut().record(us);
}

impl ShardStats {
    /// Notes that an event published at `t0` was just queued on this shard.
    pub fn note_delivery(&self, t0: Instant, recipients: usize) {
        add(&self.delivered, recipients as u64);
        let _ = self
            .fanout
            .borrow_mut()
            .record((recipients as u64).clamp(1, MAX_US));
        if self.batch_oldest.get().is_none_or(|o| t0 < o) {
            self.batch_oldest.set(Some(t0));
        }
    }

    /// Called by the flusher after a pass that wrote everything it could.
    pub fn note_flush_done(&self, now: Instant) {
        if let Some(t0) = self.batch_oldest.take() {
            record_duration(&self.publish_to_write_us, now.saturating_duration_since(t0));
        }
    }

    /// Counts one answered recovery request.
    pub fn note_recovery(&self, recovered: bool) {
        add(
            if recovered {
                &self.recovered
            } else {
                &self.not_recovered
            },
            1,
        );
    }

    pub fn snapshot(&self, connections: u64, channels: u64) -> Snapshot {
        Snapshot {
            connections,
            channels,
            published: self.published.get(),
            delivered: self.delivered.get(),
            bytes_out: self.bytes_out.get(),
            slow_consumers: self.slow_consumers.get(),
            publish_to_write_us: self.publish_to_write_us.borrow().clone(),
            fanout: self.fanout.borrow().clone(),
            queue_delay_us: self.queue_delay_us.borrow().clone(),
            cluster_queries: ClusterQueryFigures::default(),
            cluster: ClusterFigures::default(),
            mesh_overflow_peak: 0,
            history: HistoryFigures {
                recovered: self.recovered.get(),
                not_recovered: self.not_recovered.get(),
                ..HistoryFigures::default()
            },
        }
    }
}

/// Cluster channel queries (docs/cluster.md, "Channel queries"); only the gateway shard
/// counts them, the others report zeros.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ClusterQueryFigures {
    /// Queries this node sent to its peers.
    pub started: u64,
    /// Of those, answered without every peer's full answer (timeout, link lost, refused,
    /// list cut to fit a frame, or too many queries waiting).
    pub incomplete: u64,
    /// Of those, not sent at all because too many queries were waiting.
    pub over_limit: u64,
    /// Answers that came after their query finished (or were not asked for); ignored.
    pub stray_answers: u64,
    /// Peers' queries this node answered, and refused (busy, or its shards too slow).
    pub answered_for_peers: u64,
    pub refused_for_peers: u64,
    /// Expiry timers waiting now: one per query still waiting on answers.
    pub expiry_timers: u64,
}

impl ClusterQueryFigures {
    fn merge(&mut self, o: &ClusterQueryFigures) {
        self.started += o.started;
        self.incomplete += o.incomplete;
        self.over_limit += o.over_limit;
        self.stray_answers += o.stray_answers;
        self.answered_for_peers += o.answered_for_peers;
        self.refused_for_peers += o.refused_for_peers;
        self.expiry_timers += o.expiry_timers;
    }
}

/// The node-to-node side (docs/cluster.md, "Counters"); only the gateway shard fills it in.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ClusterFigures {
    /// Live nodes in this node's view, itself included (0 on a single node).
    pub live_nodes: u64,
    /// Frames written to and read from peer links.
    pub frames_sent: u64,
    pub frames_received: u64,
    /// Frames dropped: the link's send queue was full, or no link to that peer was up.
    pub dropped_full: u64,
    pub dropped_no_link: u64,
    /// Link sessions established, and handshakes refused (no TLS, no accepted cluster
    /// secret proven, wrong cluster id or node, too many handshakes at once).
    pub sessions_up: u64,
    pub handshakes_refused: u64,
    /// Gossip datagrams dropped: not sealed with an accepted cluster secret, malformed, or
    /// sent more than 120 s away from this node's clock.
    pub gossip_rejected: u64,
    /// Messages between the shards and the cluster thread dropped on a full bridge queue.
    pub bridge_dropped: u64,
    /// `Publish` for a channel another node owns in this node's view (views differed).
    pub publish_not_owner: u64,
    /// `Deliver` for a channel without local subscribers (stale interest).
    pub deliver_unwanted: u64,
    /// Subscription-count reports ignored because the count table was full.
    pub counts_over_limit: u64,
    /// Subscription-count reports refused (not the owner, sender not live, implausible).
    pub counts_refused: u64,
    /// First subscriptions of a channel now held for the owning node's `InterestAck`, and
    /// those released without it (the owner did not answer within ~1 s).
    pub interest_awaiting: u64,
    pub interest_ack_timeouts: u64,
    /// Peers asked for their full member list again: their gossiped presence digest kept
    /// disagreeing with what this node held about them (a presence message was lost).
    pub presence_resyncs: u64,
    /// Handoffs of channels on a planned membership change completed here as the new
    /// owner; those that went on without a node's answer (order across them not
    /// guaranteed); events held behind a handoff now; events not held (the bound was full).
    pub handoffs: u64,
    pub handoff_timeouts: u64,
    /// 1 while this node refuses publishes because it has not met its cluster yet (it just
    /// started; docs/cluster.md "Publishing while a node starts or drains").
    pub joining: u64,
    /// Peer publishes held until this node's view caught up with their sender's.
    pub publish_held_stray: u64,
    pub handoff_held: u64,
    pub handoff_overflow: u64,
    /// HTTP publishes answered 503 because their event was never confirmed ordered (its
    /// owning node died, or its link was down): the losses this node can see.
    pub publishes_unconfirmed: u64,
}

impl ClusterFigures {
    fn merge(&mut self, o: &ClusterFigures) {
        self.live_nodes += o.live_nodes;
        self.frames_sent += o.frames_sent;
        self.frames_received += o.frames_received;
        self.dropped_full += o.dropped_full;
        self.dropped_no_link += o.dropped_no_link;
        self.sessions_up += o.sessions_up;
        self.handshakes_refused += o.handshakes_refused;
        self.gossip_rejected += o.gossip_rejected;
        self.bridge_dropped += o.bridge_dropped;
        self.publish_not_owner += o.publish_not_owner;
        self.deliver_unwanted += o.deliver_unwanted;
        self.counts_over_limit += o.counts_over_limit;
        self.counts_refused += o.counts_refused;
        self.interest_awaiting += o.interest_awaiting;
        self.interest_ack_timeouts += o.interest_ack_timeouts;
        self.presence_resyncs += o.presence_resyncs;
        self.handoffs += o.handoffs;
        self.joining += o.joining;
        self.publish_held_stray += o.publish_held_stray;
        self.handoff_timeouts += o.handoff_timeouts;
        self.handoff_held += o.handoff_held;
        self.handoff_overflow += o.handoff_overflow;
        self.publishes_unconfirmed += o.publishes_unconfirmed;
    }
}

/// A copy of one shard's figures; `Send`, so it can cross the mesh, and mergeable.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub connections: u64,
    pub channels: u64,
    pub published: u64,
    pub delivered: u64,
    pub bytes_out: u64,
    pub slow_consumers: u64,
    pub publish_to_write_us: Histogram<u64>,
    pub fanout: Histogram<u64>,
    pub queue_delay_us: Histogram<u64>,
    pub cluster_queries: ClusterQueryFigures,
    pub cluster: ClusterFigures,
    /// The longest cross-shard overflow an admitted publish joined (merged as the maximum).
    pub mesh_overflow_peak: u64,
    pub history: HistoryFigures,
}

/// Channel history on this node (docs/history.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct HistoryFigures {
    /// Channels with a history position, and the bytes their stored events hold.
    pub channels: u64,
    pub bytes: u64,
    /// Recovery requests answered "recovered" / "not recovered".
    pub recovered: u64,
    pub not_recovered: u64,
}

impl HistoryFigures {
    fn merge(&mut self, o: &HistoryFigures) {
        self.channels += o.channels;
        self.bytes += o.bytes;
        self.recovered += o.recovered;
        self.not_recovered += o.not_recovered;
    }
}

impl Snapshot {
    pub fn merge(&mut self, o: &Snapshot) {
        self.connections += o.connections;
        self.channels += o.channels;
        self.published += o.published;
        self.delivered += o.delivered;
        self.bytes_out += o.bytes_out;
        self.slow_consumers += o.slow_consumers;
        let _ = self.publish_to_write_us.add(&o.publish_to_write_us);
        let _ = self.fanout.add(&o.fanout);
        let _ = self.queue_delay_us.add(&o.queue_delay_us);
        self.cluster_queries.merge(&o.cluster_queries);
        self.cluster.merge(&o.cluster);
        self.mesh_overflow_peak = self.mesh_overflow_peak.max(o.mesh_overflow_peak);
        self.history.merge(&o.history);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_and_flush_accounting() {
        let a = ShardStats::default();
        let t0 = Instant::now();
        a.note_delivery(t0, 10);
        a.note_delivery(t0 + Duration::from_millis(1), 5);
        a.note_flush_done(t0 + Duration::from_millis(3));
        assert!(a.batch_oldest.get().is_none());
        let mut s = a.snapshot(3, 1);
        assert_eq!(s.delivered, 15);
        assert_eq!(s.publish_to_write_us.len(), 1);
        let v = s.publish_to_write_us.max();
        assert!((2990..=3010).contains(&v), "{v}");
        let b = ShardStats::default();
        b.note_delivery(t0, 7);
        s.merge(&b.snapshot(2, 4));
        assert_eq!(
            (s.connections, s.channels, s.delivered, s.fanout.len()),
            (5, 5, 22, 3)
        );
    }
}
