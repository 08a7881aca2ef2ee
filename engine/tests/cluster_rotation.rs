//! Rotating the cluster secret on a running 3-node cluster (docs/cluster.md, "Rotating the
//! secret"), with real processes: events flow all along (about 100 publishes a second,
//! alternating nodes, subscribers on every node), and nothing is lost or duplicated, no node
//! leaves anyone's live view, and a node restarted with only the new secret joins again.

mod common;
use common::cluster::*;
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn write_secrets(cl: &Cluster, i: usize, list: &[&str]) {
    std::fs::write(cl.secret_file(i).unwrap(), list.join("\n")).unwrap();
}

fn hup(s: &Server) {
    let ok = std::process::Command::new("kill")
        .args(["-HUP", &s.pid().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

/// One rotation step: every node's file gets `list`, then each node is told (SIGHUP) one
/// after the other, 300 ms apart, so the nodes disagree for a while as they would in a real
/// rollout.
async fn step(cl: &Cluster, list: &[&str]) {
    for i in 0..3 {
        write_secrets(cl, i, list);
        hup(cl.node(i));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_secret_under_traffic_loses_nothing() {
    let dir = std::env::temp_dir().join(format!(
        "raptor-rotation-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let old = random_secret();
    let new = random_secret();
    let mut cl = Cluster::unstarted(3, "");
    cl.secret_dir = Some(dir.clone());
    cl.log_dir = Some(dir.clone());
    for i in 0..3 {
        write_secrets(&cl, i, &[&old]);
    }
    cl.start_all();
    wait_linked(&cl, 3).await;

    // Two subscribers on every node, routed.
    let mut subs = Vec::new();
    let mut h0 = Http::connect(cl.node(0)).await;
    for i in 0..3 {
        for _ in 0..2 {
            let mut c = Client::connect(cl.node(i)).await;
            c.subscribe("rotation").await;
            wait_routed(&mut h0, &mut c, "rotation").await;
            subs.push(c);
        }
    }
    for c in subs.iter_mut() {
        while c
            .recv_text_within(Duration::from_millis(100))
            .await
            .is_some()
        {}
    }

    // Readers: every subscriber collects what it gets, concurrently.
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for mut c in subs {
        let stop = stop.clone();
        readers.push(tokio::spawn(async move {
            let mut got: Vec<u64> = Vec::new();
            loop {
                match c.recv_text_within(Duration::from_millis(200)).await {
                    Some(t) => {
                        let v: Value = serde_json::from_str(&t).unwrap();
                        if v["event"] == "seq" {
                            got.push(v["data"].as_str().unwrap().parse().unwrap());
                        }
                    }
                    None if stop.load(Ordering::SeqCst) => return got,
                    None => {}
                }
            }
        }));
    }

    // The publisher: ~100/s, round robin over the nodes, remembering what was acknowledged.
    let pub_stop = Arc::new(AtomicBool::new(false));
    let ports: Vec<u16> = (0..3).map(|i| cl.node(i).port).collect();
    let publisher = {
        let pub_stop = pub_stop.clone();
        tokio::spawn(async move {
            let mut hs = Vec::new();
            for p in &ports {
                hs.push(Http::over(
                    tokio::net::TcpStream::connect(("127.0.0.1", *p))
                        .await
                        .unwrap(),
                ));
            }
            let mut acked = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let mut n = 0u64;
            while !pub_stop.load(Ordering::SeqCst) {
                tick.tick().await;
                let r = hs[(n % 3) as usize]
                    .publish("rotation", "seq", &n.to_string())
                    .await;
                if r.status == 200 {
                    acked.push(n);
                }
                n += 1;
            }
            (n, acked)
        })
    };

    // The watcher: every node's live view, all along.
    let min_live = Arc::new(AtomicU64::new(3));
    let watch_stop = Arc::new(AtomicBool::new(false));
    let metrics: Vec<u16> = (0..3).map(|i| cl.node(i).metrics_port()).collect();
    let watcher = {
        let (min_live, watch_stop) = (min_live.clone(), watch_stop.clone());
        tokio::spawn(async move {
            let mut hs = Vec::new();
            for p in &metrics {
                hs.push(Http::over(
                    tokio::net::TcpStream::connect(("127.0.0.1", *p))
                        .await
                        .unwrap(),
                ));
            }
            let mut samples = 0;
            while !watch_stop.load(Ordering::SeqCst) {
                for h in hs.iter_mut() {
                    let r = h.request("GET", "/stats", "").await;
                    let live = r.json()["cluster"]["live_nodes"].as_u64().unwrap();
                    min_live.fetch_min(live, Ordering::SeqCst);
                }
                samples += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            samples
        })
    };

    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    step(&cl, &[&old, &new]).await; // 1. accept the new one
    step(&cl, &[&new, &old]).await; // 2. send with the new one
    step(&cl, &[&new]).await; // 3. drop the old one
    tokio::time::sleep(Duration::from_millis(500)).await;
    pub_stop.store(true, Ordering::SeqCst);
    let (sent, acked) = publisher.await.unwrap();
    let rotation = t0.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    watch_stop.store(true, Ordering::SeqCst);
    let samples = watcher.await.unwrap();

    eprintln!(
        "rotation took {rotation:?}: {sent} publishes, {} acknowledged, {samples} live-view samples per node",
        acked.len()
    );
    assert!(
        sent as f64 >= rotation.as_secs_f64() * 50.0,
        "{sent} in {rotation:?}"
    );
    assert_eq!(acked.len() as u64, sent, "every publish acknowledged");
    assert_eq!(
        min_live.load(Ordering::SeqCst),
        3,
        "a node left a live view"
    );
    for (i, r) in readers.into_iter().enumerate() {
        let got = r.await.unwrap();
        let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
        for n in &got {
            *counts.entry(*n).or_default() += 1;
        }
        let missing: Vec<&u64> = acked.iter().filter(|n| !counts.contains_key(n)).collect();
        let twice: Vec<(&u64, &usize)> = counts.iter().filter(|(_, c)| **c > 1).collect();
        assert!(missing.is_empty(), "subscriber {i} missed {missing:?}");
        assert!(twice.is_empty(), "subscriber {i} got twice {twice:?}");
        assert_eq!(got.len(), acked.len(), "subscriber {i}");
    }
    for i in 0..3 {
        let s = Http::metrics(cl.node(i))
            .await
            .request("GET", "/stats", "")
            .await
            .json();
        assert_eq!(
            s["cluster"]["gossip_rejected"], 0,
            "node {i}: {}",
            s["cluster"]
        );
        assert_eq!(
            s["cluster"]["handshakes_refused"], 0,
            "node {i}: {}",
            s["cluster"]
        );
    }

    // New links use the new secret: node 2, restarted with it alone, links up again.
    cl.nodes[2] = None;
    write_secrets(&cl, 2, &[&new]);
    let s = cl.start_node(2);
    cl.nodes[2] = Some(s);
    wait_linked(&cl, 3).await;
    let _ = std::fs::remove_dir_all(&dir);
}
