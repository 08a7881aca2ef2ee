//! Test-only WebSocket echo endpoint, `GET /echo`, for the Autobahn conformance suite
//! (tests/conformance/). Off unless `[testing] ws_echo = true` or `raptor serve --ws-echo`;
//! when off, `/echo` is a 404.
//!
//! Autobahn's fuzzing client needs a peer that echoes every message, which `/app/{key}`
//! cannot be. So this endpoint runs the production WebSocket stack and nothing else: the same
//! upgrade checks ([`super::handshake`]), the very read loop of Pusher sessions
//! ([`super::reader`]: tungstenite's `WebSocketContext`, control replies, close codes) with a
//! handler that echoes instead of dispatching, server frames built by [`crate::frame`],
//! queued in an [`Outbound`] and written by the same [`WsWriter`]. Autobahn's verdicts
//! therefore hold for Pusher connections too. Three things differ, all on purpose: messages
//! and frames may be up to [`MAX_MESSAGE`] (the 9.* cases send 16 MiB; Pusher connections
//! keep `limits.max_ws_message_bytes`), binary messages are echoed instead of refused, and
//! the read loop ends a closing socket's grace period itself (no sweeper sees it).
//!
//! **Never enable in production:** any client could make the server buffer and echo 64 MiB
//! messages.

use super::reader::{self, Handler, Next};
use crate::frame::{binary_frame, Frame};
use crate::outbox::WsWriter;
use crate::session::{Outbound, Push};
use crate::shard::Shard;
use crate::transport::Transport;
use std::convert::Infallible;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
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
    let out = Outbound::new(
        limits.outbox_max_frames,
        2 * MAX_MESSAGE,
        shard.stats.clone(),
    );
    let writer = WsWriter::attach(stream, out.clone(), shard.flush.clone());
    let mut echo = Echo {
        out: out.clone(),
        grace: Duration::from_secs(limits.close_grace_secs),
    };
    drop(limits);
    reader::run(&writer, leftover, MAX_MESSAGE, &mut echo).await;
    out.abort();
}

/// Echoes every message back.
struct Echo {
    out: Rc<Outbound>,
    grace: Duration,
}

impl Handler for Echo {
    type Wait = Infallible;
    const READ_CHUNK: usize = READ_CHUNK;

    /// Echo sockets are not in the shard's connection table, so the sweeper never sees them:
    /// the read loop ends their grace period itself.
    fn grace(&self) -> Option<Duration> {
        Some(self.grace)
    }

    fn on_message(&mut self, msg: Message) -> Next<Infallible> {
        let echo = match msg {
            Message::Binary(b) => binary_frame(&b),
            Message::Text(t) => Frame::text(t.as_bytes()),
            _ => return Next::Read,
        };
        match self.out.push(echo) {
            Push::Queued => Next::Read,
            // The queue overflowed and is closing with 4100.
            Push::Dropped | Push::Overflow => Next::Stop,
        }
    }

    async fn wait(&mut self, work: Infallible) {
        match work {}
    }
}
