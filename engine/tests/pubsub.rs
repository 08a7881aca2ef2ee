//! Subscribing and receiving events published through the signed HTTP API.

mod common;
use common::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn publish_reaches_subscriber_exactly() {
    let s = Server::start();
    let mut c = Client::connect(&s).await;
    c.subscribe("my-photo-gallery/123/comments").await;
    let mut h = Http::connect(&s).await;
    let r = h
        .publish(
            "my-photo-gallery/123/comments",
            "my-event",
            "{\"hello\": \"world\"}",
        )
        .await;
    assert_eq!((r.status, r.body.as_str()), (200, "{}"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        c.recv_text().await,
        r#"{"event":"my-event","channel":"my-photo-gallery/123/comments","data":"{\"hello\": \"world\"}"}"#
    );
}

#[tokio::test]
async fn multi_channel_batch_and_exclusion() {
    let s = Server::start();
    let mut a = Client::connect(&s).await;
    let mut b = Client::connect(&s).await;
    for ch in ["c1", "c2"] {
        a.subscribe(ch).await;
        b.subscribe(ch).await;
    }
    let mut h = Http::connect(&s).await;
    let body = json!({"name":"e","channels":["c1","c2"],"data":"x"}).to_string();
    assert_eq!(
        h.signed("POST", "/apps/1/events", &[], &body).await.status,
        200
    );
    for c in [&mut a, &mut b] {
        let mut got = vec![c.recv_text().await, c.recv_text().await];
        got.sort();
        assert_eq!(
            got,
            vec![
                r#"{"event":"e","channel":"c1","data":"x"}"#,
                r#"{"event":"e","channel":"c2","data":"x"}"#
            ]
        );
    }
    // socket_id exclusion: a does not get its own event, b does.
    let body = json!({"name":"e2","channel":"c1","data":"y","socket_id":a.socket_id}).to_string();
    assert_eq!(
        h.signed("POST", "/apps/1/events", &[], &body).await.status,
        200
    );
    assert_eq!(
        b.recv_text().await,
        r#"{"event":"e2","channel":"c1","data":"y"}"#
    );
    a.expect_silence(Duration::from_millis(300)).await;

    let body = json!({"batch":[{"channel":"c1","name":"b1","data":"1"},{"channel":"c2","name":"b2","data":"2","socket_id":b.socket_id}]}).to_string();
    let r = h.signed("POST", "/apps/1/batch_events", &[], &body).await;
    assert_eq!((r.status, r.body.as_str()), (200, "{}"));
    let mut got = vec![a.recv_text().await, a.recv_text().await];
    got.sort();
    assert_eq!(
        got,
        vec![
            r#"{"event":"b1","channel":"c1","data":"1"}"#,
            r#"{"event":"b2","channel":"c2","data":"2"}"#
        ]
    );
    assert_eq!(
        b.recv_text().await,
        r#"{"event":"b1","channel":"c1","data":"1"}"#
    );
    b.expect_silence(Duration::from_millis(300)).await;
}

async fn info(h: &mut Http, ch: &str) -> String {
    let path = format!("/apps/1/channels/{ch}");
    h.signed("GET", &path, &[("info", "subscription_count")], "")
        .await
        .body
}

#[tokio::test]
async fn unsubscribe_stops_delivery_and_channel_info_follows() {
    let s = Server::start();
    let mut h = Http::connect(&s).await;
    assert_eq!(
        info(&mut h, "room").await,
        r#"{"occupied":false,"subscription_count":0}"#
    );
    let mut conns = Vec::new();
    for _ in 0..6 {
        let mut c = Client::connect(&s).await;
        c.subscribe("room").await;
        conns.push(c);
    }
    assert_eq!(
        info(&mut h, "room").await,
        r#"{"occupied":true,"subscription_count":6}"#
    );
    let r = h.signed("GET", "/apps/1/channels/room", &[], "").await;
    assert_eq!(r.body, r#"{"occupied":true}"#);

    let mut first = conns.remove(0);
    first
        .send(json!({"event":"pusher:unsubscribe","data":{"channel":"room"}}))
        .await;
    // Unsubscribe is asynchronous to the owner; wait until it is counted.
    let mut body = String::new();
    for _ in 0..50 {
        body = info(&mut h, "room").await;
        if body.contains("\"subscription_count\":5") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(body, r#"{"occupied":true,"subscription_count":5}"#);
    h.publish("room", "e", "d").await;
    for c in conns.iter_mut() {
        assert_eq!(
            c.recv_text().await,
            r#"{"event":"e","channel":"room","data":"d"}"#
        );
    }
    first.expect_silence(Duration::from_millis(300)).await;

    // Closing connections vacates the channel.
    drop(conns);
    let mut body = String::new();
    for _ in 0..100 {
        body = info(&mut h, "room").await;
        if body.contains("false") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(body, r#"{"occupied":false,"subscription_count":0}"#);
}

#[tokio::test]
async fn channel_listing_and_publish_info() {
    let s = Server::start();
    let mut clients = Vec::new();
    for ch in ["news", "news-eu", "sport", "news-eu"] {
        let mut c = Client::connect(&s).await;
        c.subscribe(ch).await;
        clients.push(c);
    }
    let mut h = Http::connect(&s).await;
    let r = h.signed("GET", "/apps/1/channels", &[], "").await;
    assert_eq!(
        r.body,
        r#"{"channels":{"news":{},"news-eu":{},"sport":{}}}"#
    );
    let r = h
        .signed(
            "GET",
            "/apps/1/channels",
            &[("filter_by_prefix", "news")],
            "",
        )
        .await;
    assert_eq!(r.body, r#"{"channels":{"news":{},"news-eu":{}}}"#);
    let r = h
        .signed("GET", "/apps/1/channels", &[("info", "user_count")], "")
        .await;
    assert_eq!(r.status, 400);
    let r = h
        .signed(
            "GET",
            "/apps/1/channels/news",
            &[("info", "user_count")],
            "",
        )
        .await;
    assert_eq!(r.status, 400);

    let body =
        json!({"name":"e","channels":["news-eu","empty"],"data":"x","info":"subscription_count"})
            .to_string();
    let r = h.signed("POST", "/apps/1/events", &[], &body).await;
    assert_eq!(
        r.body,
        r#"{"channels":{"empty":{"subscription_count":0},"news-eu":{"subscription_count":2}}}"#
    );
    let body = json!({"batch":[{"channel":"news","name":"a","data":"1","info":"subscription_count"},{"channel":"sport","name":"b","data":"2"}]}).to_string();
    let r = h.signed("POST", "/apps/1/batch_events", &[], &body).await;
    assert_eq!(r.body, r#"{"batch":[{"subscription_count":1},{}]}"#);
}

#[tokio::test]
async fn python_sdk_request_shape_is_accepted() {
    // The PyPI SDK sends body_md5 of the empty body on GET and sorts auth_signature in.
    let s = Server::start();
    let mut h = Http::connect(&s).await;
    let ts = now().to_string();
    let md5_empty = "d41d8cd98f00b204e9800998ecf8427e";
    let q = format!("auth_key=app-key&auth_timestamp={ts}&auth_version=1.0&body_md5={md5_empty}&info=subscription_count");
    let sig = hmac_hex(SECRET, &format!("GET\n/apps/1/channels/x\n{q}"));
    let target = format!("/apps/1/channels/x?auth_key=app-key&auth_signature={sig}&auth_timestamp={ts}&auth_version=1.0&body_md5={md5_empty}&info=subscription_count");
    let r = h.request("GET", &target, "").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, r#"{"occupied":false,"subscription_count":0}"#)
    );
    // Python JSON spacing in the body is signed and relayed byte-exact.
    let body =
        r#"{"name": "my-event", "channels": ["my-channel"], "data": "{\"message\": \"hello\"}"}"#;
    let mut c = Client::connect(&s).await;
    c.subscribe("my-channel").await;
    let r = h.signed("POST", "/apps/1/events", &[], body).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        c.recv_text().await,
        r#"{"event":"my-event","channel":"my-channel","data":"{\"message\": \"hello\"}"}"#
    );
}

#[tokio::test]
async fn resubscribe_and_duplicate_subscribe_are_idempotent() {
    let s = Server::start();
    let mut c = Client::connect(&s).await;
    c.subscribe("x").await;
    c.subscribe("x").await; // succeeded again, still one subscription
    c.send(json!({"event":"pusher:unsubscribe","data":{"channel":"x"}}))
        .await;
    c.subscribe("x").await;
    let mut h = Http::connect(&s).await;
    let mut body = String::new();
    for _ in 0..50 {
        body = h
            .signed(
                "GET",
                "/apps/1/channels/x",
                &[("info", "subscription_count")],
                "",
            )
            .await
            .body;
        if body.contains(":1}") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(body, r#"{"occupied":true,"subscription_count":1}"#);
    h.publish("x", "e", "once").await;
    assert_eq!(
        c.recv_text().await,
        r#"{"event":"e","channel":"x","data":"once"}"#
    );
    c.expect_silence(Duration::from_millis(300)).await;
}
