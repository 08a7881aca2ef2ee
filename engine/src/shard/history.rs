//! What the owner shard does for channels with history (docs/history.md): it gives each of
//! their events the next offset as it orders it, tells a new subscriber its position and
//! replays what it missed (`raptor:recovery`), and answers the history API (read, remove,
//! edit, delete). The decisions are in `channel::history` (sans-IO, unit-tested); this is
//! the shell that encodes and sends.

use super::msg::{GatewayMsg, Query, Reply};
use super::Shard;
use crate::app::AppIdx;
use crate::channel::event::Event;
use crate::channel::history::{ChangeError, Entry, Kind, Position};
use crate::channel::stream::{Change, ChannelStreams};
use crate::config::HistoryRule;
use crate::frame::Frame;
use crate::protocol::server::{self as frames, RecoveryResult};
use crate::shard::ask::AskError;
use crate::stats::ShardStats;
use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;

/// A history API request, for the channel's owner shard.
#[derive(Debug)]
pub enum HistoryOp {
    /// Events after `since` (of `epoch`, when given), at most `limit` (none: the position
    /// only), oldest or newest first.
    Read {
        since: Option<u64>,
        epoch: Option<String>,
        limit: Option<usize>,
        newest_first: bool,
    },
    /// Drop every stored event, keep the position.
    Remove,
    /// Replace the data of the message at `offset`.
    Edit { offset: u64, data: Arc<str> },
    /// Delete the message at `offset`.
    Delete { offset: u64 },
}

/// One stored event as the history API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HistoryEvent {
    pub offset: u64,
    pub event: String,
    pub data: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Publish time, ms since the Unix epoch.
    pub time_ms: u64,
    /// A later `raptor:message_edit` changed its data.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub edited: bool,
}

impl HistoryEvent {
    fn of(e: &Entry) -> HistoryEvent {
        HistoryEvent {
            offset: e.offset,
            event: e.name.to_string(),
            data: e.data.to_string(),
            user_id: e.user_id.as_deref().map(str::to_string),
            time_ms: e.time_ms,
            edited: e.edited,
        }
    }
}

/// The answer to a [`HistoryOp`]: the channel's position after it, and the events read.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HistoryAnswer {
    pub epoch: String,
    pub offset: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<HistoryEvent>>,
}

/// Why a history request was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// No `[[apps.history]]` rule matches the channel: 404.
    #[error("channel has no history (no [[apps.history]] rule matches it)")]
    NoHistory,
    /// `since` names another epoch: 409 (the caller's position is not continuous).
    #[error("epoch mismatch: the channel's history is epoch {0}")]
    Epoch(String),
    /// An edit or delete could not apply: 404 (not found) or 409.
    #[error("{0}")]
    Change(#[from] ChangeError),
}

/// A history answer as the HTTP API sends it: status and JSON body (the same on the node
/// that asked and on the owning node that answered).
pub fn http_answer(r: Result<HistoryAnswer, HistoryError>) -> (u16, Vec<u8>) {
    match r {
        Ok(a) => (200, simd_json::to_vec(&a).expect("in-memory serialization")),
        Err(e) => {
            let status = match e {
                HistoryError::NoHistory | HistoryError::Change(ChangeError::NotFound) => 404,
                _ => 409,
            };
            #[derive(serde::Serialize)]
            struct E {
                error: String,
            }
            let body = E {
                error: e.to_string(),
            };
            (
                status,
                simd_json::to_vec(&body).expect("in-memory serialization"),
            )
        }
    }
}

/// Appends `event` to `channel`'s history in `streams` at the next offset and returns its
/// frame (with the offset). The one place an event of a channel with history is encoded.
pub(crate) fn append(
    streams: &RefCell<ChannelStreams>,
    app: AppIdx,
    channel: &Arc<str>,
    rule: &HistoryRule,
    event: Event,
    kind: Kind,
) -> Frame {
    let now = Instant::now();
    streams
        .borrow_mut()
        .append_history(app, channel, rule, now, |offset| {
            event.into_entry(channel, kind, offset, now)
        })
}

/// What a subscriber of a channel with history gets after `subscription_succeeded`:
/// `raptor:recovery` with its position, then, when it asked to recover from `from` and
/// can, every event it missed (all of them or none).
/// How much one replay may hold: half a connection's queue (`outbox_max_frames`,
/// `outbox_max_bytes`), so the replay never cuts the connection it is for, and at most
/// [`MAX_REPLAY_BYTES`] (a cluster answer travels in one node message).
pub(crate) fn replay_caps(limits: &crate::config::Limits) -> (usize, usize) {
    (
        limits.outbox_max_frames / 2,
        (limits.outbox_max_bytes / 2).min(MAX_REPLAY_BYTES),
    )
}

/// The largest replay in bytes, whatever the queue bounds: one node message is at most
/// 1 MiB, and a replay crosses as one.
pub(crate) const MAX_REPLAY_BYTES: usize = 768 << 10;

pub(crate) fn recovery(
    streams: &RefCell<ChannelStreams>,
    stats: &ShardStats,
    rule: &HistoryRule,
    (max_frames, max_bytes): (usize, usize),
    app: AppIdx,
    channel: &Arc<str>,
    from: Option<&Position>,
) -> Vec<Frame> {
    let mut streams = streams.borrow_mut();
    let top = streams.position(app, channel, rule, Instant::now());
    let history = streams.history(app, channel).expect("position made it");
    let (recovered, replay) = match from {
        Some(from) => {
            let max = rule.recover_max.min(max_frames);
            let r = history.recover(from, max, max_bytes);
            stats.note_recovery(r.recovered);
            (r.recovered, r.frames)
        }
        None => (false, Vec::new()),
    };
    let result = RecoveryResult {
        was_recovering: from.is_some(),
        recovered,
        epoch: &top.epoch,
        offset: match from {
            Some(f) if recovered => f.offset,
            _ => top.offset,
        },
        replayed: replay.len(),
    };
    let mut out = Vec::with_capacity(1 + replay.len());
    out.push(frames::recovery(channel, &result));
    out.extend(replay);
    out
}

/// Runs a history API request on `streams` (the owner shard's on one node, the owning
/// node's gateway's in a cluster). An edit or delete changes the stored message here and
/// hands its event, with the change, to `order`, which orders it like any event (so it
/// takes its own offset and reaches subscribers and, in a cluster, the successor's copy).
pub(crate) fn run_op(
    streams: &RefCell<ChannelStreams>,
    rule: &HistoryRule,
    app: AppIdx,
    channel: &Arc<str>,
    op: HistoryOp,
    order: impl FnOnce(Event, Kind, Change),
) -> Result<HistoryAnswer, HistoryError> {
    let now = Instant::now();
    let top = streams.borrow_mut().position(app, channel, rule, now);
    let answer = |events| {
        let p = streams.borrow_mut().position(app, channel, rule, now);
        HistoryAnswer {
            epoch: p.epoch.to_string(),
            offset: p.offset,
            events,
        }
    };
    match op {
        HistoryOp::Read {
            since,
            epoch,
            limit,
            newest_first,
        } => {
            if epoch.as_deref().is_some_and(|e| *e != *top.epoch) {
                return Err(HistoryError::Epoch(top.epoch.to_string()));
            }
            let events = limit.map(|limit| {
                let streams = streams.borrow();
                let h = streams.history(app, channel).expect("position made it");
                h.read(since, limit.min(streams.max_read()), newest_first)
                    .into_iter()
                    .map(HistoryEvent::of)
                    .collect()
            });
            Ok(answer(events))
        }
        HistoryOp::Remove => {
            let mut s = streams.borrow_mut();
            s.change(app, channel, |h| h.clear());
            s.note(app, channel, Change::Remove);
            drop(s);
            Ok(answer(None))
        }
        HistoryOp::Edit { offset, data } => {
            let mut s = streams.borrow_mut();
            let name = s
                .change(app, channel, |h| {
                    let name = h.changeable(offset)?;
                    h.edit(offset, data.clone(), channel).map(|_| name)
                })
                .expect("position made it")?;
            let change = Change::Edit {
                epoch: top.epoch.clone(),
                offset,
                data: data.clone(),
            };
            s.note(app, channel, change.clone());
            drop(s);
            order(Event::edit(offset, &name, &data), Kind::Edit, change);
            Ok(answer(None))
        }
        HistoryOp::Delete { offset } => {
            let mut s = streams.borrow_mut();
            let name = s
                .change(app, channel, |h| {
                    let name = h.changeable(offset)?;
                    h.delete(offset).map(|_| name)
                })
                .expect("position made it")?;
            let change = Change::Delete {
                epoch: top.epoch.clone(),
                offset,
            };
            s.note(app, channel, change.clone());
            drop(s);
            order(Event::delete(offset, &name), Kind::Delete, change);
            Ok(answer(None))
        }
    }
}

impl Shard {
    /// The frame of `event` ordered now on `channel` by this owner shard (a single node):
    /// with history, the event takes the channel's next offset and is stored; without, it
    /// is simply encoded.
    pub(super) fn encode_ordered(
        &self,
        app: AppIdx,
        channel: &Arc<str>,
        event: Event,
        kind: Kind,
    ) -> Frame {
        let apps = self.apps();
        match apps.get(app).history.rule_for(channel) {
            None => event.encode(channel),
            Some(rule) => {
                let frame = append(&self.streams, app, channel, rule, event, kind);
                self.mark_log_if_dirty();
                frame
            }
        }
    }

    /// Single node: appends a history channel's `raptor:recovery` and replay to `out`.
    pub(super) fn recovery_frames(
        &self,
        app: AppIdx,
        channel: &Arc<str>,
        from: Option<&Position>,
        out: &mut Vec<Frame>,
    ) {
        let apps = self.apps();
        if let Some(rule) = apps.get(app).history.rule_for(channel) {
            let caps = replay_caps(&self.limits());
            out.extend(recovery(
                &self.streams,
                &self.stats,
                rule,
                caps,
                app,
                channel,
                from,
            ));
        }
    }

    /// Answers [`Query::History`] (a single node's owner shard).
    pub(super) fn answer_history(&self, app: AppIdx, channel: Arc<str>, op: HistoryOp) -> Reply {
        let apps = self.apps();
        let Some(rule) = apps.get(app).history.rule_for(&channel).cloned() else {
            return Reply::History(http_answer(Err(HistoryError::NoHistory)));
        };
        drop(apps);
        let order = |event: Event, kind: Kind, _: Change| {
            let frame = self.encode_ordered(app, &channel, event, kind);
            self.order(
                app,
                channel.clone(),
                frame,
                None,
                false,
                None,
                Instant::now(),
            );
        };
        let r = run_op(&self.streams, &rule, app, &channel, op, order);
        self.mark_log_if_dirty();
        Reply::History(http_answer(r))
    }

    /// A history API request: to the channel's owner shard on one node, to the owning
    /// node (through the gateway) in a cluster. The answer is the HTTP status and body.
    pub async fn history(
        &self,
        app: AppIdx,
        channel: Arc<str>,
        op: HistoryOp,
    ) -> Result<(u16, Vec<u8>), AskError> {
        let reply = if self.clustered {
            self.ask_gateway(|from, id| GatewayMsg::History {
                from,
                id,
                app,
                channel,
                op,
            })
            .await?
        } else {
            let owner = self.owner_of(app, &channel);
            self.query(owner, Query::History { app, channel, op })
                .await?
        };
        match reply {
            Reply::History(answer) => Ok(answer),
            _ => Err(AskError::Misrouted),
        }
    }
}
