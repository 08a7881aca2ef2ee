//! A Pusher session: socket id, app, signed-in user, subscriptions, the client-event rate
//! window, and the bounded outbound queue ([`Outbound`]) its messages wait in. A session
//! exists without a socket: a transport (today the WebSocket, `crate::ws`) feeds its client
//! messages to [`crate::commands`] and attaches a writer to its queue.
//!
//! **Boundary:** a bottom layer, like `frame`: the shard's and channels' tables hold
//! sessions and their queues, so this imports nothing above it (no shard, no channel, no
//! transport); the commands, which act on the shard, live above in [`crate::commands`].
//! Closing a session is [`Outbound::close`] with a code and a reason; how that looks on the
//! wire (a WebSocket close frame) is the transport writer's business.

pub mod chunks;
pub mod outbound;

pub use outbound::{Outbound, Push, WriteState};

use crate::app::{App, AppCounters, AppIdx};
use crate::socket_id::SocketId;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where one subscription of a connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubState {
    /// Sent to the owner, waiting for its acknowledgement.
    Pending,
    /// Acknowledged: the connection is in the local channel table.
    Active,
    /// Unsubscribed while pending: the acknowledgement must be undone.
    Cancelled,
}

/// One subscription of a connection.
#[derive(Debug, Clone)]
pub struct Sub {
    pub state: SubState,
    /// The subscribe request whose answer this waits for (`SubReq::seq`).
    pub seq: u64,
    /// Presence channels: the member this connection joined as.
    pub user_id: Option<Arc<str>>,
    /// `presence-privileged-*`: this connection's member is privileged.
    pub privileged: bool,
}

/// A signed-in user (`pusher:signin`).
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub id: Arc<str>,
    pub watchlist: Vec<Arc<str>>,
}

/// Shard-local connection number (unique within a shard for its lifetime).
pub type ConnId = u64;

/// Positions to recover from, by channel: `(offset, epoch)`.
pub type PendingRecovery = HashMap<Box<str>, (u64, Arc<str>)>;

pub struct Connection {
    pub id: ConnId,
    pub socket_id: SocketId,
    /// The app; its current version is `Shard::app(conn.app)` (a reload may have rotated
    /// its secret or changed its options since the connection opened).
    pub app: AppIdx,
    /// The app's counters, to count this connection out when it closes.
    pub counters: Arc<AppCounters>,
    pub out: Rc<Outbound>,
    /// Channel → subscription. Bounded by `limits.max_subscriptions_per_connection`.
    pub subs: RefCell<HashMap<Arc<str>, Sub>>,
    /// Last time anything arrived from the client (drives server pings and 4201).
    pub last_seen: Cell<Instant>,
    /// A server `pusher:ping` is outstanding.
    pub pinged: Cell<bool>,
    pub connected_at: Instant,
    pub user: RefCell<Option<SignedIn>>,
    /// Signed in, or joined a private/presence channel ("authorized connections").
    pub authorized: Cell<bool>,
    /// Client-event rate window: (start of the current second, events in it).
    rate: Cell<(Instant, u32)>,
    /// Positions a `raptor:recover` asked to recover from, by channel: `(offset, epoch)`,
    /// taken by the next subscribe of that channel. Each `raptor:recover` replaces them;
    /// bounded by `limits.max_subscriptions_per_connection`.
    pub recover_from: RefCell<PendingRecovery>,
    /// The access token the session signed in with (`pusher:signin` or `?token=`), whose
    /// grants its subscriptions and client events may use (docs/tokens.md).
    pub token: RefCell<Option<Rc<crate::token::Token>>>,
    /// Tokens that authorized subscriptions in their `auth` (distinct, at most
    /// `max_subscriptions_per_connection`): a revocation or the expiry of any of them ends
    /// the session, as for its own token.
    pub auth_tokens: RefCell<Vec<Rc<crate::token::Token>>>,
    /// The `client-chunked-*` sequences under way (bounded by `[limits]`), freed with the
    /// session.
    pub chunks: RefCell<chunks::OpenChunks>,
    /// Chunk rate window (`client_chunks_per_second`): a separate allowance, so a large
    /// event is not held to the client-event rate chunk by chunk.
    chunk_rate: Cell<(Instant, u32)>,
}

impl Connection {
    pub fn new(id: ConnId, socket_id: SocketId, app: &App, out: Rc<Outbound>) -> Connection {
        let now = Instant::now();
        Connection {
            id,
            socket_id,
            app: app.idx,
            counters: app.counters.clone(),
            out,
            subs: RefCell::new(HashMap::new()),
            last_seen: Cell::new(now),
            pinged: Cell::new(false),
            connected_at: now,
            user: RefCell::new(None),
            authorized: Cell::new(false),
            rate: Cell::new((now, 0)),
            recover_from: RefCell::new(HashMap::new()),
            token: RefCell::new(None),
            auth_tokens: RefCell::new(Vec::new()),
            chunks: RefCell::new(chunks::OpenChunks::default()),
            chunk_rate: Cell::new((now, 0)),
        }
    }

    /// Ends the session as Pusher refuses one: `pusher:error` with `code` and `message`, then
    /// a close with the same code and `reason` (what pusher-js reads to decide whether to
    /// reconnect).
    pub fn close_with_error(&self, code: u16, message: &str, reason: &'static str) {
        self.out.push(crate::protocol::server::error(code, message));
        self.out.close(code, reason);
    }

    /// Subscriptions that count against the per-connection limit.
    pub fn live_subscriptions(&self) -> usize {
        self.subs
            .borrow()
            .values()
            .filter(|s| s.state != SubState::Cancelled)
            .count()
    }

    pub fn active_sub(&self, channel: &str) -> Option<Sub> {
        self.subs
            .borrow()
            .get(channel)
            .filter(|s| s.state == SubState::Active)
            .cloned()
    }

    pub fn user_id(&self) -> Option<Arc<str>> {
        self.user.borrow().as_ref().map(|u| u.id.clone())
    }

    /// Counts one client event against `per_second`; false when over the limit.
    pub fn take_client_event(&self, per_second: u32, now: Instant) -> bool {
        take(&self.rate, per_second, now)
    }

    /// Counts one chunk of a chunked client event against `per_second`; false when over.
    pub fn take_chunk(&self, per_second: u32, now: Instant) -> bool {
        take(&self.chunk_rate, per_second, now)
    }
}

/// One more in a one-second window `(start, count)` holding at most `per_second` (the
/// client-event and chunk rates here, the shard's new-connection rate).
pub fn take(window: &Cell<(Instant, u32)>, per_second: u32, now: Instant) -> bool {
    let (start, n) = window.get();
    if now.saturating_duration_since(start) >= Duration::from_secs(1) {
        window.set((now, 1));
        return true;
    }
    if n >= per_second {
        return false;
    }
    window.set((start, n + 1));
    true
}
