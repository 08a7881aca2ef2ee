//! Test-only WebSocket echo endpoint, `GET /echo`, for the Autobahn conformance suite
//! (tests/conformance/). Off unless `[testing] ws_echo = true` or `raptor serve --ws-echo`;
//! when off, `/echo` is a 404.
//!
//! Autobahn's fuzzing client needs a peer that echoes every message, which `/app/{key}`
//! cannot be. So this session runs the production WebSocket stack and nothing else: the same
//! upgrade checks ([`super::handshake`]), tungstenite's `WebSocketContext` over the same
//! [`SansIo`] adapter as [`super::session`], server frames built by [`crate::frame`] and
//! written through the socket's [`SocketOut`]. Autobahn's verdicts therefore hold for Pusher
//! connections too. Two things differ, both on purpose: messages and frames may be up to
//! [`MAX_MESSAGE`] (the 9.* cases send 16 MiB; Pusher connections keep
//! `limits.max_ws_message_bytes`), and binary messages are echoed instead of refused.
//!
//! **Never enable in production:** any client could make the server buffer and echo 64 MiB
//! messages.

use super::sansio::SansIo;
use crate::frame::{binary_frame, close_frame, Frame};
use crate::outbox::{SocketOut, WriteState};
use crate::protocol::codes;
use crate::shard::Shard;
use crate::transport::Transport;
use bytes::Bytes;
use std::future::poll_fn;
use std::io;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tungstenite::error::{CapacityError, Error as WsError};
use tungstenite::protocol::{Role, WebSocketConfig, WebSocketContext};
use tungstenite::Message;

/// Largest message and frame accepted on `/echo` (the largest `max_ws_message_bytes` allows).
pub const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// Bytes read from the socket per read call. Larger than a Pusher session's: the 9.* cases
/// stream megabytes, and there are only ever a few echo connections.
const READ_CHUNK: usize = 64 * 1024;

/// Whether `/echo` is served. Process-wide and set once, before the shards start accepting,
/// from `testing.ws_echo`; a test switch does not belong in shard state.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns the endpoint on or off (called by [`crate::server::run`] from the config).
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether `/echo` is served.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Runs an echo connection (after the 101 response) until it closes.
pub async fn run(shard: Rc<Shard>, stream: Transport, leftover: Vec<u8>) {
    let limits = Arc::clone(&shard.limits());
    // Room for one maximal echo plus whatever small frames are queued around it.
    let out = SocketOut::new(
        stream,
        shard.flush.clone(),
        limits.outbox_max_frames,
        2 * MAX_MESSAGE,
    );
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_CHUNK)
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let mut ctx = WebSocketContext::new(Role::Server, Some(config));
    let mut io = SansIo::new(leftover);
    let grace = Duration::from_secs(limits.close_grace_secs);
    // Once closing, input is discarded until the peer goes away or the grace period ends
    // (echo sockets are not in the shard's connection table, so the sweeper never sees them).
    let mut closing = false;
    loop {
        if !closing {
            closing = process(&out, &mut ctx, &mut io);
        }
        io.inb.drain(..io.pos);
        io.pos = 0;
        if out.state() == WriteState::Closed {
            break;
        }
        let old = io.inb.len();
        io.inb.resize(old + READ_CHUNK, 0);
        let read = poll_fn(|cx| out.poll_read(cx, &mut io.inb[old..]));
        let n = if closing {
            match glommio::timer::timeout(grace, async { Ok(read.await) }).await {
                Ok(r) => r,
                Err(_) => break,
            }
        } else {
            read.await
        };
        match n {
            Ok(n) if n > 0 => io.inb.truncate(old + n),
            _ => break,
        }
        if closing {
            io.inb.clear();
        }
    }
    out.abort();
}

/// Echoes every complete message in `io`. Returns true when the connection is closing.
fn process(out: &Rc<SocketOut>, ctx: &mut WebSocketContext, io: &mut SansIo) -> bool {
    loop {
        let res = ctx.read(io);
        if res.is_ok() {
            // Move a queued pong or close reply into `io.out` now, so replies leave in the
            // order the peer's frames arrived (a pong between two echoes stays between them).
            let _ = ctx.flush(io);
        }
        let echo = match res {
            Ok(Message::Text(t)) => Frame::text(t.as_bytes()).into_ws(),
            Ok(Message::Binary(b)) => binary_frame(&b),
            Ok(Message::Close(_)) => {
                // tungstenite's reply echoes the peer's code (1002 for a code not allowed on
                // the wire); it is our last frame, after the echoes already queued.
                out.close_with(Bytes::from(std::mem::take(&mut io.out)));
                return true;
            }
            Ok(_) => {
                // Ping (its pong is in `io.out`) or pong.
                push_control(out, io);
                continue;
            }
            Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => return true,
            Err(WsError::Capacity(CapacityError::MessageTooLong { .. })) => {
                out.close_with(close_frame(codes::WS_TOO_BIG, "message too big"));
                return true;
            }
            Err(WsError::Utf8(_)) => {
                out.close_with(close_frame(codes::WS_INVALID_PAYLOAD, "invalid utf-8"));
                return true;
            }
            Err(e) => {
                tracing::debug!(error = %e, "echo: websocket protocol error");
                out.close_with(close_frame(codes::WS_PROTOCOL_ERROR, "protocol error"));
                return true;
            }
        };
        push_control(out, io);
        out.push_ws(echo);
        if out.state() != WriteState::Open {
            // The outbox overflowed and is closing with 4100.
            return true;
        }
    }
    push_control(out, io);
    false
}

/// Queues whatever control replies tungstenite wrote into `io.out`.
fn push_control(out: &Rc<SocketOut>, io: &mut SansIo) {
    if !io.out.is_empty() {
        out.push_control(Bytes::from(std::mem::take(&mut io.out)));
    }
}
