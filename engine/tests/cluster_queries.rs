//! Three real nodes as separate processes on 127.0.0.1: `GET /apps/{id}/channels` and
//! `GET /apps/{id}/channels/{name}` answer for the whole cluster from any node, and a node
//! that stops answering costs at most the query timeout (docs/cluster.md, "Channel
//! queries").

mod common;
use common::cluster::*;
use common::*;
use std::time::{Duration, Instant};

/// Asks `path` on node `i` until the body is exactly `want` (the cluster converges: links
/// come up, subscriptions reach their owners), or fails with the last answer after 15 s.
async fn until_body(cl: &Cluster, i: usize, path: &str, params: &[(&str, &str)], want: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut h = Http::connect(cl.node(i)).await;
    loop {
        let r = h.signed("GET", path, params, "").await;
        if r.status == 200 && r.body == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node {i} GET {path} {params:?}: still {} {} (want {want})",
            r.status,
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Joins `channel` on node `i` as `user`; keeps the connection.
async fn join(cl: &Cluster, i: usize, channel: &str, user: &str) -> Client {
    let mut c = Client::connect(cl.node(i)).await;
    c.join(channel, &format!(r#"{{"user_id":"{user}"}}"#)).await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_info_and_lists_are_cluster_wide_on_every_node() {
    let cl = Cluster::start(3);
    let mut keep = Vec::new();
    // 1, 2 and 3 subscribers of "orders" on nodes 0, 1, 2; one channel per node that only
    // that node has subscribers for.
    for i in 0..3 {
        for _ in 0..=i {
            let mut c = Client::connect(cl.node(i)).await;
            c.subscribe("orders").await;
            keep.push(c);
        }
        let mut c = Client::connect(cl.node(i)).await;
        c.subscribe(&format!("only-{i}")).await;
        keep.push(c);
    }
    // Presence: alice on node 0, bob on nodes 1 and 2 (one user), carol on node 2.
    keep.push(join(&cl, 0, "presence-room", "alice").await);
    keep.push(join(&cl, 1, "presence-room", "bob").await);
    keep.push(join(&cl, 2, "presence-room", "bob").await);
    keep.push(join(&cl, 2, "presence-room", "carol").await);
    // A presence channel with one member, on node 1 only.
    keep.push(join(&cl, 1, "presence-side", "dave").await);

    for i in 0..3 {
        until_body(
            &cl,
            i,
            "/apps/1/channels/orders",
            &[("info", "subscription_count")],
            r#"{"occupied":true,"subscription_count":6}"#,
        )
        .await;
        until_body(
            &cl,
            i,
            "/apps/1/channels/presence-room",
            &[("info", "user_count,subscription_count")],
            r#"{"occupied":true,"user_count":3,"subscription_count":4}"#,
        )
        .await;
        // A channel with subscribers on one other node only is occupied from here too.
        let other = (i + 1) % 3;
        until_body(
            &cl,
            i,
            &format!("/apps/1/channels/only-{other}"),
            &[],
            r#"{"occupied":true}"#,
        )
        .await;
        until_body(
            &cl,
            i,
            "/apps/1/channels",
            &[],
            r#"{"channels":{"only-0":{},"only-1":{},"only-2":{},"orders":{},"presence-room":{},"presence-side":{}}}"#,
        )
        .await;
        until_body(
            &cl,
            i,
            "/apps/1/channels",
            &[("filter_by_prefix", "only-")],
            r#"{"channels":{"only-0":{},"only-1":{},"only-2":{}}}"#,
        )
        .await;
        until_body(
            &cl,
            i,
            "/apps/1/channels",
            &[("filter_by_prefix", "presence-"), ("info", "user_count")],
            r#"{"channels":{"presence-room":{"user_count":3},"presence-side":{"user_count":1}}}"#,
        )
        .await;
    }

    // Nobody anywhere: answered by every node, not occupied.
    let mut h = Http::connect(cl.node(1)).await;
    // A publish that asks for counts gets the cluster-wide ones too.
    let body = serde_json::json!({
        "name": "e", "channels": ["orders", "only-2"], "data": "x", "info": "subscription_count"
    });
    let r = h
        .signed("POST", "/apps/1/events", &[], &body.to_string())
        .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            200,
            r#"{"channels":{"only-2":{"subscription_count":1},"orders":{"subscription_count":6}}}"#
        )
    );
    let r = h
        .signed(
            "GET",
            "/apps/1/channels/nobody",
            &[("info", "subscription_count")],
            "",
        )
        .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, r#"{"occupied":false,"subscription_count":0}"#)
    );
    // Every query above finished with all answers, so none holds an expiry timer (each
    // would otherwise sleep out the 1 s timeout).
    let mut m = Http::metrics(cl.node(1)).await;
    let r = m.request("GET", "/stats", "").await;
    let q = &r.json()["cluster_queries"];
    assert!(q["started"].as_u64().unwrap() >= 3, "{}", r.body);
    assert_eq!(q["expiry_timers"], 0, "{}", r.body);

    // Everyone leaves: no node lists anything any more.
    keep.retain(|_| false);
    for i in 0..3 {
        until_body(&cl, i, "/apps/1/channels", &[], r#"{"channels":{}}"#).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stops_answering_costs_at_most_the_timeout() {
    let cl = Cluster::start(3);
    let mut keep = Vec::new();
    for i in 0..3 {
        let mut c = Client::connect(cl.node(i)).await;
        c.subscribe("orders").await;
        keep.push(c);
    }
    until_body(
        &cl,
        0,
        "/apps/1/channels/orders",
        &[("info", "subscription_count")],
        r#"{"occupied":true,"subscription_count":3}"#,
    )
    .await;

    // Freeze node 2 (its link stays open until the keepalive gives up after 3 s).
    let pid = cl.node(2).pid().to_string();
    let st = std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap();
    assert!(st.success());
    let mut h = Http::connect(cl.node(0)).await;
    let t0 = Instant::now();
    let r = h
        .signed(
            "GET",
            "/apps/1/channels/orders",
            &[("info", "subscription_count")],
            "",
        )
        .await;
    let took = t0.elapsed();
    let _ = std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status();
    // What arrived: nodes 0 and 1. Within the 1 s default timeout plus scheduling slack
    // (the HTTP layer's own limit is 5 s).
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, r#"{"occupied":true,"subscription_count":2}"#)
    );
    assert!(took < Duration::from_millis(2500), "took {took:?}");
    // The partial answer is counted on the asking node (on its metrics listener).
    let mut m = Http::metrics(cl.node(0)).await;
    let r = m.request("GET", "/stats", "").await;
    let q = &r.json()["cluster_queries"];
    assert!(q["incomplete"].as_u64().unwrap() >= 1, "{}", r.body);
    assert!(q["started"].as_u64().unwrap() >= q["incomplete"].as_u64().unwrap());
    // The timed-out query's timer went with it.
    assert_eq!(q["expiry_timers"], 0, "{}", r.body);
}
