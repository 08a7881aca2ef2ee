//! This node's side of handoffs (docs/cluster.md "Handoff", ADR 0014; the protocol is
//! `raptor_cluster::node`'s): a graceful leave started from the drain, and `Released`
//! held back while an event of a channel with history still waits for its successor's
//! copy, since a `Released` promises that every event this node ordered is ahead of it.

use super::Gateway;
use crate::shard::Shard;
use raptor_cluster::wire::{HandoffStep, NodeMsg};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::Ordering;

#[derive(Default)]
pub(super) struct Leave {
    /// `NodeCore::leave` was called (the node drains).
    started: Cell<bool>,
    /// `Released` messages waiting for the history queues to empty.
    deferred: RefCell<Vec<NodeMsg>>,
    /// The live ids as last seen here: a change sends histories to new successors.
    live: RefCell<Vec<raptor_cluster::NodeId>>,
}

/// The node a `Released` hands channels to (`None`: every other node).
fn moving_to(msg: &NodeMsg) -> Option<raptor_cluster::NodeId> {
    match msg {
        NodeMsg::Handoff { new, .. } => raptor_cluster::NodeId::new(new).ok(),
        _ => None,
    }
}

/// Whether `msg` is a handoff's `Released` (it waits for queued history events).
pub(super) fn is_release(msg: &NodeMsg) -> bool {
    matches!(
        msg,
        NodeMsg::Handoff {
            step: HandoffStep::Released,
            ..
        }
    )
}

impl Gateway {
    /// On every tick and link event: once the node drains, leave the cluster (peers
    /// reroute, this node releases its channels), and tell the main thread when the
    /// release is out so that it may close the links (`Node::handed_off`).
    pub(super) fn leave_progress(self: &Rc<Self>, shard: &Shard) {
        if !shard.node.shutting_down() {
            return;
        }
        if !self.leave.started.replace(true) {
            let actions = self.core.borrow_mut().leave();
            self.apply(shard, actions);
        }
        self.flush_deferred_releases(shard);
        if !self.core.borrow().handoff_pending() && self.leave.deferred.borrow().is_empty() {
            shard.node.handed_off.store(true, Ordering::Relaxed);
        }
    }

    /// After a link event or a view change: if the live view changed, the channels this
    /// node owns hand their histories to their new successors.
    pub(super) fn successors_progress(&self, shard: &Shard) {
        let now = self.core.borrow().live_ids().to_vec();
        if *self.leave.live.borrow() == now {
            return;
        }
        let before = self.leave.live.replace(now);
        self.hand_over_to_successors(shard, &before);
    }

    /// A node that just started takes publishes once it knows its cluster and took over
    /// what older nodes handed it (`NodeCore::settled`), or after `JOIN_WAIT` (a timer in
    /// `Gateway::start`): before that its view may be partial, and it would route events to
    /// the wrong owner.
    pub(super) fn join_progress(&self, shard: &Shard) {
        if shard.node.joining.load(Ordering::Relaxed) && self.core.borrow().settled() {
            shard.node.joining.store(false, Ordering::Relaxed);
        }
    }

    /// Broadcasts a `Released` now, or once no history event waits for its copy (at most
    /// the history's `COPY_WAIT`: such events are then delivered unconfirmed).
    pub(super) fn release_or_defer(&self, shard: &Shard, msg: NodeMsg) {
        if self.history_waits(moving_to(&msg).as_ref()) {
            self.leave.deferred.borrow_mut().push(msg);
        } else {
            self.broadcast_release(shard, msg);
        }
    }

    pub(super) fn flush_deferred_releases(&self, shard: &Shard) {
        for msg in self.leave.deferred.take() {
            if self.history_waits(moving_to(&msg).as_ref()) {
                self.leave.deferred.borrow_mut().push(msg);
            } else {
                self.broadcast_release(shard, msg);
            }
        }
    }

    /// A join's `Released` goes behind the histories of the channels it hands over.
    fn broadcast_release(&self, shard: &Shard, msg: NodeMsg) {
        if let NodeMsg::Handoff { new, .. } = &msg {
            if let Ok(to) = raptor_cluster::NodeId::new(new) {
                self.hand_over_histories(shard, &to);
            }
        }
        self.carry_out_plain_broadcast(msg);
    }
}
