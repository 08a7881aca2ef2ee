//! What [`NodeCore`](super::NodeCore) asks the node to do: its only output. The engine's
//! gateway carries each [`Action`] out (frames to peers, gossip keys, shard messages).

use crate::presence::PresenceEvent;
use crate::wire::{AnswerBody, Exclude, NodeMsg, QueryKind, WireEvent};
use crate::{NodeId, NodeKey};
use std::time::Duration;

/// An event this node orders, as [`Action::Order`] carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    pub app: String,
    pub channel: String,
    pub event: WireEvent,
    pub exclude: Exclude,
    /// The channel keeps the event's data as its last event (see `Publish.retain`).
    pub retain: bool,
    /// Whom to tell once the event is ordered, copied and delivered (a channel with
    /// history); `None`: nobody waits.
    pub confirm: Option<Confirm>,
}

/// Who waits for an ordered event of a channel with history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Confirm {
    /// A publish that entered this node, registered with
    /// [`Action::AwaitPublished`]`{ origin_seq }` just before.
    Here { origin_seq: u64 },
    /// A publish `node` forwarded with `origin_seq`: answer `History(Published)`.
    To { node: NodeId, origin_seq: u64 },
}

/// What the node must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send to one peer (over its link; dropped if there is none).
    Send { to: NodeId, msg: NodeMsg },
    /// Send to every linked peer.
    Broadcast(NodeMsg),
    /// This node owns the channel: order the event, encode it once (the engine knows the
    /// Pusher message; this crate does not), and hand the encoding to
    /// [`NodeCore::ordered`](super::NodeCore::ordered). Calls in the order of these actions
    /// are the channel's order.
    Order(Order),
    /// Write an event to this node's local subscribers of the channel. With `cache_data`
    /// (a cache channel's event) also keep it as the channel's last event, which is why it
    /// comes even when this node has no subscribers.
    DeliverLocal {
        app: String,
        channel: String,
        /// The event's encoding (the Pusher message, without transport framing).
        payload: Vec<u8>,
        exclude: Exclude,
        privileged_only: bool,
        cache_data: Option<String>,
    },
    /// The cluster-wide member set of a channel changed in this node's view: send the
    /// `member_added`/`member_removed` to this node's own subscribers of the channel. When
    /// `webhook` is set this node owns the channel and also fires the webhook (once in the
    /// cluster while views agree).
    Presence { event: PresenceEvent, webhook: bool },
    /// The app updated a member's info, and this node's view took it: send
    /// `raptor:member_updated` to this node's own subscribers of the channel. `webhook`: this
    /// node ordered the update (it owns the channel) and fires the webhook, once in the
    /// cluster.
    MemberUpdated {
        app: String,
        channel: String,
        user_id: String,
        /// Compact JSON (an object).
        user_info: String,
        webhook: bool,
    },
    /// Close the local signed-in connections of `user`.
    Terminate { app: String, user: String },
    /// Write these own gossip keys (`None` deletes).
    Gossip(Vec<(String, Option<String>)>),
    /// This node owns the channel, and the set of live nodes with subscribers to it (this
    /// node included) became non-empty (`occupied: true`: fire `channel_occupied`) or empty
    /// (`false`: fire `channel_vacated`). Only the owner emits it, so once in the cluster
    /// while views agree; the rules are in the module documentation.
    Occupancy {
        app: String,
        channel: String,
        occupied: bool,
    },
    /// Call [`NodeCore::release`] for `node` after `after` (the presence hold of a node
    /// that left on purpose). The caller owns the clock.
    ReleaseLater { node: NodeKey, after: Duration },
    /// A peer asks what this node knows locally about `app`: answer `from` with one
    /// `NodeMsg::Answer { id, .. }` (see [`crate::query`]).
    PeerQuery {
        from: NodeId,
        id: u64,
        app: String,
        kind: QueryKind,
    },
    /// A peer answered one of this node's queries: hand it to [`crate::query::Queries`].
    PeerAnswer {
        from: NodeId,
        id: u64,
        body: AnswerBody,
    },
    /// This node owns the channel and its subscriptions summed over every live node
    /// changed to `count` (above 0): build `pusher_internal:subscription_count` once, send
    /// it through [`NodeCore::fanout`] (every node with subscribers, this one included),
    /// and fire the `subscription_count` webhook. Only the owner emits it, so once in the
    /// cluster while views agree.
    SubscriptionCount {
        app: String,
        channel: String,
        count: u32,
    },
    /// A publish with `confirm` entered this node: it is acknowledged when its order is
    /// carried out here (`Confirm::Here { origin_seq }`), or, forwarded to the owning node
    /// as `Publish { origin_seq }`, when `History(Published { origin_seq })` comes back.
    AwaitPublished { origin_seq: u64 },
    /// An access-token message from `from` (docs/tokens.md): the engine keeps tokens.
    Token {
        from: NodeId,
        msg: crate::wire::TokenMsg,
    },
    /// A wildcard-subscription registration from `from`: the engine keeps patterns.
    Pattern {
        from: NodeId,
        app: String,
        pattern: String,
        on: bool,
        /// Not 0: answer `NodeMsg::PatternAck { ack }` to `from` once registered.
        ack: u64,
    },
    /// `from` registered the pattern sent with `ack`.
    PatternAck { from: NodeId, ack: u64 },
    /// A history message from `from` (docs/history.md): the engine keeps histories.
    History {
        from: NodeId,
        msg: crate::wire::HistoryMsg,
    },
    /// The interest announced by [`NodeCore::await_interest`] with `ticket` is in place
    /// (or its owner did not answer in time): the held subscribers may be answered.
    InterestReady {
        app: String,
        channel: String,
        ticket: u64,
    },
}
