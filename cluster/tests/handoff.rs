//! Handoffs of channel ownership on planned changes (docs/cluster.md "Handoff"), over the
//! simulated network with messages delivered in a random interleaving: a node leaving on
//! purpose, a node joining, a node rejoining under a new generation. Publishes enter two
//! nodes that stay; each channel's publisher sends its next event only once the previous
//! one was ordered (an HTTP publish's 200), alternating the entry node. Every subscriber
//! that stays connected must get every event of every channel once, in publish order.

mod sim;
use proptest::prelude::*;
use raptor_cluster::{NodeId, NodeKey};
use sim::*;
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug)]
enum Change {
    /// `c` leaves on purpose (SIGTERM): `Leaving`, the handoff, then it stops.
    Leave,
    /// `d` starts and joins a running cluster.
    Join,
    /// `c` leaves on purpose, then starts again with a new generation.
    LeaveAndRejoin,
    /// `c` crashes (not a handoff), then starts again with a new generation: the rejoin is.
    CrashAndRejoin,
}

struct Run {
    sim: Sim,
    rng: fastrand::Rng,
    channels: Vec<String>,
    /// Per channel: events published so far.
    sent: BTreeMap<String, Vec<String>>,
}

impl Run {
    fn new(seed: u64, n_channels: usize) -> Run {
        let mut sim = Sim::new(&["a", "b", "c"]);
        let channels: Vec<String> = (0..n_channels).map(|i| format!("room-{i}")).collect();
        sim.subscribe_all(&channels);
        sim.settle();
        Run {
            sim,
            rng: fastrand::Rng::with_seed(seed),
            channels,
            sent: BTreeMap::new(),
        }
    }

    /// One random step: deliver one in-flight message, or publish the next event of a
    /// channel whose last event was ordered, or (rarely) tick a node.
    fn step(&mut self) {
        let r = self.rng.u32(0..100);
        if r < 60 {
            let dirs: Vec<(String, String)> = self
                .sim
                .queues
                .iter()
                .filter(|(_, q)| !q.is_empty())
                .map(|(d, _)| d.clone())
                .collect();
            if dirs.is_empty() {
                return;
            }
            let (from, to) = dirs[self.rng.usize(0..dirs.len())].clone();
            let (key, msg) = self
                .sim
                .queues
                .get_mut(&(from, to.clone()))
                .unwrap()
                .pop_front()
                .unwrap();
            if self.sim.nodes[&to].running {
                let actions = self.sim.nodes.get_mut(&to).unwrap().core.on_msg(&key, msg);
                self.sim.apply(&to, actions);
            }
        } else if r < 99 {
            let ch = self.channels[self.rng.usize(0..self.channels.len())].clone();
            let sent = self.sent.entry(ch.clone()).or_default();
            if sent.last().is_some_and(|e| !self.sim.ordered.contains(e)) {
                return;
            }
            let n = sent.len();
            let data = format!("{ch}#{n}");
            sent.push(data.clone());
            let entry = if n.is_multiple_of(2) { "a" } else { "b" };
            self.sim.act(entry, |c| {
                c.publish(APP, &ch, event(data), None, false, true)
            });
        } else {
            let ids: Vec<String> = self.sim.ids();
            let id = ids[self.rng.usize(0..ids.len())].clone();
            if self.sim.nodes[&id].running {
                self.sim.act(&id, |c| c.tick());
            }
        }
    }

    fn steps(&mut self, n: usize) {
        for _ in 0..n {
            self.step();
        }
    }

    /// Membership and links move one notch (views first or links first at random), as
    /// gossip and the link layer would, without delivering anything.
    fn notch(&mut self) {
        self.sim.links_first = self.rng.bool();
        if self.sim.links_first {
            self.sim.sync_links();
            self.sim.sync_views();
        } else {
            self.sim.sync_views();
            self.sim.sync_links();
        }
    }

    fn leave(&mut self, id: &str) {
        self.sim.act(id, |c| c.leave());
        // Its handoff runs while traffic flows; it stops once released (or at its bound).
        for _ in 0..4000 {
            if !self.sim.nodes[id].core.handoff_pending() {
                break;
            }
            self.step();
        }
        // What it still sent (its `Released` among them) leaves its queues before it stops.
        self.flush_from(id);
        self.sim.crash(id);
        self.notch();
    }

    fn flush_from(&mut self, id: &str) {
        loop {
            let dirs: Vec<(String, String)> = self
                .sim
                .queues
                .iter()
                .filter(|((f, _), q)| f == id && !q.is_empty())
                .map(|(d, _)| d.clone())
                .collect();
            if dirs.is_empty() {
                return;
            }
            for (from, to) in dirs {
                let (key, msg) = self
                    .sim
                    .queues
                    .get_mut(&(from, to.clone()))
                    .unwrap()
                    .pop_front()
                    .unwrap();
                let actions = self.sim.nodes.get_mut(&to).unwrap().core.on_msg(&key, msg);
                self.sim.apply(&to, actions);
            }
        }
    }

    fn start(&mut self, id: &str, generation: u64) {
        let key = NodeKey::new(NodeId::new(id).unwrap(), generation);
        self.sim.nodes.insert(id.to_owned(), SimNode::new(key));
        // Its own clients subscribe at once (they are new: not checked).
        for ch in self.channels.clone() {
            self.sim.act(id, |c| c.set_interest(APP, &ch, true));
        }
        for _ in 0..3 {
            self.steps(30);
            self.notch();
        }
    }

    fn finish(&mut self) {
        self.steps(400);
        // Let every publisher's last event through, then everything settle.
        for _ in 0..50 {
            self.sim.act("a", |c| c.tick());
            self.sim.act("b", |c| c.tick());
            self.sim.settle();
        }
        for node in ["a", "b"] {
            for ch in &self.channels {
                let want = self.sent.get(ch).cloned().unwrap_or_default();
                let got = self.sim.nodes[node]
                    .delivered
                    .get(ch)
                    .cloned()
                    .unwrap_or_default();
                assert_eq!(got, want, "{node} {ch}");
            }
            let c = self.sim.nodes[node].core.counters();
            assert_eq!(c.handoff_timeouts, 0, "{node}: {c:?}");
            assert_eq!(c.handoff_held, 0, "{node}: {c:?}");
        }
    }
}

fn run(seed: u64, change: Change) {
    let mut run = Run::new(seed, 12);
    run.steps(200);
    match change {
        Change::Leave => run.leave("c"),
        Change::Join => run.start("d", 5),
        Change::LeaveAndRejoin => {
            run.leave("c");
            run.steps(200);
            run.start("c", 7);
        }
        Change::CrashAndRejoin => {
            // Settle first: what a crash loses is not a handoff's to keep.
            run.sim.settle();
            run.sim.crash("c");
            run.notch();
            run.sim.settle();
            run.steps(100);
            run.start("c", 7);
        }
    }
    run.finish();
    let handoffs: u64 = ["a", "b"]
        .iter()
        .map(|n| run.sim.nodes[*n].core.counters().handoffs)
        .sum();
    assert!(handoffs > 0, "no handoff happened");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn a_graceful_leave_loses_and_reorders_nothing(seed in any::<u64>()) {
        run(seed, Change::Leave);
    }

    #[test]
    fn a_join_loses_and_reorders_nothing(seed in any::<u64>()) {
        run(seed, Change::Join);
    }

    #[test]
    fn a_rejoin_after_leaving_loses_and_reorders_nothing(seed in any::<u64>()) {
        run(seed, Change::LeaveAndRejoin);
    }

    #[test]
    fn a_rejoin_after_a_crash_loses_and_reorders_nothing(seed in any::<u64>()) {
        run(seed, Change::CrashAndRejoin);
    }
}
