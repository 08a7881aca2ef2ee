//! The cluster presence view, as a pure state machine: no I/O, no clocks, no runtime.
//!
//! Two halves:
//!
//! * [`LocalPresence`]: this node's own members, with a connection count per
//!   `(app, channel, user)`. It reports only the first-connection and last-connection
//!   transitions (the multi-tab rule), which are what peers need to hear about.
//! * [`ClusterPresence`]: what every node holds about every node, keyed by
//!   [`NodeKey`] (id *and* generation). The effective member set of a channel is the union
//!   over **live** nodes. Every input returns exactly the `member_added`/`member_removed`
//!   transitions of that union as this node sees it. Each node sends them to its own
//!   subscribers; the channel's owning node also fires the webhooks.
//!
//! ## Rules (the invariants the tests check)
//!
//! 1. A node only writes its own members. What A holds about C came from C (joins, leaves,
//!    or a full sync after a link comes up), never from a third node.
//! 2. A user is present in a channel while at least one live node holds it; it is
//!    `member_added` when the first live holder appears and `member_removed` when the last
//!    one goes, whatever the reason (leave, node death, restart). No event is emitted twice in
//!    a row for the same user and channel.
//! 3. Only the newest generation of a node id counts. A restarted node is a new member: its
//!    old generation's members are dropped and never come back, even if a stale message
//!    from the old run arrives late.
//! 4. What is held about a node survives a link drop while the node is live (the sync after
//!    reconnect replaces it, emitting only real differences), and survives a short death
//!    verdict while its link is still up (the link is FIFO, so it stayed current). It is
//!    forgotten when the node is neither live nor linked.
//! 5. The user info shown is the one held by the lowest live [`NodeKey`] that has the user;
//!    a change of holder emits nothing (Pusher has no `member_updated`). An app's update of
//!    the info ([`ClusterPresence::update_info`], Raptor's `raptor:member_updated`) is the one
//!    exception to rule 1: the channel's owning node orders it and every node writes it into
//!    what it holds about every holder of the user, so the shown info is the new one whichever
//!    node shows it; each holder also keeps it in its [`LocalPresence`], so its next sync
//!    carries it too.
//! 6. A node that left on purpose ([`ClusterPresence::depart`]) stops being live at once
//!    (its channels move), but its members keep counting, frozen, until
//!    [`ClusterPresence::release`]. Its clients were told to reconnect (4200); those who
//!    rejoin elsewhere before the release never flap (no `member_removed` then
//!    `member_added`), the others get one `member_removed` at the release. A restart of the
//!    same id during the hold does not cut it short.

mod incoming;
mod store;

use crate::NodeKey;
use compact_str::CompactString;
use incoming::Incoming;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use store::{Entry, Slot, Store};
use xxhash_rust::xxh3::xxh3_64;

/// `(app, channel)` of a presence channel.
pub type ChannelKey = (String, String);

/// One member of one channel, as a node holds it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Member {
    pub app: String,
    pub channel: String,
    pub user_id: String,
    pub user_info: Option<String>,
}

/// A transition of the cluster-wide member set of one channel.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PresenceEvent {
    pub app: String,
    pub channel: String,
    pub user_id: String,
    pub change: Change,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    /// The first live holder appeared; carries the info to show.
    Added { user_info: Option<String> },
    /// The last live holder went.
    Removed,
}

/// Count and order-free digest of a member set: `(members, xor of xxh3(app, channel, user))`.
/// Equal digests mean (with overwhelming probability) equal sets; cheap to keep up to date
/// on every join and leave. Gossiped as a node's presence summary for anti-entropy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Digest {
    pub members: u64,
    pub xor: u64,
}

impl Digest {
    fn toggle(&mut self, app: &str, channel: &str, user: &str, add: bool) {
        self.flip(member_hash(app, channel, user), add);
    }

    /// [`Digest::toggle`] with the member's hash already computed.
    fn flip(&mut self, hash: u64, add: bool) {
        self.xor ^= hash;
        if add {
            self.members += 1;
        } else {
            self.members -= 1;
        }
    }

    /// `"{members}:{xor as 16 hex}"`, the gossip form.
    pub fn encode(&self) -> String {
        format!("{}:{:016x}", self.members, self.xor)
    }

    pub fn decode(s: &str) -> Option<Digest> {
        let (m, x) = s.split_once(':')?;
        Some(Digest {
            members: m.parse().ok()?,
            xor: u64::from_str_radix(x, 16).ok()?,
        })
    }
}

fn member_hash(app: &str, channel: &str, user: &str) -> u64 {
    let mut key = Vec::with_capacity(app.len() + channel.len() + user.len() + 2);
    key.extend_from_slice(app.as_bytes());
    key.push(0);
    key.extend_from_slice(channel.as_bytes());
    key.push(0);
    key.extend_from_slice(user.as_bytes());
    xxh3_64(&key)
}

/// A transition of this node's own member set, to tell every peer about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocalChange {
    /// First local connection of the user in the channel.
    Joined(Member),
    /// Last local connection gone.
    Left {
        app: String,
        channel: String,
        user_id: String,
    },
}

/// This node's own presence members with connection counts.
#[derive(Default, Debug)]
pub struct LocalPresence {
    /// `(app, channel)` → user → (connections on this node, info of the first connection).
    channels: HashMap<ChannelKey, HashMap<String, (u32, Option<String>)>>,
    digest: Digest,
}

impl LocalPresence {
    pub fn new() -> LocalPresence {
        LocalPresence::default()
    }

    /// One more local connection of `user_id` in the channel. `Some` on the first one.
    pub fn join(
        &mut self,
        app: &str,
        channel: &str,
        user_id: &str,
        user_info: Option<String>,
    ) -> Option<LocalChange> {
        let users = self
            .channels
            .entry((app.to_owned(), channel.to_owned()))
            .or_default();
        let entry = users
            .entry(user_id.to_owned())
            .or_insert((0, user_info.clone()));
        entry.0 += 1;
        if entry.0 > 1 {
            return None;
        }
        self.digest.toggle(app, channel, user_id, true);
        Some(LocalChange::Joined(Member {
            app: app.to_owned(),
            channel: channel.to_owned(),
            user_id: user_id.to_owned(),
            user_info,
        }))
    }

    /// One local connection fewer. `Some` on the last one; unknown users are ignored.
    pub fn leave(&mut self, app: &str, channel: &str, user_id: &str) -> Option<LocalChange> {
        let key = (app.to_owned(), channel.to_owned());
        let users = self.channels.get_mut(&key)?;
        let entry = users.get_mut(user_id)?;
        entry.0 -= 1;
        if entry.0 > 0 {
            return None;
        }
        users.remove(user_id);
        if users.is_empty() {
            self.channels.remove(&key);
        }
        self.digest.toggle(app, channel, user_id, false);
        Some(LocalChange::Left {
            app: app.to_owned(),
            channel: channel.to_owned(),
            user_id: user_id.to_owned(),
        })
    }

    /// Replaces the info of a local member (every connection of the user in the channel):
    /// the app updated it. `false`: not a local member.
    pub fn update_info(&mut self, app: &str, channel: &str, user_id: &str, info: &str) -> bool {
        let key = (app.to_owned(), channel.to_owned());
        match self.channels.get_mut(&key).and_then(|u| u.get_mut(user_id)) {
            Some(entry) => {
                entry.1 = Some(info.to_owned());
                true
            }
            None => false,
        }
    }

    /// Whether `user_id` has a connection in the channel on this node.
    pub fn contains(&self, app: &str, channel: &str, user_id: &str) -> bool {
        self.channels
            .get(&(app.to_owned(), channel.to_owned()))
            .is_some_and(|users| users.contains_key(user_id))
    }

    /// Every member, sorted, for a sync to a peer whose link just came up.
    pub fn snapshot(&self) -> Vec<Member> {
        let mut out: Vec<Member> = self
            .channels
            .iter()
            .flat_map(|((app, channel), users)| {
                users.iter().map(move |(user, (_, info))| Member {
                    app: app.clone(),
                    channel: channel.clone(),
                    user_id: user.clone(),
                    user_info: info.clone(),
                })
            })
            .collect();
        out.sort();
        out
    }

    pub fn digest(&self) -> Digest {
        self.digest
    }
}

/// The cluster-wide presence view one node keeps (see the module doc for the rules).
#[derive(Default, Debug)]
pub struct ClusterPresence {
    /// What is held about every node, channel-major.
    store: Store,
    /// Live nodes, newest generation per id only.
    live: BTreeSet<NodeKey>,
    /// Nodes with a data link up (what we hold about them stays current).
    linked: BTreeSet<NodeKey>,
    /// Sync chunks received so far (the next part expected, and the members), which
    /// replace what is held on the `done` chunk.
    syncing: BTreeMap<NodeKey, (u32, Incoming)>,
    /// Nodes that left on purpose whose members still count until released (rule 6).
    departing: BTreeSet<NodeKey>,
}

/// The `(channel, user)` pairs a change may affect; [`ClusterPresence::diff`] sorts them and
/// drops duplicates (a sorted vector: a sync affects every member of a node at once, and a
/// tree of 100k cloned pairs cost more than the change itself).
type Affected = Vec<(ChannelKey, String)>;

/// Nodes whose members count: the live ones, then the departing ones (so a live holder's
/// info wins).
fn counted_in<'a>(
    live: &'a BTreeSet<NodeKey>,
    departing: &'a BTreeSet<NodeKey>,
) -> impl Iterator<Item = &'a NodeKey> {
    live.iter()
        .chain(departing.iter().filter(|k| !live.contains(*k)))
}

/// What a pair's change of shown state is worth telling: shown before (`was`), and what is
/// shown now (its info). Only the info of a pair that appeared is copied.
fn change_of(was: bool, now: Option<Option<&str>>) -> Option<Change> {
    match (was, now) {
        (false, Some(info)) => Some(Change::Added {
            user_info: info.map(str::to_owned),
        }),
        (true, None) => Some(Change::Removed),
        _ => None,
    }
}

fn event(key: &ChannelKey, user: &str, change: Change) -> PresenceEvent {
    PresenceEvent {
        app: key.0.clone(),
        channel: key.1.clone(),
        user_id: user.to_owned(),
        change,
    }
}

impl ClusterPresence {
    pub fn new() -> ClusterPresence {
        ClusterPresence::default()
    }

    /// The counted set or the held nodes changed: the store's ranks follow. Runs on every
    /// view (through `set_live`), so the fields are borrowed apart rather than the keys
    /// copied out.
    fn rerank(&mut self) {
        self.store.rank(counted_in(&self.live, &self.departing));
    }

    /// The node's slot in the store, made (and ranked) if it has none.
    fn slot(&mut self, node: &NodeKey) -> Slot {
        let (slot, new) = self.store.slot_for(node);
        if new {
            self.rerank();
        }
        slot
    }

    /// Runs `change`, then emits the difference in presence for the `affected` users.
    fn diff(
        &mut self,
        mut affected: Affected,
        change: impl FnOnce(&mut ClusterPresence),
    ) -> Vec<PresenceEvent> {
        affected.sort_unstable();
        affected.dedup();
        let before: Vec<bool> = self.shown(&affected).map(|s| s.is_some()).collect();
        change(self);
        let changes: Vec<Option<Change>> = self
            .shown(&affected)
            .zip(before)
            .map(|(now, was)| change_of(was, now))
            .collect();
        let mut out = Vec::new();
        for ((key, user), change) in affected.into_iter().zip(changes) {
            if let Some(change) = change {
                out.push(PresenceEvent {
                    app: key.0,
                    channel: key.1,
                    user_id: user,
                    change,
                });
            }
        }
        out
    }

    /// What is shown for each of the sorted `affected` pairs: a channel is looked up once.
    fn shown<'a>(
        &'a self,
        affected: &'a [(ChannelKey, String)],
    ) -> impl Iterator<Item = Option<Option<&'a str>>> + 'a {
        let mut entries: &[Entry] = &[];
        let mut channel: Option<&ChannelKey> = None;
        affected.iter().map(move |(key, user)| {
            if channel != Some(key) {
                channel = Some(key);
                entries = self.store.entries(key);
            }
            self.store.shown_in(entries, user)
        })
    }

    /// Runs `change`, then emits the difference in presence for every user `nodes` held
    /// before it: what [`ClusterPresence::diff`] does for a node-wide change, without
    /// cloning and sorting every pair. One scan finds the pairs (each once, grouped by
    /// channel) with whether each was shown; after the change each is looked up again.
    /// A heal makes nodes holding hundreds of thousands of members live at once, and the
    /// node's core applies no other view until this returns.
    fn diff_held<'n>(
        &mut self,
        nodes: impl IntoIterator<Item = &'n NodeKey>,
        change: impl FnOnce(&mut ClusterPresence),
    ) -> Vec<PresenceEvent> {
        let slots: Vec<Slot> = nodes
            .into_iter()
            .filter_map(|n| self.store.slot_of(n))
            .collect();
        let before: Vec<(Arc<ChannelKey>, CompactString, bool)> = self
            .store
            .held_by(&slots)
            .into_iter()
            .map(|(k, e)| (k.clone(), e.user().into(), self.store.shown_of(e).is_some()))
            .collect();
        change(self);
        let mut out = Vec::new();
        let mut channel: Option<(&Arc<ChannelKey>, &[Entry])> = None;
        for (key, user, was) in &before {
            let entries = match channel {
                Some((k, entries)) if Arc::ptr_eq(k, key) => entries,
                _ => self.store.entries(key),
            };
            channel = Some((key, entries));
            if let Some(change) = change_of(*was, self.store.shown_in(entries, user)) {
                out.push(event(key, user, change));
            }
        }
        out.sort();
        out
    }

    /// True when a newer generation of `node`'s id is known (live, linked or held).
    fn superseded(&self, node: &NodeKey) -> bool {
        let newer = |k: &NodeKey| k.id == node.id && k.generation > node.generation;
        self.live.iter().any(newer)
            || self.linked.iter().any(newer)
            || self.store.nodes().any(newer)
    }

    /// Forgets what is held about nodes that are neither live nor linked, or superseded,
    /// unless they are departing (rule 6). Ranks the nodes again.
    fn collect_garbage(&mut self) {
        let drop: Vec<NodeKey> = self
            .store
            .nodes()
            .filter(|k| !self.departing.contains(*k))
            .filter(|k| (!self.live.contains(k) && !self.linked.contains(k)) || self.superseded(k))
            .cloned()
            .collect();
        for k in &drop {
            self.syncing.remove(k);
        }
        self.store.drop_nodes(&drop);
        self.rerank();
    }

    /// The live set changed (from the membership view; include this node itself). Only the
    /// newest generation per node id counts.
    pub fn set_live(&mut self, live: impl IntoIterator<Item = NodeKey>) -> Vec<PresenceEvent> {
        let mut newest: BTreeMap<_, NodeKey> = BTreeMap::new();
        for k in live {
            match newest.get(&k.id) {
                Some(have) if have.generation >= k.generation => {}
                _ => {
                    newest.insert(k.id.clone(), k);
                }
            }
        }
        let new_live: BTreeSet<NodeKey> = newest.into_values().collect();
        let changed: Vec<NodeKey> = self.live.symmetric_difference(&new_live).cloned().collect();
        self.diff_held(&changed, |s| {
            s.live = new_live;
            s.collect_garbage();
        })
    }

    /// A data link to `node` came up: a sync from it follows.
    pub fn link_up(&mut self, node: &NodeKey) -> Vec<PresenceEvent> {
        self.syncing.insert(node.clone(), (0, Incoming::default()));
        // A newer generation linking supersedes older ones we may still show.
        let old: Vec<NodeKey> = self
            .store
            .nodes()
            .filter(|k| {
                k.id == node.id && k.generation < node.generation && !self.departing.contains(*k)
            })
            .cloned()
            .collect();
        self.diff_held(&old, |s| {
            s.linked.insert(node.clone());
            s.collect_garbage();
        })
    }

    /// The data link to `node` went down.
    pub fn link_down(&mut self, node: &NodeKey) -> Vec<PresenceEvent> {
        self.diff_held([node], |s| {
            s.linked.remove(node);
            s.syncing.remove(node);
            s.collect_garbage();
        })
    }

    /// `node` says: `m` has a connection in the channel on me.
    pub fn join(&mut self, node: &NodeKey, m: Member) -> Vec<PresenceEvent> {
        if self.superseded(node) || self.departing.contains(node) {
            return Vec::new();
        }
        let affected = vec![((m.app.clone(), m.channel.clone()), m.user_id.clone())];
        self.diff(affected, |s| {
            let slot = s.slot(node);
            let key = s.store.intern((m.app, m.channel));
            let info = m.user_info.map(String::into_boxed_str);
            s.store.insert(slot, key, m.user_id.into(), info);
        })
    }

    /// `node` says: the user has no connection left in the channel on me.
    pub fn leave(
        &mut self,
        node: &NodeKey,
        app: &str,
        channel: &str,
        user_id: &str,
    ) -> Vec<PresenceEvent> {
        if self.departing.contains(node) {
            // Frozen until released (rule 6): its clients closing must not flap.
            return Vec::new();
        }
        let Some(slot) = self.store.slot_of(node) else {
            return Vec::new();
        };
        let key = (app.to_owned(), channel.to_owned());
        let affected = vec![(key.clone(), user_id.to_owned())];
        self.diff(affected, |s| {
            s.store.remove(slot, &key, user_id);
        })
    }

    /// Chunk number `part` of `node`'s full member list (after its link came up, or when
    /// asked again). On `done`, what is held about `node` is replaced by the accumulated
    /// list. Part 0 starts a sync (dropping any unfinished one); a chunk that is not the
    /// next one expected (an earlier chunk was lost) abandons the sync, so a partial list
    /// is never applied: what is held stays until the next complete sync.
    pub fn sync(
        &mut self,
        node: &NodeKey,
        part: u32,
        members: Vec<Member>,
        done: bool,
    ) -> Vec<PresenceEvent> {
        if self.superseded(node) || self.departing.contains(node) {
            return Vec::new();
        }
        if part == 0 {
            self.syncing.insert(node.clone(), (0, Incoming::default()));
        }
        match self.syncing.get_mut(node) {
            Some((next, acc)) if *next == part => {
                *next += 1;
                for m in members {
                    acc.push(&self.store, m);
                }
            }
            _ => {
                self.syncing.remove(node);
                return Vec::new();
            }
        }
        if !done {
            return Vec::new();
        }
        let new = match self.syncing.remove(node) {
            Some((_, acc)) => acc.finish(),
            None => Incoming::default().finish(),
        };
        let slot = self.slot(node);
        let counted = self.live.contains(node);
        // Only the pairs the sync changes can change presence, and only where no other
        // counted node holds the user: one lookup per changed pair.
        let mut out = Vec::new();
        let gone: Vec<(Arc<ChannelKey>, String)> = self
            .store
            .held_by(&[slot])
            .into_iter()
            .filter(|(k, e)| !new.has(k, e.user()))
            .map(|(k, e)| (k.clone(), e.user().into()))
            .collect();
        for (key, user) in gone {
            self.store.remove(slot, &key, &user);
            if counted && self.store.shown(&key, &user).is_none() {
                out.push(event(&key, &user, Change::Removed));
            }
        }
        for (key, user, info) in new.into_members() {
            let k = key.clone();
            let Some((alone, i)) = self.store.insert(slot, key, user, info) else {
                continue;
            };
            if counted && alone {
                let e = &self.store.entries(&k)[i];
                let user_info = self.store.shown_of(e).flatten().map(str::to_owned);
                out.push(event(&k, e.user(), Change::Added { user_info }));
            }
        }
        out.sort();
        out
    }

    /// The node left on purpose (`Leaving`): it is no longer live or linked, but what is
    /// held about it keeps counting, unchanged, until [`ClusterPresence::release`] (rule 6).
    /// Emits nothing: no member changes at the moment of leaving. Idempotent.
    pub fn depart(&mut self, node: &NodeKey) -> Vec<PresenceEvent> {
        if self.departing.contains(node) {
            return Vec::new();
        }
        if self.store.slot_of(node).is_none() || !self.live.contains(node) {
            // Nothing counted to hold (no members, or a node already out of the live set,
            // e.g. declared dead while its link stayed up): just forget it. Holding it would
            // add members nobody saw, then remove them.
            return self.release(node);
        }
        self.departing.insert(node.clone());
        self.diff_held([node], |s| {
            s.live.remove(node);
            s.linked.remove(node);
            s.syncing.remove(node);
            s.rerank();
        })
    }

    /// Whether `node`'s members are held after it left (rule 6).
    pub fn is_departing(&self, node: &NodeKey) -> bool {
        self.departing.contains(node)
    }

    /// The hold of a departed node is over: its members stop counting. Users not connected
    /// to any other node get their `member_removed` now.
    pub fn release(&mut self, node: &NodeKey) -> Vec<PresenceEvent> {
        self.diff_held([node], |s| {
            s.departing.remove(node);
            s.live.remove(node);
            s.linked.remove(node);
            s.store.drop_nodes(std::slice::from_ref(node));
            s.syncing.remove(node);
            s.rerank();
        })
    }

    /// A channel's users held by a counted node, sorted, with the info shown.
    fn counted_entries<'a>(
        &'a self,
        key: &ChannelKey,
    ) -> impl Iterator<Item = (&'a str, Option<&'a str>)> + 'a {
        self.store
            .entries(key)
            .iter()
            .filter_map(|e| Some((e.user(), self.store.shown_of(e)?)))
    }

    /// The effective members of a channel, sorted by user id: `(user_id, user_info)`.
    pub fn members(&self, app: &str, channel: &str) -> Vec<(String, Option<String>)> {
        let key = (app.to_owned(), channel.to_owned());
        self.counted_entries(&key)
            .map(|(u, i)| (u.to_owned(), i.map(str::to_owned)))
            .collect()
    }

    /// How many users [`ClusterPresence::members`] would list, without building the list
    /// (user counts in channel queries).
    pub fn member_count(&self, app: &str, channel: &str) -> usize {
        self.counted_entries(&(app.to_owned(), channel.to_owned()))
            .count()
    }

    /// Whether `user_id` may join the channel under a limit of `max` members: it already is
    /// a member (on any counted node, live or held after a leave: the multi-tab rule), or the
    /// union over those nodes has fewer than `max`.
    /// Counting stops at `max`, so a check looks at most at `max` counted users.
    pub fn has_room_for(&self, app: &str, channel: &str, user_id: &str, max: usize) -> bool {
        let key = (app.to_owned(), channel.to_owned());
        if self.store.shown(&key, user_id).is_some() {
            return true;
        }
        self.counted_entries(&key).take(max).count() < max
    }

    /// Whether `user_id` is a member of the channel in this view (held by a counted node).
    pub fn is_member(&self, app: &str, channel: &str, user_id: &str) -> bool {
        self.store
            .shown(&(app.to_owned(), channel.to_owned()), user_id)
            .is_some()
    }

    /// The app updated the member's info: every held entry of the user in the channel takes
    /// it (whichever node holds it; see rule 5), so the shown info is the new one. The digest
    /// does not change (it covers who is a member, not the info). `false`: the user is not a
    /// member in this view, and nothing changed.
    pub fn update_info(&mut self, app: &str, channel: &str, user_id: &str, info: &str) -> bool {
        if !self.is_member(app, channel, user_id) {
            return false;
        }
        let key = (app.to_owned(), channel.to_owned());
        self.store.set_info(&key, user_id, info);
        true
    }

    /// The presence channels of `app` in which `user_id` is a member in this view, sorted
    /// (an update without a channel goes to each). Scans what is held: a rare API call.
    pub fn channels_of(&self, app: &str, user_id: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .store
            .channels()
            .filter(|(k, _)| k.0 == app)
            .filter(|(_, entries)| self.store.shown_in(entries, user_id).is_some())
            .map(|(k, _)| k.1.clone())
            .collect();
        out.sort();
        out
    }

    /// The next chunk expected of `node`'s sync in progress, if one is.
    pub fn sync_progress(&self, node: &NodeKey) -> Option<u32> {
        self.syncing.get(node).map(|(next, _)| *next)
    }

    /// Digest of what is held about `node`, to compare with the one it gossips.
    pub fn digest_of(&self, node: &NodeKey) -> Option<Digest> {
        self.store.digest(node)
    }

    /// Nodes something is held about (for tests and stats).
    pub fn held_nodes(&self) -> Vec<NodeKey> {
        self.store.nodes().cloned().collect()
    }
}

#[cfg(test)]
mod tests;
