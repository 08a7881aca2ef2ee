//! What the gateway does with each [`GatewayMsg`] from this node's shards: publish towards
//! the owning node, interest and counts, presence joins and leaves (with the cluster-wide
//! member limit), terminate, and the cluster-wide questions.

use super::{exclude_of, wire_event, Gateway, Subscriber};
use crate::app::AppIdx;
use crate::channel::name::ChannelKind;
use crate::frame::Frame;
use crate::protocol::server as frames;
use crate::shard::msg::{GatewayMsg, Join, Reply, ShardMsg};
use crate::shard::Shard;
use crate::webhook::WebhookEvent;
use std::rc::Rc;
use std::sync::Arc;

impl Gateway {
    /// Handles a cluster-mode message on the gateway shard.
    pub(super) fn handle(self: &Rc<Self>, shard: &Shard, msg: GatewayMsg) {
        match msg {
            GatewayMsg::Publish {
                app,
                channel,
                event,
                exclude,
                t0,
                ack,
            } => {
                let a = shard.apps().get(app).clone();
                let retain = event.retained_by(&channel).is_some();
                // An HTTP publish is answered once its event is ordered, wherever that
                // happens (and, with history, copied to the successor: gateway/history.rs):
                // a 200 never stands for an event that reached no order point, and a
                // publisher that waits for it keeps its order across nodes.
                let confirm = ack.is_some();
                let actions = self.core.borrow_mut().publish(
                    &a.id,
                    &channel,
                    wire_event(event),
                    exclude_of(exclude),
                    retain,
                    confirm,
                );
                if confirm {
                    self.publish_here(ack);
                }
                // Ordered here when this node owns the channel: its local delivery is timed
                // from the publish.
                self.apply_with(shard, actions, None, Some(t0));
            }
            GatewayMsg::PublishChunks {
                app,
                channel,
                chunks,
                exclude,
                t0,
                ack,
            } => {
                // As a `Publish`, for the whole: one unit to the owning node, ordered there
                // in a row; confirmed (history) once its last chunk is.
                let a = shard.apps().get(app).clone();
                let confirm = ack.is_some();
                let chunks = chunks.into_iter().map(wire_event).collect();
                let actions = self.core.borrow_mut().publish_chunks(
                    &a.id,
                    &channel,
                    chunks,
                    exclude_of(exclude),
                    confirm,
                );
                if confirm {
                    self.publish_here(ack);
                }
                self.apply_with(shard, actions, None, Some(t0));
            }
            GatewayMsg::Interest {
                app,
                channel,
                on,
                ticket,
            } => {
                // A pattern's registration reaches every node before the interest reaches
                // the pattern's owner (whose ack answers the subscription).
                self.pattern_interest(shard, app, &channel, on, ticket);
                let app_id = shard.apps().get(app).id.clone();
                let gw = self;
                let mut core = gw.core.borrow_mut();
                let actions = if on {
                    core.await_interest(&app_id, &channel, ticket)
                } else {
                    core.set_interest(&app_id, &channel, false)
                };
                drop(core);
                self.apply(shard, actions);
            }
            GatewayMsg::Count {
                app,
                channel,
                count,
            } => {
                let app_id = shard.apps().get(app).id.clone();
                let actions = self.core.borrow_mut().count(&app_id, &channel, count);
                self.apply(shard, actions);
            }
            GatewayMsg::Join {
                app,
                channel,
                join,
                from,
                req,
                socket_id,
                cache,
                cache_miss,
                recover,
            } => {
                let sub = Subscriber {
                    from,
                    req,
                    socket_id,
                };
                self.join(shard, app, channel, join, sub, cache, cache_miss, recover)
            }
            GatewayMsg::Recover {
                app,
                channel,
                from,
                shard: to,
                ticket,
            } => {
                let target = super::history::Target::Shard {
                    shard: to,
                    ticket,
                    app,
                    channel: channel.clone(),
                };
                self.recover(shard, app, channel, from, target);
            }
            GatewayMsg::History {
                from,
                id,
                app,
                channel,
                op,
            } => self.api(shard, from, id, app, channel, op),
            GatewayMsg::Revoke { app, what, r } => self.revoke(shard, app, what, r),
            GatewayMsg::TokenUse {
                app,
                jti,
                session,
                uses,
                until,
                from,
                conn,
            } => self.token_use(shard, app, jti, &session, uses, until, from, conn),
            GatewayMsg::Leave { .. } if shard.node.shutting_down() => {
                // Draining: our clients were told to reconnect elsewhere. Peers hold our
                // members for the leave hold; telling them each user left would make those
                // users flap (member_removed, then member_added from their new node).
            }
            GatewayMsg::Leave { app, channel, user } => {
                let app_id = shard.apps().get(app).id.clone();
                let actions = self
                    .core
                    .borrow_mut()
                    .presence_leave(&app_id, &channel, &user);
                self.apply(shard, actions);
            }
            GatewayMsg::PresenceUpdate(u) => {
                let app_id = shard.apps().get(u.app).id.clone();
                let actions = self.core.borrow_mut().presence_update(
                    &app_id,
                    &u.user_id,
                    &u.user_info,
                    u.channel.as_deref(),
                );
                self.apply(shard, actions);
            }
            GatewayMsg::Terminate { app, user } => {
                let app_id = shard.apps().get(app).id.clone();
                let actions = self.core.borrow_mut().terminate(&app_id, &user);
                self.apply(shard, actions);
            }
            GatewayMsg::Query { from, id, app, ask } => self.start_query(shard, from, id, app, ask),
            GatewayMsg::Members {
                from,
                id,
                app,
                channel,
            } => {
                let reply = Reply::Members(self.members(shard, app, &channel));
                shard.mesh.send(from, ShardMsg::Reply { id, reply });
            }
            GatewayMsg::UserCounts {
                from,
                id,
                app,
                channels,
            } => {
                let reply = Reply::UserCounts(self.user_counts(shard, app, &channels));
                shard.mesh.send(from, ShardMsg::Reply { id, reply });
            }
        }
    }

    /// A presence subscription the local owner counted. The member limit is checked here,
    /// against the cluster-wide union: a user new to the channel is refused once the union
    /// is full, and the owner's count is undone.
    ///
    /// Whether the user still has to join is decided from the gateway's own set of local
    /// members, not from the owner's "first connection on this node": after a refusal the
    /// owner counts the refused connection until its undo arrives, so a second tab of the
    /// same user may reach the gateway as "not first" without ever having joined.
    #[allow(clippy::too_many_arguments)]
    fn join(
        self: &Rc<Self>,
        shard: &Shard,
        app: AppIdx,
        channel: Arc<str>,
        join: Join,
        sub: Subscriber,
        cache: Option<Frame>,
        cache_miss: bool,
        recover: Option<Option<crate::channel::history::Position>>,
    ) {
        let app_id = shard.apps().get(app).id.clone();
        let max = shard.apps().get(app).max_presence_members;
        let (joined, room) = {
            let gw = self;
            let core = gw.core.borrow();
            let joined = core.is_local_member(&app_id, &channel, &join.user_id);
            // Asked only for a user that still has to join.
            (
                joined,
                joined || core.has_room_for(&app_id, &channel, &join.user_id, max),
            )
        };
        if !joined {
            if !room {
                let undo = ShardMsg::Unsubscribe {
                    app,
                    channel: channel.clone(),
                    from: sub.from,
                    user_id: Some(join.user_id.clone()),
                };
                shard.mesh.send(shard.owner_of(app, &channel), undo);
                let why = format!("presence channel is full ({max} members)");
                let user_id = Some(join.user_id.clone());
                return shard.refuse_limit(sub.from, app, channel, sub.req, user_id, &why);
            }
            let actions = self.core.borrow_mut().presence_join(
                &app_id,
                &channel,
                &join.user_id,
                join.user_info.as_deref().map(str::to_string),
            );
            // The joiner must not hear its own member_added.
            self.apply_with(shard, actions, Some(sub.socket_id), None);
        }
        if cache_miss {
            shard.emit_cache_miss(app, &channel);
        }
        if let Some(from) = recover {
            // A channel with history: the answer waits for its recovery frames (and its
            // member list is read when they are there, so no member event falls between).
            let target = super::history::Target::Join {
                app,
                channel: channel.clone(),
                sub,
                join,
                cache,
                recovering: from.is_some(),
            };
            return self.recover(shard, app, channel, from, target);
        }
        let mut frames = vec![self.member_list(shard, app, &channel, &join)];
        frames.extend(cache);
        self.finish_join(shard, app, channel, sub, frames, join.user_id.clone());
    }

    /// A presence subscription's `subscription_succeeded` with the cluster-wide members it
    /// may see, as they are now.
    pub(super) fn member_list(
        &self,
        shard: &Shard,
        app: AppIdx,
        channel: &str,
        join: &Join,
    ) -> Frame {
        let app_id = shard.apps().get(app).id.clone();
        let members = self.core.borrow().members(&app_id, channel);
        let kind = ChannelKind::of(channel);
        if kind.privileged && !join.privileged {
            let me = members.iter().find(|(id, _)| **id == *join.user_id);
            let info = me
                .and_then(|(_, i)| i.as_deref())
                .or(join.user_info.as_deref());
            frames::presence_succeeded(channel, std::iter::once((&*join.user_id, info)))
        } else {
            frames::presence_succeeded(
                channel,
                members
                    .iter()
                    .map(|(id, info)| (id.as_str(), info.as_deref())),
            )
        }
    }

    /// Answers a presence subscription with `frames`, through the local owner shard.
    pub(super) fn finish_join(
        &self,
        shard: &Shard,
        app: AppIdx,
        channel: Arc<str>,
        sub: Subscriber,
        frames: Vec<Frame>,
        user_id: Arc<str>,
    ) {
        let answer = ShardMsg::SubscribeAck {
            app,
            channel: channel.clone(),
            req: sub.req,
            ok: true,
            frames,
            user_id: Some(user_id),
        };
        // Through the owner shard: the member events applied before `members` was read
        // went there first, so they reach the subscriber's shard before this answer and
        // are not delivered to it (its list has them); later ones come after the answer.
        let relay = ShardMsg::Relay {
            to: sub.from,
            msg: Box::new(answer),
        };
        shard.mesh.send(shard.owner_of(app, &channel), relay);
    }

    /// This node owns the channel and its cluster-wide count changed: the event is built
    /// once and goes the way of a published event (every node with subscribers, here
    /// included); the webhook fires here only.
    pub(super) fn announce_count(
        self: &Rc<Self>,
        shard: &Shard,
        app: String,
        channel: String,
        count: u32,
    ) {
        let Some(a) = shard.apps().by_id(&app).cloned() else {
            return;
        };
        // A peer's word does not make a presence channel, or an app without the feature,
        // get count events.
        if !a.enable_subscription_count || ChannelKind::of(&channel).is_presence() {
            return;
        }
        let frame = frames::subscription_count(&channel, count);
        let actions = self.core.borrow_mut().fanout(
            &app,
            &channel,
            frame.payload().to_vec(),
            None,
            false,
            None,
        );
        self.apply(shard, actions);
        shard.webhooks.emit(
            a.idx,
            WebhookEvent::SubscriptionCount {
                channel,
                subscription_count: count,
            },
        );
    }

    /// Member ids of a presence channel across the cluster (gateway shard only).
    pub(super) fn members(
        self: &Rc<Self>,
        shard: &Shard,
        app: AppIdx,
        channel: &str,
    ) -> Vec<String> {
        let app_id = shard.apps().get(app).id.clone();
        self.core
            .borrow()
            .members(&app_id, channel)
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    }

    /// The cluster-wide member count of a presence channel (gateway shard only).
    pub(super) fn member_count(
        self: &Rc<Self>,
        shard: &Shard,
        app: AppIdx,
        channel: &str,
    ) -> usize {
        let app_id = shard.apps().get(app).id.clone();
        self.core.borrow().member_count(&app_id, channel)
    }
}
