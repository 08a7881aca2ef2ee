//! Three real nodes as separate processes on 127.0.0.1: cross-node fanout in order, one
//! cluster-wide presence view, a killed node's members removed within 3 s, a restarted node
//! rejoining without duplicates, and a graceful leave.

mod common;
use common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

/// Gossip (UDP) and peer (TCP) ports below the ephemeral range, free right now.
fn free_ports(n: usize) -> Vec<(u16, u16)> {
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

struct Cluster {
    ports: Vec<(u16, u16)>,
    id: String,
    nodes: Vec<Option<Server>>,
    /// Config file contents every node starts with ("" for the defaults).
    toml: String,
}

impl Cluster {
    fn start(n: usize) -> Cluster {
        Cluster::start_with(n, "")
    }

    fn start_with(n: usize, toml: &str) -> Cluster {
        let ports = free_ports(n);
        let id = format!("test-{}", fastrand::u32(..));
        let mut c = Cluster {
            ports,
            id,
            nodes: Vec::new(),
            toml: toml.to_string(),
        };
        for i in 0..n {
            let s = c.start_node(i);
            c.nodes.push(Some(s));
        }
        c
    }

    /// Starts node `i`; if its ports were taken meanwhile (tests run in parallel), picks new
    /// ones and tries again.
    fn start_node(&mut self, i: usize) -> Server {
        for _ in 0..5 {
            match self.try_start_node(i) {
                Ok(s) => return s,
                Err(_) => self.ports[i] = free_ports(1)[0],
            }
        }
        panic!("node {i} could not start");
    }

    fn try_start_node(&self, i: usize) -> Result<Server, String> {
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
        Server::try_start_args(
            &self.toml,
            &[
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
            ],
        )
    }

    fn node(&self, i: usize) -> &Server {
        self.nodes[i].as_ref().unwrap()
    }
}

/// Publishes probes on node `from` until `c` (on another node) receives one: the cluster has
/// converged for this channel. Returns the probes' count seen so callers can skip them.
async fn wait_routed(h: &mut Http, c: &mut Client, channel: &str) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_on_one_node_reaches_every_node_in_order() {
    let cl = Cluster::start(3);
    let mut subs = Vec::new();
    for i in 0..3 {
        for _ in 0..3 {
            let mut c = Client::connect(cl.node(i)).await;
            c.subscribe("orders").await;
            subs.push(c);
        }
    }
    let mut h = Http::connect(cl.node(0)).await;
    for c in subs.iter_mut() {
        wait_routed(&mut h, c, "orders").await;
    }
    for c in subs.iter_mut() {
        while c
            .recv_text_within(Duration::from_millis(100))
            .await
            .is_some()
        {}
    }
    const N: usize = 300;
    for i in 0..N {
        assert_eq!(h.publish("orders", "seq", &i.to_string()).await.status, 200);
    }
    for c in subs.iter_mut() {
        for i in 0..N {
            assert_eq!(
                c.recv_text().await,
                format!(r#"{{"event":"seq","channel":"orders","data":"{i}"}}"#)
            );
        }
    }
    // Publishing on another node reaches everyone too, in that node's order.
    let mut h2 = Http::connect(cl.node(2)).await;
    for i in 0..50 {
        h2.publish("orders", "seq2", &i.to_string()).await;
    }
    for c in subs.iter_mut() {
        for i in 0..50 {
            assert_eq!(
                c.recv_text().await,
                format!(r#"{{"event":"seq2","channel":"orders","data":"{i}"}}"#)
            );
        }
    }
}

/// Collects the member ids a presence client believes in, from subscription_succeeded
/// and member events, until `want` members are seen or the deadline passes.
async fn members_until(
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_one_view_and_dead_nodes_leave_within_3s() {
    let mut cl = Cluster::start(3);
    // Let membership converge before joining (ownership settles).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut clients = Vec::new();
    let mut views = Vec::new();
    for (i, user) in ["alice", "bob", "carol"].iter().enumerate() {
        let mut c = Client::connect(cl.node(i)).await;
        let p = c
            .join("presence-room", &format!(r#"{{"user_id":"{user}"}}"#))
            .await;
        let set: std::collections::BTreeSet<String> = p["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        clients.push(c);
        views.push(set);
    }
    for (c, set) in clients.iter_mut().zip(views.iter_mut()) {
        members_until(c, set, 3, Duration::from_secs(10)).await;
    }
    let all: std::collections::BTreeSet<String> = ["alice", "bob", "carol"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for v in &views {
        assert_eq!(v, &all, "every node shows the same members");
    }
    // The HTTP API answers with the cluster-wide members on every node.
    for i in 0..3 {
        let mut h = Http::connect(cl.node(i)).await;
        let r = h
            .signed("GET", "/apps/1/channels/presence-room/users", &[], "")
            .await;
        let ids: std::collections::BTreeSet<String> = r.json()["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids, all, "node {i}: {}", r.body);
        let r = h
            .signed(
                "GET",
                "/apps/1/channels/presence-room",
                &[("info", "user_count")],
                "",
            )
            .await;
        assert_eq!(r.json()["user_count"], 3, "node {i}: {}", r.body);
    }

    // kill -9 node 2: alice and bob see carol removed, once, within 3 s.
    let t0 = Instant::now();
    let mut dead = cl.nodes[2].take().unwrap();
    dead.child.kill().unwrap();
    let _ = dead.child.wait();
    for i in 0..2 {
        members_until(&mut clients[i], &mut views[i], 2, Duration::from_secs(3)).await;
        assert!(
            !views[i].contains("carol"),
            "node {i} still shows carol after {:?}",
            t0.elapsed()
        );
    }
    assert!(
        t0.elapsed() < Duration::from_millis(3500),
        "removal took {:?}",
        t0.elapsed()
    );
    for c in clients.iter_mut().take(2) {
        if let Some(t) = c.recv_text_within(Duration::from_millis(500)).await {
            panic!("nothing more expected, got {t}");
        }
    }

    // Restart it (new generation); carol rejoins there: added once, no ghosts.
    cl.nodes[2] = Some(cl.start_node(2));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut carol = Client::connect(cl.node(2)).await;
    let p = carol.join("presence-room", r#"{"user_id":"carol"}"#).await;
    let mut carol_view: std::collections::BTreeSet<String> = p["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    members_until(&mut carol, &mut carol_view, 3, Duration::from_secs(10)).await;
    assert_eq!(carol_view, all);
    for i in 0..2 {
        members_until(&mut clients[i], &mut views[i], 3, Duration::from_secs(10)).await;
        assert_eq!(views[i], all);
    }
    drop(clients);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_leaves_gracefully_with_4200() {
    let cl = Cluster::start(2);
    let mut c = Client::connect(cl.node(1)).await;
    c.subscribe("x").await;
    unsafe { libc::kill(cl.node(1).pid() as i32, libc::SIGTERM) };
    assert_eq!(c.expect_close().await, 4200);
    // The other node keeps serving.
    let mut d = Client::connect(cl.node(0)).await;
    d.subscribe("x").await;
}

/// A webhook receiver on 127.0.0.1 that answers 200 and keeps every event name + channel.
fn webhook_receiver() -> (String, std::sync::mpsc::Receiver<(String, String)>) {
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
                    let _ = tx.send((
                        e["name"].as_str().unwrap().to_string(),
                        e["channel"].as_str().unwrap().to_string(),
                    ));
                }
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                    .unwrap();
            });
        }
    });
    (url, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn occupancy_webhooks_fire_once_across_nodes() {
    let (url, hooks) = webhook_receiver();
    let toml = format!(
        "[[apps]]\nid = \"1\"\nkey = \"app-key\"\nsecret = \"app-secret\"\n[[apps.webhooks]]\nurl = \"{url}\"\nevent_types = [\"channel_occupied\", \"channel_vacated\"]\n"
    );
    let cl = Cluster::start_with(3, &toml);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut a = Client::connect(cl.node(1)).await;
    a.subscribe("shared").await;
    let mut b = Client::connect(cl.node(2)).await;
    b.subscribe("shared").await;
    let mut c = Client::connect(cl.node(2)).await;
    c.subscribe("shared").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop((a, b, c));
    // vacated is held 3 s by the debounce.
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(8);
    while Instant::now() < deadline {
        if let Ok(ev) = hooks.recv_timeout(Duration::from_millis(200)) {
            got.push(ev);
        }
    }
    let got: Vec<_> = got
        .into_iter()
        .filter(|(_, ch)| ch == "shared")
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        got,
        vec![
            "channel_occupied".to_string(),
            "channel_vacated".to_string()
        ]
    );
}
