//! Sealed gossip: a chitchat [`Transport`] over UDP whose every datagram is encrypted and
//! authenticated with the cluster secret (docs/cluster-protocol.md, §2; ADR 0007).
//!
//! chitchat gives us whole messages ([`ChitchatEnvelope`]); this layer turns each into one
//! or two datagrams:
//!
//! ```text
//! datagram  = version (1 byte, 0x01) ‖ nonce (24 random bytes) ‖ ciphertext ‖ tag (16)
//! plaintext = sent_ms (u64 LE) ‖ msg_id (u32 LE) ‖ part (u8) ‖ parts (u8) ‖ chitchat bytes
//! ```
//!
//! sealed with XChaCha20-Poly1305 under the first secret's gossip key, the version byte as
//! associated data. A receiver tries each accepted key; a datagram that none opens, that is
//! malformed, or whose `sent_ms` is more than [`MAX_SKEW`] away from the receiver's clock (a
//! replay of an old capture, or a badly set clock) is dropped, counted (`gossip_rejected`) and
//! logged at most once per source address per 10 s. Nothing is ever answered to it.
//!
//! chitchat fills datagrams up to 65,507 bytes (the UDP maximum), which leaves no room for
//! the 55 bytes of sealing; a message that would not fit is sent as two parts, and the
//! receiver joins them ([`Reassembly`], bounded). Only authenticated parts are kept.

use crate::secret::{Keyring, Keys};
use crate::warn_limit::{WarnLimiter, WINDOW};
use async_trait::async_trait;
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{Tag, XNonce};
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport};
use chitchat::ChitchatEnvelope;
use lru::LruCache;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::warn;

/// The first byte of every sealed datagram.
pub const SEAL_VERSION: u8 = 1;
const NONCE: usize = 24;
const TAG: usize = 16;
const OUTER: usize = 1 + NONCE;
const INNER: usize = 8 + 4 + 1 + 1;
/// The largest UDP payload over IPv4.
pub const MAX_DATAGRAM: usize = 65_507;
/// Bytes of sealing around each part.
pub const OVERHEAD: usize = OUTER + INNER + TAG;
/// The largest chitchat message part one datagram carries.
pub const MAX_PART: usize = MAX_DATAGRAM - OVERHEAD;
/// Parts of one message: chitchat's messages are at most 65,507 bytes, so two always do.
pub const MAX_PARTS: u8 = 2;
/// How far a datagram's send time may be from the receiver's clock.
pub const MAX_SKEW: Duration = Duration::from_secs(120);
/// First parts waiting for their second (each up to 64 KiB: 1 MiB in all), per socket.
pub const PENDING_PARTS: usize = 16;
/// How long a first part waits for its second.
pub const PART_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    #[error("too short to be sealed")]
    Short,
    #[error("unknown seal version {0}")]
    Version(u8),
    #[error("not sealed with an accepted secret")]
    Unauthenticated,
    #[error("malformed part header")]
    Malformed,
    #[error("sent {skew_s} s away from this node's clock (replay, or clocks not in sync)")]
    Skewed { skew_s: i64 },
}

/// One opened datagram.
#[derive(Debug, PartialEq, Eq)]
pub struct Opened {
    pub msg_id: u32,
    pub part: u8,
    pub parts: u8,
    pub payload: Vec<u8>,
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn random_nonce() -> [u8; NONCE] {
    let mut n = [0u8; NONCE];
    // The OS random source failing is not recoverable; never send with a predictable nonce.
    getrandom::getrandom(&mut n).expect("the OS random number generator works");
    n
}

/// Seals one chitchat message into one or two datagrams with the first key.
pub fn seal(keys: &Keys, sent_ms: u64, msg_id: u32, message: &[u8]) -> Vec<Vec<u8>> {
    let chunks: Vec<&[u8]> = if message.is_empty() {
        vec![message]
    } else {
        message.chunks(MAX_PART).collect()
    };
    let parts = chunks.len() as u8;
    chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| {
            let nonce = random_nonce();
            let mut d = Vec::with_capacity(OVERHEAD + chunk.len());
            d.push(SEAL_VERSION);
            d.extend_from_slice(&nonce);
            d.extend_from_slice(&sent_ms.to_le_bytes());
            d.extend_from_slice(&msg_id.to_le_bytes());
            d.push(i as u8);
            d.push(parts);
            d.extend_from_slice(chunk);
            let tag = keys.gossip[0]
                .encrypt_in_place_detached(
                    XNonce::from_slice(&nonce),
                    &[SEAL_VERSION],
                    &mut d[OUTER..],
                )
                .expect("a part is far below XChaCha20's message limit");
            d.extend_from_slice(&tag);
            d
        })
        .collect()
}

/// Opens a datagram with any accepted key (pure: the fuzz target `gossip_open` drives it).
pub fn open(keys: &Keys, now_ms: u64, datagram: &[u8]) -> Result<Opened, Reject> {
    if datagram.len() < OVERHEAD {
        return Err(Reject::Short);
    }
    if datagram[0] != SEAL_VERSION {
        return Err(Reject::Version(datagram[0]));
    }
    let nonce = XNonce::from_slice(&datagram[1..OUTER]);
    let (body, tag) = datagram[OUTER..].split_at(datagram.len() - OUTER - TAG);
    let tag = Tag::from_slice(tag);
    let mut plain = body.to_vec();
    // A failed attempt leaves the buffer as it was (the tag is checked before decrypting).
    let opened = keys.gossip.iter().any(|k| {
        k.decrypt_in_place_detached(nonce, &[SEAL_VERSION], &mut plain, tag)
            .is_ok()
    });
    if !opened {
        return Err(Reject::Unauthenticated);
    }
    let sent_ms = u64::from_le_bytes(plain[0..8].try_into().expect("8 bytes"));
    let msg_id = u32::from_le_bytes(plain[8..12].try_into().expect("4 bytes"));
    let (part, parts) = (plain[12], plain[13]);
    if parts == 0 || parts > MAX_PARTS || part >= parts {
        return Err(Reject::Malformed);
    }
    let skew_ms = now_ms as i128 - sent_ms as i128;
    if skew_ms.unsigned_abs() > MAX_SKEW.as_millis() {
        return Err(Reject::Skewed {
            skew_s: (skew_ms / 1000) as i64,
        });
    }
    plain.drain(..INNER);
    Ok(Opened {
        msg_id,
        part,
        parts,
        payload: plain,
    })
}

struct Pending {
    at: Instant,
    part: u8,
    bytes: Vec<u8>,
}

/// Joins two-part messages; bounded to [`PENDING_PARTS`] first parts, oldest dropped first.
pub struct Reassembly {
    pending: LruCache<(SocketAddr, u32), Pending>,
}

impl Default for Reassembly {
    fn default() -> Self {
        Reassembly {
            pending: LruCache::new(NonZeroUsize::new(PENDING_PARTS).expect("> 0")),
        }
    }
}

impl Reassembly {
    /// The whole message once every part of it arrived.
    pub fn add(&mut self, from: SocketAddr, o: Opened, now: Instant) -> Option<Vec<u8>> {
        if o.parts == 1 {
            return Some(o.payload);
        }
        match self.pending.pop(&(from, o.msg_id)) {
            Some(p) if p.part != o.part && now.duration_since(p.at) < PART_TIMEOUT => {
                let (mut first, second) = if p.part < o.part {
                    (p.bytes, o.payload)
                } else {
                    (o.payload, p.bytes)
                };
                first.extend_from_slice(&second);
                Some(first)
            }
            _ => {
                self.pending.put(
                    (from, o.msg_id),
                    Pending {
                        at: now,
                        part: o.part,
                        bytes: o.payload,
                    },
                );
                None
            }
        }
    }
}

/// Gossip datagrams dropped, for `/stats` (`cluster.gossip_rejected`).
#[derive(Debug, Default)]
pub struct GossipCounters {
    pub rejected: AtomicU64,
}

/// chitchat's UDP transport, sealed. Replaces `chitchat::transport::UdpTransport`.
///
/// chitchat 0.13 keeps its message encoding private: the only public way to turn a
/// [`ChitchatEnvelope`] into bytes and back is its own `UdpSocket`. So each sealed socket
/// runs one of those (the *codec*) on `127.0.0.1`, and a small loopback socket per remote
/// node (a *relay*) stands for that node towards it: chitchat sends to the relay, the relay's
/// bytes are sealed and sent to the node; a node's opened datagram is sent to chitchat from
/// its relay, and chitchat's answer names the node again. Only datagrams between the codec
/// and our own relays are taken, so another local process cannot speak to chitchat through
/// them. The cost is two loopback datagrams per gossip datagram, at ~10 per second per node.
/// (Upstreaming a public `ChitchatEnvelope` codec would remove this; docs/adr/0007.)
pub struct SealedUdpTransport {
    pub keyring: Arc<Keyring>,
    pub counters: Arc<GossipCounters>,
}

/// Remote nodes with a relay socket (one file descriptor each); the least recently used is
/// closed beyond this. Only seeds, gossiped members and senders of authenticated datagrams
/// get one.
pub const MAX_RELAYS: usize = 1024;
/// How long a loopback hop between the codec and a relay may take (microseconds in practice).
const CODEC_WAIT: Duration = Duration::from_millis(200);

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

#[async_trait]
impl Transport for SealedUdpTransport {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let outer = tokio::net::UdpSocket::bind(listen_addr)
            .await
            .map_err(|e| anyhow::anyhow!("failed to bind to {listen_addr}/UDP for gossip: {e}"))?;
        let codec = chitchat::transport::UdpTransport.open(loopback()).await?;
        let codec_addr = codec.local_addr()?;
        Ok(Box::new(SealedSocket {
            outer,
            codec,
            codec_addr,
            relays: LruCache::new(NonZeroUsize::new(MAX_RELAYS).expect("> 0")),
            remote_of: HashMap::new(),
            keyring: self.keyring.clone(),
            counters: self.counters.clone(),
            buf: vec![0u8; MAX_DATAGRAM + 1].into_boxed_slice(),
            parts: Reassembly::default(),
            warn: WarnLimiter::new(WINDOW),
        }))
    }
}

struct SealedSocket {
    /// The gossip address: sealed datagrams only.
    outer: tokio::net::UdpSocket,
    /// chitchat's own UDP socket on loopback, used as its message codec.
    codec: Box<dyn Socket>,
    codec_addr: SocketAddr,
    /// Remote gossip address → its relay socket on loopback.
    relays: LruCache<SocketAddr, Arc<tokio::net::UdpSocket>>,
    /// Relay address → remote gossip address.
    remote_of: HashMap<SocketAddr, SocketAddr>,
    keyring: Arc<Keyring>,
    counters: Arc<GossipCounters>,
    buf: Box<[u8]>,
    parts: Reassembly,
    warn: WarnLimiter,
}

impl SealedSocket {
    fn refuse(&mut self, from: SocketAddr, len: usize, why: &dyn std::fmt::Display) {
        self.counters.rejected.fetch_add(1, Ordering::Relaxed);
        if let Some(suppressed) = self.warn.check(from.ip(), Instant::now()) {
            warn!(%from, len, suppressed, reason = %why, "gossip datagram refused");
        }
    }

    /// The relay standing for `remote`, made on first use.
    async fn relay(&mut self, remote: SocketAddr) -> std::io::Result<Arc<tokio::net::UdpSocket>> {
        if let Some(r) = self.relays.get(&remote) {
            return Ok(r.clone());
        }
        let r = Arc::new(tokio::net::UdpSocket::bind(loopback()).await?);
        let addr = r.local_addr()?;
        if let Some((_, old)) = self.relays.push(remote, r.clone()) {
            if let Ok(a) = old.local_addr() {
                self.remote_of.remove(&a);
            }
        }
        self.remote_of.insert(addr, remote);
        Ok(r)
    }
}

#[async_trait]
impl Socket for SealedSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.outer.local_addr()?)
    }

    async fn send(
        &mut self,
        to: SocketAddr,
        envelope: ChitchatEnvelope,
    ) -> anyhow::Result<SendOutcome> {
        let relay = self.relay(to).await?;
        // chitchat encodes the message into the relay...
        self.codec.send(relay.local_addr()?, envelope).await?;
        let n = loop {
            let (n, src) = tokio::time::timeout(CODEC_WAIT, relay.recv_from(&mut self.buf))
                .await
                .map_err(|_| anyhow::anyhow!("gossip codec did not answer on loopback"))??;
            if src == self.codec_addr {
                break n;
            }
        };
        // ...and the relay's bytes are sealed to the node.
        let keys = self.keyring.keys();
        let mut sent = 0;
        for d in seal(&keys, now_ms(), fastrand::u32(..), &self.buf[..n]) {
            sent += self.outer.send_to(&d, to).await?;
        }
        Ok(SendOutcome {
            num_bytes_sent: sent,
        })
    }

    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        loop {
            let (n, from) = match self.outer.recv_from(&mut self.buf).await {
                Ok(r) => r,
                // As chitchat's own UDP socket: these say something about an earlier send.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionReset
                            | std::io::ErrorKind::ConnectionRefused
                            | std::io::ErrorKind::OutOfMemory
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(anyhow::anyhow!("fatal UDP recv error: {e}")),
            };
            let keys = self.keyring.keys();
            let opened = match open(&keys, now_ms(), &self.buf[..n]) {
                Ok(o) => o,
                Err(why) => {
                    self.refuse(from, n, &why);
                    continue;
                }
            };
            let Some(message) = self.parts.add(from, opened, Instant::now()) else {
                continue;
            };
            // chitchat decodes what the node's relay hands it.
            let relay = self.relay(from).await?;
            let relay_addr = relay.local_addr()?;
            relay.send_to(&message, self.codec_addr).await?;
            loop {
                match tokio::time::timeout(CODEC_WAIT, self.codec.recv()).await {
                    Ok(Ok(got)) if got.from_addr == relay_addr => {
                        return Ok(RecvOutcome {
                            from_addr: from,
                            envelope: got.envelope,
                            num_bytes_received: n,
                        });
                    }
                    // Not from this relay: a late one, or a local process. Dropped.
                    Ok(Ok(got)) => {
                        if !self.remote_of.contains_key(&got.from_addr) {
                            self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok(Err(e)) => return Err(e),
                    // chitchat did not take it: authenticated, but not a chitchat message
                    // (a peer of an incompatible release).
                    Err(_) => {
                        self.refuse(from, n, &"not a chitchat message");
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secrets;

    fn keys(list: &[&str]) -> Keys {
        Keys::derive("c", &Secrets::new(list).unwrap())
    }

    const A: &str = "aaaaaaaaaaaaaaaa-1";
    const B: &str = "bbbbbbbbbbbbbbbb-2";

    #[test]
    fn round_trip_under_any_accepted_key_and_nothing_in_clear() {
        let msg = b"node-visible-name and cluster-visible-id".to_vec();
        let d = seal(&keys(&[A]), 1000, 7, &msg);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].len(), msg.len() + OVERHEAD);
        assert!(!d[0].windows(4).any(|w| w == b"node"));
        let o = open(&keys(&[B, A]), 1000, &d[0]).unwrap();
        assert_eq!((o.msg_id, o.part, o.parts, &o.payload), (7, 0, 1, &msg));
        assert_eq!(open(&keys(&[B]), 1000, &d[0]), Err(Reject::Unauthenticated));
        let other_cluster = Keys::derive("d", &Secrets::new([A]).unwrap());
        assert_eq!(
            open(&other_cluster, 1000, &d[0]),
            Err(Reject::Unauthenticated)
        );
    }

    #[test]
    fn tampered_short_and_stale_datagrams_are_refused() {
        let k = keys(&[A]);
        let mut d = seal(&k, 1000, 1, b"hello").remove(0);
        assert_eq!(open(&k, 1000, &d[..OVERHEAD - 1]), Err(Reject::Short));
        let last = d.len() - 1;
        d[last] ^= 1;
        assert_eq!(open(&k, 1000, &d), Err(Reject::Unauthenticated));
        d[last] ^= 1;
        d[0] = 2;
        assert_eq!(open(&k, 1000, &d), Err(Reject::Version(2)));
        d[0] = SEAL_VERSION;
        let late = 1000 + MAX_SKEW.as_millis() as u64 + 1000;
        assert!(matches!(open(&k, late, &d), Err(Reject::Skewed { .. })));
    }

    #[test]
    fn a_full_size_message_travels_as_two_parts() {
        let k = keys(&[A]);
        let msg: Vec<u8> = (0..MAX_DATAGRAM).map(|i| i as u8).collect();
        let d = seal(&k, 5, 9, &msg);
        assert_eq!(d.len(), 2);
        assert!(d.iter().all(|d| d.len() <= MAX_DATAGRAM));
        let from: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut r = Reassembly::default();
        let now = Instant::now();
        // Either order.
        assert_eq!(r.add(from, open(&k, 5, &d[1]).unwrap(), now), None);
        assert_eq!(r.add(from, open(&k, 5, &d[0]).unwrap(), now), Some(msg));
        assert!(r.pending.is_empty());
    }

    /// Over the real UDP socket: a sealed node talks to a sealed node; a plaintext chitchat
    /// datagram and one sealed with another secret are dropped and counted.
    #[tokio::test]
    async fn sealed_sockets_talk_and_refuse_strangers() {
        use chitchat::{ChitchatMessage, ProtocolVersion};
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let t = |s: &str| SealedUdpTransport {
            keyring: Arc::new(Keyring::new("c", &Secrets::new([s]).unwrap())),
            counters: Arc::new(GossipCounters::default()),
        };
        let (ta, tb, tx) = (t(A), t(A), t(B));
        let mut a = ta.open(any).await.unwrap();
        let mut b = tb.open(any).await.unwrap();
        let mut x = tx.open(any).await.unwrap();
        let b_addr = b.local_addr().unwrap();
        let bad = || ChitchatEnvelope {
            version: ProtocolVersion::V0,
            message: ChitchatMessage::BadCluster,
        };
        x.send(b_addr, bad()).await.unwrap();
        let mut plain = chitchat::transport::UdpTransport.open(any).await.unwrap();
        plain.send(b_addr, bad()).await.unwrap();
        a.send(b_addr, bad()).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), b.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.from_addr, a.local_addr().unwrap());
        assert_eq!(got.envelope, bad());
        assert_eq!(tb.counters.rejected.load(Ordering::Relaxed), 2);
    }
}
