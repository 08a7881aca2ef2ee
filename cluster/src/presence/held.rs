//! What one node holds about one node's members ([`Held`]), laid out for the case that
//! dominates a large cluster: every node holds a copy of every other node's members, and at
//! tens of nodes a node has one or two members in most of the channels it is in. A member
//! copy was ~650 bytes at 50 nodes with a map per channel (a B-tree leaf alone is ~540 bytes)
//! and the channel's name owned by every node's map; here it is a sorted, tightly grown
//! vector per channel, boxed strings, and channel names shared by all the maps of one
//! [`super::ClusterPresence`] through [`Keys`].

use super::{ChannelKey, Digest, Member};
use foldhash::fast::RandomState;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// One channel's members as one node holds them: `(user_id, user_info)`, sorted by user.
pub(super) type Users = Vec<(Box<str>, Option<Box<str>>)>;

/// The channel names in use, shared by every [`Held`] of one view. Hand-written because
/// it is five lines over `HashSet<Arc<_>>`: a name is dropped once no map refers to it.
#[derive(Default, Debug)]
pub(super) struct Keys(HashSet<Arc<ChannelKey>, RandomState>);

impl Keys {
    fn intern(&mut self, key: ChannelKey) -> Arc<ChannelKey> {
        if let Some(k) = self.0.get(&key) {
            return k.clone();
        }
        let k = Arc::new(key);
        self.0.insert(k.clone());
        k
    }

    /// `key` is no longer in some map: forget it if it is in none.
    fn release(&mut self, key: &ChannelKey) {
        if self.0.get(key).is_some_and(|k| Arc::strong_count(k) == 1) {
            self.0.remove(key);
        }
    }

    /// Whole maps were dropped: forget every name no map refers to.
    pub(super) fn sweep(&mut self) {
        self.0.retain(|k| Arc::strong_count(k) > 1);
    }
}

fn find(users: &Users, user: &str) -> Result<usize, usize> {
    users.binary_search_by(|(u, _)| (**u).cmp(user))
}

/// The user's info if `users` holds the user.
pub(super) fn info_of<'a>(users: &'a Users, user: &str) -> Option<Option<&'a str>> {
    let i = find(users, user).ok()?;
    Some(users[i].1.as_deref())
}

/// What one node holds about one other node (or itself).
#[derive(Default, Debug)]
pub(super) struct Held {
    channels: HashMap<Arc<ChannelKey>, Users, RandomState>,
    pub(super) digest: Digest,
}

impl Held {
    /// The user's info if the node holds the user in the channel.
    pub(super) fn has(&self, key: &ChannelKey, user: &str) -> Option<Option<&str>> {
        info_of(self.channels.get(key)?, user)
    }

    pub(super) fn users(&self, key: &ChannelKey) -> Option<&Users> {
        self.channels.get(key)
    }

    /// Adds the member, or replaces its info; `true` when it is new.
    pub(super) fn insert(&mut self, keys: &mut Keys, m: Member) -> bool {
        let key = (m.app, m.channel);
        let users = match self.channels.get_mut(&key) {
            Some(users) => users,
            None => self.channels.entry(keys.intern(key.clone())).or_default(),
        };
        let info = m.user_info.map(String::into_boxed_str);
        match find(users, &m.user_id) {
            Ok(i) => {
                users[i].1 = info;
                false
            }
            Err(i) => {
                if users.len() == users.capacity() {
                    // Half again, not double: most channels hold one or two users per node.
                    users.reserve_exact((users.len() / 2).max(1));
                }
                self.digest.toggle(&key.0, &key.1, &m.user_id, true);
                users.insert(i, (m.user_id.into_boxed_str(), info));
                true
            }
        }
    }

    pub(super) fn remove(&mut self, keys: &mut Keys, key: &ChannelKey, user: &str) -> bool {
        let Some(users) = self.channels.get_mut(key) else {
            return false;
        };
        let Ok(i) = find(users, user) else {
            return false;
        };
        users.remove(i);
        if users.is_empty() {
            self.channels.remove(key);
            keys.release(key);
        } else if users.capacity() > 2 * users.len() + 4 {
            users.shrink_to_fit();
        }
        self.digest.toggle(&key.0, &key.1, user, false);
        true
    }

    /// Replaces the user's info in the channel, if held. The digest does not change.
    pub(super) fn set_info(&mut self, key: &ChannelKey, user: &str, info: &str) {
        if let Some(users) = self.channels.get_mut(key) {
            if let Ok(i) = find(users, user) {
                users[i].1 = Some(info.into());
            }
        }
    }

    pub(super) fn all(&self) -> impl Iterator<Item = (&ChannelKey, &str)> {
        self.channels
            .iter()
            .flat_map(|(k, users)| users.iter().map(move |(u, _)| (&**k, &**u)))
    }

    /// The `(channel, user)` pairs held here and not in `other`.
    pub(super) fn missing_from<'a>(
        &'a self,
        other: &'a Held,
    ) -> impl Iterator<Item = (&'a ChannelKey, &'a str)> + 'a {
        self.channels.iter().flat_map(move |(k, users)| {
            let theirs = other.channels.get(&**k);
            users
                .iter()
                .filter(move |(u, _)| theirs.is_none_or(|t| find(t, u).is_err()))
                .map(move |(u, _)| (&**k, &**u))
        })
    }

    /// The channels (of any app) that hold the user: `(app, channel)`.
    pub(super) fn channels_with<'a>(
        &'a self,
        user: &'a str,
    ) -> impl Iterator<Item = &'a ChannelKey> + 'a {
        self.channels
            .iter()
            .filter(move |(_, users)| find(users, user).is_ok())
            .map(|(k, _)| &**k)
    }
}
