//! `NodeCore`'s presence anti-entropy: each peer's gossiped member digest is compared, on
//! every tick, with what this node holds about the peer; a lasting disagreement (a lost
//! `PresenceJoin`/`PresenceLeave`) is repaired by asking the peer for its whole list
//! (`PresenceResync`, answered with the `PresenceSync` chunks a new link gets).

use super::{Action, NodeCore, PRESENCE_RESYNC_TICKS, SYNC_CHUNK_BYTES};
use crate::presence::Digest;
use crate::wire::{NodeMsg, SyncMember};
use crate::{NodeId, NodeKey};
use std::collections::BTreeMap;

/// A peer's gossiped presence digest, and for how many ticks it has been stable while
/// what this node holds about the peer differs from it.
#[derive(Clone, Debug)]
pub(super) struct PresenceCheck {
    digest: Digest,
    mismatched_ticks: u32,
    /// Ticks of disagreement before the next request: [`PRESENCE_RESYNC_TICKS`], doubled
    /// after each request that did not end the disagreement (a slow link, an answer still
    /// on its way), up to 16 times that.
    wait: u32,
    /// The peer's sync in progress, as the next chunk expected, when last looked at.
    progress: Option<u32>,
}

impl NodeCore {
    /// Takes the peers' gossiped digests from a new view; a digest that changed starts its
    /// count again.
    pub(super) fn note_presence_digests(&mut self) {
        let gossiped: BTreeMap<NodeKey, Digest> = self
            .view
            .iter()
            .filter_map(|n| Some((n.key.clone(), n.presence?)))
            .collect();
        self.presence_checks
            .retain(|k, c| gossiped.get(k) == Some(&c.digest));
        for (key, digest) in gossiped {
            self.presence_checks.entry(key).or_insert(PresenceCheck {
                digest,
                mismatched_ticks: 0,
                wait: PRESENCE_RESYNC_TICKS,
                progress: None,
            });
        }
    }

    /// This node's full member list, in chunks, for `peer` (after its link came up, or when
    /// it asks with `PresenceResync`). The peer replaces what it held about us by it.
    pub(super) fn presence_sync_to(&self, peer: &NodeId, out: &mut Vec<Action>) {
        let snapshot = self.local_presence.snapshot();
        let mut chunk = Vec::new();
        let mut bytes = 0;
        let mut part = 0;
        for m in snapshot {
            bytes += 64 + m.app.len() + m.channel.len() + m.user_id.len();
            bytes += m.user_info.as_ref().map_or(0, String::len);
            chunk.push(SyncMember {
                app: m.app,
                channel: m.channel,
                user_id: m.user_id,
                user_info: m.user_info,
            });
            if bytes >= SYNC_CHUNK_BYTES {
                out.push(Action::Send {
                    to: peer.clone(),
                    msg: NodeMsg::PresenceSync {
                        members: std::mem::take(&mut chunk),
                        done: false,
                        part,
                    },
                });
                bytes = 0;
                part += 1;
            }
        }
        out.push(Action::Send {
            to: peer.clone(),
            msg: NodeMsg::PresenceSync {
                members: chunk,
                done: true,
                part,
            },
        });
    }

    /// Presence anti-entropy, on every tick: a linked live peer whose gossiped digest has
    /// differed from what this node holds about it for [`PRESENCE_RESYNC_TICKS`] ticks (a
    /// `PresenceJoin`/`PresenceLeave` was lost, e.g. to a full send queue) is asked for its
    /// full list again, at most once per that many ticks.
    pub(super) fn check_presence(&mut self, out: &mut Vec<Action>) {
        for (peer, check) in self.presence_checks.iter_mut() {
            let held = self.presence.digest_of(peer).unwrap_or_default();
            let watched =
                *peer != self.me && self.live.contains(peer) && self.linked.contains(peer);
            if !watched || held == check.digest {
                check.mismatched_ticks = 0;
                check.wait = PRESENCE_RESYNC_TICKS;
                continue;
            }
            // A sync from the peer that received a chunk since the last tick is the repair
            // on its way: asking again would restart it from its first chunk. Under load
            // (a heal at 25 nodes, each core busy with a dozen full lists) requests made
            // while syncs were still arriving restarted them over and over.
            let progress = self.presence.sync_progress(peer);
            if progress.is_some() && progress != check.progress {
                check.progress = progress;
                check.mismatched_ticks = 0;
                continue;
            }
            check.mismatched_ticks += 1;
            // The sync every new link starts with, not begun yet: its first chunk waits
            // behind the peer's own backlog (after a heal, a dozen full lists each way), and
            // it is lost only with a frame dropped on a full queue. Four times the wait.
            let first = progress == Some(0) && check.wait == PRESENCE_RESYNC_TICKS;
            let wait = if first { check.wait * 4 } else { check.wait };
            if check.mismatched_ticks >= wait {
                check.mismatched_ticks = 0;
                check.wait = (check.wait * 2).min(PRESENCE_RESYNC_TICKS * 16);
                self.counters.presence_resyncs += 1;
                out.push(Action::Send {
                    to: peer.id.clone(),
                    msg: NodeMsg::PresenceResync,
                });
            }
        }
    }

    /// A peer asks for our whole member list again.
    pub(super) fn on_presence_resync(&mut self, from: &NodeKey) -> Vec<Action> {
        let mut out = Vec::new();
        self.presence_sync_to(&from.id, &mut out);
        // Our gossiped digest may be the stale one (its update dropped on a full
        // queue): write it again, or the asker would ask for ever.
        out.push(self.presence_gossip());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interest::InterestFilter;
    use crate::node::ViewNode;

    fn key(id: &str) -> NodeKey {
        NodeKey::new(NodeId::new(id).unwrap(), 1)
    }

    fn resyncs(actions: &[Action]) -> usize {
        actions
            .iter()
            .filter(|a| {
                matches!(
                    a,
                    Action::Send {
                        msg: NodeMsg::PresenceResync,
                        ..
                    }
                )
            })
            .count()
    }

    /// While a peer's sync keeps arriving, its digest disagreeing is the repair on its way:
    /// no `PresenceResync` (it would restart the sync). Once the chunks stop, one is sent.
    #[test]
    fn a_sync_in_progress_is_not_asked_for_again_until_it_stalls() {
        let mut a = NodeCore::new(key("a"));
        let gossiped = Digest {
            members: 40,
            xor: 0x1234,
        };
        a.set_view(
            ["a", "b"]
                .iter()
                .map(|id| ViewNode {
                    key: key(id),
                    interest: InterestFilter::default(),
                    answers_queries: true,
                    presence: (*id == "b").then_some(gossiped),
                })
                .collect(),
        );
        a.link_up(&key("b"));
        let mut sent = 0;
        for part in 0..10 {
            a.on_msg(
                &key("b"),
                NodeMsg::PresenceSync {
                    members: vec![SyncMember {
                        app: "1".into(),
                        channel: "presence-x".into(),
                        user_id: format!("u{part}"),
                        user_info: None,
                    }],
                    done: false,
                    part,
                },
            );
            for _ in 0..PRESENCE_RESYNC_TICKS / 2 + 1 {
                sent += resyncs(&a.tick());
            }
        }
        assert_eq!(sent, 0, "asked again while the sync was arriving");
        for _ in 0..PRESENCE_RESYNC_TICKS + 1 {
            sent += resyncs(&a.tick());
        }
        assert_eq!(sent, 1, "a stalled sync is asked for again");
    }
}
