//! The simulated network shared by the scenario tests (see scenarios.rs for how it works).
#![allow(dead_code)]

use raptor_cluster::interest::InterestFilter;
use raptor_cluster::membership::KEY_PRESENCE;
use raptor_cluster::node::{Action, NodeCore, ViewNode};
use raptor_cluster::presence::Change;
use raptor_cluster::presence::Digest;
use raptor_cluster::wire::NodeMsg;
use raptor_cluster::{NodeId, NodeKey};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub const APP: &str = "1";

pub struct SimNode {
    pub core: NodeCore,
    pub running: bool,
    pub gossip: BTreeMap<String, String>,
    /// Last view given to the core: (key, interest, presence digest).
    pub view: Vec<(NodeKey, InterestFilter, Option<Digest>)>,
    /// Frames written to local subscribers, per channel.
    pub delivered: BTreeMap<String, Vec<String>>,
    /// What this node's subscribers believe the members of each channel are.
    pub seen: BTreeMap<String, BTreeSet<String>>,
    /// Member events sent to local subscribers: (channel, user, added).
    pub emitted: Vec<(String, String, bool)>,
    /// Webhooks fired here: (channel, user, added).
    pub webhooks: Vec<(String, String, bool)>,
}

impl SimNode {
    pub fn new(key: NodeKey) -> SimNode {
        SimNode {
            core: NodeCore::new(key),
            running: true,
            gossip: BTreeMap::new(),
            view: Vec::new(),
            delivered: BTreeMap::new(),
            seen: BTreeMap::new(),
            emitted: Vec::new(),
            webhooks: Vec::new(),
        }
    }

    pub fn key(&self) -> NodeKey {
        self.core.me().clone()
    }
}

pub fn pair(a: &str, b: &str) -> (String, String) {
    if a < b {
        (a.to_owned(), b.to_owned())
    } else {
        (b.to_owned(), a.to_owned())
    }
}

pub struct Sim {
    pub nodes: BTreeMap<String, SimNode>,
    pub cut: BTreeSet<(String, String)>,
    /// Links up, by pair, with the keys of both ends when it came up.
    pub links: BTreeMap<(String, String), (NodeKey, NodeKey)>,
    /// In-flight messages per direction (from, to).
    pub queues: BTreeMap<(String, String), VecDeque<(NodeKey, NodeMsg)>>,
    /// Keys that still show up in everyone's view (a crashed node not yet detected).
    pub ghosts: Vec<NodeKey>,
    /// Bring links up before views change (otherwise views first).
    pub links_first: bool,
    /// Carry interest summaries in the simulated gossip (off: only `Interest` messages).
    pub gossip_interest: bool,
    /// Occupancy events in the order they were emitted: (node, channel, occupied).
    pub occupancy: Vec<(String, String, bool)>,
    /// Presence holds asked for by `Action::ReleaseLater`: (node holding, departed node).
    /// The simulation has no clock: a test ends them with [`Sim::release_holds`].
    pub holds: Vec<(String, NodeKey)>,
    /// Cluster-wide subscription counts announced, in order: (node, channel, count).
    pub counts: Vec<(String, String, u32)>,
    /// Awaited interests declared ready, in order: (node, channel, ticket).
    pub ready: Vec<(String, String, u64)>,
    /// Messages this returns true for, given (from, to, message), are lost when sent (a
    /// full send queue on a link that stays up).
    pub lose: Option<fn(&str, &str, &NodeMsg) -> bool>,
    /// Every event ordered anywhere, by its data, in the order it was ordered (what an
    /// HTTP publish's 200 means).
    pub ordered: BTreeSet<String>,
}

impl Sim {
    pub fn new(ids: &[&str]) -> Sim {
        let mut sim = Sim {
            nodes: BTreeMap::new(),
            cut: BTreeSet::new(),
            links: BTreeMap::new(),
            queues: BTreeMap::new(),
            ghosts: Vec::new(),
            holds: Vec::new(),
            links_first: false,
            gossip_interest: true,
            occupancy: Vec::new(),
            counts: Vec::new(),
            ready: Vec::new(),
            lose: None,
            ordered: BTreeSet::new(),
        };
        for id in ids {
            let key = NodeKey::new(NodeId::new(id).unwrap(), 1);
            sim.nodes.insert((*id).to_owned(), SimNode::new(key));
        }
        sim.settle();
        sim
    }

    pub fn ids(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }

    pub fn reachable(&self, from: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::from([from.to_owned()]);
        let mut todo = vec![from.to_owned()];
        while let Some(x) = todo.pop() {
            for (y, n) in &self.nodes {
                if n.running && !seen.contains(y) && !self.cut.contains(&pair(&x, y)) {
                    seen.insert(y.clone());
                    todo.push(y.clone());
                }
            }
        }
        seen
    }

    pub fn sync_views(&mut self) -> bool {
        let mut changed = false;
        for id in self.ids() {
            if !self.nodes[&id].running {
                continue;
            }
            let mut view: Vec<(NodeKey, InterestFilter, Option<Digest>)> = self
                .reachable(&id)
                .iter()
                .map(|y| {
                    let n = &self.nodes[y];
                    let f = if self.gossip_interest {
                        InterestFilter::from_gossip(
                            n.gossip.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                        )
                    } else {
                        InterestFilter::default()
                    };
                    let presence = n.gossip.get(KEY_PRESENCE).and_then(|d| Digest::decode(d));
                    (n.key(), f, presence)
                })
                .collect();
            for g in &self.ghosts {
                if g.id.as_str() != id {
                    view.push((g.clone(), InterestFilter::default(), None));
                }
            }
            view.sort_by(|a, b| a.0.cmp(&b.0));
            if view != self.nodes[&id].view {
                changed = true;
                let node = self.nodes.get_mut(&id).unwrap();
                node.view = view.clone();
                let vn = view
                    .into_iter()
                    .map(|(key, interest, presence)| ViewNode {
                        key,
                        interest,
                        answers_queries: true,
                        presence,
                    })
                    .collect();
                let actions = node.core.set_view(vn);
                self.apply(&id, actions);
            }
        }
        changed
    }

    pub fn sync_links(&mut self) -> bool {
        let mut changed = false;
        let ids = self.ids();
        for (i, a) in ids.iter().enumerate() {
            for b in &ids[i + 1..] {
                let p = pair(a, b);
                let (na, nb) = (&self.nodes[a], &self.nodes[b]);
                let want = na.running && nb.running && !self.cut.contains(&p);
                let keys = (na.key(), nb.key());
                let have = self.links.get(&p).cloned();
                if have.as_ref().is_some_and(|k| !want || *k != keys) {
                    changed = true;
                    let (ka, kb) = self.links.remove(&p).unwrap();
                    self.queues.remove(&(a.clone(), b.clone()));
                    self.queues.remove(&(b.clone(), a.clone()));
                    for (me, peer, peer_key) in [(a, b, kb), (b, a, ka)] {
                        let _ = peer;
                        if self.nodes[me].running {
                            let actions = self.nodes.get_mut(me).unwrap().core.link_down(&peer_key);
                            self.apply(me, actions);
                        }
                    }
                }
                if want && !self.links.contains_key(&p) {
                    changed = true;
                    self.links.insert(p.clone(), keys.clone());
                    let actions = self.nodes.get_mut(a).unwrap().core.link_up(&keys.1);
                    self.apply(a, actions);
                    let actions = self.nodes.get_mut(b).unwrap().core.link_up(&keys.0);
                    self.apply(b, actions);
                }
            }
        }
        changed
    }

    pub fn send(&mut self, from: &str, to: &str, msg: NodeMsg) {
        if !self.links.contains_key(&pair(from, to)) {
            return; // no link: dropped, like the real thing
        }
        if self.lose.is_some_and(|lose| lose(from, to, &msg)) {
            return;
        }
        let key = self.nodes[from].key();
        self.queues
            .entry((from.to_owned(), to.to_owned()))
            .or_default()
            .push_back((key, msg));
    }

    pub fn apply(&mut self, at: &str, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Send { to, msg } => self.send(at, to.as_str(), msg),
                Action::Broadcast(msg) => {
                    for peer in self.ids() {
                        if peer != at {
                            self.send(at, &peer, msg.clone());
                        }
                    }
                }
                Action::Order(order) => {
                    // What the engine does: encode once (here, the payload is the event's
                    // data), then fan out in this order.
                    self.ordered.insert(order.event.data.clone());
                    let payload = order.event.data.clone().into_bytes();
                    let actions = self.nodes.get_mut(at).unwrap().core.ordered(order, payload);
                    self.apply(at, actions);
                }
                Action::DeliverLocal {
                    channel, payload, ..
                } => {
                    let node = self.nodes.get_mut(at).unwrap();
                    node.delivered
                        .entry(channel)
                        .or_default()
                        .push(String::from_utf8(payload).unwrap());
                }
                Action::Presence { event, webhook } => {
                    let node = self.nodes.get_mut(at).unwrap();
                    let added = matches!(event.change, Change::Added { .. });
                    let seen = node.seen.entry(event.channel.clone()).or_default();
                    if added {
                        assert!(
                            seen.insert(event.user_id.clone()),
                            "{at}: duplicate member_added {} in {}",
                            event.user_id,
                            event.channel
                        );
                    } else {
                        assert!(
                            seen.remove(&event.user_id),
                            "{at}: member_removed of absent {} in {}",
                            event.user_id,
                            event.channel
                        );
                    }
                    let rec = (event.channel.clone(), event.user_id.clone(), added);
                    node.emitted.push(rec.clone());
                    if webhook {
                        node.webhooks.push(rec);
                    }
                }
                Action::ReleaseLater { node, .. } => self.holds.push((at.to_owned(), node)),
                // Queries are scatter-gather over real links: engine/tests/cluster_queries.rs.
                // History is the engine's (engine/tests/cluster_history.rs). Presence updates:
                // node/presence_update.rs's tests, engine/tests/cluster_presence_update.rs.
                Action::Terminate { .. }
                | Action::MemberUpdated { .. }
                | Action::PeerQuery { .. }
                | Action::PeerAnswer { .. }
                | Action::AwaitPublished { .. }
                | Action::History { .. }
                | Action::Token { .. }
                | Action::Pattern { .. }
                | Action::PatternAck { .. } => {}
                Action::Occupancy {
                    channel, occupied, ..
                } => self.occupancy.push((at.to_owned(), channel, occupied)),
                Action::SubscriptionCount { channel, count, .. } => {
                    self.counts.push((at.to_owned(), channel, count))
                }
                Action::InterestReady {
                    channel, ticket, ..
                } => self.ready.push((at.to_owned(), channel, ticket)),
                Action::Gossip(kvs) => {
                    let node = self.nodes.get_mut(at).unwrap();
                    for (k, v) in kvs {
                        match v {
                            Some(v) => node.gossip.insert(k, v),
                            None => node.gossip.remove(&k),
                        };
                    }
                }
            }
        }
    }

    pub fn drain(&mut self) -> bool {
        let mut moved = false;
        loop {
            let dirs: Vec<(String, String)> = self
                .queues
                .iter()
                .filter(|(_, q)| !q.is_empty())
                .map(|(d, _)| d.clone())
                .collect();
            if dirs.is_empty() {
                return moved;
            }
            for (from, to) in dirs {
                let Some((key, msg)) = self
                    .queues
                    .get_mut(&(from.clone(), to.clone()))
                    .and_then(|q| q.pop_front())
                else {
                    continue;
                };
                moved = true;
                let actions = self.nodes.get_mut(&to).unwrap().core.on_msg(&key, msg);
                self.apply(&to, actions);
            }
        }
    }

    pub fn settle(&mut self) {
        for _ in 0..100 {
            let mut changed = if self.links_first {
                let l = self.sync_links();
                self.sync_views() | l
            } else {
                let v = self.sync_views();
                self.sync_links() | v
            };
            changed |= self.drain();
            if !changed {
                return;
            }
        }
        panic!("the simulation does not settle");
    }

    pub fn act(&mut self, id: &str, f: impl FnOnce(&mut NodeCore) -> Vec<Action>) {
        let actions = f(&mut self.nodes.get_mut(id).unwrap().core);
        self.apply(id, actions);
    }

    pub fn cut_off(&mut self, id: &str) {
        for other in self.ids() {
            if other != id {
                self.cut.insert(pair(id, &other));
            }
        }
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// The hold time passes: every node releases the departed nodes it holds.
    pub fn release_holds(&mut self) {
        for (at, node) in std::mem::take(&mut self.holds) {
            if self.nodes[&at].running {
                self.act(&at, |c| c.release(&node));
            }
        }
    }

    pub fn crash(&mut self, id: &str) {
        self.nodes.get_mut(id).unwrap().running = false;
    }

    /// Starts `id` again, empty, with the next generation.
    pub fn restart(&mut self, id: &str) -> NodeKey {
        let old = self.nodes[id].key();
        let key = NodeKey::new(old.id.clone(), old.generation + 1);
        self.nodes.insert(id.to_owned(), SimNode::new(key.clone()));
        key
    }

    pub fn subscribe_all(&mut self, channels: &[String]) {
        for id in self.ids() {
            for ch in channels {
                self.act(&id, |c| c.set_interest(APP, ch, true));
            }
        }
    }

    pub fn join(&mut self, id: &str, ch: &str, user: &str) {
        let info = Some(format!("{{\"on\":\"{id}\"}}"));
        self.act(id, |c| c.presence_join(APP, ch, user, info));
    }

    pub fn seen(&self, id: &str, ch: &str) -> BTreeSet<String> {
        self.nodes[id].seen.get(ch).cloned().unwrap_or_default()
    }

    pub fn clear_logs(&mut self) {
        self.occupancy.clear();
        self.counts.clear();
        self.ready.clear();
        for n in self.nodes.values_mut() {
            n.emitted.clear();
            n.webhooks.clear();
            n.delivered.clear();
        }
    }
}

pub fn set(users: &[&str]) -> BTreeSet<String> {
    users.iter().map(|u| (*u).to_owned()).collect()
}

pub fn channels(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("presence-room-{i}")).collect()
}

pub fn ids(live: &[&str]) -> Vec<NodeId> {
    live.iter().map(|i| NodeId::new(i).unwrap()).collect()
}

/// Members for the presence scenarios: a, b, c each have their own users, and `both` is
/// connected on b and c.
pub fn presence_cluster(chs: &[String]) -> Sim {
    let mut sim = Sim::new(&["a", "b", "c"]);
    sim.subscribe_all(chs);
    sim.settle();
    for ch in chs {
        sim.join("a", ch, "u-a");
        sim.join("b", ch, "u-b");
        sim.join("b", ch, "both");
        sim.join("c", ch, "both");
        sim.join("c", ch, "u-c1");
        sim.join("c", ch, "u-c2");
    }
    sim.settle();
    let all = set(&["u-a", "u-b", "both", "u-c1", "u-c2"]);
    for id in ["a", "b", "c"] {
        for ch in chs {
            assert_eq!(sim.seen(id, ch), all, "{id} {ch}");
        }
    }
    // Each join fired exactly one webhook cluster-wide, at the owner.
    let webhooks: usize = sim.nodes.values().map(|n| n.webhooks.len()).sum();
    assert_eq!(webhooks, chs.len() * 5);
    sim.clear_logs();
    sim
}

/// An event whose data (the sim's encoding of it) is `data`.
pub fn event(data: impl Into<Vec<u8>>) -> raptor_cluster::wire::WireEvent {
    raptor_cluster::wire::WireEvent {
        name: "e".into(),
        data: String::from_utf8(data.into()).expect("utf-8 test data"),
        user_id: None,
    }
}
