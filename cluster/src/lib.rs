//! # raptor-cluster
//!
//! Everything Raptor needs to run as a cluster of nodes without a broker, and nothing that
//! needs the engine: gossip membership, node-to-node links, channel ownership across nodes,
//! and the cluster-wide presence view. The engine wires these into its shards.
//!
//! ## Design in one page
//!
//! * **Membership is gossip** ([`membership`]): every node runs chitchat on UDP, seeded from a
//!   list of addresses (no broadcast, so it works on any network that routes unicast). A
//!   node's identity is `(node id, generation)`; the generation is the start time in unix
//!   milliseconds, so a restarted node is a *new* member and nothing of its previous life is
//!   ever attributed to it. A cluster id keeps two clusters on the same network apart. The
//!   live set is published as a [`membership::LiveView`].
//! * **Data moves over TCP links** ([`link`]): one connection per pair of nodes, opened by
//!   the node with the lower id, started with a `Hello` that checks the cluster id and names
//!   both ends. Frames are versioned and validated before use ([`wire`], the only module
//!   that knows rkyv). Send queues are bounded; a full queue drops and counts.
//! * **One owning node per channel** ([`ownership`]): rendezvous hashing over the live set.
//!   Every node computes the same owner from the same view, with no coordination. The owner
//!   is where a channel's events are ordered; it sends one `Deliver` per event to each node
//!   with subscribers, and that node's own shards fan it out as usual.
//! * **Presence is owned by the node holding the connections** ([`presence`]): each node is
//!   the only writer of its own members and sends them to every peer; every node keeps the
//!   union, keyed by `(node, generation)`. When a node leaves the live set its members go
//!   with it, and [`presence::ClusterPresence`] says exactly which `member_added` and
//!   `member_removed` events follow. Each node sends them to its own subscribers (so every
//!   client follows the view of its node, also across a partition heal); the channel's
//!   owning node alone fires the webhooks.
//! * **Interest is announced twice** ([`interest`]): fast, as `Interest` messages to the
//!   owner, and slowly but self-healing, as a compact hashed summary in gossip. The owner
//!   delivers to the union, so a lost message costs at most a gossip round. The owner also
//!   turns that union becoming non-empty or empty into one `channel_occupied` /
//!   `channel_vacated` for the cluster ([`node::Action::Occupancy`]).
//! * **Subscription counts are summed by the owner** ([`counts`]): each node reports its
//!   own count of a channel's subscriptions to the owner, which announces the cluster-wide
//!   total once per change ([`node::Action::SubscriptionCount`]).
//! * **Channel queries are scatter-gather** ([`query`]): a node asks every linked live peer
//!   about an app's channels and merges the answers that arrive before its timeout.
//! * **Nobody joins without the cluster secret** ([`secret`], ADR 0007): gossip datagrams are
//!   sealed with a key derived from it ([`gossip_seal`]), and links are TLS 1.3 on which
//!   both ends prove the secret before the `Hello` ([`link::auth`]).
//! * **tokio meets glommio in one place** ([`bridge`]): the cluster runs on its own thread
//!   with a tokio runtime ([`runtime`]); shards talk to it only through bounded queues that
//!   never block a shard.
//!
//! ## Invariants
//!
//! * A node only writes its own state: its gossip keys, its presence members, its interest.
//! * Liveness is local: each node decides from its own failure detector, and the rest of the
//!   system treats the live view as the truth for routing and presence.
//! * Nothing here blocks a glommio shard: every call a shard makes is `try_*` or an `.await`
//!   on a runtime-agnostic `tokio::sync` primitive.
//! * Everything is bounded: frame size, per-peer send queues, bridge queues, gossip values.
//!
//! docs/cluster.md states the guarantees; docs/cluster-protocol.md the bytes on the wire.

pub mod bridge;
pub mod counts;
pub mod gossip_seal;
pub mod interest;
pub mod link;
pub mod membership;
pub mod node;
pub mod ownership;
pub mod presence;
pub mod query;
pub mod runtime;
pub mod secret;
#[cfg(feature = "sim")]
pub mod sim;
pub mod wire;

mod id;
mod warn_limit;

pub use id::{IdError, NodeId, NodeKey};
