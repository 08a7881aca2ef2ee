//! Core↔core messages. **Boundary:** plain Rust values, moved (not copied) through glommio's
//! lock-free rings; [`Frame`]s (shared bytes) and `Arc<str>` are the only shared payloads.

use crate::app::AppIdx;
use crate::channel::event::Event;
use crate::channel::history::Position;
use crate::frame::Frame;
use crate::placement::ShardId;
use crate::session::ConnId;
use crate::socket_id::SocketId;
use std::sync::Arc;
use std::time::Instant;

/// A presence member joining, as verified at the edge.
#[derive(Debug, Clone)]
pub struct Join {
    pub user_id: Arc<str>,
    pub user_info: Option<Box<str>>,
    pub privileged: bool,
}

/// A client event the edge (`commands`) checked, ready for
/// [`Shard::publish_client_event`](super::Shard::publish_client_event).
pub struct ClientEvent {
    pub app: AppIdx,
    pub channel: Arc<str>,
    pub event: Event,
    /// The sender, who does not receive its own event.
    pub exclude: SocketId,
    pub webhook: crate::webhook::WebhookEvent,
}

/// Which subscribe request an answer is for: the connection, and the number its shard gave
/// the request. A connection may unsubscribe and subscribe again (as another presence user,
/// even) before the answer to its first request arrives; only the answer to the request it
/// still waits for may activate the subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubReq {
    pub conn: ConnId,
    pub seq: u64,
}

/// A message from one shard to another (or to itself, through the local inbox).
#[derive(Debug)]
pub enum ShardMsg {
    /// Subscriber shard → owner: count one more subscription from `from`.
    Subscribe {
        app: AppIdx,
        channel: Arc<str>,
        from: ShardId,
        req: SubReq,
        socket_id: SocketId,
        join: Option<Join>,
        /// The position the client asked to recover from (docs/history.md).
        recover: Option<Position>,
    },
    /// Owner of a pattern → every shard (single node): register (`on`) or withdraw the
    /// wildcard subscription `pattern`; a registration is confirmed with `PatternAck`.
    Pattern {
        app: AppIdx,
        pattern: Arc<str>,
        on: bool,
        owner: ShardId,
        /// Which registration (echoed in the ack).
        generation: u64,
    },
    /// Shard → a pattern's owner: the registration `generation` is in place here.
    PatternAck {
        app: AppIdx,
        pattern: Arc<str>,
        generation: u64,
    },
    /// A channel's order point → a pattern's owner: the event of a matching channel,
    /// encoded for the pattern's subscribers, to fan out.
    PatternEvent {
        app: AppIdx,
        pattern: Arc<str>,
        frame: Frame,
        exclude: Option<SocketId>,
        t0: Instant,
    },
    /// An HTTP transport's session and the requests serving it (`crate::xhr`).
    Xhr(Box<crate::xhr::XhrMsg>),
    /// Owner → subscriber shard: the answer to `Subscribe`. When `ok`, the subscription is
    /// counted and `frames` (subscription_succeeded, then a cached event or cache_miss) go to
    /// the connection before any later delivery. Otherwise `frames` holds the refusal.
    SubscribeAck {
        app: AppIdx,
        channel: Arc<str>,
        req: SubReq,
        ok: bool,
        frames: Vec<Frame>,
        /// The presence member the subscription joined as, so an undo can leave as it.
        user_id: Option<Arc<str>>,
    },
    /// Subscriber shard → owner: one subscription from `from` is gone.
    Unsubscribe {
        app: AppIdx,
        channel: Arc<str>,
        from: ShardId,
        user_id: Option<Arc<str>>,
    },
    /// Edge shard → owner (a single node's order point): an event to order, encode once
    /// and fan out.
    Publish {
        app: AppIdx,
        channel: Arc<str>,
        event: Event,
        exclude: Option<SocketId>,
        /// When the event entered the server (for publish→write latency).
        t0: Instant,
        /// `(shard, query id)` to answer with [`Reply::Published`] once the owner has ordered
        /// the event: an HTTP publish answers 200 only then, so a publish that starts after
        /// another one's 200 is always delivered after it, whichever shards they entered on.
        ack: Option<(ShardId, u64)>,
    },
    /// Edge shard → owner (a single node's order point): the chunks of one large event
    /// (docs/protocol.md, "Large events in chunks"), in one message so that the owner
    /// orders them one after another, with no other event of the channel between them.
    /// `ack` as for `Publish`, once the last chunk is ordered.
    PublishChunks {
        app: AppIdx,
        channel: Arc<str>,
        chunks: Vec<Event>,
        exclude: Option<SocketId>,
        t0: Instant,
        ack: Option<(ShardId, u64)>,
    },
    /// Owner → each shard with subscribers: write `frame` to the local subscribers.
    Deliver {
        app: AppIdx,
        channel: Arc<str>,
        frame: Frame,
        exclude: Option<SocketId>,
        privileged_only: bool,
        t0: Instant,
    },
    /// Edge → owner of the user: one more (or one fewer) signed-in connection.
    UserOnline {
        app: AppIdx,
        user: Arc<str>,
    },
    UserOffline {
        app: AppIdx,
        user: Arc<str>,
    },
    /// Edge → owner of `user`: connection `conn` on `from` watches `user` (or stops).
    Watch {
        app: AppIdx,
        user: Arc<str>,
        from: ShardId,
        conn: ConnId,
    },
    Unwatch {
        app: AppIdx,
        user: Arc<str>,
        from: ShardId,
        conn: ConnId,
    },
    /// Owner of `user` → watcher's shard: `user` is online or offline.
    WatchNotify {
        conn: ConnId,
        user: Arc<str>,
        online: bool,
    },
    /// HTTP edge → the owner shard of the channel (every shard, when no channel is named):
    /// the app replaced a member's info (single node; `shard::presence_update`).
    PresenceUpdate(super::presence_update::PresenceUpdate),
    /// Any shard → every shard: close the signed-in connections of `user`.
    Terminate {
        app: AppIdx,
        user: Arc<str>,
    },
    // ---- cluster mode: the gateway on shard 0 (see `shard::gateway`) ------------------
    /// Any shard → the gateway: sent only by `Shard::to_gateway`/`ask_gateway`, which
    /// address shard 0 (the wrapper cannot be built elsewhere).
    Gateway(super::gateway::ToGateway),
    /// Gateway → local owner: the owning node has taken this node's interest in the
    /// channel (or did not answer in time); answer the subscriptions held under `ticket`.
    ClusterInterestReady {
        app: AppIdx,
        channel: Arc<str>,
        ticket: u64,
    },
    /// A session → the owner shard of token `jti`: count `session`'s use (docs/tokens.md);
    /// a refusal comes back as [`ShardMsg::TokenUseRefused`].
    TokenUse {
        app: AppIdx,
        jti: Arc<str>,
        session: Box<str>,
        uses: u32,
        until: u64,
        from: ShardId,
        conn: ConnId,
    },
    /// The token's owner refused the use: close `conn` with 4009.
    TokenUseRefused {
        conn: ConnId,
    },
    /// → every shard: a revocation to put in force.
    Revoke {
        app: AppIdx,
        what: super::tokens::Revoke,
        r: super::tokens::Revoked,
    },
    /// Gateway → every shard: close the connections subscribed to `channel` with 4200
    /// (deliveries of this channel with history may have been lost; they reconnect and
    /// recover).
    CloseSubscribers {
        app: AppIdx,
        channel: Arc<str>,
    },
    /// Gateway → owner shard: the recovery frames of the subscription held under
    /// `ticket` (empty when the owning node did not answer in time). They come after every
    /// delivery they do not hold, and before every one they do not.
    Recovered {
        app: AppIdx,
        channel: Arc<str>,
        ticket: u64,
        frames: Vec<Frame>,
    },
    /// Gateway → local owner: pass `msg` on to shard `to`. The gateway answers a presence
    /// subscription this way, so the answer keeps its place among the owner's deliveries
    /// to that shard: member events from before the answer's member list arrive before it
    /// (and are not delivered to the new subscriber), later ones after it.
    Relay {
        to: ShardId,
        msg: Box<ShardMsg>,
    },
    /// Gateway → local owner: an event the owning node ordered and encoded; the owner
    /// enters it in the channel's stream (`retain`: what the stream keeps) and writes it to
    /// this node's subscribers only.
    LocalFanout {
        app: AppIdx,
        channel: Arc<str>,
        frame: Frame,
        exclude: Option<SocketId>,
        privileged_only: bool,
        retain: Option<Arc<str>>,
        /// When the event entered this node: its publish here, or its arrival from the
        /// owning node (clocks of other nodes are not comparable).
        t0: Instant,
    },
    /// A question for an owner (or every shard); answered with [`ShardMsg::Reply`].
    Query {
        from: ShardId,
        id: u64,
        query: Query,
    },
    Reply {
        id: u64,
        reply: Reply,
    },
}

/// What this node's shards ask of the gateway (cluster mode). Wrapped in a
/// [`ToGateway`](super::gateway::ToGateway), so it only ever reaches shard 0.
#[derive(Debug)]
pub enum GatewayMsg {
    /// Edge → gateway: an event entering this node, for the owning node to order and
    /// encode; `ack` as for `Publish`.
    Publish {
        app: AppIdx,
        channel: Arc<str>,
        event: Event,
        exclude: Option<SocketId>,
        /// When the event entered this node (as for `Publish`).
        t0: Instant,
        ack: Option<(ShardId, u64)>,
    },
    /// Edge → gateway: the chunks of one large event, to be ordered together by the
    /// owning node (as `ShardMsg::PublishChunks`); `ack` as for `Publish`.
    PublishChunks {
        app: AppIdx,
        channel: Arc<str>,
        chunks: Vec<Event>,
        exclude: Option<SocketId>,
        t0: Instant,
        ack: Option<(ShardId, u64)>,
    },
    /// Local owner → gateway: this node has (or no longer has) subscribers of a channel.
    /// With `on`, the owner holds the channel's subscribers until
    /// [`ShardMsg::ClusterInterestReady`] with the same `ticket` (not 0) comes back.
    Interest {
        app: AppIdx,
        channel: Arc<str>,
        on: bool,
        ticket: u64,
    },
    /// Local owner → gateway: this node's subscriptions to a counted channel (an app with
    /// `enable_subscription_count`), when its throttled count is due; 0 when none are left.
    /// The channel's owning node sums every node's count and sends the event.
    Count {
        app: AppIdx,
        channel: Arc<str>,
        count: u32,
    },
    /// Local owner → gateway: a presence subscription was counted; the gateway checks the
    /// member limit against the cluster-wide members, then answers the subscriber's shard
    /// with the cluster-wide member list, or refuses it and sends the owner the
    /// `Unsubscribe` that undoes the count. `cache` is the replay of a cache channel
    /// (`cache_miss` when it is `pusher:cache_miss`), appended to an accepted answer.
    Join {
        app: AppIdx,
        channel: Arc<str>,
        join: Join,
        from: ShardId,
        req: SubReq,
        socket_id: SocketId,
        cache: Option<Frame>,
        cache_miss: bool,
        /// A channel with history: the answer also carries `raptor:recovery` and the
        /// replay from this position (`Some(None)`: a plain subscribe, position only).
        recover: Option<Option<Position>>,
    },
    /// Owner shard → gateway: a subscription to a channel with history, held under
    /// `ticket`, needs its `raptor:recovery` and replay from the channel's owning node;
    /// answered with [`ShardMsg::Recovered`].
    Recover {
        app: AppIdx,
        channel: Arc<str>,
        from: Option<Position>,
        shard: ShardId,
        ticket: u64,
    },
    /// HTTP → gateway: a revocation, for every node.
    Revoke {
        app: AppIdx,
        what: super::tokens::Revoke,
        r: super::tokens::Revoked,
    },
    /// A session's shard → gateway: count a use of token `jti` at the node that owns it.
    TokenUse {
        app: AppIdx,
        jti: Arc<str>,
        session: Box<str>,
        uses: u32,
        until: u64,
        from: ShardId,
        conn: ConnId,
    },
    /// HTTP → gateway: a history API request for the channel's owning node; answered with
    /// [`Reply::History`].
    History {
        from: ShardId,
        id: u64,
        app: AppIdx,
        channel: Arc<str>,
        op: super::history::HistoryOp,
    },
    /// Local owner → gateway: the user's last connection on this node left the channel.
    Leave {
        app: AppIdx,
        channel: Arc<str>,
        user: Arc<str>,
    },
    /// HTTP → gateway: the app replaced a member's info, for the owning node of each channel.
    PresenceUpdate(super::presence_update::PresenceUpdate),
    /// HTTP → gateway: terminate the user's connections on every node.
    Terminate { app: AppIdx, user: Arc<str> },
    /// HTTP → gateway: ask every other node about `app`; answered with [`Reply::Cluster`]
    /// once the peers answered or the cluster query timeout passed (`shard::gateway::queries`).
    Query {
        from: ShardId,
        id: u64,
        app: AppIdx,
        ask: ClusterAsk,
    },
    /// Cluster-wide member ids of a presence channel; answered with [`Reply::Members`].
    Members {
        from: ShardId,
        id: u64,
        app: AppIdx,
        channel: Arc<str>,
    },
    /// Cluster-wide member counts of these presence channels, in order; answered with
    /// [`Reply::UserCounts`].
    UserCounts {
        from: ShardId,
        id: u64,
        app: AppIdx,
        channels: Vec<String>,
    },
}

#[derive(Debug)]
pub enum Query {
    /// Counts (and cache) of one channel.
    Channel { app: AppIdx, channel: Arc<str> },
    /// Occupied channels this shard owns, filtered by prefix.
    List { app: AppIdx, prefix: String },
    /// Member ids of a presence channel, from its owner shard (single node only: in a
    /// cluster they are one node's part, and the owner answers [`Reply::Misrouted`]).
    Members { app: AppIdx, channel: Arc<str> },
    /// This shard's counters and histograms.
    Stats,
    /// Per app, the channels this shard owns: see [`Reply::AppFigures`].
    AppFigures,
    /// The `limit` channels of `app` this shard owns with the most subscribers (or events
    /// per second, `by_rate`).
    TopChannels {
        app: AppIdx,
        by_rate: bool,
        limit: usize,
    },
    /// A history API request, for the channel's owner shard (single node).
    History {
        app: AppIdx,
        channel: Arc<str>,
        op: super::history::HistoryOp,
    },
}

/// What a [`GatewayMsg::Query`] asks the other nodes.
#[derive(Debug, Clone)]
pub enum ClusterAsk {
    /// Their subscriptions to one channel.
    Channel(Arc<str>),
    /// Their channels with subscribers whose names start with the prefix.
    List(String),
}

/// The other nodes' answers to a [`GatewayMsg::Query`], merged (this node's own part
/// is not included: the asker adds it).
#[derive(Debug, Default)]
pub struct ClusterGather {
    /// `Channel`: subscriptions summed over the nodes that answered.
    pub subscription_count: u64,
    /// `List`: the union of their channel names.
    pub channels: Vec<String>,
    /// Nodes asked, and nodes whose full answer is included.
    pub asked: u32,
    pub answered: u32,
}

/// One app's figures on one shard (the dashboard's), summed over the shards by the asker.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AppFigure {
    /// Channels, presence channels, presence members and subscriptions this shard owns.
    pub channels: u64,
    pub presence_channels: u64,
    pub members: u64,
    pub subscriptions: u64,
    /// Frames this shard wrote (queued) to the app's subscribers since start.
    pub delivered: u64,
}

#[derive(Debug)]
pub enum Reply {
    Channel {
        subscription_count: u32,
        user_count: u32,
        /// Cached event data and remaining TTL in seconds.
        cache: Option<(Arc<str>, u64)>,
    },
    /// (name, subscription_count, user_count).
    List(Vec<(String, u32, u32)>),
    Members(Vec<String>),
    Stats(Box<crate::stats::Snapshot>),
    AppFigures(Vec<(AppIdx, AppFigure)>),
    /// (name, subscriptions, members, events per second).
    Top(Vec<(String, u32, u32, u32)>),
    /// The owner has ordered and fanned out a published event.
    Published,
    Cluster(ClusterGather),
    UserCounts(Vec<u32>),
    /// A history API answer: HTTP status and JSON body.
    History((u16, Vec<u8>)),
    /// What became of an HTTP transport's send (`crate::xhr`): its HTTP status.
    Status(u16),
    /// The question reached a shard that cannot answer it (a gateway query on a shard
    /// without the gateway, or a single-node query in a cluster). Never data: the caller
    /// answers 500.
    Misrouted,
}
