//! Decoding client→server frames (simd-json). Clients send compact JSON with `data` as an
//! object (pusher-js) or, from some SDKs, as a JSON string; both are accepted.

use serde::Deserialize;
use simd_json::prelude::*;
use simd_json::OwnedValue;
use std::borrow::Cow;

/// Deepest JSON nesting accepted from a client; deeper input is refused before any recursion.
pub const MAX_DEPTH: usize = 32;

/// Positions one `raptor:recover` may carry at most.
pub const MAX_RECOVER_POSITIONS: usize = 1000;

/// A position a client asks to recover from (docs/history.md): after the event `offset`
/// of `epoch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoverFrom {
    pub offset: u64,
    pub epoch: String,
}

/// A decoded client message.
#[derive(Debug, PartialEq)]
pub enum ClientMsg {
    Subscribe {
        channel: String,
        auth: Option<String>,
        channel_data: Option<String>,
        /// Raptor's extension: `"recover":true,"offset":..,"epoch":..` in the data.
        recover: Option<RecoverFrom>,
    },
    /// `raptor:recover`: positions to recover from in the next subscribe of each channel
    /// (how an unmodified pusher-js, whose subscribe frame is fixed, asks to recover).
    Recover {
        positions: Vec<(String, RecoverFrom)>,
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
            let recover = match d.get("recover").and_then(|v| v.as_bool()) {
                Some(true) => Some(position(&d, "pusher:subscribe")?),
                _ => None,
            };
            ClientMsg::Subscribe {
                channel,
                auth: opt_str(&d, "auth", "pusher:subscribe")?,
                channel_data: opt_str(&d, "channel_data", "pusher:subscribe")?,
                recover,
            }
        }
        "raptor:recover" => {
            let d = data_obj("raptor:recover")?;
            let bad = DecodeError::BadField {
                event: "raptor:recover",
                what: "data.positions must be an object of {offset, epoch} (at most 1000)",
            };
            let all = d
                .get("positions")
                .and_then(|p| p.as_object())
                .ok_or(bad.clone())?;
            if all.len() > MAX_RECOVER_POSITIONS {
                return Err(bad);
            }
            // A malformed position is left out: the others still count (its channel
            // subscribes without recovering, and says so).
            let positions = all
                .iter()
                .filter_map(|(channel, p)| Some((channel.to_string(), position(p, "x").ok()?)))
                .collect();
            ClientMsg::Recover { positions }
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

/// `{"offset": <u64>, "epoch": <string>}` within `v`.
fn position(v: &OwnedValue, event: &'static str) -> Result<RecoverFrom, DecodeError> {
    let bad = DecodeError::BadField {
        event,
        what: "a position needs offset (an unsigned integer) and epoch (a string)",
    };
    let offset = v
        .get("offset")
        .and_then(|o| o.as_u64())
        .ok_or(bad.clone())?;
    let epoch = v.get("epoch").and_then(|e| e.as_str()).ok_or(bad.clone())?;
    // An empty epoch is a position no stream has ("not recovered"), as after an
    // unavailable answer; it is not malformed.
    if epoch.len() > 64 {
        return Err(bad);
    }
    Ok(RecoverFrom {
        offset,
        epoch: epoch.to_string(),
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
                channel_data: None,
                recover: None
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
                channel_data: None,
                recover: None
            }
        );
    }

    #[test]
    fn recovery_requests() {
        let from = RecoverFrom {
            offset: 41,
            epoch: "qFhv".into(),
        };
        assert_eq!(
            d(r#"{"event":"pusher:subscribe","data":{"channel":"chat","recover":true,"offset":41,"epoch":"qFhv"}}"#)
                .unwrap(),
            ClientMsg::Subscribe {
                channel: "chat".into(),
                auth: None,
                channel_data: None,
                recover: Some(from.clone())
            }
        );
        assert_eq!(
            d(r#"{"event":"raptor:recover","data":{"positions":{"chat":{"offset":41,"epoch":"qFhv"}}}}"#)
                .unwrap(),
            ClientMsg::Recover {
                positions: vec![("chat".into(), from)]
            }
        );
        assert_eq!(
            d(r#"{"event":"raptor:recover","data":{"positions":{"a":{"offset":"1","epoch":"e"},"b":{"offset":2,"epoch":""}}}}"#)
                .unwrap(),
            ClientMsg::Recover {
                positions: vec![(
                    "b".into(),
                    RecoverFrom {
                        offset: 2,
                        epoch: String::new()
                    }
                )]
            },
            "a malformed position is left out, an empty epoch is kept"
        );
        for bad in [
            r#"{"event":"pusher:subscribe","data":{"channel":"c","recover":true,"offset":-1,"epoch":"e"}}"#,
            r#"{"event":"pusher:subscribe","data":{"channel":"c","recover":true,"offset":1}}"#,
            r#"{"event":"raptor:recover","data":{"positions":[]}}"#,
        ] {
            assert!(matches!(d(bad), Err(DecodeError::BadField { .. })), "{bad}");
        }
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
