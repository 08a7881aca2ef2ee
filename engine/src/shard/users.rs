//! What a shard does for the users placed on it (like their `#server-to-user-{id}` channel):
//! count signed-in connections process-wide, and tell watchers when a user comes
//! online (first connection) or goes offline (last connection).

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
}

impl Shard {
    fn notify_watchers(&self, app: AppIdx, user: &Arc<str>, online: bool) {
        let watchers = self.users.borrow_mut().entry(app, user).watchers.clone();
        for (shard, conn) in watchers {
            self.mesh.send(
                shard,
                ShardMsg::WatchNotify {
                    conn,
                    user: user.clone(),
                    online,
                },
            );
        }
    }

    pub(super) fn user_online(&self, app: AppIdx, user: Arc<str>) {
        let first = {
            let mut reg = self.users.borrow_mut();
            let e = reg.entry(app, &user);
            e.conns += 1;
            e.conns == 1
        };
        if first {
            self.notify_watchers(app, &user, true);
        }
    }

    pub(super) fn user_offline(&self, app: AppIdx, user: Arc<str>) {
        let last = {
            let mut reg = self.users.borrow_mut();
            let e = reg.entry(app, &user);
            e.conns = e.conns.saturating_sub(1);
            e.conns == 0
        };
        if last {
            self.notify_watchers(app, &user, false);
        }
        self.users.borrow_mut().gc(app, &user);
    }

    pub(super) fn watch(&self, app: AppIdx, user: Arc<str>, from: ShardId, conn: ConnId) {
        let online = {
            let mut reg = self.users.borrow_mut();
            let e = reg.entry(app, &user);
            e.watchers.push((from, conn));
            e.conns > 0
        };
        self.mesh
            .send(from, ShardMsg::WatchNotify { conn, user, online });
    }

    pub(super) fn unwatch(&self, app: AppIdx, user: &Arc<str>, from: ShardId, conn: ConnId) {
        let mut reg = self.users.borrow_mut();
        reg.entry(app, user).watchers.retain(|w| *w != (from, conn));
        reg.gc(app, user);
    }
}
