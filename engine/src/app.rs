//! Applications (tenants). Immutable after start and shared read-only by every shard.

use crate::config::{AppConfig, WebhookConfig};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Index of an app in [`Apps`]; shard tables key channels by it instead of the id string.
pub type AppIdx = u32;

/// One application.
#[derive(Debug)]
pub struct App {
    /// Position in [`Apps::list`].
    pub idx: AppIdx,
    pub id: String,
    pub key: String,
    pub secret: String,
    pub enable_client_events: bool,
    pub client_events_per_second: u32,
    pub enable_user_authentication: bool,
    pub enable_subscription_count: bool,
    pub max_presence_members: usize,
    pub max_presence_user_info_bytes: usize,
    pub authorized_connections_timeout_secs: Option<u64>,
    pub max_connections: Option<usize>,
    pub max_channels: Option<usize>,
    pub max_api_requests_per_second: u32,
    pub allowed_origins: Vec<String>,
    pub webhooks: Vec<WebhookConfig>,
    /// Live WebSocket connections of this app, on every shard. An atomic counter, not a lock:
    /// shards only add and subtract.
    pub connections: AtomicUsize,
    /// Occupied channels of this app, on every shard.
    pub channels: AtomicUsize,
    /// The API rate window, node-wide: its start (ms since `epoch`) in the high 40 bits, the
    /// requests admitted in it in the low 24. One word, so every shard counts in the same
    /// window with one compare-and-swap.
    api_window: AtomicU64,
    epoch: Instant,
}

/// All apps, looked up by key (WebSocket path) or id (HTTP API path).
#[derive(Debug)]
pub struct Apps {
    pub list: Vec<Arc<App>>,
    by_key: HashMap<String, AppIdx>,
    by_id: HashMap<String, AppIdx>,
}

impl App {
    /// Counts one more occupied channel, unless that would pass `max_channels`: false at the
    /// limit. One read-modify-write, so owner shards opening channels at the same moment
    /// never overshoot the bound (a check and a later increment could, by shards - 1).
    pub fn open_channel(&self) -> bool {
        self.channels
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                match self.max_channels {
                    Some(max) if n >= max => None,
                    _ => Some(n + 1),
                }
            })
            .is_ok()
    }

    /// Counts a signed API request against `max_api_requests_per_second` for the whole node
    /// (not per shard: a keep-alive publisher lands on one shard and must get the whole
    /// rate). The window opens with the first request and lasts a second, as a client
    /// counts. `Err(secs)`: refused; retry after `secs`.
    pub fn admit_api(&self) -> Result<(), u64> {
        const COUNT_BITS: u32 = 24;
        const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        // Rates above 2^24 - 1 per second are not limits; the count field holds that much.
        let max = u64::from(self.max_api_requests_per_second).min(COUNT_MASK);
        let mut cur = self.api_window.load(Ordering::Relaxed);
        loop {
            let (start_ms, n) = (cur >> COUNT_BITS, cur & COUNT_MASK);
            let next = if now_ms.saturating_sub(start_ms) >= 1000 || cur == 0 {
                (now_ms << COUNT_BITS) | 1
            } else if n < max {
                cur + 1
            } else {
                return Err(1);
            };
            match self.api_window.compare_exchange_weak(
                cur,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(seen) => cur = seen,
            }
        }
    }

    /// The last subscriber of a channel left.
    pub fn close_channel(&self) {
        self.channels.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Apps {
    pub fn new(configs: &[AppConfig]) -> Apps {
        let mut list = Vec::new();
        let mut by_key = HashMap::new();
        let mut by_id = HashMap::new();
        for (i, c) in configs.iter().enumerate() {
            let idx = i as AppIdx;
            list.push(Arc::new(App {
                idx,
                id: c.id.clone(),
                key: c.key.clone(),
                secret: c.secret.clone(),
                enable_client_events: c.enable_client_events,
                client_events_per_second: c.client_events_per_second,
                enable_user_authentication: c.enable_user_authentication,
                enable_subscription_count: c.enable_subscription_count,
                max_presence_members: c.max_presence_members,
                max_presence_user_info_bytes: c.max_presence_user_info_bytes,
                authorized_connections_timeout_secs: c.authorized_connections_timeout_secs,
                max_connections: c.max_connections,
                max_channels: c.max_channels,
                max_api_requests_per_second: c.max_api_requests_per_second,
                allowed_origins: c.allowed_origins.clone(),
                webhooks: c.webhooks.clone(),
                connections: AtomicUsize::new(0),
                channels: AtomicUsize::new(0),
                api_window: AtomicU64::new(0),
                epoch: Instant::now(),
            }));
            by_key.insert(c.key.clone(), idx);
            by_id.insert(c.id.clone(), idx);
        }
        Apps {
            list,
            by_key,
            by_id,
        }
    }

    pub fn by_key(&self, key: &str) -> Option<&Arc<App>> {
        self.by_key.get(key).map(|&i| &self.list[i as usize])
    }

    pub fn by_id(&self, id: &str) -> Option<&Arc<App>> {
        self.by_id.get(id).map(|&i| &self.list[i as usize])
    }

    pub fn get(&self, idx: AppIdx) -> &Arc<App> {
        &self.list[idx as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Threads stand in for owner shards opening channels at once: exactly `max` succeed,
    /// and a closed channel makes room for exactly one more.
    #[test]
    fn open_channel_is_exact_under_contention() {
        let mut cfg = AppConfig::new("1", "k", "s");
        cfg.max_channels = Some(100);
        let app = Apps::new(&[cfg]).list.remove(0);
        let opened: usize = std::thread::scope(|s| {
            let workers: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..10_000).filter(|_| app.open_channel()).count()))
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        });
        assert_eq!(opened, 100);
        assert_eq!(app.channels.load(Ordering::Relaxed), 100);
        app.close_channel();
        assert!(app.open_channel());
        assert!(!app.open_channel());
    }

    /// The API rate is one window for every thread (shard) of the node.
    #[test]
    fn admit_api_is_node_wide_under_contention() {
        let mut cfg = AppConfig::new("1", "k", "s");
        cfg.max_api_requests_per_second = 50;
        let app = Apps::new(&[cfg]).list.remove(0);
        let admitted: usize = std::thread::scope(|s| {
            let workers: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..100).filter(|_| app.admit_api().is_ok()).count()))
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        });
        // 400 attempts well within the second the first one opened.
        assert_eq!(admitted, 50);
        assert_eq!(app.admit_api(), Err(1));
    }
}
