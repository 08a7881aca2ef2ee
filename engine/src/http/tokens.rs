//! The token API (docs/tokens.md), signed like every `/apps/{id}/...` route:
//!
//! - `POST /apps/{id}/tokens` with claims: the server mints a token (`iat` now, a random
//!   `jti` unless given, `exp` = now + `ttl_secs` (default 3,600) unless given);
//! - `POST /apps/{id}/tokens/revoke` with `{"jti": ..}` or `{"user_id": ..}`: refused on every
//!   node within a second from now on, and the sessions using it are closed with 4009.

use super::request::Request;
use super::response::Response;
use crate::app::App;
use crate::shard::tokens::{Revoke, Revoked};
use crate::shard::Shard;
use crate::token::{self, Claims};
use serde::Deserialize;
use std::sync::Arc;

/// Default lifetime of a token the server mints.
const DEFAULT_TTL_SECS: u64 = 3600;
/// Longest lifetime the API mints (a year).
const MAX_TTL_SECS: u64 = 365 * 86_400;

/// The claims to mint; an unknown field is refused (a misspelt `sub` must not mint a
/// token without a user).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MintBody {
    sub: Option<String>,
    info: Option<simd_json::OwnedValue>,
    #[serde(default)]
    read: Vec<String>,
    #[serde(default)]
    write: Vec<String>,
    exp: Option<u64>,
    nbf: Option<u64>,
    jti: Option<String>,
    uses: Option<u32>,
    ttl_secs: Option<u64>,
}

/// `POST /apps/{id}/tokens`.
pub fn mint(app: &App, req: &Request) -> Response {
    let mut body = req.body.clone();
    let b: MintBody = match simd_json::serde::from_slice(&mut body) {
        Ok(b) => b,
        Err(e) => {
            let why = format!("body must be a JSON object of token claims: {e}");
            return Response::error(400, &why);
        }
    };
    let ttl_secs = b.ttl_secs;
    let mut claims = Claims {
        sub: b.sub,
        info: b.info,
        read: b.read,
        write: b.write,
        exp: b.exp,
        nbf: b.nbf,
        jti: b.jti,
        uses: b.uses,
        ..Claims::default()
    };
    let now = token::now_secs();
    let ttl = ttl_secs.unwrap_or(DEFAULT_TTL_SECS);
    if ttl == 0 || ttl > MAX_TTL_SECS {
        return Response::error(400, "ttl_secs must be 1..=31536000");
    }
    claims.iat = Some(now);
    claims.exp = Some(claims.exp.unwrap_or(now + ttl));
    match token::issue(&app.key, &app.secret, claims, now) {
        Ok(minted) => Response::json(200, simd_json::to_vec(&minted).expect("serializable")),
        // What a client would be told about it, now.
        Err(e) => Response::error(400, &e.to_string()),
    }
}

#[derive(Deserialize)]
struct RevokeBody {
    jti: Option<String>,
    user_id: Option<String>,
    /// Until when (seconds since the epoch); default and at most: the longest lifetime a
    /// token may have (a year) from now, plus the clock leeway.
    until: Option<u64>,
}

/// `POST /apps/{id}/tokens/revoke`.
pub fn revoke(shard: &Shard, app: &App, req: &Request) -> Response {
    let mut body = req.body.clone();
    let Ok(b) = simd_json::serde::from_slice::<RevokeBody>(&mut body) else {
        return Response::error(400, "body must be {\"jti\": ..} or {\"user_id\": ..}");
    };
    let what = match (b.jti, b.user_id) {
        (Some(j), None) if !j.is_empty() && j.len() <= 256 => Revoke::Token(Arc::from(j)),
        (None, Some(u)) if !u.is_empty() && u.len() <= 256 => Revoke::User(Arc::from(u)),
        _ => return Response::error(400, "body must be {\"jti\": ..} or {\"user_id\": ..}"),
    };
    let now = token::now_secs();
    let longest = now + MAX_TTL_SECS + token::LEEWAY_SECS;
    let until = b.until.unwrap_or(longest).min(longest);
    if shard.revocations_full() {
        return Response::error(503, "too many revocations in force; retry later");
    }
    shard.revoke(app.idx, what, Revoked { until, at: now });
    Response::json(200, "{}")
}
