//! TCP links between nodes (tokio; runs on the cluster thread).
//!
//! ## Rules
//!
//! * **One link per pair.** The node with the lower id dials; the other only accepts. If a
//!   second session for the same peer id is accepted anyway (the dialer reconnected before
//!   we noticed the old socket died), the newer session replaces the older one.
//! * **Secret first, then Hello, all inside TLS 1.3** ([`auth`], ADR 0007). Both ends prove
//!   an accepted cluster secret over the TLS session (the dialer first); then the dialer
//!   sends `Hello`, the acceptor checks the cluster id and answers with its own; the dialer
//!   checks the cluster id, that the id is the one it dialed, and that the generation is not
//!   older than the live view says. Anything else closes the socket before any other frame
//!   is read. At most [`MAX_PENDING_HANDSHAKES`] incoming handshakes run at once; refusals
//!   are counted and logged at most once per address per 10 s.
//! * **Bounded send queue per session**, [`LinkConfig::queue_frames`] frames. A frame that
//!   does not fit is dropped and counted (`dropped_full`); a frame for a peer with no session
//!   is dropped and counted (`dropped_no_link`). Nothing is kept across a reconnect: after
//!   [`LinkEvent::Up`] the user resyncs what matters (presence, interest). Delivery is
//!   therefore at-most-once, never duplicated.
//! * **Keepalive.** Each side sends `Ping` every [`LinkConfig::ping_interval`] and answers
//!   `Ping` with `Pong`; a session that receives nothing for [`LinkConfig::idle_timeout`]
//!   is closed.
//! * **Reconnect with backoff**, 100 ms doubling to 5 s (with jitter), back to 100 ms after
//!   a session came up, for as long as the peer is in the wanted set.
//! * **Events carry a session number.** A session's `Msg`s are valid only between its `Up`
//!   and `Down`; [`SessionFilter`] drops the stragglers of a replaced session.

pub mod auth;
mod session;

use crate::bridge::BridgeTx;
use crate::gossip_seal::GossipCounters;
use crate::secret::Keyring;
use crate::warn_limit::{WarnLimiter, WINDOW};
use crate::wire::{self, NodeMsg};
use crate::{NodeId, NodeKey};
use bytes::Bytes;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Tuning of the links. Every field has a default in [`LinkConfig::new`].
#[derive(Clone, Debug)]
pub struct LinkConfig {
    /// This node.
    pub me: NodeKey,
    /// Links to nodes of another cluster are refused at `Hello`.
    pub cluster_id: String,
    /// The cluster secrets in force: a peer must prove one before anything else.
    pub keyring: Arc<Keyring>,
    /// Frames waiting per session (default 8192). Memory bound: this × frame size.
    pub queue_frames: usize,
    /// Largest frame body sent or accepted (default 1 MiB).
    pub max_body: usize,
    /// Keepalive period (default 500 ms).
    pub ping_interval: Duration,
    /// Close a session that received nothing for this long (default 3 s).
    pub idle_timeout: Duration,
    /// Connect, TLS, the secret proofs and the `Hello` exchange (default 2 s).
    pub handshake_timeout: Duration,
    /// First reconnect delay (default 100 ms).
    pub backoff_min: Duration,
    /// Longest reconnect delay (default 5 s).
    pub backoff_max: Duration,
}

impl LinkConfig {
    pub fn new(me: NodeKey, cluster_id: impl Into<String>, keyring: Arc<Keyring>) -> LinkConfig {
        LinkConfig {
            me,
            cluster_id: cluster_id.into(),
            keyring,
            queue_frames: 8192,
            max_body: wire::DEFAULT_MAX_BODY,
            ping_interval: Duration::from_millis(500),
            idle_timeout: Duration::from_secs(3),
            handshake_timeout: Duration::from_secs(2),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
        }
    }
}

/// What the links report. `session` numbers are unique per [`Links`].
#[derive(Debug)]
pub enum LinkEvent {
    Up {
        peer: NodeKey,
        session: u64,
    },
    Down {
        peer: NodeKey,
        session: u64,
    },
    Msg {
        peer: NodeKey,
        session: u64,
        msg: NodeMsg,
    },
}

/// A peer this node should be linked with, from the live view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub key: NodeKey,
    pub addr: SocketAddr,
}

/// Why a frame was not queued. Both are counted; neither is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// No session with that peer right now (connecting, or the peer is gone).
    #[error("no link to the peer")]
    NoLink,
    /// The session's send queue is full: the peer or the network is slower than our rate.
    #[error("link send queue is full")]
    Full,
}

/// Counters, monotonic since start.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LinkStats {
    pub frames_sent: u64,
    pub frames_received: u64,
    pub dropped_full: u64,
    pub dropped_no_link: u64,
    pub sessions_up: u64,
    /// Incoming or outgoing handshakes that failed: no TLS, no or a wrong secret proof, wrong
    /// cluster id or node, or over [`MAX_PENDING_HANDSHAKES`].
    pub handshakes_refused: u64,
    /// Gossip datagrams dropped: not sealed with an accepted secret, malformed, or too far
    /// from this node's clock (counted by the gossip transport, reported here so that one
    /// call has every cluster-thread counter).
    pub gossip_rejected: u64,
}

#[derive(Default)]
struct Counters {
    frames_sent: AtomicU64,
    frames_received: AtomicU64,
    dropped_full: AtomicU64,
    dropped_no_link: AtomicU64,
    sessions_up: AtomicU64,
    handshakes_refused: AtomicU64,
}

struct Session {
    key: NodeKey,
    id: u64,
    tx: mpsc::Sender<Bytes>,
    /// Set to true to make the session's tasks stop.
    stop: watch::Sender<bool>,
}

struct Dialer {
    peer: Peer,
    /// Set to true to stop redialing. The dialer is never aborted mid-session: its session
    /// ends through `Session::stop` and still reports `Down`.
    cancel: watch::Sender<bool>,
}

/// Incoming handshakes (TLS, proofs, `Hello`) running at once; a connection beyond them is
/// closed at once and counted as refused. A cluster needs one per peer dialing at the same
/// moment; the bound keeps a flood of connections from holding memory for 2 s each.
pub const MAX_PENDING_HANDSHAKES: usize = 128;

struct Shared {
    cfg: LinkConfig,
    tls: auth::LinkTls,
    /// One warning per address per 10 s for refused handshakes.
    warn: Mutex<WarnLimiter>,
    handshakes: Arc<tokio::sync::Semaphore>,
    gossip: Arc<GossipCounters>,
    events: BridgeTx<LinkEvent>,
    /// Plain mutex: touched only on the cluster thread, never held across an await.
    sessions: Mutex<HashMap<NodeId, Session>>,
    dialers: Mutex<HashMap<NodeId, Dialer>>,
    /// The wanted set of the last `set_peers`, to tell "left" from "not seen yet".
    wanted: Mutex<HashMap<NodeId, u64>>,
    next_session: AtomicU64,
    counters: Counters,
}

/// The link manager. Cheap to clone; every method is non-blocking. Must be created and used
/// inside the cluster's tokio runtime.
#[derive(Clone)]
pub struct Links {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    accept_task: Arc<JoinHandle<()>>,
}

impl Links {
    /// Binds the data-plane listener and starts accepting.
    pub async fn bind(
        cfg: LinkConfig,
        listen: SocketAddr,
        events: BridgeTx<LinkEvent>,
    ) -> std::io::Result<Links> {
        let listener = TcpListener::bind(listen).await?;
        let local_addr = listener.local_addr()?;
        let tls = auth::LinkTls::new().map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            cfg,
            tls,
            warn: Mutex::new(WarnLimiter::new(WINDOW)),
            handshakes: Arc::new(tokio::sync::Semaphore::new(MAX_PENDING_HANDSHAKES)),
            gossip: Arc::new(GossipCounters::default()),
            events,
            sessions: Mutex::new(HashMap::new()),
            dialers: Mutex::new(HashMap::new()),
            wanted: Mutex::new(HashMap::new()),
            next_session: AtomicU64::new(1),
            counters: Counters::default(),
        });
        let accept_task = tokio::spawn(session::accept_loop(shared.clone(), listener));
        Ok(Links {
            shared,
            local_addr,
            accept_task: Arc::new(accept_task),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The gossip transport's counters, reported with the links' ([`LinkStats`]).
    pub fn gossip_counters(&self) -> Arc<GossipCounters> {
        self.shared.gossip.clone()
    }

    /// The peers this node should be linked with (the live view minus itself). Starts
    /// dialers for new peers we dial, stops the ones for peers that left or restarted, and
    /// closes sessions of peers no longer wanted.
    pub fn set_peers(&self, peers: &[Peer]) {
        let me = &self.shared.cfg.me;
        let wanted: HashMap<&NodeId, &Peer> = peers
            .iter()
            .filter(|p| p.key.id != me.id)
            .map(|p| (&p.key.id, p))
            .collect();
        {
            let mut dialers = self.shared.dialers.lock().unwrap();
            dialers.retain(|id, d| {
                let keep = wanted.get(id).is_some_and(|p| **p == d.peer);
                if !keep {
                    let _ = d.cancel.send(true);
                }
                keep
            });
            for (id, p) in &wanted {
                if me.id < **id && !dialers.contains_key(*id) {
                    let (cancel, cancelled) = watch::channel(false);
                    tokio::spawn(session::dial_loop(
                        self.shared.clone(),
                        (*p).clone(),
                        cancelled,
                    ));
                    dialers.insert(
                        (*id).clone(),
                        Dialer {
                            peer: (*p).clone(),
                            cancel,
                        },
                    );
                }
            }
        }
        let mut before = self.shared.wanted.lock().unwrap();
        let sessions = self.shared.sessions.lock().unwrap();
        for (id, s) in sessions.iter() {
            // A session ends when its peer left the live set or is live with a newer
            // generation; its `Down` follows from its tasks. A peer we have not seen in
            // gossip yet (it dialed us first) keeps its session.
            let stop = match wanted.get(id) {
                Some(p) => p.key.generation > s.key.generation,
                None => before.contains_key(id),
            };
            if stop {
                let _ = s.stop.send(true);
            }
        }
        *before = wanted
            .iter()
            .map(|(id, p)| ((*id).clone(), p.key.generation))
            .collect();
    }

    /// Queues an encoded frame (see [`wire::encode`]) for `to`. Never waits.
    pub fn send(&self, to: &NodeId, frame: Bytes) -> Result<(), SendError> {
        let c = &self.shared.counters;
        let sessions = self.shared.sessions.lock().unwrap();
        let Some(s) = sessions.get(to) else {
            c.dropped_no_link.fetch_add(1, Ordering::Relaxed);
            return Err(SendError::NoLink);
        };
        match s.tx.try_send(frame) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                c.dropped_full.fetch_add(1, Ordering::Relaxed);
                Err(SendError::Full)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                c.dropped_no_link.fetch_add(1, Ordering::Relaxed);
                Err(SendError::NoLink)
            }
        }
    }

    /// Queues `frame` on every session; returns how many took it.
    pub fn broadcast(&self, frame: Bytes) -> usize {
        let ids: Vec<NodeId> = self
            .shared
            .sessions
            .lock()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        ids.iter()
            .filter(|id| self.send(id, frame.clone()).is_ok())
            .count()
    }

    /// Peers with a session up now.
    pub fn connected(&self) -> Vec<NodeKey> {
        let mut v: Vec<NodeKey> = self
            .shared
            .sessions
            .lock()
            .unwrap()
            .values()
            .map(|s| s.key.clone())
            .collect();
        v.sort();
        v
    }

    pub fn stats(&self) -> LinkStats {
        let c = &self.shared.counters;
        LinkStats {
            frames_sent: c.frames_sent.load(Ordering::Relaxed),
            frames_received: c.frames_received.load(Ordering::Relaxed),
            dropped_full: c.dropped_full.load(Ordering::Relaxed),
            dropped_no_link: c.dropped_no_link.load(Ordering::Relaxed),
            sessions_up: c.sessions_up.load(Ordering::Relaxed),
            handshakes_refused: c.handshakes_refused.load(Ordering::Relaxed),
            gossip_rejected: self.shared.gossip.rejected.load(Ordering::Relaxed),
        }
    }

    /// Stops accepting and dialing and closes every session (after what is queued is
    /// written, bounded by the idle timeout).
    pub fn shutdown(&self) {
        self.accept_task.abort();
        for (_, d) in self.shared.dialers.lock().unwrap().drain() {
            let _ = d.cancel.send(true);
        }
        for s in self.shared.sessions.lock().unwrap().values() {
            let _ = s.stop.send(true);
        }
    }
}

/// Tracks the current session per peer and drops events of replaced sessions, so a
/// consumer sees, per peer key, `Up`, its `Msg`s, then `Down`, in order.
#[derive(Default, Debug)]
pub struct SessionFilter {
    current: HashMap<NodeKey, u64>,
}

impl SessionFilter {
    pub fn new() -> SessionFilter {
        SessionFilter::default()
    }

    /// `Some(event)` if the consumer should see it.
    pub fn accept(&mut self, ev: LinkEvent) -> Option<LinkEvent> {
        match &ev {
            LinkEvent::Up { peer, session } => {
                // A newer session replaces: the consumer sees a Down for the old one first
                // only if it is a different key; for the same key, Up again means "resync".
                self.current.insert(peer.clone(), *session);
                Some(ev)
            }
            LinkEvent::Down { peer, session } => {
                if self.current.get(peer) == Some(session) {
                    self.current.remove(peer);
                    Some(ev)
                } else {
                    None
                }
            }
            LinkEvent::Msg { peer, session, .. } => {
                (self.current.get(peer) == Some(session)).then_some(ev)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::{self, BridgeRx};

    fn key(id: &str, generation: u64) -> NodeKey {
        NodeKey::new(NodeId::new(id).unwrap(), generation)
    }

    const SECRET: &str = "link-test-secret-0123456789";

    fn keyring(cluster: &str, secret: &str) -> Arc<Keyring> {
        let secrets = crate::secret::Secrets::new([secret]).unwrap();
        Arc::new(Keyring::new(cluster, &secrets))
    }

    /// Tells nodes "a" and "b" (generation 1) about each other; returns the peer list.
    fn introduce(a: &Links, b: &Links) -> [Peer; 2] {
        let peers = [("a", a), ("b", b)].map(|(id, l)| Peer {
            key: key(id, 1),
            addr: l.local_addr(),
        });
        a.set_peers(&peers);
        b.set_peers(&peers);
        peers
    }

    async fn node(id: &str, cluster: &str) -> (Links, BridgeRx<LinkEvent>) {
        node_with(id, cluster, SECRET).await
    }

    async fn node_with(id: &str, cluster: &str, secret: &str) -> (Links, BridgeRx<LinkEvent>) {
        let (tx, rx) = bridge::channel(1024);
        let mut cfg = LinkConfig::new(key(id, 1), cluster, keyring(cluster, secret));
        cfg.ping_interval = Duration::from_millis(50);
        cfg.idle_timeout = Duration::from_millis(400);
        let links = Links::bind(cfg, "127.0.0.1:0".parse().unwrap(), tx)
            .await
            .unwrap();
        (links, rx)
    }

    async fn next(rx: &mut BridgeRx<LinkEvent>) -> LinkEvent {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("event in time")
            .expect("open")
    }

    #[tokio::test]
    async fn links_up_exchange_and_go_down() {
        let (a, mut a_rx) = node("a", "c1").await;
        let (b, mut b_rx) = node("b", "c1").await;
        let peers = introduce(&a, &b);
        assert!(matches!(next(&mut a_rx).await, LinkEvent::Up { peer, .. } if peer == key("b", 1)));
        assert!(matches!(next(&mut b_rx).await, LinkEvent::Up { peer, .. } if peer == key("a", 1)));
        let f = Bytes::from(
            wire::encode(&NodeMsg::Terminate {
                app: "1".into(),
                user: "u".into(),
            })
            .unwrap(),
        );
        b.send(&NodeId::new("a").unwrap(), f).unwrap();
        match next(&mut a_rx).await {
            LinkEvent::Msg {
                msg: NodeMsg::Terminate { user, .. },
                ..
            } => assert_eq!(user, "u"),
            e => panic!("{e:?}"),
        }
        // Pings keep an idle link up past the idle timeout.
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(a.connected(), vec![key("b", 1)]);
        assert!(a.stats().frames_received > 3);
        // b leaves the wanted set of a: the session closes on both sides.
        a.set_peers(&peers[..1]);
        assert!(matches!(next(&mut a_rx).await, LinkEvent::Down { .. }));
        assert!(matches!(next(&mut b_rx).await, LinkEvent::Down { .. }));
        assert_eq!(
            a.send(&NodeId::new("b").unwrap(), Bytes::new()),
            Err(SendError::NoLink)
        );
        assert_eq!(a.stats().dropped_no_link, 1);
    }

    #[tokio::test]
    async fn other_clusters_are_refused() {
        let (a, _a_rx) = node("a", "one").await;
        let (b, _b_rx) = node("b", "two").await;
        introduce(&a, &b);
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(a.connected().is_empty() && b.connected().is_empty());
        assert!(a.stats().handshakes_refused + b.stats().handshakes_refused >= 1);
    }

    /// A node with another secret never gets a session (both sides count a refusal: the
    /// acceptor a wrong proof, the dialer no proof back); a plaintext `Hello` gets nothing
    /// from the frame layer (at most a TLS alert) and the socket is closed.
    #[tokio::test]
    async fn another_secret_and_plaintext_are_refused() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (a, _a_rx) = node_with("a", "c", "the-first-secret-0123").await;
        let (b, _b_rx) = node_with("b", "c", "another-secret-456789").await;
        introduce(&a, &b);
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(a.connected().is_empty() && b.connected().is_empty());
        assert!(b.stats().handshakes_refused >= 1, "{:?}", b.stats());

        let mut raw = tokio::net::TcpStream::connect(b.local_addr())
            .await
            .unwrap();
        let hello = wire::encode(&NodeMsg::Hello {
            cluster_id: "c".into(),
            node_id: "a".into(),
            generation: 1,
        })
        .unwrap();
        raw.write_all(&hello).await.unwrap();
        let mut back = Vec::new();
        tokio::time::timeout(Duration::from_secs(3), raw.read_to_end(&mut back))
            .await
            .expect("closed in time")
            .ok();
        assert!(!back.windows(4).any(|w| w == wire::MAGIC), "{back:02x?}");
        assert!(
            back.is_empty() || back[0] == 0x15,
            "only a TLS alert: {back:02x?}"
        );
    }

    #[tokio::test]
    async fn reconnects_after_the_peer_comes_back() {
        let (a, mut a_rx) = node("a", "c").await;
        let (b, _b_rx) = node("b", "c").await;
        let b_addr = b.local_addr();
        let peers = introduce(&a, &b);
        assert!(matches!(next(&mut a_rx).await, LinkEvent::Up { .. }));
        b.shutdown();
        drop(b);
        assert!(matches!(next(&mut a_rx).await, LinkEvent::Down { .. }));
        // A new b on the same address (same generation here): a redials it.
        let (tx, _b2_rx) = bridge::channel(1024);
        let cfg = LinkConfig::new(key("b", 1), "c", keyring("c", SECRET));
        let b2 = Links::bind(cfg, b_addr, tx).await.unwrap();
        b2.set_peers(&peers);
        assert!(matches!(next(&mut a_rx).await, LinkEvent::Up { .. }));
    }

    #[test]
    fn filter_drops_stragglers_of_replaced_sessions() {
        let k = key("b", 1);
        let mut f = SessionFilter::new();
        assert!(f
            .accept(LinkEvent::Up {
                peer: k.clone(),
                session: 1
            })
            .is_some());
        assert!(f
            .accept(LinkEvent::Up {
                peer: k.clone(),
                session: 2
            })
            .is_some());
        assert!(f
            .accept(LinkEvent::Msg {
                peer: k.clone(),
                session: 1,
                msg: NodeMsg::Leaving
            })
            .is_none());
        assert!(f
            .accept(LinkEvent::Down {
                peer: k.clone(),
                session: 1
            })
            .is_none());
        assert!(f
            .accept(LinkEvent::Msg {
                peer: k.clone(),
                session: 2,
                msg: NodeMsg::Leaving
            })
            .is_some());
        assert!(f
            .accept(LinkEvent::Down {
                peer: k,
                session: 2
            })
            .is_some());
    }
}
