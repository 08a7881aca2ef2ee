//! The bottom layer: each socket's bounded outbound queue, and the shard's flusher that writes
//! every pending frame of a socket with one vectored `sendmsg`.
//!
//! Why hand-written: no crate queues *shared* pre-encoded frames ([`Bytes`]) per socket and
//! flushes many sockets from one task; per-connection writer tasks (async-tungstenite and
//! friends) copy every frame into a per-connection buffer and cost a wake-up per frame. Here a
//! fanout only pushes a refcount into each queue; the flusher later writes up to
//! [`IOV_BATCH`] frames per syscall, which is the main lever on loopback (stack-notes §9).
//!
//! TLS sockets take another path to the same queue: rustls must encrypt, so the flusher hands
//! it the queued frames coalesced into one buffer per write (one record for a burst of small
//! frames, not one each) through the stream's `poll_write`, and flushes what rustls buffered.
//! The plain path is untouched by this.
//!
//! **Invariant:** frames are written in the order they were pushed, and a frame is never
//! split between two sockets' writes: a partially written head frame is always finished
//! before anything else (including a close frame) goes out.

use crate::stats::ShardStats;
use crate::transport::Transport;
use bytes::Bytes;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::os::fd::{BorrowedFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// Frames written per `sendmsg` at most (well under IOV_MAX = 1024).
pub const IOV_BATCH: usize = 64;
/// `sendmsg` calls per socket per flusher visit, so one busy socket cannot starve the rest.
const SENDS_PER_VISIT: usize = 4;
/// Plaintext handed to rustls per write on a TLS socket: the largest TLS record, so a burst
/// of small frames is encrypted and framed once.
const TLS_RECORD: usize = 16 * 1024;

/// Where a socket is in its life, from the writer's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteState {
    /// Accepting frames.
    Open,
    /// A close frame is queued; nothing more is accepted. `since` starts the grace period.
    Closing { since: Instant },
    /// The close frame went out and the write side is shut; waiting for the peer.
    ShutWrite { since: Instant },
    /// The socket is done; frames are dropped.
    Closed,
}

/// Result of queueing a frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Push {
    Queued,
    /// The socket is closing or closed; the frame was dropped.
    Dropped,
    /// The queue was over its bound; the socket is now closing with 4100.
    Overflow,
}

/// Bounded queue of whole frames for one socket.
#[derive(Debug, Default)]
struct Queue {
    frames: VecDeque<Bytes>,
    /// Bytes of `frames[0]` already written.
    head_written: usize,
    /// Sum of unwritten bytes, for the byte bound.
    bytes: usize,
}

impl Queue {
    fn advance(&mut self, mut n: usize) {
        self.bytes -= n;
        while n > 0 {
            let head_left = self.frames[0].len() - self.head_written;
            if n >= head_left {
                n -= head_left;
                self.frames.pop_front();
                self.head_written = 0;
            } else {
                self.head_written += n;
                n = 0;
            }
        }
    }

    /// Drops every frame not yet started; keeps a partially written head so the stream stays
    /// well-framed.
    fn truncate_unstarted(&mut self) {
        let keep = usize::from(self.head_written > 0);
        while self.frames.len() > keep {
            let f = self.frames.pop_back().expect("len checked");
            self.bytes -= f.len();
        }
    }
}

/// The write side of one socket. Shared (`Rc`) by the connection, the channel tables that
/// deliver to it, and the flusher; it lives on one shard only.
pub struct SocketOut {
    /// Raw fd for `sendmsg` and `shutdown`; valid as long as `stream` lives.
    fd: RawFd,
    /// The connection's stream. The session reads it through [`SocketOut::poll_read`]; the
    /// writer uses it to wait for readiness (plain) or to write through rustls (TLS).
    /// Borrowed only inside a poll.
    stream: RefCell<Transport>,
    /// `stream` is TLS, so frames go through rustls instead of `sendmsg` (kept apart so the
    /// hot path does not borrow the stream to find out).
    tls: bool,
    queue: RefCell<Queue>,
    state: Cell<WriteState>,
    /// Already in the flusher's dirty list.
    dirty: Cell<bool>,
    /// A writable-wait task owns flushing this socket until the kernel takes bytes again.
    blocked: Cell<bool>,
    max_frames: usize,
    max_bytes: usize,
    flush: Rc<FlushQueue>,
    /// When the queue last went from empty to non-empty (coarse clock), for queue delay.
    pending_since: Cell<Option<Instant>>,
}

impl SocketOut {
    pub fn new(
        stream: Transport,
        flush: Rc<FlushQueue>,
        max_frames: usize,
        max_bytes: usize,
    ) -> Rc<SocketOut> {
        Rc::new(SocketOut {
            fd: stream.raw_fd(),
            tls: stream.is_tls(),
            stream: RefCell::new(stream),
            queue: RefCell::new(Queue::default()),
            state: Cell::new(WriteState::Open),
            dirty: Cell::new(false),
            blocked: Cell::new(false),
            max_frames,
            max_bytes,
            flush,
            pending_since: Cell::new(None),
        })
    }

    pub fn state(&self) -> WriteState {
        self.state.get()
    }

    /// Reads from the socket: the connection's read side, which lives here so the writer can
    /// reach the same stream. On TLS, records rustls produced while reading (an alert, a key
    /// update reply) get the socket scheduled, so they leave even when no frame is queued.
    pub fn poll_read(
        self: &Rc<Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut stream = self.stream.borrow_mut();
        let res = futures_lite::AsyncRead::poll_read(Pin::new(&mut *stream), cx, buf);
        if self.tls && self.state.get() == WriteState::Open && stream.wants_write() {
            drop(stream);
            self.schedule();
        }
        res
    }

    /// Frames waiting to be written (for tests and stats).
    pub fn queued_frames(&self) -> usize {
        self.queue.borrow().frames.len()
    }

    /// Queues one server message: a WebSocket writes the frame as it was encoded. Over the
    /// bound the socket is cut: queued frames are dropped and a close frame with 4100 is
    /// queued instead.
    pub fn push(self: &Rc<Self>, frame: crate::frame::Frame) -> Push {
        self.push_ws(frame.into_ws())
    }

    /// Queues one finished WebSocket frame of any kind (the test echo's binary frames), with
    /// the bounds of [`SocketOut::push`].
    pub fn push_ws(self: &Rc<Self>, frame: Bytes) -> Push {
        if self.state.get() != WriteState::Open || frame.is_empty() {
            // An empty frame could never be written (a zero-byte send makes no progress).
            return Push::Dropped;
        }
        {
            let mut q = self.queue.borrow_mut();
            if q.frames.len() >= self.max_frames || q.bytes + frame.len() > self.max_bytes {
                tracing::warn!(
                    fd = self.fd,
                    queued_frames = q.frames.len(),
                    queued_bytes = q.bytes,
                    "slow consumer: outbound queue full, closing with 4100"
                );
                drop(q);
                crate::stats::add(&self.flush.stats.slow_consumers, 1);
                self.cut_with(crate::frame::close_frame(
                    crate::protocol::codes::OVER_CAPACITY,
                    "over capacity",
                ));
                return Push::Overflow;
            }
            if q.frames.is_empty() {
                self.pending_since.set(Some(self.flush.clock.get()));
            }
            q.bytes += frame.len();
            q.frames.push_back(frame);
        }
        self.schedule();
        Push::Queued
    }

    /// Starts closing gracefully: `close` (a WebSocket close frame) goes out after what is
    /// already queued, and further frames are refused. Idempotent.
    pub fn close_with(self: &Rc<Self>, close: Bytes) {
        self.start_close(close, false);
    }

    /// Cuts the socket: frames not yet started are dropped, then `close` is sent. For a
    /// consumer that fell behind, whose backlog is the problem.
    pub fn cut_with(self: &Rc<Self>, close: Bytes) {
        self.start_close(close, true);
    }

    fn start_close(self: &Rc<Self>, close: Bytes, drop_queued: bool) {
        if self.state.get() != WriteState::Open {
            return;
        }
        // A close frame with a status: `0x88`, a short length, then the code.
        if let [0x88, _, hi, lo, ..] = close[..] {
            crate::stats::note_close(u16::from_be_bytes([hi, lo]));
        }
        {
            let mut q = self.queue.borrow_mut();
            if drop_queued {
                q.truncate_unstarted();
            }
            if !close.is_empty() {
                q.bytes += close.len();
                q.frames.push_back(close);
            }
        }
        self.state.set(WriteState::Closing {
            since: Instant::now(),
        });
        self.schedule();
    }

    /// Queues `frame` even if it pushes the queue past its bound: for the few control frames
    /// (pong, close reply) tungstenite produces, which are tiny and must not be lost.
    pub fn push_control(self: &Rc<Self>, frame: Bytes) {
        if self.state.get() != WriteState::Open || frame.is_empty() {
            return;
        }
        {
            let mut q = self.queue.borrow_mut();
            q.bytes += frame.len();
            q.frames.push_back(frame);
        }
        self.schedule();
    }

    /// Shuts the socket down in both directions and drops everything queued: the reader sees
    /// EOF and the connection ends. Used when the grace period of a close ran out, or when
    /// the reader has ended.
    pub fn abort(&self) {
        if self.state.get() == WriteState::Closed {
            return;
        }
        self.state.set(WriteState::Closed);
        let mut q = self.queue.borrow_mut();
        q.frames.clear();
        q.bytes = 0;
        q.head_written = 0;
        let _ = self.with_sock(|s| s.shutdown(std::net::Shutdown::Both));
    }

    /// Runs `f` on a socket2 view of our fd (for `sendmsg` flags and `shutdown`).
    fn with_sock<R>(&self, f: impl FnOnce(&socket2::SockRef<'_>) -> R) -> R {
        // SAFETY: `fd` belongs to `self.stream`, which lives as long as `self`; the borrow
        // does not outlive this call.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        f(&socket2::SockRef::from(&fd))
    }

    fn schedule(self: &Rc<Self>) {
        if !self.dirty.get() && !self.blocked.get() {
            self.dirty.set(true);
            self.flush.mark(self.clone());
        }
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
            if matches!(self.state.get(), WriteState::Closed) {
                return FlushOutcome::Done;
            }
            let res = {
                let q = self.queue.borrow();
                if q.frames.is_empty() {
                    drop(q);
                    self.after_drain();
                    return FlushOutcome::Done;
                }
                let mut iov: [IoSlice<'_>; IOV_BATCH] = [IoSlice::new(&[]); IOV_BATCH];
                let mut n = 0;
                for (i, f) in q.frames.iter().take(IOV_BATCH).enumerate() {
                    iov[i] = if i == 0 {
                        IoSlice::new(&f[q.head_written..])
                    } else {
                        IoSlice::new(f)
                    };
                    n += 1;
                }
                self.with_sock(|s| {
                    s.send_vectored_with_flags(&iov[..n], libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
                })
            };
            match res {
                Ok(written) => {
                    crate::stats::add(&self.flush.stats.bytes_out, written as u64);
                    self.queue.borrow_mut().advance(written);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return FlushOutcome::Blocked,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    // The peer is gone; the reader will notice and clean up.
                    self.abort();
                    return FlushOutcome::Done;
                }
            }
        }
        if self.queue.borrow().frames.is_empty() {
            self.after_drain();
            FlushOutcome::Done
        } else {
            FlushOutcome::More
        }
    }

    /// The TLS counterpart of the `sendmsg` loop: up to [`SENDS_PER_VISIT`] writes of up to
    /// [`TLS_RECORD`] bytes each, then a flush of what rustls still holds (for a closing
    /// socket: `close_notify` and the write side's shutdown, via `poll_close`). `Pending` when
    /// the socket takes no more; the waker in `cx` is then registered with glommio.
    ///
    /// rustls takes plaintext up to its own buffer limit (64 KiB) even while the socket is
    /// full, so a TLS socket may hold that much beyond `outbox_max_bytes`.
    fn poll_flush_tls(self: &Rc<Self>, cx: &mut Context<'_>) -> Poll<FlushOutcome> {
        for _ in 0..SENDS_PER_VISIT {
            if self.state.get() == WriteState::Closed {
                return Poll::Ready(FlushOutcome::Done);
            }
            let res = {
                let q = self.queue.borrow();
                let Some(head) = q.frames.front() else {
                    break;
                };
                let head = &head[q.head_written..];
                let mut stream = self.stream.borrow_mut();
                if q.frames.len() == 1 || head.len() >= TLS_RECORD {
                    futures_lite::AsyncWrite::poll_write(Pin::new(&mut *stream), cx, head)
                } else {
                    // Coalesce: frames (the last possibly in part; the queue tracks partial
                    // heads) into one record-sized buffer.
                    let mut buf = self.flush.tls_scratch.borrow_mut();
                    buf.clear();
                    buf.extend_from_slice(head);
                    for f in q.frames.iter().skip(1) {
                        let take = f.len().min(TLS_RECORD - buf.len());
                        buf.extend_from_slice(&f[..take]);
                        if buf.len() == TLS_RECORD {
                            break;
                        }
                    }
                    futures_lite::AsyncWrite::poll_write(Pin::new(&mut *stream), cx, &buf)
                }
            };
            match res {
                Poll::Ready(Ok(n)) if n > 0 => {
                    crate::stats::add(&self.flush.stats.bytes_out, n as u64);
                    self.queue.borrow_mut().advance(n);
                }
                Poll::Pending => return Poll::Pending,
                Poll::Ready(_) => {
                    // An error, or no progress on a non-empty buffer: the peer is gone.
                    self.abort();
                    return Poll::Ready(FlushOutcome::Done);
                }
            }
        }
        if !self.queue.borrow().frames.is_empty() {
            return Poll::Ready(FlushOutcome::More);
        }
        let res = {
            let mut stream = self.stream.borrow_mut();
            let stream = Pin::new(&mut *stream);
            match self.state.get() {
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
                self.abort();
                Poll::Ready(FlushOutcome::Done)
            }
        }
    }

    /// Everything is written: record how long the queue waited; a closing socket now shuts
    /// its write side.
    fn after_drain(&self) {
        if let Some(since) = self.pending_since.take() {
            crate::stats::record_duration(
                &self.flush.stats.queue_delay_us,
                self.flush.clock.get().saturating_duration_since(since),
            );
        }
        if let WriteState::Closing { since } = self.state.get() {
            // A TLS stream's `poll_close` already shut it, after its `close_notify`.
            if !self.tls {
                let _ = self.with_sock(|s| s.shutdown(std::net::Shutdown::Write));
            }
            self.state.set(WriteState::ShutWrite { since });
        }
    }

    /// Waits until the socket is writable by letting glommio write the rest of the head
    /// frame (TLS: by polling the TLS flush with a real waker), then hands the socket back to
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
                    let q = self.queue.borrow();
                    let Some(head) = q.frames.front() else {
                        return Poll::Ready(Ok(0));
                    };
                    let slice = &head[q.head_written..];
                    let mut stream = self.stream.borrow_mut();
                    futures_lite::AsyncWrite::poll_write(Pin::new(&mut *stream), cx, slice)
                })
                .await;
                match res {
                    Ok(n) => self.queue.borrow_mut().advance(n),
                    Err(_) => {
                        self.abort();
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
        self.blocked.set(false);
        if !self.queue.borrow().frames.is_empty() && self.state.get() != WriteState::Closed {
            self.schedule();
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
    dirty: RefCell<Vec<Rc<SocketOut>>>,
    /// Coarse clock: refreshed once per flusher pass and per delivered batch, so queue-delay
    /// accounting costs no clock read per frame.
    clock: Cell<Instant>,
    stats: Rc<ShardStats>,
    /// Where a TLS socket's frames are coalesced before rustls encrypts them; one per shard,
    /// borrowed only within one synchronous write.
    tls_scratch: RefCell<Vec<u8>>,
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
            stats,
            tls_scratch: RefCell::new(Vec::new()),
            wake_tx,
            wake_rx: RefCell::new(Some(wake_rx)),
        })
    }

    /// Refreshes the coarse clock.
    pub fn tick_clock(&self) {
        self.clock.set(Instant::now());
    }

    fn mark(&self, s: Rc<SocketOut>) {
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
        let mut batch: Vec<Rc<SocketOut>> = Vec::new();
        loop {
            if self.dirty.borrow().is_empty() && rx.recv().await.is_none() {
                return;
            }
            self.tick_clock();
            std::mem::swap(&mut batch, &mut *self.dirty.borrow_mut());
            for (i, s) in batch.drain(..).enumerate() {
                s.dirty.set(false);
                match s.flush_now() {
                    FlushOutcome::Done => {}
                    FlushOutcome::More => s.schedule(),
                    FlushOutcome::Blocked => {
                        s.blocked.set(true);
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
    fn queue_advance_and_truncate() {
        let mut q = Queue::default();
        for s in ["abc", "de", "fghi"] {
            q.bytes += s.len();
            q.frames.push_back(Bytes::from_static(s.as_bytes()));
        }
        q.advance(4);
        assert_eq!(q.frames.len(), 2);
        assert_eq!(q.head_written, 1);
        assert_eq!(q.bytes, 5);
        q.truncate_unstarted();
        assert_eq!(q.frames.len(), 1, "partial head kept");
        assert_eq!(q.bytes, 1);
        q.advance(1);
        assert!(q.frames.is_empty());
        assert_eq!(q.bytes, 0);
    }
}
