//! The history log's format (docs/adr/0010-history-storage.md): one JSON object per line,
//! appended by each shard to `{data_dir}/shard-{id}.log`, and what a log says once read
//! back ([`Restored`]). Sans-IO: `shard::persist` does the file work.
//!
//! A line is a [`Record`]. A torn last line (a `kill -9` mid-write) does not parse and ends
//! the read; everything before it counts. A log whose last record is [`Record::Clean`] was
//! closed by a graceful shutdown, so its positions are continuous: their epochs are kept.
//! Any other log may have lost its last `flush_ms` of events, so its channels get new epochs.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// One line of the log. Channels are named by app **id** (indexes change across restarts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Record {
    /// A channel's position (a snapshot's first line for it, or a new stream).
    Stream {
        app: String,
        ch: String,
        epoch: String,
        top: u64,
    },
    /// A stored event (a new one, or one copied into a snapshot).
    Event {
        app: String,
        ch: String,
        epoch: String,
        offset: u64,
        /// `m` message, `e` edit event, `d` delete event.
        kind: char,
        name: String,
        data: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_id: Option<String>,
        time_ms: u64,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        edited: bool,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        deleted: bool,
    },
    /// The message at `offset` now carries `data`.
    Edit {
        app: String,
        ch: String,
        epoch: String,
        offset: u64,
        data: String,
    },
    /// The message at `offset` was deleted.
    Delete {
        app: String,
        ch: String,
        epoch: String,
        offset: u64,
    },
    /// The channel's events were dropped (API remove, or the shard's byte bound); the
    /// position stays.
    Remove { app: String, ch: String },
    /// The channel's position was forgotten (the position bound or ttl).
    Forget { app: String, ch: String },
    /// A graceful shutdown closed the log here.
    Clean,
    /// The history changed after the clean mark (an event ordered during the drain): the
    /// log is not clean, whatever follows.
    Dirty,
}

impl Record {
    /// The record as one line (with its `\n`).
    pub fn line(&self, out: &mut Vec<u8>) {
        simd_json::to_writer(&mut *out, self).expect("in-memory serialization");
        out.push(b'\n');
    }
}

/// One event read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoredEvent {
    pub offset: u64,
    pub kind: char,
    pub name: String,
    pub data: String,
    pub user_id: Option<String>,
    pub time_ms: u64,
    pub edited: bool,
    pub deleted: bool,
}

/// One channel read back: its position and its events, oldest first, offsets dense.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RestoredStream {
    pub epoch: String,
    pub top: u64,
    pub events: Vec<RestoredEvent>,
    /// The log it came from ended clean: the epoch may be kept.
    pub continuous: bool,
}

/// Everything some logs say: `(app id, channel) → stream`.
#[derive(Debug, Default)]
pub struct Restored {
    pub streams: HashMap<(String, String), RestoredStream>,
}

impl Restored {
    /// Reads one log (its bytes) into `self`. A channel found in several logs (a crash in
    /// the middle of a rewrite after the shard count changed) keeps the copy with the
    /// higher position.
    pub fn read_log(&mut self, bytes: &[u8]) {
        let mut log: HashMap<(String, String), RestoredStream> = HashMap::new();
        let mut clean = false;
        for line in bytes.split(|&b| b == b'\n') {
            if line.is_empty() {
                continue;
            }
            let mut buf = line.to_vec();
            let Ok(rec) = simd_json::serde::from_slice::<Record>(&mut buf) else {
                // A torn write: nothing after it counts.
                break;
            };
            clean = rec == Record::Clean;
            apply(&mut log, rec);
        }
        for (key, mut s) in log {
            s.continuous = clean;
            match self.streams.get(&key) {
                Some(have) if have.top >= s.top => {}
                _ => {
                    self.streams.insert(key, s);
                }
            }
        }
    }
}

fn stream<'a>(
    log: &'a mut HashMap<(String, String), RestoredStream>,
    app: String,
    ch: String,
    epoch: &str,
) -> &'a mut RestoredStream {
    let s = log.entry((app, ch)).or_default();
    if s.epoch != epoch {
        *s = RestoredStream {
            epoch: epoch.to_string(),
            ..RestoredStream::default()
        };
    }
    s
}

fn apply(log: &mut HashMap<(String, String), RestoredStream>, rec: Record) {
    match rec {
        Record::Stream {
            app,
            ch,
            epoch,
            top,
        } => {
            let s = stream(log, app, ch, &epoch);
            if top > s.top && top <= crate::channel::stream::MAX_OFFSET {
                s.events.clear();
                s.top = top;
            }
        }
        Record::Event {
            app,
            ch,
            epoch,
            offset,
            kind,
            name,
            data,
            user_id,
            time_ms,
            edited,
            deleted,
        } => {
            let s = stream(log, app, ch, &epoch);
            if offset <= s.top || offset > crate::channel::stream::MAX_OFFSET {
                return; // already known, or absurd
            }
            if offset != s.top + 1 {
                s.events.clear(); // a gap: only what follows it is continuous
            }
            s.top = offset;
            s.events.push(RestoredEvent {
                offset,
                kind,
                name,
                data,
                user_id,
                time_ms,
                edited,
                deleted,
            });
        }
        Record::Edit {
            app,
            ch,
            epoch,
            offset,
            data,
        } => {
            if let Some(e) = find(log, app, ch, &epoch, offset) {
                e.data = data;
                e.edited = true;
            }
        }
        Record::Delete {
            app,
            ch,
            epoch,
            offset,
        } => {
            if let Some(e) = find(log, app, ch, &epoch, offset) {
                e.data.clear();
                e.deleted = true;
            }
        }
        Record::Remove { app, ch } => {
            if let Some(s) = log.get_mut(&(app, ch)) {
                s.events.clear();
            }
        }
        Record::Forget { app, ch } => {
            log.remove(&(app, ch));
        }
        Record::Clean | Record::Dirty => {}
    }
}

fn find<'a>(
    log: &'a mut HashMap<(String, String), RestoredStream>,
    app: String,
    ch: String,
    epoch: &str,
    offset: u64,
) -> Option<&'a mut RestoredEvent> {
    let s = log.get_mut(&(app, ch))?;
    if s.epoch != epoch {
        return None;
    }
    s.events.iter_mut().find(|e| e.offset == offset)
}

#[cfg(test)]
mod tests;
