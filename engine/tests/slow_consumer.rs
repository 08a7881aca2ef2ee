//! A client that stops reading is cut off with 4100; the others keep receiving everything
//! and the server's memory stays bounded.

mod common;
use common::*;
use futures_util::StreamExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_is_cut_with_4100_and_others_get_everything() {
    const EVENTS: usize = 3000;
    // A long close grace: the slow client reads its backlog only after the fast one is done,
    // which can take seconds on a loaded machine.
    let s = Server::start_with("[limits]\nclose_grace_secs = 60\n");
    // The slow client: a raw socket with a small receive buffer that subscribes, then stops
    // reading.
    let (mut slow, seen) = raw_subscriber(s.port, "feed").await;
    let mut buf = vec![0u8; 4096];

    let mut fast = Client::connect(&s).await;
    fast.subscribe("feed").await;
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen_by_fast = progress.clone();
    let reader = tokio::spawn(async move {
        let mut n = 0;
        while n < EVENTS {
            let m = tokio::time::timeout(std::time::Duration::from_secs(30), fast.ws.next())
                .await
                .expect("fast reader stalled")
                .unwrap()
                .unwrap();
            if let Message::Text(t) = m {
                assert!(
                    t.as_str().contains(&format!("\"data\":\"{n}:")),
                    "out of order at {n}: {}",
                    &t[..60]
                );
                n += 1;
                seen_by_fast.store(n, std::sync::atomic::Ordering::Relaxed);
            }
        }
        n
    });

    let rss_before = s.rss_kib();
    let mut h = Http::connect(&s).await;
    let pad = "x".repeat(4000);
    for i in 0..EVENTS / 10 {
        // The fast client keeps up by definition: publish at most ~100 events ahead of it.
        while progress.load(std::sync::atomic::Ordering::Relaxed) + 100 < i * 10 {
            // A reader that panicked makes no more progress: fail instead of waiting forever.
            assert!(
                !reader.is_finished(),
                "the fast reader stopped at {i}0 published"
            );
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        h.batch_of_ten("feed", i * 10, &pad).await;
    }
    assert_eq!(
        reader.await.unwrap(),
        EVENTS,
        "the fast client got every event"
    );
    let rss_after = s.rss_kib();
    // 12 MB of events went out; what stays is bounded by the 1 MiB outbox, not the volume.
    assert!(
        rss_after < rss_before + 16 * 1024,
        "rss grew from {rss_before} KiB to {rss_after} KiB"
    );

    // Now the slow client reads: some events, then a close frame with 4100.
    let mut all = seen;
    loop {
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), slow.read(&mut buf))
            .await
            .expect("slow client never got closed")
            .unwrap();
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
    }
    let tail = &all[all.len().saturating_sub(64)..];
    let close = find_close(&all)
        .unwrap_or_else(|| panic!("no close frame in {} bytes; tail {:02x?}", all.len(), tail));
    assert_eq!(close, 4100);
}

/// A client that sends pings and never reads makes the server queue pongs: they count
/// against `outbox_max_bytes` like frames do, so the client is cut with 4100 instead of
/// growing the server's memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinging_without_reading_is_cut_with_4100() {
    const PINGS: usize = 100_000;
    let s = Server::start_with(
        "[limits]
outbox_max_bytes = 65536
close_grace_secs = 60
",
    );
    let (slow, seen) = raw_connect(s.port).await;
    let (mut rd, mut wr) = slow.into_split();
    let mut buf = vec![0u8; 4096];
    // 100,000 masked pings with the largest control payload (125 bytes): 12.7 MB of pongs
    // to queue, far past the kernel's buffers and the 64 KiB bound.
    let mut ping = vec![0x89u8, 0x80 | 125, 0, 0, 0, 0];
    ping.extend_from_slice(&[b'p'; 125]);
    let burst: Vec<u8> = ping
        .iter()
        .copied()
        .cycle()
        .take(ping.len() * 100)
        .collect();
    let writer = tokio::spawn(async move {
        for _ in 0..PINGS / 100 {
            if wr.write_all(&burst).await.is_err() {
                break;
            }
        }
        wr
    });
    let _wr = tokio::time::timeout(std::time::Duration::from_secs(60), writer)
        .await
        .expect("the server stopped reading pings")
        .unwrap();
    let mut all = seen;
    loop {
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), rd.read(&mut buf))
            .await
            .expect("the pinging client never got closed")
            .unwrap();
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
    }
    assert_eq!(find_close(&all), Some(4100), "{} bytes read", all.len());
    // Far fewer pongs than pings came back: the rest were never queued.
    assert!(all.len() < PINGS * 127 / 2, "{} bytes read", all.len());
}

/// A client that pauses while a backlog builds up (under the outbox bound) and then reads
/// gets every frame whole and in order: the writer coalesces queued frames into one buffer
/// per `send`, and the kernel takes any part of it, so frames are split across writes
/// (and at the coalescing limit) and must be resumed exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_pauses_gets_every_frame_intact() {
    const EVENTS: usize = 400;
    let s = Server::start();
    let (mut paused, mut all) = raw_subscriber(s.port, "feed").await;
    let mut h = Http::connect(&s).await;
    // ~1.3 KB frames of varying size: 520 KB in all, past the socket buffers, under the
    // 1 MiB outbox bound; no two frames line up with the 16 KiB coalescing limit alike.
    for i in 0..EVENTS / 10 {
        h.batch_of_ten("feed", i * 10, &"y".repeat(1200 + i * 7))
            .await;
    }
    let mut buf = vec![0u8; 65536];
    let mut texts = Vec::new();
    while texts.len() < EVENTS + 2 {
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), paused.read(&mut buf))
            .await
            .expect("the backlog stopped short")
            .unwrap();
        assert!(n > 0, "closed after {} frames", texts.len());
        all.extend_from_slice(&buf[..n]);
        texts = frames(&all)
            .into_iter()
            .filter(|(op, _)| *op == 0x81)
            .map(|(_, p)| String::from_utf8(p.to_vec()).unwrap())
            .collect();
    }
    // connection_established and subscription_succeeded, then the events in order.
    for (n, t) in texts[2..].iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(t).unwrap();
        let pad = "y".repeat(1200 + n / 10 * 7);
        assert_eq!(
            v,
            json!({"event":"e","channel":"feed","data":format!("{n}:{pad}")}),
            "frame {n}"
        );
    }
    assert_eq!(texts.len(), EVENTS + 2);
}

/// A raw WebSocket client with a 4 KiB receive buffer, and the bytes it read up to
/// `connection_established` (the HTTP response head included).
async fn raw_connect(port: u16) -> (tokio::net::TcpStream, Vec<u8>) {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut c = sock.connect(([127, 0, 0, 1], port).into()).await.unwrap();
    c.write_all(b"GET /app/app-key?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("connection_established") {
        let n = c.read(&mut buf).await.unwrap();
        assert!(n > 0);
        seen.extend_from_slice(&buf[..n]);
    }
    (c, seen)
}

/// [`raw_connect`], then subscribed to `channel`: the bytes read up to
/// `subscription_succeeded`.
async fn raw_subscriber(port: u16, channel: &str) -> (tokio::net::TcpStream, Vec<u8>) {
    let (mut c, mut seen) = raw_connect(port).await;
    let sub = json!({"event":"pusher:subscribe","data":{"channel":channel}}).to_string();
    let mut frame = vec![0x81u8, 0x80 | sub.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(sub.as_bytes());
    c.write_all(&frame).await.unwrap();
    let mut buf = vec![0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("subscription_succeeded") {
        let n = c.read(&mut buf).await.unwrap();
        assert!(n > 0);
        seen.extend_from_slice(&buf[..n]);
    }
    (c, seen)
}

/// Walks server frames (unmasked) after the HTTP response head: (first byte, payload) of
/// each whole frame; a partial frame at the end is left out.
fn frames(b: &[u8]) -> Vec<(u8, &[u8])> {
    let Some(head) = b.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Vec::new();
    };
    let mut b = &b[head + 4..];
    let mut out = Vec::new();
    while b.len() >= 2 {
        let (len, hl) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 if b.len() >= 10 => (
                u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
                10,
            ),
            126 | 127 => break,
            n => (n as usize, 2),
        };
        assert!(
            b[0] == 0x81 || b[0] == 0x88 || b[0] == 0x8a,
            "misframed stream at {} bytes before the end: {:02x?}",
            b.len(),
            &b[..b.len().min(16)]
        );
        if b.len() < hl + len {
            break;
        }
        out.push((b[0], &b[hl..hl + len]));
        b = &b[hl + len..];
    }
    out
}

/// The close code of the first close frame in the server's bytes.
fn find_close(b: &[u8]) -> Option<u16> {
    frames(b)
        .into_iter()
        .find(|(op, _)| *op == 0x88)
        .map(|(_, p)| u16::from_be_bytes([p[0], p[1]]))
}
