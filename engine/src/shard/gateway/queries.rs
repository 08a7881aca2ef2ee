//! Cluster-wide channel queries: `GET /apps/{id}/channels[/{name}]` answered for the whole
//! cluster from any node (docs/cluster.md, "Channel queries").
//!
//! The asking side: an HTTP handler asks its own shards as on a single node, and sends
//! [`GatewayMsg::Query`](crate::shard::msg::GatewayMsg::Query) to the gateway. The gateway scatters a `Query` to every linked
//! live peer ([`raptor_cluster::query::Queries`]), gathers the `Answer`s, and replies with
//! [`Reply::Cluster`] when all peers answered, their links went down, or the timeout
//! (`[cluster] query_timeout_ms`) passed — then with what arrived. The handler merges.
//!
//! The answering side: a peer's `Query` reaches the gateway as `Action::PeerQuery`; a task
//! asks this node's shards (like the HTTP handler does) and sends one `Answer` back.
//!
//! **Invariant:** bounded. At most [`raptor_cluster::query::MAX_PENDING`] queries wait on
//! answers, at most [`MAX_ANSWERING`] peer queries are being answered (more are answered
//! `Refused` at once), and a list answer is cut to fit one frame. Each waiting query has one
//! expiry timer, cancelled when the query finishes early, so timers are bounded by the
//! waiting queries too (not by the query rate times the timeout). Nothing here awaits in a
//! message handler: waiting happens in spawned tasks.

use super::Gateway;
use crate::app::AppIdx;
use crate::placement::ShardId;
use crate::shard::msg::{ClusterAsk, ClusterGather, Reply, ShardMsg};
use crate::shard::Shard;
use crate::stats::ClusterQueryFigures;
use glommio::timer::TimerActionOnce;
use raptor_cluster::node::Action;
use raptor_cluster::query::{list_answer, Finished, Queries, Start, MAX_PENDING};
use raptor_cluster::wire::{AnswerBody, NodeMsg, QueryKind};
use raptor_cluster::NodeId;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// Peer queries this node answers at the same time, at most; more get `Refused` at once
/// (each holds a task asking this node's shards for up to a few ms). A publish with
/// `info=subscription_count` asks one query per channel (up to 100) at once, so the cap must
/// sit well above that: 64 refused most of a 100-channel publish's queries.
pub const MAX_ANSWERING: usize = 1024;

/// Where a finished query's reply goes: the asking shard and its request id.
type ReplyTo = (ShardId, u64);

/// The gateway's query state.
pub struct ClusterQueries {
    pending: RefCell<Queries<ReplyTo>>,
    timeout: Duration,
    /// The expiry timer of each waiting query, by its reply address (unique while waiting).
    timers: RefCell<HashMap<ReplyTo, TimerActionOnce<()>>>,
    /// Peer queries being answered now.
    answering: Cell<usize>,
    /// Peer queries answered / refused (over [`MAX_ANSWERING`] or shards too slow).
    answered: Cell<u64>,
    refused: Cell<u64>,
}

impl ClusterQueries {
    /// `generation`: this run's node generation (milliseconds since the epoch), which seeds
    /// the query ids (see `Queries::starting_at`).
    pub fn new(timeout: Duration, generation: u64) -> ClusterQueries {
        ClusterQueries {
            pending: RefCell::new(Queries::starting_at(MAX_PENDING, generation << 20)),
            timeout,
            timers: RefCell::new(HashMap::new()),
            answering: Cell::new(0),
            answered: Cell::new(0),
            refused: Cell::new(0),
        }
    }

    /// Counters for `/stats` and `/metrics`.
    pub fn figures(&self) -> ClusterQueryFigures {
        let c = self.pending.borrow().counters();
        ClusterQueryFigures {
            started: c.started,
            incomplete: c.incomplete,
            over_limit: c.over_limit,
            stray_answers: c.stray_answers,
            answered_for_peers: self.answered.get(),
            refused_for_peers: self.refused.get(),
            expiry_timers: self.timers.borrow().len() as u64,
        }
    }
}

impl Gateway {
    /// Cluster-wide member counts of presence channels (gateway shard only).
    pub(super) fn user_counts(
        self: &Rc<Self>,
        shard: &Shard,
        app: AppIdx,
        channels: &[String],
    ) -> Vec<u32> {
        channels
            .iter()
            .map(|c| self.member_count(shard, app, c) as u32)
            .collect()
    }

    /// Gateway: a local shard asks the other nodes.
    pub(super) fn start_query(
        self: &Rc<Self>,
        shard: &Shard,
        from: ShardId,
        id: u64,
        app: AppIdx,
        ask: ClusterAsk,
    ) {
        let gw = self;
        let app_id = shard.apps().get(app).id.clone();
        let kind = match ask {
            ClusterAsk::Channel(c) => QueryKind::Channel {
                channel: c.to_string(),
            },
            ClusterAsk::List(prefix) => QueryKind::List { prefix },
        };
        let peers = gw.core_query_peers();
        let start = gw
            .queries
            .pending
            .borrow_mut()
            .start(peers, &app_id, kind, (from, id));
        let token: ReplyTo = (from, id);
        match start {
            Start::Done(f) => self.finish_query(shard, f),
            Start::Sent { id, actions } => {
                self.apply(shard, actions);
                let Some(home) = gw.home.upgrade() else {
                    return;
                };
                let gw = self.clone();
                let timer = TimerActionOnce::do_in(self.queries.timeout, async move {
                    // Our own entry: dropped (which detaches), not destroyed, since this
                    // task is the one running.
                    drop(gw.queries.timers.borrow_mut().remove(&token));
                    let done = gw.queries.pending.borrow_mut().expire(id);
                    if let Some(f) = done {
                        gw.finish_query(&home, f);
                    }
                });
                self.queries.timers.borrow_mut().insert(token, timer);
            }
        }
    }

    /// Gateway: a peer answered one of our queries.
    pub(super) fn on_peer_answer(
        self: &Rc<Self>,
        shard: &Shard,
        from: &NodeId,
        id: u64,
        body: AnswerBody,
    ) {
        let done = self.queries.pending.borrow_mut().on_answer(from, id, body);
        if let Some(f) = done {
            self.finish_query(shard, f);
        }
    }

    /// Gateway: the link to `peer` went down; queries waiting only on it finish now.
    pub(super) fn peer_gone(self: &Rc<Self>, shard: &Shard, peer: &NodeId) {
        let done = self.queries.pending.borrow_mut().peer_gone(peer);
        for f in done {
            self.finish_query(shard, f);
        }
    }

    fn finish_query(self: &Rc<Self>, shard: &Shard, f: Finished<ReplyTo>) {
        // Finished before its timeout: the timer has nothing left to do.
        if let Some(t) = self.queries.timers.borrow_mut().remove(&f.token) {
            t.destroy();
        }
        let (to, id) = f.token;
        let g = f.result;
        let reply = Reply::Cluster(ClusterGather {
            subscription_count: g.subscription_count,
            channels: g.channels.into_iter().collect(),
            asked: g.asked,
            answered: g.answered,
        });
        shard.mesh.send(to, ShardMsg::Reply { id, reply });
    }

    /// Gateway: a peer asks about our channels. Answers from a task (asking the shards
    /// awaits); refuses at once when [`MAX_ANSWERING`] are in progress.
    pub(super) fn answer_peer(
        self: &Rc<Self>,
        shard: &Shard,
        from: NodeId,
        id: u64,
        app: String,
        kind: QueryKind,
    ) {
        let q = &self.queries;
        let home = match self.home.upgrade() {
            Some(s) if q.answering.get() < MAX_ANSWERING => s,
            _ => {
                q.refused.set(q.refused.get() + 1);
                let msg = NodeMsg::Answer {
                    id,
                    body: AnswerBody::Refused,
                };
                return self.apply(shard, vec![Action::Send { to: from, msg }]);
            }
        };
        q.answering.set(q.answering.get() + 1);
        let gw = self.clone();
        glommio::spawn_local(async move {
            let msg = local_answer(&home, id, &app, kind).await;
            let q = &gw.queries;
            q.answering.set(q.answering.get() - 1);
            match &msg {
                NodeMsg::Answer {
                    body: AnswerBody::Refused,
                    ..
                } => q.refused.set(q.refused.get() + 1),
                _ => q.answered.set(q.answered.get() + 1),
            }
            gw.apply(&home, vec![Action::Send { to: from, msg }]);
        })
        .detach();
    }
}

/// This node's answer to a peer's query, from its own shards.
async fn local_answer(shard: &Shard, id: u64, app: &str, kind: QueryKind) -> NodeMsg {
    let answer = |body| NodeMsg::Answer { id, body };
    // An app this node does not serve has nothing here.
    let Some(app) = shard.apps().by_id(app).map(|a| a.idx) else {
        return match kind {
            QueryKind::Channel { .. } => answer(AnswerBody::Channel {
                subscription_count: 0,
            }),
            QueryKind::List { .. } => list_answer(id, std::iter::empty()),
        };
    };
    match kind {
        QueryKind::Channel { channel } => {
            let channel: Arc<str> = Arc::from(channel);
            match shard.channel_figures(app, &channel).await {
                Ok(f) => answer(AnswerBody::Channel {
                    subscription_count: f.subscription_count,
                }),
                Err(_) => answer(AnswerBody::Refused),
            }
        }
        QueryKind::List { prefix } => match shard.local_list(app, &prefix).await {
            Ok(items) => list_answer(id, items.into_iter().map(|(name, _, _)| name)),
            Err(_) => answer(AnswerBody::Refused),
        },
    }
}
