//! The one function that decides which node owns a channel.
//!
//! Rendezvous (highest random weight) hashing: every live node gets a score
//! `xxh3(app, channel, node id)`, and the highest score owns the channel. Any node computes
//! the same owner from the same live set, with no coordination and no table.
//!
//! **Invariant:** every caller that needs the owning node of `(app, channel)` asks [`owner`];
//! nothing else decides placement across nodes (inside a node, the engine's `shard_for`
//! still picks the shard).
//!
//! Why rendezvous rather than a ring: when a node leaves, exactly the channels it owned move,
//! each to the node with the next-highest score, so they spread over the survivors; when a
//! node joins, it takes about `1/n` of the channels, from every node evenly. Cost is one hash
//! per live node per lookup, which is nothing next to a network hop for clusters of tens of
//! nodes. The generation is deliberately not part of the score: a restarted node gets its
//! channels back.

use crate::NodeId;
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// The key of a channel for placement: app and channel, hashed once per lookup.
pub fn channel_key(app: &str, channel: &str) -> u64 {
    xxh3_64_with_seed(
        channel.as_bytes(),
        xxh3_64_with_seed(app.as_bytes(), 0x52_50_54_52),
    )
}

/// Score of `node` for a channel key. Ties (equal 64-bit scores) are broken by node id, so
/// the result never depends on the order of the live set.
fn score(key: u64, node: &NodeId) -> u64 {
    xxh3_64_with_seed(node.as_str().as_bytes(), key)
}

/// The owning node of `channel` in `app`, among `live`. `None` only when `live` is empty.
/// `live` may be in any order and may contain duplicates.
pub fn owner<'a>(app: &str, channel: &str, live: &'a [NodeId]) -> Option<&'a NodeId> {
    owner_of_key(channel_key(app, channel), live)
}

/// [`owner`] for a precomputed [`channel_key`], for callers that test many live sets.
pub fn owner_of_key(key: u64, live: &[NodeId]) -> Option<&NodeId> {
    // Each node's score once (`max_by` on scores computed in the comparison hashed every
    // node twice).
    live.iter()
        .map(|n| (score(key, n), n))
        .max_by(|(sa, a), (sb, b)| sa.cmp(sb).then_with(|| a.as_str().cmp(b.as_str())))
        .map(|(_, n)| n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn nodes(n: usize) -> Vec<NodeId> {
        (0..n)
            .map(|i| NodeId::new(&format!("node-{i}")).unwrap())
            .collect()
    }

    proptest! {
        #[test]
        fn deterministic_and_order_free(
            app in "[0-9]{1,4}",
            ch in "[a-z0-9-]{1,60}",
            n in 1usize..12,
            rot in 0usize..12,
        ) {
            let live = nodes(n);
            let a = owner(&app, &ch, &live).unwrap().clone();
            prop_assert_eq!(&a, owner(&app, &ch, &live).unwrap());
            let mut other = live.clone();
            other.rotate_left(rot % n);
            other.reverse();
            prop_assert_eq!(&a, owner(&app, &ch, &other).unwrap());
            prop_assert!(live.contains(&a));
        }

        #[test]
        fn only_the_leavers_channels_move(n in 2usize..10, gone in 0usize..10) {
            let live = nodes(n);
            let gone = &live[gone % n];
            let rest: Vec<NodeId> = live.iter().filter(|x| *x != gone).cloned().collect();
            for i in 0..300 {
                let ch = format!("room-{i}");
                let before = owner("1", &ch, &live).unwrap();
                let after = owner("1", &ch, &rest).unwrap();
                if before != gone {
                    prop_assert_eq!(before, after);
                }
            }
        }
    }

    #[test]
    fn empty_live_set_has_no_owner() {
        assert_eq!(owner("1", "c", &[]), None);
    }

    #[test]
    fn spreads_evenly() {
        for n in [2usize, 3, 5, 8] {
            let live = nodes(n);
            let mut counts: HashMap<&NodeId, u32> = HashMap::new();
            let total = 40_000;
            for i in 0..total {
                *counts
                    .entry(owner("1", &format!("room-{i}"), &live).unwrap())
                    .or_default() += 1;
            }
            let expect = total as f64 / n as f64;
            assert_eq!(counts.len(), n);
            for c in counts.values() {
                assert!(
                    (f64::from(*c) - expect).abs() < expect * 0.05,
                    "{n}: {c} vs {expect}"
                );
            }
        }
    }

    #[test]
    fn a_joining_node_takes_its_share_from_everyone() {
        let live = nodes(4);
        let more = nodes(5);
        let total = 20_000;
        let mut moved_from: HashMap<&NodeId, u32> = HashMap::new();
        let mut moved = 0;
        for i in 0..total {
            let ch = format!("room-{i}");
            let before = owner("1", &ch, &live).unwrap();
            let after = owner("1", &ch, &more).unwrap();
            if before != after {
                assert_eq!(after, &more[4], "a channel may only move to the new node");
                *moved_from.entry(before).or_default() += 1;
                moved += 1;
            }
        }
        let share = f64::from(moved) / f64::from(total);
        assert!((share - 0.2).abs() < 0.02, "{share}");
        assert_eq!(moved_from.len(), 4);
    }

    #[test]
    fn app_is_part_of_the_key() {
        let live = nodes(8);
        let differ = (0..100)
            .filter(|i| {
                let ch = format!("c{i}");
                owner("1", &ch, &live) != owner("2", &ch, &live)
            })
            .count();
        assert!(differ > 50, "{differ}");
    }
}
