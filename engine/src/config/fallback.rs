//! `[limits.http_fallback]`: the HTTP transports beside the WebSocket (pusher-js's
//! xhr_streaming and xhr_polling, and Server-Sent Events; docs/protocol.md "HTTP
//! transports"). docs/limits.md says what happens at each bound.

use super::{invalid, ConfigError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpFallback {
    /// Serve the HTTP transports at all. Default on: pusher-js falls back to them by itself.
    pub enabled: bool,
    /// Where they are served: pusher-js's `httpPath` (its default, `/pusher`).
    pub path: String,
    /// Seconds a session may have no receiving request (a stream or a poll) before it ends as
    /// a disconnect (presence leave, webhooks). SockJS's and pusher-js's expectation: 5.
    pub disconnect_delay_secs: u64,
    /// Seconds without anything written before a receiver gets a heartbeat (`h`; a comment
    /// line on SSE). pusher-js treats a silent HTTP transport as lost after its activity
    /// timeout plus its pong timeout; SockJS uses 25.
    pub heartbeat_secs: u64,
    /// HTTP sessions (xhr and SSE) on this node at once; beyond it a new one is refused with
    /// 4100. They count against `max_connections` as well.
    pub max_sessions: usize,
    /// `xhr_send` requests of one session waiting to be handled; beyond it: 429.
    pub max_pending_sends: usize,
}

impl Default for HttpFallback {
    fn default() -> Self {
        HttpFallback {
            enabled: true,
            path: "/pusher".into(),
            disconnect_delay_secs: 5,
            heartbeat_secs: 25,
            max_sessions: 10_000,
            max_pending_sends: 16,
        }
    }
}

impl HttpFallback {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let at = |f: &str| format!("limits.http_fallback.{f}");
        let p = &self.path;
        if !p.starts_with('/') || p.len() < 2 || p.ends_with('/') || p.contains(['?', '#', ' ']) {
            return Err(invalid(
                at("path"),
                "must start with `/`, not end with one, and hold no `?`, `#` or space (e.g. \"/pusher\")",
            ));
        }
        if p == "/app" || p == "/apps" || p.starts_with("/app/") || p.starts_with("/apps/") {
            return Err(invalid(at("path"), "must not overlap /app or /apps"));
        }
        if !(1..=3600).contains(&self.disconnect_delay_secs) {
            return Err(invalid(at("disconnect_delay_secs"), "must be 1..=3600"));
        }
        if !(1..=300).contains(&self.heartbeat_secs) {
            return Err(invalid(at("heartbeat_secs"), "must be 1..=300"));
        }
        if self.max_pending_sends == 0 {
            return Err(invalid(at("max_pending_sends"), "must be at least 1"));
        }
        Ok(())
    }
}
