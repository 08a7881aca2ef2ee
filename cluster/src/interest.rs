//! Which nodes want a channel's events.
//!
//! A node is *interested* in `(app, channel)` while it has at least one local subscriber.
//! The owning node must send it every event of that channel. Interest travels two ways, and
//! the owner delivers to the union:
//!
//! * **Fast:** `Interest { on }` messages to the owner on the first and last local
//!   subscription, and again to a new owner when ownership moves or a link comes back.
//!   [`InterestTable`] keeps them per [`NodeKey`].
//! * **Self-healing:** each node gossips a summary of its interest, a set of 64-bit channel
//!   keys ([`crate::ownership::channel_key`]). A lost `Interest` message then costs at most
//!   the time for gossip to carry the summary. The summary may say "yes" wrongly (a hash
//!   collision, an overflowing bucket, a stale value), which costs one `Deliver` that the
//!   receiver drops; it never says "no" wrongly once gossip has converged.
//!
//! ## The gossip format (compact on purpose)
//!
//! The key space is cut into 256 buckets by the top byte of the channel key. Bucket `b` is
//! the chitchat key `interest.XX` (`XX` = `b` as two lowercase hex digits); its value is the
//! sorted keys of that bucket, each as 16 lowercase hex digits, concatenated without
//! separators. A bucket is at most [`MAX_VALUE_LEN`] (4 KB, 255 keys); a bucket with more
//! keys is written as `*`, meaning "every channel in this bucket", which stays correct (only
//! less precise). Empty buckets are deleted. A change touches one key, so chitchat gossips
//! only that bucket.

use crate::ownership::channel_key;
use crate::NodeKey;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;

/// Prefix of the interest keys in a node's gossip state.
pub const KEY_PREFIX: &str = "interest.";
/// Longest value of one interest key.
pub const MAX_VALUE_LEN: usize = 4096;
const HASHES_PER_BUCKET: usize = MAX_VALUE_LEN / 16;

fn bucket_of(key: u64) -> u8 {
    (key >> 56) as u8
}

fn bucket_key(bucket: u8) -> String {
    format!("{KEY_PREFIX}{bucket:02x}")
}

/// This node's own interest: the channels with local subscribers, and the gossip keys that
/// changed since they were last taken.
#[derive(Default, Debug)]
pub struct LocalInterest {
    channels: HashSet<(String, String)>,
    /// Channel key → number of channels with that key (collisions are possible).
    keys: BTreeMap<u64, u32>,
    dirty: BTreeSet<u8>,
}

impl LocalInterest {
    pub fn new() -> LocalInterest {
        LocalInterest::default()
    }

    /// Records that the node has (`on`) or no longer has local subscribers for the channel.
    /// Returns whether anything changed (only then does the owner need an `Interest`).
    pub fn set(&mut self, app: &str, channel: &str, on: bool) -> bool {
        let id = (app.to_owned(), channel.to_owned());
        let key = channel_key(app, channel);
        if on {
            if !self.channels.insert(id) {
                return false;
            }
            *self.keys.entry(key).or_default() += 1;
        } else {
            if !self.channels.remove(&id) {
                return false;
            }
            if let Some(n) = self.keys.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    self.keys.remove(&key);
                }
            }
        }
        self.dirty.insert(bucket_of(key));
        true
    }

    pub fn contains(&self, app: &str, channel: &str) -> bool {
        self.channels
            .contains(&(app.to_owned(), channel.to_owned()))
    }

    /// Every channel with local subscribers (to re-announce to new owners).
    pub fn channels(&self) -> impl Iterator<Item = &(String, String)> {
        self.channels.iter()
    }

    /// Gossip keys to write since the last call: `(key, Some(value))` to set,
    /// `(key, None)` to delete.
    pub fn take_gossip_changes(&mut self) -> Vec<(String, Option<String>)> {
        let dirty = std::mem::take(&mut self.dirty);
        dirty
            .into_iter()
            .map(|b| (bucket_key(b), self.bucket_value(b)))
            .collect()
    }

    /// All gossip keys, as at start.
    pub fn gossip_all(&self) -> Vec<(String, String)> {
        let buckets: BTreeSet<u8> = self.keys.keys().map(|k| bucket_of(*k)).collect();
        buckets
            .into_iter()
            .filter_map(|b| Some((bucket_key(b), self.bucket_value(b)?)))
            .collect()
    }

    fn bucket_value(&self, b: u8) -> Option<String> {
        let lo = u64::from(b) << 56;
        let hi = lo | ((1u64 << 56) - 1);
        let keys = || self.keys.range(lo..=hi).map(|(k, _)| *k);
        let n = keys().take(HASHES_PER_BUCKET + 1).count();
        if n == 0 {
            return None;
        }
        if n > HASHES_PER_BUCKET {
            return Some("*".to_owned());
        }
        // Written in place: this runs on every first or last subscriber of a channel.
        let mut v = String::with_capacity(n * 16);
        for k in keys() {
            let _ = write!(v, "{k:016x}");
        }
        Some(v)
    }
}

/// A peer's interest as read from its gossip keys. Cheap to clone (shared): a view hands
/// every node's summary to every core, and an unchanged summary compares by pointer, so a
/// view change costs nothing per unchanged summary (at 50 nodes a summary holds ~18k keys).
#[derive(Clone, Debug, Default)]
pub struct InterestFilter(std::sync::Arc<FilterData>);

#[derive(Debug, Default, PartialEq, Eq)]
struct FilterData {
    /// Sorted channel keys.
    keys: Vec<u64>,
    /// Buckets written as `*`.
    all: BTreeSet<u8>,
}

impl PartialEq for InterestFilter {
    fn eq(&self, other: &InterestFilter) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Eq for InterestFilter {}

impl InterestFilter {
    /// Reads the `interest.XX` entries among a node's key-values; other keys and malformed
    /// values are ignored (a malformed bucket counts as `*`, erring towards delivery).
    pub fn from_gossip<'a>(kvs: impl IntoIterator<Item = (&'a str, &'a str)>) -> InterestFilter {
        let mut f = FilterData::default();
        for (k, v) in kvs {
            let Some(b) = k.strip_prefix(KEY_PREFIX) else {
                continue;
            };
            let Ok(b) = u8::from_str_radix(b, 16) else {
                continue;
            };
            if v == "*" || v.len() % 16 != 0 || v.len() > MAX_VALUE_LEN {
                f.all.insert(b);
                continue;
            }
            for i in (0..v.len()).step_by(16) {
                match v
                    .get(i..i + 16)
                    .and_then(|h| u64::from_str_radix(h, 16).ok())
                {
                    Some(key) => f.keys.push(key),
                    None => {
                        f.all.insert(b);
                        break;
                    }
                }
            }
        }
        f.keys.sort_unstable();
        f.keys.dedup();
        InterestFilter(std::sync::Arc::new(f))
    }

    /// May the node be interested in the channel with this key?
    pub fn may_contain(&self, key: u64) -> bool {
        self.0.all.contains(&bucket_of(key)) || self.0.keys.binary_search(&key).is_ok()
    }

    /// Does the summary list this exact key? Unlike [`InterestFilter::may_contain`], a `*`
    /// bucket does not count: this is what occupancy counts (see [`crate::node`]).
    pub fn lists(&self, key: u64) -> bool {
        self.0.keys.binary_search(&key).is_ok()
    }

    /// The exact keys listed, sorted (without the `*` buckets).
    pub fn keys(&self) -> &[u64] {
        &self.0.keys
    }

    pub fn is_empty(&self) -> bool {
        self.0.keys.is_empty() && self.0.all.is_empty()
    }
}

/// The owner's side: who asked for which channel, explicitly or through gossip.
#[derive(Default, Debug)]
pub struct InterestTable {
    explicit: HashMap<(String, String), BTreeSet<NodeKey>>,
    gossip: BTreeMap<NodeKey, InterestFilter>,
}

impl InterestTable {
    pub fn new() -> InterestTable {
        InterestTable::default()
    }

    /// An `Interest` message from `node`.
    pub fn set(&mut self, node: &NodeKey, app: &str, channel: &str, on: bool) {
        let id = (app.to_owned(), channel.to_owned());
        if on {
            self.explicit.entry(id).or_default().insert(node.clone());
        } else if let Some(set) = self.explicit.get_mut(&id) {
            set.remove(node);
            if set.is_empty() {
                self.explicit.remove(&id);
            }
        }
    }

    /// `node`'s gossiped summary changed.
    pub fn set_gossip(&mut self, node: &NodeKey, filter: InterestFilter) {
        if filter.is_empty() {
            self.gossip.remove(node);
        } else {
            self.gossip.insert(node.clone(), filter);
        }
    }

    /// Forgets everything about nodes not in `live` (dead, or an old generation).
    pub fn retain_live(&mut self, live: &BTreeSet<NodeKey>) {
        self.explicit.retain(|_, set| {
            set.retain(|n| live.contains(n));
            !set.is_empty()
        });
        self.gossip.retain(|n, _| live.contains(n));
    }

    /// Forgets one node (it left on purpose).
    pub fn forget(&mut self, node: &NodeKey) {
        self.retain_live(&self.nodes().into_iter().filter(|n| n != node).collect());
    }

    fn nodes(&self) -> BTreeSet<NodeKey> {
        let mut all: BTreeSet<NodeKey> = self.gossip.keys().cloned().collect();
        for set in self.explicit.values() {
            all.extend(set.iter().cloned());
        }
        all
    }

    /// The nodes that sent `Interest { on: true }` for the channel (live or not).
    pub fn named<'a>(&'a self, app: &str, channel: &str) -> impl Iterator<Item = &'a NodeKey> {
        self.explicit
            .get(&(app.to_owned(), channel.to_owned()))
            .into_iter()
            .flatten()
    }

    /// Every channel some node asked for by name.
    pub fn named_channels(&self) -> impl Iterator<Item = &(String, String)> {
        self.explicit.keys()
    }

    /// The nodes whose summary lists `key` exactly (a `*` bucket does not count).
    pub fn listing(&self, key: u64) -> impl Iterator<Item = &NodeKey> {
        self.gossip
            .iter()
            .filter(move |(_, f)| f.lists(key))
            .map(|(n, _)| n)
    }

    /// Every node's summary.
    pub fn summaries(&self) -> impl Iterator<Item = (&NodeKey, &InterestFilter)> {
        self.gossip.iter()
    }

    /// `node`'s summary, if it has a non-empty one.
    pub fn summary(&self, node: &NodeKey) -> Option<&InterestFilter> {
        self.gossip.get(node)
    }

    /// The nodes to send the channel's events to, sorted.
    pub fn interested(&self, app: &str, channel: &str) -> Vec<NodeKey> {
        let key = channel_key(app, channel);
        let mut out: BTreeSet<NodeKey> = self
            .explicit
            .get(&(app.to_owned(), channel.to_owned()))
            .cloned()
            .unwrap_or_default();
        for (node, f) in &self.gossip {
            if f.may_contain(key) {
                out.insert(node.clone());
            }
        }
        out.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NodeId;
    use proptest::prelude::*;

    fn node(id: &str) -> NodeKey {
        NodeKey::new(NodeId::new(id).unwrap(), 1)
    }

    fn apply(gossip: &mut BTreeMap<String, String>, changes: Vec<(String, Option<String>)>) {
        for (k, v) in changes {
            match v {
                Some(v) => gossip.insert(k, v),
                None => gossip.remove(&k),
            };
        }
    }

    proptest! {
        /// Whatever the history, the gossip keys read back say "yes" for every channel the
        /// node has, and every value fits the bound.
        #[test]
        fn summary_never_misses_and_stays_small(
            ops in proptest::collection::vec((0u32..3000, any::<bool>()), 1..400),
        ) {
            let mut local = LocalInterest::new();
            let mut gossip = BTreeMap::new();
            for (i, on) in ops {
                local.set("1", &format!("room-{i}"), on);
                if i % 7 == 0 {
                    apply(&mut gossip, local.take_gossip_changes());
                }
            }
            apply(&mut gossip, local.take_gossip_changes());
            let all: BTreeMap<String, String> = local.gossip_all().into_iter().collect();
            prop_assert_eq!(&all, &gossip);
            let f = InterestFilter::from_gossip(gossip.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            for (app, ch) in local.channels() {
                prop_assert!(f.may_contain(channel_key(app, ch)));
            }
            for v in gossip.values() {
                prop_assert!(v.len() <= MAX_VALUE_LEN);
            }
        }
    }

    #[test]
    fn summary_is_exact_when_small() {
        let mut local = LocalInterest::new();
        for i in 0..100 {
            local.set("1", &format!("room-{i}"), true);
        }
        let g = local.gossip_all();
        let f = InterestFilter::from_gossip(g.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let false_yes = (100..10_000)
            .filter(|i| f.may_contain(channel_key("1", &format!("room-{i}"))))
            .count();
        assert_eq!(false_yes, 0);
        assert!(g
            .iter()
            .all(|(k, _)| k.starts_with("interest.") && k.len() == 11));
    }

    #[test]
    fn overflowing_bucket_becomes_a_wildcard() {
        let mut local = LocalInterest::new();
        for i in 0..70_000 {
            local.set("1", &format!("room-{i}"), true);
        }
        let g = local.gossip_all();
        assert!(g.iter().any(|(_, v)| v == "*"));
        let f = InterestFilter::from_gossip(g.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        assert!(f.may_contain(channel_key("1", "room-5")));
    }

    #[test]
    fn malformed_values_err_towards_delivery() {
        let f = InterestFilter::from_gossip([("interest.ab", "zz"), ("other", "x")]);
        assert!(f.may_contain(0xab00_0000_0000_0001));
        assert!(!f.may_contain(0x0100_0000_0000_0001));
    }

    #[test]
    fn table_is_the_union_and_forgets_the_dead() {
        let (a, b, c) = (node("a"), node("b"), node("c"));
        let mut t = InterestTable::new();
        t.set(&a, "1", "room", true);
        let mut local = LocalInterest::new();
        local.set("1", "room", true);
        let g = local.gossip_all();
        t.set_gossip(
            &b,
            InterestFilter::from_gossip(g.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        );
        t.set(&c, "1", "other", true);
        assert_eq!(t.interested("1", "room"), vec![a.clone(), b.clone()]);
        t.set(&a, "1", "room", false);
        assert_eq!(t.interested("1", "room"), vec![b.clone()]);
        t.retain_live(&BTreeSet::from([a.clone(), c.clone()]));
        assert!(t.interested("1", "room").is_empty());
        assert_eq!(t.interested("1", "other"), vec![c.clone()]);
        t.forget(&c);
        assert!(t.interested("1", "other").is_empty());
    }
}
