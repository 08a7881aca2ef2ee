//! `NodeCore`'s publishes: where an event entering this node goes (the rule "Routing" in the
//! module documentation of `node`), and the owner's fanout of an event it ordered.

use super::{Action, Confirm, NodeCore, Order};
use crate::ownership::owner;
use crate::wire::{Exclude, NodeMsg, WireEvent};
use crate::NodeId;

impl NodeCore {
    /// Where a publish entering this node goes: the owning node, or, once this node is
    /// leaving, the node that owns the channel without it (the handoff's new owner).
    pub(super) fn route_of(&self, app: &str, channel: &str) -> NodeId {
        if !self.handoff.leaving || self.live_ids.len() < 2 {
            return self.owner_of(app, channel);
        }
        let others: Vec<NodeId> = self
            .live_ids
            .iter()
            .filter(|n| **n != self.me.id)
            .cloned()
            .collect();
        owner(app, channel, &others)
            .cloned()
            .unwrap_or_else(|| self.me.id.clone())
    }

    /// An event entered at this node: ordered here if this node owns the channel
    /// ([`Action::Order`]), sent to its owning node otherwise.
    pub fn publish(
        &mut self,
        app: &str,
        channel: &str,
        event: WireEvent,
        exclude: Exclude,
        retain: bool,
        confirm: bool,
    ) -> Vec<Action> {
        let owner = self.route_of(app, channel);
        self.origin_seq += 1;
        let origin_seq = self.origin_seq;
        if owner == self.me.id {
            let order = vec![Action::Order(Order {
                app: app.to_owned(),
                channel: channel.to_owned(),
                event,
                exclude,
                retain,
                confirm: confirm.then_some(Confirm::Here { origin_seq }),
            })];
            return self.order_here(app, channel, order, confirm.then_some(origin_seq));
        }
        let mut out = vec![Action::Send {
            to: owner.clone(),
            msg: NodeMsg::Publish {
                app: app.to_owned(),
                channel: channel.to_owned(),
                event,
                exclude,
                retain,
                confirm,
                origin_seq,
            },
        }];
        if confirm {
            out.push(Action::AwaitPublished { origin_seq });
        }
        out
    }

    /// Orders that entered this node and are ordered here (behind a fence, if one applies);
    /// with `awaited`, the publish's wait is registered first, as the order may confirm at
    /// once when carried out.
    pub(super) fn order_here(
        &mut self,
        app: &str,
        channel: &str,
        order: Vec<Action>,
        awaited: Option<u64>,
    ) -> Vec<Action> {
        let mut out: Vec<Action> = awaited
            .map(|origin_seq| Action::AwaitPublished { origin_seq })
            .into_iter()
            .collect();
        out.extend(self.fenced(app, channel, order));
        out
    }

    /// Owner side, for an event this node ordered ([`Action::Order`]) and the engine
    /// encoded as `payload`: [`NodeCore::fanout`], keeping the event's data when the channel
    /// retains it.
    pub fn ordered(&mut self, order: Order, payload: Vec<u8>) -> Vec<Action> {
        let retained = order.retain.then_some(order.event.data);
        let (app, channel) = (&order.app, &order.channel);
        self.fanout(app, channel, payload, order.exclude, false, retained)
    }

    /// Owner side: one `Deliver` per interested peer, and local delivery if we have
    /// subscribers. The order of calls is the channel's order.
    ///
    /// A cache channel's event (`cache_data`) goes to every live node and to the local
    /// owner whether or not they have subscribers: each node keeps its own copy of the last
    /// event, so a later subscriber on any node gets the replay without asking the owner
    /// (and the copies outlive the owner).
    pub fn fanout(
        &mut self,
        app: &str,
        channel: &str,
        payload: Vec<u8>,
        exclude: Exclude,
        privileged_only: bool,
        cache_data: Option<String>,
    ) -> Vec<Action> {
        let targets: Vec<NodeId> = if cache_data.is_some() {
            self.live_ids.clone()
        } else {
            self.table
                .interested(app, channel)
                .into_iter()
                .filter(|n| self.live.contains(n))
                .map(|n| n.id)
                .collect()
        };
        let mut out = Vec::new();
        for to in targets {
            if to == self.me.id {
                continue;
            }
            out.push(Action::Send {
                to,
                msg: NodeMsg::Deliver {
                    app: app.to_owned(),
                    channel: channel.to_owned(),
                    payload: payload.clone(),
                    exclude,
                    privileged_only,
                    cache_data: cache_data.clone(),
                },
            });
        }
        if cache_data.is_some() || self.local_interest.contains(app, channel) {
            out.push(Action::DeliverLocal {
                app: app.to_owned(),
                channel: channel.to_owned(),
                payload,
                exclude,
                privileged_only,
                cache_data,
            });
        }
        out
    }
}
