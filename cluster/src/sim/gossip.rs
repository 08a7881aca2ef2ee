//! chitchat 0.13's scuttlebutt gossip, modelled for the scale simulator.
//!
//! What is modelled, from chitchat's source and [`crate::membership`]'s settings:
//!
//! * **State.** Each node owns a versioned key/value map (every `set` takes the node's next
//!   version; a delete leaves a tombstone) and a heartbeat it increments once per round.
//! * **Rounds.** Every [`GOSSIP_INTERVAL_US`] each running node gossips with
//!   [`GOSSIP_FANOUT`] random nodes it holds live (any known node while it knows none live),
//!   plus, as chitchat does, a random dead node with probability `dead / (live + 1)` and a
//!   random seed with probability `seeds / (live + dead)` when no seed was picked.
//! * **Exchange.** `Syn` (the initiator's digest) → `SynAck` (the peer's digest and the delta
//!   the initiator lacks) → `Ack` (the delta the peer lacks), applied at once (the round trip
//!   is well under the round). A digest lists every known node: id, generation, gossip
//!   address, heartbeat, GC version and max version. A delta goes node by node, unknown
//!   nodes first (lowest max version first), then the nodes with the most stale keys, each
//!   node's keys in version order, and stops at the datagram limit (65,507 bytes, chitchat's
//!   `MAX_UDP_DATAGRAM_PAYLOAD_SIZE`); the receiver then knows that node up to the last key
//!   it got. Sizes follow chitchat's serialization (length-prefixed strings, u64 versions)
//!   plus the seal of [`crate::gossip_seal`] (55 bytes per datagram part).
//! * **Failure detection.** chitchat's phi detector: a node's heartbeat arrivals (a higher
//!   heartbeat learnt from any digest) feed a window of intervals whose mean is smoothed
//!   towards the 100 ms prior with weight 5; a node is live while
//!   `elapsed / mean <= 8` and at least one interval is known, dead otherwise (its window is
//!   then cleared), and forgotten 4 s after its death (`dead_node_grace`).
//!
//! Not modelled: packet loss, chitchat's key GC of tombstones, and partial states. A node's
//! view of another node's keys is the newest whole [`Snapshot`] (taken once per round of the
//! owner) at or below the version it knows, so a state that arrives over several datagrams
//! shows only once it is complete up to a snapshot: slightly late, never ahead.

use crate::gossip_seal;
use crate::interest::InterestFilter;
use crate::membership::{KEY_PEER_ADDR, KEY_PRESENCE, KEY_STATUS, STATUS_LEAVING};
use crate::presence::Digest;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

/// `MembershipConfig::gossip_interval`.
pub const GOSSIP_INTERVAL_US: u64 = 100_000;
/// chitchat's `GOSSIP_COUNT`.
pub const GOSSIP_FANOUT: usize = 3;
/// `MembershipConfig::phi_threshold`.
pub const PHI_THRESHOLD: f64 = 8.0;
/// `MembershipConfig::initial_interval`, the detector's prior mean.
const PRIOR_INTERVAL_S: f64 = 0.1;
/// chitchat's additive smoothing weight of the prior.
const PRIOR_WEIGHT: f64 = 5.0;
/// chitchat's sampling window (intervals kept).
const WINDOW: usize = 1000;
/// `MembershipConfig::dead_node_grace`.
pub const DEAD_GRACE_US: u64 = 4_000_000;
/// chitchat's `MAX_UDP_DATAGRAM_PAYLOAD_SIZE`: the largest message, digest and delta included.
const MAX_MESSAGE: usize = 65_507;
/// chitchat's envelope (protocol version, message type) and the cluster id (`prod`-sized).
const ENVELOPE: usize = 2 + 2 + 8;
/// A chitchat id on the wire without the node id's bytes: length, generation, address.
const ID_FIXED: usize = 2 + 8 + 7;
/// A digest entry beyond the id: heartbeat, last GC version, max version.
const DIGEST_FIXED: usize = 24;
/// A node delta's header beyond the id: from version, last GC version, max version.
const DELTA_NODE_FIXED: usize = 25;
/// A key/value beyond its bytes: two lengths, version, status.
const KV_FIXED: usize = 2 + 2 + 8 + 1;

/// What a node's gossiped keys say, as the engine's membership reads them.
#[derive(Debug)]
pub struct Snapshot {
    /// The owner's max version when taken.
    pub version: u64,
    pub interest: InterestFilter,
    pub presence: Option<Digest>,
    /// `peer_addr` set and not `leaving`: it counts in the live view.
    pub ready: bool,
}

#[derive(Default)]
struct Store {
    /// key → (value, version, deleted).
    kvs: BTreeMap<String, (String, u64, bool)>,
    /// version → key, for the current version of each key.
    by_version: BTreeMap<u64, String>,
    max_version: u64,
    heartbeat: u64,
    snapshots: VecDeque<Rc<Snapshot>>,
    dirty: bool,
    /// An `interest.*` key changed since the last snapshot (else its filter is reused: a
    /// presence digest changes far more often than a 256-bucket summary).
    interest_dirty: bool,
}

impl Store {
    fn kv_bytes(&self, key: &str) -> usize {
        self.kvs
            .get(key)
            .map_or(0, |(v, _, _)| KV_FIXED + key.len() + v.len())
    }

    fn snapshot(&mut self) {
        if !self.dirty && !self.snapshots.is_empty() {
            return;
        }
        self.dirty = false;
        let interest = match self.snapshots.back() {
            Some(last) if !self.interest_dirty => last.interest.clone(),
            _ => InterestFilter::from_gossip(
                self.kvs
                    .iter()
                    .filter(|(_, (_, _, deleted))| !deleted)
                    .map(|(k, (v, _, _))| (k.as_str(), v.as_str())),
            ),
        };
        self.interest_dirty = false;
        let live = |k: &str| {
            self.kvs
                .get(k)
                .filter(|(_, _, deleted)| !deleted)
                .map(|(v, _, _)| v.as_str())
        };
        let snap = Snapshot {
            version: self.max_version,
            interest,
            presence: live(KEY_PRESENCE).and_then(Digest::decode),
            ready: live(KEY_PEER_ADDR).is_some() && live(KEY_STATUS) != Some(STATUS_LEAVING),
        };
        self.snapshots.push_back(Rc::new(snap));
    }
}

/// What one node knows about another.
struct Known {
    version: u64,
    heartbeat: u64,
    last_heartbeat_us: Option<u64>,
    intervals: VecDeque<f64>,
    sum: f64,
    live: bool,
    dead_since: Option<u64>,
}

impl Known {
    fn new() -> Known {
        Known {
            version: 0,
            heartbeat: 0,
            last_heartbeat_us: None,
            intervals: VecDeque::new(),
            sum: 0.0,
            live: false,
            dead_since: None,
        }
    }

    fn report_heartbeat(&mut self, now: u64) {
        if let Some(last) = self.last_heartbeat_us {
            let s = (now - last) as f64 / 1e6;
            self.intervals.push_back(s);
            self.sum += s;
            if self.intervals.len() > WINDOW {
                self.sum -= self.intervals.pop_front().unwrap_or(0.0);
            }
        }
        self.last_heartbeat_us = Some(now);
    }

    /// chitchat's `update_node_liveness`; true when it changed.
    fn update_liveness(&mut self, now: u64) -> bool {
        let alive = match (self.last_heartbeat_us, self.intervals.len()) {
            (Some(last), len) if len > 0 => {
                let mean =
                    (self.sum + PRIOR_WEIGHT * PRIOR_INTERVAL_S) / (len as f64 + PRIOR_WEIGHT);
                ((now - last) as f64 / 1e6) / mean <= PHI_THRESHOLD
            }
            _ => false,
        };
        if !alive {
            self.intervals.clear();
            self.sum = 0.0;
            if self.dead_since.is_none() {
                self.dead_since = Some(now);
            }
        } else {
            self.dead_since = None;
        }
        let changed = alive != self.live;
        self.live = alive;
        changed
    }
}

/// Gossip bytes one node sent and received, split by what carried them.
#[derive(Clone, Copy, Debug, Default)]
pub struct GossipBytes {
    /// Digests and envelopes: grow with the number of nodes.
    pub digest: u64,
    /// Deltas (key/values): grow with what changes.
    pub delta: u64,
}

/// Every node's gossip state and what each node knows of the others.
pub struct Gossip {
    stores: Vec<Store>,
    /// `known[i][j]`: what node `i` holds about node `j` (`None`: unknown or forgotten).
    known: Vec<Vec<Option<Known>>>,
    pub running: Vec<bool>,
    /// Bytes sent, per node.
    pub sent: Vec<GossipBytes>,
    id_len: Vec<usize>,
    seeds: Vec<usize>,
    rng: fastrand::Rng,
}

impl Gossip {
    pub fn new(id_len: Vec<usize>, seeds: Vec<usize>, seed: u64) -> Gossip {
        let n = id_len.len();
        Gossip {
            stores: (0..n).map(|_| Store::default()).collect(),
            known: (0..n).map(|_| (0..n).map(|_| None).collect()).collect(),
            running: vec![false; n],
            sent: vec![GossipBytes::default(); n],
            id_len,
            seeds,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// A node (re)starts with an empty state: it knows nobody and nobody knows this life.
    pub fn start(&mut self, i: usize) {
        self.stores[i] = Store::default();
        for k in &mut self.known[i] {
            *k = None;
        }
        for row in &mut self.known {
            row[i] = None;
        }
        self.running[i] = true;
    }

    pub fn stop(&mut self, i: usize) {
        self.running[i] = false;
    }

    /// Node `i` sets (`Some`) or deletes (`None`) one of its keys.
    pub fn set(&mut self, i: usize, key: &str, value: Option<&str>) {
        let s = &mut self.stores[i];
        let (value, deleted) = match value {
            Some(v) => (v, false),
            None if s.kvs.contains_key(key) => ("", true),
            None => return,
        };
        if let Some((v, ver, d)) = s.kvs.get(key) {
            if *d == deleted && v == value {
                return;
            }
            let ver = *ver;
            s.by_version.remove(&ver);
        }
        s.max_version += 1;
        let ver = s.max_version;
        s.kvs
            .insert(key.to_owned(), (value.to_owned(), ver, deleted));
        s.by_version.insert(ver, key.to_owned());
        s.dirty = true;
        s.interest_dirty |= key.starts_with(crate::interest::KEY_PREFIX);
    }

    /// Bytes of node `i`'s own key/values as chitchat serializes them (what every other node
    /// keeps a copy of).
    pub fn state_bytes(&self, i: usize) -> usize {
        let s = &self.stores[i];
        s.kvs.keys().map(|k| s.kv_bytes(k)).sum::<usize>()
            + ID_FIXED
            + self.id_len[i]
            + DIGEST_FIXED
    }

    fn knows(&self, a: usize, j: usize) -> bool {
        a == j || self.known[a][j].is_some()
    }

    fn version_at(&self, a: usize, j: usize) -> u64 {
        if a == j {
            self.stores[j].max_version
        } else {
            self.known[a][j].as_ref().map_or(0, |k| k.version)
        }
    }

    fn heartbeat_at(&self, a: usize, j: usize) -> u64 {
        if a == j {
            self.stores[j].heartbeat
        } else {
            self.known[a][j].as_ref().map_or(0, |k| k.heartbeat)
        }
    }

    fn digest_len(&self, a: usize) -> usize {
        (0..self.stores.len())
            .filter(|&j| self.knows(a, j))
            .map(|j| ID_FIXED + self.id_len[j] + DIGEST_FIXED)
            .sum()
    }

    fn live_set(&self, i: usize) -> Vec<usize> {
        (0..self.stores.len())
            .filter(|&j| j != i && self.known[i][j].as_ref().is_some_and(|k| k.live))
            .collect()
    }

    /// Node `i`'s gossip round at `now`; `reach(a, b)` says whether datagrams get through.
    /// Returns the nodes whose knowledge changed.
    pub fn round(
        &mut self,
        i: usize,
        now: u64,
        reach: &dyn Fn(usize, usize) -> bool,
    ) -> Vec<usize> {
        if !self.running[i] {
            return Vec::new();
        }
        self.stores[i].heartbeat += 1;
        self.stores[i].snapshot();
        let mut changed = vec![i];
        self.update_liveness(i, now);
        let n = self.stores.len();
        let live = self.live_set(i);
        let dead: Vec<usize> = (0..n)
            .filter(|&j| j != i && self.known[i][j].as_ref().is_some_and(|k| !k.live))
            .collect();
        let pool: Vec<usize> = if live.is_empty() {
            let mut p: Vec<usize> = (0..n).filter(|&j| j != i && self.knows(i, j)).collect();
            p.extend(self.seeds.iter().copied().filter(|&s| s != i));
            p.sort_unstable();
            p.dedup();
            p
        } else {
            live.clone()
        };
        let mut peers = sample(&mut self.rng, &pool, GOSSIP_FANOUT);
        if !dead.is_empty() && self.rng.f64() < dead.len() as f64 / (live.len() + 1) as f64 {
            peers.push(dead[self.rng.usize(..dead.len())]);
        }
        let seeds: Vec<usize> = self.seeds.iter().copied().filter(|&s| s != i).collect();
        let with_seed = peers.iter().any(|p| seeds.contains(p));
        if !seeds.is_empty()
            && (!with_seed || live.len() < self.seeds.len())
            && (live.is_empty()
                || self.rng.f64() <= self.seeds.len() as f64 / (live.len() + dead.len()) as f64)
        {
            peers.push(seeds[self.rng.usize(..seeds.len())]);
        }
        peers.sort_unstable();
        peers.dedup();
        for p in peers {
            if self.exchange(i, p, now, reach) {
                changed.push(p);
            }
        }
        changed
    }

    /// chitchat's liveness update and dead-node GC at node `i`.
    fn update_liveness(&mut self, i: usize, now: u64) {
        for j in 0..self.stores.len() {
            let forget = match self.known[i][j].as_mut() {
                Some(k) => {
                    k.update_liveness(now);
                    k.dead_since.is_some_and(|d| now >= d + DEAD_GRACE_US)
                }
                None => false,
            };
            if forget {
                self.known[i][j] = None;
            }
        }
    }

    fn message_bytes(body: usize) -> usize {
        let parts = body.div_ceil(gossip_seal::MAX_PART).max(1);
        body + parts * gossip_seal::OVERHEAD
    }

    /// One Syn/SynAck/Ack between `i` (initiator) and `p`; true if `p` answered.
    fn exchange(
        &mut self,
        i: usize,
        p: usize,
        now: u64,
        reach: &dyn Fn(usize, usize) -> bool,
    ) -> bool {
        let syn = ENVELOPE + self.digest_len(i);
        self.sent[i].digest += Self::message_bytes(syn) as u64;
        if !self.running[p] || !reach(i, p) {
            return false;
        }
        let p_digest = ENVELOPE + self.digest_len(p);
        let to_i = self.delta(p, i, MAX_MESSAGE - p_digest);
        self.sent[p].digest += Self::message_bytes(p_digest) as u64;
        self.sent[p].delta +=
            (Self::message_bytes(p_digest + to_i) - Self::message_bytes(p_digest)) as u64;
        let to_p = self.delta(i, p, MAX_MESSAGE - ENVELOPE);
        if to_p > 0 {
            self.sent[i].delta += Self::message_bytes(ENVELOPE + to_p) as u64;
        } else {
            self.sent[i].digest += Self::message_bytes(ENVELOPE) as u64;
        }
        // Digests carry heartbeats both ways.
        self.learn_heartbeats(i, p, now);
        self.learn_heartbeats(p, i, now);
        self.update_liveness(i, now);
        self.update_liveness(p, now);
        true
    }

    /// `to` learns the heartbeats `from`'s digest lists.
    fn learn_heartbeats(&mut self, to: usize, from: usize, now: u64) {
        for j in 0..self.stores.len() {
            if j == to || !self.knows(from, j) {
                continue;
            }
            let hb = self.heartbeat_at(from, j);
            let k = self.known[to][j].get_or_insert_with(Known::new);
            if hb > k.heartbeat {
                k.heartbeat = hb;
                k.report_heartbeat(now);
            }
        }
    }

    /// Applies the delta `from` sends `to` within `budget` bytes; returns its size.
    fn delta(&mut self, from: usize, to: usize, budget: usize) -> usize {
        struct Stale {
            node: usize,
            unknown: bool,
            floor: u64,
            upto: u64,
            stale: usize,
        }
        let mut stale: Vec<Stale> = Vec::new();
        for j in 0..self.stores.len() {
            if j == to || !self.knows(from, j) {
                continue;
            }
            let upto = self.version_at(from, j);
            let unknown = !self.knows(to, j);
            let floor = if unknown { 0 } else { self.version_at(to, j) };
            if upto > floor {
                let n = self.stores[j].by_version.range(floor + 1..=upto).count();
                stale.push(Stale {
                    node: j,
                    unknown,
                    floor,
                    upto,
                    stale: n,
                });
            }
        }
        // chitchat's `Staleness` order: unknown nodes first (lowest max version first),
        // then the most stale keys first.
        stale.sort_by(|a, b| {
            b.unknown.cmp(&a.unknown).then_with(|| {
                if a.unknown {
                    a.upto.cmp(&b.upto)
                } else {
                    b.stale.cmp(&a.stale)
                }
            })
        });
        let mut used = 0;
        for s in stale {
            let head = ID_FIXED + self.id_len[s.node] + DELTA_NODE_FIXED;
            if used + head > budget {
                break;
            }
            used += head;
            let store = &self.stores[s.node];
            let mut reached = s.floor;
            let mut complete = true;
            for (&ver, key) in store.by_version.range(s.floor + 1..=s.upto) {
                let b = store.kv_bytes(key);
                if used + b > budget {
                    complete = false;
                    break;
                }
                used += b;
                reached = ver;
            }
            if complete {
                reached = s.upto;
            }
            let k = self.known[to][s.node].get_or_insert_with(Known::new);
            k.version = k.version.max(reached);
            if !complete {
                break;
            }
        }
        used
    }

    /// Node `i`'s live view as the engine's membership builds it: itself and every node its
    /// detector holds live whose keys say `ready`, each with the newest snapshot it has.
    pub fn live_view(&self, i: usize) -> Vec<(usize, Rc<Snapshot>)> {
        let mut out = Vec::new();
        for j in 0..self.stores.len() {
            let live = j == i || self.known[i][j].as_ref().is_some_and(|k| k.live);
            if !live {
                continue;
            }
            let v = self.version_at(i, j);
            let snap = self.stores[j]
                .snapshots
                .iter()
                .rev()
                .find(|s| s.version <= v)
                .cloned();
            if let Some(s) = snap.filter(|s| s.ready) {
                out.push((j, s));
            }
        }
        out
    }

    /// Whether every node `i` holds live knows `j`'s state up to its newest snapshot.
    pub fn state_converged(&self, members: &[usize]) -> bool {
        members.iter().all(|&i| {
            members.iter().all(|&j| {
                let newest = self.stores[j].snapshots.back().map_or(0, |s| s.version);
                i == j || self.version_at(i, j) >= newest
            })
        })
    }

    /// Drops snapshots no node can still need (older than every node's knowledge).
    pub fn prune(&mut self) {
        let n = self.stores.len();
        for j in 0..n {
            let floor = (0..n)
                .filter(|&i| i != j && self.running[i])
                .map(|i| self.version_at(i, j))
                .min()
                .unwrap_or(u64::MAX);
            let snaps = &mut self.stores[j].snapshots;
            while snaps.len() > 1 && snaps[1].version <= floor {
                snaps.pop_front();
            }
        }
    }
}

fn sample(rng: &mut fastrand::Rng, pool: &[usize], k: usize) -> Vec<usize> {
    let mut v = pool.to_vec();
    rng.shuffle(&mut v);
    v.truncate(k);
    v
}
