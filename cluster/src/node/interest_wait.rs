//! `NodeCore`'s awaited interests: a first local subscriber is answered only once the
//! channel's owner has this node's interest (`InterestAck`), the rule "Ready before
//! `subscription_succeeded`" in the module documentation of `node`.

use super::{Action, NodeCore, INTEREST_ACK_TICKS};
use crate::wire::NodeMsg;
use crate::{NodeId, NodeKey};

/// A first local subscription waiting for its owner's `InterestAck`.
#[derive(Clone, Debug)]
pub(super) struct AwaitedInterest {
    /// The node the `Interest` went to last (a re-announce to a new owner moves it).
    owner: NodeId,
    ticket: u64,
    ticks: u32,
}

impl NodeCore {
    /// Tells the channel's owner, or takes the interest here when this node owns it. An
    /// awaited interest goes with its ticket (and now waits for this owner), or is ready
    /// at once when the owner is this node.
    pub(super) fn announce_interest(
        &mut self,
        app: &str,
        channel: &str,
        on: bool,
        out: &mut Vec<Action>,
    ) {
        let owner = self.owner_of(app, channel);
        let key = (app.to_owned(), channel.to_owned());
        if owner == self.me.id {
            self.table.set(&self.me.clone(), app, channel, on);
            if let Some(w) = self.awaiting.remove(&key) {
                out.push(Action::InterestReady {
                    app: key.0,
                    channel: key.1,
                    ticket: w.ticket,
                });
            }
            return;
        }
        let ack = match self.awaiting.get_mut(&key).filter(|_| on) {
            // The deadline still counts from the first announcement: a link or a view
            // that keeps flapping must not hold the subscribers for ever.
            Some(w) => {
                w.owner = owner.clone();
                w.ticket
            }
            None => 0,
        };
        out.push(Action::Send {
            to: owner,
            msg: NodeMsg::Interest {
                app: key.0,
                channel: key.1,
                on,
                ack,
            },
        });
    }

    /// The first (`on`) or last local subscriber of a channel, announced without waiting
    /// (see [`NodeCore::await_interest`] for the waiting kind).
    pub fn set_interest(&mut self, app: &str, channel: &str, on: bool) -> Vec<Action> {
        if !on {
            self.awaiting.remove(&(app.to_owned(), channel.to_owned()));
        }
        if !self.local_interest.set(app, channel, on) {
            return Vec::new();
        }
        let mut out = Vec::new();
        self.announce_interest(app, channel, on, &mut out);
        self.refresh_occupancy(app, channel, &mut out);
        out.push(Action::Gossip(self.local_interest.take_gossip_changes()));
        out
    }

    /// The first local subscriber of a channel, held by the caller until
    /// [`Action::InterestReady`] with `ticket` (module rules, "Ready before
    /// `subscription_succeeded`"). The caller picks tickets, unique per channel, so a
    /// ready that crossed a later unsubscribe and resubscribe is told apart.
    pub fn await_interest(&mut self, app: &str, channel: &str, ticket: u64) -> Vec<Action> {
        let key = (app.to_owned(), channel.to_owned());
        if self.local_interest.contains(app, channel) {
            // Already announced (the engine's owner shard never does this: its `on` and
            // `off` alternate). Mirror what that shard does with a second first-subscriber
            // announcement: wait under the new ticket, or for nothing when the
            // interest is no longer awaited.
            return match self.awaiting.get_mut(&key) {
                Some(w) => {
                    w.ticket = ticket;
                    // The ack in flight carries the old ticket: ask again.
                    let mut out = Vec::new();
                    self.announce_interest(app, channel, true, &mut out);
                    out
                }
                None => vec![Action::InterestReady {
                    app: key.0,
                    channel: key.1,
                    ticket,
                }],
            };
        }
        self.awaiting.insert(
            key,
            AwaitedInterest {
                owner: self.me.id.clone(),
                ticket,
                ticks: 0,
            },
        );
        self.set_interest(app, channel, true)
    }

    /// The awaited interests' part of [`NodeCore::tick`].
    pub(super) fn tick_interest(&mut self, out: &mut Vec<Action>) {
        let mut again = Vec::new();
        self.awaiting.retain(|(app, channel), w| {
            w.ticks += 1;
            if w.ticks < INTEREST_ACK_TICKS {
                again.push((app.clone(), channel.clone()));
                return true;
            }
            self.counters.interest_ack_timeouts += 1;
            out.push(Action::InterestReady {
                app: app.clone(),
                channel: channel.clone(),
                ticket: w.ticket,
            });
            false
        });
        for (app, channel) in again {
            self.announce_interest(&app, &channel, true, out);
        }
    }

    /// Owner side: a peer has (or no longer has) subscribers of a channel.
    pub(super) fn on_interest(
        &mut self,
        from: &NodeKey,
        app: String,
        channel: String,
        on: bool,
        ack: u64,
    ) -> Vec<Action> {
        self.table.set(from, &app, &channel, on);
        let mut out = Vec::new();
        self.refresh_occupancy(&app, &channel, &mut out);
        // Acked only when this node will deliver to the sender: it owns the channel
        // in its view and holds the sender live (`fanout` skips others). Otherwise
        // the sender asks again on its next tick, or gives up after its deadline.
        if on && ack != 0 && self.live.contains(from) && self.owns(&app, &channel) {
            // Taken: every `Deliver` ordered from now on follows this on the link.
            out.push(Action::Send {
                to: from.id.clone(),
                msg: NodeMsg::InterestAck { app, channel, ack },
            });
        }
        out
    }

    /// The owner's answer to an awaited interest.
    pub(super) fn on_interest_ack(
        &mut self,
        from: &NodeKey,
        app: String,
        channel: String,
        ack: u64,
    ) -> Vec<Action> {
        let key = (app, channel);
        let answers = self
            .awaiting
            .get(&key)
            .is_some_and(|w| w.owner == from.id && w.ticket == ack);
        if !answers {
            // An ack of an earlier ticket or owner: the current one is still due.
            return Vec::new();
        }
        self.awaiting.remove(&key);
        vec![Action::InterestReady {
            app: key.0,
            channel: key.1,
            ticket: ack,
        }]
    }
}
