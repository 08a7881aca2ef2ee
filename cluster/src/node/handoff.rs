//! `NodeCore`'s handoffs: when ownership of channels moves on purpose (a node joins or
//! rejoins and takes its share, or leaves with SIGTERM), the old owner stops ordering them,
//! everything it ordered reaches every node, and only then does the new owner order the next
//! event, so no subscriber that stayed connected sees a gap, a duplicate or a reorder
//! (docs/cluster.md "Handoff", ADR 0014).
//!
//! One handoff is a pair `old → new` (`new` is "every other node" when `old` leaves), in
//! three steps, each a `Handoff` message on the FIFO links:
//!
//! 1. **Rerouted.** Every other node, when its view moves the channels (it sees `new` join,
//!    or `old` leave), routes them to `new` from then on and tells `old`. Its interest in
//!    them goes to `new` first (the usual re-announcement).
//! 2. **Released.** `old` keeps ordering whatever still reaches it until every live node
//!    said `Rerouted` (so nothing more is on its way to it), then tells every peer. Its
//!    `Deliver`s are ahead of that on each link.
//! 3. **Seen.** Every other node, on `old`'s `Released`, tells `new`: by then it has every
//!    event `old` ordered.
//!
//! `new` holds ("fences") the events of the moving channels that reach it meanwhile, in
//! arrival order, and orders them once it has `Released` from `old` and `Seen` from every
//! other live node: its first `Deliver` then reaches each node after the last of `old`'s.
//! Which node is `old` and which `new` on a join is decided by generation (start time): the
//! newer node is the one joining, whoever sees whom first. Nothing waits for ever: a release
//! goes after [`RELEASE_TICKS`] without every `Rerouted`, a fence opens after [`FENCE_TICKS`]
//! (counted as `handoff_timeouts`), and a node that dies is not waited for. A crash is not a
//! handoff: there is nobody to release.

use super::{Action, NodeCore};
use crate::ownership::owner;
use crate::wire::{HandoffStep, NodeMsg};
use crate::{NodeId, NodeKey};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Ticks the old owner waits for every `Rerouted` before it releases anyway (2.5 s with
/// [`super::TICK`]): one hop once every node saw the change, which gossip spreads within
/// about a second; only a node that does not see it gets here.
pub const RELEASE_TICKS: u32 = 10;
/// Ticks a fence holds events at most (3.5 s): the release, plus the relays' `Seen`; under
/// the 5 s an HTTP publish waits for its answer.
pub const FENCE_TICKS: u32 = 14;
/// Ticks a handoff entry made only by early messages (this node has not seen the change
/// yet) is kept before it is forgotten.
const UNARMED_TICKS: u32 = 20;
/// Events held by all fences at most; beyond, an event is ordered at once (counted).
pub const MAX_HELD: usize = 20_000;
/// Ticks a `Publish` for a channel another node owns in this view waits for this node to
/// hear of the change that made the sender route it here (0.75–1 s), before it is ordered
/// here anyway, as it always was.
pub const STRAY_TICKS: u32 = 4;
/// Nodes a `Released` names at most (far above any cluster this design serves).
const MAX_PEERS: usize = 1024;

/// The old owner's side of one handoff.
#[derive(Default, Debug)]
struct Release {
    /// This node has seen the change itself (its own routing moved).
    armed: bool,
    rerouted: BTreeSet<NodeId>,
    ticks: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Owed {
    Rerouted,
    Seen,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `old` was here before this node joined (or `old` is older): the channels this node
    /// owns that `old` would own without it.
    Join,
    /// `old` left: the channels it owned.
    Leave,
}

/// The new owner's side of one handoff.
#[derive(Debug)]
struct Fence {
    kind: Kind,
    armed: bool,
    released: bool,
    /// The nodes `old` held live when it released: each must say `Seen` (and be live in this
    /// node's view, so that the channels are matched against the whole cluster).
    expect: BTreeSet<NodeId>,
    seen: BTreeSet<NodeId>,
    ticks: u32,
    held: VecDeque<Action>,
}

impl Fence {
    fn new(kind: Kind) -> Fence {
        Fence {
            kind,
            armed: false,
            released: false,
            expect: BTreeSet::new(),
            seen: BTreeSet::new(),
            ticks: 0,
            held: VecDeque::new(),
        }
    }
}

/// A peer's publish held until this node's view catches up with the sender's.
#[derive(Debug)]
struct Stray {
    ticks: u32,
    from: NodeKey,
    app: String,
    channel: String,
    actions: Vec<Action>,
}

/// Every handoff this node takes part in.
#[derive(Default, Debug)]
pub(super) struct Handoffs {
    /// As the old owner, by new owner (`None`: every other node; this node leaves).
    releasing: BTreeMap<Option<NodeId>, Release>,
    /// As the new owner, by old owner.
    fences: BTreeMap<NodeId, Fence>,
    /// Releases sent lately, with the peers they named and their age in ticks: sent again
    /// to a peer whose link comes up afterwards (it may relay the `Seen` a new owner waits
    /// for), for [`UNARMED_TICKS`].
    released: BTreeMap<Option<NodeId>, (Vec<String>, u32)>,
    /// `Rerouted` (to `old`) and `Seen` (to `new`) of a join this node could not send yet:
    /// no link to the receiver, or (for `Seen`) `new` not live here yet. By (to, old, new).
    owed: BTreeMap<(NodeId, Owed, NodeId, NodeId), u32>,
    held: usize,
    /// `Publish`es for channels another node owns in this view, in arrival order, with
    /// their age in ticks (counted in `held`).
    strays: VecDeque<Stray>,
    /// This node leaves: it routes every publish to the others.
    pub(super) leaving: bool,
    pub(super) timeouts: u64,
    pub(super) overflow: u64,
    pub(super) completed: u64,
}

impl Handoffs {
    pub(super) fn held(&self) -> usize {
        self.held
    }
}

fn msg(step: HandoffStep, old: &NodeId, new: Option<&NodeId>) -> NodeMsg {
    NodeMsg::Handoff {
        step,
        old: old.as_str().to_owned(),
        new: new.map(|n| n.as_str().to_owned()).unwrap_or_default(),
        peers: Vec::new(),
    }
}

/// Whether `a` joined after `b`: the newer generation, ties broken by id.
fn newer(a: &NodeKey, b: &NodeKey) -> bool {
    (a.generation, a.id.as_str()) > (b.generation, b.id.as_str())
}

impl NodeCore {
    /// The live set changed from `old_live`: start the handoffs of nodes that joined.
    /// (Leaves on purpose start in [`NodeCore::handoff_leave`]; a node that vanished from
    /// the view crashed, and is simply no longer waited for.)
    pub(super) fn handoff_after_live_change(
        &mut self,
        old_live: &BTreeSet<NodeKey>,
        out: &mut Vec<Action>,
    ) {
        let joined: Vec<NodeKey> = self
            .live
            .iter()
            .filter(|k| !old_live.contains(k) && **k != self.me)
            .cloned()
            .collect();
        // Every pair of live nodes one of which is new to this view is a handoff from the
        // older to the newer; this node tells each older one that it reroutes (it does
        // whichever of the two it saw first).
        let mut pairs = BTreeSet::new();
        for j in &joined {
            for m in self.live.iter().filter(|m| *m != j && **m != self.me) {
                let (old, new) = if newer(j, m) { (m, j) } else { (j, m) };
                pairs.insert((old.id.clone(), new.id.clone()));
            }
        }
        for (old, new) in pairs {
            let to = old.clone();
            self.handoff.owed.insert((to, Owed::Rerouted, old, new), 0);
        }
        for j in joined {
            if newer(&j, &self.me) {
                // Channels move from this node to `j`.
                let r = self
                    .handoff
                    .releasing
                    .entry(Some(j.id.clone()))
                    .or_default();
                r.armed = true;
                r.ticks = 0;
            } else {
                // This node is the newer one: what it owns that `j` would own waits for `j`.
                let f = self
                    .handoff
                    .fences
                    .entry(j.id.clone())
                    .or_insert_with(|| Fence::new(Kind::Join));
                f.kind = Kind::Join;
                f.armed = true;
                f.ticks = 0;
            }
        }
        self.send_owed(out);
        self.check_handoffs(out);
    }

    /// `peer` leaves on purpose: its channels are fenced here until it released them, and it
    /// is told that this node routes them elsewhere now.
    pub(super) fn handoff_leave(&mut self, peer: &NodeKey, out: &mut Vec<Action>) {
        let f = self
            .handoff
            .fences
            .entry(peer.id.clone())
            .or_insert_with(|| Fence::new(Kind::Leave));
        f.kind = Kind::Leave;
        f.armed = true;
        f.ticks = 0;
        out.push(Action::Send {
            to: peer.id.clone(),
            msg: msg(HandoffStep::Rerouted, &peer.id, None),
        });
        self.check_handoffs(out);
        self.recheck_strays(false, out);
    }

    /// This node leaves: it routes every publish to the others from now on, and releases
    /// its channels once every peer rerouted them.
    pub(super) fn handoff_start_leaving(&mut self, out: &mut Vec<Action>) {
        self.handoff.leaving = true;
        let r = self.handoff.releasing.entry(None).or_default();
        r.armed = true;
        r.ticks = 0;
        self.check_handoffs(out);
    }

    /// Whether this node knows its cluster and holds no channels it takes over from an
    /// older node: an older node is live, and every join handoff it is the new owner of is
    /// done. A node that just started answers publishes only then (or after a bound), as
    /// its partial view would route them to the wrong owner.
    pub fn settled(&self) -> bool {
        // An older node live: a view of newcomers only (several started at once) may still
        // lack the cluster they join. (The first nodes of a new cluster wait out JOIN_WAIT.)
        self.live.iter().any(|k| newer(&self.me, k))
            && !self
                .handoff
                .fences
                .values()
                .any(|f| f.armed && f.kind == Kind::Join)
    }

    /// Whether this node, leaving, still owes its release (the caller waits for it before
    /// it closes its links).
    pub fn handoff_pending(&self) -> bool {
        self.handoff.releasing.contains_key(&None)
    }

    /// A `Handoff` message from `from`.
    pub(super) fn on_handoff(
        &mut self,
        from: &NodeKey,
        step: HandoffStep,
        old: String,
        new: String,
        peers: Vec<String>,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        let (Ok(old), new) = (NodeId::new(&old), NodeId::new(&new).ok()) else {
            return out;
        };
        // Bounded by what a cluster can be: a confused peer's list is cut.
        let peers: BTreeSet<NodeId> = peers
            .iter()
            .take(MAX_PEERS)
            .filter_map(|p| NodeId::new(p).ok())
            .filter(|p| *p != self.me.id && *p != old)
            .collect();
        match step {
            HandoffStep::Rerouted if old == self.me.id => {
                let r = self.handoff.releasing.entry(new).or_default();
                r.rerouted.insert(from.id.clone());
            }
            HandoffStep::Released if old == from.id => match new {
                Some(n) if n == self.me.id => {
                    let f = self.fence_of(&old);
                    f.released = true;
                    f.expect = peers;
                }
                Some(n) => {
                    self.handoff.owed.insert((n.clone(), Owed::Seen, old, n), 0);
                    self.send_owed(&mut out);
                }
                None => {
                    let f = self.fence_of(&old);
                    f.released = true;
                    f.expect = peers;
                    // Every other survivor may own some of its channels now.
                    let to: Vec<NodeId> = self
                        .live
                        .iter()
                        .filter(|k| **k != self.me && k.id != old)
                        .map(|k| k.id.clone())
                        .collect();
                    for n in to {
                        let m = msg(HandoffStep::Seen, &old, None);
                        out.push(Action::Send { to: n, msg: m });
                    }
                }
            },
            HandoffStep::Seen if new.as_ref().is_none_or(|n| *n == self.me.id) => {
                self.fence_of(&old).seen.insert(from.id.clone());
            }
            _ => {}
        }
        self.check_handoffs(&mut out);
        out
    }

    fn fence_of(&mut self, old: &NodeId) -> &mut Fence {
        // Made unarmed by an early message: the kind is fixed when this node sees the change.
        self.handoff
            .fences
            .entry(old.clone())
            .or_insert_with(|| Fence::new(Kind::Join))
    }

    /// Sends the owed steps whose receiver is now live and linked (a `Seen` only once this
    /// node routes to `new`, so that its interest went first). Steps never sent are
    /// dropped after [`UNARMED_TICKS`] (`tick_handoffs`): by then their handoff is over.
    pub(super) fn send_owed(&mut self, out: &mut Vec<Action>) {
        let live = |n: &NodeId| self.live_ids.contains(n);
        let ready: Vec<_> = self
            .handoff
            .owed
            .keys()
            .filter(|(to, ..)| live(to) && self.linked.iter().any(|k| k.id == *to))
            .cloned()
            .collect();
        for o in ready {
            self.handoff.owed.remove(&o);
            let (to, step, old, new) = o;
            let step = match step {
                Owed::Rerouted => HandoffStep::Rerouted,
                Owed::Seen => HandoffStep::Seen,
            };
            let m = msg(step, &old, Some(&new));
            out.push(Action::Send { to, msg: m });
        }
    }

    /// Completes what can complete: fences whose release and `Seen`s are in (their held
    /// events go on, each through the fence that applies now, if any), then releases whose
    /// `Rerouted`s are in, once this node holds nothing behind a fence of its own (what it
    /// still holds would otherwise be ordered after its `Released`).
    pub(super) fn check_handoffs(&mut self, out: &mut Vec<Action>) {
        let peers: Vec<NodeId> = self
            .live
            .iter()
            .filter(|k| **k != self.me)
            .map(|k| k.id.clone())
            .collect();
        let linked = |n: &NodeId| self.linked.iter().any(|k| k.id == *n);
        let mut open = Vec::new();
        for (old, f) in &self.handoff.fences {
            if !f.armed {
                continue;
            }
            let seen_all = peers
                .iter()
                .chain(&f.expect)
                .filter(|p| *p != old)
                .all(|p| f.seen.contains(p) && peers.contains(p));
            let done = f.released && seen_all;
            // A joined node that died has nothing more to send. A leaver whose link went down
            // before its release may still have `Deliver`s on their way elsewhere: counted.
            let (old_gone, cut) = match f.kind {
                Kind::Join => (!peers.contains(old), false),
                Kind::Leave => (!f.released && !linked(old), true),
            };
            if done || old_gone || f.ticks >= FENCE_TICKS {
                let late = !done && (!old_gone || cut);
                open.push((old.clone(), late));
            }
        }
        for (old, late) in open {
            if let Some(f) = self.handoff.fences.remove(&old) {
                self.handoff.held -= f.held.len();
                self.handoff.completed += 1;
                if late {
                    self.handoff.timeouts += 1;
                }
                for a in f.held {
                    match &a {
                        Action::Order(o) => {
                            let (app, ch) = (o.app.clone(), o.channel.clone());
                            out.extend(self.fenced(&app, &ch, vec![a]));
                        }
                        _ => out.push(a),
                    }
                }
            }
        }
        let fenced_here = self.handoff.fences.values().any(|f| f.armed);
        let linked = |n: &NodeId| self.linked.iter().any(|k| k.id == *n);
        let mut released = Vec::new();
        for (new, r) in &self.handoff.releasing {
            if !r.armed {
                continue;
            }
            let all_in = peers
                .iter()
                .filter(|p| Some(*p) != new.as_ref())
                .all(|p| r.rerouted.contains(p));
            let reachable = new.as_ref().is_none_or(&linked);
            let gone = new.as_ref().is_some_and(|n| !peers.contains(n));
            let ready = all_in && reachable && !fenced_here;
            if gone || ready || r.ticks >= RELEASE_TICKS {
                released.push((new.clone(), !gone, !(gone || ready)));
            }
        }
        for (new, send, late) in released {
            self.handoff.releasing.remove(&new);
            if late {
                self.handoff.timeouts += 1;
            }
            if send {
                let named: Vec<String> = peers.iter().map(|n| n.as_str().to_owned()).collect();
                let m = self.released_msg(new.as_ref(), named.clone());
                self.handoff.released.insert(new, (named, 0));
                out.push(Action::Broadcast(m));
            }
        }
    }

    fn released_msg(&self, new: Option<&NodeId>, peers: Vec<String>) -> NodeMsg {
        let mut m = msg(HandoffStep::Released, &self.me.id, new);
        if let NodeMsg::Handoff { peers: p, .. } = &mut m {
            *p = peers;
        }
        m
    }

    /// A link to `peer` came up: the releases of the last few seconds go to it too (a node
    /// that was not linked when they went out would never relay them).
    pub(super) fn handoff_link_up(&mut self, peer: &NodeKey, out: &mut Vec<Action>) {
        let again: Vec<NodeMsg> = self
            .handoff
            .released
            .iter()
            .filter(|(new, _)| new.as_ref() != Some(&peer.id))
            .map(|(new, (named, _))| self.released_msg(new.as_ref(), named.clone()))
            .collect();
        for m in again {
            out.push(Action::Send {
                to: peer.id.clone(),
                msg: m,
            });
        }
        self.send_owed(out);
        self.check_handoffs(out);
    }

    /// Called on every tick: handoffs age, and those past their bound complete.
    pub(super) fn tick_handoffs(&mut self, out: &mut Vec<Action>) {
        for r in self.handoff.releasing.values_mut() {
            r.ticks += 1;
        }
        self.handoff
            .releasing
            .retain(|_, r| r.armed || r.ticks < UNARMED_TICKS);
        for f in self.handoff.fences.values_mut() {
            f.ticks += 1;
        }
        for t in self.handoff.owed.values_mut() {
            *t += 1;
        }
        for (_, t) in self.handoff.released.values_mut() {
            *t += 1;
        }
        self.handoff.released.retain(|_, (_, t)| *t < UNARMED_TICKS);
        self.handoff.owed.retain(|_, t| *t < UNARMED_TICKS);
        self.handoff
            .fences
            .retain(|_, f| f.armed || f.ticks < UNARMED_TICKS);
        self.check_handoffs(out);
        self.recheck_strays(true, out);
    }

    /// The fence `(app, channel)` is behind, if any: this node owns it and an open fence's
    /// old owner owned it before.
    fn fence_for(&self, app: &str, channel: &str) -> Option<NodeId> {
        if !self.handoff.fences.values().any(|f| f.armed) || !self.owns(app, channel) {
            return None;
        }
        let mut others: Vec<NodeId> = self
            .live_ids
            .iter()
            .filter(|n| **n != self.me.id)
            .cloned()
            .collect();
        for (old, f) in self.handoff.fences.iter().filter(|(_, f)| f.armed) {
            let was = match f.kind {
                Kind::Join => owner(app, channel, &others).cloned(),
                Kind::Leave => {
                    others.push(old.clone());
                    let was = owner(app, channel, &others).cloned();
                    others.pop();
                    was
                }
            };
            if was.as_ref() == Some(old) {
                return Some(old.clone());
            }
        }
        None
    }

    /// The `Order`s of a peer's `Publish` (or `PublishChunks`): ordered (or fenced) when this
    /// node owns the channel or still orders it for a handoff it has not released; held as
    /// strays otherwise: the sender saw a change this node has not heard of yet (a `Leaving`
    /// still on its way here, a join), and ordering it now would put it ahead of events the
    /// current order point still has in flight. Also while the sender is not in this view
    /// yet (this node just started, and its view does not hold the cluster yet: it would
    /// take itself for the owner of everything).
    pub(super) fn received_order(
        &mut self,
        from: &NodeKey,
        app: &str,
        channel: &str,
        actions: Vec<Action>,
    ) -> Vec<Action> {
        if self.live.contains(from) && self.orders_here(app, channel) {
            return self.fenced(app, channel, actions);
        }
        if self.handoff.held + actions.len() > MAX_HELD {
            self.handoff.overflow += 1;
            self.counters.publish_not_owner += 1;
            return actions;
        }
        self.handoff.held += actions.len();
        self.counters.publish_held_stray += 1;
        self.handoff.strays.push_back(Stray {
            ticks: 0,
            from: from.clone(),
            app: app.to_owned(),
            channel: channel.to_owned(),
            actions,
        });
        Vec::new()
    }

    /// Whether a `Publish` of the channel is ordered here now: this node owns it, or its
    /// owner in this view is a node this node still releases channels to.
    fn orders_here(&self, app: &str, channel: &str) -> bool {
        let owner = self.owner_of(app, channel);
        owner == self.me.id
            || self.handoff.leaving
            || self
                .handoff
                .releasing
                .get(&Some(owner))
                .is_some_and(|r| r.armed)
    }

    /// After a view change (`aged`: on a tick, strays also age): strays whose channel is
    /// ordered here now go on (through their fence), and those past [`STRAY_TICKS`] are
    /// ordered here anyway (`publish_not_owner`). In arrival order, so one channel's strays
    /// keep theirs.
    pub(super) fn recheck_strays(&mut self, aged: bool, out: &mut Vec<Action>) {
        if self.handoff.strays.is_empty() {
            return;
        }
        let strays = std::mem::take(&mut self.handoff.strays);
        for mut s in strays {
            if aged {
                s.ticks += 1;
            }
            let here = self.live.contains(&s.from) && self.orders_here(&s.app, &s.channel);
            if here || s.ticks >= STRAY_TICKS {
                self.handoff.held -= s.actions.len();
                if !here {
                    self.counters.publish_not_owner += 1;
                }
                let go = self.fenced(&s.app, &s.channel, s.actions);
                out.extend(go);
            } else {
                self.handoff.strays.push_back(s);
            }
        }
    }

    /// Whether the channel's events are held behind a handoff's fence here now: its history
    /// (the old owner's, sent ahead of the release) may not be here yet, so a recovery waits.
    pub fn is_fenced(&self, app: &str, channel: &str) -> bool {
        self.fence_for(app, channel).is_some()
    }

    /// `Order` actions of `(app, channel)` about to be returned: held behind the channel's
    /// fence, if it has one (and room is left), else returned as they are.
    pub(super) fn fenced(&mut self, app: &str, channel: &str, actions: Vec<Action>) -> Vec<Action> {
        let Some(old) = self.fence_for(app, channel) else {
            return actions;
        };
        if self.handoff.held + actions.len() > MAX_HELD {
            self.handoff.overflow += 1;
            return actions;
        }
        self.handoff.held += actions.len();
        let f = self.handoff.fences.get_mut(&old).expect("fence exists");
        f.held.extend(actions);
        Vec::new()
    }
}
