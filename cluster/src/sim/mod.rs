//! # The scale simulator (feature `sim`)
//!
//! Tens of real [`NodeCore`]s on one simulated clock, to see how the cluster's design
//! behaves past the machine it runs on: how long membership, presence and interest take to
//! agree after a join, a crash and a partition heal; how many bytes gossip and the links
//! carry per node per second; how much memory each node spends on the other nodes' state.
//! `raptor-bench cluster-sim` drives it and writes docs/cluster.md's "Scaling" section.
//!
//! The nodes' protocol logic is the production code: every node is a [`NodeCore`], fed the
//! views, link events and frames the engine's gateway would feed it. The simulator stands in
//! for the two transports and for time:
//!
//! * **Gossip** is a model of chitchat's scuttlebutt ([`gossip`]): rounds every 100 ms,
//!   fan-out 3, digests and MTU-bounded deltas sized as chitchat serializes them, and
//!   chitchat's phi failure detector with our settings, so crash detection time is derived
//!   from the documented settings, not assumed. Each node's live view is built from it the
//!   way `membership` builds `LiveView` (ready, not leaving, newest snapshot of the keys).
//! * **Links** are FIFO per direction with a latency and a bandwidth (default 0.2 ms, 10
//!   Gbit/s). Every frame is encoded with the real wire encoder ([`crate::wire::encode`];
//!   its length is what is counted) and decoded at the receiver. The lower id dials when it
//!   sees the peer live (handshake: 4 round trips, TCP + TLS 1.3 + the secret proofs +
//!   `Hello`); a session ends when either end drops the peer from its live view, when a
//!   node is killed (the kernel closes its sockets: the peers see it one latency later), or
//!   3 s into a partition (the link's idle timeout). A frame sent into a partition is lost.
//! * **CPU** is measured: each call into a node's `NodeCore` advances that node's own busy
//!   clock by the wall time the call took on this machine, and the node handles its next
//!   view change or frame only when it is free (one gateway thread per node, as in the
//!   engine). Decoding and gossip run elsewhere (the cluster thread) and cost nothing here.
//! * **Memory** is measured with [`alloc::TaggedAlloc`]: allocations made inside a node's
//!   calls (and when decoding frames for it) are counted to that node.
//!
//! What is not modelled: the engine's shards (fanout to sockets, history), packet loss on
//! gossip, TLS record overhead, and chitchat's tombstone GC. docs/cluster.md ("Scaling")
//! states the results and these limits.

pub mod alloc;
pub mod gossip;
mod load;
mod run;

pub use load::{Load, LoadSpec};
pub use run::{run, Memory, Phase, PhaseReport, Report, SimConfig, Steady};

use crate::node::{Action, NodeCore, ViewNode};
use crate::wire::NodeMsg;
use crate::{NodeId, NodeKey};
use gossip::{Gossip, Snapshot};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The application every simulated channel belongs to.
pub const APP: &str = "1";
/// Round trips a link takes to come up: TCP, TLS 1.3, the two secret proofs, `Hello`.
const HANDSHAKE_RTTS: u64 = 4;
/// The dial loop's first reconnect delay (`LinkConfig::backoff_min`).
const DIAL_RETRY_US: u64 = 100_000;
/// The link's idle timeout (`LinkConfig::idle_timeout`): a session across a partition ends.
const IDLE_TIMEOUT_US: u64 = 3_000_000;

/// Something that happens at a simulated time.
enum Ev {
    Round(usize),
    Tick(usize),
    /// Node's gossip knowledge changed: give its core the new view (if it differs).
    View(usize),
    /// A frame reaches `to` on the link session `session`.
    Arrive {
        from: usize,
        to: usize,
        session: u64,
        frame: Rc<Vec<u8>>,
    },
    /// The dialer's handshake with `b` completes.
    LinkUp {
        a: usize,
        b: usize,
    },
    /// A link across a partition reaches its idle timeout.
    Idle {
        a: usize,
        b: usize,
        session: u64,
    },
    Release {
        at: usize,
        node: NodeKey,
    },
    /// The node is free: take the next piece of work from its inbox.
    Wake(usize),
}

/// Work that waits for a node's gateway thread, in arrival order.
enum Work {
    Tick,
    View,
    Frame {
        from: usize,
        session: u64,
        frame: Rc<Vec<u8>>,
    },
}

struct Queued {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// One simulated node: a real core and the engine-side state the simulator keeps for it.
pub struct SimNode {
    pub core: NodeCore,
    pub running: bool,
    /// When its gateway thread is free again (µs of simulated time).
    busy_until: u64,
    /// The view last given to the core: (node, snapshot version).
    view: Vec<(usize, u64)>,
    view_pending: bool,
    /// Work that arrived while it was busy (FIFO), and whether a wake is scheduled.
    inbox: std::collections::VecDeque<Work>,
    wake_pending: bool,
    /// Measured CPU time spent in its core (µs).
    pub cpu_us: u64,
    /// Frames written to local subscribers (`DeliverLocal`).
    pub deliveries: u64,
    /// Member events sent to local subscribers.
    pub member_events: u64,
    /// Link bytes sent (encoded frames).
    pub link_sent: u64,
    pub link_frames: u64,
}

/// A link between two nodes (index `a < b`).
#[derive(Clone, Default)]
struct Link {
    /// The current session (0: down); frames of an older session are dropped.
    session: u64,
    dialing: bool,
    /// When each direction's wire is free again (a → b, b → a).
    free_at: [u64; 2],
}

/// The simulated cluster: nodes, gossip, links and the clock.
pub struct Sim {
    pub nodes: Vec<SimNode>,
    pub keys: Vec<NodeKey>,
    pub gossip: Gossip,
    links: Vec<Link>,
    next_session: u64,
    queue: BinaryHeap<Reverse<Queued>>,
    seq: u64,
    /// Simulated time, µs.
    pub now: u64,
    /// Partition: each node's side; `None`: no partition.
    pub sides: Option<Vec<u8>>,
    latency_us: u64,
    bytes_per_us: f64,
    /// Count measured CPU time (off: every call is instantaneous).
    cpu: bool,
    /// Frames lost in a partition, or sent without a link.
    pub lost: u64,
    pub rng: fastrand::Rng,
}

impl Sim {
    pub fn new(n: usize, latency_us: u64, link_gbit: f64, cpu: bool, seed: u64) -> Sim {
        let keys: Vec<NodeKey> = (0..n)
            .map(|i| NodeKey::new(NodeId::new(&format!("node-{i:02}")).expect("valid id"), 1))
            .collect();
        let nodes = keys
            .iter()
            .enumerate()
            .map(|(i, k)| SimNode::new(i, k.clone()))
            .collect();
        let id_len = keys.iter().map(|k| k.id.as_str().len()).collect();
        Sim {
            nodes,
            gossip: Gossip::new(id_len, (0..n.min(3)).collect(), seed),
            keys,
            links: vec![Link::default(); n * n],
            next_session: 1,
            queue: BinaryHeap::new(),
            seq: 0,
            now: 0,
            sides: None,
            latency_us,
            bytes_per_us: link_gbit * 1e9 / 8.0 / 1e6,
            cpu,
            lost: 0,
            rng: fastrand::Rng::with_seed(seed ^ 0x5eed),
        }
    }

    pub fn n(&self) -> usize {
        self.nodes.len()
    }

    fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(Queued {
            at,
            seq: self.seq,
            ev,
        }));
    }

    /// Whether datagrams and frames get from `a` to `b` (no partition between them).
    pub fn reach(&self, a: usize, b: usize) -> bool {
        self.sides.as_ref().is_none_or(|s| s[a] == s[b])
    }

    /// Starts node `i` (its core must be fresh): gossip keys, rounds and ticks begin.
    pub fn start(&mut self, i: usize) {
        self.nodes[i].running = true;
        self.gossip.start(i);
        let peer_addr = format!("10.0.{}.{}:7947", i / 250, i % 250 + 1);
        self.gossip
            .set(i, crate::membership::KEY_PEER_ADDR, Some(&peer_addr));
        self.gossip.set(
            i,
            crate::membership::KEY_STATUS,
            Some(crate::membership::STATUS_READY),
        );
        self.gossip
            .set(i, crate::membership::KEY_QUERIES, Some("1"));
        let digest = self.nodes[i].core.own_presence_digest().encode();
        self.gossip
            .set(i, crate::membership::KEY_PRESENCE, Some(&digest));
        let interest = crate::sim::alloc::with_tag(i + 1, || self.nodes[i].core.interest_gossip());
        for (k, v) in interest {
            self.gossip.set(i, &k, Some(&v));
        }
        let phase = self.rng.u64(..gossip::GOSSIP_INTERVAL_US);
        self.push(self.now + phase, Ev::Round(i));
        let tick = self.rng.u64(..crate::node::TICK.as_micros() as u64);
        self.push(self.now + tick, Ev::Tick(i));
    }

    /// Kills node `i`: no more gossip, its links close (peers notice one latency later).
    pub fn crash(&mut self, i: usize) {
        self.nodes[i].running = false;
        self.gossip.stop(i);
        for p in 0..self.n() {
            if p != i && self.link(i, p).session != 0 {
                self.link_down(i, p, self.now + self.latency_us);
            }
        }
    }

    /// Replaces node `i`'s core with a fresh one of the next generation (not started).
    pub fn replace(&mut self, i: usize) {
        let g = self.keys[i].generation + 1;
        self.keys[i] = NodeKey::new(self.keys[i].id.clone(), g);
        self.nodes[i] = SimNode::new(i, self.keys[i].clone());
    }

    fn link(&self, a: usize, b: usize) -> &Link {
        let (x, y) = (a.min(b), a.max(b));
        &self.links[x * self.n() + y]
    }

    fn link_mut(&mut self, a: usize, b: usize) -> &mut Link {
        let (x, y) = (a.min(b), a.max(b));
        let n = self.n();
        &mut self.links[x * n + y]
    }

    pub fn linked(&self, a: usize, b: usize) -> bool {
        self.link(a, b).session != 0
    }

    /// Runs one core call at node `i` at time `at` (the caller made sure it is free),
    /// charging its CPU time and applying its actions when it ends.
    pub fn call(&mut self, i: usize, at: u64, f: impl FnOnce(&mut NodeCore) -> Vec<Action>) {
        let start = at.max(self.nodes[i].busy_until);
        let clock = Instant::now();
        let actions = alloc::with_tag(i + 1, || f(&mut self.nodes[i].core));
        let cost = if self.cpu {
            clock.elapsed().as_micros() as u64
        } else {
            0
        };
        let end = start + cost;
        let node = &mut self.nodes[i];
        node.busy_until = end;
        node.cpu_us += cost;
        self.apply(i, end, actions);
    }

    fn apply(&mut self, i: usize, at: u64, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Send { to, msg } => {
                    if let Some(p) = self.index_of(&to) {
                        let frame = Rc::new(encode(&msg));
                        self.transmit(i, p, frame, at);
                    }
                }
                Action::Broadcast(msg) => {
                    let frame = Rc::new(encode(&msg));
                    for p in 0..self.n() {
                        if p != i && self.linked(i, p) {
                            self.transmit(i, p, frame.clone(), at);
                        }
                    }
                }
                Action::Order(order) => {
                    // The engine encodes the Pusher message once; its size is what crosses.
                    let payload = format!(
                        "{{\"event\":\"{}\",\"channel\":\"{}\",\"data\":{:?}}}",
                        order.event.name, order.channel, order.event.data
                    )
                    .into_bytes();
                    self.call(i, at, |c| c.ordered(order, payload));
                }
                Action::DeliverLocal { .. } => self.nodes[i].deliveries += 1,
                Action::Presence { .. } => self.nodes[i].member_events += 1,
                Action::Gossip(kvs) => {
                    for (k, v) in kvs {
                        self.gossip.set(i, &k, v.as_deref());
                    }
                }
                Action::ReleaseLater { node, after } => {
                    self.push(at + after.as_micros() as u64, Ev::Release { at: i, node })
                }
                _ => {}
            }
        }
    }

    fn index_of(&self, id: &NodeId) -> Option<usize> {
        self.keys.iter().position(|k| k.id == *id)
    }

    fn transmit(&mut self, from: usize, to: usize, frame: Rc<Vec<u8>>, at: u64) {
        let link = self.link(from, to).clone();
        if link.session == 0 || !self.reach(from, to) || !self.nodes[to].running {
            self.lost += 1;
            return;
        }
        let dir = usize::from(from > to);
        let start = at.max(link.free_at[dir]);
        let done = start + (frame.len() as f64 / self.bytes_per_us).ceil() as u64;
        self.link_mut(from, to).free_at[dir] = done;
        self.nodes[from].link_sent += frame.len() as u64;
        self.nodes[from].link_frames += 1;
        let arrive = done + self.latency_us;
        self.push(
            arrive,
            Ev::Arrive {
                from,
                to,
                session: link.session,
                frame,
            },
        );
    }

    fn link_down(&mut self, a: usize, b: usize, at: u64) {
        let l = self.link_mut(a, b);
        if l.session == 0 {
            return;
        }
        l.session = 0;
        l.dialing = false;
        // The dialer (lower id) reconnects while it still holds the peer live.
        let (d, p) = (a.min(b), a.max(b));
        if self.nodes[d].running && self.sees(d, p) {
            self.link_mut(d, p).dialing = true;
            let up = at + DIAL_RETRY_US + HANDSHAKE_RTTS * 2 * self.latency_us;
            self.push(up, Ev::LinkUp { a: d, b: p });
        }
        for (me, peer) in [(a, b), (b, a)] {
            if self.nodes[me].running {
                let key = self.keys[peer].clone();
                self.call(me, at, |c| c.link_down(&key));
            }
        }
    }

    /// Runs events until simulated time `until` (µs).
    pub fn run_until(&mut self, until: u64) {
        while let Some(Reverse(q)) = self.queue.peek() {
            if q.at > until {
                break;
            }
            let Some(Reverse(q)) = self.queue.pop() else {
                break;
            };
            self.now = self.now.max(q.at);
            self.handle(q.at, q.ev);
        }
        self.now = self.now.max(until);
    }

    fn handle(&mut self, at: u64, ev: Ev) {
        match ev {
            Ev::Round(i) => {
                if !self.nodes[i].running {
                    return;
                }
                let sides = self.sides.clone();
                let reach = move |a: usize, b: usize| sides.as_ref().is_none_or(|s| s[a] == s[b]);
                for j in self.gossip.round(i, at, &reach) {
                    self.view_changed(j, at);
                }
                self.push(at + gossip::GOSSIP_INTERVAL_US, Ev::Round(i));
            }
            Ev::Tick(i) => {
                if !self.nodes[i].running {
                    return;
                }
                self.enqueue(i, at, Work::Tick);
                self.push(at + crate::node::TICK.as_micros() as u64, Ev::Tick(i));
            }
            Ev::View(i) => self.enqueue(i, at, Work::View),
            Ev::Arrive {
                from,
                to,
                session,
                frame,
            } => self.enqueue(
                to,
                at,
                Work::Frame {
                    from,
                    session,
                    frame,
                },
            ),
            Ev::Wake(i) => {
                self.nodes[i].wake_pending = false;
                if let Some(w) = self.nodes[i].inbox.pop_front() {
                    self.work(i, at, w);
                }
                self.schedule_wake(i);
            }
            Ev::LinkUp { a, b } => {
                if !self.nodes[a].running || !self.sees(a, b) || self.linked(a, b) {
                    self.link_mut(a, b).dialing = false;
                    return;
                }
                if !self.nodes[b].running || !self.reach(a, b) {
                    // The dial loop tries again while the peer is wanted (backoff from 100 ms).
                    self.push(at + DIAL_RETRY_US, Ev::LinkUp { a, b });
                    return;
                }
                self.link_mut(a, b).dialing = false;
                let session = self.next_session;
                self.next_session += 1;
                let l = self.link_mut(a, b);
                l.session = session;
                l.free_at = [at, at];
                let (ka, kb) = (self.keys[a].clone(), self.keys[b].clone());
                self.call(a, at, |c| c.link_up(&kb));
                self.call(b, at, |c| c.link_up(&ka));
            }
            Ev::Idle { a, b, session } => {
                if self.link(a, b).session == session && !self.reach(a, b) {
                    self.link_down(a, b, at);
                }
            }
            Ev::Release { at: i, node } => {
                if self.nodes[i].running {
                    self.call(i, at, |c| c.release(&node));
                }
            }
        }
    }

    /// Work for node `i`: done now if it is free and nothing waits before it, queued
    /// otherwise (one wake at a time, so a backlog costs one event per item).
    fn enqueue(&mut self, i: usize, at: u64, w: Work) {
        if !self.nodes[i].running {
            if matches!(w, Work::Frame { .. }) {
                self.lost += 1;
            }
            return;
        }
        if self.nodes[i].inbox.is_empty() && self.nodes[i].busy_until <= at {
            self.work(i, at, w);
        } else if matches!(w, Work::View) {
            // The engine's gateway takes views in a task of their own (a watch channel): a
            // view is applied after the call in progress, not behind every frame waiting.
            self.nodes[i].inbox.push_front(w);
        } else {
            self.nodes[i].inbox.push_back(w);
        }
        self.schedule_wake(i);
    }

    fn schedule_wake(&mut self, i: usize) {
        let node = &self.nodes[i];
        if !node.inbox.is_empty() && !node.wake_pending {
            let t = node.busy_until.max(self.now);
            self.nodes[i].wake_pending = true;
            self.push(t, Ev::Wake(i));
        }
    }

    fn work(&mut self, i: usize, at: u64, w: Work) {
        if !self.nodes[i].running {
            return;
        }
        let at = at.max(self.nodes[i].busy_until);
        match w {
            Work::Tick => self.call(i, at, NodeCore::tick),
            Work::View => {
                self.nodes[i].view_pending = false;
                self.give_view(i, at);
            }
            Work::Frame {
                from,
                session,
                frame,
            } => {
                if self.link(from, i).session != session {
                    self.lost += 1;
                    return;
                }
                let msg = alloc::with_tag(i + 1, || crate::wire::decode(&frame));
                let Ok(Some((msg, _))) = msg else {
                    self.lost += 1;
                    return;
                };
                let key = self.keys[from].clone();
                self.call(i, at, |c| c.on_msg(&key, msg));
            }
        }
    }

    fn view_changed(&mut self, i: usize, at: u64) {
        if self.nodes[i].running && !self.nodes[i].view_pending {
            self.nodes[i].view_pending = true;
            self.push(at, Ev::View(i));
        }
    }

    /// Whether node `a`'s live view (as last given to its core) holds `b`.
    fn sees(&self, a: usize, b: usize) -> bool {
        self.nodes[a].view.iter().any(|(j, _)| *j == b)
    }

    fn give_view(&mut self, i: usize, at: u64) {
        let view: Vec<(usize, Rc<Snapshot>)> = self.gossip.live_view(i);
        let short: Vec<(usize, u64)> = view.iter().map(|(j, s)| (*j, s.version)).collect();
        if short == self.nodes[i].view {
            return;
        }
        let before: Vec<usize> = self.nodes[i].view.iter().map(|(j, _)| *j).collect();
        self.nodes[i].view = short;
        let keys = &self.keys;
        let nodes: Vec<ViewNode> = alloc::with_tag(i + 1, || {
            view.iter()
                .map(|(j, s)| ViewNode {
                    key: keys[*j].clone(),
                    interest: s.interest.clone(),
                    answers_queries: true,
                    presence: s.presence,
                })
                .collect()
        });
        self.call(i, at, |c| c.set_view(nodes));
        // Links follow the view: dial peers it holds live, end sessions with peers it does not.
        for p in 0..self.n() {
            if p == i {
                continue;
            }
            let sees = self.sees(i, p);
            // A session ends when its peer left the view; one with a peer not seen yet
            // (it dialed first) stays (`Links::set_peers`).
            if !sees && before.contains(&p) && self.linked(i, p) {
                let at = self.nodes[i].busy_until;
                self.link_down(i, p, at);
            } else if sees && i < p && !self.linked(i, p) && !self.link(i, p).dialing {
                self.link_mut(i, p).dialing = true;
                let up = self.nodes[i].busy_until + HANDSHAKE_RTTS * 2 * self.latency_us;
                self.push(up, Ev::LinkUp { a: i, b: p });
            }
        }
    }

    /// Starts a partition: `side[i]` for each node. Sessions across it end at the idle
    /// timeout unless a view change ends them first.
    pub fn partition(&mut self, sides: Vec<u8>) {
        for a in 0..self.n() {
            for b in a + 1..self.n() {
                let s = self.link(a, b).session;
                if s != 0 && sides[a] != sides[b] {
                    self.push(self.now + IDLE_TIMEOUT_US, Ev::Idle { a, b, session: s });
                }
            }
        }
        self.sides = Some(sides);
    }

    pub fn heal(&mut self) {
        self.sides = None;
    }

    /// Simulated time as a duration.
    pub fn elapsed(&self) -> Duration {
        Duration::from_micros(self.now)
    }
}

impl SimNode {
    fn new(i: usize, key: NodeKey) -> SimNode {
        SimNode {
            core: alloc::with_tag(i + 1, || NodeCore::new(key)),
            running: false,
            busy_until: 0,
            view: Vec::new(),
            view_pending: false,
            inbox: std::collections::VecDeque::new(),
            wake_pending: false,
            cpu_us: 0,
            deliveries: 0,
            member_events: 0,
            link_sent: 0,
            link_frames: 0,
        }
    }
}

fn encode(msg: &NodeMsg) -> Vec<u8> {
    // The core only sends frames within the bound (presence syncs are chunked).
    crate::wire::encode(msg).unwrap_or_default()
}
