//! Channel streams: what a channel remembers of its ordered events, kept by the shard that
//! owns the channel on this node and entered by one call ([`ChannelStreams::append`]) in
//! both modes: on a single node the owner shard ordered the event itself; in a cluster the
//! owning node ordered it and every node's owner shard appends the same event.
//!
//! Today a stream retains at most one event, for cache channels: the last one, for
//! [`CACHE_TTL`], replayed to new subscribers and answered to `info=cache` (docs/cluster.md
//! for the cluster copies). A stream is also where a channel's position (an epoch and an
//! offset, +1 per event) will live, and a history of more than one event: the history issue
//! fills [`ChannelStream`], and nothing else needs to change.
//!
//! **Invariant:** bounded: a stream holds at most its capacity (1 today), and streams whose
//! retained events all expired are dropped by [`ChannelStreams::expire`].

use crate::app::{AppIdx, PerApp};
use crate::frame::Frame;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a cache channel's event is retained (Pusher: 30 minutes).
pub const CACHE_TTL: Duration = Duration::from_secs(30 * 60);

/// Events a cache channel's stream retains.
const CACHE_CAPACITY: usize = 1;

/// One retained event.
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
}

impl ChannelStream {
    /// Retains `event`, dropping the oldest beyond the capacity.
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

    /// Drops what expired at `now`; true when nothing is left.
    fn expire(&mut self, now: Instant) -> bool {
        self.retained
            .retain(|e| now.saturating_duration_since(e.stored) < CACHE_TTL);
        self.retained.is_empty()
    }
}

/// The streams of the channels this shard owns (on this node), per app.
#[derive(Default)]
pub struct ChannelStreams {
    apps: PerApp<HashMap<Arc<str>, ChannelStream>>,
}

impl ChannelStreams {
    pub fn new() -> ChannelStreams {
        ChannelStreams::default()
    }

    /// Appends an ordered event that the channel retains (a cache channel's API events).
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

    /// The newest live retained event of `channel`, if any, and its remaining TTL.
    pub fn last(&self, app: AppIdx, channel: &str, now: Instant) -> Option<(&Stored, Duration)> {
        self.apps.get(app)?.get(channel)?.last(now)
    }

    /// Drops expired events and the streams left empty (called by the sweeper), bounding
    /// memory by the channels with a live retained event.
    pub fn expire(&mut self, now: Instant) {
        for t in self.apps.iter_mut() {
            t.retain(|_, s| !s.expire(now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(data: &str, at: Instant) -> Stored {
        Stored {
            frame: Frame::text(data.as_bytes()),
            data: Arc::from(data),
            stored: at,
        }
    }

    #[test]
    fn a_cache_stream_keeps_the_last_event_for_its_ttl() {
        let t0 = Instant::now();
        let mut s = ChannelStream::default();
        assert!(s.last(t0).is_none());
        s.append(stored("one", t0));
        s.append(stored("two", t0 + Duration::from_secs(1)));
        let (e, left) = s.last(t0 + Duration::from_secs(1)).unwrap();
        assert_eq!((&*e.data, left), ("two", CACHE_TTL));
        assert_eq!(s.retained.len(), 1, "capacity 1");
        let late = t0 + Duration::from_secs(1) + CACHE_TTL;
        assert!(s.last(late).is_none());
        assert!(s.expire(late));
    }

    #[test]
    fn streams_are_per_app_and_channel_and_expire_whole() {
        let t0 = Instant::now();
        let mut all = ChannelStreams::new();
        let c: Arc<str> = Arc::from("cache-x");
        all.append(3, &c, Frame::text(b"f"), Arc::from("d"), t0);
        assert!(all.last(3, "cache-x", t0).is_some());
        assert!(all.last(0, "cache-x", t0).is_none());
        assert!(all.last(3, "cache-y", t0).is_none());
        all.expire(t0 + CACHE_TTL);
        assert!(
            all.last(3, "cache-x", t0).is_none(),
            "the stream itself is gone"
        );
        assert!(all.apps.get(3).unwrap().is_empty());
    }
}
