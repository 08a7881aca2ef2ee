//! The chunked client events a session has open (docs/protocol.md, "Large events in
//! chunks"): which sequences are under way, their next index and their bytes so far. Sans-IO
//! and unit-tested; `commands` asks [`OpenChunks::check`] about each `client-chunked-*` event
//! and [`OpenChunks::commit`]s it once every other check passed, so a refused chunk changes
//! nothing (except an overflow, which ends its sequence for good).
//!
//! Nothing of a chunk's content is kept: the server relays chunks as they come, so the
//! bounds are on what receivers must hold while they reassemble, not on server memory.
//! The state lives in the `Connection` and is freed with it.

use std::collections::VecDeque;

/// Finished ids remembered per session, to refuse chunks of an id that already ended. A
/// bound: an id reused after this many later sequences ended starts afresh.
const FINISHED_KEPT: usize = 32;

/// A sequence's key: its channel, event name and id (a receiver reassembles per binding).
type Key = (Box<str>, Box<str>, Box<str>);

/// One chunk as `commands` presents it.
#[derive(Debug, Clone, Copy)]
pub struct ChunkIn<'a> {
    pub channel: &'a str,
    pub event: &'a str,
    pub id: &'a str,
    pub index: u64,
    pub len: usize,
    pub last: bool,
}

/// The bounds that apply to one session's chunks.
#[derive(Debug, Clone, Copy)]
pub struct ChunkBounds {
    /// The app's `max_chunked_event_bytes`: the whole of one sequence.
    pub max_event_bytes: usize,
    /// `limits.max_open_chunked_events_per_connection`.
    pub max_open: usize,
    /// `limits.max_chunked_bytes_per_connection`: the bytes of all open sequences.
    pub max_open_bytes: usize,
}

/// Why a chunk is refused (`pusher:error` 4316, "chunk refused: <reason>"). The client's
/// fault; the connection stays open and the chunk is not relayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkRefusal {
    /// `index` is past the next one expected (a chunk is missing); resend the missing one.
    #[error("gap: index {got}, expected {expected}")]
    Gap { got: u64, expected: u64 },
    /// `index` was already sent for this id.
    #[error("repeat: index {got}, expected {expected}")]
    Repeat { got: u64, expected: u64 },
    /// The id is not open: it never started at index 0, or it already ended.
    #[error("wrong id: `{0}` is not open (a sequence starts at index 0 and ends at final)")]
    WrongId(String),
    /// The id already ended with its final chunk.
    #[error("wrong id: `{0}` already ended")]
    Finished(String),
    /// The whole would exceed the app's cap; the sequence is abandoned.
    #[error("overflow: the event would exceed {max} bytes; id `{id}` is abandoned")]
    Overflow { id: String, max: usize },
    /// The session already has the maximum number of sequences open.
    #[error("too many open chunked events (at most {0} per connection)")]
    TooManyOpen(usize),
    /// The session's open sequences would exceed their byte bound.
    #[error("too many bytes in open chunked events (at most {0} per connection)")]
    TooManyBytes(usize),
}

/// An accepted chunk, to [`OpenChunks::commit`] once the rest of the checks passed.
#[derive(Debug, PartialEq, Eq)]
pub struct Accepted {
    slot: Option<usize>,
    key: Option<Key>,
    len: usize,
    last: bool,
}

impl Accepted {
    /// The chunk starts a sequence (it counts as one client event against the rate).
    pub fn starts(&self) -> bool {
        self.key.is_some()
    }
}

#[derive(Debug)]
struct Open {
    key: Key,
    next: u64,
    bytes: usize,
}

/// A session's open chunk sequences.
#[derive(Debug, Default)]
pub struct OpenChunks {
    /// At most `max_open` entries: a linear scan is cheaper than a map at this size.
    open: Vec<Open>,
    /// Sum of `open[..].bytes` (checked against `max_open_bytes`).
    bytes: usize,
    /// Ids that ended lately (final chunk, or overflow), oldest first.
    finished: VecDeque<Key>,
}

fn same(k: &Key, c: &ChunkIn) -> bool {
    &*k.0 == c.channel && &*k.1 == c.event && &*k.2 == c.id
}

impl OpenChunks {
    /// Decides about `c` without changing anything, except that an overflow abandons its
    /// sequence (it can never complete).
    pub fn check(&mut self, c: &ChunkIn, b: ChunkBounds) -> Result<Accepted, ChunkRefusal> {
        let Some(slot) = self.open.iter().position(|o| same(&o.key, c)) else {
            if c.index != 0 {
                return Err(if self.finished.iter().any(|k| same(k, c)) {
                    ChunkRefusal::Finished(c.id.to_string())
                } else {
                    ChunkRefusal::WrongId(c.id.to_string())
                });
            }
            if self.finished.iter().any(|k| same(k, c)) {
                return Err(ChunkRefusal::Finished(c.id.to_string()));
            }
            if c.len > b.max_event_bytes {
                return Err(ChunkRefusal::Overflow {
                    id: c.id.to_string(),
                    max: b.max_event_bytes,
                });
            }
            // A one-chunk event is never open, so it needs no slot.
            if !c.last && self.open.len() >= b.max_open {
                return Err(ChunkRefusal::TooManyOpen(b.max_open));
            }
            if !c.last && self.bytes + c.len > b.max_open_bytes {
                return Err(ChunkRefusal::TooManyBytes(b.max_open_bytes));
            }
            let key = (c.channel.into(), c.event.into(), c.id.into());
            return Ok(Accepted {
                slot: None,
                key: Some(key),
                len: c.len,
                last: c.last,
            });
        };
        let o = &self.open[slot];
        if c.index != o.next {
            let (got, expected) = (c.index, o.next);
            return Err(if got > expected {
                ChunkRefusal::Gap { got, expected }
            } else {
                ChunkRefusal::Repeat { got, expected }
            });
        }
        if o.bytes + c.len > b.max_event_bytes {
            self.end(slot);
            return Err(ChunkRefusal::Overflow {
                id: c.id.to_string(),
                max: b.max_event_bytes,
            });
        }
        if !c.last && self.bytes + c.len > b.max_open_bytes {
            return Err(ChunkRefusal::TooManyBytes(b.max_open_bytes));
        }
        Ok(Accepted {
            slot: Some(slot),
            key: None,
            len: c.len,
            last: c.last,
        })
    }

    /// Records an accepted chunk (called right after [`OpenChunks::check`], nothing between).
    pub fn commit(&mut self, a: Accepted) {
        match (a.slot, a.key) {
            (None, Some(key)) if a.last => self.remember(key),
            (None, Some(key)) => {
                self.bytes += a.len;
                self.open.push(Open {
                    key,
                    next: 1,
                    bytes: a.len,
                });
            }
            (Some(slot), _) if a.last => self.end(slot),
            (Some(slot), _) => {
                self.bytes += a.len;
                let o = &mut self.open[slot];
                o.next += 1;
                o.bytes += a.len;
            }
            (None, None) => {}
        }
    }

    /// Sequences open now (for tests and figures).
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    fn end(&mut self, slot: usize) {
        let o = self.open.swap_remove(slot);
        self.bytes -= o.bytes;
        self.remember(o.key);
    }

    fn remember(&mut self, key: Key) {
        if self.finished.len() == FINISHED_KEPT {
            self.finished.pop_front();
        }
        self.finished.push_back(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: ChunkBounds = ChunkBounds {
        max_event_bytes: 100,
        max_open: 2,
        max_open_bytes: 150,
    };

    fn chunk(id: &str, index: u64, len: usize, last: bool) -> ChunkIn<'_> {
        ChunkIn {
            channel: "private-a",
            event: "client-chunked-e",
            id,
            index,
            len,
            last,
        }
    }

    fn send(o: &mut OpenChunks, c: ChunkIn) -> Result<(), ChunkRefusal> {
        let a = o.check(&c, B)?;
        o.commit(a);
        Ok(())
    }

    #[test]
    fn a_sequence_in_order_opens_and_ends() {
        let mut o = OpenChunks::default();
        send(&mut o, chunk("x", 0, 40, false)).unwrap();
        send(&mut o, chunk("x", 1, 40, false)).unwrap();
        assert_eq!(o.open_count(), 1);
        send(&mut o, chunk("x", 2, 20, true)).unwrap();
        assert_eq!((o.open_count(), o.bytes), (0, 0));
        assert_eq!(
            send(&mut o, chunk("x", 3, 1, true)),
            Err(ChunkRefusal::Finished("x".into()))
        );
        assert_eq!(
            send(&mut o, chunk("x", 0, 1, true)),
            Err(ChunkRefusal::Finished("x".into()))
        );
    }

    #[test]
    fn gaps_repeats_and_unknown_ids_are_refused_without_effect() {
        let mut o = OpenChunks::default();
        assert_eq!(
            send(&mut o, chunk("y", 1, 1, false)),
            Err(ChunkRefusal::WrongId("y".into()))
        );
        send(&mut o, chunk("y", 0, 1, false)).unwrap();
        assert_eq!(
            send(&mut o, chunk("y", 2, 1, false)),
            Err(ChunkRefusal::Gap {
                got: 2,
                expected: 1
            })
        );
        assert_eq!(
            send(&mut o, chunk("y", 0, 1, false)),
            Err(ChunkRefusal::Repeat {
                got: 0,
                expected: 1
            })
        );
        send(&mut o, chunk("y", 1, 1, true)).unwrap();
    }

    #[test]
    fn an_overflow_abandons_the_sequence() {
        let mut o = OpenChunks::default();
        send(&mut o, chunk("z", 0, 60, false)).unwrap();
        assert_eq!(
            send(&mut o, chunk("z", 1, 41, false)),
            Err(ChunkRefusal::Overflow {
                id: "z".into(),
                max: 100
            })
        );
        assert_eq!((o.open_count(), o.bytes), (0, 0));
        assert_eq!(
            send(&mut o, chunk("z", 2, 1, true)),
            Err(ChunkRefusal::Finished("z".into()))
        );
    }

    #[test]
    fn open_ids_and_their_bytes_are_bounded() {
        let mut o = OpenChunks::default();
        send(&mut o, chunk("a", 0, 80, false)).unwrap();
        send(&mut o, chunk("b", 0, 60, false)).unwrap();
        assert_eq!(
            send(&mut o, chunk("c", 0, 1, false)),
            Err(ChunkRefusal::TooManyOpen(2))
        );
        // A one-chunk event takes no slot.
        send(&mut o, chunk("c", 0, 1, true)).unwrap();
        assert_eq!(
            send(&mut o, chunk("a", 1, 11, false)),
            Err(ChunkRefusal::TooManyBytes(150))
        );
        send(&mut o, chunk("a", 1, 11, true)).unwrap();
        assert_eq!((o.open_count(), o.bytes), (1, 60));
    }
}
