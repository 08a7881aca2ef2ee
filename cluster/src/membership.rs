//! Gossip membership: a thin wrapper over chitchat 0.13 (runs on the cluster thread's tokio
//! runtime).
//!
//! Each node gossips a few string keys about itself; a node only ever writes its own:
//!
//! | key | value | meaning |
//! |---|---|---|
//! | `peer_addr` | `ip:port` | where its data-plane listener accepts links |
//! | `status` | `ready` or `leaving` | `leaving` is set on graceful shutdown: peers drop it at once |
//! | `presence` | `{members}:{xor 16 hex}` | digest of its own presence members ([`crate::presence::Digest`]) |
//! | `interest.XX` | hex channel keys or `*` | its interest summary ([`crate::interest`]) |
//!
//! The live set is published as a [`LiveView`]: the nodes chitchat's failure detector holds
//! live, with `peer_addr` set and not `leaving`, one entry per node id (the newest
//! generation wins: a restarted node replaces its old self at once, even before the old
//! one is declared dead). The view includes this node.
//!
//! ## Failure detection timing
//!
//! chitchat's detector is `phi = elapsed / mean_interval` with the mean smoothed towards
//! `initial_interval` (stack-notes §6). With [`MembershipConfig::new`]'s defaults (gossip
//! every 100 ms, `initial_interval` 100 ms, `phi_threshold` 8) a killed node is dropped from
//! the live view after about 0.4–1 s, well inside the 3 s budget for removing its members
//! everywhere. `dead_node_grace_period` (4 s) only bounds how long chitchat keeps the dead
//! node's state before forgetting it.

use crate::interest::InterestFilter;
use crate::presence::Digest;
use crate::{NodeId, NodeKey};
use chitchat::transport::Transport;
use chitchat::{ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig, NodeState};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

pub const KEY_PEER_ADDR: &str = "peer_addr";
pub const KEY_STATUS: &str = "status";
pub const KEY_PRESENCE: &str = "presence";
/// Written `1` at start by nodes that answer channel queries (`Query`/`Answer`, tags 12 and
/// 13): a node sends a `Query` only to peers that say so, so an older node, which would
/// refuse the unknown tag and drop the link, is never asked.
pub const KEY_QUERIES: &str = "queries";
/// A node's figures for the dashboard (compact JSON, at most [`MAX_SUMMARY_BYTES`]); kept
/// out of [`LiveView`], which changes only with membership, not every second.
pub const KEY_SUMMARY: &str = "summary";
/// Largest `summary` value taken from gossip; a longer one is ignored.
pub const MAX_SUMMARY_BYTES: usize = 2048;

/// Each node's `summary` (ready and leaving nodes), by node id.
pub type Summaries = BTreeMap<String, String>;
pub const STATUS_READY: &str = "ready";
pub const STATUS_LEAVING: &str = "leaving";

/// A generation for a node starting now: unix time in milliseconds. A restart (which takes
/// far longer than a millisecond) always gets a larger one.
pub fn new_generation() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(1)
}

/// How to join the cluster. Fields without a natural default are arguments of
/// [`MembershipConfig::new`]; the rest are tuned for fast failure detection on a LAN.
#[derive(Clone, Debug)]
pub struct MembershipConfig {
    pub node: NodeKey,
    /// Nodes with another cluster id ignore our gossip (and we theirs).
    pub cluster_id: String,
    /// UDP address chitchat binds.
    pub gossip_listen: SocketAddr,
    /// Address peers gossip to; the listen address unless behind NAT (default: listen).
    pub gossip_advertise: SocketAddr,
    /// `host:port` of some other nodes; DNS names are re-resolved by chitchat.
    pub seeds: Vec<String>,
    /// Data-plane address advertised as `peer_addr`.
    pub peer_addr: SocketAddr,
    /// Gossip round period (default 100 ms). Shorter detects faster and costs more packets.
    pub gossip_interval: Duration,
    /// Failure detector threshold (default 8: a node is dead after ~8 mean intervals of
    /// silence).
    pub phi_threshold: f64,
    /// Heartbeat interval assumed before samples exist (default 100 ms, the gossip period,
    /// so even a newly seen node is judged fast).
    pub initial_interval: Duration,
    /// How long a dead node's state is kept before it is forgotten (default 4 s).
    pub dead_node_grace: Duration,
}

impl MembershipConfig {
    pub fn new(
        node: NodeKey,
        cluster_id: impl Into<String>,
        gossip_listen: SocketAddr,
        seeds: Vec<String>,
        peer_addr: SocketAddr,
    ) -> MembershipConfig {
        MembershipConfig {
            node,
            cluster_id: cluster_id.into(),
            gossip_listen,
            gossip_advertise: gossip_listen,
            seeds,
            peer_addr,
            gossip_interval: Duration::from_millis(100),
            phi_threshold: 8.0,
            initial_interval: Duration::from_millis(100),
            dead_node_grace: Duration::from_secs(4),
        }
    }
}

/// One live node as gossip shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: NodeId,
    pub generation: u64,
    pub peer_addr: SocketAddr,
    /// Its interest summary (may be empty while gossip catches up).
    pub interest: InterestFilter,
    /// Digest of its presence members, if it published one.
    pub presence: Option<Digest>,
    /// It gossips `queries = 1`: it understands `Query` and answers it.
    pub answers_queries: bool,
}

impl NodeInfo {
    pub fn key(&self) -> NodeKey {
        NodeKey::new(self.id.clone(), self.generation)
    }
}

/// The live nodes, sorted by id, including this node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiveView {
    pub nodes: Vec<NodeInfo>,
    /// Nodes gossiping `leaving` (not in `nodes`): a peer that misses the `Leaving` message
    /// on the link still learns it was a graceful leave, not a death.
    pub leaving: Vec<NodeKey>,
}

impl LiveView {
    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.iter().map(|n| n.id.clone()).collect()
    }

    pub fn keys(&self) -> Vec<NodeKey> {
        self.nodes.iter().map(NodeInfo::key).collect()
    }

    pub fn get(&self, id: &NodeId) -> Option<&NodeInfo> {
        self.nodes.iter().find(|n| &n.id == id)
    }
}

/// Why membership could not start (operator error: address in use, bad seed).
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error("cannot start gossip on {addr}: {reason}")]
    Start { addr: SocketAddr, reason: String },
}

/// A running membership. Drop or [`Membership::leave`] to stop.
pub struct Membership {
    handle: Option<ChitchatHandle>,
    view: watch::Receiver<Arc<LiveView>>,
    summaries: watch::Receiver<Arc<Summaries>>,
    pump: JoinHandle<()>,
    gossip_interval: Duration,
}

/// The `summary` key of every node in chitchat's live map (pure).
fn to_summaries(live: &BTreeMap<ChitchatId, NodeState>) -> Summaries {
    live.iter()
        .filter_map(|(cid, state)| {
            let s = state.get(KEY_SUMMARY)?;
            (s.len() <= MAX_SUMMARY_BYTES).then(|| (cid.node_id.to_string(), s.to_owned()))
        })
        .collect()
}

/// The parsed interest summaries of the last view, by node, with a fingerprint of their keys:
/// how many, and the newest version. A node's versions only grow, so any write or deletion
/// of one of its `interest.*` keys changes one or the other. Without it every change of any
/// key (a presence digest moves on every join) re-parsed every node's summary: ~18k keys
/// per node at 50 nodes and the target load.
#[derive(Default)]
struct InterestCache(BTreeMap<ChitchatId, ((usize, u64), InterestFilter)>);

impl InterestCache {
    fn filter(&mut self, cid: &ChitchatId, state: &NodeState) -> InterestFilter {
        let keys = || state.iter_prefix(crate::interest::KEY_PREFIX);
        let print = keys().fold((0, 0), |(n, max), (_, v)| (n + 1, max.max(v.version)));
        match self.0.get(cid) {
            Some((p, f)) if *p == print => f.clone(),
            _ => {
                let f = InterestFilter::from_gossip(keys().map(|(k, v)| (k, v.value.as_str())));
                self.0.insert(cid.clone(), (print, f.clone()));
                f
            }
        }
    }

    /// Forgets the nodes no longer in the live map.
    fn retain(&mut self, live: &BTreeMap<ChitchatId, NodeState>) {
        self.0.retain(|cid, _| live.contains_key(cid));
    }
}

/// Builds the view from chitchat's live map (pure but for the parse cache; tested below).
fn to_view(live: &BTreeMap<ChitchatId, NodeState>, cache: &mut InterestCache) -> LiveView {
    cache.retain(live);
    let mut newest: BTreeMap<NodeId, NodeInfo> = BTreeMap::new();
    let mut leaving = Vec::new();
    for (cid, state) in live {
        let Ok(id) = NodeId::new(&cid.node_id) else {
            continue;
        };
        if state.get(KEY_STATUS) == Some(STATUS_LEAVING) {
            leaving.push(NodeKey::new(id, cid.generation_id));
            continue;
        }
        let Some(peer_addr) = state.get(KEY_PEER_ADDR).and_then(|a| a.parse().ok()) else {
            continue;
        };
        let info = NodeInfo {
            id: id.clone(),
            generation: cid.generation_id,
            peer_addr,
            interest: cache.filter(cid, state),
            presence: state.get(KEY_PRESENCE).and_then(Digest::decode),
            answers_queries: state.get(KEY_QUERIES) == Some("1"),
        };
        match newest.get(&id) {
            Some(have) if have.generation >= info.generation => {}
            _ => {
                newest.insert(id, info);
            }
        }
    }
    LiveView {
        nodes: newest.into_values().collect(),
        leaving,
    }
}

impl Membership {
    /// Starts gossip over a chitchat transport: the sealed UDP one
    /// ([`crate::gossip_seal::SealedUdpTransport`]) in a node, the in-memory one in tests
    /// (it can cut and heal links). Must be called inside the cluster's tokio runtime.
    pub async fn start_with(
        cfg: MembershipConfig,
        transport: &dyn Transport,
    ) -> Result<Membership, MembershipError> {
        let chitchat_id = ChitchatId::new(
            cfg.node.id.as_str(),
            cfg.node.generation,
            cfg.gossip_advertise,
        );
        let failure_detector_config = FailureDetectorConfig {
            phi_threshold: cfg.phi_threshold,
            initial_interval: cfg.initial_interval,
            dead_node_grace_period: cfg.dead_node_grace,
            ..FailureDetectorConfig::default()
        };
        let config = ChitchatConfig {
            chitchat_id,
            cluster_id: cfg.cluster_id.clone(),
            gossip_interval: cfg.gossip_interval,
            listen_addr: cfg.gossip_listen,
            seed_nodes: cfg.seeds.clone(),
            failure_detector_config,
            marked_for_deletion_grace_period: Duration::from_secs(3600),
            catchup_callback: None,
            extra_liveness_predicate: None,
            // V1 compresses digests; keep V0 until every node of every version supports V1.
            protocol_version: chitchat::ProtocolVersion::V0,
        };
        let initial = vec![
            (KEY_PEER_ADDR.to_owned(), cfg.peer_addr.to_string()),
            (KEY_STATUS.to_owned(), STATUS_READY.to_owned()),
            (KEY_QUERIES.to_owned(), "1".to_owned()),
        ];
        let handle = chitchat::spawn_chitchat(config, initial, transport)
            .await
            .map_err(|e| MembershipError::Start {
                addr: cfg.gossip_listen,
                reason: e.to_string(),
            })?;
        let mut watcher = handle.chitchat().lock().await.live_nodes_watcher();
        let mut cache = InterestCache::default();
        let (first, first_summaries) = {
            let live = watcher.borrow_and_update();
            (to_view(&live, &mut cache), to_summaries(&live))
        };
        let (tx, view) = watch::channel(Arc::new(first));
        let (summaries_tx, summaries) = watch::channel(Arc::new(first_summaries));
        let me = cfg.node.clone();
        let pump = tokio::spawn(async move {
            while watcher.changed().await.is_ok() {
                let (v, s) = {
                    let live = watcher.borrow_and_update();
                    (to_view(&live, &mut cache), to_summaries(&live))
                };
                if **summaries_tx.borrow() != s {
                    // Nobody may be watching; that is fine.
                    let _ = summaries_tx.send(Arc::new(s));
                }
                if **tx.borrow() != v {
                    info!(node = %me, live = ?v.ids(), "live view changed");
                    if tx.send(Arc::new(v)).is_err() {
                        break;
                    }
                }
            }
        });
        info!(node = %cfg.node, gossip = %cfg.gossip_listen, seeds = ?cfg.seeds, "gossip started");
        Ok(Membership {
            handle: Some(handle),
            view,
            summaries,
            pump,
            gossip_interval: cfg.gossip_interval,
        })
    }

    /// Follow the live view: `borrow()` for now, `changed().await` for the next one. Works
    /// from any runtime (tokio `watch`).
    pub fn view(&self) -> watch::Receiver<Arc<LiveView>> {
        self.view.clone()
    }

    /// Every node's `summary` as gossip last told it.
    pub fn summaries(&self) -> watch::Receiver<Arc<Summaries>> {
        self.summaries.clone()
    }

    /// Sets (`Some`) or deletes (`None`) own gossip keys.
    pub async fn set_keys(&self, changes: Vec<(String, Option<String>)>) {
        let Some(handle) = &self.handle else { return };
        let cc = handle.chitchat();
        let mut cc = cc.lock().await;
        let me = cc.self_node_state();
        for (k, v) in changes {
            match v {
                Some(v) => me.set(k, v),
                None => me.delete(&k),
            }
        }
    }

    /// Graceful leave: marks this node `leaving`, lets a few gossip rounds carry it, then
    /// stops gossip. Peers drop the node from their live view as soon as they see the key.
    pub async fn leave(mut self) {
        self.set_keys(vec![(
            KEY_STATUS.to_owned(),
            Some(STATUS_LEAVING.to_owned()),
        )])
        .await;
        tokio::time::sleep(self.gossip_interval * 5).await;
        self.pump.abort();
        if let Some(h) = self.handle.take() {
            if let Err(e) = h.shutdown().await {
                warn!(error = %e, "gossip shutdown failed");
            }
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.pump.abort();
        if let Some(h) = &self.handle {
            h.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chitchat::transport::ChannelTransport;
    use std::time::Instant;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    async fn start(t: &ChannelTransport, name: &str, port: u16, generation: u64) -> Membership {
        let key = NodeKey::new(NodeId::new(name).unwrap(), generation);
        let cfg = MembershipConfig::new(
            key,
            "test",
            addr(port),
            vec![addr(1).to_string()],
            addr(port + 1000),
        );
        Membership::start_with(cfg, t).await.unwrap()
    }

    async fn wait_for(m: &Membership, what: &str, f: impl Fn(&LiveView) -> bool) -> Duration {
        let t0 = Instant::now();
        let mut w = m.view();
        loop {
            if f(&w.borrow_and_update()) {
                return t0.elapsed();
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "timed out waiting for {what}"
            );
            let _ = tokio::time::timeout(Duration::from_millis(100), w.changed()).await;
        }
    }

    fn count(n: usize) -> impl Fn(&LiveView) -> bool {
        move |v| v.nodes.len() == n
    }

    /// chitchat's own in-memory transport cuts and heals links: C is cut off, the others
    /// drop it within the budget, and it comes back when healed.
    #[tokio::test]
    async fn converges_detects_a_cut_and_heals() {
        let t = ChannelTransport::default();
        let a = start(&t, "a", 1, 1).await;
        let b = start(&t, "b", 2, 1).await;
        let c = start(&t, "c", 3, 1).await;
        for m in [&a, &b, &c] {
            wait_for(m, "3 live", count(3)).await;
        }
        a.set_keys(vec![(
            "interest.00".into(),
            Some("0000000000000001".into()),
        )])
        .await;
        wait_for(&b, "a's interest", |v| {
            v.get(&NodeId::new("a").unwrap())
                .is_some_and(|n| n.interest.may_contain(1))
        })
        .await;
        // Later changes and a deletion are seen too (the view reuses a parsed summary only
        // while none of its keys changed).
        a.set_keys(vec![(
            "interest.00".into(),
            Some("0000000000000002".into()),
        )])
        .await;
        wait_for(&b, "a's interest changed", |v| {
            v.get(&NodeId::new("a").unwrap())
                .is_some_and(|n| n.interest.may_contain(2) && !n.interest.may_contain(1))
        })
        .await;
        a.set_keys(vec![("interest.00".into(), None)]).await;
        wait_for(&b, "a's interest deleted", |v| {
            v.get(&NodeId::new("a").unwrap())
                .is_some_and(|n| n.interest.is_empty())
        })
        .await;

        for other in [addr(1), addr(2)] {
            t.remove_link(addr(3), other).await;
        }
        let took = wait_for(&a, "c gone at a", count(2)).await;
        assert!(took < Duration::from_secs(3), "{took:?}");
        wait_for(&b, "c gone at b", count(2)).await;
        wait_for(&c, "c alone", count(1)).await;

        for other in [addr(1), addr(2)] {
            t.add_link(addr(3), other).await;
        }
        for m in [&a, &b, &c] {
            wait_for(m, "3 live again", count(3)).await;
        }
    }

    #[tokio::test]
    async fn another_cluster_id_stays_apart() {
        let t = ChannelTransport::default();
        let a = start(&t, "a", 1, 1).await;
        let b = start(&t, "b", 2, 1).await;
        let key = NodeKey::new(NodeId::new("x").unwrap(), 1);
        let cfg =
            MembershipConfig::new(key, "other", addr(3), vec![addr(1).to_string()], addr(1003));
        let x = Membership::start_with(cfg, &t).await.unwrap();
        wait_for(&a, "2 live", count(2)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            a.view().borrow().ids(),
            vec![NodeId::new("a").unwrap(), NodeId::new("b").unwrap()]
        );
        assert_eq!(x.view().borrow().nodes.len(), 1);
        drop(b);
    }

    #[tokio::test]
    async fn leaving_and_restart_with_a_new_generation() {
        let t = ChannelTransport::default();
        let a = start(&t, "a", 1, 1).await;
        let b = start(&t, "b", 2, 1).await;
        wait_for(&a, "2 live", count(2)).await;
        b.leave().await;
        let took = wait_for(&a, "b gone", count(1)).await;
        assert!(took < Duration::from_secs(1), "{took:?}");
        let b2 = start(&t, "b", 12, 2).await;
        wait_for(&a, "b back with generation 2", |v| {
            v.get(&NodeId::new("b").unwrap())
                .is_some_and(|n| n.generation == 2)
        })
        .await;
        wait_for(&b2, "2 live at b2", count(2)).await;
    }
}
