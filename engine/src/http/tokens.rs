//! The token API (docs/tokens.md), signed like every `/apps/{id}/...` route:
//!
//! - `POST /apps/{id}/tokens` with claims: the server mints a token (`iat` now, a random
//!   `jti` unless given, `exp` = now + `ttl_secs` (default 3,600) unless given);
//! - `POST /apps/{id}/tokens/revoke` with `{"jti": ..}` or `{"user_id": ..}`: refused on every
//!   node within a second from now on, and the sessions using it are closed with 4009.

use super::request::Request;
use super::response::Response;
use crate::app::App;
use crate::shard::tokens::{until, Revoke};
use crate::shard::Shard;
use crate::token::{self, Claims};
use serde::Deserialize;
use std::sync::Arc;

/// Default lifetime of a token the server mints.
const DEFAULT_TTL_SECS: u64 = 3600;
/// Longest lifetime the API mints (a year).
const MAX_TTL_SECS: u64 = 365 * 86_400;

#[derive(Deserialize)]
struct MintBody {
    #[serde(flatten)]
    claims: Claims,
    ttl_secs: Option<u64>,
}

/// `POST /apps/{id}/tokens`.
pub fn mint(app: &App, req: &Request) -> Response {
    let mut body = req.body.clone();
    let Ok(MintBody {
        mut claims,
        ttl_secs,
    }) = simd_json::serde::from_slice(&mut body)
    else {
        return Response::error(400, "body must be a JSON object of token claims");
    };
    let now = token::now_secs();
    let ttl = ttl_secs.unwrap_or(DEFAULT_TTL_SECS);
    if ttl == 0 || ttl > MAX_TTL_SECS {
        return Response::error(400, "ttl_secs must be 1..=31536000");
    }
    claims.iat = Some(now);
    claims.exp = Some(claims.exp.unwrap_or(now + ttl));
    if claims.jti.is_none() {
        claims.jti = Some(format!(
            "{:016x}{:016x}",
            fastrand::u64(..),
            fastrand::u64(..)
        ));
    }
    let minted = token::mint(&app.key, &app.secret, &claims);
    // What a client would be told about it, now.
    if let Err(e) = token::verify(&app.key, &app.secret, &minted, now) {
        return Response::error(400, &e.to_string());
    }
    #[derive(serde::Serialize)]
    struct Out<'a> {
        token: &'a str,
        jti: &'a str,
        exp: u64,
    }
    let out = Out {
        token: &minted,
        jti: claims.jti.as_deref().unwrap_or_default(),
        exp: claims.exp.unwrap_or_default(),
    };
    Response::json(
        200,
        simd_json::to_vec(&out).expect("in-memory serialization"),
    )
}

#[derive(Deserialize)]
struct RevokeBody {
    jti: Option<String>,
    user_id: Option<String>,
    /// Until when (seconds since the epoch); default: 30 days from now, which covers any
    /// token the API mints with the default lifetime.
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
    let until = b.until.unwrap_or_else(|| until(None, token::now_secs()));
    shard.revoke(app.idx, what, until);
    Response::json(200, "{}")
}
