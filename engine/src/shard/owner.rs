//! What a shard does as the owner of its channels: count subscriptions, keep presence
//! members, order and fan out events, keep cache-channel events, send subscription counts,
//! and emit the channel webhooks. Because only the owner does this, every webhook fires once.

use super::msg::{GatewayMsg, Join, Query, Reply, ShardMsg, SubReq};
use super::Shard;
use crate::app::AppIdx;
use crate::channel::event::Event;
use crate::channel::name::ChannelKind;
use crate::frame::Frame;
use crate::placement::ShardId;
use crate::protocol::server as frames;
use crate::socket_id::SocketId;
use crate::webhook::WebhookEvent;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Above this many subscribers, `subscription_count` events are sent at most every
/// [`COUNT_THROTTLE`] (Pusher's rule).
const COUNT_THROTTLE_ABOVE: u32 = 100;
const COUNT_THROTTLE: Duration = Duration::from_secs(5);

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
        join: Option<Join>,
    ) {
        let a = self.apps().get(app).clone();
        let kind = ChannelKind::of(&channel);
        let user_id = join.as_ref().map(|j| j.user_id.clone());
        if let Some(j) = &join {
            if !self
                .owned
                .borrow()
                .has_room_for(app, &channel, &j.user_id, a.max_presence_members)
            {
                let why = format!(
                    "presence channel is full ({} members)",
                    a.max_presence_members
                );
                return self.refuse_limit(from, app, channel, req, user_id, &why);
            }
        }
        // The channel is counted before it exists, in one step across every owner shard.
        let opens = self.owned.borrow().get(app, &channel).is_none();
        if opens && !a.open_channel() {
            let max = a.max_channels.unwrap_or_default();
            let why = format!("the app has {max} channels already");
            return self.refuse_limit(from, app, channel, req, user_id, &why);
        }
        let change = self.owned.borrow_mut().subscribe(
            app,
            &channel,
            from,
            join.as_ref().map(|j| (&j.user_id, j.user_info.as_deref())),
        );
        debug_assert_eq!(
            change.occupancy, opens,
            "a channel opens with its first subscriber"
        );
        if self.clustered {
            // Answered once the owning node has this node's interest (`held`); a presence
            // subscription through the gateway, which knows the cluster-wide members, and
            // where the owning node fires `channel_occupied` once (Action::Occupancy).
            let sub = super::held::Held {
                from,
                req,
                socket_id,
                join,
            };
            self.hold_or_answer(app, &channel, change.occupancy, sub);
            self.count_changed(app, &channel, Instant::now());
            return;
        }
        if change.occupancy {
            self.webhooks.emit(
                app,
                WebhookEvent::ChannelOccupied {
                    channel: channel.to_string(),
                },
            );
        }
        let mut out = Vec::with_capacity(2);
        match &join {
            Some(j) => {
                if change.member {
                    let added = frames::member_added(&channel, &j.user_id, j.user_info.as_deref());
                    self.fan_out(
                        app,
                        &channel,
                        &added,
                        Some(socket_id),
                        kind.privileged,
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
                let owned = self.owned.borrow();
                let o = owned.get(app, &channel).expect("just subscribed");
                if kind.privileged && !j.privileged {
                    // Unprivileged members of a privileged channel see only themselves.
                    let me = o.members.get(&j.user_id).and_then(|m| m.info.as_deref());
                    out.push(frames::presence_succeeded(
                        &channel,
                        std::iter::once((&*j.user_id, me)),
                    ));
                } else {
                    out.push(frames::presence_succeeded(
                        &channel,
                        o.members.iter().map(|(id, m)| (&**id, m.info.as_deref())),
                    ));
                }
            }
            None => out.push(frames::subscription_succeeded(&channel)),
        }
        if kind.cache {
            let (frame, miss) = self.cache_replay(app, &channel);
            out.push(frame);
            if miss {
                self.emit_cache_miss(app, &channel);
            }
        }
        self.mesh.send(
            from,
            ShardMsg::SubscribeAck {
                app,
                channel: channel.clone(),
                req,
                ok: true,
                frames: out,
                user_id,
            },
        );
        self.count_changed(app, &channel, Instant::now());
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
        let kind = ChannelKind::of(&channel);
        let change = self
            .owned
            .borrow_mut()
            .unsubscribe(app, &channel, from, user_id.as_deref());
        if change.occupancy && self.clustered {
            self.release_held(app, &channel);
            self.to_gateway(GatewayMsg::Interest {
                app,
                channel: channel.clone(),
                on: false,
                ticket: 0,
            });
        }
        if change.member && self.clustered {
            // Cluster-wide presence decides member_removed (the user may be on another node).
            let user = user_id.clone().expect("member change implies a user");
            self.to_gateway(GatewayMsg::Leave {
                app,
                channel: channel.clone(),
                user,
            });
        } else if change.member {
            let user_id = user_id.expect("member change implies a user");
            let removed = frames::member_removed(&channel, &user_id);
            self.fan_out(
                app,
                &channel,
                &removed,
                None,
                kind.privileged,
                Instant::now(),
            );
            self.webhooks.emit(
                app,
                WebhookEvent::MemberRemoved {
                    channel: channel.to_string(),
                    user_id: user_id.to_string(),
                },
            );
        }
        if change.occupancy {
            self.apps().get(app).close_channel();
            if !self.clustered {
                // In a cluster the owning node fires this once (Action::Occupancy).
                self.webhooks.emit(
                    app,
                    WebhookEvent::ChannelVacated {
                        channel: channel.to_string(),
                    },
                );
            }
        }
        self.count_changed(app, &channel, Instant::now());
    }

    /// A single node's order point: the event is encoded here, once, and takes the one
    /// path of an ordered event ([`Shard::order`]).
    pub(super) fn order_event(
        &self,
        app: AppIdx,
        channel: Arc<str>,
        event: Event,
        exclude: Option<SocketId>,
        t0: Instant,
    ) {
        let frame = event.encode(&channel);
        let retain = event.retained_by(&channel);
        self.order(app, channel, frame, exclude, false, retain, t0);
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
    /// throttled. Only for apps that enabled it, and never on presence channels. In a
    /// cluster, "tell" means report this node's count to the channel's owning node, which
    /// tells every subscriber the cluster-wide sum (`send_count`).
    fn count_changed(&self, app: AppIdx, channel: &Arc<str>, now: Instant) {
        if !self.apps().get(app).enable_subscription_count || ChannelKind::of(channel).is_presence()
        {
            return;
        }
        let throttled = {
            let owned = self.owned.borrow();
            let Some(o) = owned.get(app, channel) else {
                if self.clustered {
                    // The last subscriber here left: the other nodes may still have some.
                    self.count_dirty
                        .borrow_mut()
                        .remove(&(app, channel.clone()));
                    self.report_count(app, channel, 0);
                }
                return;
            };
            o.total > COUNT_THROTTLE_ABOVE
                && o.count_sent_at
                    .is_some_and(|t| now.saturating_duration_since(t) < COUNT_THROTTLE)
        };
        if throttled {
            self.count_dirty.borrow_mut().insert((app, channel.clone()));
        } else {
            self.send_count(app, channel, now);
        }
    }

    fn send_count(&self, app: AppIdx, channel: &Arc<str>, now: Instant) {
        let total = {
            let mut owned = self.owned.borrow_mut();
            let Some(o) = owned.get_mut(app, channel) else {
                return;
            };
            o.count_sent_at = Some(now);
            o.total
        };
        if self.clustered {
            return self.report_count(app, channel, total);
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

    /// Cluster mode: this node's count goes to the gateway, for the channel's owning node.
    fn report_count(&self, app: AppIdx, channel: &Arc<str>, count: u32) {
        self.to_gateway(GatewayMsg::Count {
            app,
            channel: channel.clone(),
            count,
        });
    }

    /// Sends the throttled counts whose time has come.
    pub(super) fn flush_counts(&self, now: Instant) {
        let due: Vec<(AppIdx, Arc<str>)> = {
            let owned = self.owned.borrow();
            let mut dirty = self.count_dirty.borrow_mut();
            let due: Vec<_> = dirty
                .iter()
                .filter(|(a, c)| {
                    owned.get(*a, c).is_none_or(|o| {
                        o.count_sent_at
                            .is_none_or(|t| now.saturating_duration_since(t) >= COUNT_THROTTLE)
                    })
                })
                .cloned()
                .collect();
            for d in &due {
                dirty.remove(d);
            }
            due
        };
        for (app, channel) in due {
            self.send_count(app, &channel, now);
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
                if let Some(gw) = self.gateway.borrow().as_ref() {
                    snap.cluster_queries = gw.query_figures();
                    snap.cluster = gw.figures();
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
            q @ Query::Members { .. } => {
                tracing::error!(shard = self.id, query = ?q, "query sent to a shard that cannot answer it");
                Reply::Misrouted
            }
        }
    }
}
