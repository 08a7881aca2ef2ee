//! The edge's publishes: a typed [`Event`] from the HTTP API or a client goes, not yet
//! encoded, to the queue of its channel's order point (the owner shard; the gateway, for the
//! owning node, in a cluster), waiting while that queue is full (the edge's backpressure),
//! and is counted in its app's figures.

use super::gateway::{ToGateway, GATEWAY};
use super::msg::{ClientEvent, GatewayMsg, ShardMsg};
use super::{AskError, Shard};
use crate::app::AppIdx;
use crate::channel::event::Event;
use crate::placement::ShardId;
use crate::socket_id::SocketId;
use crate::stats;
use std::sync::Arc;
use std::time::Instant;

/// A publish on its way to its order point ([`Shard::publish_send`]).
pub struct Sent {
    id: u64,
    reply: glommio::channels::local_channel::LocalReceiver<super::msg::Reply>,
}

impl Shard {
    /// The shard an event for `channel` goes to first: its owner shard, or the gateway,
    /// which asks the owning node, in a cluster. Backpressure waits on this queue.
    fn publish_target(&self, app: AppIdx, channel: &str) -> ShardId {
        if self.clustered {
            GATEWAY
        } else {
            self.owner_of(app, channel)
        }
    }

    /// The message that carries an event to `dst`, its [`Shard::publish_target`].
    #[allow(clippy::too_many_arguments)]
    fn publish_msg(
        &self,
        dst: ShardId,
        app: AppIdx,
        channel: Arc<str>,
        event: Event,
        exclude: Option<SocketId>,
        t0: Instant,
        ack: Option<(ShardId, u64)>,
    ) -> ShardMsg {
        if self.clustered {
            // The gateway asks the owning node to order it; acked once it left in order.
            let (gateway, msg) = ToGateway::addressed(GatewayMsg::Publish {
                app,
                channel,
                event,
                exclude,
                t0,
                ack,
            });
            debug_assert_eq!(gateway, dst);
            msg
        } else {
            ShardMsg::Publish {
                app,
                channel,
                event,
                exclude,
                t0,
                ack,
            }
        }
    }

    /// Publishes a client event once the queue it goes to has room (the connection reads
    /// nothing more meanwhile), then reports it to the app's webhooks.
    pub async fn publish_client_event(&self, ev: ClientEvent) {
        let t0 = Instant::now();
        let dst = self.publish_target(ev.app, &ev.channel);
        self.mesh.wait_for_room(dst).await;
        stats::add(&self.stats.published, 1);
        self.count_published(ev.app, 1, true);
        let exclude = Some(ev.exclude);
        let msg = self.publish_msg(dst, ev.app, ev.channel, ev.event, exclude, t0, None);
        self.mesh.send_admitted(dst, msg);
        self.webhooks.emit(ev.app, ev.webhook);
    }

    // ---- called by the HTTP API ----------------------------------------------------------

    /// Sends an event towards the channel's order point, waiting while the queue it goes to
    /// is full, and returns once the order point has ordered it.
    pub async fn publish(
        &self,
        app: AppIdx,
        channel: Arc<str>,
        event: Event,
        exclude: Option<SocketId>,
    ) -> Result<(), AskError> {
        let sent = self.publish_send(app, channel, event, exclude).await;
        self.publish_wait(sent).await
    }

    /// [`Shard::publish`]'s first half: the event is on its way (in order behind what this
    /// shard sent before); [`Shard::publish_wait`] waits for it to be ordered. Several
    /// publishes sent first and waited for afterwards keep their order and wait for their
    /// order points together (in a cluster, one round trip instead of one per event).
    pub async fn publish_send(
        &self,
        app: AppIdx,
        channel: Arc<str>,
        event: Event,
        exclude: Option<SocketId>,
    ) -> Sent {
        let t0 = Instant::now();
        let dst = self.publish_target(app, &channel);
        self.mesh.wait_for_room(dst).await;
        stats::add(&self.stats.published, 1);
        self.count_published(app, 1, false);
        let (id, reply) = self.expect_reply();
        let ack = Some((self.id, id));
        let msg = self.publish_msg(dst, app, channel, event, exclude, t0, ack);
        self.mesh.send_admitted(dst, msg);
        Sent { id, reply }
    }

    /// Waits until the event of [`Shard::publish_send`] is ordered.
    pub async fn publish_wait(&self, sent: Sent) -> Result<(), AskError> {
        match self.await_reply(sent.id, sent.reply).await? {
            super::msg::Reply::Published => Ok(()),
            _ => Err(AskError::Misrouted),
        }
    }

    /// Bytes the chunks of one event may take together (names and data), if bounded: on one
    /// node the mesh carries them by reference; in a cluster they cross one link frame.
    pub fn max_chunks_bytes(&self) -> Option<usize> {
        self.clustered.then_some(super::gateway::MAX_CHUNKS_BYTES)
    }

    /// Sends the chunks of one large event (docs/protocol.md, "Large events in chunks")
    /// towards the channel's order point as one message, so they are ordered one after
    /// another, and returns once the order point has ordered the last. Each chunk counts as
    /// a published event (each is one on the wire).
    pub async fn publish_chunks(
        &self,
        app: AppIdx,
        channel: Arc<str>,
        chunks: Vec<Event>,
        exclude: Option<SocketId>,
    ) -> Result<(), AskError> {
        let t0 = Instant::now();
        let dst = self.publish_target(app, &channel);
        self.mesh.wait_for_room(dst).await;
        let n = chunks.len() as u64;
        stats::add(&self.stats.published, n);
        self.count_published(app, n, false);
        let (id, reply) = self.expect_reply();
        let ack = Some((self.id, id));
        let msg = if self.clustered {
            let (gateway, msg) = ToGateway::addressed(GatewayMsg::PublishChunks {
                app,
                channel,
                chunks,
                exclude,
                t0,
                ack,
            });
            debug_assert_eq!(gateway, dst);
            msg
        } else {
            ShardMsg::PublishChunks {
                app,
                channel,
                chunks,
                exclude,
                t0,
                ack,
            }
        };
        self.mesh.send_admitted(dst, msg);
        match self.await_reply(id, reply).await? {
            super::msg::Reply::Published => Ok(()),
            _ => Err(AskError::Misrouted),
        }
    }

    /// The order point has ordered (and, in a cluster, passed on in order) the event a
    /// publish waits for: answer it, so the HTTP publish returns 200 only now.
    pub(super) fn ack_published(&self, ack: Option<(ShardId, u64)>) {
        if let Some((from, id)) = ack {
            let reply = super::msg::Reply::Published;
            self.mesh.send(from, ShardMsg::Reply { id, reply });
        }
    }

    /// Counts `n` events entering this node in its app's figures (`client`: client events).
    fn count_published(&self, app: AppIdx, n: u64, client: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        let apps = self.apps();
        let counters = &apps.get(app).counters;
        counters.published.fetch_add(n, Relaxed);
        if client {
            counters.client_events.fetch_add(n, Relaxed);
        }
    }
}
