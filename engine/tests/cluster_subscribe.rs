//! `subscription_succeeded` on one node of a cluster means the channel's owning node
//! already routes the channel's events there (it acknowledged this node's interest), so an
//! event published anywhere right after it arrives, with no probe and no wait. Three real
//! nodes as processes on 127.0.0.1.

mod common;
use common::cluster::*;
use common::*;
use std::time::Duration;

/// Channels that node 0 owns in a 3-node cluster: events published on node 0 are ordered
/// there at once, the shortest path an event can take, so without the hold it would often
/// overtake the subscriber's interest on its way to node 0.
fn owned_by_node_0(prefix: &str, n: usize) -> Vec<String> {
    owned_by_n(prefix, 0, n)
}

fn event(channel: &str, data: &str) -> String {
    format!(r#"{{"event":"first","channel":"{channel}","data":"{data}"}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_published_right_after_subscription_succeeded_arrives() {
    let cl = Cluster::start(3);
    wait_linked(&cl, 3).await;
    let mut h = Http::connect(cl.node(0)).await;
    let mut subs = [
        Client::connect(cl.node(1)).await,
        Client::connect(cl.node(2)).await,
    ];
    let within = Duration::from_secs(3);
    // Public channels: the first subscriber on its node each time.
    for (i, ch) in owned_by_node_0("fresh-", 60).iter().enumerate() {
        let c = &mut subs[i % 2];
        c.subscribe(ch).await;
        assert_eq!(h.publish(ch, "first", &i.to_string()).await.status, 200);
        let got = c.recv_text_within(within).await;
        assert_eq!(got, Some(event(ch, &i.to_string())), "channel {ch}");
    }
    // Presence channels: answered through the gateway, after the same wait.
    for (i, ch) in owned_by_node_0("presence-fresh-", 20).iter().enumerate() {
        let c = &mut subs[i % 2];
        let me = format!(r#"{{"user_id":"u{i}"}}"#);
        let p = c.join(ch, &me).await;
        assert_eq!(p["count"], 1, "{p}");
        assert_eq!(h.publish(ch, "first", "p").await.status, 200);
        assert_eq!(c.recv_text_within(within).await, Some(event(ch, "p")));
    }
    // Unsubscribing and subscribing again, over and over (the node's interest goes off and
    // on each time; every `on` waits for its own ack, never an older one's).
    let ch = &owned_by_node_0("again-", 1)[0];
    for i in 0..30 {
        let c = &mut subs[i % 2];
        c.subscribe(ch).await;
        assert_eq!(h.publish(ch, "first", &i.to_string()).await.status, 200);
        assert_eq!(
            c.recv_text_within(within).await,
            Some(event(ch, &i.to_string()))
        );
        c.send(serde_json::json!({"event": "pusher:unsubscribe", "data": {"channel": ch}}))
            .await;
    }
    // Every wait ended with the owner's ack: none is left, none timed out.
    for i in 0..3 {
        let mut h = Http::metrics(cl.node(i)).await;
        let r = h.request("GET", "/stats", "").await;
        let c = &r.json()["cluster"];
        assert_eq!(c["interest_awaiting"], 0, "node {i}: {}", r.body);
        assert_eq!(c["interest_ack_timeouts"], 0, "node {i}: {}", r.body);
    }
}
