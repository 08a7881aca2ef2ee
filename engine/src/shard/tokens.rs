//! Access-token state a node keeps (docs/tokens.md): revocations (every shard holds them
//! all, so a check never leaves the shard) and uses (counted by one owner shard per token
//! id, so a token's sessions are counted in one place). `Revocations` and `Uses` are
//! sans-IO and unit-tested; the `impl Shard` part sends and closes.

use super::msg::ShardMsg;
use super::Shard;
use crate::app::AppIdx;
use crate::protocol::{codes, server as frames};
use crate::session::{ConnId, Connection};
use crate::token::Token;
use std::collections::HashMap;
use std::sync::Arc;

/// How long a revocation or a use is remembered when its token has no `exp`: 30 days.
pub const FOREVER_SECS: u64 = 30 * 86_400;
/// Revocations (and, separately, counted token ids) one shard keeps at most.
pub const MAX_ENTRIES: usize = 100_000;

/// What a revocation names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Revoke {
    /// One token, by its `jti`.
    Token(Arc<str>),
    /// Every token whose `sub` is this user.
    User(Arc<str>),
}

/// The revocations in force, each until a time (seconds since the epoch).
#[derive(Debug, Default)]
pub struct Revocations {
    until: HashMap<(AppIdx, Revoke), u64>,
}

impl Revocations {
    /// Adds a revocation; false when full (the caller answers 503).
    pub fn add(&mut self, app: AppIdx, what: Revoke, until: u64) -> bool {
        if self.until.len() >= MAX_ENTRIES && !self.until.contains_key(&(app, what.clone())) {
            return false;
        }
        self.until.insert((app, what), until);
        true
    }

    /// `t` is revoked (by its id or its user) at `now`.
    pub fn covers(&self, app: AppIdx, t: &Token, now: u64) -> bool {
        let live = |k: Revoke| self.until.get(&(app, k)).is_some_and(|&u| now <= u);
        t.claims
            .jti
            .as_deref()
            .is_some_and(|j| live(Revoke::Token(Arc::from(j))))
            || t.claims
                .sub
                .as_deref()
                .is_some_and(|s| live(Revoke::User(Arc::from(s))))
    }

    pub fn expire(&mut self, now: u64) {
        self.until.retain(|_, u| now <= *u);
    }
}

/// The sessions counted for one token id, and until when they are remembered.
type Sessions = (Vec<Box<str>>, u64);

/// Sessions per token id, for tokens with `uses`.
#[derive(Debug, Default)]
pub struct Uses {
    tokens: HashMap<(AppIdx, Arc<str>), Sessions>,
}

impl Uses {
    /// May `session` use token `jti` (allowing `uses` sessions, remembered until `until`)?
    /// A session already counted may (a reconnection); a new one while there is room is
    /// counted. Full table: refused (fail closed).
    pub fn claim(
        &mut self,
        app: AppIdx,
        jti: &Arc<str>,
        session: &str,
        uses: u32,
        until: u64,
    ) -> bool {
        let key = (app, jti.clone());
        if !self.tokens.contains_key(&key) && self.tokens.len() >= MAX_ENTRIES {
            return false;
        }
        let (sessions, _) = self
            .tokens
            .entry(key)
            .or_insert_with(|| (Vec::new(), until));
        if sessions.iter().any(|s| **s == *session) {
            return true;
        }
        if sessions.len() >= uses as usize {
            return false;
        }
        sessions.push(session.into());
        true
    }

    pub fn expire(&mut self, now: u64) {
        self.tokens.retain(|_, (_, until)| now <= *until);
    }
}

/// When a token's state may be forgotten: its expiry, else [`FOREVER_SECS`] from now.
pub fn until(exp: Option<u64>, now: u64) -> u64 {
    exp.map_or(now + FOREVER_SECS, |e| e + crate::token::LEEWAY_SECS)
}

impl Shard {
    /// The session's token `t` is revoked.
    pub fn is_revoked(&self, app: AppIdx, t: &Token) -> bool {
        let now = crate::token::now_secs();
        self.revocations.borrow().covers(app, t, now)
    }

    /// Counts `session`'s use of token `jti` at the token's owner shard; a refusal closes
    /// `conn` with 4009.
    pub fn claim_token_use(
        &self,
        conn: &Connection,
        jti: &str,
        session: &str,
        uses: u32,
        exp: Option<u64>,
    ) {
        let (app, jti): (AppIdx, Arc<str>) = (conn.app, Arc::from(jti));
        let (session, from, conn) = (Box::from(session), self.id, conn.id);
        let until = until(exp, crate::token::now_secs());
        if self.clustered {
            // Counted at the node that owns the token id, so uses are exact cluster-wide.
            return self.to_gateway(super::msg::GatewayMsg::TokenUse {
                app,
                jti,
                session,
                uses,
                until,
                from,
                conn,
            });
        }
        let owner = self.owner_of_user(app, &jti);
        let msg = ShardMsg::TokenUse {
            app,
            jti,
            session,
            uses,
            until,
            from,
            conn,
        };
        self.mesh.send(owner, msg);
    }

    /// Owner of the token id: count the use, or refuse it.
    pub(super) fn token_use(
        &self,
        app: AppIdx,
        jti: Arc<str>,
        session: &str,
        uses: u32,
        until: u64,
        from: crate::placement::ShardId,
        conn: ConnId,
    ) {
        if !self
            .uses
            .borrow_mut()
            .claim(app, &jti, session, uses, until)
        {
            self.mesh.send(from, ShardMsg::TokenUseRefused { conn });
        }
    }

    /// The token's owner refused a use: the session ends.
    pub(super) fn token_use_refused(&self, conn: ConnId) {
        if let Some(c) = self.conns.borrow().get(&conn).cloned() {
            let why = crate::token::TokenError::UsedUp.to_string();
            c.close_with_error(codes::UNAUTHORIZED, &why, "token used up");
        }
    }

    /// Puts a revocation in force on this shard: later checks refuse the token, and the
    /// sessions using it now are closed with 4009.
    pub(super) fn revoke_here(&self, app: AppIdx, what: Revoke, until: u64) {
        self.revocations.borrow_mut().add(app, what, until);
        let now = crate::token::now_secs();
        let conns: Vec<_> = self.conns.borrow().values().cloned().collect();
        for c in conns {
            let revoked = c.app == app
                && c.token
                    .borrow()
                    .as_ref()
                    .is_some_and(|t| self.revocations.borrow().covers(app, t, now));
            if revoked {
                c.close_with_error(codes::UNAUTHORIZED, "token revoked", "token revoked");
            }
        }
    }

    /// Sessions whose token expired are closed with 4102 (pusher-js reconnects after a
    /// backoff and may present a fresh token); the sweeper calls this once a second.
    pub(super) fn expire_tokens(&self) {
        let now = crate::token::now_secs();
        self.revocations.borrow_mut().expire(now);
        self.uses.borrow_mut().expire(now);
        let conns: Vec<_> = self.conns.borrow().values().cloned().collect();
        for c in conns {
            let expired = c.token.borrow().as_ref().is_some_and(|t| t.expired(now));
            if expired {
                c.out.push(frames::error(
                    codes::TOKEN_EXPIRED,
                    "token expired: sign in again",
                ));
                c.out.close(codes::TOKEN_EXPIRED, "token expired");
            }
        }
    }

    /// Revokes on every shard of this node (and, in a cluster, every node).
    pub fn revoke(&self, app: AppIdx, what: Revoke, until: u64) {
        if self.clustered {
            return self.to_gateway(super::msg::GatewayMsg::Revoke { app, what, until });
        }
        self.revoke_local(app, what, until);
    }

    /// Revokes on every shard of this node.
    pub fn revoke_local(&self, app: AppIdx, what: Revoke, until: u64) {
        for s in 0..self.nr_shards {
            self.mesh.send(
                s,
                ShardMsg::Revoke {
                    app,
                    what: what.clone(),
                    until,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::{mint, verify, Claims};

    fn token(jti: &str, sub: &str) -> Token {
        let c = Claims {
            jti: Some(jti.into()),
            sub: Some(sub.into()),
            ..Claims::default()
        };
        verify("k", "s", &mint("k", "s", &c), 0).unwrap()
    }

    #[test]
    fn revocations_name_a_token_or_a_user_until_a_time() {
        let mut r = Revocations::default();
        let t = token("t1", "u1");
        assert!(!r.covers(0, &t, 10));
        assert!(r.add(0, Revoke::Token(Arc::from("t1")), 100));
        assert!(r.covers(0, &t, 10) && !r.covers(1, &t, 10));
        assert!(!r.covers(0, &token("t2", "u1"), 10));
        r.add(0, Revoke::User(Arc::from("u1")), 100);
        assert!(r.covers(0, &token("t2", "u1"), 100));
        r.expire(101);
        assert!(!r.covers(0, &t, 101));
    }

    #[test]
    fn a_session_is_one_use_however_often_it_comes_back() {
        let mut u = Uses::default();
        let j: Arc<str> = Arc::from("t1");
        assert!(u.claim(0, &j, "page-a", 1, 100));
        assert!(u.claim(0, &j, "page-a", 1, 100), "a reconnection");
        assert!(!u.claim(0, &j, "page-b", 1, 100), "a second session");
        assert!(u.claim(1, &j, "page-b", 1, 100), "another app's token");
        u.expire(101);
        assert!(
            u.claim(0, &j, "page-b", 1, 200),
            "forgotten after the token's time"
        );
    }
}
