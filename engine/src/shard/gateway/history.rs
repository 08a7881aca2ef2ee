//! Channel history in a cluster (docs/history.md, "In a cluster"; ADR 0010).
//!
//! The order point of a channel is its owning node's gateway, so its history lives here, in
//! the gateway's own [`ChannelStreams`], beside the copies this node keeps as the
//! *successor* of other nodes' channels (the node that would own them next). For a channel
//! with history, ordering an event is:
//!
//! 1. append it at the next offset (encoded once, with its offset);
//! 2. copy it to the successor (`Replicate`), and wait for its `Replicated`;
//! 3. only then deliver it (every node, this one included) and confirm the publish (200 on
//!    this node, `Published` to the node it came from).
//!
//! So a `kill -9` of the owner loses no event that got a 200, and no subscriber ever saw an
//! event the successor lacks: the successor continues the same epoch with the next offset.
//! Events of one channel wait in one queue, released in order; a recovery answer joins the
//! queue behind them, so it holds every event delivered before it and none after. The
//! successor answers every `Replicate`; one not copied within [`COPY_WAIT`] (the successor
//! died) is delivered unconfirmed (its publish gets no 200).

use super::Gateway;
use crate::channel::event::{Event, Source};
use crate::channel::history::{Entry, Kind};
use crate::channel::stream::{Change, ChannelStreams};
use crate::frame::Frame;
use crate::placement::ShardId;
use crate::shard::history as shard_history;
use crate::shard::msg::{Reply, ShardMsg};
use crate::shard::Shard;
use raptor_cluster::node::{Action, Confirm, Order};
use raptor_cluster::wire::{HistoryMsg, HistoryReply, NodeMsg, WireChange, WireEntry};
use raptor_cluster::NodeId;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long an ordered event waits for the successor's copy before it is delivered anyway
/// (unconfirmed).
mod asks;
mod handover;

pub(super) use asks::Target;

pub(super) const COPY_WAIT: Duration = Duration::from_secs(1);
/// How long this node waits for an owning node's answer to an `Ask`.
const ASK_WAIT: Duration = Duration::from_secs(3);
/// Forwarded publishes waiting for `Published` at most (beyond: answered by their timeout).
const MAX_AWAITING: usize = 65_536;

type Key = (String, String);
/// An HTTP publish waiting for its answer: its shard and request id.
type Ack = (ShardId, u64);

enum Waiting {
    Order {
        ack: u64,
        copied: bool,
        since: Instant,
        order: Order,
        frame: Frame,
        t0: Instant,
    },
    Answer(Target, Vec<Frame>),
}

enum Asked {
    Recover(Target),
    Api { from: ShardId, id: u64 },
}

#[derive(Default)]
pub(super) struct ClusterHistory {
    store: RefCell<ChannelStreams>,
    queues: RefCell<HashMap<Key, VecDeque<Waiting>>>,
    by_ack: RefCell<HashMap<u64, Key>>,
    next_ack: Cell<u64>,
    /// The HTTP publish whose actions are being applied right now.
    here: Cell<Option<(ShardId, u64)>>,
    /// HTTP publishes waiting for their event to be ordered (and, with history, copied),
    /// here or at the owning node, by `origin_seq` (`Action::AwaitPublished`).
    awaiting: RefCell<HashMap<u64, (Ack, Instant)>>,
    asks: RefCell<HashMap<u64, (Asked, Instant)>>,
    next_ask: Cell<u64>,
    /// When the store last expired old events.
    expired_at: Cell<Option<Instant>>,
    /// Recoveries of channels held behind a handoff's fence here (`asks::FencedAsk`).
    fenced_asks: RefCell<Vec<asks::FencedAsk>>,
    /// Publishes whose event was never confirmed (the owning node died or did not
    /// answer): their HTTP request got 503.
    unconfirmed: Cell<u64>,
}

impl ClusterHistory {
    pub(super) fn new(settings: crate::config::HistorySettings) -> ClusterHistory {
        ClusterHistory {
            store: RefCell::new(ChannelStreams::new(settings)),
            ..ClusterHistory::default()
        }
    }

    pub(super) fn figures(&self) -> crate::channel::stream::HistoryFigures {
        self.store.borrow().figures()
    }

    pub(super) fn unconfirmed(&self) -> u64 {
        self.unconfirmed.get()
    }
}

fn entry_kind(kind: Kind) -> u8 {
    match kind {
        Kind::Message => b'm',
        Kind::Edit => b'e',
        Kind::Delete => b'd',
    }
}

fn wire_change(c: Change) -> Option<WireChange> {
    match c {
        Change::Edit { offset, data, .. } => Some(WireChange::Edit {
            offset,
            data: data.to_string(),
        }),
        Change::Delete { offset, .. } => Some(WireChange::Delete { offset }),
        Change::Remove => Some(WireChange::Remove),
        _ => None,
    }
}

impl Gateway {
    /// Publishes entering this node: the HTTP ack to answer once the event is confirmed.
    pub(super) fn publish_here(&self, ack: Option<(ShardId, u64)>) {
        self.history.here.set(ack);
    }

    /// `Action::AwaitPublished`: the publish applied now is answered once its event is
    /// ordered, here (`Confirm::Here`) or at the owning node (`Published`).
    pub(super) fn await_published(&self, origin_seq: u64) {
        if let Some(ack) = self.history.here.take() {
            let mut awaiting = self.history.awaiting.borrow_mut();
            if awaiting.len() < MAX_AWAITING {
                awaiting.insert(origin_seq, (ack, Instant::now()));
            }
        }
    }

    /// `Action::Order` of a channel with history (`rule` matched): append, copy, and
    /// deliver once copied.
    pub(super) fn order_with_history(
        self: &Rc<Self>,
        shard: &Shard,
        order: Order,
        kind: Kind,
        change: Option<Change>,
        t0: Instant,
    ) {
        let Some(a) = shard.apps().by_id(&order.app).cloned() else {
            return;
        };
        let Some(rule) = a.history.rule_for(&order.channel).cloned() else {
            return;
        };
        let channel: Arc<str> = Arc::from(order.channel.as_str());
        let event = Event {
            name: order.event.name.as_str().into(),
            data: Arc::from(order.event.data.as_str()),
            user_id: order.event.user_id.as_deref().map(Arc::from),
            source: Source::Api,
        };
        let frame = shard_history::append(&self.history.store, a.idx, &channel, &rule, event, kind);
        let successor = self.core.borrow().successor_of(&order.app, &order.channel);
        let key = (order.app.clone(), order.channel.clone());
        let ack = self.history.next_ack.get() + 1;
        self.history.next_ack.set(ack);
        let Some(successor) = successor else {
            // Alone: nothing to copy to. Released at once, but behind what the channel's
            // queue still holds (events waiting for a successor that just left).
            let queued = self
                .history
                .queues
                .borrow()
                .get(&key)
                .is_some_and(|q| !q.is_empty());
            if !queued {
                return self.release(shard, order, frame, t0);
            }
            let copied = Waiting::Order {
                ack,
                copied: true,
                since: Instant::now(),
                order,
                frame,
                t0,
            };
            self.history
                .queues
                .borrow_mut()
                .entry(key.clone())
                .or_default()
                .push_back(copied);
            return self.drain(shard, &key, None);
        };
        let entry = {
            let store = self.history.store.borrow();
            store.history(a.idx, &channel).and_then(|h| {
                let e = h.entries().last()?;
                Some((h.epoch().to_string(), wire_entry(e)))
            })
        };
        let Some(entry) = entry else {
            // Not kept (cannot happen: the newest event always stays); deliver it.
            return self.release(shard, order, frame, t0);
        };
        let msg = HistoryMsg::Replicate {
            ack,
            app: order.app.clone(),
            channel: order.channel.clone(),
            epoch: entry.0,
            entry: Some(entry.1),
            change: change.and_then(wire_change),
        };
        self.send_history(successor, msg);
        self.history.by_ack.borrow_mut().insert(ack, key.clone());
        self.history
            .queues
            .borrow_mut()
            .entry(key)
            .or_default()
            .push_back(Waiting::Order {
                ack,
                copied: false,
                since: Instant::now(),
                order,
                frame,
                t0,
            });
    }

    /// Delivers an ordered event (its frame here, its payload elsewhere) and confirms it.
    fn release(self: &Rc<Self>, shard: &Shard, mut order: Order, frame: Frame, t0: Instant) {
        let confirm = order.confirm.take();
        let payload = frame.payload().to_vec();
        let actions = self.core.borrow_mut().ordered(order, payload);
        self.carry_out_encoded(shard, actions, t0, &frame);
        self.confirm(shard, confirm);
    }

    /// An event was ordered and passed on: its publish is answered (200 here, `Published`
    /// to the node it entered).
    pub(super) fn confirm(&self, shard: &Shard, confirm: Option<Confirm>) {
        match confirm {
            Some(Confirm::Here { origin_seq }) => self.published(shard, origin_seq),
            Some(Confirm::To { node, origin_seq }) => {
                self.send_history(node, HistoryMsg::Published { origin_seq })
            }
            None => {}
        }
    }

    fn published(&self, shard: &Shard, origin_seq: u64) {
        let waiting = self.history.awaiting.borrow_mut().remove(&origin_seq);
        if let Some((ack, _)) = waiting {
            shard.ack_published(Some(ack));
        }
    }

    /// Releases what leads a channel's queue: copied events in order, and the answers
    /// queued behind them; `force` also releases events whose copy is overdue.
    fn drain(self: &Rc<Self>, shard: &Shard, key: &Key, now: Option<Instant>) {
        loop {
            let next = {
                let mut queues = self.history.queues.borrow_mut();
                let Some(q) = queues.get_mut(key) else { return };
                let ready = match q.front() {
                    None => {
                        queues.remove(key);
                        return;
                    }
                    Some(Waiting::Answer(..)) => true,
                    Some(Waiting::Order { copied, since, .. }) => {
                        *copied
                            || now.is_some_and(|n| n.saturating_duration_since(*since) >= COPY_WAIT)
                    }
                };
                if !ready {
                    return;
                }
                q.pop_front().expect("front exists")
            };
            match next {
                Waiting::Order {
                    ack,
                    copied,
                    order,
                    frame,
                    t0,
                    ..
                } => {
                    self.history.by_ack.borrow_mut().remove(&ack);
                    if copied {
                        self.release(shard, order, frame, t0);
                    } else {
                        // The successor did not copy it in time (a link that was not up yet,
                        // a slow peer): delivered, not confirmed, and the successor's copy,
                        // which may lack this event, is replaced by the whole history (it
                        // must not continue the epoch with a hole after a failover).
                        tracing::warn!(channel = %order.channel, "history copy not confirmed by the successor in time; delivered without a 200");
                        let successor = self.core.borrow().successor_of(&order.app, &order.channel);
                        if let Some(to) = successor {
                            self.hand_over_channel(shard, &to, &order.app, &order.channel);
                        }
                        let mut order = order;
                        order.confirm = None;
                        self.release(shard, order, frame, t0);
                    }
                }
                Waiting::Answer(target, frames) => self.send_recovery(shard, target, frames),
            }
        }
    }

    /// The gateway's tick: overdue copies are released, unanswered asks dropped (a held
    /// subscription is answered without recovery), stale publish waits forgotten.
    pub(super) fn history_tick(self: &Rc<Self>, shard: &Shard) {
        let now = Instant::now();
        let keys: Vec<Key> = self.history.queues.borrow().keys().cloned().collect();
        for key in keys {
            self.drain(shard, &key, Some(now));
        }
        let late: Vec<u64> = self
            .history
            .asks
            .borrow()
            .iter()
            .filter(|(_, (_, at))| now.saturating_duration_since(*at) >= ASK_WAIT)
            .map(|(&id, _)| id)
            .collect();
        for id in late {
            let asked = self.history.asks.borrow_mut().remove(&id);
            if let Some((Asked::Recover(target), _)) = asked {
                self.send_recovery(shard, target, Vec::new());
            }
        }
        let mut awaiting = self.history.awaiting.borrow_mut();
        let before = awaiting.len();
        awaiting.retain(|_, (_, at)| now.saturating_duration_since(*at) < ASK_WAIT * 2);
        let expired = (before - awaiting.len()) as u64;
        drop(awaiting);
        let h = &self.history;
        h.unconfirmed.set(h.unconfirmed.get() + expired);
        // Expiry walks every stream: once a second, as the shards' sweeper does.
        let due = self
            .history
            .expired_at
            .get()
            .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1));
        if due {
            self.history.expired_at.set(Some(now));
            self.history.store.borrow_mut().expire(now);
        }
    }

    /// Whether an ordered event of a channel with history still waits for its copy.
    /// Of the channels moving to `to` (every channel when `None`: this node leaves).
    pub(super) fn history_waits(&self, to: Option<&NodeId>) -> bool {
        let core = self.core.borrow();
        self.history.queues.borrow().iter().any(|((app, ch), q)| {
            q.iter().any(|w| matches!(w, Waiting::Order { .. }))
                && to.is_none_or(|n| core.owner_of(app, ch) == *n)
        })
    }

    fn send_history(&self, to: NodeId, msg: HistoryMsg) {
        let actions = vec![Action::Send {
            to,
            msg: NodeMsg::History(Box::new(msg)),
        }];
        self.carry_out_plain(actions);
    }

    /// A history message from `from`.
    pub(super) fn on_history(self: &Rc<Self>, shard: &Shard, from: NodeId, msg: HistoryMsg) {
        match msg {
            HistoryMsg::Replicate {
                ack,
                app,
                channel,
                epoch,
                entry,
                change,
            } => {
                self.keep_copy(shard, &app, &channel, &epoch, entry, change);
                self.send_history(from, HistoryMsg::Replicated { ack });
            }
            HistoryMsg::Replicated { ack } => {
                let key = self.history.by_ack.borrow().get(&ack).cloned();
                let Some(key) = key else { return };
                if let Some(q) = self.history.queues.borrow_mut().get_mut(&key) {
                    for w in q.iter_mut() {
                        if let Waiting::Order { ack: a, copied, .. } = w {
                            if *a == ack {
                                *copied = true;
                            }
                        }
                    }
                }
                self.drain(shard, &key, None);
            }
            HistoryMsg::Published { origin_seq } => self.published(shard, origin_seq),
            HistoryMsg::Ask {
                id,
                app,
                channel,
                ask,
            } => self.on_ask(shard, from, id, app, channel, ask),
            HistoryMsg::Reply { id, reply } => {
                let asked = self.history.asks.borrow_mut().remove(&id);
                match (asked, reply) {
                    (Some((Asked::Recover(target), _)), HistoryReply::Frames(payloads)) => {
                        let frames = payloads.iter().map(|p| Frame::text(p)).collect();
                        self.send_recovery(shard, target, frames);
                    }
                    (Some((Asked::Api { from, id }, _)), HistoryReply::Http { status, body }) => {
                        let reply = Reply::History((status, body));
                        shard.mesh.send(from, ShardMsg::Reply { id, reply });
                    }
                    (Some((Asked::Recover(target), _)), _) => {
                        self.send_recovery(shard, target, Vec::new())
                    }
                    _ => {}
                }
            }
            HistoryMsg::Handover {
                app,
                channel,
                epoch,
                entries,
                first,
            } => self.take_handover(shard, &app, &channel, &epoch, entries, first),
        }
    }

    /// Keeps the copy of an event of a channel this node would own next.
    fn keep_copy(
        &self,
        shard: &Shard,
        app: &str,
        channel: &str,
        epoch: &str,
        entry: Option<WireEntry>,
        change: Option<WireChange>,
    ) {
        let Some(a) = shard.apps().by_id(app).cloned() else {
            return;
        };
        if crate::channel::name::validate(channel, shard.limits().max_channel_name_bytes).is_err() {
            return;
        }
        let Some(rule) = a.history.rule_for(channel) else {
            return;
        };
        let channel: Arc<str> = Arc::from(channel);
        let mut store = self.history.store.borrow_mut();
        if let Some(WireChange::Forget) = change {
            return store.forget_channel(a.idx, &channel);
        }
        if let Some(change) = change {
            store.change(a.idx, &channel, |h| {
                if **h.epoch() != *epoch {
                    return;
                }
                let _ = match change {
                    WireChange::Edit { offset, data } => h.edit(offset, Arc::from(data), &channel),
                    WireChange::Delete { offset } => h.delete(offset),
                    WireChange::Remove => {
                        h.clear();
                        Ok(())
                    }
                    WireChange::Forget => Ok(()),
                };
            });
        }
        if let Some(e) = entry {
            let kind = match e.kind {
                b'e' => Kind::Edit,
                b'd' => Kind::Delete,
                _ => Kind::Message,
            };
            let mut entry = Entry {
                offset: e.offset,
                kind,
                frame: Frame::text(b""),
                name: e.name.into(),
                data: Arc::from(e.data),
                user_id: e.user_id.map(Arc::from),
                time_ms: e.time_ms,
                stored: Instant::now(),
                edited: false,
                deleted: false,
            };
            entry.frame = entry.encode(&channel);
            store.keep_copy(
                a.idx,
                &channel,
                rule,
                Arc::from(epoch),
                entry,
                Instant::now(),
            );
        }
    }
}

impl Gateway {
    /// The live view changed: keep only the histories this node may still continue. A
    /// channel's owner keeps its history if it owned the channel before or was its
    /// successor (a failover); its successor keeps its copy if it was the successor or the
    /// owner before. Any other history is stale (another node may have ordered the
    /// channel meanwhile): forgotten, so it never continues an epoch with a hole.
    pub(super) fn review_histories(&self, shard: &Shard, before: &[NodeId]) {
        let core = self.core.borrow();
        // A node that is still meeting its cluster has nothing stale: every history it holds
        // came to it since it started (handovers, copies), while its partial views would
        // wrongly say it followed none of them.
        if !core.settled() {
            return;
        }
        let me = core.me().id.clone();
        let after = core.live_ids().to_vec();
        drop(core);
        let roles = |live: &[NodeId], app: &str, ch: &str| {
            let owner = raptor_cluster::ownership::owner(app, ch, live).cloned();
            let others: Vec<NodeId> = live
                .iter()
                .filter(|n| Some(*n) != owner.as_ref())
                .cloned()
                .collect();
            let successor = raptor_cluster::ownership::owner(app, ch, &others);
            (owner.as_ref() == Some(&me), successor == Some(&me))
        };
        let apps = shard.apps();
        let channels = self.history.store.borrow().history_channels();
        for (app, channel) in channels {
            let Some(a) = apps.list.get(app as usize) else {
                continue;
            };
            let (owned, followed) = roles(before, &a.id, &channel);
            let (owns, follows) = roles(&after, &a.id, &channel);
            let keep = (owns || follows) && (owned || followed);
            if !keep {
                self.history
                    .store
                    .borrow_mut()
                    .forget_channel(app, &channel);
            }
        }
    }
}

fn wire_entry(e: &Entry) -> WireEntry {
    WireEntry {
        offset: e.offset,
        kind: entry_kind(e.kind),
        name: e.name.to_string(),
        data: e.data.to_string(),
        user_id: e.user_id.as_deref().map(str::to_string),
        time_ms: e.time_ms,
    }
}
