//! Cluster mode: a channel's first subscription on this node is answered only once the
//! channel's owning node has taken this node's interest (`InterestAck`), so a client told
//! `subscription_succeeded` misses no event published after it, whichever node the event
//! entered on. Until then the local owner shard holds that subscription and every other
//! one to the channel that arrives meanwhile (usually for one round trip between nodes;
//! at most ~1 s when the owner does not answer, see `raptor_cluster::node`).
//!
//! Held subscriptions are counted by the owner but not yet answered, so their shards have
//! not added them to their local tables: an event delivered meanwhile reaches none of them,
//! and their `Unsubscribe` cannot arrive before the answer (the subscriber's shard undoes a
//! subscription only once it is acknowledged).
//!
//! The bookkeeping (tickets, which subscriptions wait, which to answer) is [`Holds`], which
//! does no I/O and is unit-tested below; the `impl Shard` part announces interest to the
//! gateway and answers the subscriptions it returns.

use super::msg::{GatewayMsg, Join, ShardMsg, SubReq};
use super::Shard;
use crate::app::AppIdx;
use crate::channel::name::ChannelKind;
use crate::frame::Frame;
use crate::placement::ShardId;
use crate::protocol::server as frames;
use crate::socket_id::SocketId;
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// One subscription waiting for the answer.
pub(super) struct Held {
    pub from: ShardId,
    pub req: SubReq,
    pub socket_id: SocketId,
    pub join: Option<Join>,
    /// The position the client asked to recover from.
    pub recover: Option<crate::channel::history::Position>,
}

/// A subscription waiting for its recovery frames: it, its channel, and since when.
pub(super) type Recovering = HashMap<u64, (Held, AppIdx, Arc<str>, Instant)>;

/// What a subscription gets when the owning node did not answer in time (it is
/// unreachable, or the cluster is moving the channel): "not recovered", with no epoch
/// (`""`, which no stream has), so a client never takes silence for a recovery; the app
/// reloads what it shows, as after any "not recovered".
fn unavailable(channel: &str, sub: &Held) -> Vec<Frame> {
    let result = frames::RecoveryResult {
        was_recovering: sub.recover.is_some(),
        recovered: false,
        epoch: "",
        offset: 0,
        replayed: 0,
    };
    vec![frames::recovery(channel, &result)]
}

/// How long a subscription waits for the owning node's recovery frames.
pub(super) const RECOVERY_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// An owned channel of an app.
type Key = (AppIdx, Arc<str>);

/// The held subscriptions of one channel, released by the `ClusterInterestReady` with
/// `ticket`. Bounded by the channel's subscriptions on this node. (`T` is [`Held`] but for
/// the unit tests.)
pub(super) struct Awaiting<T = Held> {
    ticket: u64,
    held: Vec<T>,
}

impl<T> Default for Awaiting<T> {
    fn default() -> Self {
        Awaiting {
            ticket: 0,
            held: Vec::new(),
        }
    }
}

/// What to do with one counted subscription ([`Holds::hold`]).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Hold<T> {
    /// Announce this node's interest in the channel to the gateway under this ticket.
    pub announce: Option<u64>,
    /// Answer the subscription now (else it is held).
    pub answer_now: Option<T>,
}

/// The hold-and-release rules over a shard's table of awaited channels and its last ticket
/// (the `awaiting` and `next_ticket` fields of [`Shard`]).
pub(super) struct Holds<'a, T = Held> {
    awaiting: &'a mut HashMap<Key, Awaiting<T>>,
    next_ticket: &'a Cell<u64>,
}

impl<'a, T> Holds<'a, T> {
    pub(super) fn new(
        awaiting: &'a mut HashMap<Key, Awaiting<T>>,
        next_ticket: &'a Cell<u64>,
    ) -> Holds<'a, T> {
        Holds {
            awaiting,
            next_ticket,
        }
    }

    /// A subscription the owner just counted (`first`: the channel's first one on this
    /// node). The first one is announced under a new ticket and held; any other is held
    /// while the channel awaits a ready, and answered now otherwise.
    pub(super) fn hold(&mut self, key: &Key, first: bool, sub: T) -> Hold<T> {
        let mut announce = None;
        if first {
            let ticket = self.next_ticket.get() + 1;
            self.next_ticket.set(ticket);
            // An entry left by an earlier announcement keeps its subscriptions.
            self.awaiting.entry(key.clone()).or_default().ticket = ticket;
            announce = Some(ticket);
        }
        let answer_now = match self.awaiting.get_mut(key) {
            Some(w) => {
                w.held.push(sub);
                None
            }
            None => Some(sub),
        };
        Hold {
            announce,
            answer_now,
        }
    }

    /// The interest announced under `ticket` is in place: the subscriptions held for it,
    /// in arrival order. A ready for an older ticket (or a channel not awaited) releases
    /// nothing.
    pub(super) fn ready(&mut self, key: &Key, ticket: u64) -> Vec<T> {
        if self.awaiting.get(key).is_none_or(|w| w.ticket != ticket) {
            return Vec::new();
        }
        self.awaiting
            .remove(key)
            .map(|w| w.held)
            .unwrap_or_default()
    }

    /// The channel's last subscription on this node is gone, so no ready will come: every
    /// subscription still held, to answer now. The channel awaits nothing after this.
    pub(super) fn release(&mut self, key: &Key) -> Vec<T> {
        self.awaiting
            .remove(key)
            .map(|w| w.held)
            .unwrap_or_default()
    }
}

impl Shard {
    /// Cluster mode, after the owner counted a subscription: announce the channel's first
    /// one to the gateway, then hold the subscription while that announcement is
    /// unanswered, or answer it now.
    pub(super) fn hold_or_answer(&self, app: AppIdx, channel: &Arc<str>, first: bool, sub: Held) {
        let key = (app, channel.clone());
        let hold =
            Holds::new(&mut self.awaiting.borrow_mut(), &self.next_ticket).hold(&key, first, sub);
        if let Some(ticket) = hold.announce {
            self.to_gateway(GatewayMsg::Interest {
                app,
                channel: channel.clone(),
                on: true,
                ticket,
            });
        }
        if let Some(sub) = hold.answer_now {
            self.answer_clustered(app, channel, sub);
        }
    }

    /// The gateway says the interest announced under `ticket` is in place: answer the
    /// subscriptions held for it. A ready for an older ticket is ignored.
    pub(super) fn interest_ready(&self, app: AppIdx, channel: Arc<str>, ticket: u64) {
        let key = (app, channel);
        let held =
            Holds::new(&mut self.awaiting.borrow_mut(), &self.next_ticket).ready(&key, ticket);
        for sub in held {
            self.answer_clustered(app, &key.1, sub);
        }
    }

    /// The channel's last subscription on this node is gone: no ready will come for it
    /// (the gateway forgets the wait), so anything still held is answered now. (Held
    /// subscriptions cannot be the ones that left; this only keeps a hold from outliving
    /// its channel.)
    pub(super) fn release_held(&self, app: AppIdx, channel: &Arc<str>) {
        let held = Holds::new(&mut self.awaiting.borrow_mut(), &self.next_ticket)
            .release(&(app, channel.clone()));
        for sub in held {
            self.answer_clustered(app, channel, sub);
        }
    }

    /// Answers one counted subscription in cluster mode: a presence one through the
    /// gateway (which knows the cluster-wide members and the member limit), any other with
    /// `subscription_succeeded`. A cache channel's replay is looked up now, so an event that
    /// arrived while the subscription was held is the one replayed.
    ///
    /// A channel with history needs the owning node's `raptor:recovery` (and replay) first:
    /// the subscription waits for it under a ticket ([`Shard::recovered`]); a presence one
    /// gets it through the gateway's answer.
    fn answer_clustered(&self, app: AppIdx, channel: &Arc<str>, sub: Held) {
        let history = self.apps().get(app).history.rule_for(channel).is_some();
        if history && sub.join.is_none() {
            let ticket = self.next_ticket.get() + 1;
            self.next_ticket.set(ticket);
            let from = sub.recover.clone();
            self.recovering
                .borrow_mut()
                .insert(ticket, (sub, app, channel.clone(), Instant::now()));
            return self.to_gateway(GatewayMsg::Recover {
                app,
                channel: channel.clone(),
                from,
                shard: self.id,
                ticket,
            });
        }
        self.answer_clustered_with(app, channel, sub, Vec::new(), history);
    }

    /// The owning node's recovery frames for the subscription held under `ticket`: answer
    /// it now. Every delivery this shard passed on before holds nothing the frames lack;
    /// every later one comes after the answer.
    pub(super) fn recovered(
        &self,
        app: AppIdx,
        channel: Arc<str>,
        ticket: u64,
        frames: Vec<Frame>,
    ) {
        let held = self.recovering.borrow_mut().remove(&ticket);
        if let Some((sub, ..)) = held {
            let frames = if frames.is_empty() {
                unavailable(&channel, &sub)
            } else {
                frames
            };
            self.answer_clustered_with(app, &channel, sub, frames, true);
        }
    }

    /// Subscriptions whose recovery the owning node did not answer within
    /// [`RECOVERY_WAIT`] are answered without it (a plain subscription).
    pub(super) fn expire_recovering(&self, now: Instant) {
        let late: Vec<u64> = self
            .recovering
            .borrow()
            .iter()
            .filter(|(_, (.., at))| now.saturating_duration_since(*at) >= RECOVERY_WAIT)
            .map(|(&t, _)| t)
            .collect();
        for ticket in late {
            let taken = self.recovering.borrow_mut().remove(&ticket);
            if let Some((sub, app, channel, _)) = taken {
                tracing::warn!(%channel, "no recovery answer from the owning node in time");
                let frames = unavailable(&channel, &sub);
                self.answer_clustered_with(app, &channel, sub, frames, true);
            }
        }
    }

    fn answer_clustered_with(
        &self,
        app: AppIdx,
        channel: &Arc<str>,
        sub: Held,
        extra: Vec<Frame>,
        history: bool,
    ) {
        let kind = ChannelKind::of(channel);
        let (cache, cache_miss) = match kind.cache.then(|| self.cache_replay(app, channel)) {
            Some((frame, miss)) => (Some(frame), miss),
            None => (None, false),
        };
        let Some(join) = sub.join else {
            let mut frames = vec![frames::subscription_succeeded(channel)];
            frames.extend(cache);
            frames.extend(extra);
            if cache_miss {
                self.emit_cache_miss(app, channel);
            }
            let msg = ShardMsg::SubscribeAck {
                app,
                channel: channel.clone(),
                req: sub.req,
                ok: true,
                frames,
                user_id: None,
            };
            return self.mesh.send(sub.from, msg);
        };
        self.to_gateway(GatewayMsg::Join {
            app,
            channel: channel.clone(),
            join,
            from: sub.from,
            req: sub.req,
            socket_id: sub.socket_id,
            cache,
            cache_miss,
            recover: history.then_some(sub.recover),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shard's hold state, with subscriptions as numbers.
    #[derive(Default)]
    struct State {
        awaiting: HashMap<Key, Awaiting<u32>>,
        next_ticket: Cell<u64>,
    }

    impl State {
        fn holds(&mut self) -> Holds<'_, u32> {
            Holds::new(&mut self.awaiting, &self.next_ticket)
        }
    }

    /// Nothing to answer.
    const NONE: [u32; 0] = [];

    fn key(app: AppIdx, channel: &str) -> Key {
        (app, Arc::from(channel))
    }

    fn announce_and_hold(ticket: u64) -> Hold<u32> {
        Hold {
            announce: Some(ticket),
            answer_now: None,
        }
    }

    fn held() -> Hold<u32> {
        Hold {
            announce: None,
            answer_now: None,
        }
    }

    fn answer(sub: u32) -> Hold<u32> {
        Hold {
            announce: None,
            answer_now: Some(sub),
        }
    }

    #[test]
    fn the_first_subscription_announces_and_every_one_waits_for_its_ready() {
        let mut s = State::default();
        let c = key(0, "c");
        assert_eq!(s.holds().hold(&c, true, 1), announce_and_hold(1));
        assert_eq!(s.holds().hold(&c, false, 2), held());
        assert_eq!(s.holds().hold(&c, false, 3), held());
        assert_eq!(s.holds().ready(&c, 1), [1, 2, 3], "in arrival order");
        assert!(s.awaiting.is_empty());
        assert_eq!(
            s.holds().hold(&c, false, 4),
            answer(4),
            "the interest is in place"
        );
    }

    #[test]
    fn a_subscription_to_a_channel_not_awaited_is_answered_now() {
        let mut s = State::default();
        assert_eq!(s.holds().hold(&key(0, "c"), false, 7), answer(7));
        assert_eq!(s.next_ticket.get(), 0, "no ticket handed out");
    }

    #[test]
    fn a_ready_for_an_older_ticket_is_ignored() {
        let mut s = State::default();
        let c = key(0, "c");
        assert_eq!(s.holds().hold(&c, true, 1), announce_and_hold(1));
        // The channel emptied (releasing 1) and filled again before ticket 1's ready came.
        assert_eq!(s.holds().release(&c), [1]);
        assert_eq!(s.holds().hold(&c, true, 2), announce_and_hold(2));
        assert_eq!(s.holds().ready(&c, 1), NONE, "the late ready of ticket 1");
        assert_eq!(
            s.holds().hold(&c, false, 3),
            held(),
            "still awaiting ticket 2"
        );
        assert_eq!(s.holds().ready(&c, 2), [2, 3]);
        assert_eq!(s.holds().ready(&c, 2), NONE, "a duplicate ready");
    }

    #[test]
    fn a_new_announcement_keeps_the_subscriptions_already_held() {
        let mut s = State::default();
        let c = key(0, "c");
        s.holds().hold(&c, true, 1);
        assert_eq!(s.holds().hold(&c, true, 2), announce_and_hold(2));
        assert_eq!(s.holds().ready(&c, 1), NONE);
        assert_eq!(s.holds().ready(&c, 2), [1, 2]);
    }

    #[test]
    fn release_answers_everything_held_and_ends_the_wait() {
        let mut s = State::default();
        let c = key(0, "c");
        assert_eq!(s.holds().release(&c), NONE, "nothing awaited");
        s.holds().hold(&c, true, 1);
        s.holds().hold(&c, false, 2);
        assert_eq!(s.holds().release(&c), [1, 2]);
        assert_eq!(s.holds().ready(&c, 1), NONE, "its ready comes too late");
        assert_eq!(s.holds().hold(&c, false, 3), answer(3));
    }

    #[test]
    fn channels_wait_apart_with_tickets_from_one_counter() {
        let mut s = State::default();
        let (a, b, other_app) = (key(0, "a"), key(0, "b"), key(1, "a"));
        assert_eq!(s.holds().hold(&a, true, 1), announce_and_hold(1));
        assert_eq!(s.holds().hold(&b, true, 2), announce_and_hold(2));
        assert_eq!(s.holds().hold(&other_app, true, 3), announce_and_hold(3));
        assert_eq!(
            s.holds().ready(&a, 2),
            NONE,
            "b's ticket does not release a"
        );
        assert_eq!(s.holds().ready(&b, 2), [2]);
        assert_eq!(s.holds().release(&other_app), [3]);
        assert_eq!(s.holds().ready(&a, 1), [1]);
    }
}
