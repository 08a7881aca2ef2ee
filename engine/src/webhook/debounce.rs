//! The 3-second debounce of `channel_vacated` and `member_removed`.
//!
//! A client that drops and comes straight back (a page reload, a flaky network) should not
//! make the app see "vacated, occupied". So a `channel_vacated` is held for the delay; a
//! `channel_occupied` of the same `(app, channel)` within it cancels **both**. Likewise a
//! `member_removed` is cancelled, with the `member_added` that follows it, by the same
//! `(app, channel, user_id)`. A held event nobody cancels is released when its delay is up.
//!
//! Pure state machine: time comes in as an argument, so tests drive it with any clock.
//!
//! **Invariant:** at most `max_held` events are held; past it the oldest is released early
//! (sent, not lost).

use super::WebhookEvent;
use crate::app::AppIdx;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// What would cancel a held event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum HeldKey {
    Channel(AppIdx, String),
    Member(AppIdx, String, String),
}

impl HeldKey {
    /// The key of a holdable event (`hold`), or of the event that cancels one.
    fn of(app: AppIdx, ev: &WebhookEvent) -> Option<(HeldKey, bool)> {
        match ev {
            WebhookEvent::ChannelVacated { channel } => {
                Some((HeldKey::Channel(app, channel.clone()), true))
            }
            WebhookEvent::ChannelOccupied { channel } => {
                Some((HeldKey::Channel(app, channel.clone()), false))
            }
            WebhookEvent::MemberRemoved { channel, user_id } => {
                Some((HeldKey::Member(app, channel.clone(), user_id.clone()), true))
            }
            WebhookEvent::MemberAdded { channel, user_id } => Some((
                HeldKey::Member(app, channel.clone(), user_id.clone()),
                false,
            )),
            _ => None,
        }
    }
}

/// What [`Debouncer::offer`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offer {
    /// Not subject to the debounce (or nothing to cancel): it is in `out`.
    Passed,
    /// Held until its delay is up.
    Held,
    /// It cancelled a held event; neither is sent.
    Cancelled,
}

pub(crate) struct Debouncer {
    delay: Duration,
    max_held: usize,
    /// Held events by key, with the generation of their entry in `order`.
    held: HashMap<HeldKey, (u64, AppIdx, WebhookEvent)>,
    /// Release times in arrival order (the delay is constant, so also in time order). Entries
    /// whose generation no longer matches `held` were cancelled and are skipped.
    order: VecDeque<(Instant, u64, HeldKey)>,
    next_gen: u64,
}

impl Debouncer {
    pub fn new(delay: Duration, max_held: usize) -> Debouncer {
        Debouncer {
            delay,
            max_held: max_held.max(1),
            held: HashMap::new(),
            order: VecDeque::new(),
            next_gen: 0,
        }
    }

    /// Takes one event. Events to send now (the event itself if it passes, or held ones
    /// released early for room) are pushed to `out`.
    pub fn offer(
        &mut self,
        app: AppIdx,
        ev: WebhookEvent,
        now: Instant,
        out: &mut Vec<(AppIdx, WebhookEvent)>,
    ) -> Offer {
        let Some((key, hold)) = HeldKey::of(app, &ev) else {
            out.push((app, ev));
            return Offer::Passed;
        };
        if !hold {
            if self.held.remove(&key).is_some() {
                return Offer::Cancelled;
            }
            out.push((app, ev));
            return Offer::Passed;
        }
        if self.held.contains_key(&key) {
            // A second "vacated" with no "occupied" between: the one held already says it.
            return Offer::Held;
        }
        self.next_gen += 1;
        let gen = self.next_gen;
        self.order.push_back((now + self.delay, gen, key.clone()));
        self.held.insert(key, (gen, app, ev));
        while self.held.len() > self.max_held {
            self.pop_front(out);
        }
        if self.order.len() > 2 * self.max_held {
            // Many cancelled entries: keep `order` bounded too.
            let held = &self.held;
            self.order
                .retain(|(_, g, k)| held.get(k).is_some_and(|(hg, ..)| hg == g));
        }
        Offer::Held
    }

    /// Releases every held event whose delay is up.
    pub fn release_due(&mut self, now: Instant, out: &mut Vec<(AppIdx, WebhookEvent)>) {
        while self.order.front().is_some_and(|(at, ..)| *at <= now) {
            self.pop_front(out);
        }
    }

    /// When the next held event is due. May be a cancelled one: waking for nothing is harmless.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.order.front().map(|(at, ..)| *at)
    }

    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.held.len()
    }

    fn pop_front(&mut self, out: &mut Vec<(AppIdx, WebhookEvent)>) {
        let Some((_, gen, key)) = self.order.pop_front() else {
            return;
        };
        if self.held.get(&key).is_some_and(|(g, ..)| *g == gen) {
            if let Some((_, app, ev)) = self.held.remove(&key) {
                out.push((app, ev));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_secs(3);

    fn vacated(c: &str) -> WebhookEvent {
        WebhookEvent::ChannelVacated { channel: c.into() }
    }
    fn occupied(c: &str) -> WebhookEvent {
        WebhookEvent::ChannelOccupied { channel: c.into() }
    }
    fn removed(c: &str, u: &str) -> WebhookEvent {
        WebhookEvent::MemberRemoved {
            channel: c.into(),
            user_id: u.into(),
        }
    }
    fn added(c: &str, u: &str) -> WebhookEvent {
        WebhookEvent::MemberAdded {
            channel: c.into(),
            user_id: u.into(),
        }
    }

    #[test]
    fn held_event_is_released_after_the_delay() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(D, 100);
        let mut out = Vec::new();
        assert_eq!(d.offer(0, vacated("c"), t0, &mut out), Offer::Held);
        assert!(out.is_empty());
        assert_eq!(d.next_deadline(), Some(t0 + D));
        d.release_due(t0 + D - Duration::from_millis(1), &mut out);
        assert!(out.is_empty(), "not before 3 s");
        d.release_due(t0 + D, &mut out);
        assert_eq!(out, vec![(0, vacated("c"))]);
        assert_eq!(d.held(), 0);
        assert_eq!(d.next_deadline(), None);
    }

    #[test]
    fn coming_back_within_the_delay_cancels_both() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(D, 100);
        let mut out = Vec::new();
        d.offer(0, vacated("c"), t0, &mut out);
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(d.offer(0, occupied("c"), t1, &mut out), Offer::Cancelled);
        d.release_due(t0 + D * 2, &mut out);
        assert!(out.is_empty(), "{out:?}");

        // Another app, another channel: not cancelled.
        d.offer(0, vacated("c"), t1, &mut out);
        assert_eq!(d.offer(1, occupied("c"), t1, &mut out), Offer::Passed);
        assert_eq!(d.offer(0, occupied("d"), t1, &mut out), Offer::Passed);
        d.release_due(t1 + D, &mut out);
        assert_eq!(
            out,
            vec![(1, occupied("c")), (0, occupied("d")), (0, vacated("c"))]
        );
    }

    #[test]
    fn occupied_after_the_delay_is_sent() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(D, 100);
        let mut out = Vec::new();
        d.offer(0, vacated("c"), t0, &mut out);
        // The release runs first (the dispatcher releases before it reads new events).
        d.release_due(t0 + D, &mut out);
        assert_eq!(d.offer(0, occupied("c"), t0 + D, &mut out), Offer::Passed);
        assert_eq!(out, vec![(0, vacated("c")), (0, occupied("c"))]);
    }

    #[test]
    fn members_are_keyed_by_user() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(D, 100);
        let mut out = Vec::new();
        d.offer(0, removed("presence-c", "u1"), t0, &mut out);
        d.offer(0, removed("presence-c", "u2"), t0, &mut out);
        assert_eq!(
            d.offer(0, added("presence-c", "u1"), t0, &mut out),
            Offer::Cancelled
        );
        assert_eq!(
            d.offer(0, added("presence-c", "u3"), t0, &mut out),
            Offer::Passed
        );
        // A channel event does not cancel a member event of the same channel.
        assert_eq!(
            d.offer(0, occupied("presence-c"), t0, &mut out),
            Offer::Passed
        );
        d.release_due(t0 + D, &mut out);
        assert_eq!(
            out,
            vec![
                (0, added("presence-c", "u3")),
                (0, occupied("presence-c")),
                (0, removed("presence-c", "u2")),
            ]
        );
    }

    #[test]
    fn other_events_pass_straight_through() {
        let mut d = Debouncer::new(D, 100);
        let mut out = Vec::new();
        let ev = WebhookEvent::CacheMiss {
            channel: "cache-c".into(),
        };
        assert_eq!(
            d.offer(0, ev.clone(), Instant::now(), &mut out),
            Offer::Passed
        );
        assert_eq!(out, vec![(0, ev)]);
    }

    #[test]
    fn duplicate_vacated_is_held_once() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(D, 100);
        let mut out = Vec::new();
        d.offer(0, vacated("c"), t0, &mut out);
        d.offer(0, vacated("c"), t0 + Duration::from_secs(1), &mut out);
        d.release_due(t0 + D * 3, &mut out);
        assert_eq!(out, vec![(0, vacated("c"))]);
    }

    #[test]
    fn overflow_releases_the_oldest_early_and_order_stays_bounded() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(D, 2);
        let mut out = Vec::new();
        d.offer(0, vacated("a"), t0, &mut out);
        d.offer(0, vacated("b"), t0, &mut out);
        assert!(out.is_empty());
        d.offer(0, vacated("c"), t0, &mut out);
        assert_eq!(out, vec![(0, vacated("a"))], "oldest released, not lost");
        assert_eq!(d.held(), 2);
        out.clear();

        // Churn: cancelled entries do not pile up.
        for i in 0..100 {
            let c = format!("x{i}");
            d.offer(0, vacated(&c), t0, &mut out);
            d.offer(0, occupied(&c), t0, &mut out);
        }
        assert!(d.order.len() <= 5, "{}", d.order.len());
    }
}
