//! A history channel's handover (docs/cluster.md "Handoff", ADR 0014). On a join, the node
//! that owned the channel sends its whole history to the node that takes it, just before the
//! handoff's `Released` on the same link, so the new owner continues the same epoch with the
//! next offset and a client that reconnects anywhere recovers across the move. (On a leave
//! the new owner is the successor, which already has a copy of every event.) And whenever
//! the view gives a channel this node owns another successor, the new successor gets the
//! whole history too, not only the events from the next one on: the owner may leave next.

use super::{wire_entry, Gateway};
use crate::shard::Shard;
use raptor_cluster::ownership::owner;
use raptor_cluster::wire::{HistoryMsg, WireEntry};
use raptor_cluster::NodeId;
use std::sync::Arc;

/// Bytes of events per `Handover` (well under the 1 MiB frame bound, and a link queue
/// holds thousands of frames).
const CHUNK_BYTES: usize = 256 * 1024;

impl Gateway {
    /// The histories of the channels this node owned before `to` joined and `to` owns now,
    /// to `to`, in chunks.
    pub(in crate::shard::gateway) fn hand_over_histories(&self, shard: &Shard, to: &NodeId) {
        let core = self.core.borrow();
        let me = core.me().id.clone();
        let live = core.live_ids().to_vec();
        drop(core);
        let before: Vec<NodeId> = live.iter().filter(|n| *n != to).cloned().collect();
        let apps = shard.apps();
        let mut out = Vec::new();
        let store = self.history.store.borrow();
        for (app, channel) in store.history_channels() {
            let Some(a) = apps.list.get(app as usize) else {
                continue;
            };
            let moves = owner(&a.id, &channel, &live) == Some(to)
                && owner(&a.id, &channel, &before) == Some(&me);
            let Some(h) = store.history(app, &channel).filter(|_| moves) else {
                continue;
            };
            out.extend(chunks(&a.id, &channel, h));
        }
        drop(store);
        for msg in out {
            self.send_history(to.clone(), msg);
        }
    }

    /// The live view changed from `before`: the channels this node owns whose successor
    /// changed send their history to the new successor (ahead of the next `Replicate`).
    pub(in crate::shard::gateway) fn hand_over_to_successors(
        &self,
        shard: &Shard,
        before: &[NodeId],
    ) {
        let me = self.core.borrow().me().id.clone();
        self.send_to_successors(shard, |app, ch, now| {
            let others: Vec<NodeId> = before.iter().filter(|n| **n != me).cloned().collect();
            owner(app, ch, &others) != Some(now)
        });
    }

    /// A link to `peer` came up: it gets the histories of the channels this node owns that it
    /// is the successor of (what was sent while the link was down was lost).
    pub(in crate::shard::gateway) fn hand_over_to_linked(&self, shard: &Shard, peer: &NodeId) {
        self.send_to_successors(shard, |_, _, now| now == peer);
    }

    /// The histories of the channels this node owns whose successor `pick` chooses, to it.
    fn send_to_successors(&self, shard: &Shard, pick: impl Fn(&str, &str, &NodeId) -> bool) {
        let core = self.core.borrow();
        let me = core.me().id.clone();
        let live = core.live_ids().to_vec();
        drop(core);
        let others: Vec<NodeId> = live.iter().filter(|n| **n != me).cloned().collect();
        let apps = shard.apps();
        let store = self.history.store.borrow();
        let mut out = Vec::new();
        for (app, channel) in store.history_channels() {
            let Some(a) = apps.list.get(app as usize) else {
                continue;
            };
            if owner(&a.id, &channel, &live) != Some(&me) {
                continue;
            }
            let Some(to) = owner(&a.id, &channel, &others) else {
                continue;
            };
            if !pick(&a.id, &channel, to) {
                continue;
            }
            if let Some(h) = store.history(app, &channel) {
                out.extend(
                    chunks(&a.id, &channel, h)
                        .into_iter()
                        .map(|m| (to.clone(), m)),
                );
            }
        }
        drop(store);
        for (to, msg) in out {
            self.send_history(to, msg);
        }
    }

    /// One channel's whole history to `to` (its successor, whose copy may have a hole).
    pub(in crate::shard::gateway) fn hand_over_channel(
        &self,
        shard: &Shard,
        to: &NodeId,
        app: &str,
        channel: &str,
    ) {
        let Some(a) = shard.apps().by_id(app).cloned() else {
            return;
        };
        let msgs = match self.history.store.borrow().history(a.idx, channel) {
            Some(h) => chunks(app, channel, h),
            None => return,
        };
        for msg in msgs {
            self.send_history(to.clone(), msg);
        }
    }

    /// A `Handover` from the channel's old owner: kept as this node's history of it.
    pub(super) fn take_handover(
        &self,
        shard: &Shard,
        app: &str,
        channel: &str,
        epoch: &str,
        entries: Vec<WireEntry>,
        first: bool,
    ) {
        if first {
            if let Some(a) = shard.apps().by_id(app) {
                let name: Arc<str> = Arc::from(channel);
                self.history.store.borrow_mut().forget_channel(a.idx, &name);
            }
        }
        for e in entries {
            self.keep_copy(shard, app, channel, epoch, Some(e), None);
        }
    }
}

/// A history as `Handover`s of at most [`CHUNK_BYTES`], oldest first; at least one.
fn chunks(app: &str, channel: &str, h: &crate::channel::history::History) -> Vec<HistoryMsg> {
    let epoch = h.epoch().to_string();
    let mut out = Vec::new();
    let mut chunk: Vec<WireEntry> = Vec::new();
    let (mut bytes, mut first) = (0, true);
    for e in h.entries() {
        bytes += e.name.len() + e.data.len() + 64;
        chunk.push(wire_entry(e));
        if bytes >= CHUNK_BYTES {
            let entries = std::mem::take(&mut chunk);
            out.push(handover(app, channel, &epoch, entries, first));
            (bytes, first) = (0, false);
        }
    }
    if !chunk.is_empty() || first {
        out.push(handover(app, channel, &epoch, chunk, first));
    }
    out
}

fn handover(
    app: &str,
    channel: &str,
    epoch: &str,
    entries: Vec<WireEntry>,
    first: bool,
) -> HistoryMsg {
    HistoryMsg::Handover {
        app: app.to_owned(),
        channel: channel.to_owned(),
        epoch: epoch.to_owned(),
        entries,
        first,
    }
}
