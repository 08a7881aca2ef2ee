//! The WebSocket upgrade (RFC 6455 §4.2) for `/app/{key}?protocol=7`.
//!
//! Transport problems are answered in HTTP (400/426). Pusher-level problems (unknown key,
//! missing or unsupported protocol) are answered the Pusher way: the upgrade succeeds, then
//! the client gets `pusher:error` and a close frame with the code, so pusher-js can act on it.

use crate::app::App;
use crate::http1::request::Request;
use crate::http1::response::Response;
use crate::protocol::codes;
use crate::shard::Shard;
use std::sync::Arc;

/// The one protocol version Raptor speaks.
pub const PROTOCOL: &str = "7";

/// What the session does after the 101 response.
pub struct Upgrade {
    /// The `Sec-WebSocket-Accept` value.
    pub accept: String,
    pub outcome: Outcome,
    /// An access token in the URL (`?token=`, docs/tokens.md), checked once the session is
    /// open (a refusal is a Pusher close, 4009, not an HTTP answer). A thin box: this value
    /// lives in every connection task's future while it upgrades (`http::conn` keeps that
    /// future small).
    #[allow(clippy::box_collection)]
    pub token: Option<Box<String>>,
}

pub enum Outcome {
    /// A valid Pusher connection for this app.
    Open(Arc<App>),
    /// Refuse after upgrading: send `pusher:error` and close with this code.
    Refuse { code: u16, message: &'static str },
    /// The test-only echo endpoint (`/echo`, see [`super::echo`]).
    Echo,
}

/// Checks a WebSocket upgrade request: the upgrade to complete, or the HTTP answer that
/// refuses it.
pub fn check(shard: &Shard, req: &Request) -> Result<Upgrade, Response> {
    if req.method != "GET" {
        return Err(Response::error(405, "a WebSocket upgrade must be a GET"));
    }
    if !req.connection_upgrade {
        return Err(Response::error(400, "missing Connection: Upgrade"));
    }
    if req.ws_version.as_deref() != Some("13") {
        let mut r = Response::error(426, "unsupported Sec-WebSocket-Version (13 required)");
        r.extra_headers.push_str("Sec-WebSocket-Version: 13\r\n");
        return Err(r);
    }
    let Some(key) = req.ws_key.as_deref().filter(|k| !k.is_empty()) else {
        return Err(Response::error(400, "missing Sec-WebSocket-Key"));
    };
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let segs: Vec<&str> = req.raw_path.trim_start_matches('/').split('/').collect();
    let outcome = match segs.as_slice() {
        ["echo"] if super::echo::enabled() => Outcome::Echo,
        ["app", key] => match shard.apps().by_key(key) {
            None => Outcome::Refuse {
                code: codes::APP_NOT_FOUND,
                message: "App key not in this cluster",
            },
            Some(app) => match req.param("protocol") {
                None => Outcome::Refuse {
                    code: codes::NO_PROTOCOL,
                    message: "No protocol version supplied",
                },
                Some(PROTOCOL) if !origin_allowed(app, req.origin.as_deref()) => Outcome::Refuse {
                    code: codes::UNAUTHORIZED,
                    message: "Origin not allowed",
                },
                Some(PROTOCOL) => Outcome::Open(app.clone()),
                Some(_) => Outcome::Refuse {
                    code: codes::UNSUPPORTED_PROTOCOL,
                    message: "Unsupported protocol version (7 is supported)",
                },
            },
        },
        _ => Outcome::Refuse {
            code: codes::PATH_NOT_FOUND,
            message: "Path not found (expected /app/{key})",
        },
    };
    let token = req.param("token").map(|t| Box::new(t.to_string()));
    Ok(Upgrade {
        accept,
        outcome,
        token,
    })
}

/// The 101 response. No extension is accepted: permessage-deflate is declined by omission.
pub fn switching_protocols(accept: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\nServer: raptor\r\n\r\n"
    )
}

/// `allowed_origins` empty allows every origin; a request without `Origin` (not a browser)
/// is always allowed, since the check exists to stop other sites' pages, not servers.
fn origin_allowed(app: &App, origin: Option<&str>) -> bool {
    match origin {
        None => true,
        Some(o) => {
            app.allowed_origins.is_empty()
                || app
                    .allowed_origins
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(o))
        }
    }
}
