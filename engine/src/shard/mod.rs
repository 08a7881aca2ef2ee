//! A shard: one executor's share of the server. It owns its connections, its local channel
//! table, the channels placed on it, and its end of the mesh.
//!
//! **Invariant:** nothing here is `Send`; a shard's state is touched only by its own
//! executor. Other shards are reached only through [`mesh::MeshOut::send`].
//!
//! **Invariant:** handlers of incoming [`ShardMsg`]s never await, so no cycle of shards
//! waiting on each other can form.

pub mod mesh;
pub mod msg;
pub mod sweeper;

use crate::app::{AppIdx, Apps};
use crate::channel::local::{ConnId, LocalChannels, Subscriber};
use crate::channel::owned::OwnedChannels;
use crate::config::Limits;
use crate::connection::{Connection, SubState};
use crate::outbox::FlushQueue;
use crate::placement::{shard_for, ShardId};
use crate::protocol::server as frames;
use crate::socket_id::SocketId;
use bytes::Bytes;
use glommio::channels::local_channel::{self, LocalSender};
use mesh::MeshOut;
use msg::{Query, Reply, ShardMsg};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// How long an HTTP handler waits for another shard's answer before giving up (503).
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Shard {
    pub id: ShardId,
    pub nr_shards: usize,
    pub apps: Arc<Apps>,
    pub limits: Arc<Limits>,
    pub flush: Rc<FlushQueue>,
    pub mesh: Rc<MeshOut>,
    /// Live WebSocket connections accepted by this shard.
    pub conns: RefCell<HashMap<ConnId, Rc<Connection>>>,
    next_conn: Cell<u64>,
    pub local: RefCell<LocalChannels>,
    pub owned: RefCell<OwnedChannels>,
    /// Outstanding cross-shard queries, by id.
    pending: RefCell<HashMap<u64, LocalSender<Reply>>>,
    next_query: Cell<u64>,
    /// Counters for stats.
    pub stats: ShardStats,
}

#[derive(Default)]
pub struct ShardStats {
    pub published: Cell<u64>,
    pub delivered: Cell<u64>,
}

/// Why a query to another shard failed. Internal; the HTTP layer answers 503.
#[derive(Debug, thiserror::Error)]
#[error("shard did not answer in time")]
pub struct QueryTimeout;

impl Shard {
    pub fn new(
        id: ShardId,
        nr_shards: usize,
        apps: Arc<Apps>,
        limits: Arc<Limits>,
        mesh: Rc<MeshOut>,
    ) -> Rc<Shard> {
        let n_apps = apps.list.len();
        Rc::new(Shard {
            id,
            nr_shards,
            apps,
            limits,
            flush: FlushQueue::new(),
            mesh,
            conns: RefCell::new(HashMap::new()),
            next_conn: Cell::new(0),
            local: RefCell::new(LocalChannels::new(n_apps)),
            owned: RefCell::new(OwnedChannels::new(n_apps, nr_shards)),
            pending: RefCell::new(HashMap::new()),
            next_query: Cell::new(0),
            stats: ShardStats::default(),
        })
    }

    pub fn owner_of(&self, app: AppIdx, channel: &str) -> ShardId {
        shard_for(&self.apps.get(app).id, channel, self.nr_shards)
    }

    /// A fresh connection id and socket id. The socket id's low part embeds the shard so ids
    /// are unique process-wide; the high part is random so ids are not sequential.
    pub fn next_ids(&self) -> (ConnId, SocketId) {
        let n = self.next_conn.get() + 1;
        self.next_conn.set(n);
        let lo = n * self.nr_shards as u64 + self.id as u64;
        (
            n,
            SocketId {
                hi: u64::from(fastrand::u32(1..)),
                lo,
            },
        )
    }

    // ---- called by the WebSocket session -------------------------------------------------

    /// Starts a subscription; `subscription_succeeded` is sent when the owner acknowledges.
    pub fn subscribe(&self, conn: &Rc<Connection>, channel: Arc<str>) {
        let app = conn.app.idx;
        {
            let mut subs = conn.subs.borrow_mut();
            match subs.get(&channel).copied() {
                Some(SubState::Active) => {
                    conn.out.push(frames::subscription_succeeded(&channel));
                    return;
                }
                Some(SubState::Pending) => return,
                Some(SubState::Cancelled) | None => {
                    subs.insert(channel.clone(), SubState::Pending);
                }
            }
        }
        let owner = self.owner_of(app, &channel);
        self.mesh.send(
            owner,
            ShardMsg::Subscribe {
                app,
                channel,
                from: self.id,
                conn: conn.id,
            },
        );
    }

    pub fn unsubscribe(&self, conn: &Rc<Connection>, channel: &str) {
        let app = conn.app.idx;
        let mut subs = conn.subs.borrow_mut();
        let Some((name, state)) = subs.remove_entry(channel) else {
            return;
        };
        match state {
            SubState::Active => {
                self.local.borrow_mut().remove(app, channel, conn.id);
                let owner = self.owner_of(app, channel);
                self.mesh.send(
                    owner,
                    ShardMsg::Unsubscribe {
                        app,
                        channel: name,
                        from: self.id,
                    },
                );
            }
            SubState::Pending => {
                subs.insert(name, SubState::Cancelled);
            }
            SubState::Cancelled => {
                subs.insert(name, SubState::Cancelled);
            }
        }
    }

    /// Drops every subscription of a closed connection and forgets it.
    pub fn remove_connection(&self, conn: &Rc<Connection>) {
        self.conns.borrow_mut().remove(&conn.id);
        let subs: Vec<(Arc<str>, SubState)> = conn.subs.borrow_mut().drain().collect();
        for (channel, state) in subs {
            // Pending/Cancelled ones are undone when their acknowledgement finds no connection.
            if state == SubState::Active {
                let app = conn.app.idx;
                self.local.borrow_mut().remove(app, &channel, conn.id);
                let owner = self.owner_of(app, &channel);
                self.mesh.send(
                    owner,
                    ShardMsg::Unsubscribe {
                        app,
                        channel,
                        from: self.id,
                    },
                );
            }
        }
    }

    // ---- called by the HTTP API ----------------------------------------------------------

    /// Sends a finished event frame to the channel's owner, waiting if the owner is behind.
    pub async fn publish(
        &self,
        app: AppIdx,
        channel: Arc<str>,
        frame: Bytes,
        exclude: Option<SocketId>,
    ) {
        let owner = self.owner_of(app, &channel);
        self.mesh.wait_for_room(owner).await;
        self.stats.published.set(self.stats.published.get() + 1);
        self.mesh.send(
            owner,
            ShardMsg::Publish {
                app,
                channel,
                frame,
                exclude,
            },
        );
    }

    /// Asks shard `dst` a question and waits for its answer.
    pub async fn query(&self, dst: ShardId, query: Query) -> Result<Reply, QueryTimeout> {
        let id = self.next_query.get() + 1;
        self.next_query.set(id);
        let (tx, rx) = local_channel::new_bounded(1);
        self.pending.borrow_mut().insert(id, tx);
        self.mesh.send(
            dst,
            ShardMsg::Query {
                from: self.id,
                id,
                query,
            },
        );
        let res = glommio::timer::timeout(QUERY_TIMEOUT, async {
            rx.recv().await.ok_or(glommio::GlommioError::Closed(
                glommio::ResourceType::Channel(()),
            ))
        })
        .await;
        self.pending.borrow_mut().remove(&id);
        res.map_err(|_| QueryTimeout)
    }

    // ---- incoming messages ---------------------------------------------------------------

    /// Handles one message from any shard (or this one). Never awaits.
    pub fn handle(&self, msg: ShardMsg) {
        match msg {
            ShardMsg::Subscribe {
                app,
                channel,
                from,
                conn,
            } => {
                self.owned.borrow_mut().subscribe(app, &channel, from);
                self.mesh
                    .send(from, ShardMsg::SubscribeAck { app, channel, conn });
            }
            ShardMsg::SubscribeAck { app, channel, conn } => {
                self.on_subscribe_ack(app, channel, conn)
            }
            ShardMsg::Unsubscribe { app, channel, from } => {
                self.owned.borrow_mut().unsubscribe(app, &channel, from);
            }
            ShardMsg::Publish {
                app,
                channel,
                frame,
                exclude,
            } => {
                let owned = self.owned.borrow();
                if let Some(o) = owned.get(app, &channel) {
                    for (shard, &n) in o.per_shard.iter().enumerate() {
                        if n > 0 {
                            self.mesh.send(
                                shard,
                                ShardMsg::Deliver {
                                    app,
                                    channel: o.name.clone(),
                                    frame: frame.clone(),
                                    exclude,
                                },
                            );
                        }
                    }
                }
            }
            ShardMsg::Deliver {
                app,
                channel,
                frame,
                exclude,
            } => {
                let n = self.local.borrow().deliver(app, &channel, &frame, exclude);
                self.stats
                    .delivered
                    .set(self.stats.delivered.get() + n as u64);
            }
            ShardMsg::Query { from, id, query } => {
                let reply = self.answer(query);
                self.mesh.send(from, ShardMsg::Reply { id, reply });
            }
            ShardMsg::Reply { id, reply } => {
                if let Some(tx) = self.pending.borrow_mut().remove(&id) {
                    let _ = tx.try_send(reply);
                }
            }
        }
    }

    fn on_subscribe_ack(&self, app: AppIdx, channel: Arc<str>, conn_id: ConnId) {
        let conn = self.conns.borrow().get(&conn_id).cloned();
        let state = conn
            .as_ref()
            .and_then(|c| c.subs.borrow().get(&channel).copied());
        match (conn, state) {
            (Some(conn), Some(SubState::Pending)) => {
                conn.subs
                    .borrow_mut()
                    .insert(channel.clone(), SubState::Active);
                self.local.borrow_mut().add(
                    app,
                    &channel,
                    conn.id,
                    Subscriber {
                        socket_id: conn.socket_id,
                        out: conn.out.clone(),
                    },
                );
                conn.out.push(frames::subscription_succeeded(&channel));
            }
            (conn, state) => {
                // Unsubscribed or gone while pending, or a duplicate: undo the owner's count.
                if let (Some(conn), Some(SubState::Cancelled)) = (conn, state) {
                    conn.subs.borrow_mut().remove(&channel);
                }
                let owner = self.owner_of(app, &channel);
                self.mesh.send(
                    owner,
                    ShardMsg::Unsubscribe {
                        app,
                        channel,
                        from: self.id,
                    },
                );
            }
        }
    }

    fn answer(&self, query: Query) -> Reply {
        match query {
            Query::Channel { app, channel } => Reply::Channel {
                subscription_count: self
                    .owned
                    .borrow()
                    .get(app, &channel)
                    .map_or(0, |o| o.total),
            },
            Query::List { app, prefix } => Reply::List(self.owned.borrow().list(app, &prefix)),
        }
    }
}
