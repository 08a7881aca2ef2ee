//! `client-chunked-*` client events (docs/protocol.md, "Large events in chunks"): for an
//! app with `max_chunked_event_bytes`, each chunk is checked as part of its sequence
//! (`session::chunks`) and against the chunk allowance before it is relayed as an ordinary
//! client event. A refused chunk gets `pusher:error` 4316 and is not relayed; the
//! connection stays open, as for every client-event refusal.

use crate::app::App;
use crate::protocol::chunks::{self, CLIENT_PREFIX};
use crate::protocol::{codes, server as frames};
use crate::session::chunks::{ChunkBounds, ChunkIn};
use crate::session::Connection;
use crate::shard::Shard;
use std::time::Instant;

/// The event is a chunk the server must check (its app has chunked events on).
pub(super) fn is_checked_chunk(app: &App, event: &str) -> bool {
    app.max_chunked_event_bytes > 0 && event.starts_with(CLIENT_PREFIX)
}

/// Checks one chunk and takes it into its sequence; false (and the refusal sent) when it
/// must not be relayed. Rate accounting: a sequence's first chunk counts once against
/// `client_events_per_second` (4301 beyond, as any client event); every chunk counts
/// against `client_chunks_per_second`, a separate allowance, so that a large event is
/// not held to the event rate chunk by chunk.
pub(super) fn take_chunk(
    shard: &Shard,
    conn: &Connection,
    app: &App,
    channel: &str,
    event: &str,
    data: &str,
) -> bool {
    let refuse = |why: &str| {
        conn.out.push(frames::error(
            codes::CHUNK_REFUSED,
            &format!("chunk refused: {why}"),
        ));
        false
    };
    let c = match chunks::parse(data) {
        Ok(c) => c,
        Err(e) => return refuse(&e.to_string()),
    };
    let l = shard.limits();
    let bounds = ChunkBounds {
        max_event_bytes: app.max_chunked_event_bytes,
        max_open: l.max_open_chunked_events_per_connection,
        max_open_bytes: l.max_chunked_bytes_per_connection,
    };
    let chunk = ChunkIn {
        channel,
        event,
        id: &c.id,
        index: c.index,
        len: c.len,
        last: c.last,
    };
    let mut open = conn.chunks.borrow_mut();
    let accepted = match open.check(&chunk, bounds) {
        Ok(a) => a,
        Err(why) => return refuse(&why.to_string()),
    };
    let now = Instant::now();
    if accepted.starts() && !conn.take_client_event(app.client_events_per_second, now) {
        conn.out.push(frames::error(
            codes::CLIENT_EVENT_RATE_LIMIT,
            "Client event rejected due to rate limit",
        ));
        return false;
    }
    if !conn.take_chunk(app.client_chunks_per_second, now) {
        return refuse(&format!(
            "rate limit ({} chunks per second)",
            app.client_chunks_per_second
        ));
    }
    open.commit(accepted);
    true
}
