//! Wildcard subscriptions (docs/protocol.md "Wildcard subscriptions", ADR 0012): one
//! subscription to a pattern gets the events of every matching channel, per-channel order
//! kept, none of a channel it does not match, only channels the client may read.

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;

async fn subscribe_raw(c: &mut Client, channel: &str, auth: Option<&str>) -> Value {
    let mut data = json!({ "channel": channel });
    if let Some(a) = auth {
        data["auth"] = a.into();
    }
    c.send(json!({"event":"pusher:subscribe","data":data}))
        .await;
    c.recv().await
}

#[tokio::test]
async fn a_pattern_gets_every_matching_channel_in_order() {
    let server = Server::start();
    let mut c = Client::connect(&server).await;
    assert_eq!(
        subscribe_raw(&mut c, "gallery/*/comments", None).await,
        json!({"event":"pusher_internal:subscription_succeeded","channel":"gallery/*/comments","data":"{}"})
    );
    let mut api = Http::connect(&server).await;
    // Interleaved over three matching channels and one that does not match.
    for i in 0..30 {
        let ch = [
            "gallery/1/comments",
            "gallery/2/comments",
            "gallery/3/comments",
        ][i % 3];
        assert_eq!(
            api.publish(ch, "new-comment", &i.to_string()).await.status,
            200
        );
        api.publish("gallery/1/likes", "like", "x").await;
    }
    let mut per_channel: std::collections::BTreeMap<String, Vec<u32>> = Default::default();
    for _ in 0..30 {
        let m = c.recv().await;
        assert_eq!(m["event"], "new-comment", "{m}");
        assert_eq!(m["channel"], "gallery/*/comments");
        let src = m["source_channel"].as_str().unwrap().to_string();
        per_channel
            .entry(src)
            .or_default()
            .push(m["data"].as_str().unwrap().parse().unwrap());
    }
    assert_eq!(
        per_channel["gallery/1/comments"],
        (0..30).step_by(3).collect::<Vec<_>>()
    );
    assert_eq!(
        per_channel["gallery/2/comments"],
        (1..30).step_by(3).collect::<Vec<_>>()
    );
    assert_eq!(
        per_channel["gallery/3/comments"],
        (2..30).step_by(3).collect::<Vec<_>>()
    );
    c.expect_silence(Duration::from_millis(300)).await;

    // The exact frame, and `**` for any depth.
    assert_eq!(
        subscribe_raw(&mut c, "orders/**", None).await["event"],
        "pusher_internal:subscription_succeeded"
    );
    api.publish("orders/7/items/2", "added", "{\"n\":1}").await;
    assert_eq!(
        c.recv_text().await,
        r#"{"event":"added","channel":"orders/**","data":"{\"n\":1}","source_channel":"orders/7/items/2"}"#
    );
    // Unsubscribed: nothing more.
    c.send(json!({"event":"pusher:unsubscribe","data":{"channel":"orders/**"}}))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    api.publish("orders/7", "added", "x").await;
    c.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn only_channels_the_client_may_read() {
    let server = Server::start();
    let mut c = Client::connect(&server).await;
    let refused = |channel: &str, kind: &str, error: &str, status: u16| {
        let error = serde_json::to_string(error).unwrap();
        let data = format!(r#"{{"type":"{kind}","error":{error},"status":{status}}}"#);
        json!({"event":"pusher:subscription_error","channel":channel,"data":data})
    };
    assert_eq!(
        subscribe_raw(&mut c, "*/comments", None).await,
        refused(
            "*/comments",
            "PatternError",
            "a pattern's first segment must be a literal name (e.g. `gallery/*/comments`)",
            400
        )
    );
    assert_eq!(
        subscribe_raw(&mut c, "presence-room/*", None).await,
        refused("presence-room/*", "PatternError", "patterns cover public and private channels only (not presence, encrypted, cache or user channels)", 400)
    );
    assert_eq!(
        subscribe_raw(&mut c, "a/b*", None).await,
        refused(
            "a/b*",
            "PatternError",
            "`*` and `**` must be whole `/`-separated segments",
            400
        )
    );
    let auth = private_auth(&c.socket_id, "private-team/*");
    assert_eq!(
        subscribe_raw(&mut c, "private-team/*", Some(&auth)).await,
        refused("private-team/*", "TokenRequired", "a private pattern (or any, where the app requires tokens) needs an access token whose read grant covers it", 403)
    );
    // A public pattern never reaches a private channel: they never share a first segment.
    assert_eq!(
        subscribe_raw(&mut c, "team/*", None).await["event"],
        "pusher_internal:subscription_succeeded"
    );
    let mut api = Http::connect(&server).await;
    api.publish("private-team/x", "secret", "s").await;
    c.expect_silence(Duration::from_millis(300)).await;

    // A grant whose glob happens to match the pattern's text does not cover its channels.
    let narrow = api
        .signed(
            "POST",
            "/apps/1/tokens",
            &[],
            r#"{"read":["private-team/?"],"ttl_secs":600}"#,
        )
        .await;
    let narrow = narrow.json()["token"].as_str().unwrap().to_string();
    let r = subscribe_raw(&mut c, "private-team/*", Some(&narrow)).await;
    assert_eq!(
        (r["event"].as_str(), r["channel"].as_str()),
        (Some("pusher:subscription_error"), Some("private-team/*"))
    );
    assert!(r["data"].as_str().unwrap().contains("TokenRequired"), "{r}");
    // With a token granting the pattern.
    let minted = api
        .signed(
            "POST",
            "/apps/1/tokens",
            &[],
            r#"{"read":["private-team/*"],"ttl_secs":600}"#,
        )
        .await;
    let token = minted.json()["token"].as_str().unwrap().to_string();
    assert_eq!(
        subscribe_raw(&mut c, "private-team/*", Some(&token)).await["event"],
        "pusher_internal:subscription_succeeded"
    );
    api.publish("private-team/x", "secret", "s").await;
    let m = c.recv().await;
    assert_eq!(
        (m["channel"].as_str(), m["source_channel"].as_str()),
        (Some("private-team/*"), Some("private-team/x"))
    );
    // Client events go to channels, not patterns; the API refuses a pattern as a channel.
    c.send(json!({"event":"client-x","channel":"private-team/*","data":{}}))
        .await;
    assert_eq!(
        c.recv().await,
        json!({"event":"pusher:error","data":{"code":4315,"message":"client events go to a channel, not to a wildcard subscription"}})
    );
    assert_eq!(api.publish("private-team/*", "e", "x").await.status, 400);
}

/// Many patterns registered under other first segments cost a publish nothing, and two
/// subscribers of one pattern on different shards both get its events (the pattern's owner
/// fans out like any channel's).
#[tokio::test]
async fn many_patterns_and_many_subscribers() {
    let server = Server::start();
    let mut holders = Vec::new();
    let mut c = Client::connect(&server).await;
    for i in 0..50 {
        assert_eq!(
            subscribe_raw(&mut c, &format!("ns{i}/*/x"), None).await["event"],
            "pusher_internal:subscription_succeeded"
        );
    }
    holders.push(c);
    let mut subs = Vec::new();
    for _ in 0..4 {
        let mut s = Client::connect(&server).await;
        subscribe_raw(&mut s, "feed/*", None).await;
        subs.push(s);
    }
    let mut api = Http::connect(&server).await;
    api.publish("feed/a", "e", "1").await;
    api.publish("plain", "e", "2").await;
    for s in &mut subs {
        let m = s.recv().await;
        assert_eq!(
            (m["data"].as_str(), m["source_channel"].as_str()),
            (Some("1"), Some("feed/a"))
        );
        s.expect_silence(Duration::from_millis(100)).await;
    }
}

/// Across three nodes: the subscriber on node 1, the channels owned all over the cluster,
/// the publishes entering on nodes 2 and 3; each channel's events in order, none of a
/// channel the pattern does not match.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_a_cluster() {
    use common::cluster::{wait_linked, Cluster};
    let cl = Cluster::start(3);
    wait_linked(&cl, 3).await;
    let mut c = Client::connect(cl.node(0)).await;
    assert_eq!(
        subscribe_raw(&mut c, "gallery/*/comments", None).await["event"],
        "pusher_internal:subscription_succeeded"
    );
    let mut api = [
        Http::connect(cl.node(1)).await,
        Http::connect(cl.node(2)).await,
    ];
    let channels: Vec<String> = (0..9).map(|i| format!("gallery/{i}/comments")).collect();
    for n in 0..90 {
        let ch = &channels[n % 9];
        assert_eq!(
            api[n % 2].publish(ch, "c", &n.to_string()).await.status,
            200
        );
        api[(n + 1) % 2]
            .publish(&format!("gallery/{}/likes", n % 9), "l", "x")
            .await;
    }
    let mut per_channel: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
    for _ in 0..90 {
        let m = c.recv().await;
        assert_eq!(
            (m["event"].as_str(), m["channel"].as_str()),
            (Some("c"), Some("gallery/*/comments")),
            "{m}"
        );
        let src = m["source_channel"].as_str().unwrap().to_string();
        per_channel
            .entry(src)
            .or_default()
            .push(m["data"].as_str().unwrap().parse().unwrap());
    }
    for (i, ch) in channels.iter().enumerate() {
        assert_eq!(
            per_channel[ch],
            (i..90).step_by(9).collect::<Vec<_>>(),
            "{ch}"
        );
    }
    c.expect_silence(Duration::from_millis(300)).await;
}
