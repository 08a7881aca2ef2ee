//! A shard: one executor's share of the server. It owns its connections, its local channel
//! table, the channels and users placed on it, and its end of the mesh.
//!
//! **Invariant:** nothing here is `Send`; a shard's state is touched only by its own
//! executor. Other shards are reached only through [`mesh::MeshOut::send`].
//!
//! **Invariant:** handlers of incoming [`ShardMsg`]s never await, so no cycle of shards
//! waiting on each other can form.
//!
//! This file holds the shard's state, the edge-side calls made by WebSocket sessions and HTTP
//! handlers, and message dispatch; [`publish`] sends the edge's events to their order point,
//! [`ask`] holds the edges' typed questions, [`owner`] what an owner shard does for its
//! channels, [`users`] what it does for its users.

mod ask;
pub mod gateway;
mod held;
mod history;
pub mod mesh;
pub mod msg;
mod owner;
mod patterns;
pub mod persist;
pub mod presence_update;
mod publish;
pub mod sweeper;
#[cfg(test)]
mod tests;
pub mod tokens;
mod users;

use crate::app::{App, AppIdx, Apps};
use crate::channel::history::Position;
use crate::channel::local::{LocalChannels, Subscriber};
use crate::channel::owned::OwnedChannels;
use crate::channel::stream::ChannelStreams;
use crate::config::Limits;
use crate::outbox::FlushQueue;
use crate::placement::{shard_for, ShardId};
use crate::protocol::{codes, server as frames};
use crate::session::{ConnId, Connection, SignedIn, Sub, SubState};
use crate::socket_id::SocketId;
use crate::stats::ShardStats;
use crate::webhook::Webhooks;
pub use ask::{AskError, ChannelFigures};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
pub use history::{HistoryAnswer, HistoryError, HistoryEvent, HistoryOp};
use mesh::MeshOut;
pub use msg::ClientEvent;
use msg::{Join, Query, Reply, ShardMsg, SubReq};
pub use publish::Sent;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// How long an HTTP handler waits for another shard's answer before giving up (503).
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Shard {
    pub id: ShardId,
    pub nr_shards: usize,
    /// The apps, limits and TLS settings in force (a reload swaps them).
    pub live: Arc<crate::live::Live>,
    /// The [`crate::live::Live::generation`] this shard last acted on.
    seen_generation: Cell<u64>,
    pub flush: Rc<FlushQueue>,
    pub mesh: Rc<MeshOut>,
    pub webhooks: Webhooks,
    /// Running as one node of a cluster: events and presence go through the gateway.
    pub clustered: bool,
    /// Shard 0 in cluster mode: this node's protocol state and links.
    pub gateway: RefCell<Option<Rc<gateway::Gateway>>>,
    /// Node-wide connection count and shutdown flag.
    pub node: Arc<crate::lifecycle::Node>,
    /// New-connection rate window: (start of the current second, admitted in it).
    conn_rate: Cell<(std::time::Instant, u32)>,
    /// Live sessions on this shard: its WebSockets, and the HTTP sessions it is home to.
    pub conns: RefCell<HashMap<ConnId, Rc<Connection>>>,
    /// The HTTP transports' sessions and receivers on this shard (`crate::xhr`).
    pub xhr: crate::xhr::Local,
    next_conn: Cell<u64>,
    pub local: RefCell<LocalChannels>,
    pub owned: RefCell<OwnedChannels>,
    /// Single node: the wildcard subscriptions with subscribers, which this shard's
    /// channels' events go on to (`patterns`).
    patterns: RefCell<crate::channel::pattern::Index>,
    /// Single node: registrations of the patterns this shard owns, until every shard has them.
    pattern_regs: RefCell<HashMap<(AppIdx, Arc<str>), patterns::Registration>>,
    /// The streams of the channels this shard owns (`owner::order` appends to them).
    pub streams: RefCell<ChannelStreams>,
    /// Where the histories of `streams` are written (`[history] data_dir`), if anywhere.
    history_log: RefCell<Option<Rc<persist::HistoryLog>>>,
    /// Access-token revocations in force (every shard holds all of them), and the uses of
    /// the tokens this shard owns (docs/tokens.md).
    revocations: RefCell<tokens::Revocations>,
    uses: RefCell<tokens::Uses>,
    /// Users placed on this shard: signed-in connection counts and watchers.
    users: RefCell<users::UserRegistry>,
    /// Owned channels whose `subscription_count` changed while throttled.
    count_dirty: RefCell<HashSet<(AppIdx, Arc<str>)>>,
    /// Cluster mode: owned channels whose first subscriptions wait for the owning node's
    /// ack (`held`), and the last ticket handed out for such a wait.
    awaiting: RefCell<HashMap<(AppIdx, Arc<str>), held::Awaiting>>,
    /// Cluster mode: subscriptions to channels with history waiting for their recovery
    /// frames from the owning node, by ticket (bounded by `held::RECOVERY_WAIT`).
    recovering: RefCell<held::Recovering>,
    next_ticket: Cell<u64>,
    /// The last `SubReq::seq` this shard gave a subscribe request.
    next_sub_seq: Cell<u64>,
    /// Outstanding cross-shard queries, by id.
    pending: RefCell<HashMap<u64, LocalSender<Reply>>>,
    next_query: Cell<u64>,
    pub stats: Rc<ShardStats>,
    /// Frames delivered per app on this shard (the dashboard's messages out per app).
    app_delivered: RefCell<crate::app::PerApp<u64>>,
}

/// Why a query to another shard failed. Internal; the HTTP layer answers 503.
#[derive(Debug, thiserror::Error)]
#[error("shard did not answer in time")]
pub struct QueryTimeout;

impl Shard {
    pub fn new(
        id: ShardId,
        nr_shards: usize,
        live: Arc<crate::live::Live>,
        mesh: Rc<MeshOut>,
        webhooks: Webhooks,
        node: Arc<crate::lifecycle::Node>,
        clustered: bool,
    ) -> Rc<Shard> {
        let stats = Rc::new(ShardStats::default());
        Rc::new(Shard {
            id,
            nr_shards,
            seen_generation: Cell::new(live.generation()),
            live,
            flush: FlushQueue::new(stats.clone()),
            mesh,
            webhooks,
            clustered,
            gateway: RefCell::new(None),
            node,
            conn_rate: Cell::new((std::time::Instant::now(), 0)),
            conns: RefCell::new(HashMap::new()),
            xhr: crate::xhr::Local::default(),
            next_conn: Cell::new(0),
            local: RefCell::new(LocalChannels::new()),
            owned: RefCell::new(OwnedChannels::new(nr_shards)),
            patterns: RefCell::default(),
            pattern_regs: RefCell::default(),
            streams: RefCell::new(ChannelStreams::new(Default::default())),
            history_log: RefCell::new(None),
            revocations: RefCell::new(tokens::Revocations::default()),
            uses: RefCell::new(tokens::Uses::default()),
            users: RefCell::new(users::UserRegistry::new()),
            count_dirty: RefCell::new(HashSet::new()),
            awaiting: RefCell::new(HashMap::new()),
            recovering: RefCell::new(HashMap::new()),
            next_ticket: Cell::new(0),
            next_sub_seq: Cell::new(0),
            pending: RefCell::new(HashMap::new()),
            next_query: Cell::new(0),
            stats,
            app_delivered: RefCell::new(crate::app::PerApp::new()),
        })
    }

    /// The apps in force. Hold the guard for one lookup, never across an `await`.
    pub fn apps(&self) -> arc_swap::Guard<Arc<Apps>> {
        self.live.apps()
    }

    /// The current version of app `idx` (its secret and options as of the last reload).
    pub fn app(&self, idx: AppIdx) -> Arc<App> {
        self.apps().get(idx).clone()
    }

    /// The limits in force. Hold the guard for one use, never across an `await`.
    pub fn limits(&self) -> arc_swap::Guard<Arc<Limits>> {
        self.live.limits()
    }

    /// After a reload (once per new [`crate::live::Live::generation`], from the sweeper):
    /// closes this shard's connections of apps the reload removed, with 4001 as Pusher
    /// does for an app that does not exist.
    pub fn after_reload(&self) {
        let generation = self.live.generation();
        if generation == self.seen_generation.replace(generation) {
            return;
        }
        let apps = self.apps();
        for c in self.conns.borrow().values() {
            if apps.get(c.app).removed {
                c.close_with_error(codes::APP_NOT_FOUND, "App removed", "App removed");
            }
        }
    }

    pub fn owner_of(&self, app: AppIdx, channel: &str) -> ShardId {
        shard_for(&self.apps().get(app).id, channel, self.nr_shards)
    }

    /// Users are placed like their `#server-to-user-{id}` channel.
    pub fn owner_of_user(&self, app: AppIdx, user: &str) -> ShardId {
        self.owner_of(app, &format!("#server-to-user-{user}"))
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

    // ---- admission ----------------------------------------------------------------------

    /// Admits a new WebSocket connection of `app`, or says which close code refuses it.
    /// On success the node and app counters include it until [`Shard::remove_connection`].
    pub fn admit(&self, app: &App) -> Result<(), (u16, &'static str)> {
        use std::sync::atomic::Ordering::Relaxed;
        if self.node.shutting_down() {
            return Err((codes::RECONNECT, "server shutting down"));
        }
        // The handshake found the app before the 101 was written; a reload may have removed
        // it since, after this shard's sweep of removed apps' connections already ran. From
        // here to the connection's insert nothing awaits, so checking now closes the gap.
        if self.apps().get(app.idx).removed {
            return Err((codes::APP_NOT_FOUND, "App removed"));
        }
        let limits = self.limits();
        let per_shard = (limits.max_new_connections_per_second / self.nr_shards as u32).max(1);
        if !take_token(&self.conn_rate, per_shard) {
            return Err((
                codes::OVER_CAPACITY,
                "too many new connections, retry later",
            ));
        }
        if self.node.connections.fetch_add(1, Relaxed) >= limits.max_connections {
            self.node.connections.fetch_sub(1, Relaxed);
            return Err((codes::OVER_CAPACITY, "Over connection quota"));
        }
        let n = app.counters.connections.fetch_add(1, Relaxed);
        if app.max_connections.is_some_and(|max| n >= max) {
            app.counters.connections.fetch_sub(1, Relaxed);
            self.node.connections.fetch_sub(1, Relaxed);
            return Err((codes::OVER_CAPACITY, "Over connection quota"));
        }
        Ok(())
    }

    // ---- called by the WebSocket session -------------------------------------------------

    /// Starts a subscription (already authorized by the caller); the client hears back when
    /// the owner acknowledges.
    /// Subscribes `conn` to `channel` (as `join`, on a presence channel), recovering from
    /// `recover` on a channel with history (docs/history.md).
    pub fn subscribe(
        &self,
        conn: &Rc<Connection>,
        channel: Arc<str>,
        join: Option<Join>,
        recover: Option<Position>,
    ) {
        let app = conn.app;
        let seq = self.next_sub_seq.get() + 1;
        {
            let mut subs = conn.subs.borrow_mut();
            match subs.get(&channel).map(|s| s.state) {
                // Already subscribed: confirm again (presence lists live at the owner, so a
                // duplicate presence subscribe is simply ignored).
                Some(SubState::Active) => {
                    if join.is_none() {
                        conn.out.push(frames::subscription_succeeded(&channel));
                    }
                    return;
                }
                Some(SubState::Pending) => return,
                Some(SubState::Cancelled) | None => {
                    subs.insert(
                        channel.clone(),
                        Sub {
                            state: SubState::Pending,
                            seq,
                            user_id: join.as_ref().map(|j| j.user_id.clone()),
                            privileged: join.as_ref().is_some_and(|j| j.privileged),
                        },
                    );
                }
            }
        }
        self.next_sub_seq.set(seq);
        let owner = self.owner_of(app, &channel);
        self.mesh.send(
            owner,
            ShardMsg::Subscribe {
                app,
                channel,
                from: self.id,
                req: SubReq { conn: conn.id, seq },
                socket_id: conn.socket_id,
                join,
                recover,
            },
        );
    }

    pub fn unsubscribe(&self, conn: &Rc<Connection>, channel: &str) {
        let app = conn.app;
        let mut subs = conn.subs.borrow_mut();
        let Some((name, mut sub)) = subs.remove_entry(channel) else {
            return;
        };
        match sub.state {
            SubState::Active => {
                self.local.borrow_mut().remove(app, channel, conn.id);
                let owner = self.owner_of(app, channel);
                let user_id = sub.user_id;
                self.mesh.send(
                    owner,
                    ShardMsg::Unsubscribe {
                        app,
                        channel: name,
                        from: self.id,
                        user_id,
                    },
                );
            }
            SubState::Pending | SubState::Cancelled => {
                sub.state = SubState::Cancelled;
                subs.insert(name, sub);
            }
        }
    }

    /// Drops every subscription and the sign-in of a closed connection, and forgets it.
    pub fn remove_connection(&self, conn: &Rc<Connection>) {
        if self.conns.borrow_mut().remove(&conn.id).is_some() {
            use std::sync::atomic::Ordering::Relaxed;
            self.node.connections.fetch_sub(1, Relaxed);
            conn.counters.connections.fetch_sub(1, Relaxed);
        }
        let app = conn.app;
        let subs: Vec<(Arc<str>, Sub)> = conn.subs.borrow_mut().drain().collect();
        for (channel, sub) in subs {
            // Pending/Cancelled ones are undone when their acknowledgement finds no connection.
            if sub.state == SubState::Active {
                self.local.borrow_mut().remove(app, &channel, conn.id);
                let owner = self.owner_of(app, &channel);
                self.mesh.send(
                    owner,
                    ShardMsg::Unsubscribe {
                        app,
                        channel,
                        from: self.id,
                        user_id: sub.user_id,
                    },
                );
            }
        }
        if let Some(user) = conn.user.borrow_mut().take() {
            for w in user.watchlist {
                let owner = self.owner_of_user(app, &w);
                self.mesh.send(
                    owner,
                    ShardMsg::Unwatch {
                        app,
                        user: w,
                        from: self.id,
                        conn: conn.id,
                    },
                );
            }
            let owner = self.owner_of_user(app, &user.id);
            self.mesh
                .send(owner, ShardMsg::UserOffline { app, user: user.id });
        }
    }

    /// Binds a verified user to the connection and starts its watchlist.
    pub fn sign_in(&self, conn: &Rc<Connection>, user: SignedIn) {
        let app = conn.app;
        let owner = self.owner_of_user(app, &user.id);
        self.mesh.send(
            owner,
            ShardMsg::UserOnline {
                app,
                user: user.id.clone(),
            },
        );
        for w in &user.watchlist {
            let owner = self.owner_of_user(app, w);
            self.mesh.send(
                owner,
                ShardMsg::Watch {
                    app,
                    user: w.clone(),
                    from: self.id,
                    conn: conn.id,
                },
            );
        }
        *conn.user.borrow_mut() = Some(user);
        conn.authorized.set(true);
    }

    /// Per app with anything on this shard: its [`AppFigure`](msg::AppFigure).
    fn local_app_figures(&self) -> Vec<(AppIdx, msg::AppFigure)> {
        let mut out: HashMap<AppIdx, msg::AppFigure> = HashMap::new();
        for (app, t) in self.owned.borrow().app_totals() {
            let f = out.entry(app).or_default();
            (f.channels, f.presence_channels, f.members, f.subscriptions) =
                (t.channels, t.presence_channels, t.members, t.subscriptions);
        }
        for (app, &n) in self.app_delivered.borrow().iter().enumerate() {
            if n > 0 {
                out.entry(app as AppIdx).or_default().delivered = n;
            }
        }
        out.into_iter().collect()
    }

    /// Closes the signed-in connections of `user` on every shard (and every node).
    pub fn terminate_user(&self, app: AppIdx, user: &str) {
        if self.clustered {
            let user: Arc<str> = Arc::from(user);
            self.to_gateway(msg::GatewayMsg::Terminate { app, user });
            return;
        }
        self.terminate_local(app, user);
    }

    /// Closes the signed-in connections of `user` on every shard of this node.
    pub fn terminate_local(&self, app: AppIdx, user: &str) {
        let user: Arc<str> = Arc::from(user);
        for s in 0..self.nr_shards {
            self.mesh.send(
                s,
                ShardMsg::Terminate {
                    app,
                    user: user.clone(),
                },
            );
        }
    }

    /// Asks shard `dst` a question and waits for its answer.
    pub async fn query(&self, dst: ShardId, query: Query) -> Result<Reply, QueryTimeout> {
        let from = self.id;
        self.request(dst, |id| ShardMsg::Query { from, id, query })
            .await
    }

    /// Sends the message `make(id)` to `dst` and waits for the `Reply` with that id.
    pub(crate) async fn request(
        &self,
        dst: ShardId,
        make: impl FnOnce(u64) -> ShardMsg,
    ) -> Result<Reply, QueryTimeout> {
        let (id, reply) = self.expect_reply();
        self.mesh.send(dst, make(id));
        self.await_reply(id, reply).await
    }

    /// A new request id and the channel its [`ShardMsg::Reply`] will arrive on.
    fn expect_reply(&self) -> (u64, LocalReceiver<Reply>) {
        let id = self.next_query.get() + 1;
        self.next_query.set(id);
        let (tx, rx) = local_channel::new_bounded(1);
        self.pending.borrow_mut().insert(id, tx);
        (id, rx)
    }

    /// Waits for the reply to request `id`, up to the query timeout.
    async fn await_reply(&self, id: u64, rx: LocalReceiver<Reply>) -> Result<Reply, QueryTimeout> {
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
    pub fn handle(self: &Rc<Self>, msg: ShardMsg) {
        match msg {
            ShardMsg::Xhr(m) => crate::xhr::handle(self, *m),
            ShardMsg::Subscribe {
                app,
                channel,
                from,
                req,
                socket_id,
                join,
                recover,
            } => self.owner_subscribe(app, channel, from, req, socket_id, join, recover),
            ShardMsg::SubscribeAck {
                app,
                channel,
                req,
                ok,
                frames,
                user_id,
            } => self.on_subscribe_ack(app, channel, req, ok, frames, user_id),
            ShardMsg::Relay { to, msg } => self.mesh.send(to, *msg),
            ShardMsg::Unsubscribe {
                app,
                channel,
                from,
                user_id,
            } => self.owner_unsubscribe(app, channel, from, user_id),
            ShardMsg::Publish {
                app,
                channel,
                event,
                exclude,
                t0,
                ack,
            } => {
                // A single node: this owner shard is the channel's order point.
                let to_patterns = self.pattern_frames(app, &channel, &event);
                self.order_event(app, channel, event, exclude, t0);
                self.ack_published(ack);
                if !to_patterns.is_empty() {
                    self.to_patterns(app, to_patterns, exclude, t0);
                }
            }
            ShardMsg::Pattern {
                app,
                pattern,
                on,
                owner,
                generation,
            } => self.on_pattern(app, pattern, on, owner, generation),
            ShardMsg::PatternAck {
                app,
                pattern,
                generation,
            } => self.on_pattern_ack(app, pattern, generation),
            ShardMsg::PatternEvent {
                app,
                pattern,
                frame,
                exclude,
                t0,
            } => self.order(app, pattern, frame, exclude, false, None, t0),
            ShardMsg::PublishChunks {
                app,
                channel,
                chunks,
                exclude,
                t0,
                ack,
            } => {
                self.order_chunks(app, channel, chunks, exclude, t0);
                self.ack_published(ack);
            }
            ShardMsg::Deliver {
                app,
                channel,
                frame,
                exclude,
                privileged_only,
                t0,
            } => {
                self.flush.tick_clock();
                let n =
                    self.local
                        .borrow()
                        .deliver(app, &channel, &frame, exclude, privileged_only);
                self.stats.note_delivery(t0, n);
                *self.app_delivered.borrow_mut().entry(app) += n as u64;
            }
            ShardMsg::UserOnline { app, user } => self.user_online(app, user),
            ShardMsg::UserOffline { app, user } => self.user_offline(app, user),
            ShardMsg::Watch {
                app,
                user,
                from,
                conn,
            } => self.watch(app, user, from, conn),
            ShardMsg::Unwatch {
                app,
                user,
                from,
                conn,
            } => self.unwatch(app, &user, from, conn),
            ShardMsg::WatchNotify { conn, user, online } => {
                if let Some(c) = self.conns.borrow().get(&conn) {
                    c.out.push(frames::watchlist_event(online, &[&user]));
                }
            }
            ShardMsg::Terminate { app, user } => {
                let conns: Vec<_> = self.conns.borrow().values().cloned().collect();
                for c in conns {
                    if c.app == app && c.user_id().as_deref() == Some(&*user) {
                        let why = "connection terminated by the app";
                        c.close_with_error(codes::UNAUTHORIZED, why, "terminated");
                    }
                }
            }
            ShardMsg::PresenceUpdate(update) => self.owner_presence_update(update),
            ShardMsg::Gateway(msg) => self.on_gateway_msg(msg),
            ShardMsg::ClusterInterestReady {
                app,
                channel,
                ticket,
            } => self.interest_ready(app, channel, ticket),
            ShardMsg::TokenUse {
                app,
                jti,
                session,
                uses,
                until,
                from,
                conn,
            } => self.token_use(app, jti, &session, uses, until, from, conn),
            ShardMsg::TokenUseRefused { conn } => self.token_use_refused(conn),
            ShardMsg::Revoke { app, what, r } => self.revoke_here(app, what, r),
            ShardMsg::CloseSubscribers { app, channel } => {
                self.local
                    .borrow()
                    .close(app, &channel, codes::RECONNECT, HISTORY_GAP)
            }
            ShardMsg::Recovered {
                app,
                channel,
                ticket,
                frames,
            } => self.recovered(app, channel, ticket, frames),
            ShardMsg::LocalFanout {
                app,
                channel,
                frame,
                exclude,
                privileged_only,
                retain,
                t0,
            } => self.order(app, channel, frame, exclude, privileged_only, retain, t0),
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

    fn on_subscribe_ack(
        &self,
        app: AppIdx,
        channel: Arc<str>,
        req: SubReq,
        ok: bool,
        frames: Vec<crate::frame::Frame>,
        user_id: Option<Arc<str>>,
    ) {
        let conn = self.conns.borrow().get(&req.conn).cloned();
        // Only the answer to the request the subscription waits for counts; the answer to
        // an earlier request of the same connection (unsubscribed and subscribed again
        // meanwhile, perhaps as another presence user) is undone below as what it was.
        let sub = conn.as_ref().and_then(|c| {
            let sub = c.subs.borrow().get(&channel).cloned();
            sub.filter(|s| s.seq == req.seq)
        });
        if !ok {
            // Refused by the owner (e.g. presence channel full): nothing was counted.
            if let (Some(conn), Some(sub)) = (conn, sub) {
                if sub.state != SubState::Active {
                    conn.subs.borrow_mut().remove(&channel);
                    if sub.state == SubState::Pending {
                        for f in frames {
                            conn.out.push(f);
                        }
                    }
                }
            }
            return;
        }
        match (conn, sub) {
            (Some(conn), Some(sub)) if sub.state == SubState::Pending => {
                if let Some(s) = conn.subs.borrow_mut().get_mut(&channel) {
                    s.state = SubState::Active;
                }
                if sub.user_id.is_some() || channel.starts_with("private-") {
                    conn.authorized.set(true);
                }
                self.local.borrow_mut().add(
                    app,
                    &channel,
                    conn.id,
                    Subscriber {
                        socket_id: conn.socket_id,
                        out: conn.out.clone(),
                        privileged: sub.privileged,
                    },
                );
                for f in frames {
                    conn.out.push(f);
                }
            }
            (conn, sub) => {
                // Unsubscribed or gone while pending, or a duplicate: undo the owner's count.
                if let (Some(conn), Some(s)) = (&conn, &sub) {
                    if s.state == SubState::Cancelled {
                        conn.subs.borrow_mut().remove(&channel);
                    }
                }
                let owner = self.owner_of(app, &channel);
                self.mesh.send(
                    owner,
                    ShardMsg::Unsubscribe {
                        app,
                        channel,
                        from: self.id,
                        user_id,
                    },
                );
            }
        }
    }

    /// Puts the node's history bounds in force (before the shard takes connections).
    pub fn set_history(&self, settings: crate::config::HistorySettings) {
        *self.streams.borrow_mut() = ChannelStreams::new(settings);
    }

    /// Periodic owner work: throttled `subscription_count` events and cache expiry.
    pub fn tick(&self, now: std::time::Instant) {
        self.flush_counts(now);
        self.streams.borrow_mut().expire(now);
        self.expire_recovering(now);
        self.expire_tokens();
    }
}

/// The close reason of a subscriber that may have missed events of a channel with history.
pub const HISTORY_GAP: &str = "events may have been missed: reconnect and recover";

/// A one-second window counter: true if another event fits in `per_second`.
fn take_token(window: &Cell<(std::time::Instant, u32)>, per_second: u32) -> bool {
    crate::session::take(window, per_second, std::time::Instant::now())
}
