//! Every error path of the client protocol and the HTTP API: the documented code or status,
//! and the connection and shard survive.

mod common;
use common::*;
use futures_util::SinkExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn bad_client_messages_get_pusher_errors_and_the_connection_survives() {
    let s = Server::start();
    let mut c = Client::connect(&s).await;
    let cases: &[(&str, &str)] = &[
        (
            "not json",
            r#"{"event":"pusher:error","data":{"code":4300,"message":"invalid message: expected a JSON object with a string \"event\""}}"#,
        ),
        (
            r#"{"data":{}}"#,
            r#"{"event":"pusher:error","data":{"code":4300,"message":"invalid message: expected a JSON object with a string \"event\""}}"#,
        ),
        (
            r#"{"event":"pusher:subscribe","data":{}}"#,
            r#"{"event":"pusher:error","data":{"code":4300,"message":"invalid pusher:subscribe: data.channel is required"}}"#,
        ),
        (
            r#"{"event":"pusher:bogus","data":{}}"#,
            r#"{"event":"pusher:error","data":{"code":4310,"message":"unsupported event `pusher:bogus`"}}"#,
        ),
        (
            r#"{"event":"client-x","channel":"pub","data":{}}"#,
            r#"{"event":"pusher:error","data":{"code":4315,"message":"client events are only allowed on private and presence channels"}}"#,
        ),
        (
            r#"{"event":"pusher:subscribe","data":{"channel":"bad name"}}"#,
            r#"{"event":"pusher:error","data":{"code":4311,"message":"channel name contains a character outside [A-Za-z0-9_-=@,.;/]"}}"#,
        ),
        (
            r#"{"event":"pusher:subscribe","data":{"channel":"private-x","auth":"app-key:00"}}"#,
            r#"{"event":"pusher:subscription_error","channel":"private-x","data":"{\"type\":\"AuthError\",\"error\":\"invalid signature for this socket and channel\",\"status\":401}"}"#,
        ),
    ];
    for (input, expected) in cases {
        c.send_raw(input).await;
        assert_eq!(c.recv_text().await, *expected, "for {input}");
    }
    let long = "a".repeat(201);
    c.send(json!({"event":"pusher:subscribe","data":{"channel":long}}))
        .await;
    assert_eq!(
        c.recv_text().await,
        r#"{"event":"pusher:error","data":{"code":4311,"message":"channel name is longer than 200 characters"}}"#
    );
    let deep = format!(
        r#"{{"event":"pusher:subscribe","data":{}{}}}"#,
        "[".repeat(3000),
        "]".repeat(3000)
    );
    c.send_raw(&deep).await;
    assert_eq!(c.recv().await["data"]["code"], 4300);
    // Still alive and working.
    c.send(json!({"event":"pusher:ping","data":{}})).await;
    assert_eq!(
        c.recv_text().await,
        r#"{"event":"pusher:pong","data":"{}"}"#
    );
    c.subscribe("still-ok").await;
}

#[tokio::test]
async fn subscription_limit() {
    let s = Server::start_with("[limits]\nmax_subscriptions_per_connection = 2\n");
    let mut c = Client::connect(&s).await;
    c.subscribe("a").await;
    c.subscribe("b").await;
    c.send(json!({"event":"pusher:subscribe","data":{"channel":"c"}}))
        .await;
    assert_eq!(
        c.recv_text().await,
        r#"{"event":"pusher:error","data":{"code":4312,"message":"at most 2 subscriptions per connection"}}"#
    );
}

#[tokio::test]
async fn binary_frames_close_1003() {
    let s = Server::start();
    let mut c = Client::connect(&s).await;
    c.ws.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(c.expect_close().await, 1003);
}

#[tokio::test]
async fn oversized_messages_close_1009() {
    let s = Server::start();
    let mut c = Client::connect(&s).await;
    let big =
        json!({"event":"client-x","channel":"private-a","data":"x".repeat(20_000)}).to_string();
    c.send_raw(&big).await;
    assert_eq!(c.expect_close().await, 1009);
    // Others are unaffected.
    let mut d = Client::connect(&s).await;
    d.subscribe("x").await;
}

#[tokio::test]
async fn invalid_framing_closes_1002_and_invalid_utf8_1007() {
    let s = Server::start();
    for (frame, code) in [
        // Unmasked client frame: forbidden by RFC 6455 §5.1.
        (vec![0x81u8, 0x02, b'h', b'i'], 1002u16),
        // Reserved bits set.
        (vec![0xF1u8, 0x80, 0, 0, 0, 0], 1002),
        // Fragmented control frame (ping without FIN).
        (vec![0x09u8, 0x80, 0, 0, 0, 0], 1002),
        // Masked text frame with invalid UTF-8 (mask 0 keeps bytes as they are).
        (vec![0x81u8, 0x82, 0, 0, 0, 0, 0xC3, 0x28], 1007),
    ] {
        let mut t = raw_ws(&s).await;
        t.write_all(&frame).await.unwrap();
        assert_eq!(read_close_code(&mut t).await, code, "frame {frame:02x?}");
    }
}

/// A WebSocket opened by hand over TCP, after `connection_established` was read.
async fn raw_ws(s: &Server) -> tokio::net::TcpStream {
    let mut t = tokio::net::TcpStream::connect(("127.0.0.1", s.port))
        .await
        .unwrap();
    t.write_all(b"GET /app/app-key?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    // Read the 101 and the first frame.
    while !(got.windows(4).any(|w| w == b"\r\n\r\n") && got.ends_with(b"}")) {
        let n = t.read(&mut buf).await.unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 101"));
    t
}

async fn read_close_code(t: &mut tokio::net::TcpStream) -> u16 {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), t.read(&mut buf))
            .await
            .expect("timeout")
            .unwrap();
        got.extend_from_slice(&buf[..n]);
        if let Some(i) = got.iter().position(|&b| b == 0x88) {
            if got.len() >= i + 4 {
                return u16::from_be_bytes([got[i + 2], got[i + 3]]);
            }
        }
        assert!(n > 0, "closed without a close frame: {got:02x?}");
    }
}

#[tokio::test]
async fn http_api_error_statuses() {
    let s = Server::start_with("[limits]\nmax_http_body_bytes = 4096\n");
    let mut h = Http::connect(&s).await;
    let body = json!({"name":"e","channel":"c","data":"x"}).to_string();

    let bad = signed("POST", "/apps/1/events", &[], &body, "wrong-secret", now());
    let r = h.request("POST", &bad, &body).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (401, r#"{"error":"invalid signature"}"#)
    );

    let stale = signed("POST", "/apps/1/events", &[], &body, SECRET, now() - 601);
    let r = h.request("POST", &stale, &body).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            401,
            r#"{"error":"auth_timestamp is more than 600 s from the server's clock"}"#
        )
    );

    let r = h.request("POST", "/apps/1/events", &body).await;
    assert_eq!(r.status, 401);

    let tampered = signed("POST", "/apps/1/events", &[], &body, SECRET, now());
    let r = h
        .request("POST", &tampered, &body.replace("\"x\"", "\"y\""))
        .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            401,
            r#"{"error":"body_md5 is missing or does not match the body"}"#
        )
    );

    let r = h.signed("POST", "/apps/9/events", &[], &body).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (404, r#"{"error":"unknown app `9`"}"#)
    );
    let r = h.signed("POST", "/apps/1/nothing", &[], &body).await;
    assert_eq!(r.status, 404);
    let r = h.signed("GET", "/apps/1/events", &[], "").await;
    assert_eq!(r.status, 405);

    for (b, status, msg) in [
        ("{nope".to_string(), 400, "body must be a JSON object with name, data and channel(s)"),
        (json!({"channel":"c","data":"x"}).to_string(), 400, "missing event name"),
        (json!({"name":"e","channel":"c"}).to_string(), 400, "missing data"),
        (json!({"name":"e","data":"x"}).to_string(), 400, "missing channel"),
        (json!({"name":"e","channel":"bad name","data":"x"}).to_string(), 400, "invalid channel `bad name`: channel name contains a character outside [A-Za-z0-9_-=@,.;/]"),
        (json!({"name":"e","channel":"c","data":"x","socket_id":"abc"}).to_string(), 400, "socket_id must look like 123.456"),
        (json!({"name":"e","channels":(0..101).map(|i| format!("c{i}")).collect::<Vec<_>>(),"data":"x"}).to_string(), 400, "at most 100 channels per event"),
        (json!({"name":"e","channel":"c","data":"x".repeat(10_241)}).to_string(), 413, "event data larger than 10240 bytes"),
    ] {
        let r = h.signed("POST", "/apps/1/events", &[], &b).await;
        // Bodies over the HTTP body limit are refused before signature checks.
        if b.len() > 4096 {
            assert_eq!((r.status, r.json()["error"].as_str().unwrap()), (413, "request body too large"));
            h = Http::connect(&s).await;
            continue;
        }
        assert_eq!((r.status, r.json()["error"].as_str().unwrap()), (status, msg), "{b}");
    }
    let batch = json!({"batch": (0..11).map(|i| json!({"channel":"c","name":"e","data":i.to_string()})).collect::<Vec<_>>()}).to_string();
    let r = h.signed("POST", "/apps/1/batch_events", &[], &batch).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (400, r#"{"error":"at most 10 events per batch"}"#)
    );
}

#[tokio::test]
async fn event_data_over_10kb_is_413_with_default_limits() {
    let s = Server::start();
    let mut h = Http::connect(&s).await;
    let body = json!({"name":"e","channel":"c","data":"x".repeat(10_241)}).to_string();
    let r = h.signed("POST", "/apps/1/events", &[], &body).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (413, r#"{"error":"event data larger than 10240 bytes"}"#)
    );
    let body = json!({"name":"e","channel":"c","data":"x".repeat(10_240)}).to_string();
    assert_eq!(
        h.signed("POST", "/apps/1/events", &[], &body).await.status,
        200
    );
}
