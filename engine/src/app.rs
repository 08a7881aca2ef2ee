//! Applications (tenants). A set of apps ([`Apps`]) is immutable: a reload builds a new set
//! and swaps it in whole ([`crate::live`]). What changes while the server runs (connection
//! and channel counts, the API rate window) lives in each app's [`AppCounters`], which a
//! reload carries over to the app's new version.

use crate::config::{AppConfig, HistoryRule, WebhookConfig};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Index of an app in [`Apps`]; shard tables key channels by it instead of the id string.
/// Stable for the life of the process: an app keeps its index across reloads (found by its
/// id), and the index of a removed app is never given to another.
pub type AppIdx = u32;

/// One application: its configuration as of the last reload, and its live counters.
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
    /// Which channels keep history.
    pub history: HistoryRules,
    /// Subscriptions and client events need access-token grants (docs/tokens.md).
    pub require_tokens: bool,
    /// Events up to this many bytes of `data` travel in chunks (0: off). docs/protocol.md.
    pub max_chunked_event_bytes: usize,
    /// Chunks of chunked client events one connection may send per second.
    pub client_chunks_per_second: u32,
    /// A reload removed the app: it is found by neither key nor id, and its connections are
    /// closed with 4001. Kept in [`Apps::list`] so its index stays taken.
    pub removed: bool,
    /// Shared by every version of this app (a reload keeps them).
    pub counters: Arc<AppCounters>,
    /// The configuration it was made from, to tell what a reload changed.
    config: AppConfig,
}

/// An app's `[[apps.history]]` rules, compiled (the first that matches a channel applies).
#[derive(Debug, Default, Clone)]
pub struct HistoryRules(Vec<(globset::GlobMatcher, HistoryRule)>);

impl HistoryRules {
    /// Compiles validated rules (a rule whose glob does not compile is skipped; validation
    /// refused it before).
    pub fn new(rules: &[HistoryRule]) -> HistoryRules {
        HistoryRules(
            rules
                .iter()
                .filter_map(|r| {
                    let g = globset::Glob::new(&r.channels).ok()?;
                    Some((g.compile_matcher(), r.clone()))
                })
                .collect(),
        )
    }

    /// The rule `channel`'s history follows, if any. No rules (the default): no cost.
    pub fn rule_for(&self, channel: &str) -> Option<&HistoryRule> {
        // A wildcard subscription has no history, whatever glob its name would match.
        if crate::channel::pattern::is_pattern(channel) {
            return None;
        }
        self.0
            .iter()
            .find(|(g, _)| g.is_match(channel))
            .map(|(_, r)| r)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What the shards count for an app, node-wide. Atomics, not a lock: shards only add and
/// subtract, and a reload hands the same counters to the app's next version.
#[derive(Debug)]
pub struct AppCounters {
    /// Live WebSocket connections of this app, on every shard.
    pub connections: AtomicUsize,
    /// Occupied channels of this app, on every shard.
    pub channels: AtomicUsize,
    /// Events of this app that entered this node (API publishes and client events).
    pub published: AtomicU64,
    /// Of those, client events.
    pub client_events: AtomicU64,
    /// The API rate window, node-wide: its start (ms since `epoch`) in the high 40 bits, the
    /// requests admitted in it in the low 24. One word, so every shard counts in the same
    /// window with one compare-and-swap.
    api_window: AtomicU64,
    epoch: Instant,
}

impl Default for AppCounters {
    fn default() -> Self {
        AppCounters {
            connections: AtomicUsize::new(0),
            channels: AtomicUsize::new(0),
            published: AtomicU64::new(0),
            client_events: AtomicU64::new(0),
            api_window: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

/// All apps, looked up by key (WebSocket path) or id (HTTP API path).
#[derive(Debug)]
pub struct Apps {
    /// Every app the process has served, by index; removed ones stay (`App::removed`).
    pub list: Vec<Arc<App>>,
    by_key: HashMap<String, AppIdx>,
    by_id: HashMap<String, AppIdx>,
}

/// What a reload did to the apps, by id.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AppChanges {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Apps whose configuration changed (a rotated secret, a new limit, new webhooks...).
    pub changed: Vec<String>,
}

impl AppChanges {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

impl App {
    fn from_config(idx: AppIdx, c: &AppConfig, counters: Arc<AppCounters>) -> App {
        App {
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
            history: HistoryRules::new(&c.history),
            require_tokens: c.require_tokens,
            max_chunked_event_bytes: c.max_chunked_event_bytes,
            client_chunks_per_second: c.client_chunks_per_second,
            removed: false,
            counters,
            config: c.clone(),
        }
    }

    /// The same app, removed by a reload.
    fn as_removed(&self) -> App {
        let mut a = App::from_config(self.idx, &self.config, self.counters.clone());
        a.removed = true;
        a
    }

    /// Counts one more occupied channel, unless that would pass `max_channels`: false at the
    /// limit. One read-modify-write, so owner shards opening channels at the same moment
    /// never overshoot the bound (a check and a later increment could, by shards - 1).
    pub fn open_channel(&self) -> bool {
        self.counters
            .channels
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
        let window = &self.counters.api_window;
        let now_ms = self.counters.epoch.elapsed().as_millis() as u64;
        // Rates above 2^24 - 1 per second are not limits; the count field holds that much.
        let max = u64::from(self.max_api_requests_per_second).min(COUNT_MASK);
        let mut cur = window.load(Ordering::Relaxed);
        loop {
            let (start_ms, n) = (cur >> COUNT_BITS, cur & COUNT_MASK);
            let next = if now_ms.saturating_sub(start_ms) >= 1000 || cur == 0 {
                (now_ms << COUNT_BITS) | 1
            } else if n < max {
                cur + 1
            } else {
                return Err(1);
            };
            match window.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Ok(()),
                Err(seen) => cur = seen,
            }
        }
    }

    /// The last subscriber of a channel left.
    pub fn close_channel(&self) {
        self.counters.channels.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Apps {
    pub fn new(configs: &[AppConfig]) -> Apps {
        Apps::empty().reloaded(configs).0
    }

    fn empty() -> Apps {
        Apps {
            list: Vec::new(),
            by_key: HashMap::new(),
            by_id: HashMap::new(),
        }
    }

    /// The apps of `configs`, as the next version of these: an app keeps its index and its
    /// counters (found by id, removed ones included, so an app removed and added back counts
    /// on), a new one gets the next free index, and one that is no longer configured stays
    /// in the list as removed. `configs` has been validated (ids and keys unique).
    pub fn reloaded(&self, configs: &[AppConfig]) -> (Apps, AppChanges) {
        let mut changes = AppChanges::default();
        let old_by_id: HashMap<&str, &Arc<App>> =
            self.list.iter().map(|a| (a.id.as_str(), a)).collect();
        let mut list: Vec<Option<Arc<App>>> = vec![None; self.list.len()];
        let mut by_key = HashMap::new();
        let mut by_id = HashMap::new();
        let mut next = self.list.len();
        for c in configs {
            let app = match old_by_id.get(c.id.as_str()) {
                Some(old) => {
                    if old.removed {
                        changes.added.push(c.id.clone());
                    } else if old.config != *c {
                        changes.changed.push(c.id.clone());
                    }
                    App::from_config(old.idx, c, old.counters.clone())
                }
                None => {
                    changes.added.push(c.id.clone());
                    list.push(None);
                    next += 1;
                    App::from_config((next - 1) as AppIdx, c, Arc::default())
                }
            };
            by_key.insert(c.key.clone(), app.idx);
            by_id.insert(c.id.clone(), app.idx);
            let idx = app.idx as usize;
            list[idx] = Some(Arc::new(app));
        }
        let list = list
            .into_iter()
            .zip(self.list.iter().map(Some).chain(std::iter::repeat(None)))
            .map(|(new, old)| match (new, old) {
                (Some(a), _) => a,
                (None, Some(old)) if old.removed => old.clone(),
                (None, Some(old)) => {
                    changes.removed.push(old.id.clone());
                    Arc::new(old.as_removed())
                }
                (None, None) => unreachable!("every new index is filled by its config"),
            })
            .collect();
        (
            Apps {
                list,
                by_key,
                by_id,
            },
            changes,
        )
    }

    pub fn by_key(&self, key: &str) -> Option<&Arc<App>> {
        self.by_key.get(key).map(|&i| &self.list[i as usize])
    }

    pub fn by_id(&self, id: &str) -> Option<&Arc<App>> {
        self.by_id.get(id).map(|&i| &self.list[i as usize])
    }

    /// The app at `idx` (which this set, or an earlier one, gave out), removed or not.
    pub fn get(&self, idx: AppIdx) -> &Arc<App> {
        &self.list[idx as usize]
    }
}

/// A shard's table per app, indexed by [`AppIdx`]. A reload can add apps while the shards
/// run, so a table grows when a new index is first written, and reads past its end find
/// nothing.
#[derive(Debug)]
pub struct PerApp<T>(Vec<T>);

impl<T: Default> PerApp<T> {
    pub fn new() -> PerApp<T> {
        PerApp(Vec::new())
    }

    pub fn get(&self, app: AppIdx) -> Option<&T> {
        self.0.get(app as usize)
    }

    pub fn get_mut(&mut self, app: AppIdx) -> Option<&mut T> {
        self.0.get_mut(app as usize)
    }

    /// The table of `app`, made (with every index before it) if it is new.
    pub fn entry(&mut self, app: AppIdx) -> &mut T {
        let i = app as usize;
        if i >= self.0.len() {
            self.0.resize_with(i + 1, T::default);
        }
        &mut self.0[i]
    }

    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.0.iter()
    }

    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, T> {
        self.0.iter_mut()
    }
}

impl<T: Default> Default for PerApp<T> {
    fn default() -> Self {
        PerApp::new()
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
        assert_eq!(app.counters.channels.load(Ordering::Relaxed), 100);
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

    /// A reload keeps each app's index and counters (found by id), gives a new app the next
    /// index, keeps a removed one as removed (found by neither key nor id), and gives an app
    /// added back its old index.
    #[test]
    fn reloaded_keeps_indexes_and_counters() {
        let a = AppConfig::new("a", "ka", "sa");
        let b = AppConfig::new("b", "kb", "sb");
        let v1 = Apps::new(&[a.clone(), b.clone()]);
        v1.get(1).counters.connections.store(7, Ordering::Relaxed);

        let mut b2 = b.clone();
        b2.secret = "rotated".into();
        let c = AppConfig::new("c", "kc", "sc");
        let (v2, changes) = v1.reloaded(&[b2, c.clone()]);
        assert_eq!(
            changes,
            AppChanges {
                added: vec!["c".into()],
                removed: vec!["a".into()],
                changed: vec!["b".into()],
            }
        );
        let b_now = v2.by_key("kb").unwrap();
        assert_eq!((b_now.idx, b_now.secret.as_str()), (1, "rotated"));
        assert_eq!(b_now.counters.connections.load(Ordering::Relaxed), 7);
        assert_eq!(v2.by_id("c").unwrap().idx, 2);
        assert!(v2.by_id("a").is_none() && v2.by_key("ka").is_none());
        assert!(v2.get(0).removed && !v2.get(1).removed);

        let (v3, changes) = v2.reloaded(&[a, c]);
        assert_eq!(changes.added, vec!["a".to_string()]);
        assert_eq!(changes.removed, vec!["b".to_string()]);
        assert!(changes.changed.is_empty());
        assert_eq!(v3.by_key("ka").unwrap().idx, 0);
        assert_eq!(v3.list.len(), 3);
        assert!(v3.get(1).removed);
        let (_, none) = v3.reloaded(&[
            AppConfig::new("a", "ka", "sa"),
            AppConfig::new("c", "kc", "sc"),
        ]);
        assert!(none.is_empty());
    }

    #[test]
    fn per_app_tables_grow_on_write_and_read_nothing_past_the_end() {
        let mut t: PerApp<Vec<u8>> = PerApp::new();
        assert!(t.get(3).is_none());
        t.entry(3).push(1);
        assert_eq!(t.get(3), Some(&vec![1]));
        assert_eq!(t.get(0), Some(&vec![]));
        assert!(t.get(4).is_none());
    }
}
