//! One scale run: build the load, form the cluster, then a steady period, a crash, a join
//! and a partition heal, each until the cluster has converged.
//!
//! **Converged** means, over every group of running nodes that can reach each other (the
//! whole cluster, or each side of a partition):
//!
//! * *membership*: every node's core holds exactly the group live (same keys, generations
//!   included);
//! * *links*: every pair in the group has a link session up;
//! * *presence*: every node holds, about every node of the group, a member set whose digest
//!   equals the digest of that node's own members, and holds nobody else's members; so every
//!   channel's member list, as any node shows it to its subscribers, is the truth;
//! * *interest*: for each channel the change could move, its owning node (in the group's
//!   live set) holds by name exactly the nodes of the group that have subscribers (itself
//!   included);
//! * *gossip*: every node knows every other node's gossip state up to its newest version.
//!
//! The convergence time is the simulated time from the change until all five hold and keep
//! holding for [`STABLE_US`]; each part's own time is reported too.

use super::alloc;
use super::load::{Load, LoadSpec};
use super::Sim;
use crate::ownership::owner;
use crate::{NodeId, NodeKey};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Checks run every this much simulated time during a transition.
const STEP_US: u64 = 10_000;
/// Converged only once it held this long.
const STABLE_US: u64 = 500_000;
/// A transition that has not converged after this long is reported as not converged.
const GIVE_UP_US: u64 = 60_000_000;
/// How long the partition lasts before it heals (longer than chitchat's 4 s dead-node
/// grace, so each side forgets the other and the heal is a full exchange).
const PARTITION_US: u64 = 5_000_000;

/// What to simulate.
#[derive(Clone, Copy, Debug)]
pub struct SimConfig {
    pub nodes: usize,
    pub load: LoadSpec,
    /// One-way link latency, µs (0.2 ms: a LAN).
    pub latency_us: u64,
    /// Link bandwidth per direction, Gbit/s.
    pub link_gbit: f64,
    /// Members leaving or coming back per second, cluster-wide, during the steady period.
    pub churn_per_s: f64,
    /// API publishes per second, cluster-wide, during the steady period.
    pub publishes_per_s: f64,
    /// Bytes of each published event's data.
    pub publish_bytes: usize,
    /// Length of the steady period, simulated seconds.
    pub steady_s: f64,
    /// Charge each core call's measured CPU time to its node.
    pub cpu: bool,
    pub seed: u64,
}

/// The transitions measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Every node starts at once, members already connected.
    Formation,
    /// Every node announces its interest.
    Interest,
    /// The last node is killed.
    Crash,
    /// It comes back (a new generation) with its members.
    Join,
    /// The cluster, cut in two halves for 5 s, heals.
    Heal,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Formation => "formation",
            Phase::Interest => "interest",
            Phase::Crash => "crash",
            Phase::Join => "join",
            Phase::Heal => "partition heal",
        }
    }
}

/// One transition's figures.
#[derive(Clone, Debug)]
pub struct PhaseReport {
    pub phase: Phase,
    /// Until everything converged (`None`: not within a minute).
    pub converged_ms: Option<f64>,
    pub membership_ms: Option<f64>,
    pub presence_ms: Option<f64>,
    pub interest_ms: Option<f64>,
    pub gossip_ms: Option<f64>,
    /// Mean per running node per second over the transition (change → converged).
    pub gossip_bytes_per_node_s: f64,
    pub link_bytes_per_node_s: f64,
    /// The busiest node's CPU time in its core during the transition, ms.
    pub max_cpu_ms: f64,
    /// `PresenceResync` requests sent over all nodes during the transition (a full member
    /// list each; a heal or a join should need none beyond the syncs of new links).
    pub presence_resyncs: u64,
    /// Real time the simulator took for it, ms.
    pub wall_ms: f64,
}

/// The steady period's figures, per node per second (means over the nodes).
#[derive(Clone, Debug, Default)]
pub struct Steady {
    pub gossip_digest_bytes: f64,
    pub gossip_delta_bytes: f64,
    pub link_bytes: f64,
    pub link_frames: f64,
    pub deliveries: f64,
    pub member_events: f64,
    /// CPU time in the core, as a share of one core.
    pub cpu_share: f64,
}

/// Heap per node, bytes (means over the nodes), measured by [`alloc::TaggedAlloc`].
#[derive(Clone, Debug, Default)]
pub struct Memory {
    /// An empty core.
    pub empty: f64,
    /// Its own members (before it met the others).
    pub own_presence: f64,
    /// What forming the cluster added: the other nodes' members and the membership view.
    pub others_presence: f64,
    /// What announcing interest added: its own interest, the owner tables and the peers'
    /// gossiped summaries.
    pub interest: f64,
    /// The chitchat state it keeps (every node's key/values), computed from their sizes.
    pub gossip_state: f64,
    /// Whether the counting allocator was installed (otherwise all the measured fields are 0).
    pub measured: bool,
}

/// A whole run.
#[derive(Clone, Debug)]
pub struct Report {
    pub config: SimConfig,
    pub phases: Vec<PhaseReport>,
    pub steady: Steady,
    pub memory: Memory,
    pub frames_lost: u64,
    pub wall: Duration,
}

#[derive(Default)]
struct Marks {
    /// Since when each part has held (`None`: it does not hold now).
    since: [Option<u64>; 5],
}

fn groups(sim: &Sim) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    for i in (0..sim.n()).filter(|&i| sim.nodes[i].running) {
        match out.iter_mut().find(|g| sim.reach(g[0], i)) {
            Some(g) => g.push(i),
            None => out.push(vec![i]),
        }
    }
    out
}

fn ids(sim: &Sim, g: &[usize]) -> Vec<NodeId> {
    g.iter().map(|&i| sim.keys[i].id.clone()).collect()
}

/// Whether channel `c`'s owner in group `g` holds exactly the group's interested nodes.
fn interest_agrees(sim: &Sim, load: &Load, g: &[usize], live: &[NodeId], c: usize) -> bool {
    let name = &load.names[c];
    let Some(o) = owner(super::APP, name, live) else {
        return true;
    };
    let o = g[live.iter().position(|x| x == o).unwrap_or(0)];
    let want: BTreeSet<&NodeKey> = g
        .iter()
        .filter(|&&j| load.interested(j, c))
        .map(|&j| &sim.keys[j])
        .collect();
    let have = sim.nodes[o].core.named_interest(super::APP, name);
    have.iter().collect::<BTreeSet<_>>() == want
}

/// The five parts of "converged" (module doc), evaluated now. Interest is checked only for
/// the channels in `pending`, from which the leading ones that agree are removed (a channel
/// that agreed is checked again at the end, see [`settle`]).
fn check(sim: &Sim, load: &Load, pending: &mut Vec<usize>) -> [bool; 5] {
    let gs = groups(sim);
    let membership = gs.iter().all(|g| {
        let want: BTreeSet<&NodeKey> = g.iter().map(|&j| &sim.keys[j]).collect();
        g.iter()
            .all(|&i| sim.nodes[i].core.live().iter().collect::<BTreeSet<_>>() == want)
    });
    let links = gs.iter().all(|g| {
        g.iter()
            .all(|&a| g.iter().all(|&b| a >= b || sim.linked(a, b)))
    });
    let presence = gs.iter().all(|g| {
        g.iter().all(|&i| {
            let held: BTreeMap<NodeKey, _> =
                sim.nodes[i].core.held_presence().into_iter().collect();
            let others_empty = held
                .iter()
                .all(|(k, d)| g.iter().any(|&j| sim.keys[j] == *k) || d.members == 0);
            others_empty
                && g.iter().all(|&j| {
                    let own = sim.nodes[j].core.own_presence_digest();
                    held.get(&sim.keys[j]).copied().unwrap_or_default() == own
                })
        })
    });
    let gossip = gs.iter().all(|g| sim.gossip.state_converged(g));
    if membership {
        let lives: Vec<Vec<NodeId>> = gs.iter().map(|g| ids(sim, g)).collect();
        // Up to the first channel that does not agree yet: "converged" needs them all, and
        // checking every pending channel on every step cost O(channels) per step (minutes
        // at 100k channels while a cluster forms). The final pass in `settle` checks all.
        let agreed = pending
            .iter()
            .take_while(|&&c| {
                gs.iter()
                    .zip(&lives)
                    .all(|(g, live)| interest_agrees(sim, load, g, live, c))
            })
            .count();
        pending.drain(..agreed);
    }
    [
        membership,
        links,
        presence,
        membership && pending.is_empty(),
        gossip,
    ]
}

/// Counters summed over the nodes, to take differences of.
#[derive(Clone, Copy, Default)]
struct Totals {
    digest: u64,
    delta: u64,
    link: u64,
    frames: u64,
    deliveries: u64,
    member_events: u64,
}

fn totals(sim: &Sim) -> (Totals, Vec<u64>) {
    let mut t = Totals::default();
    for (i, n) in sim.nodes.iter().enumerate() {
        t.digest += sim.gossip.sent[i].digest;
        t.delta += sim.gossip.sent[i].delta;
        t.link += n.link_sent;
        t.frames += n.link_frames;
        t.deliveries += n.deliveries;
        t.member_events += n.member_events;
    }
    (t, sim.nodes.iter().map(|n| n.cpu_us).collect())
}

/// Makes the `change`, runs until converged (or [`GIVE_UP_US`]) and reports the transition.
fn settle(
    sim: &mut Sim,
    load: &mut Load,
    phase: Phase,
    channels: &[usize],
    change: impl FnOnce(&mut Sim, &mut Load),
) -> PhaseReport {
    let wall = Instant::now();
    let start = sim.now;
    let (before, cpu_before) = totals(sim);
    let resyncs_before = resyncs(sim);
    change(sim, load);
    let mut marks = Marks::default();
    let mut pending = channels.to_vec();
    let mut end = None;
    while sim.now < start + GIVE_UP_US {
        sim.run_until(sim.now + STEP_US);
        let ok = check(sim, load, &mut pending);
        for (k, &holds) in ok.iter().enumerate() {
            marks.since[k] = if holds {
                marks.since[k].or(Some(sim.now))
            } else {
                None
            };
        }
        let all = marks.since.iter().copied().collect::<Option<Vec<u64>>>();
        if let Some(all) = all {
            let at = all.into_iter().max().unwrap_or(sim.now);
            if sim.now >= at + STABLE_US {
                // Every channel once more: one that agreed earlier may have changed since.
                pending = channels.to_vec();
                if check(sim, load, &mut pending)[3] {
                    end = Some(at);
                    break;
                }
                marks.since[3] = None;
            }
        }
    }
    if end.is_none() {
        tracing::warn!(phase = phase.name(), parts = ?check(sim, load, &mut pending), "not converged");
    }
    sim.gossip.prune();
    let ms = |t: Option<u64>| t.map(|t| t.saturating_sub(start) as f64 / 1000.0);
    let until = end.unwrap_or(sim.now);
    let secs = ((until - start) as f64 / 1e6).max(STEP_US as f64 / 1e6);
    let (after, cpu_after) = totals(sim);
    let running = sim.nodes.iter().filter(|n| n.running).count().max(1) as f64;
    let max_cpu = cpu_after
        .iter()
        .zip(&cpu_before)
        .map(|(a, b)| a.saturating_sub(*b))
        .max()
        .unwrap_or(0);
    PhaseReport {
        phase,
        converged_ms: ms(end),
        membership_ms: ms(marks.since[0]),
        presence_ms: ms(marks.since[2]),
        interest_ms: ms(marks.since[3]),
        gossip_ms: ms(marks.since[4]),
        gossip_bytes_per_node_s: (after.digest + after.delta - before.digest - before.delta) as f64
            / running
            / secs,
        link_bytes_per_node_s: (after.link - before.link) as f64 / running / secs,
        max_cpu_ms: max_cpu as f64 / 1000.0,
        presence_resyncs: resyncs(sim) - resyncs_before,
        wall_ms: wall.elapsed().as_secs_f64() * 1000.0,
    }
}

fn resyncs(sim: &Sim) -> u64 {
    sim.nodes
        .iter()
        .map(|n| n.core.counters().presence_resyncs)
        .sum()
}

fn heap(n: usize) -> Vec<i64> {
    (0..n).map(|i| alloc::live_bytes(i + 1)).collect()
}

fn mean_delta(a: &[i64], b: &[i64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) as f64).sum::<f64>() / a.len().max(1) as f64
}

/// Channels whose owner differs between two live sets (what a change can move).
fn moved(load: &Load, a: &[NodeId], b: &[NodeId]) -> Vec<usize> {
    (0..load.names.len())
        .filter(|&c| owner(super::APP, &load.names[c], a) != owner(super::APP, &load.names[c], b))
        .collect()
}

/// Runs the whole sequence (module doc) for one cluster size.
pub fn run(cfg: SimConfig) -> Report {
    let wall = Instant::now();
    let n = cfg.nodes;
    let mut sim = Sim::new(n, cfg.latency_us, cfg.link_gbit, cfg.cpu, cfg.seed);
    let mut load = Load::new(cfg.load, n, cfg.seed);
    let h0 = heap(n);
    // Build: every node's clients are connected before the nodes meet (untimed).
    for i in 0..n {
        load.join_all(&mut sim, i);
    }
    let h_own = heap(n);
    for node in &mut sim.nodes {
        node.busy_until = 0;
    }
    let mut phases = vec![settle(
        &mut sim,
        &mut load,
        Phase::Formation,
        &[],
        |sim, _| {
            for i in 0..sim.n() {
                sim.start(i);
            }
        },
    )];
    let h_formed = heap(n);
    let all: Vec<usize> = (0..load.names.len()).collect();
    phases.push(settle(
        &mut sim,
        &mut load,
        Phase::Interest,
        &all,
        |sim, load| {
            for i in 0..sim.n() {
                load.interest_all(sim, i);
            }
        },
    ));
    let h_interest = heap(n);
    let memory = Memory {
        empty: h0.iter().sum::<i64>() as f64 / n as f64,
        own_presence: mean_delta(&h_own, &h0),
        others_presence: mean_delta(&h_formed, &h_own),
        interest: mean_delta(&h_interest, &h_formed),
        gossip_state: (0..n).map(|j| sim.gossip.state_bytes(j)).sum::<usize>() as f64,
        measured: alloc::installed(),
    };

    let steady = steady(&mut sim, &mut load, &cfg);

    // Crash the last node (not a seed when n > 3).
    let victim = n - 1;
    let before: Vec<NodeId> = ids(&sim, &(0..n).collect::<Vec<_>>());
    let after: Vec<NodeId> = ids(&sim, &(0..n - 1).collect::<Vec<_>>());
    let moving = moved(&load, &before, &after);
    phases.push(settle(
        &mut sim,
        &mut load,
        Phase::Crash,
        &moving,
        |sim, _| sim.crash(victim),
    ));

    // It comes back with its members (its clients reconnect to it as it starts).
    let mut check_join = moved(&load, &after, &before);
    check_join.extend((0..load.names.len()).filter(|&c| load.interested(victim, c)));
    check_join.sort_unstable();
    check_join.dedup();
    phases.push(settle(
        &mut sim,
        &mut load,
        Phase::Join,
        &check_join,
        |sim, load| {
            sim.replace(victim);
            load.join_all(sim, victim);
            load.interest_all(sim, victim);
            sim.nodes[victim].busy_until = sim.now;
            sim.start(victim);
        },
    ));

    // Partition into two halves, then heal.
    let sides: Vec<u8> = (0..n).map(|i| (i % 2) as u8).collect();
    let halves: Vec<Vec<NodeId>> = (0..2u8)
        .map(|s| ids(&sim, &(0..n).filter(|&i| sides[i] == s).collect::<Vec<_>>()))
        .collect();
    sim.partition(sides);
    let cut_end = sim.now + PARTITION_US;
    sim.run_until(cut_end);
    let mut check_heal = moved(&load, &halves[0], &before);
    check_heal.extend(moved(&load, &halves[1], &before));
    check_heal.sort_unstable();
    check_heal.dedup();
    phases.push(settle(
        &mut sim,
        &mut load,
        Phase::Heal,
        &check_heal,
        |sim, _| sim.heal(),
    ));

    Report {
        config: cfg,
        phases,
        steady,
        memory,
        frames_lost: sim.lost,
        wall: wall.elapsed(),
    }
}

/// The steady period: churn and publishes at the configured rates.
fn steady(sim: &mut Sim, load: &mut Load, cfg: &SimConfig) -> Steady {
    let (before, cpu_before) = totals(sim);
    let start = sim.now;
    let end = start + (cfg.steady_s * 1e6) as u64;
    let (mut churn_due, mut pub_due) = (0.0, 0.0);
    while sim.now < end {
        let step = STEP_US as f64 / 1e6;
        churn_due += cfg.churn_per_s * step;
        pub_due += cfg.publishes_per_s * step;
        while churn_due >= 1.0 {
            churn_due -= 1.0;
            load.churn_one(sim);
        }
        while pub_due >= 1.0 {
            pub_due -= 1.0;
            load.publish_one(sim, cfg.publish_bytes);
        }
        sim.run_until(sim.now + STEP_US);
    }
    let (after, cpu_after) = totals(sim);
    let per = |a: u64, b: u64| (a - b) as f64 / sim.n() as f64 / cfg.steady_s.max(1e-9);
    let cpu: u64 = cpu_after.iter().sum::<u64>() - cpu_before.iter().sum::<u64>();
    Steady {
        gossip_digest_bytes: per(after.digest, before.digest),
        gossip_delta_bytes: per(after.delta, before.delta),
        link_bytes: per(after.link, before.link),
        link_frames: per(after.frames, before.frames),
        deliveries: per(after.deliveries, before.deliveries),
        member_events: per(after.member_events, before.member_events),
        cpu_share: cpu as f64 / sim.n() as f64 / (end - start) as f64,
    }
}
