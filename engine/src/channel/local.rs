//! Subscribers on this shard, per app and channel. The fanout loop lives here.

use crate::app::{AppIdx, PerApp};
use crate::frame::Frame;
use crate::session::{ConnId, Outbound};
use crate::socket_id::SocketId;
use indexmap::IndexMap;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

/// One subscribed socket as the fanout loop needs it.
pub struct Subscriber {
    /// For `socket_id` exclusion.
    pub socket_id: SocketId,
    pub out: Rc<Outbound>,
    /// Receives member events on `presence-privileged-*` channels.
    pub privileged: bool,
}

/// `app → channel → subscribers`. `IndexMap` gives O(1) removal (swap_remove) and a dense,
/// cache-friendly iteration for fanout.
#[derive(Default)]
pub struct LocalChannels {
    apps: PerApp<HashMap<Arc<str>, IndexMap<ConnId, Subscriber>>>,
}

impl LocalChannels {
    pub fn new() -> LocalChannels {
        LocalChannels {
            apps: PerApp::new(),
        }
    }

    pub fn add(&mut self, app: AppIdx, channel: &Arc<str>, conn: ConnId, sub: Subscriber) {
        self.apps
            .entry(app)
            .entry(channel.clone())
            .or_default()
            .insert(conn, sub);
    }

    pub fn remove(&mut self, app: AppIdx, channel: &str, conn: ConnId) {
        let Some(table) = self.apps.get_mut(app) else {
            return;
        };
        if let Some(subs) = table.get_mut(channel) {
            subs.swap_remove(&conn);
            if subs.is_empty() {
                table.remove(channel);
            }
        }
    }

    /// Queues `frame` on every subscriber except `exclude`. Returns recipients.
    pub fn deliver(
        &self,
        app: AppIdx,
        channel: &str,
        frame: &Frame,
        exclude: Option<SocketId>,
        privileged_only: bool,
    ) -> usize {
        let Some(subs) = self.apps.get(app).and_then(|t| t.get(channel)) else {
            return 0;
        };
        let mut n = 0;
        for sub in subs.values() {
            if Some(sub.socket_id) == exclude || (privileged_only && !sub.privileged) {
                continue;
            }
            sub.out.push(frame.clone());
            n += 1;
        }
        n
    }

    /// Closes the connections of every subscriber of `channel` on this shard with `code`.
    pub fn close(&self, app: AppIdx, channel: &str, code: u16, reason: &'static str) {
        if let Some(subs) = self.apps.get(app).and_then(|t| t.get(channel)) {
            for sub in subs.values() {
                sub.out.close(code, reason);
            }
        }
    }

    /// Subscribers of one channel on this shard.
    pub fn count(&self, app: AppIdx, channel: &str) -> usize {
        self.apps
            .get(app)
            .and_then(|t| t.get(channel))
            .map_or(0, |s| s.len())
    }
}
