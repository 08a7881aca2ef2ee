//! The `raptor-webhooks` thread: debounce, routing to endpoints, batching, retries, and
//! handing requests to the delivery threads.
//!
//! [`Core`] is the whole decision logic as a state machine driven by `(input, now)`, with no
//! I/O and no clock of its own; [`run`] is the thin loop around it that reads the hand-over
//! queue, tells the time, and passes jobs to idle delivery threads.

use super::debounce::{Debouncer, Offer};
use super::delivery::{self, Outcome};
use super::endpoint::{Endpoint, Job, Settled};
use super::retry::Schedule;
use super::stats::Counters;
use super::{
    Input, WebhookEvent, BATCH_MAX_EVENTS, BATCH_WINDOW, DEBOUNCE, DELIVERY_THREADS,
    MAX_HELD_EVENTS, MAX_PENDING_BATCHES,
};
use crate::app::AppIdx;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The numbers that shape the dispatcher; [`Tuning::DEFAULT`] in production, shorter in tests.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tuning {
    pub debounce: Duration,
    pub window: Duration,
    pub max_events: usize,
    pub max_pending: usize,
    pub max_held: usize,
    pub schedule: Schedule,
}

impl Tuning {
    pub const DEFAULT: Tuning = Tuning {
        debounce: DEBOUNCE,
        window: BATCH_WINDOW,
        max_events: BATCH_MAX_EVENTS,
        max_pending: MAX_PENDING_BATCHES,
        max_held: MAX_HELD_EVENTS,
        schedule: Schedule::PUSHER,
    };
}

/// Messages drained per wake-up before the batches are looked at again.
const DRAIN_BUDGET: usize = 1024;

/// The dispatcher's state and decisions.
pub(crate) struct Core {
    endpoints: Vec<Endpoint>,
    /// Endpoint indices per app.
    by_app: Vec<Vec<usize>>,
    debounce: Debouncer,
    tuning: Tuning,
    counters: Arc<Counters>,
    /// Sealed batches not yet sent, given up or dropped (all endpoints).
    pending: usize,
    next_seq: u64,
    /// Where the next search for a sendable batch starts, so endpoints take turns.
    next_endpoint: usize,
    /// Reused buffer for events leaving the debounce.
    scratch: Vec<(AppIdx, WebhookEvent)>,
}

impl Core {
    pub fn new(endpoints: Vec<Endpoint>, tuning: Tuning, counters: Arc<Counters>) -> Core {
        let by_app = by_app(&endpoints);
        Core {
            endpoints,
            by_app,
            debounce: Debouncer::new(tuning.debounce, tuning.max_held),
            tuning,
            counters,
            pending: 0,
            next_seq: 0,
            next_endpoint: 0,
            scratch: Vec::new(),
        }
    }

    /// A reload: the endpoints of `apps` replace the configured ones. An endpoint configured
    /// before and now keeps its queue (re-signed with the app's current secret); one no
    /// longer configured finishes its queue and takes no new event; a new one starts empty.
    /// Endpoints keep their index (a request in flight names it), so the list only grows,
    /// by each `(app, url)` first configured by a reload.
    pub fn reload(&mut self, apps: &crate::app::Apps) {
        for e in &mut self.endpoints {
            e.retire();
        }
        for next in Endpoint::from_apps(apps) {
            match self.endpoints.iter_mut().find(|e| e.same_target(&next)) {
                Some(e) => e.renew(next),
                None => self.endpoints.push(next),
            }
        }
        self.by_app = by_app(&self.endpoints);
    }

    /// Endpoints, retired ones included.
    pub fn endpoints(&self) -> usize {
        self.endpoints.len()
    }

    /// One event from a shard. `time_ms` is the wall clock, for a batch sealed now.
    pub fn on_event(&mut self, app: AppIdx, ev: WebhookEvent, now: Instant, time_ms: u64) {
        let mut out = std::mem::take(&mut self.scratch);
        if self.debounce.offer(app, ev, now, &mut out) == Offer::Cancelled {
            Counters::add(&self.counters.debounced, 2);
        }
        for (app, ev) in out.drain(..) {
            self.route(app, ev, now, time_ms);
        }
        self.scratch = out;
    }

    /// Time passes: held events whose delay is up are routed, batches whose window closed
    /// are sealed.
    pub fn tick(&mut self, now: Instant, time_ms: u64) {
        let mut out = std::mem::take(&mut self.scratch);
        self.debounce.release_due(now, &mut out);
        for (app, ev) in out.drain(..) {
            self.route(app, ev, now, time_ms);
        }
        self.scratch = out;
        for i in 0..self.endpoints.len() {
            if self.endpoints[i].open_due(now, self.tuning.window) {
                self.seal(i, time_ms);
            }
        }
    }

    /// A request to start now, if some endpoint has one due; endpoints take turns.
    pub fn next_job(&mut self, now: Instant) -> Option<Job> {
        let n = self.endpoints.len();
        for k in 0..n {
            let i = (self.next_endpoint + k) % n;
            if let Some((job, retry)) = self.endpoints[i].start(i, now) {
                if retry {
                    Counters::add(&self.counters.retried, 1);
                }
                self.next_endpoint = (i + 1) % n;
                return Some(job);
            }
        }
        None
    }

    /// A request of `endpoint` ended.
    pub fn on_done(&mut self, endpoint: usize, outcome: &Outcome, now: Instant) {
        let Some(e) = self.endpoints.get_mut(endpoint) else {
            return;
        };
        let Some(settled) = e.settle(outcome.is_success(), now, &self.tuning.schedule) else {
            return;
        };
        let (app, url) = (&e.app.id, &e.url);
        match settled {
            Settled::Sent { events } => {
                self.pending -= 1;
                Counters::add(&self.counters.sent, events);
                tracing::debug!(app = %app, url = %url, events, "webhook sent");
            }
            Settled::RetryAt { at, failures } => {
                let retry_in_ms = at.saturating_duration_since(now).as_millis() as u64;
                if failures == 1 {
                    tracing::warn!(app = %app, url = %url, outcome = %outcome, retry_in_ms, "webhook delivery failed, will retry");
                } else {
                    tracing::debug!(app = %app, url = %url, outcome = %outcome, failures, retry_in_ms, "webhook delivery failed again");
                }
            }
            Settled::GaveUp { events, failures } => {
                self.pending -= 1;
                Counters::add(&self.counters.failed, events);
                tracing::warn!(app = %app, url = %url, outcome = %outcome, attempts = failures, events, "webhook delivery failed, giving up");
            }
        }
    }

    /// When [`Core::tick`] or [`Core::next_job`] next has something to do, if ever without
    /// new input. `can_start`: a delivery thread is idle.
    pub fn next_deadline(&self, now: Instant, can_start: bool) -> Option<Instant> {
        let window = self.tuning.window;
        self.endpoints
            .iter()
            .filter_map(|e| e.next_deadline(now, window, can_start))
            .chain(self.debounce.next_deadline())
            .min()
    }

    fn route(&mut self, app: AppIdx, ev: WebhookEvent, now: Instant, time_ms: u64) {
        let Some(targets) = self.by_app.get(app as usize) else {
            return;
        };
        let targets: Vec<usize> = targets
            .iter()
            .copied()
            .filter(|&i| self.endpoints[i].matches(&ev))
            .collect();
        for i in targets {
            if self.endpoints[i].push(ev.clone(), now, self.tuning.max_events) {
                self.seal(i, time_ms);
            }
        }
    }

    fn seal(&mut self, i: usize, time_ms: u64) {
        if !self.endpoints[i].seal(self.next_seq, time_ms) {
            return;
        }
        self.next_seq += 1;
        self.pending += 1;
        while self.pending > self.tuning.max_pending {
            let oldest = self
                .endpoints
                .iter()
                .enumerate()
                .filter_map(|(j, e)| e.oldest_droppable().map(|seq| (seq, j)))
                .min();
            let Some((_, j)) = oldest else { break };
            let events = self.endpoints[j].drop_oldest().unwrap_or(0);
            self.pending -= 1;
            let n = Counters::add(&self.counters.dropped, events);
            tracing::warn!(
                app = %self.endpoints[j].app.id,
                url = %self.endpoints[j].url,
                events,
                dropped_total = n,
                max_pending = self.tuning.max_pending,
                "too many webhook batches waiting, oldest dropped"
            );
        }
    }
}

/// Endpoint indices per app, active endpoints only.
fn by_app(endpoints: &[Endpoint]) -> Vec<Vec<usize>> {
    let mut by_app: Vec<Vec<usize>> = Vec::new();
    for (i, e) in endpoints.iter().enumerate().filter(|(_, e)| e.is_active()) {
        let app = e.app.idx as usize;
        if by_app.len() <= app {
            by_app.resize_with(app + 1, Vec::new);
        }
        by_app[app].push(i);
    }
    by_app
}

/// The delivery threads: one per endpoint up to [`DELIVERY_THREADS`], started as endpoints
/// appear (at start, or when a reload adds them).
struct Workers {
    jobs: Vec<SyncSender<Job>>,
    /// Where finished requests are reported (the dispatcher's own queue).
    done: SyncSender<Input>,
    roots: ureq::tls::RootCerts,
}

impl Workers {
    /// Starts threads until there are `min(endpoints, DELIVERY_THREADS)`; returns the ids
    /// of those started. A thread that cannot start is logged (the others carry the load).
    fn grow(&mut self, endpoints: usize) -> Vec<usize> {
        let mut started = Vec::new();
        while self.jobs.len() < DELIVERY_THREADS.min(endpoints) {
            let id = self.jobs.len();
            // Capacity 1: a job is only sent to an idle thread, so this never blocks.
            let (job_tx, job_rx) = mpsc::sync_channel::<Job>(1);
            let (done, roots) = (self.done.clone(), self.roots.clone());
            let thread = std::thread::Builder::new()
                .name(format!("raptor-wh-http{id}"))
                .spawn(move || delivery::run(id, job_rx, done, roots));
            match thread {
                Ok(_) => {
                    self.jobs.push(job_tx);
                    started.push(id);
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot start a webhook delivery thread");
                    break;
                }
            }
        }
        started
    }
}

/// Starts the dispatcher thread (and the delivery threads its endpoints need). A thread
/// that cannot start is logged; without the dispatcher, `rx` is dropped and every later
/// `emit` counts as dropped.
pub(crate) fn spawn(
    endpoints: Vec<Endpoint>,
    rx: Receiver<Input>,
    tx: SyncSender<Input>,
    counters: Arc<Counters>,
    roots: ureq::tls::RootCerts,
) {
    let core = Core::new(endpoints, Tuning::DEFAULT, counters);
    let workers = Workers {
        jobs: Vec::new(),
        done: tx,
        roots,
    };
    let started = std::thread::Builder::new()
        .name("raptor-webhooks".into())
        .spawn(move || run(core, rx, workers));
    if let Err(e) = started {
        tracing::error!(error = %e, "cannot start the webhook thread; webhooks are disabled");
    }
}

/// The dispatcher loop: wait for input or the next deadline, handle, hand out jobs.
fn run(mut core: Core, rx: Receiver<Input>, mut workers: Workers) {
    let mut idle: Vec<usize> = workers.grow(core.endpoints());
    idle.reverse();
    loop {
        let now = Instant::now();
        let first = match core.next_deadline(now, !idle.is_empty()) {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(at) => rx.recv_timeout(at.saturating_duration_since(now)),
        };
        let mut next = match first {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut budget = DRAIN_BUDGET;
        while let Some(msg) = next {
            match msg {
                Input::Event { app, ev } => {
                    core.on_event(app, ev, Instant::now(), crate::stats::unix_ms())
                }
                Input::Done {
                    worker,
                    endpoint,
                    outcome,
                } => {
                    idle.push(worker);
                    core.on_done(endpoint, &outcome, Instant::now());
                }
                Input::Reload(apps) => {
                    core.reload(&apps);
                    idle.extend(workers.grow(core.endpoints()));
                }
                Input::Shutdown => return,
            }
            budget -= 1;
            next = if budget > 0 { rx.try_recv().ok() } else { None };
        }
        let now = Instant::now();
        core.tick(now, crate::stats::unix_ms());
        while let Some(&w) = idle.last() {
            let Some(job) = core.next_job(now) else { break };
            idle.pop();
            let endpoint = job.endpoint;
            if workers.jobs[w].send(job).is_err() {
                // The thread is gone (it cannot be, short of a bug): fail the attempt, which
                // schedules a retry on another thread.
                core.on_done(
                    endpoint,
                    &Outcome::Error("delivery thread gone".into()),
                    now,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::Apps;
    use crate::config::{AppConfig, WebhookConfig};
    use crate::signature::verify_hex;

    const T0_MS: u64 = 1_700_000_000_000;

    /// `(url, event_types, channel_prefix)`.
    type Hook<'a> = (&'a str, Option<&'a [&'a str]>, Option<&'a str>);

    fn apps(hooks: &[Hook]) -> Apps {
        let mut a = AppConfig::new("7", "key", "secret");
        a.webhooks = hooks
            .iter()
            .map(|(url, types, prefix)| WebhookConfig {
                url: url.to_string(),
                event_types: types.map(|t| t.iter().map(|s| s.to_string()).collect()),
                channel_prefix: prefix.map(str::to_string),
            })
            .collect();
        Apps::new(&[a, AppConfig::new("8", "other", "s2")])
    }

    fn core(apps: &Apps, tuning: Tuning) -> (Core, Arc<Counters>) {
        let counters = Arc::new(Counters::default());
        let c = Core::new(Endpoint::from_apps(apps), tuning, counters.clone());
        (c, counters)
    }

    fn occupied(c: &str) -> WebhookEvent {
        WebhookEvent::ChannelOccupied { channel: c.into() }
    }
    fn vacated(c: &str) -> WebhookEvent {
        WebhookEvent::ChannelVacated { channel: c.into() }
    }

    fn body(job: &Job) -> &str {
        std::str::from_utf8(&job.body).unwrap()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn events_within_the_window_share_one_signed_request() {
        let apps = apps(&[("http://a/", None, None)]);
        let (mut c, _) = core(&apps, Tuning::DEFAULT);
        let t0 = Instant::now();
        c.on_event(0, occupied("c1"), t0, T0_MS);
        c.on_event(0, occupied("c2"), t0 + ms(10), T0_MS + 10);
        assert_eq!(c.next_deadline(t0, true), Some(t0 + ms(50)));
        c.tick(t0 + ms(49), T0_MS + 49);
        assert!(c.next_job(t0 + ms(49)).is_none(), "window still open");
        c.tick(t0 + ms(50), T0_MS + 50);
        let job = c.next_job(t0 + ms(50)).expect("a job");
        assert_eq!(
            body(&job),
            r#"{"time_ms":1700000000050,"events":[{"name":"channel_occupied","channel":"c1"},{"name":"channel_occupied","channel":"c2"}]}"#
        );
        assert_eq!(&*job.url, "http://a/");
        assert_eq!(&*job.key, "key");
        assert!(verify_hex("secret", &job.body, &job.signature));
        assert!(
            c.next_job(t0 + ms(50)).is_none(),
            "one in flight per endpoint"
        );
        // Events of an app without webhooks go nowhere.
        c.on_event(1, occupied("c3"), t0, T0_MS);
        c.tick(t0 + ms(200), T0_MS);
        assert!(c.next_job(t0 + ms(200)).is_none());
    }

    #[test]
    fn a_full_batch_goes_at_once() {
        let apps = apps(&[("http://a/", None, None)]);
        let (mut c, _) = core(&apps, Tuning::DEFAULT);
        let t0 = Instant::now();
        for i in 0..BATCH_MAX_EVENTS + 1 {
            c.on_event(0, occupied(&format!("c{i}")), t0, T0_MS);
        }
        let job = c.next_job(t0).expect("full batch sealed without waiting");
        assert_eq!(
            body(&job).matches("channel_occupied").count(),
            BATCH_MAX_EVENTS
        );
        c.on_done(0, &Outcome::Status(200), t0);
        c.tick(t0 + ms(50), T0_MS);
        let job = c.next_job(t0 + ms(50)).expect("the 101st");
        assert_eq!(body(&job).matches("channel_occupied").count(), 1);
    }

    #[test]
    fn endpoints_filter_and_dedupe_by_url() {
        let apps = apps(&[
            ("http://a/", Some(&["channel_vacated"]), None),
            ("http://a/", Some(&["channel_occupied"]), Some("private-")),
            ("http://b/", Some(&["cache_miss"]), None),
        ]);
        let (mut c, _) = core(&apps, Tuning::DEFAULT);
        assert_eq!(c.endpoints.len(), 2, "same url, one endpoint");
        let t0 = Instant::now();
        c.on_event(0, occupied("public"), t0, T0_MS);
        c.on_event(0, occupied("private-x"), t0, T0_MS);
        c.tick(t0 + ms(50), T0_MS);
        let job = c.next_job(t0 + ms(50)).unwrap();
        assert_eq!(job.endpoint, 0);
        assert_eq!(
            body(&job),
            r#"{"time_ms":1700000000000,"events":[{"name":"channel_occupied","channel":"private-x"}]}"#
        );
        assert!(c.next_job(t0 + ms(50)).is_none(), "b wants none of these");
    }

    #[test]
    fn failures_are_retried_with_backoff_in_order_then_sent() {
        let apps = apps(&[("http://a/", None, None)]);
        let (mut c, counters) = core(&apps, Tuning::DEFAULT);
        let t0 = Instant::now();
        c.on_event(0, occupied("first"), t0, T0_MS);
        c.tick(t0 + ms(50), T0_MS);
        let job1 = c.next_job(t0 + ms(50)).unwrap();
        c.on_event(0, occupied("second"), t0 + ms(60), T0_MS);
        c.tick(t0 + ms(110), T0_MS);
        assert!(c.next_job(t0 + ms(110)).is_none(), "first in flight");

        let t1 = t0 + ms(200);
        c.on_done(0, &Outcome::Status(500), t1);
        assert_eq!(c.next_deadline(t1, true), Some(t1 + ms(1000)));
        assert!(
            c.next_job(t1 + ms(999)).is_none(),
            "backoff, and second waits behind"
        );
        let retry = c.next_job(t1 + ms(1000)).unwrap();
        assert_eq!(retry.body, job1.body, "same bytes on every attempt");
        assert_eq!(retry.signature, job1.signature);

        let t2 = t1 + ms(1100);
        c.on_done(0, &Outcome::Error("connection refused".into()), t2);
        assert!(c.next_job(t2 + ms(1999)).is_none());
        let retry2 = c.next_job(t2 + ms(2000)).unwrap();
        assert_eq!(retry2.body, job1.body);
        c.on_done(0, &Outcome::Status(204), t2 + ms(2100));

        let second = c.next_job(t2 + ms(2100)).unwrap();
        assert!(body(&second).contains("second"));
        c.on_done(0, &Outcome::Status(200), t2 + ms(2200));
        let s = counters.snapshot();
        assert_eq!((s.sent, s.retried, s.failed, s.dropped), (2, 2, 0, 0));
        assert_eq!(c.pending, 0);
    }

    #[test]
    fn gives_up_after_five_minutes() {
        let apps = apps(&[("http://a/", None, None)]);
        let (mut c, counters) = core(&apps, Tuning::DEFAULT);
        let t0 = Instant::now();
        c.on_event(0, occupied("c"), t0, T0_MS);
        c.on_event(0, occupied("d"), t0, T0_MS);
        c.tick(t0 + ms(50), T0_MS);
        let mut now = t0 + ms(50);
        let mut attempts = 0;
        while let Some(_job) = c.next_job(now) {
            attempts += 1;
            c.on_done(0, &Outcome::Status(503), now);
            match c.next_deadline(now, true) {
                Some(at) => now = at,
                None => break,
            }
        }
        assert_eq!(attempts, 10, "0, 1, 3, 7, 15, 31, 63, 123, 183, 243 s");
        assert!(now - t0 <= Duration::from_secs(300));
        let s = counters.snapshot();
        assert_eq!((s.failed, s.retried, s.sent), (2, 9, 0));
        assert_eq!(c.pending, 0);
    }

    #[test]
    fn too_many_waiting_batches_drop_the_oldest_not_in_flight() {
        let apps = apps(&[("http://a/", None, None)]);
        let tuning = Tuning {
            max_pending: 2,
            ..Tuning::DEFAULT
        };
        let (mut c, counters) = core(&apps, tuning);
        let t0 = Instant::now();
        let mut now = t0;
        for name in ["b0", "b1", "b2", "b3"] {
            c.on_event(0, occupied(name), now, T0_MS);
            now += ms(50);
            c.tick(now, T0_MS);
            if name == "b0" {
                let job = c.next_job(now).unwrap();
                assert!(body(&job).contains("b0"));
            }
        }
        assert_eq!(counters.snapshot().dropped, 2, "b1 and b2");
        c.on_done(0, &Outcome::Status(200), now);
        let job = c.next_job(now).unwrap();
        assert!(body(&job).contains("b3"), "{}", body(&job));
        c.on_done(0, &Outcome::Status(200), now);
        assert_eq!(counters.snapshot().sent, 2);
        assert_eq!(c.pending, 0);
    }

    #[test]
    fn debounce_runs_before_batching() {
        let apps = apps(&[("http://a/", None, None)]);
        let (mut c, counters) = core(&apps, Tuning::DEFAULT);
        let t0 = Instant::now();
        c.on_event(0, vacated("gone"), t0, T0_MS);
        c.on_event(0, vacated("back"), t0, T0_MS);
        c.on_event(0, occupied("back"), t0 + ms(2900), T0_MS);
        assert_eq!(counters.snapshot().debounced, 2);
        c.tick(t0 + ms(2999), T0_MS);
        assert!(c.next_job(t0 + ms(2999)).is_none());
        assert_eq!(c.next_deadline(t0 + ms(2999), true), Some(t0 + DEBOUNCE));
        c.tick(t0 + DEBOUNCE, T0_MS + 3000);
        c.tick(t0 + DEBOUNCE + ms(50), T0_MS + 3050);
        let job = c.next_job(t0 + DEBOUNCE + ms(50)).unwrap();
        assert_eq!(
            body(&job),
            r#"{"time_ms":1700000003050,"events":[{"name":"channel_vacated","channel":"gone"}]}"#
        );
    }

    #[test]
    fn no_busy_wait_without_an_idle_thread() {
        let apps = apps(&[("http://a/", None, None), ("http://b/", None, None)]);
        let (mut c, _) = core(&apps, Tuning::DEFAULT);
        let t0 = Instant::now();
        c.on_event(0, occupied("c"), t0, T0_MS);
        c.tick(t0 + ms(50), T0_MS);
        assert_eq!(c.next_deadline(t0 + ms(50), true), Some(t0 + ms(50)));
        assert_eq!(c.next_deadline(t0 + ms(50), false), None);
        let a = c.next_job(t0 + ms(50)).unwrap();
        let b = c.next_job(t0 + ms(50)).unwrap();
        assert_ne!(a.endpoint, b.endpoint, "both endpoints in flight at once");
        assert_eq!(c.next_deadline(t0 + ms(50), true), None);
    }

    /// A reload re-signs what waits with the rotated secret (not the request in flight),
    /// lets a removed endpoint finish its queue without taking new events, and routes to a
    /// new endpoint at once.
    #[test]
    fn reload_resigns_waiting_batches_and_retires_removed_endpoints() {
        let v1 = apps(&[("http://a/", None, None)]);
        let (mut c, _) = core(&v1, Tuning::DEFAULT);
        let t0 = Instant::now();
        c.on_event(0, occupied("c1"), t0, T0_MS);
        c.tick(t0 + ms(50), T0_MS);
        let first = c.next_job(t0 + ms(50)).expect("first batch in flight");
        c.on_event(0, occupied("c2"), t0 + ms(60), T0_MS);
        c.tick(t0 + ms(110), T0_MS);

        let mut cfg = AppConfig::new("7", "key", "rotated");
        cfg.webhooks = vec![WebhookConfig {
            url: "http://b/".into(),
            event_types: None,
            channel_prefix: None,
        }];
        let v2 = v1.reloaded(&[cfg, AppConfig::new("8", "other", "s2")]).0;
        // `a` is gone from the config: it keeps its queue (re-signed), takes nothing new.
        let mut same_url = AppConfig::new("7", "key", "rotated");
        same_url.webhooks = vec![WebhookConfig {
            url: "http://a/".into(),
            event_types: None,
            channel_prefix: None,
        }];
        let v2_same = v1
            .reloaded(&[same_url, AppConfig::new("8", "other", "s2")])
            .0;
        c.reload(&v2_same);
        assert!(verify_hex("secret", &first.body, &first.signature));
        c.on_done(0, &Outcome::Status(200), t0 + ms(120));
        let second = c.next_job(t0 + ms(120)).expect("the waiting batch");
        assert!(body(&second).contains("c2"));
        assert!(verify_hex("rotated", &second.body, &second.signature));
        c.on_done(0, &Outcome::Status(200), t0 + ms(130));

        c.reload(&v2);
        assert_eq!(c.endpoints(), 2);
        c.on_event(0, occupied("c3"), t0 + ms(200), T0_MS);
        c.tick(t0 + ms(250), T0_MS);
        let third = c.next_job(t0 + ms(250)).expect("to the new endpoint");
        assert_eq!((&*third.url, third.endpoint), ("http://b/", 1));
        assert!(verify_hex("rotated", &third.body, &third.signature));
        assert!(
            c.next_job(t0 + ms(250)).is_none(),
            "nothing for the retired one"
        );
    }
}
