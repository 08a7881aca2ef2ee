//! Wildcard subscriptions on one node (docs/protocol.md "Wildcard subscriptions", ADR
//! 0012). A pattern is a channel named by the pattern, owned and counted like any channel;
//! its owner registers it at every shard (each is the order point of its own channels) when
//! it gets its first subscription, and answers that subscription only once every shard has
//! it, so a subscriber told `subscription_succeeded` misses no event ordered afterwards
//! (ADR 0005). An order point then encodes each event of a matching channel once more for
//! each matching pattern and sends it to the pattern's owner, which fans it out like any
//! event: one FIFO route per (channel, pattern), so each channel's order holds.
//!
//! In a cluster the order point is the owning node's gateway, which keeps its own index
//! (`gateway::patterns`); the owner shards here only count and fan out.

use super::held::Held;
use super::msg::ShardMsg;
use super::Shard;
use crate::app::AppIdx;
use crate::channel::event::Event;
use crate::channel::pattern::{self, Pattern};
use crate::frame::Frame;
use crate::placement::ShardId;
use crate::protocol::server as frames;
use crate::socket_id::SocketId;
use std::sync::Arc;
use std::time::Instant;

/// A pattern's registration, at its owner: the shards that have not confirmed it yet, and
/// the subscriptions waiting for them.
#[derive(Default)]
pub(super) struct Registration {
    /// Which registration of the pattern this is: an ack of an earlier one (the pattern
    /// was withdrawn and registered again meanwhile) does not count for it.
    generation: u64,
    pending: usize,
    held: Vec<Held>,
}

impl Shard {
    /// Owner of pattern `channel`, single node: `sub` to answer now, or `None` when it waits
    /// for the pattern's registration at every shard (started here by its first one).
    pub(super) fn pattern_hold(&self, app: AppIdx, channel: &Arc<str>, sub: Held) -> Option<Held> {
        let key = (app, channel.clone());
        let mut regs = self.pattern_regs.borrow_mut();
        match regs.get_mut(&key) {
            Some(r) if r.pending == 0 => Some(sub),
            Some(r) => {
                r.held.push(sub);
                None
            }
            None => {
                let generation = self.next_ticket.get() + 1;
                self.next_ticket.set(generation);
                regs.insert(
                    key,
                    Registration {
                        generation,
                        pending: self.nr_shards,
                        held: vec![sub],
                    },
                );
                drop(regs);
                self.tell_shards(app, channel, true, generation);
                None
            }
        }
    }

    /// Owner, single node: the pattern's last subscription left; every shard forgets it.
    pub(super) fn pattern_vacated(&self, app: AppIdx, channel: &Arc<str>) {
        let gone = self.owned.borrow().get(app, channel).is_none();
        if gone
            && self
                .pattern_regs
                .borrow_mut()
                .remove(&(app, channel.clone()))
                .is_some()
        {
            self.tell_shards(app, channel, false, 0);
        }
    }

    fn tell_shards(&self, app: AppIdx, pattern: &Arc<str>, on: bool, generation: u64) {
        for s in 0..self.nr_shards {
            let msg = ShardMsg::Pattern {
                app,
                pattern: pattern.clone(),
                on,
                owner: self.id,
                generation,
            };
            self.mesh.send(s, msg);
        }
    }

    /// Every shard: a pattern's owner registers (`on`) or withdraws it.
    pub(super) fn on_pattern(
        &self,
        app: AppIdx,
        pattern: Arc<str>,
        on: bool,
        owner: ShardId,
        generation: u64,
    ) {
        if !on {
            return self.patterns.borrow_mut().remove(app, &pattern);
        }
        // Checked at the edge; `usize::MAX`: the name bound is the edge's to apply.
        if let Ok(p) = Pattern::parse(&pattern, usize::MAX) {
            self.patterns.borrow_mut().add(app, p);
        }
        let ack = ShardMsg::PatternAck {
            app,
            pattern,
            generation,
        };
        self.mesh.send(owner, ack);
    }

    /// Owner: one shard has the pattern; once all have, the held subscriptions are answered.
    pub(super) fn on_pattern_ack(&self, app: AppIdx, pattern: Arc<str>, generation: u64) {
        let ready = {
            let mut regs = self.pattern_regs.borrow_mut();
            let Some(r) = regs.get_mut(&(app, pattern.clone())) else {
                return;
            };
            if r.generation != generation {
                return;
            }
            r.pending = r.pending.saturating_sub(1);
            if r.pending > 0 {
                return;
            }
            std::mem::take(&mut r.held)
        };
        for sub in ready {
            self.answer_subscribe(
                app,
                &pattern,
                sub.from,
                sub.req,
                sub.join.as_ref(),
                sub.recover.as_ref(),
            );
        }
    }

    /// A single node's order point: the event of `channel` encoded once for each pattern
    /// with subscribers that matches it. Empty (one `/` search, at most one hash lookup)
    /// when none does.
    pub(super) fn pattern_frames(
        &self,
        app: AppIdx,
        channel: &str,
        event: &Event,
    ) -> Vec<(Arc<str>, Frame)> {
        let index = self.patterns.borrow();
        index
            .matching(app, channel)
            .map(|p| {
                let f = frames::pattern_event(
                    &event.name,
                    p,
                    channel,
                    &event.data,
                    event.user_id.as_deref(),
                );
                (p.clone(), f)
            })
            .collect()
    }

    /// Sends each pattern its frame, to be fanned out by the pattern's owner.
    pub(super) fn to_patterns(
        &self,
        app: AppIdx,
        frames: Vec<(Arc<str>, Frame)>,
        exclude: Option<SocketId>,
        t0: Instant,
    ) {
        for (pattern, frame) in frames {
            let owner = self.owner_of(app, &pattern);
            let msg = ShardMsg::PatternEvent {
                app,
                pattern,
                frame,
                exclude,
                t0,
            };
            self.mesh.send(owner, msg);
        }
    }
}

/// Whether `channel` names a pattern (for the owner's webhooks, which patterns do not fire).
pub(super) fn is_pattern(channel: &str) -> bool {
    pattern::is_pattern(channel)
}
