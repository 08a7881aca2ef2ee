//! Cluster-wide channel queries, without I/O: scatter a [`NodeMsg::Query`] to every linked
//! live peer, gather their [`NodeMsg::Answer`]s, and say when a query is finished.
//!
//! The asking node's gateway owns one [`Queries`]; the caller's reply address is the opaque
//! token `T`, so this module knows nothing of shards. A query finishes when every peer asked
//! has answered, when the caller's timer calls [`Queries::expire`], or when the links of the
//! peers still owed go down ([`Queries::peer_gone`]). It then yields what arrived, with
//! `asked` and `answered` so the caller can tell a partial result (docs/cluster.md,
//! "Channel queries").
//!
//! **Invariant:** bounded. At most `max_pending` queries wait at once (a new one past that
//! is finished at once, unanswered by peers, and counted); each waits for at most one answer
//! per peer; an answer is taken only from a peer the query was sent to, once.

use crate::node::Action;
use crate::wire::{AnswerBody, NodeMsg, QueryKind};
use crate::NodeId;
use std::collections::{BTreeMap, BTreeSet};

/// Default bound on queries waiting for answers on one node.
pub const MAX_PENDING: usize = 1024;

/// Bytes of channel names (plus 16 per name, rkyv's string header and alignment) one `List`
/// answer carries at most: the frame stays under the 1 MiB body bound with room to spare.
/// Names past it are left out and the answer says `truncated`.
pub const ANSWER_LIST_BYTES: usize = 896 * 1024;

/// What the peers said, merged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Gathered {
    /// `Channel` queries: subscriptions summed over the peers that answered.
    pub subscription_count: u64,
    /// `List` queries: the union of the peers' channel names.
    pub channels: BTreeSet<String>,
    /// Peers the query was sent to.
    pub asked: u32,
    /// Peers whose answer (not `Refused`) was merged.
    pub answered: u32,
    /// Some peer cut its list to fit a frame.
    pub truncated: bool,
}

impl Gathered {
    /// Every peer asked answered in full.
    pub fn complete(&self) -> bool {
        self.answered == self.asked && !self.truncated
    }
}

/// A finished query: who asked, and the result.
#[derive(Debug, PartialEq, Eq)]
pub struct Finished<T> {
    pub token: T,
    pub result: Gathered,
}

/// Counters of the asking side, monotonic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueryCounters {
    /// Queries started (each sent to every linked live peer).
    pub started: u64,
    /// Finished without every peer's full answer: timeout, link lost, `Refused`, truncated.
    pub incomplete: u64,
    /// Refused at once because `max_pending` queries were waiting.
    pub over_limit: u64,
    /// Answers for no waiting query (late after a timeout, duplicate, or from a peer that
    /// was not asked); ignored.
    pub stray_answers: u64,
}

struct Pending<T> {
    token: T,
    /// Peers asked that have not answered yet.
    waiting: BTreeSet<NodeId>,
    result: Gathered,
}

/// The queries this node is waiting on.
pub struct Queries<T> {
    next_id: u64,
    pending: BTreeMap<u64, Pending<T>>,
    max_pending: usize,
    counters: QueryCounters,
}

/// What [`Queries::start`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Start<T> {
    /// Sent: perform `actions` and call [`Queries::expire`] with `id` when the timeout ends.
    Sent { id: u64, actions: Vec<Action> },
    /// Nothing to wait for (no linked peer, or too many queries waiting): already finished.
    Done(Finished<T>),
}

impl<T> Queries<T> {
    /// Query ids start at `first_id`: give each process run a different one (e.g. from its
    /// generation), so that a late `Answer` to a previous run's query, routed by node id to
    /// this run's session, cannot match one of this run's queries.
    pub fn starting_at(max_pending: usize, first_id: u64) -> Queries<T> {
        Queries {
            next_id: first_id,
            ..Queries::new(max_pending)
        }
    }

    pub fn new(max_pending: usize) -> Queries<T> {
        Queries {
            next_id: 0,
            pending: BTreeMap::new(),
            max_pending,
            counters: QueryCounters::default(),
        }
    }

    pub fn counters(&self) -> QueryCounters {
        self.counters
    }

    /// Queries waiting for answers.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Asks every node of `peers` (the linked live peers, without this node) about `app`.
    pub fn start(
        &mut self,
        peers: impl IntoIterator<Item = NodeId>,
        app: &str,
        kind: QueryKind,
        token: T,
    ) -> Start<T> {
        let waiting: BTreeSet<NodeId> = peers.into_iter().collect();
        let mut result = Gathered {
            asked: waiting.len() as u32,
            ..Gathered::default()
        };
        if waiting.is_empty() {
            return Start::Done(Finished { token, result });
        }
        self.counters.started += 1;
        if self.pending.len() >= self.max_pending {
            self.counters.over_limit += 1;
            self.counters.incomplete += 1;
            result.answered = 0;
            return Start::Done(Finished { token, result });
        }
        self.next_id += 1;
        let id = self.next_id;
        let actions = waiting
            .iter()
            .map(|to| Action::Send {
                to: to.clone(),
                msg: NodeMsg::Query {
                    id,
                    app: app.to_owned(),
                    kind: kind.clone(),
                },
            })
            .collect();
        self.pending.insert(
            id,
            Pending {
                token,
                waiting,
                result,
            },
        );
        Start::Sent { id, actions }
    }

    /// An answer from `from`. Finishes the query when it was the last one owed.
    pub fn on_answer(&mut self, from: &NodeId, id: u64, body: AnswerBody) -> Option<Finished<T>> {
        let Some(p) = self.pending.get_mut(&id) else {
            self.counters.stray_answers += 1;
            return None;
        };
        if !p.waiting.remove(from) {
            self.counters.stray_answers += 1;
            return None;
        }
        match body {
            AnswerBody::Channel { subscription_count } => {
                p.result.subscription_count += u64::from(subscription_count);
                p.result.answered += 1;
            }
            AnswerBody::List {
                channels,
                truncated,
            } => {
                p.result.channels.extend(channels);
                p.result.truncated |= truncated;
                p.result.answered += 1;
            }
            AnswerBody::Refused => {}
        }
        if p.waiting.is_empty() {
            return self.finish(id);
        }
        None
    }

    /// The query's time is up: finish it with what arrived (if it is still waiting).
    pub fn expire(&mut self, id: u64) -> Option<Finished<T>> {
        self.finish(id)
    }

    /// The link to `peer` went down: stop waiting for it; finishes queries it was the last
    /// one owed to.
    pub fn peer_gone(&mut self, peer: &NodeId) -> Vec<Finished<T>> {
        let done: Vec<u64> = self
            .pending
            .iter_mut()
            .filter_map(|(id, p)| (p.waiting.remove(peer) && p.waiting.is_empty()).then_some(*id))
            .collect();
        done.into_iter().filter_map(|id| self.finish(id)).collect()
    }

    fn finish(&mut self, id: u64) -> Option<Finished<T>> {
        let p = self.pending.remove(&id)?;
        if !p.result.complete() {
            self.counters.incomplete += 1;
        }
        Some(Finished {
            token: p.token,
            result: p.result,
        })
    }
}

/// The answer to a `List` query: `names` in order, cut at [`ANSWER_LIST_BYTES`].
pub fn list_answer(id: u64, names: impl IntoIterator<Item = String>) -> NodeMsg {
    list_answer_within(id, names, ANSWER_LIST_BYTES)
}

fn list_answer_within(id: u64, names: impl IntoIterator<Item = String>, max: usize) -> NodeMsg {
    let mut channels = Vec::new();
    let mut bytes = 0;
    let mut truncated = false;
    for name in names {
        bytes += name.len() + 16;
        if bytes > max {
            truncated = true;
            break;
        }
        channels.push(name);
    }
    NodeMsg::Answer {
        id,
        body: AnswerBody::List {
            channels,
            truncated,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    fn started(q: &mut Queries<&'static str>, peers: &[&str], kind: QueryKind) -> u64 {
        match q.start(peers.iter().map(|p| n(p)), "1", kind, "caller") {
            Start::Sent { id, actions } => {
                assert_eq!(actions.len(), peers.len());
                id
            }
            Start::Done(_) => panic!("expected a sent query"),
        }
    }

    fn channel(c: &str) -> QueryKind {
        QueryKind::Channel {
            channel: c.to_owned(),
        }
    }

    #[test]
    fn sums_counts_and_finishes_on_the_last_answer() {
        let mut q = Queries::new(8);
        let id = started(&mut q, &["b", "c"], channel("room"));
        let a = |c| AnswerBody::Channel {
            subscription_count: c,
        };
        assert_eq!(q.on_answer(&n("b"), id, a(2)), None);
        // A duplicate from the same peer is stray, not summed twice.
        assert_eq!(q.on_answer(&n("b"), id, a(2)), None);
        let f = q.on_answer(&n("c"), id, a(3)).unwrap();
        assert_eq!(f.token, "caller");
        assert_eq!(f.result.subscription_count, 5);
        assert_eq!((f.result.asked, f.result.answered), (2, 2));
        assert!(f.result.complete());
        assert_eq!(q.counters().stray_answers, 1);
        assert_eq!(q.counters().incomplete, 0);
        assert!(q.is_empty());
    }

    #[test]
    fn timeout_answers_with_what_arrived_and_counts_it() {
        let mut q = Queries::new(8);
        let id = started(
            &mut q,
            &["b", "c"],
            QueryKind::List {
                prefix: String::new(),
            },
        );
        let body = AnswerBody::List {
            channels: vec!["x".into(), "y".into()],
            truncated: false,
        };
        assert_eq!(q.on_answer(&n("b"), id, body), None);
        let f = q.expire(id).unwrap();
        assert_eq!(f.result.channels.len(), 2);
        assert_eq!((f.result.asked, f.result.answered), (2, 1));
        assert_eq!(q.counters().incomplete, 1);
        // The late answer is stray; a second expiry does nothing.
        let late = AnswerBody::Channel {
            subscription_count: 1,
        };
        assert_eq!(q.on_answer(&n("c"), id, late), None);
        assert_eq!(q.expire(id), None);
        assert_eq!(q.counters().stray_answers, 1);
    }

    #[test]
    fn a_lost_link_stops_the_wait_for_that_peer() {
        let mut q = Queries::new(8);
        let id = started(&mut q, &["b", "c"], channel("room"));
        assert!(q.peer_gone(&n("b")).is_empty());
        let f = q.peer_gone(&n("c"));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].result.answered, 0);
        assert_eq!(q.expire(id), None);
    }

    #[test]
    fn refused_and_unasked_answers_do_not_count() {
        let mut q = Queries::new(8);
        let id = started(&mut q, &["b"], channel("room"));
        let a = AnswerBody::Channel {
            subscription_count: 9,
        };
        assert_eq!(q.on_answer(&n("z"), id, a), None);
        let f = q.on_answer(&n("b"), id, AnswerBody::Refused).unwrap();
        assert_eq!(f.result.subscription_count, 0);
        assert!(!f.result.complete());
        assert_eq!(q.counters().incomplete, 1);
    }

    #[test]
    fn no_peers_or_too_many_waiting_finish_at_once() {
        let mut q = Queries::new(1);
        assert!(matches!(
            q.start(Vec::new(), "1", channel("a"), 1),
            Start::Done(Finished { token: 1, .. })
        ));
        assert!(matches!(
            q.start([n("b")], "1", channel("a"), 2),
            Start::Sent { .. }
        ));
        match q.start([n("b")], "1", channel("a"), 3) {
            Start::Done(f) => assert_eq!((f.token, f.result.asked, f.result.answered), (3, 1, 0)),
            Start::Sent { .. } => panic!("over the bound"),
        }
        assert_eq!(q.counters().over_limit, 1);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn list_answers_are_cut_to_fit_a_frame() {
        let names = (0..10).map(|i| format!("channel-{i:04}"));
        let NodeMsg::Answer {
            body:
                AnswerBody::List {
                    channels,
                    truncated,
                },
            ..
        } = list_answer_within(1, names, 3 * (12 + 16))
        else {
            panic!("not a list answer");
        };
        assert_eq!(channels.len(), 3);
        assert!(truncated);
        // The real bound keeps the worst case (200-byte names) inside one frame.
        let long = "x".repeat(200);
        let msg = list_answer(2, std::iter::repeat_n(long, 10_000));
        let frame = crate::wire::encode(&msg).unwrap();
        assert!(frame.len() <= crate::wire::DEFAULT_MAX_BODY + 16);
    }
}
