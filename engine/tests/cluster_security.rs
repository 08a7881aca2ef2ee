//! Cluster security (issue 20, ADR 0007) with real processes on 127.0.0.1: a cluster node
//! needs a secret to start; a stranger (a node with another secret, a plaintext gossip
//! datagram, a plaintext `Hello` on the peer port) cannot join, read or inject, and what it
//! sends costs the log a bounded number of lines; and what crosses between nodes is not
//! readable on the wire.

mod common;
use common::cluster::*;
use common::*;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Mutex;

fn scratch_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "raptor-{name}-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

async fn stats(s: &Server) -> Value {
    let mut h = Http::metrics(s).await;
    h.request("GET", "/stats", "").await.json()["cluster"].clone()
}

/// Log lines at WARN or above in a captured stderr.
fn warnings(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .map(String::from)
        .collect()
}

/// A plaintext chitchat V0 `Syn` with an empty digest (what a node without a secret, or of
/// an older release, would send): magic 45139, version 0, type 0, no nodes, the cluster id.
fn plaintext_syn(cluster_id: &str) -> Vec<u8> {
    let mut d = vec![0x53, 0xb0, 0, 0, 0, 0];
    d.extend_from_slice(&(cluster_id.len() as u16).to_le_bytes());
    d.extend_from_slice(cluster_id.as_bytes());
    d
}

fn plaintext_hello(cluster_id: &str) -> Vec<u8> {
    raptor_cluster::runtime::encode(&raptor_cluster::wire::NodeMsg::Hello {
        cluster_id: cluster_id.into(),
        node_id: "node-9".into(),
        generation: 1,
    })
    .unwrap()
    .to_vec()
}

#[test]
fn a_cluster_node_without_a_strong_secret_does_not_start() {
    let ports = free_ports(1);
    let (g, p) = ports[0];
    let run = |secret: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_raptor"));
        cmd.args(["serve", "--bind", "127.0.0.1:0", "--metrics-bind", "off"])
            .args(["--node-id", "n1", "--gossip", &format!("127.0.0.1:{g}")])
            .args(["--peer", &format!("127.0.0.1:{p}")])
            .env_remove("RAPTOR_CLUSTER_SECRET")
            .env_remove("RAPTOR_CLUSTER_SECRET_FILE")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        if let Some(s) = secret {
            cmd.env("RAPTOR_CLUSTER_SECRET", s);
        }
        let mut child = cmd.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("a cluster node started without a usable secret");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        (status.code(), err)
    };
    let (code, err) = run(None);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("cluster.secrets") && err.contains("RAPTOR_CLUSTER_SECRET"),
        "{err}"
    );
    let (code, err) = run(Some("too-short"));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("cluster.secrets[0]") && err.contains("16"),
        "{err}"
    );
    assert!(
        !err.contains("too-short"),
        "the secret is never shown: {err}"
    );
}

/// A fourth process with another secret, a plaintext chitchat datagram and plaintext
/// `Hello`s on the peer port: none of them joins, learns a channel or member, or gets an
/// event in or out, and each node logs a few lines about them, not one per attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_cannot_join_read_inject_or_flood_the_log() {
    let dir = scratch_dir("intruders");
    let mut cl = Cluster::unstarted(3, "");
    cl.log_dir = Some(dir.clone());
    cl.start_all();
    wait_linked(&cl, 3).await;

    // The cluster at work: a subscriber of `vitals` on every node, a member on node 1.
    let mut subs = Vec::new();
    let mut h0 = Http::connect(cl.node(0)).await;
    for i in 0..3 {
        let mut c = Client::connect(cl.node(i)).await;
        c.subscribe("vitals").await;
        wait_routed(&mut h0, &mut c, "vitals").await;
        subs.push(c);
    }
    let mut nurse = Client::connect(cl.node(1)).await;
    nurse.join("presence-ward", r#"{"user_id":"nurse"}"#).await;

    // The intruder: a whole node with the cluster's id and seeds, but another secret.
    let seeds: Vec<String> = cl
        .ports
        .iter()
        .map(|(g, _)| format!("127.0.0.1:{g}"))
        .collect();
    let (ig, ip) = free_ports(1)[0];
    let intruder_log = dir.join("intruder.log");
    let (gossip, peer, seeds) = (
        format!("127.0.0.1:{ig}"),
        format!("127.0.0.1:{ip}"),
        seeds.join(","),
    );
    let intruder = Server::try_start_opts(
        "",
        &[
            "--node-id",
            "node-9",
            "--gossip",
            &gossip,
            "--peer",
            &peer,
            "--seeds",
            &seeds,
            "--cluster-id",
            &cl.id,
        ],
        &StartOpts {
            env: vec![("RAPTOR_CLUSTER_SECRET".into(), random_secret())],
            stderr: Some(intruder_log.clone()),
        },
    )
    .expect("the intruder starts (it has a secret, just not this cluster's)");
    let intruder_started = std::time::Instant::now();
    let mut spy = Client::connect(&intruder).await;
    spy.subscribe("vitals").await;
    spy.subscribe("intruder-only").await;
    let mut mallory = Client::connect(&intruder).await;
    let seen = mallory
        .join("presence-ward", r#"{"user_id":"mallory"}"#)
        .await;
    assert_eq!(seen["ids"], serde_json::json!(["mallory"]), "{seen}");

    // For 5 s: plaintext gossip to every node, plaintext `Hello`s to every peer port, and
    // events published on both sides.
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let syn = plaintext_syn(&cl.id);
    let hello = plaintext_hello(&cl.id);
    let mut hi = Http::connect(&intruder).await;
    let t0 = Instant::now();
    let mut round = 0;
    let mut published = 0;
    while t0.elapsed() < Duration::from_secs(5) {
        for &(g, p) in &cl.ports {
            udp.send_to(&syn, ("127.0.0.1", g)).await.unwrap();
            if round % 5 == 0 {
                let mut raw = TcpStream::connect(("127.0.0.1", p)).await.unwrap();
                raw.write_all(&hello).await.unwrap();
                let mut back = Vec::new();
                let _ = tokio::time::timeout(Duration::from_secs(3), raw.read_to_end(&mut back))
                    .await
                    .expect("the peer port closes a plaintext Hello at once");
                assert!(
                    !back.windows(4).any(|w| w == b"RPTR"),
                    "no frame comes back: {back:02x?}"
                );
                assert!(
                    back.is_empty() || back[0] == 0x15,
                    "at most a TLS alert: {back:02x?}"
                );
            }
        }
        if round % 10 == 0 {
            let r = h0
                .publish("vitals", "reading", &format!("cluster-{round}"))
                .await;
            assert_eq!(r.status, 200);
            published += 1;
            let r = hi
                .publish("vitals", "reading", &format!("forged-{round}"))
                .await;
            // Its seeds never answer it: for JOIN_WAIT (3 s) it refuses publishes as a node
            // that has not met its cluster yet, then serves its own clients alone.
            let joining = intruder_started.elapsed() < Duration::from_millis(3500);
            assert!(
                r.status == 200 || (joining && r.status == 503),
                "the intruder serves its own clients alone: {} {}",
                r.status,
                r.body
            );
        }
        round += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut buf = [0u8; 2048];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), udp.recv_from(&mut buf))
            .await
            .is_err(),
        "no node answers a plaintext datagram"
    );

    // Cluster subscribers got the cluster's events and none of the intruder's; the intruder's
    // subscriber got only what its own node published.
    for c in subs.iter_mut() {
        let mut got = Vec::new();
        while let Some(t) = c.recv_text_within(Duration::from_millis(500)).await {
            got.push(t);
        }
        assert!(got.iter().all(|t| !t.contains("forged")), "{got:?}");
        let n = got.iter().filter(|t| t.contains("cluster-")).count();
        assert_eq!(n, published, "{got:?}");
    }
    let mut spied = Vec::new();
    while let Some(t) = spy.recv_text_within(Duration::from_millis(500)).await {
        spied.push(t);
    }
    assert!(spied.iter().all(|t| !t.contains("cluster-")), "{spied:?}");
    assert!(!nurse_saw_mallory(&mut nurse).await);

    // Membership: three everywhere, the intruder alone.
    for i in 0..3 {
        let c = stats(cl.node(i)).await;
        assert_eq!(c["live_nodes"], 3, "node {i}: {c}");
        assert!(
            c["gossip_rejected"].as_u64().unwrap() >= 20,
            "node {i}: {c}"
        );
        assert!(
            c["handshakes_refused"].as_u64().unwrap() >= 5,
            "node {i}: {c}"
        );
    }
    let c = stats(&intruder).await;
    assert!(c["live_nodes"].as_u64().unwrap() <= 1, "intruder: {c}");
    assert_eq!(c["sessions_up"], 0, "intruder: {c}");

    // Cluster-wide queries never mention it.
    let r = h0.signed("GET", "/apps/1/channels", &[], "").await;
    assert!(!r.body.contains("intruder-only"), "{}", r.body);
    assert!(r.body.contains("vitals"), "{}", r.body);
    let r = h0
        .signed("GET", "/apps/1/channels/presence-ward/users", &[], "")
        .await;
    assert_eq!(
        r.json()["users"],
        serde_json::json!([{"id": "nurse"}]),
        "{}",
        r.body
    );

    // A few warnings per node for hundreds of refusals, and they say how many were quiet.
    for i in 0..3 {
        let w = warnings(&cl.log_file(i).unwrap());
        let refused: Vec<&String> = w.iter().filter(|l| l.contains("refused")).collect();
        assert!(!refused.is_empty(), "node {i} logged no refusal");
        assert!(w.len() <= 8, "node {i} logged {} warnings: {w:#?}", w.len());
        eprintln!("node {i}: {} warning lines: {w:#?}", w.len());
    }
    let w = warnings(&intruder_log);
    assert!(w.len() <= 8, "intruder logged {} warnings: {w:#?}", w.len());
    let _ = std::fs::remove_dir_all(&dir);
}

async fn nurse_saw_mallory(c: &mut Client) -> bool {
    let mut saw = false;
    while let Some(t) = c.recv_text_within(Duration::from_millis(300)).await {
        saw |= t.contains("mallory");
    }
    saw
}

/// Records everything that crosses it, both ways.
struct Tap {
    /// Dialer → acceptor, and back.
    up: Arc<Mutex<Vec<u8>>>,
    down: Arc<Mutex<Vec<u8>>>,
}

/// A TCP proxy on `listener` to `target` that keeps a copy of the bytes.
fn tap(listener: TcpListener, target: u16) -> Tap {
    let up = Arc::new(Mutex::new(Vec::new()));
    let down = Arc::new(Mutex::new(Vec::new()));
    let (u, d) = (up.clone(), down.clone());
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
                continue;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(pipe(cr, sw, u.clone()));
            tokio::spawn(pipe(sr, cw, d.clone()));
        }
    });
    Tap { up, down }
}

async fn pipe(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    seen: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        seen.lock().await.extend_from_slice(&buf[..n]);
        if w.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Two nodes; node-0 dials node-1 through a recording proxy (node-1 advertises the proxy),
/// and node-0 gossips to a seed address the test listens on. An event crosses (the proxy
/// is the only way between them), yet neither its payload nor a node or cluster id is in
/// the recorded bytes; the stream starts with a TLS record, and the gossip datagrams are
/// sealed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_between_nodes_is_not_readable_on_the_wire() {
    let ports = free_ports(2);
    let id = format!("wire-check-{}", fastrand::u32(..));
    let secret = random_secret();
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_port = proxy.local_addr().unwrap().port();
    let taps = tap(proxy, ports[1].1);
    let listener = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let listener_addr = listener.local_addr().unwrap();
    let mut seeds: Vec<String> = ports
        .iter()
        .map(|(g, _)| format!("127.0.0.1:{g}"))
        .collect();
    let node = |i: usize, seeds: &[String]| {
        let (g, p) = ports[i];
        let mut toml = format!(
            "[cluster]\nnode_id = \"node-{i}\"\ncluster_id = \"{id}\"\ngossip = \"127.0.0.1:{g}\"\npeer = \"127.0.0.1:{p}\"\nseeds = {seeds:?}\nsecrets = [\"{secret}\"]\n"
        );
        if i == 1 {
            toml.push_str(&format!("advertise_peer = \"127.0.0.1:{proxy_port}\"\n"));
        }
        Server::try_start_opts(&toml, &[], &StartOpts::default()).expect("node starts")
    };
    let n1 = node(1, &seeds);
    seeds.push(listener_addr.to_string());
    let n0 = node(0, &seeds);
    let cl = [n0, n1];

    let mut sub = Client::connect(&cl[1]).await;
    sub.subscribe("wire-check").await;
    let mut h = Http::connect(&cl[0]).await;
    wait_routed(&mut h, &mut sub, "wire-check").await;
    let canary = format!("CANARY-{:016x}", fastrand::u64(..));
    for _ in 0..3 {
        assert_eq!(
            h.publish("wire-check", "reading", &canary).await.status,
            200
        );
    }
    for _ in 0..3 {
        let t = sub.recv_text().await;
        assert!(t.contains(&canary), "{t}");
    }
    let up = taps.up.lock().await.clone();
    let down = taps.down.lock().await.clone();
    assert!(
        up.len() > 100 && down.len() > 100,
        "{} {}",
        up.len(),
        down.len()
    );
    assert_eq!(
        &up[..2],
        &[0x16, 0x03],
        "the dialer starts with a TLS handshake record"
    );
    assert_eq!(&down[..2], &[0x16, 0x03], "the acceptor answers with one");
    for (what, bytes) in [("dialer", &up), ("acceptor", &down)] {
        for secret_text in [
            canary.as_str(),
            "node-0",
            "node-1",
            id.as_str(),
            "wire-check",
            "RPTR",
        ] {
            assert!(
                !contains(bytes, secret_text),
                "{what} sent {secret_text:?} in clear"
            );
        }
    }

    // Gossip node-0 sends to the seed we listen on.
    let mut buf = vec![0u8; 70_000];
    let (n, _) = tokio::time::timeout(Duration::from_secs(15), listener.recv_from(&mut buf))
        .await
        .expect("node-0 gossips to every seed in time")
        .unwrap();
    let d = &buf[..n];
    assert_eq!(d[0], 1, "sealed datagram version");
    assert!(n > 41, "{n}");
    for clear in [id.as_str(), "node-0", "node-1", "peer_addr", "127.0.0.1"] {
        assert!(!contains(d, clear), "gossip carried {clear:?} in clear");
    }
}
