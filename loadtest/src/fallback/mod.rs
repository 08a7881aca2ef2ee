//! Subscribers over the HTTP fallback transports instead of a WebSocket: pusher-js's
//! xhr_streaming and xhr_polling (SockJS-style framing over POSTs, sends through
//! `xhr_send`), and Server-Sent Events (receive only; the channel is named in the URL).
//! What the client sends and reads is what pusher-js 8.6 does
//! (../shared/reference/http-fallback.md); Raptor's side is docs/protocol.md.
//!
//! The same design as the WebSocket side ([`crate::net`]): one mio loop per worker thread,
//! one scratch buffer for every read, per-session bytes kept only for a line or an event
//! split across reads. Latency and sequence checks are the WebSocket subscribers' own
//! ([`crate::subscribers`]): the transport changes, the measurement does not.

pub mod chunked;
pub mod http;
pub mod sockjs;
pub mod sse;
mod worker;

pub(crate) use worker::run_worker;

use std::fmt;
use std::str::FromStr;

/// pusher-js's default `httpPath`, under which the HTTP transports are served.
pub const DEFAULT_HTTP_PATH: &str = "/pusher";

/// Characters after which pusher-js aborts a streaming response and POSTs a new one on the
/// same session (its `MAX_BUFFER_LENGTH`, 256 KiB counted in UTF-16 units; the frames are
/// ASCII, so bytes).
pub const STREAM_REOPEN_AFTER: usize = 256 * 1024;

/// How subscribers reach the server.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// WebSocket (the default, and the only one presence and connect-storm use)
    #[default]
    Ws,
    XhrStreaming,
    XhrPolling,
    Sse,
}

impl Transport {
    pub const ALL: [Transport; 4] = [
        Transport::Ws,
        Transport::XhrStreaming,
        Transport::XhrPolling,
        Transport::Sse,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Transport::Ws => "ws",
            Transport::XhrStreaming => "xhr_streaming",
            Transport::XhrPolling => "xhr_polling",
            Transport::Sse => "sse",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Transport {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Transport::ALL
            .into_iter()
            .find(|t| t.name() == s || t.name().replace('_', "-") == s)
            .ok_or_else(|| {
                format!("{s:?} is not a transport (ws, xhr_streaming, xhr_polling, sse)")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_names() {
        for t in Transport::ALL {
            assert_eq!(t.name().parse::<Transport>(), Ok(t));
        }
        assert_eq!(
            "xhr-polling".parse::<Transport>(),
            Ok(Transport::XhrPolling)
        );
        assert!("wss".parse::<Transport>().is_err());
    }
}
