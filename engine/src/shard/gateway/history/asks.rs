//! Recovery and the history API in a cluster: a subscription's recovery frames and an API
//! request are asked of the channel's owning node (or answered here when this node owns
//! it); the owner's answer to a recovery joins the channel's queue behind the events still
//! waiting for their copy, and travels on the link the channel's deliveries take.

use super::{Asked, Waiting};
use crate::app::AppIdx;
use crate::channel::event::Event;
use crate::channel::history::{Kind, Position};
use crate::channel::stream::Change;
use crate::frame::Frame;
use crate::placement::ShardId;
use crate::protocol::server as frames;
use crate::shard::gateway::{Gateway, Subscriber};
use crate::shard::history::{self as shard_history, HistoryOp};
use crate::shard::msg::{Join, Reply, ShardMsg};
use crate::shard::Shard;
use raptor_cluster::node::Order;
use raptor_cluster::wire::{
    HistoryAsk, HistoryMsg, HistoryReply, WireChange, WireEvent, WirePosition,
};
use raptor_cluster::NodeId;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

/// Where a recovery answer goes.
pub(in crate::shard::gateway) enum Target {
    /// A non-presence subscription held by owner shard `shard` under `ticket`.
    Shard {
        shard: ShardId,
        ticket: u64,
        app: AppIdx,
        channel: Arc<str>,
    },
    /// A presence subscription: answered, once the frames are there, with the member list
    /// as it is then, its cache replay and the frames, relayed through the local owner
    /// shard.
    Join {
        app: AppIdx,
        channel: Arc<str>,
        sub: Subscriber,
        join: Join,
        cache: Option<Frame>,
        /// It asked to recover (sent a position).
        recovering: bool,
    },
    /// Another node asked (`Ask { Recover }`): `Reply { id, Frames }`.
    Peer { node: NodeId, id: u64 },
}

/// A recovery waiting for a handoff's fence: (app, channel, from, target, since).
pub(in crate::shard::gateway) type FencedAsk =
    (AppIdx, Arc<str>, Option<Position>, Target, Instant);

impl Gateway {
    /// Recoveries that waited for a fence: answered once it opened (or after the fence's own
    /// bound, from whatever is here then).
    pub(in crate::shard::gateway) fn retry_fenced_asks(self: &Rc<Self>, shard: &Shard) {
        if self.history.fenced_asks.borrow().is_empty() {
            return;
        }
        for (app, channel, from, target, since) in self.history.fenced_asks.take() {
            let app_id = shard.apps().get(app).id.clone();
            let fenced = self.core.borrow().is_fenced(&app_id, &channel);
            if fenced && since.elapsed() < std::time::Duration::from_secs(4) {
                let wait = (app, channel, from, target, since);
                self.history.fenced_asks.borrow_mut().push(wait);
            } else {
                self.recover_now(shard, app, &channel, from.as_ref(), target);
            }
        }
    }

    /// The recovery frames of a subscription to `channel` on this node or another.
    pub(in crate::shard::gateway) fn recover(
        self: &Rc<Self>,
        shard: &Shard,
        app: AppIdx,
        channel: Arc<str>,
        from: Option<Position>,
        target: Target,
    ) {
        let app_id = shard.apps().get(app).id.clone();
        let owner = self.core.borrow().owner_of(&app_id, &channel);
        if owner == self.core.borrow().me().id {
            return self.recover_here(shard, app, &channel, from.as_ref(), target);
        }
        let id = self.history.next_ask.get() + 1;
        self.history.next_ask.set(id);
        self.history
            .asks
            .borrow_mut()
            .insert(id, (Asked::Recover(target), Instant::now()));
        let ask = HistoryAsk::Recover {
            from: from.map(|p| WirePosition {
                offset: p.offset,
                epoch: p.epoch.to_string(),
            }),
        };
        let msg = HistoryMsg::Ask {
            id,
            app: app_id,
            channel: channel.to_string(),
            ask,
        };
        self.send_history(owner, msg);
    }

    /// This node owns the channel: its recovery frames now, sent behind every event
    /// ordered before (still waiting for its copy, or not).
    fn recover_here(
        self: &Rc<Self>,
        shard: &Shard,
        app: AppIdx,
        channel: &Arc<str>,
        from: Option<&Position>,
        target: Target,
    ) {
        let apps = shard.apps();
        let a = apps.get(app).clone();
        drop(apps);
        if self.core.borrow().is_fenced(&a.id, channel) {
            // Taken over right now: the old owner's history comes ahead of its release.
            let wait = (app, channel.clone(), from.cloned(), target, Instant::now());
            return self.history.fenced_asks.borrow_mut().push(wait);
        }
        self.recover_now(shard, app, channel, from, target)
    }

    fn recover_now(
        self: &Rc<Self>,
        shard: &Shard,
        app: AppIdx,
        channel: &Arc<str>,
        from: Option<&Position>,
        target: Target,
    ) {
        let a = shard.apps().get(app).clone();
        let frames = match a.history.rule_for(channel) {
            Some(rule) => shard_history::recovery(
                &self.history.store,
                &shard.stats,
                rule,
                shard_history::replay_caps(&shard.limits()),
                app,
                channel,
                from,
            ),
            None => Vec::new(),
        };
        let key = (a.id.clone(), channel.to_string());
        let mut queues = self.history.queues.borrow_mut();
        match queues.get_mut(&key) {
            Some(q) if !q.is_empty() => q.push_back(Waiting::Answer(target, frames)),
            _ => {
                drop(queues);
                self.send_recovery(shard, target, frames);
            }
        }
    }

    pub(super) fn send_recovery(
        self: &Rc<Self>,
        shard: &Shard,
        target: Target,
        frames: Vec<Frame>,
    ) {
        match target {
            Target::Shard {
                shard: to,
                ticket,
                app,
                channel,
            } => shard.mesh.send(
                to,
                ShardMsg::Recovered {
                    app,
                    channel,
                    ticket,
                    frames,
                },
            ),
            Target::Join {
                app,
                channel,
                sub,
                join,
                cache,
                recovering,
            } => {
                let mut answer = vec![self.member_list(shard, app, &channel, &join)];
                answer.extend(cache);
                if frames.is_empty() {
                    // The owning node did not answer: say so rather than nothing.
                    answer.push(frames::recovery(
                        &channel,
                        &frames::RecoveryResult {
                            was_recovering: recovering,
                            recovered: false,
                            epoch: "",
                            offset: 0,
                            replayed: 0,
                        },
                    ));
                }
                answer.extend(frames);
                self.finish_join(shard, app, channel, sub, answer, join.user_id.clone());
            }
            Target::Peer { node, id } => {
                let reply =
                    HistoryReply::Frames(frames.iter().map(|f| f.payload().to_vec()).collect());
                self.send_history(node, HistoryMsg::Reply { id, reply });
            }
        }
    }

    /// The link to the owner of these channels went down: deliveries may have been lost
    /// on it, so the local subscribers of those that keep history are closed with 4200
    /// (pusher-js reconnects at once) and recover what they missed.
    pub(in crate::shard::gateway) fn close_gapped(
        &self,
        shard: &Shard,
        channels: Vec<(String, String)>,
    ) {
        let apps = shard.apps();
        for (app, channel) in channels {
            let Some(a) = apps.by_id(&app) else { continue };
            if a.history.rule_for(&channel).is_none() {
                continue;
            }
            let channel: Arc<str> = Arc::from(channel);
            for s in 0..shard.nr_shards {
                shard.mesh.send(
                    s,
                    ShardMsg::CloseSubscribers {
                        app: a.idx,
                        channel: channel.clone(),
                    },
                );
            }
        }
    }

    /// A history API request from a shard of this node.
    pub(in crate::shard::gateway) fn api(
        self: &Rc<Self>,
        shard: &Shard,
        from: ShardId,
        id: u64,
        app: AppIdx,
        channel: Arc<str>,
        op: HistoryOp,
    ) {
        let app_id = shard.apps().get(app).id.clone();
        let owner = self.core.borrow().owner_of(&app_id, &channel);
        if owner == self.core.borrow().me().id {
            let reply = Reply::History(self.api_here(shard, app, &channel, op));
            return shard.mesh.send(from, ShardMsg::Reply { id, reply });
        }
        let ask_id = self.history.next_ask.get() + 1;
        self.history.next_ask.set(ask_id);
        self.history
            .asks
            .borrow_mut()
            .insert(ask_id, (Asked::Api { from, id }, Instant::now()));
        let ask = match op {
            HistoryOp::Read {
                since,
                epoch,
                limit,
                newest_first,
            } => HistoryAsk::Read {
                since,
                epoch,
                limit: limit.map(|l| l as u64),
                newest_first,
            },
            HistoryOp::Remove => HistoryAsk::Remove,
            HistoryOp::Edit { offset, data } => HistoryAsk::Edit {
                offset,
                data: data.to_string(),
            },
            HistoryOp::Delete { offset } => HistoryAsk::Delete { offset },
        };
        let msg = HistoryMsg::Ask {
            id: ask_id,
            app: app_id,
            channel: channel.to_string(),
            ask,
        };
        self.send_history(owner, msg);
    }

    /// Runs a history API request on this node's store (it owns the channel).
    fn api_here(
        self: &Rc<Self>,
        shard: &Shard,
        app: AppIdx,
        channel: &Arc<str>,
        op: HistoryOp,
    ) -> (u16, Vec<u8>) {
        let a = shard.apps().get(app).clone();
        let Some(rule) = a.history.rule_for(channel).cloned() else {
            return shard_history::http_answer(Err(shard_history::HistoryError::NoHistory));
        };
        let order = |event: Event, kind: Kind, change: Change| {
            let order = Order {
                app: a.id.clone(),
                channel: channel.to_string(),
                event: WireEvent {
                    name: event.name.to_string(),
                    data: event.data.to_string(),
                    user_id: None,
                },
                exclude: None,
                retain: false,
                confirm: None,
            };
            self.order_with_history(shard, order, kind, Some(change), Instant::now());
        };
        let remove = matches!(op, HistoryOp::Remove);
        let r = shard_history::run_op(&self.history.store, &rule, app, channel, op, order);
        if let (true, Ok(answer)) = (remove, &r) {
            // Nothing to order, but the successor's copy drops its events too.
            let successor = self.core.borrow().successor_of(&a.id, channel);
            if let Some(to) = successor {
                let msg = HistoryMsg::Replicate {
                    ack: 0,
                    app: a.id.clone(),
                    channel: channel.to_string(),
                    epoch: answer.epoch.clone(),
                    entry: None,
                    change: Some(WireChange::Remove),
                };
                self.send_history(to, msg);
            }
        }
        shard_history::http_answer(r)
    }

    pub(super) fn on_ask(
        self: &Rc<Self>,
        shard: &Shard,
        from: NodeId,
        id: u64,
        app: String,
        channel: String,
        ask: HistoryAsk,
    ) {
        let Some(a) = shard.apps().by_id(&app).cloned() else {
            let reply = HistoryReply::Http {
                status: 404,
                body: br#"{"error":"unknown app"}"#.to_vec(),
            };
            return self.send_history(from, HistoryMsg::Reply { id, reply });
        };
        if crate::channel::name::validate(&channel, shard.limits().max_channel_name_bytes).is_err()
        {
            return;
        }
        let channel: Arc<str> = Arc::from(channel);
        let op = match ask {
            HistoryAsk::Recover { from: position } => {
                let position = position.map(|p| Position {
                    offset: p.offset,
                    epoch: Arc::from(p.epoch),
                });
                let target = Target::Peer { node: from, id };
                return self.recover_here(shard, a.idx, &channel, position.as_ref(), target);
            }
            HistoryAsk::Read {
                since,
                epoch,
                limit,
                newest_first,
            } => HistoryOp::Read {
                since,
                epoch,
                limit: limit.map(|l| l.min(usize::MAX as u64) as usize),
                newest_first,
            },
            HistoryAsk::Remove => HistoryOp::Remove,
            HistoryAsk::Edit { offset, data } => HistoryOp::Edit {
                offset,
                data: Arc::from(data),
            },
            HistoryAsk::Delete { offset } => HistoryOp::Delete { offset },
        };
        let (mut status, mut body) = self.api_here(shard, a.idx, &channel, op);
        if body.len() > shard_history::MAX_REPLAY_BYTES {
            // One node message carries the answer: ask for fewer events.
            (status, body) = (
                413,
                br#"{"error":"history read too large to cross nodes; use a smaller limit"}"#
                    .to_vec(),
            );
        }
        let reply = HistoryReply::Http { status, body };
        self.send_history(from, HistoryMsg::Reply { id, reply });
    }
}
