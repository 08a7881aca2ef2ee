//! User-facing features across three real nodes: messages to a signed-in user
//! (`sendToUser`, which the SDKs send as `POST /apps/{id}/events` to `#server-to-user-{id}`)
//! reach every connection of the user on every node exactly once; `terminate_connections` on
//! one node closes the user's connections on the others; a cache channel's last event is
//! replayed to subscribers on every node; the presence member limit counts the members of
//! every node.

mod common;
use common::cluster::*;
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

/// The app config of the default app with `extra` lines added.
fn app_toml(extra: &str) -> String {
    format!("[[apps]]\nid = \"1\"\nkey = \"app-key\"\nsecret = \"app-secret\"\n{extra}")
}

/// Signs `c` in as `user` and subscribes it to its `#server-to-user-{user}` channel, as
/// pusher-js does after `signin_success`.
async fn sign_in(c: &mut Client, user: &str) {
    let ud = format!(r#"{{"id":"{user}"}}"#);
    let ok = c.signin(&ud).await;
    assert_eq!(
        ok,
        format!(
            r#"{{"event":"pusher:signin_success","data":{{"user_data":{}}}}}"#,
            serde_json::to_string(&ud).unwrap()
        )
    );
    c.subscribe(&format!("#server-to-user-{user}")).await;
}

/// Reads until `c` has been silent for 300 ms (probes of other clients' `wait_routed`).
async fn drain(c: &mut Client) {
    while c
        .recv_text_within(Duration::from_millis(300))
        .await
        .is_some()
    {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_to_users_and_terminate_cross_nodes() {
    let cl = Cluster::start(3);
    // `solo` is signed in on node 2 only; `multi` on nodes 0, 1 and 2; `other` on 1 and 2.
    let mut solo = Client::connect(cl.node(2)).await;
    sign_in(&mut solo, "solo").await;
    let mut multi = Vec::new();
    for i in 0..3 {
        let mut c = Client::connect(cl.node(i)).await;
        sign_in(&mut c, "multi").await;
        multi.push(c);
    }
    let mut others = Vec::new();
    for i in 1..3 {
        let mut c = Client::connect(cl.node(i)).await;
        sign_in(&mut c, "other").await;
        others.push(c);
    }

    let mut h = Http::connect(cl.node(0)).await;
    wait_routed(&mut h, &mut solo, "#server-to-user-solo").await;
    for c in multi.iter_mut() {
        wait_routed(&mut h, c, "#server-to-user-multi").await;
    }
    for c in others.iter_mut() {
        wait_routed(&mut h, c, "#server-to-user-other").await;
    }
    for c in multi.iter_mut().chain(others.iter_mut()) {
        drain(c).await;
    }

    // One event to `solo` (node 2), then one to `multi` (all three nodes).
    for (user, data) in [("solo", r#"{"n":1}"#), ("multi", r#"{"n":2}"#)] {
        let body =
            json!({"name":"notice","channels":[format!("#server-to-user-{user}")],"data":data})
                .to_string();
        let r = h.signed("POST", "/apps/1/events", &[], &body).await;
        assert_eq!((r.status, r.body.as_str()), (200, "{}"));
    }
    assert_eq!(
        solo.recv_text().await,
        r##"{"event":"notice","channel":"#server-to-user-solo","data":"{\"n\":1}"}"##
    );
    for c in multi.iter_mut() {
        assert_eq!(
            c.recv_text().await,
            r##"{"event":"notice","channel":"#server-to-user-multi","data":"{\"n\":2}"}"##
        );
    }
    // Exactly once each, and nobody else's.
    for c in multi
        .iter_mut()
        .chain(others.iter_mut())
        .chain(std::iter::once(&mut solo))
    {
        c.expect_silence(Duration::from_millis(500)).await;
    }

    // Terminate `multi` through node 0: its connections on every node get 4009; `solo` and
    // `other` stay connected.
    let r = h
        .signed(
            "POST",
            "/apps/1/users/multi/terminate_connections",
            &[],
            "{}",
        )
        .await;
    assert_eq!((r.status, r.body.as_str()), (200, "{}"));
    for c in multi.iter_mut() {
        assert_eq!(
            c.recv_text().await,
            r#"{"event":"pusher:error","data":{"code":4009,"message":"connection terminated by the app"}}"#
        );
        assert_eq!(c.expect_close().await, 4009);
    }
    for c in others.iter_mut().chain(std::iter::once(&mut solo)) {
        c.send(json!({"event":"pusher:ping","data":{}})).await;
        assert_eq!(
            c.recv_text().await,
            r#"{"event":"pusher:pong","data":"{}"}"#
        );
    }

    // The PyPI SDK path (no /apps/{id} prefix), from node 1, for the user on nodes 1 and 2.
    let mut h1 = Http::connect(cl.node(1)).await;
    let r = h1
        .signed("POST", "/users/other/terminate_connections", &[], "{}")
        .await;
    assert_eq!(r.status, 200);
    for c in others.iter_mut() {
        assert_eq!(c.expect_close().await, 4009);
    }
    solo.send(json!({"event":"pusher:ping","data":{}})).await;
    assert_eq!(
        solo.recv_text().await,
        r#"{"event":"pusher:pong","data":"{}"}"#
    );
}

/// Subscribes a new client on `node` to a cache channel until its replay is not
/// `pusher:cache_miss` (the event may still be on its way to that node), within 5 s; returns
/// the client and the frame after `subscription_succeeded`.
async fn replay_on(node: &Server, channel: &str) -> (Client, String) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = Client::connect(node).await;
        if channel.starts_with("private-") {
            c.subscribe_private(channel).await;
        } else {
            c.subscribe(channel).await;
        }
        let t = c.recv_text().await;
        if !t.contains("pusher:cache_miss") || Instant::now() > deadline {
            return (c, t);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_channels_replay_on_every_node() {
    let cl = Cluster::start(3);
    // One cache channel ordered by the node it is published on (0), one by another node (1).
    let on0 = owned_by("cache-zero-", 0);
    let on1 = owned_by("cache-one-", 1);
    let private = owned_by("private-cache-p-", 2);
    // Wait until node 0 → owner → nodes 1 and 2 routes, through plain channels with the
    // same owners.
    let mut h = Http::connect(cl.node(0)).await;
    for owner in [0, 1, 2] {
        let probe = owned_by("probe-", owner);
        for i in 1..3 {
            let mut c = Client::connect(cl.node(i)).await;
            c.subscribe(&probe).await;
            wait_routed(&mut h, &mut c, &probe).await;
        }
    }

    for (ch, data) in [(&on0, "1"), (&on1, "2"), (&private, "3")] {
        let r = h.publish(ch, "tick", data).await;
        assert_eq!((r.status, r.body.as_str()), (200, "{}"));
    }
    // Nobody subscribed anywhere; subscribers that come later, on any node, get the event
    // right after subscription_succeeded, as from a single node.
    let mut kept = Vec::new();
    for i in 0..3 {
        for (ch, data) in [(&on0, "1"), (&on1, "2"), (&private, "3")] {
            let (c, t) = replay_on(cl.node(i), ch).await;
            assert_eq!(
                t,
                format!(r#"{{"event":"tick","channel":"{ch}","data":"{data}"}}"#),
                "node {i}"
            );
            kept.push(c);
        }
    }
    // The TTL is the single-node one, on every node.
    for i in 0..3 {
        let mut hi = Http::connect(cl.node(i)).await;
        let r = hi
            .signed(
                "GET",
                &format!("/apps/1/channels/{on1}"),
                &[("info", "cache")],
                "",
            )
            .await;
        let v = r.json();
        assert_eq!(v["cache"]["data"], "2", "node {i}: {}", r.body);
        let ttl = v["cache"]["ttl"].as_u64().unwrap();
        assert!((1790..=1800).contains(&ttl), "node {i}: {ttl}");
    }
    // A newer event replaces the cached one everywhere; live subscribers get it once.
    let r = h.publish(&on1, "tick", "4").await;
    assert_eq!(r.status, 200);
    for (n, c) in kept.iter_mut().enumerate().filter(|(n, _)| n % 3 == 1) {
        assert_eq!(
            c.recv_text().await,
            format!(r#"{{"event":"tick","channel":"{on1}","data":"4"}}"#),
            "subscriber {n}"
        );
    }
    for i in 0..3 {
        let (_, t) = replay_on(cl.node(i), &on1).await;
        assert_eq!(
            t,
            format!(r#"{{"event":"tick","channel":"{on1}","data":"4"}}"#)
        );
    }
    for c in kept.iter_mut() {
        c.expect_silence(Duration::from_millis(300)).await;
    }
    // A channel never published to is a miss on every node.
    for i in 0..3 {
        let mut c = Client::connect(cl.node(i)).await;
        c.subscribe("cache-never").await;
        assert_eq!(
            c.recv_text().await,
            r#"{"event":"pusher:cache_miss","channel":"cache-never"}"#
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_cache_channels_replay_on_every_node() {
    let cl = Cluster::start(3);
    let ch = owned_by("presence-cache-room-", 1);
    let mut h = Http::connect(cl.node(0)).await;
    let probe = owned_by("probe-", 1);
    for i in [0, 2] {
        let mut c = Client::connect(cl.node(i)).await;
        c.subscribe(&probe).await;
        wait_routed(&mut h, &mut c, &probe).await;
    }
    assert_eq!(h.publish(&ch, "tick", "9").await.status, 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    for (i, user) in [(0, "a"), (2, "b")] {
        loop {
            let mut c = Client::connect(cl.node(i)).await;
            let data = format!(r#"{{"user_id":"{user}"}}"#);
            c.join(&ch, &data).await;
            let t = c.recv_text().await;
            if t.contains("pusher:cache_miss") && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            assert_eq!(
                t,
                format!(r#"{{"event":"tick","channel":"{ch}","data":"9"}}"#),
                "node {i}"
            );
            break;
        }
    }
}

/// The member ids node `i` reports for a presence channel, polled until they are `want`.
async fn users_become(cl: &Cluster, i: usize, channel: &str, want: &[&str]) {
    let mut h = Http::connect(cl.node(i)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = h
            .signed("GET", &format!("/apps/1/channels/{channel}/users"), &[], "")
            .await;
        let mut ids: Vec<String> = r.json()["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        if ids == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node {i} shows {ids:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_member_limit_counts_every_node() {
    let cl = Cluster::start_with(3, &app_toml("max_presence_members = 2\n"));
    let ch = "presence-lim";
    let mut u1 = Client::connect(cl.node(0)).await;
    u1.join(ch, r#"{"user_id":"u1"}"#).await;
    let mut u2 = Client::connect(cl.node(1)).await;
    u2.join(ch, r#"{"user_id":"u2"}"#).await;
    assert_eq!(
        u1.recv_text().await,
        r#"{"event":"pusher_internal:member_added","channel":"presence-lim","data":"{\"user_id\":\"u2\"}"}"#
    );
    users_become(&cl, 2, ch, &["u1", "u2"]).await;

    // Node 2 has no member of its own, but the channel is full cluster-wide.
    let d = r#"{"user_id":"u3"}"#;
    let mut u3 = Client::connect(cl.node(2)).await;
    let r = u3
        .subscribe_raw(ch, &presence_auth(&u3.socket_id.clone(), ch, d), Some(d))
        .await;
    assert_eq!(
        r,
        r#"{"event":"pusher:subscription_error","channel":"presence-lim","data":"{\"type\":\"LimitReached\",\"error\":\"presence channel is full (2 members)\",\"status\":403}"}"#
    );
    // Refused twice from the same connection, still the same answer (the first refusal left
    // nothing behind).
    let r = u3
        .subscribe_raw(ch, &presence_auth(&u3.socket_id.clone(), ch, d), Some(d))
        .await;
    assert!(r.contains("LimitReached"), "{r}");
    // An existing member may open another tab on a third node.
    let mut tab = Client::connect(cl.node(2)).await;
    let p = tab.join(ch, r#"{"user_id":"u1"}"#).await;
    assert_eq!(p["count"], 2, "{p}");
    users_become(&cl, 0, ch, &["u1", "u2"]).await;
    u1.expect_silence(Duration::from_millis(300)).await;

    // Once u2 leaves, there is room again for u3 on node 2, and everyone sees it added.
    drop(u2);
    users_become(&cl, 2, ch, &["u1"]).await;
    let p = u3.join(ch, d).await;
    assert_eq!(p["count"], 2, "{p}");
    users_become(&cl, 1, ch, &["u1", "u3"]).await;
    assert_eq!(
        u1.recv_text().await,
        r#"{"event":"pusher_internal:member_removed","channel":"presence-lim","data":"{\"user_id\":\"u2\"}"}"#
    );
    assert_eq!(
        u1.recv_text().await,
        r#"{"event":"pusher_internal:member_added","channel":"presence-lim","data":"{\"user_id\":\"u3\"}"}"#
    );
}
