//! Cluster mode: the one place the engine meets `raptor-cluster`.
//!
//! Shard 0 hosts the **gateway**, a type of its own ([`Gateway`]): it owns this node's
//! `NodeCore` (the node-to-node protocol state), receives link events and membership
//! changes from the cluster thread, and turns every `Action` into shard messages or bridge
//! commands ([`apply`]). Other shards reach it only with a [`GatewayMsg`], which only
//! [`Shard::to_gateway`] and [`Shard::ask_gateway`] can send, and only to shard
//! [`GATEWAY`]: a gateway message cannot reach another shard ([`ToGateway`] has a private
//! field). Because every event entering the node passes the gateway, and the owning node's
//! gateway is the only place that orders and encodes a channel's events, a channel's events
//! have one order cluster-wide.
//!
//! [`handle`] holds what the gateway does with each message; [`queries`] the channel
//! queries across nodes.
//!
//! **Boundary:** tokio types appear only here (the membership `watch` receiver), awaited
//! with runtime-agnostic futures; nothing here blocks a shard.

mod apply;
mod handle;
mod handoff;
mod history;
mod patterns;
mod queries;
mod tokens;

use super::msg::{GatewayMsg, Reply, ShardMsg, SubReq};
use super::{AskError, Shard};
use crate::channel::event::Event;
use crate::placement::ShardId;
use crate::socket_id::SocketId;
use queries::ClusterQueries;
use raptor_cluster::bridge::{BridgeRx, BridgeTx};
use raptor_cluster::link::LinkEvent;
use raptor_cluster::node::{NodeCore, ViewNode};
use raptor_cluster::runtime::{Command, ViewReceiver};
use raptor_cluster::NodeKey;
use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::sync::Arc;

/// The shard that hosts the gateway.
pub const GATEWAY: ShardId = 0;

/// Bytes (names and data) the chunks of one large event may take in a cluster: they cross
/// to the owning node in one link frame, whose body is at most
/// `raptor_cluster::wire::DEFAULT_MAX_BODY` (1 MiB); 64 KiB are left for the frame's own
/// fields. A larger event is refused at the edge with 413 rather than dropped on the link.
pub const MAX_CHUNKS_BYTES: usize = raptor_cluster::wire::DEFAULT_MAX_BODY - 64 * 1024;

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
    home: Weak<Shard>,
    /// Channel queries this node waits on or answers ([`queries`]).
    queries: ClusterQueries,
    /// The live view and every node's summary, for the dashboard.
    view: ViewReceiver,
    summaries: raptor_cluster::runtime::SummariesReceiver,
    /// Histories of the channels this node owns, and the successor's copies ([`history`]).
    history: history::ClusterHistory,
    /// Token uses this node counts or asked about ([`tokens`]).
    tokens: tokens::ClusterTokens,
    /// The wildcard subscriptions of the cluster, by registering node ([`patterns`]).
    patterns: patterns::ClusterPatterns,
    /// This node's graceful leave and held-back releases ([`handoff`]).
    leave: handoff::Leave,
}

/// One node as the dashboard lists it (docs/dashboard.md, `nodes`).
#[derive(Debug, Clone)]
pub struct NodeEntry {
    pub id: String,
    pub is_self: bool,
    /// `ready`, `joining` (this node, until it takes publishes) or `leaving`.
    pub state: &'static str,
    pub address: String,
    /// The node's own figures as it gossips them (compact JSON), if any arrived yet.
    pub summary: Option<String>,
}

/// The subscribe request a `GatewayMsg::Join` answers: its shard, request and socket id.
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
    /// The histories this node keeps for the cluster (owned and copies).
    pub fn history_figures(&self) -> crate::channel::stream::HistoryFigures {
        self.history.figures()
    }

    /// The channel-query counters for `/stats` and `/metrics`.
    pub fn query_figures(&self) -> crate::stats::ClusterQueryFigures {
        self.queries.figures()
    }

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
            handoffs: n.handoffs,
            joining: u64::from(
                self.home
                    .upgrade()
                    .is_some_and(|s| s.node.joining.load(std::sync::atomic::Ordering::Relaxed)),
            ),
            publish_held_stray: n.publish_held_stray,
            handoff_timeouts: n.handoff_timeouts,
            handoff_held: n.handoff_held,
            handoff_overflow: n.handoff_overflow,
            publishes_unconfirmed: self.history.unconfirmed(),
        }
    }

    /// Starts the gateway tasks on this shard (which must be [`GATEWAY`]).
    pub fn start(shard: &Rc<Shard>, parts: GatewayParts) {
        let generation = parts.me.generation;
        let gw = Rc::new(Gateway {
            core: RefCell::new(NodeCore::new(parts.me)),
            commands: parts.commands,
            links: parts.links,
            home: Rc::downgrade(shard),
            queries: ClusterQueries::new(parts.query_timeout, generation),
            view: parts.view.clone(),
            summaries: parts.summaries,
            history: history::ClusterHistory::new(shard.streams.borrow().settings().clone()),
            tokens: tokens::ClusterTokens::default(),
            patterns: patterns::ClusterPatterns::default(),
            leave: handoff::Leave::default(),
        });
        *shard.gateway.borrow_mut() = Some(gw.clone());
        let mut events = parts.events;
        let (s, g) = (shard.clone(), gw.clone());
        glommio::spawn_local(async move {
            while let Some(ev) = events.recv().await {
                let mut gone = None;
                let mut gap = Vec::new();
                let mut up = None;
                let actions = {
                    let mut core = g.core.borrow_mut();
                    match ev {
                        LinkEvent::Up { peer, .. } => {
                            up = Some(peer.id.clone());
                            // A new session (maybe a new incarnation) sends its patterns
                            // again, after this: what an older session said goes.
                            g.forget_patterns_of(&s, &peer.id);
                            core.link_up(&peer)
                        }
                        LinkEvent::Down { peer, .. } => {
                            // Before the view moves the channels: which ones it owned.
                            gap = core.interest_owned_by(&peer.id);
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
                // A new link's patterns go ahead of the handoff steps its `link_up` releases
                // (a new owner must know them before it opens its fence).
                if let Some(peer) = &up {
                    g.send_patterns(&s, peer);
                }
                g.apply(&s, actions);
                g.successors_progress(&s);
                g.retry_fenced_asks(&s);
                g.leave_progress(&s);
                g.join_progress(&s);
                g.close_gapped(&s, gap);
                if let Some(peer) = up {
                    g.hand_over_to_linked(&s, &peer);
                    g.send_revocations(&s, &peer);
                }
                if let Some(peer) = gone {
                    g.peer_gone(&s, &peer);
                    // Only when gone: a late `Down` of an old session must not drop what a
                    // newer session of the node registered.
                    g.forget_patterns_of(&s, &peer);
                }
                glommio::yield_if_needed().await;
            }
        })
        .detach();
        // A node whose seeds do not answer may be the first of its cluster: it takes
        // publishes after `JOIN_WAIT` whatever happens.
        let s = shard.clone();
        glommio::spawn_local(async move {
            glommio::timer::sleep(crate::lifecycle::JOIN_WAIT).await;
            s.node
                .joining
                .store(false, std::sync::atomic::Ordering::Relaxed);
        })
        .detach();
        // Awaited interests whose owner does not answer are released on a tick.
        let (s, g) = (shard.clone(), gw.clone());
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(raptor_cluster::node::TICK).await;
                let actions = g.core.borrow_mut().tick();
                g.apply(&s, actions);
                g.history_tick(&s);
                g.retry_fenced_asks(&s);
                g.leave_progress(&s);
                g.join_progress(&s);
                g.flush_deferred_releases(&s);
                g.tokens_tick();
                g.patterns_tick(&s);
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
                    gw.apply(&s, actions);
                }
                let before = gw.core.borrow().live_ids().to_vec();
                let actions = gw.core.borrow_mut().set_view(nodes);
                gw.apply(&s, actions);
                gw.review_histories(&s, &before);
                gw.successors_progress(&s);
                if view.changed().await.is_err() {
                    return;
                }
            }
        })
        .detach();
    }

    /// The peers a channel query goes to.
    fn core_query_peers(&self) -> Vec<raptor_cluster::NodeId> {
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
        // This node refuses publishes until it met its cluster (docs/cluster.md).
        let joining = self
            .home
            .upgrade()
            .is_some_and(|s| s.node.joining.load(std::sync::atomic::Ordering::Relaxed));
        let mut out: Vec<NodeEntry> = view
            .nodes
            .iter()
            .map(|n| NodeEntry {
                id: n.id.to_string(),
                is_self: n.id == me.id,
                state: if joining && n.id == me.id {
                    "joining"
                } else {
                    "ready"
                },
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

/// A [`GatewayMsg`] on its way to the gateway shard. Its field is private to this module, so
/// the only way to make one is [`Shard::to_gateway`] (or [`Shard::ask_gateway`]), which
/// always sends it to shard [`GATEWAY`].
#[derive(Debug)]
pub struct ToGateway(GatewayMsg);

impl ToGateway {
    /// `msg` with its one address, for a sender that must wait for room in the gateway's
    /// queue before sending (a publish's backpressure).
    pub(in crate::shard) fn addressed(msg: GatewayMsg) -> (ShardId, ShardMsg) {
        (GATEWAY, ShardMsg::Gateway(ToGateway(msg)))
    }

    /// For tests: a gateway message delivered by hand (to a shard without the gateway).
    #[cfg(test)]
    pub(in crate::shard) fn by_hand(msg: GatewayMsg) -> ToGateway {
        ToGateway(msg)
    }
}

impl Shard {
    /// Sends `msg` to this node's gateway (cluster mode).
    pub(super) fn to_gateway(&self, msg: GatewayMsg) {
        self.mesh.send(GATEWAY, ShardMsg::Gateway(ToGateway(msg)));
    }

    /// Asks the gateway the question `make(id)` and waits for its [`Reply`].
    pub(super) async fn ask_gateway(
        &self,
        make: impl FnOnce(ShardId, u64) -> GatewayMsg,
    ) -> Result<Reply, AskError> {
        let from = self.id;
        let reply = self
            .request(GATEWAY, |id| ShardMsg::Gateway(ToGateway(make(from, id))))
            .await?;
        Ok(reply)
    }

    /// A message for the gateway: handled by it, or, on a shard without one (which the
    /// routing above rules out; a single node never sends one), logged and refused — a
    /// question gets [`Reply::Misrouted`], so its caller answers 500 — never half-handled.
    pub(super) fn on_gateway_msg(&self, msg: ToGateway) {
        let gw = self.gateway.borrow().clone();
        match gw {
            Some(gw) => gw.handle(self, msg.0),
            None => {
                tracing::error!(
                    shard = self.id,
                    msg = ?msg.0,
                    "gateway message on a shard without the gateway; dropped"
                );
                if let GatewayMsg::Query { from, id, .. }
                | GatewayMsg::Members { from, id, .. }
                | GatewayMsg::UserCounts { from, id, .. }
                | GatewayMsg::Publish {
                    ack: Some((from, id)),
                    ..
                }
                | GatewayMsg::PublishChunks {
                    ack: Some((from, id)),
                    ..
                } = msg.0
                {
                    // Its caller answers 500 at once rather than 503 after the timeout.
                    let reply = Reply::Misrouted;
                    self.mesh.send(from, ShardMsg::Reply { id, reply });
                }
            }
        }
    }
}
