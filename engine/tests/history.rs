//! Channel history and recovery on one node (docs/history.md): positions on the wire,
//! recovery after a lost connection (exactly once, in order, then live), "not recovered"
//! with nothing replayed, and the history API with edit and delete.

mod common;
use common::history::*;
use common::*;
use serde_json::json;
use std::time::Duration;

const CONFIG: &str = r#"
[[apps]]
id = "1"
key = "app-key"
secret = "app-secret"

[[apps.history]]
channels = "chat-*"
size = 1000
ttl_secs = 600

[[apps.history]]
channels = "small-*"
size = 10

[[apps.history]]
channels = "capped-*"
size = 1000
recover_max = 50

[[apps.history]]
channels = "brief-*"
ttl_secs = 1
"#;

#[tokio::test]
async fn a_reconnecting_subscriber_recovers_every_missed_event_exactly_once() {
    let s = Server::start_with(CONFIG);
    let mut h = Http::connect(&s).await;
    let mut c = Client::connect(&s).await;
    let first = subscribe_from(&mut c, "chat-1", None).await;
    let epoch = first["epoch"].as_str().unwrap().to_string();
    assert_eq!(epoch.len(), 12);
    assert_eq!(
        first,
        json!({"was_recovering": false, "recovered": false, "epoch": epoch, "offset": 0, "replayed": 0})
    );
    publish_n(&mut h, "chat-1", 1..=5).await;
    for n in 1..=5 {
        assert_eq!(c.recv_text().await, event("chat-1", &n.to_string(), n));
    }
    // The connection dies (the client never closes it); 200 events go by meanwhile.
    drop(c);
    publish_n(&mut h, "chat-1", 6..=205).await;

    // It reconnects and recovers while another publisher keeps going: every event after
    // offset 5 arrives exactly once, in order, replayed then live.
    let mut c = Client::connect(&s).await;
    let port = s.port;
    let live = tokio::spawn(async move {
        let mut h = Http::connect_port(port).await;
        publish_n(&mut h, "chat-1", 206..=305).await;
    });
    let r = subscribe_from(&mut c, "chat-1", Some((5, &epoch))).await;
    assert_eq!(r["was_recovering"], json!(true));
    assert_eq!(r["recovered"], json!(true));
    assert_eq!(
        (r["epoch"].as_str(), r["offset"].as_u64()),
        (Some(&*epoch), Some(5))
    );
    let replayed = r["replayed"].as_u64().unwrap();
    assert!((200..=300).contains(&replayed), "{replayed}");
    for n in 6..=305 {
        assert_eq!(c.recv_text().await, event("chat-1", &n.to_string(), n));
    }
    live.await.unwrap();
    c.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn recovery_is_all_or_nothing() {
    let s = Server::start_with(CONFIG);
    let mut h = Http::connect(&s).await;
    let mut c = Client::connect(&s).await;
    let epoch = subscribe_from(&mut c, "chat-x", None).await["epoch"]
        .as_str()
        .unwrap()
        .to_string();
    publish_n(&mut h, "chat-x", 1..=3).await;
    let not = |epoch: &str, offset: u64| json!({"was_recovering": true, "recovered": false, "epoch": epoch, "offset": offset, "replayed": 0});
    // Another epoch: not recovered, nothing replayed, live events follow.
    let mut d = Client::connect(&s).await;
    assert_eq!(
        subscribe_from(&mut d, "chat-x", Some((1, "otherEpoch12"))).await,
        not(&epoch, 3)
    );
    publish_n(&mut h, "chat-x", 4..=4).await;
    assert_eq!(d.recv_text().await, event("chat-x", "4", 4));
    // A position ahead of the channel's: not recovered.
    let mut d = Client::connect(&s).await;
    assert_eq!(
        subscribe_from(&mut d, "chat-x", Some((9, &epoch))).await,
        not(&epoch, 4)
    );

    // Aged out of a ring of 10.
    let mut d = Client::connect(&s).await;
    let e = subscribe_from(&mut d, "small-1", None).await["epoch"]
        .as_str()
        .unwrap()
        .to_string();
    publish_n(&mut h, "small-1", 1..=20).await;
    let mut d = Client::connect(&s).await;
    assert_eq!(
        subscribe_from(&mut d, "small-1", Some((5, &e))).await,
        not(&e, 20)
    );
    // The last 10 are all there: recovered from 10.
    let mut d = Client::connect(&s).await;
    let r = subscribe_from(&mut d, "small-1", Some((10, &e))).await;
    assert_eq!(
        (r["recovered"].as_bool(), r["replayed"].as_u64()),
        (Some(true), Some(10))
    );

    // More than recover_max (50) missed: not recovered, although all are stored.
    let mut d = Client::connect(&s).await;
    let e = subscribe_from(&mut d, "capped-1", None).await["epoch"]
        .as_str()
        .unwrap()
        .to_string();
    publish_n(&mut h, "capped-1", 1..=60).await;
    let mut d = Client::connect(&s).await;
    assert_eq!(
        subscribe_from(&mut d, "capped-1", Some((9, &e))).await,
        not(&e, 60)
    );
    let mut d = Client::connect(&s).await;
    let r = subscribe_from(&mut d, "capped-1", Some((10, &e))).await;
    assert_eq!(
        (r["recovered"].as_bool(), r["replayed"].as_u64()),
        (Some(true), Some(50))
    );

    // Expired (ttl 1 s): the position stays, the data is gone.
    let mut d = Client::connect(&s).await;
    let e = subscribe_from(&mut d, "brief-1", None).await["epoch"]
        .as_str()
        .unwrap()
        .to_string();
    publish_n(&mut h, "brief-1", 1..=2).await;
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let mut d = Client::connect(&s).await;
    assert_eq!(
        subscribe_from(&mut d, "brief-1", Some((0, &e))).await,
        not(&e, 2)
    );
    let mut d = Client::connect(&s).await;
    let r = subscribe_from(&mut d, "brief-1", Some((2, &e))).await;
    assert_eq!(
        r["recovered"],
        json!(true),
        "at the top, nothing is missing"
    );

    // A channel without a rule: no position, no offsets (plain Pusher).
    let mut d = Client::connect(&s).await;
    d.subscribe("plain").await;
    h.publish("plain", "e", "p").await;
    assert_eq!(
        d.recv_text().await,
        r#"{"event":"e","channel":"plain","data":"p"}"#
    );
}

#[tokio::test]
async fn raptor_recover_before_a_plain_subscribe_recovers() {
    // What the pusher-js helper does: positions first, then pusher-js's own subscribe.
    let s = Server::start_with(CONFIG);
    let mut h = Http::connect(&s).await;
    let mut c = Client::connect(&s).await;
    let epoch = subscribe_from(&mut c, "chat-2", None).await["epoch"]
        .as_str()
        .unwrap()
        .to_string();
    publish_n(&mut h, "chat-2", 1..=4).await;
    let mut c = Client::connect(&s).await;
    c.send(json!({"event": "raptor:recover", "data": {"positions": {"chat-2": {"offset": 2, "epoch": epoch}}}}))
        .await;
    let r = subscribe_from(&mut c, "chat-2", None).await;
    assert_eq!(
        r,
        json!({"was_recovering": true, "recovered": true, "epoch": epoch, "offset": 2, "replayed": 2})
    );
    assert_eq!(c.recv_text().await, event("chat-2", "3", 3));
    assert_eq!(c.recv_text().await, event("chat-2", "4", 4));
    // Taken by that subscribe: a later one is a plain subscribe.
    c.send(json!({"event": "pusher:unsubscribe", "data": {"channel": "chat-2"}}))
        .await;
    let r = subscribe_from(&mut c, "chat-2", None).await;
    assert_eq!(r["was_recovering"], json!(false));
    // A malformed position is left out (that channel subscribes without recovering); a
    // malformed message gets a `pusher:error`, and the connection stays.
    c.send(json!({"event": "pusher:unsubscribe", "data": {"channel": "chat-2"}}))
        .await;
    c.send_raw(r#"{"event":"raptor:recover","data":{"positions":{"chat-2":{"offset":"x"}}}}"#)
        .await;
    let r = subscribe_from(&mut c, "chat-2", None).await;
    assert_eq!(r["was_recovering"], json!(false));
    c.send_raw(r#"{"event":"raptor:recover","data":{"positions":[]}}"#)
        .await;
    let e = c.recv().await;
    assert_eq!(e["event"], "pusher:error");
    // An empty epoch (what an unavailable answer gives) is "not recovered".
    c.send(json!({"event": "pusher:unsubscribe", "data": {"channel": "chat-2"}}))
        .await;
    let r = subscribe_from(&mut c, "chat-2", Some((3, ""))).await;
    assert_eq!(
        r,
        json!({"was_recovering": true, "recovered": false, "epoch": epoch, "offset": 4, "replayed": 0})
    );
}

#[tokio::test]
async fn the_history_api_reads_removes_edits_and_deletes() {
    let s = Server::start_with(CONFIG);
    let mut h = Http::connect(&s).await;
    let mut c = Client::connect(&s).await;
    let epoch = subscribe_from(&mut c, "chat-api", None).await["epoch"]
        .as_str()
        .unwrap()
        .to_string();
    publish_n(&mut h, "chat-api", 1..=5).await;
    for n in 1..=5 {
        assert_eq!(c.recv_text().await, event("chat-api", &n.to_string(), n));
    }
    let path = "/apps/1/channels/chat-api/history";
    let get = |params: Vec<(&'static str, String)>| {
        let h = Http::connect_port(s.port);
        async move {
            let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            h.await.signed("GET", path, &p, "").await
        }
    };
    // No limit: the position only.
    let r = get(vec![]).await;
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"epoch": epoch, "offset": 5}))
    );
    let offsets = |r: &Resp| -> Vec<u64> {
        r.json()["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["offset"].as_u64().unwrap())
            .collect()
    };
    let r = get(vec![("limit", "2".into())]).await;
    assert_eq!(offsets(&r), [1, 2]);
    let e0 = &r.json()["events"][0];
    assert_eq!(
        (e0["event"].as_str(), e0["data"].as_str()),
        (Some("e"), Some("1"))
    );
    assert!(e0["time_ms"].as_u64().unwrap() > 1_700_000_000_000);
    let r = get(vec![
        ("limit", "2".into()),
        ("direction", "newest_first".into()),
    ])
    .await;
    assert_eq!(offsets(&r), [5, 4]);
    let r = get(vec![
        ("limit", "10".into()),
        ("since", "3".into()),
        ("epoch", epoch.clone()),
    ])
    .await;
    assert_eq!(offsets(&r), [4, 5]);
    let r = get(vec![("limit", "10".into()), ("epoch", "nope".into())]).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(get(vec![("limit", "x".into())]).await.status, 400);
    assert_eq!(get(vec![("direction", "up".into())]).await.status, 400);

    // Edit 2: subscribers get raptor:message_edit with its own offset (6).
    let r = h
        .signed("POST", &format!("{path}/2/edit"), &[], r#"{"data":"two"}"#)
        .await;
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"epoch": epoch, "offset": 6}))
    );
    assert_eq!(
        c.recv_text().await,
        r#"{"event":"raptor:message_edit","channel":"chat-api","data":"{\"offset\":2,\"event\":\"e\",\"data\":\"two\"}","offset":6}"#
    );
    // Delete 3: raptor:message_delete at 7.
    let r = h
        .signed("POST", &format!("{path}/3/delete"), &[], "{}")
        .await;
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"epoch": epoch, "offset": 7}))
    );
    assert_eq!(
        c.recv_text().await,
        r#"{"event":"raptor:message_delete","channel":"chat-api","data":"{\"offset\":3,\"event\":\"e\"}","offset":7}"#
    );
    let r = get(vec![("limit", "100".into())]).await;
    assert_eq!(offsets(&r), [1, 2, 4, 5, 6, 7], "3 is deleted");
    assert_eq!(
        r.json()["events"][1],
        json!({"offset": 2, "event": "e", "data": "two", "time_ms": r.json()["events"][1]["time_ms"], "edited": true})
    );
    // A recovery from 1 replays the edited message, the edit and the delete, not 3.
    let mut d = Client::connect(&s).await;
    let r = subscribe_from(&mut d, "chat-api", Some((1, &epoch))).await;
    assert_eq!(
        (r["recovered"].as_bool(), r["replayed"].as_u64()),
        (Some(true), Some(5))
    );
    assert_eq!(d.recv_text().await, event("chat-api", "two", 2));
    assert_eq!(d.recv_text().await, event("chat-api", "4", 4));
    assert_eq!(d.recv_text().await, event("chat-api", "5", 5));
    assert_eq!(d.recv().await["event"], "raptor:message_edit");
    assert_eq!(d.recv().await["event"], "raptor:message_delete");

    // Refusals: a deleted, unknown or non-message event; a channel without history.
    for (what, status) in [
        ("3/edit", 409),
        ("99/delete", 404),
        ("6/delete", 409),
        ("x/delete", 400),
    ] {
        let r = h
            .signed("POST", &format!("{path}/{what}"), &[], r#"{"data":"z"}"#)
            .await;
        assert_eq!(r.status, status, "{what}: {}", r.body);
        assert!(r.json()["error"].is_string());
    }
    let r = h
        .signed("GET", "/apps/1/channels/plain/history", &[], "")
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(h.signed("PUT", path, &[], "").await.status, 405);

    // Remove: the events go, the position stays.
    let r = h.signed("POST", &format!("{path}/remove"), &[], "{}").await;
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"epoch": epoch, "offset": 7}))
    );
    let r = get(vec![("limit", "100".into())]).await;
    assert_eq!(r.json(), json!({"epoch": epoch, "offset": 7, "events": []}));
    let mut d = Client::connect(&s).await;
    let r = subscribe_from(&mut d, "chat-api", Some((6, &epoch))).await;
    assert_eq!(r["recovered"], json!(false));
    let mut d = Client::connect(&s).await;
    let r = subscribe_from(&mut d, "chat-api", Some((7, &epoch))).await;
    assert_eq!(r["recovered"], json!(true));
}
