//! Access tokens in a cluster (docs/tokens.md): a revocation reaches every node (and every
//! shard there); a token's uses are counted at the node that owns its id (rendezvous over
//! `#token-{jti}`, like a channel), so a one-use token is one use cluster-wide.

use super::Gateway;
use crate::app::AppIdx;
use crate::placement::ShardId;
use crate::session::ConnId;
use crate::shard::msg::ShardMsg;
use crate::shard::tokens::{Revoke, Uses};
use crate::shard::Shard;
use raptor_cluster::node::Action;
use raptor_cluster::wire::{NodeMsg, TokenMsg};
use raptor_cluster::NodeId;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a use asked of another node is remembered (only a refusal is answered).
const ASK_WAIT: Duration = Duration::from_secs(10);
/// Uses asked of other nodes and not yet forgotten, at most.
const MAX_ASKS: usize = 65_536;

#[derive(Default)]
pub(super) struct ClusterTokens {
    /// Uses of the tokens this node owns.
    uses: RefCell<Uses>,
    /// Uses this node asked of owners: whom to close on a refusal.
    asks: RefCell<HashMap<u64, (ShardId, ConnId, Instant)>>,
    next: Cell<u64>,
}

/// The placement key of a token id (never a valid channel name: `#` is not allowed there).
fn key(jti: &str) -> String {
    format!("#token-{jti}")
}

impl Gateway {
    /// A revocation from this node: in force on every shard here and on every peer.
    pub(super) fn revoke(&self, shard: &Shard, app: AppIdx, what: Revoke, until: u64) {
        shard.revoke_local(app, what.clone(), until);
        let app_id = shard.apps().get(app).id.clone();
        let (jti, user) = match what {
            Revoke::Token(j) => (Some(j.to_string()), None),
            Revoke::User(u) => (None, Some(u.to_string())),
        };
        let msg = TokenMsg::Revoke {
            app: app_id,
            jti,
            user,
            until,
        };
        self.carry_out_plain_broadcast(NodeMsg::Token(Box::new(msg)));
    }

    /// A session of this node uses token `jti`: counted here if this node owns the token
    /// id, else at its owner.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn token_use(
        &self,
        shard: &Shard,
        app: AppIdx,
        jti: Arc<str>,
        session: &str,
        uses: u32,
        until: u64,
        from: ShardId,
        conn: ConnId,
    ) {
        let app_id = shard.apps().get(app).id.clone();
        let owner = self.core.borrow().owner_of(&app_id, &key(&jti));
        if owner == self.core.borrow().me().id {
            if !self
                .tokens
                .uses
                .borrow_mut()
                .claim(app, &jti, session, uses, until)
            {
                shard.mesh.send(from, ShardMsg::TokenUseRefused { conn });
            }
            return;
        }
        let id = self.tokens.next.get() + 1;
        self.tokens.next.set(id);
        let mut asks = self.tokens.asks.borrow_mut();
        let now = Instant::now();
        asks.retain(|_, (.., at)| now.saturating_duration_since(*at) < ASK_WAIT);
        if asks.len() < MAX_ASKS {
            asks.insert(id, (from, conn, now));
        }
        drop(asks);
        let msg = TokenMsg::Use {
            id,
            app: app_id,
            jti: jti.to_string(),
            session: session.to_string(),
            uses,
            until,
        };
        self.carry_out_plain(vec![Action::Send {
            to: owner,
            msg: NodeMsg::Token(Box::new(msg)),
        }]);
    }

    /// An access-token message from `from`.
    pub(super) fn on_token(&self, shard: &Shard, from: NodeId, msg: TokenMsg) {
        match msg {
            TokenMsg::Revoke {
                app,
                jti,
                user,
                until,
            } => {
                let Some(a) = shard.apps().by_id(&app).cloned() else {
                    return;
                };
                let what = match (jti, user) {
                    (Some(j), _) => Revoke::Token(Arc::from(j)),
                    (None, Some(u)) => Revoke::User(Arc::from(u)),
                    (None, None) => return,
                };
                shard.revoke_local(a.idx, what, until);
            }
            TokenMsg::Use {
                id,
                app,
                jti,
                session,
                uses,
                until,
            } => {
                let Some(a) = shard.apps().by_id(&app).cloned() else {
                    return;
                };
                let jti: Arc<str> = Arc::from(jti);
                if !self
                    .tokens
                    .uses
                    .borrow_mut()
                    .claim(a.idx, &jti, &session, uses, until)
                {
                    let msg = NodeMsg::Token(Box::new(TokenMsg::Refused { id }));
                    self.carry_out_plain(vec![Action::Send { to: from, msg }]);
                }
            }
            TokenMsg::Refused { id } => {
                if let Some((shard_id, conn, _)) = self.tokens.asks.borrow_mut().remove(&id) {
                    shard
                        .mesh
                        .send(shard_id, ShardMsg::TokenUseRefused { conn });
                }
            }
        }
    }

    /// Forgets the uses of expired tokens (the gateway's tick).
    pub(super) fn tokens_tick(&self) {
        self.tokens
            .uses
            .borrow_mut()
            .expire(crate::token::now_secs());
    }
}
