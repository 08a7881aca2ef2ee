//! Encoding server→client events, each straight into a [`Frame`] (the JSON payload with
//! room for a WebSocket header in front, see [`crate::frame::FrameBuf`]). Pusher double-encodes: `data` is a JSON *string* holding
//! JSON, except in `pusher:error`, whose `data` is an object (protocol doc §1.3).

use crate::frame::{Frame, FrameBuf};
use bytes::BufMut;
use serde::Serialize;

#[derive(Serialize)]
struct Event<'a> {
    event: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
    data: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    /// The event's position in its channel's history (Raptor's extension, docs/history.md);
    /// pusher-js drops unknown top-level fields, so only history-aware clients see it.
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<u64>,
}

fn encode<T: Serialize>(v: &T, size_hint: usize) -> Frame {
    let mut f = FrameBuf::with_capacity(size_hint);
    // Writing into memory cannot fail, and our types always serialize.
    simd_json::to_writer(f.payload().writer(), v).expect("in-memory serialization");
    f.finish_text()
}

/// A channel event, e.g. from the HTTP API: `{"event":..,"channel":..,"data":"<string>"}`.
pub fn channel_event(event: &str, channel: &str, data: &str, user_id: Option<&str>) -> Frame {
    history_event(event, channel, data, user_id, None)
}

/// A channel event of a channel with history: [`channel_event`] with its `"offset"`.
pub fn history_event(
    event: &str,
    channel: &str,
    data: &str,
    user_id: Option<&str>,
    offset: Option<u64>,
) -> Frame {
    encode(
        &Event {
            event,
            channel: Some(channel),
            data,
            user_id,
            offset,
        },
        64 + event.len() + channel.len() + data.len() + data.len() / 8,
    )
}

/// An event of `channel` for the subscribers of a wildcard subscription `pattern`
/// (docs/protocol.md "Wildcard subscriptions"): `channel` is the pattern, so pusher-js hands
/// it to `pusher.subscribe(pattern)`'s bindings; `source_channel` names the channel it was
/// published on (pusher-js drops unknown top-level fields; a Raptor-aware client reads it).
pub fn pattern_event(
    event: &str,
    pattern: &str,
    channel: &str,
    data: &str,
    user_id: Option<&str>,
) -> Frame {
    #[derive(Serialize)]
    struct PatternEvent<'a> {
        event: &'a str,
        channel: &'a str,
        data: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        user_id: Option<&'a str>,
        source_channel: &'a str,
    }
    let size = 80 + event.len() + pattern.len() + channel.len() + data.len() + data.len() / 8;
    let ev = PatternEvent {
        event,
        channel: pattern,
        data,
        user_id,
        source_channel: channel,
    };
    encode(&ev, size)
}

/// What a subscription to a channel with history learns of its position, right after
/// `subscription_succeeded` (docs/history.md, "Recovery"): `raptor:recovery`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecoveryResult<'a> {
    /// The client asked to recover (sent a position).
    pub was_recovering: bool,
    /// Everything after the client's position follows this event, exactly once, in order.
    /// False: nothing is replayed.
    pub recovered: bool,
    pub epoch: &'a str,
    /// The position the client is at once it has processed this event: its own when
    /// recovered (the replayed events advance it), the channel's newest otherwise.
    pub offset: u64,
    /// Events replayed after this one.
    pub replayed: usize,
}

pub fn recovery(channel: &str, r: &RecoveryResult<'_>) -> Frame {
    let data = simd_json::to_string(r).expect("in-memory serialization");
    channel_event("raptor:recovery", channel, &data, None)
}

pub fn connection_established(socket_id: &str, activity_timeout: u64) -> Frame {
    let data = format!(r#"{{"socket_id":"{socket_id}","activity_timeout":{activity_timeout}}}"#);
    encode(
        &Event {
            event: "pusher:connection_established",
            channel: None,
            data: &data,
            user_id: None,
            offset: None,
        },
        128,
    )
}

pub fn subscription_succeeded(channel: &str) -> Frame {
    channel_event(
        "pusher_internal:subscription_succeeded",
        channel,
        "{}",
        None,
    )
}

/// A channel-scoped refusal, in the shape soketi/sockudo send and pusher-js passes to
/// `channel.bind('pusher:subscription_error')`.
pub fn subscription_error(channel: &str, kind: &str, error: &str, status: u16) -> Frame {
    #[derive(Serialize)]
    struct E<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        error: &'a str,
        status: u16,
    }
    let data = simd_json::to_string(&E {
        kind,
        error,
        status,
    })
    .expect("in-memory serialization");
    channel_event("pusher:subscription_error", channel, &data, None)
}

/// `{"event":"pusher:error","data":{"code":..,"message":..}}`.
pub fn error(code: u16, message: &str) -> Frame {
    #[derive(Serialize)]
    struct D<'a> {
        code: u16,
        message: &'a str,
    }
    #[derive(Serialize)]
    struct E<'a> {
        event: &'a str,
        data: D<'a>,
    }
    encode(
        &E {
            event: "pusher:error",
            data: D { code, message },
        },
        64 + message.len(),
    )
}

/// Writes `s` as a JSON string literal (quotes and escapes).
fn json_str(s: &str) -> String {
    simd_json::to_string(s).expect("in-memory serialization")
}

/// `subscription_succeeded` for a presence channel. `members` are `(user_id, user_info JSON)`
/// in a stable order; `user_info` text is already valid compact JSON.
pub fn presence_succeeded<'a>(
    channel: &str,
    members: impl Iterator<Item = (&'a str, Option<&'a str>)>,
) -> Frame {
    let mut ids = String::from("[");
    let mut hash = String::from("{");
    let mut count = 0usize;
    for (id, info) in members {
        if count > 0 {
            ids.push(',');
            hash.push(',');
        }
        let id = json_str(id);
        ids.push_str(&id);
        hash.push_str(&id);
        hash.push(':');
        hash.push_str(info.unwrap_or("null"));
        count += 1;
    }
    ids.push(']');
    hash.push('}');
    let data = format!(r#"{{"presence":{{"ids":{ids},"hash":{hash},"count":{count}}}}}"#);
    channel_event(
        "pusher_internal:subscription_succeeded",
        channel,
        &data,
        None,
    )
}

pub fn member_added(channel: &str, user_id: &str, user_info: Option<&str>) -> Frame {
    let data = match user_info {
        Some(info) => format!(r#"{{"user_id":{},"user_info":{info}}}"#, json_str(user_id)),
        None => format!(r#"{{"user_id":{}}}"#, json_str(user_id)),
    };
    channel_event("pusher_internal:member_added", channel, &data, None)
}

/// Raptor's `raptor:member_updated`: the app replaced a member's `user_info` (data
/// double-encoded like `member_added`'s). Not `pusher_internal:*`: pusher-js drops internal
/// events it does not know, and passes this one to `channel.bind`.
pub fn member_updated(channel: &str, user_id: &str, user_info: &str) -> Frame {
    let data = format!(
        r#"{{"user_id":{},"user_info":{user_info}}}"#,
        json_str(user_id)
    );
    channel_event(MEMBER_UPDATED, channel, &data, None)
}

/// The name of the member-updated event (docs/protocol.md).
pub const MEMBER_UPDATED: &str = "raptor:member_updated";

pub fn member_removed(channel: &str, user_id: &str) -> Frame {
    let data = format!(r#"{{"user_id":{}}}"#, json_str(user_id));
    channel_event("pusher_internal:member_removed", channel, &data, None)
}

pub fn subscription_count(channel: &str, n: u32) -> Frame {
    channel_event(
        "pusher_internal:subscription_count",
        channel,
        &format!(r#"{{"subscription_count":{n}}}"#),
        None,
    )
}

/// `{"event":"pusher:cache_miss","channel":"cache-x"}` (no data, like Pusher).
pub fn cache_miss(channel: &str) -> Frame {
    Frame::text(
        format!(
            r#"{{"event":"pusher:cache_miss","channel":{}}}"#,
            json_str(channel)
        )
        .as_bytes(),
    )
}

/// `{"event":"pusher:signin_success","data":{"user_data":"<the signed string>"}}`.
pub fn signin_success(user_data: &str) -> Frame {
    Frame::text(
        format!(
            r#"{{"event":"pusher:signin_success","data":{{"user_data":{}}}}}"#,
            json_str(user_data)
        )
        .as_bytes(),
    )
}

/// `pusher_internal:watchlist_events` with one `{name, user_ids}` entry.
pub fn watchlist_event(online: bool, user_ids: &[&str]) -> Frame {
    let ids: Vec<String> = user_ids.iter().map(|i| json_str(i)).collect();
    let name = if online { "online" } else { "offline" };
    Frame::text(
        format!(
            r#"{{"event":"pusher_internal:watchlist_events","data":{{"events":[{{"name":"{name}","user_ids":[{}]}}]}}}}"#,
            ids.join(",")
        )
        .as_bytes(),
    )
}

pub fn pong() -> Frame {
    Frame::text(br#"{"event":"pusher:pong","data":"{}"}"#)
}

pub fn ping() -> Frame {
    Frame::text(br#"{"event":"pusher:ping","data":"{}"}"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(f: &Frame) -> &str {
        std::str::from_utf8(f.payload()).unwrap()
    }

    #[test]
    fn exact_json() {
        assert_eq!(
            payload(&channel_event(
                "my-event",
                "c",
                "{\"hello\": \"world\"}",
                None
            )),
            r#"{"event":"my-event","channel":"c","data":"{\"hello\": \"world\"}"}"#
        );
        assert_eq!(
            payload(&connection_established("1.2", 120)),
            r#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"1.2\",\"activity_timeout\":120}"}"#
        );
        assert_eq!(
            payload(&subscription_succeeded("c")),
            r#"{"event":"pusher_internal:subscription_succeeded","channel":"c","data":"{}"}"#
        );
        assert_eq!(
            payload(&error(4300, "bad \"x\"")),
            r#"{"event":"pusher:error","data":{"code":4300,"message":"bad \"x\""}}"#
        );
        assert_eq!(
            payload(&subscription_error("private-x", "AuthError", "no", 401)),
            r#"{"event":"pusher:subscription_error","channel":"private-x","data":"{\"type\":\"AuthError\",\"error\":\"no\",\"status\":401}"}"#
        );
    }

    #[test]
    fn presence_and_user_frames() {
        let m = [("u-7", Some(r#"{"name":"Bob"}"#)), ("8", None)];
        assert_eq!(
            payload(&presence_succeeded("presence-room", m.iter().copied())),
            r#"{"event":"pusher_internal:subscription_succeeded","channel":"presence-room","data":"{\"presence\":{\"ids\":[\"u-7\",\"8\"],\"hash\":{\"u-7\":{\"name\":\"Bob\"},\"8\":null},\"count\":2}}"}"#
        );
        assert_eq!(
            payload(&member_added("presence-r", "3", Some(r#"{"n":1}"#))),
            r#"{"event":"pusher_internal:member_added","channel":"presence-r","data":"{\"user_id\":\"3\",\"user_info\":{\"n\":1}}"}"#
        );
        assert_eq!(
            payload(&member_removed("presence-r", "3")),
            r#"{"event":"pusher_internal:member_removed","channel":"presence-r","data":"{\"user_id\":\"3\"}"}"#
        );
        assert_eq!(
            payload(&cache_miss("cache-x")),
            r#"{"event":"pusher:cache_miss","channel":"cache-x"}"#
        );
        assert_eq!(
            payload(&signin_success(r#"{"id":"42"}"#)),
            r#"{"event":"pusher:signin_success","data":{"user_data":"{\"id\":\"42\"}"}}"#
        );
        assert_eq!(
            payload(&watchlist_event(true, &["7"])),
            r#"{"event":"pusher_internal:watchlist_events","data":{"events":[{"name":"online","user_ids":["7"]}]}}"#
        );
        assert_eq!(
            payload(&channel_event("client-x", "presence-r", "{}", Some("u"))),
            r#"{"event":"client-x","channel":"presence-r","data":"{}","user_id":"u"}"#
        );
    }

    #[test]
    fn big_payload_uses_long_header() {
        let data = "x".repeat(70_000);
        let f = channel_event("e", "c", &data, None);
        assert_eq!(f.ws()[1], 127);
    }
}
