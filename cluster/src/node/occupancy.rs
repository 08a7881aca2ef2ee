//! `NodeCore`'s occupancy (`channel_occupied` / `channel_vacated`), owner side.
//!
//! The owner counts, for `(app, channel)`, the *occupants*: itself if it has local
//! subscribers, every live peer whose `Interest { on: true }` it holds, and every live peer
//! whose gossiped summary lists the channel's key exactly. That is the set [`NodeCore::fanout`]
//! delivers to, except that a summary bucket written as `*` does not count (it names no
//! channel; counting it would keep every channel of the bucket occupied).
//!
//! * **Occupied** is emitted when the set becomes non-empty through interest that names the
//!   channel: a local subscriber, or an `Interest` message from a live peer. A summary alone
//!   never starts occupancy (it carries a 64-bit hash, not the channel's name), it only keeps
//!   an occupied channel occupied. A false "yes" in a summary (a stale value, a collision)
//!   can therefore only *delay* `vacated` until the summary stops listing the key; it never
//!   produces an extra event.
//! * **Vacated** is emitted when the set becomes empty, whatever removed the last occupant:
//!   a local unsubscribe, `Interest { on: false }`, a summary that stops listing the key, a
//!   node that dies or leaves.
//! * **Ownership moving here never repeats `occupied`.** When the live set changes, a channel
//!   that this node owns now, that another node owned before (or any channel, if this node
//!   was alone before: it is joining, or back from being cut off from all others), and that
//!   already had occupants at the change is taken over silently: its `occupied` came from
//!   the previous owner, and this node emits only the later `vacated`. "Already had
//!   occupants" means known by name at the change (local interest, `Interest` messages that
//!   arrived before this node's view moved), or listed exactly in a live peer's summary at
//!   the change. Such summary keys are *adopted*: the first named interest for an adopted
//!   key (normally the `Interest` every subscriber node re-sends to a new owner) is tracked
//!   without an event. An adopted key is forgotten once no live summary lists it or it is no
//!   longer owned here, so a stale summary cannot swallow a later, real `occupied`.
//! * A channel that gets its first occupant after the change gets `occupied` from the new
//!   owner as usual. So does a channel this node kept owning whose first occupant is a node
//!   new to its view (a restarted node, the other side of a healed partition): for this
//!   owner's side of the cluster that interest is new. (Treating it as old would leave a
//!   channel occupied with `vacated` as its last event after a heal; treating it as new can
//!   at worst repeat an `occupied` the other side already fired, which leaves the receiver's
//!   state right.)
//! * **Ownership moving away** drops the channel from this node's occupancy without an
//!   event; the new owner carries on.
//!
//! Not guaranteed:
//!
//! * While nodes disagree about the live set (about a gossip round after a change), an event
//!   may fire twice or not at all, as for every owner-fired webhook: e.g. a channel that got
//!   its first subscriber just before the move, whose summary had not reached the new owner
//!   (a second `occupied`), or one whose `Interest` the new owner already counted as
//!   predating the move (none).
//! * A channel whose only occupant was its owner, when that owner dies: its name died with
//!   it, so nobody emits its `vacated`.
//! * A partition is two clusters, each firing for what it sees; across the partition and
//!   its heal a channel may get an extra event, or its last event may not match its state.
//! * Occupancy follows named interest, which is not self-healing like delivery is: an
//!   `Interest` message lost to a full queue delays `occupied` until it is re-sent (link
//!   back up, ownership move), and a lost `Interest { on: false }` delays `vacated` until
//!   that node's next subscribe/unsubscribe of the channel or its death.

use super::{Action, NodeCore};
use crate::ownership::{channel_key, owner, owner_of_key};
use crate::{NodeId, NodeKey};
use std::collections::BTreeSet;

impl NodeCore {
    /// Live peers (not this node) that asked for the channel by name.
    pub(super) fn named_by_peers<'a>(
        &'a self,
        app: &str,
        channel: &str,
    ) -> impl Iterator<Item = &'a NodeKey> {
        self.table
            .named(app, channel)
            .filter(move |n| **n != self.me && self.live.contains(*n))
    }

    /// Whether a live peer's summary lists the key exactly.
    pub(super) fn listed_by_peer(&self, key: u64) -> bool {
        self.table
            .listing(key)
            .any(|n| *n != self.me && self.live.contains(n))
    }

    pub(super) fn is_tracked(&self, key: u64, app: &str, channel: &str) -> bool {
        self.occupied
            .get(&key)
            .is_some_and(|s| s.contains(&(app.to_owned(), channel.to_owned())))
    }

    /// Whether the channel has occupants that name it (local interest, `Interest` messages
    /// from live peers): what starts occupancy.
    pub(super) fn named_occupants(&self, app: &str, channel: &str) -> bool {
        self.local_interest.contains(app, channel)
            || self.named_by_peers(app, channel).next().is_some()
    }

    /// Moves the channel to occupied or vacated if its occupants say so, emitting the event
    /// unless `silent` (or the key was adopted) for `occupied`. Only for owned channels.
    pub(super) fn update_occupancy(
        &mut self,
        app: &str,
        channel: &str,
        silent: bool,
        out: &mut Vec<Action>,
    ) {
        let key = channel_key(app, channel);
        let was = self.is_tracked(key, app, channel);
        let named = self.named_occupants(app, channel);
        let now = named || (was && self.listed_by_peer(key));
        if now == was {
            return;
        }
        let id = (app.to_owned(), channel.to_owned());
        if now {
            self.occupied.entry(key).or_default().insert(id);
            let adopted = self.adopted.remove(&key);
            if silent || adopted {
                return;
            }
        } else {
            self.forget_occupied(key, &id);
        }
        out.push(Action::Occupancy {
            app: app.to_owned(),
            channel: channel.to_owned(),
            occupied: now,
        });
    }

    pub(super) fn forget_occupied(&mut self, key: u64, id: &(String, String)) {
        if let Some(set) = self.occupied.get_mut(&key) {
            set.remove(id);
            if set.is_empty() {
                self.occupied.remove(&key);
            }
        }
    }

    /// Re-evaluates one channel's occupancy after its interest changed, if this node owns it.
    pub(super) fn refresh_occupancy(&mut self, app: &str, channel: &str, out: &mut Vec<Action>) {
        if self.owns(app, channel) {
            self.update_occupancy(app, channel, false, out);
        }
    }

    /// The live set changed: occupants died or left, ownership moved in or out.
    pub(super) fn occupancy_after_live_change(
        &mut self,
        old_live: &BTreeSet<NodeKey>,
        old_ids: &[NodeId],
        out: &mut Vec<Action>,
    ) {
        let me = self.me.id.clone();
        // Alone, this node owned everything but knew only its own interest: it is joining
        // (or back from being cut off), and the others' occupancy was announced by their
        // owner.
        let was_alone = old_live.iter().all(|k| *k == self.me);
        // Keys listed by live summaries for channels that are ours now and were another
        // node's: occupied before this change, under another owner.
        // Each key once: a channel with members on k nodes is in k summaries, and its owner
        // costs a rendezvous hash per live node (at 50 nodes, 50 summaries of ~18k keys).
        let mut listed: Vec<u64> = Vec::new();
        for (node, f) in self.table.summaries() {
            if *node != self.me && self.live.contains(node) {
                listed.extend_from_slice(f.keys());
            }
        }
        listed.sort_unstable();
        listed.dedup();
        let adopt: Vec<u64> = listed
            .into_iter()
            .filter(|key| !self.occupied.contains_key(key) && !self.adopted.contains(key))
            .filter(|&key| owner_of_key(key, &self.live_ids) == Some(&me))
            .filter(|&key| was_alone || owner_of_key(key, old_ids) != Some(&me))
            .collect();
        self.adopted.extend(adopt);
        let adopted = std::mem::take(&mut self.adopted);
        self.adopted = adopted
            .into_iter()
            .filter(|k| owner_of_key(*k, &self.live_ids) == Some(&me) && self.listed_by_peer(*k))
            .collect();
        // Every channel known by name.
        let mut names: BTreeSet<(String, String)> =
            self.occupied.values().flatten().cloned().collect();
        names.extend(self.local_interest.channels().cloned());
        names.extend(self.table.named_channels().cloned());
        for (app, channel) in names {
            if !self.owns(&app, &channel) {
                // Moved away (or never ours): the owner carries on, no event from here.
                self.forget_occupied(channel_key(&app, &channel), &(app, channel));
                continue;
            }
            // Interest known at the change predates it: if the channel was another node's,
            // that node announced it.
            let moved_in = was_alone || owner(&app, &channel, old_ids) != Some(&me);
            self.update_occupancy(&app, &channel, moved_in, out);
        }
    }
}
