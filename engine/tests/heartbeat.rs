//! Pings both ways, the server's own ping after inactivity, and 4201 when nothing answers.

mod common;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn pusher_ping_and_websocket_ping() {
    let s = Server::start();
    let mut c = Client::connect(&s).await;
    c.send(json!({"event":"pusher:ping","data":{}})).await;
    assert_eq!(
        c.recv_text().await,
        r#"{"event":"pusher:pong","data":"{}"}"#
    );
    c.ws.send(Message::Ping(b"abc".to_vec().into()))
        .await
        .unwrap();
    let m = tokio::time::timeout(Duration::from_secs(5), c.ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(m, Message::Pong(b"abc".to_vec().into()));
}

#[tokio::test]
async fn server_pings_after_inactivity_and_closes_4201_without_pong() {
    let s = Server::start_with("[limits]\nactivity_timeout_secs = 1\npong_timeout_secs = 1\n");
    // A client that answers stays connected.
    let mut good = Client::connect(&s).await;
    // A client that never answers gets 4201.
    let mut bad = Client::connect(&s).await;
    let ping = good
        .recv_text_within(Duration::from_secs(4))
        .await
        .expect("server ping");
    assert_eq!(ping, r#"{"event":"pusher:ping","data":"{}"}"#);
    good.send(json!({"event":"pusher:pong","data":{}})).await;
    assert_eq!(
        bad.recv_text().await,
        r#"{"event":"pusher:ping","data":"{}"}"#
    );
    assert_eq!(bad.expect_close().await, 4201);
    // The good one is pinged again later, and still connected.
    assert_eq!(
        good.recv_text_within(Duration::from_secs(4)).await.unwrap(),
        ping
    );
    good.send(json!({"event":"pusher:pong","data":{}})).await;
    good.subscribe("alive").await;
}
