//! Server-Sent Events for receive-only clients (a browser's `EventSource`, `curl -N`):
//! `GET {path}/app/{key}/sse?channel=a&channel=b[&token=…]`. The session subscribes to the
//! channels through the same commands as any client, so names, limits and permissions are
//! checked the same way; private and presence channels take an access token's read grant
//! (docs/tokens.md), since a browser's `EventSource` can send neither headers nor a body.
//!
//! Each Pusher event is one SSE event whose `data` is the event's JSON as a WebSocket client
//! gets it. Once a followed channel keeps history, every event carries an `id`: the position
//! of each followed channel (`epoch:offset`, comma-separated, in the order of the
//! `channel` parameters, empty for a channel without history). A browser sends the last one
//! back as `Last-Event-ID` when it reconnects, and the session recovers those channels from
//! there (docs/history.md): nothing missed, nothing twice, or `raptor:recovery` says it
//! could not.

use super::Resume;
use crate::channel::history::Position;
use crate::channel::name::{Access, ChannelKind};
use crate::session::Connection;
use crate::shard::Shard;
use serde::Deserialize;
use std::borrow::Cow;
use std::rc::Rc;
use std::sync::Arc;

/// What an event stream follows.
#[derive(Debug)]
pub struct Follow {
    pub channels: Vec<String>,
    /// Where to resume each channel (from `Last-Event-ID`).
    pub resume: Resume,
}

impl Follow {
    /// The `channel` parameters (at least one, at most `max`), and the positions of
    /// `last_event_id` when it names one per channel.
    pub fn new(
        channels: Vec<String>,
        last_event_id: Option<&str>,
        max: usize,
    ) -> Result<Follow, String> {
        if channels.is_empty() {
            return Err("name at least one channel (?channel=…, repeated for more)".into());
        }
        if channels.len() > max {
            return Err(format!(
                "at most {max} channels (limits.max_subscriptions_per_connection)"
            ));
        }
        let resume = last_event_id
            .and_then(|id| parse_id(id, channels.len()))
            .unwrap_or_else(|| vec![None; channels.len()]);
        Ok(Follow { channels, resume })
    }

    /// A channel needs an access token (private, presence, encrypted, or a user's own).
    pub fn needs_token(&self) -> bool {
        self.channels
            .iter()
            .any(|c| ChannelKind::of(c).access != Access::Public)
    }
}

/// An event id's positions, one per channel; `None` when it does not have `n` entries.
fn parse_id(id: &str, n: usize) -> Option<Resume> {
    let entries: Vec<&str> = id.split(',').collect();
    if entries.len() != n {
        return None;
    }
    entries
        .into_iter()
        .map(|e| {
            if e.is_empty() {
                return Some(None);
            }
            let (epoch, offset) = e.split_once(':')?;
            let ok = !epoch.is_empty()
                && epoch.len() <= 64
                && epoch.bytes().all(|b| b.is_ascii_alphanumeric());
            ok.then_some(())?;
            Some(Some(Position {
                epoch: Arc::from(epoch),
                offset: offset.parse().ok()?,
            }))
        })
        .collect()
}

/// Subscribes a new event-stream session to what it follows, as its client would.
pub(super) fn subscribe_all(shard: &Rc<Shard>, conn: &Rc<Connection>, f: &Follow) {
    // A presence member is the token's user (a token-authorized presence subscription must
    // name it; `commands` checks it against the token).
    let sub = conn
        .token
        .borrow()
        .as_ref()
        .and_then(|t| t.claims.sub.clone());
    for (channel, at) in f.channels.iter().zip(&f.resume) {
        let mut data = serde_json::json!({ "channel": channel });
        if ChannelKind::of(channel).access == Access::Presence {
            let member = serde_json::json!({ "user_id": sub.clone().unwrap_or_default() });
            data["channel_data"] = member.to_string().into();
        }
        if let Some(p) = at {
            data["recover"] = true.into();
            data["offset"] = p.offset.into();
            data["epoch"] = p.epoch.as_ref().into();
        }
        let msg = serde_json::json!({ "event": "pusher:subscribe", "data": data });
        let mut bytes = msg.to_string().into_bytes();
        // A subscribe is never a client event.
        let _ = crate::commands::on_message(shard, conn, &mut bytes);
    }
}

/// The positions of the channels a stream follows, as its events pass.
pub(super) struct Cursor {
    channels: Vec<String>,
    positions: Vec<Option<(Arc<str>, u64)>>,
}

/// What the cursor reads of an event.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow, default)]
    channel: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    data: Option<Cow<'a, str>>,
    #[serde(default)]
    offset: Option<u64>,
}

#[derive(Deserialize)]
struct Recovery {
    epoch: String,
    offset: u64,
}

impl Cursor {
    pub(super) fn new(f: &Follow) -> Cursor {
        Cursor {
            channels: f.channels.clone(),
            positions: f
                .resume
                .iter()
                .map(|p| p.as_ref().map(|p| (p.epoch.clone(), p.offset)))
                .collect(),
        }
    }

    /// Moves past the event `payload`; its id (none while no channel has a position).
    pub(super) fn advance(&mut self, payload: &[u8]) -> Option<String> {
        if let Ok(h) = serde_json::from_slice::<Head<'_>>(payload) {
            let at = h
                .channel
                .as_deref()
                .and_then(|c| self.channels.iter().position(|x| x == c));
            if let Some(i) = at {
                if h.event == "raptor:recovery" {
                    if let Some(r) = h
                        .data
                        .and_then(|d| serde_json::from_str::<Recovery>(&d).ok())
                    {
                        self.positions[i] = Some((Arc::from(r.epoch), r.offset));
                    }
                } else if let (Some(n), Some(p)) = (h.offset, self.positions[i].as_mut()) {
                    p.1 = n;
                }
            }
        }
        self.positions.iter().any(Option::is_some).then(|| {
            let entries: Vec<String> = self
                .positions
                .iter()
                .map(|p| {
                    p.as_ref()
                        .map(|(e, o)| format!("{e}:{o}"))
                        .unwrap_or_default()
                })
                .collect();
            entries.join(",")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_track_positions_and_parse_back() {
        let f = Follow::new(vec!["news".into(), "chat".into()], None, 10).unwrap();
        let mut c = Cursor::new(&f);
        assert_eq!(
            c.advance(br#"{"event":"e","channel":"news","data":"{}"}"#),
            None
        );
        let rec = br#"{"event":"raptor:recovery","channel":"chat","data":"{\"was_recovering\":false,\"recovered\":false,\"epoch\":\"AbC\",\"offset\":4,\"replayed\":0}"}"#;
        assert_eq!(c.advance(rec).as_deref(), Some(",AbC:4"));
        let ev = br#"{"event":"m","channel":"chat","data":"x","offset":5}"#;
        assert_eq!(c.advance(ev).as_deref(), Some(",AbC:5"));
        let back = Follow::new(vec!["news".into(), "chat".into()], Some(",AbC:5"), 10).unwrap();
        assert_eq!(
            back.resume,
            vec![
                None,
                Some(Position {
                    epoch: Arc::from("AbC"),
                    offset: 5
                })
            ]
        );
        // An id for other channels, or malformed, resumes nothing.
        for bad in ["AbC:5", "a:b,", ",:5", ",A b:5"] {
            let f = Follow::new(vec!["news".into(), "chat".into()], Some(bad), 10).unwrap();
            assert_eq!(f.resume, vec![None, None], "{bad}");
        }
    }

    #[test]
    fn follows_are_bounded() {
        assert!(Follow::new(vec![], None, 10).is_err());
        assert!(Follow::new(vec!["a".into(); 11], None, 10).is_err());
        assert!(!Follow::new(vec!["a".into()], None, 10)
            .unwrap()
            .needs_token());
        assert!(Follow::new(vec!["a".into(), "private-b".into()], None, 10)
            .unwrap()
            .needs_token());
    }
}
