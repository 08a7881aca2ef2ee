//! While a SIGTERM drain lasts, the server takes no new connections (a client sees a refused
//! connect and backs off, instead of being welcomed and closed with 4200 in a loop) and
//! `/health` answers 503 on connections already open, so a load balancer stops sending
//! traffic; connected clients get 4200 as before and the process exits 0.

mod common;
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A server in the middle of its drain: SIGTERM sent and a connected client already closed
/// with 4200. A slow client that stopped reading keeps the drain open until
/// `shutdown_grace_secs` (4 s): more events than the kernel's largest send buffer are queued
/// ahead of its close frame (with an outbox bound raised to hold them).
struct Draining {
    server: Server,
    /// The keep-alive connection the events were published on; still open.
    http: Http,
    _slow: TcpStream,
}

async fn draining() -> Draining {
    let wmem_max: usize = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|s| s.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or(4 << 20);
    let batches = (wmem_max + (2 << 20)) / 40_000 + 1;
    let server = Server::start_with(&format!(
        "[limits]\nshutdown_grace_secs = 4\noutbox_max_bytes = {}\noutbox_max_frames = {}\n",
        wmem_max + (8 << 20),
        batches * 10 + 100
    ));
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut slow = sock
        .connect(([127, 0, 0, 1], server.port).into())
        .await
        .unwrap();
    slow.write_all(b"GET /app/app-key?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").await.unwrap();
    let sub = json!({"event":"pusher:subscribe","data":{"channel":"feed"}}).to_string();
    let mut frame = vec![0x81u8, 0x80 | sub.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(sub.as_bytes());
    slow.write_all(&frame).await.unwrap();
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("subscription_succeeded") {
        let n = slow.read(&mut buf).await.unwrap();
        assert!(n > 0);
        seen.extend_from_slice(&buf[..n]);
    }
    let mut http = Http::connect(&server).await;
    let health = http.request("GET", "/health", "").await;
    assert_eq!(
        (health.status, health.body.as_str()),
        (200, r#"{"ok":true}"#)
    );
    let pad = "x".repeat(4000);
    for i in 0..batches {
        http.batch_of_ten("feed", i * 10, &pad).await;
    }
    let mut normal = Client::connect(&server).await;
    unsafe { libc::kill(server.pid() as i32, libc::SIGTERM) };
    assert_eq!(normal.expect_close().await, 4200);
    Draining {
        server,
        http,
        _slow: slow,
    }
}

impl Draining {
    fn assert_still_draining(&mut self) {
        assert!(
            self.server.child.try_wait().unwrap().is_none(),
            "the server exited: the drain did not last long enough to test anything"
        );
    }

    async fn exits_0(mut self) {
        let t0 = Instant::now();
        let status = loop {
            if let Some(st) = self.server.child.try_wait().unwrap() {
                break st;
            }
            assert!(t0.elapsed() < Duration::from_secs(15), "did not exit");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(status.code(), Some(0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_server_refuses_new_connections() {
    let mut d = draining().await;
    // Every shard notices the signal within ~50 ms.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for attempt in 0..10 {
        match TcpStream::connect(("127.0.0.1", d.server.port)).await {
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}"),
            Ok(mut tcp) => {
                // Show what the client would get: the upgrade, then 4200 ("reconnect now").
                let _ = tcp.write_all(b"GET /app/app-key?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").await;
                let mut got = Vec::new();
                let mut b = vec![0u8; 4096];
                while let Ok(Ok(n @ 1..)) =
                    tokio::time::timeout(Duration::from_secs(1), tcp.read(&mut b)).await
                {
                    got.extend_from_slice(&b[..n]);
                }
                panic!(
                    "connect {attempt} accepted while draining; got {:?}",
                    String::from_utf8_lossy(&got)
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    d.assert_still_draining();
    d.exits_0().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_503_while_draining_on_an_open_connection() {
    let mut d = draining().await;
    let r = d.http.request("GET", "/health", "").await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json(), json!({"ok": false, "draining": true}));
    d.assert_still_draining();
    // Still 503 later in the drain, on the same connection.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = d.http.request("GET", "/health", "").await;
    assert_eq!(r.status, 503, "{}", r.body);
    d.assert_still_draining();
    d.exits_0().await;
}

/// A draining node acknowledges no publish it would deliver to no one: 503 with
/// `Retry-After` on a connection still open (issue 18: "never acknowledge what will not be
/// delivered").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_are_refused_while_draining() {
    let mut d = draining().await;
    let r = d.http.publish("feed", "e", "late").await;
    assert_eq!(
        (r.status, r.json()),
        (
            503,
            json!({"error": "this node is draining; publish to another node"})
        )
    );
    assert_eq!(r.header("Retry-After"), Some("1"));
    d.assert_still_draining();
    d.exits_0().await;
}
