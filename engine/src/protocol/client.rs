//! Decoding client→server frames (simd-json). Clients send compact JSON with `data` as an
//! object (pusher-js) or, from some SDKs, as a JSON string; both are accepted.

use serde::Deserialize;
use simd_json::prelude::*;
use simd_json::OwnedValue;
use std::borrow::Cow;

/// Deepest JSON nesting accepted from a client; deeper input is refused before any recursion.
pub const MAX_DEPTH: usize = 32;

/// A decoded client message.
#[derive(Debug, PartialEq)]
pub enum ClientMsg {
    Subscribe {
        channel: String,
        auth: Option<String>,
        channel_data: Option<String>,
    },
    Unsubscribe {
        channel: String,
    },
    Ping,
    Pong,
    /// `pusher:signin`: `user_data` is the exact signed string.
    Signin {
        auth: String,
        user_data: String,
    },
    /// A `client-*` event: `data` is kept as the JSON text to relay.
    ClientEvent {
        event: String,
        channel: String,
        data: String,
    },
    /// Any other event name (answered with an error by the session).
    Other {
        event: String,
    },
}

/// Why a client frame was refused. Always the client's fault; the connection survives.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, too deep, or not an object with a string `event`.
    #[error("invalid message: {0}")]
    Invalid(&'static str),
    /// Known event, but a required field is missing or has the wrong type.
    #[error("invalid {event}: {what}")]
    BadField {
        event: &'static str,
        what: &'static str,
    },
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(default, borrow)]
    channel: Option<Cow<'a, str>>,
    #[serde(default)]
    data: Option<OwnedValue>,
}

/// Decodes one text message. `buf` is clobbered (simd-json parses in place).
pub fn decode(buf: &mut [u8]) -> Result<ClientMsg, DecodeError> {
    let mut buffers = simd_json::Buffers::with_max_depth(buf.len(), MAX_DEPTH);
    let env: Envelope<'_> = simd_json::serde::from_slice_with_buffers(buf, &mut buffers)
        .map_err(|_| DecodeError::Invalid("expected a JSON object with a string \"event\""))?;
    // `data` may arrive double-encoded (a JSON string holding an object).
    let data_obj = |event: &'static str| -> Result<OwnedValue, DecodeError> {
        match &env.data {
            Some(v) if v.is_object() => Ok(v.clone()),
            Some(v) if v.is_str() => {
                let mut inner = v.as_str().unwrap_or_default().as_bytes().to_vec();
                let mut b = simd_json::Buffers::with_max_depth(inner.len(), MAX_DEPTH);
                simd_json::to_owned_value_with_buffers(&mut inner, &mut b)
                    .ok()
                    .filter(|v| v.is_object())
                    .ok_or(DecodeError::BadField {
                        event,
                        what: "data must be an object",
                    })
            }
            _ => Err(DecodeError::BadField {
                event,
                what: "data must be an object",
            }),
        }
    };
    let opt_str =
        |v: &OwnedValue, k: &str, event: &'static str| -> Result<Option<String>, DecodeError> {
            match v.get(k) {
                None => Ok(None),
                Some(x) if x.is_null() => Ok(None),
                Some(x) => x
                    .as_str()
                    .map(|s| Some(s.to_string()))
                    .ok_or(DecodeError::BadField {
                        event,
                        what: "fields must be strings",
                    }),
            }
        };
    Ok(match env.event.as_ref() {
        "pusher:subscribe" => {
            let d = data_obj("pusher:subscribe")?;
            let channel =
                opt_str(&d, "channel", "pusher:subscribe")?.ok_or(DecodeError::BadField {
                    event: "pusher:subscribe",
                    what: "data.channel is required",
                })?;
            ClientMsg::Subscribe {
                channel,
                auth: opt_str(&d, "auth", "pusher:subscribe")?,
                channel_data: opt_str(&d, "channel_data", "pusher:subscribe")?,
            }
        }
        "pusher:unsubscribe" => {
            let d = data_obj("pusher:unsubscribe")?;
            let channel =
                opt_str(&d, "channel", "pusher:unsubscribe")?.ok_or(DecodeError::BadField {
                    event: "pusher:unsubscribe",
                    what: "data.channel is required",
                })?;
            ClientMsg::Unsubscribe { channel }
        }
        "pusher:signin" => {
            let d = data_obj("pusher:signin")?;
            let missing = DecodeError::BadField {
                event: "pusher:signin",
                what: "data.auth and data.user_data are required",
            };
            ClientMsg::Signin {
                auth: opt_str(&d, "auth", "pusher:signin")?.ok_or(missing.clone())?,
                user_data: opt_str(&d, "user_data", "pusher:signin")?.ok_or(missing)?,
            }
        }
        "pusher:ping" => ClientMsg::Ping,
        "pusher:pong" => ClientMsg::Pong,
        e if e.starts_with("client-") => {
            let channel = env.channel.as_deref().ok_or(DecodeError::BadField {
                event: "client event",
                what: "channel is required",
            })?;
            let data = match &env.data {
                None => String::new(),
                Some(v) if v.is_str() => v.as_str().unwrap_or_default().to_string(),
                Some(v) => {
                    simd_json::to_string(v).map_err(|_| DecodeError::Invalid("unencodable data"))?
                }
            };
            ClientMsg::ClientEvent {
                event: e.to_string(),
                channel: channel.to_string(),
                data,
            }
        }
        e => ClientMsg::Other {
            event: e.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Result<ClientMsg, DecodeError> {
        decode(&mut s.as_bytes().to_vec())
    }

    #[test]
    fn pusher_js_frames() {
        assert_eq!(
            d(r#"{"event":"pusher:subscribe","data":{"auth":"","channel":"public-chan"}}"#)
                .unwrap(),
            ClientMsg::Subscribe {
                channel: "public-chan".into(),
                auth: Some(String::new()),
                channel_data: None
            }
        );
        assert_eq!(
            d(r#"{"event":"pusher:unsubscribe","data":{"channel":"c"}}"#).unwrap(),
            ClientMsg::Unsubscribe {
                channel: "c".into()
            }
        );
        assert_eq!(
            d(r#"{"event":"pusher:ping","data":{}}"#).unwrap(),
            ClientMsg::Ping
        );
        assert_eq!(d(r#"{"event":"pusher:pong"}"#).unwrap(), ClientMsg::Pong);
        assert_eq!(
            d(r#"{"event":"client-typing","data":{"user":"alice"},"channel":"private-chan"}"#)
                .unwrap(),
            ClientMsg::ClientEvent {
                event: "client-typing".into(),
                channel: "private-chan".into(),
                data: r#"{"user":"alice"}"#.into()
            }
        );
        assert_eq!(
            d(r#"{"event":"pusher:subscribe","data":"{\"channel\":\"x\"}"}"#).unwrap(),
            ClientMsg::Subscribe {
                channel: "x".into(),
                auth: None,
                channel_data: None
            }
        );
    }

    #[test]
    fn refusals() {
        assert!(matches!(d("nope"), Err(DecodeError::Invalid(_))));
        assert!(matches!(d("[1]"), Err(DecodeError::Invalid(_))));
        assert!(matches!(d(r#"{"data":{}}"#), Err(DecodeError::Invalid(_))));
        assert!(matches!(d(r#"{"event":1}"#), Err(DecodeError::Invalid(_))));
        assert!(matches!(
            d(r#"{"event":"pusher:subscribe","data":{}}"#),
            Err(DecodeError::BadField { .. })
        ));
        assert!(matches!(
            d(r#"{"event":"pusher:subscribe","data":{"channel":5}}"#),
            Err(DecodeError::BadField { .. })
        ));
        let deep = format!(
            r#"{{"event":"x","data":{}{}}}"#,
            "[".repeat(5000),
            "]".repeat(5000)
        );
        assert!(matches!(d(&deep), Err(DecodeError::Invalid(_))));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = decode(&mut bytes.clone());
        }
    }
}
