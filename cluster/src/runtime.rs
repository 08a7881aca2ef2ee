//! The cluster thread: one OS thread running a current-thread tokio runtime with gossip
//! ([`Membership`]) and the links ([`Links`]), and the [`ClusterHandle`] the rest of the
//! process uses to talk to it (through [`crate::bridge`] queues only).
//!
//! Wiring inside the thread:
//!
//! * live view changes → [`Links::set_peers`] (dial new peers, drop gone ones);
//! * link events → [`SessionFilter`] → the events queue the engine drains;
//! * the commands queue the engine fills → [`Links::send`] / [`Links::broadcast`] /
//!   [`Membership::set_keys`].
//!
//! **Invariant:** no tokio type but the `tokio::sync::watch` receiver of the live view and
//! the bridge queues is visible to the caller, and none of them blocks a shard.

use crate::bridge::{self, BridgeRx, BridgeTx};
use crate::gossip_seal::SealedUdpTransport;
use crate::link::{LinkConfig, LinkEvent, LinkStats, Links, Peer, SessionFilter};
use crate::membership::{LiveView, Membership, MembershipConfig};
use crate::secret::{Keyring, Secrets};
use crate::wire::{self, NodeMsg};
use crate::{NodeId, NodeKey};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::sync::{oneshot, watch};
use tracing::{info, warn};

/// Everything needed to join a cluster (`raptor serve --node-id … --gossip … --seeds …
/// --peer …`, or the `[cluster]` config keys).
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    pub node_id: NodeId,
    /// Generation of this run; [`crate::membership::new_generation`] unless testing.
    pub generation: u64,
    /// Nodes of another cluster id are ignored by gossip and refused by links.
    pub cluster_id: String,
    /// What a node must know to join: the first secret seals gossip and proves this node on
    /// its links; every one is accepted from peers ([`crate::secret`]).
    pub secrets: Secrets,
    /// UDP gossip address to bind.
    pub gossip_addr: SocketAddr,
    /// `host:port` gossip addresses of other nodes (any subset; the node's own is fine).
    pub seeds: Vec<String>,
    /// TCP data-plane address to bind.
    pub peer_addr: SocketAddr,
    /// Address peers should dial, when `peer_addr` is a wildcard or behind NAT (default:
    /// the bound `peer_addr`).
    pub advertise_peer_addr: Option<SocketAddr>,
    /// Address peers should gossip to (default: `gossip_addr`).
    pub advertise_gossip_addr: Option<SocketAddr>,
    /// Capacity of the commands queue (engine → cluster) and of the events queue
    /// (cluster → engine); default 65 536 each.
    pub queue_capacity: usize,
}

impl ClusterConfig {
    pub fn new(
        node_id: NodeId,
        cluster_id: impl Into<String>,
        secrets: Secrets,
        gossip_addr: SocketAddr,
        seeds: Vec<String>,
        peer_addr: SocketAddr,
    ) -> ClusterConfig {
        ClusterConfig {
            node_id,
            generation: crate::membership::new_generation(),
            cluster_id: cluster_id.into(),
            secrets,
            gossip_addr,
            seeds,
            peer_addr,
            advertise_peer_addr: None,
            advertise_gossip_addr: None,
            queue_capacity: 65_536,
        }
    }
}

/// What the engine asks of the cluster thread.
#[derive(Debug)]
pub enum Command {
    /// One encoded frame ([`encode`]) to one peer; dropped and counted without a link.
    Send { to: NodeId, frame: Bytes },
    /// One encoded frame to every linked peer.
    Broadcast { frame: Bytes },
    /// Own gossip keys to set (`Some`) or delete (`None`).
    SetKeys(Vec<(String, Option<String>)>),
}

/// Encodes a message for [`Command::Send`] / [`Command::Broadcast`]. Fails only for a
/// message over the frame bound (an internal error: do not send it).
pub fn encode(msg: &NodeMsg) -> Result<Bytes, wire::WireError> {
    wire::encode(msg).map(Bytes::from)
}

/// Why the cluster could not start (operator error: fix the addresses or the config).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot bind the peer address {addr}: {source}")]
    PeerBind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Gossip(#[from] crate::membership::MembershipError),
    #[error("cannot start the cluster thread: {0}")]
    Thread(std::io::Error),
}

/// The running cluster, from the rest of the process's side. `Send + Sync` except for the
/// events receiver, which one consumer takes.
pub struct ClusterHandle {
    me: NodeKey,
    peer_addr: SocketAddr,
    commands: BridgeTx<Command>,
    events: Option<BridgeRx<LinkEvent>>,
    view: watch::Receiver<Arc<LiveView>>,
    summaries: SummariesReceiver,
    links: Links,
    keyring: Arc<Keyring>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

type Started = (Links, Membership, SocketAddr);

async fn start_inside(
    cfg: &ClusterConfig,
    me: &NodeKey,
    keyring: Arc<Keyring>,
    link_events: BridgeTx<LinkEvent>,
) -> Result<Started, StartError> {
    let link_cfg = LinkConfig::new(me.clone(), cfg.cluster_id.clone(), keyring.clone());
    let links = Links::bind(link_cfg, cfg.peer_addr, link_events)
        .await
        .map_err(|source| StartError::PeerBind {
            addr: cfg.peer_addr,
            source,
        })?;
    let bound = links.local_addr();
    let mut mcfg = MembershipConfig::new(
        me.clone(),
        cfg.cluster_id.clone(),
        cfg.gossip_addr,
        cfg.seeds.clone(),
        cfg.advertise_peer_addr.unwrap_or(bound),
    );
    if let Some(a) = cfg.advertise_gossip_addr {
        mcfg.gossip_advertise = a;
    }
    let transport = SealedUdpTransport {
        keyring,
        counters: links.gossip_counters(),
    };
    let membership = Membership::start_with(mcfg, &transport).await?;
    Ok((links, membership, bound))
}

/// The live-view receiver handed to the engine; awaiting `changed()` works from any runtime.
pub type ViewReceiver = watch::Receiver<Arc<LiveView>>;

/// Every node's dashboard summary as gossip last told it (`membership::KEY_SUMMARY`).
pub type SummariesReceiver = watch::Receiver<Arc<crate::membership::Summaries>>;

impl ClusterHandle {
    /// Binds both addresses and starts the cluster thread. Returns once both are bound.
    pub fn start(cfg: ClusterConfig) -> Result<ClusterHandle, StartError> {
        let me = NodeKey::new(cfg.node_id.clone(), cfg.generation);
        let keyring = Arc::new(Keyring::new(&cfg.cluster_id, &cfg.secrets));
        let keyring2 = keyring.clone();
        let (commands, mut commands_rx) = bridge::channel::<Command>(cfg.queue_capacity);
        let (events_tx, events) = bridge::channel::<LinkEvent>(cfg.queue_capacity);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = oneshot::channel::<()>();
        let me2 = me.clone();
        let thread = std::thread::Builder::new()
            .name("raptor-cluster".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(StartError::Thread(e)));
                        return;
                    }
                };
                rt.block_on(async move {
                    let (raw_tx, mut raw_rx) = bridge::channel::<LinkEvent>(cfg.queue_capacity);
                    let (links, membership, bound) =
                        match start_inside(&cfg, &me2, keyring2, raw_tx).await {
                            Ok(s) => s,
                            Err(e) => {
                                let _ = ready_tx.send(Err(e));
                                return;
                            }
                        };
                    let view = membership.view();
                    let summaries = membership.summaries();
                    let _ = ready_tx.send(Ok((links.clone(), view.clone(), summaries, bound)));
                    // Live view → links.
                    let peers_task = {
                        let links = links.clone();
                        let mut view = view.clone();
                        tokio::spawn(async move {
                            loop {
                                let peers: Vec<Peer> = view
                                    .borrow_and_update()
                                    .nodes
                                    .iter()
                                    .map(|n| Peer {
                                        key: n.key(),
                                        addr: n.peer_addr,
                                    })
                                    .collect();
                                links.set_peers(&peers);
                                if view.changed().await.is_err() {
                                    break;
                                }
                            }
                        })
                    };
                    // Link events → session filter → engine.
                    let events_task = tokio::spawn(async move {
                        let mut filter = SessionFilter::new();
                        while let Some(ev) = raw_rx.recv().await {
                            if let Some(ev) = filter.accept(ev) {
                                if events_tx.send(ev).await.is_err() {
                                    break;
                                }
                            }
                        }
                    });
                    // Engine commands → links and gossip, until asked to stop.
                    let mut stop_rx = stop_rx;
                    loop {
                        let cmd = tokio::select! {
                            cmd = commands_rx.recv() => cmd,
                            _ = &mut stop_rx => None,
                        };
                        match cmd {
                            Some(Command::Send { to, frame }) => {
                                let _ = links.send(&to, frame);
                            }
                            Some(Command::Broadcast { frame }) => {
                                links.broadcast(frame);
                            }
                            Some(Command::SetKeys(keys)) => membership.set_keys(keys).await,
                            None => break,
                        }
                    }
                    // What the engine queued before it asked to stop goes out first (its
                    // handoff's `Released` among it): `select!` may have taken the stop
                    // signal while commands were still waiting.
                    while let Some(cmd) = commands_rx.try_recv() {
                        match cmd {
                            Command::Send { to, frame } => {
                                let _ = links.send(&to, frame);
                            }
                            Command::Broadcast { frame } => {
                                links.broadcast(frame);
                            }
                            Command::SetKeys(keys) => membership.set_keys(keys).await,
                        }
                    }
                    // Graceful leave: tell linked peers, mark ourselves leaving in gossip,
                    // then close the links (queued frames are flushed first).
                    info!(node = %me2, "leaving the cluster");
                    if let Ok(f) = encode(&NodeMsg::Leaving) {
                        links.broadcast(f);
                    }
                    membership.leave().await;
                    links.shutdown();
                    peers_task.abort();
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    events_task.abort();
                });
            })
            .map_err(StartError::Thread)?;
        let (links, view, summaries, peer_addr) = match ready_rx.recv() {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(StartError::Thread(std::io::Error::other(
                    "cluster thread exited during start",
                )));
            }
        };
        info!(node = %me, %peer_addr, "cluster started");
        Ok(ClusterHandle {
            me,
            peer_addr,
            commands,
            events: Some(events),
            view,
            summaries,
            links,
            keyring,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn me(&self) -> &NodeKey {
        &self.me
    }

    /// The bound data-plane address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    /// A sender for commands; clone one per shard. Use `send_or_drop`/`try_send` from shards.
    pub fn commands(&self) -> BridgeTx<Command> {
        self.commands.clone()
    }

    /// The link events (already filtered per session), for the one consumer that takes them.
    pub fn take_events(&mut self) -> Option<BridgeRx<LinkEvent>> {
        self.events.take()
    }

    /// The live view; `borrow()` now, `changed().await` for the next (any runtime).
    pub fn view(&self) -> watch::Receiver<Arc<LiveView>> {
        self.view.clone()
    }

    /// Every node's dashboard summary; `borrow()` for the latest (any runtime).
    pub fn summaries(&self) -> SummariesReceiver {
        self.summaries.clone()
    }

    /// Peers with a link up now.
    pub fn connected(&self) -> Vec<NodeKey> {
        self.links.connected()
    }

    /// A handle on the links (for their counters from another thread).
    pub fn links(&self) -> Links {
        self.links.clone()
    }

    pub fn link_stats(&self) -> LinkStats {
        self.links.stats()
    }

    /// The secrets in force, for [`Keyring::replace`] from any thread (on SIGHUP): new gossip
    /// datagrams and new links use the new list at once; established links go on.
    pub fn keyring(&self) -> Arc<Keyring> {
        self.keyring.clone()
    }

    /// Graceful leave (on SIGTERM): tells peers, gossips `leaving`, closes links, and joins
    /// the cluster thread. Blocks for about half a second; call it from the main thread,
    /// never from a shard.
    pub fn leave(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                warn!("cluster thread panicked");
            }
        }
    }
}

impl Drop for ClusterHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}
