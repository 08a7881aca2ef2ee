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

/// A revocation: in force until `until`, made at `at` (seconds since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revoked {
    pub until: u64,
    pub at: u64,
}

/// The revocations in force.
#[derive(Debug, Default)]
pub struct Revocations {
    by: HashMap<(AppIdx, Revoke), Revoked>,
}

impl Revocations {
    /// Adds a revocation; false when full (nothing kept; the API refuses before, with 503).
    pub fn add(&mut self, app: AppIdx, what: Revoke, r: Revoked) -> bool {
        if self.by.len() >= MAX_ENTRIES && !self.by.contains_key(&(app, what.clone())) {
            return false;
        }
        self.by.insert((app, what), r);
        true
    }

    /// No room for another revocation.
    pub fn is_full(&self) -> bool {
        self.by.len() >= MAX_ENTRIES
    }

    /// `t` is revoked at `now`: by its id, or by its user when it was issued no later than
    /// that revocation (a fresh token after "log out everywhere" is not revoked).
    pub fn covers(&self, app: AppIdx, t: &Token, now: u64) -> bool {
        let live = |k: Revoke| self.by.get(&(app, k)).filter(|r| now <= r.until).copied();
        let by_id = t
            .claims
            .jti
            .as_deref()
            .is_some_and(|j| live(Revoke::Token(Arc::from(j))).is_some());
        let by_user = t.claims.sub.as_deref().is_some_and(|s| {
            live(Revoke::User(Arc::from(s)))
                .is_some_and(|r| t.claims.iat.is_none_or(|iat| iat <= r.at))
        });
        by_id || by_user
    }

    pub fn expire(&mut self, now: u64) {
        self.by.retain(|_, r| now <= r.until);
    }

    /// Every revocation in force (for a peer whose link just came up).
    pub fn all(&self) -> Vec<(AppIdx, Revoke, Revoked)> {
        self.by
            .iter()
            .map(|((a, w), r)| (*a, w.clone(), *r))
            .collect()
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
    exp.map_or(now + FOREVER_SECS, |e| {
        e.saturating_add(crate::token::LEEWAY_SECS)
    })
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
    pub(super) fn revoke_here(&self, app: AppIdx, what: Revoke, r: Revoked) {
        if !self.revocations.borrow_mut().add(app, what, r) {
            tracing::warn!(
                shard = self.id,
                "revocation table full; a revocation was not kept"
            );
        }
        let now = crate::token::now_secs();
        let conns: Vec<_> = self.conns.borrow().values().cloned().collect();
        for c in conns {
            let revocations = self.revocations.borrow();
            let revoked = c.app == app
                && tokens_of(&c)
                    .iter()
                    .any(|t| revocations.covers(app, t, now));
            drop(revocations);
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
            let expired = tokens_of(&c).iter().any(|t| t.expired(now));
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
    pub fn revoke(&self, app: AppIdx, what: Revoke, r: Revoked) {
        if self.clustered {
            return self.to_gateway(super::msg::GatewayMsg::Revoke { app, what, r });
        }
        self.revoke_local(app, what, r);
    }

    /// This shard's table is full: a new revocation would not be kept (the API says 503).
    pub fn revocations_full(&self) -> bool {
        self.revocations.borrow().is_full()
    }

    /// Every revocation this shard holds (they are the same on every shard of a node).
    pub fn revocations(&self) -> Vec<(AppIdx, Revoke, Revoked)> {
        self.revocations.borrow().all()
    }

    /// Revokes on every shard of this node.
    pub fn revoke_local(&self, app: AppIdx, what: Revoke, r: Revoked) {
        for s in 0..self.nr_shards {
            self.mesh.send(
                s,
                ShardMsg::Revoke {
                    app,
                    what: what.clone(),
                    r,
                },
            );
        }
    }
}

/// Every token a session uses: its own and those that authorized its subscriptions.
fn tokens_of(c: &Connection) -> Vec<std::rc::Rc<Token>> {
    let mut all: Vec<_> = c.token.borrow().iter().cloned().collect();
    all.extend(c.auth_tokens.borrow().iter().cloned());
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::{mint, verify, Claims};

    fn token(jti: &str, sub: &str, iat: Option<u64>) -> Token {
        let c = Claims {
            jti: Some(jti.into()),
            sub: Some(sub.into()),
            iat,
            ..Claims::default()
        };
        verify("k", "s", &mint("k", "s", &c), 0).unwrap()
    }

    #[test]
    fn revocations_name_a_token_or_a_user_until_a_time() {
        let mut r = Revocations::default();
        let t = token("t1", "u1", None);
        let until = |until| Revoked { until, at: 50 };
        assert!(!r.covers(0, &t, 10));
        assert!(r.add(0, Revoke::Token(Arc::from("t1")), until(100)));
        assert!(r.covers(0, &t, 10) && !r.covers(1, &t, 10));
        assert!(!r.covers(0, &token("t2", "u1", None), 10));
        r.add(0, Revoke::User(Arc::from("u1")), until(100));
        assert!(r.covers(0, &token("t2", "u1", None), 100));
        // Issued before the revocation: covered; after it: not.
        assert!(r.covers(0, &token("t3", "u1", Some(50)), 60));
        assert!(!r.covers(0, &token("t4", "u1", Some(51)), 60));
        r.expire(101);
        assert!(!r.covers(0, &t, 101));
        assert_eq!(r.all(), vec![]);
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
