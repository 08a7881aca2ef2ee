//! The owner's view of its channels: subscriptions per shard, presence members, and the
//! state of `subscription_count` events.
//!
//! **Invariant:** only the owner shard ([`crate::placement::shard_for`]) has an entry for a
//! channel, and a channel with no subscriptions anywhere has no entry.

use crate::app::{AppIdx, PerApp};
use crate::channel::name::ChannelKind;
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
    /// Events ordered for the channel here, per second (the dashboard's message rate).
    pub rate: Rate,
}

/// The order of a top list: the larger value first, then the name (a sort key).
pub fn top_order(value: u32, name: &str) -> (std::cmp::Reverse<u32>, &str) {
    (std::cmp::Reverse(value), name)
}

/// Whole seconds since the first call in this process: the clock of [`Rate`].
pub fn rate_second() -> u64 {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_secs()
}

/// Events per second: the count of the current second and of the one before it.
#[derive(Debug, Default, Clone, Copy)]
pub struct Rate {
    /// Whole seconds since the shard's clock origin of the current count.
    second: u64,
    current: u32,
    last: u32,
}

impl Rate {
    /// One more event at `second`.
    pub fn note(&mut self, second: u64) {
        self.roll(second);
        self.current = self.current.saturating_add(1);
    }

    /// Events in the last whole second before `second`.
    pub fn per_sec(&self, second: u64) -> u32 {
        match second.saturating_sub(self.second) {
            0 => self.last,
            1 => self.current,
            _ => 0,
        }
    }

    fn roll(&mut self, second: u64) {
        match second.saturating_sub(self.second) {
            0 => {}
            1 => {
                self.last = self.current;
                self.current = 0;
            }
            _ => {
                self.last = 0;
                self.current = 0;
            }
        }
        self.second = second;
    }
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
    /// Per app, kept as subscriptions change, so the dashboard's figures never scan the
    /// channels.
    totals: PerApp<AppTotals>,
}

/// One app's channels on this owner shard.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AppTotals {
    pub channels: u64,
    pub presence_channels: u64,
    pub members: u64,
    pub subscriptions: u64,
}

impl OwnedChannels {
    pub fn new(nr_shards: usize) -> OwnedChannels {
        OwnedChannels {
            nr_shards,
            apps: PerApp::new(),
            totals: PerApp::new(),
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
                rate: Rate::default(),
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
        let t = self.totals.entry(app);
        t.subscriptions += 1;
        if change.occupancy {
            t.channels += 1;
            t.presence_channels += u64::from(ChannelKind::of(channel).is_presence());
        }
        t.members += u64::from(change.member);
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
        if let Some(t) = self.totals.get_mut(app) {
            t.subscriptions -= 1;
            t.members -= u64::from(change.member);
            if change.occupancy {
                t.channels -= 1;
                t.presence_channels -= u64::from(ChannelKind::of(channel).is_presence());
            }
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

    /// The app replaced `user`'s info: in `channel`, or (`None`) in every presence channel of
    /// `app` owned here. Returns the channels where the user is a member, whose info changed
    /// (for all its connections). Without a channel this scans the app's channels on this
    /// shard: a rare API call, not an event path.
    pub fn update_info(
        &mut self,
        app: AppIdx,
        user: &str,
        info: &str,
        channel: Option<&str>,
    ) -> Vec<Arc<str>> {
        let Some(table) = self.apps.get_mut(app) else {
            return Vec::new();
        };
        let set = |o: &mut Owned| {
            let m = o.members.get_mut(user)?;
            m.info = Some(Box::from(info));
            Some(o.name.clone())
        };
        match channel {
            Some(c) => table.get_mut(c).and_then(set).into_iter().collect(),
            None => table.values_mut().filter_map(set).collect(),
        }
    }

    /// Would a new member fit into `channel`?
    pub fn has_room_for(&self, app: AppIdx, channel: &str, user: &str, max: usize) -> bool {
        self.get(app, channel)
            .is_none_or(|o| o.members.contains_key(user) || o.members.len() < max)
    }

    /// Per app with subscriptions here, its totals (kept up to date, no scan).
    pub fn app_totals(&self) -> Vec<(AppIdx, AppTotals)> {
        self.totals
            .iter()
            .enumerate()
            .filter(|(_, t)| t.subscriptions > 0)
            .map(|(app, t)| (app as AppIdx, *t))
            .collect()
    }

    /// The `limit` channels of `app` with the most subscribers (or, `by_rate`, events per
    /// second at `second`): (name, subscriptions, members, events per second).
    pub fn top(
        &self,
        app: AppIdx,
        by_rate: bool,
        limit: usize,
        second: u64,
    ) -> Vec<(String, u32, u32, u32)> {
        // One pass over references; only the `limit` kept are copied out.
        let mut all: Vec<(&Owned, u32)> = self
            .apps
            .get(app)
            .into_iter()
            .flat_map(|t| t.values())
            .map(|o| (o, o.rate.per_sec(second)))
            .collect();
        let value = |e: &(&Owned, u32)| if by_rate { e.1 } else { e.0.total };
        let cmp = |a: &(&Owned, u32), b: &(&Owned, u32)| {
            top_order(value(a), &a.0.name).cmp(&top_order(value(b), &b.0.name))
        };
        if all.len() > limit && limit > 0 {
            all.select_nth_unstable_by(limit - 1, cmp);
            all.truncate(limit);
        }
        all.sort_by(cmp);
        all.truncate(limit);
        all.into_iter()
            .map(|(o, r)| (o.name.to_string(), o.total, o.members.len() as u32, r))
            .collect()
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

    #[test]
    fn an_info_update_replaces_the_info_of_every_connection() {
        let mut t = OwnedChannels::new(2);
        let (r, s, x): (Arc<str>, Arc<str>, Arc<str>) = (
            "presence-r".into(),
            "presence-s".into(),
            "presence-x".into(),
        );
        let (u, v): (Arc<str>, Arc<str>) = ("u1".into(), "u2".into());
        t.subscribe(0, &r, 0, Some((&u, Some("{\"tab\":1}"))));
        t.subscribe(0, &r, 1, Some((&u, Some("{\"tab\":2}"))));
        t.subscribe(0, &s, 0, Some((&u, None)));
        t.subscribe(0, &x, 0, Some((&v, None)));
        let info = |t: &OwnedChannels, c: &str| t.get(0, c).unwrap().members["u1"].info.clone();
        let one = t.update_info(0, "u1", "{\"v\":2}", Some("presence-r"));
        assert_eq!(one, std::slice::from_ref(&r));
        assert_eq!(info(&t, "presence-r").as_deref(), Some("{\"v\":2}"));
        assert_eq!(info(&t, "presence-s"), None);
        let mut all = t.update_info(0, "u1", "{\"v\":3}", None);
        all.sort();
        assert_eq!(all, [r, s]);
        assert!(t.update_info(0, "u1", "{}", Some("presence-x")).is_empty());
        assert!(t.update_info(1, "u1", "{}", None).is_empty());
        assert_eq!(t.get(0, "presence-r").unwrap().members["u1"].conns, 2);
    }

    #[test]
    fn rate_counts_the_last_whole_second() {
        let mut r = Rate::default();
        r.note(10);
        r.note(10);
        assert_eq!(r.per_sec(10), 0, "the current second is not whole yet");
        assert_eq!(r.per_sec(11), 2);
        r.note(11);
        assert_eq!(r.per_sec(11), 2);
        assert_eq!(r.per_sec(12), 1);
        assert_eq!(r.per_sec(13), 0, "nothing in second 12");
        r.note(20);
        assert_eq!(r.per_sec(21), 1);
    }

    #[test]
    fn top_and_app_figures() {
        let mut t = OwnedChannels::new(2);
        let (a, b, p): (Arc<str>, Arc<str>, Arc<str>) =
            ("a".into(), "b".into(), "presence-p".into());
        t.subscribe(0, &a, 0, None);
        for _ in 0..3 {
            t.subscribe(0, &b, 1, None);
        }
        let u: Arc<str> = "u".into();
        t.subscribe(0, &p, 0, Some((&u, None)));
        t.get_mut(0, "a").unwrap().rate.note(5);
        t.get_mut(0, "a").unwrap().rate.note(5);
        let names =
            |v: Vec<(String, u32, u32, u32)>| v.into_iter().map(|c| c.0).collect::<Vec<_>>();
        assert_eq!(names(t.top(0, false, 10, 6)), ["b", "a", "presence-p"]);
        assert_eq!(names(t.top(0, true, 1, 6)), ["a"]);
        assert!(t.top(1, false, 10, 6).is_empty());
        assert_eq!(
            t.app_totals(),
            vec![(
                0,
                AppTotals {
                    channels: 3,
                    presence_channels: 1,
                    members: 1,
                    subscriptions: 5
                }
            )]
        );
        t.unsubscribe(0, "presence-p", 0, Some("u"));
        t.unsubscribe(0, "a", 0, None);
        assert_eq!(
            t.app_totals(),
            vec![(
                0,
                AppTotals {
                    channels: 1,
                    presence_channels: 0,
                    members: 0,
                    subscriptions: 3
                }
            )]
        );
    }
}
