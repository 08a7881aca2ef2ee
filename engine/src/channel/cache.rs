//! Cache channels: the owner keeps the last event of each `cache-*` channel for
//! [`CACHE_TTL`], replays it to new subscribers, and answers `info=cache`. In a cluster the
//! owning node sends cache events to every node, and each node's owner shard keeps its own
//! copy (docs/cluster.md).

use crate::app::{AppIdx, PerApp};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a cached event lives (Pusher: 30 minutes).
pub const CACHE_TTL: Duration = Duration::from_secs(30 * 60);

pub struct Cached {
    /// The finished frame, replayed as is.
    pub frame: Bytes,
    /// The event's `data`, for `GET /channels/{name}?info=cache`.
    pub data: Arc<str>,
    pub stored: Instant,
}

#[derive(Default)]
pub struct ChannelCache {
    apps: PerApp<HashMap<Arc<str>, Cached>>,
}

impl ChannelCache {
    pub fn new() -> ChannelCache {
        ChannelCache {
            apps: PerApp::new(),
        }
    }

    pub fn store(
        &mut self,
        app: AppIdx,
        channel: &Arc<str>,
        frame: Bytes,
        data: Arc<str>,
        now: Instant,
    ) {
        self.apps.entry(app).insert(
            channel.clone(),
            Cached {
                frame,
                data,
                stored: now,
            },
        );
    }

    /// The live entry, if any, and its remaining TTL.
    pub fn get(&self, app: AppIdx, channel: &str, now: Instant) -> Option<(&Cached, Duration)> {
        let c = self.apps.get(app)?.get(channel)?;
        let age = now.saturating_duration_since(c.stored);
        (age < CACHE_TTL).then(|| (c, CACHE_TTL - age))
    }

    /// Drops expired entries (called by the sweeper), bounding memory by live channels.
    pub fn expire(&mut self, now: Instant) {
        for t in self.apps.iter_mut() {
            t.retain(|_, c| now.saturating_duration_since(c.stored) < CACHE_TTL);
        }
    }
}
