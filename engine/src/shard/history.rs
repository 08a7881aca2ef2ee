//! What the owner shard does for channels with history (docs/history.md): it gives each of
//! their events the next offset as it orders it, tells a new subscriber its position and
//! replays what it missed (`raptor:recovery`), and answers the history API (read, remove,
//! edit, delete). The decisions are in `channel::history` (sans-IO, unit-tested); this is
//! the shell that encodes and sends.

use super::msg::{Query, Reply};
use super::Shard;
use crate::app::AppIdx;
use crate::channel::event::Event;
use crate::channel::history::{ChangeError, Entry, Kind, Position};
use crate::channel::stream::Change;
use crate::frame::Frame;
use crate::protocol::server::{self as frames, RecoveryResult};
use crate::shard::ask::AskError;
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
    #[error(transparent)]
    Ask(#[from] AskError),
}

impl Shard {
    /// The frame of `event` ordered now on `channel`: with history, the event takes the
    /// channel's next offset and is stored; without, it is simply encoded.
    pub(super) fn encode_ordered(
        &self,
        app: AppIdx,
        channel: &Arc<str>,
        event: Event,
        kind: Kind,
    ) -> Frame {
        let apps = self.apps();
        let a = apps.get(app);
        match a.history.rule_for(channel) {
            None => event.encode(channel),
            Some(rule) => {
                let now = Instant::now();
                self.streams
                    .borrow_mut()
                    .append_history(app, channel, rule, now, |offset| {
                        event.into_entry(channel, kind, offset, now)
                    })
            }
        }
    }

    /// Appends what a subscriber of a channel with history gets after
    /// `subscription_succeeded` to `out`: `raptor:recovery` with its position, then, when it
    /// asked to recover from `from` and can, every event it missed. Nothing for a channel
    /// without history.
    pub(super) fn recovery_frames(
        &self,
        app: AppIdx,
        channel: &Arc<str>,
        from: Option<&Position>,
        out: &mut Vec<Frame>,
    ) {
        let apps = self.apps();
        let Some(rule) = apps.get(app).history.rule_for(channel) else {
            return;
        };
        let mut streams = self.streams.borrow_mut();
        let top = streams.position(app, channel, rule, Instant::now());
        let history = streams.history(app, channel).expect("position made it");
        let (recovered, replay) = match from {
            Some(from) => {
                let r = history.recover(from, rule.recover_max);
                self.stats.note_recovery(r.recovered);
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
        out.push(frames::recovery(channel, &result));
        out.extend(replay);
    }

    /// Answers a history request for a channel this shard owns; an edit or delete is
    /// ordered (and fanned out) like any event, so it takes its own offset.
    fn history_op(
        &self,
        app: AppIdx,
        channel: Arc<str>,
        op: HistoryOp,
    ) -> Result<HistoryAnswer, HistoryError> {
        let apps = self.apps();
        let rule = apps
            .get(app)
            .history
            .rule_for(&channel)
            .ok_or(HistoryError::NoHistory)?
            .clone();
        drop(apps);
        let now = Instant::now();
        let top = self
            .streams
            .borrow_mut()
            .position(app, &channel, &rule, now);
        let answer = |events| {
            let p = self
                .streams
                .borrow_mut()
                .position(app, &channel, &rule, now);
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
                    let streams = self.streams.borrow();
                    let h = streams.history(app, &channel).expect("position made it");
                    let max = streams.max_read();
                    h.read(since, limit.min(max), newest_first)
                        .into_iter()
                        .map(HistoryEvent::of)
                        .collect()
                });
                Ok(answer(events))
            }
            HistoryOp::Remove => {
                let mut streams = self.streams.borrow_mut();
                streams.change(app, &channel, |h| h.clear());
                streams.note(app, &channel, Change::Remove);
                drop(streams);
                Ok(answer(None))
            }
            HistoryOp::Edit { offset, data } => {
                let name = self
                    .streams
                    .borrow_mut()
                    .change(app, &channel, |h| h.changeable(offset))
                    .expect("position made it")?;
                let ch = channel.clone();
                self.streams
                    .borrow_mut()
                    .change(app, &channel, |h| {
                        h.edit(offset, data.clone(), |e| {
                            frames::history_event(
                                &e.name,
                                &ch,
                                &e.data,
                                e.user_id.as_deref(),
                                Some(e.offset),
                            )
                        })
                    })
                    .expect("position made it")?;
                let change = Change::Edit {
                    epoch: top.epoch.clone(),
                    offset,
                    data: data.clone(),
                };
                self.streams.borrow_mut().note(app, &channel, change);
                self.order_change(app, &channel, Event::edit(offset, &name, &data), Kind::Edit);
                Ok(answer(None))
            }
            HistoryOp::Delete { offset } => {
                let name = self
                    .streams
                    .borrow_mut()
                    .change(app, &channel, |h| {
                        let name = h.changeable(offset)?;
                        h.delete(offset).map(|_| name)
                    })
                    .expect("position made it")?;
                let change = Change::Delete {
                    epoch: top.epoch.clone(),
                    offset,
                };
                self.streams.borrow_mut().note(app, &channel, change);
                self.order_change(app, &channel, Event::delete(offset, &name), Kind::Delete);
                Ok(answer(None))
            }
        }
    }

    /// Orders an edit or delete event: stored with its own offset and fanned out.
    fn order_change(&self, app: AppIdx, channel: &Arc<str>, event: Event, kind: Kind) {
        let frame = self.encode_ordered(app, channel, event, kind);
        self.order(
            app,
            channel.clone(),
            frame,
            None,
            false,
            None,
            Instant::now(),
        );
    }

    /// Answers [`Query::History`].
    pub(super) fn answer_history(&self, app: AppIdx, channel: Arc<str>, op: HistoryOp) -> Reply {
        Reply::History(self.history_op(app, channel, op))
    }

    /// A history request, asked of the channel's owner shard.
    pub async fn history(
        &self,
        app: AppIdx,
        channel: Arc<str>,
        op: HistoryOp,
    ) -> Result<HistoryAnswer, HistoryError> {
        let owner = self.owner_of(app, &channel);
        match self
            .query(owner, Query::History { app, channel, op })
            .await
            .map_err(AskError::from)?
        {
            Reply::History(r) => r,
            _ => Err(AskError::Misrouted.into()),
        }
    }
}
