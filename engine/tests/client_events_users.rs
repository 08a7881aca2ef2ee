//! Client events, cache channels, subscription counts, user sign-in, messages to users,
//! terminate, the watchlist and authorized connections.

mod common;
use common::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn client_events_rules() {
    let s = Server::start_with("[[apps]]\nid = \"1\"\nkey = \"app-key\"\nsecret = \"app-secret\"\nclient_events_per_second = 3\n");
    let mut a = Client::connect(&s).await;
    let mut b = Client::connect(&s).await;
    a.subscribe_private("private-chat").await;
    b.subscribe_private("private-chat").await;
    a.send(json!({"event":"client-typing","channel":"private-chat","data":{"on":true}}))
        .await;
    assert_eq!(
        b.recv_text().await,
        r#"{"event":"client-typing","channel":"private-chat","data":"{\"on\":true}"}"#
    );
    a.expect_silence(Duration::from_millis(200)).await; // not echoed

    // Not subscribed, public channel: refused.
    a.send(json!({"event":"client-x","channel":"private-other","data":{}}))
        .await;
    assert_eq!(
        a.recv_text().await,
        r#"{"event":"pusher:error","data":{"code":4315,"message":"subscribe to the channel before sending client events"}}"#
    );
    a.subscribe("pub").await;
    a.send(json!({"event":"client-x","channel":"pub","data":{}}))
        .await;
    assert_eq!(a.recv().await["data"]["code"], 4315);

    // Rate limit: 3 per second (one already used), then 4301, connection kept.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for i in 0..3 {
        a.send(json!({"event":"client-n","channel":"private-chat","data":{"i":i}}))
            .await;
    }
    a.send(json!({"event":"client-n","channel":"private-chat","data":{"i":3}}))
        .await;
    assert_eq!(
        a.recv_text().await,
        r#"{"event":"pusher:error","data":{"code":4301,"message":"Client event rejected due to rate limit"}}"#
    );
    for i in 0..3 {
        assert_eq!(
            b.recv_text().await,
            format!(r#"{{"event":"client-n","channel":"private-chat","data":"{{\"i\":{i}}}"}}"#)
        );
    }
    b.expect_silence(Duration::from_millis(200)).await;

    // On presence channels the relayed event carries user_id.
    let mut p1 = Client::connect(&s).await;
    let mut p2 = Client::connect(&s).await;
    p1.join("presence-x", r#"{"user_id":"u1"}"#).await;
    p2.join("presence-x", r#"{"user_id":"u2"}"#).await;
    p1.recv_text().await; // member_added u2
    p2.send(json!({"event":"client-hi","channel":"presence-x","data":"plain"}))
        .await;
    assert_eq!(
        p1.recv_text().await,
        r#"{"event":"client-hi","channel":"presence-x","data":"plain","user_id":"u2"}"#
    );
}

#[tokio::test]
async fn client_events_can_be_disabled() {
    let s = Server::start_with("[[apps]]\nid = \"1\"\nkey = \"app-key\"\nsecret = \"app-secret\"\nenable_client_events = false\n");
    let mut a = Client::connect(&s).await;
    a.subscribe_private("private-chat").await;
    a.send(json!({"event":"client-typing","channel":"private-chat","data":{}}))
        .await;
    assert_eq!(
        a.recv_text().await,
        r#"{"event":"pusher:error","data":{"code":4315,"message":"client events are disabled for this app"}}"#
    );
}

#[tokio::test]
async fn cache_channels_replay_the_last_event() {
    let s = Server::start();
    let mut a = Client::connect(&s).await;
    a.subscribe("cache-price").await;
    assert_eq!(
        a.recv_text().await,
        r#"{"event":"pusher:cache_miss","channel":"cache-price"}"#
    );
    let mut h = Http::connect(&s).await;
    h.publish("cache-price", "tick", "1").await;
    h.publish("cache-price", "tick", "2").await;
    assert_eq!(
        a.recv_text().await,
        r#"{"event":"tick","channel":"cache-price","data":"1"}"#
    );
    assert_eq!(
        a.recv_text().await,
        r#"{"event":"tick","channel":"cache-price","data":"2"}"#
    );
    let mut b = Client::connect(&s).await;
    b.subscribe("cache-price").await;
    assert_eq!(
        b.recv_text().await,
        r#"{"event":"tick","channel":"cache-price","data":"2"}"#
    );
    let r = h
        .signed(
            "GET",
            "/apps/1/channels/cache-price",
            &[("info", "cache")],
            "",
        )
        .await;
    let v = r.json();
    assert_eq!(v["occupied"], true);
    assert_eq!(v["cache"]["data"], "2");
    let ttl = v["cache"]["ttl"].as_u64().unwrap();
    assert!((1790..=1800).contains(&ttl), "{ttl}");
    // Private cache channels too; the cache outlives the subscribers.
    drop(a);
    drop(b);
    let mut c = Client::connect(&s).await;
    c.subscribe_private("private-cache-x").await;
    assert_eq!(
        c.recv_text().await,
        r#"{"event":"pusher:cache_miss","channel":"private-cache-x"}"#
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut d = Client::connect(&s).await;
    d.subscribe("cache-price").await;
    assert_eq!(
        d.recv_text().await,
        r#"{"event":"tick","channel":"cache-price","data":"2"}"#
    );
}

#[tokio::test]
async fn subscription_count_events_when_enabled() {
    let s = Server::start_with("[[apps]]\nid = \"1\"\nkey = \"app-key\"\nsecret = \"app-secret\"\nenable_subscription_count = true\n");
    let mut a = Client::connect(&s).await;
    a.subscribe("room").await;
    assert_eq!(
        a.recv_text().await,
        r#"{"event":"pusher_internal:subscription_count","channel":"room","data":"{\"subscription_count\":1}"}"#
    );
    let mut b = Client::connect(&s).await;
    b.subscribe("room").await;
    for c in [&mut a, &mut b] {
        assert_eq!(
            c.recv_text().await,
            r#"{"event":"pusher_internal:subscription_count","channel":"room","data":"{\"subscription_count\":2}"}"#
        );
    }
    drop(b);
    assert_eq!(
        a.recv_text().await,
        r#"{"event":"pusher_internal:subscription_count","channel":"room","data":"{\"subscription_count\":1}"}"#
    );
}

#[tokio::test]
async fn signin_user_channel_messages_and_terminate() {
    let s = Server::start();
    let ud = r#"{"id":"u-42","user_info":{"name":"Alice"}}"#;
    // Two connections of the same user, likely on different shards, plus someone else.
    let mut tabs = Vec::new();
    for _ in 0..4 {
        let mut c = Client::connect(&s).await;
        let ok = c.signin(ud).await;
        assert_eq!(
            ok,
            format!(
                r#"{{"event":"pusher:signin_success","data":{{"user_data":{}}}}}"#,
                serde_json::to_string(ud).unwrap()
            )
        );
        c.subscribe("#server-to-user-u-42").await;
        tabs.push(c);
    }
    let shards: std::collections::HashSet<u64> = tabs
        .iter()
        .map(|c| {
            c.socket_id
                .split('.')
                .nth(1)
                .unwrap()
                .parse::<u64>()
                .unwrap()
                % 2
        })
        .collect();
    let mut other = Client::connect(&s).await;
    assert!(other
        .signin("{\"id\":\"u-7\"}")
        .await
        .contains("signin_success"));
    let r = other.subscribe_raw("#server-to-user-u-42", "", None).await;
    assert!(r.contains("subscription_error") && r.contains("403"), "{r}");
    // A bad signature.
    let mut bad = Client::connect(&s).await;
    bad.send(json!({"event":"pusher:signin","data":{"auth":"app-key:00","user_data":ud}}))
        .await;
    assert_eq!(bad.recv().await["data"]["code"], 4314);

    let mut h = Http::connect(&s).await;
    let body =
        json!({"name":"notice","channels":["#server-to-user-u-42"],"data":"{\"x\":1}"}).to_string();
    assert_eq!(
        h.signed("POST", "/apps/1/events", &[], &body).await.status,
        200
    );
    for t in tabs.iter_mut() {
        assert_eq!(
            t.recv_text().await,
            r##"{"event":"notice","channel":"#server-to-user-u-42","data":"{\"x\":1}"}"##
        );
    }
    other.expect_silence(Duration::from_millis(200)).await;
    assert!(!shards.is_empty());

    // Terminate via the Node SDK path closes every connection of the user, and nobody else's.
    let r = h
        .signed(
            "POST",
            "/apps/1/users/u-42/terminate_connections",
            &[],
            "{}",
        )
        .await;
    assert_eq!((r.status, r.body.as_str()), (200, "{}"));
    for t in tabs.iter_mut().take(2) {
        assert_eq!(t.expect_close().await, 4009);
    }
    // The PyPI SDK path (no /apps/{id} prefix).
    let r = h
        .signed("POST", "/users/u-42/terminate_connections", &[], "{}")
        .await;
    assert_eq!(r.status, 200);
    for t in tabs.iter_mut().skip(2) {
        assert_eq!(t.expect_close().await, 4009);
    }
    other.send(json!({"event":"pusher:ping","data":{}})).await;
    assert!(other.recv_text().await.contains("pusher:pong"));
}

#[tokio::test]
async fn watchlist_online_and_offline() {
    let s = Server::start();
    let mut watcher = Client::connect(&s).await;
    assert!(watcher
        .signin(r#"{"id":"w","watchlist":["friend"]}"#)
        .await
        .contains("signin_success"));
    assert_eq!(
        watcher.recv_text().await,
        r#"{"event":"pusher_internal:watchlist_events","data":{"events":[{"name":"offline","user_ids":["friend"]}]}}"#
    );
    let mut f1 = Client::connect(&s).await;
    f1.signin(r#"{"id":"friend"}"#).await;
    assert_eq!(
        watcher.recv_text().await,
        r#"{"event":"pusher_internal:watchlist_events","data":{"events":[{"name":"online","user_ids":["friend"]}]}}"#
    );
    let mut f2 = Client::connect(&s).await;
    f2.signin(r#"{"id":"friend"}"#).await;
    watcher.expect_silence(Duration::from_millis(200)).await;
    drop(f1);
    watcher.expect_silence(Duration::from_millis(300)).await;
    drop(f2);
    assert_eq!(
        watcher.recv_text().await,
        r#"{"event":"pusher_internal:watchlist_events","data":{"events":[{"name":"offline","user_ids":["friend"]}]}}"#
    );
}

#[tokio::test]
async fn authorized_connections_timeout() {
    let s = Server::start_with(
        "[[apps]]\nid = \"1\"\nkey = \"app-key\"\nsecret = \"app-secret\"\nauthorized_connections_timeout_secs = 1\n",
    );
    let mut anon = Client::connect(&s).await;
    let mut signed = Client::connect(&s).await;
    signed.signin(r#"{"id":"a"}"#).await;
    let mut private = Client::connect(&s).await;
    private.subscribe_private("private-x").await;
    assert_eq!(
        anon.recv_text_within(Duration::from_secs(4)).await.unwrap(),
        r#"{"event":"pusher:error","data":{"code":4009,"message":"connection not authorized within 1 s"}}"#
    );
    assert_eq!(anon.expect_close().await, 4009);
    tokio::time::sleep(Duration::from_millis(500)).await;
    for c in [&mut signed, &mut private] {
        c.send(json!({"event":"pusher:ping","data":{}})).await;
        assert!(c.recv_text().await.contains("pusher:pong"));
    }
}
