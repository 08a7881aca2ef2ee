//! The one function that decides which shard owns a channel.
//!
//! **Invariant:** every caller that needs the owner of `(app, channel)` asks [`shard_for`];
//! nothing else hashes channel names. Changing the hash changes ownership, which only matters
//! within one process lifetime (nothing persistent depends on it).

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Index of a shard (executor) inside this process, `0..nr_shards`.
pub type ShardId = usize;

/// Owner shard of `channel` in app `app_id`. Stable for a given input (xxh3 is specified and
/// seedable, unlike `std`'s `DefaultHasher`), and spreads evenly (see the property test).
pub fn shard_for(app_id: &str, channel: &str, nr_shards: usize) -> ShardId {
    debug_assert!(nr_shards > 0);
    if nr_shards <= 1 {
        return 0;
    }
    let h = xxh3_64_with_seed(channel.as_bytes(), xxh3_64_with_seed(app_id.as_bytes(), 0));
    // Lemire's multiply-shift: an unbiased map of a 64-bit hash onto 0..n without a division.
    ((u128::from(h) * nr_shards as u128) >> 64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn stable_and_in_range(app in "[0-9]{1,4}", ch in "[a-z0-9-]{1,60}", n in 1usize..64) {
            let a = shard_for(&app, &ch, n);
            prop_assert!(a < n);
            prop_assert_eq!(a, shard_for(&app, &ch, n));
        }
    }

    #[test]
    fn spreads_evenly() {
        for n in [2usize, 3, 8] {
            let mut counts = vec![0u32; n];
            let total = 40_000;
            for i in 0..total {
                counts[shard_for("1", &format!("room-{i}"), n)] += 1;
            }
            let expect = total as f64 / n as f64;
            for c in counts {
                assert!(
                    (f64::from(c) - expect).abs() < expect * 0.05,
                    "{n}: {c} vs {expect}"
                );
            }
        }
    }

    #[test]
    fn app_is_part_of_the_key() {
        let differ = (0..100)
            .filter(|i| {
                shard_for("1", &format!("c{i}"), 16) != shard_for("2", &format!("c{i}"), 16)
            })
            .count();
        assert!(differ > 50);
    }
}
