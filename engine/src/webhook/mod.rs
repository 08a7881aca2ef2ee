//! Webhooks: telling apps what happened, signed, batched and retried, off the shards.
//!
//! **Boundary:** shards call [`Webhooks::emit`], which never blocks and never fails; everything
//! else (delays, batching, HTTP, retries) happens on the webhook threads.
//!
//! ## The path of one event
//!
//! 1. A shard calls [`Webhooks::emit`]. If no endpoint of the app can want the event, it stops
//!    there. Otherwise it is `try_send` into the hand-over queue ([`HANDOVER_CAPACITY`] events).
//!    When the queue is full the event is **dropped and counted** in [`WebhookStats::dropped`]:
//!    a shard never waits for a webhook receiver.
//! 2. The `raptor-webhooks` thread (`dispatcher.rs`) debounces: `channel_vacated` and
//!    `member_removed` are held for [`DEBOUNCE`]; a matching `channel_occupied` /
//!    `member_added` inside that window cancels both (`debounce.rs`).
//! 3. The event goes to every endpoint, one per distinct `(app, url)`, whose `event_types` and
//!    `channel_prefix` match (`event.rs`).
//! 4. Each endpoint batches: events arriving within [`BATCH_WINDOW`] (at most
//!    [`BATCH_MAX_EVENTS`]) become one body `{"time_ms":..,"events":[..]}`, encoded and signed
//!    once (`endpoint.rs`).
//! 5. An endpoint has at most one request in flight and sends its batches in order. Requests
//!    run on a small pool of `raptor-wh-http*` threads (`delivery.rs`), so a slow receiver holds
//!    one thread, not all.
//! 6. A failed request (non-2xx, connection error, timeout) is retried with exponential backoff
//!    (`retry.rs`) for 5 minutes after the first attempt; then the batch is counted in
//!    `failed` and logged.
//!
//! **Invariant:** everything is bounded: the hand-over queue, the held events of the debounce,
//! the batches waiting for delivery ([`MAX_PENDING_BATCHES`], oldest dropped first) and the
//! delivery threads. There is no lock: the threads talk only over `std::sync::mpsc` channels.
//!
//! docs/webhooks.md is the operator's view of the same.

mod debounce;
mod delivery;
mod dispatcher;
mod endpoint;
mod event;
mod retry;
mod stats;
pub mod tls;

use crate::app::{AppIdx, Apps};
use arc_swap::ArcSwap;
use event::KindSet;
use serde::Serialize;
use stats::Counters;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

pub use stats::WebhookStats;

/// What the webhook thread receives, from the shards and from the delivery threads. Here,
/// not in `dispatcher`, so the delivery threads and the dispatcher do not import each other.
pub(crate) enum Input {
    /// From [`Webhooks::emit`].
    Event { app: AppIdx, ev: WebhookEvent },
    /// A delivery thread finished a request and is idle again.
    Done {
        worker: usize,
        endpoint: usize,
        outcome: delivery::Outcome,
    },
    /// A reload: the endpoints of these apps replace the configured ones.
    Reload(Arc<Apps>),
    /// The last handle was dropped.
    Shutdown,
}

/// Events the hand-over queue between the shards and the webhook thread holds. Beyond it,
/// [`Webhooks::emit`] drops the event and counts it in [`WebhookStats::dropped`].
pub const HANDOVER_CAPACITY: usize = 10_000;

/// How long `channel_vacated` and `member_removed` are held back (Pusher: 3 s).
pub const DEBOUNCE: Duration = Duration::from_secs(3);

/// Events for one endpoint arriving within this window go in one request.
pub const BATCH_WINDOW: Duration = Duration::from_millis(50);

/// Most events in one request.
pub const BATCH_MAX_EVENTS: usize = 100;

/// Batches (all endpoints together) sealed but not yet delivered: queued behind an endpoint's
/// in-flight request or waiting for a retry. Beyond it the oldest one not in flight is dropped
/// and its events counted in [`WebhookStats::dropped`].
pub const MAX_PENDING_BATCHES: usize = 1000;

/// Held (debounced) events at most; beyond it the oldest is released early, not dropped.
pub const MAX_HELD_EVENTS: usize = 100_000;

/// Connect, send and receive timeouts of one webhook request.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// Threads making webhook requests (at most one per endpoint).
pub const DELIVERY_THREADS: usize = 4;

/// One webhook event, as Pusher defines them (protocol doc §1.13).
///
/// Serializes to exactly Pusher's JSON, `name` first, e.g.
/// `{"name":"member_added","channel":"presence-c","user_id":"u"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum WebhookEvent {
    ChannelOccupied {
        channel: String,
    },
    ChannelVacated {
        channel: String,
    },
    MemberAdded {
        channel: String,
        user_id: String,
    },
    MemberRemoved {
        channel: String,
        user_id: String,
    },
    /// Raptor's: the app replaced the member's info (`POST .../users/{id}/presence`).
    MemberUpdated {
        channel: String,
        user_id: String,
        user_info: UserInfo,
    },
    ClientEvent {
        channel: String,
        event: String,
        data: String,
        socket_id: String,
        /// Only on presence channels.
        #[serde(skip_serializing_if = "Option::is_none")]
        user_id: Option<String>,
    },
    CacheMiss {
        channel: String,
    },
    SubscriptionCount {
        channel: String,
        subscription_count: u32,
    },
}

/// A member's `user_info`, compact JSON text (an object) that serializes as the JSON value
/// itself, not as a string: `"user_info":{"name":"Ada"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo(pub String);

impl Serialize for UserInfo {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Checked to be a JSON object at the edge; parsed again only when a webhook is sent.
        let mut bytes = self.0.as_bytes().to_vec();
        match simd_json::to_owned_value(&mut bytes) {
            Ok(v) => v.serialize(s),
            Err(e) => Err(serde::ser::Error::custom(e)),
        }
    }
}

/// Handle to the webhook dispatcher; cheap to clone and `Send`, one per shard.
///
/// The webhook threads stop once every handle is dropped (events still waiting are lost).
#[derive(Clone)]
pub struct Webhooks {
    /// `None` for [`Webhooks::disabled`] (tests): `emit` is then a no-op.
    inner: Option<Arc<Shared>>,
}

/// What every handle shares. Read-only except for the atomics and `wanted`, which a reload
/// swaps whole.
struct Shared {
    tx: SyncSender<Input>,
    /// Per app, the event kinds worth handing over (see `event::wanted_by_app`).
    wanted: ArcSwap<Box<[KindSet]>>,
    counters: Arc<Counters>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Best effort: if the queue is full the thread lives on, harmlessly idle.
        let _ = self.tx.try_send(Input::Shutdown);
    }
}

impl Webhooks {
    /// Starts the dispatcher thread (delivery threads start with the first endpoints);
    /// `https://` URLs are verified
    /// against the system's roots.
    pub fn start(apps: &Apps) -> Webhooks {
        let roots = tls::roots(&crate::config::WebhookSettings::default())
            .unwrap_or(ureq::tls::RootCerts::Specific(Arc::new(Vec::new())));
        Webhooks::start_with(apps, roots)
    }

    /// [`Webhooks::start`] with the roots `https://` URLs are verified against. The
    /// dispatcher thread starts even when no app has webhooks yet (a reload may add some);
    /// the delivery threads start with the first endpoints.
    pub fn start_with(apps: &Apps, roots: ureq::tls::RootCerts) -> Webhooks {
        let endpoints = endpoint::Endpoint::from_apps(apps);
        let wanted = ArcSwap::from_pointee(wanted(apps));
        let counters = Arc::new(Counters::default());
        let (tx, rx) = mpsc::sync_channel(HANDOVER_CAPACITY);
        // If a thread cannot be started the receiver is gone, so every `emit` counts as dropped.
        dispatcher::spawn(endpoints, rx, tx.clone(), counters.clone(), roots);
        Webhooks {
            inner: Some(Arc::new(Shared {
                tx,
                wanted,
                counters,
            })),
        }
    }

    /// A handle that sends nothing and starts no thread (tests).
    pub fn disabled() -> Webhooks {
        Webhooks { inner: None }
    }

    /// A reload: `apps`' webhooks replace the configured ones. Blocks while the hand-over
    /// queue is full (call it off the shards), so the change is never dropped.
    pub fn reload(&self, apps: &Arc<Apps>) {
        let Some(s) = &self.inner else { return };
        s.wanted.store(Arc::new(wanted(apps)));
        if s.tx.send(Input::Reload(apps.clone())).is_err() {
            tracing::error!("the webhook thread is gone; webhook changes not applied");
        }
    }

    /// Queues an event for every matching webhook of `app`. Never blocks.
    pub fn emit(&self, app: AppIdx, ev: WebhookEvent) {
        let Some(s) = &self.inner else { return };
        let wanted = s
            .wanted
            .load()
            .get(app as usize)
            .is_some_and(|k| k.contains(ev.kind()));
        if !wanted {
            return;
        }
        match s.tx.try_send(Input::Event { app, ev }) {
            Ok(()) => {
                Counters::add(&s.counters.queued, 1);
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                let n = Counters::add(&s.counters.dropped, 1);
                // Logged at 1, 2, 4, 8 … drops: visible, but never a flood.
                if n.is_power_of_two() {
                    tracing::warn!(
                        dropped_total = n,
                        capacity = HANDOVER_CAPACITY,
                        "webhook queue full, event dropped"
                    );
                }
            }
        }
    }

    /// Counters since start; all zero while no app has webhooks.
    pub fn stats(&self) -> WebhookStats {
        self.inner
            .as_ref()
            .map_or_else(WebhookStats::default, |s| s.counters.snapshot())
    }
}

/// Per app index, the event kinds its webhooks may want.
fn wanted(apps: &Apps) -> Box<[KindSet]> {
    apps.list
        .iter()
        .map(|a| match a.removed {
            true => KindSet::default(),
            false => event::wanted_by_app(&a.webhooks),
        })
        .collect()
}

impl Webhooks {
    /// At shutdown: waits until the dispatcher has been idle (no event sent, failed, dropped
    /// or debounced) for a second, or `grace` passed. Best effort: events still held for
    /// debounce or waiting for a retry when the grace period ends are lost (docs/webhooks.md).
    /// Returns how many events were queued but not yet accounted for.
    pub fn flush(&self, grace: std::time::Duration) -> u64 {
        use std::time::{Duration, Instant};
        let settled = |s: &WebhookStats| s.sent + s.failed + s.dropped + s.debounced;
        let deadline = Instant::now() + grace;
        let mut last = self.stats();
        let mut quiet_since = Instant::now();
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            let now = self.stats();
            if settled(&now) != settled(&last) || now.queued != last.queued {
                quiet_since = Instant::now();
                last = now;
            } else if settled(&now) >= now.queued || quiet_since.elapsed() >= Duration::from_secs(1)
            {
                break;
            }
        }
        let s = self.stats();
        s.queued.saturating_sub(settled(&s))
    }
}
