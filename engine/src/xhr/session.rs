//! A session's home shard: the HTTP session ([`HttpSession`]: a [`Connection`] with its
//! queue, the receiver it writes to now, the chunk in flight), how receivers attach and are
//! answered, the sends, heartbeats and the disconnect delay. See the module above for the
//! message flow and its invariant.

use super::framing::{self, HEARTBEAT, OPEN, SSE_HEARTBEAT, STREAM_LIMIT};
use super::{sse, Mode, Open, XhrMsg};
use crate::placement::ShardId;
use crate::protocol::{codes, server as frames};
use crate::session::outbound::Writer;
use crate::session::{Connection, Outbound, WriteState};
use crate::shard::msg::{Reply, ShardMsg};
use crate::shard::Shard;
use bytes::Bytes;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::rc::{Rc, Weak};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Bytes of frames one chunk carries at most (more wait for the next chunk): keeps a mesh
/// message and a write small, whatever the queue holds.
const CHUNK_BYTES: usize = 64 * 1024;

/// The request serving a session now.
#[derive(Debug, Clone, Copy)]
struct Receiver {
    shard: ShardId,
    rid: u64,
    mode: Mode,
    /// Bytes written on this response (a stream stops at [`STREAM_LIMIT`]).
    written: usize,
    /// Last write to it, or its arrival: when its heartbeat is due.
    last: Instant,
}

/// The chunk sent and not yet reported written.
struct Inflight {
    /// The receiver it went to; 0 once that receiver went without writing it (it goes to
    /// the next receiver).
    rid: u64,
    bytes: Bytes,
    /// It carries the session's close: once written, the session is over.
    closes: bool,
}

struct PendingSend {
    from: ShardId,
    id: u64,
    body: Vec<u8>,
}

pub struct HttpSession {
    key: Arc<str>,
    pub conn: Rc<Connection>,
    /// SSE: the positions its event ids carry. `None`: pusher-js's xhr framing.
    sse: Option<RefCell<sse::Cursor>>,
    receiver: Cell<Option<Receiver>>,
    inflight: RefCell<Option<Inflight>>,
    /// `o` was sent (it is sent once per session).
    opened: Cell<bool>,
    /// Since when no receiver was attached (the disconnect delay counts from it).
    detached_since: Cell<Option<Instant>>,
    sends: RefCell<VecDeque<PendingSend>>,
    sending: Cell<bool>,
    /// Kept here: the queue holds its writer weakly.
    _writer: Rc<XhrWriter>,
}

/// The session queue's writer: a pass builds the next chunk for the receiver. Deferred to a
/// task of its own, since a queue wakes its writer from inside a fan-out, where the shard's
/// tables are borrowed.
struct XhrWriter {
    shard: Weak<Shard>,
    key: Arc<str>,
}

impl Writer for XhrWriter {
    fn wake(self: Rc<Self>) {
        glommio::spawn_local(async move {
            if let Some(shard) = self.shard.upgrade() {
                if let Some(s) = lookup(&shard, &self.key) {
                    pump(&shard, &s);
                }
            }
        })
        .detach();
    }

    fn abort(&self) {
        let (shard, key) = (self.shard.clone(), self.key.clone());
        glommio::spawn_local(async move {
            if let Some(shard) = shard.upgrade() {
                forget(&shard, &key);
            }
        })
        .detach();
    }

    fn cut(&self) {}
}

fn lookup(shard: &Shard, key: &str) -> Option<Rc<HttpSession>> {
    shard.xhr.sessions.borrow().get(key).cloned()
}

fn to(shard: &Shard, dst: ShardId, msg: XhrMsg) {
    shard.mesh.send(dst, ShardMsg::Xhr(Box::new(msg)));
}

/// A receiving request arrived: attach it to its session, opening the session when new.
pub(super) fn open(shard: &Rc<Shard>, o: Open) {
    let now = Instant::now();
    let receiver = Receiver {
        shard: o.from,
        rid: o.rid,
        mode: o.mode,
        written: 0,
        last: now,
    };
    if let Some(s) = lookup(shard, &o.key) {
        return attach(shard, &s, receiver);
    }
    let refuse = |code: u16, message: &str| {
        let mut buf = Vec::new();
        let error = frames::error(code, message);
        if o.mode == Mode::Sse {
            framing::sse_event(&mut buf, None, error.payload());
        } else {
            buf.extend_from_slice(OPEN);
            framing::messages(&mut buf, [error.payload()]);
            framing::close(&mut buf, code, message);
        }
        let (key, rid, from) = (o.key.clone(), o.rid, shard.id);
        let bytes = Bytes::from(buf);
        to(
            shard,
            o.from,
            XhrMsg::Chunk {
                key,
                from,
                rid,
                bytes,
                end: true,
            },
        );
    };
    let app = shard.app(o.app);
    let limits = shard.limits();
    let fallback = &limits.http_fallback;
    if app.removed {
        return refuse(codes::APP_NOT_FOUND, "App removed");
    }
    if shard.node.http_sessions.fetch_add(1, Relaxed) >= fallback.max_sessions {
        shard.node.http_sessions.fetch_sub(1, Relaxed);
        return refuse(codes::OVER_CAPACITY, "Over HTTP session quota");
    }
    if let Err((code, message)) = shard.admit(&app) {
        shard.node.http_sessions.fetch_sub(1, Relaxed);
        return refuse(code, message);
    }
    let (id, socket_id) = shard.next_ids();
    let out = Outbound::new(
        limits.outbox_max_frames,
        limits.outbox_max_bytes,
        shard.stats.clone(),
    );
    let writer = Rc::new(XhrWriter {
        shard: Rc::downgrade(shard),
        key: o.key.clone(),
    });
    out.attach(Rc::downgrade(&writer) as Weak<dyn Writer>);
    let conn = Rc::new(Connection::new(id, socket_id, &app, out));
    tracing::debug!(shard = shard.id, app = %app.id, %socket_id, mode = ?o.mode, "http session opened");
    let s = Rc::new(HttpSession {
        key: o.key.clone(),
        conn: conn.clone(),
        sse: o.sse.as_ref().map(|f| RefCell::new(sse::Cursor::new(f))),
        receiver: Cell::new(None),
        inflight: RefCell::new(None),
        opened: Cell::new(o.mode == Mode::Sse),
        detached_since: Cell::new(None),
        sends: RefCell::new(VecDeque::new()),
        sending: Cell::new(false),
        _writer: writer,
    });
    shard.conns.borrow_mut().insert(id, conn.clone());
    shard
        .xhr
        .sessions
        .borrow_mut()
        .insert(o.key.clone(), s.clone());
    conn.out.push(frames::connection_established(
        &socket_id.to_string(),
        limits.activity_timeout_secs,
    ));
    drop(limits);
    if let Some(t) = &o.token {
        crate::commands::tokens::at_connect(shard, &conn, t);
    }
    if let Some(follow) = &o.sse {
        sse::subscribe_all(shard, &conn, follow);
    }
    attach(shard, &s, receiver);
}

/// `r` becomes the session's receiver; one it replaces is finished.
fn attach(shard: &Rc<Shard>, s: &Rc<HttpSession>, r: Receiver) {
    // Any request of the session is activity (drives server pings and 4201).
    s.conn.last_seen.set(Instant::now());
    s.conn.pinged.set(false);
    s.detached_since.set(None);
    if let Some(old) = s.receiver.replace(Some(r)) {
        let (shard_of, rid) = (old.shard, old.rid);
        to(shard, shard_of, XhrMsg::End { rid, over: false });
    }
    pump(shard, s);
}

/// Sends the receiver what is due: the chunk in flight again if its receiver went without
/// writing it, else the next chunk (queued frames, then the close).
///
/// While nothing can be sent (no receiver, a chunk in flight, a stream at its limit) the
/// writer stays "scheduled", so pushes do not wake it for nothing: what changes that
/// (a receiver attaching, a chunk written) calls this again.
fn pump(shard: &Rc<Shard>, s: &Rc<HttpSession>) {
    let out = &s.conn.out;
    if out.state() == WriteState::Closed {
        return;
    }
    let Some(mut r) = s.receiver.get() else {
        return;
    };
    if let Some(f) = s.inflight.borrow_mut().as_mut() {
        if f.rid == 0 {
            f.rid = r.rid;
            let end = f.closes || r.mode == Mode::Polling;
            send_chunk(shard, s, &mut r, f.bytes.clone(), end);
        }
        return;
    }
    if r.mode == Mode::Streaming && r.written > STREAM_LIMIT {
        // The client re-opens; what is queued waits for it.
        return;
    }
    // From here every queued frame is taken: the next push wakes the writer again.
    out.idle();
    let mut buf = Vec::new();
    if !s.opened.replace(true) {
        buf.extend_from_slice(OPEN);
    }
    let mut taken = Vec::new();
    let mut size = 0;
    while size < CHUNK_BYTES {
        let Some(f) = out.pop() else { break };
        size += f.len();
        taken.push(f);
    }
    if !taken.is_empty() {
        match &s.sse {
            None => framing::messages(&mut buf, taken.iter().map(|f| f.payload())),
            Some(cursor) => {
                let mut cursor = cursor.borrow_mut();
                for f in &taken {
                    let id = cursor.advance(f.payload());
                    framing::sse_event(&mut buf, id.as_deref(), f.payload());
                }
            }
        }
    }
    let close = out.take_close();
    if let Some((code, reason)) = close {
        match &s.sse {
            None => framing::close(&mut buf, code, reason),
            Some(_) => framing::sse_event(&mut buf, None, frames::error(code, reason).payload()),
        }
    }
    if buf.is_empty() {
        return;
    }
    let closes = close.is_some();
    let bytes = Bytes::from(buf);
    *s.inflight.borrow_mut() = Some(Inflight {
        rid: r.rid,
        bytes: bytes.clone(),
        closes,
    });
    let end = closes || r.mode == Mode::Polling;
    send_chunk(shard, s, &mut r, bytes, end);
}

fn send_chunk(shard: &Shard, s: &HttpSession, r: &mut Receiver, bytes: Bytes, end: bool) {
    r.written += bytes.len();
    r.last = Instant::now();
    s.receiver.set(Some(*r));
    let (key, from, rid) = (s.key.clone(), shard.id, r.rid);
    to(
        shard,
        r.shard,
        XhrMsg::Chunk {
            key,
            from,
            rid,
            bytes,
            end,
        },
    );
}

/// Receiver `rid` wrote its chunk.
pub(super) fn written(shard: &Rc<Shard>, key: &str, rid: u64) {
    let Some(s) = lookup(shard, key) else { return };
    let done = {
        let mut inflight = s.inflight.borrow_mut();
        match inflight.as_ref() {
            Some(f) if f.rid == rid => inflight.take(),
            _ => None,
        }
    };
    let Some(done) = done else { return };
    if s.sse.is_some() {
        // An event stream's client cannot answer a server ping: a write that went through
        // (a heartbeat at least every `heartbeat_secs`) is its sign of life instead.
        s.conn.last_seen.set(Instant::now());
        s.conn.pinged.set(false);
    }
    if done.closes {
        s.conn.out.close_sent();
        s.conn.out.abort();
        return;
    }
    if let Some(r) = s.receiver.get().filter(|r| r.rid == rid) {
        if r.mode == Mode::Polling {
            s.receiver.set(None);
            s.detached_since.set(Some(Instant::now()));
        }
    }
    pump(shard, &s);
}

/// Receiver `rid` is gone, without writing its chunk if it had one.
pub(super) fn gone(shard: &Rc<Shard>, key: &str, rid: u64) {
    let Some(s) = lookup(shard, key) else { return };
    let unsent = match s.inflight.borrow_mut().as_mut().filter(|f| f.rid == rid) {
        Some(f) => {
            f.rid = 0;
            true
        }
        None => false,
    };
    if s.receiver.get().is_some_and(|r| r.rid == rid) {
        s.receiver.set(None);
        s.detached_since.set(Some(Instant::now()));
        if s.sse.is_some() {
            // An event stream is its one request: its end is the session's.
            s.conn.out.abort();
        }
    }
    if unsent {
        // To the receiver that replaced it, if one did.
        pump(shard, &s);
    }
}

/// The session is over (its queue was aborted): out of the tables, its receiver finished.
fn forget(shard: &Rc<Shard>, key: &str) {
    let Some(s) = shard.xhr.sessions.borrow_mut().remove(key) else {
        return;
    };
    shard.node.http_sessions.fetch_sub(1, Relaxed);
    shard.remove_connection(&s.conn);
    if let Some(r) = s.receiver.take() {
        let (shard_of, rid) = (r.shard, r.rid);
        to(shard, shard_of, XhrMsg::End { rid, over: true });
    }
    tracing::debug!(shard = shard.id, socket_id = %s.conn.socket_id, "http session closed");
}

/// Once a second: heartbeats for receivers with nothing written for `heartbeat_secs`, and
/// the end of sessions without a receiver for `disconnect_delay_secs`.
pub fn tick(shard: &Rc<Shard>, now: Instant) {
    let (heartbeat, delay) = {
        let f = &shard.limits().http_fallback;
        (
            Duration::from_secs(f.heartbeat_secs),
            Duration::from_secs(f.disconnect_delay_secs),
        )
    };
    let sessions: Vec<_> = shard.xhr.sessions.borrow().values().cloned().collect();
    for s in sessions {
        match s.receiver.get() {
            Some(mut r) => {
                let idle = now.saturating_duration_since(r.last) >= heartbeat
                    && !(r.mode == Mode::Streaming && r.written > STREAM_LIMIT);
                let free = s.inflight.borrow().is_none();
                if idle && free && s.conn.out.state() == WriteState::Open {
                    let beat = if s.sse.is_some() {
                        SSE_HEARTBEAT
                    } else {
                        HEARTBEAT
                    };
                    let bytes = Bytes::from_static(beat);
                    *s.inflight.borrow_mut() = Some(Inflight {
                        rid: r.rid,
                        bytes: bytes.clone(),
                        closes: false,
                    });
                    let end = r.mode == Mode::Polling;
                    send_chunk(shard, &s, &mut r, bytes, end);
                }
            }
            None => {
                let since = s.detached_since.get().unwrap_or(now);
                // A draining server does not wait for a receiver that may never come.
                let draining = shard.node.shutting_down() && s.conn.out.close_pending();
                if draining || now.saturating_duration_since(since) >= delay {
                    s.conn.out.abort();
                }
            }
        }
    }
}

/// An `xhr_send` body for session `key`; answered with its status once handled (in order
/// with the session's other sends).
pub(super) fn send(shard: &Rc<Shard>, key: &str, from: ShardId, id: u64, body: Vec<u8>) {
    let reply = |status| {
        shard.mesh.send(
            from,
            ShardMsg::Reply {
                id,
                reply: Reply::Status(status),
            },
        )
    };
    let Some(s) = lookup(shard, key) else {
        return reply(404);
    };
    if s.sse.is_some() {
        return reply(405);
    }
    if s.conn.out.state() != WriteState::Open {
        return reply(404);
    }
    if s.sending.get() {
        // One is waiting for room towards a client event's order point: the rest wait for
        // it, in order, up to the bound.
        if s.sends.borrow().len() >= shard.limits().http_fallback.max_pending_sends {
            return reply(429);
        }
        s.sends
            .borrow_mut()
            .push_back(PendingSend { from, id, body });
        return;
    }
    // Handled now unless a client event has to wait for room (a subscribe never does), so
    // a burst of subscriptions is never refused for waiting.
    let mut work = Box::pin(handle_send(shard.clone(), s.conn.clone(), body));
    if let Poll::Ready(status) = work.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        return reply(status);
    }
    s.sending.set(true);
    let shard = shard.clone();
    glommio::spawn_local(async move {
        let status = work.await;
        shard.mesh.send(
            from,
            ShardMsg::Reply {
                id,
                reply: Reply::Status(status),
            },
        );
        handle_sends(shard, s).await;
    })
    .detach();
}

/// Handles the session's sends one after the other (a client event waits for room on its
/// way to the order point, as a WebSocket's does).
async fn handle_sends(shard: Rc<Shard>, s: Rc<HttpSession>) {
    loop {
        let next = s.sends.borrow_mut().pop_front();
        let Some(p) = next else { break };
        let status = handle_send(shard.clone(), s.conn.clone(), p.body).await;
        shard.mesh.send(
            p.from,
            ShardMsg::Reply {
                id: p.id,
                reply: Reply::Status(status),
            },
        );
    }
    s.sending.set(false);
}

async fn handle_send(shard: Rc<Shard>, conn: Rc<Connection>, body: Vec<u8>) -> u16 {
    let (shard, conn) = (&shard, &conn);
    conn.last_seen.set(Instant::now());
    conn.pinged.set(false);
    let Ok(messages) = framing::parse_send(&body) else {
        return 400;
    };
    let max = shard.limits().max_ws_message_bytes;
    for m in messages {
        if conn.out.state() != WriteState::Open {
            break;
        }
        if m.len() > max {
            // As a WebSocket message over the bound: the session closes with 1009.
            conn.out.close(codes::WS_TOO_BIG, "message too big");
            return 413;
        }
        let mut bytes = m.into_bytes();
        if let Some(ev) = crate::commands::on_message(shard, conn, &mut bytes) {
            Box::pin(shard.publish_client_event(ev)).await;
        }
    }
    204
}
