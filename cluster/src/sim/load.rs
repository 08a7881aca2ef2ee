//! The load the scale simulator puts on the nodes: presence channels whose members are
//! spread over the nodes, and the interest that follows from them (a member is also a
//! subscriber of its channel, so a node is interested in every channel it has a member of).
//!
//! Member `m` is in channel `m % channels` and connected to a node drawn uniformly at
//! random (what a load balancer in front of the nodes gives). Its user id is `u{m}` and its
//! `user_info` is a small JSON object (`info_bytes` long), as the Pusher auth endpoint signs.
//!
//! Presence replication (every node holds every member) is what makes a large run slow, so
//! only the first `presence_members` members actually join; interest always follows the
//! whole load (a node is interested in every channel any of its `members` is in), so
//! channels, interest tables and gossip summaries are at full size whatever the scale.

use super::{Sim, APP};

/// How much load.
#[derive(Clone, Copy, Debug)]
pub struct LoadSpec {
    /// Presence channels.
    pub channels: usize,
    /// Members over the whole cluster (they decide the interest).
    pub members: usize,
    /// How many of them join presence (the first ones); at most `members`.
    pub presence_members: usize,
    /// Length of each member's `user_info`.
    pub info_bytes: usize,
}

/// The load and its truth: who is where, and which node is interested in which channel.
pub struct Load {
    pub spec: LoadSpec,
    pub names: Vec<String>,
    /// Each member's node.
    node_of: Vec<u16>,
    /// Whether each member is connected now (churn takes some away and back).
    present: Vec<bool>,
    /// `local[node][channel]`: the node's members of the channel.
    local: Vec<Vec<u16>>,
}

impl Load {
    pub fn new(spec: LoadSpec, n: usize, seed: u64) -> Load {
        let mut rng = fastrand::Rng::with_seed(seed);
        let node_of: Vec<u16> = (0..spec.members).map(|_| rng.u16(..n as u16)).collect();
        let mut local = vec![vec![0u16; spec.channels]; n];
        for (m, &node) in node_of.iter().enumerate() {
            let c = m % spec.channels;
            local[node as usize][c] = local[node as usize][c].saturating_add(1);
        }
        Load {
            names: (0..spec.channels)
                .map(|c| format!("presence-room-{c}"))
                .collect(),
            node_of,
            present: (0..spec.members)
                .map(|m| m < spec.presence_members)
                .collect(),
            local,
            spec,
        }
    }

    fn user(m: usize) -> String {
        format!("u{m}")
    }

    fn info(&self, m: usize) -> Option<String> {
        let head = format!("{{\"name\":\"user {m}\",\"x\":\"");
        let pad = self.spec.info_bytes.saturating_sub(head.len() + 2);
        Some(format!("{head}{}\"}}", "x".repeat(pad)))
    }

    /// Whether `node` has subscribers (members) of channel `c` now.
    pub fn interested(&self, node: usize, c: usize) -> bool {
        self.local[node][c] > 0
    }

    /// Every present member of `node` joins (its clients connect).
    pub fn join_all(&self, sim: &mut Sim, node: usize) {
        let at = sim.now;
        for m in (0..self.spec.presence_members).filter(|&m| self.node_of[m] as usize == node) {
            if !self.present[m] {
                continue;
            }
            let (ch, user, info) = (
                &self.names[m % self.spec.channels],
                Self::user(m),
                self.info(m),
            );
            sim.call(node, at, |c| c.presence_join(APP, ch, &user, info));
        }
    }

    /// `node` announces interest in every channel it has members of.
    pub fn interest_all(&self, sim: &mut Sim, node: usize) {
        let at = sim.now;
        for (c, name) in self.names.iter().enumerate() {
            if self.local[node][c] > 0 {
                sim.call(node, at, |core| core.set_interest(APP, name, true));
            }
        }
    }

    /// One member leaves or comes back (a client disconnecting or reconnecting), with the
    /// interest change it causes on its node. Returns false if its node is not running.
    pub fn churn_one(&mut self, sim: &mut Sim) -> bool {
        let m = sim.rng.usize(..self.spec.presence_members.max(1));
        let node = self.node_of[m] as usize;
        if !sim.nodes[node].running {
            return false;
        }
        let c = m % self.spec.channels;
        let at = sim.now;
        let (ch, user) = (self.names[c].clone(), Self::user(m));
        if self.present[m] {
            self.present[m] = false;
            self.local[node][c] -= 1;
            sim.call(node, at, |core| core.presence_leave(APP, &ch, &user));
            if self.local[node][c] == 0 {
                sim.call(node, at, |core| core.set_interest(APP, &ch, false));
            }
        } else {
            self.present[m] = true;
            self.local[node][c] += 1;
            if self.local[node][c] == 1 {
                sim.call(node, at, |core| core.set_interest(APP, &ch, true));
            }
            let info = self.info(m);
            sim.call(node, at, |core| core.presence_join(APP, &ch, &user, info));
        }
        true
    }

    /// One API publish entering a random running node, to a random channel.
    pub fn publish_one(&self, sim: &mut Sim, data_bytes: usize) {
        let node = sim.rng.usize(..sim.n());
        if !sim.nodes[node].running {
            return;
        }
        let c = sim.rng.usize(..self.spec.channels);
        let event = crate::wire::WireEvent {
            name: "update".into(),
            data: "d".repeat(data_bytes),
            user_id: None,
        };
        let (ch, at) = (&self.names[c], sim.now);
        sim.call(node, at, |core| {
            core.publish(APP, ch, event, None, false, false)
        });
    }
}
