//! The JSON that apps sign for a connection: presence `channel_data` and sign-in `user_data`.
//! Signatures are over the exact strings; these parsers only read them after verification.

use simd_json::prelude::*;
use simd_json::OwnedValue;

/// A presence member as the app described it in `channel_data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceData {
    pub user_id: String,
    /// `user_info` re-encoded as compact JSON, if present.
    pub user_info: Option<String>,
    /// Raptor extension for `presence-privileged-*`: `"privileged": true`.
    pub privileged: bool,
}

/// A signed-in user from `user_data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserData {
    pub id: String,
    pub watchlist: Vec<String>,
    /// The watchlist was longer than allowed and was cut.
    pub watchlist_truncated: bool,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("channel_data must be a JSON object with a user_id")]
    BadChannelData,
    #[error("user_data must be a JSON object with a string id")]
    BadUserData,
    #[error("user id longer than {0} characters")]
    IdTooLong(usize),
    #[error("user_info larger than {0} bytes")]
    InfoTooLarge(usize),
}

/// Longest user id accepted (Pusher: 128).
pub const MAX_USER_ID: usize = 128;
/// Longest watchlist (Pusher: 100; the rest is dropped with error 4302).
pub const MAX_WATCHLIST: usize = 100;

fn parse_obj(s: &str) -> Option<OwnedValue> {
    let mut b = s.as_bytes().to_vec();
    let mut bufs = simd_json::Buffers::with_max_depth(b.len(), super::client::MAX_DEPTH);
    simd_json::to_owned_value_with_buffers(&mut b, &mut bufs)
        .ok()
        .filter(|v| v.is_object())
}

pub fn presence_data(channel_data: &str, max_info: usize) -> Result<PresenceData, IdentityError> {
    let v = parse_obj(channel_data).ok_or(IdentityError::BadChannelData)?;
    let user_id = match v.get("user_id") {
        Some(x) if x.is_str() => x.as_str().unwrap_or_default().to_string(),
        // Pusher's own test vector uses a number.
        Some(x) if x.is_u64() || x.is_i64() => x.encode(),
        _ => return Err(IdentityError::BadChannelData),
    };
    if user_id.is_empty() {
        return Err(IdentityError::BadChannelData);
    }
    if user_id.len() > MAX_USER_ID {
        return Err(IdentityError::IdTooLong(MAX_USER_ID));
    }
    // An explicit `null` is kept: members see `user_info` as the app signed it (Pusher sends
    // `"user_info":null` in member_added too); only an absent field stays absent.
    let user_info = v.get("user_info").map(|x| x.encode());
    if user_info.as_ref().is_some_and(|i| i.len() > max_info) {
        return Err(IdentityError::InfoTooLarge(max_info));
    }
    let privileged = v
        .get("privileged")
        .and_then(|x| x.as_bool())
        .unwrap_or(false);
    Ok(PresenceData {
        user_id,
        user_info,
        privileged,
    })
}

pub fn user_data(user_data: &str) -> Result<UserData, IdentityError> {
    let v = parse_obj(user_data).ok_or(IdentityError::BadUserData)?;
    let id = v
        .get("id")
        .and_then(|x| x.as_str())
        .ok_or(IdentityError::BadUserData)?
        .to_string();
    if id.is_empty() {
        return Err(IdentityError::BadUserData);
    }
    if id.len() > MAX_USER_ID {
        return Err(IdentityError::IdTooLong(MAX_USER_ID));
    }
    let mut watchlist: Vec<String> = match v.get("watchlist") {
        None => Vec::new(),
        Some(w) => w
            .as_array()
            .ok_or(IdentityError::BadUserData)?
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
    };
    let watchlist_truncated = watchlist.len() > MAX_WATCHLIST;
    watchlist.truncate(MAX_WATCHLIST);
    Ok(UserData {
        id,
        watchlist,
        watchlist_truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence() {
        let p = presence_data(
            r#"{"user_id": "u-42", "user_info": {"name": "Alice"}}"#,
            1024,
        )
        .unwrap();
        assert_eq!(p.user_id, "u-42");
        assert_eq!(p.user_info.as_deref(), Some(r#"{"name":"Alice"}"#));
        assert!(!p.privileged);
        let p = presence_data(r#"{"user_id":"carol","user_info":null}"#, 1024).unwrap();
        assert_eq!(p.user_info.as_deref(), Some("null"));
        let p = presence_data(r#"{"user_id":10,"privileged":true}"#, 1024).unwrap();
        assert_eq!(
            (p.user_id.as_str(), p.user_info, p.privileged),
            ("10", None, true)
        );
        assert_eq!(
            presence_data("{}", 1024),
            Err(IdentityError::BadChannelData)
        );
        assert_eq!(
            presence_data("nope", 1024),
            Err(IdentityError::BadChannelData)
        );
        let long = format!(r#"{{"user_id":"{}"}}"#, "x".repeat(129));
        assert_eq!(
            presence_data(&long, 1024),
            Err(IdentityError::IdTooLong(128))
        );
        let big = format!(
            r#"{{"user_id":"a","user_info":{{"b":"{}"}}}}"#,
            "x".repeat(2000)
        );
        assert_eq!(
            presence_data(&big, 1024),
            Err(IdentityError::InfoTooLarge(1024))
        );
    }

    #[test]
    fn users() {
        let u = user_data(r#"{"id":"42","watchlist":["7","9"]}"#).unwrap();
        assert_eq!(
            (u.id.as_str(), u.watchlist.len(), u.watchlist_truncated),
            ("42", 2, false)
        );
        let many: Vec<String> = (0..150).map(|i| format!("\"{i}\"")).collect();
        let u = user_data(&format!(r#"{{"id":"1","watchlist":[{}]}}"#, many.join(","))).unwrap();
        assert_eq!((u.watchlist.len(), u.watchlist_truncated), (100, true));
        assert_eq!(user_data(r#"{"id":5}"#), Err(IdentityError::BadUserData));
    }
}
