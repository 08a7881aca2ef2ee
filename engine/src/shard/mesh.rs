//! Sending [`ShardMsg`]s between shards without ever blocking a handler.
//!
//! Message handlers run synchronously and must never await a full ring: two shards awaiting
//! each other's full rings would deadlock. So a send first tries the lock-free ring; if it is
//! full, the message goes to a per-peer overflow queue drained by a sender task that does
//! await. Order per destination is kept (once anything overflows, later messages queue behind
//! it). The overflow is bounded from the edge: publishers call [`MeshOut::wait_for_room`]
//! before admitting new work, so only in-flight fanout and control traffic can sit there.

use super::msg::ShardMsg;
use crate::placement::ShardId;
use glommio::channels::channel_mesh::Senders;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::GlommioError;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

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

    /// Waits while the overflow towards `dst` is above the high-water mark: the edge's
    /// backpressure (an HTTP publisher waits; nothing grows without bound).
    pub async fn wait_for_room(&self, dst: ShardId) {
        while self.queues[dst].borrow().len() > self.high_water {
            glommio::timer::sleep(Duration::from_micros(200)).await;
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
