//! One webhook endpoint: a distinct `(app, url)`. It owns the batch being filled and the
//! queue of sealed batches, and sends them in order, one request at a time.
//!
//! **Invariant:** at most one request per endpoint is in flight, always for the head of the
//! queue; a failed head is retried before anything behind it is sent, so a receiver sees an
//! endpoint's batches in the order they were sealed.

use super::event::{encode_body, Filter};
use super::retry::Schedule;
use super::WebhookEvent;
use crate::app::{App, Apps};
use crate::signature::sign_hex;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A sealed batch: body encoded and signed once, the same bytes on every attempt.
#[derive(Debug)]
pub(crate) struct Batch {
    /// Global sealing order, to find the oldest batch when dropping for room.
    pub seq: u64,
    pub body: Arc<[u8]>,
    pub signature: Arc<str>,
    /// Events in the body, for the counters.
    pub events: u64,
    /// When the first attempt started; `None` before it.
    pub first_attempt: Option<Instant>,
    /// Failed attempts so far.
    pub failures: u32,
    /// Not before this (after a failure); `None` means as soon as possible.
    pub not_before: Option<Instant>,
}

/// One request for a delivery thread.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub endpoint: usize,
    pub url: Arc<str>,
    pub key: Arc<str>,
    pub signature: Arc<str>,
    pub body: Arc<[u8]>,
}

/// What became of the head batch after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    /// Delivered; the batch is gone.
    Sent { events: u64 },
    /// Failed; retried at the given time.
    RetryAt { at: Instant, failures: u32 },
    /// Failed for the last time; the batch is gone.
    GaveUp { events: u64, failures: u32 },
}

pub(crate) struct Endpoint {
    pub app: Arc<App>,
    pub url: Arc<str>,
    key: Arc<str>,
    /// One per `[[apps.webhooks]]` entry with this URL; an event matching any is sent once.
    filters: Vec<Filter>,
    /// The batch being filled, and when its first event came.
    open: Vec<WebhookEvent>,
    opened_at: Option<Instant>,
    /// Sealed batches, oldest first; the head is the one being delivered.
    queue: VecDeque<Batch>,
    in_flight: bool,
}

impl Endpoint {
    /// Every distinct `(app, url)` of the configuration, in configuration order.
    pub fn from_apps(apps: &Apps) -> Vec<Endpoint> {
        let mut out: Vec<Endpoint> = Vec::new();
        for app in apps.list.iter().filter(|a| !a.removed) {
            for w in &app.webhooks {
                let filter = Filter::from_config(w);
                match out
                    .iter_mut()
                    .find(|e| e.app.idx == app.idx && *e.url == *w.url)
                {
                    Some(e) => e.filters.push(filter),
                    None => out.push(Endpoint {
                        app: app.clone(),
                        url: Arc::from(w.url.as_str()),
                        key: Arc::from(app.key.as_str()),
                        filters: vec![filter],
                        open: Vec::new(),
                        opened_at: None,
                        queue: VecDeque::new(),
                        in_flight: false,
                    }),
                }
            }
        }
        out
    }

    /// A reload configured this endpoint again as `next` (same app and URL): it takes the
    /// app's new version and filters, and re-signs every queued batch, so a rotated secret
    /// applies to everything sent from now on. A request in flight keeps the signature its
    /// job copied; if it fails, its retry goes with the new one (and the new key).
    pub fn renew(&mut self, next: Endpoint) {
        self.app = next.app;
        self.key = next.key;
        self.filters = next.filters;
        for b in self.queue.iter_mut() {
            b.signature = sign_hex(&self.app.secret, &b.body).into();
        }
    }

    /// A reload removed this endpoint: no new event matches it. Batches already sealed are
    /// still delivered (and retried) as before.
    pub fn retire(&mut self) {
        self.filters.clear();
    }

    /// Still configured (a retired endpoint only finishes its queue).
    pub fn is_active(&self) -> bool {
        !self.filters.is_empty()
    }

    pub fn same_target(&self, other: &Endpoint) -> bool {
        self.app.idx == other.app.idx && self.url == other.url
    }

    pub fn matches(&self, ev: &WebhookEvent) -> bool {
        self.filters.iter().any(|f| f.matches(ev))
    }

    /// Adds an event to the open batch. Returns true if the batch is now full.
    pub fn push(&mut self, ev: WebhookEvent, now: Instant, max_events: usize) -> bool {
        if self.open.is_empty() {
            self.opened_at = Some(now);
        }
        self.open.push(ev);
        self.open.len() >= max_events
    }

    /// True if the open batch has waited `window` (or is full, checked by the caller).
    pub fn open_due(&self, now: Instant, window: Duration) -> bool {
        self.opened_at.is_some_and(|t| now >= t + window)
    }

    /// Seals the open batch, if any, into the queue.
    pub fn seal(&mut self, seq: u64, time_ms: u64) -> bool {
        if self.open.is_empty() {
            return false;
        }
        let events = std::mem::take(&mut self.open);
        self.opened_at = None;
        let body = encode_body(time_ms, &events);
        let signature = sign_hex(&self.app.secret, &body);
        self.queue.push_back(Batch {
            seq,
            body: body.into(),
            signature: signature.into(),
            events: events.len() as u64,
            first_attempt: None,
            failures: 0,
            not_before: None,
        });
        true
    }

    /// The earliest time this endpoint needs attention: its open batch's window closing, or
    /// (when `can_start` and nothing is in flight) its head becoming sendable.
    pub fn next_deadline(
        &self,
        now: Instant,
        window: Duration,
        can_start: bool,
    ) -> Option<Instant> {
        let open = self.opened_at.map(|t| t + window);
        let head = match self.queue.front() {
            Some(b) if can_start && !self.in_flight => Some(b.not_before.unwrap_or(now)),
            _ => None,
        };
        match (open, head) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Starts the head's next attempt if it may go now. `retry` tells if it is a retry.
    pub fn start(&mut self, idx: usize, now: Instant) -> Option<(Job, bool)> {
        if self.in_flight {
            return None;
        }
        let head = self.queue.front_mut()?;
        if head.not_before.is_some_and(|t| t > now) {
            return None;
        }
        self.in_flight = true;
        let retry = head.first_attempt.is_some();
        head.first_attempt.get_or_insert(now);
        Some((
            Job {
                endpoint: idx,
                url: self.url.clone(),
                key: self.key.clone(),
                signature: head.signature.clone(),
                body: head.body.clone(),
            },
            retry,
        ))
    }

    /// Records the outcome of the head's request.
    pub fn settle(&mut self, ok: bool, now: Instant, schedule: &Schedule) -> Option<Settled> {
        if !std::mem::take(&mut self.in_flight) {
            return None;
        }
        let head = self.queue.front_mut()?;
        if ok {
            let events = head.events;
            self.queue.pop_front();
            return Some(Settled::Sent { events });
        }
        head.failures += 1;
        let first = head.first_attempt.unwrap_or(now);
        match schedule.next_attempt(first, head.failures, now) {
            Some(at) => {
                head.not_before = Some(at);
                Some(Settled::RetryAt {
                    at,
                    failures: head.failures,
                })
            }
            None => {
                let (events, failures) = (head.events, head.failures);
                self.queue.pop_front();
                Some(Settled::GaveUp { events, failures })
            }
        }
    }

    /// The sequence number of the oldest batch that may be dropped (not in flight).
    pub fn oldest_droppable(&self) -> Option<u64> {
        let skip = usize::from(self.in_flight);
        self.queue.get(skip).map(|b| b.seq)
    }

    /// Drops the oldest batch not in flight; returns its event count.
    pub fn drop_oldest(&mut self) -> Option<u64> {
        let i = usize::from(self.in_flight);
        self.queue.remove(i).map(|b| b.events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AppConfig, WebhookConfig};

    #[test]
    fn sealed_batch_is_signed_with_the_app_secret() {
        let mut cfg = AppConfig::new("3", "278d425bdf160c739803", "7ad3773142a6692b25b8");
        cfg.webhooks.push(WebhookConfig {
            url: "http://127.0.0.1:9/hook".into(),
            event_types: None,
            channel_prefix: None,
        });
        let apps = Apps::new(&[cfg]);
        let mut e = Endpoint::from_apps(&apps).remove(0);
        let t0 = Instant::now();
        let ev = WebhookEvent::ChannelOccupied {
            channel: "test_channel".into(),
        };
        assert!(!e.push(ev, t0, 100));
        assert!(e.seal(0, 1327078148132));
        assert!(!e.seal(1, 1327078148132), "nothing left to seal");
        let (job, retry) = e.start(0, t0).unwrap();
        assert!(!retry);
        assert_eq!(
            &*job.body,
            br#"{"time_ms":1327078148132,"events":[{"name":"channel_occupied","channel":"test_channel"}]}"#
        );
        // Computed independently (Python hmac).
        assert_eq!(
            &*job.signature,
            "709fdb84c03664445f7698120b0edf0acc1ab1c8c6e93a0368c61841d6b998aa"
        );
        assert_eq!(&*job.key, "278d425bdf160c739803");
    }
}
