//! The gateway carries out what this node's `NodeCore` decided ([`Action`]s): frames to
//! peers, gossip keys, and shard messages: an event to order and encode (this node owns its
//! channel), deliveries and member events to the local owner shards, webhooks, terminations.

use super::Gateway;
use crate::app::AppIdx;
use crate::channel::name::{self, ChannelKind};
use crate::channel::pattern;
use crate::frame::Frame;
use crate::protocol::server as frames;
use crate::shard::msg::ShardMsg;
use crate::shard::Shard;
use crate::socket_id::SocketId;
use crate::webhook::WebhookEvent;
use raptor_cluster::node::Action;
use raptor_cluster::presence::Change;
use raptor_cluster::runtime::Command;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

impl Gateway {
    /// An event the owning node ordered, to this node's owner shard of the channel, which
    /// enters it in the channel's stream and writes it to this node's subscribers.
    #[allow(clippy::too_many_arguments)]
    fn deliver_local(
        self: &Rc<Self>,
        shard: &Shard,
        app: &str,
        channel: String,
        frame: Frame,
        exclude: raptor_cluster::wire::Exclude,
        privileged_only: bool,
        cache_data: Option<String>,
        t0: Instant,
    ) {
        let Some(a) = shard.apps().by_id(app).cloned() else {
            return;
        };
        // The local owner keeps a cache channel's event for replay. Only for a valid cache
        // channel: a peer's word does not put other names in the cache.
        let cacheable = ChannelKind::of(&channel).cache
            && name::validate(&channel, shard.limits().max_channel_name_bytes).is_ok();
        let retain = cache_data.filter(|_| cacheable).map(Arc::from);
        let exclude = exclude.map(|(hi, lo)| SocketId { hi, lo });
        let to_owner = LocalFanout {
            frame,
            exclude,
            privileged_only,
            retain,
        };
        to_owner.send(shard, a.idx, &channel, t0);
    }

    pub(super) fn apply(self: &Rc<Self>, shard: &Shard, actions: Vec<Action>) {
        self.apply_with(shard, actions, None, None);
    }

    /// `joiner`: excluded from a `member_added` among the actions. `t0`: when the event
    /// behind the actions entered this node (now, when not given).
    pub(super) fn apply_with(
        self: &Rc<Self>,
        shard: &Shard,
        actions: Vec<Action>,
        joiner: Option<SocketId>,
        t0: Option<Instant>,
    ) {
        let t0 = t0.unwrap_or_else(Instant::now);
        self.carry_out(shard, actions, joiner, t0, None);
    }

    /// Carries out the actions of an event this node ordered and encoded as `frame`.
    pub(super) fn carry_out_encoded(
        self: &Rc<Self>,
        shard: &Shard,
        actions: Vec<Action>,
        t0: Instant,
        frame: &Frame,
    ) {
        self.carry_out(shard, actions, None, t0, Some(frame));
    }

    /// Sends frames to peers (actions that touch no shard).
    pub(super) fn carry_out_plain(&self, actions: Vec<Action>) {
        for action in actions {
            if let Action::Send { to, msg } = action {
                match raptor_cluster::runtime::encode(&msg) {
                    Ok(frame) => {
                        self.commands.send_or_drop(Command::Send { to, frame });
                    }
                    Err(e) => tracing::error!(error = %e, "cannot encode a node message"),
                }
            }
        }
    }

    /// Sends `msg` to every linked peer (an action that touches no shard).
    pub(super) fn carry_out_plain_broadcast(&self, msg: raptor_cluster::wire::NodeMsg) {
        match raptor_cluster::runtime::encode(&msg) {
            Ok(frame) => {
                self.commands.send_or_drop(Command::Broadcast { frame });
            }
            Err(e) => tracing::error!(error = %e, "cannot encode a node message"),
        }
    }

    /// This node is the order point of `order`'s channel: ordered with its history (appended,
    /// copied to the successor, delivered once copied) or plainly (encoded here, once; the
    /// payload goes to the other nodes, the frame to this node's owner shard).
    fn order_plain_or_history(
        self: &Rc<Self>,
        shard: &Shard,
        order: raptor_cluster::node::Order,
        joiner: Option<SocketId>,
        t0: Instant,
    ) {
        if self.has_history(shard, &order) {
            let kind = crate::channel::history::Kind::Message;
            return self.order_with_history(shard, order, kind, None, t0);
        }
        let e = &order.event;
        let frame = frames::channel_event(&e.name, &order.channel, &e.data, e.user_id.as_deref());
        let payload = frame.payload().to_vec();
        let mut order = order;
        let confirm = order.confirm.take();
        let actions = self.core.borrow_mut().ordered(order, payload);
        self.carry_out(shard, actions, joiner, t0, Some(&frame));
        // Passed on in order (to the links and the local owner shard): answered now.
        self.confirm(shard, confirm);
    }

    /// The ordered event's channel keeps history (an `[[apps.history]]` rule matches).
    fn has_history(&self, shard: &Shard, order: &raptor_cluster::node::Order) -> bool {
        let apps = shard.apps();
        apps.by_id(&order.app)
            .is_some_and(|a| !a.history.is_empty() && a.history.rule_for(&order.channel).is_some())
    }

    /// Carries out `actions`; `encoded`: the frame of the event this node just ordered,
    /// which its local delivery reuses instead of framing the payload again.
    fn carry_out(
        self: &Rc<Self>,
        shard: &Shard,
        actions: Vec<Action>,
        joiner: Option<SocketId>,
        t0: Instant,
        encoded: Option<&Frame>,
    ) {
        let gw = self;
        for action in actions {
            match action {
                Action::Send { to, msg } => match raptor_cluster::runtime::encode(&msg) {
                    Ok(frame) => {
                        gw.commands.send_or_drop(Command::Send { to, frame });
                    }
                    Err(e) => tracing::error!(error = %e, "cannot encode a node message"),
                },
                Action::Broadcast(msg) if super::handoff::is_release(&msg) => {
                    gw.release_or_defer(shard, msg)
                }
                Action::Broadcast(msg) => match raptor_cluster::runtime::encode(&msg) {
                    Ok(frame) => {
                        gw.commands.send_or_drop(Command::Broadcast { frame });
                    }
                    Err(e) => tracing::error!(error = %e, "cannot encode a node message"),
                },
                Action::Gossip(keys) => {
                    gw.commands.send_or_drop(Command::SetKeys(keys));
                }
                Action::Order(order) => {
                    if !pattern::is_pattern(&order.channel) {
                        let exclude = order.exclude.map(|(hi, lo)| SocketId { hi, lo });
                        gw.to_patterns(
                            shard,
                            &order.app,
                            &order.channel,
                            &order.event,
                            exclude,
                            t0,
                        );
                    }
                    gw.order_plain_or_history(shard, order, joiner, t0);
                }
                Action::DeliverLocal {
                    app,
                    channel,
                    payload,
                    exclude,
                    privileged_only,
                    cache_data,
                } => self.deliver_local(
                    shard,
                    &app,
                    channel,
                    encoded.cloned().unwrap_or_else(|| Frame::text(&payload)),
                    exclude,
                    privileged_only,
                    cache_data,
                    t0,
                ),
                Action::Presence { event, webhook } => {
                    let Some(a) = shard.apps().by_id(&event.app).cloned() else {
                        continue;
                    };
                    let kind = ChannelKind::of(&event.channel);
                    let (frame, hook) = match &event.change {
                        Change::Added { user_info } => (
                            frames::member_added(
                                &event.channel,
                                &event.user_id,
                                user_info.as_deref(),
                            ),
                            WebhookEvent::MemberAdded {
                                channel: event.channel.clone(),
                                user_id: event.user_id.clone(),
                            },
                        ),
                        Change::Removed => (
                            frames::member_removed(&event.channel, &event.user_id),
                            WebhookEvent::MemberRemoved {
                                channel: event.channel.clone(),
                                user_id: event.user_id.clone(),
                            },
                        ),
                    };
                    let exclude = if matches!(event.change, Change::Added { .. }) {
                        joiner
                    } else {
                        None
                    };
                    let to_owner = LocalFanout {
                        frame,
                        exclude,
                        privileged_only: kind.privileged,
                        retain: None,
                    };
                    to_owner.send(shard, a.idx, &event.channel, t0);
                    if webhook {
                        shard.webhooks.emit(a.idx, hook);
                    }
                }
                Action::MemberUpdated {
                    app,
                    channel,
                    user_id,
                    user_info,
                    webhook,
                } => {
                    // A peer's word puts no other name or info on this node's sockets: only
                    // a valid presence channel and a JSON object of the app's bounded size.
                    let Some(a) = shard.apps().by_id(&app).cloned() else {
                        continue;
                    };
                    let kind = ChannelKind::of(&channel);
                    let plausible = kind.is_presence()
                        && name::validate(&channel, shard.limits().max_channel_name_bytes).is_ok()
                        && user_info.len() <= a.max_presence_user_info_bytes
                        && user_info.starts_with('{');
                    if !plausible {
                        continue;
                    }
                    let to_owner = LocalFanout {
                        frame: frames::member_updated(&channel, &user_id, &user_info),
                        exclude: None,
                        privileged_only: kind.privileged,
                        retain: None,
                    };
                    to_owner.send(shard, a.idx, &channel, t0);
                    if webhook {
                        let hook = WebhookEvent::MemberUpdated {
                            channel,
                            user_id,
                            user_info: crate::webhook::UserInfo(user_info),
                        };
                        shard.webhooks.emit(a.idx, hook);
                    }
                }
                Action::Occupancy {
                    app,
                    channel,
                    occupied,
                } => {
                    if let Some(a) = shard.apps().by_id(&app).cloned() {
                        let hook = if occupied {
                            WebhookEvent::ChannelOccupied { channel }
                        } else {
                            WebhookEvent::ChannelVacated { channel }
                        };
                        shard.webhooks.emit(a.idx, hook);
                    }
                }
                Action::Terminate { app, user } => {
                    if let Some(a) = shard.apps().by_id(&app).cloned() {
                        shard.terminate_local(a.idx, &user);
                    }
                }
                Action::ReleaseLater { node, after } => {
                    // One timer per leave (a handful at most).
                    let Some(home) = self.home.upgrade() else {
                        continue;
                    };
                    let gw = self.clone();
                    glommio::spawn_local(async move {
                        glommio::timer::sleep(after).await;
                        let actions = gw.core.borrow_mut().release(&node);
                        gw.apply(&home, actions);
                    })
                    .detach();
                }
                Action::PeerQuery {
                    from,
                    id,
                    app,
                    kind,
                } => self.answer_peer(shard, from, id, app, kind),
                Action::PeerAnswer { from, id, body } => {
                    self.on_peer_answer(shard, &from, id, body)
                }
                Action::SubscriptionCount {
                    app,
                    channel,
                    count,
                } => self.announce_count(shard, app, channel, count),
                Action::AwaitPublished { origin_seq } => self.await_published(origin_seq),
                Action::History { from, msg } => self.on_history(shard, from, msg),
                Action::Token { from, msg } => self.on_token(shard, from, msg),
                Action::Pattern {
                    from,
                    app,
                    pattern,
                    on,
                    ack,
                } => self.on_pattern(shard, &from, &app, &pattern, on, ack),
                Action::PatternAck { from, ack } => self.on_pattern_ack(shard, &from, ack),
                Action::InterestReady {
                    app,
                    channel,
                    ticket,
                } if pattern::is_pattern(&channel) => {
                    self.pattern_interest_ready(shard, &app, &channel, ticket)
                }
                Action::InterestReady {
                    app,
                    channel,
                    ticket,
                } => {
                    interest_ready(shard, &app, &channel, ticket);
                }
            }
        }
    }
}

/// The interest of this node in `channel` is in place: its owner shard answers the
/// subscriptions it held for `ticket`.
pub(super) fn interest_ready(shard: &Shard, app: &str, channel: &str, ticket: u64) {
    if let Some(a) = shard.apps().by_id(app).cloned() {
        let channel: Arc<str> = Arc::from(channel);
        let owner = shard.owner_of(a.idx, &channel);
        let msg = ShardMsg::ClusterInterestReady {
            app: a.idx,
            channel,
            ticket,
        };
        shard.mesh.send(owner, msg);
    }
}

/// An event for this node's owner shard of its channel (`ShardMsg::LocalFanout`): a
/// delivery the owning node ordered, or a member event of the cluster-wide view.
pub(super) struct LocalFanout {
    pub(super) frame: Frame,
    pub(super) exclude: Option<SocketId>,
    pub(super) privileged_only: bool,
    pub(super) retain: Option<Arc<str>>,
}

impl LocalFanout {
    pub(super) fn send(self, shard: &Shard, app: AppIdx, channel: &str, t0: Instant) {
        let channel: Arc<str> = Arc::from(channel);
        let owner = shard.owner_of(app, &channel);
        let msg = ShardMsg::LocalFanout {
            app,
            channel,
            frame: self.frame,
            exclude: self.exclude,
            privileged_only: self.privileged_only,
            retain: self.retain,
            t0,
        };
        shard.mesh.send(owner, msg);
    }
}
