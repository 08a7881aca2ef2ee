//! Server-Sent Events (docs/protocol.md "HTTP transports"): one event per Pusher event, in
//! order; resumption with `Last-Event-ID` through history; tokens for private channels.

mod common;

use common::xhr::Stream;
use common::{Http, Server, KEY};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

async fn sse(server: &Server, query: &str, headers: &[&str]) -> Stream {
    Stream::open(
        server.port,
        "GET",
        &format!("/pusher/app/{KEY}/sse?{query}"),
        headers,
    )
    .await
}

fn data_of(v: &Value) -> Value {
    serde_json::from_str(v["data"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn events_arrive_in_order_as_pusher_json() {
    let server = Server::start();
    let mut s = sse(&server, "channel=news&channel=a,b", &[]).await;
    assert_eq!(s.status, 200);
    assert!(
        s.head
            .contains("Content-Type: text/event-stream; charset=utf-8\r\n"),
        "{}",
        s.head
    );
    let (id, first) = s.event(WAIT).await.unwrap();
    assert_eq!(
        (id, first["event"].as_str()),
        (None, Some("pusher:connection_established"))
    );
    // Answered by each channel's owner shard: in either order.
    let mut answers = [
        s.event(WAIT).await.unwrap().1,
        s.event(WAIT).await.unwrap().1,
    ];
    answers.sort_by_key(|e| e["channel"].as_str().unwrap().to_string());
    for (ev, channel) in answers.iter().zip(["a,b", "news"]) {
        assert_eq!(
            *ev,
            json!({"event":"pusher_internal:subscription_succeeded","channel":channel,"data":"{}"})
        );
    }
    let mut api = Http::connect(&server).await;
    for i in 0..20 {
        let channel = if i % 2 == 0 { "news" } else { "a,b" };
        assert_eq!(api.publish(channel, "e", &i.to_string()).await.status, 200);
    }
    for i in 0..20 {
        let channel = if i % 2 == 0 { "news" } else { "a,b" };
        let (id, ev) = s.event(WAIT).await.unwrap();
        assert_eq!(id, None, "no channel keeps history");
        assert_eq!(
            ev,
            json!({"event":"e","channel":channel,"data":i.to_string()})
        );
    }
}

#[tokio::test]
async fn last_event_id_resumes_a_history_channel_without_loss() {
    let server = Server::start_with(
        "[[apps]]\nid = \"1\"\nkey = \"app-key\"\nsecret = \"app-secret\"\n\n[[apps.history]]\nchannels = \"chat-*\"\n",
    );
    let mut api = Http::connect(&server).await;
    let mut s = sse(&server, "channel=news&channel=chat-1", &[]).await;
    s.event(WAIT).await.unwrap(); // connection_established
    s.event(WAIT).await.unwrap(); // news: subscription_succeeded
    let (_, ok) = s.event(WAIT).await.unwrap();
    assert_eq!(ok["event"], "pusher_internal:subscription_succeeded");
    let (id, rec) = s.event(WAIT).await.unwrap();
    assert_eq!(rec["event"], "raptor:recovery");
    let rec = data_of(&rec);
    let epoch = rec["epoch"].as_str().unwrap().to_string();
    assert_eq!(id, Some(format!(",{epoch}:0")));
    let mut last = None;
    for i in 1..=5 {
        api.publish("chat-1", "m", &i.to_string()).await;
        let (id, ev) = s.event(WAIT).await.unwrap();
        assert_eq!(
            ev,
            json!({"event":"m","channel":"chat-1","data":i.to_string(),"offset":i})
        );
        assert_eq!(id, Some(format!(",{epoch}:{i}")));
        last = id;
    }
    drop(s);
    // Missed while away: 7 events.
    for i in 6..=12 {
        api.publish("chat-1", "m", &i.to_string()).await;
    }
    let header = format!("Last-Event-ID: {}", last.unwrap());
    let mut s = sse(&server, "channel=news&channel=chat-1", &[&header]).await;
    let mut events = Vec::new();
    while events.len() < 4 + 7 {
        events.push(s.event(WAIT).await.expect("the replay").1);
    }
    assert_eq!(events[0]["event"], "pusher:connection_established");
    assert_eq!(events[3]["event"], "raptor:recovery");
    assert_eq!(
        data_of(&events[3]),
        json!({"was_recovering":true,"recovered":true,"epoch":epoch,"offset":5,"replayed":7})
    );
    let replayed: Vec<&str> = events[4..]
        .iter()
        .map(|e| e["data"].as_str().unwrap())
        .collect();
    assert_eq!(replayed, ["6", "7", "8", "9", "10", "11", "12"]);
    api.publish("chat-1", "m", "13").await;
    let (id, ev) = s.event(WAIT).await.unwrap();
    assert_eq!(
        (id, ev["data"].as_str()),
        (Some(format!(",{epoch}:13")), Some("13"))
    );
}

#[tokio::test]
async fn private_channels_take_a_token() {
    let server = Server::start();
    let mut http = Http::connect(&server).await;
    let r = http
        .request(
            "GET",
            &format!("/pusher/app/{KEY}/sse?channel=private-orders"),
            "",
        )
        .await;
    assert_eq!(
        (r.status, r.json()),
        (
            401,
            json!({"error":"private and presence channels need ?token= (an access token with a read grant, docs/tokens.md)"})
        )
    );
    let r = http
        .request(
            "GET",
            &format!("/pusher/app/{KEY}/sse?channel=private-orders&token=nope"),
            "",
        )
        .await;
    assert_eq!(r.status, 401);
    let r = http
        .request("GET", &format!("/pusher/app/{KEY}/sse"), "")
        .await;
    assert_eq!(
        (r.status, r.json()),
        (
            400,
            json!({"error":"name at least one channel (?channel=…, repeated for more)"})
        )
    );
    let r = http
        .request("POST", &format!("/pusher/app/{KEY}/sse?channel=a"), "")
        .await;
    assert_eq!(r.status, 405);

    let minted = http
        .signed(
            "POST",
            "/apps/1/tokens",
            &[],
            r#"{"read":["private-orders"],"ttl_secs":600}"#,
        )
        .await;
    assert_eq!(minted.status, 200, "{}", minted.body);
    let token = minted.json()["token"].as_str().unwrap().to_string();
    // A token granting another channel: the subscription is refused in the stream.
    let mut s = sse(
        &server,
        &format!("channel=private-orders&channel=private-other&token={token}"),
        &[],
    )
    .await;
    assert_eq!(s.status, 200);
    s.event(WAIT).await.unwrap();
    // The refusal is the subscriber shard's, the success the owner's: either comes first.
    let mut answers = [
        s.event(WAIT).await.unwrap().1,
        s.event(WAIT).await.unwrap().1,
    ];
    answers.sort_by_key(|e| e["channel"].as_str().unwrap().to_string());
    assert_eq!(
        answers[0],
        json!({"event":"pusher_internal:subscription_succeeded","channel":"private-orders","data":"{}"})
    );
    assert_eq!(answers[1]["event"], "pusher:subscription_error");
    assert_eq!(answers[1]["channel"], "private-other");
    http.publish("private-orders", "o", "1").await;
    let (_, ev) = s.event(WAIT).await.unwrap();
    assert_eq!(
        ev,
        json!({"event":"o","channel":"private-orders","data":"1"})
    );
}

/// An EventSource cannot answer a server ping: a stream the server can write to is alive,
/// so it is not closed with 4201 however long it lasts.
#[tokio::test]
async fn a_writable_stream_is_not_pinged_out() {
    let server = Server::start_with(
        "[limits]\nactivity_timeout_secs = 1\npong_timeout_secs = 1\n\n[limits.http_fallback]\nheartbeat_secs = 1\n",
    );
    let mut s = sse(&server, "channel=news", &[]).await;
    s.event(WAIT).await.unwrap();
    s.event(WAIT).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut api = Http::connect(&server).await;
    api.publish("news", "e", "still here").await;
    loop {
        let (_, ev) = s.event(WAIT).await.expect("the stream lives");
        assert_ne!(ev["event"], "pusher:error", "{ev}");
        if ev["event"] == "e" {
            assert_eq!(ev["data"], "still here");
            break;
        }
    }
}
