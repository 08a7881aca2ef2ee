//! The cluster protocol of one node, without I/O: what to send and what to emit for each
//! input. The scenario tests drive several of these over a simulated network; the engine
//! can run it in one place (a cluster gateway task) or mirror it in its owner shards.
//!
//! Inputs are the live view, link up/down, messages from peers, and local facts (first and
//! last local subscriber of a channel, presence joins and leaves, publishes). Outputs are
//! [`Action`]s. Everything is deterministic: the same inputs give the same actions.
//!
//! ## Rules
//!
//! * **Routing.** A publish goes to `owner(app, channel, live)`; the owner fans it out to
//!   the nodes in its [`InterestTable`], local delivery included. A `Publish` that reaches a
//!   node which does not think it is the owner (views differ for a moment) is fanned out
//!   there anyway and counted, never forwarded: no loops, at-most-once.
//! * **Interest** is sent to the owner on the first and last local subscriber, re-sent to
//!   the new owner of every local channel when the live view moves ownership, and re-sent
//!   to a peer for the channels it owns when its link comes up.
//! * **Presence** joins and leaves of local members go to every peer; a peer whose link
//!   comes up gets a full sync. Every node turns the changes of *its own* view into member
//!   events for *its own* subscribers ([`Action::Presence`]), so what a client sees always
//!   follows the view of the node it is connected to: after a partition heals, each side
//!   gets exactly the members it lost back, once. Only the owning node fires the webhook.
//!   (Member events from the owner to everyone would break at a heal: the two sides
//!   followed different owners, so one side would see duplicates and miss members.)
//! * **Leaving.** A peer that says `Leaving` is treated as gone at once, until the live view
//!   stops listing it.

use crate::interest::{InterestTable, LocalInterest};
use crate::ownership::owner;
use crate::presence::{ClusterPresence, LocalChange, LocalPresence, Member, PresenceEvent};
use crate::wire::{Exclude, NodeMsg, SyncMember};
use crate::{NodeId, NodeKey};
use std::collections::{BTreeMap, BTreeSet};

/// Presence sync chunks stay well under the 1 MiB frame bound.
const SYNC_CHUNK_BYTES: usize = 256 * 1024;

/// What the node must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send to one peer (over its link; dropped if there is none).
    Send { to: NodeId, msg: NodeMsg },
    /// Send to every linked peer.
    Broadcast(NodeMsg),
    /// Write an event to this node's local subscribers of the channel.
    DeliverLocal {
        app: String,
        channel: String,
        frame: Vec<u8>,
        exclude: Exclude,
        privileged_only: bool,
    },
    /// The cluster-wide member set of a channel changed in this node's view: send the
    /// `member_added`/`member_removed` to this node's own subscribers of the channel. When
    /// `webhook` is set this node owns the channel and also fires the webhook (once in the
    /// cluster while views agree).
    Presence { event: PresenceEvent, webhook: bool },
    /// Close the local signed-in connections of `user`.
    Terminate { app: String, user: String },
    /// Write these own gossip keys (`None` deletes).
    Gossip(Vec<(String, Option<String>)>),
}

/// Counters of things that are fine but worth seeing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeCounters {
    /// `Publish` received while another node owns the channel in our view.
    pub publish_not_owner: u64,
    /// `Deliver` for a channel without local subscribers (stale interest).
    pub deliver_unwanted: u64,
}

/// One live node as the protocol needs it: its key and gossiped interest.
#[derive(Clone, Debug)]
pub struct ViewNode {
    pub key: NodeKey,
    pub interest: crate::interest::InterestFilter,
}

impl From<&crate::membership::NodeInfo> for ViewNode {
    fn from(n: &crate::membership::NodeInfo) -> ViewNode {
        ViewNode {
            key: n.key(),
            interest: n.interest.clone(),
        }
    }
}

/// The protocol state of one node.
pub struct NodeCore {
    me: NodeKey,
    /// The last view as given (newest generation per id), before removing `left`.
    view: Vec<ViewNode>,
    /// Effective live keys and ids: `view` minus `left`, always including `me`.
    live: BTreeSet<NodeKey>,
    live_ids: Vec<NodeId>,
    left: BTreeSet<NodeKey>,
    local_interest: LocalInterest,
    table: InterestTable,
    local_presence: LocalPresence,
    presence: ClusterPresence,
    origin_seq: u64,
    counters: NodeCounters,
}

impl NodeCore {
    pub fn new(me: NodeKey) -> NodeCore {
        let mut n = NodeCore {
            me: me.clone(),
            view: Vec::new(),
            live: BTreeSet::new(),
            live_ids: Vec::new(),
            left: BTreeSet::new(),
            local_interest: LocalInterest::new(),
            table: InterestTable::new(),
            local_presence: LocalPresence::new(),
            presence: ClusterPresence::new(),
            origin_seq: 0,
            counters: NodeCounters::default(),
        };
        let _ = n.apply_live(BTreeSet::from([me]));
        n
    }

    pub fn me(&self) -> &NodeKey {
        &self.me
    }

    pub fn live(&self) -> &BTreeSet<NodeKey> {
        &self.live
    }

    pub fn counters(&self) -> NodeCounters {
        self.counters
    }

    /// The owning node of a channel under the current view.
    pub fn owner_of(&self, app: &str, channel: &str) -> NodeId {
        owner(app, channel, &self.live_ids)
            .cloned()
            .unwrap_or_else(|| self.me.id.clone())
    }

    fn owns(&self, app: &str, channel: &str) -> bool {
        self.owner_of(app, channel) == self.me.id
    }

    /// The effective members of a presence channel (for `subscription_succeeded`).
    pub fn members(&self, app: &str, channel: &str) -> Vec<(String, Option<String>)> {
        self.presence.members(app, channel)
    }

    fn presence_actions(&self, events: Vec<PresenceEvent>) -> impl Iterator<Item = Action> + '_ {
        events.into_iter().map(|event| Action::Presence {
            webhook: self.owns(&event.app, &event.channel),
            event,
        })
    }

    /// A new live view from membership.
    pub fn set_view(&mut self, view: Vec<ViewNode>) -> Vec<Action> {
        let mut newest: BTreeMap<NodeId, ViewNode> = BTreeMap::new();
        for n in view {
            match newest.get(&n.key.id) {
                Some(have) if have.key.generation >= n.key.generation => {}
                _ => {
                    newest.insert(n.key.id.clone(), n);
                }
            }
        }
        self.view = newest.into_values().collect();
        let listed: BTreeSet<NodeKey> = self.view.iter().map(|n| n.key.clone()).collect();
        self.left.retain(|k| listed.contains(k));
        for n in &self.view {
            self.table.set_gossip(&n.key, n.interest.clone());
        }
        let live: BTreeSet<NodeKey> = listed
            .into_iter()
            .filter(|k| !self.left.contains(k))
            .chain([self.me.clone()])
            .collect();
        self.apply_live(live)
    }

    fn apply_live(&mut self, live: BTreeSet<NodeKey>) -> Vec<Action> {
        let old_owner: Vec<((String, String), NodeId)> = self
            .local_interest
            .channels()
            .map(|c| (c.clone(), self.owner_of(&c.0, &c.1)))
            .collect();
        self.live = live;
        // Only the newest generation per id can own channels.
        let mut ids: Vec<NodeId> = self.live.iter().map(|k| k.id.clone()).collect();
        ids.dedup();
        self.live_ids = ids;
        self.table.retain_live(&self.live);
        let mut out = Vec::new();
        let mut moved: Vec<(String, String)> = old_owner
            .into_iter()
            .filter(|((app, ch), was)| &self.owner_of(app, ch) != was)
            .map(|(c, _)| c)
            .collect();
        moved.sort();
        for (app, channel) in moved {
            out.extend(self.announce_interest(&app, &channel, true));
        }
        let events = self.presence.set_live(self.live.iter().cloned());
        out.extend(self.presence_actions(events));
        out
    }

    fn announce_interest(&mut self, app: &str, channel: &str, on: bool) -> Option<Action> {
        let owner = self.owner_of(app, channel);
        if owner == self.me.id {
            self.table.set(&self.me.clone(), app, channel, on);
            None
        } else {
            Some(Action::Send {
                to: owner,
                msg: NodeMsg::Interest {
                    app: app.to_owned(),
                    channel: channel.to_owned(),
                    on,
                },
            })
        }
    }

    /// A link to `peer` came up: sync our members to it and re-announce the interest it
    /// owns.
    pub fn link_up(&mut self, peer: &NodeKey) -> Vec<Action> {
        let events = self.presence.link_up(peer);
        let mut out: Vec<Action> = self.presence_actions(events).collect();
        let snapshot = self.local_presence.snapshot();
        let mut chunk = Vec::new();
        let mut bytes = 0;
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
                    to: peer.id.clone(),
                    msg: NodeMsg::PresenceSync {
                        members: std::mem::take(&mut chunk),
                        done: false,
                    },
                });
                bytes = 0;
            }
        }
        out.push(Action::Send {
            to: peer.id.clone(),
            msg: NodeMsg::PresenceSync {
                members: chunk,
                done: true,
            },
        });
        let mut owned: Vec<(String, String)> = self
            .local_interest
            .channels()
            .filter(|(app, ch)| self.owner_of(app, ch) == peer.id)
            .cloned()
            .collect();
        owned.sort();
        for (app, channel) in owned {
            out.push(Action::Send {
                to: peer.id.clone(),
                msg: NodeMsg::Interest {
                    app,
                    channel,
                    on: true,
                },
            });
        }
        out
    }

    /// The link to `peer` went down.
    pub fn link_down(&mut self, peer: &NodeKey) -> Vec<Action> {
        let events = self.presence.link_down(peer);
        self.presence_actions(events).collect()
    }

    /// The first (`on`) or last local subscriber of a channel.
    pub fn set_interest(&mut self, app: &str, channel: &str, on: bool) -> Vec<Action> {
        if !self.local_interest.set(app, channel, on) {
            return Vec::new();
        }
        let mut out: Vec<Action> = self
            .announce_interest(app, channel, on)
            .into_iter()
            .collect();
        out.push(Action::Gossip(self.local_interest.take_gossip_changes()));
        out
    }

    /// An event entered at this node.
    pub fn publish(
        &mut self,
        app: &str,
        channel: &str,
        frame: Vec<u8>,
        exclude: Exclude,
        cache_data: Option<String>,
    ) -> Vec<Action> {
        let owner = self.owner_of(app, channel);
        if owner == self.me.id {
            return self.fanout(app, channel, frame, exclude, false);
        }
        self.origin_seq += 1;
        vec![Action::Send {
            to: owner,
            msg: NodeMsg::Publish {
                app: app.to_owned(),
                channel: channel.to_owned(),
                frame,
                exclude,
                cache_data,
                origin_seq: self.origin_seq,
            },
        }]
    }

    /// Owner side: one `Deliver` per interested peer, and local delivery if we have
    /// subscribers. The order of calls is the channel's order.
    pub fn fanout(
        &mut self,
        app: &str,
        channel: &str,
        frame: Vec<u8>,
        exclude: Exclude,
        privileged_only: bool,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        for node in self.table.interested(app, channel) {
            if node == self.me {
                continue;
            }
            if !self.live.contains(&node) {
                continue;
            }
            out.push(Action::Send {
                to: node.id.clone(),
                msg: NodeMsg::Deliver {
                    app: app.to_owned(),
                    channel: channel.to_owned(),
                    frame: frame.clone(),
                    exclude,
                    privileged_only,
                },
            });
        }
        if self.local_interest.contains(app, channel) {
            out.push(Action::DeliverLocal {
                app: app.to_owned(),
                channel: channel.to_owned(),
                frame,
                exclude,
                privileged_only,
            });
        }
        out
    }

    fn presence_gossip(&self) -> Action {
        Action::Gossip(vec![(
            crate::membership::KEY_PRESENCE.to_owned(),
            Some(self.local_presence.digest().encode()),
        )])
    }

    /// A local connection joined a presence channel as `user_id`.
    pub fn presence_join(
        &mut self,
        app: &str,
        channel: &str,
        user_id: &str,
        user_info: Option<String>,
    ) -> Vec<Action> {
        let Some(LocalChange::Joined(m)) =
            self.local_presence.join(app, channel, user_id, user_info)
        else {
            return Vec::new();
        };
        let mut out = vec![Action::Broadcast(NodeMsg::PresenceJoin {
            app: m.app.clone(),
            channel: m.channel.clone(),
            user_id: m.user_id.clone(),
            user_info: m.user_info.clone(),
        })];
        let me = self.me.clone();
        let events = self.presence.join(&me, m);
        out.extend(self.presence_actions(events));
        out.push(self.presence_gossip());
        out
    }

    /// A local connection of `user_id` left a presence channel.
    pub fn presence_leave(&mut self, app: &str, channel: &str, user_id: &str) -> Vec<Action> {
        if self.local_presence.leave(app, channel, user_id).is_none() {
            return Vec::new();
        }
        let mut out = vec![Action::Broadcast(NodeMsg::PresenceLeave {
            app: app.to_owned(),
            channel: channel.to_owned(),
            user_id: user_id.to_owned(),
        })];
        let me = self.me.clone();
        let events = self.presence.leave(&me, app, channel, user_id);
        out.extend(self.presence_actions(events));
        out.push(self.presence_gossip());
        out
    }

    /// Close `user`'s signed-in connections everywhere.
    pub fn terminate(&mut self, app: &str, user: &str) -> Vec<Action> {
        vec![
            Action::Broadcast(NodeMsg::Terminate {
                app: app.to_owned(),
                user: user.to_owned(),
            }),
            Action::Terminate {
                app: app.to_owned(),
                user: user.to_owned(),
            },
        ]
    }

    /// Graceful shutdown: tell every peer before the links close.
    pub fn leave(&mut self) -> Vec<Action> {
        vec![Action::Broadcast(NodeMsg::Leaving)]
    }

    /// A message from `from` (already filtered to its current session).
    pub fn on_msg(&mut self, from: &NodeKey, msg: NodeMsg) -> Vec<Action> {
        match msg {
            NodeMsg::Publish {
                app,
                channel,
                frame,
                exclude,
                ..
            } => {
                if !self.owns(&app, &channel) {
                    self.counters.publish_not_owner += 1;
                }
                self.fanout(&app, &channel, frame, exclude, false)
            }
            NodeMsg::Deliver {
                app,
                channel,
                frame,
                exclude,
                privileged_only,
            } => {
                if !self.local_interest.contains(&app, &channel) {
                    self.counters.deliver_unwanted += 1;
                    return Vec::new();
                }
                vec![Action::DeliverLocal {
                    app,
                    channel,
                    frame,
                    exclude,
                    privileged_only,
                }]
            }
            NodeMsg::Interest { app, channel, on } => {
                self.table.set(from, &app, &channel, on);
                Vec::new()
            }
            NodeMsg::PresenceJoin {
                app,
                channel,
                user_id,
                user_info,
            } => {
                let m = Member {
                    app,
                    channel,
                    user_id,
                    user_info,
                };
                let events = self.presence.join(from, m);
                self.presence_actions(events).collect()
            }
            NodeMsg::PresenceLeave {
                app,
                channel,
                user_id,
            } => {
                let events = self.presence.leave(from, &app, &channel, &user_id);
                self.presence_actions(events).collect()
            }
            NodeMsg::PresenceSync { members, done } => {
                let members = members
                    .into_iter()
                    .map(|m| Member {
                        app: m.app,
                        channel: m.channel,
                        user_id: m.user_id,
                        user_info: m.user_info,
                    })
                    .collect();
                let events = self.presence.sync(from, members, done);
                self.presence_actions(events).collect()
            }
            NodeMsg::Terminate { app, user } => vec![Action::Terminate { app, user }],
            NodeMsg::Leaving => {
                self.left.insert(from.clone());
                self.table.forget(from);
                let live: BTreeSet<NodeKey> =
                    self.live.iter().filter(|k| *k != from).cloned().collect();
                let mut out = self.apply_live(live);
                let events = self.presence.forget(from);
                out.extend(self.presence_actions(events));
                out
            }
            // Handled by the link layer.
            NodeMsg::Hello { .. } | NodeMsg::Ping(_) | NodeMsg::Pong(_) => Vec::new(),
        }
    }
}
