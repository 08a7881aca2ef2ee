//! Access tokens at the edge (docs/tokens.md): a token presented in `pusher:signin`, in a
//! subscription's `auth`, or as `?token=` is verified here, for every transport, before the
//! session may use its grants.

use crate::protocol::identity;
use crate::protocol::{codes, server as frames};
use crate::session::{Connection, SignedIn};
use crate::shard::Shard;
use crate::token::{self, now_secs, Token, TokenError};
use std::rc::Rc;
use std::sync::Arc;

/// Verifies `presented` for the connection's app, revocations included.
pub(super) fn verify(
    shard: &Shard,
    conn: &Connection,
    presented: &str,
) -> Result<Token, TokenError> {
    let app = shard.app(conn.app);
    let t = token::verify(&app.key, &app.secret, presented, now_secs())?;
    if shard.is_revoked(conn.app, &t) {
        return Err(TokenError::Revoked);
    }
    Ok(t)
}

/// `pusher:signin` whose `auth` is a token: the token's `sub` is the user (the `user_data`
/// `id` must match it when both are given), its grants become the session's. A token with
/// `uses` is counted once per session (`user_data.session`, else the connection).
pub(super) fn signin(shard: &Rc<Shard>, conn: &Rc<Connection>, presented: &str, user_data: &str) {
    let t = match verify(shard, conn, presented) {
        Ok(t) => t,
        Err(e) => {
            conn.out
                .push(frames::error(codes::SIGNIN_FAILED, &e.to_string()));
            return;
        }
    };
    let user = match identity::user_data(user_data) {
        Ok(u) => u,
        Err(e) => {
            conn.out
                .push(frames::error(codes::SIGNIN_FAILED, &e.to_string()));
            return;
        }
    };
    match t.claims.sub.as_deref() {
        None => {
            let why = TokenError::NoSub.to_string();
            conn.out.push(frames::error(codes::SIGNIN_FAILED, &why));
            return;
        }
        Some(sub) if sub != user.id => {
            conn.out.push(frames::error(
                codes::SIGNIN_FAILED,
                "user_data id is not the token's sub",
            ));
            return;
        }
        Some(_) => {}
    }
    if let Some(current) = conn.user_id() {
        if *current != *user.id {
            conn.out.push(frames::error(
                codes::SIGNIN_FAILED,
                "already signed in as another user",
            ));
            return;
        }
    }
    let session = session_of(user_data).unwrap_or_else(|| conn.socket_id.to_string());
    let fresh = conn.user_id().is_none();
    adopt(shard, conn, t, &session);
    conn.out.push(frames::signin_success(user_data));
    if fresh {
        shard.sign_in(
            conn,
            SignedIn {
                id: Arc::from(user.id),
                watchlist: user.watchlist.into_iter().map(Arc::from).collect(),
            },
        );
    }
}

/// `?token=` on the WebSocket URL: the session signs in as the token's `sub` (if any) with
/// its grants; a refused token closes the connection with 4009.
pub fn at_connect(shard: &Rc<Shard>, conn: &Rc<Connection>, presented: &str) {
    let t = match verify(shard, conn, presented) {
        Ok(t) => t,
        Err(e) => {
            let message = format!("{e}");
            conn.out.push(frames::error(codes::UNAUTHORIZED, &message));
            conn.out.close(codes::UNAUTHORIZED, "token refused");
            return;
        }
    };
    // Signed in as its `sub` only where a `pusher:signin` could (user authentication on,
    // a user id as `user_data` allows); otherwise the token only grants.
    let signs_in = shard.app(conn.app).enable_user_authentication;
    let sub = t
        .claims
        .sub
        .clone()
        .filter(|s| signs_in && !s.is_empty() && s.len() <= identity::MAX_USER_ID);
    adopt(shard, conn, t, &conn.socket_id.to_string());
    if let Some(id) = sub {
        shard.sign_in(
            conn,
            SignedIn {
                id: Arc::from(id),
                watchlist: Vec::new(),
            },
        );
    }
}

/// The session takes `t` (replacing an earlier token: signing in again with a fresh token
/// is how a session outlives its first token's expiry), and its use is counted.
fn adopt(shard: &Shard, conn: &Connection, t: Token, session: &str) {
    if let (Some(jti), Some(uses)) = (t.claims.jti.clone(), t.claims.uses) {
        shard.claim_token_use(conn, &jti, session, uses, t.claims.exp);
    }
    conn.authorized.set(true);
    *conn.token.borrow_mut() = Some(Rc::new(t));
}

/// `user_data`'s `session` string: what makes a pusher-js page's reconnections one use.
fn session_of(user_data: &str) -> Option<String> {
    let mut bytes = user_data.as_bytes().to_vec();
    let v: simd_json::OwnedValue = simd_json::to_owned_value(&mut bytes).ok()?;
    use simd_json::prelude::*;
    let s = v.get("session")?.as_str()?;
    (!s.is_empty() && s.len() <= 128).then(|| s.to_string())
}
