//! Cluster-wide subscription counts, as the channel's owning node keeps them.
//!
//! Every node reports its own number of subscriptions to a channel (`NodeMsg::Count`) to the
//! channel's owner, itself included without a network hop. The owner keeps each live node's
//! last report and the total it last announced; when the sum of the reports changes, the
//! new total is announced once (`pusher_internal:subscription_count` to every subscriber and
//! the `subscription_count` webhook, see [`crate::node::Action::SubscriptionCount`]).
//!
//! This module only adds up; [`crate::node::NodeCore`] decides what is owned and live.
//! It must not decide ownership or liveness itself, so that there is one place for both.
//!
//! **Bounded:** an entry per (channel, node) exists only while that node reports a count
//! above 0 for a channel this node owns; a node's entries go when it leaves the live set,
//! a channel's when it moves away; and at most [`MAX_COUNTED_CHANNELS`] channels are held.

use crate::NodeKey;
use std::collections::BTreeMap;

/// Channels one owner keeps counts for. Beyond it, reports for new channels are ignored
/// (their subscribers get no count event) and counted; a memory bound against a peer that
/// reports counts for endless channel names.
pub const MAX_COUNTED_CHANNELS: usize = 262_144;

/// One channel's reports.
#[derive(Debug, Default)]
struct ChannelCounts {
    /// Each node's last report above 0.
    per_node: BTreeMap<NodeKey, u32>,
    /// The total last announced, so that a report that does not change it announces nothing.
    announced: u64,
}

impl ChannelCounts {
    fn total(&self) -> u64 {
        self.per_node.values().map(|&c| u64::from(c)).sum()
    }
}

/// The owner's table of reports, by `(app, channel)`.
#[derive(Debug, Default)]
pub struct CountTable {
    channels: BTreeMap<(String, String), ChannelCounts>,
    /// Reports ignored because the table was full.
    pub over_limit: u64,
}

/// A total to announce: the channel's subscriptions over every live node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Total {
    pub app: String,
    pub channel: String,
    pub count: u32,
}

impl CountTable {
    pub fn new() -> CountTable {
        CountTable::default()
    }

    /// Channels held (for tests and the bound).
    pub fn len(&self) -> usize {
        self.channels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }

    /// `node` reports `count` subscriptions. Returns the new total when it changed and is
    /// above 0: a channel nobody subscribes to any more has nobody to tell (as on a single
    /// node, where the count event stops with the last subscriber).
    pub fn report(
        &mut self,
        node: &NodeKey,
        app: &str,
        channel: &str,
        count: u32,
    ) -> Option<Total> {
        let id = (app.to_owned(), channel.to_owned());
        if !self.channels.contains_key(&id) {
            if count == 0 {
                return None;
            }
            if self.channels.len() >= MAX_COUNTED_CHANNELS {
                self.over_limit += 1;
                return None;
            }
        }
        let c = self.channels.entry(id.clone()).or_default();
        if count == 0 {
            c.per_node.remove(node);
        } else {
            c.per_node.insert(node.clone(), count);
        }
        self.settle(id)
    }

    /// Drops the reports of nodes `keep` rejects (dead, left) and returns the totals that
    /// changed.
    pub fn retain_nodes(&mut self, keep: impl Fn(&NodeKey) -> bool) -> Vec<Total> {
        let mut touched = Vec::new();
        for (id, c) in &mut self.channels {
            let before = c.per_node.len();
            c.per_node.retain(|n, _| keep(n));
            if c.per_node.len() != before {
                touched.push(id.clone());
            }
        }
        touched
            .into_iter()
            .filter_map(|id| self.settle(id))
            .collect()
    }

    /// Forgets the channels `keep` rejects (ownership moved away), without announcing.
    pub fn retain_channels(&mut self, keep: impl Fn(&str, &str) -> bool) {
        self.channels.retain(|(app, ch), _| keep(app, ch));
    }

    /// After a change to one channel: remove it when empty, and say whether its total
    /// changed.
    fn settle(&mut self, id: (String, String)) -> Option<Total> {
        let c = self.channels.get_mut(&id)?;
        let total = c.total();
        if c.per_node.is_empty() {
            self.channels.remove(&id);
            return None;
        }
        if total == c.announced {
            return None;
        }
        c.announced = total;
        Some(Total {
            app: id.0,
            channel: id.1,
            count: u32::try_from(total).unwrap_or(u32::MAX),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(id: &str) -> NodeKey {
        NodeKey::new(crate::NodeId::new(id).unwrap(), 1)
    }

    fn t(count: u32) -> Option<Total> {
        Some(Total {
            app: "1".into(),
            channel: "room".into(),
            count,
        })
    }

    #[test]
    fn sums_reports_and_announces_only_changes() {
        let mut c = CountTable::new();
        assert_eq!(c.report(&k("a"), "1", "room", 1), t(1));
        assert_eq!(c.report(&k("b"), "1", "room", 2), t(3));
        assert_eq!(c.report(&k("b"), "1", "room", 2), None);
        assert_eq!(c.report(&k("a"), "1", "room", 0), t(2));
        assert_eq!(c.report(&k("b"), "1", "room", 0), None);
        assert!(c.is_empty());
        // A zero for a channel never counted leaves nothing behind.
        assert_eq!(c.report(&k("a"), "1", "other", 0), None);
        assert!(c.is_empty());
    }

    #[test]
    fn dropping_a_node_announces_the_rest() {
        let mut c = CountTable::new();
        c.report(&k("a"), "1", "room", 1);
        c.report(&k("b"), "1", "room", 2);
        c.report(&k("b"), "1", "solo", 5);
        assert_eq!(
            c.retain_nodes(|n| n.id.as_str() != "b"),
            vec![t(1).unwrap()]
        );
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn the_table_is_bounded() {
        let mut c = CountTable::new();
        for i in 0..MAX_COUNTED_CHANNELS {
            c.report(&k("a"), "1", &i.to_string(), 1);
        }
        assert_eq!(c.report(&k("a"), "1", "one-more", 1), None);
        assert_eq!(c.over_limit, 1);
        // Channels already held still count.
        assert!(c.report(&k("b"), "1", "0", 1).is_some());
    }
}
