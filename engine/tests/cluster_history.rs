//! Channel history on three real nodes (docs/history.md, "In a cluster"): positions and
//! recovery for subscribers on any node, the history API from any node, and a `kill -9` of
//! the owning node in the middle of 2,000 publishes: every event acknowledged with 200 is in
//! the history afterwards and replayed to a recovering client exactly once, in order.

mod common;
use common::cluster::*;
use common::history::{event, history, subscribe_from};
use common::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

const CONFIG: &str = r#"
[[apps]]
id = "1"
key = "app-key"
secret = "app-secret"

[[apps.history]]
channels = "chat-*"
size = 5000
ttl_secs = 600
recover_max = 10000

[[apps.history]]
channels = "presence-chat-*"
"#;

/// Until `node` sees `n` live nodes.
async fn wait_live(node: &Server, n: u64) {
    let want = format!("raptor_cluster_live_nodes {n}\n");
    for _ in 0..200 {
        let mut h = Http::metrics(node).await;
        if h.request("GET", "/metrics", "").await.body.contains(&want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never saw {n} live nodes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn positions_recovery_and_the_api_work_from_every_node() {
    let cl = Cluster::start_with(3, CONFIG);
    wait_linked(&cl, 3).await;
    let ch = owned_by("chat-", 2);
    let mut a = Client::connect(cl.node(0)).await;
    let first = subscribe_from(&mut a, &ch, None).await;
    let epoch = first["epoch"].as_str().unwrap().to_string();
    assert_eq!(
        first,
        json!({"was_recovering": false, "recovered": false, "epoch": epoch, "offset": 0, "replayed": 0})
    );
    let mut h = Http::connect(cl.node(1)).await;
    for n in 1..=5 {
        assert_eq!(h.publish(&ch, "e", &n.to_string()).await.status, 200);
    }
    for n in 1..=5 {
        assert_eq!(a.recv_text().await, event(&ch, &n.to_string(), n));
    }
    // The API from a node that does not own the channel.
    let path = format!("/apps/1/channels/{ch}/history");
    let r = h.signed("GET", &path, &[], "").await;
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"epoch": epoch, "offset": 5}))
    );
    let r = h
        .signed("POST", &format!("{path}/2/edit"), &[], r#"{"data":"two"}"#)
        .await;
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"epoch": epoch, "offset": 6}))
    );
    let edit = a.recv().await;
    assert_eq!(
        (edit["event"].as_str(), edit["offset"].as_u64()),
        (Some("raptor:message_edit"), Some(6))
    );
    let r = h
        .signed("POST", &format!("{path}/99/delete"), &[], "{}")
        .await;
    assert_eq!(r.status, 404, "{}", r.body);

    // A subscriber on another node recovers from offset 2: 3, 4, 5 and the edit.
    let mut b = Client::connect(cl.node(1)).await;
    let r = subscribe_from(&mut b, &ch, Some((2, &epoch))).await;
    assert_eq!(
        r,
        json!({"was_recovering": true, "recovered": true, "epoch": epoch, "offset": 2, "replayed": 4})
    );
    for n in 3..=5 {
        assert_eq!(b.recv_text().await, event(&ch, &n.to_string(), n));
    }
    assert_eq!(b.recv().await["event"], "raptor:message_edit");
    // Then live, on both nodes, with the next offset.
    assert_eq!(h.publish(&ch, "e", "7").await.status, 200);
    assert_eq!(b.recv_text().await, event(&ch, "7", 7));
    assert_eq!(a.recv_text().await, event(&ch, "7", 7));
    // On the owning node itself too, and "not recovered" from another epoch.
    let mut c = Client::connect(cl.node(2)).await;
    let r = subscribe_from(&mut c, &ch, Some((1, "anotherEpoch"))).await;
    assert_eq!(
        r,
        json!({"was_recovering": true, "recovered": false, "epoch": epoch, "offset": 7, "replayed": 0})
    );
    let full = history(cl.node(0), &ch).await;
    let data: Vec<&str> = full["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"].as_str().unwrap())
        .collect();
    assert_eq!(data[..5], ["1", "two", "3", "4", "5"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_owner_loses_no_acknowledged_event() {
    let mut cl = Cluster::start_with(3, CONFIG);
    wait_linked(&cl, 3).await;
    let channels = owned_by_n("chat-k", 2, 4);
    // Each channel's epoch, as a subscriber learns it.
    let mut epochs = HashMap::new();
    let mut watcher = Client::connect(cl.node(0)).await;
    for ch in &channels {
        let r = subscribe_from(&mut watcher, ch, None).await;
        epochs.insert(ch.clone(), r["epoch"].as_str().unwrap().to_string());
    }
    drop(watcher);

    // 2,000 publishes through nodes 0 and 1, one at a time; node 2 (the owner) is killed
    // with SIGKILL after 600 of them.
    let mut via = [
        Http::connect(cl.node(0)).await,
        Http::connect(cl.node(1)).await,
    ];
    let mut acked: HashMap<String, Vec<u64>> = HashMap::new();
    let mut refused = 0;
    for n in 0..2000u64 {
        if n == 600 {
            let s = cl.nodes[2].take().unwrap();
            // SAFETY: kill(2) with a child's pid and a signal number.
            assert_eq!(unsafe { libc::kill(s.pid() as i32, libc::SIGKILL) }, 0);
            drop(s);
        }
        let ch = &channels[n as usize % channels.len()];
        let r = via[n as usize % 2].publish(ch, "e", &n.to_string()).await;
        match r.status {
            200 => acked.entry(ch.clone()).or_default().push(n),
            503 => refused += 1,
            s => panic!("publish {n}: {s} {}", r.body),
        }
    }
    let total: usize = acked.values().map(Vec::len).sum();
    eprintln!("{total} acknowledged, {refused} refused (503)");
    assert!(total >= 1900, "{total} acknowledged, {refused} refused");

    // Every acknowledged event is in the history, once, in publish order; recovering from
    // the start replays exactly the history.
    for ch in &channels {
        let h = history(cl.node(1), ch).await;
        assert_eq!(
            h["epoch"].as_str(),
            Some(epochs[ch].as_str()),
            "the same epoch"
        );
        let events = h["events"].as_array().unwrap();
        let got: Vec<u64> = events
            .iter()
            .map(|e| e["data"].as_str().unwrap().parse().unwrap())
            .collect();
        let offsets: Vec<u64> = events
            .iter()
            .map(|e| e["offset"].as_u64().unwrap())
            .collect();
        assert_eq!(
            offsets,
            (1..=got.len() as u64).collect::<Vec<_>>(),
            "dense offsets"
        );
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "{ch}: publish order, no duplicate"
        );
        let missing: Vec<&u64> = acked[ch].iter().filter(|n| !got.contains(n)).collect();
        assert!(
            missing.is_empty(),
            "{ch}: acknowledged but lost: {missing:?}"
        );

        let mut c = Client::connect(cl.node(0)).await;
        let r = subscribe_from(&mut c, ch, Some((0, &epochs[ch]))).await;
        assert_eq!(r["recovered"], json!(true), "{ch}: {r}");
        assert_eq!(r["replayed"].as_u64(), Some(got.len() as u64));
        for (i, n) in got.iter().enumerate() {
            assert_eq!(c.recv_text().await, event(ch, &n.to_string(), i as u64 + 1));
        }
        c.expect_silence(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_are_told_to_recover_when_the_owner_link_is_lost() {
    let mut cl = Cluster::start_with(3, CONFIG);
    wait_linked(&cl, 3).await;
    let ch = owned_by("chat-gap-", 2);
    let mut c = Client::connect(cl.node(1)).await;
    let epoch = subscribe_from(&mut c, &ch, None).await["epoch"]
        .as_str()
        .unwrap()
        .to_string();
    let mut h = Http::connect(cl.node(0)).await;
    assert_eq!(h.publish(&ch, "e", "1").await.status, 200);
    assert_eq!(c.recv_text().await, event(&ch, "1", 1));
    // A channel without history keeps its subscribers.
    let plain = owned_by("plain-", 2);
    let mut p = Client::connect(cl.node(1)).await;
    p.subscribe(&plain).await;
    let s = cl.nodes[2].take().unwrap();
    // SAFETY: kill(2) with a child's pid and a signal number.
    assert_eq!(unsafe { libc::kill(s.pid() as i32, libc::SIGKILL) }, 0);
    drop(s);
    // Deliveries from the dead owner may have been lost: 4200, reconnect and recover.
    assert_eq!(c.expect_close().await, 4200);
    p.expect_silence(Duration::from_millis(300)).await;
    // Once node 1 sees node 2 gone, the channel's new owner (its successor) answers.
    wait_live(cl.node(1), 2).await;
    wait_live(cl.node(0), 2).await;
    let mut c = Client::connect(cl.node(1)).await;
    let r = subscribe_from(&mut c, &ch, Some((1, &epoch))).await;
    assert_eq!(
        r,
        json!({"was_recovering": true, "recovered": true, "epoch": epoch, "offset": 1, "replayed": 0})
    );
    assert_eq!(h.publish(&ch, "e", "2").await.status, 200);
    assert_eq!(c.recv_text().await, event(&ch, "2", 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presence_channel_with_history_recovers_across_nodes() {
    let cl = Cluster::start_with(3, CONFIG);
    wait_linked(&cl, 3).await;
    let ch = owned_by("presence-chat-", 2);
    let mut a = Client::connect(cl.node(0)).await;
    let members = a.join(&ch, r#"{"user_id":"ann"}"#).await;
    assert_eq!(members["count"], 1);
    let r = a.recv().await;
    assert_eq!(r["event"], "raptor:recovery");
    let first: Value = serde_json::from_str(r["data"].as_str().unwrap()).unwrap();
    let epoch = first["epoch"].as_str().unwrap().to_string();
    let mut h = Http::connect(cl.node(1)).await;
    for n in 1..=3 {
        assert_eq!(h.publish(&ch, "e", &n.to_string()).await.status, 200);
    }
    for n in 1..=3 {
        assert_eq!(a.recv_text().await, event(&ch, &n.to_string(), n));
    }
    // Bob joins on node 1 recovering from offset 1 (he saw event 1 before): 2 and 3 come
    // after his member list; Ann sees him join; live events go on.
    let mut b = Client::connect(cl.node(1)).await;
    let data = r#"{"user_id":"bob"}"#;
    let auth = presence_auth(&b.socket_id, &ch, data);
    b.send(json!({"event": "pusher:subscribe", "data": {"channel": ch, "auth": auth, "channel_data": data, "recover": true, "offset": 1, "epoch": epoch}}))
        .await;
    assert_eq!(
        b.recv().await["event"],
        "pusher_internal:subscription_succeeded"
    );
    let r = b.recv().await;
    let r: Value = serde_json::from_str(r["data"].as_str().unwrap()).unwrap();
    assert_eq!(
        r,
        json!({"was_recovering": true, "recovered": true, "epoch": epoch, "offset": 1, "replayed": 2})
    );
    assert_eq!(b.recv_text().await, event(&ch, "2", 2));
    assert_eq!(b.recv_text().await, event(&ch, "3", 3));
    assert_eq!(a.recv().await["event"], "pusher_internal:member_added");
    assert_eq!(h.publish(&ch, "e", "4").await.status, 200);
    assert_eq!(b.recv_text().await, event(&ch, "4", 4));
    assert_eq!(a.recv_text().await, event(&ch, "4", 4));
}
