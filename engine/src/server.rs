//! Starting the shards: one glommio executor per shard, a full mesh between them, and a
//! `SO_REUSEPORT` listener on every shard; plus the metrics listener (`metrics.bind`) on
//! shard 0.

use crate::app::Apps;
use crate::config::Config;
use crate::http::admin::{Access, OperatorToken, Surface};
use crate::live::{read_files, Files, Live};
use crate::outbox::FlushQueue;
use crate::reload::Reloader;
use crate::shard::gateway::{ClusterNode, Gateway, GATEWAY};
use crate::shard::mesh::MeshOut;
use crate::shard::msg::ShardMsg;
use crate::shard::{sweeper, Shard};
use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{LocalExecutorPoolBuilder, PoolPlacement};
use std::net::{SocketAddr, TcpListener as StdListener};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod listener;
mod startup;

use listener::{accept_loop, Listener};

/// Why the server could not start. Operator errors; the process exits non-zero.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source} (is another server already running there?)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The metrics listener's address (`metrics.bind`) cannot be bound.
    #[error(
        "cannot listen on {addr} for metrics (metrics.bind): {source} (is another server \
         already running there? pick another address with --metrics-bind, or \"off\")"
    )]
    MetricsBind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the shards: {0}")]
    Executors(String),
    /// The `[tls]` certificate or key cannot be used; the message names the field.
    #[error("{0}")]
    Tls(crate::config::ConfigError),
    #[error("cannot join the cluster: {0}")]
    Cluster(String),
}

/// Picks the real address before the shards bind. The shards' listeners share the port with
/// `SO_REUSEPORT`, so a second server on the same port would silently *share* traffic; a
/// plain bind (std's: `SO_REUSEADDR` without `SO_REUSEPORT`) first makes that an error
/// instead, as it conflicts with any live listener there, ours included. It does not
/// conflict with the TIME-WAIT sockets a stopped server left, which have `SO_REUSEADDR` too
/// (`Listener::bind`), nor with its listeners, which the drain shut down. Port 0 is
/// resolved here to one free port that every shard then binds.
///
/// A server that died without a drain (SIGKILL, a crash) keeps its listeners bound for a few
/// milliseconds after the process is gone, until the kernel tears its io_uring down (the
/// ring holds them). So "in use" is believed only after [`BIND_RETRY`].
pub fn resolve_bind(addr: SocketAddr) -> Result<SocketAddr, StartError> {
    let bind_error = |source| StartError::Bind { addr, source };
    probe(addr).and_then(|p| p.local_addr()).map_err(bind_error)
}

/// [`resolve_bind`] for the public and the metrics listener. The first probe is held while
/// the second binds, so port 0 cannot resolve both to one port (their `SO_REUSEPORT`
/// sockets would then share it, metrics and WebSockets mixed).
fn resolve_binds(
    public: SocketAddr,
    metrics: Option<SocketAddr>,
) -> Result<(SocketAddr, Option<SocketAddr>), StartError> {
    let bind_error = |source| StartError::Bind {
        addr: public,
        source,
    };
    let public_probe = probe(public).map_err(bind_error)?;
    let public_addr = public_probe.local_addr().map_err(bind_error)?;
    let metrics_addr = match metrics {
        None => None,
        Some(addr) => Some(
            probe(addr)
                .and_then(|p| p.local_addr())
                .map_err(|source| StartError::MetricsBind { addr, source })?,
        ),
    };
    drop(public_probe);
    Ok((public_addr, metrics_addr))
}

/// A plain bind of `addr`, retried for [`BIND_RETRY`] while it is in use.
fn probe(addr: SocketAddr) -> std::io::Result<StdListener> {
    let deadline = std::time::Instant::now() + BIND_RETRY;
    loop {
        match StdListener::bind(addr) {
            Ok(probe) => return Ok(probe),
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    }
}

/// How long [`resolve_bind`] retries a port in use (measured: a dead server's listeners go
/// within ~15 ms).
const BIND_RETRY: Duration = Duration::from_millis(500);

/// The shard that runs the metrics listener.
const METRICS_SHARD: usize = 0;

/// Runs the server until the process is stopped. `on_ready` gets the bound address, the
/// number of shards and the metrics listener's address once every shard listens. `file` and
/// `over`: where `cfg` came from, read again by every reload (SIGHUP, `POST /admin/reload`).
pub fn run(
    cfg: Config,
    file: Option<std::path::PathBuf>,
    over: crate::config::Overrides,
    on_ready: impl FnOnce(SocketAddr, usize, Option<SocketAddr>),
) -> Result<(), StartError> {
    let nr = cfg.effective_shards();
    let (addr, metrics_addr) = resolve_binds(cfg.bind, cfg.metrics.bind)?;
    let token = cfg
        .metrics
        .token
        .as_ref()
        .map(|t| OperatorToken::new(t.expose()));
    if let Some(m) = metrics_addr.filter(|m| token.is_none() && !m.ip().is_loopback()) {
        tracing::warn!(%m, "the metrics listener is not on loopback and metrics.token is not set: whoever reaches it reads this node's figures");
    }
    let Files { tls, webhook_roots } = read_files(&cfg).map_err(StartError::Tls)?;
    let apps = Apps::new(&cfg.apps);
    let limits = cfg.limits.clone();
    crate::ws::echo::set_enabled(cfg.testing.ws_echo);
    if cfg.testing.ws_echo {
        tracing::warn!("testing.ws_echo is on: /echo echoes WebSocket messages up to 64 MiB; never use this in production");
    }
    let mesh = (nr > 1).then(|| MeshBuilder::<ShardMsg, _>::full(nr, limits.mesh_queue_capacity));
    let webhooks = crate::webhook::Webhooks::start_with(&apps, webhook_roots);
    let grace = Duration::from_secs(limits.shutdown_grace_secs);
    let mesh_capacity = limits.mesh_queue_capacity;
    let live = Arc::new(Live::new(apps, limits, tls));
    let dashboard = crate::http::dashboard::Dashboard::from_config(&cfg.admin);
    // A generated password is in the log: the public port serves the admin API only once
    // an operator chose a password.
    let public_dashboard = dashboard.clone().filter(|_| cfg.admin.password.is_some());
    let node = Arc::new(crate::lifecycle::Node::default());
    let (mut cluster, parts) = match &cfg.cluster {
        Some(c) => {
            // Until the gateway meets a peer (or `JOIN_WAIT` passes): no publishes. A seed
            // list naming only this node itself is a cluster of one.
            let me = [Some(c.gossip), c.advertise_gossip];
            let others = c.seeds.iter().any(|s| {
                let at = s.parse::<std::net::SocketAddr>().ok();
                at.is_none() || !me.contains(&at)
            });
            node.joining
                .store(others, std::sync::atomic::Ordering::Relaxed);
            let (node, parts) = ClusterNode::start(c).map_err(StartError::Cluster)?;
            (Some(node), Some(parts))
        }
        None => (None, None),
    };
    let clustered = cluster.is_some();
    let gateway_parts = Arc::new(HandOff::new(parts));
    let secrets = cfg.cluster.as_ref().zip(cluster.as_ref()).map(|(c, n)| {
        let r = n.secrets_reload(c);
        Box::new(move || r.reload()) as crate::reload::ReloadSecrets
    });
    let reloader = Arc::new(Reloader::new(
        file,
        over,
        cfg.clone(),
        live.clone(),
        webhooks.clone(),
        secrets,
    ));
    let _ = node.reloader.set(reloader);
    crate::lifecycle::watch_signals(node.clone())
        .map_err(|e| StartError::Executors(format!("signal handler: {e}")))?;
    let ready = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Pin one shard per core where the machine has the cores; otherwise let the OS place them.
    let placement = if cfg.pin_shards && nr <= cores {
        PoolPlacement::MaxSpread(nr, None)
    } else {
        PoolPlacement::Unbound(nr)
    };
    let (r2, f2) = (ready.clone(), failed.clone());
    let history = cfg.history.clone();
    // Every shard's log is read here, once; each shard takes back the channels it owns.
    let restored = match &history.data_dir {
        Some(dir) => Some(Arc::new(crate::shard::persist::load(dir).map_err(|e| {
            StartError::Executors(format!("history data directory {}: {e}", dir.display()))
        })?)),
        None => None,
    };
    let (main_node, main_webhooks) = (node.clone(), webhooks.clone());
    startup::quiet_shard_panics();
    let handles = LocalExecutorPoolBuilder::new(placement)
        .name(startup::SHARD_THREAD)
        .io_memory(64 << 10)
        .on_all_shards(move || {
            let (live, mesh, ready, failed) = (
                live.clone(),
                mesh.clone(),
                r2.clone(),
                f2.clone(),
            );
            let gateway_parts = gateway_parts.clone();
            let webhooks = webhooks.clone();
            let dashboard = dashboard.clone();
            let public_dashboard = public_dashboard.clone();
            let node = node.clone();
            let history = history.clone();
            let restored = restored.clone();
            async move {
                let (senders, receivers) = match mesh {
                    Some(m) => {
                        let (s, r) = m.join().await.expect("mesh join");
                        (Some(s), Some(r))
                    }
                    None => (None, None),
                };
                let id = senders.as_ref().map_or(0, |s| s.peer_id());
                let out = Rc::new(MeshOut::new(id, nr, senders, mesh_capacity));
                let shard = Shard::new(id, nr, live, out.clone(), webhooks, node, clustered);
                shard.set_history(history.clone());
                if let (Some(dir), Some(restored)) = (&history.data_dir, &restored) {
                    if let Err(e) = shard.open_history_log(&history, dir, restored).await {
                        tracing::error!(shard = id, dir = %dir.display(), error = %e, "cannot write the history data directory");
                        failed.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                }
                if id == GATEWAY {
                    if let Some(parts) = gateway_parts.take() {
                        Gateway::start(&shard, parts);
                    }
                }
                let listener = match Listener::bind(addr) {
                    Ok(l) => Rc::new(l),
                    Err(e) => {
                        tracing::error!(shard = id, error = %e, "cannot bind");
                        failed.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                };
                if let Some(m) = metrics_addr.filter(|_| id == METRICS_SHARD) {
                    if let Err(e) = start_metrics_listener(&shard, m, token, dashboard.clone()) {
                        tracing::error!(shard = id, addr = %m, error = %e, "cannot bind the metrics listener");
                        failed.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                }
                start_tasks(&shard, receivers, listener.clone());
                if let Some(d) = dashboard.clone().filter(|_| id == METRICS_SHARD) {
                    glommio::spawn_local(crate::http::dashboard::board::run(shard.clone(), d))
                        .detach();
                }
                ready.fetch_add(1, Ordering::SeqCst);
                let access =
                    Rc::new(Access::new(Surface::Public, token).with_dashboard(public_dashboard));
                accept_loop(shard, listener, access).await;
                // The drain stopped the listener. The executor stops when this future ends,
                // and its tasks with it: keep it running for the connections still open
                // until the main thread ends the process.
                std::future::pending::<()>().await;
            }
        })
        .map_err(|e| StartError::Executors(e.to_string()))?;

    let handles = startup::wait_for_shards(handles, &ready, &failed, nr, &main_node)?;
    if let Some(dir) = &cfg.history.data_dir {
        crate::shard::persist::remove_extra_logs(dir, nr);
    }
    on_ready(addr, nr, metrics_addr);
    // The shards run until a signal; then they close every connection with 4200 and drain.
    while !main_node.shutting_down() {
        std::thread::sleep(Duration::from_millis(50));
    }
    if let Some(c) = cluster.take() {
        // The gateway tells the other nodes and hands this node's channels over (they stop
        // sending it events, it releases what it ordered); then the links close. Before the
        // shards' drain: the other nodes move this node's members without failure detection.
        let until = std::time::Instant::now() + crate::lifecycle::HANDOFF_WAIT;
        while !main_node
            .handed_off
            .load(std::sync::atomic::Ordering::Relaxed)
            && std::time::Instant::now() < until
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        c.leave();
    }
    let drained =
        crate::lifecycle::wait_drained(&main_node, nr, grace + Duration::from_millis(500));
    let left = main_webhooks.flush(grace);
    tracing::info!(drained, webhooks_left = left, "shutdown complete");
    // The executors never return by themselves; the caller ends the process.
    let _ = handles;
    Ok(())
}

/// Binds the metrics listener on this shard and accepts on it in a task. Plain HTTP only
/// (no `[tls]`: it belongs on loopback or an operators' network), and it stays open through
/// a drain, so a scraper can watch the connections go.
fn start_metrics_listener(
    shard: &Rc<Shard>,
    addr: SocketAddr,
    token: Option<OperatorToken>,
    dashboard: Option<Arc<crate::http::dashboard::Dashboard>>,
) -> std::io::Result<()> {
    let listener = Rc::new(Listener::bind(addr)?);
    let access = Rc::new(Access::new(Surface::Metrics, token).with_dashboard(dashboard));
    glommio::spawn_local(accept_loop(shard.clone(), listener, access)).detach();
    Ok(())
}

fn start_tasks(
    shard: &Rc<Shard>,
    receivers: Option<glommio::channels::channel_mesh::Receivers<ShardMsg>>,
    listener: Rc<Listener>,
) {
    glommio::spawn_local(FlushQueue::run(shard.flush.clone())).detach();
    glommio::spawn_local(sweeper::run(Rc::downgrade(shard))).detach();
    glommio::spawn_local(drain_on_shutdown(shard.clone(), listener)).detach();
    for dst in 0..shard.nr_shards {
        let s = shard.clone();
        glommio::spawn_local(shard.mesh.clone().drain(dst, move |m| s.handle(m))).detach();
    }
    if let Some(mut rx) = receivers {
        for (_peer, r) in rx.streams() {
            let s = shard.clone();
            glommio::spawn_local(async move {
                while let Some(m) = r.recv().await {
                    s.handle(m);
                    glommio::yield_if_needed().await;
                }
            })
            .detach();
        }
    }
}

/// Waits for the shutdown flag, then stops the listener (new connections are refused, so
/// clients back off or go to another node), closes every connection with 4200 (pusher-js
/// reconnects at once, to another node) and waits for them to go, up to the grace period.
///
/// Pitfall (glommio 0.9): racing `listener.accept()` against a timer with `future::or` and
/// dropping the pending accept stopped that executor's timers from firing at all. So the
/// accept is never dropped: [`Listener::stop`] shuts the socket down, the kernel completes
/// the pending accept with an error, and the accept loop ends by itself.
async fn drain_on_shutdown(shard: Rc<Shard>, listener: Rc<Listener>) {
    while !shard.node.shutting_down() {
        glommio::timer::sleep(Duration::from_millis(50)).await;
    }
    listener.stop();
    drop(listener);
    let conns: Vec<_> = shard.conns.borrow().values().cloned().collect();
    for c in conns {
        c.out
            .close(crate::protocol::codes::RECONNECT, "server shutting down");
    }
    let deadline =
        std::time::Instant::now() + Duration::from_secs(shard.limits().shutdown_grace_secs);
    // Done once every close frame is in the kernel's hands (the client's reply is not needed).
    let flushed = |s: &Shard| {
        s.conns.borrow().values().all(|c| {
            matches!(
                c.out.state(),
                crate::session::WriteState::ShutWrite { .. } | crate::session::WriteState::Closed
            )
        })
    };
    while !flushed(&shard) && std::time::Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(20)).await;
    }
    shard.close_history_log().await;
    shard.node.drained.fetch_add(1, Ordering::SeqCst);
}

/// Hands a value from the main thread to exactly one shard at start-up.
///
/// The shard closures must be `Clone + Send`, and the cluster's receivers are neither
/// cloneable nor shareable, so a mutex-guarded slot is the simplest correct hand-over. It is
/// touched once per shard at start, never on a data path.
#[allow(clippy::disallowed_types)]
struct HandOff<T>(std::sync::Mutex<Option<T>>);

#[allow(clippy::disallowed_types)]
impl<T> HandOff<T> {
    fn new(v: Option<T>) -> Self {
        HandOff(std::sync::Mutex::new(v))
    }

    fn take(&self) -> Option<T> {
        self.0.lock().ok().and_then(|mut g| g.take())
    }
}
