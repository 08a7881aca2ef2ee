//! The one read loop of every WebSocket, Pusher sessions ([`super::session`]) and the
//! Autobahn echo endpoint ([`super::echo`]) alike: read a chunk, hand it to tungstenite's
//! sans-IO `WebSocketContext` ([`SansIo`]), answer what WebSocket itself answers (pongs, the
//! close reply, the close codes of RFC 6455 for bad input), and give each complete message to
//! a [`Handler`]. Only the handler differs between the two, so Autobahn's verdicts on the
//! echo endpoint hold for Pusher connections.
//!
//! Everything sent goes through the connection's [`WsWriter`]: messages into the session's
//! queue, tungstenite's control replies into the writer's own.

use super::context::Context;
use super::sansio::SansIo;
use crate::outbox::WsWriter;
use crate::protocol::codes;
use crate::session::WriteState;
use bytes::Bytes;
use std::cell::Cell;
use std::future::poll_fn;
use std::io;
use std::task::Poll;
use std::time::Duration;
use tungstenite::error::{CapacityError, Error as WsError};
use tungstenite::protocol::WebSocketContext;
use tungstenite::Message;

/// What the loop does after a complete message.
pub enum Next<W> {
    /// Go on with the next message.
    Read,
    /// Close with this code and reason; input is discarded from now on.
    Close(u16, &'static str),
    /// The connection is closing already (its queue overflowed): stop handling input.
    Stop,
    /// Await this (through [`Handler::wait`]) before the next message is handled; meanwhile
    /// nothing more is read, so the client feels TCP backpressure.
    Wait(W),
}

/// What one kind of WebSocket endpoint does with what the peer sends.
pub trait Handler {
    /// Work to await between two messages.
    type Wait;

    /// Bytes read from the socket per read call.
    const READ_CHUNK: usize;

    /// Once closing, how long to wait for the peer to go; `None` when something else ends
    /// the grace period (the shard's sweeper, for Pusher sessions). Asked, not stored, so an
    /// idle connection's future does not keep it.
    fn grace(&self) -> Option<Duration> {
        None
    }

    /// A frame arrived, of any kind (activity, for keep-alive).
    fn on_frame(&mut self) {}

    /// A complete text or binary message.
    fn on_message(&mut self, msg: Message) -> Next<Self::Wait>;

    /// Does the work [`Next::Wait`] asked for.
    async fn wait(&mut self, work: Self::Wait);
}

/// Reads the connection until it ends: the peer went away, or the connection closed and
/// its grace period (if any) ran out. The caller aborts the writer afterwards.
/// `max_message` bounds messages and frames; `leftover`: bytes that followed the HTTP head.
///
/// An idle connection keeps no read buffer: the socket is read into the shard's scratch
/// buffer and the bytes are handed to tungstenite in the same poll, before any other task
/// can use it; tungstenite's context is dropped between messages ([`Context`]). Bytes are
/// owned (`pending`) only when a message asked to wait before the rest of a read is handled.
pub async fn run<H: Handler>(writer: &WsWriter, leftover: Vec<u8>, max_message: usize, h: &mut H) {
    let mut ctx = Context::new(H::READ_CHUNK, max_message);
    let mut pending = leftover;
    if pending.is_empty() {
        // The HTTP read's buffer, empty but with capacity: freed (replaced), not kept.
        pending = Vec::new();
    }
    // Once we start closing, input is read and discarded until the peer goes away or the
    // grace period ends.
    let mut closing = false;
    // Messages may be waiting to be handled before the socket is read again: in `pending`,
    // and after a wait also in tungstenite's buffer (it reads ahead), so then it is asked
    // even with no bytes pending.
    let mut resume = !pending.is_empty();
    loop {
        if !closing && resume {
            resume = false;
            let (step, used) = feed(writer, &mut ctx, &pending, h);
            pending.drain(..used);
            if pending.is_empty() {
                // Not `clear`: the capacity (the HTTP head's buffer, at first) goes too.
                pending = Vec::new();
            }
            match step {
                Step::Read => {}
                Step::Closing => closing = true,
                Step::Wait(work) => {
                    // Then on with the rest of what was read.
                    h.wait(work).await;
                    resume = true;
                    continue;
                }
            }
        }
        if closing {
            pending = Vec::new();
            ctx.release();
        }
        if writer.out().state() == WriteState::Closed {
            break;
        }
        let step = match h.grace() {
            // Boxed: only a closing connection pays for the timer, not every idle one.
            Some(grace) if closing => {
                let discard =
                    poll_fn(|cx| with_scratch(H::READ_CHUNK, |b| writer.poll_read(cx, b)));
                match Box::pin(glommio::timer::timeout(grace, async { Ok(discard.await) })).await {
                    Ok(Ok(n)) if n > 0 => continue,
                    _ => break,
                }
            }
            _ => {
                poll_fn(|cx| {
                    with_scratch(H::READ_CHUNK, |buf| match writer.poll_read(cx, buf) {
                        Poll::Ready(Ok(n)) if n > 0 && !closing => {
                            let (step, used) = feed(writer, &mut ctx, &buf[..n], h);
                            if used < n {
                                pending.extend_from_slice(&buf[used..n]);
                            }
                            Poll::Ready(Some(step))
                        }
                        // Closing: read and dropped.
                        Poll::Ready(Ok(n)) if n > 0 => Poll::Ready(Some(Step::Read)),
                        Poll::Ready(_) => Poll::Ready(None),
                        Poll::Pending => Poll::Pending,
                    })
                })
                .await
            }
        };
        match step {
            None => break,
            Some(Step::Read) => {}
            Some(Step::Closing) => closing = true,
            Some(Step::Wait(work)) => {
                h.wait(work).await;
                resume = true;
            }
        }
    }
}

/// Hands `input` to tungstenite and handles the messages it completes, up to the first
/// that asks to wait. Returns what to do next and how many bytes of `input` were used.
fn feed<H: Handler>(
    writer: &WsWriter,
    ctx: &mut Context,
    input: &[u8],
    h: &mut H,
) -> (Step<H::Wait>, usize) {
    let mut io = SansIo::new(input);
    let step = process(writer, ctx.get(), &mut io, h);
    ctx.consumed(&io, matches!(step, Step::Read));
    (step, io.pos)
}

/// Calls `f` with this thread's (this shard's) read buffer of `len` bytes. Taken out while
/// in use, so a nested call would get a buffer of its own rather than share one.
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    thread_local!(static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) });
    let mut buf = SCRATCH.take();
    if buf.len() < len {
        buf.resize(len, 0);
    }
    let r = f(&mut buf[..len]);
    SCRATCH.set(buf);
    r
}

/// What the read loop does after [`process`].
enum Step<W> {
    /// Every complete message was handled: read more.
    Read,
    /// The connection is closing.
    Closing,
    /// Work to await before the next message is handled.
    Wait(W),
}

/// Handles the complete messages in `io`, up to the first that asks to wait.
fn process<H: Handler>(
    writer: &WsWriter,
    ctx: &mut WebSocketContext,
    io: &mut SansIo<'_>,
    h: &mut H,
) -> Step<H::Wait> {
    loop {
        let res = ctx.read(io);
        if res.is_ok() {
            h.on_frame();
            // Move a queued pong or close reply into `io.out` now, so replies keep the order
            // the peer's frames arrived in.
            let _ = ctx.flush(io);
        }
        let next = match res {
            Ok(msg @ (Message::Text(_) | Message::Binary(_))) => h.on_message(msg),
            Ok(Message::Close(_)) => {
                // tungstenite's reply echoes the peer's code (1002 for a code not allowed on
                // the wire); it is our last frame, after what is already queued.
                writer.close_reply(Bytes::from(std::mem::take(&mut io.out)));
                return Step::Closing;
            }
            Ok(_) => Next::Read, // ping (its pong is in `io.out`), pong, raw frame
            Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                push_control(writer, io);
                return Step::Read;
            }
            Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => return Step::Closing,
            Err(WsError::Capacity(CapacityError::MessageTooLong { .. })) => {
                Next::Close(codes::WS_TOO_BIG, "message too big")
            }
            Err(WsError::Utf8(_)) => Next::Close(codes::WS_INVALID_PAYLOAD, "invalid utf-8"),
            Err(e) => {
                tracing::debug!(error = %e, "websocket protocol error");
                Next::Close(codes::WS_PROTOCOL_ERROR, "protocol error")
            }
        };
        push_control(writer, io);
        match next {
            Next::Read => {}
            Next::Close(code, reason) => {
                writer.out().close(code, reason);
                return Step::Closing;
            }
            Next::Stop => return Step::Closing,
            Next::Wait(work) => return Step::Wait(work),
        }
    }
}

/// Queues whatever control replies tungstenite wrote into `io.out`.
fn push_control(writer: &WsWriter, io: &mut SansIo<'_>) {
    if !io.out.is_empty() {
        // Taken, not cleared: an idle connection keeps no reply buffer.
        writer.push_control(std::mem::take(&mut io.out));
    }
}
