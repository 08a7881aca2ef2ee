//! A receiving request (a stream, a poll, an event stream) on the shard its TCP connection
//! landed on: it registers a receiver at the session's home, writes the chunks the home
//! sends it (HTTP/1.1 chunked for streams, one whole response for a poll), and tells the
//! home when each was written or when its client left.

use super::{Mode, Open, XhrMsg};
use crate::placement::ShardId;
use crate::protocol::codes;
use crate::shard::msg::ShardMsg;
use crate::shard::Shard;
use crate::transport::Transport;
use bytes::Bytes;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::Write;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Duration;

/// Why a receiver's session ended without its close reaching it.
const ENDED: &str = "session ended";

/// What the home sent a receiver.
enum Piece {
    Chunk(Bytes, bool),
    /// Finish; `true`: the session is over.
    End(bool),
}

/// A receiver's mailbox on its request's shard.
#[derive(Default)]
pub struct Slot {
    pieces: RefCell<VecDeque<Piece>>,
    waker: Cell<Option<Waker>>,
}

impl Slot {
    fn put(&self, p: Piece) {
        self.pieces.borrow_mut().push_back(p);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

/// A receiving request, routed ([`super::route`]) and ready to run.
pub struct Receive {
    pub key: Arc<str>,
    pub home: ShardId,
    pub open: Open,
    /// CORS header lines for the response.
    pub cors: String,
    /// The request asked to keep the connection (a poll may serve the next request).
    pub keep_alive: bool,
}

/// The home shard's chunk for receiver `rid`; answered `Gone` when that receiver is no more.
pub(super) fn chunk(shard: &Shard, key: Arc<str>, home: ShardId, rid: u64, b: Bytes, end: bool) {
    let slot = shard.xhr.receivers.borrow().get(&rid).cloned();
    match slot {
        Some(s) => s.put(Piece::Chunk(b, end)),
        None => shard
            .mesh
            .send(home, ShardMsg::Xhr(Box::new(XhrMsg::Gone { key, rid }))),
    }
}

/// Receiver `rid` is to finish (replaced, or its session ended).
pub(super) fn end(shard: &Shard, rid: u64, over: bool) {
    if let Some(s) = shard.xhr.receivers.borrow().get(&rid) {
        s.put(Piece::End(over));
    }
}

/// Runs the receiver until its response ends; whether the connection may serve another
/// request.
pub async fn run(shard: &Rc<Shard>, stream: &mut Transport, r: Receive) -> bool {
    let rid = shard.xhr.next_id(shard.id);
    let slot = Rc::new(Slot::default());
    shard.xhr.receivers.borrow_mut().insert(rid, slot.clone());
    let Receive {
        key,
        home,
        mut open,
        cors,
        keep_alive,
    } = r;
    let mode = open.mode;
    (open.from, open.rid) = (shard.id, rid);
    shard
        .mesh
        .send(home, ShardMsg::Xhr(Box::new(XhrMsg::Open(open))));
    let at = Receiver {
        key,
        home,
        mode,
        cors,
        keep_alive,
        rid,
    };
    let keep = serve(shard, stream, &at, &slot).await;
    shard.xhr.receivers.borrow_mut().remove(&rid);
    keep
}

/// A running receiver's facts.
struct Receiver {
    key: Arc<str>,
    home: ShardId,
    mode: Mode,
    cors: String,
    keep_alive: bool,
    rid: u64,
}

async fn serve(shard: &Rc<Shard>, stream: &mut Transport, r: &Receiver, slot: &Slot) -> bool {
    let (mode, rid) = (r.mode, r.rid);
    let tell = |msg: XhrMsg| shard.mesh.send(r.home, ShardMsg::Xhr(Box::new(msg)));
    let write_timeout = Duration::from_secs(shard.limits().http_fallback.heartbeat_secs);
    if mode != Mode::Polling {
        let head = head(mode, &r.cors, None);
        if !write(stream, head, write_timeout).await {
            tell(XhrMsg::Gone {
                key: r.key.clone(),
                rid,
            });
            return false;
        }
    }
    let mut scratch = [0u8; 64];
    loop {
        // The next piece, or the client's end: a receiving request sends nothing more, so
        // anything read (EOF, an error, or bytes a client pipelined) ends it.
        let piece = poll_fn(|cx| {
            if let Some(p) = slot.pieces.borrow_mut().pop_front() {
                return Poll::Ready(Some(p));
            }
            slot.waker.set(Some(cx.waker().clone()));
            match futures_lite::AsyncRead::poll_read(Pin::new(&mut *stream), cx, &mut scratch) {
                Poll::Ready(_) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            }
        })
        .await;
        let (bytes, end) = match piece {
            None => {
                tell(XhrMsg::Gone {
                    key: r.key.clone(),
                    rid,
                });
                return false;
            }
            Some(Piece::End(false)) if mode == Mode::Polling => {
                // Replaced: its client polls again.
                let resp = [head(mode, &r.cors, Some(2)), b"h\n".to_vec()].concat();
                return write(stream, resp, write_timeout).await && r.keep_alive;
            }
            Some(Piece::End(false)) => {
                write(stream, b"0\r\n\r\n".to_vec(), write_timeout).await;
                return false;
            }
            Some(Piece::End(true)) => {
                // The session is gone: a poll that came back for it would open a new one
                // under the same id, which pusher-js takes as a lost session anyway.
                let mut frame = Vec::new();
                match mode {
                    Mode::Sse => {
                        let error = crate::protocol::server::error(codes::RECONNECT, ENDED);
                        super::framing::sse_event(&mut frame, None, error.payload());
                    }
                    _ => super::framing::close(&mut frame, codes::RECONNECT, ENDED),
                }
                (Bytes::from(frame), true)
            }
            Some(Piece::Chunk(bytes, end)) => (bytes, end),
        };
        let wire = if mode == Mode::Polling {
            [head(mode, &r.cors, Some(bytes.len())), bytes.to_vec()].concat()
        } else {
            let mut w = Vec::with_capacity(bytes.len() + 16);
            write!(w, "{:x}\r\n", bytes.len()).expect("writing to memory cannot fail");
            w.extend_from_slice(&bytes);
            w.extend_from_slice(b"\r\n");
            if end {
                w.extend_from_slice(b"0\r\n\r\n");
            }
            w
        };
        if !write(stream, wire, write_timeout).await {
            tell(XhrMsg::Gone {
                key: r.key.clone(),
                rid,
            });
            return false;
        }
        tell(XhrMsg::Written {
            key: r.key.clone(),
            rid,
        });
        if end {
            return mode == Mode::Polling && r.keep_alive;
        }
    }
}

/// Writes `bytes` within `limit` (a client that stops reading frees its receiver); whether
/// they were all written.
async fn write(stream: &mut Transport, bytes: Vec<u8>, limit: Duration) -> bool {
    let fut = async { Ok(stream.send_all(&bytes).await) };
    matches!(glommio::timer::timeout(limit, fut).await, Ok(Ok(())))
}

/// The response head: a stream's (chunked, open-ended), or a poll's with its length.
fn head(mode: Mode, cors: &str, length: Option<usize>) -> Vec<u8> {
    let content_type = match mode {
        Mode::Sse => "text/event-stream; charset=utf-8",
        // What SockJS sends; pusher-js never looks.
        Mode::Streaming | Mode::Polling => "application/javascript; charset=UTF-8",
    };
    let framing = match length {
        Some(n) => format!("Content-Length: {n}\r\n"),
        None => "Transfer-Encoding: chunked\r\nConnection: close\r\n".into(),
    };
    format!(
        "HTTP/1.1 200 OK\r\nServer: raptor\r\nContent-Type: {content_type}\r\nCache-Control: no-store, no-cache, no-transform, must-revalidate, max-age=0\r\nX-Accel-Buffering: no\r\n{framing}{cors}\r\n"
    )
    .into_bytes()
}
