//! The WebSocket transport's writer: it writes a session's [`Outbound`] queue to its socket
//! (each frame's WebSocket bytes, then the close as a close frame), and the shard's flusher
//! writes every pending frame of a socket with one syscall: small frames copied into one
//! buffer ([`COALESCE_BYTES`]), one frame or a big head in place with a vectored `sendmsg`.
//!
//! Why hand-written: no crate queues *shared* pre-encoded frames ([`Bytes`]) per socket and
//! flushes many sockets from one task; per-connection writer tasks (async-tungstenite and
//! friends) copy every frame into a per-connection buffer and cost a wake-up per frame. Here a
//! fanout only pushes a refcount into each queue; the flusher later writes many frames per
//! syscall, which is the main lever on loopback (stack-notes §9). The copy into one buffer
//! happens only at the write, only when several frames wait, and into one buffer per shard.
//!
//! TLS sockets take another path to the same queue: rustls must encrypt, so the flusher hands
//! it the queued frames coalesced into one buffer per write (one record for a burst of small
//! frames, not one each) through the stream's `poll_write`, and flushes what rustls buffered.
//! The plain path is untouched by this.
//!
//! tungstenite's own replies (pongs, the close reply echoing the peer's code) are bytes of
//! this transport only: they wait here, not in the session's queue, each marked with its
//! place among the session's frames ([`Outbound::mark`]), so the wire order is the order
//! things happened in, and they only ever go out at a frame boundary.
//!
//! **Boundary:** the one place WebSocket bytes meet a session's queue; `session`, `channel`
//! and `shard` only push frames and ask for a close by code. It lives at the crate's root,
//! not in [`crate::ws`], because each shard owns one [`FlushQueue`].
//!
//! **Invariant:** frames are written in the order they were pushed, and a frame is never
//! split between two sockets' writes: a partially written head frame is always finished
//! before anything else (a control reply, the close frame) goes out.

use crate::frame::close_frame;
use crate::session::outbound::{Outbound, WriteState, Writer, NO_STATUS};
use crate::stats::ShardStats;
use crate::transport::Transport;
use bytes::{Bytes, BytesMut};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::os::fd::{BorrowedFd, RawFd};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Frames written per `sendmsg` at most (well under IOV_MAX = 1024).
pub const IOV_BATCH: usize = 64;
/// `sendmsg` calls per socket per flusher visit, so one busy socket cannot starve the rest.
const SENDS_PER_VISIT: usize = 4;
/// Bytes of small frames copied into one buffer per write. On a TLS socket that buffer is one
/// record (this is the largest), so a burst of small frames is encrypted and framed once; on
/// a plain socket it is one segment for `send` (level with gathering on server CPU, fewer and
/// larger segments; ADR 0016). A head frame this big or bigger is written in place instead.
const COALESCE_BYTES: usize = 16 * 1024;

/// A WebSocket's own bytes: tungstenite's control replies (pongs, the close reply that echoes
/// the peer's code) and the close frame once rendered. Each keeps its place among the
/// session's frames (a [`Outbound::mark`]): a pong sent between two echoes stays between
/// them. Boxed and only while in use, so an idle socket pays one pointer.
#[derive(Debug, Default)]
struct Control {
    /// Bytes, each after the frames in front of its mark. Replies with the same mark share
    /// one buffer (a burst of pings costs one item), and all of them count against the
    /// session's byte bound ([`Outbound::has_room_for`]).
    items: VecDeque<(u32, BytesMut)>,
    /// Unwritten bytes in `items`.
    bytes: usize,
    /// Bytes of `items[0]` already written.
    written: usize,
    /// tungstenite's reply to the peer's close, sent instead of a close frame rendered from
    /// the queue's code and reason (it echoes the peer's code and reason exactly).
    close_reply: Option<Bytes>,
}

/// The WebSocket writer of one session's [`Outbound`] queue: writes each frame's
/// [`Frame::ws`](crate::frame::Frame::ws) bytes, and the close as a close frame. Also owns
/// the socket's stream, which the read side reads through [`WsWriter::poll_read`].
pub struct WsWriter {
    out: Rc<Outbound>,
    /// `stream` is TLS, so frames go through rustls instead of `sendmsg` (kept apart so the
    /// hot path does not borrow the stream to find out).
    tls: bool,
    /// The connection's stream. The session reads it through [`WsWriter::poll_read`]; the
    /// writer uses it to wait for readiness (plain) or to write through rustls (TLS).
    /// Borrowed only inside a poll.
    stream: RefCell<Transport>,
    /// This transport's own bytes, while there are any.
    control: RefCell<Option<Box<Control>>>,
    flush: Rc<FlushQueue>,
    /// When the writer was woken with an idle queue, for queue delay: the coarse clock in
    /// [`FlushQueue::stamp`]'s units, 0 for none (4 bytes rather than an `Instant`'s 16).
    pending_since: Cell<u32>,
}

impl Writer for WsWriter {
    fn wake(self: Rc<Self>) {
        if self.pending_since.get() == 0 {
            self.pending_since.set(self.flush.stamp());
        }
        let flush = self.flush.clone();
        flush.mark(self);
    }

    fn abort(&self) {
        *self.control.borrow_mut() = None;
        let _ = self.with_sock(|s| s.shutdown(std::net::Shutdown::Both));
    }

    fn cut(&self) {
        let mut ctl = self.control.borrow_mut();
        if let Some(c) = ctl.as_deref_mut() {
            // Only a partially written item stays, so the stream stays well-framed.
            c.items.truncate(usize::from(c.written > 0));
            c.bytes = c.items.front().map_or(0, |(_, b)| b.len() - c.written);
        }
    }
}

impl WsWriter {
    /// The writer of `stream`, attached to `out`.
    pub fn attach(stream: Transport, out: Rc<Outbound>, flush: Rc<FlushQueue>) -> Rc<WsWriter> {
        let w = Rc::new(WsWriter {
            tls: stream.is_tls(),
            stream: RefCell::new(stream),
            out,
            control: RefCell::new(None),
            flush,
            pending_since: Cell::new(0),
        });
        let weak: Weak<dyn Writer> = Rc::downgrade(&w) as Weak<WsWriter>;
        w.out.attach(weak);
        w
    }

    /// The queue this writer writes.
    pub fn out(&self) -> &Rc<Outbound> {
        &self.out
    }

    /// Reads from the socket: the connection's read side, which lives here so the writer can
    /// reach the same stream. On TLS, records rustls produced while reading (an alert, a key
    /// update reply) get the socket scheduled, so they leave even when no frame is queued.
    pub fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut stream = self.stream.borrow_mut();
        let res = futures_lite::AsyncRead::poll_read(Pin::new(&mut *stream), cx, buf);
        if self.tls && self.out.state() == WriteState::Open && stream.wants_write() {
            drop(stream);
            self.out.schedule();
        }
        res
    }

    /// Queues a control reply tungstenite produced (a pong): written after the frames
    /// queued so far and before any queued later. Dropped once the session is closing, as a
    /// peer's ping after a close gets no pong. A client that pings without reading is cut
    /// with 4100 once its pongs and the queued frames pass `outbox_max_bytes`, as a slow
    /// consumer of frames is.
    pub fn push_control(&self, bytes: Vec<u8>) {
        if self.out.state() != WriteState::Open || bytes.is_empty() {
            return;
        }
        {
            let mut ctl = self.control.borrow_mut();
            let c = ctl.get_or_insert_with(Box::default);
            if !self.out.has_room_for(c.bytes + bytes.len()) {
                drop(ctl);
                return self.out.overflow();
            }
            c.bytes += bytes.len();
            let mark = self.out.mark();
            match c.items.back_mut() {
                Some((m, b)) if *m == mark => b.extend_from_slice(&bytes),
                _ => c.items.push_back((mark, BytesMut::from(&bytes[..]))),
            }
        }
        self.out.schedule();
    }

    /// Closes with tungstenite's reply to the peer's close (it echoes the peer's code; 1002
    /// for a code not allowed on the wire): our last frame, after what is queued.
    pub fn close_reply(&self, reply: Bytes) {
        if self.out.state() != WriteState::Open {
            return;
        }
        // A close frame with a status: `0x88`, a short length, then the code.
        let code = match reply[..] {
            [0x88, _, hi, lo, ..] => u16::from_be_bytes([hi, lo]),
            _ => NO_STATUS,
        };
        self.control
            .borrow_mut()
            .get_or_insert_with(Box::default)
            .close_reply = Some(reply);
        self.out.close(code, "");
    }

    /// Runs `f` on a socket2 view of our fd (for `sendmsg` flags and `shutdown`). The fd is
    /// asked of the stream rather than kept: one field less per connection, and the stream is
    /// never borrowed mutably outside a poll, which does not call this.
    fn with_sock<R>(&self, f: impl FnOnce(&socket2::SockRef<'_>) -> R) -> R {
        let fd: RawFd = self.stream.borrow().raw_fd();
        // SAFETY: `fd` belongs to `self.stream`, which lives as long as `self`; the borrow
        // does not outlive this call.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        f(&socket2::SockRef::from(&fd))
    }

    /// Once every frame is written, turns the queue's close into bytes after the control
    /// replies: tungstenite's close reply if there is one, else a close frame.
    fn render_close(&self) {
        if !self.out.close_pending() {
            return;
        }
        let Some((code, reason)) = self.out.take_close() else {
            return;
        };
        let mut ctl = self.control.borrow_mut();
        let ctl = ctl.get_or_insert_with(Box::default);
        let close = match ctl.close_reply.take() {
            Some(reply) => reply,
            None if code == NO_STATUS => Bytes::from_static(&[0x88, 0]),
            None => close_frame(code, reason),
        };
        // Empty only when tungstenite had no reply: then nothing is sent.
        if !close.is_empty() {
            ctl.bytes += close.len();
            ctl.items
                .push_back((self.out.mark(), BytesMut::from(&close[..])));
        }
    }

    /// Calls `f` with the bytes to write next, in order: the queue's frames (the head's rest
    /// first), with this transport's own bytes at their marks, which are frame boundaries.
    fn with_pending<R>(
        &self,
        f: impl for<'a> FnOnce(&mut (dyn Iterator<Item = &'a [u8]> + 'a)) -> R,
    ) -> R {
        let q = self.out.queue();
        let ctl = self.control.borrow();
        let Some(c) = ctl.as_deref() else {
            let mut pending = q.unwritten();
            return f(&mut pending);
        };
        let own = c.items.iter().enumerate().map(|(i, (mark, b))| {
            let b = if i == 0 { &b[c.written..] } else { &b[..] };
            (self.out.frames_before(*mark), b)
        });
        let mut pending = Interleave {
            frames: q.unwritten(),
            at: 0,
            own: own.peekable(),
        };
        f(&mut pending)
    }

    /// `n` bytes of [`WsWriter::with_pending`]'s order were written.
    fn advance(&self, mut n: usize) {
        crate::stats::add(&self.flush.stats.bytes_out, n as u64);
        let mut ctl = self.control.borrow_mut();
        let Some(c) = ctl.as_deref_mut() else {
            self.out.advance(n);
            return;
        };
        while n > 0 {
            match c.items.front() {
                Some((mark, b)) if self.out.frames_before(*mark) == 0 => {
                    let k = n.min(b.len() - c.written);
                    c.written += k;
                    c.bytes -= k;
                    n -= k;
                    if c.written == b.len() {
                        c.items.pop_front();
                        c.written = 0;
                    }
                }
                _ => {
                    let k = n.min(self.out.head_left());
                    if k == 0 {
                        break;
                    }
                    self.out.advance(k);
                    n -= k;
                }
            }
        }
        if c.items.is_empty() && c.close_reply.is_none() {
            *ctl = None;
        }
    }

    /// Nothing left to write, the close included.
    fn drained(&self) -> bool {
        self.out.queue().is_empty()
            && !self.out.close_pending()
            && self
                .control
                .borrow()
                .as_ref()
                .is_none_or(|c| c.items.is_empty())
    }

    /// Writes without blocking as much as the kernel takes, up to [`SENDS_PER_VISIT`] sends.
    fn flush_now(self: &Rc<Self>) -> FlushOutcome {
        if self.tls {
            // A waker that does nothing makes this attempt non-blocking: on `Pending` the
            // socket goes to `wait_writable`, which polls again with a real one.
            let mut cx = Context::from_waker(Waker::noop());
            return match self.poll_flush_tls(&mut cx) {
                Poll::Ready(outcome) => outcome,
                Poll::Pending => FlushOutcome::Blocked,
            };
        }
        for _ in 0..SENDS_PER_VISIT {
            if matches!(self.out.state(), WriteState::Closed) {
                return FlushOutcome::Done;
            }
            self.render_close();
            if self.drained() {
                self.after_drain();
                return FlushOutcome::Done;
            }
            let res = self.with_pending(|pending| {
                let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
                let head = pending.next().unwrap_or_default();
                let mut rest = pending.peekable();
                if rest.peek().is_some() && head.len() < COALESCE_BYTES {
                    // Several small frames: copied into one buffer and sent as one segment.
                    // Measured level with one iovec each on server CPU and better at keeping
                    // up under backlog; not a cure for the kernel's copy cost under a full
                    // socket buffer, which stays either way (ADR 0016).
                    let mut buf = self.flush.scratch.borrow_mut();
                    coalesce(&mut buf, head, rest, COALESCE_BYTES);
                    return self.with_sock(|s| s.send_with_flags(&buf, flags));
                }
                // One frame, or a big head: written in place, no copy.
                let mut iov: [IoSlice<'_>; IOV_BATCH] = [IoSlice::new(&[]); IOV_BATCH];
                iov[0] = IoSlice::new(head);
                let mut n = 1;
                for (slot, bytes) in iov[1..].iter_mut().zip(rest) {
                    *slot = IoSlice::new(bytes);
                    n += 1;
                }
                self.with_sock(|s| s.send_vectored_with_flags(&iov[..n], flags))
            });
            match res {
                Ok(written) => self.advance(written),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return FlushOutcome::Blocked,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    // The peer is gone; the reader will notice and clean up.
                    self.out.abort();
                    return FlushOutcome::Done;
                }
            }
        }
        self.render_close();
        if self.drained() {
            self.after_drain();
            FlushOutcome::Done
        } else {
            FlushOutcome::More
        }
    }

    /// The TLS counterpart of the `sendmsg` loop: up to [`SENDS_PER_VISIT`] writes of up to
    /// [`COALESCE_BYTES`] bytes each, then a flush of what rustls still holds (for a closing
    /// socket: `close_notify` and the write side's shutdown, via `poll_close`). `Pending` when
    /// the socket takes no more; the waker in `cx` is then registered with glommio.
    ///
    /// rustls takes plaintext up to its own buffer limit (64 KiB) even while the socket is
    /// full, so a TLS socket may hold that much beyond `outbox_max_bytes`.
    fn poll_flush_tls(self: &Rc<Self>, cx: &mut Context<'_>) -> Poll<FlushOutcome> {
        for _ in 0..SENDS_PER_VISIT {
            if self.out.state() == WriteState::Closed {
                return Poll::Ready(FlushOutcome::Done);
            }
            self.render_close();
            let res = self.with_pending(|pending| {
                let head = pending.next()?;
                let mut stream = self.stream.borrow_mut();
                let mut rest = pending.peekable();
                Some(if rest.peek().is_none() || head.len() >= COALESCE_BYTES {
                    futures_lite::AsyncWrite::poll_write(Pin::new(&mut *stream), cx, head)
                } else {
                    let mut buf = self.flush.scratch.borrow_mut();
                    coalesce(&mut buf, head, rest, COALESCE_BYTES);
                    futures_lite::AsyncWrite::poll_write(Pin::new(&mut *stream), cx, &buf)
                })
            });
            match res {
                None => break,
                Some(Poll::Ready(Ok(n))) if n > 0 => self.advance(n),
                Some(Poll::Pending) => return Poll::Pending,
                Some(Poll::Ready(_)) => {
                    // An error, or no progress on a non-empty buffer: the peer is gone.
                    self.out.abort();
                    return Poll::Ready(FlushOutcome::Done);
                }
            }
        }
        self.render_close();
        if !self.drained() {
            return Poll::Ready(FlushOutcome::More);
        }
        let res = {
            let mut stream = self.stream.borrow_mut();
            let stream = Pin::new(&mut *stream);
            match self.out.state() {
                WriteState::Open => futures_lite::AsyncWrite::poll_flush(stream, cx),
                WriteState::Closing { .. } => futures_lite::AsyncWrite::poll_close(stream, cx),
                WriteState::ShutWrite { .. } | WriteState::Closed => Poll::Ready(Ok(())),
            }
        };
        match res {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => {
                self.after_drain();
                Poll::Ready(FlushOutcome::Done)
            }
            Poll::Ready(Err(_)) => {
                self.out.abort();
                Poll::Ready(FlushOutcome::Done)
            }
        }
    }

    /// Everything is written: record how long the queue waited; a closing socket now shuts
    /// its write side.
    fn after_drain(&self) {
        let since = self.pending_since.take();
        if since != 0 {
            crate::stats::record_duration(
                &self.flush.stats.queue_delay_us,
                Duration::from_micros(u64::from(self.flush.stamp().wrapping_sub(since))),
            );
        }
        if let WriteState::Closing { .. } = self.out.state() {
            // A TLS stream's `poll_close` already shut it, after its `close_notify`.
            if !self.tls {
                let _ = self.with_sock(|s| s.shutdown(std::net::Shutdown::Write));
            }
            self.out.close_sent();
        }
    }

    /// Waits until the socket is writable by letting glommio write the rest of the head
    /// bytes (TLS: by polling the TLS flush with a real waker), then hands the socket back to
    /// the flusher.
    async fn wait_writable(self: Rc<Self>) {
        if self.tls {
            // rustls drives the socket: poll the whole TLS flush with a real waker.
            while let FlushOutcome::More = poll_fn(|cx| self.poll_flush_tls(cx)).await {
                glommio::yield_if_needed().await;
            }
        } else {
            loop {
                let res = poll_fn(|cx| {
                    self.with_pending(|pending| {
                        let Some(head) = pending.next() else {
                            return Poll::Ready(Ok(0));
                        };
                        let mut stream = self.stream.borrow_mut();
                        futures_lite::AsyncWrite::poll_write(Pin::new(&mut *stream), cx, head)
                    })
                })
                .await;
                match res {
                    Ok(n) => self.advance(n),
                    Err(_) => {
                        self.out.abort();
                        break;
                    }
                }
                match self.flush_now() {
                    FlushOutcome::Blocked => continue,
                    FlushOutcome::Done => break,
                    FlushOutcome::More => {
                        glommio::yield_if_needed().await;
                        continue;
                    }
                }
            }
        }
        self.out.idle();
        if !self.drained() && self.out.state() != WriteState::Closed {
            self.out.schedule();
        }
    }
}

/// Fills `buf` with `head` and then `rest`, up to `limit` bytes: the last frame possibly in
/// part (the queue tracks a partly written head, and a write may stop anywhere anyway).
fn coalesce<'a>(
    buf: &mut Vec<u8>,
    head: &[u8],
    rest: impl Iterator<Item = &'a [u8]>,
    limit: usize,
) {
    buf.clear();
    buf.extend_from_slice(head);
    for f in rest {
        let take = f.len().min(limit - buf.len());
        buf.extend_from_slice(&f[..take]);
        if buf.len() == limit {
            break;
        }
    }
}

/// The queue's frames with this transport's own bytes placed among them: `own` yields each
/// item with the number of frames (of those still queued) that go before it.
struct Interleave<'a, F, O: Iterator<Item = (usize, &'a [u8])>> {
    frames: F,
    /// Frames yielded so far.
    at: usize,
    own: std::iter::Peekable<O>,
}

impl<'a, F, O> Iterator for Interleave<'a, F, O>
where
    F: Iterator<Item = &'a [u8]>,
    O: Iterator<Item = (usize, &'a [u8])>,
{
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self
            .own
            .peek()
            .is_some_and(|&(before, _)| before <= self.at)
        {
            return self.own.next().map(|(_, b)| b);
        }
        match self.frames.next() {
            Some(f) => {
                self.at += 1;
                Some(f)
            }
            None => self.own.next().map(|(_, b)| b),
        }
    }
}

enum FlushOutcome {
    Done,
    More,
    Blocked,
}

/// The shard's list of sockets with something to write, drained by one flusher task.
pub struct FlushQueue {
    dirty: RefCell<Vec<Rc<WsWriter>>>,
    /// Coarse clock: refreshed once per flusher pass and per delivered batch, so queue-delay
    /// accounting costs no clock read per frame.
    clock: Cell<Instant>,
    /// Origin of [`FlushQueue::stamp`].
    epoch: Instant,
    stats: Rc<ShardStats>,
    /// Where a socket's small frames are coalesced before one write ([`COALESCE_BYTES`]);
    /// one per shard, borrowed only within one synchronous write.
    scratch: RefCell<Vec<u8>>,
    /// Capacity-1 channel used as a wake-up flag: a full channel means "already woken".
    wake_tx: LocalSender<()>,
    wake_rx: RefCell<Option<LocalReceiver<()>>>,
}

impl FlushQueue {
    pub fn new(stats: Rc<ShardStats>) -> Rc<FlushQueue> {
        let (wake_tx, wake_rx) = local_channel::new_bounded(1);
        Rc::new(FlushQueue {
            dirty: RefCell::new(Vec::new()),
            clock: Cell::new(Instant::now()),
            epoch: Instant::now(),
            stats,
            scratch: RefCell::new(Vec::with_capacity(COALESCE_BYTES)),
            wake_tx,
            wake_rx: RefCell::new(Some(wake_rx)),
        })
    }

    /// Refreshes the coarse clock.
    pub fn tick_clock(&self) {
        self.clock.set(Instant::now());
    }

    /// The coarse clock in microseconds since the flusher started, wrapping at 32 bits (so a
    /// difference of two stamps is right for delays under an hour), and never 0.
    fn stamp(&self) -> u32 {
        let us = self
            .clock
            .get()
            .saturating_duration_since(self.epoch)
            .as_micros();
        (us as u32).max(1)
    }

    fn mark(&self, s: Rc<WsWriter>) {
        let was_empty = {
            let mut d = self.dirty.borrow_mut();
            d.push(s);
            d.len() == 1
        };
        if was_empty {
            let _ = self.wake_tx.try_send(());
        }
    }

    /// The flusher task: runs for the life of the shard.
    pub async fn run(self: Rc<Self>) {
        let rx = self
            .wake_rx
            .borrow_mut()
            .take()
            .expect("flusher started once");
        let mut batch: Vec<Rc<WsWriter>> = Vec::new();
        loop {
            if self.dirty.borrow().is_empty() && rx.recv().await.is_none() {
                return;
            }
            self.tick_clock();
            std::mem::swap(&mut batch, &mut *self.dirty.borrow_mut());
            for (i, s) in batch.drain(..).enumerate() {
                // The queue stays scheduled (pushes do not wake it) until the writer is done
                // with it: after this visit, or after its writable-wait task.
                match s.flush_now() {
                    FlushOutcome::Done => s.out.idle(),
                    FlushOutcome::More => self.mark(s),
                    FlushOutcome::Blocked => {
                        glommio::spawn_local(s.wait_writable()).detach();
                    }
                }
                if i % 256 == 255 {
                    glommio::yield_if_needed().await;
                }
            }
            if self.dirty.borrow().is_empty() {
                self.stats.note_flush_done(Instant::now());
            } else {
                // Sockets re-queued themselves (more to write): let other tasks run between
                // passes so a busy flusher never starves the shard.
                glommio::yield_if_needed().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_bytes_keep_their_place_among_frames() {
        let frames: [&[u8]; 3] = [b"a", b"b", b"c"];
        let own: [(usize, &[u8]); 3] = [(0, b"0"), (2, b"2"), (9, b"end")];
        let order: Vec<&[u8]> = Interleave {
            frames: frames.into_iter(),
            at: 0,
            own: own.into_iter().peekable(),
        }
        .collect();
        let want: [&[u8]; 6] = [b"0", b"a", b"b", b"2", b"c", b"end"];
        assert_eq!(order, want);
    }

    /// Every connection holds one writer and one queue. Before the split, the one
    /// `SocketOut` was 256 bytes in one `Rc`; the two are 272 in two (+32 bytes with the
    /// second `Rc` header). This bound keeps them from creeping up.
    #[test]
    fn a_socket_s_write_side_stays_small() {
        let size = std::mem::size_of::<WsWriter>() + std::mem::size_of::<Outbound>();
        assert!(size <= 272, "WsWriter + Outbound are {size} bytes");
    }
}
