//! A session's bounded outbound queue, transport-neutral: server messages ([`Frame`]s, shared
//! bytes) wait here in push order until the transport's writer takes them, and a close
//! (`code`, `reason`) goes last. The bounds (`outbox_max_frames`, `outbox_max_bytes`) are
//! enforced here: a consumer that falls behind is cut with 4100 whatever its transport.
//!
//! A transport attaches a [`Writer`] and may detach it; with none attached, frames wait
//! (bounded), which is what a polling transport needs between two polls. The queue tells the
//! writer "something to write" at most once per writer pass ([`Outbound::schedule`]): a
//! fanout's push is one refcount clone and one `VecDeque` push, plus one wake-up per idle
//! socket, never one per frame.
//!
//! **Boundary:** imports no transport. How a frame or a close looks on the wire is the
//! writer's business (the WebSocket writer is `crate::outbox`).
//!
//! **Invariant:** frames leave in push order, and a partially written frame is finished
//! before anything else; [`Outbound::cut`] drops only frames not yet started.

use crate::frame::Frame;
use crate::stats::ShardStats;
use std::cell::{Cell, Ref, RefCell};
use std::collections::VecDeque;
use std::rc::{Rc, Weak};
use std::time::Instant;

/// Where a session's output is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteState {
    /// Accepting frames.
    Open,
    /// A close is queued; nothing more is accepted. `since` starts the grace period.
    Closing { since: Instant },
    /// The close went out and the transport's write side is shut; waiting for the peer.
    ShutWrite { since: Instant },
    /// The session is done; frames are dropped.
    Closed,
}

/// Result of queueing a frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Push {
    Queued,
    /// The session is closing or closed; the frame was dropped.
    Dropped,
    /// The queue was over its bound; the session is now closing with 4100.
    Overflow,
}

/// A transport's writer, as the queue sees it. Called rarely (not per frame): once when the
/// queue gets work while the writer is idle, and once at the end.
pub trait Writer {
    /// The queue has frames or a close to write and the writer is idle: get them written.
    /// Not called again until the writer reports [`Outbound::idle`].
    fn wake(self: Rc<Self>);
    /// The session is over ([`Outbound::abort`]): tear the transport down, so its reader
    /// sees the end.
    fn abort(&self);
    /// The queue was cut ([`Outbound::cut`]): drop what the writer holds of its own that
    /// has not started, as the queue dropped its unstarted frames.
    fn cut(&self);
}

/// The frames waiting, in push order.
#[derive(Debug, Default)]
pub struct Queue {
    frames: VecDeque<Frame>,
    /// Bytes of `frames[0]` already written.
    head_written: usize,
    /// Sum of unwritten bytes, for the byte bound.
    bytes: usize,
}

impl Queue {
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Frames waiting (the head counts while partially written).
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// The head frame is partially written: nothing may go out before its rest.
    pub fn mid_frame(&self) -> bool {
        self.head_written > 0
    }

    /// The unwritten WebSocket bytes of each frame, in order: the head's rest, then whole
    /// frames.
    pub fn unwritten(&self) -> impl Iterator<Item = &[u8]> {
        let head = self.head_written;
        self.frames
            .iter()
            .enumerate()
            .map(move |(i, f)| if i == 0 { &f.ws()[head..] } else { &f.ws()[..] })
    }

    /// Marks `n` bytes written; returns how many frames that finished.
    fn advance(&mut self, mut n: usize) -> usize {
        self.bytes -= n;
        let mut done = 0;
        while n > 0 {
            let head_left = self.frames[0].len() - self.head_written;
            if n >= head_left {
                n -= head_left;
                self.frames.pop_front();
                self.head_written = 0;
                done += 1;
            } else {
                self.head_written += n;
                n = 0;
            }
        }
        done
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

    fn clear(&mut self) {
        self.frames.clear();
        self.bytes = 0;
        self.head_written = 0;
    }
}

/// The outbound side of one session. Shared (`Rc`) by the session, the channel tables that
/// deliver to it, and its writer; it lives on one shard only.
///
/// Kept small (every connection has one): the state is a phase byte and an instant rather
/// than a [`WriteState`], and what a close needs is boxed (a session closes once; an open one
/// pays one word for it).
pub struct Outbound {
    queue: RefCell<Queue>,
    phase: Cell<Phase>,
    /// The writer was woken and has not reported idle: a push need not wake it again.
    scheduled: Cell<bool>,
    /// Frames written since the start (wrapping): with the queue's length, it places a
    /// transport's own bytes between two frames ([`Outbound::mark`]).
    written: Cell<u32>,
    /// Set when closing starts (phases `Closing` and `ShutWrite`).
    closing: Cell<Option<Box<Closing>>>,
    /// Weak: the writer holds the queue, not the other way round.
    writer: Cell<Option<Weak<dyn Writer>>>,
    max_frames: u32,
    max_bytes: u32,
    stats: Rc<ShardStats>,
}

/// A close under way.
struct Closing {
    /// Start of the grace period.
    since: Instant,
    code: u16,
    reason: &'static str,
    /// The writer took the close ([`Outbound::take_close`]).
    taken: bool,
}

/// [`WriteState`] without its instant.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    Closing,
    ShutWrite,
    Closed,
}

impl Outbound {
    /// A queue of at most `max_frames` frames and `max_bytes` bytes (each capped at 4 GiB).
    pub fn new(max_frames: usize, max_bytes: usize, stats: Rc<ShardStats>) -> Rc<Outbound> {
        Rc::new(Outbound {
            queue: RefCell::new(Queue::default()),
            phase: Cell::new(Phase::Open),
            scheduled: Cell::new(false),
            written: Cell::new(0),
            closing: Cell::new(None),
            writer: Cell::new(None),
            max_frames: u32::try_from(max_frames).unwrap_or(u32::MAX),
            max_bytes: u32::try_from(max_bytes).unwrap_or(u32::MAX),
            stats,
        })
    }

    pub fn state(&self) -> WriteState {
        let since = || {
            self.with_closing(|c| c.since)
                .expect("set when closing starts")
        };
        match self.phase.get() {
            Phase::Open => WriteState::Open,
            Phase::Closing => WriteState::Closing { since: since() },
            Phase::ShutWrite => WriteState::ShutWrite { since: since() },
            Phase::Closed => WriteState::Closed,
        }
    }

    /// Whether `extra` bytes that a transport keeps of its own (a WebSocket's pongs) still
    /// fit beside the queued frames in the byte bound: a transport's own bytes count against
    /// the same bound as the frames, so a client cannot grow them without limit.
    pub fn has_room_for(&self, extra: usize) -> bool {
        self.queue.borrow().bytes + extra <= self.max_bytes as usize
    }

    /// Cuts the session as a slow consumer (4100), counted like a queue overflow: for a
    /// transport whose own bytes outgrew the bound ([`Outbound::has_room_for`]).
    pub fn overflow(&self) {
        tracing::warn!(
            "slow consumer: the transport's own bytes outgrew the bound, closing with 4100"
        );
        crate::stats::add(&self.stats.slow_consumers, 1);
        self.cut(crate::protocol::codes::OVER_CAPACITY, "over capacity");
    }

    /// Frames waiting to be written (for tests and stats).
    pub fn queued_frames(&self) -> usize {
        self.queue.borrow().frames.len()
    }

    /// Queues one server message. Over the bound the session is cut: queued frames are
    /// dropped and it closes with 4100.
    pub fn push(&self, frame: Frame) -> Push {
        if self.phase.get() != Phase::Open || frame.is_empty() {
            // An empty frame could never be written (a zero-byte send makes no progress).
            return Push::Dropped;
        }
        {
            let mut q = self.queue.borrow_mut();
            if q.frames.len() >= self.max_frames as usize
                || q.bytes + frame.len() > self.max_bytes as usize
            {
                tracing::warn!(
                    queued_frames = q.frames.len(),
                    queued_bytes = q.bytes,
                    "slow consumer: outbound queue full, closing with 4100"
                );
                drop(q);
                crate::stats::add(&self.stats.slow_consumers, 1);
                self.cut(crate::protocol::codes::OVER_CAPACITY, "over capacity");
                return Push::Overflow;
            }
            q.bytes += frame.len();
            q.frames.push_back(frame);
        }
        self.schedule();
        Push::Queued
    }

    /// Starts closing gracefully: the close goes out after what is already queued, and
    /// further frames are refused. Idempotent.
    pub fn close(&self, code: u16, reason: &'static str) {
        self.start_close(code, reason, false);
    }

    /// Cuts the session: frames not yet started are dropped, then the close is sent. For a
    /// consumer that fell behind, whose backlog is the problem.
    pub fn cut(&self, code: u16, reason: &'static str) {
        self.start_close(code, reason, true);
    }

    fn start_close(&self, code: u16, reason: &'static str, drop_queued: bool) {
        if self.phase.get() != Phase::Open {
            return;
        }
        // 1005 ("no status") is never sent as a code: it stands for a close without one.
        if code != NO_STATUS {
            crate::stats::note_close(code);
        }
        if drop_queued {
            self.queue.borrow_mut().truncate_unstarted();
            if let Some(w) = self.writer() {
                w.cut();
            }
        }
        self.closing.set(Some(Box::new(Closing {
            since: Instant::now(),
            code,
            reason,
            taken: false,
        })));
        self.phase.set(Phase::Closing);
        self.schedule();
    }

    /// Ends the session at once: everything queued is dropped and the writer tears the
    /// transport down. Used when the grace period of a close ran out, when the reader has
    /// ended, or when the transport failed.
    pub fn abort(&self) {
        if self.phase.get() == Phase::Closed {
            return;
        }
        self.phase.set(Phase::Closed);
        self.closing.set(None);
        self.queue.borrow_mut().clear();
        if let Some(w) = self.writer() {
            w.abort();
        }
    }

    /// Attaches a transport's writer; what is already queued is handed to it.
    pub fn attach(&self, writer: Weak<dyn Writer>) {
        self.writer.set(Some(writer));
        self.scheduled.set(false);
        if !self.queue.borrow().is_empty() || self.close_pending() {
            self.schedule();
        }
    }

    /// Detaches the writer: frames wait (bounded) until another attaches. Call between two
    /// writer passes, never during one.
    pub fn detach(&self) {
        self.writer.set(None);
        self.scheduled.set(false);
    }

    /// Wakes the writer unless it already has work pending. The writer also calls this when
    /// it has bytes of its own to send (a transport's control replies).
    #[inline]
    pub fn schedule(&self) {
        if !self.scheduled.get() {
            self.wake_writer();
        }
    }

    fn wake_writer(&self) {
        if let Some(w) = self.writer() {
            self.scheduled.set(true);
            w.wake();
        }
    }

    /// The attached writer, if it is still alive.
    fn writer(&self) -> Option<Rc<dyn Writer>> {
        let weak = self.writer.take()?;
        let w = weak.upgrade();
        self.writer.set(Some(weak));
        w
    }

    // The writer's side.

    /// The frames waiting, for the writer to write from. Do not hold it across a push.
    pub fn queue(&self) -> Ref<'_, Queue> {
        self.queue.borrow()
    }

    /// `n` bytes of the queue's head were written.
    pub fn advance(&self, n: usize) {
        let done = self.queue.borrow_mut().advance(n);
        self.written
            .set(self.written.get().wrapping_add(done as u32));
    }

    /// Takes the head frame whole: for a transport that frames payloads its own way and
    /// retires them as it takes them (the HTTP transports, `crate::xhr`). `None` with none
    /// queued, or with the head partially written by a byte-stream writer.
    pub fn pop(&self) -> Option<Frame> {
        let mut q = self.queue.borrow_mut();
        if q.head_written > 0 {
            return None;
        }
        let f = q.frames.pop_front()?;
        q.bytes -= f.len();
        drop(q);
        self.written.set(self.written.get().wrapping_add(1));
        Some(f)
    }

    /// The place after every frame pushed so far: a writer keeps a mark with bytes of its
    /// own (a WebSocket pong) to send them after those frames and before later ones.
    pub fn mark(&self) -> u32 {
        let len = self.queue.borrow().frames.len() as u32;
        self.written.get().wrapping_add(len)
    }

    /// Frames still queued in front of `mark` (0: its bytes go next, at a frame boundary).
    /// Frames dropped by a cut no longer count.
    pub fn frames_before(&self, mark: u32) -> usize {
        let ahead = mark.wrapping_sub(self.written.get()) as usize;
        ahead.min(self.queue.borrow().frames.len())
    }

    /// Unwritten bytes of the head frame (0 with none queued).
    pub fn head_left(&self) -> usize {
        let q = self.queue.borrow();
        q.frames.front().map_or(0, |f| f.len() - q.head_written)
    }

    /// A close is queued that the writer has not taken yet.
    pub fn close_pending(&self) -> bool {
        self.with_closing(|c| !c.taken).unwrap_or(false)
    }

    /// The close (`code`, `reason`) to write now, once every frame is written; taken once.
    pub fn take_close(&self) -> Option<(u16, &'static str)> {
        if !self.queue.borrow().is_empty() {
            return None;
        }
        self.with_closing(|c| {
            let take = !c.taken;
            c.taken = true;
            take.then_some((c.code, c.reason))
        })
        .flatten()
    }

    /// Runs `f` on the close under way, if any (the box is taken out and put back).
    fn with_closing<R>(&self, f: impl FnOnce(&mut Closing) -> R) -> Option<R> {
        let mut closing = self.closing.take()?;
        let r = f(&mut closing);
        self.closing.set(Some(closing));
        Some(r)
    }

    /// The writer wrote everything including the close, and shut its write side.
    pub fn close_sent(&self) {
        if self.phase.get() == Phase::Closing {
            self.phase.set(Phase::ShutWrite);
        }
    }

    /// The writer finished its pass: the next push wakes it again.
    pub fn idle(&self) {
        self.scheduled.set(false);
    }
}

/// The code a close carries when the peer's close had none (RFC 6455 §7.4.1): a writer
/// sends such a close without a status.
pub const NO_STATUS: u16 = 1005;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_advance_and_truncate() {
        let mut q = Queue::default();
        for s in ["abc", "de", "fghi"] {
            let f = Frame::text(s.as_bytes());
            q.bytes += f.len();
            q.frames.push_back(f);
        }
        // Frames are 5, 4 and 6 bytes (2-byte headers).
        q.advance(6);
        assert_eq!(q.frames.len(), 2);
        assert_eq!(q.head_written, 1);
        assert_eq!(q.bytes, 9);
        assert_eq!(q.unwritten().map(<[u8]>::len).collect::<Vec<_>>(), [3, 6]);
        q.truncate_unstarted();
        assert_eq!(q.frames.len(), 1, "partial head kept");
        assert_eq!(q.bytes, 3);
        q.advance(3);
        assert!(q.frames.is_empty());
        assert_eq!(q.bytes, 0);
    }

    #[test]
    fn frames_wait_without_a_writer_and_the_bound_cuts() {
        let out = Outbound::new(2, 1 << 20, Rc::new(ShardStats::default()));
        assert_eq!(out.push(Frame::text(b"a")), Push::Queued);
        assert_eq!(out.push(Frame::text(b"b")), Push::Queued);
        assert_eq!(out.queued_frames(), 2);
        assert_eq!(out.push(Frame::text(b"c")), Push::Overflow);
        assert!(matches!(out.state(), WriteState::Closing { .. }));
        assert_eq!(out.queued_frames(), 0, "unstarted frames dropped");
        assert_eq!(out.take_close(), Some((4100, "over capacity")));
        assert_eq!(out.push(Frame::text(b"d")), Push::Dropped);
    }

    /// A writer that counts its wake-ups and takes nothing.
    #[derive(Default)]
    struct Counting {
        wakes: Cell<u32>,
        aborts: Cell<u32>,
    }

    impl Writer for Counting {
        fn wake(self: Rc<Self>) {
            self.wakes.set(self.wakes.get() + 1);
        }
        fn abort(&self) {
            self.aborts.set(self.aborts.get() + 1);
        }
        fn cut(&self) {}
    }

    #[test]
    fn a_writer_is_woken_once_per_pass_and_on_attach() {
        let out = Outbound::new(16, 1 << 20, Rc::new(ShardStats::default()));
        out.push(Frame::text(b"waits for a writer"));
        let w = Rc::new(Counting::default());
        let weak: Weak<dyn Writer> = Rc::downgrade(&w) as Weak<Counting>;
        out.attach(weak);
        assert_eq!(w.wakes.get(), 1, "attach hands over what is queued");
        out.push(Frame::text(b"a"));
        out.push(Frame::text(b"b"));
        assert_eq!(w.wakes.get(), 1, "no wake-up while scheduled");
        out.idle();
        out.push(Frame::text(b"c"));
        assert_eq!(w.wakes.get(), 2);
        let all = out.queue().unwritten().map(<[u8]>::len).sum();
        out.advance(all);
        assert_eq!(out.queued_frames(), 0);
        out.idle();
        out.detach();
        out.close(1000, "bye");
        assert_eq!(w.wakes.get(), 2, "a detached writer is not woken");
        assert!(out.close_pending());
        out.abort();
        assert_eq!(out.state(), WriteState::Closed);
        assert_eq!(w.aborts.get(), 0, "nor aborted");
    }
}
