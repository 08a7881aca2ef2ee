//! Core↔core messages. **Boundary:** plain Rust values, moved (not copied) through glommio's
//! lock-free rings; `Bytes` and `Arc<str>` are the only shared payloads.

use crate::app::AppIdx;
use crate::channel::local::ConnId;
use crate::placement::ShardId;
use crate::socket_id::SocketId;
use bytes::Bytes;
use std::sync::Arc;

/// A message from one shard to another (or to itself, through the local inbox).
#[derive(Debug)]
pub enum ShardMsg {
    /// Subscriber shard → owner: count one more subscription from `from`.
    Subscribe {
        app: AppIdx,
        channel: Arc<str>,
        from: ShardId,
        conn: ConnId,
    },
    /// Owner → subscriber shard: the subscription is counted; deliveries follow in order.
    SubscribeAck {
        app: AppIdx,
        channel: Arc<str>,
        conn: ConnId,
    },
    /// Subscriber shard → owner: one subscription from `from` is gone.
    Unsubscribe {
        app: AppIdx,
        channel: Arc<str>,
        from: ShardId,
    },
    /// Edge shard → owner: an event to order and fan out. `frame` is the finished WebSocket
    /// frame, encoded once at the edge.
    Publish {
        app: AppIdx,
        channel: Arc<str>,
        frame: Bytes,
        exclude: Option<SocketId>,
    },
    /// Owner → each shard with subscribers: write `frame` to the local subscribers.
    Deliver {
        app: AppIdx,
        channel: Arc<str>,
        frame: Bytes,
        exclude: Option<SocketId>,
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

#[derive(Debug)]
pub enum Query {
    /// Counts of one channel.
    Channel { app: AppIdx, channel: Arc<str> },
    /// Occupied channels this shard owns, filtered by prefix.
    List { app: AppIdx, prefix: String },
}

#[derive(Debug)]
pub enum Reply {
    Channel { subscription_count: u32 },
    List(Vec<(String, u32)>),
}
