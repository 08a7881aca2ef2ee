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
//! * **Cache channels.** An event with `cache_data` goes to every live node instead, each
//!   of which keeps it as the channel's last event (see [`NodeCore::fanout`]).
//! * **Interest** is sent to the owner on the first and last local subscriber, re-sent to
//!   the new owner of every local channel when the live view moves ownership, and re-sent
//!   to a peer for the channels it owns when its link comes up.
//! * **Ready before `subscription_succeeded`.** A first local subscriber announced with
//!   [`NodeCore::await_interest`] is held by the caller until [`Action::InterestReady`]:
//!   at once when this node owns the channel, else when the owner's `InterestAck` comes
//!   back. The owner sends the ack on the same link, in order, before any `Deliver` it
//!   orders afterwards, so a subscriber told "succeeded" then misses no event published
//!   after that. The owner acks only while it owns the channel and holds the sender live
//!   (else it would not deliver to it); the waiting node asks again on every
//!   [`NodeCore::tick`], and releases the subscribers anyway [`INTEREST_ACK_TICKS`] ticks
//!   after the first ask (counted as `interest_ack_timeouts`), whatever links and views do
//!   meanwhile: a slow or confused peer delays a subscription, it never hangs one.
//! * **Presence** joins and leaves of local members go to every peer; a peer whose link
//!   comes up gets a full sync. Every node turns the changes of *its own* view into member
//!   events for *its own* subscribers ([`Action::Presence`]), so what a client sees always
//!   follows the view of the node it is connected to: after a partition heals, each side
//!   gets exactly the members it lost back, once. Only the owning node fires the webhook.
//!   (Member events from the owner to everyone would break at a heal: the two sides
//!   followed different owners, so one side would see duplicates and miss members.)
//!   An app's update of a member's info is the exception: it is ordered by the channel's
//!   owning node, which tells every peer (`presence_update`).
//! * **Leaving.** A peer that says `Leaving` (or gossips `leaving`) is no longer live at once,
//!   until the live view stops listing it: its channels move now. Its presence members are
//!   held for [`LEAVE_HOLD`] ([`Action::ReleaseLater`], then [`NodeCore::release`]): its
//!   clients got 4200 and reconnect elsewhere, and those who rejoin within the hold see no
//!   `member_removed`/`member_added` flapping anywhere.
//! * **Subscription counts** (apps with `enable_subscription_count`): each node reports
//!   its own count of a channel's subscriptions to the owner ([`NodeCore::count`]), and
//!   re-sends it to a new owner when the live view moves the channel, and to a peer for
//!   the channels it owns when its link comes up (as for interest). The owner sums the last
//!   report of every live node ([`crate::counts`]) and emits [`Action::SubscriptionCount`]
//!   when the sum changes; a node that dies or leaves stops counting at once. It refuses a
//!   report for a channel it does not own or from a node it does not hold live (views
//!   disagree for a moment): such a report could never be corrected later.
//! * **Occupancy** (`channel_occupied` / `channel_vacated`): only the channel's owning node
//!   emits [`Action::Occupancy`], once per change of the set of live nodes with subscribers
//!   to the channel, as it knows that set (rules: the `occupancy` submodule).
//!

use crate::counts::CountTable;
use crate::interest::{InterestTable, LocalInterest};
use crate::ownership::owner;
use crate::presence::{ClusterPresence, Digest, LocalPresence, Member, PresenceEvent};
use crate::wire::NodeMsg;
use crate::{NodeId, NodeKey};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Presence sync chunks stay well under the 1 MiB frame bound.
const SYNC_CHUNK_BYTES: usize = 256 * 1024;

pub use action::{Action, Confirm, Order};

/// How often the caller calls [`NodeCore::tick`].
pub const TICK: Duration = Duration::from_millis(250);
/// Ticks an awaited interest waits for the owner's `InterestAck` (0.75–1 s with [`TICK`]):
/// an ack normally takes one round trip, so only a lost link or a stalled owner gets here.
pub const INTEREST_ACK_TICKS: u32 = 4;

/// Ticks a peer's gossiped presence digest must stay the same, and differ from what this
/// node holds about that peer, before this node asks the peer for its full list again
/// (`PresenceResync`): 2 s with [`TICK`], well above the time gossip and the link take to
/// agree after a change: a lost `PresenceJoin`/`PresenceLeave` (or a lost gossip update of
/// the peer's digest) gets here, or a link backed up for longer than that.
pub const PRESENCE_RESYNC_TICKS: u32 = 8;

/// How long the members of a node that left on purpose keep counting: long enough for its
/// clients, told to reconnect (4200), to rejoin on another node. Matches the 3 s webhook
/// debounce Pusher applies to `member_removed`.
pub const LEAVE_HOLD: Duration = Duration::from_secs(3);

/// Counters of things that are fine but worth seeing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeCounters {
    /// `Publish` received while another node owns the channel in our view.
    pub publish_not_owner: u64,
    /// `Deliver` for a channel without local subscribers (stale interest).
    pub deliver_unwanted: u64,
    /// `Count` reports ignored because the count table was full.
    pub counts_over_limit: u64,
    /// `Count` reports refused: a channel this node does not own, a sender it does not
    /// hold live, or an implausible channel (presence, or a name over 1 KiB).
    pub counts_refused: u64,
    /// Awaited interests released without the owner's ack (it did not answer in time).
    pub interest_ack_timeouts: u64,
    /// Awaited interests now waiting for an ack.
    pub interest_awaiting: u64,
    /// `Publish`es held because another node owns the channel in this view (the sender
    /// may know of a change this node has not heard of yet), and of those, the ones
    /// ordered here anyway after [`handoff::STRAY_TICKS`].
    pub publish_held_stray: u64,
    /// `PresenceResync` requests sent: a peer's gossiped digest disagreed with what this
    /// node held about it for [`PRESENCE_RESYNC_TICKS`] (a lost presence message).
    pub presence_resyncs: u64,
    /// Handoffs of channels on a planned change completed (`handoff` module).
    pub handoffs: u64,
    /// Handoffs that went on without a node's answer (released or opened after their
    /// bound): order across them is not guaranteed.
    pub handoff_timeouts: u64,
    /// Events held right now behind a handoff's fence.
    pub handoff_held: u64,
    /// Events ordered at once because the fences held [`handoff::MAX_HELD`] already.
    pub handoff_overflow: u64,
}

/// Longest channel name a peer's `Count` may carry (Pusher's names are at most 200 bytes;
/// this only bounds what a confused peer can make the owner keep).
const MAX_COUNTED_NAME: usize = 1024;

/// One live node as the protocol needs it: its key and gossiped interest.
#[derive(Clone, Debug)]
pub struct ViewNode {
    pub key: NodeKey,
    pub interest: crate::interest::InterestFilter,
    /// It answers channel queries (gossip key `queries`); others are never sent a `Query`.
    pub answers_queries: bool,
    /// The digest of its own presence members it gossips (gossip key `presence`).
    pub presence: Option<Digest>,
}

impl From<&crate::membership::NodeInfo> for ViewNode {
    fn from(n: &crate::membership::NodeInfo) -> ViewNode {
        ViewNode {
            key: n.key(),
            interest: n.interest.clone(),
            answers_queries: n.answers_queries,
            presence: n.presence,
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
    /// Peers with a link session up (link events), whatever the live view says.
    linked: BTreeSet<NodeKey>,
    local_interest: LocalInterest,
    table: InterestTable,
    /// First local subscriptions waiting for the owner's ack. Bounded by the local channels.
    awaiting: BTreeMap<(String, String), interest_wait::AwaitedInterest>,
    local_presence: LocalPresence,
    presence: ClusterPresence,
    /// Peers' gossiped presence digests, checked against what is held on every tick.
    presence_checks: BTreeMap<NodeKey, presence_check::PresenceCheck>,
    origin_seq: u64,
    counters: NodeCounters,
    /// Channels this node owns and counts as occupied, by channel key (keys may collide).
    occupied: BTreeMap<u64, BTreeSet<(String, String)>>,
    /// Keys of channels that were occupied when ownership moved here, whose names this node
    /// has not heard yet (see the occupancy rules).
    adopted: BTreeSet<u64>,
    /// This node's own subscription counts (above 0) of counted channels, as last reported:
    /// re-sent when a channel's owner changes. Bounded by the local channels.
    local_counts: BTreeMap<(String, String), u32>,
    /// Owner side: every live node's last count of the channels this node owns.
    counts: CountTable,
    /// Handoffs of channel ownership on planned changes this node takes part in.
    handoff: handoff::Handoffs,
}

impl NodeCore {
    pub fn new(me: NodeKey) -> NodeCore {
        let mut n = NodeCore {
            me: me.clone(),
            view: Vec::new(),
            live: BTreeSet::new(),
            live_ids: Vec::new(),
            left: BTreeSet::new(),
            linked: BTreeSet::new(),
            local_interest: LocalInterest::new(),
            table: InterestTable::new(),
            awaiting: BTreeMap::new(),
            local_presence: LocalPresence::new(),
            presence: ClusterPresence::new(),
            presence_checks: BTreeMap::new(),
            // Numbers a restarted node uses are above any its previous run used (the
            // generation is its start time in ms), so a late `Published` for the previous run
            // never answers a publish of this one.
            origin_seq: me.generation.saturating_mul(1 << 20),
            counters: NodeCounters::default(),
            occupied: BTreeMap::new(),
            adopted: BTreeSet::new(),
            local_counts: BTreeMap::new(),
            counts: CountTable::new(),
            handoff: handoff::Handoffs::default(),
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
        NodeCounters {
            counts_over_limit: self.counts.over_limit,
            interest_awaiting: self.awaiting.len() as u64,
            handoffs: self.handoff.completed,
            handoff_timeouts: self.handoff.timeouts,
            handoff_held: self.handoff.held() as u64,
            handoff_overflow: self.handoff.overflow,
            ..self.counters
        }
    }

    /// The peers a cluster query goes to: linked, live, and saying they answer queries
    /// (an older release would refuse the frame and drop the link); this node excluded.
    pub fn query_peers(&self) -> Vec<NodeId> {
        self.view
            .iter()
            .filter(|n| n.answers_queries && n.key != self.me)
            .filter(|n| self.live.contains(&n.key) && self.linked.contains(&n.key))
            .map(|n| n.key.id.clone())
            .collect()
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

    /// The number of effective members of a presence channel (channel queries).
    pub fn member_count(&self, app: &str, channel: &str) -> usize {
        self.presence.member_count(app, channel)
    }

    /// Whether `user_id` is one of this node's own members of the channel (joined through
    /// [`NodeCore::presence_join`] and not left).
    pub fn is_local_member(&self, app: &str, channel: &str, user_id: &str) -> bool {
        self.local_presence.contains(app, channel, user_id)
    }

    /// Whether `user_id` may join the channel under a limit of `max` members, counted over
    /// the cluster-wide union (see [`ClusterPresence::has_room_for`]).
    pub fn has_room_for(&self, app: &str, channel: &str, user_id: &str, max: usize) -> bool {
        self.presence.has_room_for(app, channel, user_id, max)
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
        self.note_presence_digests();
        let listed: BTreeSet<NodeKey> = self.view.iter().map(|n| n.key.clone()).collect();
        self.left.retain(|k| listed.contains(k));
        // Keys some summary stopped listing: the occupancy of those channels may end.
        let mut unlisted = BTreeSet::new();
        for n in &self.view {
            if let Some(old) = self.table.summary(&n.key).filter(|f| **f != n.interest) {
                let new = n.interest.keys();
                unlisted.extend(
                    old.keys()
                        .iter()
                        .filter(|k| new.binary_search(k).is_err())
                        .copied(),
                );
            }
            self.table.set_gossip(&n.key, n.interest.clone());
        }
        let live: BTreeSet<NodeKey> = listed
            .into_iter()
            .filter(|k| !self.left.contains(k))
            .chain([self.me.clone()])
            .collect();
        let mut out = self.apply_live(live);
        for key in unlisted {
            let names: Vec<(String, String)> = self
                .occupied
                .get(&key)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default();
            for (app, channel) in names {
                self.refresh_occupancy(&app, &channel, &mut out);
            }
            if self.adopted.contains(&key) && !self.listed_by_peer(key) {
                self.adopted.remove(&key);
            }
        }
        out
    }

    fn apply_live(&mut self, live: BTreeSet<NodeKey>) -> Vec<Action> {
        let old_live = std::mem::take(&mut self.live);
        let old_ids = std::mem::take(&mut self.live_ids);
        let changed = live != old_live;
        // Only the newest generation per id can own channels.
        let mut ids: Vec<NodeId> = live.iter().map(|k| k.id.clone()).collect();
        ids.dedup();
        // Owners are a function of the live ids alone: most views change only a gossiped
        // digest or summary, and then no channel can have moved. Computing every channel's
        // old owner anyway cost a rendezvous hash per channel and node on every view.
        let ids_changed = ids != old_ids;
        let was_owned_by = |chans: &mut dyn Iterator<Item = &(String, String)>| {
            chans
                .map(|c| {
                    let was = owner(&c.0, &c.1, &old_ids).unwrap_or(&self.me.id);
                    (c.clone(), was.clone())
                })
                .collect::<Vec<((String, String), NodeId)>>()
        };
        let old_owner = if ids_changed {
            was_owned_by(&mut self.local_interest.channels())
        } else {
            Vec::new()
        };
        let old_count_owner = if changed {
            was_owned_by(&mut self.local_counts.keys())
        } else {
            Vec::new()
        };
        self.live = live;
        self.live_ids = ids;
        // A linked node's interest stays even while this view does not list it yet (a node
        // that just started learns its cluster one node at a time): it announced that
        // interest for channels it routes here, and will not announce it again. Only a
        // change of the live set can make entries go (a link going down does its own), and
        // the pass is O(every named channel): not on every view.
        if changed {
            self.table
                .retain_live(&self.live.union(&self.linked).cloned().collect());
        }
        let mut out = Vec::new();
        let mut moved: Vec<(String, String)> = old_owner
            .into_iter()
            .filter(|((app, ch), was)| &self.owner_of(app, ch) != was)
            .map(|(c, _)| c)
            .collect();
        moved.sort();
        for (app, channel) in moved {
            self.announce_interest(&app, &channel, true, &mut out);
        }
        if changed {
            self.counts_after_live_change(old_count_owner, &mut out);
        }
        let events = self.presence.set_live(self.live.iter().cloned());
        out.extend(self.presence_actions(events));
        if changed {
            self.occupancy_after_live_change(&old_live, &old_ids, &mut out);
            self.handoff_after_live_change(&old_live, &mut out);
        }
        self.recheck_strays(false, &mut out);
        out
    }

    /// A link to `peer` came up: sync our members to it and re-announce the interest it
    /// owns.
    pub fn link_up(&mut self, peer: &NodeKey) -> Vec<Action> {
        self.linked.insert(peer.clone());
        let events = self.presence.link_up(peer);
        let mut out: Vec<Action> = self.presence_actions(events).collect();
        self.presence_sync_to(&peer.id, &mut out);
        let mut owned: Vec<(String, String)> = self
            .local_interest
            .channels()
            .filter(|(app, ch)| self.owner_of(app, ch) == peer.id)
            .cloned()
            .collect();
        owned.sort();
        for (app, channel) in owned {
            self.announce_interest(&app, &channel, true, &mut out);
        }
        // Counts sent while the link was down were dropped.
        for ((app, channel), &count) in &self.local_counts {
            if self.owner_of(app, channel) == peer.id {
                out.push(Action::Send {
                    to: peer.id.clone(),
                    msg: NodeMsg::Count {
                        app: app.clone(),
                        channel: channel.clone(),
                        count,
                    },
                });
            }
        }
        // Handoff steps that waited for this link.
        self.handoff_link_up(peer, &mut out);
        out
    }

    /// The link to `peer` went down.
    pub fn link_down(&mut self, peer: &NodeKey) -> Vec<Action> {
        self.linked.remove(peer);
        if !self.live.contains(peer) {
            self.table
                .retain_live(&self.live.union(&self.linked).cloned().collect());
        }
        let events = self.presence.link_down(peer);
        let mut out: Vec<Action> = self.presence_actions(events).collect();
        self.check_handoffs(&mut out);
        out
    }

    /// Called every [`TICK`]: releases the awaited interests whose owner did not answer
    /// within [`INTEREST_ACK_TICKS`], and asks again for the others. An owner acks only a
    /// node it holds live, so a node it has not seen in gossip yet (new, or restarted) is
    /// answered on the first ask after that; asking again also covers an `Interest` lost
    /// to a full send queue.
    pub fn tick(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        self.tick_interest(&mut out);
        self.check_presence(&mut out);
        self.tick_handoffs(&mut out);
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

    /// Graceful shutdown: tell every peer before the links close, and hand this node's
    /// channels over ([`NodeCore::handoff_pending`] says when that is done).
    pub fn leave(&mut self) -> Vec<Action> {
        let mut out = vec![Action::Broadcast(NodeMsg::Leaving)];
        self.handoff_start_leaving(&mut out);
        out
    }

    /// `peer` is shutting down on purpose (it said `Leaving`, or gossips `leaving`): it stops
    /// being live now, and its members are held for [`LEAVE_HOLD`]. Idempotent.
    pub fn peer_left(&mut self, peer: &NodeKey) -> Vec<Action> {
        // `left` forgets a key once the view stops listing it, while gossip may still show
        // the node as leaving: a hold already running is not started again.
        if *peer == self.me || self.left.contains(peer) || self.presence.is_departing(peer) {
            return Vec::new();
        }
        self.left.insert(peer.clone());
        self.table.forget(peer);
        // Hold its members first, so that dropping it from the live set removes nobody.
        let events = self.presence.depart(peer);
        let mut out: Vec<Action> = self.presence_actions(events).collect();
        // Its channels are fenced before they move here (a publish held as a stray goes
        // behind the fence, not ahead of what the leaver still delivers).
        self.handoff_leave(peer, &mut out);
        let live: BTreeSet<NodeKey> = self.live.iter().filter(|k| *k != peer).cloned().collect();
        out.extend(self.apply_live(live));
        if self.presence.is_departing(peer) {
            out.push(Action::ReleaseLater {
                node: peer.clone(),
                after: LEAVE_HOLD,
            });
        }
        out
    }

    /// The presence hold of a node that left is over: its members that are connected
    /// nowhere else get `member_removed`.
    pub fn release(&mut self, node: &NodeKey) -> Vec<Action> {
        let events = self.presence.release(node);
        self.presence_actions(events).collect()
    }

    /// A message from `from` (already filtered to its current session).
    pub fn on_msg(&mut self, from: &NodeKey, msg: NodeMsg) -> Vec<Action> {
        match msg {
            NodeMsg::Publish {
                app,
                channel,
                event,
                exclude,
                retain,
                confirm,
                origin_seq,
            } => {
                let confirm = confirm.then(|| Confirm::To {
                    node: from.id.clone(),
                    origin_seq,
                });
                let (a, c) = (app.clone(), channel.clone());
                let order = vec![Action::Order(Order {
                    app,
                    channel,
                    event,
                    exclude,
                    retain,
                    confirm,
                })];
                self.received_order(from, &a, &c, order)
            }
            NodeMsg::PublishChunks {
                confirm,
                app,
                channel,
                chunks,
                exclude,
                origin_seq,
            } => self.on_publish_chunks(from, confirm, app, channel, chunks, exclude, origin_seq),
            NodeMsg::History(msg) => vec![Action::History {
                from: from.id.clone(),
                msg: *msg,
            }],
            NodeMsg::Token(msg) => vec![Action::Token {
                from: from.id.clone(),
                msg: *msg,
            }],
            NodeMsg::Pattern {
                app,
                pattern,
                on,
                ack,
            } => vec![Action::Pattern {
                from: from.id.clone(),
                app,
                pattern,
                on,
                ack,
            }],
            NodeMsg::PatternAck { ack } => vec![Action::PatternAck {
                from: from.id.clone(),
                ack,
            }],
            NodeMsg::Deliver {
                app,
                channel,
                payload,
                exclude,
                privileged_only,
                cache_data,
            } => {
                // A cache event is kept even without subscribers here.
                if cache_data.is_none() && !self.local_interest.contains(&app, &channel) {
                    self.counters.deliver_unwanted += 1;
                    return Vec::new();
                }
                vec![Action::DeliverLocal {
                    app,
                    channel,
                    payload,
                    exclude,
                    privileged_only,
                    cache_data,
                }]
            }
            NodeMsg::Interest {
                app,
                channel,
                on,
                ack,
            } => self.on_interest(from, app, channel, on, ack),
            NodeMsg::InterestAck { app, channel, ack } => {
                self.on_interest_ack(from, app, channel, ack)
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
            NodeMsg::PresenceSync {
                members,
                done,
                part,
            } => {
                let members = members
                    .into_iter()
                    .map(|m| Member {
                        app: m.app,
                        channel: m.channel,
                        user_id: m.user_id,
                        user_info: m.user_info,
                    })
                    .collect();
                let events = self.presence.sync(from, part, members, done);
                self.presence_actions(events).collect()
            }
            NodeMsg::Terminate { app, user } => vec![Action::Terminate { app, user }],
            NodeMsg::PresenceResync => self.on_presence_resync(from),
            NodeMsg::Leaving => self.peer_left(from),
            NodeMsg::Query { id, app, kind } => vec![Action::PeerQuery {
                from: from.id.clone(),
                id,
                app,
                kind,
            }],
            NodeMsg::Answer { id, body } => vec![Action::PeerAnswer {
                from: from.id.clone(),
                id,
                body,
            }],
            // Taken only for a channel this node owns, from a node it holds live, and with a
            // plausible name. Unlike `Publish`, a report taken in a moment of disagreement
            // would stay in the sum after the views agree (nothing corrects it when its
            // sender's count later drops to 0 elsewhere): a ghost count forever is worse than
            // a count that waits for the sender's next report.
            NodeMsg::Count {
                app,
                channel,
                count,
            } => {
                if *from == self.me
                    || !self.live.contains(from)
                    || channel.len() > MAX_COUNTED_NAME
                    || channel.starts_with("presence-")
                    || !self.owns(&app, &channel)
                {
                    self.counters.counts_refused += 1;
                    return Vec::new();
                }
                let total = self.counts.report(from, &app, &channel, count);
                total.map(Self::count_action).into_iter().collect()
            }
            NodeMsg::PresenceUpdate {
                ordered,
                app,
                channel,
                user_id,
                user_info,
            } => self.on_presence_update(ordered, app, channel, user_id, user_info),
            NodeMsg::Handoff {
                step,
                old,
                new,
                peers,
            } => self.on_handoff(from, step, old, new, peers),
            // Handled by the link layer.
            NodeMsg::Hello { .. } | NodeMsg::Ping(_) | NodeMsg::Pong(_) => Vec::new(),
        }
    }
}

mod action;
mod chunks;
mod counts;
mod handoff;
mod inspect;
mod interest_wait;
mod occupancy;
mod presence_check;
mod presence_local;
mod presence_update;
mod publish;
mod roles;
#[cfg(test)]
mod tests;
