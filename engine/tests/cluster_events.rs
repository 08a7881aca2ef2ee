//! Sender exclusion across nodes (peers lose it once scaled: laravel/reverb#246, where
//! `toOthers()` is ignored with Redis). Three real nodes as processes: an API event with a
//! `socket_id` and a client event reach the channel's subscribers on every node except the
//! sender, and a presence channel's client event carries the sender's `user_id` on every
//! node. The channels are owned by node 2, so every event crosses at least one link.

mod common;
use common::cluster::*;
use common::*;
use serde_json::json;

/// Publishes `marker` on node `via` and asserts it is the next frame each client reads:
/// per-channel order then proves nothing else reached them before it.
async fn next_is_marker(cl: &Cluster, via: usize, channel: &str, clients: &mut [&mut Client]) {
    let mut h = Http::connect(cl.node(via)).await;
    assert_eq!(h.publish(channel, "marker", "m").await.status, 200);
    let want = format!(r#"{{"event":"marker","channel":"{channel}","data":"m"}}"#);
    for c in clients.iter_mut() {
        assert_eq!(c.recv_text().await, want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sender_is_excluded_on_every_node() {
    let cl = Cluster::start(3);
    wait_linked(&cl, 3).await;
    let ch = owned_by("private-chat-", 2);
    let mut a = Client::connect(cl.node(0)).await;
    let mut b = Client::connect(cl.node(1)).await;
    let mut c = Client::connect(cl.node(2)).await;
    for x in [&mut a, &mut b, &mut c] {
        x.subscribe_private(&ch).await;
    }

    // An API event published on node 1 on behalf of `a` (the SDKs' `socket_id`, Laravel's
    // `toOthers()`) reaches b and c, not a.
    let mut h = Http::connect(cl.node(1)).await;
    let body =
        json!({"name": "saved", "channel": ch, "data": "{\"id\":1}", "socket_id": a.socket_id})
            .to_string();
    let r = h.signed("POST", "/apps/1/events", &[], &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let want = format!(r#"{{"event":"saved","channel":"{ch}","data":"{{\"id\":1}}"}}"#);
    assert_eq!(b.recv_text().await, want);
    assert_eq!(c.recv_text().await, want);

    // A client event from a (node 0) reaches b and c, never its sender.
    a.send(json!({"event": "client-typing", "channel": ch, "data": {"on": true}}))
        .await;
    let want = format!(r#"{{"event":"client-typing","channel":"{ch}","data":"{{\"on\":true}}"}}"#);
    assert_eq!(b.recv_text().await, want);
    assert_eq!(c.recv_text().await, want);
    next_is_marker(&cl, 1, &ch, &mut [&mut a, &mut b, &mut c]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_client_events_carry_the_user_id_on_every_node() {
    let cl = Cluster::start(3);
    wait_linked(&cl, 3).await;
    let ch = owned_by("presence-chat-", 2);
    let mut p0 = Client::connect(cl.node(0)).await;
    let mut p1 = Client::connect(cl.node(1)).await;
    p0.join(&ch, r#"{"user_id":"u0"}"#).await;
    p1.join(&ch, r#"{"user_id":"u1"}"#).await;
    assert_eq!(
        p0.recv_text().await,
        format!(
            r#"{{"event":"pusher_internal:member_added","channel":"{ch}","data":"{{\"user_id\":\"u1\"}}"}}"#
        )
    );
    p1.send(json!({"event": "client-hi", "channel": ch, "data": "plain"}))
        .await;
    assert_eq!(
        p0.recv_text().await,
        format!(r#"{{"event":"client-hi","channel":"{ch}","data":"plain","user_id":"u1"}}"#)
    );
    next_is_marker(&cl, 0, &ch, &mut [&mut p0, &mut p1]).await;
}
