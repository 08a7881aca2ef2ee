//! What one node holds about every node's members, laid out channel-major: per channel, its
//! users sorted, each with the nodes that hold it ([`Holder`]s, usually one: a user's
//! connections are on one node). The questions presence asks on every change are "is this
//! user still shown in this channel, and with which info?", and with this layout each is one
//! lookup whatever the number of nodes. Laid out per node (a map per node), a sync, a crash
//! or a heal asked every node's map about every changed member: at 50 simulated nodes that
//! was half the simulation's time, and each node's map repeated every channel name and
//! vector header, ~150 bytes per member copy.
//!
//! What a node holds as a whole (its digest, its member count) is in its [`Slot`]'s state;
//! what it holds in detail is found by a scan, which only a node-wide change (a sync, a death,
//! a departure) does, once per change.

use super::{ChannelKey, Digest};
use crate::NodeKey;
use compact_str::CompactString;
use foldhash::fast::RandomState;
use smallvec::SmallVec;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A node's index in the store; reused once the node is forgotten.
pub(super) type Slot = u32;

/// The rank of a node that does not count (neither live nor departing).
const UNCOUNTED: u32 = u32::MAX;

/// One node holding one user in one channel, with the info it holds for the user.
#[derive(Debug)]
pub(super) struct Holder {
    node: Slot,
    info: Option<Box<str>>,
}

/// One user of one channel and the nodes that hold it (never empty).
#[derive(Debug)]
pub(super) struct Entry {
    user: CompactString,
    holders: SmallVec<[Holder; 1]>,
}

impl Entry {
    pub(super) fn user(&self) -> &str {
        &self.user
    }

    fn holds(&self, slot: Slot) -> bool {
        self.holders.iter().any(|h| h.node == slot)
    }
}

#[derive(Debug)]
struct NodeState {
    digest: Digest,
    /// Position in the order of counted nodes ([`super::counted_in`]), or
    /// [`UNCOUNTED`]: the holder with the lowest rank shows its info (rule 5).
    rank: u32,
}

fn find(entries: &[Entry], user: &str) -> Result<usize, usize> {
    entries.binary_search_by(|e| e.user.as_str().cmp(user))
}

/// Every node's members, as this node holds them.
#[derive(Debug, Default)]
pub(super) struct Store {
    channels: HashMap<Arc<ChannelKey>, Vec<Entry>, RandomState>,
    nodes: BTreeMap<NodeKey, Slot>,
    slots: Vec<Option<NodeState>>,
    free: Vec<Slot>,
}

impl Store {
    /// The shared name of a channel, if something is held in it (so a sync's accumulated
    /// list does not allocate another copy of every name).
    pub(super) fn intern(&self, key: ChannelKey) -> Arc<ChannelKey> {
        match self.channels.get_key_value(&key) {
            Some((k, _)) => k.clone(),
            None => Arc::new(key),
        }
    }

    pub(super) fn slot_of(&self, node: &NodeKey) -> Option<Slot> {
        self.nodes.get(node).copied()
    }

    /// The node's slot, and whether it is new (its rank must then be set).
    pub(super) fn slot_for(&mut self, node: &NodeKey) -> (Slot, bool) {
        if let Some(s) = self.slot_of(node) {
            return (s, false);
        }
        let state = NodeState {
            digest: Digest::default(),
            rank: UNCOUNTED,
        };
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = Some(state);
                s
            }
            None => {
                self.slots.push(Some(state));
                (self.slots.len() - 1) as Slot
            }
        };
        self.nodes.insert(node.clone(), slot);
        (slot, true)
    }

    fn state(&self, slot: Slot) -> &NodeState {
        self.slots[slot as usize]
            .as_ref()
            .expect("a holder's slot is in use")
    }

    fn state_mut(&mut self, slot: Slot) -> &mut NodeState {
        self.slots[slot as usize]
            .as_mut()
            .expect("a holder's slot is in use")
    }

    /// Nodes something is held about (possibly nothing, after their last member left).
    pub(super) fn nodes(&self) -> impl Iterator<Item = &NodeKey> {
        self.nodes.keys()
    }

    pub(super) fn digest(&self, node: &NodeKey) -> Option<Digest> {
        Some(self.state(self.slot_of(node)?).digest)
    }

    /// Sets the ranks from the counted nodes, in order (every other node does not count).
    pub(super) fn rank<'a>(&mut self, counted: impl Iterator<Item = &'a NodeKey>) {
        for s in self.slots.iter_mut().flatten() {
            s.rank = UNCOUNTED;
        }
        for (i, key) in counted.enumerate() {
            if let Some(slot) = self.slot_of(key) {
                self.state_mut(slot).rank = i as u32;
            }
        }
    }

    fn rank_of(&self, h: &Holder) -> u32 {
        self.state(h.node).rank
    }

    /// The info shown for the entry: the counted holder of lowest rank's, if one counts.
    pub(super) fn shown_of<'a>(&self, e: &'a Entry) -> Option<Option<&'a str>> {
        let h = e
            .holders
            .iter()
            .filter(|h| self.rank_of(h) != UNCOUNTED)
            .min_by_key(|h| self.rank_of(h))?;
        Some(h.info.as_deref())
    }

    /// The channel's users, sorted, with every holder (counted or not).
    pub(super) fn entries(&self, key: &ChannelKey) -> &[Entry] {
        self.channels.get(key).map_or(&[], Vec::as_slice)
    }

    /// [`Store::shown_of`] the user in `entries` (one channel's).
    pub(super) fn shown_in<'a>(&self, entries: &'a [Entry], user: &str) -> Option<Option<&'a str>> {
        let i = find(entries, user).ok()?;
        self.shown_of(&entries[i])
    }

    /// The info shown for the user in the channel, if a counted node holds it.
    pub(super) fn shown(&self, key: &ChannelKey, user: &str) -> Option<Option<&str>> {
        self.shown_in(self.entries(key), user)
    }

    /// `slot` holds the user in the channel, with `info` (replacing the info it held).
    /// `None` when it held the user already; `Some((alone, i))` when new, `alone` when no
    /// other counted node holds the user, `i` the user's index in [`Store::entries`].
    pub(super) fn insert(
        &mut self,
        slot: Slot,
        key: Arc<ChannelKey>,
        user: CompactString,
        info: Option<Box<str>>,
    ) -> Option<(bool, usize)> {
        // Before `user` moves into the entry; applied only if the node did not hold it.
        let hash = super::member_hash(&key.0, &key.1, &user);
        let entries = self.channels.entry(key).or_default();
        let holder = Holder { node: slot, info };
        let (alone, i) = match find(entries, &user) {
            Ok(i) => {
                let e = &mut entries[i];
                if let Some(h) = e.holders.iter_mut().find(|h| h.node == slot) {
                    h.info = holder.info;
                    return None;
                }
                let slots = &self.slots;
                let counted = |h: &Holder| {
                    slots[h.node as usize]
                        .as_ref()
                        .is_some_and(|s| s.rank != UNCOUNTED)
                };
                let alone = !e.holders.iter().any(counted);
                e.holders.push(holder);
                (alone, i)
            }
            Err(i) => {
                if entries.len() == entries.capacity() {
                    // Half again, not double: most channels hold a few users.
                    entries.reserve_exact((entries.len() / 2).max(1));
                }
                let holders = smallvec::smallvec![holder];
                entries.insert(i, Entry { user, holders });
                (true, i)
            }
        };
        self.state_mut(slot).digest.flip(hash, true);
        Some((alone, i))
    }

    /// `slot` no longer holds the user in the channel; `false` if it did not.
    pub(super) fn remove(&mut self, slot: Slot, key: &ChannelKey, user: &str) -> bool {
        let Some(entries) = self.channels.get_mut(key) else {
            return false;
        };
        let Ok(i) = find(entries, user) else {
            return false;
        };
        let holders = &mut entries[i].holders;
        let Some(j) = holders.iter().position(|h| h.node == slot) else {
            return false;
        };
        holders.swap_remove(j);
        if holders.is_empty() {
            entries.remove(i);
            if entries.is_empty() {
                self.channels.remove(key);
            } else if entries.capacity() > 2 * entries.len() + 4 {
                entries.shrink_to_fit();
            }
        }
        self.state_mut(slot)
            .digest
            .toggle(&key.0, &key.1, user, false);
        true
    }

    /// Every holder of the user in the channel takes `info`.
    pub(super) fn set_info(&mut self, key: &ChannelKey, user: &str, info: &str) {
        let Some(entries) = self.channels.get_mut(key) else {
            return;
        };
        if let Ok(i) = find(entries, user) {
            for h in entries[i].holders.iter_mut() {
                h.info = Some(info.into());
            }
        }
    }

    /// The entries any of `slots` holds, each once, grouped by channel: one scan for all
    /// of them (a heal can make a dozen nodes live in one view), skipped when none of them
    /// holds anything.
    pub(super) fn held_by(&self, slots: &[Slot]) -> Vec<(&Arc<ChannelKey>, &Entry)> {
        let slots: SmallVec<[Slot; 4]> = slots
            .iter()
            .copied()
            .filter(|&s| self.state(s).digest.members > 0)
            .collect();
        if slots.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (k, entries) in &self.channels {
            for e in entries {
                if slots.iter().any(|&s| e.holds(s)) {
                    out.push((k, e));
                }
            }
        }
        out
    }

    /// Every channel with its users (of any holder): for scans by user.
    pub(super) fn channels(&self) -> impl Iterator<Item = (&ChannelKey, &[Entry])> {
        self.channels.iter().map(|(k, e)| (&**k, e.as_slice()))
    }

    /// Forgets the nodes and all they hold, in one scan.
    pub(super) fn drop_nodes(&mut self, nodes: &[NodeKey]) {
        let slots: Vec<Slot> = nodes.iter().filter_map(|n| self.nodes.remove(n)).collect();
        if slots.is_empty() {
            return;
        }
        let held = slots.iter().any(|&s| self.state(s).digest.members > 0);
        for &s in &slots {
            self.slots[s as usize] = None;
            self.free.push(s);
        }
        if !held {
            return;
        }
        self.channels.retain(|_, entries| {
            entries.retain_mut(|e| {
                e.holders.retain(|h| !slots.contains(&h.node));
                !e.holders.is_empty()
            });
            if entries.capacity() > 2 * entries.len() + 4 {
                entries.shrink_to_fit();
            }
            !entries.is_empty()
        });
    }
}
