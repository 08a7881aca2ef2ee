//! The node-to-node frame format. **Boundary:** the only module that knows rkyv; everything
//! else sees [`NodeMsg`] values and byte buffers.
//!
//! A frame is a 16-byte header followed by an rkyv archive of one [`NodeMsg`], zero-padded
//! to a multiple of 8 bytes (docs/cluster-protocol.md has the layout byte by byte):
//!
//! ```text
//! 0      4   5   6     8                16              16+len    16+pad8(len)
//! | RPTR | v | t | 0 0 | body len u64 LE | rkyv body      | zero pad |
//! ```
//!
//! Because the header and every frame are multiples of 8 bytes, a body that starts a frame
//! read into an 8-aligned buffer is itself 8-aligned (what the archive needs), and can be
//! validated in place; otherwise it is copied into an [`rkyv::util::AlignedVec`] first.
//!
//! **Invariant:** no byte received from a peer is used before `rkyv::access` has validated
//! it (bytecheck), and [`decode`] never panics, whatever the input (property-tested).

use rkyv::rancor::BoxedError;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Deserialize, Serialize};

/// The first four bytes of every frame.
pub const MAGIC: [u8; 4] = *b"RPTR";
/// The format version this build speaks (byte 4). See docs/cluster-protocol.md for the rules.
pub const VERSION: u8 = 2;
/// Bytes before the body.
pub const HEADER_LEN: usize = 16;
/// Default bound on a body: a Pusher event is at most ~10 KB, so 1 MiB leaves room for
/// presence sync chunks and never lets a peer make us allocate without limit.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;

/// `(hi, lo)` of the Pusher `socket_id` to skip at fanout, as the engine's `SocketId`.
pub type Exclude = Option<(u64, u64)>;

/// A channel event on its way to the channel's owning node, which orders and encodes it
/// (version 2: a `Publish` carries the event, not an encoded frame).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct WireEvent {
    /// The event name (`my-event`, `client-typing`).
    pub name: String,
    /// The event's `data` string, as published.
    pub data: String,
    /// A client event's sender on a presence channel.
    pub user_id: Option<String>,
}

/// One member in a [`NodeMsg::PresenceSync`] chunk.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SyncMember {
    pub app: String,
    pub channel: String,
    pub user_id: String,
    pub user_info: Option<String>,
}

/// What a [`NodeMsg::Query`] asks about one app (docs/cluster.md, "Channel queries").
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum QueryKind {
    /// `GET /apps/{id}/channels/{name}`: the sender's subscriptions to one channel.
    Channel { channel: String },
    /// `GET /apps/{id}/channels`: the sender's channels with subscribers, by name prefix.
    List { prefix: String },
}

/// The body of a [`NodeMsg::Answer`].
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum AnswerBody {
    /// Subscriptions to the channel on the answering node (0: none).
    Channel { subscription_count: u32 },
    /// Channels with subscribers on the answering node. `truncated`: the list was cut to fit
    /// one frame ([`crate::query::ANSWER_LIST_BYTES`]), so some names are missing.
    List {
        channels: Vec<String>,
        truncated: bool,
    },
    /// The answering node would not answer (too many queries in progress there, or it
    /// could not ask its own shards in time); the asker counts it like a missing answer.
    Refused,
}

/// Every message one node sends another. Plain owned values: the receiver gets them after
/// validation and deserialization, so nothing borrowed from a receive buffer escapes.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum NodeMsg {
    /// First frame each way on a new link: who is talking, in which cluster.
    Hello {
        cluster_id: String,
        node_id: String,
        generation: u64,
    },
    /// Any node → the channel's owning node: order this event, encode it once, fan it out.
    Publish {
        /// The channel keeps the event's data as its last event (a cache channel's API
        /// event). First: it fits in the padding after the tag, which keeps the archived
        /// union (the size of every message) at 80 bytes.
        retain: bool,
        /// The sender waits for `History(Published { origin_seq })` before it acknowledges
        /// the publish (a channel with history: ordered, copied to the successor, and
        /// delivered; docs/history.md). Also in the padding after the discriminant.
        confirm: bool,
        app: String,
        channel: String,
        event: WireEvent,
        exclude: Exclude,
        /// Per-sender counter, unique per sending node: a `confirm` answer names it.
        origin_seq: u64,
    },
    /// Owning node → each node with subscribers: write the event to the local subscribers.
    Deliver {
        app: String,
        channel: String,
        /// The event's one encoding: the Pusher message (JSON text) every subscriber gets,
        /// without any transport's framing (each node's transports add their own).
        payload: Vec<u8>,
        exclude: Exclude,
        /// Only subscribers that joined as privileged members get it (member events of
        /// `presence-privileged-*` channels).
        privileged_only: bool,
        /// A cache channel's event: the data every node keeps as the channel's last event.
        /// Such a `Deliver` goes to every live node, subscribers or not, so a subscriber on
        /// any node gets the replay.
        cache_data: Option<String>,
    },
    /// Node → owning node: this node has (`on`) or no longer has local subscribers.
    Interest {
        app: String,
        channel: String,
        on: bool,
        /// Not 0: the sender holds the channel's new subscribers until the owner answers
        /// with an `InterestAck` carrying this number (see docs/cluster-protocol.md).
        ack: u64,
    },
    /// Node → every peer: `user_id` now has a connection in `channel` on the sender.
    PresenceJoin {
        app: String,
        channel: String,
        user_id: String,
        user_info: Option<String>,
    },
    /// Node → every peer: `user_id` no longer has any connection in `channel` on the sender.
    PresenceLeave {
        app: String,
        channel: String,
        user_id: String,
    },
    /// Node → peer, right after `Hello` (and in answer to `PresenceResync`): all of the
    /// sender's members, in chunks numbered from 0 (`part`). The last chunk has `done`; the
    /// receiver then replaces what it held for the sender, unless a chunk was missing.
    PresenceSync {
        members: Vec<SyncMember>,
        done: bool,
        part: u32,
    },
    /// Any node → every peer: close the signed-in connections of `user`.
    Terminate {
        app: String,
        user: String,
    },
    /// Keepalive; answered with `Pong` carrying the same number.
    Ping(u64),
    Pong(u64),
    /// The sender is shutting down on purpose: treat it as gone now, not after the failure
    /// detector notices.
    Leaving,
    /// Node → every linked peer: what do you know locally about `app`? Answered with one
    /// `Answer` carrying the same `id` (ids are the asker's; they mean nothing to others).
    Query {
        id: u64,
        app: String,
        kind: QueryKind,
    },
    /// Node → the peer whose `Query` this answers.
    Answer {
        id: u64,
        body: AnswerBody,
    },
    /// Node → the channel's owning node: the sender now has `count` subscriptions to the
    /// channel (0: none left). The owner keeps each live node's last count and sends the
    /// channel's subscribers the sum (`pusher_internal:subscription_count`).
    Count {
        app: String,
        channel: String,
        count: u32,
    },
    /// Owning node → the sender of an `Interest { on: true, ack }` with `ack` not 0: the
    /// interest is taken, so every event this node orders from now on goes to the sender.
    InterestAck {
        app: String,
        channel: String,
        ack: u64,
    },
    /// Node → peer: what I hold about your presence members does not match the digest you
    /// gossip; send me your full list again (answered with `PresenceSync` chunks).
    PresenceResync,
    /// Channel history between nodes (docs/history.md, "In a cluster"). Boxed: its
    /// variants are large, and the union of every message stays 80 bytes.
    History(Box<HistoryMsg>),
    /// Access tokens between nodes (docs/tokens.md): revocations and counted uses. Boxed.
    Token(Box<TokenMsg>),
    /// Node → every peer (and to a peer whose link comes up, each of its patterns): this
    /// node has (`on`) or no longer has subscribers of the wildcard subscription `pattern`,
    /// so every order point sends it the events of matching channels (docs/protocol.md
    /// "Wildcard subscriptions", ADR 0012).
    Pattern {
        app: String,
        pattern: String,
        on: bool,
        /// Not 0: answer with `PatternAck { ack }` once registered (the sender holds the
        /// pattern's first subscription until every peer did).
        ack: u64,
    },
    /// The app updated a presence member's `user_info` (docs/cluster.md, "Presence
    /// updates"). Without `ordered`: the node the API call entered → the channel's owning
    /// node, which orders it like an event of the channel. With `ordered`: the owning node →
    /// every peer, which writes the info into its view and sends `raptor:member_updated` to
    /// its own subscribers, in the channel's order (the link is FIFO).
    PresenceUpdate {
        /// First: it fits in the padding after the discriminant.
        ordered: bool,
        app: String,
        channel: String,
        user_id: String,
        /// The new info as compact JSON (an object).
        user_info: String,
    },
    /// Any node → the channel's owning node: the chunks of one large event (engine
    /// docs/protocol.md, "Large events in chunks"), each an event of its own, ordered there
    /// one after another with no other event of the channel between them. `confirm` and
    /// `origin_seq` as for `Publish` (one `Published` once the last chunk is delivered).
    PublishChunks {
        confirm: bool,
        app: String,
        channel: String,
        chunks: Vec<WireEvent>,
        exclude: Exclude,
        origin_seq: u64,
    },
    /// Peer → the sender of a `Pattern { ack }` with `ack` not 0: registered.
    PatternAck {
        ack: u64,
    },
    /// A handoff of channel ownership on a planned change (a node joining, rejoining or
    /// leaving on purpose; docs/cluster.md "Handoff"). `old`: the node that owned the
    /// channels; `new`: the node they move to, or empty for "every other node" (`old` is
    /// leaving). See [`HandoffStep`] for who sends which step to whom.
    Handoff {
        step: HandoffStep,
        old: String,
        new: String,
        /// `Released` only: the nodes `old` holds live (itself excepted). `new` waits for
        /// a `Seen` from each of them, so a new node whose view is still partial does not
        /// take the channels before every node has passed them on.
        peers: Vec<String>,
    },
}

/// The steps of a handoff from `old` to `new` (docs/cluster-protocol.md).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandoffStep {
    /// Any other node → `old`: I route the moving channels to `new` now; every publish I
    /// sent you for them is before this on this link.
    Rerouted,
    /// `old` → every peer, once every live node said `Rerouted` (or it waited long enough):
    /// every event I ordered of the moving channels is before this on this link.
    Released,
    /// Any other node → `new`, on `old`'s `Released`: every event `old` ordered of the
    /// moving channels reached me (and my interest in them is before this on this link).
    Seen,
}

/// Access tokens between nodes.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum TokenMsg {
    /// Any node → every peer (and to a peer whose link comes up, every revocation in force):
    /// refuse the token `jti` (or every token of `user` issued no later than `at`) until
    /// `until`, and close the sessions using it.
    Revoke {
        app: String,
        jti: Option<String>,
        user: Option<String>,
        until: u64,
        at: u64,
    },
    /// A session's node → the node owning the token id: count `session`'s use; answered
    /// with `Accepted { id }` or `Refused { id }`.
    Use {
        id: u64,
        app: String,
        jti: String,
        session: String,
        uses: u32,
        until: u64,
    },
    Refused {
        id: u64,
    },
    Accepted {
        id: u64,
    },
}

/// One stored event of a channel with history, as its owning node copies it.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct WireEntry {
    pub offset: u64,
    /// `m` message, `e` edit event, `d` delete event (as the history log writes it).
    pub kind: u8,
    pub name: String,
    pub data: String,
    pub user_id: Option<String>,
    pub time_ms: u64,
}

/// A change in place that an event of a channel's history brings along.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum WireChange {
    /// The message at `offset` now carries `data`.
    Edit { offset: u64, data: String },
    /// The message at `offset` was deleted.
    Delete { offset: u64 },
    /// Every stored event was dropped (the position stays).
    Remove,
    /// Forget the copy, position included: the owner delivered an event the copy may lack,
    /// so the copy cannot continue the epoch.
    Forget,
}

/// A position to recover from.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct WirePosition {
    pub offset: u64,
    pub epoch: String,
}

/// What a node asks a channel's owning node about its history.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum HistoryAsk {
    /// A subscription on the asking node: its `raptor:recovery` and what it missed since
    /// `from`, answered on the link its live events take, so none is missing or doubled.
    Recover {
        from: Option<WirePosition>,
    },
    /// The history API, answered with the HTTP status and JSON body the owner computed.
    Read {
        since: Option<u64>,
        epoch: Option<String>,
        limit: Option<u64>,
        newest_first: bool,
    },
    Remove,
    Edit {
        offset: u64,
        data: String,
    },
    Delete {
        offset: u64,
    },
}

/// The owning node's answer to a [`HistoryAsk`].
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum HistoryReply {
    /// `Recover`: the payloads to write after `subscription_succeeded`.
    Frames(Vec<Vec<u8>>),
    /// The API's answer, as the owner would have answered it itself.
    Http { status: u16, body: Vec<u8> },
}

/// Channel history between nodes.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum HistoryMsg {
    /// Owning node → the node that would own the channel next: keep this event (and its
    /// change in place) of `channel`'s history, epoch `epoch`. Answered with `Replicated`.
    /// The owner delivers the event only after that answer, so no subscriber ever sees an
    /// event the successor lacks.
    Replicate {
        ack: u64,
        app: String,
        channel: String,
        epoch: String,
        entry: Option<WireEntry>,
        change: Option<WireChange>,
    },
    /// Successor → owning node: `Replicate { ack }` is kept.
    Replicated {
        ack: u64,
    },
    /// Owning node → the sender of a `Publish { confirm: true }`: it is ordered, copied and
    /// delivered; the sender may answer 200.
    Published {
        origin_seq: u64,
    },
    /// Any node → the owning node of `channel`; answered with `Reply` with the same `id`.
    Ask {
        id: u64,
        app: String,
        channel: String,
        ask: HistoryAsk,
    },
    Reply {
        id: u64,
        reply: HistoryReply,
    },
    /// Old owning node → the node a channel moves to on a join (docs/cluster.md "Handoff"):
    /// the channel's whole history in chunks, oldest first, sent just before the handoff's
    /// `Released` on the same link. `first`: drop what is kept for the channel (a copy of
    /// the events ordered during the handoff) and start from these. The new owner then
    /// continues the same epoch with the next offset.
    Handover {
        app: String,
        channel: String,
        epoch: String,
        entries: Vec<WireEntry>,
        first: bool,
    },
}

/// Message kind in byte 5 of the header: quick dispatch and compatibility checks without
/// touching the body. Must match the body's variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Tag {
    Hello = 1,
    Publish = 2,
    Deliver = 3,
    Interest = 4,
    PresenceJoin = 5,
    PresenceLeave = 6,
    PresenceSync = 7,
    Terminate = 8,
    Ping = 9,
    Pong = 10,
    Leaving = 11,
    Query = 12,
    Answer = 13,
    Count = 14,
    InterestAck = 15,
    PresenceResync = 16,
    History = 17,
    Token = 18,
    Pattern = 19,
    PresenceUpdate = 20,
    PublishChunks = 21,
    PatternAck = 22,
    Handoff = 23,
}

impl Tag {
    pub fn from_u8(b: u8) -> Option<Tag> {
        Some(match b {
            1 => Tag::Hello,
            2 => Tag::Publish,
            3 => Tag::Deliver,
            4 => Tag::Interest,
            5 => Tag::PresenceJoin,
            6 => Tag::PresenceLeave,
            7 => Tag::PresenceSync,
            8 => Tag::Terminate,
            9 => Tag::Ping,
            10 => Tag::Pong,
            11 => Tag::Leaving,
            12 => Tag::Query,
            13 => Tag::Answer,
            14 => Tag::Count,
            15 => Tag::InterestAck,
            16 => Tag::PresenceResync,
            17 => Tag::History,
            18 => Tag::Token,
            19 => Tag::Pattern,
            20 => Tag::PresenceUpdate,
            21 => Tag::PublishChunks,
            22 => Tag::PatternAck,
            23 => Tag::Handoff,
            _ => return None,
        })
    }
}

impl NodeMsg {
    pub fn tag(&self) -> Tag {
        match self {
            NodeMsg::Hello { .. } => Tag::Hello,
            NodeMsg::Publish { .. } => Tag::Publish,
            NodeMsg::Deliver { .. } => Tag::Deliver,
            NodeMsg::Interest { .. } => Tag::Interest,
            NodeMsg::PresenceJoin { .. } => Tag::PresenceJoin,
            NodeMsg::PresenceLeave { .. } => Tag::PresenceLeave,
            NodeMsg::PresenceSync { .. } => Tag::PresenceSync,
            NodeMsg::Terminate { .. } => Tag::Terminate,
            NodeMsg::Ping(_) => Tag::Ping,
            NodeMsg::Pong(_) => Tag::Pong,
            NodeMsg::Leaving => Tag::Leaving,
            NodeMsg::Query { .. } => Tag::Query,
            NodeMsg::Answer { .. } => Tag::Answer,
            NodeMsg::Count { .. } => Tag::Count,
            NodeMsg::InterestAck { .. } => Tag::InterestAck,
            NodeMsg::PresenceResync => Tag::PresenceResync,
            NodeMsg::History(_) => Tag::History,
            NodeMsg::Token(_) => Tag::Token,
            NodeMsg::Pattern { .. } => Tag::Pattern,
            NodeMsg::PresenceUpdate { .. } => Tag::PresenceUpdate,
            NodeMsg::PublishChunks { .. } => Tag::PublishChunks,
            NodeMsg::PatternAck { .. } => Tag::PatternAck,
            NodeMsg::Handoff { .. } => Tag::Handoff,
        }
    }
}

impl ArchivedNodeMsg {
    fn tag(&self) -> Tag {
        match self {
            ArchivedNodeMsg::Hello { .. } => Tag::Hello,
            ArchivedNodeMsg::Publish { .. } => Tag::Publish,
            ArchivedNodeMsg::Deliver { .. } => Tag::Deliver,
            ArchivedNodeMsg::Interest { .. } => Tag::Interest,
            ArchivedNodeMsg::PresenceJoin { .. } => Tag::PresenceJoin,
            ArchivedNodeMsg::PresenceLeave { .. } => Tag::PresenceLeave,
            ArchivedNodeMsg::PresenceSync { .. } => Tag::PresenceSync,
            ArchivedNodeMsg::Terminate { .. } => Tag::Terminate,
            ArchivedNodeMsg::Ping(_) => Tag::Ping,
            ArchivedNodeMsg::Pong(_) => Tag::Pong,
            ArchivedNodeMsg::Leaving => Tag::Leaving,
            ArchivedNodeMsg::Query { .. } => Tag::Query,
            ArchivedNodeMsg::Answer { .. } => Tag::Answer,
            ArchivedNodeMsg::Count { .. } => Tag::Count,
            ArchivedNodeMsg::InterestAck { .. } => Tag::InterestAck,
            ArchivedNodeMsg::PresenceResync => Tag::PresenceResync,
            ArchivedNodeMsg::History(_) => Tag::History,
            ArchivedNodeMsg::Token(_) => Tag::Token,
            ArchivedNodeMsg::Pattern { .. } => Tag::Pattern,
            ArchivedNodeMsg::PresenceUpdate { .. } => Tag::PresenceUpdate,
            ArchivedNodeMsg::PublishChunks { .. } => Tag::PublishChunks,
            ArchivedNodeMsg::PatternAck { .. } => Tag::PatternAck,
            ArchivedNodeMsg::Handoff { .. } => Tag::Handoff,
        }
    }
}

/// Why a frame was refused. All are the peer's fault (or a version skew): the link that
/// carried it is closed, since the byte stream can no longer be trusted to be in sync.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Not a Raptor node (or the stream lost sync): close the link.
    #[error("bad magic {0:02x?}")]
    BadMagic([u8; 4]),
    /// A peer speaking another format version: close; upgrade the older node.
    #[error("unsupported frame version {0}")]
    UnsupportedVersion(u8),
    /// A tag this version does not know, or reserved bytes not zero.
    #[error("unknown tag {0}")]
    UnknownTag(u8),
    #[error("reserved header bytes are not zero")]
    Reserved,
    /// The header's tag names another message than the body holds.
    #[error("tag {tag} does not match the body ({body:?})")]
    TagMismatch { tag: u8, body: Tag },
    /// Body longer than the configured bound; nothing was allocated for it.
    #[error("frame body of {len} bytes is over the limit of {max}")]
    TooLarge { len: u64, max: usize },
    /// The body failed validation (bytecheck) or deserialization.
    #[error("invalid frame body: {0}")]
    InvalidBody(String),
    /// Our own message could not be serialized (internal error; not sent).
    #[error("cannot encode message: {0}")]
    Encode(String),
}

fn pad8(n: usize) -> usize {
    (n + 7) & !7
}

/// Appends one frame holding `msg` to `out`, which must hold whole frames only (its length
/// a multiple of 8). Fails if the body would be over `max_body`; `out` is then left as it
/// was.
pub fn encode_into(msg: &NodeMsg, out: &mut Vec<u8>, max_body: usize) -> Result<(), WireError> {
    let start = out.len();
    // rkyv aligns by position in `out`, and the receiver needs the body aligned relative to
    // the frame start: frames are multiples of 8, so appending at a frame boundary keeps it.
    if !start.is_multiple_of(8) {
        return Err(WireError::Encode(
            "output buffer does not end at an 8-byte boundary".to_owned(),
        ));
    }
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(msg.tag() as u8);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&[0; 8]);
    if let Err(e) = rkyv::api::high::to_bytes_in::<_, BoxedError>(msg, &mut *out) {
        out.truncate(start);
        return Err(WireError::Encode(e.to_string()));
    }
    let body_len = out.len() - start - HEADER_LEN;
    if body_len > max_body {
        out.truncate(start);
        return Err(WireError::TooLarge {
            len: body_len as u64,
            max: max_body,
        });
    }
    out[start + 8..start + 16].copy_from_slice(&(body_len as u64).to_le_bytes());
    out.resize(start + HEADER_LEN + pad8(body_len), 0);
    Ok(())
}

/// One frame holding `msg`, with the default body bound.
pub fn encode(msg: &NodeMsg) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::with_capacity(128);
    encode_into(msg, &mut out, DEFAULT_MAX_BODY)?;
    Ok(out)
}

/// What a header says, once checked.
struct Header {
    tag: u8,
    body_len: usize,
}

fn parse_header(h: &[u8], max_body: usize) -> Result<Header, WireError> {
    let magic: [u8; 4] = [h[0], h[1], h[2], h[3]];
    if magic != MAGIC {
        return Err(WireError::BadMagic(magic));
    }
    if h[4] != VERSION {
        return Err(WireError::UnsupportedVersion(h[4]));
    }
    if Tag::from_u8(h[5]).is_none() {
        return Err(WireError::UnknownTag(h[5]));
    }
    if h[6] != 0 || h[7] != 0 {
        return Err(WireError::Reserved);
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&h[8..16]);
    let len = u64::from_le_bytes(len);
    if len > max_body as u64 {
        return Err(WireError::TooLarge { len, max: max_body });
    }
    Ok(Header {
        tag: h[5],
        body_len: len as usize,
    })
}

/// Decodes the first frame of `buf` with the default body bound. `Ok(None)`: not a whole
/// frame yet (read more); `Ok(Some((msg, used)))`: `used` bytes form the frame. Pure and
/// total: the fuzz target calls exactly this.
pub fn decode(buf: &[u8]) -> Result<Option<(NodeMsg, usize)>, WireError> {
    decode_with_limit(buf, DEFAULT_MAX_BODY)
}

/// [`decode`] with an explicit body bound.
pub fn decode_with_limit(
    buf: &[u8],
    max_body: usize,
) -> Result<Option<(NodeMsg, usize)>, WireError> {
    if buf.len() < HEADER_LEN {
        // Reject garbage as early as possible: a partial header can already be wrong.
        let n = buf.len().min(4);
        if buf[..n] != MAGIC[..n] {
            let mut m = [0u8; 4];
            m[..n].copy_from_slice(&buf[..n]);
            return Err(WireError::BadMagic(m));
        }
        return Ok(None);
    }
    let header = parse_header(&buf[..HEADER_LEN], max_body)?;
    let total = HEADER_LEN + pad8(header.body_len);
    if buf.len() < total {
        return Ok(None);
    }
    let body = &buf[HEADER_LEN..HEADER_LEN + header.body_len];
    let msg = if (body.as_ptr() as usize).is_multiple_of(8) {
        decode_body(body, header.tag)?
    } else {
        let mut aligned = AlignedVec::<16>::with_capacity(body.len());
        aligned.extend_from_slice(body);
        decode_body(&aligned, header.tag)?
    };
    Ok(Some((msg, total)))
}

fn decode_body(body: &[u8], tag: u8) -> Result<NodeMsg, WireError> {
    let archived = rkyv::access::<ArchivedNodeMsg, BoxedError>(body)
        .map_err(|e| WireError::InvalidBody(e.to_string()))?;
    let body_tag = archived.tag();
    if body_tag as u8 != tag {
        return Err(WireError::TagMismatch {
            tag,
            body: body_tag,
        });
    }
    rkyv::deserialize::<NodeMsg, BoxedError>(archived)
        .map_err(|e| WireError::InvalidBody(e.to_string()))
}

/// A receive buffer for one link: append what the socket gave, take whole messages out.
/// Keeps the unread bytes at the front of an 8-aligned buffer, so bodies are validated in
/// place without a copy.
pub struct FrameReader {
    buf: AlignedVec<16>,
    /// Start of the unread bytes in `buf`.
    pos: usize,
    max_body: usize,
}

impl FrameReader {
    pub fn new(max_body: usize) -> FrameReader {
        FrameReader {
            buf: AlignedVec::with_capacity(64 * 1024),
            pos: 0,
            max_body,
        }
    }

    /// Appends bytes read from the socket.
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos >= 64 * 1024 {
            // Shift the tail down; `pos` is a multiple of 8 (frames are), so alignment holds.
            let rest = self.buf[self.pos..].to_vec();
            self.buf.clear();
            self.buf.extend_from_slice(&rest);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message, if any. An error means the stream is unusable: close it.
    pub fn next_msg(&mut self) -> Result<Option<NodeMsg>, WireError> {
        match decode_with_limit(&self.buf[self.pos..], self.max_body)? {
            Some((msg, used)) => {
                self.pos += used;
                Ok(Some(msg))
            }
            None => Ok(None),
        }
    }

    /// Bytes held but not yet decoded.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.pos
    }
}

#[cfg(test)]
mod tests;
