//! The unit of the ordered-event pipeline: a channel event as an edge builds it (typed, not
//! yet encoded), on its way to its channel's order point, which encodes it once
//! ([`Event::encode`]) into the [`Frame`] every recipient and every transport shares.
//!
//! Edges (the HTTP API, a client event) build an [`Event`]; the order point (the channel's
//! owner shard on one node, the owning node's gateway in a cluster) encodes it and enters it
//! in the channel's stream (`Shard::order`). A new kind of ordered event (an edit, a delete,
//! one chunk of a large payload) is a new [`Event`] shape here and its encoding; the path
//! from edge to fan-out stays the one below.

use crate::channel::history::{Entry, Kind};
use crate::channel::name::ChannelKind;
use crate::frame::Frame;
use crate::protocol::server as frames;
use std::sync::Arc;
use std::time::Instant;

/// Where an event entered: what the channel's stream keeps of it depends on this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `POST /apps/{id}/events` or `/batch_events`.
    Api,
    /// A client event (`client-*`) from a subscribed connection.
    Client,
}

/// One channel event, as published: its name, its `data` (the string Pusher relays) and,
/// for a client event on a presence channel, the sender's user id.
#[derive(Debug, Clone)]
pub struct Event {
    pub name: Box<str>,
    /// Shared with what a cache channel's stream retains for `info=cache`.
    pub data: Arc<str>,
    pub user_id: Option<Arc<str>>,
    pub source: Source,
}

impl Event {
    /// The event's one encoding for `channel` (the channel name is part of the message).
    pub fn encode(&self, channel: &str) -> Frame {
        frames::channel_event(&self.name, channel, &self.data, self.user_id.as_deref())
    }

    /// The event as the history of `channel` stores it, at `offset`: encoded once, with
    /// its offset (docs/history.md), replayed as is.
    pub fn into_entry(self, channel: &str, kind: Kind, offset: u64, stored: Instant) -> Entry {
        let frame = frames::history_event(
            &self.name,
            channel,
            &self.data,
            self.user_id.as_deref(),
            Some(offset),
        );
        Entry {
            offset,
            kind,
            name: self.name,
            data: self.data,
            user_id: self.user_id,
            frame,
            time_ms: crate::stats::unix_ms(),
            stored,
            edited: false,
            deleted: false,
        }
    }

    /// `raptor:message_edit`: the message at `offset` (named `name`) now carries `data`.
    pub fn edit(offset: u64, name: &str, data: &str) -> Event {
        #[derive(serde::Serialize)]
        struct Edit<'a> {
            offset: u64,
            event: &'a str,
            data: &'a str,
        }
        let body = Edit {
            offset,
            event: name,
            data,
        };
        Event::api(
            "raptor:message_edit",
            &simd_json::to_string(&body).expect("in-memory serialization"),
        )
    }

    /// `raptor:message_delete`: the message at `offset` (named `name`) was deleted.
    pub fn delete(offset: u64, name: &str) -> Event {
        #[derive(serde::Serialize)]
        struct Delete<'a> {
            offset: u64,
            event: &'a str,
        }
        let body = Delete {
            offset,
            event: name,
        };
        Event::api(
            "raptor:message_delete",
            &simd_json::to_string(&body).expect("in-memory serialization"),
        )
    }

    fn api(name: &str, data: &str) -> Event {
        Event {
            name: name.into(),
            data: Arc::from(data),
            user_id: None,
            source: Source::Api,
        }
    }

    /// What `channel`'s stream keeps of this event, if anything: a cache channel keeps the
    /// `data` of its API events (Pusher replays neither client events nor member events).
    pub fn retained_by(&self, channel: &str) -> Option<Arc<str>> {
        (self.source == Source::Api && ChannelKind::of(channel).cache).then(|| self.data.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(source: Source, user_id: Option<&str>) -> Event {
        Event {
            name: "my-event".into(),
            data: Arc::from(r#"{"a":1}"#),
            user_id: user_id.map(Arc::from),
            source,
        }
    }

    #[test]
    fn encodes_the_pusher_message_once() {
        let f = event(Source::Client, Some("u1")).encode("presence-r");
        assert_eq!(
            std::str::from_utf8(f.payload()).unwrap(),
            r#"{"event":"my-event","channel":"presence-r","data":"{\"a\":1}","user_id":"u1"}"#
        );
        assert_eq!(f.ws().len(), 2 + f.payload().len());
    }

    #[test]
    fn a_history_entry_carries_its_offset_on_the_wire() {
        let e = event(Source::Api, None).into_entry("chat", Kind::Message, 7, Instant::now());
        assert_eq!(
            std::str::from_utf8(e.frame.payload()).unwrap(),
            r#"{"event":"my-event","channel":"chat","data":"{\"a\":1}","offset":7}"#
        );
        let edit = Event::edit(7, "my-event", "x\"y");
        assert_eq!(&*edit.name, "raptor:message_edit");
        assert_eq!(
            &*edit.data,
            r#"{"offset":7,"event":"my-event","data":"x\"y"}"#
        );
        assert_eq!(
            &*Event::delete(7, "my-event").data,
            r#"{"offset":7,"event":"my-event"}"#
        );
    }

    #[test]
    fn only_api_events_on_cache_channels_are_retained() {
        let api = event(Source::Api, None);
        assert_eq!(api.retained_by("cache-x").as_deref(), Some(r#"{"a":1}"#));
        assert_eq!(
            api.retained_by("private-cache-x").as_deref(),
            Some(r#"{"a":1}"#)
        );
        assert!(api.retained_by("x").is_none());
        assert!(event(Source::Client, None)
            .retained_by("private-cache-x")
            .is_none());
    }
}
