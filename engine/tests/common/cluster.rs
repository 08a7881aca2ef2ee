//! Several real nodes as separate processes on 127.0.0.1, and what cluster tests share.

use super::*;
use serde_json::Value;
use std::time::{Duration, Instant};

/// Gossip (UDP) and peer (TCP) ports below the ephemeral range, free right now.
pub fn free_ports(n: usize) -> Vec<(u16, u16)> {
    let mut out = Vec::new();
    while out.len() < n {
        let g = 20_000 + fastrand::u16(0..9_000);
        let p = g + 1;
        let udp = std::net::UdpSocket::bind(("127.0.0.1", g));
        let tcp = std::net::TcpListener::bind(("127.0.0.1", p));
        if udp.is_ok()
            && tcp.is_ok()
            && !out
                .iter()
                .any(|&(a, b)| a == g || b == p || a == p || b == g)
        {
            out.push((g, p));
        }
    }
    out
}

pub struct Cluster {
    pub ports: Vec<(u16, u16)>,
    pub id: String,
    pub nodes: Vec<Option<Server>>,
    /// Config file contents every node starts with ("" for the defaults).
    pub toml: String,
    /// The cluster secret every node gets in `RAPTOR_CLUSTER_SECRET` (random per cluster),
    /// unless `secret_dir` is set.
    pub secret: String,
    /// When set, node `i` reads its secrets from `secret_dir/node-{i}.secrets`
    /// (`--cluster-secret-file`, re-read on SIGHUP) instead; the test writes the files.
    pub secret_dir: Option<std::path::PathBuf>,
    /// When set, node `i`'s stderr goes to `log_dir/node-{i}.log` instead of the test's.
    pub log_dir: Option<std::path::PathBuf>,
}

/// A random cluster secret (32 hex digits).
pub fn random_secret() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

impl Cluster {
    pub fn start(n: usize) -> Cluster {
        Cluster::start_with(n, "")
    }

    pub fn start_with(n: usize, toml: &str) -> Cluster {
        let mut c = Cluster::unstarted(n, toml);
        c.start_all();
        c
    }

    /// The cluster's ports, id and secret, no node started yet (set `secret_dir` or
    /// `log_dir` first, then [`Cluster::start_all`]).
    pub fn unstarted(n: usize, toml: &str) -> Cluster {
        Cluster {
            ports: free_ports(n),
            id: format!("test-{}", fastrand::u32(..)),
            nodes: Vec::new(),
            toml: toml.to_string(),
            secret: random_secret(),
            secret_dir: None,
            log_dir: None,
        }
    }

    /// Starts every node of [`Cluster::unstarted`].
    pub fn start_all(&mut self) {
        let c = self;
        for i in 0..c.ports.len() {
            let s = c.start_node(i);
            c.nodes.push(Some(s));
        }
    }

    /// The secret file of node `i` when `secret_dir` is set.
    pub fn secret_file(&self, i: usize) -> Option<std::path::PathBuf> {
        let dir = self.secret_dir.as_ref()?;
        Some(dir.join(format!("node-{i}.secrets")))
    }

    /// Where node `i`'s stderr goes when `log_dir` is set.
    pub fn log_file(&self, i: usize) -> Option<std::path::PathBuf> {
        Some(self.log_dir.as_ref()?.join(format!("node-{i}.log")))
    }

    /// Starts node `i`; if its ports were taken meanwhile (tests run in parallel), picks new
    /// ones and tries again.
    pub fn start_node(&mut self, i: usize) -> Server {
        for _ in 0..5 {
            match self.try_start_node(i) {
                Ok(s) => return s,
                Err(_) => self.ports[i] = free_ports(1)[0],
            }
        }
        panic!("node {i} could not start");
    }

    pub fn try_start_node(&self, i: usize) -> Result<Server, String> {
        let (g, p) = self.ports[i];
        let seeds: Vec<String> = self
            .ports
            .iter()
            .map(|(g, _)| format!("127.0.0.1:{g}"))
            .collect();
        let node_id = format!("node-{i}");
        let gossip = format!("127.0.0.1:{g}");
        let peer = format!("127.0.0.1:{p}");
        let seeds = seeds.join(",");
        let mut args = vec![
            "--node-id",
            &node_id,
            "--gossip",
            &gossip,
            "--peer",
            &peer,
            "--seeds",
            &seeds,
            "--cluster-id",
            &self.id,
        ];
        let mut opts = StartOpts {
            stderr: self.log_file(i),
            ..StartOpts::default()
        };
        let file = self.secret_file(i).map(|f| f.display().to_string());
        match &file {
            Some(f) => args.extend(["--cluster-secret-file", f]),
            None => opts
                .env
                .push(("RAPTOR_CLUSTER_SECRET".into(), self.secret.clone())),
        }
        Server::try_start_opts(&self.toml, &args, &opts)
    }

    pub fn node(&self, i: usize) -> &Server {
        self.nodes[i].as_ref().unwrap()
    }
}

/// The first `n` channels `{prefix}0`, `{prefix}1`, … that node `owner` owns while nodes
/// 0..3 are live (rendezvous hashing, as the nodes compute it).
pub fn owned_by_n(prefix: &str, owner: usize, n: usize) -> Vec<String> {
    let ids: Vec<raptor_cluster::NodeId> = (0..3)
        .map(|i| raptor_cluster::NodeId::new(&format!("node-{i}")).unwrap())
        .collect();
    (0..100_000)
        .map(|i| format!("{prefix}{i}"))
        .filter(|ch| raptor_cluster::ownership::owner("1", ch, &ids) == Some(&ids[owner]))
        .take(n)
        .collect()
}

/// The first channel `{prefix}N` that node `owner` owns while nodes 0..3 are live.
pub fn owned_by(prefix: &str, owner: usize) -> String {
    owned_by_n(prefix, owner, 1).remove(0)
}

/// Until every one of the `n` nodes sees all `n` live and has a link session to each peer.
pub async fn wait_linked(cl: &Cluster, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    for i in 0..n {
        let mut h = Http::metrics(cl.node(i)).await;
        loop {
            let r = h.request("GET", "/stats", "").await;
            let c = &r.json()["cluster"];
            // `joining` 0: the node takes publishes (it met its cluster).
            if c["live_nodes"] == n
                && c["sessions_up"].as_u64() >= Some(n as u64 - 1)
                && c["joining"] == 0
            {
                break;
            }
            assert!(Instant::now() < deadline, "node {i}: {}", r.body);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Publishes probes on node `from` until `c` (on another node) receives one: the cluster has
/// converged for this channel. Returns the probes' count seen so callers can skip them.
pub async fn wait_routed(h: &mut Http, c: &mut Client, channel: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        assert!(
            Instant::now() < deadline,
            "cluster did not route {channel} within 15 s"
        );
        h.publish(channel, "probe", "p").await;
        if let Some(t) = c.recv_text_within(Duration::from_millis(300)).await {
            if t.contains("probe") {
                // Drain further probes still in flight.
                while c
                    .recv_text_within(Duration::from_millis(300))
                    .await
                    .is_some()
                {}
                return;
            }
        }
    }
}
/// Collects the member ids a presence client believes in, from subscription_succeeded
/// and member events, until `want` members are seen or the deadline passes.
pub async fn members_until(
    c: &mut Client,
    set: &mut std::collections::BTreeSet<String>,
    want: usize,
    within: Duration,
) {
    let deadline = Instant::now() + within;
    while set.len() != want && Instant::now() < deadline {
        let Some(t) = c.recv_text_within(Duration::from_millis(200)).await else {
            continue;
        };
        let v: Value = serde_json::from_str(&t).unwrap();
        let d: Value =
            serde_json::from_str(v["data"].as_str().unwrap_or("{}")).unwrap_or(Value::Null);
        match v["event"].as_str().unwrap() {
            "pusher_internal:member_added" => assert!(
                set.insert(d["user_id"].as_str().unwrap().to_string()),
                "duplicate add: {t}"
            ),
            "pusher_internal:member_removed" => assert!(
                set.remove(d["user_id"].as_str().unwrap()),
                "remove of absent: {t}"
            ),
            _ => {}
        }
    }
}
/// A webhook receiver on 127.0.0.1 that answers 200 and passes on every event, as JSON.
pub fn webhook_events() -> (String, std::sync::mpsc::Receiver<Value>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let tx = tx.clone();
            std::thread::spawn(move || loop {
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut len = 0usize;
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                let v: Value = serde_json::from_slice(&body).unwrap();
                for e in v["events"].as_array().unwrap() {
                    let _ = tx.send(e.clone());
                }
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                    .unwrap();
            });
        }
    });
    (url, rx)
}

/// [`webhook_events`] reduced to each event's name and channel.
pub fn webhook_receiver() -> (String, std::sync::mpsc::Receiver<(String, String)>) {
    let (url, events) = webhook_events();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for e in events {
            let name = e["name"].as_str().unwrap().to_string();
            let channel = e["channel"].as_str().unwrap().to_string();
            if tx.send((name, channel)).is_err() {
                return;
            }
        }
    });
    (url, rx)
}
