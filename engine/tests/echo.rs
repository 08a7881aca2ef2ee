//! The test-only WebSocket echo endpoint (`/echo`, `[testing] ws_echo`) that the Autobahn
//! run (tests/conformance/) drives: off by default, and when on it echoes on the production
//! WebSocket stack with the 64 MiB limit.

mod common;

use common::{Http, Server};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

const ECHO_ON: &str = "[testing]\nws_echo = true\n";

const UPGRADE: &str = "GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

#[tokio::test]
async fn echo_is_a_404_unless_enabled() {
    let server = Server::start();
    let mut http = Http::connect(&server).await;
    let r = http.raw(UPGRADE.as_bytes()).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = http.request("GET", "/echo", "").await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn echoes_text_binary_pings_and_the_close_code() {
    let server = Server::start_with(ECHO_ON);
    let (mut ws, resp) = tokio_tungstenite::connect_async(server.url("/echo"))
        .await
        .expect("upgrade");
    assert_eq!(resp.status(), 101);

    ws.send(Message::text("héllo")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("héllo"));

    // Far above the Pusher message limit (16 KiB): the echo route lifts it.
    let big: Vec<u8> = (0..1_048_576u32).map(|i| (i % 251) as u8).collect();
    ws.send(Message::binary(big.clone())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(big));

    // A pong sent between two echoes stays between them.
    ws.feed(Message::text("a")).await.unwrap();
    ws.feed(Message::Ping("p".into())).await.unwrap();
    ws.feed(Message::text("b")).await.unwrap();
    ws.flush().await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("a"));
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::Pong("p".into()));
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("b"));

    ws.close(Some(CloseFrame {
        code: CloseCode::Library(4001),
        reason: "bye".into(),
    }))
    .await
    .unwrap();
    match ws.next().await {
        Some(Ok(Message::Close(Some(f)))) => {
            assert_eq!(u16::from(f.code), 4001);
            assert_eq!(f.reason.as_str(), "bye");
        }
        other => panic!("expected the close echoed, got {other:?}"),
    }
}

/// A masked client frame.
fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mask = [1u8, 2, 3, 4];
    let mut f = vec![first, 0x80 | payload.len() as u8];
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

#[tokio::test]
async fn a_protocol_error_closes_after_what_was_already_queued() {
    let server = Server::start_with(ECHO_ON);
    let mut s = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    s.write_all(UPGRADE.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut tmp = [0u8; 1024];
        let n = s.read(&mut tmp).await.unwrap();
        assert!(n > 0, "closed during the upgrade");
        buf.extend_from_slice(&tmp[..n]);
    }
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(buf.starts_with(b"HTTP/1.1 101 "));
    buf.drain(..head_end);

    // A good message and a frame with RSV2 set, in one write (Autobahn 3.2).
    let mut bytes = client_frame(0x81, b"Hello");
    bytes.extend(client_frame(0xA1, b"bad"));
    s.write_all(&bytes).await.unwrap();

    let mut rest = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut rest))
        .await
        .expect("server did not close");
    buf.extend(rest);
    // The echo, then close 1002: the queued echo is not dropped by the close.
    assert_eq!(&buf[..7], b"\x81\x05Hello");
    assert_eq!(buf[7], 0x88);
    assert_eq!(&buf[9..11], &1002u16.to_be_bytes());
}
