//! Private, encrypted and presence channels: signatures, members and the multi-tab rule.

mod common;
use common::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn private_channels_need_a_valid_signature() {
    let s = Server::start();
    let mut a = Client::connect(&s).await;
    let reply = a.subscribe_raw("private-chan", "app-key:00ff", None).await;
    assert_eq!(
        reply,
        r#"{"event":"pusher:subscription_error","channel":"private-chan","data":"{\"type\":\"AuthError\",\"error\":\"invalid signature for this socket and channel\",\"status\":401}"}"#
    );
    // A signature for another socket is refused too.
    let other = private_auth("1.2", "private-chan");
    assert!(a
        .subscribe_raw("private-chan", &other, None)
        .await
        .contains("subscription_error"));
    assert!(a
        .subscribe_raw("private-chan", "", None)
        .await
        .contains("subscription_error"));
    let mut h = Http::connect(&s).await;
    h.publish("private-chan", "secret", "x").await;
    a.expect_silence(Duration::from_millis(300)).await;

    a.subscribe_private("private-chan").await;
    h.publish("private-chan", "e", "hello").await;
    assert_eq!(
        a.recv_text().await,
        r#"{"event":"e","channel":"private-chan","data":"hello"}"#
    );
}

#[tokio::test]
async fn encrypted_channels_relay_untouched_and_refuse_client_events() {
    let s = Server::start();
    let mut a = Client::connect(&s).await;
    a.subscribe_private("private-encrypted-room").await;
    let mut h = Http::connect(&s).await;
    let payload = r#"{"nonce":"bm9uY2Vub25jZW5vbmNlbm9uY2Vub25j","ciphertext":"Y2lwaGVy"}"#;
    h.publish("private-encrypted-room", "e", payload).await;
    assert_eq!(
        a.recv_text().await,
        format!(
            r#"{{"event":"e","channel":"private-encrypted-room","data":{}}}"#,
            serde_json::to_string(payload).unwrap()
        )
    );
    a.send(json!({"event":"client-x","channel":"private-encrypted-room","data":{}}))
        .await;
    assert_eq!(
        a.recv_text().await,
        r#"{"event":"pusher:error","data":{"code":4315,"message":"client events are not allowed on encrypted channels"}}"#
    );
}

/// `user_info` reaches the other members exactly as the app signed it, `null` included.
#[tokio::test]
async fn a_signed_null_user_info_reaches_members_as_null() {
    let s = Server::start();
    let mut a = Client::connect(&s).await;
    a.join("presence-null", r#"{"user_id":"alice"}"#).await;
    let mut c = Client::connect(&s).await;
    let p = c
        .join("presence-null", r#"{"user_id":"carol","user_info":null}"#)
        .await;
    assert_eq!(
        p,
        json!({"ids":["alice","carol"],"hash":{"alice":null,"carol":null},"count":2})
    );
    assert_eq!(
        a.recv_text().await,
        r#"{"event":"pusher_internal:member_added","channel":"presence-null","data":"{\"user_id\":\"carol\",\"user_info\":null}"}"#
    );
}

#[tokio::test]
async fn presence_members_and_the_multi_tab_rule() {
    let s = Server::start();
    let alice = r#"{"user_id":"alice","user_info":{"name":"Alice"}}"#;
    let bob = r#"{"user_id":"bob","user_info":{"name":"Bob"}}"#;
    let mut a1 = Client::connect(&s).await;
    let p = a1.join("presence-room", alice).await;
    assert_eq!(
        p,
        json!({"ids":["alice"],"hash":{"alice":{"name":"Alice"}},"count":1})
    );
    // Alice's second tab: no member_added for anyone, one member.
    let mut a2 = Client::connect(&s).await;
    let p = a2.join("presence-room", alice).await;
    assert_eq!(p["count"], 1);
    a1.expect_silence(Duration::from_millis(200)).await;

    let mut b = Client::connect(&s).await;
    let p = b.join("presence-room", bob).await;
    assert_eq!(p["count"], 2);
    assert_eq!(p["ids"], json!(["alice", "bob"]));
    for a in [&mut a1, &mut a2] {
        assert_eq!(
            a.recv_text().await,
            r#"{"event":"pusher_internal:member_added","channel":"presence-room","data":"{\"user_id\":\"bob\",\"user_info\":{\"name\":\"Bob\"}}"}"#
        );
    }
    b.expect_silence(Duration::from_millis(200)).await;

    let mut h = Http::connect(&s).await;
    let r = h
        .signed("GET", "/apps/1/channels/presence-room/users", &[], "")
        .await;
    assert_eq!(r.body, r#"{"users":[{"id":"alice"},{"id":"bob"}]}"#);
    let r = h
        .signed(
            "GET",
            "/apps/1/channels/presence-room",
            &[("info", "user_count,subscription_count")],
            "",
        )
        .await;
    assert_eq!(
        r.body,
        r#"{"occupied":true,"user_count":2,"subscription_count":3}"#
    );
    let r = h
        .signed(
            "GET",
            "/apps/1/channels",
            &[("filter_by_prefix", "presence-"), ("info", "user_count")],
            "",
        )
        .await;
    assert_eq!(r.body, r#"{"channels":{"presence-room":{"user_count":2}}}"#);
    let r = h
        .signed("GET", "/apps/1/channels/public/users", &[], "")
        .await;
    assert_eq!(r.status, 400);

    // Alice closes one tab: nothing. Closes the last: member_removed, once.
    drop(a1);
    b.expect_silence(Duration::from_millis(300)).await;
    drop(a2);
    assert_eq!(
        b.recv_text().await,
        r#"{"event":"pusher_internal:member_removed","channel":"presence-room","data":"{\"user_id\":\"alice\"}"}"#
    );
    b.expect_silence(Duration::from_millis(300)).await;
    let r = h
        .signed("GET", "/apps/1/channels/presence-room/users", &[], "")
        .await;
    assert_eq!(r.body, r#"{"users":[{"id":"bob"}]}"#);
}

#[tokio::test]
async fn presence_refusals_and_member_limit() {
    let s = Server::start_with("[[apps]]\nid = \"1\"\nkey = \"app-key\"\nsecret = \"app-secret\"\nmax_presence_members = 2\n");
    let mut c = Client::connect(&s).await;
    let data = r#"{"user_id":"u1"}"#;
    let r = c
        .subscribe_raw(
            "presence-x",
            &presence_auth(&c.socket_id.clone(), "presence-x", data),
            None,
        )
        .await;
    assert!(r.contains("presence channels need channel_data"), "{r}");
    let r = c
        .subscribe_raw("presence-x", "app-key:00", Some(data))
        .await;
    assert!(r.contains("\\\"status\\\":401"), "{r}");
    let bad = r#"{"name":"no id"}"#;
    let r = c
        .subscribe_raw(
            "presence-x",
            &presence_auth(&c.socket_id.clone(), "presence-x", bad),
            Some(bad),
        )
        .await;
    assert_eq!(
        r,
        r#"{"event":"pusher:subscription_error","channel":"presence-x","data":"{\"type\":\"InvalidChannelData\",\"error\":\"channel_data must be a JSON object with a user_id\",\"status\":400}"}"#
    );
    let big = format!(
        r#"{{"user_id":"u","user_info":{{"x":"{}"}}}}"#,
        "y".repeat(1100)
    );
    let r = c
        .subscribe_raw(
            "presence-x",
            &presence_auth(&c.socket_id.clone(), "presence-x", &big),
            Some(&big),
        )
        .await;
    assert!(r.contains("user_info larger than 1024 bytes"), "{r}");

    let mut members = Vec::new();
    for u in ["u1", "u2"] {
        let mut m = Client::connect(&s).await;
        m.join("presence-x", &format!(r#"{{"user_id":"{u}"}}"#))
            .await;
        members.push(m);
    }
    let mut third = Client::connect(&s).await;
    let d = r#"{"user_id":"u3"}"#;
    let r = third
        .subscribe_raw(
            "presence-x",
            &presence_auth(&third.socket_id.clone(), "presence-x", d),
            Some(d),
        )
        .await;
    assert_eq!(
        r,
        r#"{"event":"pusher:subscription_error","channel":"presence-x","data":"{\"type\":\"LimitReached\",\"error\":\"presence channel is full (2 members)\",\"status\":403}"}"#
    );
    // An existing member may still open another tab.
    let mut tab = Client::connect(&s).await;
    assert_eq!(
        tab.join("presence-x", r#"{"user_id":"u1"}"#).await["count"],
        2
    );
}

#[tokio::test]
async fn privileged_presence_channels() {
    let s = Server::start();
    let ch = "presence-privileged-ward";
    let mut nurse = Client::connect(&s).await;
    let p = nurse
        .join(ch, r#"{"user_id":"nurse","privileged":true}"#)
        .await;
    assert_eq!(p["count"], 1);
    let mut patient = Client::connect(&s).await;
    let p = patient
        .join(ch, r#"{"user_id":"patient","user_info":{"bed":4}}"#)
        .await;
    // Unprivileged members see only themselves.
    assert_eq!(
        p,
        json!({"ids":["patient"],"hash":{"patient":{"bed":4}},"count":1})
    );
    // The privileged member sees them arrive.
    assert!(nurse.recv_text().await.contains("member_added"));
    let mut visitor = Client::connect(&s).await;
    visitor.join(ch, r#"{"user_id":"visitor"}"#).await;
    assert!(nurse.recv_text().await.contains("\\\"visitor\\\""));
    patient.expect_silence(Duration::from_millis(200)).await;
    // Everyone receives events.
    let mut h = Http::connect(&s).await;
    h.publish(ch, "round", "now").await;
    for c in [&mut nurse, &mut patient, &mut visitor] {
        assert_eq!(
            c.recv_text().await,
            format!(r#"{{"event":"round","channel":"{ch}","data":"now"}}"#)
        );
    }
    // Only privileged members send client events.
    patient
        .send(json!({"event":"client-hi","channel":ch,"data":{}}))
        .await;
    assert_eq!(patient.recv().await["data"]["code"], 4315);
    nurse
        .send(json!({"event":"client-hi","channel":ch,"data":{"x":1}}))
        .await;
    assert_eq!(
        patient.recv_text().await,
        format!(
            r#"{{"event":"client-hi","channel":"{ch}","data":"{{\"x\":1}}","user_id":"nurse"}}"#
        )
    );
    // Leaving is seen only by the privileged.
    drop(visitor);
    assert!(nurse.recv_text().await.contains("member_removed"));
    patient.expect_silence(Duration::from_millis(300)).await;
}

/// Polls `GET /apps/1/channels/{channel}/users` until its ids are `want` (in any order;
/// for 1 s).
async fn users_become(h: &mut Http, channel: &str, want: &[&str]) {
    let path = format!("/apps/1/channels/{channel}/users");
    let mut ids = Vec::new();
    for _ in 0..50 {
        let r = h.signed("GET", &path, &[], "").await;
        ids = r.json()["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>();
        ids.sort();
        if ids == want {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(ids, want);
}

/// A connection that joins as one user, leaves and joins as another before the first
/// answer arrives ends up as the second user only; the first leaves no ghost member.
#[tokio::test]
async fn rejoining_as_another_user_before_the_answer_leaves_no_ghost() {
    let s = Server::start();
    let ch = "presence-switch";
    let mut w = Client::connect(&s).await;
    w.join(ch, r#"{"user_id":"w"}"#).await;
    let mut x = Client::connect(&s).await;
    let msgs = [
        join_message(&x, ch, "alice"),
        serde_json::json!({"event": "pusher:unsubscribe", "data": {"channel": ch}}),
        join_message(&x, ch, "bob"),
    ];
    send_together(&mut x, &msgs).await;
    PresenceView::succeeded(&mut x, ch).await;
    let mut h = Http::connect(&s).await;
    users_become(&mut h, ch, &["bob", "w"]).await;
    drop(x);
    users_become(&mut h, ch, &["w"]).await;
}
