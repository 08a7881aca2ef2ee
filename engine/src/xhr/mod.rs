//! The HTTP transports beside the WebSocket: pusher-js's own fallbacks, xhr_streaming and
//! xhr_polling (a SockJS-style framing over POSTs, [`framing`]), and Server-Sent Events for
//! receive-only clients ([`sse`]). docs/protocol.md "HTTP transports" is the user's view,
//! docs/architecture.md "Sessions and transports" where they sit.
//!
//! A session outlives the requests that carry it: pusher-js re-opens a stream every 256 KiB,
//! a poller comes back for every response, and sends are requests of their own, each on any
//! TCP connection, so on any shard. So a session lives on one **home shard**, picked by
//! hashing its key ([`home_of`]), as a [`Connection`](crate::session::Connection) in the
//! shard's table like a WebSocket's, with the same commands, limits, pings and closes. A
//! request arriving on another shard talks to the home over the mesh ([`XhrMsg`]): a
//! receiving request registers a **receiver** there ([`receive`]) and writes the chunks the
//! home sends it; a send is forwarded and answered with the status the home decides.
//!
//! **Invariant:** at most one chunk of a session is in flight at a time, and it is retired
//! only when its receiver reports it written ([`XhrMsg::Written`]); a chunk whose receiver
//! went first is sent again to the next receiver. So a stream re-opened or a poll lost on
//! the way loses no frame and repeats none.

pub mod cors;
mod edge;
pub mod framing;
pub mod receive;
mod session;
pub mod sse;

use crate::app::AppIdx;
use crate::channel::history::Position;
use crate::placement::{shard_for, ShardId};
use crate::shard::Shard;
use bytes::Bytes;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

pub use edge::{route, Receive};
pub use session::tick;

/// Longest `{server}` or `{session}` path segment accepted (pusher-js sends 1–3 digits and 8
/// characters).
const MAX_SEGMENT: usize = 64;

/// What a request under the HTTP transports' path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `…/xhr_streaming`: a receiver that stays open.
    Streaming,
    /// `…/xhr`: a receiver answered once.
    Polling,
    /// `…/xhr_send`: client messages.
    Send,
    /// `…/sse`: a Server-Sent Events stream.
    Sse,
}

/// A request under the HTTP transports' path.
#[derive(Debug, PartialEq, Eq)]
pub struct Route<'a> {
    pub app_key: &'a str,
    /// `{server}/{session}` (none for SSE).
    pub session: Option<&'a str>,
    pub kind: Kind,
}

/// Reads `path` as `{prefix}/app/{key}/{server}/{session}/{xhr_streaming|xhr|xhr_send}` or
/// `{prefix}/app/{key}/sse`; `None` when it is not under `prefix` at all.
pub fn parse<'a>(path: &'a str, prefix: &str) -> Option<Result<Route<'a>, &'static str>> {
    let rest = path.strip_prefix(prefix)?.strip_prefix("/app/")?;
    let segs: Vec<&str> = rest.split('/').collect();
    let ok_seg = |s: &str| {
        !s.is_empty() && s.len() <= MAX_SEGMENT && s.bytes().all(|b| b.is_ascii_alphanumeric())
    };
    Some(match segs.as_slice() {
        [key, "sse"] => Ok(Route {
            app_key: key,
            session: None,
            kind: Kind::Sse,
        }),
        [key, server, session, kind] if ok_seg(server) && ok_seg(session) => {
            let kind = match *kind {
                "xhr_streaming" => Kind::Streaming,
                "xhr" => Kind::Polling,
                "xhr_send" => Kind::Send,
                _ => return Some(Err("unknown transport (xhr_streaming, xhr, xhr_send, sse)")),
            };
            let start = key.len() + 1;
            Ok(Route {
                app_key: key,
                session: Some(&rest[start..start + server.len() + 1 + session.len()]),
                kind,
            })
        }
        _ => {
            Err("expected {path}/app/{key}/{server}/{session}/{transport} or {path}/app/{key}/sse")
        }
    })
}

/// The home shard of the session `key`.
pub fn home_of(key: &str, nr_shards: usize) -> ShardId {
    shard_for("http-session", key, nr_shards)
}

/// How a receiver frames what it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Streaming,
    Polling,
    Sse,
}

/// A receiving request's registration at its session's home.
#[derive(Debug)]
pub struct Open {
    pub key: Arc<str>,
    pub from: ShardId,
    pub rid: u64,
    pub app: AppIdx,
    pub mode: Mode,
    /// `?token=` (docs/tokens.md), checked when the session opens.
    pub token: Option<String>,
    /// SSE: the channels to follow and where to resume them.
    pub sse: Option<Box<sse::Follow>>,
}

/// Messages between a session's home shard and the shards its requests arrive on.
#[derive(Debug)]
pub enum XhrMsg {
    /// Request shard → home: attach this receiver, opening the session if it is new.
    Open(Open),
    /// Home → request shard: bytes for receiver `rid`; `end`: its response ends after them.
    /// Answered with exactly one `Written` or `Gone`.
    Chunk {
        key: Arc<str>,
        /// The home shard (where `Written`/`Gone` go).
        from: ShardId,
        rid: u64,
        bytes: Bytes,
        end: bool,
    },
    /// Home → request shard: receiver `rid` was replaced (`over: false`: it just ends), or
    /// its session ended without its close reaching the client (`over`: it says so with
    /// `c[4200,"session ended"]`, and pusher-js reconnects).
    End { rid: u64, over: bool },
    /// Request shard → home: receiver `rid` wrote its chunk.
    Written { key: Arc<str>, rid: u64 },
    /// Request shard → home: receiver `rid` is gone (its client left, or a write failed)
    /// without writing its chunk, if it had one.
    Gone { key: Arc<str>, rid: u64 },
    /// Request shard → home: an `xhr_send` body; answered with `Reply::Status`.
    Send {
        key: Arc<str>,
        from: ShardId,
        id: u64,
        body: Vec<u8>,
    },
}

/// One shard's part: the sessions it is home to, and the receivers it serves.
#[derive(Default)]
pub struct Local {
    sessions: RefCell<HashMap<Arc<str>, Rc<session::HttpSession>>>,
    receivers: RefCell<HashMap<u64, Rc<receive::Slot>>>,
    next_rid: Cell<u64>,
}

impl Local {
    /// A number no other shard of the node hands out (receiver ids, event-stream keys): the
    /// home matches `Written`/`Gone` by it, and they come from any shard.
    pub fn next_id(&self, shard: ShardId) -> u64 {
        let n = self.next_rid.get() + 1;
        self.next_rid.set(n);
        ((shard as u64) << 48) | n
    }

    /// Sessions this shard is home to (for stats).
    pub fn sessions(&self) -> usize {
        self.sessions.borrow().len()
    }
}

/// Handles one message (from the mesh; never awaits).
pub fn handle(shard: &Rc<Shard>, msg: XhrMsg) {
    match msg {
        XhrMsg::Open(open) => session::open(shard, open),
        XhrMsg::Chunk {
            key,
            from,
            rid,
            bytes,
            end,
        } => receive::chunk(shard, key, from, rid, bytes, end),
        XhrMsg::End { rid, over } => receive::end(shard, rid, over),
        XhrMsg::Written { key, rid } => session::written(shard, &key, rid),
        XhrMsg::Gone { key, rid } => session::gone(shard, &key, rid),
        XhrMsg::Send {
            key,
            from,
            id,
            body,
        } => session::send(shard, &key, from, id, body),
    }
}

/// Positions to resume from, for [`sse::Follow`].
pub type Resume = Vec<Option<Position>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let r = parse("/pusher/app/app-key/447/litcrmf1/xhr_streaming", "/pusher");
        assert_eq!(
            r,
            Some(Ok(Route {
                app_key: "app-key",
                session: Some("447/litcrmf1"),
                kind: Kind::Streaming
            }))
        );
        let r = parse("/pusher/app/k/7/abc/xhr_send", "/pusher")
            .unwrap()
            .unwrap();
        assert_eq!((r.session, r.kind), (Some("7/abc"), Kind::Send));
        let r = parse("/x/y/app/k/sse", "/x/y").unwrap().unwrap();
        assert_eq!((r.app_key, r.session, r.kind), ("k", None, Kind::Sse));
        assert_eq!(parse("/app/k", "/pusher"), None);
        assert_eq!(parse("/pusherx/app/k/1/a/xhr", "/pusher"), None);
        assert!(parse("/pusher/app/k/1/a/websocket", "/pusher")
            .unwrap()
            .is_err());
        assert!(parse("/pusher/app/k/1/a.b/xhr", "/pusher")
            .unwrap()
            .is_err());
        assert!(parse("/pusher/app/k/1//xhr", "/pusher").unwrap().is_err());
        assert!(parse("/pusher/app/k", "/pusher").unwrap().is_err());
    }

    #[test]
    fn a_session_has_one_home() {
        let homes: std::collections::HashSet<_> =
            (0..64).map(|i| home_of(&format!("k/1/s{i}"), 4)).collect();
        assert_eq!(homes.len(), 4, "sessions spread over the shards");
        assert_eq!(home_of("k/1/abc", 4), home_of("k/1/abc", 4));
    }
}
