//! `[limits]`: every bound the server enforces, with its default (docs/limits.md says what
//! happens at each).

use super::HttpFallback;
use serde::{Deserialize, Serialize};

/// Every bound the server enforces. Each has a default; docs/limits.md says what happens at it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest WebSocket message a client may send, in bytes; beyond it the socket is closed
    /// with 1009. Default 16 KiB (10 KB of event data plus the envelope).
    pub max_ws_message_bytes: usize,
    /// Largest event `data`, in bytes (Pusher: 10 KB). HTTP publish beyond it gets 413.
    pub max_event_data_bytes: usize,
    /// Largest HTTP request head (request line plus headers). Beyond it: 431.
    pub max_http_header_bytes: usize,
    /// Largest HTTP request body. Beyond it: 413.
    pub max_http_body_bytes: usize,
    /// Seconds a new TCP connection may take to send a complete request head. Beyond it the
    /// socket is closed (slowloris defence).
    pub handshake_timeout_secs: u64,
    /// Seconds an idle HTTP keep-alive connection is kept open.
    pub http_keepalive_secs: u64,
    /// `activity_timeout` announced to clients; the server pings a client silent this long.
    pub activity_timeout_secs: u64,
    /// Seconds to wait for any traffic after a server ping before closing with 4201.
    pub pong_timeout_secs: u64,
    /// Frames queued for one socket before it is cut with 4100.
    pub outbox_max_frames: usize,
    /// Bytes queued for one socket before it is cut with 4100.
    pub outbox_max_bytes: usize,
    /// Seconds a closing socket gets to drain its close frame before it is dropped.
    pub close_grace_secs: u64,
    /// Channels one connection may be subscribed to at once (`pusher:error` 4300 beyond).
    pub max_subscriptions_per_connection: usize,
    /// Channel name length, in bytes.
    pub max_channel_name_bytes: usize,
    /// Event name length, in bytes.
    pub max_event_name_bytes: usize,
    /// Channels one HTTP publish may address (Pusher: 100).
    pub max_channels_per_publish: usize,
    /// Events in one `batch_events` call (Pusher: 10).
    pub max_batch_events: usize,
    /// Capacity of each cross-shard ring (messages).
    pub mesh_queue_capacity: usize,
    /// WebSocket connections this node accepts; beyond it new ones are closed with 4100.
    pub max_connections: usize,
    /// New WebSocket connections per second this node accepts; beyond it they are closed
    /// with 4100 (pusher-js retries after a backoff).
    pub max_new_connections_per_second: u32,
    /// Seconds a shutdown (SIGTERM/SIGINT) waits for clients and webhooks before exiting.
    pub shutdown_grace_secs: u64,
    /// `client-chunked-*` sequences one connection may have open (started, not final) at
    /// once; a further index-0 chunk gets `pusher:error` 4316. Only for apps with
    /// `max_chunked_event_bytes`.
    pub max_open_chunked_events_per_connection: usize,
    /// Bytes (of `chunk` strings) one connection's open chunk sequences may hold together;
    /// a chunk beyond it gets 4316. The server keeps none of them (it relays each chunk), so
    /// this bounds what receivers hold while they reassemble.
    pub max_chunked_bytes_per_connection: usize,
    /// The HTTP transports (xhr_streaming, xhr_polling, SSE): `[limits.http_fallback]`.
    pub http_fallback: HttpFallback,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_ws_message_bytes: 16 * 1024,
            max_event_data_bytes: 10 * 1024,
            max_http_header_bytes: 8 * 1024,
            max_http_body_bytes: 256 * 1024,
            handshake_timeout_secs: 10,
            http_keepalive_secs: 60,
            activity_timeout_secs: 120,
            pong_timeout_secs: 30,
            outbox_max_frames: 4096,
            outbox_max_bytes: 1024 * 1024,
            close_grace_secs: 5,
            max_subscriptions_per_connection: 1000,
            max_channel_name_bytes: 200,
            max_event_name_bytes: 200,
            max_channels_per_publish: 100,
            max_batch_events: 10,
            mesh_queue_capacity: 1024,
            max_connections: 100_000,
            max_new_connections_per_second: 50_000,
            shutdown_grace_secs: 10,
            max_open_chunked_events_per_connection: 4,
            max_chunked_bytes_per_connection: 4 * 1024 * 1024,
            http_fallback: HttpFallback::default(),
        }
    }
}
