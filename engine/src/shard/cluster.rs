//! Cluster mode: the one place the engine meets `raptor-cluster`.
//!
//! Shard 0 hosts the **gateway**: it owns this node's `NodeCore` (the node-to-node protocol
//! state), receives link events and membership changes from the cluster thread, and turns
//! every `Action` into shard messages or bridge commands. Other shards reach it through the
//! mesh like any shard. Because every event entering the node passes the gateway, and the
//! owning node's gateway is the only place that orders a channel, a channel's events have
//! one order cluster-wide.
//!
//! Channel queries across nodes live next door, in `shard::cluster_query`.
//!
//! **Boundary:** tokio types appear only here (the membership `watch` receiver), awaited
//! with runtime-agnostic futures; nothing here blocks a shard.

use super::cluster_query::ClusterQueries;
use super::msg::{Join, Reply, ShardMsg, SubReq};
use super::Shard;
use crate::app::AppIdx;
use crate::channel::event::Event;
use crate::channel::name::{self, ChannelKind};
use crate::frame::Frame;
use crate::placement::ShardId;
use crate::protocol::server as frames;
use crate::socket_id::SocketId;
use crate::webhook::WebhookEvent;
use raptor_cluster::bridge::{BridgeRx, BridgeTx};
use raptor_cluster::link::LinkEvent;
use raptor_cluster::node::{Action, NodeCore, ViewNode};
use raptor_cluster::presence::Change;
use raptor_cluster::runtime::{Command, ViewReceiver};
use raptor_cluster::NodeKey;
use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::Instant;

/// The shard that hosts the gateway.
pub const GATEWAY: ShardId = 0;

/// What shard 0 needs to run the gateway, handed over once at start.
pub struct GatewayParts {
    pub me: NodeKey,
    pub commands: BridgeTx<Command>,
    pub events: BridgeRx<LinkEvent>,
    pub view: ViewReceiver,
    /// Every node's dashboard summary, from gossip.
    pub summaries: raptor_cluster::runtime::SummariesReceiver,
    /// The links, for their counters.
    pub links: raptor_cluster::link::Links,
    /// `[cluster] query_timeout_ms`: how long channel queries wait for peers.
    pub query_timeout: std::time::Duration,
}

/// This node's cluster runtime (membership and links on their own thread), kept by the main
/// thread; the gateway shard takes the [`GatewayParts`]. The only way the rest of the engine
/// starts and stops the cluster: no other module names a `raptor-cluster` type.
pub struct ClusterNode(raptor_cluster::runtime::ClusterHandle);

impl ClusterNode {
    /// Starts membership and links for `[cluster]`; the error names what failed.
    pub fn start(
        c: &crate::config::ClusterSettings,
    ) -> Result<(ClusterNode, GatewayParts), String> {
        let id = raptor_cluster::NodeId::new(&c.node_id).map_err(|e| format!("node id: {e}"))?;
        let mut cfg = raptor_cluster::runtime::ClusterConfig::new(
            id,
            c.cluster_id.clone(),
            secrets_of(c)?,
            c.gossip,
            c.seeds.clone(),
            c.peer,
        );
        cfg.advertise_peer_addr = c.advertise_peer;
        cfg.advertise_gossip_addr = c.advertise_gossip;
        let mut handle =
            raptor_cluster::runtime::ClusterHandle::start(cfg).map_err(|e| e.to_string())?;
        tracing::info!(node = %c.node_id, gossip = %c.gossip, peer = %c.peer, "cluster node started");
        let events = handle
            .take_events()
            .ok_or_else(|| "the cluster's events were already taken".to_string())?;
        let parts = GatewayParts {
            me: handle.me().clone(),
            commands: handle.commands(),
            events,
            view: handle.view(),
            summaries: handle.summaries(),
            links: handle.links(),
            query_timeout: std::time::Duration::from_millis(c.query_timeout_ms),
        };
        Ok((ClusterNode(handle), parts))
    }

    /// Tells the other nodes this one is leaving, so they move its members at once instead
    /// of waiting for failure detection.
    pub fn leave(self) {
        self.0.leave();
    }

    /// What SIGHUP does (on the signal thread): re-read the cluster secrets.
    pub fn secrets_reload(&self, c: &crate::config::ClusterSettings) -> SecretsReload {
        SecretsReload {
            keyring: self.0.keyring(),
            settings: c.clone(),
        }
    }
}

/// The cluster secrets as `raptor-cluster` takes them, from `[cluster]`.
fn secrets_of(
    c: &crate::config::ClusterSettings,
) -> Result<raptor_cluster::secret::Secrets, String> {
    let list = c.load_secrets().map_err(|e| e.to_string())?;
    raptor_cluster::secret::Secrets::new(list.iter().map(|s| s.expose().as_bytes()))
        .map_err(|e| format!("cluster secrets: {e}"))
}

/// Re-reads `cluster.secret_file` and puts its secrets in force: the next gossip datagram
/// and the next link use them; established links go on (docs/cluster.md, "Rotating the
/// secret"). `Send`: called from the signal thread, never from a shard.
pub struct SecretsReload {
    keyring: Arc<raptor_cluster::secret::Keyring>,
    settings: crate::config::ClusterSettings,
}

impl SecretsReload {
    pub fn reload(&self) {
        if self.settings.secret_file.is_none() {
            tracing::info!("reload: the cluster secrets come from the configuration or the environment and are not re-read; set cluster.secret_file (or --cluster-secret-file) to rotate them without a restart");
            return;
        }
        match secrets_of(&self.settings) {
            Ok(s) => {
                self.keyring.replace(&s);
                tracing::info!(
                    accepted = s.len(),
                    "cluster secrets reloaded: new gossip and new links use them now"
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "cluster secrets not reloaded; the previous ones stay in force")
            }
        }
    }
}

pub struct Gateway {
    core: RefCell<NodeCore>,
    commands: BridgeTx<Command>,
    /// The cluster thread's links, for their counters (atomics; read only).
    links: raptor_cluster::link::Links,
    /// The gateway shard, for the tasks that wait (leave holds, channel queries).
    pub(super) shard: Weak<Shard>,
    /// Channel queries this node waits on or answers (`shard::cluster_query`).
    pub(super) queries: ClusterQueries,
    /// The live view and every node's summary, for the dashboard.
    view: ViewReceiver,
    summaries: raptor_cluster::runtime::SummariesReceiver,
}

/// One node as the dashboard lists it (docs/dashboard.md, `nodes`).
#[derive(Debug, Clone)]
pub struct NodeEntry {
    pub id: String,
    pub is_self: bool,
    /// `ready` or `leaving`.
    pub state: &'static str,
    pub address: String,
    /// The node's own figures as it gossips them (compact JSON), if any arrived yet.
    pub summary: Option<String>,
}

/// The subscribe request a `ClusterJoin` answers: its shard, request and socket id.
struct Subscriber {
    from: ShardId,
    req: SubReq,
    socket_id: SocketId,
}

fn exclude_of(s: Option<SocketId>) -> raptor_cluster::wire::Exclude {
    s.map(|s| (s.hi, s.lo))
}

/// An event as the cluster wire carries it to the owning node.
fn wire_event(e: Event) -> raptor_cluster::wire::WireEvent {
    raptor_cluster::wire::WireEvent {
        name: e.name.into(),
        data: e.data.to_string(),
        user_id: e.user_id.map(|u| u.to_string()),
    }
}

impl Gateway {
    /// The node-to-node counters for `/stats` and `/metrics`.
    pub fn figures(&self) -> crate::stats::ClusterFigures {
        let l = self.links.stats();
        let core = self.core.borrow();
        let n = core.counters();
        crate::stats::ClusterFigures {
            live_nodes: core.live().len() as u64,
            frames_sent: l.frames_sent,
            frames_received: l.frames_received,
            dropped_full: l.dropped_full,
            dropped_no_link: l.dropped_no_link,
            sessions_up: l.sessions_up,
            handshakes_refused: l.handshakes_refused,
            gossip_rejected: l.gossip_rejected,
            bridge_dropped: self.commands.dropped(),
            publish_not_owner: n.publish_not_owner,
            deliver_unwanted: n.deliver_unwanted,
            counts_over_limit: n.counts_over_limit,
            counts_refused: n.counts_refused,
            interest_awaiting: n.interest_awaiting,
            interest_ack_timeouts: n.interest_ack_timeouts,
            presence_resyncs: n.presence_resyncs,
        }
    }

    /// Starts the gateway tasks on this shard (which must be [`GATEWAY`]).
    pub fn start(shard: &Rc<Shard>, parts: GatewayParts) {
        let generation = parts.me.generation;
        let gw = Rc::new(Gateway {
            core: RefCell::new(NodeCore::new(parts.me)),
            commands: parts.commands,
            links: parts.links,
            shard: Rc::downgrade(shard),
            queries: ClusterQueries::new(parts.query_timeout, generation),
            view: parts.view.clone(),
            summaries: parts.summaries,
        });
        *shard.gateway.borrow_mut() = Some(gw.clone());
        let mut events = parts.events;
        let s = shard.clone();
        glommio::spawn_local(async move {
            while let Some(ev) = events.recv().await {
                let mut gone = None;
                let actions = {
                    let gw = s.gateway.borrow().clone().expect("gateway");
                    let mut core = gw.core.borrow_mut();
                    match ev {
                        LinkEvent::Up { peer, .. } => core.link_up(&peer),
                        LinkEvent::Down { peer, .. } => {
                            let actions = core.link_down(&peer);
                            // A late `Down` of an old session must not end the waits on a
                            // newer session of the same node id.
                            if !core.query_peers().contains(&peer.id) {
                                gone = Some(peer.id);
                            }
                            actions
                        }
                        LinkEvent::Msg { peer, msg, .. } => core.on_msg(&peer, msg),
                    }
                };
                s.apply(actions);
                if let Some(peer) = gone {
                    s.queries_peer_gone(&peer);
                }
                glommio::yield_if_needed().await;
            }
        })
        .detach();
        // Awaited interests whose owner does not answer are released on a tick.
        let s = shard.clone();
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(raptor_cluster::node::TICK).await;
                let Some(gw) = s.gateway.borrow().clone() else {
                    return;
                };
                let actions = gw.core.borrow_mut().tick();
                s.apply(actions);
            }
        })
        .detach();
        let mut view = parts.view;
        let s = shard.clone();
        glommio::spawn_local(async move {
            loop {
                let (nodes, leaving) = {
                    let v = view.borrow_and_update();
                    let nodes: Vec<ViewNode> = v.nodes.iter().map(ViewNode::from).collect();
                    (nodes, v.leaving.clone())
                };
                // A graceful leave seen only in gossip (its `Leaving` message missed us) is
                // still a leave: hold its members rather than drop them as a death.
                for k in &leaving {
                    let actions = gw.core.borrow_mut().peer_left(k);
                    s.apply(actions);
                }
                let actions = gw.core.borrow_mut().set_view(nodes);
                s.apply(actions);
                if view.changed().await.is_err() {
                    return;
                }
            }
        })
        .detach();
    }

    /// The peers a channel query goes to.
    pub(super) fn core_query_peers(&self) -> Vec<raptor_cluster::NodeId> {
        self.core.borrow().query_peers()
    }

    /// Gossips this node's dashboard summary (compact JSON, at most 2 KiB).
    pub fn publish_summary(&self, json: String) {
        let key = raptor_cluster::membership::KEY_SUMMARY.to_owned();
        self.commands
            .send_or_drop(Command::SetKeys(vec![(key, Some(json))]));
    }

    /// Every live or leaving node, this one included, with its gossiped summary.
    pub fn nodes(&self) -> Vec<NodeEntry> {
        let me = self.core.borrow().me().clone();
        let view = self.view.borrow().clone();
        let summaries = self.summaries.borrow().clone();
        let summary = |id: &str| summaries.get(id).cloned();
        let mut out: Vec<NodeEntry> = view
            .nodes
            .iter()
            .map(|n| NodeEntry {
                id: n.id.to_string(),
                is_self: n.id == me.id,
                state: "ready",
                address: n.peer_addr.to_string(),
                summary: summary(n.id.as_str()),
            })
            .collect();
        out.extend(view.leaving.iter().map(|k| NodeEntry {
            id: k.id.to_string(),
            is_self: k.id == me.id,
            state: "leaving",
            address: String::new(),
            summary: summary(k.id.as_str()),
        }));
        out
    }
}

impl Shard {
    /// Member ids of a presence channel across the cluster (gateway shard only).
    pub(super) fn cluster_members(&self, app: AppIdx, channel: &str) -> Vec<String> {
        let app_id = self.apps().get(app).id.clone();
        self.gw()
            .core
            .borrow()
            .members(&app_id, channel)
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    }

    /// The cluster-wide member count of a presence channel (gateway shard only).
    pub(super) fn cluster_member_count(&self, app: AppIdx, channel: &str) -> usize {
        let app_id = self.apps().get(app).id.clone();
        self.gw().core.borrow().member_count(&app_id, channel)
    }

    /// Whether this shard hosts the gateway (cluster mode, shard [`GATEWAY`]).
    pub(super) fn is_gateway(&self) -> bool {
        self.gateway.borrow().is_some()
    }

    /// The gateway's state. Only reached below [`Shard::gateway_handle`], the gateway-only
    /// queries and the gateway's own tasks, each of which runs only where `is_gateway()`
    /// holds (`handle` and `answer` check it and refuse a mis-routed message instead).
    fn gw(&self) -> Rc<Gateway> {
        self.gateway
            .borrow()
            .clone()
            .expect("checked by is_gateway() at every entry point")
    }

    /// A gateway message that reached a shard without the gateway: logged and refused (a
    /// query gets [`Reply::Misrouted`], so its caller answers 500), never half-handled.
    pub(super) fn misrouted(&self, msg: ShardMsg) {
        tracing::error!(
            shard = self.id,
            ?msg,
            "gateway message on a shard without the gateway; dropped"
        );
        if let ShardMsg::ClusterQuery { from, id, .. } = msg {
            self.mesh.send(
                from,
                ShardMsg::Reply {
                    id,
                    reply: Reply::Misrouted,
                },
            );
        }
    }

    /// Handles a cluster-mode message on the gateway shard.
    pub(super) fn gateway_handle(&self, msg: ShardMsg) {
        match msg {
            ShardMsg::ClusterPublish {
                app,
                channel,
                event,
                exclude,
                t0,
                ack,
            } => {
                let app_id = self.apps().get(app).id.clone();
                let retain = event.retained_by(&channel).is_some();
                let actions = self.gw().core.borrow_mut().publish(
                    &app_id,
                    &channel,
                    wire_event(event),
                    exclude_of(exclude),
                    retain,
                );
                // Ordered here when this node owns the channel: its local delivery is timed
                // from the publish.
                self.apply_with(actions, None, Some(t0));
                if let Some((from, id)) = ack {
                    self.mesh.send(
                        from,
                        ShardMsg::Reply {
                            id,
                            reply: Reply::Published,
                        },
                    );
                }
            }
            ShardMsg::ClusterInterest {
                app,
                channel,
                on,
                ticket,
            } => {
                let app_id = self.apps().get(app).id.clone();
                let gw = self.gw();
                let mut core = gw.core.borrow_mut();
                let actions = if on {
                    core.await_interest(&app_id, &channel, ticket)
                } else {
                    core.set_interest(&app_id, &channel, false)
                };
                drop(core);
                self.apply(actions);
            }
            ShardMsg::ClusterCount {
                app,
                channel,
                count,
            } => {
                let app_id = self.apps().get(app).id.clone();
                let actions = self.gw().core.borrow_mut().count(&app_id, &channel, count);
                self.apply(actions);
            }
            ShardMsg::ClusterJoin {
                app,
                channel,
                join,
                from,
                req,
                socket_id,
                cache,
                cache_miss,
            } => {
                let sub = Subscriber {
                    from,
                    req,
                    socket_id,
                };
                self.cluster_join(app, channel, join, sub, cache, cache_miss)
            }
            ShardMsg::ClusterLeave { .. } if self.node.shutting_down() => {
                // Draining: our clients were told to reconnect elsewhere. Peers hold our
                // members for the leave hold; telling them each user left would make those
                // users flap (member_removed, then member_added from their new node).
            }
            ShardMsg::ClusterLeave { app, channel, user } => {
                let app_id = self.apps().get(app).id.clone();
                let actions = self
                    .gw()
                    .core
                    .borrow_mut()
                    .presence_leave(&app_id, &channel, &user);
                self.apply(actions);
            }
            ShardMsg::ClusterTerminate { app, user } => {
                let app_id = self.apps().get(app).id.clone();
                let actions = self.gw().core.borrow_mut().terminate(&app_id, &user);
                self.apply(actions);
            }
            ShardMsg::ClusterQuery { from, id, app, ask } => {
                self.start_cluster_query(from, id, app, ask)
            }
            other => tracing::error!(msg = ?other, "not a gateway message"),
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
    fn cluster_join(
        &self,
        app: AppIdx,
        channel: Arc<str>,
        join: Join,
        sub: Subscriber,
        cache: Option<Frame>,
        cache_miss: bool,
    ) {
        let app_id = self.apps().get(app).id.clone();
        let max = self.apps().get(app).max_presence_members;
        let (joined, room) = {
            let gw = self.gw();
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
                self.mesh.send(self.owner_of(app, &channel), undo);
                let why = format!("presence channel is full ({max} members)");
                let user_id = Some(join.user_id.clone());
                return self.refuse_limit(sub.from, app, channel, sub.req, user_id, &why);
            }
            let actions = self.gw().core.borrow_mut().presence_join(
                &app_id,
                &channel,
                &join.user_id,
                join.user_info.as_deref().map(str::to_string),
            );
            // The joiner must not hear its own member_added.
            self.apply_with(actions, Some(sub.socket_id), None);
        }
        let members = self.gw().core.borrow().members(&app_id, &channel);
        let kind = ChannelKind::of(&channel);
        let frame = if kind.privileged && !join.privileged {
            let me = members.iter().find(|(id, _)| **id == *join.user_id);
            let info = me
                .and_then(|(_, i)| i.as_deref())
                .or(join.user_info.as_deref());
            frames::presence_succeeded(&channel, std::iter::once((&*join.user_id, info)))
        } else {
            frames::presence_succeeded(
                &channel,
                members
                    .iter()
                    .map(|(id, info)| (id.as_str(), info.as_deref())),
            )
        };
        let mut frames = vec![frame];
        frames.extend(cache);
        if cache_miss {
            self.emit_cache_miss(app, &channel);
        }
        let user_id = Some(join.user_id.clone());
        let answer = ShardMsg::SubscribeAck {
            app,
            channel: channel.clone(),
            req: sub.req,
            ok: true,
            frames,
            user_id,
        };
        // Through the owner shard: the member events applied before `members` was read
        // went there first, so they reach the subscriber's shard before this answer and
        // are not delivered to it (its list has them); later ones come after the answer.
        let relay = ShardMsg::Relay {
            to: sub.from,
            msg: Box::new(answer),
        };
        self.mesh.send(self.owner_of(app, &channel), relay);
    }

    /// This node owns the channel and its cluster-wide count changed: the event is built
    /// once and goes the way of a published event (every node with subscribers, here
    /// included); the webhook fires here only.
    fn announce_count(&self, app: String, channel: String, count: u32) {
        let Some(a) = self.apps().by_id(&app).cloned() else {
            return;
        };
        // A peer's word does not make a presence channel, or an app without the feature,
        // get count events.
        if !a.enable_subscription_count || ChannelKind::of(&channel).is_presence() {
            return;
        }
        let frame = frames::subscription_count(&channel, count);
        let actions = self.gw().core.borrow_mut().fanout(
            &app,
            &channel,
            frame.payload().to_vec(),
            None,
            false,
            None,
        );
        self.apply(actions);
        self.webhooks.emit(
            a.idx,
            WebhookEvent::SubscriptionCount {
                channel,
                subscription_count: count,
            },
        );
    }

    /// An event the owning node ordered, to this node's owner shard of the channel, which
    /// enters it in the channel's stream and writes it to this node's subscribers.
    #[allow(clippy::too_many_arguments)]
    fn deliver_local(
        &self,
        app: &str,
        channel: String,
        frame: Frame,
        exclude: raptor_cluster::wire::Exclude,
        privileged_only: bool,
        cache_data: Option<String>,
        t0: Instant,
    ) {
        let Some(a) = self.apps().by_id(app).cloned() else {
            return;
        };
        // The local owner keeps a cache channel's event for replay. Only for a valid cache
        // channel: a peer's word does not put other names in the cache.
        let cacheable = ChannelKind::of(&channel).cache
            && name::validate(&channel, self.limits().max_channel_name_bytes).is_ok();
        let retain = cache_data.filter(|_| cacheable).map(Arc::from);
        let channel: Arc<str> = Arc::from(channel);
        let owner = self.owner_of(a.idx, &channel);
        self.mesh.send(
            owner,
            ShardMsg::LocalFanout {
                app: a.idx,
                channel,
                frame,
                exclude: exclude.map(|(hi, lo)| SocketId { hi, lo }),
                privileged_only,
                retain,
                t0,
            },
        );
    }

    pub(super) fn apply(&self, actions: Vec<Action>) {
        self.apply_with(actions, None, None);
    }

    /// `joiner`: excluded from a `member_added` among the actions. `t0`: when the event
    /// behind the actions entered this node (now, when not given).
    fn apply_with(&self, actions: Vec<Action>, joiner: Option<SocketId>, t0: Option<Instant>) {
        let t0 = t0.unwrap_or_else(Instant::now);
        let gw = self.gw();
        for action in actions {
            match action {
                Action::Send { to, msg } => match raptor_cluster::runtime::encode(&msg) {
                    Ok(frame) => {
                        gw.commands.send_or_drop(Command::Send { to, frame });
                    }
                    Err(e) => tracing::error!(error = %e, "cannot encode a node message"),
                },
                Action::Broadcast(msg) => match raptor_cluster::runtime::encode(&msg) {
                    Ok(frame) => {
                        gw.commands.send_or_drop(Command::Broadcast { frame });
                    }
                    Err(e) => tracing::error!(error = %e, "cannot encode a node message"),
                },
                Action::Gossip(keys) => {
                    gw.commands.send_or_drop(Command::SetKeys(keys));
                }
                Action::Order {
                    app,
                    channel,
                    event,
                    exclude,
                    retain,
                } => {
                    // This node is the channel's order point: the event is encoded here,
                    // once; the payload goes to the other nodes, the frame to this node's
                    // owner shard.
                    let frame = frames::channel_event(
                        &event.name,
                        &channel,
                        &event.data,
                        event.user_id.as_deref(),
                    );
                    let retained = retain.then_some(event.data);
                    let payload = frame.payload().to_vec();
                    let actions = gw
                        .core
                        .borrow_mut()
                        .fanout(&app, &channel, payload, exclude, false, retained);
                    for action in actions {
                        match action {
                            Action::DeliverLocal {
                                app,
                                channel,
                                exclude,
                                privileged_only,
                                cache_data,
                                ..
                            } => self.deliver_local(
                                &app,
                                channel,
                                frame.clone(),
                                exclude,
                                privileged_only,
                                cache_data,
                                t0,
                            ),
                            other => self.apply_with(vec![other], joiner, Some(t0)),
                        }
                    }
                }
                Action::DeliverLocal {
                    app,
                    channel,
                    payload,
                    exclude,
                    privileged_only,
                    cache_data,
                } => self.deliver_local(
                    &app,
                    channel,
                    Frame::text(&payload),
                    exclude,
                    privileged_only,
                    cache_data,
                    t0,
                ),
                Action::Presence { event, webhook } => {
                    let Some(a) = self.apps().by_id(&event.app).cloned() else {
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
                    let channel: Arc<str> = Arc::from(event.channel.as_str());
                    let owner = self.owner_of(a.idx, &channel);
                    let exclude = if matches!(event.change, Change::Added { .. }) {
                        joiner
                    } else {
                        None
                    };
                    self.mesh.send(
                        owner,
                        ShardMsg::LocalFanout {
                            app: a.idx,
                            channel,
                            frame,
                            exclude,
                            privileged_only: kind.privileged,
                            retain: None,
                            t0,
                        },
                    );
                    if webhook {
                        self.webhooks.emit(a.idx, hook);
                    }
                }
                Action::Occupancy {
                    app,
                    channel,
                    occupied,
                } => {
                    if let Some(a) = self.apps().by_id(&app).cloned() {
                        let hook = if occupied {
                            WebhookEvent::ChannelOccupied { channel }
                        } else {
                            WebhookEvent::ChannelVacated { channel }
                        };
                        self.webhooks.emit(a.idx, hook);
                    }
                }
                Action::Terminate { app, user } => {
                    if let Some(a) = self.apps().by_id(&app).cloned() {
                        self.terminate_local(a.idx, &user);
                    }
                }
                Action::ReleaseLater { node, after } => {
                    // One timer per leave (a handful at most).
                    let Some(shard) = gw.shard.upgrade() else {
                        continue;
                    };
                    glommio::spawn_local(async move {
                        glommio::timer::sleep(after).await;
                        let actions = shard.gw().core.borrow_mut().release(&node);
                        shard.apply(actions);
                    })
                    .detach();
                }
                Action::PeerQuery {
                    from,
                    id,
                    app,
                    kind,
                } => self.answer_peer(from, id, app, kind),
                Action::PeerAnswer { from, id, body } => self.on_peer_answer(&from, id, body),
                Action::SubscriptionCount {
                    app,
                    channel,
                    count,
                } => self.announce_count(app, channel, count),
                Action::InterestReady {
                    app,
                    channel,
                    ticket,
                } => {
                    if let Some(a) = self.apps().by_id(&app).cloned() {
                        let channel: Arc<str> = Arc::from(channel);
                        let owner = self.owner_of(a.idx, &channel);
                        let msg = ShardMsg::ClusterInterestReady {
                            app: a.idx,
                            channel,
                            ticket,
                        };
                        self.mesh.send(owner, msg);
                    }
                }
            }
        }
    }
}
