//! History across restarts with a data directory (docs/adr/0010-history-storage.md): a
//! graceful restart keeps epochs, so clients recover across it; a `kill -9` keeps what was
//! written (all but the last `flush_ms`) under a new epoch, so clients are told "not
//! recovered" instead of being replayed a history with a hole.

mod common;
use common::history::{history, subscribe_from};
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

fn config(dir: &std::path::Path) -> String {
    format!(
        r#"
[history]
data_dir = "{}"
flush_ms = 50

[[apps]]
id = "1"
key = "app-key"
secret = "app-secret"

[[apps.history]]
channels = "chat-*"
size = 100
"#,
        dir.display()
    )
}

fn data_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("raptor-history-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

async fn publish_on(s: &Server, channel: &str, range: std::ops::RangeInclusive<u64>) {
    let mut h = Http::connect(s).await;
    for n in range {
        assert_eq!(h.publish(channel, "e", &n.to_string()).await.status, 200);
    }
}

fn stop(mut s: Server, signal: i32) {
    // SAFETY: kill(2) with a child's pid and a signal number; no memory is involved.
    assert_eq!(unsafe { libc::kill(s.pid() as i32, signal) }, 0);
    let t0 = Instant::now();
    while s.child.try_wait().unwrap().is_none() {
        assert!(t0.elapsed() < Duration::from_secs(10), "did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn a_graceful_restart_keeps_the_epoch_and_clients_recover_across_it() {
    let dir = data_dir("graceful");
    let cfg = config(&dir);
    let s = Server::start_with(&cfg);
    let mut c = Client::connect(&s).await;
    let epoch = subscribe_from(&mut c, "chat-r", None).await["epoch"]
        .as_str()
        .unwrap()
        .to_string();
    publish_on(&s, "chat-r", 1..=5).await;
    for _ in 1..=5 {
        c.recv().await;
    }
    // The client's connection dies; 5 more go by; the server restarts gracefully.
    drop(c);
    publish_on(&s, "chat-r", 6..=10).await;
    let before = history(&s, "chat-r").await;
    stop(s, libc::SIGTERM);

    let s = Server::start_with(&cfg);
    assert_eq!(
        history(&s, "chat-r").await,
        before,
        "the same history, edits and all"
    );
    let mut c = Client::connect(&s).await;
    let r = subscribe_from(&mut c, "chat-r", Some((5, &epoch))).await;
    assert_eq!(
        r,
        json!({"was_recovering": true, "recovered": true, "epoch": epoch, "offset": 5, "replayed": 5})
    );
    for n in 6..=10 {
        assert_eq!(
            c.recv_text().await,
            format!(r#"{{"event":"e","channel":"chat-r","data":"{n}","offset":{n}}}"#)
        );
    }
    // And the position goes on from there.
    publish_on(&s, "chat-r", 11..=11).await;
    assert_eq!(
        c.recv_text().await,
        r#"{"event":"e","channel":"chat-r","data":"11","offset":11}"#
    );
    // A second restart (the first one rewrote the log at start): all 11 events are there.
    let before = history(&s, "chat-r").await;
    assert_eq!(before["events"].as_array().unwrap().len(), 11);
    stop(s, libc::SIGTERM);
    let s = Server::start_with(&cfg);
    assert_eq!(history(&s, "chat-r").await, before);
    let mut c = Client::connect(&s).await;
    let r = subscribe_from(&mut c, "chat-r", Some((8, &epoch))).await;
    assert_eq!(
        (r["recovered"].as_bool(), r["replayed"].as_u64()),
        (Some(true), Some(3))
    );
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn after_kill_9_the_history_stays_under_a_new_epoch() {
    let dir = data_dir("kill");
    let cfg = config(&dir);
    let s = Server::start_with(&cfg);
    let mut c = Client::connect(&s).await;
    let epoch = subscribe_from(&mut c, "chat-k", None).await["epoch"]
        .as_str()
        .unwrap()
        .to_string();
    publish_on(&s, "chat-k", 1..=10).await;
    let mut h = Http::connect(&s).await;
    let r = h
        .signed(
            "POST",
            "/apps/1/channels/chat-k/history/4/edit",
            &[],
            r#"{"data":"four"}"#,
        )
        .await;
    assert_eq!(r.status, 200);
    // Past flush_ms (50): written.
    tokio::time::sleep(Duration::from_millis(400)).await;
    stop(s, libc::SIGKILL);

    let s = Server::start_with(&cfg);
    let after = history(&s, "chat-k").await;
    let new_epoch = after["epoch"].as_str().unwrap();
    assert_ne!(new_epoch, epoch, "continuity is not proven after a crash");
    assert_eq!(after["offset"], 11);
    let data: Vec<&str> = after["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"].as_str().unwrap())
        .collect();
    assert_eq!(
        data,
        [
            "1",
            "2",
            "3",
            "four",
            "5",
            "6",
            "7",
            "8",
            "9",
            "10",
            r#"{"offset":4,"event":"e","data":"four"}"#
        ]
    );
    let mut c = Client::connect(&s).await;
    let r = subscribe_from(&mut c, "chat-k", Some((8, &epoch))).await;
    assert_eq!(
        r,
        json!({"was_recovering": true, "recovered": false, "epoch": new_epoch, "offset": 11, "replayed": 0})
    );
    // A client that learns the new epoch recovers in it.
    let mut d = Client::connect(&s).await;
    let r = subscribe_from(&mut d, "chat-k", Some((9, new_epoch))).await;
    assert_eq!(
        (r["recovered"].as_bool(), r["replayed"].as_u64()),
        (Some(true), Some(2))
    );
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_log_is_rewritten_at_its_disk_bound() {
    let dir = data_dir("bound");
    let cfg = config(&dir).replace(
        "flush_ms = 50",
        "flush_ms = 50\nmax_bytes_per_shard = 1048576\nmax_disk_bytes_per_shard = 2097152",
    );
    let s = Server::start_with(&cfg);
    let mut h = Http::connect(&s).await;
    let pad = "x".repeat(1000);
    for batch in 0..300 {
        h.batch_of_ten("chat-big", batch * 10, &pad).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let logs: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    // 3,000 events of ~1 KiB were appended (3 MiB); the ring keeps 100.
    assert!(logs <= 2 * 1024 * 1024, "{logs} bytes on disk");
    let before = history(&s, "chat-big").await;
    assert_eq!(before["events"].as_array().unwrap().len(), 100);
    stop(s, libc::SIGKILL);
    let s = Server::start_with(&cfg);
    let after = history(&s, "chat-big").await;
    assert_eq!(
        after["events"], before["events"],
        "nothing lost by the rewrite"
    );
    // Killed right after the rewrite at start: still all there.
    stop(s, libc::SIGKILL);
    let s = Server::start_with(&cfg);
    let again = history(&s, "chat-big").await;
    assert_eq!(again["events"], before["events"], "nor by the next start");
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}
