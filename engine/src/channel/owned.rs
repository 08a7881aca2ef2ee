//! The owner's view of its channels: subscriptions per shard, presence members, and the
//! state of `subscription_count` events.
//!
//! **Invariant:** only the owner shard ([`crate::placement::shard_for`]) has an entry for a
//! channel, and a channel with no subscriptions anywhere has no entry.

use crate::app::{AppIdx, PerApp};
use crate::placement::ShardId;
use indexmap::IndexMap;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// A presence member: one user, however many connections.
#[derive(Debug)]
pub struct Member {
    /// `user_info` as compact JSON, from the first connection that joined.
    pub info: Option<Box<str>>,
    /// Connections (on any shard) joined as this user. The member exists while this is > 0.
    pub conns: u32,
}

/// Subscriptions to one owned channel.
#[derive(Debug)]
pub struct Owned {
    /// The name, shared with every `Deliver` message (one allocation per channel).
    pub name: Arc<str>,
    /// Subscribed connections per shard.
    pub per_shard: Box<[u32]>,
    /// Sum of `per_shard`: the channel's `subscription_count`.
    pub total: u32,
    /// Presence channels: members in join order.
    pub members: IndexMap<Arc<str>, Member>,
    /// When a `subscription_count` event was last sent.
    pub count_sent_at: Option<Instant>,
}

/// What a subscription or unsubscription changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Change {
    /// The channel went from 0 to 1 subscriptions (or 1 to 0).
    pub occupancy: bool,
    /// A presence member appeared (or disappeared).
    pub member: bool,
}

pub struct OwnedChannels {
    nr_shards: usize,
    apps: PerApp<HashMap<Arc<str>, Owned>>,
}

impl OwnedChannels {
    pub fn new(nr_shards: usize) -> OwnedChannels {
        OwnedChannels {
            nr_shards,
            apps: PerApp::new(),
        }
    }

    /// Counts one more subscription from `shard`, joining `member` if given.
    pub fn subscribe(
        &mut self,
        app: AppIdx,
        channel: &Arc<str>,
        shard: ShardId,
        member: Option<(&Arc<str>, Option<&str>)>,
    ) -> Change {
        let n = self.nr_shards;
        let e = self
            .apps
            .entry(app)
            .entry(channel.clone())
            .or_insert_with(|| Owned {
                name: channel.clone(),
                per_shard: vec![0; n].into_boxed_slice(),
                total: 0,
                members: IndexMap::new(),
                count_sent_at: None,
            });
        e.per_shard[shard] += 1;
        e.total += 1;
        let mut change = Change {
            occupancy: e.total == 1,
            member: false,
        };
        if let Some((id, info)) = member {
            let m = e.members.entry(id.clone()).or_insert_with(|| {
                change.member = true;
                Member {
                    info: info.map(Box::from),
                    conns: 0,
                }
            });
            m.conns += 1;
        }
        change
    }

    /// Counts one subscription less from `shard`, leaving as `user` if given.
    pub fn unsubscribe(
        &mut self,
        app: AppIdx,
        channel: &str,
        shard: ShardId,
        user: Option<&str>,
    ) -> Change {
        let Some(table) = self.apps.get_mut(app) else {
            return Change::default();
        };
        let Some(e) = table.get_mut(channel) else {
            return Change::default();
        };
        if e.per_shard[shard] == 0 {
            return Change::default();
        }
        e.per_shard[shard] -= 1;
        e.total -= 1;
        let mut change = Change::default();
        if let Some(user) = user {
            if let Some(m) = e.members.get_mut(user) {
                m.conns -= 1;
                if m.conns == 0 {
                    e.members.shift_remove(user);
                    change.member = true;
                }
            }
        }
        if e.total == 0 {
            table.remove(channel);
            change.occupancy = true;
        }
        change
    }

    /// Occupied channels owned here, all apps.
    pub fn len(&self) -> usize {
        self.apps.iter().map(|t| t.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, app: AppIdx, channel: &str) -> Option<&Owned> {
        self.apps.get(app)?.get(channel)
    }

    pub fn get_mut(&mut self, app: AppIdx, channel: &str) -> Option<&mut Owned> {
        self.apps.get_mut(app)?.get_mut(channel)
    }

    /// Would a new member fit into `channel`?
    pub fn has_room_for(&self, app: AppIdx, channel: &str, user: &str, max: usize) -> bool {
        self.get(app, channel)
            .is_none_or(|o| o.members.contains_key(user) || o.members.len() < max)
    }

    /// Occupied channels of `app` whose name starts with `prefix`: (name, subscriptions, members).
    pub fn list(&self, app: AppIdx, prefix: &str) -> Vec<(String, u32, u32)> {
        self.apps
            .get(app)
            .into_iter()
            .flat_map(|t| t.values())
            .filter(|o| o.name.starts_with(prefix))
            .map(|o| (o.name.to_string(), o.total, o.members.len() as u32))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_vacancy() {
        let mut t = OwnedChannels::new(2);
        let c: Arc<str> = Arc::from("c");
        assert!(t.subscribe(0, &c, 0, None).occupancy);
        assert!(!t.subscribe(0, &c, 1, None).occupancy);
        assert!(!t.subscribe(0, &c, 1, None).occupancy);
        assert_eq!(t.get(0, "c").unwrap().total, 3);
        assert_eq!(&*t.get(0, "c").unwrap().per_shard, &[1, 2]);
        assert!(!t.unsubscribe(0, "c", 0, None).occupancy);
        assert_eq!(
            t.unsubscribe(0, "c", 0, None),
            Change::default(),
            "no underflow"
        );
        assert!(!t.unsubscribe(0, "c", 1, None).occupancy);
        assert!(t.unsubscribe(0, "c", 1, None).occupancy);
        assert!(t.get(0, "c").is_none());
        assert!(t.list(0, "").is_empty());
    }

    #[test]
    fn presence_multi_tab() {
        let mut t = OwnedChannels::new(2);
        let c: Arc<str> = Arc::from("presence-r");
        let u: Arc<str> = Arc::from("u1");
        assert_eq!(
            t.subscribe(0, &c, 0, Some((&u, Some("{}")))),
            Change {
                occupancy: true,
                member: true
            }
        );
        assert_eq!(
            t.subscribe(0, &c, 1, Some((&u, None))),
            Change {
                occupancy: false,
                member: false
            }
        );
        assert_eq!(
            t.get(0, "presence-r").unwrap().members["u1"]
                .info
                .as_deref(),
            Some("{}")
        );
        assert!(!t.has_room_for(0, "presence-r", "u2", 1));
        assert!(t.has_room_for(0, "presence-r", "u1", 1));
        assert_eq!(
            t.unsubscribe(0, "presence-r", 0, Some("u1")),
            Change {
                occupancy: false,
                member: false
            }
        );
        assert_eq!(
            t.unsubscribe(0, "presence-r", 1, Some("u1")),
            Change {
                occupancy: true,
                member: true
            }
        );
    }
}
