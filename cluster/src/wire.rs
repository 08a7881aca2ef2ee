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
pub const VERSION: u8 = 1;
/// Bytes before the body.
pub const HEADER_LEN: usize = 16;
/// Default bound on a body: a Pusher event is at most ~10 KB, so 1 MiB leaves room for
/// presence sync chunks and never lets a peer make us allocate without limit.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;

/// `(hi, lo)` of the Pusher `socket_id` to skip at fanout, as the engine's `SocketId`.
pub type Exclude = Option<(u64, u64)>;

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
    /// Any node → the channel's owning node: order this event and fan it out.
    Publish {
        app: String,
        channel: String,
        /// The finished WebSocket frame, encoded once at the edge where the event entered.
        frame: Vec<u8>,
        exclude: Exclude,
        /// Event data a cache channel keeps as its last event (API events only).
        cache_data: Option<String>,
        /// Per-sender counter (per link session), so the owner can see gaps in tests and
        /// stats; it does not change delivery.
        origin_seq: u64,
    },
    /// Owning node → each node with subscribers: write `frame` to the local subscribers.
    Deliver {
        app: String,
        channel: String,
        frame: Vec<u8>,
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
    /// Node → peer, right after `Hello`: all of the sender's members, in chunks. The last
    /// chunk has `done`; the receiver then replaces what it held for the sender.
    PresenceSync {
        members: Vec<SyncMember>,
        done: bool,
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
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s() -> impl Strategy<Value = String> {
        "\\PC{0,40}"
    }

    fn exclude() -> impl Strategy<Value = Exclude> {
        proptest::option::of((any::<u64>(), any::<u64>()))
    }

    fn member() -> impl Strategy<Value = SyncMember> {
        (s(), s(), s(), proptest::option::of(s())).prop_map(|(app, channel, user_id, user_info)| {
            SyncMember {
                app,
                channel,
                user_id,
                user_info,
            }
        })
    }

    pub(crate) fn any_msg() -> impl Strategy<Value = NodeMsg> {
        let bytes = proptest::collection::vec(any::<u8>(), 0..300);
        prop_oneof![
            (s(), s(), any::<u64>()).prop_map(|(cluster_id, node_id, generation)| {
                NodeMsg::Hello {
                    cluster_id,
                    node_id,
                    generation,
                }
            }),
            (
                s(),
                s(),
                bytes.clone(),
                exclude(),
                proptest::option::of(s()),
                any::<u64>()
            )
                .prop_map(|(app, channel, frame, exclude, cache_data, origin_seq)| {
                    NodeMsg::Publish {
                        app,
                        channel,
                        frame,
                        exclude,
                        cache_data,
                        origin_seq,
                    }
                }),
            (
                s(),
                s(),
                bytes,
                exclude(),
                any::<bool>(),
                proptest::option::of(s())
            )
                .prop_map(
                    |(app, channel, frame, exclude, privileged_only, cache_data)| {
                        NodeMsg::Deliver {
                            app,
                            channel,
                            frame,
                            exclude,
                            privileged_only,
                            cache_data,
                        }
                    }
                ),
            (s(), s(), any::<bool>()).prop_map(|(app, channel, on)| NodeMsg::Interest {
                app,
                channel,
                on
            }),
            (s(), s(), s(), proptest::option::of(s())).prop_map(
                |(app, channel, user_id, user_info)| NodeMsg::PresenceJoin {
                    app,
                    channel,
                    user_id,
                    user_info,
                }
            ),
            (s(), s(), s()).prop_map(|(app, channel, user_id)| NodeMsg::PresenceLeave {
                app,
                channel,
                user_id
            }),
            (proptest::collection::vec(member(), 0..5), any::<bool>())
                .prop_map(|(members, done)| NodeMsg::PresenceSync { members, done }),
            (s(), s()).prop_map(|(app, user)| NodeMsg::Terminate { app, user }),
            any::<u64>().prop_map(NodeMsg::Ping),
            any::<u64>().prop_map(NodeMsg::Pong),
            Just(NodeMsg::Leaving),
            (any::<u64>(), s(), query_kind()).prop_map(|(id, app, kind)| NodeMsg::Query {
                id,
                app,
                kind
            }),
            (any::<u64>(), answer_body()).prop_map(|(id, body)| NodeMsg::Answer { id, body }),
            (s(), s(), any::<u32>()).prop_map(|(app, channel, count)| NodeMsg::Count {
                app,
                channel,
                count
            }),
        ]
    }

    fn query_kind() -> impl Strategy<Value = QueryKind> {
        prop_oneof![
            s().prop_map(|channel| QueryKind::Channel { channel }),
            s().prop_map(|prefix| QueryKind::List { prefix }),
        ]
    }

    fn answer_body() -> impl Strategy<Value = AnswerBody> {
        prop_oneof![
            any::<u32>().prop_map(|subscription_count| AnswerBody::Channel { subscription_count }),
            (proptest::collection::vec(s(), 0..20), any::<bool>()).prop_map(
                |(channels, truncated)| AnswerBody::List {
                    channels,
                    truncated
                }
            ),
            Just(AnswerBody::Refused),
        ]
    }

    proptest! {
        #[test]
        fn round_trips_every_variant(msg in any_msg()) {
            let frame = encode(&msg).unwrap();
            prop_assert_eq!(frame.len() % 8, 0);
            prop_assert_eq!(&frame[..4], b"RPTR");
            prop_assert_eq!(frame[4], VERSION);
            prop_assert_eq!(frame[5], msg.tag() as u8);
            let (back, used) = decode(&frame).unwrap().unwrap();
            prop_assert_eq!(used, frame.len());
            prop_assert_eq!(back, msg);
        }

        #[test]
        fn partial_frames_ask_for_more(msg in any_msg(), cut in 0usize..1000) {
            let frame = encode(&msg).unwrap();
            let cut = cut % frame.len();
            prop_assert_eq!(decode(&frame[..cut]).unwrap(), None);
        }

        #[test]
        fn unaligned_buffers_are_copied(msg in any_msg()) {
            let frame = encode(&msg).unwrap();
            let mut shifted = AlignedVec::<16>::new();
            shifted.extend_from_slice(&[0u8]);
            shifted.extend_from_slice(&frame);
            let (back, _) = decode(&shifted[1..]).unwrap().unwrap();
            prop_assert_eq!(back, msg);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn random_bodies_behind_a_valid_header_never_panic(
            tag in 0u8..16,
            body in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let mut frame = Vec::new();
            frame.extend_from_slice(&MAGIC);
            frame.extend_from_slice(&[VERSION, tag, 0, 0]);
            frame.extend_from_slice(&(body.len() as u64).to_le_bytes());
            frame.extend_from_slice(&body);
            frame.resize(HEADER_LEN + pad8(body.len()), 0);
            let mut aligned = AlignedVec::<16>::new();
            aligned.extend_from_slice(&frame);
            let _ = decode(&aligned);
        }

        #[test]
        fn corrupted_frames_never_panic(msg in any_msg(), at in any::<usize>(), byte in any::<u8>()) {
            let mut frame = encode(&msg).unwrap();
            let at = at % frame.len();
            frame[at] = byte;
            let mut aligned = AlignedVec::<16>::new();
            aligned.extend_from_slice(&frame);
            let _ = decode(&aligned);
        }

        #[test]
        fn reader_splits_a_stream(msgs in proptest::collection::vec(any_msg(), 1..8), chunk in 1usize..97) {
            let mut stream = Vec::new();
            for m in &msgs {
                encode_into(m, &mut stream, DEFAULT_MAX_BODY).unwrap();
            }
            let mut reader = FrameReader::new(DEFAULT_MAX_BODY);
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                reader.extend(piece);
                while let Some(m) = reader.next_msg().unwrap() {
                    got.push(m);
                }
            }
            prop_assert_eq!(got, msgs);
            prop_assert_eq!(reader.pending(), 0);
        }
    }

    #[test]
    fn header_errors_are_typed() {
        let mut frame = encode(&NodeMsg::Ping(7)).unwrap();
        let good = frame.clone();
        frame[0] = b'X';
        assert!(matches!(decode(&frame), Err(WireError::BadMagic(_))));
        assert!(matches!(decode(b"XP"), Err(WireError::BadMagic(_))));
        assert_eq!(decode(b"RP"), Ok(None));

        let mut frame = good.clone();
        frame[4] = 2;
        assert_eq!(decode(&frame), Err(WireError::UnsupportedVersion(2)));

        let mut frame = good.clone();
        frame[5] = 200;
        assert_eq!(decode(&frame), Err(WireError::UnknownTag(200)));

        let mut frame = good.clone();
        frame[5] = Tag::Pong as u8;
        assert_eq!(
            decode(&frame),
            Err(WireError::TagMismatch {
                tag: Tag::Pong as u8,
                body: Tag::Ping
            })
        );

        let mut frame = good.clone();
        frame[6] = 1;
        assert_eq!(decode(&frame), Err(WireError::Reserved));

        let mut frame = good.clone();
        frame[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(decode(&frame), Err(WireError::TooLarge { .. })));
    }

    #[test]
    fn oversized_messages_are_not_encoded() {
        let msg = NodeMsg::Deliver {
            app: "1".into(),
            channel: "c".into(),
            frame: vec![0; 2048],
            exclude: None,
            privileged_only: false,
            cache_data: None,
        };
        let mut out = vec![];
        assert!(matches!(
            encode_into(&msg, &mut out, 1024),
            Err(WireError::TooLarge { .. })
        ));
        assert!(out.is_empty());
        let frame = encode(&msg).unwrap();
        assert!(matches!(
            decode_with_limit(&frame, 1024),
            Err(WireError::TooLarge { .. })
        ));
    }

    #[test]
    fn ping_frame_is_small_and_exact() {
        let frame = encode(&NodeMsg::Ping(0x0102030405060708)).unwrap();
        assert_eq!(&frame[..8], &[b'R', b'P', b'T', b'R', 1, 9, 0, 0]);
        let len = u64::from_le_bytes(frame[8..16].try_into().unwrap()) as usize;
        assert_eq!(frame.len(), HEADER_LEN + pad8(len));
        // An archived enum is as large as its largest variant (`Publish`), so even a ping
        // costs ~100 bytes; keepalives are two a second, so this does not matter.
        assert!(frame.len() <= 128, "{}", frame.len());
    }

    /// The `Deliver` example of docs/cluster-protocol.md, byte for byte.
    #[test]
    fn cache_deliver_frame_is_as_documented() {
        let msg = NodeMsg::Deliver {
            app: "1".into(),
            channel: "cache-x".into(),
            frame: vec![1, 2, 3],
            exclude: None,
            privileged_only: false,
            cache_data: Some("d".into()),
        };
        let mut want = vec![b'R', b'P', b'T', b'R', 1, 3, 0, 0, 88, 0, 0, 0, 0, 0, 0, 0];
        want.extend([1, 2, 3, 0, 0, 0, 0, 0]);
        want.extend([2, 0, 0, 0, b'1', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        want.extend(b"cache-x\xff");
        want.extend([0xe4, 0xff, 0xff, 0xff, 3, 0, 0, 0]);
        want.extend([0; 28]);
        want.extend([0, 0, 0, 0]);
        want.extend([1, 0, 0, 0, b'd', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        want.extend([0; 8]);
        assert_eq!(encode(&msg).unwrap(), want);
        // The union is still 80 bytes: a ping's body.
        assert_eq!(encode(&NodeMsg::Ping(1)).unwrap()[8], 80);
    }

    #[test]
    fn query_and_answer_round_trip_with_their_tags() {
        let msgs = [
            NodeMsg::Query {
                id: 7,
                app: "1".into(),
                kind: QueryKind::Channel {
                    channel: "presence-room".into(),
                },
            },
            NodeMsg::Query {
                id: u64::MAX,
                app: "app-with-a-long-id".into(),
                kind: QueryKind::List {
                    prefix: String::new(),
                },
            },
            NodeMsg::Answer {
                id: 7,
                body: AnswerBody::Channel {
                    subscription_count: 3,
                },
            },
            NodeMsg::Answer {
                id: 8,
                body: AnswerBody::List {
                    channels: vec!["a".into(), "a-much-longer-channel-name".into()],
                    truncated: true,
                },
            },
            NodeMsg::Answer {
                id: 9,
                body: AnswerBody::Refused,
            },
        ];
        let tags = [12, 12, 13, 13, 13];
        for (msg, tag) in msgs.iter().zip(tags) {
            let frame = encode(msg).unwrap();
            assert_eq!(frame[5], tag, "{msg:?}");
            let (back, used) = decode(&frame).unwrap().unwrap();
            assert_eq!(used, frame.len());
            assert_eq!(&back, msg);
        }
        // The new variants do not grow the union: existing messages keep their bytes.
        let ping = encode(&NodeMsg::Ping(1)).unwrap();
        assert_eq!(u64::from_le_bytes(ping[8..16].try_into().unwrap()), 80);
    }

    #[test]
    fn count_round_trips_with_tag_14_in_the_80_byte_union() {
        let msgs = [
            NodeMsg::Count {
                app: "1".into(),
                channel: "room".into(),
                count: 6,
            },
            NodeMsg::Count {
                app: "app-with-a-long-id".into(),
                channel: "a-much-longer-channel-name".into(),
                count: u32::MAX,
            },
        ];
        for msg in &msgs {
            let frame = encode(msg).unwrap();
            assert_eq!(frame[5], 14, "{msg:?}");
            let (back, used) = decode(&frame).unwrap().unwrap();
            assert_eq!(used, frame.len());
            assert_eq!(&back, msg);
        }
        // Byte-exact, as docs/cluster-protocol.md shows it.
        let frame = encode(&msgs[0]).unwrap();
        let mut want = vec![0x52, 0x50, 0x54, 0x52, 1, 14, 0, 0, 80, 0, 0, 0, 0, 0, 0, 0];
        want.extend([13, 0, 0, 0, 0x31, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        want.extend([0x72, 0x6f, 0x6f, 0x6d, 0xff, 0xff, 0xff, 0xff, 6, 0, 0, 0]);
        want.resize(96, 0);
        assert_eq!(frame, want);
        let ping = encode(&NodeMsg::Ping(1)).unwrap();
        assert_eq!(u64::from_le_bytes(ping[8..16].try_into().unwrap()), 80);
    }

    #[test]
    fn query_with_an_answer_tag_is_refused() {
        let mut frame = encode(&NodeMsg::Query {
            id: 1,
            app: "1".into(),
            kind: QueryKind::List {
                prefix: "presence-".into(),
            },
        })
        .unwrap();
        frame[5] = Tag::Answer as u8;
        assert_eq!(
            decode(&frame),
            Err(WireError::TagMismatch {
                tag: 13,
                body: Tag::Query
            })
        );
    }
}
