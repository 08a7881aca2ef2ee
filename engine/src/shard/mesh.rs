//! Sending [`ShardMsg`]s between shards without ever blocking a handler.
//!
//! Message handlers run synchronously and must never await a full ring: two shards awaiting
//! each other's full rings would deadlock. So a send first tries the lock-free ring; if it is
//! full, the message goes to a per-peer overflow queue drained by a sender task that does
//! await. Order per destination is kept (once anything overflows, later messages queue behind
//! it). The overflow is bounded from the edge: an HTTP publisher waits in
//! [`MeshOut::wait_for_room`] on the queue it is about to use, and a connection that sent a
//! client event into a full queue reads nothing more until it has room; so each edge adds
//! at most one message beyond the high-water mark, and the rest is in-flight fanout and
//! control traffic.

use super::msg::ShardMsg;
use crate::placement::ShardId;
use glommio::channels::channel_mesh::Senders;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::GlommioError;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

pub struct MeshOut {
    me: ShardId,
    /// `None` with a single shard: everything is local.
    senders: Option<Rc<Senders<ShardMsg>>>,
    /// Per destination: messages waiting for ring space (index `me` is the local inbox).
    queues: Vec<RefCell<VecDeque<ShardMsg>>>,
    /// Per destination: wakes its drain task (capacity-1 channel used as a flag).
    wake: Vec<LocalSender<()>>,
    wake_rx: RefCell<Vec<Option<LocalReceiver<()>>>>,
    /// Overflow length at which edge publishers wait.
    high_water: usize,
    /// Per destination: the drain task holds a popped message while it awaits ring space.
    /// Until it is sent, new messages must queue behind it, not overtake it.
    in_flight: Vec<Cell<bool>>,
    /// Per destination: edge tasks waiting for its overflow to drop to the high-water mark,
    /// woken by the drain task when it does. Hand-written rather than a crate's event
    /// (event-listener): the waiters and the drain task share one thread, so a list of
    /// wakers in a `RefCell` is all it takes, with no atomics on the drain path.
    room: Vec<RefCell<Vec<Waker>>>,
    /// The longest overflow an admitted event joined (`/stats` `mesh_overflow_peak`): the
    /// edge's backpressure keeps it at most the high-water mark + 1.
    peak: Cell<usize>,
}

impl MeshOut {
    pub fn new(
        me: ShardId,
        nr_shards: usize,
        senders: Option<Senders<ShardMsg>>,
        high_water: usize,
    ) -> MeshOut {
        let (wake, wake_rx): (Vec<_>, Vec<_>) = (0..nr_shards)
            .map(|_| {
                let (tx, rx) = local_channel::new_bounded(1);
                (tx, Some(rx))
            })
            .unzip();
        MeshOut {
            me,
            senders: senders.map(Rc::new),
            queues: (0..nr_shards)
                .map(|_| RefCell::new(VecDeque::new()))
                .collect(),
            wake,
            wake_rx: RefCell::new(wake_rx),
            high_water,
            in_flight: (0..nr_shards).map(|_| Cell::new(false)).collect(),
            room: (0..nr_shards).map(|_| RefCell::new(Vec::new())).collect(),
            peak: Cell::new(0),
        }
    }

    /// Sends `msg` to shard `dst` (possibly this one). Never blocks, never fails while the
    /// shards run.
    pub fn send(&self, dst: ShardId, msg: ShardMsg) {
        if dst != self.me && !self.in_flight[dst].get() && self.queues[dst].borrow().is_empty() {
            let senders = self.senders.as_ref().expect("multi-shard mesh");
            match senders.try_send_to(dst, msg) {
                Ok(()) => return,
                Err(GlommioError::WouldBlock(glommio::ResourceType::Channel(m))) => {
                    self.enqueue(dst, m);
                }
                Err(e) => tracing::error!(dst, error = %e, "mesh send failed; shard gone"),
            }
            return;
        }
        self.enqueue(dst, msg);
    }

    fn enqueue(&self, dst: ShardId, msg: ShardMsg) {
        let was_empty = {
            let mut q = self.queues[dst].borrow_mut();
            q.push_back(msg);
            q.len() == 1
        };
        if was_empty {
            let _ = self.wake[dst].try_send(());
        }
    }

    /// Messages waiting in the overflow towards `dst` (including one being sent).
    pub fn backlog(&self, dst: ShardId) -> usize {
        self.queues[dst].borrow().len() + usize::from(self.in_flight[dst].get())
    }

    /// Sends an event the edge admitted after [`MeshOut::wait_for_room`], and notes the
    /// length of the overflow it joined.
    pub fn send_admitted(&self, dst: ShardId, msg: ShardMsg) {
        self.send(dst, msg);
        let len = self.queues[dst].borrow().len();
        self.peak.set(self.peak.get().max(len));
    }

    /// The longest overflow an admitted event joined since the shard started.
    pub fn overflow_peak(&self) -> usize {
        self.peak.get()
    }

    /// Whether the overflow towards `dst` is above the high-water mark.
    pub fn is_full(&self, dst: ShardId) -> bool {
        self.queues[dst].borrow().len() > self.high_water
    }

    /// Waits while the overflow towards `dst` is above the high-water mark: the edge's
    /// backpressure (nothing grows without bound). Woken when the drain task brings it
    /// down, not by polling; the caller sends in the same poll that returns, so one waiter
    /// at a time gets the room.
    pub async fn wait_for_room(&self, dst: ShardId) {
        poll_fn(|cx| {
            if !self.is_full(dst) {
                return Poll::Ready(());
            }
            let mut waiters = self.room[dst].borrow_mut();
            if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
                waiters.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }

    /// Called after the drain task took a message towards `dst`.
    fn note_drained(&self, dst: ShardId) {
        if !self.is_full(dst) && !self.room[dst].borrow().is_empty() {
            let waiters = std::mem::take(&mut *self.room[dst].borrow_mut());
            waiters.into_iter().for_each(Waker::wake);
        }
    }

    /// The drain task for `dst`. For `dst == me` it feeds `local` (the shard's own handler);
    /// otherwise it awaits ring space.
    pub async fn drain(self: Rc<Self>, dst: ShardId, local: impl Fn(ShardMsg)) {
        let rx = self.wake_rx.borrow_mut()[dst]
            .take()
            .expect("one drain task per peer");
        loop {
            let next = self.queues[dst].borrow_mut().pop_front();
            if next.is_some() {
                self.note_drained(dst);
            }
            match next {
                Some(msg) if dst == self.me => {
                    local(msg);
                    glommio::yield_if_needed().await;
                }
                Some(msg) => {
                    let senders = self.senders.as_ref().expect("multi-shard mesh").clone();
                    self.in_flight[dst].set(true);
                    let res = senders.send_to(dst, msg).await;
                    self.in_flight[dst].set(false);
                    if let Err(e) = res {
                        tracing::error!(dst, error = %e, "mesh send failed; shard gone");
                    }
                }
                None => {
                    if rx.recv().await.is_none() {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::msg::Reply;
    use std::future::Future;
    use std::time::Duration;

    fn msg() -> ShardMsg {
        ShardMsg::Reply {
            id: 0,
            reply: Reply::Published,
        }
    }

    /// A waiter is woken when the overflow drains, not by a timer: while nothing drains it
    /// is polled once, however long it waits; once the drain task runs it goes on at once.
    #[test]
    fn wait_for_room_sleeps_until_the_overflow_drains() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                // One shard: its own inbox is an overflow queue like any other.
                let mesh = Rc::new(MeshOut::new(0, 1, None, 2));
                for _ in 0..5 {
                    mesh.send(0, msg());
                }
                assert!(mesh.is_full(0));
                let polls = Rc::new(Cell::new(0u32));
                let (m, p) = (mesh.clone(), polls.clone());
                let waiter = glommio::spawn_local(async move {
                    let mut wait = std::pin::pin!(m.wait_for_room(0));
                    poll_fn(|cx| {
                        p.set(p.get() + 1);
                        wait.as_mut().poll(cx)
                    })
                    .await;
                    m.backlog(0)
                });
                glommio::timer::sleep(Duration::from_millis(30)).await;
                assert_eq!(
                    polls.get(),
                    1,
                    "the waiter was polled while nothing drained"
                );
                let drained = Rc::new(Cell::new(0u32));
                let d = drained.clone();
                glommio::spawn_local(mesh.clone().drain(0, move |_| d.set(d.get() + 1))).detach();
                let left =
                    glommio::timer::timeout(Duration::from_secs(1), async { Ok(waiter.await) })
                        .await
                        .expect("the waiter is woken by the drain");
                assert!(left <= 2, "woken with {left} messages still queued");
                assert!(polls.get() <= 3, "{} polls", polls.get());
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
