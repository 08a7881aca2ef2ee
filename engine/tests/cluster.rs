//! Three real nodes as separate processes on 127.0.0.1: cross-node fanout in order, one
//! cluster-wide presence view, a killed node's members removed within 3 s, a restarted node
//! rejoining without duplicates, and a graceful leave.

mod common;
use common::cluster::*;
use common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

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
    // The node-to-node counters show the traffic (on the metrics listener).
    let mut h = Http::metrics(cl.node(0)).await;
    let r = h.request("GET", "/stats", "").await;
    let c = &r.json()["cluster"];
    assert_eq!(c["live_nodes"], 3, "{}", r.body);
    assert!(c["sessions_up"].as_u64().unwrap() >= 2, "{}", r.body);
    assert!(c["frames_sent"].as_u64().unwrap() >= 100, "{}", r.body);
    assert!(c["frames_received"].as_u64().unwrap() >= 1, "{}", r.body);
    assert_eq!(c["handshakes_refused"], 0, "{}", r.body);
    let m = h.request("GET", "/metrics", "").await;
    assert!(m.body.contains("raptor_cluster_live_nodes 3"), "{}", m.body);
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

/// Member events (`+id` / `-id`) a client receives until `until`, with when they came.
async fn member_events(c: &mut Client, until: Instant) -> Vec<(String, Instant)> {
    let mut out = Vec::new();
    while Instant::now() < until {
        let Some(t) = c.recv_text_within(Duration::from_millis(100)).await else {
            continue;
        };
        let v: Value = serde_json::from_str(&t).unwrap();
        let d: Value =
            serde_json::from_str(v["data"].as_str().unwrap_or("{}")).unwrap_or(Value::Null);
        let sign = match v["event"].as_str().unwrap() {
            "pusher_internal:member_added" => "+",
            "pusher_internal:member_removed" => "-",
            _ => continue,
        };
        out.push((
            format!("{sign}{}", d["user_id"].as_str().unwrap()),
            Instant::now(),
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_moves_presence_without_flapping() {
    let cl = Cluster::start(3);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let room = "presence-lobby";
    let join = |u: &str| format!(r#"{{"user_id":"{u}"}}"#);
    let mut watchers = Vec::new();
    for (i, user) in ["watch0", "watch1"].iter().enumerate() {
        let mut c = Client::connect(cl.node(i)).await;
        c.join(room, &join(user)).await;
        watchers.push(c);
    }
    let mut mover = Client::connect(cl.node(2)).await;
    mover.join(room, &join("mover")).await;
    let mut goner = Client::connect(cl.node(2)).await;
    goner.join(room, &join("goner")).await;
    for w in &mut watchers {
        let mut set = std::collections::BTreeSet::new();
        members_until(w, &mut set, 3, Duration::from_secs(10)).await;
    }
    // Every node shows all four before the leave.
    let users = |r: Resp| -> Vec<String> {
        r.json()["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_str().unwrap().to_string())
            .collect()
    };
    let mut h0 = Http::connect(cl.node(0)).await;
    let path = format!("/apps/1/channels/{room}/users");
    assert_eq!(
        users(h0.signed("GET", &path, &[], "").await),
        ["goner", "mover", "watch0", "watch1"]
    );

    // SIGTERM node 2: its clients get 4200; the mover reconnects to node 1 at once.
    let t0 = Instant::now();
    unsafe { libc::kill(cl.node(2).pid() as i32, libc::SIGTERM) };
    assert_eq!(mover.expect_close().await, 4200);
    assert_eq!(goner.expect_close().await, 4200);
    let mut moved = Client::connect(cl.node(1)).await;
    let p = moved.join(room, &join("mover")).await;
    assert!(
        t0.elapsed() < Duration::from_millis(2500),
        "the reconnect must land inside the hold for this test to mean anything: {:?}",
        t0.elapsed()
    );
    // Within the hold the leaving node's members still count, on every node.
    let mut ids: Vec<&str> = p["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["goner", "mover", "watch0", "watch1"]);

    // Both watchers see exactly one change: goner removed, after the 3 s hold and within
    // about a second of it; the mover never flaps.
    let until = t0 + Duration::from_millis(6500);
    let [w0, w1] = &mut watchers[..] else {
        unreachable!()
    };
    let seen = tokio::join!(member_events(w0, until), member_events(w1, until));
    for (i, evs) in [seen.0, seen.1].into_iter().enumerate() {
        let names: Vec<&str> = evs.iter().map(|(e, _)| e.as_str()).collect();
        assert_eq!(names, ["-goner"], "node {i} watcher");
        let at = evs[0].1 - t0;
        assert!(
            at >= Duration::from_millis(2900) && at < Duration::from_millis(5000),
            "node {i}: goner removed {at:?} after SIGTERM"
        );
    }
    assert_eq!(
        users(h0.signed("GET", &path, &[], "").await),
        ["mover", "watch0", "watch1"]
    );
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

/// A node with seeds that has not met its cluster refuses publishes (503, `Retry-After`)
/// rather than ordering events for channels other nodes own and delivering them to no one;
/// a node whose seeds never answer (the first of a cluster) takes them after 3 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starting_node_takes_publishes_once_it_knows_its_cluster() {
    let (g, p) = free_ports(1)[0];
    // A seed nobody answers at.
    let (seed, _) = free_ports(1)[0];
    let (gossip, peer, seeds) = (
        format!("127.0.0.1:{g}"),
        format!("127.0.0.1:{p}"),
        format!("127.0.0.1:{seed}"),
    );
    let node = Server::try_start_opts(
        "",
        &[
            "--node-id",
            "node-1",
            "--gossip",
            &gossip,
            "--peer",
            &peer,
            "--seeds",
            &seeds,
        ],
        &StartOpts {
            env: vec![("RAPTOR_CLUSTER_SECRET".into(), random_secret())],
            stderr: None,
        },
    )
    .expect("a node starts without its seeds");
    let started = Instant::now();
    let mut h = Http::connect(&node).await;
    let r = h.publish("c", "e", "early").await;
    assert_eq!(
        (r.status, r.json()),
        (
            503,
            serde_json::json!({"error": "this node is joining its cluster; retry shortly"})
        )
    );
    assert_eq!(r.header("Retry-After"), Some("1"));
    loop {
        let r = h.publish("c", "e", "later").await;
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503);
        assert!(started.elapsed() < Duration::from_secs(6), "still refusing");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(started.elapsed() >= Duration::from_millis(2500));
}
