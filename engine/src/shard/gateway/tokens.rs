//! Access tokens in a cluster (docs/tokens.md): a revocation reaches every node (and every
//! shard there); a token's uses are counted at the node that owns its id (rendezvous over
//! `#token-{jti}`, like a channel), so a one-use token is one use cluster-wide.

use super::Gateway;
use crate::app::AppIdx;
use crate::placement::ShardId;
use crate::session::ConnId;
use crate::shard::msg::ShardMsg;
use crate::shard::tokens::{Revoke, Revoked, Uses};
use crate::shard::Shard;
use raptor_cluster::node::Action;
use raptor_cluster::wire::{NodeMsg, TokenMsg};
use raptor_cluster::NodeId;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a use asked of another node waits for its answer.
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
    pub(super) fn revoke(&self, shard: &Shard, app: AppIdx, what: Revoke, r: Revoked) {
        shard.revoke_local(app, what.clone(), r);
        if let Some(msg) = revoke_msg(shard, app, what, r) {
            self.carry_out_plain_broadcast(msg);
        }
    }

    /// A peer's link came up: it gets every revocation in force here (it may have missed
    /// some while away, or be new), so a revocation reaches nodes that join later too.
    pub(super) fn send_revocations(&self, shard: &Shard, to: &NodeId) {
        let actions = shard
            .revocations()
            .into_iter()
            .filter_map(|(app, what, r)| revoke_msg(shard, app, what, r))
            .map(|msg| Action::Send {
                to: to.clone(),
                msg,
            })
            .collect();
        self.carry_out_plain(actions);
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
        if asks.len() < MAX_ASKS {
            asks.insert(id, (from, conn, Instant::now()));
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
                at,
            } => {
                let Some(a) = shard.apps().by_id(&app).cloned() else {
                    return;
                };
                let what = match (jti, user) {
                    (Some(j), _) => Revoke::Token(Arc::from(j)),
                    (None, Some(u)) => Revoke::User(Arc::from(u)),
                    (None, None) => return,
                };
                shard.revoke_local(a.idx, what, Revoked { until, at });
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
                let mut counted = self.tokens.uses.borrow_mut();
                let answer = if counted.claim(a.idx, &jti, &session, uses, until) {
                    TokenMsg::Accepted { id }
                } else {
                    TokenMsg::Refused { id }
                };
                drop(counted);
                let msg = NodeMsg::Token(Box::new(answer));
                self.carry_out_plain(vec![Action::Send { to: from, msg }]);
            }
            TokenMsg::Refused { id } => {
                if let Some((shard_id, conn, _)) = self.tokens.asks.borrow_mut().remove(&id) {
                    shard
                        .mesh
                        .send(shard_id, ShardMsg::TokenUseRefused { conn });
                }
            }
            TokenMsg::Accepted { id } => {
                self.tokens.asks.borrow_mut().remove(&id);
            }
        }
    }

    /// Forgets the uses of expired tokens and unanswered asks (the gateway's tick).
    pub(super) fn tokens_tick(&self) {
        self.tokens
            .uses
            .borrow_mut()
            .expire(crate::token::now_secs());
        let now = Instant::now();
        self.tokens
            .asks
            .borrow_mut()
            .retain(|_, (.., at)| now.saturating_duration_since(*at) < ASK_WAIT);
    }
}

/// A revocation as the peers get it (`None` for an app no longer configured).
fn revoke_msg(shard: &Shard, app: AppIdx, what: Revoke, r: Revoked) -> Option<NodeMsg> {
    let app_id = shard.apps().list.get(app as usize)?.id.clone();
    let (jti, user) = match what {
        Revoke::Token(j) => (Some(j.to_string()), None),
        Revoke::User(u) => (None, Some(u.to_string())),
    };
    let msg = TokenMsg::Revoke {
        app: app_id,
        jti,
        user,
        until: r.until,
        at: r.at,
    };
    Some(NodeMsg::Token(Box::new(msg)))
}
