//! Which role this node has for a channel besides ordering it: the node that would own it
//! next (its successor, which keeps a copy of a history channel), and the channels whose
//! owner is a given peer (what a lost link may have cut).

use super::NodeCore;
use crate::ownership::owner;
use crate::NodeId;

impl NodeCore {
    /// The live nodes of this node's view, itself included.
    pub fn live_ids(&self) -> &[NodeId] {
        &self.live_ids
    }

    /// The channels this node has subscribers to and `peer` owns (in this node's view):
    /// what may have missed a delivery when the link to `peer` goes down.
    pub fn interest_owned_by(&self, peer: &NodeId) -> Vec<(String, String)> {
        self.local_interest
            .channels()
            .filter(|(app, ch)| owner(app, ch, &self.live_ids) == Some(peer))
            .cloned()
            .collect()
    }

    /// The node that would own `channel` if this one were gone: the one its history is
    /// copied to. `None` when this node is alone in its view.
    pub fn successor_of(&self, app: &str, channel: &str) -> Option<NodeId> {
        let others: Vec<NodeId> = self
            .live_ids
            .iter()
            .filter(|n| **n != self.me.id)
            .cloned()
            .collect();
        crate::ownership::owner(app, channel, &others).cloned()
    }
}
