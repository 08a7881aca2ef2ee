//! The owner's view of its channels: how many subscriptions each shard holds.
//!
//! **Invariant:** only the owner shard ([`crate::placement::shard_for`]) has an entry for a
//! channel, and a channel with no subscriptions anywhere has no entry.

use crate::app::AppIdx;
use crate::placement::ShardId;
use std::collections::HashMap;
use std::sync::Arc;

/// Subscriptions to one owned channel, per shard.
#[derive(Debug)]
pub struct Owned {
    /// The name, shared with every `Deliver` message (one allocation per channel).
    pub name: Arc<str>,
    /// Subscribed connections per shard.
    pub per_shard: Box<[u32]>,
    /// Sum of `per_shard`: the channel's `subscription_count`.
    pub total: u32,
}

pub struct OwnedChannels {
    nr_shards: usize,
    apps: Vec<HashMap<Arc<str>, Owned>>,
}

impl OwnedChannels {
    pub fn new(nr_apps: usize, nr_shards: usize) -> OwnedChannels {
        OwnedChannels {
            nr_shards,
            apps: (0..nr_apps).map(|_| HashMap::new()).collect(),
        }
    }

    /// Counts one more subscription from `shard`. Returns true if the channel just became
    /// occupied.
    pub fn subscribe(&mut self, app: AppIdx, channel: &Arc<str>, shard: ShardId) -> bool {
        let n = self.nr_shards;
        let e = self.apps[app as usize]
            .entry(channel.clone())
            .or_insert_with(|| Owned {
                name: channel.clone(),
                per_shard: vec![0; n].into_boxed_slice(),
                total: 0,
            });
        e.per_shard[shard] += 1;
        e.total += 1;
        e.total == 1
    }

    /// Counts one subscription less from `shard`. Returns true if the channel is now vacant.
    pub fn unsubscribe(&mut self, app: AppIdx, channel: &str, shard: ShardId) -> bool {
        let table = &mut self.apps[app as usize];
        let Some(e) = table.get_mut(channel) else {
            return false;
        };
        if e.per_shard[shard] == 0 {
            return false;
        }
        e.per_shard[shard] -= 1;
        e.total -= 1;
        if e.total == 0 {
            table.remove(channel);
            return true;
        }
        false
    }

    pub fn get(&self, app: AppIdx, channel: &str) -> Option<&Owned> {
        self.apps[app as usize].get(channel)
    }

    /// Occupied channels of `app` whose name starts with `prefix`.
    pub fn list(&self, app: AppIdx, prefix: &str) -> Vec<(String, u32)> {
        self.apps[app as usize]
            .values()
            .filter(|o| o.name.starts_with(prefix))
            .map(|o| (o.name.to_string(), o.total))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_vacancy() {
        let mut t = OwnedChannels::new(1, 2);
        let c: Arc<str> = Arc::from("c");
        assert!(t.subscribe(0, &c, 0));
        assert!(!t.subscribe(0, &c, 1));
        assert!(!t.subscribe(0, &c, 1));
        assert_eq!(t.get(0, "c").unwrap().total, 3);
        assert_eq!(&*t.get(0, "c").unwrap().per_shard, &[1, 2]);
        assert!(!t.unsubscribe(0, "c", 0));
        assert!(!t.unsubscribe(0, "c", 0), "no underflow");
        assert!(!t.unsubscribe(0, "c", 1));
        assert!(t.unsubscribe(0, "c", 1));
        assert!(t.get(0, "c").is_none());
        assert!(t.list(0, "").is_empty());
    }
}
