//! `NodeCore`'s large events in chunks (engine docs/protocol.md, "Large events in
//! chunks"): the chunks of one event travel to the channel's owning node in one
//! `PublishChunks` and are ordered there in a row, so no other event of the channel comes
//! between them.

use super::{Action, Confirm, NodeCore, Order};
use crate::wire::{Exclude, NodeMsg, WireEvent};
use crate::NodeKey;

impl NodeCore {
    /// The chunks of one large event entered at this node: ordered here one after another
    /// (one [`Action::Order`] each, in a row) if this node owns the channel, sent to the
    /// owning node in one `PublishChunks` otherwise, so no other event of the channel comes
    /// between them either way. `confirm` applies to the last chunk: a channel's events are
    /// copied and delivered in order, so the last one confirmed means all are.
    pub fn publish_chunks(
        &mut self,
        app: &str,
        channel: &str,
        chunks: Vec<WireEvent>,
        exclude: Exclude,
        confirm: bool,
    ) -> Vec<Action> {
        let owner = self.route_of(app, channel);
        self.origin_seq += 1;
        let origin_seq = self.origin_seq;
        if owner == self.me.id {
            let here = confirm.then_some(Confirm::Here { origin_seq });
            let order = order_chunks(app, channel, chunks, exclude, here);
            return self.order_here(app, channel, order, confirm.then_some(origin_seq));
        }
        let mut out = vec![Action::Send {
            to: owner.clone(),
            msg: NodeMsg::PublishChunks {
                confirm,
                app: app.to_owned(),
                channel: channel.to_owned(),
                chunks,
                exclude,
                origin_seq,
            },
        }];
        if confirm {
            out.push(Action::AwaitPublished { origin_seq });
        }
        out
    }

    /// A peer's `PublishChunks`: ordered here even when views disagree on the owner
    /// (counted), like a `Publish`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_publish_chunks(
        &mut self,
        from: &NodeKey,
        confirm: bool,
        app: String,
        channel: String,
        chunks: Vec<WireEvent>,
        exclude: Exclude,
        origin_seq: u64,
    ) -> Vec<Action> {
        let confirm = confirm.then(|| Confirm::To {
            node: from.id.clone(),
            origin_seq,
        });
        let order = order_chunks(&app, &channel, chunks, exclude, confirm);
        self.received_order(from, &app, &channel, order)
    }
}

/// One [`Action::Order`] per chunk, in order, `confirm` on the last only.
fn order_chunks(
    app: &str,
    channel: &str,
    chunks: Vec<WireEvent>,
    exclude: Exclude,
    mut confirm: Option<Confirm>,
) -> Vec<Action> {
    let n = chunks.len();
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, event)| {
            Action::Order(Order {
                app: app.to_owned(),
                channel: channel.to_owned(),
                event,
                exclude,
                // Not cached: a cache channel keeps its last whole event (docs/protocol.md).
                retain: false,
                confirm: if i + 1 == n { confirm.take() } else { None },
            })
        })
        .collect()
}
