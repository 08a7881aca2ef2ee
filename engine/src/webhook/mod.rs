//! Webhooks: telling apps what happened, signed, batched and retried, off the shards.
//!
//! **Boundary:** shards call [`Webhooks::emit`], which never blocks and never fails; everything
//! else (delays, batching, HTTP, retries) happens on the webhook thread.

use crate::app::AppIdx;

/// One webhook event, as Pusher defines them (protocol doc §1.13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEvent {
    ChannelOccupied { channel: String },
    ChannelVacated { channel: String },
    MemberAdded { channel: String, user_id: String },
    MemberRemoved { channel: String, user_id: String },
    ClientEvent {
        channel: String,
        event: String,
        data: String,
        socket_id: String,
        user_id: Option<String>,
    },
    CacheMiss { channel: String },
    SubscriptionCount { channel: String, subscription_count: u32 },
}

/// Handle to the webhook dispatcher; cheap to clone and `Send`, one per shard.
#[derive(Clone)]
pub struct Webhooks {}

impl Webhooks {
    /// Starts the dispatcher thread if any app has webhooks.
    pub fn start(_apps: &crate::app::Apps) -> Webhooks {
        Webhooks {}
    }

    /// Queues an event for every matching webhook of `app`. Never blocks.
    pub fn emit(&self, _app: AppIdx, _ev: WebhookEvent) {}
}
