//! Read-only views of a node's state that neither the engine nor the protocol need, for the
//! scale simulator ([`crate::sim`]) and tests: what the node holds about each node's
//! presence members, and which nodes asked it for a channel by name.

use super::NodeCore;
use crate::presence::Digest;
use crate::NodeKey;

impl NodeCore {
    /// The digest of this node's own members (what it gossips as `presence`).
    pub fn own_presence_digest(&self) -> Digest {
        self.local_presence.digest()
    }

    /// Digests of the members this node holds about each node (itself included).
    pub fn held_presence(&self) -> Vec<(NodeKey, Digest)> {
        self.presence
            .held_nodes()
            .into_iter()
            .filter_map(|k| Some((k.clone(), self.presence.digest_of(&k)?)))
            .collect()
    }

    /// The nodes that announced interest in the channel by name (`Interest { on }`), as
    /// this node's table holds them (only an owner keeps such entries).
    pub fn named_interest(&self, app: &str, channel: &str) -> Vec<NodeKey> {
        self.table.named(app, channel).cloned().collect()
    }

    /// Every interest key this node gossips, as at start (a node that starts with
    /// subscribers already counted writes them all at once).
    pub fn interest_gossip(&self) -> Vec<(String, String)> {
        self.local_interest.gossip_all()
    }
}
