//! `[cluster]`: this node's identity, addresses, seeds and secrets, with the cluster flags
//! and environment variables.

use super::{invalid, Config, ConfigError, Overrides, Secret};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Cluster membership and data-plane addresses of this node.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    /// Unique name of this node in the cluster.
    pub node_id: String,
    /// Keeps two clusters on one network apart. Default `raptor`.
    #[serde(default = "default_cluster_id")]
    pub cluster_id: String,
    /// UDP address for gossip.
    pub gossip: SocketAddr,
    /// Gossip addresses of other nodes (`host:port`); any subset is enough.
    #[serde(default)]
    pub seeds: Vec<String>,
    /// TCP address for node-to-node messages.
    pub peer: SocketAddr,
    /// What a node must know to join the cluster (docs/cluster.md, "Security"): the first
    /// secret seals this node's gossip and proves it on its links; every one listed is
    /// accepted from other nodes (two during a rotation). 1 to 4, each at least 16 bytes (e.g.
    /// `openssl rand -base64 32`). Also `RAPTOR_CLUSTER_SECRET` (comma-separated). Never
    /// logged. Required, here or in `secret_file`: a cluster node without one does not start.
    #[serde(default, skip_serializing)]
    pub secrets: Vec<Secret>,
    /// A file holding the secrets instead, one per line (the first sends; `#` comments),
    /// re-read on SIGHUP so a rotation needs no restart. Not together with `secrets`. Also
    /// `--cluster-secret-file` or `RAPTOR_CLUSTER_SECRET_FILE`.
    #[serde(default)]
    pub secret_file: Option<std::path::PathBuf>,
    /// The data-plane address other nodes dial, when `peer` is a wildcard (`0.0.0.0:7947`) or
    /// behind NAT. Default: `peer` as bound.
    #[serde(default)]
    pub advertise_peer: Option<SocketAddr>,
    /// The gossip address other nodes send to, when `gossip` is a wildcard or behind NAT.
    /// Default: `gossip`.
    #[serde(default)]
    pub advertise_gossip: Option<SocketAddr>,
    /// How long a channel query (`GET /apps/{id}/channels[/{name}]`) waits for the other
    /// nodes' answers before answering with those that arrived. Default 1000 ms; longer
    /// holds an HTTP request longer when a peer is slow or gone, shorter gives partial
    /// answers sooner. 1..=4000 (the HTTP handler gives up on its gateway after 5 s).
    #[serde(default = "default_query_timeout_ms")]
    pub query_timeout_ms: u64,
}

fn default_query_timeout_ms() -> u64 {
    1000
}

impl ClusterSettings {
    /// The secrets in force: `secret_file`'s (read now: at start, and again on SIGHUP) or
    /// `secrets`, checked (1 to 4, each 16 to 1024 bytes). The error names the field and says
    /// how to set one; it never quotes a secret.
    pub fn load_secrets(&self) -> Result<Vec<Secret>, ConfigError> {
        use raptor_cluster::secret::{MAX_SECRETS, MAX_SECRET_BYTES, MIN_SECRET_BYTES};
        let (field, list) = match &self.secret_file {
            Some(_) if !self.secrets.is_empty() => {
                return Err(invalid(
                    "cluster.secret_file",
                    "set cluster.secrets or cluster.secret_file, not both",
                ))
            }
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    invalid(
                        "cluster.secret_file",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                let list: Vec<Secret> = raptor_cluster::secret::split(&text)
                    .map(Secret::new)
                    .collect();
                ("cluster.secret_file", list)
            }
            None => ("cluster.secrets", self.secrets.clone()),
        };
        if list.is_empty() {
            return Err(invalid(
                field,
                "a cluster node needs a secret, so that no one else can join it: set \
                 RAPTOR_CLUSTER_SECRET, --cluster-secret-file or [cluster] secrets \
                 (e.g. `openssl rand -base64 32`)",
            ));
        }
        if list.len() > MAX_SECRETS {
            return Err(invalid(
                field,
                format!("at most {MAX_SECRETS} secrets are accepted at once"),
            ));
        }
        for (i, s) in list.iter().enumerate() {
            let len = s.expose().len();
            if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&len) {
                return Err(invalid(
                    format!("{field}[{i}]"),
                    format!(
                        "is {len} bytes; a secret needs {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} \
                         (e.g. `openssl rand -base64 32`)"
                    ),
                ));
            }
        }
        Ok(list)
    }
}

fn default_cluster_id() -> String {
    "raptor".into()
}

impl Config {
    /// The cluster secret from the environment or `--cluster-secret-file`, for a cluster node
    /// (a single node has no use for one and ignores them).
    pub(super) fn apply_secret_overrides(&mut self, over: &Overrides) {
        let Some(c) = &mut self.cluster else { return };
        if let Some(s) = &over.cluster_secret {
            c.secrets = raptor_cluster::secret::split(s.expose())
                .map(Secret::new)
                .collect();
            c.secret_file = None;
        }
        if let Some(f) = &over.cluster_secret_file {
            c.secret_file = Some(f.into());
            c.secrets.clear();
        }
    }

    /// Cluster flags: `--node-id` turns clustering on; the others fill or override the
    /// `[cluster]` table.
    pub(super) fn apply_cluster_overrides(&mut self, over: &Overrides) -> Result<(), ConfigError> {
        let any = over.node_id.is_some()
            || over.gossip.is_some()
            || over.seeds.is_some()
            || over.peer.is_some();
        if !any && over.cluster_id.is_none() {
            return Ok(());
        }
        let addr = |field: &str, v: &str| -> Result<SocketAddr, ConfigError> {
            v.parse().map_err(|_| {
                invalid(
                    field,
                    format!("`{v}` is not an address like 127.0.0.1:7946"),
                )
            })
        };
        let mut c = match self.cluster.take() {
            Some(c) => c,
            None => {
                let node_id = over.node_id.clone().ok_or_else(|| {
                    invalid(
                        "cluster.node_id",
                        "--node-id is required to run in a cluster",
                    )
                })?;
                let gossip = over.gossip.as_deref().ok_or_else(|| {
                    invalid("cluster.gossip", "--gossip is required to run in a cluster")
                })?;
                let peer = over.peer.as_deref().ok_or_else(|| {
                    invalid("cluster.peer", "--peer is required to run in a cluster")
                })?;
                ClusterSettings {
                    node_id,
                    cluster_id: default_cluster_id(),
                    gossip: addr("cluster.gossip", gossip)?,
                    seeds: Vec::new(),
                    peer: addr("cluster.peer", peer)?,
                    secrets: Vec::new(),
                    secret_file: None,
                    advertise_peer: None,
                    advertise_gossip: None,
                    query_timeout_ms: default_query_timeout_ms(),
                }
            }
        };
        if let Some(n) = &over.node_id {
            c.node_id = n.clone();
        }
        if let Some(g) = &over.gossip {
            c.gossip = addr("cluster.gossip", g)?;
        }
        if let Some(p) = &over.peer {
            c.peer = addr("cluster.peer", p)?;
        }
        if let Some(s) = &over.seeds {
            c.seeds = s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
        }
        if let Some(id) = &over.cluster_id {
            c.cluster_id = id.clone();
        }
        self.cluster = Some(c);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;

    #[test]
    fn cluster_flags() {
        let over = Overrides {
            node_id: Some("n1".into()),
            gossip: Some("127.0.0.1:7946".into()),
            peer: Some("127.0.0.1:7947".into()),
            seeds: Some("127.0.0.1:7956, 127.0.0.1:7966".into()),
            cluster_secret: Some(Secret::new(TEST_CLUSTER_SECRET)),
            ..Overrides::default()
        };
        let c = Config::load(None, &over).unwrap().cluster.unwrap();
        assert_eq!(
            (c.node_id.as_str(), c.cluster_id.as_str(), c.seeds.len()),
            ("n1", "raptor", 2)
        );
        let e = Config::load(
            None,
            &Overrides {
                node_id: Some("n1".into()),
                ..Overrides::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("cluster.gossip"), "{e}");
        let c = Config::from_toml(
            "[cluster]\nnode_id = \"a\"\ngossip = \"127.0.0.1:1\"\npeer = \"127.0.0.1:2\"\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.cluster.unwrap().node_id, "a");
    }

    const TEST_CLUSTER_SECRET: &str = "config-test-cluster-secret";

    /// A cluster node refuses to start without a secret, or with a weak one, naming the field
    /// and never quoting the secret; the environment replaces the file's list; a secret file
    /// is read one secret per line.
    #[test]
    fn cluster_secrets_are_required_and_checked() {
        let node = || Overrides {
            node_id: Some("n1".into()),
            gossip: Some("127.0.0.1:7946".into()),
            peer: Some("127.0.0.1:7947".into()),
            ..Overrides::default()
        };
        let e = Config::load(None, &node()).unwrap_err().to_string();
        assert!(
            e.contains("cluster.secrets") && e.contains("RAPTOR_CLUSTER_SECRET"),
            "{e}"
        );
        let weak = Overrides {
            cluster_secret: Some(Secret::new("hunter2-is-weak")),
            ..node()
        };
        let e = Config::load(None, &weak).unwrap_err().to_string();
        assert!(
            e.contains("cluster.secrets[0]") && !e.contains("hunter2"),
            "{e}"
        );
        let two = Overrides {
            cluster_secret: Some(Secret::new(format!(
                "{TEST_CLUSTER_SECRET}-new, {TEST_CLUSTER_SECRET}"
            ))),
            ..node()
        };
        let c = Config::load(None, &two).unwrap().cluster.unwrap();
        assert_eq!(c.load_secrets().unwrap().len(), 2);
        assert!(!format!("{c:?}").contains(TEST_CLUSTER_SECRET), "{c:?}");
        // A single node ignores a secret in its environment.
        let single = Overrides {
            cluster_secret: Some(Secret::new("short")),
            ..Overrides::default()
        };
        assert!(Config::load(None, &single).unwrap().cluster.is_none());
        let file = std::env::temp_dir().join(format!("raptor-secrets-{}", std::process::id()));
        std::fs::write(
            &file,
            format!("# current first\n{TEST_CLUSTER_SECRET}-b\n{TEST_CLUSTER_SECRET}\n"),
        )
        .unwrap();
        let from_file = Overrides {
            cluster_secret_file: Some(file.display().to_string()),
            ..two
        };
        let c = Config::load(None, &from_file).unwrap().cluster.unwrap();
        let list = c.load_secrets().unwrap();
        std::fs::remove_file(&file).unwrap();
        assert_eq!(list[0].expose(), format!("{TEST_CLUSTER_SECRET}-b"));
        let e = Config::from_toml(
            "[cluster]\nnode_id = \"a\"\ngossip = \"127.0.0.1:1\"\npeer = \"127.0.0.1:2\"\nsecrets = [\"0123456789abcdef\"]\nsecret_file = \"/x\"\n",
            "t",
        )
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("not both"), "{e}");
    }

    #[test]
    fn cluster_query_timeout() {
        let over = Overrides {
            node_id: Some("n1".into()),
            gossip: Some("127.0.0.1:7946".into()),
            peer: Some("127.0.0.1:7947".into()),
            cluster_secret: Some(Secret::new(TEST_CLUSTER_SECRET)),
            ..Overrides::default()
        };
        let mut cfg = Config::load(None, &over).unwrap();
        assert_eq!(cfg.cluster.as_ref().unwrap().query_timeout_ms, 1000);
        for (ms, ok) in [(0, false), (1, true), (4000, true), (4001, false)] {
            cfg.cluster.as_mut().unwrap().query_timeout_ms = ms;
            match cfg.validate() {
                Ok(()) => assert!(ok, "{ms} accepted"),
                Err(e) => {
                    assert!(!ok, "{ms} refused: {e}");
                    assert!(e.to_string().contains("cluster.query_timeout_ms"), "{e}");
                }
            }
        }
        let c = Config::from_toml(
            "[cluster]\nnode_id = \"a\"\ngossip = \"127.0.0.1:1\"\npeer = \"127.0.0.1:2\"\nquery_timeout_ms = 250\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.cluster.unwrap().query_timeout_ms, 250);
    }
}
