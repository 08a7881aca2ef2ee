//! One channel's history: its position (an epoch and the offset of its newest event) and a
//! ring of its last events, bounded by count and age. Sans-IO: the owner shard calls these
//! with the time and the encoder; nothing here sends, stores to disk or reads a clock.
//!
//! The model is Centrifugo's stream (../shared/reference/history-and-tokens.md A1): every
//! event takes the next offset; the epoch names this run of offsets and changes whenever
//! continuity cannot be proven (a new stream, a forgotten position, a restart without the
//! data directory); the position outlives the events (aged out or removed, the offset
//! stays). A recovery replays everything after a position or nothing ([`History::recover`]).
//!
//! **Invariant:** offsets of `entries` are strictly increasing, and the newest (if any) is
//! `top`; an edit or a delete is itself an entry with its own offset (so a recovery replays
//! it), and changes the entry it names in place.

use crate::frame::Frame;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A point in a channel's history: after the event `offset` of `epoch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub epoch: Arc<str>,
    pub offset: u64,
}

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A published event (API or client).
    Message,
    /// `raptor:message_edit`: the app changed an earlier message.
    Edit,
    /// `raptor:message_delete`: the app deleted an earlier message.
    Delete,
}

/// One stored event.
#[derive(Debug, Clone)]
pub struct Entry {
    pub offset: u64,
    pub kind: Kind,
    pub name: Box<str>,
    pub data: Arc<str>,
    pub user_id: Option<Arc<str>>,
    /// The encoded event (with its offset), replayed as is.
    pub frame: Frame,
    /// Wall-clock publish time, ms since the Unix epoch (reported by the history API).
    pub time_ms: u64,
    /// Monotonic publish time, for the ttl.
    pub stored: Instant,
    /// A later edit changed `data` (and `frame`).
    pub edited: bool,
    /// A later delete removed it: kept as a tombstone (no data) so offsets stay dense, but
    /// neither read nor replayed.
    pub deleted: bool,
}

impl Entry {
    /// The entry's frame for `channel`: the event with its offset, as live subscribers got
    /// it (re-made after an edit, a restart, or a copy from another node).
    pub fn encode(&self, channel: &str) -> Frame {
        crate::protocol::server::history_event(
            &self.name,
            channel,
            &self.data,
            self.user_id.as_deref(),
            Some(self.offset),
        )
    }

    /// Memory the entry holds, for the shard's history bound: its bytes and a fixed
    /// overhead for the entry, its allocations and the allocator's rounding. 280 makes the
    /// count match the RSS the history benchmark measured (480 B per 64-byte event,
    /// docs/bench/history.md), so the bound is close to the memory it costs.
    pub fn bytes(&self) -> usize {
        const OVERHEAD: usize = 280;
        OVERHEAD + self.frame.payload().len() + self.data.len() + self.name.len()
    }
}

/// Why an edit or delete was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error("no stored event has this offset (never published, aged out, or removed)")]
    NotFound,
    #[error("only published messages can be edited or deleted")]
    NotAMessage,
    #[error("the event was deleted")]
    Deleted,
}

/// The outcome of a recovery request.
#[derive(Debug)]
pub struct Recovery {
    pub recovered: bool,
    /// Empty unless `recovered`.
    pub frames: Vec<Frame>,
}

/// A channel's history. `bytes` is what its entries hold ([`Entry::bytes`]).
#[derive(Debug)]
pub struct History {
    epoch: Arc<str>,
    top: u64,
    entries: VecDeque<Entry>,
    size: usize,
    ttl: Duration,
    bytes: usize,
}

impl History {
    /// An empty history at position `{epoch, top}` (0 for a new stream).
    pub fn new(epoch: Arc<str>, top: u64, size: usize, ttl: Duration) -> History {
        History {
            epoch,
            top,
            entries: VecDeque::new(),
            size: size.max(1),
            ttl,
            bytes: 0,
        }
    }

    pub fn position(&self) -> Position {
        Position {
            epoch: self.epoch.clone(),
            offset: self.top,
        }
    }

    pub fn epoch(&self) -> &Arc<str> {
        &self.epoch
    }

    pub fn top(&self) -> u64 {
        self.top
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Applies a changed rule (a reload): the ring shrinks at once if `size` did.
    pub fn set_bounds(&mut self, size: usize, ttl: Duration) -> usize {
        self.size = size.max(1);
        self.ttl = ttl;
        self.trim()
    }

    /// The offset the next event takes.
    pub fn next_offset(&self) -> u64 {
        self.top + 1
    }

    /// Appends `entry` (whose offset is [`History::next_offset`]); returns the bytes freed
    /// by dropping the oldest beyond `size`.
    pub fn push(&mut self, entry: Entry) -> usize {
        debug_assert_eq!(entry.offset, self.top + 1, "offsets are dense");
        self.top = entry.offset;
        self.bytes += entry.bytes();
        self.entries.push_back(entry);
        self.trim()
    }

    fn trim(&mut self) -> usize {
        let mut freed = 0;
        while self.entries.len() > self.size {
            freed += self.pop_front();
        }
        freed
    }

    /// Drops the oldest event (the shard's byte bound, when this channel alone is over
    /// it); returns the bytes freed.
    pub fn pop_oldest(&mut self) -> usize {
        self.pop_front()
    }

    fn pop_front(&mut self) -> usize {
        let b = self.entries.pop_front().map_or(0, |e| e.bytes());
        self.bytes -= b;
        b
    }

    /// Drops the events older than the ttl at `now`; returns the bytes freed.
    pub fn expire(&mut self, now: Instant) -> usize {
        let mut freed = 0;
        while self
            .entries
            .front()
            .is_some_and(|e| now.saturating_duration_since(e.stored) >= self.ttl)
        {
            freed += self.pop_front();
        }
        freed
    }

    /// Drops every event, keeping the position (the API's "remove", and the shard's memory
    /// bound): a client at the top still recovers; one behind is told "not recovered".
    pub fn clear(&mut self) -> usize {
        let b = self.bytes;
        self.entries.clear();
        self.bytes = 0;
        b
    }

    /// When the newest event was stored (or `None` if none is left).
    pub fn newest(&self) -> Option<Instant> {
        self.entries.back().map(|e| e.stored)
    }

    /// Everything after `from`, at most `max` events of at most `max_bytes` together, or
    /// nothing (never a partial replay): recovered only when the epoch is this one, `from`
    /// is not ahead of the top, and every event after it is still stored and within both
    /// caps (a replay larger than the connection's queue would cut it as a slow consumer,
    /// again at every reconnect). Deleted events count for continuity but are not replayed
    /// (their delete event is).
    pub fn recover(&self, from: &Position, max: usize, max_bytes: usize) -> Recovery {
        let none = Recovery {
            recovered: false,
            frames: Vec::new(),
        };
        if from.epoch != self.epoch || from.offset > self.top {
            return none;
        }
        let missed = self.top - from.offset;
        if missed == 0 {
            return Recovery {
                recovered: true,
                frames: Vec::new(),
            };
        }
        if missed > max as u64 || missed > self.entries.len() as u64 {
            return none;
        }
        let start = self.entries.len() - missed as usize;
        debug_assert_eq!(self.entries[start].offset, from.offset + 1);
        let replay = || self.entries.range(start..).filter(|e| !e.deleted);
        let bytes: usize = replay().map(|e| e.frame.payload().len()).sum();
        if bytes > max_bytes {
            return none;
        }
        Recovery {
            recovered: true,
            frames: replay().map(|e| e.frame.clone()).collect(),
        }
    }

    /// Stored (not deleted) events after offset `since` (all when `None`), oldest first or
    /// newest first, at most `limit`.
    pub fn read(&self, since: Option<u64>, limit: usize, newest_first: bool) -> Vec<&Entry> {
        let after = since.unwrap_or(0);
        let live = |e: &&Entry| !e.deleted && e.offset > after;
        if newest_first {
            self.entries.iter().rev().filter(live).take(limit).collect()
        } else {
            self.entries.iter().filter(live).take(limit).collect()
        }
    }

    fn find_mut(&mut self, offset: u64) -> Result<&mut Entry, ChangeError> {
        let first = self.entries.front().ok_or(ChangeError::NotFound)?.offset;
        if offset < first || offset > self.top {
            return Err(ChangeError::NotFound);
        }
        let e = &mut self.entries[(offset - first) as usize];
        debug_assert_eq!(e.offset, offset);
        if e.kind != Kind::Message {
            return Err(ChangeError::NotAMessage);
        }
        if e.deleted {
            return Err(ChangeError::Deleted);
        }
        Ok(e)
    }

    /// Checks that the message at `offset` may be edited or deleted, and returns its name.
    pub fn changeable(&mut self, offset: u64) -> Result<Box<str>, ChangeError> {
        self.find_mut(offset).map(|e| e.name.clone())
    }

    /// Replaces the data of the message at `offset` of `channel` (and its frame).
    pub fn edit(&mut self, offset: u64, data: Arc<str>, channel: &str) -> Result<(), ChangeError> {
        let e = self.find_mut(offset)?;
        let before = e.bytes();
        e.data = data;
        e.frame = e.encode(channel);
        e.edited = true;
        let after = e.bytes();
        self.bytes = self.bytes + after - before;
        Ok(())
    }

    /// Turns the message at `offset` into a tombstone.
    pub fn delete(&mut self, offset: u64) -> Result<(), ChangeError> {
        let e = self.find_mut(offset)?;
        let before = e.bytes();
        e.deleted = true;
        e.data = Arc::from("");
        e.frame = Frame::text(b"");
        let after = e.bytes();
        self.bytes = self.bytes + after - before;
        Ok(())
    }

    /// Every entry, oldest first (for the data directory's snapshot).
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }
}

/// A new epoch: 12 random characters from `[0-9A-Za-z]` (62^12 ≈ 3·10^21 values, so a
/// stream recreated anywhere never reuses one a client could still hold).
pub fn new_epoch() -> Arc<str> {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let s: String = (0..12)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect();
    Arc::from(s)
}

#[cfg(test)]
mod tests;
