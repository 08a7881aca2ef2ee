//! Scripted multi-node scenarios over a simulated network that can cut and heal links.
//!
//! Each node is a real [`NodeCore`]. The simulation stands in for the two transports:
//!
//! * **membership:** a node's live view is every running node it can reach through uncut
//!   pairs (gossip is transitive), each with the interest summary it last gossiped;
//! * **links:** one FIFO queue per direction per pair of running, uncut nodes. Cutting a
//!   pair drops what is in flight both ways and reports the link down at both ends.
//!
//! `settle` runs membership and links to a fixed point, then delivers every queued message,
//! round-robin over the queues, until nothing moves. Subscribers are modelled per node: each
//! node subscribes to every channel, records the events it writes locally, and keeps the
//! member set a Pusher client would build from the member events, failing on any duplicate
//! `member_added` or a `member_removed` of an absent member.

use raptor_cluster::interest::InterestFilter;
use raptor_cluster::node::{Action, NodeCore, ViewNode};
use raptor_cluster::ownership::owner;
use raptor_cluster::presence::Change;
use raptor_cluster::wire::NodeMsg;
use raptor_cluster::{NodeId, NodeKey};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

const APP: &str = "1";

struct SimNode {
    core: NodeCore,
    running: bool,
    gossip: BTreeMap<String, String>,
    /// Last view given to the core: (key, interest).
    view: Vec<(NodeKey, InterestFilter)>,
    /// Frames written to local subscribers, per channel.
    delivered: BTreeMap<String, Vec<String>>,
    /// What this node's subscribers believe the members of each channel are.
    seen: BTreeMap<String, BTreeSet<String>>,
    /// Member events sent to local subscribers: (channel, user, added).
    emitted: Vec<(String, String, bool)>,
    /// Webhooks fired here: (channel, user, added).
    webhooks: Vec<(String, String, bool)>,
}

impl SimNode {
    fn new(key: NodeKey) -> SimNode {
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

    fn key(&self) -> NodeKey {
        self.core.me().clone()
    }
}

fn pair(a: &str, b: &str) -> (String, String) {
    if a < b {
        (a.to_owned(), b.to_owned())
    } else {
        (b.to_owned(), a.to_owned())
    }
}

struct Sim {
    nodes: BTreeMap<String, SimNode>,
    cut: BTreeSet<(String, String)>,
    /// Links up, by pair, with the keys of both ends when it came up.
    links: BTreeMap<(String, String), (NodeKey, NodeKey)>,
    /// In-flight messages per direction (from, to).
    queues: BTreeMap<(String, String), VecDeque<(NodeKey, NodeMsg)>>,
    /// Keys that still show up in everyone's view (a crashed node not yet detected).
    ghosts: Vec<NodeKey>,
    /// Bring links up before views change (otherwise views first).
    links_first: bool,
    /// Carry interest summaries in the simulated gossip (off: only `Interest` messages).
    gossip_interest: bool,
    /// Occupancy events in the order they were emitted: (node, channel, occupied).
    occupancy: Vec<(String, String, bool)>,
}

impl Sim {
    fn new(ids: &[&str]) -> Sim {
        let mut sim = Sim {
            nodes: BTreeMap::new(),
            cut: BTreeSet::new(),
            links: BTreeMap::new(),
            queues: BTreeMap::new(),
            ghosts: Vec::new(),
            links_first: false,
            gossip_interest: true,
            occupancy: Vec::new(),
        };
        for id in ids {
            let key = NodeKey::new(NodeId::new(id).unwrap(), 1);
            sim.nodes.insert((*id).to_owned(), SimNode::new(key));
        }
        sim.settle();
        sim
    }

    fn ids(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }

    fn reachable(&self, from: &str) -> BTreeSet<String> {
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

    fn sync_views(&mut self) -> bool {
        let mut changed = false;
        for id in self.ids() {
            if !self.nodes[&id].running {
                continue;
            }
            let mut view: Vec<(NodeKey, InterestFilter)> = self
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
                    (n.key(), f)
                })
                .collect();
            for g in &self.ghosts {
                if g.id.as_str() != id {
                    view.push((g.clone(), InterestFilter::default()));
                }
            }
            view.sort_by(|a, b| a.0.cmp(&b.0));
            if view != self.nodes[&id].view {
                changed = true;
                let node = self.nodes.get_mut(&id).unwrap();
                node.view = view.clone();
                let vn = view
                    .into_iter()
                    .map(|(key, interest)| ViewNode { key, interest })
                    .collect();
                let actions = node.core.set_view(vn);
                self.apply(&id, actions);
            }
        }
        changed
    }

    fn sync_links(&mut self) -> bool {
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

    fn send(&mut self, from: &str, to: &str, msg: NodeMsg) {
        if !self.links.contains_key(&pair(from, to)) {
            return; // no link: dropped, like the real thing
        }
        let key = self.nodes[from].key();
        self.queues
            .entry((from.to_owned(), to.to_owned()))
            .or_default()
            .push_back((key, msg));
    }

    fn apply(&mut self, at: &str, actions: Vec<Action>) {
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
                Action::DeliverLocal { channel, frame, .. } => {
                    let node = self.nodes.get_mut(at).unwrap();
                    node.delivered
                        .entry(channel)
                        .or_default()
                        .push(String::from_utf8(frame).unwrap());
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
                Action::Terminate { .. } => {}
                Action::Occupancy {
                    channel, occupied, ..
                } => self.occupancy.push((at.to_owned(), channel, occupied)),
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

    fn drain(&mut self) -> bool {
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

    fn settle(&mut self) {
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

    fn act(&mut self, id: &str, f: impl FnOnce(&mut NodeCore) -> Vec<Action>) {
        let actions = f(&mut self.nodes.get_mut(id).unwrap().core);
        self.apply(id, actions);
    }

    fn cut_off(&mut self, id: &str) {
        for other in self.ids() {
            if other != id {
                self.cut.insert(pair(id, &other));
            }
        }
    }

    fn heal(&mut self) {
        self.cut.clear();
    }

    fn crash(&mut self, id: &str) {
        self.nodes.get_mut(id).unwrap().running = false;
    }

    /// Starts `id` again, empty, with the next generation.
    fn restart(&mut self, id: &str) -> NodeKey {
        let old = self.nodes[id].key();
        let key = NodeKey::new(old.id.clone(), old.generation + 1);
        self.nodes.insert(id.to_owned(), SimNode::new(key.clone()));
        key
    }

    fn subscribe_all(&mut self, channels: &[String]) {
        for id in self.ids() {
            for ch in channels {
                self.act(&id, |c| c.set_interest(APP, ch, true));
            }
        }
    }

    fn join(&mut self, id: &str, ch: &str, user: &str) {
        let info = Some(format!("{{\"on\":\"{id}\"}}"));
        self.act(id, |c| c.presence_join(APP, ch, user, info));
    }

    fn seen(&self, id: &str, ch: &str) -> BTreeSet<String> {
        self.nodes[id].seen.get(ch).cloned().unwrap_or_default()
    }

    fn clear_logs(&mut self) {
        self.occupancy.clear();
        for n in self.nodes.values_mut() {
            n.emitted.clear();
            n.webhooks.clear();
            n.delivered.clear();
        }
    }
}

fn set(users: &[&str]) -> BTreeSet<String> {
    users.iter().map(|u| (*u).to_owned()).collect()
}

fn channels(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("presence-room-{i}")).collect()
}

fn ids(live: &[&str]) -> Vec<NodeId> {
    live.iter().map(|i| NodeId::new(i).unwrap()).collect()
}

/// Members for the presence scenarios: a, b, c each have their own users, and `both` is
/// connected on b and c.
fn presence_cluster(chs: &[String]) -> Sim {
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

#[test]
fn publish_reaches_all_interested_nodes_in_owner_order() {
    let mut sim = Sim::new(&["a", "b", "c"]);
    let chs: Vec<String> = (0..6).map(|i| format!("room-{i}")).collect();
    sim.subscribe_all(&chs);
    sim.act("b", |c| c.set_interest(APP, "only-b", true));
    sim.settle();
    // Ownership spreads: not every channel on one node.
    let owners: BTreeSet<NodeId> = chs
        .iter()
        .map(|ch| owner(APP, ch, &ids(&["a", "b", "c"])).unwrap().clone())
        .collect();
    assert!(owners.len() > 1);

    // Interleaved publishes from every node, no settling in between.
    for i in 0..20 {
        for id in ["a", "b", "c"] {
            for ch in &chs {
                let frame = format!("{id}-{i}").into_bytes();
                sim.act(id, |c| c.publish(APP, ch, frame, None, None));
            }
            sim.act(id, |c| {
                c.publish(APP, "only-b", format!("{id}-{i}").into_bytes(), None, None)
            });
        }
        if i % 3 == 0 {
            sim.drain();
        }
    }
    sim.settle();
    for ch in &chs {
        let at_a = &sim.nodes["a"].delivered[ch];
        assert_eq!(at_a.len(), 60, "{ch}: every event once");
        for id in ["b", "c"] {
            assert_eq!(
                &sim.nodes[id].delivered[ch], at_a,
                "{ch}: same order at {id}"
            );
        }
        // Per publisher, its own order is kept.
        for p in ["a", "b", "c"] {
            let mine: Vec<&String> = at_a.iter().filter(|f| f.starts_with(p)).collect();
            let want: Vec<String> = (0..20).map(|i| format!("{p}-{i}")).collect();
            assert_eq!(mine, want.iter().collect::<Vec<_>>());
        }
    }
    assert_eq!(sim.nodes["b"].delivered["only-b"].len(), 60);
    assert!(!sim.nodes["a"].delivered.contains_key("only-b"));
    assert!(!sim.nodes["c"].delivered.contains_key("only-b"));
    for n in sim.nodes.values() {
        assert_eq!(n.core.counters().publish_not_owner, 0);
    }
}

/// Both interest paths on their own: `Interest` messages re-sent to the new owner, and the
/// gossiped summaries.
#[test]
fn ownership_moves_when_a_node_dies_and_delivery_goes_on() {
    for gossip_interest in [false, true] {
        let mut sim = Sim::new(&["a", "b", "c"]);
        sim.gossip_interest = gossip_interest;
        let chs: Vec<String> = (0..12).map(|i| format!("room-{i}")).collect();
        sim.subscribe_all(&chs);
        sim.settle();
        for ch in &chs {
            sim.act("c", |c| c.publish(APP, ch, b"before".to_vec(), None, None));
        }
        sim.crash("c");
        sim.settle();
        sim.clear_logs();
        for ch in &chs {
            sim.act("a", |c| c.publish(APP, ch, b"after".to_vec(), None, None));
        }
        sim.settle();
        for ch in &chs {
            for id in ["a", "b"] {
                assert_eq!(
                    sim.nodes[id].delivered[ch],
                    vec!["after"],
                    "{gossip_interest} {id} {ch}"
                );
            }
        }
        // And a node that joins later takes over its share and gets them too.
        let d = NodeKey::new(NodeId::new("d").unwrap(), 1);
        sim.nodes.insert("d".into(), SimNode::new(d));
        sim.subscribe_all(&chs);
        sim.settle();
        sim.clear_logs();
        for ch in &chs {
            sim.act("b", |c| c.publish(APP, ch, b"with-d".to_vec(), None, None));
        }
        sim.settle();
        for ch in &chs {
            for id in ["a", "b", "d"] {
                assert_eq!(
                    sim.nodes[id].delivered[ch],
                    vec!["with-d"],
                    "{gossip_interest} {id} {ch}"
                );
            }
        }
    }
}

#[test]
fn cut_node_users_are_removed_exactly_once_and_come_back_on_heal() {
    for links_first in [false, true] {
        let chs = channels(8);
        let mut sim = presence_cluster(&chs);
        sim.links_first = links_first;

        sim.cut_off("c");
        sim.settle();
        let kept = set(&["u-a", "u-b", "both"]);
        for ch in &chs {
            for id in ["a", "b"] {
                assert_eq!(sim.seen(id, ch), kept, "{id} {ch}");
                let mut removed: Vec<&str> = sim.nodes[id]
                    .emitted
                    .iter()
                    .filter(|(c, _, added)| c == ch && !added)
                    .map(|(_, u, _)| u.as_str())
                    .collect();
                removed.sort();
                assert_eq!(removed, vec!["u-c1", "u-c2"], "{id} {ch}");
            }
            // The webhook fires once, at the new owner among a and b.
            let owner_now = owner(APP, ch, &ids(&["a", "b"])).unwrap().to_string();
            for id in ["a", "b"] {
                let hooks: Vec<_> = sim.nodes[id]
                    .webhooks
                    .iter()
                    .filter(|(c, ..)| c == ch)
                    .collect();
                assert_eq!(
                    hooks.len(),
                    if id == owner_now { 2 } else { 0 },
                    "{id} {ch}"
                );
            }
            // The minority side follows its own view.
            assert_eq!(sim.seen("c", ch), set(&["both", "u-c1", "u-c2"]));
        }

        // While cut off, u-c2 leaves and u-c3 joins on c.
        for ch in &chs {
            sim.act("c", |c| c.presence_leave(APP, ch, "u-c2"));
            sim.join("c", ch, "u-c3");
        }
        sim.settle();
        sim.clear_logs();

        sim.heal();
        sim.settle();
        let all = set(&["u-a", "u-b", "both", "u-c1", "u-c3"]);
        for ch in &chs {
            for id in ["a", "b", "c"] {
                assert_eq!(sim.seen(id, ch), all, "links_first={links_first} {id} {ch}");
            }
            for id in ["a", "b"] {
                let mut added: Vec<&str> = sim.nodes[id]
                    .emitted
                    .iter()
                    .filter(|(c, _, _)| c == ch)
                    .map(|(_, u, added)| {
                        assert!(added, "only additions at the heal");
                        u.as_str()
                    })
                    .collect();
                added.sort();
                assert_eq!(added, vec!["u-c1", "u-c3"], "{id} {ch}");
            }
            assert!(sim
                .nodes
                .values()
                .all(|n| !n.emitted.iter().any(|(c, u, _)| c == ch && u == "u-c2")));
        }
    }
}

#[test]
fn restarted_node_never_resurrects_old_members() {
    let chs = channels(6);
    let mut sim = presence_cluster(&chs);
    let old_c = sim.nodes["c"].key();

    sim.crash("c");
    sim.settle();
    for ch in &chs {
        assert_eq!(sim.seen("a", ch), set(&["u-a", "u-b", "both"]));
    }
    sim.clear_logs();

    // c comes back empty with a new generation; only u-c1 reconnects.
    let new_c = sim.restart("c");
    assert!(new_c.generation > old_c.generation);
    sim.subscribe_all(&chs);
    for ch in &chs {
        sim.join("c", ch, "u-c1");
    }
    sim.settle();
    for ch in &chs {
        for id in ["a", "b", "c"] {
            assert_eq!(
                sim.seen(id, ch),
                set(&["u-a", "u-b", "both", "u-c1"]),
                "{id} {ch}"
            );
        }
    }
    // A late message from the old run changes nothing.
    sim.queues
        .entry(("c".into(), "a".into()))
        .or_default()
        .push_back((
            old_c.clone(),
            NodeMsg::PresenceJoin {
                app: APP.into(),
                channel: chs[0].clone(),
                user_id: "u-c2".into(),
                user_info: None,
            },
        ));
    sim.settle();
    assert_eq!(sim.seen("a", &chs[0]), set(&["u-a", "u-b", "both", "u-c1"]));
    assert!(sim
        .nodes
        .values()
        .all(|n| !n.emitted.iter().any(|(_, u, _)| u == "u-c2")));
}

#[test]
fn restart_seen_before_the_crash_is_detected() {
    let chs = channels(4);
    let mut sim = presence_cluster(&chs);
    let old_c = sim.nodes["c"].key();
    // c restarts faster than the failure detector: both generations are in the views.
    sim.restart("c");
    sim.ghosts.push(old_c);
    sim.subscribe_all(&chs);
    for ch in &chs {
        sim.join("c", ch, "u-c1");
    }
    sim.settle();
    for ch in &chs {
        for id in ["a", "b", "c"] {
            assert_eq!(
                sim.seen(id, ch),
                set(&["u-a", "u-b", "both", "u-c1"]),
                "{id} {ch}"
            );
        }
    }
    sim.ghosts.clear();
    sim.settle();
    for ch in &chs {
        assert_eq!(sim.seen("a", ch), set(&["u-a", "u-b", "both", "u-c1"]));
    }
}

#[test]
fn graceful_leave_is_immediate() {
    let chs = channels(3);
    let mut sim = presence_cluster(&chs);
    // c says Leaving; a and b drop it before membership notices.
    sim.act("c", |c| c.leave());
    sim.drain();
    for ch in &chs {
        for id in ["a", "b"] {
            assert_eq!(sim.seen(id, ch), set(&["u-a", "u-b", "both"]), "{id} {ch}");
        }
    }
    assert!(!sim.nodes["a"]
        .core
        .live()
        .iter()
        .any(|k| k.id.as_str() == "c"));
    sim.crash("c");
    sim.settle();
    for ch in &chs {
        assert_eq!(sim.seen("a", ch), set(&["u-a", "u-b", "both"]));
    }
}

/// The occupancy events of one channel since the logs were last taken: (node, occupied).
fn take_occupancy(sim: &mut Sim, ch: &str) -> Vec<(String, bool)> {
    let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut sim.occupancy)
        .into_iter()
        .partition(|(_, c, _)| c == ch);
    sim.occupancy = rest;
    mine.into_iter().map(|(n, _, o)| (n, o)).collect()
}

fn owner_among(ch: &str, live: &[&str]) -> String {
    owner(APP, ch, &ids(live)).unwrap().to_string()
}

/// Subscribers of a channel on b and c: one `occupied` from the owner when the first
/// appears, nothing for the second, one `vacated` when both are gone. Owners vary over the
/// channels (a, b or c), and it holds with and without interest summaries in gossip.
#[test]
fn occupancy_fires_once_cluster_wide() {
    for gossip_interest in [true, false] {
        let mut sim = Sim::new(&["a", "b", "c"]);
        sim.gossip_interest = gossip_interest;
        let chs: Vec<String> = (0..12).map(|i| format!("room-{i}")).collect();
        let owners: BTreeSet<String> = chs
            .iter()
            .map(|c| owner_among(c, &["a", "b", "c"]))
            .collect();
        assert_eq!(owners.len(), 3, "every node owns some");
        for ch in &chs {
            let o = owner_among(ch, &["a", "b", "c"]);
            let ctx = format!("gossip={gossip_interest} {ch} owned by {o}");
            sim.act("b", |c| c.set_interest(APP, ch, true));
            sim.settle();
            assert_eq!(
                take_occupancy(&mut sim, ch),
                vec![(o.clone(), true)],
                "{ctx}"
            );
            sim.act("c", |c| c.set_interest(APP, ch, true));
            sim.settle();
            assert_eq!(take_occupancy(&mut sim, ch), vec![], "{ctx}");
            sim.act("b", |c| c.set_interest(APP, ch, false));
            sim.settle();
            assert_eq!(take_occupancy(&mut sim, ch), vec![], "{ctx}");
            sim.act("c", |c| c.set_interest(APP, ch, false));
            sim.settle();
            assert_eq!(
                take_occupancy(&mut sim, ch),
                vec![(o.clone(), false)],
                "{ctx}"
            );
            // Unsettled: both subscribe and leave again before anything is delivered.
            sim.act("b", |c| c.set_interest(APP, ch, true));
            sim.act("c", |c| c.set_interest(APP, ch, true));
            sim.act("c", |c| c.set_interest(APP, ch, false));
            sim.act("b", |c| c.set_interest(APP, ch, false));
            sim.settle();
            // Whatever the owner saw, from it alone, alternating, and vacant in the end.
            let got = take_occupancy(&mut sim, ch);
            assert_eq!(got.len() % 2, 0, "{ctx}: {got:?}");
            for (k, (node, occupied)) in got.iter().enumerate() {
                assert_eq!((node, *occupied), (&o, k % 2 == 0), "{ctx}: {got:?}");
            }
        }
        assert!(sim.occupancy.is_empty());
    }
}

/// Subscribers on b and c of channels owned by every node; then a node dies. No channel
/// gets a second `occupied` from its new owner, and each gets one `vacated` when both
/// subscribers are gone (or, when the dead node was a subscriber, when the other goes).
#[test]
fn a_dead_owner_does_not_make_the_new_owner_repeat_occupied() {
    for dead in ["a", "b"] {
        let mut sim = Sim::new(&["a", "b", "c"]);
        let chs: Vec<String> = (0..12).map(|i| format!("room-{i}")).collect();
        for ch in &chs {
            sim.act("b", |c| c.set_interest(APP, ch, true));
            sim.act("c", |c| c.set_interest(APP, ch, true));
        }
        sim.settle();
        for ch in &chs {
            let o = owner_among(ch, &["a", "b", "c"]);
            assert_eq!(take_occupancy(&mut sim, ch), vec![(o, true)], "{ch}");
        }
        let moved: Vec<&String> = chs
            .iter()
            .filter(|ch| owner_among(ch, &["a", "b", "c"]) == dead)
            .collect();
        assert!(!moved.is_empty());

        sim.crash(dead);
        sim.settle();
        assert_eq!(
            sim.occupancy,
            vec![],
            "{dead} died: everything is still occupied"
        );

        let alive: Vec<&str> = ["a", "b", "c"].into_iter().filter(|n| *n != dead).collect();
        for ch in &chs {
            let o = owner_among(ch, &alive);
            for sub in ["b", "c"].into_iter().filter(|n| *n != dead) {
                sim.act(sub, |c| c.set_interest(APP, ch, false));
                sim.settle();
            }
            assert_eq!(
                take_occupancy(&mut sim, ch),
                vec![(o, false)],
                "{dead} died, {ch}"
            );
        }
    }
}

/// The last node with subscribers dies (or leaves): the owner fires one `vacated`.
#[test]
fn death_of_the_last_interested_node_vacates_once() {
    for graceful in [false, true] {
        let mut sim = Sim::new(&["a", "b", "c"]);
        let chs: Vec<String> = (0..12).map(|i| format!("room-{i}")).collect();
        for ch in &chs {
            sim.act("c", |c| c.set_interest(APP, ch, true));
        }
        sim.settle();
        for ch in &chs {
            let o = owner_among(ch, &["a", "b", "c"]);
            assert_eq!(take_occupancy(&mut sim, ch), vec![(o, true)], "{ch}");
        }
        if graceful {
            sim.act("c", |c| c.leave());
            sim.drain();
        }
        sim.crash("c");
        sim.settle();
        for ch in &chs {
            let got = take_occupancy(&mut sim, ch);
            if owner_among(ch, &["a", "b", "c"]) == "c" {
                // c owned it and was its only subscriber: its name died with it (documented).
                assert_eq!(got, vec![], "{ch}");
            } else {
                let o = owner_among(ch, &["a", "b"]);
                assert_eq!(got, vec![(o, false)], "graceful={graceful} {ch}");
            }
        }
        assert!(sim.occupancy.is_empty());
    }
}

/// A partition is two clusters, each announcing what it sees; after the heal the last event
/// matches the channel's state again. Here c, the only node with subscribers to channels
/// owned by a, is cut off: a fires `vacated` (c is gone from its view), c takes the
/// channels over silently (it cannot tell a crash from a cut), and at the heal a sees c's
/// interest as new and fires `occupied`.
#[test]
fn partition_and_heal_leave_the_last_event_matching_the_state() {
    let mut sim = Sim::new(&["a", "b", "c"]);
    let chs: Vec<String> = (0..40)
        .map(|i| format!("room-{i}"))
        .filter(|ch| owner_among(ch, &["a", "b", "c"]) == "a")
        .collect();
    assert!(!chs.is_empty());
    for ch in &chs {
        sim.act("c", |c| c.set_interest(APP, ch, true));
    }
    sim.settle();
    sim.cut_off("c");
    sim.settle();
    sim.heal();
    sim.settle();
    for ch in &chs {
        let a = String::from("a");
        assert_eq!(
            take_occupancy(&mut sim, ch),
            vec![(a.clone(), true), (a.clone(), false), (a, true)],
            "{ch}"
        );
    }
    assert!(sim.occupancy.is_empty());
}
