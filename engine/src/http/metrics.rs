//! `GET /metrics` (Prometheus text) and `GET /stats` (JSON): every shard's counters and
//! histograms, merged on demand. The router answers them only past the operator guard
//! (`admin::Access`); nothing here checks who asks.

use super::response::Response;
use crate::shard::Shard;
use crate::stats::Snapshot;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::fmt::Write;
use std::rc::Rc;

async fn gather(shard: &Rc<Shard>) -> Result<Snapshot, Response> {
    Ok(shard.node_stats().await?)
}

#[derive(Serialize)]
struct Quantiles {
    count: u64,
    p50: u64,
    p90: u64,
    p99: u64,
    p999: u64,
    max: u64,
}

fn quantiles(h: &Histogram<u64>) -> Quantiles {
    let q = |p: f64| {
        if h.is_empty() {
            0
        } else {
            h.value_at_quantile(p)
        }
    };
    Quantiles {
        count: h.len(),
        p50: q(0.5),
        p90: q(0.9),
        p99: q(0.99),
        p999: q(0.999),
        max: if h.is_empty() { 0 } else { h.max() },
    }
}

/// HTTP transport sessions open on this node (counted where they are admitted).
fn http_sessions(shard: &Shard) -> u64 {
    shard
        .node
        .http_sessions
        .load(std::sync::atomic::Ordering::Relaxed) as u64
}

pub async fn stats(shard: &Rc<Shard>) -> Response {
    let s = match gather(shard).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let w = shard.webhooks.stats();
    #[derive(Serialize)]
    struct Webhooks {
        queued: u64,
        sent: u64,
        failed: u64,
        dropped: u64,
        retried: u64,
    }
    #[derive(Serialize)]
    struct Out {
        shards: usize,
        connections: u64,
        channels: u64,
        messages_in: u64,
        messages_out: u64,
        bytes_out: u64,
        slow_consumers_cut: u64,
        http_sessions: u64,
        mesh_overflow_peak: u64,
        webhooks: Webhooks,
        publish_to_write_us: Quantiles,
        fanout_recipients: Quantiles,
        queue_delay_us: Quantiles,
        cluster_queries: crate::stats::ClusterQueryFigures,
        cluster: crate::stats::ClusterFigures,
        history: crate::stats::HistoryFigures,
    }
    let out = Out {
        shards: shard.nr_shards,
        connections: s.connections,
        channels: s.channels,
        messages_in: s.published,
        messages_out: s.delivered,
        bytes_out: s.bytes_out,
        slow_consumers_cut: s.slow_consumers,
        http_sessions: http_sessions(shard),
        mesh_overflow_peak: s.mesh_overflow_peak,
        webhooks: Webhooks {
            queued: w.queued,
            sent: w.sent,
            failed: w.failed,
            dropped: w.dropped,
            retried: w.retried,
        },
        publish_to_write_us: quantiles(&s.publish_to_write_us),
        fanout_recipients: quantiles(&s.fanout),
        queue_delay_us: quantiles(&s.queue_delay_us),
        cluster_queries: s.cluster_queries,
        cluster: s.cluster,
        history: s.history,
    };
    Response::json(
        200,
        simd_json::to_vec(&out).expect("in-memory serialization"),
    )
}

pub async fn metrics(shard: &Rc<Shard>) -> Response {
    let s = match gather(shard).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let w = shard.webhooks.stats();
    let mut t = String::new();
    let mut gauge = |name: &str, help: &str, kind: &str, v: u64| {
        let _ = writeln!(
            t,
            "# HELP raptor_{name} {help}\n# TYPE raptor_{name} {kind}\nraptor_{name} {v}"
        );
    };
    gauge(
        "connections",
        "Open sessions: WebSocket connections and HTTP transport sessions.",
        "gauge",
        s.connections,
    );
    gauge(
        "http_sessions",
        "Open HTTP transport sessions (xhr_streaming, xhr_polling, SSE).",
        "gauge",
        http_sessions(shard),
    );
    gauge("channels", "Occupied channels.", "gauge", s.channels);
    gauge(
        "messages_in_total",
        "Events accepted for publishing (API and client events).",
        "counter",
        s.published,
    );
    gauge(
        "messages_out_total",
        "Event frames queued to subscribers.",
        "counter",
        s.delivered,
    );
    gauge(
        "bytes_out_total",
        "Bytes written to WebSocket connections.",
        "counter",
        s.bytes_out,
    );
    gauge(
        "slow_consumers_cut_total",
        "Connections closed with 4100 because they fell behind.",
        "counter",
        s.slow_consumers,
    );
    gauge(
        "mesh_overflow_peak",
        "Longest cross-shard overflow queue an admitted publish joined (at most limits.mesh_queue_capacity + 1).",
        "gauge",
        s.mesh_overflow_peak,
    );
    let h = s.history;
    gauge(
        "history_channels",
        "Channels with a history position on this node.",
        "gauge",
        h.channels,
    );
    gauge(
        "history_bytes",
        "Bytes the stored history events hold (bounded by history.max_bytes_per_shard per shard).",
        "gauge",
        h.bytes,
    );
    gauge(
        "history_recovered_total",
        "Recovery requests answered with every missed event.",
        "counter",
        h.recovered,
    );
    gauge(
        "history_not_recovered_total",
        "Recovery requests answered \"not recovered\" (nothing replayed).",
        "counter",
        h.not_recovered,
    );
    let c = s.cluster;
    gauge(
        "cluster_live_nodes",
        "Live nodes in this node's view, itself included (0: not a cluster).",
        "gauge",
        c.live_nodes,
    );
    gauge(
        "cluster_frames_sent_total",
        "Frames written to peer links.",
        "counter",
        c.frames_sent,
    );
    gauge(
        "cluster_frames_received_total",
        "Frames read from peer links.",
        "counter",
        c.frames_received,
    );
    gauge(
        "cluster_frames_dropped_total",
        "Frames to peers dropped: send queue full or no link up.",
        "counter",
        c.dropped_full + c.dropped_no_link,
    );
    gauge(
        "cluster_bridge_dropped_total",
        "Messages between the shards and the cluster thread dropped on a full queue.",
        "counter",
        c.bridge_dropped,
    );
    gauge(
        "cluster_handshakes_refused_total",
        "Link handshakes refused: no TLS, no accepted cluster secret proven, wrong cluster or node.",
        "counter",
        c.handshakes_refused,
    );
    gauge(
        "cluster_gossip_rejected_total",
        "Gossip datagrams dropped: not sealed with an accepted cluster secret, malformed, or skewed.",
        "counter",
        c.gossip_rejected,
    );
    gauge(
        "cluster_handoffs_total",
        "Handoffs of channels on a planned membership change completed as the new owner.",
        "counter",
        c.handoffs,
    );
    gauge(
        "cluster_handoff_timeouts_total",
        "Handoffs that went on without a node's answer (order across them not guaranteed).",
        "counter",
        c.handoff_timeouts,
    );
    gauge(
        "cluster_handoff_held",
        "Events held right now until a handoff completes.",
        "gauge",
        c.handoff_held,
    );
    gauge(
        "cluster_publishes_unconfirmed_total",
        "HTTP publishes answered 503: their event was never confirmed by its owning node.",
        "counter",
        c.publishes_unconfirmed,
    );
    let q = s.cluster_queries;
    gauge(
        "cluster_queries_total",
        "Channel queries this node sent to the other nodes.",
        "counter",
        q.started,
    );
    gauge(
        "cluster_queries_incomplete_total",
        "Channel queries answered without every node's full answer (timeout, lost link, refused, cut list).",
        "counter",
        q.incomplete,
    );
    gauge(
        "cluster_peer_queries_refused_total",
        "Other nodes' channel queries this node refused (busy or its shards too slow).",
        "counter",
        q.refused_for_peers,
    );
    gauge(
        "webhook_events_queued_total",
        "Webhook events accepted for sending.",
        "counter",
        w.queued,
    );
    gauge(
        "webhook_events_sent_total",
        "Webhook events delivered.",
        "counter",
        w.sent,
    );
    gauge(
        "webhook_events_failed_total",
        "Webhook events given up after retries.",
        "counter",
        w.failed,
    );
    gauge(
        "webhook_events_dropped_total",
        "Webhook events dropped because a queue was full.",
        "counter",
        w.dropped,
    );
    gauge(
        "webhook_requests_retried_total",
        "Webhook requests that retried a failed request.",
        "counter",
        w.retried,
    );
    gauge(
        "webhook_events_debounced_total",
        "Webhook events cancelled by the debounce (a vacate or leave undone within 3 s).",
        "counter",
        w.debounced,
    );
    for (name, help, h) in [
        (
            "publish_to_write_microseconds",
            "Publish to the batch holding it written, per flush pass.",
            &s.publish_to_write_us,
        ),
        (
            "queue_delay_microseconds",
            "Time a socket's outbound queue waited to be drained.",
            &s.queue_delay_us,
        ),
        (
            "fanout_recipients",
            "Recipients per delivered event per shard.",
            &s.fanout,
        ),
    ] {
        let _ = writeln!(
            t,
            "# HELP raptor_{name} {help}\n# TYPE raptor_{name} summary"
        );
        for q in [0.5, 0.9, 0.99, 0.999] {
            let v = if h.is_empty() {
                0
            } else {
                h.value_at_quantile(q)
            };
            let _ = writeln!(t, "raptor_{name}{{quantile=\"{q}\"}} {v}");
        }
        let _ = writeln!(t, "raptor_{name}_count {}", h.len());
    }
    let mut r = Response::text(200, &t);
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r
}
