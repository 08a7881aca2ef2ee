//! Encoding server→client events, each straight into a WebSocket frame (see
//! [`crate::ws::frame::FrameBuf`]). Pusher double-encodes: `data` is a JSON *string* holding
//! JSON, except in `pusher:error`, whose `data` is an object (protocol doc §1.3).

use crate::ws::frame::FrameBuf;
use bytes::{BufMut, Bytes};
use serde::Serialize;

#[derive(Serialize)]
struct Event<'a> {
    event: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
    data: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
}

fn encode<T: Serialize>(v: &T, size_hint: usize) -> Bytes {
    let mut f = FrameBuf::with_capacity(size_hint);
    // Writing into memory cannot fail, and our types always serialize.
    simd_json::to_writer(f.payload().writer(), v).expect("in-memory serialization");
    f.finish_text()
}

/// A channel event, e.g. from the HTTP API: `{"event":..,"channel":..,"data":"<string>"}`.
pub fn channel_event(event: &str, channel: &str, data: &str, user_id: Option<&str>) -> Bytes {
    encode(
        &Event {
            event,
            channel: Some(channel),
            data,
            user_id,
        },
        48 + event.len() + channel.len() + data.len() + data.len() / 8,
    )
}

pub fn connection_established(socket_id: &str, activity_timeout: u64) -> Bytes {
    let data = format!(r#"{{"socket_id":"{socket_id}","activity_timeout":{activity_timeout}}}"#);
    encode(
        &Event {
            event: "pusher:connection_established",
            channel: None,
            data: &data,
            user_id: None,
        },
        128,
    )
}

pub fn subscription_succeeded(channel: &str) -> Bytes {
    channel_event(
        "pusher_internal:subscription_succeeded",
        channel,
        "{}",
        None,
    )
}

/// A channel-scoped refusal, in the shape soketi/sockudo send and pusher-js passes to
/// `channel.bind('pusher:subscription_error')`.
pub fn subscription_error(channel: &str, kind: &str, error: &str, status: u16) -> Bytes {
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
pub fn error(code: u16, message: &str) -> Bytes {
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

pub fn pong() -> Bytes {
    crate::ws::frame::text_frame(br#"{"event":"pusher:pong","data":"{}"}"#)
}

pub fn ping() -> Bytes {
    crate::ws::frame::text_frame(br#"{"event":"pusher:ping","data":"{}"}"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(f: &Bytes) -> &str {
        let skip = if f[1] < 126 {
            2
        } else if f[1] == 126 {
            4
        } else {
            10
        };
        std::str::from_utf8(&f[skip..]).unwrap()
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
    fn big_payload_uses_long_header() {
        let data = "x".repeat(70_000);
        let f = channel_event("e", "c", &data, None);
        assert_eq!(f[1], 127);
    }
}
