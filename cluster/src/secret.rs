//! The cluster secret: what a node must know to join (docs/adr/0007-cluster-link-security.md).
//!
//! An operator gives a list of secrets. The **first** is the one this node uses to send: it
//! seals its gossip datagrams and proves itself on the links it opens or accepts. **Every**
//! secret in the list is accepted from peers, so a rotation runs with two secrets accepted at
//! once (docs/cluster.md, "Rotating the secret").
//!
//! From each secret, two 32-byte keys are derived with HKDF-SHA256, bound to the cluster id
//! and separated by purpose (`raptor gossip v1`, `raptor link v1`): a key never serves both
//! uses, and two clusters that share a secret by mistake still cannot read each other.
//!
//! The keys in force live in a [`Keyring`] that the operator can refill on a running node
//! ([`Keyring::replace`], on SIGHUP): new datagrams and new links use the new list at once;
//! established links go on.
//!
//! Secrets never reach a log or `Debug` output, and their bytes are zeroed when dropped.

use chacha20poly1305::{KeyInit, XChaCha20Poly1305};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::{Arc, RwLock};
use zeroize::Zeroizing;

/// Shortest secret accepted, in bytes. Anyone who can capture one sealed gossip datagram can
/// test guesses offline, so a secret must be unguessable: 16 bytes of a random string are the
/// floor; `openssl rand -base64 32` is the recommendation.
pub const MIN_SECRET_BYTES: usize = 16;
/// Longest secret accepted, in bytes (a file with something else in it by mistake).
pub const MAX_SECRET_BYTES: usize = 1024;
/// Secrets accepted at once: the current one, the previous one during a rotation, and some
/// room. Each costs one more key to try on every datagram that fails the first.
pub const MAX_SECRETS: usize = 4;

/// One secret's bytes; zeroed on drop, never printed.
#[derive(Clone)]
pub struct ClusterSecret(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(<redacted>)")
    }
}

/// Why a list of secrets was refused (operator error: the node does not start, or a reload
/// keeps the list it had).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("no cluster secret given")]
    Missing,
    #[error("secret {index} is {len} bytes; at least {MIN_SECRET_BYTES} are needed")]
    TooShort { index: usize, len: usize },
    #[error("secret {index} is {len} bytes; at most {MAX_SECRET_BYTES} are accepted")]
    TooLong { index: usize, len: usize },
    #[error("{0} secrets given; at most {MAX_SECRETS} are accepted at once")]
    TooMany(usize),
}

/// A validated list of secrets: 1..=[`MAX_SECRETS`], each [`MIN_SECRET_BYTES`]..=
/// [`MAX_SECRET_BYTES`] bytes. The first one sends; all are accepted.
#[derive(Clone, Debug)]
pub struct Secrets(Vec<ClusterSecret>);

impl Secrets {
    /// Checks the list; `index` in an error is 0-based, in the order given.
    pub fn new<I, S>(list: I) -> Result<Secrets, SecretError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let mut out = Vec::new();
        for (index, s) in list.into_iter().enumerate() {
            let s = s.as_ref();
            if s.len() < MIN_SECRET_BYTES {
                return Err(SecretError::TooShort {
                    index,
                    len: s.len(),
                });
            }
            if s.len() > MAX_SECRET_BYTES {
                return Err(SecretError::TooLong {
                    index,
                    len: s.len(),
                });
            }
            out.push(ClusterSecret(Zeroizing::new(s.to_vec())));
        }
        match out.len() {
            0 => Err(SecretError::Missing),
            n if n > MAX_SECRETS => Err(SecretError::TooMany(n)),
            _ => Ok(Secrets(out)),
        }
    }

    /// The secrets of a secret file or of `RAPTOR_CLUSTER_SECRET`: one per line or separated
    /// by commas, surrounding blanks trimmed; empty entries and lines starting with `#` are
    /// skipped. The first one sends.
    pub fn parse(text: &str) -> Result<Secrets, SecretError> {
        Secrets::new(split(text))
    }

    /// How many are accepted (the first of them also sends).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true for a `Secrets` (at least one is required); for clippy's `len` rule.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The entries of a secret file or of `RAPTOR_CLUSTER_SECRET` (see [`Secrets::parse`]), in
/// order; the one format every reader of secrets shares.
pub fn split(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .flat_map(|l| l.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The keys derived from one list of secrets for one cluster id, first (sending) key first.
pub struct Keys {
    /// Seals and opens gossip datagrams (`gossip_seal`).
    pub(crate) gossip: Vec<XChaCha20Poly1305>,
    /// HMAC keys for the link proof (`link::auth`).
    link: Vec<Zeroizing<[u8; 32]>>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys({} accepted, <redacted>)", self.link.len())
    }
}

/// The two ends of a link prove different things, so a proof can never be echoed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Dialer,
    Acceptor,
}

/// A link proof: HMAC-SHA256 over the session's TLS exporter.
pub type Proof = [u8; 32];

const SALT: &[u8] = b"raptor cluster secret v1";

fn derive(secret: &ClusterSecret, purpose: &[u8], cluster_id: &str) -> Zeroizing<[u8; 32]> {
    let hk = Hkdf::<Sha256>::new(Some(SALT), &secret.0);
    let mut info = Vec::with_capacity(purpose.len() + 1 + cluster_id.len());
    info.extend_from_slice(purpose);
    info.push(0);
    info.extend_from_slice(cluster_id.as_bytes());
    let mut okm = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's 8160-byte output limit: this cannot fail.
    hk.expand(&info, okm.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 length");
    okm
}

fn proof_mac(key: &[u8; 32], role: Role, exporter: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(b"raptor link proof v1\0");
    mac.update(match role {
        Role::Dialer => b"D",
        Role::Acceptor => b"A",
    });
    mac.update(exporter);
    mac
}

impl Keys {
    /// Derives the keys of every secret for `cluster_id`.
    pub fn derive(cluster_id: &str, secrets: &Secrets) -> Keys {
        Keys {
            gossip: secrets
                .0
                .iter()
                .map(|s| {
                    XChaCha20Poly1305::new(derive(s, b"raptor gossip v1", cluster_id)[..].into())
                })
                .collect(),
            link: secrets
                .0
                .iter()
                .map(|s| derive(s, b"raptor link v1", cluster_id))
                .collect(),
        }
    }

    /// This node's proof, as `role`, for the session whose exporter is `exporter`: made with
    /// the first secret.
    pub fn prove(&self, role: Role, exporter: &[u8]) -> Proof {
        proof_mac(&self.link[0], role, exporter)
            .finalize()
            .into_bytes()
            .into()
    }

    /// Whether `proof` is a peer's proof as `role` for this session under any accepted secret
    /// (compared in constant time). Returns the index of the secret that matched.
    pub fn check(&self, role: Role, exporter: &[u8], proof: &[u8]) -> Option<usize> {
        self.link
            .iter()
            .position(|k| proof_mac(k, role, exporter).verify_slice(proof).is_ok())
    }
}

/// The keys in force, replaceable on a running node. Readers take an `Arc` of the current
/// [`Keys`] and keep it for one datagram or one handshake.
pub struct Keyring {
    cluster_id: String,
    /// Plain lock: read once per datagram or handshake on the cluster thread, written only on
    /// a reload; never held across an await.
    current: RwLock<Arc<Keys>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keyring({:?}, {:?})", self.cluster_id, self.keys())
    }
}

impl Keyring {
    pub fn new(cluster_id: &str, secrets: &Secrets) -> Keyring {
        Keyring {
            cluster_id: cluster_id.to_owned(),
            current: RwLock::new(Arc::new(Keys::derive(cluster_id, secrets))),
        }
    }

    /// The keys in force now.
    pub fn keys(&self) -> Arc<Keys> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Puts a new list in force: from the next datagram and the next handshake on.
    pub fn replace(&self, secrets: &Secrets) {
        let keys = Arc::new(Keys::derive(&self.cluster_id, secrets));
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = keys;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdef-secret-a";
    const B: &str = "0123456789abcdef-secret-b";

    #[test]
    fn validation_names_the_problem() {
        assert_eq!(
            Secrets::new(Vec::<String>::new()).unwrap_err(),
            SecretError::Missing
        );
        assert_eq!(
            Secrets::new([A, "short"]).unwrap_err(),
            SecretError::TooShort { index: 1, len: 5 }
        );
        assert!(matches!(
            Secrets::new([A; 5]).unwrap_err(),
            SecretError::TooMany(5)
        ));
        assert_eq!(Secrets::new([A, B]).unwrap().len(), 2);
        let parsed = Secrets::parse(&format!("# rotation\n {B}\n\n{A}, {B}\n")).unwrap();
        assert_eq!(parsed.len(), 3);
        assert_eq!(
            Secrets::parse(" \n# none\n").unwrap_err(),
            SecretError::Missing
        );
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let s = Secrets::new([A]).unwrap();
        let k = Keyring::new("c", &s);
        let text = format!("{s:?} {k:?} {:?}", k.keys());
        assert!(!text.contains("secret-a"), "{text}");
    }

    #[test]
    fn proofs_check_under_any_accepted_secret_and_role() {
        let x = [7u8; 32];
        let old = Keys::derive("c", &Secrets::new([A]).unwrap());
        let both = Keys::derive("c", &Secrets::new([B, A]).unwrap());
        let new = Keys::derive("c", &Secrets::new([B]).unwrap());
        let p = old.prove(Role::Dialer, &x);
        assert_eq!(both.check(Role::Dialer, &x, &p), Some(1));
        assert_eq!(new.check(Role::Dialer, &x, &p), None);
        // Another role, another session or another cluster id: refused.
        assert_eq!(old.check(Role::Acceptor, &x, &p), None);
        assert_eq!(old.check(Role::Dialer, &[8u8; 32], &p), None);
        let other = Keys::derive("d", &Secrets::new([A]).unwrap());
        assert_eq!(other.check(Role::Dialer, &x, &p), None);
        assert_eq!(old.check(Role::Dialer, &x, &p[..31]), None);
    }
}
