//! What a shard does for the users placed on it (like their `#server-to-user-{id}` channel):
//! count signed-in connections process-wide, and tell watchers when a user comes
//! online (first connection) or goes offline (last connection).
//!
//! The rules live in [`UserRegistry`], a plain struct whose methods say whom to notify
//! ([`Notify`]) and do no I/O, so they are unit-tested below; the `impl Shard` part is the
//! shell that sends each notice as a `ShardMsg::WatchNotify`.

use super::msg::ShardMsg;
use super::Shard;
use crate::app::{AppIdx, PerApp};
use crate::placement::ShardId;
use crate::session::ConnId;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Default)]
struct UserEntry {
    /// Signed-in connections of this user, on every shard.
    conns: u32,
    /// Connections watching this user.
    watchers: Vec<(ShardId, ConnId)>,
}

/// One notice for a watcher: the watched user is now online (or offline). The shell sends
/// it to `shard` as `ShardMsg::WatchNotify` for `conn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Notify {
    pub shard: ShardId,
    pub conn: ConnId,
    pub online: bool,
}

/// Signed-in connection counts and watchers of the users placed on this shard.
pub(super) struct UserRegistry {
    apps: PerApp<HashMap<Arc<str>, UserEntry>>,
}

impl UserRegistry {
    pub(super) fn new() -> UserRegistry {
        UserRegistry {
            apps: PerApp::new(),
        }
    }

    fn entry(&mut self, app: AppIdx, user: &Arc<str>) -> &mut UserEntry {
        self.apps.entry(app).entry(user.clone()).or_default()
    }

    /// Forgets users nobody is signed in as and nobody watches.
    fn gc(&mut self, app: AppIdx, user: &str) {
        let Some(t) = self.apps.get_mut(app) else {
            return;
        };
        if t.get(user)
            .is_some_and(|e| e.conns == 0 && e.watchers.is_empty())
        {
            t.remove(user);
        }
    }

    /// One more connection signed in as `user`: on the first one, every watcher hears
    /// "online"; another tab of a user already online changes nothing anyone sees.
    pub(super) fn online(&mut self, app: AppIdx, user: &Arc<str>) -> Vec<Notify> {
        let e = self.entry(app, user);
        e.conns += 1;
        if e.conns == 1 {
            notices(&e.watchers, true)
        } else {
            Vec::new()
        }
    }

    /// One connection signed in as `user` less: when none is left, every watcher hears
    /// "offline". The count never goes below zero; an entry left with no connections and
    /// no watchers is forgotten.
    pub(super) fn offline(&mut self, app: AppIdx, user: &Arc<str>) -> Vec<Notify> {
        let e = self.entry(app, user);
        e.conns = e.conns.saturating_sub(1);
        let out = if e.conns == 0 {
            notices(&e.watchers, false)
        } else {
            Vec::new()
        };
        self.gc(app, user);
        out
    }

    /// `conn` on shard `from` watches `user`: it hears the user's state at once, online
    /// or offline, and every change after that.
    pub(super) fn watch(
        &mut self,
        app: AppIdx,
        user: &Arc<str>,
        from: ShardId,
        conn: ConnId,
    ) -> Notify {
        let e = self.entry(app, user);
        e.watchers.push((from, conn));
        Notify {
            shard: from,
            conn,
            online: e.conns > 0,
        }
    }

    /// `conn` on shard `from` no longer watches `user` (nothing to notify).
    pub(super) fn unwatch(&mut self, app: AppIdx, user: &Arc<str>, from: ShardId, conn: ConnId) {
        self.entry(app, user)
            .watchers
            .retain(|w| *w != (from, conn));
        self.gc(app, user);
    }
}

fn notices(watchers: &[(ShardId, ConnId)], online: bool) -> Vec<Notify> {
    watchers
        .iter()
        .map(|&(shard, conn)| Notify {
            shard,
            conn,
            online,
        })
        .collect()
}

impl Shard {
    /// Sends each notice about `user` to its watcher's shard.
    fn send_notices(&self, user: &Arc<str>, notices: impl IntoIterator<Item = Notify>) {
        for n in notices {
            self.mesh.send(
                n.shard,
                ShardMsg::WatchNotify {
                    conn: n.conn,
                    user: user.clone(),
                    online: n.online,
                },
            );
        }
    }

    pub(super) fn user_online(&self, app: AppIdx, user: Arc<str>) {
        let notices = self.users.borrow_mut().online(app, &user);
        self.send_notices(&user, notices);
    }

    pub(super) fn user_offline(&self, app: AppIdx, user: Arc<str>) {
        let notices = self.users.borrow_mut().offline(app, &user);
        self.send_notices(&user, notices);
    }

    pub(super) fn watch(&self, app: AppIdx, user: Arc<str>, from: ShardId, conn: ConnId) {
        let notice = self.users.borrow_mut().watch(app, &user, from, conn);
        self.send_notices(&user, [notice]);
    }

    pub(super) fn unwatch(&self, app: AppIdx, user: &Arc<str>, from: ShardId, conn: ConnId) {
        self.users.borrow_mut().unwatch(app, user, from, conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> Arc<str> {
        Arc::from(id)
    }

    fn on(shard: ShardId, conn: ConnId) -> Notify {
        Notify {
            shard,
            conn,
            online: true,
        }
    }

    fn off(shard: ShardId, conn: ConnId) -> Notify {
        Notify {
            shard,
            conn,
            online: false,
        }
    }

    /// Users of `app` the registry still remembers.
    fn remembered(reg: &UserRegistry, app: AppIdx) -> usize {
        reg.apps.get(app).map_or(0, |t| t.len())
    }

    #[test]
    fn first_connection_is_online_and_other_tabs_are_silent() {
        let mut reg = UserRegistry::new();
        let u = user("u");
        assert_eq!(reg.watch(0, &u, 1, 10), off(1, 10));
        assert_eq!(reg.watch(0, &u, 0, 11), off(0, 11));
        assert_eq!(reg.online(0, &u), [on(1, 10), on(0, 11)]);
        assert_eq!(reg.online(0, &u), [], "a second tab");
        assert_eq!(reg.online(0, &u), [], "a third tab");
    }

    #[test]
    fn last_connection_leaving_is_offline() {
        let mut reg = UserRegistry::new();
        let u = user("u");
        reg.watch(0, &u, 1, 10);
        reg.online(0, &u);
        reg.online(0, &u);
        assert_eq!(reg.offline(0, &u), [], "one tab of two closed");
        assert_eq!(reg.offline(0, &u), [off(1, 10)]);
        assert_eq!(reg.online(0, &u), [on(1, 10)], "back online");
    }

    #[test]
    fn a_new_watcher_hears_the_current_state_at_once() {
        let mut reg = UserRegistry::new();
        let u = user("u");
        assert_eq!(reg.watch(0, &u, 2, 7), off(2, 7), "offline: told so too");
        reg.online(0, &u);
        assert_eq!(reg.watch(0, &u, 3, 8), on(3, 8));
        // Both now hear the change.
        assert_eq!(reg.offline(0, &u), [off(2, 7), off(3, 8)]);
    }

    #[test]
    fn unwatched_connections_hear_nothing() {
        let mut reg = UserRegistry::new();
        let u = user("u");
        reg.watch(0, &u, 1, 10);
        reg.watch(0, &u, 1, 11);
        reg.unwatch(0, &u, 1, 10);
        assert_eq!(reg.online(0, &u), [on(1, 11)]);
        reg.unwatch(0, &u, 1, 11);
        assert_eq!(reg.offline(0, &u), []);
        // Unwatching a connection that never watched changes nothing.
        reg.unwatch(0, &u, 0, 99);
        assert_eq!(remembered(&reg, 0), 0);
    }

    #[test]
    fn users_and_apps_are_counted_apart() {
        let mut reg = UserRegistry::new();
        let (a, b) = (user("a"), user("b"));
        reg.watch(0, &a, 0, 1);
        reg.watch(1, &a, 0, 2);
        assert_eq!(reg.online(0, &b), [], "b is not watched");
        assert_eq!(reg.online(1, &a), [on(0, 2)], "app 1's a only");
        assert_eq!(reg.online(0, &a), [on(0, 1)], "app 0's a is its own user");
    }

    #[test]
    fn empty_entries_are_forgotten() {
        let mut reg = UserRegistry::new();
        let u = user("u");
        reg.online(0, &u);
        reg.offline(0, &u);
        assert_eq!(remembered(&reg, 0), 0, "offline and unwatched");
        reg.watch(0, &u, 0, 1);
        assert_eq!(remembered(&reg, 0), 1, "watched while offline: kept");
        reg.unwatch(0, &u, 0, 1);
        assert_eq!(remembered(&reg, 0), 0);
        reg.online(0, &u);
        reg.watch(0, &u, 0, 1);
        reg.unwatch(0, &u, 0, 1);
        assert_eq!(remembered(&reg, 0), 1, "online: kept without watchers");
        reg.offline(0, &u);
        assert_eq!(remembered(&reg, 0), 0);
    }

    /// An offline with no matching online cannot underflow the count:
    /// the watchers hear "offline" again, and the next online is still a first connection.
    #[test]
    fn an_unmatched_offline_does_not_underflow() {
        let mut reg = UserRegistry::new();
        let u = user("u");
        reg.watch(0, &u, 1, 10);
        assert_eq!(reg.offline(0, &u), [off(1, 10)]);
        assert_eq!(reg.online(0, &u), [on(1, 10)]);
        assert_eq!(reg.offline(0, &u), [off(1, 10)]);
    }
}
