//! Pusher protocol v7 messages as a client sees them: the only module that knows their JSON.

use std::borrow::Cow;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;

pub const CONNECTION_ESTABLISHED: &str = "pusher:connection_established";
pub const SUBSCRIPTION_SUCCEEDED: &str = "pusher_internal:subscription_succeeded";
pub const MEMBER_ADDED: &str = "pusher_internal:member_added";
pub const PING: &str = "pusher:ping";
pub const ERROR: &str = "pusher:error";
/// soketi sends this on a rejected subscription; the official protocol only has `pusher:error`
pub const SUBSCRIPTION_ERROR: &str = "pusher:subscription_error";

/// How often otherwise silent connections send `pusher:ping`. Some servers (soketi) close
/// connections that send nothing for 120 s even though they ping clients themselves.
pub const KEEPALIVE: Duration = Duration::from_secs(30);

/// One message from the server, borrowing from the frame where JSON escaping allows.
#[derive(Debug, Deserialize)]
pub struct Incoming<'a> {
    #[serde(borrow)]
    pub event: Cow<'a, str>,
    #[serde(borrow, default)]
    pub channel: Option<Cow<'a, str>>,
    /// kept raw: servers send a JSON string (double encoding) or, for some events, an object
    #[serde(borrow, default)]
    pub data: Option<&'a RawValue>,
}

impl<'a> Incoming<'a> {
    pub fn parse(text: &'a [u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(text)
    }

    /// `data` as text: the decoded string when the server double-encoded it, else the raw JSON.
    pub fn data_text(&self) -> Option<Cow<'a, str>> {
        let raw = self.data?.get();
        if raw.starts_with('"') {
            serde_json::from_str::<Cow<'a, str>>(raw).ok()
        } else {
            Some(Cow::Borrowed(raw))
        }
    }

    /// Whether this event is addressed to `channel`.
    pub fn is_for(&self, channel: &str) -> bool {
        self.channel.as_deref() == Some(channel)
    }
}

/// The `socket_id` from a `pusher:connection_established` message.
pub fn socket_id(msg: &Incoming<'_>) -> Option<String> {
    #[derive(Deserialize)]
    struct Established {
        socket_id: String,
    }
    let text = msg.data_text()?;
    serde_json::from_str::<Established>(&text)
        .ok()
        .map(|e| e.socket_id)
}

/// The `user_id` from a `pusher_internal:member_added` message.
pub fn member_user_id(msg: &Incoming<'_>) -> Option<String> {
    #[derive(Deserialize)]
    struct Member<'b> {
        #[serde(borrow)]
        user_id: Cow<'b, str>,
    }
    let text = msg.data_text()?;
    serde_json::from_str::<Member<'_>>(&text)
        .ok()
        .map(|m| m.user_id.into_owned())
}

pub fn subscribe_public(channel: &str) -> String {
    json!({"event": "pusher:subscribe", "data": {"auth": "", "channel": channel}}).to_string()
}

pub fn subscribe_presence(channel: &str, auth: &str, channel_data: &str) -> String {
    json!({"event": "pusher:subscribe",
           "data": {"auth": auth, "channel": channel, "channel_data": channel_data}})
    .to_string()
}

pub fn unsubscribe(channel: &str) -> String {
    json!({"event": "pusher:unsubscribe", "data": {"channel": channel}}).to_string()
}

pub fn ping() -> &'static str {
    r#"{"event":"pusher:ping","data":{}}"#
}

pub fn pong() -> &'static str {
    r#"{"event":"pusher:pong","data":{}}"#
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_connection_established() {
        let raw = br#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"1.2\",\"activity_timeout\":120}"}"#;
        let msg = Incoming::parse(raw).unwrap();
        assert_eq!(msg.event, CONNECTION_ESTABLISHED);
        assert_eq!(socket_id(&msg).as_deref(), Some("1.2"));
    }

    #[test]
    fn data_text_handles_string_and_object() {
        let s = Incoming::parse(br#"{"event":"e","channel":"c","data":"{\"a\":1}"}"#).unwrap();
        assert_eq!(s.data_text().as_deref(), Some(r#"{"a":1}"#));
        assert!(s.is_for("c"));
        let o = Incoming::parse(br#"{"event":"pusher:error","data":{"code":4001}}"#).unwrap();
        assert_eq!(o.data_text().as_deref(), Some(r#"{"code":4001}"#));
        assert!(!o.is_for("c"));
    }

    #[test]
    fn reads_member_added() {
        let raw = br#"{"event":"pusher_internal:member_added","channel":"presence-x","data":"{\"user_id\":\"u1\",\"user_info\":{}}"}"#;
        let msg = Incoming::parse(raw).unwrap();
        assert_eq!(member_user_id(&msg).as_deref(), Some("u1"));
    }

    #[test]
    fn subscribe_shapes() {
        assert_eq!(
            subscribe_public("c"),
            r#"{"data":{"auth":"","channel":"c"},"event":"pusher:subscribe"}"#
        );
        let v: serde_json::Value = serde_json::from_str(&subscribe_presence(
            "presence-x",
            "k:s",
            r#"{"user_id":"1"}"#,
        ))
        .unwrap();
        assert_eq!(v["data"]["channel_data"], r#"{"user_id":"1"}"#);
    }
}
