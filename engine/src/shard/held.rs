//! Cluster mode: a channel's first subscription on this node is answered only once the
//! channel's owning node has taken this node's interest (`InterestAck`), so a client told
//! `subscription_succeeded` misses no event published after it, whichever node the event
//! entered on. Until then the local owner shard holds that subscription and every other
//! one to the channel that arrives meanwhile (usually for one round trip between nodes;
//! at most ~1 s when the owner does not answer, see `raptor_cluster::node`).
//!
//! Held subscriptions are counted by the owner but not yet answered, so their shards have
//! not added them to their local tables: an event delivered meanwhile reaches none of them,
//! and their `Unsubscribe` cannot arrive before the answer (the subscriber's shard undoes a
//! subscription only once it is acknowledged).

use super::msg::{GatewayMsg, Join, ShardMsg, SubReq};
use super::Shard;
use crate::app::AppIdx;
use crate::channel::name::ChannelKind;
use crate::placement::ShardId;
use crate::protocol::server as frames;
use crate::socket_id::SocketId;
use std::sync::Arc;

/// One subscription waiting for the answer.
pub(super) struct Held {
    pub from: ShardId,
    pub req: SubReq,
    pub socket_id: SocketId,
    pub join: Option<Join>,
}

/// The held subscriptions of one channel, released by the `ClusterInterestReady` with
/// `ticket`. Bounded by the channel's subscriptions on this node.
#[derive(Default)]
pub(super) struct Awaiting {
    ticket: u64,
    held: Vec<Held>,
}

impl Shard {
    /// Cluster mode, after the owner counted a subscription: announce the channel's first
    /// one to the gateway, then hold the subscription while that announcement is
    /// unanswered, or answer it now.
    pub(super) fn hold_or_answer(&self, app: AppIdx, channel: &Arc<str>, first: bool, sub: Held) {
        let key = (app, channel.clone());
        if first {
            let ticket = self.next_ticket.get() + 1;
            self.next_ticket.set(ticket);
            // An entry left by an earlier announcement keeps its subscriptions.
            self.awaiting
                .borrow_mut()
                .entry(key.clone())
                .or_default()
                .ticket = ticket;
            self.to_gateway(GatewayMsg::Interest {
                app,
                channel: channel.clone(),
                on: true,
                ticket,
            });
        }
        let sub = match self.awaiting.borrow_mut().get_mut(&key) {
            Some(w) => {
                w.held.push(sub);
                return;
            }
            None => sub,
        };
        self.answer_clustered(app, channel, sub);
    }

    /// The gateway says the interest announced under `ticket` is in place: answer the
    /// subscriptions held for it. A ready for an older ticket is ignored.
    pub(super) fn interest_ready(&self, app: AppIdx, channel: Arc<str>, ticket: u64) {
        let key = (app, channel);
        let held = {
            let mut awaiting = self.awaiting.borrow_mut();
            if awaiting.get(&key).is_none_or(|w| w.ticket != ticket) {
                return;
            }
            awaiting.remove(&key).map(|w| w.held).unwrap_or_default()
        };
        for sub in held {
            self.answer_clustered(app, &key.1, sub);
        }
    }

    /// The channel's last subscription on this node is gone: no ready will come for it
    /// (the gateway forgets the wait), so anything still held is answered now. (Held
    /// subscriptions cannot be the ones that left; this only keeps a hold from outliving
    /// its channel.)
    pub(super) fn release_held(&self, app: AppIdx, channel: &Arc<str>) {
        let held = self.awaiting.borrow_mut().remove(&(app, channel.clone()));
        for sub in held.map(|w| w.held).unwrap_or_default() {
            self.answer_clustered(app, channel, sub);
        }
    }

    /// Answers one counted subscription in cluster mode: a presence one through the
    /// gateway (which knows the cluster-wide members and the member limit), any other with
    /// `subscription_succeeded`. A cache channel's replay is looked up now, so an event that
    /// arrived while the subscription was held is the one replayed.
    fn answer_clustered(&self, app: AppIdx, channel: &Arc<str>, sub: Held) {
        let kind = ChannelKind::of(channel);
        let (cache, cache_miss) = match kind.cache.then(|| self.cache_replay(app, channel)) {
            Some((frame, miss)) => (Some(frame), miss),
            None => (None, false),
        };
        let Some(join) = sub.join else {
            let mut frames = vec![frames::subscription_succeeded(channel)];
            frames.extend(cache);
            if cache_miss {
                self.emit_cache_miss(app, channel);
            }
            let msg = ShardMsg::SubscribeAck {
                app,
                channel: channel.clone(),
                req: sub.req,
                ok: true,
                frames,
                user_id: None,
            };
            return self.mesh.send(sub.from, msg);
        };
        self.to_gateway(GatewayMsg::Join {
            app,
            channel: channel.clone(),
            join,
            from: sub.from,
            req: sub.req,
            socket_id: sub.socket_id,
            cache,
            cache_miss,
        });
    }
}
