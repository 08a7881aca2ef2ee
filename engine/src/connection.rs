//! A WebSocket connection's state as the shard sees it.

use crate::app::App;
use crate::channel::local::ConnId;
use crate::outbox::SocketOut;
use crate::socket_id::SocketId;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

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

pub struct Connection {
    pub id: ConnId,
    pub socket_id: SocketId,
    pub app: Arc<App>,
    pub out: Rc<SocketOut>,
    /// Channel → state. Bounded by `limits.max_subscriptions_per_connection`.
    pub subs: RefCell<HashMap<Arc<str>, SubState>>,
    /// Last time anything arrived from the client (drives server pings and 4201).
    pub last_seen: Cell<Instant>,
    /// A server `pusher:ping` is outstanding.
    pub pinged: Cell<bool>,
}

impl Connection {
    /// Subscriptions that count against the per-connection limit.
    pub fn live_subscriptions(&self) -> usize {
        self.subs
            .borrow()
            .values()
            .filter(|s| **s != SubState::Cancelled)
            .count()
    }
}
