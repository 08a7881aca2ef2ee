//! `POST /apps/{id}/users/{user_id}/presence` (docs/protocol.md, "Presence updates"): the
//! app replaces a member's `user_info` without a rejoin. The body is
//! `{"user_info": {..}, "channel": "presence-.."}`, `channel` optional (absent: every
//! presence channel the user is a member of, on every node). Answers `{}` once the update
//! is on its way to the channels' order points, like a publish; a user who is not a member
//! is not an error (as Pusher's API treats events to empty channels).

use super::request::Request;
use super::response::Response;
use crate::app::App;
use crate::channel::name::{self, ChannelKind};
use crate::protocol::identity::MAX_USER_ID;
use crate::shard::presence_update::PresenceUpdate;
use crate::shard::Shard;
use simd_json::prelude::*;
use std::sync::Arc;

/// Why an update is refused: all the caller's fault (400), nothing was changed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    #[error("invalid user id")]
    UserId,
    #[error("body must be a JSON object with a user_info object")]
    Body,
    #[error("user_info must be a JSON object")]
    NotAnObject,
    #[error("user_info larger than {0} bytes (max_presence_user_info_bytes)")]
    TooLarge(usize),
    #[error("channel must be the name of a presence channel")]
    NotPresence,
    #[error("unknown field `{0}` (expected user_info and channel)")]
    UnknownField(String),
}

/// `POST /apps/{id}/users/{user_id}/presence`.
pub fn update(shard: &Shard, app: &App, req: &Request, user_id: &str) -> Response {
    let max_name = shard.limits().max_channel_name_bytes;
    match parse(app, &req.body, user_id, max_name) {
        Ok(update) => {
            shard.update_presence(update);
            Response::json(200, "{}")
        }
        Err(e) => Response::error(400, &e.to_string()),
    }
}

/// Checks the request: the user id as presence `channel_data` allows it, `user_info` an
/// object within the app's bound once re-encoded as compact JSON (the form members see),
/// `channel` a valid presence channel name.
fn parse(
    app: &App,
    body: &[u8],
    user_id: &str,
    max_name: usize,
) -> Result<PresenceUpdate, UpdateError> {
    if user_id.is_empty() || user_id.len() > MAX_USER_ID {
        return Err(UpdateError::UserId);
    }
    let mut bytes = body.to_vec();
    let mut bufs =
        simd_json::Buffers::with_max_depth(bytes.len(), crate::protocol::client::MAX_DEPTH);
    let v = simd_json::to_owned_value_with_buffers(&mut bytes, &mut bufs)
        .map_err(|_| UpdateError::Body)?;
    let obj = v.as_object().ok_or(UpdateError::Body)?;
    if let Some(k) = obj.keys().find(|k| *k != "user_info" && *k != "channel") {
        return Err(UpdateError::UnknownField(k.to_string()));
    }
    let info = obj.get("user_info").ok_or(UpdateError::Body)?;
    if !info.is_object() {
        return Err(UpdateError::NotAnObject);
    }
    let user_info = info.encode();
    if user_info.len() > app.max_presence_user_info_bytes {
        return Err(UpdateError::TooLarge(app.max_presence_user_info_bytes));
    }
    let channel = match obj.get("channel") {
        None => None,
        Some(c) => {
            let c = c.as_str().ok_or(UpdateError::NotPresence)?;
            let valid = name::validate(c, max_name).is_ok() && ChannelKind::of(c).is_presence();
            if !valid {
                return Err(UpdateError::NotPresence);
            }
            Some(Arc::from(c))
        }
    };
    Ok(PresenceUpdate {
        app: app.idx,
        user_id: Arc::from(user_id),
        user_info: Arc::from(user_info),
        channel,
    })
}
