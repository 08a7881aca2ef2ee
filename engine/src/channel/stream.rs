//! Channel streams: what a channel remembers of its ordered events, kept by the shard that
//! owns the channel on this node and entered only by the one path of an ordered event
//! (`Shard::order`).
//!
//! A stream holds two memories: a cache channel's last API event (for [`CACHE_TTL`],
//! replayed to new subscribers and answered to `info=cache`; docs/cluster.md for the
//! cluster copies), and, for a channel an `[[apps.history]]` rule matches, its
//! [`History`] (position and ring, channel/history.rs).
//!
//! **Invariants:** bounded: a cache stream holds at most one event; the history of all
//! streams of a shard holds at most `max_bytes` (beyond it the events of the channel
//! appended to least recently are dropped, its position kept) and at most `max_channels`
//! positions (beyond it the least recently appended position is forgotten); streams with
//! nothing left are dropped by [`ChannelStreams::expire`].

use super::history::{new_epoch, Entry, History, Kind, Position};
use super::journal::{Record, RestoredStream};
use crate::app::{AppIdx, PerApp};
use crate::config::{HistoryRule, HistorySettings};
use crate::frame::Frame;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a cache channel's event is retained (Pusher: 30 minutes).
pub const CACHE_TTL: Duration = Duration::from_secs(30 * 60);

/// The largest offset taken from a peer or a log (2^53: far beyond any real channel, and
/// exact in JavaScript), so `top + 1` never overflows.
pub const MAX_OFFSET: u64 = 1 << 53;

/// Events a cache channel's stream retains.
const CACHE_CAPACITY: usize = 1;

/// One retained cache event.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The finished frame, replayed as is.
    pub frame: Frame,
    /// The event's `data`, for `GET /channels/{name}?info=cache`.
    pub data: Arc<str>,
    pub stored: Instant,
}

/// One channel's stream.
#[derive(Debug, Default)]
pub struct ChannelStream {
    /// Oldest first, at most [`CACHE_CAPACITY`].
    retained: VecDeque<Stored>,
    history: Option<HistoryState>,
}

/// A history and where it sits in the shard's recency order.
#[derive(Debug)]
struct HistoryState {
    history: History,
    /// Key in [`ChannelStreams::recent`] (and in `holding` while it holds events).
    seq: u64,
    /// Last append (or creation), for the position ttl.
    touched: Instant,
}

impl ChannelStream {
    /// Retains a cache channel's `event`, dropping the oldest beyond the capacity.
    pub fn append(&mut self, event: Stored) {
        if self.retained.len() == CACHE_CAPACITY {
            self.retained.pop_front();
        }
        self.retained.push_back(event);
    }

    /// The newest retained event still within [`CACHE_TTL`] at `now`, and its time left.
    pub fn last(&self, now: Instant) -> Option<(&Stored, Duration)> {
        let e = self.retained.back()?;
        let age = now.saturating_duration_since(e.stored);
        (age < CACHE_TTL).then(|| (e, CACHE_TTL - age))
    }

    /// Drops cache events that expired at `now`.
    fn expire_cache(&mut self, now: Instant) {
        self.retained
            .retain(|e| now.saturating_duration_since(e.stored) < CACHE_TTL);
    }
}

/// The streams of the channels this shard owns (on this node), per app.
#[derive(Default)]
pub struct ChannelStreams {
    apps: PerApp<HashMap<Arc<str>, ChannelStream>>,
    settings: HistorySettings,
    /// Bytes held by every history ([`History::bytes`]).
    bytes: usize,
    /// Every history by last append, oldest first: the position bound forgets from here.
    recent: BTreeMap<u64, (AppIdx, Arc<str>)>,
    /// Histories holding at least one event, by last append: the byte bound drops from here.
    holding: BTreeMap<u64, (AppIdx, Arc<str>)>,
    next_seq: u64,
    /// Changes not yet written to the data directory; `None` without one.
    journal: Option<Journal>,
}

/// A change to some history, for the log (channel/journal.rs writes it as a [`Record`]).
#[derive(Debug, Clone)]
pub enum Change {
    Stream {
        epoch: Arc<str>,
        top: u64,
    },
    Event {
        epoch: Arc<str>,
        entry: Entry,
    },
    Edit {
        epoch: Arc<str>,
        offset: u64,
        data: Arc<str>,
    },
    Delete {
        epoch: Arc<str>,
        offset: u64,
    },
    Remove,
    Forget,
}

/// Most changes kept between two writes; beyond it they are dropped and the next write is a
/// whole snapshot instead (a stalled disk never grows memory).
const JOURNAL_MAX: usize = 100_000;

#[derive(Debug, Default)]
struct Journal {
    changes: Vec<(AppIdx, Arc<str>, Change)>,
    overflowed: bool,
    /// The clean mark is written: a change now must mark the log dirty at once.
    sealed: bool,
    dirty: bool,
}

/// What the writer takes from [`ChannelStreams::take_journal`].
pub enum Pending {
    /// These changes, in order.
    Changes(Vec<(AppIdx, Arc<str>, Change)>),
    /// Too many piled up: write a snapshot.
    Snapshot,
}

/// Figures for /stats.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HistoryFigures {
    pub channels: usize,
    pub bytes: usize,
}

impl ChannelStreams {
    pub fn new(settings: HistorySettings) -> ChannelStreams {
        ChannelStreams {
            settings,
            ..ChannelStreams::default()
        }
    }

    /// Retains a cache channel's API event.
    pub fn append(
        &mut self,
        app: AppIdx,
        channel: &Arc<str>,
        frame: Frame,
        data: Arc<str>,
        now: Instant,
    ) {
        let stream = self.apps.entry(app).entry(channel.clone()).or_default();
        stream.append(Stored {
            frame,
            data,
            stored: now,
        });
    }

    /// The newest live retained cache event of `channel`, if any, and its remaining TTL.
    pub fn last(&self, app: AppIdx, channel: &str, now: Instant) -> Option<(&Stored, Duration)> {
        self.apps.get(app)?.get(channel)?.last(now)
    }

    pub fn settings(&self) -> &HistorySettings {
        &self.settings
    }

    /// Events one history read returns at most.
    pub fn max_read(&self) -> usize {
        self.settings.max_read
    }

    pub fn figures(&self) -> HistoryFigures {
        HistoryFigures {
            channels: self.recent.len(),
            bytes: self.bytes,
        }
    }

    /// The history of `channel` under `rule`, created (a new epoch, offset 0) if it has
    /// none, its bounds set to the rule's (a reload may have changed them).
    fn history_mut(
        &mut self,
        app: AppIdx,
        channel: &Arc<str>,
        rule: &HistoryRule,
        now: Instant,
    ) -> &mut HistoryState {
        let stream = self.apps.entry(app).entry(channel.clone()).or_default();
        let ttl = Duration::from_secs(rule.ttl_secs);
        if stream.history.is_none() {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.recent.insert(seq, (app, channel.clone()));
            let epoch = new_epoch();
            if let Some(j) = &mut self.journal {
                let change = Change::Stream {
                    epoch: epoch.clone(),
                    top: 0,
                };
                note(j, app, channel, change);
            }
            stream.history = Some(HistoryState {
                history: History::new(epoch, 0, rule.size, ttl),
                seq,
                touched: now,
            });
        }
        let h = stream.history.as_mut().expect("just made");
        self.bytes -= h.history.set_bounds(rule.size, ttl);
        h
    }

    /// The position of `channel` under `rule` (creating its stream: a subscriber told a
    /// position must be able to recover from it, so the epoch it saw has to stay).
    pub fn position(
        &mut self,
        app: AppIdx,
        channel: &Arc<str>,
        rule: &HistoryRule,
        now: Instant,
    ) -> Position {
        let p = self.history_mut(app, channel, rule, now).history.position();
        self.bound_positions(app, channel);
        p
    }

    /// Appends the event `make(offset)` builds to `channel`'s history (the order point
    /// chose `offset`) and returns its frame.
    pub fn append_history(
        &mut self,
        app: AppIdx,
        channel: &Arc<str>,
        rule: &HistoryRule,
        now: Instant,
        make: impl FnOnce(u64) -> Entry,
    ) -> Frame {
        let seq = self.next_seq;
        self.next_seq += 1;
        let journaling = self.journal.is_some();
        let h = self.history_mut(app, channel, rule, now);
        let entry = make(h.history.next_offset());
        let frame = entry.frame.clone();
        let logged = journaling.then(|| Change::Event {
            epoch: h.history.epoch().clone(),
            entry: entry.clone(),
        });
        let added = entry.bytes();
        let freed = h.history.push(entry);
        let old = std::mem::replace(&mut h.seq, seq);
        h.touched = now;
        self.bytes = self.bytes + added - freed;
        self.recent.remove(&old);
        self.holding.remove(&old);
        self.recent.insert(seq, (app, channel.clone()));
        self.holding.insert(seq, (app, channel.clone()));
        if let Some(change) = logged {
            self.note(app, channel, change);
        }
        self.bound_bytes(app, channel);
        self.bound_positions(app, channel);
        frame
    }

    /// Keeps a copy of `entry`, ordered by the channel's owning node in `epoch` (this node
    /// would own the channel next). A copy of another epoch, or one that missed events,
    /// starts over at the entry: it never holds a history with a hole.
    pub fn keep_copy(
        &mut self,
        app: AppIdx,
        channel: &Arc<str>,
        rule: &HistoryRule,
        epoch: Arc<str>,
        entry: Entry,
        now: Instant,
    ) {
        let offset = entry.offset;
        if offset == 0 || offset > MAX_OFFSET {
            return; // offsets start at 1; a peer's absurd offset is not kept
        }
        let stale = match self.history(app, channel) {
            Some(h) => *h.epoch() != epoch || offset > h.top() + 1,
            None => true,
        };
        if stale {
            self.forget_channel(app, channel);
            let seq = self.next_seq;
            self.next_seq += 1;
            self.recent.insert(seq, (app, channel.clone()));
            let ttl = Duration::from_secs(rule.ttl_secs);
            let stream = self.apps.entry(app).entry(channel.clone()).or_default();
            stream.history = Some(HistoryState {
                history: History::new(epoch, offset - 1, rule.size, ttl),
                seq,
                touched: now,
            });
        } else if self
            .history(app, channel)
            .is_some_and(|h| offset <= h.top())
        {
            return; // a copy it already has
        }
        self.append_history(app, channel, rule, now, |_| entry);
    }

    /// Frees history until within `max_bytes`, least recently appended first: other
    /// channels lose all their events; when only `keep` (the channel appended to just now)
    /// is left, its oldest events go, never its newest.
    fn bound_bytes(&mut self, keep_app: AppIdx, keep: &Arc<str>) {
        while self.bytes > self.settings.max_bytes_per_shard {
            let victim = self
                .holding
                .iter()
                .find(|(_, (a, c))| !(*a == keep_app && c == keep))
                .map(|(&seq, v)| (seq, v.clone()));
            match victim {
                Some((seq, (app, channel))) => {
                    self.holding.remove(&seq);
                    if let Some(h) = self.history_of(app, &channel) {
                        let freed = h.history.clear();
                        self.bytes -= freed;
                        self.note(app, &channel, Change::Remove);
                    }
                }
                None => {
                    let Some(h) = self.history_of(keep_app, keep) else {
                        return;
                    };
                    if h.history.len() <= 1 {
                        return;
                    }
                    let freed = h.history.pop_oldest();
                    self.bytes -= freed;
                }
            }
        }
    }

    /// Forgets positions beyond `max_channels`, least recently appended first (never
    /// `keep`).
    fn bound_positions(&mut self, keep_app: AppIdx, keep: &Arc<str>) {
        while self.recent.len() > self.settings.max_channels_per_shard {
            let Some((&seq, (app, channel))) = self.recent.iter().next() else {
                return;
            };
            if *app == keep_app && channel == keep {
                return;
            }
            let (app, channel) = (*app, channel.clone());
            self.forget(app, &channel, seq);
        }
    }

    fn forget(&mut self, app: AppIdx, channel: &Arc<str>, seq: u64) {
        self.recent.remove(&seq);
        self.holding.remove(&seq);
        self.note(app, channel, Change::Forget);
        let Some(table) = self.apps.get_mut(app) else {
            return;
        };
        if let Some(stream) = table.get_mut(channel) {
            if let Some(h) = stream.history.take() {
                self.bytes -= h.history.bytes();
            }
            if stream.retained.is_empty() {
                table.remove(channel);
            }
        }
    }

    /// Every channel with a history (a position), for a cluster node to review its roles.
    pub fn history_channels(&self) -> Vec<(AppIdx, Arc<str>)> {
        self.recent.values().cloned().collect()
    }

    /// Forgets `channel`'s history, position included: its next event starts a new epoch.
    pub fn forget_channel(&mut self, app: AppIdx, channel: &Arc<str>) {
        if let Some(seq) = self.history_of(app, channel).map(|h| h.seq) {
            self.forget(app, channel, seq);
        }
    }

    fn history_of(&mut self, app: AppIdx, channel: &str) -> Option<&mut HistoryState> {
        self.apps.get_mut(app)?.get_mut(channel)?.history.as_mut()
    }

    /// `channel`'s history, if it has one.
    pub fn history(&self, app: AppIdx, channel: &str) -> Option<&History> {
        Some(&self.apps.get(app)?.get(channel)?.history.as_ref()?.history)
    }

    /// Changes `channel`'s history in place with `f` (an edit, a delete, a removal), keeping
    /// the byte count.
    pub fn change<R>(
        &mut self,
        app: AppIdx,
        channel: &str,
        f: impl FnOnce(&mut History) -> R,
    ) -> Option<R> {
        let h = self.history_of(app, channel)?;
        let before = h.history.bytes();
        let seq = h.seq;
        let r = f(&mut h.history);
        let (after, empty) = (h.history.bytes(), h.history.is_empty());
        self.bytes = self.bytes + after - before;
        if empty {
            self.holding.remove(&seq);
        }
        Some(r)
    }

    /// Drops expired cache events, expired history events, positions older than the
    /// position ttl, and the streams left empty (called by the sweeper).
    pub fn expire(&mut self, now: Instant) {
        let position_ttl = Duration::from_secs(self.settings.position_ttl_secs);
        let mut freed = 0;
        let mut emptied = Vec::new();
        let mut forgotten = Vec::new();
        let mut forgot = Vec::new();
        for (app, t) in self.apps.iter_mut().enumerate() {
            t.retain(|name, s| {
                s.expire_cache(now);
                if let Some(h) = &mut s.history {
                    freed += h.history.expire(now);
                    if h.history.is_empty() {
                        emptied.push(h.seq);
                    }
                    if now.saturating_duration_since(h.touched) >= position_ttl {
                        forgotten.push(h.seq);
                        forgot.push((app as AppIdx, name.clone()));
                        freed += h.history.bytes();
                        s.history = None;
                    }
                }
                !(s.retained.is_empty() && s.history.is_none())
            });
        }
        self.bytes -= freed;
        for seq in emptied {
            self.holding.remove(&seq);
        }
        for seq in forgotten {
            self.recent.remove(&seq);
            self.holding.remove(&seq);
        }
        for (app, channel) in forgot {
            self.note(app, &channel, Change::Forget);
        }
    }

    /// Keeps changes for the data directory from now on (before any event is appended).
    pub fn keep_journal(&mut self) {
        self.journal = Some(Journal::default());
    }

    /// Records `change` of `channel` for the data directory, if there is one.
    pub fn note(&mut self, app: AppIdx, channel: &Arc<str>, change: Change) {
        if let Some(j) = &mut self.journal {
            note(j, app, channel, change);
        }
    }

    /// The next write must be a whole rewrite (the last write failed, so the changes it
    /// took are not in the log).
    pub fn must_rewrite(&mut self) {
        if let Some(j) = &mut self.journal {
            j.changes = Vec::new();
            j.overflowed = true;
        }
    }

    /// The log was closed clean: from now on a change must mark it dirty at once.
    pub fn seal(&mut self) {
        if let Some(j) = &mut self.journal {
            j.sealed = true;
        }
    }

    /// True once, for the first change after [`ChannelStreams::seal`].
    pub fn take_dirty(&mut self) -> bool {
        match &mut self.journal {
            Some(j) if j.dirty => {
                j.dirty = false;
                j.sealed = false;
                true
            }
            _ => false,
        }
    }

    /// The changes since the last call, for the writer.
    pub fn take_journal(&mut self) -> Option<Pending> {
        let j = self.journal.as_mut()?;
        Some(if std::mem::take(&mut j.overflowed) {
            Pending::Snapshot
        } else {
            Pending::Changes(std::mem::take(&mut j.changes))
        })
    }

    /// Every history as log records (a snapshot), channels named by `app_id`.
    pub fn snapshot(&self, app_id: impl Fn(AppIdx) -> Option<String>) -> Vec<Record> {
        let mut out = Vec::new();
        for (app, t) in self.apps.iter().enumerate() {
            let Some(id) = app_id(app as AppIdx) else {
                continue;
            };
            for (name, s) in t {
                let Some(h) = &s.history else { continue };
                let epoch = h.history.epoch().clone();
                // The position before the first kept event (the top when none is kept):
                // the events that follow then continue it when the log is read back.
                let before = h
                    .history
                    .entries()
                    .next()
                    .map_or(h.history.top(), |e| e.offset - 1);
                let stream = Change::Stream {
                    epoch: epoch.clone(),
                    top: before,
                };
                out.push(record(&id, name, stream));
                for e in h.history.entries() {
                    let change = Change::Event {
                        epoch: epoch.clone(),
                        entry: e.clone(),
                    };
                    out.push(record(&id, name, change));
                }
            }
        }
        out
    }

    /// Puts a channel's history back as a log had it: its epoch kept when the log proves
    /// continuity, a new one otherwise (clients are then told "not recovered"). Events are
    /// re-encoded; those past the rule's ttl are dropped by the next expiry.
    pub fn restore(
        &mut self,
        app: AppIdx,
        channel: &Arc<str>,
        rule: &HistoryRule,
        restored: &RestoredStream,
        now: Instant,
        now_ms: u64,
    ) {
        let epoch: Arc<str> = if restored.continuous {
            Arc::from(restored.epoch.as_str())
        } else {
            new_epoch()
        };
        let first = restored
            .events
            .first()
            .map_or(restored.top, |e| e.offset - 1);
        let ttl = Duration::from_secs(rule.ttl_secs);
        let mut history = History::new(epoch, first, rule.size, ttl);
        for e in &restored.events {
            let age = Duration::from_millis(now_ms.saturating_sub(e.time_ms));
            let mut entry = Entry {
                offset: e.offset,
                kind: match e.kind {
                    'e' => Kind::Edit,
                    'd' => Kind::Delete,
                    _ => Kind::Message,
                },
                name: e.name.as_str().into(),
                data: Arc::from(e.data.as_str()),
                user_id: e.user_id.as_deref().map(Arc::from),
                frame: Frame::text(b""),
                time_ms: e.time_ms,
                stored: now.checked_sub(age).unwrap_or(now),
                edited: e.edited,
                deleted: e.deleted,
            };
            if !entry.deleted {
                entry.frame = entry.encode(channel);
            }
            history.push(entry);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += history.bytes();
        self.recent.insert(seq, (app, channel.clone()));
        if !history.is_empty() {
            self.holding.insert(seq, (app, channel.clone()));
        }
        let stream = self.apps.entry(app).entry(channel.clone()).or_default();
        stream.history = Some(HistoryState {
            history,
            seq,
            touched: now,
        });
        self.bound_bytes(app, channel);
        self.bound_positions(app, channel);
    }
}

fn note(j: &mut Journal, app: AppIdx, channel: &Arc<str>, change: Change) {
    if j.sealed {
        j.dirty = true;
    }
    if j.overflowed {
        return;
    }
    if j.changes.len() >= JOURNAL_MAX {
        j.changes = Vec::new();
        j.overflowed = true;
        return;
    }
    j.changes.push((app, channel.clone(), change));
}

/// `change` of `channel` of app `app` as a log record.
pub fn record(app: &str, channel: &str, change: Change) -> Record {
    let (app, ch) = (app.to_string(), channel.to_string());
    match change {
        Change::Stream { epoch, top } => Record::Stream {
            app,
            ch,
            epoch: epoch.to_string(),
            top,
        },
        Change::Event { epoch, entry: e } => Record::Event {
            app,
            ch,
            epoch: epoch.to_string(),
            offset: e.offset,
            kind: match e.kind {
                Kind::Message => 'm',
                Kind::Edit => 'e',
                Kind::Delete => 'd',
            },
            name: e.name.to_string(),
            data: e.data.to_string(),
            user_id: e.user_id.as_deref().map(str::to_string),
            time_ms: e.time_ms,
            edited: e.edited,
            deleted: e.deleted,
        },
        Change::Edit {
            epoch,
            offset,
            data,
        } => Record::Edit {
            app,
            ch,
            epoch: epoch.to_string(),
            offset,
            data: data.to_string(),
        },
        Change::Delete { epoch, offset } => Record::Delete {
            app,
            ch,
            epoch: epoch.to_string(),
            offset,
        },
        Change::Remove => Record::Remove { app, ch },
        Change::Forget => Record::Forget { app, ch },
    }
}

#[cfg(test)]
mod tests;
