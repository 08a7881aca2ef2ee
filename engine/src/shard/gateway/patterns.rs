//! Wildcard subscriptions in a cluster (docs/protocol.md "Wildcard subscriptions", ADR
//! 0012). A node with local subscribers of a pattern registers it at every node
//! (`NodeMsg::Pattern`, before it asks the pattern's owner for its interest, so the
//! registration is in place before the subscription is answered), and again at a node whose
//! link comes up; a node whose link goes down loses its registrations. Every order point
//! (this gateway, for the channels this node owns) then encodes each event of a matching
//! channel once more for each matching pattern and sends its payload to every node that
//! registered the pattern, over the same links as the channel's own deliveries: each
//! channel's order holds for the pattern's subscribers.

use super::apply::LocalFanout;
use super::Gateway;
use crate::app::AppIdx;
use crate::channel::pattern::{self, Index, Pattern};
use crate::protocol::server as frames;
use crate::shard::Shard;
use crate::socket_id::SocketId;
use raptor_cluster::node::Action;
use raptor_cluster::wire::{NodeMsg, WireEvent};
use raptor_cluster::NodeId;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

/// The patterns of the cluster: who registered each, and the index an order point matches.
#[derive(Default)]
pub(super) struct ClusterPatterns {
    inner: RefCell<Inner>,
    /// Gateway ticks since this node last sent its patterns to every peer again.
    ticks: Cell<u32>,
    /// First subscriptions of patterns waiting for the peers' `PatternAck`s, by ack id.
    waits: RefCell<HashMap<u64, Wait>>,
    next_ack: Cell<u64>,
}

/// A pattern's first subscriptions on this node, held (under `ticket`) until every peer has
/// the registration and the pattern's owner has the interest: then no event ordered after
/// `subscription_succeeded`, anywhere, misses the pattern (ADR 0005).
struct Wait {
    app: String,
    pattern: String,
    ticket: u64,
    /// Peers that have not acknowledged yet.
    peers: HashSet<NodeId>,
    /// The owner's interest is in place (`InterestReady` came).
    interest: bool,
    since: Instant,
}

/// How long a registration waits for a peer that does not acknowledge (as an interest waits
/// for an owner that does not answer).
const ACK_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Ticks (of `raptor_cluster::node::TICK`, 250 ms) between two re-announcements of this
/// node's patterns: a registration lost on a full queue is repaired within 5 s.
const REANNOUNCE_TICKS: u32 = 20;

#[derive(Default)]
struct Inner {
    /// One registration per node that registered the pattern.
    index: Index,
    nodes: HashMap<(AppIdx, Arc<str>), HashSet<NodeId>>,
}

impl Inner {
    fn register(&mut self, app: AppIdx, p: &str, node: &NodeId, on: bool) {
        let key = (app, Arc::<str>::from(p));
        if on {
            let Ok(parsed) = Pattern::parse(p, usize::MAX) else {
                return;
            };
            if self.nodes.entry(key).or_default().insert(node.clone()) {
                self.index.add(app, parsed);
            }
        } else if let Some(set) = self.nodes.get_mut(&key) {
            if set.remove(node) {
                self.index.remove(app, p);
            }
            if set.is_empty() {
                self.nodes.remove(&key);
            }
        }
    }
}

impl Gateway {
    fn me(&self) -> NodeId {
        self.core.borrow().me().id.clone()
    }

    /// This node's interest in `channel` changes: for a pattern, its registration at every
    /// node (this one included) changes with it. Called before the interest goes to the
    /// pattern's owner; a first subscription (`ticket` not 0) is answered only once every
    /// peer acknowledged the registration too ([`Gateway::pattern_interest_ready`]).
    pub(super) fn pattern_interest(
        &self,
        shard: &Shard,
        app: AppIdx,
        channel: &str,
        on: bool,
        ticket: u64,
    ) {
        if !pattern::is_pattern(channel) {
            return;
        }
        let me = self.me();
        self.patterns
            .inner
            .borrow_mut()
            .register(app, channel, &me, on);
        let app_id = shard.apps().get(app).id.to_string();
        let mut ack = 0;
        if on && ticket != 0 {
            ack = self.patterns.next_ack.get() + 1;
            self.patterns.next_ack.set(ack);
            let wait = Wait {
                app: app_id.clone(),
                pattern: channel.to_string(),
                ticket,
                peers: self.core_query_peers().into_iter().collect(),
                interest: false,
                since: Instant::now(),
            };
            self.patterns.waits.borrow_mut().insert(ack, wait);
        }
        self.carry_out_plain_broadcast(NodeMsg::Pattern {
            app: app_id,
            pattern: channel.to_string(),
            on,
            ack,
        });
    }

    /// The owner took this node's interest in `pattern` (`ticket`): answered once every peer
    /// has the registration too.
    pub(super) fn pattern_interest_ready(
        &self,
        shard: &Shard,
        app: &str,
        pattern: &str,
        ticket: u64,
    ) {
        let found = {
            let mut waits = self.patterns.waits.borrow_mut();
            let id = waits
                .iter()
                .find(|(_, w)| w.ticket == ticket && w.pattern == pattern && w.app == app)
                .map(|(id, _)| *id);
            id.map(|id| {
                let w = waits.get_mut(&id).expect("found above");
                w.interest = true;
                (id, w.peers.is_empty())
            })
        };
        match found {
            // No wait (given up on, or none was needed): answered now.
            None => super::apply::interest_ready(shard, app, pattern, ticket),
            Some((id, true)) => self.release_wait(shard, id),
            Some((_, false)) => {}
        }
    }

    /// `from` registered the pattern of wait `ack`.
    pub(super) fn on_pattern_ack(&self, shard: &Shard, from: &NodeId, ack: u64) {
        let done = match self.patterns.waits.borrow_mut().get_mut(&ack) {
            Some(w) => {
                w.peers.remove(from);
                w.peers.is_empty() && w.interest
            }
            None => false,
        };
        if done {
            self.release_wait(shard, ack);
        }
    }

    fn release_wait(&self, shard: &Shard, id: u64) {
        let w = self.patterns.waits.borrow_mut().remove(&id);
        if let Some(w) = w {
            super::apply::interest_ready(shard, &w.app, &w.pattern, w.ticket);
        }
    }

    /// Waits past `ACK_WAIT` stop waiting for peers (one that does not answer is gone or
    /// about to be); those whose interest is in place are answered.
    fn expire_waits(&self, shard: &Shard) {
        let now = Instant::now();
        let ready: Vec<u64> = {
            let mut waits = self.patterns.waits.borrow_mut();
            for w in waits.values_mut() {
                if now.saturating_duration_since(w.since) >= ACK_WAIT {
                    w.peers.clear();
                }
            }
            waits
                .iter()
                .filter(|(_, w)| w.peers.is_empty() && w.interest)
                .map(|(id, _)| *id)
                .collect()
        };
        for id in ready {
            self.release_wait(shard, id);
        }
    }

    /// A peer's registration; acknowledged when it asks (`ack` not 0).
    pub(super) fn on_pattern(
        &self,
        shard: &Shard,
        from: &NodeId,
        app: &str,
        p: &str,
        on: bool,
        ack: u64,
    ) {
        if let Some(a) = shard.apps().by_id(app).map(|a| a.idx) {
            let max = shard.limits().max_channel_name_bytes;
            if !on || Pattern::parse(p, max).is_ok() {
                self.patterns.inner.borrow_mut().register(a, p, from, on);
            }
        }
        if ack != 0 {
            let to = from.clone();
            let msg = NodeMsg::PatternAck { ack };
            self.carry_out_plain(vec![Action::Send { to, msg }]);
        }
    }

    /// A peer's link came up: it gets every pattern this node has subscribers of.
    pub(super) fn send_patterns(&self, shard: &Shard, to: &NodeId) {
        let actions = self
            .my_patterns(shard)
            .into_iter()
            .map(|msg| Action::Send {
                to: to.clone(),
                msg,
            })
            .collect();
        self.carry_out_plain(actions);
    }

    /// Every `REANNOUNCE_TICKS`: this node's patterns to every peer again (registrations are
    /// sets, so a repeat changes nothing; a lost one is repaired).
    pub(super) fn patterns_tick(&self, shard: &Shard) {
        self.expire_waits(shard);
        let t = self.patterns.ticks.get() + 1;
        if t < REANNOUNCE_TICKS {
            return self.patterns.ticks.set(t);
        }
        self.patterns.ticks.set(0);
        for msg in self.my_patterns(shard) {
            self.carry_out_plain_broadcast(msg);
        }
    }

    /// The registrations of the patterns this node has subscribers of (no ack asked).
    fn my_patterns(&self, shard: &Shard) -> Vec<NodeMsg> {
        let me = self.me();
        let apps = shard.apps();
        self.patterns
            .inner
            .borrow()
            .nodes
            .iter()
            .filter(|(_, nodes)| nodes.contains(&me))
            .map(|((app, p), _)| NodeMsg::Pattern {
                app: apps.get(*app).id.to_string(),
                pattern: p.to_string(),
                on: true,
                ack: 0,
            })
            .collect()
    }

    /// A peer's registrations go: its link came up again (it sends them anew) or it is gone;
    /// waits stop waiting for it.
    pub(super) fn forget_patterns_of(&self, shard: &Shard, peer: &NodeId) {
        {
            let mut inner = self.patterns.inner.borrow_mut();
            let theirs: Vec<(AppIdx, Arc<str>)> = inner
                .nodes
                .iter()
                .filter(|(_, nodes)| nodes.contains(peer))
                .map(|(k, _)| k.clone())
                .collect();
            for (app, p) in theirs {
                inner.register(app, &p, peer, false);
            }
        }
        let ready: Vec<u64> = self
            .patterns
            .waits
            .borrow_mut()
            .iter_mut()
            .filter_map(|(id, w)| {
                (w.peers.remove(peer) && w.peers.is_empty() && w.interest).then_some(*id)
            })
            .collect();
        for id in ready {
            self.release_wait(shard, id);
        }
    }

    /// This node ordered an event of `channel`: each matching pattern gets it, encoded
    /// once, at every node that registered the pattern.
    pub(super) fn to_patterns(
        &self,
        shard: &Shard,
        app_id: &str,
        channel: &str,
        event: &WireEvent,
        exclude: Option<SocketId>,
        t0: Instant,
    ) {
        // The common case costs a check: no pattern anywhere, or a name no pattern can match.
        if self.patterns.inner.borrow().index.is_empty() || !channel.contains('/') {
            return;
        }
        let Some(app) = shard.apps().by_id(app_id).map(|a| a.idx) else {
            return;
        };
        let inner = self.patterns.inner.borrow();
        if inner.index.matching(app, channel).next().is_none() {
            return;
        }
        let me = self.me();
        let mut actions = Vec::new();
        for p in inner.index.matching(app, channel) {
            let frame = frames::pattern_event(
                &event.name,
                p,
                channel,
                &event.data,
                event.user_id.as_deref(),
            );
            let Some(nodes) = inner.nodes.get(&(app, p.clone())) else {
                continue;
            };
            for node in nodes {
                if *node == me {
                    let local = LocalFanout {
                        frame: frame.clone(),
                        exclude,
                        privileged_only: false,
                        retain: None,
                    };
                    local.send(shard, app, p, t0);
                } else {
                    actions.push(Action::Send {
                        to: node.clone(),
                        msg: NodeMsg::Deliver {
                            app: app_id.to_owned(),
                            channel: p.to_string(),
                            payload: frame.payload().to_vec(),
                            exclude: exclude.map(|s| (s.hi, s.lo)),
                            privileged_only: false,
                            cache_data: None,
                        },
                    });
                }
            }
        }
        drop(inner);
        self.carry_out_plain(actions);
    }
}
