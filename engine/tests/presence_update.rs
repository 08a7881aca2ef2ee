//! Presence state updates on one node (docs/protocol.md, "Presence updates"):
//! `POST /apps/{id}/users/{user_id}/presence` replaces a member's `user_info` without a
//! rejoin. Every subscriber of the channel, the member's own connections included, gets
//! `raptor:member_updated`; a later joiner's `subscription_succeeded` lists the new info;
//! the `member_updated` webhook fires once per channel; bad input answers 400.

mod common;
use common::cluster::webhook_events;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// The app, with a webhook that wants only `member_updated` (so `event_types` accepts it).
fn config(url: &str) -> String {
    format!(
        "[[apps]]\nid = \"1\"\nkey = \"{KEY}\"\nsecret = \"{SECRET}\"\n\
         [[apps.webhooks]]\nurl = \"{url}\"\nevent_types = [\"member_updated\"]\n"
    )
}

async fn update(h: &mut Http, user: &str, body: &Value) -> Resp {
    let path = format!("/apps/1/users/{user}/presence");
    h.signed("POST", &path, &[], &body.to_string()).await
}

fn updated(channel: &str, data: &str) -> String {
    format!(
        r#"{{"event":"raptor:member_updated","channel":"{channel}","data":{}}}"#,
        serde_json::to_string(data).unwrap()
    )
}

/// Reads until the next `raptor:member_updated` (member events of joins are skipped).
async fn next_update(c: &mut Client) -> String {
    loop {
        let t = c.recv_text().await;
        if t.contains("raptor:member_updated") {
            return t;
        }
        assert!(t.contains("pusher_internal:member_"), "unexpected: {t}");
    }
}

#[tokio::test]
async fn an_update_reaches_every_member_and_later_joiners() {
    let (url, hooks) = webhook_events();
    let s = Server::start_with(&config(&url));
    let ch = "presence-room";
    // u1 with two tabs (their infos differ), u2 on another connection.
    let mut a1 = Client::connect(&s).await;
    a1.join(ch, r#"{"user_id":"u1","user_info":{"name":"Ada"}}"#)
        .await;
    let mut a2 = Client::connect(&s).await;
    a2.join(ch, r#"{"user_id":"u1","user_info":{"name":"Ada (tab 2)"}}"#)
        .await;
    let mut b = Client::connect(&s).await;
    b.join(ch, r#"{"user_id":"u2","user_info":{"name":"Bob"}}"#)
        .await;

    let mut h = Http::connect(&s).await;
    let r = update(
        &mut h,
        "u1",
        &json!({"user_info": {"name": "Ada", "status": "away"}}),
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (200, "{}"));
    let want = updated(
        ch,
        r#"{"user_id":"u1","user_info":{"name":"Ada","status":"away"}}"#,
    );
    for c in [&mut a1, &mut a2, &mut b] {
        assert_eq!(next_update(c).await, want);
    }
    // In order with the channel's other events: a publish after the update comes after it.
    h.publish(ch, "after", "x").await;
    for c in [&mut a1, &mut a2, &mut b] {
        assert_eq!(
            c.recv_text().await,
            format!(r#"{{"event":"after","channel":"{ch}","data":"x"}}"#)
        );
    }

    let mut late = Client::connect(&s).await;
    let presence = late.join(ch, r#"{"user_id":"u3"}"#).await;
    assert_eq!(
        presence["hash"],
        json!({"u1": {"name": "Ada", "status": "away"}, "u2": {"name": "Bob"}, "u3": null})
    );
    // The webhook, once, with the info as JSON (not a string).
    let hook = hooks.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(
        hook,
        json!({"name": "member_updated", "channel": ch, "user_id": "u1",
               "user_info": {"name": "Ada", "status": "away"}})
    );
    assert!(hooks.recv_timeout(Duration::from_millis(500)).is_err());
    // The API's member list is unchanged: ids only.
    let r = h
        .signed("GET", &format!("/apps/1/channels/{ch}/users"), &[], "")
        .await;
    assert_eq!(
        r.json(),
        json!({"users": [{"id": "u1"}, {"id": "u2"}, {"id": "u3"}]})
    );
}

#[tokio::test]
async fn without_a_channel_every_channel_of_the_user_is_updated() {
    let (url, hooks) = webhook_events();
    let s = Server::start_with(&config(&url));
    // On both shards of the server: each owner shard updates its own channels.
    let channels = ["presence-a", "presence-b", "presence-c", "presence-d"];
    let shards: std::collections::BTreeSet<usize> = channels
        .iter()
        .map(|ch| raptor_engine::placement::shard_for("1", ch, 2))
        .collect();
    assert_eq!(shards.len(), 2, "the channels should span both shards");
    let mut u = Client::connect(&s).await;
    for ch in channels {
        u.join(ch, r#"{"user_id":"u1","user_info":{"v":1}}"#).await;
    }
    // Another user in a channel u1 is not in: nothing reaches it.
    let mut other = Client::connect(&s).await;
    other.join("presence-e", r#"{"user_id":"u2"}"#).await;

    let mut h = Http::connect(&s).await;
    let r = update(&mut h, "u1", &json!({"user_info": {"v": 2}})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut got: Vec<String> = Vec::new();
    for _ in channels {
        got.push(u.recv_text().await);
    }
    got.sort();
    let want: Vec<String> = channels
        .iter()
        .map(|ch| updated(ch, r#"{"user_id":"u1","user_info":{"v":2}}"#))
        .collect();
    assert_eq!(got, want);
    let mut hooked: Vec<String> = (0..4)
        .map(|_| {
            let e = hooks.recv_timeout(Duration::from_secs(5)).unwrap();
            assert_eq!(e["user_info"], json!({"v": 2}));
            e["channel"].as_str().unwrap().to_string()
        })
        .collect();
    hooked.sort();
    assert_eq!(hooked, channels);

    // Named: only that channel.
    let r = update(
        &mut h,
        "u1",
        &json!({"user_info": {"v": 3}, "channel": "presence-b"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        u.recv_text().await,
        updated("presence-b", r#"{"user_id":"u1","user_info":{"v":3}}"#)
    );
    u.expect_silence(Duration::from_millis(300)).await;
    other.expect_silence(Duration::from_millis(10)).await;
    assert_eq!(
        hooks.recv_timeout(Duration::from_secs(5)).unwrap()["channel"],
        "presence-b"
    );
    assert!(hooks.recv_timeout(Duration::from_millis(300)).is_err());

    // A user who is not a member, or a channel the user is not in: 200, nothing happens.
    let r = update(&mut h, "nobody", &json!({"user_info": {}})).await;
    assert_eq!((r.status, r.body.as_str()), (200, "{}"));
    let r = update(
        &mut h,
        "u1",
        &json!({"user_info": {}, "channel": "presence-e"}),
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (200, "{}"));
    u.expect_silence(Duration::from_millis(300)).await;
    other.expect_silence(Duration::from_millis(10)).await;
}

#[tokio::test]
async fn bad_updates_are_refused_with_400() {
    let s = Server::start_with(
        "[[apps]]\nid = \"1\"\nkey = \"app-key\"\nsecret = \"app-secret\"\nmax_presence_user_info_bytes = 20\n",
    );
    let mut u = Client::connect(&s).await;
    u.join("presence-r", r#"{"user_id":"u1"}"#).await;
    let mut h = Http::connect(&s).await;
    let cases: [(&str, &str); 9] = [
        (
            "not json",
            r#"{"error":"body must be a JSON object with a user_info object"}"#,
        ),
        (
            "[1]",
            r#"{"error":"body must be a JSON object with a user_info object"}"#,
        ),
        (
            "{}",
            r#"{"error":"body must be a JSON object with a user_info object"}"#,
        ),
        (
            r#"{"user_info":"x"}"#,
            r#"{"error":"user_info must be a JSON object"}"#,
        ),
        (
            r#"{"user_info":null}"#,
            r#"{"error":"user_info must be a JSON object"}"#,
        ),
        (
            r#"{"user_info":{"name":"a name of more than twenty bytes"}}"#,
            r#"{"error":"user_info larger than 20 bytes (max_presence_user_info_bytes)"}"#,
        ),
        (
            r#"{"user_info":{},"channel":"private-r"}"#,
            r#"{"error":"channel must be the name of a presence channel"}"#,
        ),
        (
            r#"{"user_info":{},"channel":"presence-bad name"}"#,
            r#"{"error":"channel must be the name of a presence channel"}"#,
        ),
        (
            r#"{"user_info":{},"channels":["presence-r"]}"#,
            r#"{"error":"unknown field `channels` (expected user_info and channel)"}"#,
        ),
    ];
    for (body, want) in cases {
        let r = h
            .signed("POST", "/apps/1/users/u1/presence", &[], body)
            .await;
        assert_eq!((r.status, r.body.as_str()), (400, want), "{body}");
    }
    // Unsigned: 401, like every API call; another method: 405.
    let r = h
        .request("POST", "/apps/1/users/u1/presence", r#"{"user_info":{}}"#)
        .await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = h.signed("GET", "/apps/1/users/u1/presence", &[], "").await;
    assert_eq!(r.status, 405, "{}", r.body);
    u.expect_silence(Duration::from_millis(300)).await;
}
