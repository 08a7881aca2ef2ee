//! # raptor-engine
//!
//! Raptor is a thread-per-core realtime messaging server that speaks the Pusher Channels
//! protocol v7. This crate is the engine: the shards, the WebSocket and HTTP front door,
//! and the channel fanout.
//!
//! ## Design in one page
//!
//! * **One glommio executor per shard.** Each shard binds its own `SO_REUSEPORT` listener on
//!   the same port, so the kernel spreads connections over the shards, and a connection lives
//!   and dies on the shard that accepted it. Shard state is `Rc`/`RefCell`, `!Send` on
//!   purpose: nothing in a shard is shared with another thread.
//! * **One owner per channel.** [`placement::shard_for`] maps `(app, channel)` to an owner
//!   shard. The owner is the only place that orders a channel's events and knows which shards
//!   have subscribers. Subscribers stay on their own shard; the owner sends each interested
//!   shard one [`shard::ShardMsg::Deliver`] per event.
//! * **Cores talk only by messages** over glommio's bounded lock-free mesh ([`shard::mesh`]).
//!   No `Mutex` or `RwLock` is on any path a request or event takes (`clippy.toml` forbids
//!   them); the one exception, allowed by name, is the start-up hand-off in [`server`] that
//!   gives the cluster's receivers to the gateway shard, taken once per shard at start.
//! * **Encode once, send bytes.** A published event becomes one immutable frame
//!   ([`frame::Frame`], shared bytes) at its order point; every recipient session's queue
//!   ([`session::Outbound`]) holds a clone of the same bytes, and the per-shard flusher of
//!   the WebSocket writer writes all pending frames of a socket with one syscall ([`outbox`]).
//! * **Everything is bounded** ([`config::Limits`]): outbound queues per socket (a slow reader
//!   is cut with close code 4100), message and body sizes, header sizes and timeouts.
//!
//! Data flows one way: `http`/`ws` (the edges; `ws` is one transport of a session) →
//! `commands` (a session's Pusher commands) → `shard` (routing, order points, channel
//! tables) → `channel` → `outbox` (the WebSocket writer of a session's queue) → `session`
//! (a session's state and its bounded queue of frames) → `frame`/`protocol`. Nothing below
//! the transports names WebSocket: `commands`, `shard`, `channel` and `session` push frames
//! and close with a code and reason. `http1` (HTTP/1.1 messages) sits below `http` and `ws`.
//! `cli` sits above them all: it runs the server (`raptor serve`), and its operator commands
//! reach a running server over HTTP only, like any client.

pub mod app;
pub mod channel;
#[macro_use]
pub mod cli;
pub mod commands;
pub mod config;
pub mod frame;
pub mod http;
pub mod http1;
pub mod lifecycle;
pub mod live;
pub mod logging;
pub mod outbox;
pub mod placement;
pub mod protocol;
pub mod reload;
pub mod server;
pub mod session;
pub mod shard;
pub mod signature;
pub mod socket_id;
pub mod stats;
pub mod tls;
pub mod token;
pub mod transport;
pub mod webhook;
pub mod ws;
pub mod xhr;

/// `raptor --version`: the crate version and the git revision it was built from.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("RAPTOR_GIT_REV"), ")");
