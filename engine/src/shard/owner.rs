//! What a shard does as the owner of its channels: count subscriptions, keep presence
//! members, order and fan out events, keep cache-channel events, send subscription counts,
//! and emit the channel webhooks. Because only the owner does this, every webhook fires once.
//!
//! The decisions (limits, what a subscription change means in each mode, the count
//! throttle) are [`rules`], which do no I/O and are unit-tested; this file is the shell
//! that builds the frames, sends them and emits the webhooks.

mod rules;

use super::msg::{GatewayMsg, Join, Query, Reply, ShardMsg, SubReq};
use super::{patterns, Shard};
use crate::app::AppIdx;
use crate::channel::event::Event;
use crate::channel::history::{Kind, Position};
use crate::channel::name::ChannelKind;
use crate::frame::Frame;
use crate::placement::ShardId;
use crate::protocol::server as frames;
use crate::socket_id::SocketId;
use crate::webhook::WebhookEvent;
use rules::{Counts, OnSubscribe, OnUnsubscribe};
use std::sync::Arc;
use std::time::Instant;

impl Shard {
    /// Sends `frame` to every shard with subscribers of `channel` (itself included).
    pub(super) fn fan_out(
        &self,
        app: AppIdx,
        channel: &str,
        frame: &Frame,
        exclude: Option<SocketId>,
        privileged_only: bool,
        t0: Instant,
    ) {
        let owned = self.owned.borrow();
        let Some(o) = owned.get(app, channel) else {
            return;
        };
        for (shard, &n) in o.per_shard.iter().enumerate() {
            if n > 0 {
                self.mesh.send(
                    shard,
                    ShardMsg::Deliver {
                        app,
                        channel: o.name.clone(),
                        frame: frame.clone(),
                        exclude,
                        privileged_only,
                        t0,
                    },
                );
            }
        }
    }

    pub(super) fn owner_subscribe(
        &self,
        app: AppIdx,
        channel: Arc<str>,
        from: ShardId,
        req: SubReq,
        socket_id: SocketId,
        mut join: Option<Join>,
        mut recover: Option<Position>,
    ) {
        let a = self.apps().get(app).clone();
        let admitted = rules::admit(
            &mut self.owned.borrow_mut(),
            app,
            &a,
            &channel,
            from,
            join.as_ref().map(|j| (&j.user_id, j.user_info.as_deref())),
        );
        let change = match admitted {
            Ok(change) => change,
            Err(refusal) => {
                let user_id = join.map(|j| j.user_id);
                return self.refuse_limit(from, app, channel, req, user_id, &refusal.why());
            }
        };
        for action in rules::on_subscribe(&change, self.clustered) {
            match action {
                OnSubscribe::Hold { first } => {
                    let sub = super::held::Held {
                        from,
                        req,
                        socket_id,
                        join: join.take(),
                        recover: recover.take(),
                    };
                    self.hold_or_answer(app, &channel, first, sub);
                }
                // A pattern is not a channel to the app: no occupied/vacated webhooks.
                OnSubscribe::Occupied if patterns::is_pattern(&channel) => {}
                OnSubscribe::Occupied => self.webhooks.emit(
                    app,
                    WebhookEvent::ChannelOccupied {
                        channel: channel.to_string(),
                    },
                ),
                OnSubscribe::MemberAdded => {
                    let j = join.as_ref().expect("a member change implies a join");
                    let added = frames::member_added(&channel, &j.user_id, j.user_info.as_deref());
                    let privileged = ChannelKind::of(&channel).privileged;
                    self.fan_out(
                        app,
                        &channel,
                        &added,
                        Some(socket_id),
                        privileged,
                        Instant::now(),
                    );
                    self.webhooks.emit(
                        app,
                        WebhookEvent::MemberAdded {
                            channel: channel.to_string(),
                            user_id: j.user_id.to_string(),
                        },
                    );
                }
                OnSubscribe::Answer if !self.clustered && patterns::is_pattern(&channel) => {
                    let sub = super::held::Held {
                        from,
                        req,
                        socket_id,
                        join: join.take(),
                        recover: recover.take(),
                    };
                    if let Some(sub) = self.pattern_hold(app, &channel, sub) {
                        self.answer_subscribe(app, &channel, from, sub.req, None, None);
                    }
                }
                OnSubscribe::Answer => {
                    self.answer_subscribe(app, &channel, from, req, join.as_ref(), recover.as_ref())
                }
                OnSubscribe::CountChanged => self.count_changed(app, &channel, Instant::now()),
            }
        }
    }

    /// Single node: answers a counted subscription with `subscription_succeeded` (a
    /// presence one with the members it may see), a cache channel's replay, and a history
    /// channel's position and recovery (`Shard::recovery_frames`). Live events this shard
    /// orders later reach the subscriber's shard after this answer (one FIFO queue), so the
    /// replay and the live events meet with no gap and no duplicate.
    pub(super) fn answer_subscribe(
        &self,
        app: AppIdx,
        channel: &Arc<str>,
        from: ShardId,
        req: SubReq,
        join: Option<&Join>,
        recover: Option<&Position>,
    ) {
        let kind = ChannelKind::of(channel);
        let mut out = Vec::with_capacity(2);
        match join {
            Some(j) => {
                let owned = self.owned.borrow();
                let o = owned.get(app, channel).expect("just subscribed");
                if kind.privileged && !j.privileged {
                    // Unprivileged members of a privileged channel see only themselves.
                    let me = o.members.get(&j.user_id).and_then(|m| m.info.as_deref());
                    out.push(frames::presence_succeeded(
                        channel,
                        std::iter::once((&*j.user_id, me)),
                    ));
                } else {
                    out.push(frames::presence_succeeded(
                        channel,
                        o.members.iter().map(|(id, m)| (&**id, m.info.as_deref())),
                    ));
                }
            }
            None => out.push(frames::subscription_succeeded(channel)),
        }
        if kind.cache {
            let (frame, miss) = self.cache_replay(app, channel);
            out.push(frame);
            if miss {
                self.emit_cache_miss(app, channel);
            }
        }
        self.recovery_frames(app, channel, recover, &mut out);
        self.mesh.send(
            from,
            ShardMsg::SubscribeAck {
                app,
                channel: channel.clone(),
                req,
                ok: true,
                frames: out,
                user_id: join.map(|j| j.user_id.clone()),
            },
        );
    }

    /// What a new subscriber of a cache channel gets after `subscription_succeeded`: the
    /// cached event, or `pusher:cache_miss` (`true`: a miss, for the webhook).
    pub(super) fn cache_replay(&self, app: AppIdx, channel: &str) -> (Frame, bool) {
        match self.streams.borrow().last(app, channel, Instant::now()) {
            Some((c, _)) => (c.frame.clone(), false),
            None => (frames::cache_miss(channel), true),
        }
    }

    pub(super) fn emit_cache_miss(&self, app: AppIdx, channel: &str) {
        self.webhooks.emit(
            app,
            WebhookEvent::CacheMiss {
                channel: channel.to_string(),
            },
        );
    }

    /// Answers a subscription the owner will not count: `LimitReached`, status 403.
    pub(super) fn refuse_limit(
        &self,
        from: ShardId,
        app: AppIdx,
        channel: Arc<str>,
        req: SubReq,
        user_id: Option<Arc<str>>,
        why: &str,
    ) {
        let refusal = frames::subscription_error(&channel, "LimitReached", why, 403);
        let frames = vec![refusal];
        self.mesh.send(
            from,
            ShardMsg::SubscribeAck {
                app,
                channel,
                req,
                ok: false,
                frames,
                user_id,
            },
        );
    }

    pub(super) fn owner_unsubscribe(
        &self,
        app: AppIdx,
        channel: Arc<str>,
        from: ShardId,
        user_id: Option<Arc<str>>,
    ) {
        let change = self
            .owned
            .borrow_mut()
            .unsubscribe(app, &channel, from, user_id.as_deref());
        for action in rules::on_unsubscribe(&change, self.clustered) {
            match action {
                OnUnsubscribe::WithdrawInterest => {
                    self.release_held(app, &channel);
                    self.to_gateway(GatewayMsg::Interest {
                        app,
                        channel: channel.clone(),
                        on: false,
                        ticket: 0,
                    });
                }
                OnUnsubscribe::Leave => {
                    let user = user_id.clone().expect("a member change implies a user");
                    self.to_gateway(GatewayMsg::Leave {
                        app,
                        channel: channel.clone(),
                        user,
                    });
                }
                OnUnsubscribe::MemberRemoved => {
                    let user_id = user_id.as_ref().expect("a member change implies a user");
                    let removed = frames::member_removed(&channel, user_id);
                    let privileged = ChannelKind::of(&channel).privileged;
                    self.fan_out(app, &channel, &removed, None, privileged, Instant::now());
                    self.webhooks.emit(
                        app,
                        WebhookEvent::MemberRemoved {
                            channel: channel.to_string(),
                            user_id: user_id.to_string(),
                        },
                    );
                }
                OnUnsubscribe::CloseChannel => self.apps().get(app).close_channel(),
                OnUnsubscribe::Vacated if patterns::is_pattern(&channel) => {}
                OnUnsubscribe::Vacated => self.webhooks.emit(
                    app,
                    WebhookEvent::ChannelVacated {
                        channel: channel.to_string(),
                    },
                ),
                OnUnsubscribe::CountChanged => self.count_changed(app, &channel, Instant::now()),
            }
        }
        if !self.clustered && patterns::is_pattern(&channel) {
            self.pattern_vacated(app, &channel);
        }
    }

    /// A single node's order point: the event is encoded here, once (with the channel's
    /// next offset when it keeps history, `Shard::encode_ordered`), and takes the one path
    /// of an ordered event ([`Shard::order`]).
    pub(super) fn order_event(
        &self,
        app: AppIdx,
        channel: Arc<str>,
        event: Event,
        exclude: Option<SocketId>,
        t0: Instant,
    ) {
        let retain = event.retained_by(&channel);
        let frame = self.encode_ordered(app, &channel, event, Kind::Message);
        self.order(app, channel, frame, exclude, false, retain, t0);
    }

    /// A single node's order point for the chunks of one large event: each is ordered as
    /// an event of its own (its own history offset), all in this one handler, so no other
    /// event of the channel comes between them. A cache channel keeps none of them: its
    /// last event stays the last whole one (a replayed chunk could not be reassembled).
    pub(super) fn order_chunks(
        &self,
        app: AppIdx,
        channel: Arc<str>,
        chunks: Vec<Event>,
        exclude: Option<SocketId>,
        t0: Instant,
    ) {
        for chunk in chunks {
            let frame = self.encode_ordered(app, &channel, chunk, Kind::Message);
            self.order(app, channel.clone(), frame, exclude, false, None, t0);
        }
    }

    /// The one path of an ordered event at the owner shard, in both modes: a single node's
    /// `Publish` (this shard is the order point, [`Shard::order_event`]) and a cluster's
    /// `LocalFanout` (the owning node ordered and encoded it). The channel's stream keeps
    /// what it must (`retain`: a cache channel's data), the dashboard's rate counts it, and
    /// it fans out to every shard with subscribers. A new per-channel memory (history)
    /// belongs in the stream, not here.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn order(
        &self,
        app: AppIdx,
        channel: Arc<str>,
        frame: Frame,
        exclude: Option<SocketId>,
        privileged_only: bool,
        retain: Option<Arc<str>>,
        t0: Instant,
    ) {
        if let Some(data) = retain {
            self.streams
                .borrow_mut()
                .append(app, &channel, frame.clone(), data, Instant::now());
        }
        self.note_event(app, &channel);
        self.fan_out(app, &channel, &frame, exclude, privileged_only, t0);
    }

    /// Counts an event ordered for `channel` in its message rate (the dashboard's).
    pub(super) fn note_event(&self, app: AppIdx, channel: &str) {
        if let Some(o) = self.owned.borrow_mut().get_mut(app, channel) {
            o.rate.note(crate::channel::owned::rate_second());
        }
    }

    /// A channel's subscription count changed: tell its subscribers now, or later when
    /// throttled ([`Counts::changed`]).
    fn count_changed(&self, app: AppIdx, channel: &Arc<str>, now: Instant) {
        let enabled = self.apps().get(app).enable_subscription_count;
        let send = Counts::new(
            &mut self.owned.borrow_mut(),
            &mut self.count_dirty.borrow_mut(),
        )
        .changed(app, channel, enabled, self.clustered, now);
        if let Some(total) = send {
            self.send_count(app, channel, total, now);
        }
    }

    /// Sends a channel's subscription count: on a single node to its subscribers (and the
    /// webhook); in a cluster this node's count to the channel's owning node, which tells
    /// every subscriber the cluster-wide sum.
    fn send_count(&self, app: AppIdx, channel: &Arc<str>, total: u32, now: Instant) {
        if self.clustered {
            return self.to_gateway(GatewayMsg::Count {
                app,
                channel: channel.clone(),
                count: total,
            });
        }
        self.fan_out(
            app,
            channel,
            &frames::subscription_count(channel, total),
            None,
            false,
            now,
        );
        self.webhooks.emit(
            app,
            WebhookEvent::SubscriptionCount {
                channel: channel.to_string(),
                subscription_count: total,
            },
        );
    }

    /// Sends the throttled counts whose time has come ([`Counts::due`]).
    pub(super) fn flush_counts(&self, now: Instant) {
        let due = Counts::new(
            &mut self.owned.borrow_mut(),
            &mut self.count_dirty.borrow_mut(),
        )
        .due(now);
        for (app, channel, total) in due {
            self.send_count(app, &channel, total, now);
        }
    }

    pub(super) fn answer(&self, query: Query) -> Reply {
        match query {
            Query::Channel { app, channel } => {
                let owned = self.owned.borrow();
                let o = owned.get(app, &channel);
                Reply::Channel {
                    subscription_count: o.map_or(0, |o| o.total),
                    user_count: o.map_or(0, |o| o.members.len() as u32),
                    cache: self
                        .streams
                        .borrow()
                        .last(app, &channel, Instant::now())
                        .map(|(c, ttl)| (c.data.clone(), ttl.as_secs())),
                }
            }
            Query::List { app, prefix } => Reply::List(self.owned.borrow().list(app, &prefix)),
            Query::AppFigures => Reply::AppFigures(self.local_app_figures()),
            Query::TopChannels {
                app,
                by_rate,
                limit,
            } => Reply::Top(self.owned.borrow().top(
                app,
                by_rate,
                limit,
                crate::channel::owned::rate_second(),
            )),
            Query::Stats => {
                let mut snap = self.stats.snapshot(
                    self.conns.borrow().len() as u64,
                    self.owned.borrow().len() as u64,
                );
                snap.mesh_overflow_peak = self.mesh.overflow_peak() as u64;
                let h = self.streams.borrow().figures();
                (snap.history.channels, snap.history.bytes) = (h.channels as u64, h.bytes as u64);
                if let Some(gw) = self.gateway.borrow().as_ref() {
                    snap.cluster_queries = gw.query_figures();
                    snap.cluster = gw.figures();
                    let h = gw.history_figures();
                    snap.history.channels += h.channels as u64;
                    snap.history.bytes += h.bytes as u64;
                }
                Reply::Stats(Box::new(snap))
            }
            Query::Members { app, channel } if !self.clustered => Reply::Members(
                self.owned
                    .borrow()
                    .get(app, &channel)
                    .map(|o| o.members.keys().map(|k| k.to_string()).collect())
                    .unwrap_or_default(),
            ),
            Query::History { app, channel, op } => self.answer_history(app, channel, op),
            q @ Query::Members { .. } => {
                tracing::error!(shard = self.id, query = ?q, "query sent to a shard that cannot answer it");
                Reply::Misrouted
            }
        }
    }
}
